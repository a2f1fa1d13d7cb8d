"""health/overfitting.py: the gap between validation and training loss, epoch by epoch."""
from health.core import action_changes
from health_rows import RUN_CONFIG, by_code, history, observe, val_rows

VAL_TOTAL = [3.0, 2.5, 2.3, 2.5, 2.7, 2.9]  # falls to epoch 3, then rises 3 epochs in a row


def set_val(rows, image, alignment, totals=VAL_TOTAL):
    """val loss_total from totals; image and alignment per epoch, caption the rest (all weights 1)."""
    for epoch, row in enumerate(val_rows(rows), 1):
        total, img, align = totals[epoch - 1], image[epoch - 1], alignment[epoch - 1]
        row.update({"val/loss_total": total, "val/loss_image": img, "val/loss_alignment": align,
                    "val/loss_caption": total - img - align})
    return rows


def test_val_loss_rising_3_epochs_while_train_falls_is_overfitting_stopped_at_the_best_epoch_first():
    rows = set_val(history(), image=[t / 3 for t in VAL_TOTAL], alignment=[t / 3 for t in VAL_TOTAL])
    monitor, findings = observe(rows)
    codes = by_code(findings)
    assert {"overfitting", "val_rising"} <= set(codes)
    for code in ("overfitting", "val_rising"):
        assert "raise weight_decay from 0.05 to 0.1" in codes[code].action
    # the gap opens at epoch 4, one epoch past the best; overfitting once 3 epochs have brought no better val loss
    gap = codes["generalization_gap"]
    assert gap.severity == "info" and gap.message.startswith("epoch 4:")
    assert "1 epoch past its best (2.3 at epoch 3): not yet overfitting" in gap.message
    assert codes["overfitting"].message.startswith("epoch 6:")
    assert ("and no better val loss_total since epoch 3 (2.3); it rose in loss_image 0.7667 -> 0.9667, loss_caption"
            in codes["overfitting"].message)  # the rise since the best epoch, split into its components
    for code in ("overfitting", "val_rising"):  # every component rose: stop at the best epoch
        assert codes[code].action.startswith("lower num_epochs from 6 to 3 (best.pt holds epoch 3, val 2.3)")
        assert action_changes(codes[code].action) == {"num_epochs": "3"}  # what a follow-up run applies
        assert "still fell" not in codes[code].message
    assert "it rose in loss_image 0.7667 -> 0.9667, loss_caption" in codes["val_rising"].message
    verdict = monitor.verdicts()["overfitting"]
    assert verdict.status == "warning" and verdict.table[0][:3] == ["epoch", "train loss_total", "val loss_total"]
    assert "val rising" in verdict.rule
    assert "val loss_caption: best 0.7667 at epoch 3, last 0.9667" in verdict.evidence


def test_a_wide_gap_while_val_loss_still_reaches_new_bests_is_a_generalization_gap_not_overfitting():
    """The quick preset without dropout: val loss_total 48% above train at the end, yet at its best."""
    rows = history()
    for epoch, row in enumerate(val_rows(rows), 1):
        row["val/loss_total"] = 9.0 - epoch  # a new best every epoch, far above the training loss
    monitor, findings = observe(rows)
    codes = by_code(findings)
    assert "overfitting" not in codes and "val_rising" not in codes
    assert codes["generalization_gap"].severity == "info"
    assert "val loss_total at its best so far: not yet overfitting" in codes["generalization_gap"].message
    verdict = monitor.verdicts()["overfitting"]
    assert verdict.status == "healthy"
    assert verdict.summary.endswith("above train, but never 3 epochs without a new best: a generalization gap, "
                                    "not overfitting")


def test_a_rise_in_one_component_while_another_still_falls_does_not_advise_stopping_early():
    """The caption decoder memorises (val loss_caption rises) while the image side still learns: stopping at
    the best val loss_total would give the image side up, as on the real H200 run (test_health_real_runs)."""
    falling = [0.6, 0.5, 0.45, 0.4, 0.35, 0.3]
    rows = set_val(history(), image=falling, alignment=[0.5] * 6)
    codes = by_code(observe(rows)[1])
    rising = codes["val_rising"]
    assert "it rose in loss_caption 1.35 -> 2.1" in rising.message
    assert "val loss_image 0.45 -> 0.3 still fell" in rising.message
    assert "alignment" not in rising.message  # neither rose nor fell
    assert "lower num_epochs" not in rising.action
    assert "stopping at epoch 3 (best.pt, by val loss_total) would give up loss_image" in rising.action


def test_when_best_pt_follows_a_measure_the_advice_does_not_say_best_pt_holds_the_lowest_val_loss():
    rows = set_val(history(), image=[t / 3 for t in VAL_TOTAL], alignment=[t / 3 for t in VAL_TOTAL])
    by_loss = by_code(observe(rows)[1])["val_rising"].action
    assert "lower num_epochs from 6 to 3 (best.pt holds epoch 3, val 2.3)" in by_loss
    assert "or set early_stopping_patience" in by_loss  # it would follow val loss_total, as best.pt does
    by_r1 = by_code(observe(rows, {**RUN_CONFIG, "best_metric": "i2t_r1"})[1])["val_rising"].action
    assert "best.pt" not in by_r1
    assert "lower num_epochs from 6 to 3 (the lowest val loss_total is at epoch 3, val 2.3)" in by_r1
    assert "early_stopping_patience" not in by_r1  # it would follow i2t_r1, not the loss


def with_noise(rows, se):
    """Every validation row logs the same standard error for each loss (val/<loss>_se)."""
    for row in val_rows(rows):
        row.update({f"val/loss_{name}_se": se for name in ("total", "image", "caption", "alignment")})
    return rows


def test_a_rise_inside_the_noise_is_no_finding_and_the_same_rise_at_3x_the_noise_is_one():
    """VAL_TOTAL rises 0.6 from its best (epoch 3) to epoch 6; the noise of a difference is 2 x sqrt(2) x se."""
    thirds = [t / 3 for t in VAL_TOTAL]
    inside = 0.6 / (2 * 2 ** 0.5) * 1.5  # the rise is 2/3 of the noise
    codes = by_code(observe(with_noise(set_val(history(), thirds, thirds), inside))[1])
    assert "overfitting" not in codes and "val_rising" not in codes
    assert "within the noise of it" in codes["generalization_gap"].message
    beyond = 0.6 / (2 * 2 ** 0.5) / 3  # the rise is 3x the noise
    codes = by_code(observe(with_noise(set_val(history(), thirds, thirds), beyond))[1])
    assert {"overfitting", "val_rising"} <= set(codes)


def test_a_component_that_moved_less_than_its_noise_is_named_neither_rising_nor_falling():
    falling = [0.6, 0.5, 0.45, 0.4, 0.35, 0.3]  # loss_image falls 0.15 from epoch 3 to 6
    codes = by_code(observe(set_val(history(), image=falling, alignment=[0.5] * 6))[1])
    assert "val loss_image 0.45 -> 0.3 still fell" in codes["val_rising"].message  # without noise: named
    noisy = with_noise(set_val(history(), image=falling, alignment=[0.5] * 6), 0.1)  # noise 0.28 > 0.15
    for row in val_rows(noisy):
        row["val/loss_total_se"] = 0.01  # loss_total's own rise (0.6) is far beyond its noise
    rising = by_code(observe(noisy)[1])["val_rising"]
    assert "loss_image" not in rising.message and "it rose in loss_caption" in rising.message


def test_a_new_best_after_an_overfitting_warning_resolves_it_and_the_verdict_is_the_final_state():
    totals = VAL_TOTAL + [2.0]  # epoch 7: a new best, below epoch 3's 2.3
    rows = set_val(history(epochs=7), [t / 3 for t in totals], [t / 3 for t in totals], totals)
    monitor, findings = observe(rows)
    warnings = [f for f in findings if f.code in ("overfitting", "val_rising")]
    assert warnings and all(f.resolved.startswith("at epoch 7") for f in warnings)
    assert "a new best val loss_total 2" in warnings[0].resolved and "[resolved at epoch 7" in str(warnings[0])
    verdict = monitor.verdicts()["overfitting"]
    assert verdict.status == "healthy"
    assert "resolved: overfitting at step" in verdict.summary
    assert any(e.startswith("val_rising at step") and "resolved at epoch 7" in e for e in verdict.evidence)


def test_overfitting_that_returns_after_a_new_best_is_reported_again_within_the_alert_interval():
    totals = VAL_TOTAL + [2.0, 2.6, 2.9, 3.2]  # epoch 7 a new best, then three epochs above it
    rows = set_val(history(epochs=10), [t / 3 for t in totals], [t / 3 for t in totals], totals)
    monitor, findings = observe(rows)  # the clock stands still: only a resolution lets a code through again
    overfits = [f for f in findings if f.code == "overfitting"]
    assert len(overfits) == 2 and overfits[0].resolved.startswith("at epoch 7") and not overfits[1].resolved
    assert overfits[1].message.startswith("epoch 10:")
    assert monitor.verdicts()["overfitting"].status == "warning"
