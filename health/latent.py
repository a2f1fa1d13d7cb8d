"""Latent space: do different images get different z, and does z grow as the model learns?

Collapse is measured between images: latent_batch_std (std of z across the batch, averaged over the latent
dimensions) and latent_diversity (1 - mean cosine between the batch's z). latent_std, the spread of all
B x D values, is mostly differences between dimensions: it stays large when every image has one z, so it
only serves the growth check (in real quick runs the spread between images first shrinks, then grows).
"""

from __future__ import annotations

from .core import Analysis, Verdict, change, finite, fmt, median_tail

LOSS_STALLS = ("not_learning", "loss_plateau")  # training_health codes that say the loss is not moving


class LatentSpace(Analysis):
    """Reads: warmup_windows, smoothing_windows, latent_collapse_diversity, latent_collapse_spread,
    latent_growth_min, latent_judge_epochs.
    Verdict: a collapse seen at any time is a problem; else where the run ended (growth of latent_std)."""

    name = "latent_space"

    def rule(self):
        c = self.cfg
        return (f"collapse if latent_diversity < {c.latent_collapse_diversity:g} or latent_batch_std / latent_std < "
                f"{c.latent_collapse_spread:g} (median of {c.smoothing_windows} windows); else latent_std must "
                f"grow {c.latent_growth_min:.0%} by epoch {c.latent_judge_epochs}")

    def collapse(self, values=None):
        """A message when the images share one z, from one validation row or the recent train windows."""
        h, cfg, n = self.h, self.cfg, self.cfg.smoothing_windows
        if values is None:
            diversity, spread, std = (median_tail(h.train[k], n) for k in
                                      ("latent_diversity", "latent_batch_std", "latent_std"))
        else:
            diversity, spread, std = (values.get(k) for k in ("latent_diversity", "latent_batch_std", "latent_std"))
        if finite(diversity) and diversity < cfg.latent_collapse_diversity:
            return f"latent_diversity {diversity:.3g} < {cfg.latent_collapse_diversity:g}: every image has about one z"
        if finite(spread) and finite(std) and std > 0 and spread / std < cfg.latent_collapse_spread:
            return (f"latent_batch_std {spread:.3g} is {spread / std:.2g} of latent_std {std:.3g} "
                    f"(limit {cfg.latent_collapse_spread:g}): every image maps to about the same z")
        return None

    def check_collapse(self, values=None):
        message = self.collapse(values)
        if message:
            self.emit("latent_collapse", "error", message,
                      "check the data first (do the images differ? an encoder fed near-identical images has nothing "
                      f"to tell apart); if they do, {change(self.run_config, 'learning_rate', 0.3)} and "
                      f"{change(self.run_config, 'alignment_loss_weight', 2.0)} (the contrastive term keeps z apart)")

    def observe_train(self, values):
        if self.h.warm:  # at initialisation z can be nearly alike; a collapse that lasts shows after warm-up
            self.check_collapse()

    def observe_val(self, values, epoch):
        self.check_collapse(values)
        if epoch is not None and epoch >= self.cfg.latent_judge_epochs:
            found = self.not_growing()
            if found:
                self.emit("latent_not_growing", "warning", *found)

    def growth(self):
        """(metric, first value, recent value, relative growth) of latent_std, or None before 2 windows."""
        key = "latent_std"
        values = self.h.train[key]
        if len(values) < 2 or values[0] <= 0:
            return None
        recent = median_tail(values[1:], self.cfg.smoothing_windows)
        return key, values[0], recent, recent / values[0] - 1

    def not_growing(self):
        """(message, action) when the spread between images did not grow, else None."""
        growth = self.growth()
        if growth is None or growth[3] >= self.cfg.latent_growth_min:
            return None
        key, first, recent, rel = growth
        message = (f"{key} {first:.4g} at the first window, {recent:.4g} now "
                   f"({rel:+.0%}; needs +{self.cfg.latent_growth_min:.0%})")
        stall = next((f for f in self.monitor.findings if f.code in LOSS_STALLS), None)
        if stall:  # the whole model is not learning: the latent size is not the cause
            return message, f"the loss is not moving either (training_health/{stall.code}): {stall.action}"
        return message, (f"{change(self.run_config, 'latent_dim', 2)}; check grad_norm > 0 (the encoder must learn) "
                         "and that loss_image and loss_caption fall")

    def verdict(self):
        h, evidence = self.h, []
        for key in ("latent_batch_std", "latent_diversity", "latent_std", "latent_norm"):
            values = h.train[key]
            if values:
                evidence.append(f"{key}: first {fmt(values[0])}, last {fmt(values[-1])}, min {fmt(min(values))}, "
                                f"max {fmt(max(values))}")
        for key in ("latent_batch_std", "latent_diversity"):
            if key in h.last_val:
                evidence.append(f"val {key} last {fmt(h.last_val[key])}")
        collapsed = [f for f in self.findings() if f.code == "latent_collapse"]
        if collapsed:
            return Verdict("problem", collapsed[0].message, evidence, [collapsed[0].action], rule=self.rule())
        growth = self.growth()
        if growth is None:
            return Verdict("not enough data", "fewer than 2 windows with latent statistics", evidence,
                           rule=self.rule())
        found = self.not_growing()
        if found:
            return Verdict("warning", "not learning: " + found[0], evidence, [found[1]], rule=self.rule())
        return Verdict("healthy", f"{growth[0]} grew {growth[3]:+.0%} from its first window; no collapse", evidence,
                       rule=self.rule())
