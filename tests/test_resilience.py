"""W&B failures and hostile images never stop training."""

import pytest
from PIL import Image

from train_wandb import CaptionTokenizer, DataWarning, EngravingDataset, ResilientRun


class FlakyRun:
    """Stands in for a W&B run whose server dies after the first log call."""

    def __init__(self):
        self.logged, self.summary_updates = [], []
        self.id = "abc123"

    def log(self, row):
        if self.logged:
            raise ConnectionError("server went away")
        self.logged.append(row)

    @property
    def summary(self):
        run = self

        class Summary:
            def update(self, values):
                run.summary_updates.append(values)
        return Summary()


def test_a_failing_wandb_call_warns_once_and_later_calls_are_skipped(capsys):
    run = ResilientRun(FlakyRun())
    run.log({"a": 1})
    run.log({"a": 2})  # fails: reported, not raised
    run.log({"a": 3})  # skipped
    run.set_summary({"best_val_loss": 1.0})  # skipped too
    err = capsys.readouterr().err
    assert err.count("warning: W&B log failed (ConnectionError: server went away)") == 1
    assert "metrics.csv" in err
    assert run.failed and run._run.logged == [{"a": 1}] and run._run.summary_updates == []
    assert run.id == "abc123"  # plain attributes still read through


def test_a_working_run_is_passed_through_untouched():
    run = ResilientRun(FlakyRun())
    run.set_summary({"x": 1})
    run.log({"a": 1})
    assert not run.failed and run._run.summary_updates == [{"x": 1}]


def test_a_decompression_bomb_is_skipped_with_a_warning(tmp_path, monkeypatch):
    Image.new("RGB", (64, 64), "white").save(tmp_path / "bomb.png")
    Image.new("RGB", (8, 8), "white").save(tmp_path / "fine.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64*64 > 2x the limit: PIL refuses to decode it
    tokenizer, _ = CaptionTokenizer.build(["a bomb", "a fine picture"])
    items = [(tmp_path / "bomb.png", "a bomb"), (tmp_path / "fine.png", "a fine picture")]
    with pytest.warns(DataWarning, match=r"bomb\.png: unreadable image \(DecompressionBombError"):
        dataset = EngravingDataset(items, tokenizer, image_size=16, max_caption_len=8, num_workers=1)
    assert dataset.captions == ["a fine picture"] and tuple(dataset.images.shape) == (1, 3, 16, 16)
