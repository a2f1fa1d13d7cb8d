"""Health checks while training, a local report after it, and a comparison of finished runs.

    python analysis.py compare out/run_a out/run_b --out out/compare   # table + overlay plots of runs
    python analysis.py compare --help

From Python (train_wandb.py does this for every run):

    monitor = HealthMonitor(HealthConfig(), run_config)   # run_config: the run's Config + WandBConfig as a dict
    for finding in monitor.observe(row): print(finding)    # each logged row: {"global_step": 80, "train/...": ...}
    write_report("out/run", rows, monitor, info)           # metrics.csv, report.md, summary.json, PNG plots

The monitor evaluates five analyses on every log window:
training_health (loss and gradient behaviour, GPU memory), dominant_loss (each weighted loss
component's share of loss_total), latent_space (latent_std growth and collapse), overfitting
(validation vs training loss per epoch) and hardware (input wait, CPU, GPU memory, throughput).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import numbers
import statistics
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ANALYSES = {
    "training_health": "Training health",
    "dominant_loss": "Dominant loss",
    "latent_space": "Latent space",
    "overfitting": "Overfitting",
    "hardware": "Hardware",
}
COMPONENTS = ("image", "caption", "alignment")  # loss_<name>, weighted by <name>_loss_weight in loss_total
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
STATUS_BY_SEVERITY = {"info": "healthy", "warning": "warning", "error": "problem"}  # a verdict from its worst finding
KEY_CONFIG = ("learning_rate", "batch_size", "num_epochs", "weight_decay", "dropout", "latent_dim",
              "image_loss_weight", "caption_loss_weight", "alignment_loss_weight")
HARDWARE = ("samples_per_second", "data_time_fraction", "cpu_percent", "gpu_memory_percent", "gpu_memory_used")
TRACKED = ("loss_total", *(f"loss_{c}" for c in COMPONENTS), "latent_std", "latent_norm", "grad_norm", *HARDWARE)
SETTLED = ("loss_total", *HARDWARE)  # the metrics whose early windows (warm-up) would mislead the checks
COMPARE_IGNORED = {"out_dir"}  # differs between any two runs; the table's run column already names it


# ----------------------------------------------------------------------------
# configuration and results

@dataclass
class HealthConfig:
    warmup_windows: int = 5  # first log windows, skipped by the trend and hardware checks while loss and memory settle
    grad_spike_factor: float = 10.0  # grad_norm above this x its running median = gradient explosion
    grad_median_windows: int = 20  # windows in that running median
    grad_vanish_norm: float = 1e-6  # grad_norm below this = vanishing gradients
    plateau_windows: int = 20  # loss_total must improve within this many windows ...
    plateau_min_drop: float = 0.01  # ... by at least this fraction of its earlier best, else a plateau
    oscillation_windows: int = 10  # recent windows looked at by the oscillation check
    oscillation_rel_std: float = 0.15  # std of loss_total around its linear trend / its mean above this = oscillation
    divergence_factor: float = 2.0  # loss_total above this x its best after warm-up = diverging
    memory_creep_percent: float = 10.0  # gpu_memory_percent rising this many points over its first post-warm-up value
    dominant_share: float = 0.6  # a weighted loss component above this share of loss_total dominates
    latent_collapse_std: float = 1e-3  # latent_std below this = collapsed latent space
    latent_growth_min: float = 0.1  # latent_std must grow by this fraction of its first value, else not learning
    latent_judge_epochs: int = 2  # judge latent growth at validation from this epoch on
    overfit_gap: float = 0.25  # (val - train) / train loss_total of an epoch above this = overfitting
    overfit_epochs: int = 3  # val loss_total rising this many epochs in a row while train falls = val_rising
    data_wait_fraction: float = 0.2  # data_time_fraction above this = input bound
    cpu_bound_percent: float = 90.0  # cpu_percent above this while a GPU trains = CPU bound
    gpu_headroom_percent: float = 75.0  # peak gpu_memory_percent below this = room for a larger batch
    gpu_oom_percent: float = 95.0  # gpu_memory_percent above this = out-of-memory risk
    smoothing_windows: int = 5  # share and hardware checks use the median of this many recent windows
    alert_interval_minutes: float = 10.0  # a finding code is reported again only after this much wall time


@dataclass
class Finding:
    analysis: str  # a key of ANALYSES
    code: str  # short id, e.g. "grad_explosion"
    severity: str  # "info" | "warning" | "error"
    step: int  # global_step of the row that showed it
    message: str  # one line with the evidence
    action: str  # the concrete change, naming Config fields and values

    def __str__(self):
        return f"[{self.severity}] {self.analysis}/{self.code} at step {self.step}: {self.message} -> {self.action}"


@dataclass
class Verdict:
    status: str  # "healthy" | "warning" | "problem" | "not enough data"
    summary: str  # one line
    evidence: list[str] = field(default_factory=list)  # lines with the numbers behind it
    actions: list[str] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)  # optional: header row, then rows (overfitting's epochs)


# ----------------------------------------------------------------------------
# small helpers

def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def finite(value) -> bool:
    return is_number(value) and math.isfinite(value)


def fmt(value, digits=4) -> str:
    """A metric value for humans: 4 significant digits, '—' when absent, 'nan'/'inf' kept visible."""
    if not is_number(value):
        return "—" if value is None else str(value)
    if not math.isfinite(value):
        return str(float(value))
    return f"{value:.{digits}g}"


def fmt_config(value) -> str:
    """A config value as the user would type it on the command line: 1.0, 0.0003, 32."""
    return repr(float(f"{value:.6g}")) if isinstance(value, float) else str(value)


def fmt_duration(seconds) -> str:
    if not finite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def median_tail(values, n):
    """Median of the last n values (robust to a single odd window), None when empty."""
    tail = values[-n:]
    return statistics.median(tail) if tail else None


def loss_weights(config):
    """{component: weight} from a run config; 1.0 (the Config default) where absent or unusable."""
    weights = {}
    for c in COMPONENTS:
        value = config.get(f"{c}_loss_weight", 1.0)
        weights[c] = float(value) if finite(value) else 1.0
    return weights


def split_row(row):
    """{"train": {name: value}, "val": {...}} from a flat row; non-numeric values (media) are dropped."""
    parts = defaultdict(dict)
    for key, value in row.items():
        prefix, _, name = key.partition("/")
        if name and prefix in ("train", "val") and is_number(value):
            parts[prefix][name] = float(value)
    return parts


# ----------------------------------------------------------------------------
# the health monitor

class HealthMonitor:
    """Evaluates the five analyses on every logged row; cheap enough to call once per log window.

    observe() returns only new findings: a code is reported once, and again only when it re-occurs
    alert_interval_minutes (wall time, from `clock`) after it was last reported.
    """

    def __init__(self, config: HealthConfig | None = None, run_config: dict | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg = config or HealthConfig()
        self.run_config = dict(run_config or {})
        self.clock = clock
        self.weights = loss_weights(self.run_config)
        self.findings: list[Finding] = []  # every finding reported, in order
        self.repeats: dict[str, int] = defaultdict(int)  # code -> detections held back by the rate limit
        # only the metrics the checks use, as plain floats: under 1 MB for a 3000-window run
        self.train: dict[str, list[float]] = defaultdict(list)  # finite TRACKED train values, every window
        self.settled: dict[str, list[float]] = defaultdict(list)  # finite SETTLED values after the warm-up
        self.last_val: dict[str, float] = {}  # the latest validation row
        self.shares: dict[str, list[float]] = defaultdict(list)  # weighted share of loss_total per component
        self.epoch_loss: dict[int, list[float]] = {}  # epoch -> [sum, count] of train loss_total
        self.val_epochs: list[tuple[int, float]] = []  # (epoch, val loss_total)
        self.n_train = 0
        self.step = 0
        self._new: list[Finding] = []
        self._last_alert: dict[str, float] = {}
        self._best_loss = math.inf  # best settled loss_total (divergence)
        self._best_before_plateau = math.inf  # best settled loss_total before the plateau window
        self._gpu_baseline: float | None = None
        self._gpu_peak = 0.0

    # -- input ------------------------------------------------------------------

    def observe(self, row: dict) -> list[Finding]:
        """Take one logged row (train or val, told apart by key prefix); return the findings it raised."""
        self._new = []
        if finite(row.get("global_step")):
            self.step = int(row["global_step"])
        parts = split_row(row)
        for prefix, values in parts.items():
            self._check_non_finite(prefix, values)
        if "train" in parts:
            self._observe_train(parts["train"])
            mfu = row.get("perf/mfu")  # logged in the same row as the train window, on GPUs with a known peak
            if self.n_train > self.cfg.warmup_windows and finite(mfu):
                self.settled["mfu"].append(float(mfu))
        if "val" in parts:
            self._observe_val(parts["val"])
        return self._new

    def _emit(self, analysis, code, severity, message, action):
        now = self.clock()
        last = self._last_alert.get(code)
        if last is not None and now - last < 60 * self.cfg.alert_interval_minutes:
            self.repeats[code] += 1
            return
        self._last_alert[code] = now
        finding = Finding(analysis, code, severity, self.step, message, action)
        self.findings.append(finding)
        self._new.append(finding)

    def _observe_train(self, values):
        self.n_train += 1
        warm = self.n_train > self.cfg.warmup_windows
        for name in TRACKED:
            value = values.get(name)
            if value is not None and math.isfinite(value):
                self.train[name].append(value)
                if warm and name in SETTLED:
                    self.settled[name].append(value)
        self._record_epoch(values)
        self._record_shares(values)
        self._check_gradients(values.get("grad_norm"), warm)
        self._check_latent_collapse(values.get("latent_std"))
        if warm:
            if finite(values.get("loss_total")):
                self._check_loss_trend()
            self._check_dominance()
            self._check_hardware(values)

    def _observe_val(self, values):
        self.last_val = values
        self._check_latent_collapse(values.get("latent_std"))
        loss = values.get("loss_total")
        if not finite(loss):
            return
        epoch = round(values["epoch"]) if finite(values.get("epoch")) else len(self.val_epochs) + 1
        self.val_epochs.append((epoch, loss))
        self._check_overfitting(epoch, loss)
        if epoch >= self.cfg.latent_judge_epochs:
            self._check_latent_growth()

    def _record_epoch(self, values):
        """Sum train loss_total per epoch: the window ending at epoch e - 1 + i/steps belongs to epoch e."""
        loss = values.get("loss_total")
        if not finite(loss):
            return
        epoch = values.get("epoch")
        e = max(1, math.ceil(epoch - 1e-9)) if finite(epoch) else len(self.val_epochs) + 1
        total = self.epoch_loss.setdefault(e, [0.0, 0])
        total[0] += loss
        total[1] += 1

    def _record_shares(self, values):
        weighted = {c: self.weights[c] * values[f"loss_{c}"] for c in COMPONENTS if finite(values.get(f"loss_{c}"))}
        total = sum(weighted.values())
        if len(weighted) == len(COMPONENTS) and total > 0:
            for c, w in weighted.items():
                self.shares[c].append(w / total)

    # -- config-aware actions -----------------------------------------------------

    def _change(self, name, factor, zero_to=1):
        """'lower learning_rate from 0.001 to 0.0003': the run's value of a Config field, scaled by factor."""
        current = self.run_config.get(name)
        verb = "raise" if factor > 1 else "lower"
        if not finite(current):  # a run config without the field: still name it
            return f"{verb} {name}"
        if current == 0 and factor > 1:  # scaling 0 goes nowhere
            return f"set {name} from 0 to {fmt_config(zero_to)}"
        new = current * factor
        new = max(1, round(new)) if isinstance(current, int) else float(f"{new:.3g}")
        return f"{verb} {name} from {fmt_config(current)} to {fmt_config(new)}"

    def _lower_lr(self, factor):
        action = self._change("learning_rate", factor)
        if self.run_config.get("grad_clip") == 0:
            action += " and set grad_clip from 0 to 1.0"
        return action

    def _regularize(self):
        dropout = self.run_config.get("dropout")
        if finite(dropout) and dropout > 0:
            dropout_action = f"raise dropout from {fmt_config(dropout)} to {fmt_config(min(0.5, dropout + 0.1))}"
        else:
            dropout_action = "set dropout from 0 to 0.1"
        return f"{self._change('weight_decay', 2.0, zero_to=0.05)} or {dropout_action}"

    def _current_epoch(self):
        return max(self.epoch_loss, default=len(self.val_epochs))

    # -- training health ------------------------------------------------------------

    def _check_non_finite(self, prefix, values):
        bad = [name for name, v in values.items() if name.startswith(("loss_", "grad_")) and not math.isfinite(v)]
        if bad:
            shown = ", ".join(f"{prefix}/{name}={values[name]}" for name in bad)
            self._emit("training_health", "non_finite", "error", f"non-finite values at step {self.step}: {shown}",
                       f"{self._lower_lr(0.1)}; if it persists set precision to fp32")

    def _check_gradients(self, grad_norm, warm):
        if not finite(grad_norm):
            return
        if grad_norm < self.cfg.grad_vanish_norm:
            self._emit("training_health", "grad_vanishing", "warning",
                       f"grad_norm {grad_norm:.3g} < {self.cfg.grad_vanish_norm:g}: "
                       "almost no gradient reaches the weights",
                       f"{self._change('learning_rate', 3.0)} and check that every loss term backpropagates")
        earlier = self.train["grad_norm"][-self.cfg.grad_median_windows - 1:-1]
        if warm and len(earlier) >= 3:
            median = statistics.median(earlier)
            if median > 0 and grad_norm > self.cfg.grad_spike_factor * median:
                self._emit("training_health", "grad_explosion", "warning",
                           f"grad_norm {grad_norm:.4g} is {grad_norm / median:.0f}x its running median {median:.4g}",
                           self._lower_lr(0.3))

    def _check_loss_trend(self):
        losses, cfg = self.settled["loss_total"], self.cfg
        current = losses[-1]
        self._best_loss = min(self._best_loss, current)
        if self._best_loss > 0 and current > cfg.divergence_factor * self._best_loss:
            self._emit("training_health", "loss_diverging", "error",
                       f"loss_total {current:.4g} is {current / self._best_loss:.1f}x its best {self._best_loss:.4g}",
                       self._lower_lr(0.1))
        if len(losses) > cfg.plateau_windows:
            self._best_before_plateau = min(self._best_before_plateau, losses[-cfg.plateau_windows - 1])
            before, recent = self._best_before_plateau, min(losses[-cfg.plateau_windows:])
            drop = (before - recent) / before if before > 0 else math.inf
            if drop < cfg.plateau_min_drop:
                self._emit("training_health", "loss_plateau", "warning",
                           f"best loss_total of the last {cfg.plateau_windows} windows {recent:.4g} vs {before:.4g} "
                           f"before ({-drop:+.1%}; needs -{cfg.plateau_min_drop:.1%} or lower)",
                           f"{self._change('learning_rate', 3.0)} if the loss stalled early; if it has "
                           f"converged, lower num_epochs to {self._current_epoch()}")
        if len(losses) >= cfg.oscillation_windows >= 3:
            recent = np.asarray(losses[-cfg.oscillation_windows:])
            x = np.arange(len(recent))
            with np.errstate(all="ignore"):  # astronomically large losses overflow; divergence reports those
                residual = recent - np.polyval(np.polyfit(x, recent, 1), x)  # swings around the trend, not the trend
                mean = recent.mean()
                relative = residual.std() / mean if mean > 0 else 0.0
            if relative > cfg.oscillation_rel_std:
                self._emit("training_health", "loss_oscillation", "warning",
                           f"loss_total swings {relative:.0%} around its trend over the last {len(recent)} windows "
                           f"(range {recent.min():.4g} to {recent.max():.4g})",
                           f"{self._change('learning_rate', 0.3)} or "
                           f"{self._change('batch_size', 2)} for less noisy steps")

    # -- dominant loss ----------------------------------------------------------------

    def _component_falls(self):
        """Relative fall of each weighted component from its first to its last window."""
        falls = {}
        for c in COMPONENTS:
            values = self.train[f"loss_{c}"]
            if self.weights[c] > 0 and len(values) >= 2 and values[0] > 0:
                falls[c] = 1 - values[-1] / values[0]
        return falls

    def dominance(self):
        """(component, recent share, message, action) when one component dominates loss_total, else None."""
        recent = {c: median_tail(self.shares[c], self.cfg.smoothing_windows) for c in COMPONENTS if self.shares[c]}
        if not recent:
            return None
        top = max(recent, key=recent.get)
        if recent[top] <= self.cfg.dominant_share:
            return None
        falls = self._component_falls()
        lagging = min(falls, key=falls.get) if falls else top
        weight = f"{top}_loss_weight"
        message = f"{top} is {recent[top]:.0%} of loss_total (weighted, last {self.cfg.smoothing_windows} windows)"
        if top == lagging and top in falls:
            message += f"; it fell least of the components ({falls[top]:.0%} since the first window)"
        elif top in falls:
            message += f"; it fell {falls[top]:.0%} since the first window, {lagging} fell least ({falls[lagging]:.0%})"
        if lagging == top:  # it dominates because it learns slowest: give it more of the gradient
            action = f"{self._change(weight, 2.0)} ({top} lags and dominates)"
        else:  # it dominates but learns fine: it starves the component that lags
            action = f"{self._change(weight, 0.5)} so {lagging} (fell least) gets more of the gradient"
        return top, recent[top], message, action

    def _check_dominance(self):
        found = self.dominance()
        if found:
            self._emit("dominant_loss", "dominant_component", "warning", found[2], found[3])

    # -- latent space ---------------------------------------------------------------------

    def _check_latent_collapse(self, latent_std):
        if finite(latent_std) and latent_std < self.cfg.latent_collapse_std:
            self._emit("latent_space", "latent_collapse", "error",
                       f"latent_std {latent_std:.3g} < {self.cfg.latent_collapse_std:g}: "
                       "every image maps to about the same z",
                       f"{self._change('learning_rate', 0.3)} and "
                       f"{self._change('alignment_loss_weight', 2.0)} (the contrastive term keeps latents apart)")

    def latent_growth(self):
        """(first latent_std, recent latent_std, relative growth) or None with fewer than 2 windows."""
        stds = self.train["latent_std"]
        if len(stds) < 2 or stds[0] <= 0:
            return None
        recent = median_tail(stds[1:], self.cfg.smoothing_windows)
        return stds[0], recent, recent / stds[0] - 1

    def _latent_not_growing(self, growth):
        first, recent, rel = growth
        message = (f"latent_std {first:.4g} at the first window, {recent:.4g} now ({rel:+.0%}; "
                   f"needs +{self.cfg.latent_growth_min:.0%})")
        action = (f"{self._change('latent_dim', 2)}; check grad_norm > 0 (the encoder must learn) and "
                  f"that loss_image and loss_caption fall")
        return message, action

    def _check_latent_growth(self):
        growth = self.latent_growth()
        if growth and growth[2] < self.cfg.latent_growth_min:
            self._emit("latent_space", "latent_not_growing", "warning", *self._latent_not_growing(growth))

    # -- overfitting -----------------------------------------------------------------------------

    def train_epoch_mean(self, epoch):
        total = self.epoch_loss.get(epoch)
        return total[0] / total[1] if total else None

    def _check_overfitting(self, epoch, val_loss):
        train_loss = self.train_epoch_mean(epoch)
        if train_loss and train_loss > 0:
            gap = (val_loss - train_loss) / train_loss
            if gap > self.cfg.overfit_gap:
                self._emit("overfitting", "overfitting", "warning",
                           f"epoch {epoch}: val loss_total {val_loss:.4g} vs train {train_loss:.4g} "
                           f"(gap {gap:+.0%}, limit {self.cfg.overfit_gap:.0%})", self._regularize())
        k = self.cfg.overfit_epochs
        recent = self.val_epochs[-k - 1:]
        if k < 1 or len(recent) < k + 1:
            return
        vals = [v for _, v in recent]
        first_train, last_train = self.train_epoch_mean(recent[0][0]), self.train_epoch_mean(epoch)
        rising = all(b > a for a, b in zip(vals, vals[1:]))
        if rising and first_train is not None and last_train is not None and last_train < first_train:
            best_epoch, best = min(self.val_epochs, key=lambda e: e[1])
            self._emit("overfitting", "val_rising", "warning",
                       f"val loss_total rose {k} epochs in a row ({vals[0]:.4g} -> {vals[-1]:.4g}) while train fell "
                       f"({first_train:.4g} -> {last_train:.4g})",
                       f"{self._regularize()}; best.pt holds epoch {best_epoch} (val {best:.4g}), "
                       f"so lower num_epochs to {best_epoch} to stop there")

    # -- hardware -----------------------------------------------------------------------------------

    def _check_hardware(self, values):
        cfg, n = self.cfg, self.cfg.smoothing_windows
        gpu = values.get("gpu_memory_percent")
        if finite(gpu) and gpu > 0:
            self._check_gpu_memory(gpu)
        wait = median_tail(self.settled["data_time_fraction"], n)
        if wait is not None and wait > cfg.data_wait_fraction:
            self._emit("hardware", "input_bound", "warning",
                       f"the loop waits for data {wait:.0%} of the time (median of the last windows; "
                       f"limit {cfg.data_wait_fraction:.0%})",
                       self._change("num_workers", 2, zero_to=4))
        cpu = median_tail(self.settled["cpu_percent"], n)
        if self._gpu_peak > 0 and cpu is not None and cpu > cfg.cpu_bound_percent:  # on a CPU run, 100% is the model
            self._emit("hardware", "cpu_bound", "warning",
                       f"cpu_percent {cpu:.0f}% while the GPU trains (limit {cfg.cpu_bound_percent:.0f}%)",
                       self._change("num_workers", 2, zero_to=4))

    def _check_gpu_memory(self, gpu):
        cfg = self.cfg
        if self._gpu_baseline is None:
            self._gpu_baseline = gpu
        self._gpu_peak = max(self._gpu_peak, gpu)
        if gpu > cfg.gpu_oom_percent:
            self._emit("hardware", "oom_risk", "warning",
                       f"gpu_memory_percent {gpu:.1f}% > {cfg.gpu_oom_percent:.0f}%: a larger batch or longer "
                       f"caption may run out of memory", self._change("batch_size", 0.5))
        if gpu - self._gpu_baseline > cfg.memory_creep_percent:
            self._emit("training_health", "memory_creep", "warning",
                       f"gpu_memory_percent rose from {self._gpu_baseline:.1f}% after warm-up to {gpu:.1f}% "
                       f"(limit +{cfg.memory_creep_percent:.0f} points): possible leak",
                       f"look for tensors kept across steps (a stored loss without .item() or .detach()); "
                       f"until found, {self._change('batch_size', 0.5)}")
        enough = len(self.settled["gpu_memory_percent"]) >= cfg.smoothing_windows
        if enough and self._gpu_peak < cfg.gpu_headroom_percent:
            self._emit("hardware", "gpu_headroom", "info",
                       f"peak gpu_memory_percent {self._gpu_peak:.0f}% < {cfg.gpu_headroom_percent:.0f}%: "
                       f"room for a larger batch", self._change("batch_size", 2))

    # -- verdicts ---------------------------------------------------------------------------------------

    def verdicts(self) -> dict[str, Verdict]:
        """One Verdict per analysis.

        Training health, overfitting and hardware are judged by the worst finding of the run (an event
        such as a spike matters even if training recovered); dominant loss and latent space by where the
        run ended, since they ask what the model has become.
        """
        return {
            "training_health": self._training_verdict(),
            "dominant_loss": self._dominance_verdict(),
            "latent_space": self._latent_verdict(),
            "overfitting": self._overfitting_verdict(),
            "hardware": self._hardware_verdict(),
        }

    def _from_findings(self, analysis, missing, healthy_summary, evidence, table=()):
        """A verdict from the run's findings; `missing` (a reason) gives 'not enough data' when nothing fired."""
        found = [f for f in self.findings if f.analysis == analysis]
        actions = list(dict.fromkeys(f.action for f in found))
        if not found and missing:
            return Verdict("not enough data", missing, evidence, [], list(table))
        worst = max(found, key=lambda f: SEVERITY_RANK[f.severity], default=None)
        status = STATUS_BY_SEVERITY[worst.severity] if worst else "healthy"
        serious = [f for f in found if f.severity != "info"]
        summary = ("; ".join(f"{f.code} at step {f.step}" for f in serious) if serious else healthy_summary)
        return Verdict(status, summary, evidence, actions, list(table))

    def _training_verdict(self):
        losses, settled = self.train["loss_total"], self.settled["loss_total"]
        evidence = []
        if losses:
            evidence.append(f"loss_total: first {fmt(losses[0])}, min {fmt(min(losses))}, last {fmt(losses[-1])} "
                            f"over {self.n_train} windows ({self.cfg.warmup_windows} of warm-up)")
        grads = self.train["grad_norm"]
        if grads:
            evidence.append(f"grad_norm: median {fmt(statistics.median(grads))}, max {fmt(max(grads))}, "
                            f"min {fmt(min(grads))}")
        if self._gpu_baseline is not None:
            evidence.append(f"gpu_memory_percent: {self._gpu_baseline:.1f}% after warm-up, "
                            f"{self.settled['gpu_memory_percent'][-1]:.1f}% last")
        missing = (None if settled else
                   f"{self.n_train} train window(s), all inside the warm-up of {self.cfg.warmup_windows}")
        summary = "loss_total falls without spikes, stalls or runaway memory"
        if len(losses) >= 2 and losses[0] > 0:
            summary = f"loss_total fell {1 - losses[-1] / losses[0]:.0%} without spikes, stalls or runaway memory"
        return self._from_findings("training_health", missing, summary, evidence)

    def _dominance_verdict(self):
        if len(self.shares["image"]) < 2:  # shares are recorded for all three components or none
            return Verdict("not enough data", "fewer than 2 windows with all three loss components")
        falls = self._component_falls()
        evidence = []
        for c in COMPONENTS:
            values = self.train[f"loss_{c}"]
            evidence.append(f"{c} (weight {fmt_config(self.weights[c])}): share {self.shares[c][0]:.0%} -> "
                            f"{self.shares[c][-1]:.0%}, loss_{c} {fmt(values[0])} -> {fmt(values[-1])}"
                            + (f" ({falls[c]:.0%} lower)" if c in falls else ""))
        if falls:
            lagging = min(falls, key=falls.get)
            evidence.append(f"lagging: {lagging} fell least ({falls[lagging]:.0%})")
        found = self.dominance()
        if found:
            return Verdict("warning", found[2], evidence, [found[3]])
        top = max(COMPONENTS, key=lambda c: self.shares[c][-1])
        return Verdict("healthy", f"no component above {self.cfg.dominant_share:.0%} of loss_total; "
                                  f"{top} is largest at {self.shares[top][-1]:.0%}", evidence)

    def _latent_verdict(self):
        stds, norms = self.train["latent_std"], self.train["latent_norm"]
        evidence = []
        if stds:
            evidence.append(f"latent_std: first {fmt(stds[0])}, last {fmt(stds[-1])}, min {fmt(min(stds))}, "
                            f"max {fmt(max(stds))}")
        if norms:
            evidence.append(f"latent_norm: first {fmt(norms[0])}, last {fmt(norms[-1])}")
        if "latent_std" in self.last_val:
            evidence.append(f"val latent_std last {fmt(self.last_val['latent_std'])}")
        collapsed = [f for f in self.findings if f.code == "latent_collapse"]
        if collapsed:
            return Verdict("problem", collapsed[0].message, evidence, [collapsed[0].action])
        growth = self.latent_growth()
        if growth is None:
            return Verdict("not enough data", "fewer than 2 windows with latent_std", evidence)
        if growth[2] < self.cfg.latent_growth_min:
            message, action = self._latent_not_growing(growth)
            return Verdict("warning", "not learning: " + message, evidence, [action])
        return Verdict("healthy", f"latent_std grew {growth[2]:+.0%} from its first window", evidence)

    def _overfitting_verdict(self):
        table = [["epoch", "train loss_total", "val loss_total", "gap", "gap %"]]
        gaps = []
        for epoch, val in self.val_epochs:
            train = self.train_epoch_mean(epoch)
            gap = val - train if train is not None else None
            rel = gap / train if gap is not None and train > 0 else None
            gaps.append(rel)
            table.append([str(epoch), fmt(train), fmt(val), fmt(gap), f"{rel:+.0%}" if rel is not None else "—"])
        evidence = []
        if self.val_epochs:
            best_epoch, best = min(self.val_epochs, key=lambda e: e[1])
            last_epoch, last = self.val_epochs[-1]
            evidence.append(f"best val loss_total {fmt(best)} at epoch {best_epoch}, "
                            f"last {fmt(last)} at epoch {last_epoch}")
        known = [g for g in gaps if g is not None]
        if known:
            evidence.append(f"last gap {known[-1]:+.0%} of train loss (limit {self.cfg.overfit_gap:.0%})")
        missing = None if known else "no epoch with both a train and a validation loss_total"
        summary = (f"val loss_total stays within {self.cfg.overfit_gap:.0%} of train" if known else "")
        return self._from_findings("overfitting", missing, summary, evidence, table if len(table) > 1 else ())

    def _hardware_verdict(self):
        s, evidence = self.settled, []
        rate = s["samples_per_second"] or self.train["samples_per_second"]
        if rate:
            evidence.append(f"throughput: median {fmt(statistics.median(rate))} samples/s "
                            f"(min {fmt(min(rate))}, max {fmt(max(rate))})")
        if s["mfu"]:
            evidence.append(f"MFU: median {statistics.median(s['mfu']):.1%} of the GPU's peak FLOP/s (perf/mfu)")
        if s["data_time_fraction"]:
            evidence.append(f"data wait: median {statistics.median(s['data_time_fraction']):.1%} of the time "
                            f"(limit {self.cfg.data_wait_fraction:.0%})")
        if s["cpu_percent"]:
            cpu = statistics.median(s["cpu_percent"])
            note = "" if self._gpu_peak > 0 else " (training on the CPU: high use is the model itself)"
            evidence.append(f"cpu_percent: median {cpu:.0f}%{note}")
        if self._gpu_peak > 0:
            evidence.append(f"GPU memory: peak {self._gpu_peak:.0f}%, headroom {100 - self._gpu_peak:.0f}%"
                            + (f", peak {fmt(max(s['gpu_memory_used']))} MB" if s["gpu_memory_used"] else ""))
        elif s["gpu_memory_percent"]:
            evidence.append("no GPU (gpu_memory_percent is 0)")
        missing = None if any(s[m] for m in HARDWARE) else "no hardware metrics after the warm-up windows"
        summary = "no input, CPU or GPU memory bottleneck"
        if self._gpu_peak == 0 and s["gpu_memory_percent"]:
            summary += " (no GPU)"
        return self._from_findings("hardware", missing, summary, evidence)


def replay(rows, run_config=None, config=None) -> HealthMonitor:
    """A monitor that has observed every row (the clock stands still: each code is reported once), e.g. for a
    resumed run; then the real clock takes over. `config` defaults to HealthConfig()."""
    clock = {"now": lambda: 0.0}
    monitor = HealthMonitor(config or HealthConfig(), run_config or {}, clock=lambda: clock["now"]())
    for row in rows:
        monitor.observe(row)
    clock["now"] = time.monotonic
    return monitor


# ----------------------------------------------------------------------------
# rows and metrics.csv

def columns(rows):
    """Every scalar column of the rows, sorted, global_step first."""
    names = {k for row in rows for k, v in row.items() if is_number(v) or isinstance(v, str)}
    return ["global_step"] + sorted(names - {"global_step"})


def write_metrics_csv(rows, path):
    header = columns(rows)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, header, restval="", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: v for k, v in row.items() if is_number(v) or isinstance(v, str)})
    return True


def read_metrics_csv(path):
    """Rows of a metrics.csv as dicts of floats; empty cells and text are left out."""
    rows = []
    with open(path, newline="") as f:
        for record in csv.DictReader(f):
            row = {}
            for key, text in record.items():
                try:
                    row[key] = float(text)
                except (TypeError, ValueError):
                    continue
            rows.append(row)
    return rows


def series(rows, key):
    """(global_steps, values) of one metric, finite points only (NaN/inf and missing rows are skipped)."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        x, y = row.get("global_step", i), row.get(key)
        if finite(x) and finite(y):
            xs.append(float(x))
            ys.append(float(y))
    return xs, ys


def last_metrics(rows, prefix):
    """Metrics of the last row with this prefix, prefix removed."""
    for row in reversed(rows):
        values = {k.partition("/")[2]: v for k, v in row.items() if k.startswith(prefix + "/") and is_number(v)}
        if values:
            return values
    return {}


# ----------------------------------------------------------------------------
# plots

def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: works without a display, on servers and in threads
    import matplotlib.pyplot as plt
    return plt


def _style(n):
    """Markers when there are few points, so a single point is still visible."""
    return {"marker": "o", "markersize": 3} if n < 30 else {}


def _save(fig, path, left=0.75, right=0.2, bottom=0.55, top=0.4, wspace=0.3):
    """Save with fixed margins (inches): tight_layout would measure every label and cost a third of the time."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wspace)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def plot_loss_components(rows, path, weights):
    """Stacked area of the weighted components (what loss_total is made of), loss_total on top."""
    train = [r for r in rows if any(k.startswith("train/") for k in r)]
    keys = [c for c in COMPONENTS if any(f"train/loss_{c}" in r for r in train)]
    points = [r for r in train if finite(r.get("global_step")) and all(finite(r.get(f"train/loss_{c}")) for c in keys)]
    if not keys or not points:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = [float(r["global_step"]) for r in points]
    stacks = [[weights[c] * r[f"train/loss_{c}"] for r in points] for c in keys]
    ax.stackplot(xs, *stacks, labels=[f"{c} × {fmt_config(weights[c])}" for c in keys], alpha=0.75)
    tx, ty = series(train, "train/loss_total")
    if ty:
        ax.plot(tx, ty, color="black", linewidth=1.4, label="loss_total", **_style(len(ty)))
    ax.set(xlabel="global_step", ylabel="weighted loss", title="Weighted loss components (train)")
    ax.legend(loc="upper right")
    _save(fig, path)
    return True


def _train_val(ax, rows, metric, ylabel):
    drawn = False
    for prefix, style in (("train", {"linewidth": 1.2}), ("val", {"linewidth": 1.8, "marker": "o"})):
        xs, ys = series(rows, f"{prefix}/{metric}")
        if ys:
            ax.plot(xs, ys, label=prefix, **{**_style(len(ys)), **style})
            drawn = True
    ax.set(xlabel="global_step", ylabel=ylabel)
    if drawn:
        ax.legend()
    return drawn


def plot_train_vs_val(rows, path):
    plt = pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = _train_val(loss_ax, rows, "loss_total", "loss_total")
    drawn = _train_val(acc_ax, rows, "caption_accuracy", "caption_accuracy") or drawn
    loss_ax.set_title("loss_total: train vs val")
    acc_ax.set_title("caption_accuracy: train vs val")
    if not drawn:
        plt.close(fig)
        return False
    _save(fig, path)
    return True


def plot_latent(rows, path):
    metrics = ["latent_mean", "latent_std", "latent_norm"]
    if not any(series(rows, f"{p}/{m}")[1] for m in metrics for p in ("train", "val")):
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, metric in zip(axes, metrics):
        _train_val(ax, rows, metric, metric)
        ax.set_title(metric)
    _save(fig, path)
    return True


def plot_gradients(rows, path):
    lines = {m: series(rows, f"train/{m}") for m in ("grad_norm", "grad_mean", "grad_max")}
    lines = {m: [(x, y) for x, y in zip(*xy) if y > 0] for m, xy in lines.items()}  # log axis: positive only
    if not any(lines.values()):
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for metric, points in lines.items():
        if points:
            ax.plot(*zip(*points), label=metric, **_style(len(points)))
    ax.set_yscale("log")
    ax.set(xlabel="global_step", ylabel="gradient (log scale)", title="Gradient statistics (train, before clipping)")
    ax.legend()
    _save(fig, path)
    return True


def plot_hardware(rows, path):
    """loss_total against the hardware metrics on twin axes: does the cost track the progress?"""
    percents = {label: series(rows, f"train/{metric}") for metric, label in
                (("gpu_memory_percent", "GPU memory %"), ("cpu_percent", "CPU %"))}
    percents = {label: xy for label, xy in percents.items() if xy[1] and max(xy[1]) > 0}  # all-zero GPU = no GPU
    rate = series(rows, "train/samples_per_second")
    if not percents and not rate[1]:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    lines = []
    lx, ly = series(rows, "train/loss_total")
    if ly:
        lines += ax.plot(lx, ly, color="black", linewidth=1.4, label="loss_total", **_style(len(ly)))
    ax.set(xlabel="global_step", ylabel="loss_total", title="loss_total vs hardware (train)")
    if percents:
        pct = ax.twinx()
        for (label, (xs, ys)), color in zip(percents.items(), ("tab:red", "tab:orange")):
            lines += pct.plot(xs, ys, color=color, linewidth=1.1, label=label, **_style(len(ys)))
        pct.set(ylabel="percent", ylim=(0, 105))
    if rate[1]:
        speed = ax.twinx()
        speed.spines["right"].set_position(("axes", 1.12))  # a second right axis beside the percent one
        lines += speed.plot(*rate, color="tab:blue", linewidth=1.1, label="samples/s", **_style(len(rate[1])))
        speed.set_ylabel("samples/s", color="tab:blue")
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncol=len(lines), fontsize="small", frameon=False)  # below the plot: no curve hides behind it
    _save(fig, path, right=1.9, bottom=0.85)
    return True


PLOTS = {  # name -> (file, plot(rows, path, weights) -> whether it drew, caption in report.md)
    "loss_components": ("loss_components.png", plot_loss_components, "Weighted loss components"),
    "train_vs_val": ("train_vs_val.png", lambda rows, path, _: plot_train_vs_val(rows, path), "Train vs val"),
    "latent": ("latent.png", lambda rows, path, _: plot_latent(rows, path), "Latent statistics"),
    "gradients": ("gradients.png", lambda rows, path, _: plot_gradients(rows, path), "Gradients"),
    "hardware": ("hardware.png", lambda rows, path, _: plot_hardware(rows, path), "Hardware vs loss"),
}


# ----------------------------------------------------------------------------
# the local report

def attempt(what, fn, *args):
    """Run one output step; on any failure warn and go on: a broken run needs its report most."""
    try:
        return fn(*args)
    except Exception as e:
        print(f"warning: report: {what} failed ({type(e).__name__}: {e})", file=sys.stderr)
        return None


def quietly(fn, *args):
    """Draw a plot without numpy/matplotlib warnings: a failed run's extreme values overflow, a crowded
    legend defeats tight_layout; the plot is still written and the console stays readable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args)


def json_safe(value):
    """JSON without NaN/Infinity (not valid JSON): non-finite numbers become null, unknown objects text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if is_number(value):
        return float(value) if math.isfinite(value) else None
    return str(value)


def run_facts(out_dir, rows, info):
    """The run's headline numbers: info's values where given and finite, else derived from the rows."""
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    val = [(row.get("val/epoch"), row["val/loss_total"]) for row in rows if finite(row.get("val/loss_total"))]
    best = min(val, key=lambda v: v[1]) if val else None
    steps = [row["global_step"] for row in rows if finite(row.get("global_step"))]
    epochs = [row[k] for row in rows for k in ("train/epoch", "val/epoch") if finite(row.get(k))]
    best_epoch = info.get("best_epoch") if finite(info.get("best_epoch")) and info.get("best_epoch") else None
    if best_epoch is None and best and finite(best[0]):
        best_epoch = round(best[0])
    return {
        "run": config.get("run_name") or Path(out_dir).resolve().name,
        "status": info.get("status") or "unknown",
        "device": info.get("device"),
        "training_time_s": info.get("training_time_s") if finite(info.get("training_time_s")) else None,
        "best_val_loss": info["best_val_loss"] if finite(info.get("best_val_loss")) else (best[1] if best else None),
        "best_epoch": best_epoch,
        "steps": int(info["steps"]) if finite(info.get("steps")) else (int(max(steps)) if steps else 0),
        "epochs": max(epochs) if epochs else None,
        "wandb_run": info.get("wandb_url") or info.get("wandb_run") or info.get("run_dir"),
        "final_train": last_metrics(rows, "train"),
        "final_val": last_metrics(rows, "val"),
        "config": config,
    }


def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(table):
    header, *body = table
    lines = ["| " + " | ".join(_md_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]
    return lines


def summary_paragraph(facts):
    """A short paper-style account of the run, from the facts that exist."""
    train, val = facts["final_train"], facts["final_val"]
    epochs = f" ({fmt(facts['epochs'], 3)} epochs)" if facts["epochs"] is not None else ""
    device = f" on {facts['device']}" if facts["device"] else ""
    time_part = f" in {fmt_duration(facts['training_time_s'])}" if facts["training_time_s"] is not None else ""
    sentences = [f"The model trained for {facts['steps']} steps{epochs}{time_part}{device}; status: {facts['status']}."]
    if facts["best_val_loss"] is not None:
        at = f" at epoch {facts['best_epoch']}" if facts["best_epoch"] is not None else ""
        sentences.append(f"The best validation loss was {fmt(facts['best_val_loss'])}{at}.")
    else:
        sentences.append("There is no validation result.")
    acc = [f"{fmt(d['caption_accuracy'], 3)} ({name})" for name, d in (("train", train), ("val", val))
           if "caption_accuracy" in d]
    mse = [f"{fmt(d['image_mse'], 3)} ({name})" for name, d in (("train", train), ("val", val)) if "image_mse" in d]
    if acc or mse:
        parts = ([f"caption accuracy was {' and '.join(acc)}"] if acc else []) + (
            [f"image_mse {' and '.join(mse)}"] if mse else [])
        sentences.append("At the end, " + ", ".join(parts) + ".")
    return " ".join(sentences)


def report_markdown(facts, verdicts, monitor, plots):
    train, val = facts["final_train"], facts["final_val"]
    lines = [f"# Run report: {facts['run']}", "",
             f"**Status:** {facts['status']} · **Best val loss:** {fmt(facts['best_val_loss'])}"
             f" (epoch {fmt(facts['best_epoch'])}) · **Training time:** {fmt_duration(facts['training_time_s'])}"
             f" · **Device:** {facts['device'] or '—'} · **Steps:** {facts['steps']}", "",
             "## Summary", "", summary_paragraph(facts), ""]
    final = [["metric", "train (last window)", "val (last epoch)"]]
    for metric in ("loss_total", "loss_image", "loss_caption", "loss_alignment", "caption_accuracy",
                   "caption_perplexity", "image_mse", "latent_std"):
        if metric in train or metric in val:
            final.append([metric, fmt(train.get(metric)), fmt(val.get(metric))])
    if len(final) > 1:
        lines += _md_table(final) + [""]
    key_config = [f"{k}={fmt_config(facts['config'][k])}" for k in KEY_CONFIG if k in facts["config"]]
    if key_config:
        lines += ["Configuration: " + ", ".join(key_config) + " (all fields in summary.json).", ""]
    lines += ["## Analyses", ""]
    lines += _md_table([["analysis", "verdict", "summary"]] +
                       [[ANALYSES[a], v.status, v.summary] for a, v in verdicts.items()]) + [""]
    for i, (analysis, verdict) in enumerate(verdicts.items(), 1):
        lines += [f"### {i}. {ANALYSES[analysis]}: {verdict.status}", "", verdict.summary, ""]
        if verdict.evidence:
            lines += ["Evidence:", ""] + [f"- {e}" for e in verdict.evidence] + [""]
        if verdict.table:
            lines += _md_table(verdict.table) + [""]
        if verdict.actions:
            lines += ["Actions:", ""] + [f"- {a}" for a in verdict.actions] + [""]
    lines += ["## Findings", ""]
    if monitor.findings:
        lines += _md_table([["step", "severity", "analysis", "code", "message", "action"]] +
                           [[f.step, f.severity, f.analysis, f.code, f.message, f.action] for f in monitor.findings])
    else:
        lines.append("None.")
    repeats = [f"{code} ×{n}" for code, n in monitor.repeats.items() if n]
    if repeats:
        lines += ["", "Repeats held back by the rate limit (alert_interval_minutes): " + ", ".join(repeats) + "."]
    lines += ["", "## Plots", ""]
    lines += [f"![{PLOTS[name][2]}]({PLOTS[name][0]})" for name in plots] or ["No plots (no plottable metrics)."]
    if facts["wandb_run"]:
        lines += ["", f"W&B run: {facts['wandb_run']}"]
    return "\n".join(lines) + "\n"


def summary_json(facts, info, verdicts, monitor):
    return {
        **{k: facts[k] for k in ("run", "status", "device", "training_time_s", "best_val_loss", "best_epoch",
                                 "steps", "epochs", "wandb_run", "final_train", "final_val", "config")},
        "info": {k: v for k, v in info.items() if k != "config"},
        "verdicts": {a: {"status": v.status, "summary": v.summary} for a, v in verdicts.items()},
        "findings": [asdict(f) for f in monitor.findings],
    }


def write_report(out_dir, rows, monitor=None, info=None) -> dict[str, Path]:
    """Write metrics.csv, the PNG plots, summary.json and report.md into out_dir; return {name: path}.

    Called at the end of every run, finished or not: odd data (one row, no validation, NaN, missing
    columns) gives a thinner report, never an exception. Without a monitor, the rows are replayed.
    """
    out = Path(out_dir)
    if not attempt(f"creating {out}", _make_dir, out):
        return {}
    rows = [r for r in rows or [] if isinstance(r, dict)]
    info = dict(info or {})
    facts = attempt("run facts", run_facts, out, rows, info) or run_facts(out, [], {})
    if monitor is None:
        monitor = attempt("health checks", replay, rows, facts["config"]) or HealthMonitor()
    paths = {}
    if attempt("metrics.csv", write_metrics_csv, rows, out / "metrics.csv"):
        paths["metrics"] = out / "metrics.csv"
    weights = loss_weights(facts["config"])
    for name, (file, plot, _) in PLOTS.items():
        if attempt(file, quietly, plot, rows, out / file, weights):
            paths[name] = out / file
    verdicts = attempt("verdicts", monitor.verdicts) or {}
    plots = [name for name in PLOTS if name in paths]
    if attempt("summary.json", _write_text, out / "summary.json",
               lambda: json.dumps(json_safe(summary_json(facts, info, verdicts, monitor)), indent=2)):
        paths["summary"] = out / "summary.json"
    if attempt("report.md", _write_text, out / "report.md", lambda: report_markdown(facts, verdicts, monitor, plots)):
        paths["report"] = out / "report.md"
    return paths


def _make_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    return True


def _write_text(path, render):
    path.write_text(render())
    return True


# ----------------------------------------------------------------------------
# comparing runs

class CompareError(Exception):
    """A run folder cannot be compared: reported in one line, exit status 2."""


def load_run(out_dir):
    """(summary dict, metrics rows) of one out_dir; CompareError naming the folder if it is no report."""
    folder = Path(out_dir)
    path = folder / "summary.json"
    if not folder.is_dir():
        raise CompareError(f"{folder}: no such folder")
    if not path.is_file():
        raise CompareError(f"{folder}: no summary.json (not an out_dir of a train_wandb.py run, or its report "
                           "was never written)")
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CompareError(f"{path}: unreadable ({e})") from None
    if not isinstance(summary, dict):
        raise CompareError(f"{path}: not a JSON object")
    metrics = folder / "metrics.csv"
    rows = attempt(f"{metrics}", read_metrics_csv, metrics) if metrics.is_file() else []
    return summary, rows or []


def run_labels(out_dirs):
    """Folder names, with the parent added where two folders share a name."""
    paths = [Path(d).resolve() for d in out_dirs]
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def differing_fields(configs):
    """Config fields whose value is not the same in every run (absent counts as a value)."""
    def value(config, key):
        return json.dumps(config[key], sort_keys=True, default=str) if key in config else "<absent>"

    keys = list(dict.fromkeys(k for c in configs for k in c))
    return [k for k in keys if k not in COMPARE_IGNORED and len({value(c, k) for c in configs}) > 1]


def comparison_table(labels, summaries, fields):
    header = ["run", *fields, "best val loss", "best epoch", "final train loss_total", "final val caption_accuracy",
              "final image_mse", "training time", "status"]
    table = [header]
    for label, s in zip(labels, summaries):
        config, train, val = s.get("config") or {}, s.get("final_train") or {}, s.get("final_val") or {}
        mse = fmt(val["image_mse"]) if "image_mse" in val else (
            f"{fmt(train['image_mse'])} (train)" if "image_mse" in train else "—")
        table.append([label, *[fmt_config(config[k]) if k in config else "—" for k in fields],
                      fmt(s.get("best_val_loss")), fmt(s.get("best_epoch")), fmt(train.get("loss_total")),
                      fmt(val.get("caption_accuracy")), mse, fmt_duration(s.get("training_time_s")),
                      s.get("status", "—")])
    return table


def best_run_line(labels, summaries, fields):
    scored = [(s["best_val_loss"], label, s) for label, s in zip(labels, summaries) if finite(s.get("best_val_loss"))]
    if not scored:
        return "No run has a validation loss, so none can be called best."
    scored.sort(key=lambda t: t[0])
    loss, label, s = scored[0]
    others = ", ".join(f"{other} {fmt(l)}" for l, other, _ in scored[1:])
    setting = ", ".join(f"{k}={fmt_config((s.get('config') or {})[k])}" for k in fields if k in (s.get("config") or {}))
    why = f"lowest best val loss {fmt(loss)}" + (f" at epoch {s['best_epoch']}" if s.get("best_epoch") else "")
    return (f"Best: **{label}** — {why}" + (f" (vs {others})" if others else "") +
            (f", with {setting}" if setting else "") + ".")


def plot_comparison(labels, runs, metric, path, title):
    """train (line) and val (markers) of one metric for every run, one color per run."""
    if not any(series(rows, f"{p}/{metric}")[1] for rows in runs for p in ("train", "val")):
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for i, (label, rows) in enumerate(zip(labels, runs)):
        color = f"C{i % 10}"
        xs, ys = series(rows, f"train/{metric}")
        if ys:
            ax.plot(xs, ys, color=color, linewidth=1.1, alpha=0.8, label=f"{label} train", **_style(len(ys)))
        xs, ys = series(rows, f"val/{metric}")
        if ys:
            ax.plot(xs, ys, color=color, linewidth=1.8, linestyle="--", marker="o", label=f"{label} val")
    ax.set(xlabel="global_step", ylabel=metric, title=title)
    ax.legend(fontsize="small", ncol=1 + len(labels) // 8)
    _save(fig, path)
    return True


def compare_runs(out_dirs, dest) -> Path:
    """Write dest/comparison.md and the overlay plots for the given out_dirs; return comparison.md's path."""
    loaded = [load_run(d) for d in out_dirs]
    summaries, runs = [s for s, _ in loaded], [r for _, r in loaded]
    labels = run_labels(out_dirs)
    fields = differing_fields([s.get("config") or {} for s in summaries])
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    plots = []
    for metric, file, title in (("loss_total", "compare_loss.png", "loss_total of every run (train line, val dashed)"),
                                ("caption_accuracy", "compare_caption_accuracy.png",
                                 "caption_accuracy of every run (train line, val dashed)")):
        if attempt(file, quietly, plot_comparison, labels, runs, metric, dest / file, title):
            plots.append(file)
    lines = [f"# Comparison of {len(labels)} runs", ""]
    lines += _md_table(comparison_table(labels, summaries, fields)) + [""]
    lines += ["Config fields that differ: " + (", ".join(fields) if fields else "none") + ".", "",
              best_run_line(labels, summaries, fields), ""]
    lines += [f"![{file}]({file})" for file in plots]
    path = dest / "comparison.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="analysis.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare", help="compare finished runs: a table of what differs and how they did, plus overlay plots",
        description="Read each OUT_DIR's summary.json and metrics.csv (written by train_wandb.py at the end of a "
                    "run); write DIR/comparison.md, DIR/compare_loss.png and DIR/compare_caption_accuracy.png; "
                    "print the comparison.")
    compare.add_argument("out_dirs", nargs="+", metavar="OUT_DIR", help="a run's out_dir (holds summary.json)")
    compare.add_argument("--out", required=True, metavar="DIR", help="folder for comparison.md and the plots")
    args = parser.parse_args(argv)
    try:
        path = compare_runs(args.out_dirs, args.out)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write {args.out}: {e}", file=sys.stderr)
        return 1
    print(path.read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
