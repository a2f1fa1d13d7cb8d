"""The health checks on the history of a real run (tests/runs/README.md): what they say must be right there,
not only on hand-made histories."""
import csv
import math
from pathlib import Path

import pytest

from checkpoints import BestCheckpoint
from health import HealthConfig, replay
from health.training import swing
from report import best_checkpoint_sentence, run_facts, write_report
from train_wandb import Config, WandBConfig, flat_config, parse_args

RUNS = Path(__file__).parent / "runs"


def read_rows(name):
    with open(RUNS / name, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def h200_rows():
    return read_rows("h200_default_100_epochs.csv")


def h200_config(health):
    """The run's config: the defaults, and what the run logged beside them (tests/runs/README.md)."""
    levels = {"loss_image": 0.06175, "loss_caption": math.log(1029), "loss_alignment": math.log(128)}
    return {**flat_config(Config(), WandBConfig(), health), "total_steps": 3600, "alignment_floor": 0.0,
            "reference_levels": levels}


def h200_run(**health):
    """(monitor, findings by code) after replaying the default config's 100 epochs on one H200."""
    config = HealthConfig(**health)
    return replayed(h200_rows(), h200_config(config), config)


def replayed(rows, run_config, health):
    """(monitor, findings by code) after replaying a run's rows through the health checks."""
    monitor = replay(rows, run_config, health)
    return monitor, {f.code: f for f in monitor.findings}


@pytest.fixture(scope="module")
def default_run():
    return h200_run()


def test_a_memorising_run_is_healthy_in_training_and_warned_of_overfitting(default_run):
    monitor, codes = default_run
    verdicts = monitor.verdicts()
    assert {name: v.status for name, v in verdicts.items()} == {
        "training_health": "healthy", "dominant_loss": "healthy", "latent_space": "healthy",
        "overfitting": "warning", "hardware": "healthy"}
    # the live run warned at epoch 7 (step 252), while val loss_total was still falling to its best at epoch 8;
    # the gap rule now waits for 3 epochs without a better one, and notes the gap as info until then
    assert codes["generalization_gap"].step == 252 and codes["generalization_gap"].severity == "info"
    assert codes["overfitting"].step == 396  # epoch 11
    # since its best epoch only the caption loss rose: the warning says so, and does not advise stopping there
    assert codes["overfitting"].message.endswith(
        "no better val loss_total since epoch 8 (2.207); it rose in loss_caption 1.564 -> 1.76; "
        "val loss_image 0.06079 -> 0.04399, loss_alignment 0.5818 -> 0.4866 still fell")
    assert "keep num_epochs" in codes["overfitting"].action and "lower num_epochs" not in codes["overfitting"].action
    assert "val loss_caption: best 1.535 at epoch 7, last 4.259" in verdicts["overfitting"].evidence


def test_the_rise_is_named_in_the_caption_loss_and_stopping_early_is_not_advised(default_run):
    """Val loss_total rose from epoch 8 only through loss_caption; image and alignment still fell (and retrieval
    kept improving to epoch 100), so 'lower num_epochs to 8' would have been wrong advice."""
    rising = default_run[1]["val_rising"]
    assert rising.step == 396
    assert "it rose in loss_caption 1.564 -> 1.76" in rising.message
    assert "val loss_image 0.06079 -> 0.04399, loss_alignment 0.5818 -> 0.4866 still fell" in rising.message
    assert "set dropout from 0 to 0.1" in rising.action
    assert "lower num_epochs" not in rising.action and "would give up loss_image, loss_alignment" in rising.action


def raw_swings(rows, health):
    """{global_step: swing of loss_total over the oscillation_windows train windows up to it}, every logged window
    counted as one, as the checks did before an epoch's short windows were joined."""
    steps, losses = zip(*[(r["global_step"], r["train/loss_total"]) for r in rows if "train/loss_total" in r])
    n = health.oscillation_windows
    return {steps[i]: swing(losses[i - n + 1: i + 1]) for i in range(health.warmup_windows + n, len(losses))}


def test_the_live_oscillation_false_alarm_came_from_the_short_windows_at_epoch_ends():
    """Live, loss_oscillation fired at step 1560 on windows holding an epoch's 2-step tail and 8-step head
    (36 steps an epoch, windows of 10), each as noisy as its few batches. Joined into whole windows, the swing
    stays under the threshold even without the convergence gate, and nothing else takes its place."""
    health = HealthConfig(converged_fraction=0.0)
    assert raw_swings(h200_rows(), health)[1560] > health.oscillation_swing  # the live run's alarm, window by window
    monitor, codes = h200_run(converged_fraction=0.0)
    whole, n = monitor.history.whole_losses, health.oscillation_windows
    assert max(swing(whole[i - n: i]) for i in range(n, len(whole) + 1)) < health.oscillation_swing
    assert "loss_oscillation" not in codes and "loss_plateau" not in codes
    assert monitor.verdicts()["training_health"].status == "healthy"


def test_the_report_says_last_pt_beats_best_pt_on_retrieval_and_reconstruction(tmp_path):
    """best.pt (epoch 8, the lowest val loss_total) reconstructs no better than the mean image (PSNR 12.5 dB, the
    baseline's); the last epoch gets 15.0 dB and R@1 0.76. The report must say so, not leave best.pt as the
    obvious choice."""
    rows = h200_rows()
    sentence = best_checkpoint_sentence(run_facts(tmp_path, rows, {}))
    assert sentence.startswith("best.pt holds epoch 8, the lowest val loss_total, but at the last epoch 11 of 17 ")
    for move in ("i2t_r1 0.66 → 0.761", "psnr 12.5 → 15", "ssim 0.305 → 0.55", "grounded_object 0.111 → 0.15"):
        assert move in sentence, move
    write_report(tmp_path, rows, None, {"config": h200_config(HealthConfig())})
    assert sentence in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("metric, epoch, value", [("loss_total", 8, 2.2069), ("i2t_r1", 96, 0.77237),
                                                  ("psnr", 92, 15.018)])
def test_best_metric_on_the_real_run_moves_best_pt_to_where_that_measure_peaked(tmp_path, metric, epoch, value):
    """--best_metric=i2t_r1 on that run: best.pt would hold epoch 96 (R@1 0.772), not epoch 8 (R@1 0.66, PSNR
    at the baseline's 12.5 dB), and the report then finds fewer measures on which last.pt is better."""
    rows = h200_rows()
    best = BestCheckpoint(metric)
    for val in [{k[4:]: v for k, v in row.items() if k.startswith("val/")} for row in rows if "val/epoch" in row]:
        best.offer(round(val["epoch"]), val)
    assert (best.epoch, best.value) == (epoch, pytest.approx(value))
    facts = run_facts(tmp_path, rows, {"best_epoch": best.epoch, "config": {"best_metric": metric}})
    ahead = best_checkpoint_sentence(facts).split(" of 17 ")[0].rsplit(" ", 1)[1]
    assert int(ahead) == {"loss_total": 11, "i2t_r1": 7, "psnr": 10}[metric]
    sentence = best_checkpoint_sentence(facts)
    assert f" {metric} " not in " " + sentence.split("(", 2)[-1]  # never better at the last epoch on the chosen one
    if metric == "psnr":  # values equal to 3 digits get as many more as tell them apart, not "0.266 → 0.266"
        assert "cider_d 0.26567 → 0.26568" in sentence


@pytest.mark.parametrize("metric, patience, ran, best_epoch, best_value", [
    ("loss_total", 10, 18, 8, 2.2069),  # the caption loss memorises from epoch 8: R@1 0.66 kept, 0.77 given up
    ("i2t_r1", 10, 20, 10, 0.69261),  # R@1 stalls within its noise from epoch 10 to 20, then climbs again
    ("i2t_r1", 20, 100, 96, 0.77237),  # patience enough to see it through
])
def test_early_stopping_on_the_real_run_ends_where_patience_runs_out(metric, patience, ran, best_epoch, best_value):
    """--early_stopping_patience on that run, with the Trainer's rule (asked before each epoch): on the val loss
    it would have ended at epoch 18; on a share as noisy as R@1, even 10 epochs of patience end it too soon."""
    best, stopped_after = BestCheckpoint(metric), 100
    epochs = [row for row in h200_rows() if "val/epoch" in row]
    for val in [{k[4:]: v for k, v in row.items() if k.startswith("val/")} for row in epochs]:
        epoch = round(val["epoch"])
        if best.out_of_patience(epoch - 1, patience):
            stopped_after = epoch - 1
            break
        best.offer(epoch, val)
    assert (stopped_after, best.epoch, best.value) == (ran, best_epoch, pytest.approx(best_value))


def test_with_the_split_counted_the_best_pt_sentence_drops_shares_that_moved_within_their_noise(tmp_path):
    """The run predates val/items; with its 514 validation items added, the shares that moved less than two
    standard errors since epoch 8 (i2t_r5 0.946 -> 0.949, grounded_count 0.0914 -> 0.117, ...) are no longer
    named; retrieval at R@1, the object and its position, and the reconstructions still are."""
    rows = h200_rows()
    for row in rows:
        if "val/epoch" in row:
            row["val/items"] = row["val/grounded_items"] = 514.0
    sentence = best_checkpoint_sentence(run_facts(tmp_path, rows, {}))
    assert sentence == (
        "best.pt holds epoch 8, the lowest val loss_total, but at the last epoch 6 of 17 measures are better than "
        "there (i2t_r1 0.66 → 0.761, t2i_r1 0.607 → 0.747, psnr 12.5 → 15, ssim 0.305 → 0.55, grounded_object "
        "0.111 → 0.15, grounded_position 0.0447 → 0.07; a share counts only by more than two standard errors): "
        "for them, last.pt is the better model.")


# -- the quick preset on a 2-core CPU ----------------------------------------------------------------------------

def quick_run():
    """(monitor, findings by code) after replaying the quick preset's 20 epochs (tests/runs/README.md)."""
    config = HealthConfig()
    cfg, wcfg, _ = parse_args(["--preset=quick"])
    levels = {"loss_image": 0.040408, "loss_caption": math.log(1029), "loss_alignment": math.log(64)}
    run_config = {**flat_config(cfg, wcfg, config), "total_steps": 1440, "alignment_floor": 0.0,
                  "reference_levels": levels}
    return replayed(read_rows("cpu_quick_preset_20_epochs.csv"), run_config, config)


def test_the_quick_preset_warns_that_its_alignment_memorises_and_does_not_advise_stopping_early():
    """Val loss_total has its best at epoch 16, then only loss_alignment rises (the contrastive loss remembers
    the training pairs) while loss_caption and loss_image reach their best at the last epoch: a real
    overfitting of one component, so a warning; stopping at epoch 16 would give up the other two."""
    monitor, codes = quick_run()
    assert {name: v.status for name, v in monitor.verdicts().items()} == {
        "training_health": "healthy", "dominant_loss": "healthy", "latent_space": "healthy",
        "overfitting": "warning", "hardware": "healthy"}
    warning = codes["overfitting"]
    assert warning.step == 1368  # epoch 19: three epochs without a better val loss_total than epoch 16's
    assert "no better val loss_total since epoch 16 (2.29); it rose in loss_alignment 0.7525 -> " in warning.message
    assert warning.message.endswith("still fell") and "loss_caption" in warning.message.split("; val ")[-1]
    assert "keep num_epochs" in warning.action and "lower num_epochs" not in warning.action


# -- runs of this session's code (tests/runs/README.md): their run config is stored beside them ----------------

def stored_run(name):
    """(monitor, findings by code) after replaying a stored run with its own stored run config."""
    import json
    return replayed(read_rows(f"{name}.csv"), json.loads((RUNS / f"{name}.json").read_text()), HealthConfig())


def test_the_readmes_first_command_on_seed_0_ends_with_five_healthy_verdicts_and_no_warning():
    monitor, codes = stored_run("cpu_quick_preset_seed0")
    assert {v.status for v in monitor.verdicts().values()} == {"healthy"}
    assert [f.severity for f in monitor.findings] == ["info"]  # the generalization gap, which is no alert
    gap = codes["generalization_gap"]
    assert "within the noise of it" in gap.message  # 1 epoch past its best, by less than the noise


def test_a_far_too_low_rate_is_named_first_within_the_first_quarter_with_a_usual_rate():
    monitor, codes = stored_run("cpu_quick_preset_lr1e-6")
    first = monitor.findings[0]
    assert first.code == "not_learning" and first.step <= 0.25 * 1440
    assert first.action.startswith("raise learning_rate from 1e-06 to 0.001")
    assert "loss_plateau" not in codes  # one cause, one finding
    latent = monitor.verdicts()["latent_space"]
    if latent.status == "warning":  # then it points to the same cause
        assert latent.actions == [first.action]


def test_a_weight_decay_of_100_is_named_first_and_the_collapse_it_causes_is_blamed_on_it():
    monitor, codes = stored_run("cpu_over_regularised")
    first = monitor.findings[0]
    assert first.code == "weight_decay_too_high" and first.action == "lower weight_decay from 100.0 to 0.5"
    assert codes["latent_collapse"].action.startswith("lower weight_decay from 100.0 to 0.5")


def test_a_batch_16_run_is_not_called_oscillating_for_one_batchs_window_at_an_epochs_start():
    """sweep_6 of the healthy population (batch 16, learning rate 1.9e-3; tests/runs/README.md) drew
    loss_oscillation at step 3,200: the window at step 3,180 held the first step of epoch 12 alone, at loss_total
    1.79 among windows near 1.0. With an epoch's tail and head joined, the run ends as it measured: healthy."""
    monitor, codes = stored_run("cpu_batch16_sweep_draw")
    rows = read_rows("cpu_batch16_sweep_draw.csv")
    assert raw_swings(rows, HealthConfig())[3200] > HealthConfig().oscillation_swing  # the live alarm
    assert {v.status for v in monitor.verdicts().values()} == {"healthy"}
    assert [f.severity for f in monitor.findings] == ["info"] * len(monitor.findings)
