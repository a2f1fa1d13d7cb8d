"""The health monitor's interface: findings, their rate limit, verdicts, its history, HealthConfig. The checks of
each analysis are tested in tests/test_health_*.py."""
import dataclasses
import typing

from health import ANALYSES, HealthConfig, HealthMonitor
from health_rows import EPOCHS, RUN_CONFIG, history, observe, set_train, train_rows


def test_a_smooth_healthy_run_raises_no_finding_and_every_verdict_is_healthy():
    monitor, findings = observe(history())
    assert findings == []
    verdicts = monitor.verdicts()
    assert set(verdicts) == set(ANALYSES)
    assert {a: v.status for a, v in verdicts.items()} == dict.fromkeys(ANALYSES, "healthy")
    assert any("share of the weighted ranges" in line for line in verdicts["dominant_loss"].evidence)
    assert all(v.rule for v in verdicts.values())  # each verdict says how it decides
    assert len(verdicts["overfitting"].table) == EPOCHS + 1  # header + one row per epoch


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


def test_a_long_run_keeps_only_plain_floats_in_the_history():
    """The monitor's memory grows by a few floats a window (its speed is benchmarked, not timed here)."""
    rows = train_rows(history(epochs=100, windows=30))
    monitor = HealthMonitor(HealthConfig(), RUN_CONFIG)
    for row in rows:
        monitor.observe(row)
    series = [*monitor.history.train.values(), *monitor.history.settled.values()]
    assert all(type(v) is float for values in series for v in values)
    assert sum(len(values) for values in series) * 8 < 1e6  # under 1 MB of values for 3000 windows
    assert max(len(values) for values in series) == len(rows)


def test_health_config_fields_are_plain_overridable_values_that_clash_with_no_training_field(config_annotations):
    training_fields = set(config_annotations)
    types = typing.get_type_hints(HealthConfig)
    for f in dataclasses.fields(HealthConfig):
        assert types[f.name] in (int, float, bool), f.name
        assert type(f.default) is types[f.name], f.name  # train_wandb.py parses overrides by the field's type
        assert f.name not in training_fields, f.name
