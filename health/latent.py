"""Latent space: do different images get different z, and what does z know about them?

What z knows is read from the linear probes of the last validation (probes.py, logged as val/probe_*, their chance
levels as baseline/probe_*, their scores on the untrained model's z as baseline/probe_*_untrained): a linear map fit
on the z of training items predicts the words of the captions and, on the bundled set, the generator's ground truth
of validation items. "Nothing learned" is judged against chance; whether training taught z the main object, also
against the untrained z, whose random features already read much of a large object. A probe is above chance when it
beats its chance level by more than latent_probe_errors standard errors: for the word AUC the one the run logs
(val/probe_word_auc_se), for a field's accuracy that of a share of the validation items at its majority rate.

Collapse is measured between images: latent_batch_std (std of z across the batch, averaged over the latent
dimensions) and latent_diversity (1 - mean cosine between the batch's z). latent_std, the spread of all
B x D values, is mostly differences between dimensions: it stays large when every image has one z, so it
only serves the growth check, the verdict of a run without probes (in real quick runs the spread between
images first shrinks, then grows).
"""

from __future__ import annotations

from .core import UNTRAINED, Analysis, Verdict, change, finite, fmt, lower_lr, median_tail, share_error

LOSS_STALLS = ("not_learning", "loss_plateau")  # training_health codes that say the loss is not moving
PROBES = {  # the probes (probes.py) in the order a verdict names them -> what each tells z knows
    "probe_word_auc": "the caption words", "probe_technique": "the technique", "probe_time": "the time of day",
    "probe_kind": "the main object", "probe_count": "its count", "probe_position": "its position",
}
FIELD_ITEMS = "grounded_items"  # the logged count of the validation items the field probes are scored on


class LatentSpace(Analysis):
    """Reads: warmup_windows, smoothing_windows, latent_collapse_diversity, latent_collapse_spread,
    latent_probe_errors, typical_learning_rate, and without probes latent_growth_min, latent_judge_epochs.
    Verdict: a collapse seen at any time is a problem; else the probes of the last validation (see the module's
    docstring); a run without probes is judged by the growth of latent_std."""

    name = "latent_space"

    def rule(self):
        c = self.cfg
        return (f"collapse if latent_diversity < {c.latent_collapse_diversity:g} or latent_batch_std / latent_std < "
                f"{c.latent_collapse_spread:g} (median of {c.smoothing_windows} windows); else the linear probes on z "
                f"of the last validation, each above chance if it beats it by more than {c.latent_probe_errors:g} "
                "standard errors: healthy if the caption words and (with ground truth) the main object are, a "
                "warning if only other probes are, a problem if none is; a run without probes: latent_std must "
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
        decay = next((f for f in self.monitor.findings if f.code == "weight_decay_too_high"), None)
        if message and decay:  # the weights are decayed to 0: that is the cause
            self.emit("latent_collapse", "error", message, f"{decay.action} (training_health/{decay.code})")
        elif message:
            slower = lower_lr(self.run_config, 0.3, self.cfg.typical_learning_rate)  # as for steps too large
            self.emit("latent_collapse", "error", message,
                      "check the data first (do the images differ? an encoder fed near-identical images has nothing "
                      f"to tell apart); if they do, {slower} and "
                      f"{change(self.run_config, 'alignment_loss_weight', 2.0)} (the contrastive term keeps z apart)")

    def observe_train(self, values):
        if self.h.warm:  # at initialisation z can be nearly alike; a collapse that lasts shows after warm-up
            self.check_collapse()

    def observe_val(self, values, epoch):
        if not (finite(values.get("items")) and values["items"] < 2):  # one image has no spread to measure
            self.check_collapse(values)
        if epoch is not None and epoch >= self.cfg.latent_judge_epochs and not self.probes():
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

    def probes(self):
        """{probe: (value, chance level, standard error at chance)} of the last validation, for the probes it
        measured (none before the first validation, or in a run that logged none)."""
        val, chance, read = self.h.last_val, self.h.last_baseline, {}
        for name in PROBES:
            value, level = val.get(name), chance.get(name)
            if name == "probe_word_auc":
                error = val.get("probe_word_auc_se")
            else:  # a share of the validation items with a truth, at the majority class's rate
                items = val.get(FIELD_ITEMS)
                error = share_error(level, items) if finite(level) and finite(items) and items >= 1 else None
            if finite(value) and finite(level) and finite(error):
                read[name] = (value, level, error)
        return read

    def above_chance(self, probe):
        value, level, error = probe
        return value - level > self.cfg.latent_probe_errors * error

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
        probes = self.probes()
        if probes:
            return self.probe_verdict(probes, collapsed, evidence)
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

    def probe_verdict(self, probes, collapsed, evidence):
        """The verdict from the probes of the last validation (and a collapse seen at any time). While the loss
        itself is not moving (training_health), that is the cause to fix first, and a warning's action says so."""
        verdict = self.read_probes(probes, collapsed, evidence)
        stall = next((f for f in self.monitor.findings if f.code in LOSS_STALLS and not f.resolved), None)
        if stall and verdict.status == "warning":
            verdict.summary += f"; the loss is not moving either (training_health/{stall.code}), the cause to fix first"
            verdict.actions = [stall.action]
        return verdict

    def read_probes(self, probes, collapsed, evidence):
        above = [name for name, probe in probes.items() if self.above_chance(probe)]
        at_chance = [name for name in probes if name not in above]
        k = self.cfg.latent_probe_errors
        for name, (value, level, error) in probes.items():
            evidence.append(f"{name} {fmt(value, 3)} at the last validation, chance {fmt(level, 3)} + {k:g} standard "
                            f"errors {fmt(k * error, 2)}: {'above' if name in above else 'at'} chance")
        rc = self.run_config
        collapse = [collapsed[0].action] if collapsed else []
        if not above:
            fields = [n for n in at_chance if n != "probe_word_auc"]
            told = " and no ground-truth field" if fields else ""
            summary = (f"the latent learned nothing about the images: z predicts no caption word{told} better than "
                       f"chance ({describe(at_chance, probes)})")
            if collapsed:
                summary += f"; {collapsed[0].message}"
            return Verdict("problem", summary, evidence, collapse + [
                "check that each image is paired with its own caption (a metadata file whose rows were shuffled gives "
                "exactly this) and that the images differ (blank or identical pictures give it too); if both hold, "
                "the encoder is not learning: see training_health"], rule=self.rule())
        knows = f"z encodes {describe(above, probes)}"
        if collapsed:
            return Verdict("problem", f"{collapsed[0].message} (though at the last validation {knows})", evidence,
                           collapse, rule=self.rule())
        kind = probes.get("probe_kind")
        untrained = self.h.last_baseline.get("probe_kind" + UNTRAINED)  # the probe on the untrained model's z
        if (kind and "probe_kind" in above and finite(untrained)
                and not self.above_chance((kind[0], untrained, kind[2]))):
            return Verdict("warning", f"{knows}, but no better than the untrained model's z reads the main object "
                           f"({kind[0]:.2f}, untrained {untrained:.2f}): training has not taught z the objects",
                           evidence + [f"probe_kind untrained {fmt(untrained, 3)}: random features already read "
                                       "what fills the picture"], [lead_action(rc)], rule=self.rule())
        if "probe_kind" in at_chance:
            return Verdict("warning", f"{knows}, but the object kind is at chance ({numbers('probe_kind', probes)}): "
                           "the latent is not learning the objects", evidence, [
                               f"{lead_action(rc)}; if the objects are small in the picture, "
                               f"{change(rc, 'image_size', 2)} or {change(rc, 'patch_size', 0.5)}"],
                           rule=self.rule())
        if "probe_word_auc" in at_chance:
            return Verdict("warning", f"{knows}, but it predicts no caption word better than chance "
                           f"({numbers('probe_word_auc', probes)}): the captions may not describe their images",
                           evidence, ["check that each image is paired with its own caption; then "
                                      f"{change(rc, 'caption_loss_weight', 2)}"], rule=self.rule())
        return Verdict("healthy", knows + (f"; at chance: {describe(at_chance, probes)}" if at_chance else ""),
                       evidence, rule=self.rule())


def lead_action(run_config):
    """What teaches z the objects, by measurement (BENCHMARKS.md, issue 24): the caption's first sentence weighed
    like a label, where it names the subject (the bundled captions open with "Two statues on the right."); a
    larger caption_loss_weight or more epochs move the object far less."""
    lead = run_config.get("caption_lead_weight")
    lead = change(run_config, "caption_lead_weight", 7 if not finite(lead) or lead <= 1 else 1.5)
    return (f"{lead} if each caption's first sentence names what the picture shows (it then counts like a label "
            f"in loss_caption); else {change(run_config, 'num_epochs', 2)} (objects are learned last); on the "
            "bundled set `python ceiling.py` shows how far a supervised encoder gets")


def numbers(name, probes):
    """'AUC 0.71, chance 0.5' for the word probe, '0.52, chance 0.06' for a field: a probe's value beside chance."""
    value, level, _ = probes[name]
    return f"AUC {value:.2f}, chance {level:.2g}" if name == "probe_word_auc" else f"{value:.2f}, chance {level:.2f}"


def describe(names, probes):
    """'the technique (0.81, chance 0.19) and the main object (0.52, chance 0.06)': probes with their values."""
    parts = [f"{PROBES[name]} ({numbers(name, probes)})" for name in names]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
