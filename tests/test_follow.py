"""compare.py follow: the follow-up run a finished run's advice asks for."""
import json

import pytest

import compare
import diagnose
from train_wandb import parse_args


def finished(tmp_path, findings=(), verdicts=None, **config):
    """A finished run's out_dir holding only summary.json (what the follow command reads)."""
    out = tmp_path / "run"
    out.mkdir()
    run_config = {"learning_rate": 1e-06, "weight_decay": 0.5, "image_size": 64, "batch_size": 64,
                  "num_epochs": 20, "dropout": 0.0, "out_dir": str(out), "mode": "offline", "entity": None, **config}
    (out / "summary.json").write_text(json.dumps({"config": run_config, "findings": list(findings),
                                                  "verdicts": verdicts or {}}))
    return out


def finding(code, action, severity="warning", resolved=""):
    return {"analysis": "training_health", "code": code, "severity": severity, "step": 288, "message": "",
            "action": action, "resolved": resolved}


def test_the_first_open_warning_that_changes_a_config_field_is_the_advice():
    summary = {"config": {"learning_rate": 1e-06, "grad_clip": 0.0, "weight_decay": 0.05},
               "findings": [finding("generalization_gap", "raise weight_decay from 0.05 to 0.1", "info"),
                            finding("grad_explosion", "lower learning_rate from 1e-06 to 3e-07", resolved="at step 9"),
                            finding("not_learning", "raise learning_rate from 1e-06 to 1e-05: the steps are too small"),
                            finding("loss_plateau", "raise learning_rate from 1e-06 to 3e-06")]}
    source, action, changes = compare.advised_changes(summary)
    assert source == "training_health/not_learning" and changes == {"learning_rate": "1e-05"}
    both = {**summary, "findings": [finding("loss_diverging", "lower learning_rate from 1e-06 to 1e-07 and set "
                                                              "grad_clip from 0 to 1.0")]}
    assert compare.advised_changes(both)[2] == {"learning_rate": "1e-07", "grad_clip": "1.0"}
    either = {**summary, "findings": [finding("overfitting", "raise weight_decay from 0.05 to 0.1 or set dropout "
                                                             "from 0 to 0.1")]}
    assert compare.advised_changes(either)[2] == {"weight_decay": "0.1"}  # the first alternative only


def test_without_findings_a_verdicts_action_is_the_advice_and_without_any_there_is_none():
    config = {"caption_loss_weight": 1.0}
    verdicts = {"latent_space": {"status": "warning", "actions": ["raise caption_loss_weight from 1.0 to 2.0 (...)"]},
                "overfitting": {"status": "healthy", "actions": []}}
    assert compare.advised_changes({"config": config, "verdicts": verdicts})[2] == {"caption_loss_weight": "2.0"}
    assert compare.advised_changes({"config": config, "verdicts": {}, "findings": []}) is None


def test_the_follow_up_command_repeats_the_runs_own_fields_with_the_advice_and_parses(tmp_path, capsys):
    out = finished(tmp_path, [finding("not_learning", "raise learning_rate from 1e-06 to 1e-05: too small")])
    assert compare.main(["follow", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "advice (training_health/not_learning): raise learning_rate from 1e-06 to 1e-05: too small"
    command = printed[1].removeprefix("follow-up: ").split()
    assert command[:2] == ["python", "train_wandb.py"] or command[1].endswith("train_wandb.py")
    assert "--learning_rate=1e-05" in command and f"--out_dir={out}_follow" in command
    assert "--image_size=64" in command and "--weight_decay=0.5" in command  # the run's own, away from defaults
    assert not any(a.startswith(("--dropout", "--entity", "--resume")) for a in command)  # defaults stay out
    cfg, wcfg, _ = parse_args(command[2:])  # train_wandb.py accepts it as it is
    assert cfg.learning_rate == 1e-05 and cfg.out_dir == f"{out}_follow" and wcfg.mode == "offline"


def test_a_run_with_nothing_to_follow_exits_2_with_one_line(tmp_path, capsys):
    assert compare.main(["follow", str(finished(tmp_path))]) == 2
    assert "nothing to follow" in capsys.readouterr().out
    assert compare.main(["follow", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_the_sweep_draws_are_seeded_and_inside_sweep_yamls_ranges():
    import yaml
    draws = diagnose.sweep_draws(8)
    assert draws == diagnose.sweep_draws(8) and draws != diagnose.sweep_draws(8, seed=1)
    parameters = yaml.safe_load((diagnose.REPO_DIR / "sweep.yaml").read_text())["parameters"]
    for args in draws:
        cfg, _, _ = parse_args(args)
        for name, spec in parameters.items():
            value = getattr(cfg, name)
            assert value in spec["values"] if "values" in spec else spec["min"] * 0.999 <= value <= spec["max"] * 1.001


@pytest.mark.parametrize("first,last,behind,good", [(11.0, 2.0, {}, True), (11.0, 6.0, {}, False),
                                                    (11.0, 2.0, {"i2t_r1": 0.01}, False)])
def test_a_healthy_outcome_needs_the_loss_halved_and_every_measure_above_its_baseline(tmp_path, first, last,
                                                                                      behind, good):
    (tmp_path / "metrics.csv").write_text(f"global_step,train/loss_total\n10,{first}\n20,{last}\n")
    summary = {"config": {"out_dir": str(tmp_path)}, "final_train": {"loss_total": last},
               "final_val": {"i2t_r1": 0.2, **behind}, "baseline": {"i2t_r1": 0.05}}
    assert diagnose.good_outcome(diagnose.Outcome("x", summary))[0] is good


def test_the_benchmarks_follow_up_runs_on_the_seed_of_the_run_it_follows(monkeypatch):
    calls = []

    def fake_run(name, scenario, scale=1.0, out_dir=None, extra=(), reuse=False):
        calls.append((name, list(extra)))
        return diagnose.Outcome(name, summary={"verdicts": {"training_health": {"status": "healthy"}}})

    monkeypatch.setattr(diagnose, "run", fake_run)
    outcome = diagnose.Outcome("low_lr_s1", summary={
        "config": {"learning_rate": 1e-06},
        "findings": [finding("not_learning", "raise learning_rate from 1e-06 to 0.001: the steps are too small")]})
    changes, fixed = diagnose.follow_up("low_lr_s1", diagnose.SCENARIOS["low_lr"], outcome, 0.5, "out",
                                        seeded=["--seed=1"])
    assert calls == [("low_lr_s1_follow", ["--seed=1", "--learning_rate=0.001"])]
    assert changes == "--learning_rate=0.001" and fixed
