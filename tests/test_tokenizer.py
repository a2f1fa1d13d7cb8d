"""CaptionTokenizer: specials, vocabulary order, splitting, encode/decode, checkpoint state."""
import json
from collections import Counter

import pytest
import torch

from tokenizer import CaptionTokenizer

CAPTIONS = ["The cat sat.", "the dog sat", "A dog, the end"]


@pytest.fixture
def tok():
    return CaptionTokenizer.build(CAPTIONS)[0]


def test_specials_are_ids_0_to_3_in_order():
    tok = CaptionTokenizer([])
    assert tok.itos == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (tok.PAD, tok.BOS, tok.EOS, tok.UNK) == (0, 1, 2, 3)
    assert [tok.stoi[s] for s in CaptionTokenizer.SPECIALS] == [0, 1, 2, 3]
    assert len(tok) == 4


def test_words_follow_the_specials_and_specials_are_not_repeated():
    tok = CaptionTokenizer(["ship", "<unk>", "sea", "<pad>"])
    assert tok.itos == ["<pad>", "<bos>", "<eos>", "<unk>", "ship", "sea"]
    assert tok.stoi["<unk>"] == 3 and tok.stoi["ship"] == 4


def test_build_orders_words_by_frequency_then_alphabetically():
    tok, _ = CaptionTokenizer.build(CAPTIONS)
    # the: 3, dog: 2, sat: 2, then the words seen once in alphabetical order (punctuation sorts first)
    assert tok.itos[4:] == ["the", "dog", "sat", ",", ".", "a", "cat", "end"]


def test_build_returns_the_word_counts():
    _, counts = CaptionTokenizer.build(CAPTIONS)
    assert counts == Counter({"the": 3, "dog": 2, "sat": 2, "cat": 1, "a": 1, "end": 1, ".": 1, ",": 1})


def test_build_of_no_captions_has_only_specials():
    tok, counts = CaptionTokenizer.build([])
    assert len(tok) == 4 and not counts


@pytest.mark.parametrize("text, words", [
    ("A Ship AT Sea", ["a", "ship", "at", "sea"]),
    ("A ship, at sea!", ["a", "ship", ",", "at", "sea", "!"]),
    ("(left) figure.", ["(", "left", ")", "figure", "."]),
    ("well--known", ["well", "-", "-", "known"]),
    ("the king's ship", ["the", "king's", "ship"]),  # an apostrophe inside a word stays in it
    ("'quoted'", ["'", "quoted", "'"]),
    ("plate 12, 1850s", ["plate", "12", ",", "1850s"]),
    ("  spaced\tout\nlines  ", ["spaced", "out", "lines"]),
    ("", []),
])
def test_split_lower_cases_and_separates_punctuation(text, words):
    assert CaptionTokenizer.split(text) == words


def test_split_keeps_accented_letters_inside_a_word():
    # the docstring promises words and *punctuation* marks; an accented letter is neither a mark nor a word break
    assert CaptionTokenizer.split("Dürer's café") == ["dürer's", "café"]


def test_encode_is_bos_words_eos_then_pad_to_max_len(tok):
    ids, truncated = tok.encode("the cat", 6)
    assert ids == [tok.BOS, tok.stoi["the"], tok.stoi["cat"], tok.EOS, tok.PAD, tok.PAD]
    assert truncated is False


@pytest.mark.parametrize("text", ["", "the", "the dog sat", "the dog sat the dog sat the dog sat"])
@pytest.mark.parametrize("max_len", [3, 5, 8])
def test_encode_always_gives_exactly_max_len_ids(tok, text, max_len):
    ids, _ = tok.encode(text, max_len)
    assert len(ids) == max_len
    assert ids[0] == tok.BOS and tok.EOS in ids


def test_encode_exact_fit_is_not_truncated(tok):
    ids, truncated = tok.encode("the dog sat", 5)
    assert ids == [tok.BOS, tok.stoi["the"], tok.stoi["dog"], tok.stoi["sat"], tok.EOS]
    assert truncated is False


def test_encode_truncation_keeps_eos_last_and_reports_it(tok):
    ids, truncated = tok.encode("the dog sat on the cat", 5)
    assert ids == [tok.BOS, tok.stoi["the"], tok.stoi["dog"], tok.stoi["sat"], tok.EOS]
    assert truncated is True


def test_encode_counts_punctuation_as_tokens_for_truncation(tok):
    _, truncated = tok.encode("the dog.", 4)  # 'the' 'dog' '.' are three tokens, only two fit
    assert truncated is True


def test_empty_caption_encodes_to_bos_eos(tok):
    ids, truncated = tok.encode("", 4)
    assert ids == [tok.BOS, tok.EOS, tok.PAD, tok.PAD] and truncated is False


def test_unknown_words_map_to_unk(tok):
    ids, _ = tok.encode("the zebra sat", 6)
    assert ids[1:4] == [tok.stoi["the"], tok.UNK, tok.stoi["sat"]]
    assert tok.decode(ids) == "the <unk> sat"


def test_decode_of_encode_round_trips_a_lower_case_caption(tok):
    caption = "a dog sat the end"
    assert tok.decode(tok.encode(caption, 12)[0]) == caption


def test_decode_stops_at_eos_and_skips_bos_and_pad(tok):
    ids = [tok.BOS, tok.stoi["the"], tok.PAD, tok.stoi["dog"], tok.EOS, tok.stoi["cat"], tok.PAD]
    assert tok.decode(ids) == "the dog"


def test_decode_accepts_a_tensor_row(tok):
    ids = torch.tensor(tok.encode("the cat sat", 8)[0])  # e.g. one row of EngravingDataset.tokens
    assert tok.decode(ids) == "the cat sat"


def test_state_dict_round_trips_identically(tok):
    restored = CaptionTokenizer.from_state_dict(tok.state_dict())
    assert restored.itos == tok.itos
    assert restored.stoi == tok.stoi
    assert restored.encode("the zebra, the cat", 9) == tok.encode("the zebra, the cat", 9)


def test_state_dict_is_a_copy(tok):
    state = tok.state_dict()
    state["itos"].append("extra")
    assert "extra" not in tok.itos


def test_state_dict_is_json_serialisable(tok):
    state = tok.state_dict()
    assert json.loads(json.dumps(state)) == state


def test_state_dict_survives_torch_save_and_weights_only_load(tok, tmp_path):
    path = tmp_path / "tokenizer.pt"
    torch.save({"tokenizer": tok.state_dict()}, path)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    assert CaptionTokenizer.from_state_dict(loaded["tokenizer"]).itos == tok.itos
