"""Hand-made metric histories for the health-check tests: a healthy run, and helpers to make it sick."""
import math

from health import HealthConfig, HealthMonitor

RUN_CONFIG = {
    "learning_rate": 0.001, "batch_size": 16, "weight_decay": 0.05, "dropout": 0.0, "latent_dim": 1024,
    "image_loss_weight": 1.0, "caption_loss_weight": 1.0, "alignment_loss_weight": 1.0, "num_workers": 4,
    "grad_clip": 1.0, "num_epochs": 6, "out_dir": "out", "compile": False,
}
EPOCHS, WINDOWS = 6, 10  # windows of 10 steps per epoch
VAL_SKIPPED = ("loss_total", "epoch", "lr", "grad_norm", "grad_norm_max", "grad_mean", "grad_max", "gpu_memory_used",
               "gpu_memory_percent", "cpu_percent", "samples_per_second", "data_time_fraction")


def train_row(step, t, epoch):
    """Window t of the healthy run: components fall smoothly and evenly, the spread of z grows."""
    d = math.exp(-t / 20)
    wiggle = 0.002 * math.sin(1.7 * t)  # a little noise, far below the oscillation threshold
    comps = {"image": 0.3 + 0.9 * d + wiggle, "caption": 0.4 + 1.1 * d, "alignment": 0.5 + 1.0 * d}
    grad_norm = 1.0 + 0.1 * math.sin(t)
    return {
        "global_step": step, "train/loss_total": sum(comps.values()),
        **{f"train/loss_{c}": v for c, v in comps.items()},
        "train/latent_mean": 0.01, "train/latent_std": 0.15 + 0.45 * (1 - d), "train/latent_norm": 5.0 - 2.0 * d,
        "train/latent_batch_std": 0.05 + 0.3 * (1 - d), "train/latent_diversity": 0.4 + 0.3 * (1 - d),
        "train/image_mse": comps["image"], "train/image_l1": 0.1 + 0.1 * d,
        "train/caption_accuracy": 0.5 + 0.4 * (1 - d), "train/caption_perplexity": math.exp(comps["caption"]),
        "train/caption_entropy": 1.5 * d + 0.3, "train/grad_norm": grad_norm, "train/grad_norm_max": 1.6 * grad_norm,
        "train/grad_mean": 1e-3, "train/grad_max": 0.1, "train/gpu_memory_used": 64000.0,
        "train/gpu_memory_percent": 80.0, "train/cpu_percent": 40.0, "train/lr": 0.001, "train/epoch": epoch,
        "train/samples_per_second": 300.0, "train/data_time_fraction": 0.02,
    }


def history(epochs=EPOCHS, windows=WINDOWS):
    """A healthy run: train windows of 10 steps, a validation row (slightly below train) after each epoch."""
    rows, step = [], 0
    for e in range(epochs):
        epoch_total = 0.0
        for w in range(windows):
            step += 10
            rows.append(train_row(step, e * windows + w, e + (w + 1) / windows))
            epoch_total += rows[-1]["train/loss_total"]
        last = rows[-1]
        rows.append({"global_step": step, "val/epoch": float(e + 1), "val/loss_total": 0.97 * epoch_total / windows,
                     **{f"val/{k[6:]}": v for k, v in last.items()
                        if k.startswith("train/") and k[6:] not in VAL_SKIPPED}})
    return rows


def train_rows(rows):
    return [r for r in rows if "train/loss_total" in r]


def val_rows(rows):
    return [r for r in rows if "val/loss_total" in r]


def set_train(rows, metric, fn):
    for t, row in enumerate(train_rows(rows)):
        row[f"train/{metric}"] = fn(t)
    return rows


def set_losses(rows, fn, weights=None):
    """fn(t) -> {component: loss}; loss_total becomes their weighted sum."""
    weights = weights or {"image": 1.0, "caption": 1.0, "alignment": 1.0}
    for t, row in enumerate(train_rows(rows)):
        comps = fn(t)
        for c, v in comps.items():
            row[f"train/loss_{c}"] = v
        row["train/loss_total"] = sum(weights[c] * v for c, v in comps.items())
    return rows


def observe(rows, run_config=RUN_CONFIG, clock=lambda: 0.0, **health):
    monitor = HealthMonitor(HealthConfig(**health), run_config, clock=clock)
    findings = [f for row in rows for f in monitor.observe(row)]
    return monitor, findings


def by_code(findings):
    return {f.code: f for f in findings}


# -- runs with a report: the facts of one, and validation rows with measures and baselines --------------------

INFO = {"status": "finished", "device": "CPU", "training_time_s": 125.0, "best_val_loss": 1.4, "best_epoch": 6,
        "steps": 600, "config": RUN_CONFIG, "wandb_run": "https://wandb.ai/me/project/runs/abc"}
PLOT_FILES = {"loss_components.png", "train_vs_val.png", "latent.png", "gradients.png", "hardware.png"}


def rows_with_measures():
    """history() plus two evaluation measures at each epoch: i2t_r1 = epoch / 100, grounded_technique = epoch / 10."""
    rows = history()
    for row in val_rows(rows):
        row["val/i2t_r1"], row["val/grounded_technique"] = row["val/epoch"] / 100, row["val/epoch"] / 10
    return rows


def rows_with_baseline(technique_baseline):
    """rows_with_measures() plus a constant baseline beside every validation row."""
    rows = rows_with_measures()
    for row in val_rows(rows):
        row["baseline/i2t_r1"], row["baseline/grounded_technique"] = 0.002, technique_baseline
    return rows


def val_epochs(*epochs):
    """Validation rows from (val loss_total, i2t_r1, i2t_median_rank, psnr), one an epoch."""
    return [{"global_step": 10 * e, "val/epoch": float(e), "val/loss_total": loss, "val/i2t_r1": r1,
             "val/i2t_median_rank": rank, "val/psnr": psnr} for e, (loss, r1, rank, psnr) in enumerate(epochs, 1)]
