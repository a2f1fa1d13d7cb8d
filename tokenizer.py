"""The caption tokenizer: words and punctuation of the captions, with <pad> <bos> <eos> <unk> specials. train_wandb.py
builds it from the training split and saves it in every checkpoint; sample.py reads it back from there."""

import re
import unicodedata
from collections import Counter


class CaptionTokenizer:
    """Word-level tokenizer built from the captions, with <pad> <bos> <eos> <unk> specials."""

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    PAD, BOS, EOS, UNK = range(4)

    def __init__(self, words):
        self.itos = list(self.SPECIALS) + [w for w in words if w not in self.SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    @staticmethod
    def split(text):
        """Lower-cased words (apostrophes kept inside a word) and single punctuation marks, of the text in Unicode's
        NFC form: "café" typed on macOS (NFD: e + a combining accent) is the same word as anywhere else."""
        return re.findall(r"\w+(?:['’]\w+)*|[^\w\s]", unicodedata.normalize("NFC", text).lower())

    @classmethod
    def build(cls, captions):
        """-> (tokenizer, word counts); words are ordered by frequency, then alphabetically."""
        counts = Counter(word for caption in captions for word in cls.split(caption))
        words = sorted(counts, key=lambda w: (-counts[w], w))
        return cls(words), counts

    def encode(self, text, max_len):
        """-> (max_len token ids: <bos> words <eos> <pad>..., whether words were cut off)."""
        ids = [self.stoi.get(w, self.UNK) for w in self.split(text)]
        truncated = len(ids) > max_len - 2
        ids = [self.BOS] + ids[: max_len - 2] + [self.EOS]
        return ids + [self.PAD] * (max_len - len(ids)), truncated

    def decode(self, ids):
        words = []
        for i in ids:
            if i == self.EOS:
                break
            if i not in (self.PAD, self.BOS):
                words.append(self.itos[i])
        return " ".join(words)

    def state_dict(self):
        return {"itos": list(self.itos)}

    @classmethod
    def from_state_dict(cls, state):
        return cls(state["itos"][len(cls.SPECIALS):])
