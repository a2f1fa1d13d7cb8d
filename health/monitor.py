"""The health monitor: feeds every logged row to the five analyses and rate-limits their findings."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from .core import Finding, HealthConfig, History, Verdict, finite, split_row
from .dominance import DominantLoss
from .hardware import Hardware
from .latent import LatentSpace
from .overfitting import Overfitting
from .training import TrainingHealth

CHECKS = (TrainingHealth, DominantLoss, LatentSpace, Overfitting, Hardware)  # training first: latent reads its findings


class HealthMonitor:
    """Evaluates the five analyses on every logged row; cheap enough to call once per log window.

    observe() returns only new findings: a code is reported once, and again only when it re-occurs
    alert_interval_minutes (wall time, from `clock`) after it was last reported, or after it was resolved.
    """

    def __init__(self, config: HealthConfig | None = None, run_config: dict | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg = config or HealthConfig()
        self.run_config = dict(run_config or {})
        self.clock = clock
        self.history = History(self.cfg, self.run_config)
        self.findings: list[Finding] = []  # every finding reported, in order
        self.repeats: dict[str, int] = defaultdict(int)  # code -> detections held back by the rate limit
        self.analyses = {check.name: check(self) for check in CHECKS}
        self._new: list[Finding] = []
        self._last_alert: dict[str, float] = {}

    def observe(self, row: dict) -> list[Finding]:
        """Take one logged row (train, val or baseline, told apart by key prefix); return the findings it raised."""
        self._new = []
        h = self.history
        if finite(row.get("global_step")):
            h.step = int(row["global_step"])
        parts = split_row(row)
        for prefix, values in parts.items():
            self.analyses["training_health"].observe_non_finite(prefix, values)
        if "train" in parts:
            h.record_train(parts["train"])
            mfu = row.get("perf/mfu")  # logged in the same row as the train window, on GPUs with a known peak
            if h.warm and finite(mfu):
                h.settled["mfu"].append(float(mfu))
            for analysis in self.analyses.values():
                analysis.observe_train(parts["train"])
        if "baseline" in parts:  # logged in the validation's row: recorded first, so the analyses read it with it
            h.last_baseline = parts["baseline"]
        if "val" in parts:
            epoch = h.record_val(parts["val"])
            for analysis in self.analyses.values():
                analysis.observe_val(parts["val"], epoch)
        return self._new

    def emit(self, analysis, code, severity, message, action):
        now = self.clock()
        last = self._last_alert.get(code)
        earlier = [f for f in self.findings if f.code == code]
        reopened = bool(earlier) and all(f.resolved for f in earlier)  # it cleared, and now holds again: say so
        if last is not None and now - last < 60 * self.cfg.alert_interval_minutes and not reopened:
            self.repeats[code] += 1
            return
        self._last_alert[code] = now
        finding = Finding(analysis, code, severity, self.history.step, message, action)
        self.findings.append(finding)
        self._new.append(finding)

    def verdicts(self) -> dict[str, Verdict]:
        """One Verdict per analysis, in the order of ANALYSES; each says how it decides (Verdict.rule)."""
        return {name: analysis.verdict() for name, analysis in self.analyses.items()}


def replay(rows, run_config=None, config=None) -> HealthMonitor:
    """A monitor that has observed every row (the clock stands still: each code is reported once), e.g. for a
    resumed run; then the real clock takes over. `config` defaults to HealthConfig()."""
    clock = {"now": lambda: 0.0}
    monitor = HealthMonitor(config or HealthConfig(), run_config or {}, clock=lambda: clock["now"]())
    for row in rows:
        monitor.observe(row)
    clock["now"] = time.monotonic
    return monitor
