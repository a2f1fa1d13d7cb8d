"""sweep.py: drawing trials from a sweep file, the trial's command line, its metric, and a tiny sweep end to end."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import sweep

REPO_DIR = Path(__file__).resolve().parents[1]
TINY_TRIAL = ["--max_items=200", "--num_epochs=1", "--log_frequency=2", "--device=cpu", "--mode=disabled",
              "--cache_dir="]  # every trial's overrides: one short epoch on the CPU


def write_sweep(path, parameters, method="grid", **extra):
    """A sweep file for train_wandb.py at path, with sweep.yaml's command."""
    path.write_text(yaml.safe_dump({
        "program": "train_wandb.py", "method": method, "metric": {"name": "val/loss_total", "goal": "minimize"},
        "parameters": parameters, "command": ["${env}", "python", "${program}", "--preset=quick", "${args}"],
        **extra}))
    return path


# -- drawing trials --------------------------------------------------------------------------------------------


def test_grid_takes_the_combinations_in_file_order_up_to_count():
    parameters = {"batch_size": {"values": [16, 32]}, "patch_size": {"values": [8, 16]}, "seed": {"value": 3}}
    trials, note = sweep.draw_trials({"method": "grid", "parameters": parameters}, count=3)
    assert trials == [{"batch_size": 16, "patch_size": 8, "seed": 3}, {"batch_size": 16, "patch_size": 16, "seed": 3},
                      {"batch_size": 32, "patch_size": 8, "seed": 3}] and note is None
    every, note = sweep.draw_trials({"method": "grid", "parameters": parameters}, count=10)
    assert len(every) == 4 and "only 4 combinations" in note


def test_random_draws_are_seeded_and_stay_inside_each_range():
    parameters = {**yaml.safe_load((REPO_DIR / "sweep.yaml").read_text())["parameters"],
                  "num_epochs": {"min": 2, "max": 5},  # both ints: int_uniform, as W&B infers it
                  "width": {"distribution": "q_uniform", "min": 32, "max": 128, "q": 32}}
    spec = {"method": "random", "parameters": parameters}
    trials, note = sweep.draw_trials(spec, count=30, seed=0)
    assert note is None and trials == sweep.draw_trials(spec, count=30, seed=0)[0]
    assert trials != sweep.draw_trials(spec, count=30, seed=1)[0]
    for trial in trials:
        for name, value in trial.items():
            if "values" in parameters[name]:
                assert value in parameters[name]["values"], name
            else:
                assert parameters[name]["min"] <= value <= parameters[name]["max"], (name, value)
        assert isinstance(trial["num_epochs"], int) and trial["width"] in (32, 64, 96, 128)
    learning_rates = [t["learning_rate"] for t in trials]
    assert sum(lr < math.sqrt(1e-4 * 3e-3) for lr in learning_rates) >= 10  # log-uniform: half below the middle


def test_bayes_draws_at_random_with_a_one_line_note():
    spec = yaml.safe_load((REPO_DIR / "sweep.yaml").read_text())
    assert spec["method"] == "bayes"
    trials, note = sweep.draw_trials(spec, count=4, seed=2)
    assert trials == sweep.draw_trials({**spec, "method": "random"}, count=4, seed=2)[0]
    assert "\n" not in note and "bayes" in note and "random" in note


@pytest.mark.parametrize("parameters, method, expected", [
    ({"learning_rate": {"distribution": "beta", "min": 0.1, "max": 1.0}}, "random", "distribution 'beta'"),
    ({"learning_rate": {"distribution": "uniform", "min": 0.1, "max": 1.0}}, "grid", "grid needs values"),
    ({"learning_rate": {"distribution": "log_uniform_values", "min": 0, "max": 1.0}}, "random", "0 < min"),
    ({"learning_rate": 0.1}, "random", "expected a mapping"),
])
def test_a_sweep_file_sweep_py_cannot_draw_from_is_a_one_line_usage_error(tmp_path, parameters, method, expected):
    path = write_sweep(tmp_path / "sweep.yaml", parameters, method)
    result = subprocess.run([sys.executable, "sweep.py", str(path), "--count=2", f"--out={tmp_path}"],
                            cwd=REPO_DIR, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error:") and expected in line
    assert not list(tmp_path.glob("sweep-*"))  # nothing ran


# -- one trial -------------------------------------------------------------------------------------------------


def test_a_trials_overrides_win_its_mode_is_offline_unless_given_and_its_out_dir_is_its_own():
    args = sweep.trial_args({"batch_size": 16, "learning_rate": 0.0005}, {"batch_size": "8"}, Path("o/t1"))
    assert args == ["--batch_size=8", "--learning_rate=0.0005", "--mode=offline", "--out_dir=o/t1"]
    assert "--mode=disabled" in sweep.trial_args({}, {"mode": "disabled"}, Path("o/t1"))
    spec = yaml.safe_load((REPO_DIR / "sweep.yaml").read_text())
    assert sweep.trial_command(spec, ["--a=1"]) == [sys.executable, "train_wandb.py", "--preset=quick", "--a=1"]


def test_the_metric_val_loss_total_is_the_runs_lowest_as_in_the_wandb_summary():
    summary = {"best_val_loss": 2.0, "final_val": {"loss_total": 2.5, "i2t_r1": 0.25},
               "info": {"best_value": 0.3}}
    assert sweep.metric_value(summary, "val/loss_total") == 2.0  # summary="min", not the last epoch's 2.5
    assert sweep.metric_value(summary, "val/i2t_r1") == 0.25
    assert sweep.metric_value(summary, "best_value") == 0.3
    assert sweep.metric_value({"best_val_loss": None}, "val/loss_total") is None


# -- end to end ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_of_three_trials_ranks_the_finished_ones_and_lists_the_failed_one_last(tmp_path):
    path = write_sweep(tmp_path / "sweep.yaml", {"batch_size": {"values": [16, 32, -1]}})  # -1: rejected
    result = subprocess.run([sys.executable, "sweep.py", str(path), "--count=3", f"--out={tmp_path}", "--id=t",
                             *TINY_TRIAL], cwd=REPO_DIR, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    progress = [line for line in result.stdout.splitlines() if line.startswith("trial ")]
    assert [line.split()[1] for line in progress] == ["1/3", "2/3", "3/3"]
    assert "failed: exit 2" in progress[2] and "trial_3.log" in progress[2]
    sweep_dir = tmp_path / "sweep-t"
    rows = [line.split(" | ") for line in (sweep_dir / "ranking.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| rank")]
    assert [row[0].strip("| ") for row in rows] == ["1", "2", "—"]
    assert rows[2][1] == "trial_3" and "must be at least 1" in rows[2][2]
    assert float(rows[0][2]) <= float(rows[1][2])  # minimize: the lower val/loss_total first
    assert (sweep_dir / "trial_1" / "summary.json").is_file() and (sweep_dir / "trial_3.log").is_file()
    comparison = (sweep_dir / "comparison.md").read_text()
    assert "trial_1" in comparison and "trial_2" in comparison and "trial_3" not in comparison
    assert (sweep_dir / "comparison.html").is_file()


@pytest.mark.slow
def test_a_sweep_in_which_every_trial_fails_exits_1(tmp_path):
    path = write_sweep(tmp_path / "sweep.yaml", {"batch_size": {"values": [-1]}})
    result = subprocess.run([sys.executable, "sweep.py", str(path), f"--out={tmp_path}", "--id=t", *TINY_TRIAL],
                            cwd=REPO_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed" in (tmp_path / "sweep-t" / "ranking.md").read_text()
    assert not (tmp_path / "sweep-t" / "comparison.md").exists()


def test_sweep_yaml_runs_train_wandb_quick_and_sweeps_only_real_fields_with_valid_values(config_annotations):
    sweep = yaml.safe_load((REPO_DIR / "sweep.yaml").read_text())
    assert sweep["program"] == "train_wandb.py" and sweep["method"] in ("bayes", "random")
    assert sweep["metric"] == {"name": "val/loss_total", "goal": "minimize"}
    assert sweep["command"] == ["${env}", "python", "${program}", "--preset=quick", "${args}"]
    fields = config_annotations
    params = sweep["parameters"]
    assert {"learning_rate", "batch_size", "caption_loss_weight", "alignment_loss_weight", "latent_dim",
            "weight_decay", "patch_size"} <= set(params)
    for name, spec in params.items():
        kind = {"int": int, "float": (int, float)}[fields[name]]
        values = spec.get("values") or [spec["min"], spec["max"]]
        assert all(isinstance(v, kind) and not isinstance(v, bool) for v in values), name
    assert params["learning_rate"] == {"distribution": "log_uniform_values", "min": 1e-4, "max": 3e-3}
    assert params["batch_size"]["values"] == [16, 32, 64] and params["latent_dim"]["values"] == [512, 1024]
