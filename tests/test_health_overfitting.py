"""health/overfitting.py: the gap between validation and training loss, epoch by epoch."""
from health_rows import by_code, history, observe, val_rows


def test_val_loss_rising_3_epochs_while_train_falls_is_overfitting_with_a_weight_decay_action():
    rows = history()
    for epoch, row in enumerate(val_rows(rows), 1):
        row["val/loss_total"] = [3.0, 2.5, 2.3, 2.5, 2.7, 2.9][epoch - 1]
    monitor, findings = observe(rows)
    codes = by_code(findings)
    assert {"overfitting", "val_rising"} <= set(codes)
    for code in ("overfitting", "val_rising"):
        assert "raise weight_decay from 0.05 to 0.1" in codes[code].action
    assert codes["overfitting"].message.startswith("epoch 4:")  # the epoch the gap opened
    assert "epoch 3" in codes["val_rising"].action  # the best epoch, kept in best.pt
    verdict = monitor.verdicts()["overfitting"]
    assert verdict.status == "warning" and verdict.table[0][:3] == ["epoch", "train loss_total", "val loss_total"]
    assert "val rising" in verdict.rule
