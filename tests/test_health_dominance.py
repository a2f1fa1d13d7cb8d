"""health/dominance.py: each loss component against its own reference and floor, not in raw units."""
import math

from health_rows import RUN_CONFIG, by_code, history, observe, set_losses

# a quick-preset-like run: pixel MSE starts at the mean image's level, the cross-entropies at chance
LEVELS = {"loss_image": 0.05, "loss_caption": math.log(52), "loss_alignment": math.log(64)}
FLOOR = 2.4  # alignment: identical captions in a batch cannot be told apart


def quick_like(t):
    d = math.exp(-t / 8)
    return {"image": 0.03 + 0.02 * d, "caption": 0.3 + 3.6 * d, "alignment": FLOOR + 0.2 + 1.5 * d}


def test_an_alignment_loss_resting_on_its_floor_does_not_dominate_a_healthy_run():
    config = {**RUN_CONFIG, "reference_levels": LEVELS, "alignment_floor": FLOOR}
    rows = set_losses(history(), quick_like)
    last = rows[-2]  # the last train row: alignment is ~90% of the raw loss_total, yet nearly solved
    assert last["train/loss_alignment"] / last["train/loss_total"] > 0.85
    monitor, findings = observe(rows, config)
    assert "dominant_component" not in by_code(findings)
    verdict = monitor.verdicts()["dominant_loss"]
    assert verdict.status == "healthy" and "image" in verdict.summary  # furthest from solved, by its own levels
    assert "share of the weighted ranges" in "\n".join(verdict.evidence)


def test_a_caption_weight_of_30_dominates_and_is_lowered_while_image_and_alignment_stall():
    weights = {"image": 1.0, "caption": 30.0, "alignment": 1.0}
    config = {**RUN_CONFIG, "caption_loss_weight": 30.0, "reference_levels": LEVELS, "alignment_floor": FLOOR}

    def stalled(t):
        d = math.exp(-t / 8)
        return {"image": 0.048 + 0.002 * d, "caption": 0.3 + 3.6 * d, "alignment": 4.1 + 0.05 * d}

    monitor, findings = observe(set_losses(history(), stalled, weights), config)
    dominant = by_code(findings)["dominant_component"]
    assert dominant.analysis == "dominant_loss" and dominant.message.startswith("caption (weight 30.0)")
    assert dominant.action.startswith("lower caption_loss_weight from 30.0 to ")
    new_weight = float(dominant.action.split(" to ")[1].split()[0])
    assert 0.2 <= new_weight <= 2.0  # caption's weighted range back to about the others'
    verdict = monitor.verdicts()["dominant_loss"]
    assert verdict.status == "warning" and verdict.actions[0].startswith("lower caption_loss_weight from 30.0")


def test_without_reference_levels_the_first_window_is_the_reference():
    weights = {"image": 1.0, "caption": 30.0, "alignment": 1.0}

    def stalled(t):
        return {"image": 0.05, "caption": 0.3 + 3.6 * math.exp(-t / 8), "alignment": 4.1}

    config = {**RUN_CONFIG, "caption_loss_weight": 30.0}
    assert "caption_loss_weight" in by_code(observe(set_losses(history(), stalled, weights), config)[1])[
        "dominant_component"].action


def test_a_component_that_dominates_while_the_others_learn_is_left_alone():
    weights = {"image": 1.0, "caption": 30.0, "alignment": 1.0}
    config = {**RUN_CONFIG, "caption_loss_weight": 30.0, "reference_levels": LEVELS, "alignment_floor": FLOOR}
    assert "dominant_component" not in by_code(observe(set_losses(history(), quick_like, weights), config)[1])
