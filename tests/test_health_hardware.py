"""health/hardware.py: bottlenecks, with advice naming knobs that act in this trainer."""
from health_rows import by_code, history, observe, set_train


def test_waiting_half_the_time_for_data_is_input_bound_with_advice_that_acts():
    action = by_code(observe(set_train(history(), "data_time_fraction", lambda t: 0.5))[1])["input_bound"].action
    assert "num_workers" not in action  # it only sets the decode threads at start-up
    assert "raise batch_size from 16 to 32" in action


def test_gpu_memory_at_97_percent_is_an_oom_risk_and_at_40_percent_leaves_headroom():
    oom = by_code(observe(set_train(history(), "gpu_memory_percent", lambda t: 97.0))[1])
    assert "lower batch_size from 16 to 8" in oom["oom_risk"].action and "gpu_headroom" not in oom
    monitor, findings = observe(set_train(history(), "gpu_memory_percent", lambda t: 40.0))
    headroom = by_code(findings)["gpu_headroom"]
    assert headroom.severity == "info" and "raise batch_size from 16 to 32" in headroom.action
    verdict = monitor.verdicts()["hardware"]
    assert verdict.status == "healthy" and verdict.actions == [headroom.action]


def test_a_busy_cpu_is_cpu_bound_with_a_gpu_but_expected_without_one():
    cpu_bound = by_code(observe(set_train(history(), "cpu_percent", lambda t: 97.0))[1])["cpu_bound"]
    assert "num_workers" not in cpu_bound.action
    assert cpu_bound.action.startswith("set compile from False to True or raise batch_size from 16 to 32")
    rows = set_train(set_train(history(), "cpu_percent", lambda t: 100.0), "gpu_memory_percent", lambda t: 0.0)
    monitor, findings = observe(rows)
    assert findings == []
    assert "no GPU" in "\n".join(monitor.verdicts()["hardware"].evidence)


def test_hardware_evidence_quotes_the_median_mfu_after_the_warm_up_windows():
    rows = history()
    for t, row in enumerate(r for r in rows if "train/loss_total" in r):
        row["perf/mfu"] = 0.9 if t < 5 else 0.25 + 0.01 * (t % 3)  # warm-up windows (compilation) are left out
    evidence = "\n".join(observe(rows)[0].verdicts()["hardware"].evidence)
    assert "MFU: median 26.0% of the GPU's peak FLOP/s" in evidence
    assert "MFU" not in "\n".join(observe(history())[0].verdicts()["hardware"].evidence)  # a CPU run logs none
