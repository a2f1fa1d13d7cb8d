"""Reading a folder of images and their captions, as Hugging Face's imagefolder lays it out: which items it holds
(find_items), their ground truth where the bundled generator wrote one (read_truths), each image decoded to a square
(load_image), and all of them decoded once and cached on disk (decode_images).

    items = find_items("data/engravings")                # [(image path, caption)], unusable items warned about
    images, kept, failed, cache, loaded = decode_images([p for p, _ in items], 64, cache_dir=".cache")

train_wandb.py's EngravingDataset, sample.py, diagnose.py and ceiling.py read collections through it.
"""

import csv
import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from checkpoints import save_atomic
from durable import one_line

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class DataError(Exception):
    """The data folder cannot be used: reported in one line, exit status 2."""


class DataWarning(UserWarning):
    """An item of the collection was skipped or changed; the message says which and why."""


class CacheWarning(UserWarning):
    """The decoded-image cache could not be read or written; training goes on without it."""


def read_metadata(meta):
    """Rows of one metadata.jsonl / metadata.csv as (file_name, text, truth) triples, file names relative to its
    folder; truth: the row's `truth` object (the bundled generator's ground truth), else None. A file that cannot be
    read, and each malformed row (not a JSON object, a short CSV row, a NUL in the file name), is named in a
    DataWarning and skipped."""
    try:
        with open(meta, encoding="utf-8-sig", errors="replace", newline="") as f:
            rows = _jsonl_rows(meta, f) if meta.suffix == ".jsonl" else _csv_rows(meta, f)
    except (OSError, csv.Error) as e:
        warnings.warn(f"{meta}: cannot be read ({type(e).__name__}: {getattr(e, 'strerror', None) or e}); the items "
                      "it names are skipped", DataWarning)
        return []
    kept = []
    for line_no, file_name, text, truth in rows:
        if "\0" in file_name:
            warnings.warn(f"{meta}:{line_no}: file name {file_name!r} holds a NUL character; skipped", DataWarning)
        else:
            kept.append((file_name, text, truth))
    return kept


def _jsonl_rows(meta, f):
    rows = []
    for line_no, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row["file_name"], str):
                raise TypeError("file_name is not a string")
            truth = row.get("truth")
            rows.append((line_no, row["file_name"], row.get("text"), truth if isinstance(truth, dict) else None))
        except (json.JSONDecodeError, KeyError, TypeError):
            warnings.warn(f"{meta}:{line_no}: not a JSON object with file_name and text; skipped", DataWarning)
    return rows


def _csv_rows(meta, f):
    reader = csv.DictReader(f)
    if not reader.fieldnames or "file_name" not in reader.fieldnames or "text" not in reader.fieldnames:
        raise DataError(f"{meta}: needs the columns file_name and text, found {reader.fieldnames}")
    rows = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return rows
        except csv.Error as e:  # e.g. a field over csv.field_size_limit(); the reader goes on with the next row
            warnings.warn(f"{meta}: the row after line {reader.line_num}: malformed CSV ({e}); skipped", DataWarning)
            continue
        if row["file_name"] is None or row["text"] is None:  # DictReader fills the missing fields with None
            warnings.warn(f"{meta}:{reader.line_num}: fewer fields than the header's {len(reader.fieldnames)}; "
                          "skipped", DataWarning)
        else:
            rows.append((reader.line_num, row["file_name"], row["text"], None))


def find_items(data_dir):
    """List (image path, caption) pairs in data_dir.

    Layouts, as in Hugging Face's imagefolder: metadata.jsonl or metadata.csv files with
    `file_name` and `text` (file names relative to the metadata file, in any sub-folder);
    otherwise every image with a same-named .txt caption beside it. Items that cannot be
    used are skipped with a DataWarning naming them: among them every file that resolves outside
    data_dir (`../x.png`, an absolute path, a symbolic link that leads out), so a downloaded
    collection cannot pull in other files of the machine, and a second name of a file already
    taken (`./a.png` after `a.png`), which could otherwise land in both the training and the
    validation split.
    """
    data_dir = Path(data_dir)
    root = data_dir.resolve()
    metas = sorted(p for p in data_dir.rglob("metadata.*") if p.suffix in (".jsonl", ".csv"))
    images = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    items, taken = [], {}  # taken: resolved path -> which row holds that file, for the warning about a second one

    def usable(path, text, written, source):
        """Is (path, text) a new item inside data_dir? If not, warn naming it and why. written: the file name as the
        source (a metadata file or a caption file) gives it."""
        resolved = _resolved(path)
        if resolved is None:
            warnings.warn(f"{path}: a loop of symbolic links; skipped", DataWarning)
        elif not resolved.is_relative_to(root):
            warnings.warn(f"{path}: leads to {resolved}, outside {data_dir}; skipped", DataWarning)
        elif resolved in taken:
            warnings.warn(f"{path}: {written!r} in {source} is the same file as {taken[resolved]}; skipped",
                          DataWarning)
        elif not path.is_file():
            warnings.warn(f"{path}: named in {source} but missing; skipped", DataWarning)
        elif not isinstance(text, str) or not text.strip():
            warnings.warn(f"{path}: empty caption; skipped", DataWarning)
        elif "\ufffd" in text:  # bytes that were not UTF-8 were read as U+FFFD
            warnings.warn(f"{path}: caption in {source} is not valid UTF-8; skipped", DataWarning)
        else:
            taken[resolved] = f"{written!r} in {source}"
            return True
        return False

    if metas:
        named = set()
        for meta in metas:
            where = _resolved(meta)
            if where is not None and not where.is_relative_to(root):
                warnings.warn(f"{meta}: a link to {where}, outside {data_dir}; not read", DataWarning)
                continue
            for file_name, text, _ in read_metadata(meta):
                path = meta.parent / file_name
                named.add(_resolved(path))
                if usable(path, text, file_name, meta.name):
                    items.append((path, text.strip()))
        unnamed = [p for p in images if _resolved(p) not in named]
        if unnamed:
            warnings.warn(f"{len(unnamed)} images under {data_dir} (e.g. {unnamed[0]}) are named in no metadata "
                          "file; ignored", DataWarning)
    else:
        for path in images:
            caption_file = path.with_suffix(".txt")
            if caption_file.is_file() and not caption_file.resolve().is_relative_to(root):
                warnings.warn(f"{caption_file}: a link to {caption_file.resolve()}, outside {data_dir}; {path.name} "
                              "skipped", DataWarning)
                continue
            try:
                text = caption_file.read_text(encoding="utf-8-sig", errors="replace") if caption_file.is_file() else ""
            except OSError as e:
                warnings.warn(f"{caption_file}: cannot be read ({type(e).__name__}: {e.strerror or e}); {path.name} "
                              "skipped", DataWarning)
                continue
            if not text.strip():
                warnings.warn(f"{path}: no caption ({caption_file.name} missing or empty); skipped", DataWarning)
            elif usable(path, text, path.name, caption_file.name):
                items.append((path, text.strip()))
    return items


def _resolved(path):
    """path with every symbolic link followed, or None where they loop."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # Python before 3.13 raises RuntimeError for a loop
        return None


def load_image(path, size):
    """Decode one image into a (3, size, size) uint8 array, fitted into a white square (no cropping)."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit and float grayscale: scale, don't clip
            a = np.asarray(img, dtype=np.float64)
            peak = 1.0 if img.mode == "F" and a.max() <= 1.0 else 255.0 if a.max() <= 255 else 65535.0
            img = Image.fromarray(np.clip(a / peak * 255.0, 0, 255).round().astype(np.uint8), mode="L")
        if img.mode in ("RGBA", "LA", "P", "PA"):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, img)
        img = ImageOps.pad(img.convert("RGB"), (size, size), method=Image.Resampling.BICUBIC, color=(255, 255, 255))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


DECODE_CACHE_VERSION = 1  # bump when load_image changes what it produces


def decode_cache_path(cache_dir, paths, size):
    """The cache file for these images at this size: named by a hash of every file's path, byte size and
    modification time, so any added, removed or edited image gives a new file (and the old one is unused)."""
    h = hashlib.sha256(f"decoded images v{DECODE_CACHE_VERSION} size={size}\n".encode())
    for path in paths:
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{Path(path).resolve()}\0{stamp}\n".encode())
    return Path(cache_dir) / f"decoded-{size}px-{len(paths)}-{h.hexdigest()[:20]}.pt"


def decode_images(paths, size, num_workers=4, cache_dir=""):
    """-> (uint8 tensor (n_ok, 3, size, size), indices of the paths that decoded, one message per failure,
    the cache file or None, whether it was loaded from there).

    With a cache_dir, the result is saved there and the next run with the same files loads it instead of
    decoding (memory-mapped, so it costs no copy); unreadable images are remembered and reported again.
    """
    cache = decode_cache_path(cache_dir, paths, size) if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            saved = torch.load(cache, map_location="cpu", weights_only=True, mmap=True)
            return saved["images"], saved["kept"].tolist(), list(saved["failed"]), cache, True
        except Exception as e:  # a truncated or foreign file: decode again and overwrite it
            warnings.warn(f"{cache}: unreadable decoded-image cache ({type(e).__name__}); decoding again",
                          CacheWarning)

    def decode(path):
        try:
            return load_image(path, size), None
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
            return None, f"{path}: unreadable image ({type(e).__name__}: {e}); skipped"

    with ThreadPoolExecutor(max(1, num_workers)) as pool:
        results = list(tqdm(pool.map(decode, paths), total=len(paths), desc="Decoding images", leave=False))
    kept = [i for i, (a, _) in enumerate(results) if a is not None]
    failed = [message for _, message in results if message is not None]
    images = (torch.from_numpy(np.stack([results[i][0] for i in kept])) if kept
              else torch.empty(0, 3, size, size, dtype=torch.uint8))
    if cache is not None:
        saved = {"images": images, "kept": torch.tensor(kept, dtype=torch.long), "failed": failed}
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            save_atomic(saved, cache, shared=True)  # under torchrun every process may write it
        except Exception as e:  # any: a cache that cannot be written must not stop the run
            warnings.warn(f"cannot write the decoded-image cache in {cache_dir} ({one_line(e)}); the next run decodes "
                          "again (set --cache_dir to a writable folder, or '' to turn the cache off)", CacheWarning)
            cache = None
    return images, kept, failed, cache, False


def read_truths(data_dir):
    """The generator's ground truth of each image, {resolved image path: truth}, from the `truth` of the
    metadata.jsonl rows under data_dir: what the grounded caption accuracy is judged against. Only the bundled
    collection has it. (find_items has already warned about unusable rows.)"""
    truths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        for meta in sorted(Path(data_dir).rglob("metadata.jsonl")):
            for file_name, _, truth in read_metadata(meta):
                if truth is not None:
                    truths[(meta.parent / file_name).resolve()] = truth
    return truths
