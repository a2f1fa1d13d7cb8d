"""End to end: the real program, run as a user runs it, its W&B log read back with wandb's own reader."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data.engravings import generate

REPO_DIR = Path(__file__).resolve().parents[1]

TRAIN_METRICS = [
    "loss_total", "loss_image", "loss_caption", "loss_alignment",
    "latent_mean", "latent_std", "latent_norm", "image_mse", "image_l1",
    "caption_accuracy", "caption_perplexity", "caption_entropy",
    "grad_norm", "grad_mean", "grad_max", "gpu_memory_percent", "gpu_memory_used", "cpu_percent",
    "lr", "epoch", "samples_per_second",
]
VAL_METRICS = [
    "loss_total", "loss_image", "loss_caption", "loss_alignment", "latent_mean", "latent_std", "latent_norm",
    "image_mse", "image_l1", "caption_accuracy", "caption_perplexity", "caption_entropy",
]
TINY = ["--preset=quick", "--image_size=32", "--batch_size=16", "--log_frequency=4", "--mode=offline"]


@pytest.fixture(scope="module")
def engravings(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("engravings"), num_items=200, image_size=32, seed=0, workers=1,
                    progress=False)


def train(tmp_path, *args, timeout=240):
    env = {**os.environ, "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}
    for name in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_API_KEY", "WANDB_RUN_ID", "WANDB_RESUME"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, str(REPO_DIR / "train_wandb.py"), *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


def history(run_dir):
    """History rows of an offline run, read with `wandb leet inspect --json`."""
    out = subprocess.run(["wandb", "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [r["history"]["item"] for r in records if r.get("type") == "history"]


def run_dirs(tmp_path):
    return sorted((tmp_path / "wandb").glob("offline-run-*"))


@pytest.fixture(scope="module")
def tiny_run(engravings, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    result = train(tmp, f"--data_dir={engravings}", f"--out_dir={tmp / 'out'}", "--num_epochs=3", *TINY)
    (run_dir,) = run_dirs(tmp)
    rows = history(run_dir)
    return result, tmp, rows


def test_every_metric_is_logged_finite_under_train_and_val(tiny_run):
    _, _, rows = tiny_run
    train_rows = [r for r in rows if "train/loss_total" in r]
    val_rows = [r for r in rows if "val/loss_total" in r]
    assert len(train_rows) >= 3 and len(val_rows) == 3
    for row in train_rows:
        for name in TRAIN_METRICS:
            assert math.isfinite(row[f"train/{name}"]), name
    for row in val_rows:
        for name in VAL_METRICS:
            assert math.isfinite(row[f"val/{name}"]), name
    assert all("global_step" in r for r in rows)


def test_logged_values_obey_their_definitions(tiny_run):
    _, _, rows = tiny_run
    for prefix in ("train", "val"):
        for row in (r for r in rows if f"{prefix}/loss_total" in r):
            m = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith(prefix + "/")}
            weighted = m["loss_image"] + m["loss_caption"] + m["loss_alignment"]  # quick preset: weights 1.0
            assert m["loss_total"] == pytest.approx(weighted, rel=1e-4)
            assert m["caption_perplexity"] == pytest.approx(math.exp(m["loss_caption"]), rel=1e-6)
            assert m["image_mse"] >= m["image_l1"] ** 2
            assert 0 <= m["caption_accuracy"] <= 1 and m["latent_std"] > 0
            if prefix == "train":
                assert 0 <= m["grad_mean"] <= m["grad_max"] <= m["grad_norm"]


def test_step_axis_is_the_optimizer_step_and_never_goes_back(tiny_run):
    result, _, rows = tiny_run
    steps = [r["global_step"] for r in rows if "train/loss_total" in r]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    batches = int(result.stdout.split("Batches per epoch: ")[1].split()[0])
    assert steps[-1] == 3 * batches


def test_console_follows_the_seed_and_prints_an_epoch_line_per_epoch(tiny_run):
    result, _, _ = tiny_run
    out = result.stdout
    for text in ("MULTIMODAL TRAINING WITH W&B LOGGING", "STEP 1: Loading dataset", "Total captions found: 200",
                 "STEP 2: Building tokenizer", "Total tokens:", "Unique words added:", "Most common:",
                 "STEP 3: Creating data loaders", "Train samples: 180", "Val samples: 20", "Batches per epoch:",
                 "STEP 4: Building model", "Total parameters:", "STEP 5: Setting up W&B", "STEP 6: Starting training",
                 "wandb sync", "wandb leet"):
        assert text in out, text
    for epoch in (1, 2, 3):
        assert f"Epoch {epoch} | Train Loss: " in out and "| Val Loss: " in out and "| LR: " in out


def test_checkpoints_hold_model_config_and_tokenizer_and_load_with_weights_only(tiny_run):
    _, tmp, _ = tiny_run
    for name in ("last.pt", "best.pt"):
        state = torch.load(tmp / "out" / name, map_location="cpu", weights_only=True)
        assert state["config"]["caption_loss_weight"] == 1.0
        assert state["tokenizer"]["itos"][:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
        assert state["wandb_run_id"]
    assert torch.load(tmp / "out" / "last.pt", weights_only=True)["epoch"] == 3


def test_config_is_stored_in_the_wandb_run(tiny_run):
    _, tmp, _ = tiny_run
    (run_dir,) = run_dirs(tmp)
    summary = json.loads(subprocess.run(["wandb", "leet", "inspect", "--summary", "--json", str(run_dir)],
                                        capture_output=True, text=True, check=True).stdout)
    text = json.dumps(summary)
    for field in ("caption_loss_weight", "image_loss_weight", "alignment_loss_weight", "log_frequency"):
        assert field in text, field


def test_max_steps_stops_early_but_still_validates_and_finishes(engravings, tmp_path):
    result = train(tmp_path, f"--data_dir={engravings}", f"--out_dir={tmp_path / 'out'}", "--max_steps=5", *TINY)
    rows = history(run_dirs(tmp_path)[0])
    assert max(r["global_step"] for r in rows) == 5
    assert any("val/loss_total" in r for r in rows)
    assert "Epoch 1 | Train Loss:" in result.stdout and "Epoch 2 |" not in result.stdout


def test_resume_continues_the_same_run_and_step_axis(engravings, tmp_path):
    common = [f"--data_dir={engravings}", f"--out_dir={tmp_path / 'out'}", *TINY]
    train(tmp_path, *common, "--num_epochs=1")
    first_id = torch.load(tmp_path / "out" / "last.pt", weights_only=True)["wandb_run_id"]
    first_step = torch.load(tmp_path / "out" / "last.pt", weights_only=True)["step"]
    result = train(tmp_path, *common, "--num_epochs=2", "--resume=True")
    state = torch.load(tmp_path / "out" / "last.pt", weights_only=True)
    assert state["wandb_run_id"] == first_id and state["epoch"] == 2 and state["step"] == 2 * first_step
    assert "Resumed from epoch 1" in result.stdout and "Epoch 2 |" in result.stdout
    assert "Epoch 1 |" not in result.stdout


def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, str(REPO_DIR / "train_wandb.py"), f"--out_dir={tmp_path}",
                             "--resume=True", "--mode=disabled"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --resume=True: no checkpoint") and "Traceback" not in result.stderr


def test_quick_preset_learns_on_the_engravings(engravings, tmp_path):
    train(tmp_path, f"--data_dir={engravings}", f"--out_dir={tmp_path / 'out'}", *TINY, "--num_epochs=8",
          "--learning_rate=3e-3", "--log_frequency=5")
    rows = [r for r in history(run_dirs(tmp_path)[0]) if "train/loss_total" in r]
    first, last = rows[0], rows[-1]
    assert last["train/loss_total"] <= 0.7 * first["train/loss_total"]
    assert last["train/image_mse"] <= 0.8 * first["train/image_mse"]
    assert last["train/caption_accuracy"] > first["train/caption_accuracy"] + 0.2


def test_default_config_prints_the_seed_console_with_the_full_model(engravings, tmp_path):
    result = train(tmp_path, f"--data_dir={engravings}", f"--out_dir={tmp_path / 'out'}", "--max_steps=2",
                   "--device=cpu", "--mode=disabled", "--max_items=24", "--batch_size=4", timeout=600)
    out = result.stdout
    for step in range(1, 7):
        assert f"STEP {step}:" in out
    params = int(out.split("Total parameters: ")[1].split()[0].replace(",", ""))
    assert 76_500_000 <= params <= 93_500_000
    assert "--preset=quick" in out  # the CPU note
    assert "Epoch 1 | Train Loss:" in out
