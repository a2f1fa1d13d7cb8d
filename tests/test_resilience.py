"""W&B failures and hostile images never stop training."""

import inspect

import pytest
from PIL import Image

from data.imagefolder import DataWarning
from logger import NullLogger, RunLogger
from tokenizer import CaptionTokenizer
from train_wandb import EngravingDataset


class FlakyRun:
    """Stands in for a W&B run whose server dies after the first log call."""

    def __init__(self):
        self.logged, self.summary_updates = [], []
        self.id = "abc123"

    def define_metric(self, *args, **kwargs):
        pass

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
    logger = RunLogger(FlakyRun(), "offline")
    logger.log({"a": 1})
    logger.log({"a": 2})  # fails: reported, not raised
    logger.log({"a": 3})  # skipped
    logger.summary({"best_val_loss": 1.0})  # skipped too
    err = capsys.readouterr().err
    assert err.count("warning: W&B log failed (ConnectionError: server went away)") == 1
    assert "metrics.csv" in err
    assert logger.failed and logger.run.logged == [{"a": 1}] and logger.run.summary_updates == []
    assert logger.history == [{"a": 1}, {"a": 2}, {"a": 3}]  # the local history keeps every row
    assert logger.run_id == "abc123"


def test_a_working_run_is_passed_through_untouched():
    logger = RunLogger(FlakyRun(), "offline")
    logger.summary({"x": 1})
    logger.log({"a": 1})
    assert not logger.failed and logger.run.summary_updates == [{"x": 1}] and logger.run.logged == [{"a": 1}]


class AlertingRun(FlakyRun):
    """A run that keeps the alerts sent to it."""

    def __init__(self):
        super().__init__()
        self.alerts = []

    def alert(self, **kwargs):
        self.alerts.append(kwargs)


def test_an_info_finding_is_printed_as_info_and_sent_as_no_alert_while_a_warning_is_a_warn_alert(capsys):
    from health import Finding

    run = AlertingRun()
    logger = RunLogger(run, "offline")
    logger.alert(Finding("overfitting", "generalization_gap", "info", 700, "gap +27%", "none"), 10)
    err = capsys.readouterr().err
    assert err.startswith("info [overfitting/generalization_gap] step 700") and "warning" not in err
    assert run.alerts == [] and run.summary_updates == [{"health/findings/generalization_gap": "gap +27%"}]
    logger.alert(Finding("overfitting", "val_rising", "warning", 900, "rose", "stop"), 10)
    assert capsys.readouterr().err.startswith("warning [overfitting/val_rising] step 900")
    assert [a["title"] for a in run.alerts] == ["health: val_rising"]  # an action with no Config field: the code
    assert str(run.alerts[0]["level"]).upper().endswith("WARN")


def test_alerts_are_rate_limited_per_cause_not_per_rule(capsys):
    """Two rules that advise the same field (a learning rate far too small stalls the loss and stops z growing)
    are one alert; another cause is alerted at once; a finding of the first cause after the interval is again."""
    from health import Finding

    run = AlertingRun()
    logger = RunLogger(run, "offline")
    lr = "raise learning_rate from 1e-06 to 1e-05"
    logger.alert(Finding("training_health", "not_learning", "warning", 288, "flat", lr), 10)
    logger.alert(Finding("latent_space", "latent_not_growing", "warning", 300, "z flat", lr + " (objects)"), 10)
    logger.alert(Finding("overfitting", "overfitting", "warning", 310, "gap", "raise weight_decay from 0.05 to 0.1"),
                 10)
    assert [a["title"] for a in run.alerts] == ["health: learning_rate", "health: weight_decay"]
    assert run.alerts[0]["text"].startswith("training_health/not_learning: flat")
    assert capsys.readouterr().err.count("warning [") == 3  # every finding is still printed
    logger.alerted["learning_rate"] -= 11 * 60  # the interval has passed
    logger.alert(Finding("latent_space", "latent_not_growing", "warning", 900, "z flat", lr), 10)
    assert [a["title"] for a in run.alerts][-1] == "health: learning_rate" and len(run.alerts) == 3


def public_methods(cls):
    return {name: inspect.signature(getattr(cls, name)) for name in dir(cls)
            if not name.startswith("_") and callable(getattr(cls, name))}


def test_the_no_op_logger_answers_every_method_of_the_real_one_and_does_nothing():
    """Other ranks get a NullLogger: the Trainer calls RunLogger's methods on it, and they do nothing."""
    real, null = public_methods(RunLogger), NullLogger()
    assert {"log", "summary", "add_config", "alert", "log_visuals", "log_model", "finish", "progress"} <= set(real)
    for name in real:
        assert callable(getattr(null, name)), name
    assert null.summary({"a": 1}) is None and null.finish({}, "finished", {}, {}, 3, 0) is None
    null.log({"global_step": 1})
    assert null.history == [{"global_step": 1}]  # kept: the checkpoint holds it
    assert list(null.progress([1, 2])) == [1, 2]
    with pytest.raises(AttributeError):
        null.no_such_method  # noqa: B018  a name RunLogger lacks is a bug, not a call to swallow
    assert (null.run_id, null.location, null.wants_media) == (None, None, False)


def test_a_decompression_bomb_is_skipped_with_a_warning(tmp_path, monkeypatch):
    Image.new("RGB", (64, 64), "white").save(tmp_path / "bomb.png")
    Image.new("RGB", (8, 8), "white").save(tmp_path / "fine.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64*64 > 2x the limit: PIL refuses to decode it
    tokenizer, _ = CaptionTokenizer.build(["a bomb", "a fine picture"])
    items = [(tmp_path / "bomb.png", "a bomb"), (tmp_path / "fine.png", "a fine picture")]
    with pytest.warns(DataWarning, match=r"bomb\.png: unreadable image \(DecompressionBombError"):
        dataset = EngravingDataset(items, tokenizer, image_size=16, max_caption_len=8, num_workers=1)
    assert dataset.captions == ["a fine picture"] and tuple(dataset.images.shape) == (1, 3, 16, 16)


# -- the background checkpoint writer -----------------------------------------------------------

def test_checkpoint_writer_saves_a_snapshot_that_later_training_cannot_change(tmp_path):
    import torch

    from checkpoints import CheckpointWriter

    weights = torch.zeros(4)
    state = {"model": {"w": weights}, "history": [{"train/loss": 1.0}], "step": 3}
    writer = CheckpointWriter()
    writer.submit(state, tmp_path / "last.pt")
    weights.add_(1.0)  # training goes on while the file is written
    state["history"].append({"train/loss": 0.5})
    writer.wait()
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert torch.equal(saved["model"]["w"], torch.zeros(4))
    assert saved["history"] == [{"train/loss": 1.0}] and saved["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_checkpoint_writer_keeps_one_write_in_flight_and_the_last_one_wins(tmp_path):
    import torch

    from checkpoints import CheckpointWriter

    writer = CheckpointWriter()
    addresses = set()
    for step in range(5):
        writer.submit({"step": step, "w": torch.full((1000,), float(step))}, tmp_path / "last.pt")
        addresses.add(writer.buffers[0].data_ptr())
    writer.wait()
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["step"] == 4 and saved["w"][0].item() == 4.0
    assert len(addresses) == 1  # the host buffer is reused, not allocated again for every save
    writer.submit({"w": torch.zeros(3)}, tmp_path / "last.pt")  # another shape: a new buffer
    writer.wait()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["w"].shape == (3,)


def test_a_failed_background_write_raises_in_the_training_thread(tmp_path):
    import torch

    from checkpoints import CheckpointWriter

    writer = CheckpointWriter()
    writer.submit({"w": torch.zeros(2)}, tmp_path / "missing-folder" / "last.pt")
    with pytest.raises(FileNotFoundError, match="missing-folder"):  # the file system's error, naming the folder
        writer.wait()
    writer.wait()  # reported once; the writer is usable again
    writer.submit({"w": torch.ones(2)}, tmp_path / "last.pt")
    writer.wait()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["w"].sum().item() == 2.0
