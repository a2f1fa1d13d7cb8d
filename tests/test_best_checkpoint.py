"""checkpoints.BestCheckpoint: which epoch best.pt holds under --best_metric, and evaluation.better, the one
definition of which way each validation loss and measure improves; best.pt written once, beside last.pt."""
import math

import pytest
import torch
import wandb

import checkpoints as checkpoints_module
from checkpoints import BestCheckpoint, CheckpointError, check_resume
from evaluation import BEST_METRICS, LOSSES, VAL_MEASURES, better
from logger import RunLogger


def offer_all(metric, values):
    """Offer one value an epoch (epochs 1, 2, ...) -> (whether each became best, the epoch best.pt holds)."""
    best = BestCheckpoint(metric)
    taken = [best.offer(epoch, {metric: value}) for epoch, value in enumerate(values, 1)]
    return taken, best.epoch


@pytest.mark.parametrize("metric, values, taken, epoch", [
    ("loss_total", [3.0, 2.5, 2.7, 2.5], [True, True, False, False], 2),  # lowest; a tie keeps the earlier epoch
    ("loss_caption", [1.6, 1.9, 4.3], [True, False, False], 1),
    ("i2t_r1", [0.1, 0.3, 0.2], [True, True, False], 2),  # highest
    ("psnr", [12.5, 12.4, 15.0], [True, False, True], 3),
    ("i2t_median_rank", [5.0, 3.0, 4.0], [True, True, False], 2),  # a rank: lowest
])
def test_best_pt_follows_the_best_value_of_the_chosen_metric_in_its_direction(metric, values, taken, epoch):
    assert offer_all(metric, values) == (taken, epoch)


def test_a_missing_or_non_finite_value_never_becomes_best_and_keeps_the_best_so_far():
    best = BestCheckpoint("i2t_r1")
    assert not best.offer(1, {"loss_total": 2.0})  # not measured
    assert not best.offer(2, {"i2t_r1": math.nan})
    assert best.summary() == {"best_metric": "i2t_r1", "best_value": None, "best_epoch": 0}
    assert best.offer(3, {"i2t_r1": 0.2})
    assert not best.offer(4, {"i2t_r1": math.inf})
    assert best.summary() == {"best_metric": "i2t_r1", "best_value": 0.2, "best_epoch": 3}


@pytest.mark.parametrize("values, patience, stops_before", [
    ([3.0, 2.5, 2.7, 2.6, 2.4], 2, 5),  # epochs 3 and 4 no better than epoch 2: stop before the 5th
    ([3.0, 2.5, 2.7, 2.6, 2.4], 3, None),  # epoch 5 improves in time
    ([3.0, 3.0, 3.0], 1, 3),  # a tie is no improvement
    ([math.nan, math.nan, 1.0], 2, 3),  # never finite counts from the start
    ([3.0, 4.0, 5.0, 6.0], 0, None),  # 0: never
])
def test_early_stopping_runs_out_of_patience_after_that_many_epochs_without_a_better_value(
        values, patience, stops_before):
    best, stopped = BestCheckpoint("loss_total"), None
    for epoch, value in enumerate(values, 1):
        if best.out_of_patience(epoch - 1, patience):  # the Trainer asks before each epoch
            stopped = epoch
            break
        best.offer(epoch, {"loss_total": value})
    assert stopped == stops_before


def test_the_state_round_trips_and_an_older_checkpoint_is_read_as_chosen_by_val_loss():
    best = BestCheckpoint("psnr")
    best.offer(4, {"psnr": 15.5})
    again = BestCheckpoint("psnr")
    again.load_state_dict({**best.state_dict(), "best_val_loss": 2.0})
    assert again.summary() == best.summary()
    old = BestCheckpoint()  # a checkpoint from before best_metric: best_val_loss and best_epoch only
    old.load_state_dict({"best_val_loss": 2.4749, "best_epoch": 8})
    assert (old.value, old.epoch) == (2.4749, 8)
    assert not old.offer(9, {"loss_total": 2.5}) and old.offer(10, {"loss_total": 2.4})
    unset = BestCheckpoint()
    unset.load_state_dict({"best_val_loss": math.inf, "best_epoch": 0})  # stopped before the first validation
    assert unset.value is None and unset.offer(1, {"loss_total": 9.0})


def test_losses_and_median_ranks_are_better_lower_and_every_other_measure_higher():
    for name in LOSSES + ("i2t_median_rank", "t2i_median_rank"):
        assert better(name, 1.0, 2.0) and not better(name, 2.0, 1.0), name
    for name in set(VAL_MEASURES) - {"i2t_median_rank", "t2i_median_rank"}:
        assert better(name, 2.0, 1.0) and not better(name, 1.0, 2.0), name
    assert not better("i2t_r1", 0.5, 0.5)  # equal is not better
    assert set(BEST_METRICS) == set(LOSSES) | set(VAL_MEASURES)


@pytest.mark.parametrize("name, value, baseline, items, clearly", [
    ("grounded_count", 0.049, 0.041, 514, False),  # the quick preset at batch 16: under one standard error (0.0087)
    ("grounded_object", 0.150, 0.076, 514, True),  # the default config on the H200: over six
    ("grounded_object", 0.094, 0.076, 514, False),  # 0.018 above: just under two (0.0234)
    ("grounded_object", 0.101, 0.076, 514, True),  # 0.025 above: just over
    ("grounded_object", 0.094, 0.076, None, True),  # no count logged (an older run): any amount, as before
    ("i2t_r1", 1 / 514, 0.0, 514, False),  # 1 of 514 right: chance (p kept at 1/514)
    ("i2t_r1", 0.010, 0.0, 514, True),
    ("psnr", 12.51, 12.5, 514, True),  # not a share: any amount
    ("i2t_median_rank", 233.0, 234.0, 514, True),  # lower is better, not a share
])
def test_a_share_is_clearly_better_than_its_baseline_only_by_more_than_two_standard_errors(
        name, value, baseline, items, clearly):
    from report import clearly_better
    assert clearly_better(name, value, baseline, items) is clearly


def test_the_word_probes_auc_is_clearly_better_only_by_more_than_two_of_its_logged_standard_errors():
    from report import clearly_ahead
    baseline = {"probe_word_auc": 0.5, "probe_kind": 0.06}
    val = {"probe_word_auc": 0.53, "probe_word_auc_se": 0.02, "probe_kind": 0.09, "grounded_items": 514.0}
    assert clearly_ahead(val, baseline) == ["probe_kind"]  # 0.03 above 0.5 is under two errors; 0.03 above 0.06 over
    assert clearly_ahead({**val, "probe_word_auc_se": 0.01}, baseline) == ["probe_word_auc", "probe_kind"]


def test_the_baseline_sentence_does_not_count_a_share_within_noise_of_its_baseline_as_learned():
    from report import baseline_sentence
    val = {"grounded_count": 0.049, "grounded_position": 0.025, "grounded_sky": 0.50, "psnr": 17.0,
           "items": 514.0, "grounded_items": 514.0}
    baseline = {"grounded_count": 0.041, "grounded_position": 0.021, "grounded_sky": 0.159, "psnr": 14.5}
    assert baseline_sentence({"final_val": val, "baseline": baseline}) == (
        "At the last epoch 2 of 4 measures are no better than their baseline (a share must beat it by two "
        "standard errors), so the model has learned nothing they can see: grounded_count, grounded_position.")
    without_counts = {k: v for k, v in val.items() if not k.endswith("items")}
    assert baseline_sentence({"final_val": without_counts, "baseline": baseline}) == (
        "At the last epoch every measure is better than its baseline.")


def test_a_resume_that_would_choose_best_pt_by_another_metric_is_refused():
    state = {"config": {"best_metric": "i2t_r1"}}
    with pytest.raises(CheckpointError, match="resume with --best_metric=i2t_r1"):
        check_resume(state, {"best_metric": "loss_total"})
    assert check_resume(state, {"best_metric": "i2t_r1"}) == {}
    with pytest.raises(CheckpointError, match="best val loss_total so far"):  # older checkpoints: by val loss
        check_resume({"config": {}}, {"best_metric": "psnr"})


@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "no-links-copy"])
def test_best_checkpoint_is_not_serialised_twice_and_keeps_its_epoch(assemble_trainer, tmp_path, monkeypatch, links):
    trainer = assemble_trainer(tmp_path, RunLogger(wandb.init(mode="disabled"), "disabled"), "--mode=disabled")
    batches = list(trainer.train_loader)
    if not links:  # a file system without hard links: best.pt is a copy
        monkeypatch.setattr(checkpoints_module.os, "link", lambda *a: (_ for _ in ()).throw(OSError("not supported")))
    saves = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: (saves.append(f), real_save(obj, f, *a, **k)))
    trainer.epoch = 1
    trainer.save_checkpoint()
    trainer.checkpoints.mark_best()
    assert len(saves) == 1  # best.pt is the same file, not a second serialisation of ~1 GB on the full model
    trainer.train_step(*batches[0])
    trainer.epoch = 2
    trainer.save_checkpoint()  # a later, worse epoch: best.pt must keep epoch 1
    trainer.checkpoints.wait()
    load = lambda name: torch.load(tmp_path / name, map_location="cpu", weights_only=True)  # noqa: E731
    best, last = load("best.pt"), load("last.pt")
    assert (best["epoch"], last["epoch"]) == (1, 2)
    assert best["step"] == last["step"] - 1
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
