"""Training health: non-finite values, gradient spikes and vanishing, a loss that does not learn, stalls,
oscillates or runs away, and GPU memory creeping up."""

from __future__ import annotations

import math
import statistics

import numpy as np

from .core import Analysis, change, finite, fmt, fmt_config, lower_lr

STEPS_TOO_LARGE = ("latent_blowup", "loss_diverging", "non_finite")  # findings whose cause is the learning rate
PLATEAU_POINTS = 400  # the most windows a plateau's trend is fit on (80,000 slope pairs); a longer span is thinned
LOSS_WEIGHTS = ("image_loss_weight", "caption_loss_weight", "alignment_loss_weight")
EXTREME_WEIGHT_RATIO = 100  # a loss weight this many times the smallest scales the gradients by itself


def extreme_weight(run_config):
    """The action for gradients whose scale a loss weight sets: the largest weight, EXTREME_WEIGHT_RATIO or more
    times the smallest positive one, lowered to 10x that one (the diagnosis benchmark's dominant_image, at 3,000,
    spiked; the learning rate was not the cause). None when the weights are within that ratio."""
    weights = {k: run_config[k] for k in LOSS_WEIGHTS if finite(run_config.get(k)) and run_config[k] > 0}
    if len(weights) < 2:
        return None
    top, low = max(weights, key=weights.get), min(weights.values())
    if weights[top] < EXTREME_WEIGHT_RATIO * low:
        return None
    return (f"lower {top} from {fmt_config(weights[top])} to {fmt_config(10 * low)}: it multiplies its loss's "
            f"gradients {weights[top] / low:.0f}x the smallest weight's, and their spikes with them")


def window_noise(values):
    """The noise of one window's value, from the window-to-window differences: a robust standard deviation
    (1.4826 x their median absolute deviation) over sqrt(2), as each difference holds two windows' noise. A steady
    trend moves the differences' median, not their spread. 0 with fewer than 3 windows."""
    if len(values) < 3:
        return 0.0
    diffs = np.diff(np.asarray(values, dtype=float))
    with np.errstate(all="ignore"):
        return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2))


def theil_sen(values, z=1.96):
    """(slope, low, high) of values against their index: the median of the pairwise slopes (Theil-Sen) and its
    confidence interval at z (Sen 1968: the pairwise slopes ranked z standard deviations of Kendall's S away from
    the middle; no ties assumed), as scipy.stats.theilslopes computes it."""
    y = np.asarray(values, dtype=float)
    n = len(y)
    i, j = np.triu_indices(n, 1)
    slopes = np.sort((y[j] - y[i]) / (j - i))
    sigma = math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    upper = min(int(round((len(slopes) + z * sigma) / 2)), len(slopes) - 1)
    lower = max(int(round((len(slopes) - z * sigma) / 2)) - 1, 0)
    return float(np.median(slopes)), float(slopes[lower]), float(slopes[upper])


def swing(values):
    """Mean back-and-forth move per window, over the mean level: the movement that does not add to the net
    change. A monotone curve, however steep or curved, scores 0; a zig-zag of +-a around c scores a/c."""
    y = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"):  # astronomically large losses overflow; divergence reports those
        excess = np.abs(np.diff(y)).sum() - abs(y[-1] - y[0])
        mean = y.mean()
        return float(excess / (2 * (len(y) - 1)) / mean) if mean > 0 else 0.0


class TrainingHealth(Analysis):
    """Loss and gradient behaviour, GPU memory.

    Reads: warmup_windows, smoothing_windows, grad_spike_factor, grad_median_windows, grad_vanish_norm,
    latent_rms_max, stall_check_fraction, stall_min_drop, plateau_windows, plateau_min_drop, plateau_lr_fraction,
    oscillation_windows, oscillation_swing, converged_fraction, divergence_fraction, divergence_min_rise,
    memory_creep_percent.
    Verdict: the worst finding still open at the end; a gradient spike after which the loss came back to its
    level is resolved (and kept in the evidence).
    """

    name = "training_health"

    def __init__(self, monitor):
        super().__init__(monitor)
        self.stall_judged = False
        self.gpu_baseline = None  # gpu_memory_percent of the first window after warm-up
        self.spike = None  # (window, loss_total level) at the last gradient spike, until the loss is back there
        self.lowest_level = math.inf  # the lowest smoothed loss_total since the warm-up (check_divergence)
        self.plateau_level = None  # the best loss_total of an open loss_plateau, until the loss moves on from it

    def rule(self):
        c = self.cfg
        return (f"worst finding still open at the end: NaN/inf; a window's max grad norm > {c.grad_spike_factor:g}x "
                f"the running median (resolved once loss_total is back at its level); "
                f"z's RMS per dimension > {c.latent_rms_max:g}; learning_rate x weight_decay > {c.decay_step_max:g}; "
                f"a global batch < {c.min_contrastive_batch}; "
                f"loss_total < {c.stall_min_drop:.0%} of the way to its floor at {c.stall_check_fraction:.0%} "
                f"of the run; a loss_total trend (Theil-Sen, 95% bound) under {c.plateau_min_drop:.0%} in "
                f"{c.plateau_windows} windows or {c.plateau_run_share:.0%} of the run while lr > "
                f"{c.plateau_lr_fraction:.0%} of peak; swings > {c.oscillation_swing:.0%} over whole windows "
                f"(neither judged once converged: within {c.converged_fraction:.0%} of the floor); giving back "
                f"{c.divergence_fraction:.0%} of its progress (median of {c.smoothing_windows} windows against its "
                f"lowest, beyond {c.noise_errors:g} x the window-to-window noise)")

    def observe_non_finite(self, prefix, values):
        bad = [name for name, v in values.items() if name.startswith(("loss_", "grad_")) and not math.isfinite(v)]
        if bad:
            shown = ", ".join(f"{prefix}/{name}={values[name]}" for name in bad)
            self.emit("non_finite", "error", f"non-finite values at step {self.h.step}: {shown}",
                      f"{self.slower(0.1)}; if it persists set precision to fp32")

    def observe_train(self, values):
        self.check_gradients(values)
        self.check_recovery()
        self.check_decay()  # from the config and the current lr: no warm-up to wait for, and a collapse it causes
        if not self.h.warm:  # can show at the first validation, which blames it only if it is named by then
            return
        self.check_blowup()
        self.check_batch()
        if finite(values.get("loss_total")):
            self.check_not_learning()
            self.check_divergence()
            self.check_plateau()
            self.check_oscillation()
        gpu = values.get("gpu_memory_percent")
        if finite(gpu) and gpu > 0:
            self.check_memory(gpu)

    # -- gradients ------------------------------------------------------------------

    def check_gradients(self, values):
        grad_norm = values.get("grad_norm")
        if not finite(grad_norm):
            return
        if grad_norm < self.cfg.grad_vanish_norm:
            self.emit("grad_vanishing", "warning",
                      f"grad_norm {grad_norm:.3g} < {self.cfg.grad_vanish_norm:g}: "
                      "almost no gradient reaches the weights",
                      f"{change(self.run_config, 'learning_rate', 3.0)} and check that every loss term backpropagates")
        # the window's largest step (grad_norm_max) against typical windows: a mean would dilute a 1-step spike
        peak_key = "grad_norm_max" if finite(values.get("grad_norm_max")) else "grad_norm"
        peak = values[peak_key]
        earlier = self.h.train["grad_norm"][-self.cfg.grad_median_windows - 1:-1]
        if not (self.h.warm and len(earlier) >= 3):
            return
        median = statistics.median(earlier)
        if median > 0 and peak > self.cfg.grad_spike_factor * median:
            clip = self.run_config.get("grad_clip")
            note = f" (grad_clip={clip:g} caps each update, but a spike still skews AdamW's moments)" if clip else ""
            self.emit("grad_explosion", "warning",
                      f"{peak_key} {peak:.4g} is {peak / median:.0f}x the running median of grad_norm {median:.4g}",
                      extreme_weight(self.run_config) or self.slower(0.3) + note)
            level = self.h.recent("loss_total")
            if level is not None:
                self.spike = (self.h.n_train, level)

    def check_recovery(self):
        """A gradient spike is resolved once the loss_total of the windows after it (their median) is back at or
        below its level when the spike came: the run recovered, and the spike stays in the evidence."""
        if self.spike is None or self.h.n_train - self.spike[0] < self.cfg.smoothing_windows:
            return
        now = self.h.recent("loss_total")
        if now is not None and now <= self.spike[1]:
            self.resolve(("grad_explosion",), f"at step {self.h.step}: loss_total {now:.4g} back at or below "
                                              f"{self.spike[1]:.4g}, its level at the spike")
            self.spike = None

    def check_blowup(self):
        """z blown up: each step moves the weights too far. In real quick runs z's RMS per dimension stays
        near 1 (0.1 at learning_rate=1e-6, 0.95 at 2e-3) and reaches 20 at 0.05."""
        dim, norm = self.run_config.get("latent_dim"), self.h.recent("latent_norm")
        if not (finite(dim) and dim > 0 and norm is not None):
            return
        rms = norm / math.sqrt(dim)
        if rms > self.cfg.latent_rms_max:
            self.emit("latent_blowup", "error",
                      f"z's RMS per dimension is {rms:.3g} (latent_norm {norm:.4g} over sqrt(latent_dim={dim})"
                      f"; limit {self.cfg.latent_rms_max:g}): each step moves the weights too far",
                      self.slower(0.1))

    def check_decay(self):
        """AdamW's decoupled weight decay multiplies every weight by (1 - lr x weight_decay) each step: above
        decay_step_max the decay alone drives the weights to 0 within a few hundred steps, and z, the loss
        and the gradients follow (SageMaker Debugger's WeightUpdateRatio looks at the same ratio). Named only for a
        weight_decay above 1 (AdamW's usual values are 0.01 to 0.5), and not once the steps are too large."""
        lr, wd = self.h.train["lr"][-1] if self.h.train["lr"] else None, self.run_config.get("weight_decay")
        if not (finite(lr) and finite(wd)) or lr * wd <= self.cfg.decay_step_max or wd <= 1:
            return  # a weight decay of 1 or less is in AdamW's usual range: then the rate is what is too high
        if any(f.code in STEPS_TOO_LARGE for f in self.findings()):
            return
        target = self.cfg.decay_step_max / 10 / self.h.peak_lr()  # a tenth of the limit at the peak rate
        self.emit("weight_decay_too_high", "warning",
                  f"learning_rate {fmt(lr)} x weight_decay {fmt(wd)} = {lr * wd:.3g} > {self.cfg.decay_step_max:g}: "
                  f"the decay alone takes {lr * wd:.1%} of every weight each step",
                  change(self.run_config, "weight_decay", target / wd))

    def check_batch(self):
        """A contrastive loss over a batch of B pairs tells each pair from B - 1 others (chance is ln B): with a
        global batch of a handful the alignment has almost nothing to learn from and every step is as noisy as a
        few samples make it. Judged from the config, once, after the warm-up."""
        size = self.run_config.get("global_batch_size", self.run_config.get("batch_size"))
        if finite(size) and 0 < size < self.cfg.min_contrastive_batch:
            self.emit("batch_too_small", "warning",
                      f"a global batch of {int(size)} gives the contrastive loss {int(size) - 1} negative(s) per pair "
                      f"(limit {self.cfg.min_contrastive_batch}) and steps as noisy as {int(size)} samples",
                      change(self.run_config, "batch_size", max(2.0, 32 / size)))

    # -- the loss curve ---------------------------------------------------------------

    def progress_scale(self):
        """(start, floor): the first window's loss_total (or chance, if higher) and the lowest reachable."""
        start = self.h.train["loss_total"][0]
        chance = self.h.total_reference()
        return max(start, chance) if chance is not None else start, self.h.total_floor()

    def converged(self):
        """Has loss_total gone all but converged_fraction of its way from the start to its floor? The loss of a
        model that fits its training batches this closely is flat and moves with which batches it has memorised,
        not with the learning rate: neither a plateau nor an oscillation. Whether it generalises is the
        overfitting analysis' question."""
        start, floor = self.progress_scale()
        current = self.h.recent("loss_total")
        return current is not None and current - floor < self.cfg.converged_fraction * (start - floor)

    def check_not_learning(self):
        """Once, at stall_check_fraction of the run with lr near its peak: has the loss moved at all?"""
        h, cfg = self.h, self.cfg
        done = h.run_fraction()
        lr, peak = h.train["lr"][-1] if h.train["lr"] else None, h.peak_lr()
        if self.stall_judged or not h.past_start() or (lr is not None and peak and lr < cfg.plateau_lr_fraction * peak):
            return
        self.stall_judged = True
        first, floor = h.train["loss_total"][0], h.total_floor()
        current = h.recent("loss_total")
        blown_up = any(f.code == "latent_blowup" for f in self.findings())  # the steps are too large, not small
        if first <= floor or blown_up:
            return
        drop = (first - current) / (first - floor)
        if drop < cfg.stall_min_drop:
            at = f"{done:.0%} of the run" if done is not None else f"window {h.n_train}"
            self.emit("not_learning", "warning",
                      f"loss_total {first:.4g} -> {current:.4g} at {at}: {drop:.1%} of the way to its floor "
                      f"{floor:.4g} (needs {cfg.stall_min_drop:.0%}) with lr {fmt(lr)}, still near its peak",
                      f"{self.raise_lr()}: the steps are too small to learn")

    def slower(self, factor):
        """The advice for steps too large: factor x the rate, and at most typical_learning_rate (lower_lr)."""
        return lower_lr(self.run_config, factor, self.cfg.typical_learning_rate)

    def raise_lr(self):
        """The advice for a loss that does not move: 10x the rate, and at least typical_learning_rate (from a
        rate far below it, 10x is still too small: 1e-6 -> 1e-5 did not learn in the diagnosis benchmark)."""
        current = self.run_config.get("learning_rate")
        if finite(current) and 0 < current and current * 10 < self.cfg.typical_learning_rate:
            return (f"{change(self.run_config, 'learning_rate', self.cfg.typical_learning_rate / current)} "
                    f"(typical_learning_rate; 10x, {fmt(current * 10)}, would still be far below it)")
        return change(self.run_config, "learning_rate", 10.0)

    def check_divergence(self):
        """loss_total's smoothed level (the median of the last smoothing_windows windows) against the lowest that
        level has been since the warm-up. A rise counts when it gives back divergence_fraction of the progress, is
        divergence_min_rise of the way from the start to the floor, and beats noise_errors x the window-to-window
        noise (window_noise). Smoothed against smoothed: the lagging median against the newest single window made a
        loss that fell fast look like one that rose (the diagnosis benchmark's overfitting scenario, seed 0)."""
        cfg = self.cfg
        start, floor = self.progress_scale()
        current = self.h.recent("loss_total")
        best = self.lowest_level = min(self.lowest_level, current)
        rise, noise = current - best, cfg.noise_errors * window_noise(self.h.train["loss_total"])
        if (rise > noise and rise > cfg.divergence_fraction * (start - best)
                and rise > cfg.divergence_min_rise * (start - floor)):
            given_back = f"{rise / (start - best):.0%} of its progress" if start > best else "more than its progress"
            self.emit("loss_diverging", "error",
                      f"loss_total {current:.4g} (median of the last windows) gave back {given_back} from the start "
                      f"{start:.4g} to its lowest median {best:.4g} (floor {floor:.4g}; window noise x "
                      f"{cfg.noise_errors:g} {noise:.3g})", self.slower(0.1))

    def check_plateau(self):
        """A plateau: over the last plateau_windows windows, even the fastest fall the noise allows (the 95% bound
        of loss_total's Theil-Sen trend, theil_sen) is under plateau_min_drop of the way to the floor, while lr is
        still high. Against the trend and its noise, not the best window against an earlier best: on a sweep draw
        with batch 16 that compared one lucky window and called a slow stretch (3.19 at step 2,510, 2.6 at the end)
        a plateau. Resolved once the loss moves on, plateau_min_drop of the way below the plateau's level."""
        losses, cfg, h = self.h.settled["loss_total"], self.cfg, self.h
        span = self.plateau_span()
        if len(losses) <= span:
            return
        floor = h.total_floor()
        if self.plateau_level is not None and self.plateau_level - losses[-1] > cfg.plateau_min_drop * (
                self.plateau_level - floor):
            self.resolve(("loss_plateau",), f"at step {h.step}: loss_total {losses[-1]:.4g}, moving again below "
                                            f"the plateau's {self.plateau_level:.4g}")
            self.plateau_level = None
        lrs, peak = h.train["lr"][-span:], h.peak_lr()
        if lrs and peak and min(lrs) < cfg.plateau_lr_fraction * peak:  # the schedule's tail: small gains expected
            return
        if self.converged() or any(f.code == "not_learning" for f in self.findings()):  # one cause, one finding
            return
        step = math.ceil(span / PLATEAU_POINTS)  # slope pairs grow as n^2: a longer span keeps every step-th window
        recent = losses[-span:][::-step][::-1]  # (the newest among them)
        level = float(np.median(recent))
        _, steepest, _ = theil_sen(recent)
        drop = -steepest * (len(recent) - 1) / (level - floor) if level > floor else math.inf
        if drop < cfg.plateau_min_drop:
            if self.plateau_level is None:
                self.plateau_level = level
            self.emit("loss_plateau", "warning",
                      f"loss_total {level:.4g} over the last {span} windows: its trend falls at most "
                      f"{max(drop, 0):.1%} of the way to the floor {floor:.4g} (Theil-Sen, 95% bound; needs "
                      f"{cfg.plateau_min_drop:.0%}) while lr is still above {cfg.plateau_lr_fraction:.0%} of its peak",
                      f"{change(self.run_config, 'learning_rate', 3.0)} if the loss stalled early; if it has "
                      f"converged, lower num_epochs to {h.current_epoch()}")

    def plateau_span(self):
        """The windows a plateau is judged over: plateau_windows, or plateau_run_share of the run's windows (from
        the windows so far and the share of the steps done) when that is more: in a run of 578 windows, 20 of them
        (3.5% of the run) flat between two falls is a slow stretch, not a plateau."""
        done, cfg = self.h.run_fraction(), self.cfg
        if not done:
            return cfg.plateau_windows
        return max(cfg.plateau_windows, round(cfg.plateau_run_share * self.h.n_train / done))

    def check_oscillation(self):
        losses, n = self.h.whole_losses, self.cfg.oscillation_windows
        if n < 3 or len(losses) < n or self.converged():
            return
        recent = losses[-n:]
        score = swing(recent)
        if score > self.cfg.oscillation_swing:
            self.emit("loss_oscillation", "warning",
                      f"loss_total swings {score:.0%} back and forth per window over the last {n} windows "
                      f"(range {min(recent):.4g} to {max(recent):.4g})",
                      f"{change(self.run_config, 'learning_rate', 0.3)} or "
                      f"{change(self.run_config, 'batch_size', 2)} for less noisy steps")

    # -- memory -----------------------------------------------------------------------

    def check_memory(self, gpu):
        if self.gpu_baseline is None:
            self.gpu_baseline = gpu
        if gpu - self.gpu_baseline > self.cfg.memory_creep_percent:
            self.emit("memory_creep", "warning",
                      f"gpu_memory_percent rose from {self.gpu_baseline:.1f}% after warm-up to {gpu:.1f}% "
                      f"(limit +{self.cfg.memory_creep_percent:.0f} points): possible leak",
                      f"look for tensors kept across steps (a stored loss without .item() or .detach()); "
                      f"until found, {change(self.run_config, 'batch_size', 0.5)}")

    # -- verdict ------------------------------------------------------------------------

    def verdict(self):
        h = self.h
        losses, settled, grads = h.train["loss_total"], h.settled["loss_total"], h.train["grad_norm"]
        evidence = []
        if losses:
            evidence.append(f"loss_total: first {fmt(losses[0])}, min {fmt(min(losses))}, last {fmt(losses[-1])} "
                            f"over {h.n_train} windows ({self.cfg.warmup_windows} of warm-up); "
                            f"floor {fmt(h.total_floor())}")
        if grads:
            peaks = h.train["grad_norm_max"]
            evidence.append(f"grad_norm: median {fmt(statistics.median(grads))}, max {fmt(max(grads))}, "
                            f"min {fmt(min(grads))}" + (f"; largest single step {fmt(max(peaks))}" if peaks else ""))
        if self.gpu_baseline is not None:
            evidence.append(f"gpu_memory_percent: {self.gpu_baseline:.1f}% after warm-up, "
                            f"{h.settled['gpu_memory_percent'][-1]:.1f}% last")
        missing = (None if settled else
                   f"{h.n_train} train window(s), all inside the warm-up of {self.cfg.warmup_windows}")
        summary = "loss_total falls without spikes, stalls or runaway memory"
        if len(losses) >= 2 and losses[0] > 0:
            summary = f"loss_total fell {1 - losses[-1] / losses[0]:.0%} without spikes, stalls or runaway memory"
        return self.from_findings(missing, summary, evidence, self.rule())
