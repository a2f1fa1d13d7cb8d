"""analysis.py: health findings on synthetic metric histories, the local report, run comparison, sweep.yaml."""
import ast
import csv
import dataclasses
import json
import math
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest
import yaml

from analysis import ANALYSES, HealthConfig, HealthMonitor, compare_runs, main, write_report

REPO_DIR = Path(__file__).resolve().parents[1]
RUN_CONFIG = {
    "learning_rate": 0.001, "batch_size": 16, "weight_decay": 0.05, "dropout": 0.0, "latent_dim": 1024,
    "image_loss_weight": 1.0, "caption_loss_weight": 1.0, "alignment_loss_weight": 1.0, "num_workers": 4,
    "grad_clip": 1.0, "num_epochs": 6, "out_dir": "out",
}
EPOCHS, WINDOWS = 6, 10  # windows of 10 steps per epoch


def history(epochs=EPOCHS, windows=WINDOWS):
    """A healthy run: loss components fall smoothly and evenly, latent_std grows, val tracks train."""
    rows, step = [], 0
    for e in range(epochs):
        epoch_total = 0.0
        for w in range(windows):
            t = e * windows + w
            step += 10
            d = math.exp(-t / 20)
            wiggle = 0.002 * math.sin(1.7 * t)  # a little noise, far below the oscillation threshold
            comps = {"image": 0.3 + 0.9 * d + wiggle, "caption": 0.4 + 1.1 * d, "alignment": 0.5 + 1.0 * d}
            total = sum(comps.values())
            epoch_total += total
            rows.append({
                "global_step": step, "train/loss_total": total,
                **{f"train/loss_{c}": v for c, v in comps.items()},
                "train/latent_mean": 0.01, "train/latent_std": 0.15 + 0.45 * (1 - d),
                "train/latent_norm": 5.0 - 2.0 * d, "train/image_mse": comps["image"], "train/image_l1": 0.1 + 0.1 * d,
                "train/caption_accuracy": 0.5 + 0.4 * (1 - d), "train/caption_perplexity": math.exp(comps["caption"]),
                "train/caption_entropy": 1.5 * d + 0.3, "train/grad_norm": 1.0 + 0.1 * math.sin(t),
                "train/grad_mean": 1e-3, "train/grad_max": 0.1, "train/gpu_memory_used": 64000.0,
                "train/gpu_memory_percent": 80.0, "train/cpu_percent": 40.0, "train/lr": 0.001,
                "train/epoch": e + (w + 1) / windows, "train/samples_per_second": 300.0,
                "train/data_time_fraction": 0.02,
            })
        last = rows[-1]
        rows.append({"global_step": step, "val/epoch": float(e + 1),
                     "val/loss_total": 0.97 * epoch_total / windows,
                     **{f"val/{k[6:]}": v for k, v in last.items()
                        if k.startswith("train/") and k[6:] not in ("loss_total", "epoch", "lr", "grad_norm",
                                                                      "grad_mean", "grad_max", "gpu_memory_used",
                                                                      "gpu_memory_percent", "cpu_percent",
                                                                      "samples_per_second", "data_time_fraction")}})
    return rows


def train_rows(rows):
    return [r for r in rows if "train/loss_total" in r]


def val_rows(rows):
    return [r for r in rows if "val/loss_total" in r]


def observe(rows, run_config=RUN_CONFIG, clock=lambda: 0.0, **health):
    monitor = HealthMonitor(HealthConfig(**health), run_config, clock=clock)
    findings = [f for row in rows for f in monitor.observe(row)]
    return monitor, findings


def by_code(findings):
    return {f.code: f for f in findings}


def set_train(rows, metric, fn):
    for t, row in enumerate(train_rows(rows)):
        row[f"train/{metric}"] = fn(t)
    return rows


# -- healthy run ---------------------------------------------------------------------------------------------


def test_a_smooth_healthy_run_raises_no_finding_and_every_verdict_is_healthy():
    monitor, findings = observe(history())
    assert findings == []
    verdicts = monitor.verdicts()
    assert set(verdicts) == set(ANALYSES)
    assert {a: v.status for a, v in verdicts.items()} == dict.fromkeys(ANALYSES, "healthy")
    assert any("share" in line for line in verdicts["dominant_loss"].evidence)
    assert any("lagging" in line for line in verdicts["dominant_loss"].evidence)
    assert len(verdicts["overfitting"].table) == EPOCHS + 1  # header + one row per epoch


# -- training health -----------------------------------------------------------------------------------------


def test_a_grad_norm_spike_50x_its_median_is_a_gradient_explosion_with_a_lower_learning_rate():
    rows = history()
    train_rows(rows)[30]["train/grad_norm"] = 50.0
    _, findings = observe(rows)
    explosion = by_code(findings)["grad_explosion"]
    assert explosion.analysis == "training_health" and explosion.step == train_rows(rows)[30]["global_step"]
    assert "lower learning_rate from 0.001 to 0.0003" in explosion.action


def test_a_tiny_grad_norm_is_vanishing_gradients():
    _, findings = observe(set_train(history(), "grad_norm", lambda t: 1e-9))
    assert by_code(findings)["grad_vanishing"].action.startswith("raise learning_rate from 0.001 to 0.003")


def test_a_nan_loss_is_an_immediate_error_naming_the_metric_and_step():
    rows = history()
    bad = train_rows(rows)[2]  # inside the warm-up: non-finite values are never ignored
    bad["train/loss_caption"] = float("nan")
    monitor = HealthMonitor(HealthConfig(), RUN_CONFIG)
    for row in rows[:2]:
        assert monitor.observe(row) == []
    (finding,) = monitor.observe(bad)
    assert (finding.code, finding.severity) == ("non_finite", "error")
    assert "train/loss_caption=nan" in finding.message and str(bad["global_step"]) in finding.message
    assert monitor.verdicts()["training_health"].status == "problem"


def test_a_flat_loss_is_a_plateau_not_an_oscillation():
    rows = history()
    for t, row in enumerate(train_rows(rows)):
        for c in ("image", "caption", "alignment"):
            row[f"train/loss_{c}"] = 0.7
        row["train/loss_total"] = 2.1 + 1e-4 * (-1) ** t
    codes = by_code(observe(rows)[1])
    assert "loss_plateau" in codes and "loss_oscillation" not in codes
    assert "learning_rate" in codes["loss_plateau"].action


def test_a_zig_zag_loss_is_an_oscillation():
    _, findings = observe(set_train(history(), "loss_total", lambda t: (3.0 - 0.01 * t) * (1 + 0.3 * (-1) ** t)))
    oscillation = by_code(findings)["loss_oscillation"]
    assert "lower learning_rate from 0.001 to 0.0003" in oscillation.action and "batch_size" in oscillation.action


def test_a_loss_running_away_from_its_best_is_diverging():
    rows = set_train(history(), "loss_total", lambda t: 2.0 if t < 30 else 2.0 * 1.1 ** (t - 30))
    diverging = by_code(observe(rows)[1])["loss_diverging"]
    assert diverging.severity == "error" and "learning_rate" in diverging.action


def test_rising_gpu_memory_is_a_memory_creep():
    _, findings = observe(set_train(history(), "gpu_memory_percent", lambda t: 50.0 + 0.5 * t))
    creep = by_code(findings)["memory_creep"]
    assert creep.analysis == "training_health" and "batch_size from 16 to 8" in creep.action


# -- dominant loss, latent space, overfitting ----------------------------------------------------------------


def test_a_caption_loss_at_80_percent_that_falls_slowest_dominates_and_asks_for_caption_loss_weight():
    rows = history()
    for t, row in enumerate(train_rows(rows)):
        d = math.exp(-t / 20)
        row["train/loss_image"] = row["train/loss_alignment"] = 0.25 * (0.5 + 0.5 * d)
        row["train/loss_caption"] = 2.4 * (0.7 + 0.3 * d)
        row["train/loss_total"] = row["train/loss_image"] * 2 + row["train/loss_caption"]
    monitor, findings = observe(rows)
    dominant = by_code(findings)["dominant_component"]
    assert dominant.analysis == "dominant_loss" and "caption" in dominant.message
    assert "raise caption_loss_weight from 1.0 to 2.0" in dominant.action
    verdict = monitor.verdicts()["dominant_loss"]
    assert verdict.status == "warning" and "caption_loss_weight" in verdict.actions[0]
    assert "lagging: caption" in "\n".join(verdict.evidence)


def test_a_latent_std_stuck_at_its_start_is_not_learning():
    monitor, findings = observe(set_train(history(), "latent_std", lambda t: 0.15))
    assert "raise latent_dim from 1024 to 2048" in by_code(findings)["latent_not_growing"].action
    verdict = monitor.verdicts()["latent_space"]
    assert verdict.status == "warning" and "0.15" in verdict.evidence[0]


def test_a_latent_std_near_zero_is_a_collapse():
    monitor, findings = observe(set_train(history(), "latent_std", lambda t: 1e-5))
    assert by_code(findings)["latent_collapse"].severity == "error"
    assert monitor.verdicts()["latent_space"].status == "problem"


def test_val_loss_rising_3_epochs_while_train_falls_is_overfitting_with_a_weight_decay_action():
    rows = history()
    for epoch, row in enumerate(val_rows(rows), 1):
        row["val/loss_total"] = [3.0, 2.5, 2.3, 2.5, 2.7, 2.9][epoch - 1]
    monitor, findings = observe(rows)
    codes = by_code(findings)
    assert {"overfitting", "val_rising"} <= set(codes)
    for code in ("overfitting", "val_rising"):
        assert "raise weight_decay from 0.05 to 0.1" in codes[code].action
    assert "epoch 3" in codes["val_rising"].action  # the best epoch, kept in best.pt
    verdict = monitor.verdicts()["overfitting"]
    assert verdict.status == "warning" and verdict.table[0][:3] == ["epoch", "train loss_total", "val loss_total"]


# -- hardware ------------------------------------------------------------------------------------------------


def test_waiting_half_the_time_for_data_is_input_bound():
    _, findings = observe(set_train(history(), "data_time_fraction", lambda t: 0.5))
    assert "raise num_workers from 4 to 8" in by_code(findings)["input_bound"].action


def test_gpu_memory_at_97_percent_is_an_oom_risk_and_at_40_percent_leaves_headroom():
    oom = by_code(observe(set_train(history(), "gpu_memory_percent", lambda t: 97.0))[1])
    assert "lower batch_size from 16 to 8" in oom["oom_risk"].action and "gpu_headroom" not in oom
    monitor, findings = observe(set_train(history(), "gpu_memory_percent", lambda t: 40.0))
    headroom = by_code(findings)["gpu_headroom"]
    assert headroom.severity == "info" and "raise batch_size from 16 to 32" in headroom.action
    verdict = monitor.verdicts()["hardware"]
    assert verdict.status == "healthy" and verdict.actions == [headroom.action]


def test_a_busy_cpu_is_cpu_bound_with_a_gpu_but_expected_without_one():
    assert "cpu_bound" in by_code(observe(set_train(history(), "cpu_percent", lambda t: 97.0))[1])
    rows = set_train(set_train(history(), "cpu_percent", lambda t: 100.0), "gpu_memory_percent", lambda t: 0.0)
    monitor, findings = observe(rows)
    assert findings == []
    assert "no GPU" in "\n".join(monitor.verdicts()["hardware"].evidence)


# -- rate limit, data needs, cost ----------------------------------------------------------------------------


def test_a_code_is_reported_once_within_the_alert_interval_and_again_after_it():
    now = [0.0]
    monitor = HealthMonitor(HealthConfig(alert_interval_minutes=10), RUN_CONFIG, clock=lambda: now[0])
    rows = set_train(history(), "grad_norm", lambda t: 1e-9)
    assert [f.code for f in monitor.observe(rows[0])] == ["grad_vanishing"]
    now[0] = 5 * 60.0
    assert monitor.observe(rows[1]) == []
    now[0] = 11 * 60.0
    assert [f.code for f in monitor.observe(rows[2])] == ["grad_vanishing"]
    assert len(monitor.findings) == 2 and monitor.repeats["grad_vanishing"] == 1


def test_a_single_row_gives_not_enough_data_instead_of_verdicts():
    monitor, findings = observe(history()[:1])
    assert findings == []
    verdicts = monitor.verdicts()
    assert {a: v.status for a, v in verdicts.items()} == dict.fromkeys(ANALYSES, "not enough data")
    assert "warm-up" in verdicts["training_health"].summary


def test_observe_is_cheap_for_a_long_run():
    rows = train_rows(history(epochs=100, windows=30))
    monitor = HealthMonitor(HealthConfig(), RUN_CONFIG)
    start = time.perf_counter()
    for row in rows:
        monitor.observe(row)
    assert (time.perf_counter() - start) / len(rows) < 2e-3  # ~0.3 ms here; a log window spans many steps


def test_health_config_fields_are_plain_overridable_values_that_clash_with_no_training_field():
    training_fields = set(config_annotations())
    types = typing.get_type_hints(HealthConfig)
    for f in dataclasses.fields(HealthConfig):
        assert types[f.name] in (int, float, bool), f.name
        assert type(f.default) is types[f.name], f.name  # train_wandb.py parses overrides by the field's type
        assert f.name not in training_fields, f.name


# -- the local report ----------------------------------------------------------------------------------------


INFO = {"status": "finished", "device": "CPU", "training_time_s": 125.0, "best_val_loss": 1.4, "best_epoch": 6,
        "steps": 600, "config": RUN_CONFIG, "wandb_run": "https://wandb.ai/me/project/runs/abc"}
PLOT_FILES = {"loss_components.png", "train_vs_val.png", "latent.png", "gradients.png", "hardware.png"}


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """Two reported runs that differ only in learning_rate (and out_dir); run_b reaches the lower loss."""
    base = tmp_path_factory.mktemp("runs")
    for name, lr, scale in (("run_a", 0.001, 1.0), ("run_b", 0.0005, 0.9)):
        rows = history()
        for row in rows:
            for key in ("train/loss_total", "val/loss_total"):
                if key in row:
                    row[key] *= scale
        config = {**RUN_CONFIG, "learning_rate": lr, "out_dir": f"out/{name}"}
        best = min(r["val/loss_total"] for r in val_rows(rows))
        monitor, _ = observe(rows, run_config=config)
        write_report(base / name, rows, monitor, {**INFO, "config": config, "best_val_loss": best})
    return base


def test_write_report_writes_every_file_a_full_csv_and_a_section_per_analysis(reported):
    out, rows = reported / "run_a", history()  # run_a is the unscaled history
    assert {p.name for p in out.iterdir()} == {"metrics.csv", "report.md", "summary.json"} | PLOT_FILES
    assert all(p.stat().st_size > 0 for p in out.iterdir())
    with open(out / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        table = list(reader)
    expected = sorted({k for r in rows for k in r} - {"global_step"})
    assert reader.fieldnames == ["global_step"] + expected
    assert len(table) == len(rows)
    assert float(table[0]["train/loss_total"]) == pytest.approx(rows[0]["train/loss_total"])
    assert table[WINDOWS]["train/loss_total"] == "" and table[WINDOWS]["val/loss_total"] != ""  # the first val row
    report = (out / "report.md").read_text()
    for i, title in enumerate(ANALYSES.values(), 1):
        assert f"### {i}. {title}: healthy" in report
    assert "2 min 05 s" in report and "CPU" in report and "caption accuracy" in report
    assert all(f"]({name})" in report for name in PLOT_FILES)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_val_loss"] == pytest.approx(min(r["val/loss_total"] for r in val_rows(rows)))
    assert summary["config"]["learning_rate"] == 0.001 and summary["status"] == "finished"
    assert summary["final_val"]["caption_accuracy"] > 0 and summary["verdicts"]["hardware"]["status"] == "healthy"


def test_write_report_survives_one_row_no_val_rows_nan_rows_and_no_rows(tmp_path):
    rows = history()
    nan_rows = history()
    for row in train_rows(nan_rows)[20:]:
        row["train/loss_total"] = float("nan")
        row["train/grad_norm"] = float("inf")
    sparse = [{"global_step": 10, "train/loss_total": 2.0}, {"global_step": 20, "train/lr": 0.001}]
    cases = {"one": rows[:1], "noval": train_rows(rows), "nan": nan_rows, "sparse": sparse, "empty": []}
    for name, case in cases.items():
        info = {"status": "interrupted", "best_val_loss": float("inf"), "best_epoch": 0, "config": RUN_CONFIG}
        paths = write_report(tmp_path / name, case, None, info)  # no monitor: the rows are replayed
        assert {"metrics", "report", "summary"} <= set(paths), name
        assert "interrupted" in (tmp_path / name / "report.md").read_text()
        summary = json.loads((tmp_path / name / "summary.json").read_text())  # strict JSON: inf became null
        assert summary["best_val_loss"] is None or name not in ("one", "noval", "sparse", "empty")
    nan_summary = json.loads((tmp_path / "nan" / "summary.json").read_text())
    assert nan_summary["final_train"]["loss_total"] is None
    assert "non_finite" in (tmp_path / "nan" / "report.md").read_text()


# -- comparing runs ------------------------------------------------------------------------------------------


def test_compare_lists_only_the_differing_config_fields_both_runs_and_the_best(reported, tmp_path, capsys):
    run_a, run_b = reported / "run_a", reported / "run_b"
    dest = tmp_path / "cmp"
    assert main(["compare", str(run_a), str(run_b), "--out", str(dest)]) == 0
    printed = capsys.readouterr().out
    text = (dest / "comparison.md").read_text()
    assert printed == text
    header = text.splitlines()[2]
    assert "learning_rate" in header and "batch_size" not in header and "out_dir" not in header
    assert "| run_a | 0.001 |" in text and "| run_b | 0.0005 |" in text
    assert "Best: **run_b**" in text and "learning_rate=0.0005" in text
    assert (dest / "compare_loss.png").stat().st_size > 0 and (dest / "compare_caption_accuracy.png").is_file()
    assert compare_runs([run_a, run_b], dest) == dest / "comparison.md"


def test_compare_of_a_folder_without_summary_json_exits_2_with_one_error_line(tmp_path):
    (tmp_path / "not_a_run").mkdir()
    result = subprocess.run([sys.executable, str(REPO_DIR / "analysis.py"), "compare", str(tmp_path / "not_a_run"),
                             "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error:") and "summary.json" in line


# -- sweep.yaml ----------------------------------------------------------------------------------------------


def config_annotations():
    """Config and WandBConfig fields of train_wandb.py -> annotation, read from the source (no torch import)."""
    tree = ast.parse((REPO_DIR / "train_wandb.py").read_text())
    return {node.target.id: ast.unparse(node.annotation)
            for cls in tree.body if isinstance(cls, ast.ClassDef) and cls.name in ("Config", "WandBConfig")
            for node in cls.body if isinstance(node, ast.AnnAssign)}


def test_sweep_yaml_runs_train_wandb_quick_and_sweeps_only_real_fields_with_valid_values():
    sweep = yaml.safe_load((REPO_DIR / "sweep.yaml").read_text())
    assert sweep["program"] == "train_wandb.py" and sweep["method"] in ("bayes", "random")
    assert sweep["metric"] == {"name": "best_val_loss", "goal": "minimize"}
    assert sweep["command"] == ["${env}", "python", "${program}", "--preset=quick", "${args}"]
    fields = config_annotations()
    params = sweep["parameters"]
    assert {"learning_rate", "batch_size", "caption_loss_weight", "alignment_loss_weight", "latent_dim",
            "weight_decay"} <= set(params)
    for name, spec in params.items():
        kind = {"int": int, "float": (int, float)}[fields[name]]
        values = spec.get("values") or [spec["min"], spec["max"]]
        assert all(isinstance(v, kind) and not isinstance(v, bool) for v in values), name
    assert params["learning_rate"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 3e-3}
    assert params["batch_size"]["values"] == [16, 32, 64] and params["latent_dim"]["values"] == [512, 1024]


def test_hardware_evidence_quotes_the_median_mfu_after_the_warm_up_windows():
    rows = history()
    for t, row in enumerate(train_rows(rows)):
        row["perf/mfu"] = 0.9 if t < 5 else 0.25 + 0.01 * (t % 3)  # warm-up windows (compilation) are left out
    evidence = "\n".join(observe(rows)[0].verdicts()["hardware"].evidence)
    assert "MFU: median 26.0% of the GPU's peak FLOP/s" in evidence
    assert "MFU" not in "\n".join(observe(history())[0].verdicts()["hardware"].evidence)  # a CPU run logs none
