"""The decoded-image cache: a second run over the same files decodes no image, and any change invalidates it."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from data import imagefolder
from data.imagefolder import CacheWarning, DataWarning, decode_cache_path
from tokenizer import CaptionTokenizer
from train_wandb import EngravingDataset

S = 16


@pytest.fixture
def items(tmp_path):
    """Four images of distinct colours plus one unreadable file, with captions."""
    folder = tmp_path / "images"
    folder.mkdir()
    out = []
    for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30)]):
        path = folder / f"{i}.png"
        Image.new("RGB", (8 + i, 8), color).save(path)
        out.append((path, f"square number {i}"))
    bad = folder / "bad.png"
    bad.write_bytes(b"not an image")
    out.insert(2, (bad, "broken"))
    return out


@pytest.fixture
def decode_counter(monkeypatch):
    """Counts every call of load_image: the one function that opens and decodes an image file."""
    calls = []
    real = imagefolder.load_image

    def counting(path, size):
        calls.append(path)
        return real(path, size)

    monkeypatch.setattr(imagefolder, "load_image", counting)
    return calls


def build(items, cache_dir, size=S):
    tokenizer = CaptionTokenizer.build([c for _, c in items])[0]
    with pytest.warns(DataWarning):  # the unreadable file is reported on every run, cached or not
        return EngravingDataset(items, tokenizer, size, 8, num_workers=2, cache_dir=cache_dir)


def test_second_run_decodes_no_image_file_and_gives_the_same_dataset(items, tmp_path, decode_counter):
    cache_dir = tmp_path / "cache"
    first = build(items, cache_dir)
    assert len(decode_counter) == len(items)  # every file decoded once, the broken one attempted
    assert not first.from_cache and first.cache_file.is_file()

    decode_counter.clear()
    second = build(items, cache_dir)
    assert decode_counter == []  # nothing opened
    assert second.from_cache and second.cache_file == first.cache_file
    assert torch.equal(second.images, first.images)
    assert torch.equal(second.tokens, first.tokens)
    assert second.paths == first.paths and second.captions == first.captions
    assert len(second) == len(items) - 1


def test_cached_run_reports_the_unreadable_image_again(items, tmp_path):
    cache_dir = tmp_path / "cache"
    build(items, cache_dir)
    tokenizer = CaptionTokenizer.build([c for _, c in items])[0]
    with pytest.warns(DataWarning, match="bad.png: unreadable image"):
        ds = EngravingDataset(items, tokenizer, S, 8, num_workers=1, cache_dir=cache_dir)
    assert ds.from_cache and "broken" not in ds.captions


def test_editing_an_image_invalidates_the_cache(items, tmp_path, decode_counter):
    cache_dir = tmp_path / "cache"
    first = build(items, cache_dir)
    path = items[0][0]
    Image.new("RGB", (8, 8), (255, 255, 255)).save(path)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later modification time, whatever the clock
    decode_counter.clear()
    second = build(items, cache_dir)
    assert not second.from_cache and len(decode_counter) == len(items)
    assert second.cache_file != first.cache_file
    assert (second.images[0] == 255).all() and not (first.images[0] == 255).all()


def test_cache_is_keyed_by_image_size_and_the_item_list(items, tmp_path):
    paths = [p for p, _ in items]
    base = decode_cache_path(tmp_path, paths, S)
    assert decode_cache_path(tmp_path, paths, S) == base  # deterministic
    assert decode_cache_path(tmp_path, paths, 2 * S) != base
    assert decode_cache_path(tmp_path, paths[:-1], S) != base
    assert decode_cache_path(tmp_path, paths[::-1], S) != base  # the order of the rows matters


def test_no_cache_dir_means_no_file_and_decoding_every_time(items, tmp_path, decode_counter):
    build(items, "")
    build(items, "")
    assert len(decode_counter) == 2 * len(items)
    assert not any(tmp_path.rglob("decoded-*.pt"))


def test_a_corrupt_cache_file_is_named_in_a_warning_and_rebuilt(items, tmp_path, decode_counter):
    cache_dir = tmp_path / "cache"
    first = build(items, cache_dir)
    first.cache_file.write_bytes(b"truncated")
    decode_counter.clear()
    with pytest.warns(CacheWarning, match="unreadable decoded-image cache"):
        second = build(items, cache_dir)
    assert len(decode_counter) == len(items) and torch.equal(second.images, first.images)
    assert build(items, cache_dir).from_cache  # rewritten: the next run uses it


def test_an_unwritable_cache_dir_warns_and_training_data_is_still_complete(items, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    with pytest.warns(CacheWarning, match="cannot write the decoded-image cache"):
        ds = build(items, blocker / "cache")
    assert len(ds) == len(items) - 1 and ds.cache_file is None and not ds.from_cache


def test_cached_images_equal_a_fresh_decode_pixel_for_pixel(items, tmp_path):
    build(items, tmp_path / "cache")
    cached = build(items, tmp_path / "cache")
    expected = np.stack([imagefolder.load_image(p, S) for p, c in items if c != "broken"])
    assert cached.from_cache and np.array_equal(cached.images.numpy(), expected)
