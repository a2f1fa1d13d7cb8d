"""Dataset generation: images/ and metadata.jsonl into a folder, regenerated when the generator changes."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

from .captions import caption_for
from .drawing import draw_scene
from .random_scenes import make_scene
from .scene import truth_for

DEFAULT_NUM_ITEMS = 5141
DEFAULT_IMAGE_SIZE = 128
GENERATOR_VERSION = 4  # bump when captions or drawings change: ensure_sample then regenerates the set
METADATA = "metadata.jsonl"
VERSION_FILE = "generator.json"  # the generator version that wrote the set
# Before the generator became this package, the bundled set was written into this folder (data/engravings/); it
# now lives in data/bundled/ (train_wandb.BUNDLED_DATA_DIR), and ensure_sample moves an old set found here.
OLD_HOME = Path(__file__).resolve().parent


def _draw_rng(index: int, seed: int) -> random.Random:
    return random.Random(f"engraving-{seed}-{index}-strokes")


def render(index: int, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0):
    """Render item ``index``: returns ``(PIL.Image in mode "L", caption)``."""
    scene = make_scene(index, seed)
    img = draw_scene(scene, int(image_size), _draw_rng(index, seed))
    return img, caption_for(scene)


def _file_name(index: int, num_items: int) -> str:
    digits = max(5, len(str(max(0, num_items - 1))))
    return f"images/{index:0{digits}d}.png"


def _render_task(task):
    index, image_size, seed, out_dir, file_name = task
    scene = make_scene(index, seed)
    img = draw_scene(scene, image_size, _draw_rng(index, seed))
    img.save(os.path.join(out_dir, file_name), format="PNG")
    return index, caption_for(scene), truth_for(scene)


def generate(
    out_dir,
    num_items: int = DEFAULT_NUM_ITEMS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write ``num_items`` engravings and ``metadata.jsonl`` into ``out_dir``."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    meta = out / METADATA
    if meta.exists():  # a previous set is being replaced: it is incomplete until we finish
        meta.unlink()
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    workers = max(1, min(int(workers), max(1, num_items)))
    names = [_file_name(i, num_items) for i in range(num_items)]
    tasks = [(i, int(image_size), int(seed), str(out), names[i]) for i in range(num_items)]
    rows = [None] * num_items

    from tqdm import tqdm

    if workers == 1:
        with tqdm(total=num_items, desc="engravings", unit="img", disable=not progress) as bar:
            for task in tasks:
                i, caption, truth = _render_task(task)
                rows[i] = {"file_name": names[i], "text": caption, "truth": truth}
                bar.update(1)
    else:
        import multiprocessing as mp

        chunk = max(1, min(64, num_items // (workers * 8)))
        with mp.Pool(workers) as pool:  # created before tqdm starts its monitor thread
            with tqdm(total=num_items, desc="engravings", unit="img", disable=not progress) as bar:
                for i, caption, truth in pool.imap_unordered(_render_task, tasks, chunksize=chunk):
                    rows[i] = {"file_name": names[i], "text": caption, "truth": truth}
                    bar.update(1)

    version = {"version": GENERATOR_VERSION, "num_items": num_items, "image_size": int(image_size), "seed": int(seed)}
    (out / VERSION_FILE).write_text(json.dumps(version) + "\n", encoding="utf-8")
    tmp = out / (METADATA + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, meta)
    return out


def _written_version(out: Path) -> int | None:
    try:
        return json.loads((out / VERSION_FILE).read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # sets written before version 2 have no version file


def _move_old_set(out: Path) -> None:
    """Move a bundled set generated before the generator became a package from data/engravings/ to ``out``,
    data/bundled/, unless ``out`` exists: a rename, where generating again would take a minute or more."""
    if out.exists() or out.resolve() != OLD_HOME.parent / "bundled" or not (OLD_HOME / METADATA).exists():
        return
    try:
        out.mkdir(parents=True)
        for name in ("images", VERSION_FILE, METADATA):  # metadata.jsonl last: it marks a complete set
            if (OLD_HOME / name).exists():
                os.replace(OLD_HOME / name, out / name)
    except OSError as e:
        print(f"Could not move the bundled set from {OLD_HOME} to {out} ({e}); delete images/, {METADATA} and "
              f"{VERSION_FILE} from {OLD_HOME} by hand.", flush=True)
        return
    print(f"Moved the bundled set from {OLD_HOME}, where earlier versions wrote it, to {out}.", flush=True)


def ensure_sample(
    out_dir,
    num_items: int = DEFAULT_NUM_ITEMS,
    image_size: int = DEFAULT_IMAGE_SIZE,
    seed: int = 0,
) -> Path:
    """Generate the bundled sample into ``out_dir`` unless it is complete and from this generator version."""
    out = Path(out_dir)
    _move_old_set(out)
    if (out / METADATA).exists() and _written_version(out) == GENERATOR_VERSION:
        return out
    print(
        f"Generating the bundled engraving sample: {num_items} images of "
        f"{image_size}x{image_size} px into {out} ...",
        flush=True,
    )
    t0 = time.perf_counter()
    generate(out, num_items=num_items, image_size=image_size, seed=seed)
    print(f"Generated {num_items} engravings in {time.perf_counter() - t0:.1f}s.", flush=True)
    return out
