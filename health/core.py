"""What every analysis shares: thresholds, findings, verdicts, number helpers, the run's recorded history,
and the config-aware wording of actions."""

from __future__ import annotations

import math
import numbers
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

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
HARDWARE = ("samples_per_second", "data_time_fraction", "cpu_percent", "gpu_memory_percent", "gpu_memory_used")
TRACKED = ("loss_total", *(f"loss_{c}" for c in COMPONENTS), "latent_std", "latent_norm", "latent_batch_std",
           "latent_diversity", "grad_norm", "grad_norm_max", "lr", *HARDWARE)
SETTLED = ("loss_total", *HARDWARE)  # the metrics whose early windows (warm-up) would mislead the checks

ACTION_CHANGE = re.compile(r"\b(?:raise|lower|set) (\w+) from \S+? to ([^\s,;:()]+)")  # 'raise x from 1 to 2'
UNTRAINED = "_untrained"  # suffix of a probe's score on the untrained model's z, logged beside its chance (baseline/)


# ----------------------------------------------------------------------------
# configuration and results

@dataclass
class HealthConfig:
    # every analysis
    warmup_windows: int = 5  # first log windows, skipped by the trend and hardware checks while loss and memory settle
    smoothing_windows: int = 5  # checks of a level (losses, collapse, hardware) use the median of this many windows
    alert_interval_minutes: float = 10.0  # a finding code is reported again only after this much wall time
    noise_errors: float = 2.0  # a change of a validation loss counts when it beats this many standard errors of
    # the difference (sqrt(2) x the loss's val/<loss>_se, the spread of its batch means); smaller is noise
    # training health
    grad_spike_factor: float = 20.0  # a window's largest step grad norm above this x the running median = spike
    grad_median_windows: int = 20  # windows in that running median
    grad_vanish_norm: float = 1e-6  # grad_norm below this = vanishing gradients
    stall_check_fraction: float = 0.2  # judge "not learning" and dominance once this share of the steps is done
    stall_min_drop: float = 0.05  # by then loss_total must have fallen this share of the way to its floor
    typical_learning_rate: float = 1e-3  # not_learning advises at least this, a rate too fast at most this (AdamW's
    # usual 1e-4..3e-3; the default)
    plateau_windows: int = 20  # loss_total must improve within this many windows ...
    plateau_run_share: float = 0.1  # ... or this share of the run's windows, whichever is more ...
    plateau_min_drop: float = 0.01  # ... by this share of its distance to the floor, else a plateau ...
    plateau_lr_fraction: float = 0.5  # ... judged only while lr is above this share of its peak (not the cosine tail)
    oscillation_windows: int = 10  # recent whole windows (an epoch's tail joined to the next head) it looks at
    oscillation_swing: float = 0.1  # mean back-and-forth move of loss_total per window, over its mean, above this
    converged_fraction: float = 0.02  # loss_total this close to its floor (share of start - floor): no plateau or swing
    divergence_fraction: float = 0.5  # loss_total giving back this share of its progress from the start to its best ...
    divergence_min_rise: float = 0.1  # ... and rising by this share of (start - floor) above its best = diverging
    decay_step_max: float = 0.01  # learning_rate x weight_decay above this: AdamW's decay alone takes more than 1%
    # of every weight each step (the quick preset's is 0.001, the default config's 0.00005) = over-regularised
    min_contrastive_batch: int = 8  # a global batch below this gives the contrastive loss too few negatives (and
    # steps too noisy) to learn from: batch_size x world size
    latent_rms_max: float = 5.0  # latent_norm / sqrt(latent_dim) above this = z blown up (healthy runs stay near 1)
    memory_creep_percent: float = 10.0  # gpu_memory_percent rising this many points over its first post-warm-up value
    # dominant loss
    dominant_share: float = 0.8  # weight x (reference - floor) of one component above this share of all: dominates ...
    stall_progress: float = 0.25  # ... while another went under this share of the way from its reference to its floor
    # latent space
    latent_collapse_diversity: float = 1e-5  # latent_diversity (1 - mean cosine of the batch's z) below this = collapse
    latent_collapse_spread: float = 1e-3  # latent_batch_std / latent_std below this = collapse (one z for every image)
    latent_growth_min: float = 0.1  # latent_std must grow by this share of its first value, else not learning
    latent_judge_epochs: int = 2  # judge latent growth at validation from this epoch on (runs without probes)
    latent_probe_errors: float = 2.0  # a linear probe on z (probes.py) beats chance by more than this many std errors
    # overfitting
    overfit_gap: float = 0.25  # (val - train) / train loss_total above this = overfitting, once val stops improving
    overfit_epochs: int = 3  # val rising this many epochs in a row while train falls = val_rising; none better = stopped
    # hardware
    data_wait_fraction: float = 0.2  # data_time_fraction above this = input bound
    cpu_bound_percent: float = 90.0  # cpu_percent above this while a GPU trains = CPU bound
    gpu_headroom_percent: float = 75.0  # peak gpu_memory_percent below this = room for a larger batch
    gpu_oom_percent: float = 95.0  # gpu_memory_percent above this = out-of-memory risk


@dataclass
class Finding:
    analysis: str  # a key of ANALYSES
    code: str  # short id, e.g. "grad_explosion"
    severity: str  # "info" | "warning" | "error"
    step: int  # global_step of the row that showed it
    message: str  # one line with the evidence
    action: str  # the concrete change, naming Config fields and values
    resolved: str = ""  # when and how its condition cleared later in the run ("" while it holds)

    @property
    def cause(self) -> str:
        """What the finding is about, for alerts: the Config fields its action changes ('learning_rate'), else its
        code. Findings of one cause (not_learning and latent_not_growing, both advising learning_rate) are one
        W&B alert title, and W&B rate-limits alerts per title."""
        return "+".join(sorted(action_changes(self.action))) or self.code

    def __str__(self):
        text = f"[{self.severity}] {self.analysis}/{self.code} at step {self.step}: {self.message} -> {self.action}"
        return text + (f" [resolved {self.resolved}]" if self.resolved else "")


def action_changes(action: str) -> dict:
    """{Config field: new value} that an action's first alternative sets ('raise weight_decay from 0.05 to 0.1 or
    set dropout from 0 to 0.1' -> {'weight_decay': '0.1'})."""
    first = action.split(" or ")[0]
    return {m[1]: m[2].rstrip(".") for m in ACTION_CHANGE.finditer(first)}


@dataclass
class Verdict:
    status: str  # "healthy" | "warning" | "problem" | "not enough data"
    summary: str  # one line
    evidence: list[str] = field(default_factory=list)  # lines with the numbers behind it
    actions: list[str] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)  # optional: header row, then rows (overfitting's epochs)
    rule: str = ""  # how the analysis decides, one line


# ----------------------------------------------------------------------------
# number helpers

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


def share_error(p, n):
    """The standard error of a share of n items at rate p, sqrt(p (1 - p) / n), with p kept within [1/n, 1 - 1/n]
    (a share of 0 or 1 still moves by about one item): how far chance moves a share measured on n items."""
    p = min(max(p, 1 / n), 1 - 1 / n)
    return math.sqrt(p * (1 - p) / n)


def split_row(row):
    """{"train": {name: value}, "val": {...}, "baseline": {...}} from a flat row; non-numeric values (media, text) are
    dropped."""
    parts = defaultdict(dict)
    for key, value in row.items():
        prefix, _, name = key.partition("/")
        if name and prefix in ("train", "val", "baseline") and is_number(value):
            parts[prefix][name] = float(value)
    return parts


# ----------------------------------------------------------------------------
# the run as the checks see it

class History:
    """The logged windows the checks read, as plain floats (under 1 MB for a 3000-window run), and the
    levels the run config gives: reference (chance) and floor of each loss component, peak lr, total steps."""

    def __init__(self, cfg: HealthConfig, run_config: dict):
        self.cfg, self.run_config = cfg, run_config
        self.weights = loss_weights(run_config)
        self.train: dict[str, list[float]] = defaultdict(list)  # finite TRACKED train values, every window
        self.settled: dict[str, list[float]] = defaultdict(list)  # finite SETTLED values after the warm-up
        self.last_val: dict[str, float] = {}  # the latest validation row
        self.last_baseline: dict[str, float] = {}  # the latest baseline row (logged beside each validation)
        self.epoch_loss: dict[int, list[float]] = {}  # epoch -> [step-weighted sum, steps] of train loss_total
        self.val_epochs: list[tuple[int, float]] = []  # (epoch, val loss_total)
        # settled loss_total over whole windows: runs logged before the Trainer carried a window across an epoch's end
        # had an epoch's tail and the next one's head as two short windows (9 steps and 1 of 10, say), and a resumed
        # or stopped run can still log one; each is as noisy as its few steps make it, so they are joined
        # (step-weighted) until they hold log_frequency steps, one window like the rest
        self.whole_losses: list[float] = []
        self.window_length = int(run_config.get("log_frequency") or 0)  # steps in a whole window; 0: unknown
        self.partial = [0.0, 0]  # [step-weighted sum, steps] of the windows not yet joined into a whole one
        self.train_step = 0  # global_step of the last train window
        self.n_train = 0
        self.step = 0

    @property
    def warm(self):
        return self.n_train > self.cfg.warmup_windows

    def record_train(self, values):
        self.n_train += 1
        steps = self.step - self.train_step if self.step > self.train_step else 1  # rows without steps: 1 each
        self.train_step = self.step
        for name in TRACKED:
            value = values.get(name)
            if value is not None and math.isfinite(value):
                self.train[name].append(value)
                if self.warm and name in SETTLED:
                    self.settled[name].append(value)
        loss = values.get("loss_total")
        if not finite(loss):
            return
        if self.warm:
            self.partial = [self.partial[0] + loss * steps, self.partial[1] + steps]
            if self.partial[1] >= self.window_length:
                self.whole_losses.append(self.partial[0] / self.partial[1])
                self.partial = [0.0, 0]
        epoch = values.get("epoch")  # the window ending at epoch e - 1 + i/steps belongs to epoch e
        e = max(1, math.ceil(epoch - 1e-9)) if finite(epoch) else len(self.val_epochs) + 1
        total = self.epoch_loss.setdefault(e, [0.0, 0])
        total[0] += loss * steps
        total[1] += steps

    def record_val(self, values):
        """-> the epoch of a validation row with a finite loss_total, else None."""
        self.last_val = values
        loss = values.get("loss_total")
        if not finite(loss):
            return None
        epoch = round(values["epoch"]) if finite(values.get("epoch")) else len(self.val_epochs) + 1
        self.val_epochs.append((epoch, loss))
        return epoch

    def best_val(self):
        """(epoch, val loss_total) of the lowest validation loss so far, the first of equal ones; None before any."""
        return min(self.val_epochs, key=lambda e: e[1], default=None)

    def train_epoch_mean(self, epoch):
        total = self.epoch_loss.get(epoch)
        return total[0] / total[1] if total else None

    def current_epoch(self):
        return max(self.epoch_loss, default=len(self.val_epochs))

    def recent(self, name, n=None):
        """Median of the last n (smoothing_windows) train windows of a metric, None when never logged."""
        return median_tail(self.train[name], n or self.cfg.smoothing_windows)

    # -- levels from the run config ------------------------------------------------

    def reference(self, component):
        """The level of loss_<component> before learning: reference_levels (chance, or predicting the mean
        image), else its first window."""
        ref = (self.run_config.get("reference_levels") or {}).get(f"loss_{component}")
        if finite(ref):
            return float(ref)
        values = self.train[f"loss_{component}"]
        return values[0] if values else None

    def floor(self, component):
        """The lowest loss_<component> a perfect model reaches: alignment_floor (identical captions in a
        batch cannot be told apart) for alignment, 0 otherwise."""
        value = self.run_config.get("alignment_floor") if component == "alignment" else None
        return float(value) if finite(value) else 0.0

    def total_floor(self):
        return sum(self.weights[c] * self.floor(c) for c in COMPONENTS)

    def total_reference(self):
        """Weighted sum of the reference levels, or None unless all three are known."""
        levels = self.run_config.get("reference_levels") or {}
        if not all(finite(levels.get(f"loss_{c}")) for c in COMPONENTS):
            return None
        return sum(self.weights[c] * levels[f"loss_{c}"] for c in COMPONENTS)

    def peak_lr(self):
        lr = self.run_config.get("learning_rate")
        return float(lr) if finite(lr) and lr > 0 else max(self.train["lr"], default=None)

    def run_fraction(self):
        """Share of the run's optimizer steps done, None when total_steps is unknown."""
        total = self.run_config.get("total_steps")
        return self.step / total if finite(total) and total > 0 else None

    def past_start(self):
        """Has the run trained long enough to judge what it learned? stall_check_fraction of total_steps
        done, or (total_steps unknown) a whole epoch, and the warm-up windows behind it."""
        done = self.run_fraction()
        due = done >= self.cfg.stall_check_fraction if done is not None else self.current_epoch() >= 2
        return due and self.warm


# ----------------------------------------------------------------------------
# actions that name a Config field and a value

def change(run_config, name, factor, zero_to=1):
    """'lower learning_rate from 0.001 to 0.0003': the run's value of a Config field, scaled by factor."""
    current = run_config.get(name)
    verb = "raise" if factor > 1 else "lower"
    if not finite(current):  # a run config without the field: still name it
        return f"{verb} {name}"
    if current == 0 and factor > 1:  # scaling 0 goes nowhere
        return f"set {name} from 0 to {fmt_config(zero_to)}"
    new = current * factor
    new = max(1, round(new)) if isinstance(current, int) else float(f"{new:.3g}")
    return f"{verb} {name} from {fmt_config(current)} to {fmt_config(new)}"


def lower_lr(run_config, factor, typical=None):
    """'lower learning_rate from X to factor x X', and to at most `typical` (typical_learning_rate) when X is
    above it: from 25x the preset's rate, a tenth was still too fast on one seed of the diagnosis benchmark, as
    10x was too slow from 1e-6 (TrainingHealth.raise_lr, the mirror)."""
    current = run_config.get("learning_rate")
    if finite(typical) and finite(current) and current * factor > typical:
        factor = typical / current
    action = change(run_config, "learning_rate", factor)
    if run_config.get("grad_clip") == 0:
        action += " and set grad_clip from 0 to 1.0"
    return action


# ----------------------------------------------------------------------------
# what an analysis is

class Analysis:
    """One of the five analyses: observes train and validation rows, emits findings, gives a verdict.

    `monitor` supplies the shared History (`history`), the rate-limited `emit` and the run's findings.
    """

    name = ""  # a key of ANALYSES

    def __init__(self, monitor):
        self.monitor = monitor
        self.h: History = monitor.history
        self.cfg: HealthConfig = monitor.cfg
        self.run_config: dict = monitor.run_config

    def observe_train(self, values):
        pass

    def observe_val(self, values, epoch):
        pass

    def verdict(self) -> Verdict:
        raise NotImplementedError

    def emit(self, code, severity, message, action):
        self.monitor.emit(self.name, code, severity, message, action)

    def findings(self):
        return [f for f in self.monitor.findings if f.analysis == self.name]

    def resolve(self, codes, how):
        """Mark this analysis' findings of these codes that still hold as resolved (`how`: when and why)."""
        for f in self.findings():
            if f.code in codes and not f.resolved:
                f.resolved = how

    def from_findings(self, missing, healthy_summary, evidence, rule, table=()):
        """A verdict of how the run ended, from this analysis' findings that still hold; those that cleared are
        kept in the evidence. `missing` (a reason) gives 'not enough data' when none fired."""
        everything = self.findings()
        found = [f for f in everything if not f.resolved]
        evidence = list(evidence) + [f"{f.code} at step {f.step} ({f.severity}), resolved {f.resolved}"
                                     for f in everything if f.resolved]
        actions = list(dict.fromkeys(f.action for f in found))
        if not everything and missing:
            return Verdict("not enough data", missing, evidence, [], list(table), rule)
        worst = max(found, key=lambda f: SEVERITY_RANK[f.severity], default=None)
        status = STATUS_BY_SEVERITY[worst.severity] if worst else "healthy"
        serious = [f for f in found if f.severity != "info"]
        summary = "; ".join(f"{f.code} at step {f.step}" for f in serious) if serious else healthy_summary
        cleared = [f for f in everything if f.resolved and f.severity != "info"]
        if cleared and not serious:
            summary += f" (resolved: {', '.join(f'{f.code} at step {f.step}' for f in cleared)})"
        return Verdict(status, summary, evidence, actions, list(table), rule)
