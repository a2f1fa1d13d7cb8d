"""The engraving dataset: finding items, decoding images, the in-memory dataset, batches and the split."""
import json
import re
import types

import numpy as np
import pytest
import torch
from PIL import Image

from data.imagefolder import DataError, DataWarning, find_items, load_image
from tokenizer import CaptionTokenizer
from train_wandb import BatchLoader, EngravingDataset, split_indices

S = 16  # image side used throughout


def make_image(path, mode="RGB", size=(8, 8), color=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")


def named(path):
    """A pytest.warns match for a message that names this file."""
    return re.escape(str(path))


# -- find_items: layouts ---------------------------------------------------------------------

def test_jsonl_layout_with_images_in_nested_folders(tmp_path):
    a = make_image(tmp_path / "images" / "a" / "x.png")
    b = make_image(tmp_path / "images" / "b" / "y.jpg")
    write_jsonl(tmp_path / "metadata.jsonl", [
        {"file_name": "images/a/x.png", "text": "A ship at sea"},
        {"file_name": "images/b/y.jpg", "text": "  a cat, asleep \n"},
    ])
    assert find_items(tmp_path) == [(a, "A ship at sea"), (b, "a cat, asleep")]


def test_jsonl_in_a_sub_folder_names_files_relative_to_itself(tmp_path):
    a = make_image(tmp_path / "part1" / "x.png")
    b = make_image(tmp_path / "part2" / "img" / "x.png")
    write_jsonl(tmp_path / "part1" / "metadata.jsonl", [{"file_name": "x.png", "text": "first"}])
    write_jsonl(tmp_path / "part2" / "metadata.jsonl", [{"file_name": "img/x.png", "text": "second"}])
    assert find_items(tmp_path) == [(a, "first"), (b, "second")]


def test_csv_layout_keeps_quoted_commas(tmp_path):
    a = make_image(tmp_path / "imgs" / "a.png")
    b = make_image(tmp_path / "b.png")
    (tmp_path / "metadata.csv").write_text('file_name,text\nimgs/a.png,"a ship, at sea"\nb.png,a dog\n',
                                           encoding="utf-8")
    assert find_items(tmp_path) == [(a, "a ship, at sea"), (b, "a dog")]


def test_csv_with_extra_columns_in_any_order(tmp_path):
    a = make_image(tmp_path / "a.png")
    (tmp_path / "metadata.csv").write_text("artist,text,file_name\nDoré,a dragon,a.png\n", encoding="utf-8")
    assert find_items(tmp_path) == [(a, "a dragon")]


def test_sidecar_txt_layout_with_nested_folders(tmp_path):
    a = make_image(tmp_path / "a.png")
    b = make_image(tmp_path / "deep" / "er" / "b.JPG")
    (tmp_path / "a.txt").write_text("a ship\n", encoding="utf-8")
    (tmp_path / "deep" / "er" / "b.txt").write_text("  an old map  ", encoding="utf-8")
    assert find_items(tmp_path) == [(a, "a ship"), (b, "an old map")]


def test_metadata_file_takes_precedence_over_sidecar_captions(tmp_path):
    a = make_image(tmp_path / "a.png")
    make_image(tmp_path / "other" / "b.png")
    (tmp_path / "a.txt").write_text("sidecar caption", encoding="utf-8")
    (tmp_path / "other" / "b.txt").write_text("only a sidecar", encoding="utf-8")
    write_jsonl(tmp_path / "metadata.jsonl", [{"file_name": "a.png", "text": "metadata caption"}])
    with pytest.warns(DataWarning, match=r"1 images .*b\.png.* named in no metadata file"):
        assert find_items(tmp_path) == [(a, "metadata caption")]


def test_empty_folder_has_no_items(tmp_path):
    assert find_items(tmp_path) == []


# -- find_items: bad items are skipped with a DataWarning naming them -------------------------

def test_jsonl_row_naming_a_missing_file_warns_and_is_skipped(tmp_path):
    good = make_image(tmp_path / "good.png")
    write_jsonl(tmp_path / "metadata.jsonl", [
        {"file_name": "missing.png", "text": "lost"},
        {"file_name": "good.png", "text": "kept"},
    ])
    with pytest.warns(DataWarning, match=named(tmp_path / "missing.png")):
        items = find_items(tmp_path)
    assert items == [(good, "kept")]


def test_csv_row_naming_a_missing_file_warns_and_is_skipped(tmp_path):
    good = make_image(tmp_path / "good.png")
    (tmp_path / "metadata.csv").write_text("file_name,text\nnope/missing.png,lost\ngood.png,kept\n")
    with pytest.warns(DataWarning, match=named(tmp_path / "nope" / "missing.png")):
        items = find_items(tmp_path)
    assert items == [(good, "kept")]


@pytest.mark.parametrize("text", ["", "   \n", None])
def test_jsonl_row_with_empty_caption_warns_and_is_skipped(tmp_path, text):
    make_image(tmp_path / "empty.png")
    good = make_image(tmp_path / "good.png")
    write_jsonl(tmp_path / "metadata.jsonl", [{"file_name": "empty.png", "text": text},
                                              {"file_name": "good.png", "text": "kept"}])
    with pytest.warns(DataWarning, match=named(tmp_path / "empty.png") + ".*empty caption"):
        items = find_items(tmp_path)
    assert items == [(good, "kept")]


def test_jsonl_row_without_text_key_warns_and_is_skipped(tmp_path):
    make_image(tmp_path / "untitled.png")
    good = make_image(tmp_path / "good.png")
    write_jsonl(tmp_path / "metadata.jsonl", [{"file_name": "untitled.png"}, {"file_name": "good.png", "text": "ok"}])
    with pytest.warns(DataWarning, match=named(tmp_path / "untitled.png")):
        items = find_items(tmp_path)
    assert items == [(good, "ok")]


def test_csv_row_with_empty_caption_warns_and_is_skipped(tmp_path):
    make_image(tmp_path / "empty.png")
    good = make_image(tmp_path / "good.png")
    (tmp_path / "metadata.csv").write_text("file_name,text\nempty.png,\ngood.png,kept\n")
    with pytest.warns(DataWarning, match=named(tmp_path / "empty.png")):
        items = find_items(tmp_path)
    assert items == [(good, "kept")]


@pytest.mark.parametrize("bad_line", [
    '{"file_name": "a.png", "text": ',  # cut off
    'not json at all',
    '["a.png", "a list"]',
    '"just a string"',
    '{"text": "no file_name"}',
])
def test_malformed_jsonl_line_warns_with_its_line_number_and_is_skipped(tmp_path, bad_line):
    good = make_image(tmp_path / "good.png")
    make_image(tmp_path / "a.png")
    write_jsonl(tmp_path / "metadata.jsonl", [{"file_name": "good.png", "text": "kept"}, bad_line, ""])
    with pytest.warns(DataWarning, match=named(tmp_path / "metadata.jsonl") + ":2:"):
        items = find_items(tmp_path)
    assert items == [(good, "kept")]


@pytest.mark.parametrize("file_name", [None, 7, ["a.png"]])
def test_jsonl_row_with_non_string_file_name_warns_and_is_skipped(tmp_path, file_name):
    # valid JSON with a file_name key, but not a usable name: should be a skipped line, not a crash
    good = make_image(tmp_path / "good.png")
    write_jsonl(tmp_path / "metadata.jsonl", [{"file_name": file_name, "text": "bad"},
                                              {"file_name": "good.png", "text": "kept"}])
    with pytest.warns(DataWarning, match=named(tmp_path / "metadata.jsonl")):
        items = find_items(tmp_path)
    assert items == [(good, "kept")]


def test_image_without_txt_warns_and_is_skipped(tmp_path):
    good = make_image(tmp_path / "good.png")
    (tmp_path / "good.txt").write_text("kept")
    lonely = make_image(tmp_path / "sub" / "lonely.png")
    with pytest.warns(DataWarning, match=named(lonely) + ".*lonely.txt"):
        items = find_items(tmp_path)
    assert items == [(good, "kept")]


def test_image_with_blank_txt_warns_and_is_skipped(tmp_path):
    good = make_image(tmp_path / "good.png")
    (tmp_path / "good.txt").write_text("kept")
    blank = make_image(tmp_path / "blank.png")
    (tmp_path / "blank.txt").write_text(" \n\t")
    with pytest.warns(DataWarning, match=named(blank)):
        items = find_items(tmp_path)
    assert items == [(good, "kept")]


def test_every_bad_item_gets_its_own_warning(tmp_path):
    make_image(tmp_path / "good.png")
    make_image(tmp_path / "empty.png")
    write_jsonl(tmp_path / "metadata.jsonl", [{"file_name": "gone.png", "text": "x"}, "{oops",
                                              {"file_name": "empty.png", "text": ""},
                                              {"file_name": "good.png", "text": "kept"}])
    with pytest.warns(DataWarning) as record:
        items = find_items(tmp_path)
    assert len(items) == 1
    messages = [str(w.message) for w in record if w.category is DataWarning]
    assert len(messages) == 3
    assert any("gone.png" in m for m in messages) and any("empty.png" in m for m in messages)


@pytest.mark.parametrize("header", ["file_name,caption", "path,text", ""])
def test_csv_without_file_name_and_text_columns_raises_data_error(tmp_path, header):
    make_image(tmp_path / "a.png")
    (tmp_path / "metadata.csv").write_text(f"{header}\na.png,a ship\n" if header else "")
    with pytest.raises(DataError, match=named(tmp_path / "metadata.csv") + ".*file_name and text"):
        find_items(tmp_path)


def test_csv_saved_with_a_utf8_byte_order_mark_is_read(tmp_path):
    # Excel and many Windows tools write "UTF-8 with BOM": the first column must still be file_name
    a = make_image(tmp_path / "a.png")
    (tmp_path / "metadata.csv").write_text("file_name,text\na.png,a ship\n", encoding="utf-8-sig")
    assert find_items(tmp_path) == [(a, "a ship")]


def test_jsonl_saved_with_a_utf8_byte_order_mark_keeps_its_first_row(tmp_path):
    a = make_image(tmp_path / "a.png")
    b = make_image(tmp_path / "b.png")
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "first"}\n'
                                             '{"file_name": "b.png", "text": "second"}\n', encoding="utf-8-sig")
    assert find_items(tmp_path) == [(a, "first"), (b, "second")]


# -- load_image ----------------------------------------------------------------------------------

def save(img, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


@pytest.mark.parametrize("mode, color, ext", [
    ("RGB", (10, 20, 30), "png"),
    ("L", 40, "png"),
    ("1", 0, "png"),
    ("RGBA", (10, 20, 30, 255), "png"),
    ("LA", (40, 255), "png"),
    ("P", 1, "png"),
    ("I;16", 40, "png"),
    ("CMYK", (0, 0, 0, 255), "tif"),
    ("RGB", (10, 20, 30), "jpg"),
])
def test_load_image_gives_3_by_size_by_size_uint8(tmp_path, mode, color, ext):
    path = save(Image.new(mode, (8, 12), color), tmp_path / f"img.{ext}")
    out = load_image(path, S)
    assert out.shape == (3, S, S)
    assert out.dtype == np.uint8
    assert out.flags["C_CONTIGUOUS"]


def test_load_image_keeps_rgb_channel_order(tmp_path):
    out = load_image(save(Image.new("RGB", (8, 8), (200, 100, 0)), tmp_path / "a.png"), S)
    assert out[:, S // 2, S // 2].tolist() == [200, 100, 0]


def test_load_image_grayscale_is_repeated_on_three_channels(tmp_path):
    out = load_image(save(Image.new("L", (8, 8), 77), tmp_path / "a.png"), S)
    assert (out == 77).all()


def test_load_image_transparent_areas_become_white(tmp_path):
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent black
    img.paste((0, 0, 0, 255), (0, 0, 8, 4))  # top half opaque black
    out = load_image(save(img, tmp_path / "a.png"), S)
    assert (out[:, : S // 2 - 1] == 0).all()
    assert (out[:, S // 2 + 1:] == 255).all()


def test_load_image_transparent_gray_alpha_becomes_white(tmp_path):
    out = load_image(save(Image.new("LA", (8, 8), (0, 0)), tmp_path / "a.png"), S)
    assert (out == 255).all()


def test_load_image_palette_colours_are_looked_up(tmp_path):
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    out = load_image(save(img, tmp_path / "a.png"), S)
    assert out[:, 0, 0].tolist() == [255, 0, 0]


def test_load_image_palette_transparency_becomes_white(tmp_path):
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 1
    out = load_image(save(img, tmp_path / "a.png"), S)
    assert (out == 255).all()


def test_load_image_cmyk_is_converted_to_rgb(tmp_path):
    out = load_image(save(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), tmp_path / "a.tif"), S)
    assert out[:, 0, 0].tolist() == [0, 255, 255]  # pure cyan


def test_load_image_16_bit_grayscale_black_stays_black(tmp_path):
    img = Image.fromarray(np.zeros((8, 8), np.uint16))
    assert img.mode == "I;16"
    out = load_image(save(img, tmp_path / "a.png"), S)
    assert out.shape == (3, S, S) and (out == 0).all()


def test_load_image_scales_16_bit_grayscale_to_8_bit(tmp_path):
    # a mid-gray 16-bit scan (32768 of 65535) should come out mid-gray, not clipped to white
    img = Image.fromarray(np.full((8, 8), 32768, np.uint16))
    assert img.mode == "I;16"
    out = load_image(save(img, tmp_path / "a.png"), S)
    assert abs(int(out[0, S // 2, S // 2]) - 128) <= 2


def test_load_image_one_pixel_fills_the_square(tmp_path):
    out = load_image(save(Image.new("L", (1, 1), 0), tmp_path / "a.png"), S)
    assert out.shape == (3, S, S) and (out == 0).all()


def test_load_image_wide_image_is_padded_not_cropped(tmp_path):
    out = load_image(save(Image.new("L", (300, 10), 0), tmp_path / "wide.png"), S)
    assert out.shape == (3, S, S)
    assert (out[:, 0, :] == 255).all() and (out[:, -1, :] == 255).all()  # white bands above and below
    middle = out[:, S // 2]
    assert (middle < 128).all()  # the dark strip still spans the whole width: nothing cut off left or right


def test_load_image_tall_image_is_padded_left_and_right(tmp_path):
    out = load_image(save(Image.new("L", (10, 300), 0), tmp_path / "tall.png"), S)
    assert (out[:, :, 0] == 255).all() and (out[:, :, -1] == 255).all()
    assert (out[:, :, S // 2] < 128).all()


def test_load_image_applies_exif_orientation(tmp_path):
    img = Image.new("L", (20, 10), 0)  # stored landscape ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... but tagged "rotate 90°": displayed portrait
    path = tmp_path / "rotated.png"
    img.save(path, exif=exif)
    out = load_image(path, S)
    assert (out[:, :, 0] == 255).all() and (out[:, 0, S // 2] == 0).all()  # padded at the sides, not top


# -- EngravingDataset -------------------------------------------------------------------------------

@pytest.fixture
def mixed_items(tmp_path):
    """Three good images and two unreadable ones (random bytes and zero bytes, both named .png)."""
    good = [
        (make_image(tmp_path / "a.png", color=(255, 255, 255)), "a white square"),
        (make_image(tmp_path / "b.png", mode="L", color=0), "a black square"),
        (make_image(tmp_path / "c.jpg", color=(200, 10, 10)), "a red square with a long caption here"),
    ]
    noise = tmp_path / "noise.png"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    items = [good[0], (noise, "noise"), good[1], (empty, "empty"), good[2]]
    return items, good, noise, empty


def build_dataset(items, max_len=8):
    tokenizer = CaptionTokenizer.build([c for _, c in items])[0]
    return EngravingDataset(items, tokenizer, S, max_len, num_workers=2), tokenizer


def test_dataset_skips_unreadable_files_with_a_warning_and_keeps_the_rest(mixed_items):
    items, good, noise, empty = mixed_items
    with pytest.warns(DataWarning) as record:
        ds, _ = build_dataset(items)
    messages = [str(w.message) for w in record if w.category is DataWarning]
    assert any(str(noise) in m and "unreadable" in m for m in messages)
    assert any(str(empty) in m and "unreadable" in m for m in messages)
    assert len(ds) == 3
    assert ds.paths == [str(p) for p, _ in good]  # the original order is kept
    assert ds.captions == [c for _, c in good]


def test_dataset_tensors_have_the_documented_shapes_and_dtypes(mixed_items):
    items, good, _, _ = mixed_items
    with pytest.warns(DataWarning):
        ds, tokenizer = build_dataset(items, max_len=8)
    assert ds.images.dtype == torch.uint8 and ds.images.shape == (3, 3, S, S)
    assert ds.tokens.dtype == torch.long and ds.tokens.shape == (3, 8)
    for row, (_, caption) in zip(ds.tokens, good):
        assert row.tolist() == tokenizer.encode(caption, 8)[0]


def test_dataset_images_match_their_files(mixed_items):
    items, _, _, _ = mixed_items
    with pytest.warns(DataWarning):
        ds, _ = build_dataset(items)
    assert (ds.images[0] == 255).all()  # white
    assert (ds.images[1] == 0).all()  # black
    assert ds.images[2, 0].float().mean() > 150 and ds.images[2, 1].float().mean() < 60  # red


def test_dataset_counts_captions_longer_than_max_len_minus_2(tmp_path):
    items = [(make_image(tmp_path / f"{i}.png"), caption) for i, caption in enumerate([
        "one two three four five six",  # 6 words: exactly fits max_len 8
        "one two three four five six seven",  # 7 words: cut
        "one two three four five six seven eight nine",  # cut
        "short",
    ])]
    ds, _ = build_dataset(items, max_len=8)
    assert ds.num_truncated == 2
    assert (ds.tokens[:, -1] == CaptionTokenizer.EOS).tolist() == [True, True, True, False]


def test_getitem_returns_a_float_image_in_0_1_and_the_tokens(mixed_items):
    items, _, _, _ = mixed_items
    with pytest.warns(DataWarning):
        ds, _ = build_dataset(items)
    image, tokens = ds[2]
    assert image.dtype == torch.float32 and image.shape == (3, S, S)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert torch.equal(image, ds.images[2].float() / 255)
    assert torch.equal(ds[0][0], torch.ones(3, S, S))
    assert torch.equal(tokens, ds.tokens[2])


def test_dataset_of_only_unreadable_files_is_empty_with_the_right_shapes(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.warns(DataWarning, match=named(bad)):
        ds, _ = build_dataset([(bad, "a caption")], max_len=6)
    assert len(ds) == 0
    assert ds.images.shape == (0, 3, S, S) and ds.images.dtype == torch.uint8
    assert ds.tokens.shape == (0, 6)


def test_dataset_of_a_truncated_png_skips_it(tmp_path):
    good = make_image(tmp_path / "good.png")
    full = make_image(tmp_path / "full.png", size=(64, 64), color=(1, 2, 3)).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.warns(DataWarning, match=named(cut)):
        ds, _ = build_dataset([(cut, "half a file"), (good, "whole")])
    assert ds.paths == [str(good)]


# -- BatchLoader -------------------------------------------------------------------------------------

def fake_dataset(n):
    """images and tokens carry their own index, so a batch shows which items it holds."""
    ids = torch.arange(n)
    return types.SimpleNamespace(images=ids.view(n, 1, 1, 1).to(torch.uint8), tokens=ids.view(n, 1))


def epoch(loader):
    batches = list(loader)
    for images, tokens in batches:
        assert torch.equal(images.view(-1).long(), tokens.view(-1))  # images and tokens stay aligned
    return [tokens.view(-1).tolist() for _, tokens in batches]


@pytest.mark.parametrize("n, batch_size, drop_last, expected", [
    (10, 4, True, 2), (10, 4, False, 3), (8, 4, True, 2), (8, 4, False, 2), (1, 4, False, 1), (0, 4, False, 0),
])
def test_batch_loader_len(n, batch_size, drop_last, expected):
    loader = BatchLoader(fake_dataset(n), torch.arange(n), batch_size, shuffle=False, drop_last=drop_last)
    assert len(loader) == expected
    assert len(list(loader)) == expected


def test_drop_last_with_fewer_items_than_a_batch_still_gives_one_batch():
    loader = BatchLoader(fake_dataset(3), torch.arange(3), 4, shuffle=True, drop_last=True, seed=0)
    assert len(loader) == 1
    assert sorted(epoch(loader)[0]) == [0, 1, 2]


def test_epoch_without_drop_last_yields_every_index_exactly_once():
    loader = BatchLoader(fake_dataset(10), torch.arange(10), 4, shuffle=True, drop_last=False, seed=3)
    batches = epoch(loader)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(sum(batches, [])) == list(range(10))


def test_epoch_with_drop_last_yields_full_batches_of_distinct_items():
    loader = BatchLoader(fake_dataset(10), torch.arange(10), 4, shuffle=True, drop_last=True, seed=3)
    batches = epoch(loader)
    assert [len(b) for b in batches] == [4, 4]
    assert len(set(sum(batches, []))) == 8


def test_loader_without_shuffle_follows_the_given_indices():
    loader = BatchLoader(fake_dataset(10), torch.tensor([7, 2, 5, 9, 0]), 2, shuffle=False, drop_last=False)
    assert epoch(loader) == [[7, 2], [5, 9], [0]]
    assert epoch(loader) == [[7, 2], [5, 9], [0]]


def test_shuffle_with_the_same_seed_gives_the_same_order():
    def make(seed):
        return BatchLoader(fake_dataset(20), torch.arange(20), 5, shuffle=True, drop_last=False, seed=seed)

    a, b, c = make(1), make(1), make(2)
    first_a, first_b, first_c = epoch(a), epoch(b), epoch(c)
    assert first_a == first_b
    assert epoch(a) == epoch(b)  # and so is the second epoch
    assert first_a != first_c
    assert sum(first_a, []) != list(range(20))  # it did shuffle


def test_two_epochs_give_different_orders():
    loader = BatchLoader(fake_dataset(20), torch.arange(20), 5, shuffle=True, drop_last=False, seed=1)
    first, second = epoch(loader), epoch(loader)
    assert first != second
    assert sorted(sum(first, [])) == sorted(sum(second, [])) == list(range(20))


# -- split_indices --------------------------------------------------------------------------------------

def test_split_is_deterministic_per_seed():
    t1, v1 = split_indices(50, 0.2, seed=7)
    t2, v2 = split_indices(50, 0.2, seed=7)
    t3, v3 = split_indices(50, 0.2, seed=8)
    assert torch.equal(t1, t2) and torch.equal(v1, v2)
    assert not torch.equal(v1, v3)


@pytest.mark.parametrize("n, fraction, n_val", [(50, 0.2, 10), (10, 0.1, 1), (7, 0.5, 4), (100, 0.05, 5)])
def test_split_is_disjoint_covers_everything_and_sizes_val_by_fraction(n, fraction, n_val):
    train, val = split_indices(n, fraction, seed=0)
    assert len(val) == n_val
    assert not set(train.tolist()) & set(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(n))


@pytest.mark.parametrize("n, fraction", [(2, 0.01), (2, 0.99), (3, 0.5), (10, 0.001), (10, 0.999), (1000, 1e-6)])
def test_split_keeps_at_least_one_item_on_each_side(n, fraction):
    train, val = split_indices(n, fraction, seed=0)
    assert len(val) >= 1 and len(train) >= 1
    assert len(train) + len(val) == n


def test_split_indices_feed_a_batch_loader():
    ds = fake_dataset(12)
    train, val = split_indices(12, 0.25, seed=0)
    loader = BatchLoader(ds, val, 8, shuffle=False, drop_last=False)
    assert epoch(loader) == [val.tolist()]


def test_a_loader_resumed_mid_epoch_yields_exactly_the_rest_of_that_epoch_then_the_same_next_epochs():
    """What a resume does with BatchLoader: restore the generator state the epoch's order was drawn from, skip
    the batches already done; the rest of that epoch and every later epoch are those of a loader never stopped."""
    whole = BatchLoader(fake_dataset(40), torch.arange(40), 4, shuffle=True, drop_last=True, seed=3)
    epochs = [epoch(whole) for _ in range(3)]

    first = BatchLoader(fake_dataset(40), torch.arange(40), 4, shuffle=True, drop_last=True, seed=3)
    batches = iter(first)
    seen = [next(batches)[1].view(-1).tolist() for _ in range(4)]  # stopped after 4 of 10 batches
    saved_state = first.epoch_rng_state.clone()

    resumed = BatchLoader(fake_dataset(40), torch.arange(40), 4, shuffle=True, drop_last=True, seed=999)
    resumed.generator.set_state(saved_state)
    resumed.skip = 4
    rest = epoch(resumed)
    assert seen + rest == epochs[0]
    assert [epoch(resumed), epoch(resumed)] == epochs[1:]
    assert resumed.skip == 0  # the skip applies to one epoch only


def test_validation_means_weight_every_item_once_with_a_smaller_last_batch():
    """10 items in batches of 4, 4, 2: the mean of per-batch means would weight the last two items double."""
    from train_wandb import MetricWindow
    values = torch.arange(10, dtype=torch.float32)
    window = MetricWindow()
    loader = BatchLoader(fake_dataset(10), torch.arange(10), 4, shuffle=False, drop_last=False)
    sizes = []
    for _, tokens in loader:
        batch = values[tokens.view(-1)]
        sizes.append(len(batch))
        window.add({"loss_total": batch.mean()}, weight=len(batch))
    assert sizes == [4, 4, 2]
    assert window.means()["loss_total"] == pytest.approx(values.mean().item())  # 4.5, not (1.5+5.5+8.5)/3


@pytest.mark.parametrize("batch_size, warned", [(64, True), (36, False)])
def test_a_batch_larger_than_the_training_split_is_named(make_engravings, batch_size, warned):
    """40 items, 36 of them for training: a batch of 64 silently became one step of 36 an epoch."""
    import warnings

    import train_wandb
    cfg, _, _ = train_wandb.parse_args(["--preset=quick", "--image_size=32", f"--batch_size={batch_size}",
                                        f"--data_dir={make_engravings(40, 32)}", "--cache_dir="])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = train_wandb.build_data(cfg, torch.device("cpu"))
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(data.train_loader) == 1
    assert any(f"batch_size={batch_size} is more than the 36 training items" in m for m in messages) == warned
