"""What find_items reads: only files inside data_dir, each once, and every row it cannot use named in a warning."""
import builtins
import json
import os
import unicodedata
from pathlib import Path

import pytest
import torch
from PIL import Image

from data.imagefolder import DataError, DataWarning, find_items, read_metadata
from tokenizer import CaptionTokenizer
from train_wandb import EngravingDataset, check_shards


def image(path, color=(0, 0, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def skipped(data_dir):
    """-> (items, the text of every DataWarning), with no exception."""
    with pytest.warns(DataWarning) as caught:
        items = find_items(data_dir)
    return items, [str(w.message) for w in caught]


@pytest.fixture
def collection(tmp_path):
    """data/ with one good image, and a private image beside data/ that no row may reach."""
    data = tmp_path / "data"
    image(data / "good.png")
    secret = image(tmp_path / "private" / "secret.png", (255, 0, 0))
    return data, secret


@pytest.mark.parametrize("row", ["../private/secret.png", "ABSOLUTE"])
def test_a_metadata_row_leading_out_of_data_dir_is_named_and_skipped(collection, row):
    data, secret = collection
    file_name = str(secret) if row == "ABSOLUTE" else row
    jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": "a good one"},
                                    {"file_name": file_name, "text": "a secret"}])
    items, messages = skipped(data)
    assert items == [(data / "good.png", "a good one")]
    (message,) = messages
    assert f"leads to {secret}, outside {data}" in message


def test_a_symlink_leading_out_of_data_dir_is_skipped_in_the_metadata_layout(collection):
    data, secret = collection
    (data / "link.png").symlink_to(secret)
    jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": "a good one"},
                                    {"file_name": "link.png", "text": "a secret"}])
    items, messages = skipped(data)
    assert [p.name for p, _ in items] == ["good.png"]
    assert any(m.startswith(str(data / "link.png")) and "outside" in m for m in messages)


def test_a_symlink_leading_out_of_data_dir_is_skipped_in_the_caption_file_layout(collection):
    data, secret = collection
    (data / "good.txt").write_text("a good one")
    (data / "link.png").symlink_to(secret)
    (data / "link.txt").write_text("a secret")
    items, messages = skipped(data)
    assert items == [(data / "good.png", "a good one")]
    (message,) = messages
    assert message.startswith(str(data / "link.png")) and f"leads to {secret}" in message


def test_a_caption_file_linked_from_outside_data_dir_is_not_read(collection, tmp_path):
    data, _ = collection
    (data / "good.txt").write_text("a good one")
    image(data / "other.png")
    (tmp_path / "private" / "notes.txt").write_text("private notes")
    (data / "other.txt").symlink_to(tmp_path / "private" / "notes.txt")
    items, messages = skipped(data)
    assert items == [(data / "good.png", "a good one")]
    assert "private notes" not in repr(items) and "other.txt: a link to" in messages[0]


def test_a_metadata_file_linked_from_outside_data_dir_is_not_read(collection, tmp_path):
    data, _ = collection
    jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": "a good one"}])
    jsonl(tmp_path / "private" / "metadata.jsonl", [{"file_name": "../../data/good.png", "text": "planted"}])
    (data / "sub").mkdir()
    (data / "sub" / "metadata.jsonl").symlink_to(tmp_path / "private" / "metadata.jsonl")
    items, messages = skipped(data)
    assert items == [(data / "good.png", "a good one")]
    assert any("sub" in m and "outside" in m and "not read" in m for m in messages)


def test_a_symlink_that_stays_inside_data_dir_is_kept(collection):
    data, _ = collection
    image(data / "originals" / "real.png", (0, 0, 255))
    (data / "link.png").symlink_to(Path("originals") / "real.png")
    jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": "a good one"},
                                    {"file_name": "link.png", "text": "a blue one"}])
    assert find_items(data) == [(data / "good.png", "a good one"), (data / "link.png", "a blue one")]


def test_a_loop_of_symlinks_is_named_and_skipped(collection):
    data, _ = collection
    (data / "a.png").symlink_to("b.png")
    (data / "b.png").symlink_to("a.png")
    jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": "a good one"},
                                    {"file_name": "a.png", "text": "a loop"}])
    items, messages = skipped(data)
    assert [p.name for p, _ in items] == ["good.png"]
    assert any(m.startswith(str(data / "a.png")) and "loop" in m for m in messages)


@pytest.mark.parametrize("second", ["./good.png", "sub/../good.png"])
def test_a_second_name_of_the_same_file_is_named_and_skipped(collection, second):
    data, _ = collection
    (data / "sub").mkdir()
    jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": "a good one"},
                                    {"file_name": second, "text": "the same again"}])
    items, messages = skipped(data)
    assert items == [(data / "good.png", "a good one")]
    (message,) = messages
    assert f"{second!r} in metadata.jsonl is the same file as 'good.png' in metadata.jsonl" in message


def test_a_duplicate_whose_first_row_was_unusable_is_kept(collection):
    data, _ = collection
    jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": ""},
                                    {"file_name": "./good.png", "text": "captioned the second time"}])
    items, messages = skipped(data)
    assert items == [(data / "good.png", "captioned the second time")]
    assert len(messages) == 1 and "empty caption" in messages[0]


def test_an_internal_symlink_to_an_image_already_taken_is_a_duplicate_in_the_caption_file_layout(collection):
    data, _ = collection
    (data / "good.txt").write_text("a good one")
    (data / "twin.png").symlink_to("good.png")
    (data / "twin.txt").write_text("a twin")
    items, messages = skipped(data)
    assert items == [(data / "good.png", "a good one")]
    assert "the same file as 'good.png' in good.txt" in messages[0]


@pytest.fixture
def unreadable(monkeypatch):
    """unreadable(path): opening that file raises PermissionError, as chmod 000 does (but also for root)."""
    blocked = set()
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) in blocked:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    real_read_text = Path.read_text

    def guarded_read_text(path, *args, **kwargs):
        if path in blocked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(Path, "read_text", guarded_read_text)
    return blocked.add


@pytest.mark.parametrize("name", ["metadata.jsonl", "metadata.csv"])
def test_an_unreadable_metadata_file_is_named_and_the_others_are_read(collection, unreadable, name):
    data, _ = collection
    image(data / "sub" / "b.png")
    jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": "a good one"}])
    if name == "metadata.csv":
        (data / "sub" / name).write_text("file_name,text\nb.png,a blocked one\n")
    else:
        jsonl(data / "sub" / name, [{"file_name": "b.png", "text": "a blocked one"}])
    unreadable(data / "sub" / name)
    items, messages = skipped(data)
    assert items == [(data / "good.png", "a good one")]
    assert f"{data / 'sub' / name}: cannot be read (PermissionError: Permission denied)" in messages[0]
    assert "1 images" in messages[1]  # b.png, named only in the unreadable file, is counted too


def test_an_unreadable_caption_file_is_named_and_its_image_skipped(collection, unreadable):
    data, _ = collection
    (data / "good.txt").write_text("a good one")
    image(data / "locked.png")
    (data / "locked.txt").write_text("a locked one")
    unreadable(data / "locked.txt")
    items, messages = skipped(data)
    assert items == [(data / "good.png", "a good one")]
    (message,) = messages
    assert message.startswith(f"{data / 'locked.txt'}: cannot be read (PermissionError") and "locked.png" in message


def test_a_short_csv_row_is_named_with_its_line_and_the_rest_kept(collection):
    data, _ = collection
    image(data / "other.png")
    (data / "metadata.csv").write_text("file_name,text\ngood.png\nother.png,another one\n")
    items, messages = skipped(data)
    assert items == [(data / "other.png", "another one")]
    assert any(m.startswith(f"{data / 'metadata.csv'}:2: fewer fields") for m in messages)


def test_a_csv_field_over_the_size_limit_is_named_and_the_rest_kept(collection, monkeypatch):
    import csv
    data, _ = collection
    image(data / "other.png")
    (data / "metadata.csv").write_text("file_name,text\ngood.png," + "x" * 200 + "\nother.png,another one\n")
    limit = csv.field_size_limit(100)
    try:
        items, messages = skipped(data)
    finally:
        csv.field_size_limit(limit)
    assert items == [(data / "other.png", "another one")]
    assert any("malformed CSV" in m and "field larger than field limit" in m for m in messages)


@pytest.mark.parametrize("layout", ["jsonl", "csv"])
def test_a_nul_character_in_a_file_name_is_named_and_skipped(collection, layout):
    data, _ = collection
    if layout == "jsonl":
        jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": "a good one"},
                                        {"file_name": "bad\u0000.png", "text": "a NUL"}])
    else:
        (data / "metadata.csv").write_text("file_name,text\ngood.png,a good one\nbad\0.png,a NUL\n")
    items, messages = skipped(data)
    assert items == [(data / "good.png", "a good one")]
    (message,) = messages
    line = 2 if layout == "jsonl" else 3  # the CSV's header is its line 1
    assert f"metadata.{layout}:{line}: file name 'bad\\x00.png' holds a NUL character" in message


def test_the_other_readers_of_metadata_see_the_same_skipped_rows(collection):
    """read_metadata is shared with ceiling.py and diagnose.py: a NUL or a short row never reaches them."""
    data, _ = collection
    (data / "metadata.csv").write_text("file_name,text\ngood.png,a good one\nbad\0.png,a NUL\nshort.png\n")
    with pytest.warns(DataWarning):
        assert read_metadata(data / "metadata.csv") == [("good.png", "a good one", None)]


# -- captions in any Unicode normal form ----------------------------------------------------------

NFC = "un café à Orléans"
NFD = unicodedata.normalize("NFD", NFC)


def test_an_nfd_caption_is_tokenised_as_its_nfc_form():
    assert NFD != NFC  # the test means something: the two spell the accents differently
    tokenizer, counts = CaptionTokenizer.build([NFC, NFD])
    assert CaptionTokenizer.split(NFD) == CaptionTokenizer.split(NFC) == ["un", "café", "à", "orléans"]
    assert counts["café"] == 2 and len(tokenizer) == len(CaptionTokenizer.SPECIALS) + 4
    assert tokenizer.encode(NFD, 8) == tokenizer.encode(NFC, 8)


def test_nfd_and_nfc_captions_of_a_collection_give_the_same_token_ids(collection):
    data, _ = collection
    image(data / "mac.png")
    jsonl(data / "metadata.jsonl", [{"file_name": "good.png", "text": NFC}, {"file_name": "mac.png", "text": NFD}])
    items = find_items(data)
    tokenizer, _ = CaptionTokenizer.build([text for _, text in items])
    dataset = EngravingDataset(items, tokenizer, image_size=8, max_caption_len=8, num_workers=1)
    assert torch.equal(dataset.tokens[0], dataset.tokens[1])
    assert CaptionTokenizer.UNK not in dataset.tokens[1].tolist()


# -- torchrun: every process needs training items ----------------------------------------------------

def test_fewer_training_items_than_processes_is_a_one_line_data_error():
    with pytest.raises(DataError) as error:
        check_shards(train_items=3, world_size=4)
    message = str(error.value)
    assert "\n" not in message and "3 training items for 4 processes" in message and "--nproc_per_node" in message


@pytest.mark.parametrize("items, world_size", [(4, 4), (5, 4), (1, 1)])
def test_at_least_one_training_item_per_process_passes(items, world_size):
    check_shards(items, world_size)
