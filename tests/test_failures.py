"""A run that fails says so: status `failed: <type>: <message>`, exit status 1, one console line, the traceback in
out_dir/error.log, the report written and the W&B run closed with exit code 1; no partial file is left behind."""
import errno
import io
import json
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import checkpoints
import durable
import report
import train_wandb
from data.imagefolder import CacheWarning
from durable import write_atomic
from logger import RunLogger
from tokenizer import CaptionTokenizer
from train_wandb import (
    ConfigError,
    EngravingDataset,
    RunFailed,
    check_out_dir,
    main,
    parse_args,
)

FULL_DISK = "[Errno 28] No space left on device"


@pytest.fixture(scope="module")
def engravings(make_engravings):
    """24 engravings at 16 px: one epoch of a tiny model takes seconds."""
    return make_engravings(24, 16)


@pytest.fixture
def run(engravings, tmp_path, monkeypatch):
    """run(*args) -> (exit status, stderr, out_dir): main() in this process, one epoch of a tiny model with W&B
    disabled; every W&B call the logger makes is recorded in run.calls as (name, kwargs)."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() sets its own
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}  # main() installs its own
    calls = []
    real_call = RunLogger.call

    def recorded(self, name, *args, **kwargs):
        calls.append((name, kwargs))
        return real_call(self, name, *args, **kwargs)

    monkeypatch.setattr(RunLogger, "call", recorded)
    out = tmp_path / "out"

    def run_main(*args):
        status = main([f"--data_dir={engravings}", f"--out_dir={out}", "--preset=quick", "--image_size=16",
                       "--batch_size=8", "--num_epochs=1", "--log_frequency=1", "--mode=disabled", "--cache_dir=",
                       "--num_workers=1", *args])
        return status, out

    run_main.calls = calls
    yield run_main
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def one_error_line(err):
    """The console's stderr holds one error line and no traceback. -> that line."""
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def test_a_checkpoint_write_that_fills_the_disk_fails_the_run_and_says_so(run, monkeypatch, capsys):
    def full_disk(obj, f, *args, **kwargs):
        f.write(b"the first bytes of a checkpoint")  # a partial temporary file, as a full disk leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    status, out = run()
    err = capsys.readouterr().err
    assert status == 1
    line = one_error_line(err)
    assert line == f"error: the run failed: OSError: {FULL_DISK} (traceback in {out / 'error.log'})"
    log = (out / "error.log").read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in log and "full_disk" in log and FULL_DISK in log
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == f"failed: OSError: {FULL_DISK}"
    assert f"failed: OSError: {FULL_DISK}" in (out / "report.md").read_text(encoding="utf-8")
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # the partial write is gone
    assert not (out / "last.pt").exists()
    assert ("finish", {"exit_code": 1}) in run.calls


def test_an_error_inside_the_training_step_fails_the_run_with_its_type_and_message(run, monkeypatch, capsys):
    real_step = train_wandb.Trainer.train_step

    def second_step_fails(self, *args):
        if self.step == 1:
            raise ValueError("a bug in step 2")
        return real_step(self, *args)

    monkeypatch.setattr(train_wandb.Trainer, "train_step", second_step_fails)
    status, out = run()
    line = one_error_line(capsys.readouterr().err)
    assert status == 1 and "ValueError: a bug in step 2" in line and str(out / "error.log") in line
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "failed: ValueError: a bug in step 2" and summary["steps"] == 1
    assert ("finish", {"exit_code": 1}) in run.calls


def test_a_report_that_cannot_be_written_fails_the_run_and_closes_the_wandb_run_as_failed(run, monkeypatch, capsys):
    real_write = report._write_text

    def no_report(path, render):
        if path.name == "report.md":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, render)

    monkeypatch.setattr(report, "_write_text", no_report)
    status, out = run()
    err = capsys.readouterr().err
    line = one_error_line(err)
    assert status == 1 and "ReportError: report.md could not be written" in line
    assert f"warning: report: report.md failed (OSError: {FULL_DISK})" in err  # what went wrong, named before
    assert (out / "summary.json").exists() and (out / "metrics.csv").exists() and not (out / "report.md").exists()
    assert ("finish", {"exit_code": 1}) in run.calls


def test_a_run_that_ends_well_exits_0_and_closes_the_wandb_run_with_exit_code_0(run, capsys):
    status, out = run("--max_steps=1")
    assert status == 0 and "error:" not in capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text(encoding="utf-8"))["status"] == "stopped at max_steps=1"
    assert ("finish", {"exit_code": 0}) in run.calls and not (out / "error.log").exists()


def test_an_unexpected_error_at_start_up_is_one_line_with_the_traceback_in_error_log(run, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("model_config")

    monkeypatch.setattr(train_wandb, "build_trainer", broken)
    with pytest.raises(RunFailed) as failure:
        run()
    message = str(failure.value)
    assert "\n" not in message and message.startswith("the run failed: KeyError: 'model_config' (traceback in ")
    log = Path(message.split("traceback in ")[1].rstrip(")"))
    assert log.name == "error.log" and "raise KeyError" in log.read_text(encoding="utf-8")
    assert ("finish", {"exit_code": 1}) in run.calls  # the W&B run, already started, is closed as failed


def test_an_error_log_that_cannot_be_written_is_said_in_the_same_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("where out_dir should be")
    line = train_wandb.failure_line(blocker / "out", OSError(errno.ENOSPC, "No space left on device"))
    assert line == (f"the run failed: OSError: {FULL_DISK} (its traceback could not be written to "
                    f"{blocker / 'out' / 'error.log'}: Not a directory)")


# -- start-up checks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("size, patch", [(8, 8), (4, 4), (10, 2)])
def test_an_image_size_below_the_ssim_window_is_a_one_line_config_error(size, patch):
    with pytest.raises(ConfigError, match=rf"^--image_size={size}: must be at least 11 \(the SSIM measure's window\)$"):
        parse_args([f"--image_size={size}", f"--patch_size={patch}"])
    parse_args(["--image_size=12", "--patch_size=4"])  # the smallest sizes that SSIM can measure pass


def test_an_out_dir_that_cannot_be_written_is_a_config_error_before_any_data_is_read(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=rf"^--out_dir={blocker / 'out'}: cannot write there \(Not a directory\)$"):
        check_out_dir(blocker / "out")
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    monkeypatch.setattr(train_wandb, "load_data", lambda *a, **k: pytest.fail("data read before out_dir was checked"))
    with pytest.raises(ConfigError, match="cannot write there"):
        main([f"--out_dir={blocker / 'out'}", "--preset=quick", "--mode=disabled"])
    check_out_dir(tmp_path / "new" / "out")  # a folder that can be made is made
    assert (tmp_path / "new" / "out").is_dir() and not any((tmp_path / "new" / "out").iterdir())


# -- the decoded-image cache and the other atomic writes -----------------------------------------------

@pytest.fixture
def items(tmp_path):
    out = []
    for i in range(3):
        path = tmp_path / "images" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (80 * i, 0, 0)).save(path)
        out.append((path, f"square {i}"))
    return out


@pytest.mark.parametrize("error", [RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"),
                                   OSError(errno.ENOSPC, "No space left on device")])
def test_a_cache_write_that_fails_goes_on_without_the_cache_and_leaves_no_partial_file(items, tmp_path, monkeypatch,
                                                                                        error):
    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise error

    monkeypatch.setattr(torch, "save", failing_save)
    tokenizer, _ = CaptionTokenizer.build([c for _, c in items])
    with pytest.warns(CacheWarning) as caught:
        dataset = EngravingDataset(items, tokenizer, 16, 8, num_workers=1, cache_dir=tmp_path / "cache")
    assert len(dataset) == 3 and dataset.cache_file is None and not dataset.from_cache
    (warning,) = caught
    message = str(warning.message)
    assert "\n" not in message
    assert f"cannot write the decoded-image cache in {tmp_path / 'cache'} ({type(error).__name__}: " in message
    assert list((tmp_path / "cache").iterdir()) == []  # no partial cache, no temporary file


def test_a_failed_checkpoint_write_leaves_no_temporary_file_and_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    writer = checkpoints.CheckpointWriter()
    writer.submit({"step": 1}, tmp_path / "last.pt")
    writer.wait()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save({"step": "half"}, f)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    writer.submit({"step": 2}, tmp_path / "last.pt")
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert torch.load(tmp_path / "last.pt", weights_only=True) == {"step": 1}


def test_a_full_disk_under_torch_save_raises_the_file_systems_error_not_torchs(tmp_path, monkeypatch):
    class FullDisk(io.FileIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "open", lambda path, mode: FullDisk(path, mode), raising=False)
    with pytest.raises(OSError, match=r"^\[Errno 28\] No space left on device$"):  # not "unexpected pos ..."
        checkpoints.save_atomic({"w": torch.zeros(1000)}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_what_a_killed_save_left_half_written_is_replaced_by_the_next_save_not_piled_up(tmp_path):
    (tmp_path / ".last.pt.tmp").write_bytes(b"half of a checkpoint, from a process killed mid-save")
    checkpoints.save_atomic({"step": 5}, tmp_path / "last.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert torch.load(tmp_path / "last.pt", weights_only=True) == {"step": 5}


def test_write_atomic_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = durable.os.fsync, durable.os.replace
    monkeypatch.setattr(durable.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(durable.os, "replace", lambda a, b: (events.append(f"replace {Path(b).name}"),
                                                              real_replace(a, b))[1])
    write_atomic(tmp_path / "best.pt", lambda tmp: tmp.write_bytes(b"weights"))
    assert events == ["fsync", "replace best.pt", "fsync"]  # the file's bytes, the rename, the folder's entry
    assert (tmp_path / "best.pt").read_bytes() == b"weights" and len(list(tmp_path.iterdir())) == 1


def test_report_md_and_summary_json_are_utf8_and_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    info = {"status": "failed: OSError: disque plein — café", "config": {}}
    paths = report.write_report(tmp_path, [], info=info)
    assert "café" in paths["report"].read_bytes().decode("utf-8")
    assert json.loads(paths["summary"].read_bytes().decode("utf-8"))["status"] == info["status"]
    before = paths["report"].read_bytes()

    def full_disk(path, text):
        def write(tmp):
            tmp.write_text(text[:10], encoding="utf-8")  # a partial temporary file
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_atomic(path, write)

    monkeypatch.setattr(report, "write_text_atomic", full_disk)
    assert "report" not in report.write_report(tmp_path, [], info={**info, "status": "finished"})
    assert paths["report"].read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- W&B media --------------------------------------------------------------------------------------

class MediaRun:
    """A W&B run that keeps what is logged."""
    id = "media1"

    def __init__(self):
        self.logged = []

    def define_metric(self, *args, **kwargs):
        pass

    def log(self, row):
        self.logged.append(row)


def visuals():
    picture = Image.new("RGB", (16, 16), "white")
    return picture, [(picture, picture, "a ship", "a ship")]


def test_non_finite_latents_are_left_out_of_the_histogram_and_named_in_one_warning(capsys):
    run_logger = RunLogger(MediaRun(), "offline")
    latents = np.array([[0.5, np.nan, 1.0], [np.inf, -1.0, 2.0]], dtype=np.float32)
    run_logger.log_visuals(7, 1, *visuals(), latents)
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()
    assert line == ("warning: 2 of 6 latent values at step 7 are NaN or infinite; val/latent_histogram leaves "
                    "them out")
    (row,) = run_logger.run.logged
    assert sum(row["val/latent_histogram"].histogram) == 4 and not run_logger.failed


def test_latents_that_are_all_non_finite_log_the_other_media_without_a_histogram(capsys):
    run_logger = RunLogger(MediaRun(), "offline")
    run_logger.log_visuals(3, 1, *visuals(), np.full((2, 4), np.nan, dtype=np.float32))
    (row,) = run_logger.run.logged
    assert "val/latent_histogram" not in row and "val/reconstructions" in row and not run_logger.failed


def test_a_media_object_that_cannot_be_built_is_a_wandb_warning_not_a_crash(capsys):
    run_logger = RunLogger(MediaRun(), "offline")
    run_logger.log_visuals(3, 1, "not an image", [], np.zeros((2, 4), dtype=np.float32))
    assert run_logger.failed and run_logger.run.logged == []
    assert "warning: W&B log failed" in capsys.readouterr().err
