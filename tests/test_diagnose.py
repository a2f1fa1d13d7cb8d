"""diagnose.py at reduced size: real training runs whose health verdicts must match the scenario."""
import json

import pytest

import diagnose

SCALE = 0.3  # 600 items: 24-32 steps a run, ~25 s on a quiet 2-core CPU
SHORT = ["--log_frequency=2"]  # windows of 2 steps, so the checks still see enough of them


@pytest.mark.slow
@pytest.mark.parametrize("name", ["healthy", "low_lr", "latent_collapse"])
def test_the_scenario_gets_the_expected_verdicts(name, tmp_path):
    scenario = diagnose.SCENARIOS[name]
    outcome = diagnose.run(name, scenario, SCALE, tmp_path, SHORT)
    assert not outcome.error, (tmp_path / f"{name}.log").read_text()[-2000:]
    rows, agree = diagnose.judge(scenario, outcome)
    assert agree, "\n".join(" | ".join(row) for row in rows)


def test_shuffled_pairs_keep_each_caption_with_its_truth_but_give_it_to_another_image(tmp_path):
    from data.imagefolder import read_metadata
    from train_wandb import BUNDLED_DATA_DIR
    copy = diagnose.shuffled_pairs_copy(tmp_path / "data", 50)
    source = read_metadata(diagnose.REPO_DIR / BUNDLED_DATA_DIR / "metadata.jsonl")[:50]
    shuffled = read_metadata(copy / "metadata.jsonl")
    assert [name for name, _, _ in shuffled] == [name for name, _, _ in source]  # the images keep their order
    assert all((copy / name).read_bytes() == (diagnose.REPO_DIR / BUNDLED_DATA_DIR / name).read_bytes()
               for name, _, _ in shuffled[:3])
    truth_of = {text: truth for _, text, truth in source}
    assert all(truth_of[text] == truth for _, text, truth in shuffled)  # a caption keeps its own truth
    moved = sum(a[1] != b[1] for a, b in zip(source, shuffled))
    assert moved >= 45  # a random permutation leaves about one item in place


def test_judge_names_the_first_finding_and_checks_its_action():
    scenario = diagnose.SCENARIOS["low_lr"]
    finding = {"analysis": "training_health", "code": "not_learning", "severity": "warning", "step": 30,
               "action": "raise learning_rate from 1e-06 to 1e-05", "message": ""}
    verdicts = {a: {"status": "healthy"} for a in diagnose.ANALYSES}
    summary = {"steps": 100, "findings": [finding], "verdicts": {**verdicts, "training_health": {"status": "warning"}}}
    rows, agree = diagnose.judge(scenario, diagnose.Outcome("low_lr", summary))
    assert agree and rows[0][3] == "not_learning@30"
    late = {**summary, "findings": [{**finding, "step": 80}]}
    assert not diagnose.judge(scenario, diagnose.Outcome("low_lr", late))[1]  # after half the run: too late


def test_an_unknown_scenario_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        diagnose.main(["--only=healthy,nope"])
    assert exit_info.value.code == 2 and "nope" in capsys.readouterr().err


def test_the_first_finding_is_right_only_in_the_scenarios_analysis_with_its_action():
    scenario = diagnose.SCENARIOS["over_regularised"]
    assert diagnose.target(scenario) == "training_health"
    decay = {"analysis": "training_health", "code": "weight_decay_too_high", "severity": "warning", "step": 20,
             "action": "lower weight_decay from 100.0 to 0.5", "message": ""}
    collapse = {"analysis": "latent_space", "code": "latent_collapse", "severity": "error", "step": 20,
                "action": "check the data first", "message": ""}
    gap = {**decay, "analysis": "overfitting", "code": "generalization_gap", "severity": "info"}
    assert diagnose.right_first(scenario, diagnose.Outcome("x", {"findings": [gap, decay, collapse]}))
    assert not diagnose.right_first(scenario, diagnose.Outcome("x", {"findings": [collapse, decay]}))
    data_fault = diagnose.SCENARIOS["shuffled_pairs"]  # seen in the latent verdict: right if nothing else spoke first
    assert diagnose.target(data_fault) == "latent_space"
    assert diagnose.right_first(data_fault, diagnose.Outcome("x", {"findings": []}))
    assert not diagnose.right_first(data_fault, diagnose.Outcome("x", {"findings": [decay]}))


def test_grad_spikes_multiply_every_nth_steps_gradients_by_100_through_the_prepare_hook():
    import types

    import torch

    weight = torch.nn.Parameter(torch.ones(3))
    trainer = types.SimpleNamespace(step=0, params=[weight])  # what the hook reads of the Trainer
    diagnose.grad_spikes(2)(trainer)
    grads = []
    for step in range(4):  # trainer.step counts the steps before the one in progress
        trainer.step, weight.grad = step, None
        weight.sum().backward()
        grads.append(weight.grad[0].item())
    assert grads == [1.0, 100.0, 1.0, 100.0]


def test_the_grad_spikes_scenario_trains_through_diagnose_and_the_others_through_train_wandb(tmp_path):
    spiked = diagnose.SCENARIOS["grad_spikes"].command(tmp_path / "out", 0.3)
    assert spiked[1:3] == [str(diagnose.REPO_DIR / "diagnose.py"), "--train-with-grad-spikes=20"]
    healthy = diagnose.SCENARIOS["healthy"].command(tmp_path / "out", 0.3)
    assert healthy[1] == str(diagnose.REPO_DIR / "train_wandb.py") and diagnose.SPIKED_TRAINING not in " ".join(healthy)


def outcome_with(tmp_path, first_loss, last_loss, val, baseline):
    (tmp_path / "metrics.csv").write_text(f"global_step,train/loss_total\n10,{first_loss}\n20,{last_loss}\n")
    return diagnose.Outcome("run", summary={"config": {"out_dir": str(tmp_path)},
                                            "final_train": {"loss_total": last_loss},
                                            "final_val": val, "baseline": baseline})


def test_a_healthy_outcome_halves_the_loss_and_beats_every_baseline_but_the_probes(tmp_path):
    val, baseline = {"psnr": 17.5, "probe_count": 0.05}, {"psnr": 14.5, "probe_count": 0.05}
    assert diagnose.good_outcome(outcome_with(tmp_path, 10.0, 2.0, val, baseline)) == (True, "")
    assert diagnose.good_outcome(outcome_with(tmp_path, 10.0, 6.0, val, baseline))[1].endswith("fell less than 50%")
    behind = diagnose.good_outcome(outcome_with(tmp_path, 10.0, 2.0, {**val, "psnr": 14.0}, baseline))
    assert behind == (False, "not above baseline: psnr")


def test_reuse_judges_a_finished_run_again_instead_of_training_it(tmp_path):
    """Its saved verdict said warning with a finding; replayed through the analyses of today it has neither."""
    run = tmp_path / "healthy"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({
        "config": {"learning_rate": 0.001, "total_steps": 60}, "steps": 60,
        "findings": [{"analysis": "training_health", "code": "loss_plateau", "severity": "warning"}],
        "verdicts": {"training_health": {"status": "warning"}}}))
    steps = range(2, 62, 2)
    (run / "metrics.csv").write_text("global_step,epoch,train/loss_total,train/lr\n" + "".join(
        f"{s},{s // 20},{5.0 * 0.97 ** s:.4f},0.001\n" for s in steps))
    outcome = diagnose.run("healthy", diagnose.SCENARIOS["healthy"], out_dir=tmp_path, reuse=True)
    assert outcome.seconds == 0 and outcome.summary["steps"] == 60  # read, not trained
    assert outcome.summary["findings"] == [] and outcome.summary["verdicts"]["training_health"]["status"] == "healthy"
