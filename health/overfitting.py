"""Overfitting: validation loss against the training loss of the same epoch."""

from __future__ import annotations

import math

from .core import COMPONENTS, Analysis, change, finite, fmt, fmt_config

OVERFIT_CODES = ("overfitting", "val_rising")  # cleared by a new best val loss_total


class Overfitting(Analysis):
    """Reads: overfit_gap, overfit_epochs.
    Verdict: the worst finding of the run; the table lists every epoch's train and val loss_total.

    A wide gap is overfitting only once validation has stopped improving (no better val loss_total for
    overfit_epochs epochs): while val loss_total still reaches new bests, the gap is a generalization gap
    (an info finding), and regularising would cost the run what it is still learning. The quick preset,
    which has no dropout, ended its 20 epochs 57-69% above train (docs/LOG.md, 2026-12-01).

    A rise of val loss_total (overfitting: since its best epoch; val_rising: over the rising epochs) is split
    into its components: when one rises (the default config's caption decoder memorising its captions, the quick
    preset's alignment its training pairs) while another still falls, stopping at the best epoch would give up
    the one that still improves, and the advice says so.

    Every comparison of two validation losses is judged against their noise: a rise counts only when it beats
    noise_errors standard errors of the difference (sqrt(2) x val/<loss>_se of the later epoch); runs that
    logged no standard error are judged on the raw values. A warning is resolved by a later new best val
    loss_total, and the verdict is that of how the run ended."""

    name = "overfitting"

    def __init__(self, monitor):
        super().__init__(monitor)
        self.val_components: dict[int, dict[str, float]] = {}  # epoch -> component -> val loss_<component>
        self.val_errors: dict[int, dict[str, float]] = {}  # epoch -> loss name -> val/<loss>_se

    def rule(self):
        k = self.cfg.overfit_epochs
        return (f"worst finding still open at the end: an epoch's val loss_total > train by {self.cfg.overfit_gap:.0%}"
                f" and above its best of {k}+ epochs before by more than the noise, or val rising {k} epochs in a "
                f"row, by more than the noise in all, while train falls; noise = {self.cfg.noise_errors:g} x "
                "sqrt(2) x val loss_total_se; a later new best resolves either")

    def noise(self, epoch, name="loss_total"):
        """The smallest change of val <name> from an earlier epoch to `epoch` that is not noise (0 when the run
        logged no standard error for it)."""
        se = self.val_errors.get(epoch, {}).get(name)
        return self.cfg.noise_errors * math.sqrt(2) * se if finite(se) else 0.0

    def regularize(self):
        dropout = self.run_config.get("dropout")
        if finite(dropout) and dropout > 0:
            dropout_action = f"raise dropout from {fmt_config(dropout)} to {fmt_config(min(0.5, dropout + 0.1))}"
        else:
            dropout_action = "set dropout from 0 to 0.1"
        return f"{change(self.run_config, 'weight_decay', 2.0, zero_to=0.05)} or {dropout_action}"

    def observe_val(self, values, epoch):
        if epoch is None:
            return
        self.val_components[epoch] = {c: values[f"loss_{c}"] for c in COMPONENTS if finite(values.get(f"loss_{c}"))}
        self.val_errors[epoch] = {name[:-3]: v for name, v in values.items() if name.endswith("_se") and finite(v)}
        val_loss, train_loss = values["loss_total"], self.h.train_epoch_mean(epoch)
        best_epoch, best = self.h.best_val()
        if best_epoch == epoch and len(self.h.val_epochs) > 1:
            self.resolve(OVERFIT_CODES, f"at epoch {epoch} (step {self.h.step}): a new best val loss_total "
                                        f"{val_loss:.4g}")
        if train_loss and train_loss > 0:
            gap = (val_loss - train_loss) / train_loss
            if gap > self.cfg.overfit_gap:
                age = epoch - best_epoch
                message = (f"epoch {epoch}: val loss_total {val_loss:.4g} vs train {train_loss:.4g} "
                           f"(gap {gap:+.0%}, limit {self.cfg.overfit_gap:.0%})")
                worse = val_loss - best > self.noise(epoch)
                if age >= self.cfg.overfit_epochs and worse:
                    moves, action = self.explain_rise(best_epoch, epoch)
                    self.emit("overfitting", "warning", f"{message}, and no better val loss_total since epoch "
                              f"{best_epoch} ({best:.4g}){moves}", action)
                else:
                    where = ("at its best so far" if not age else
                             f"{age} epoch{'s' * (age != 1)} past its best ({best:.4g} at epoch {best_epoch})")
                    if age and not worse:
                        where += f", within the noise of it ({fmt(self.noise(epoch), 2)})"
                    self.emit("generalization_gap", "info", f"{message}; val loss_total {where}: not yet overfitting",
                              f"none while val loss_total still reaches new bests; if it has none for "
                              f"{self.cfg.overfit_epochs} epochs, {self.regularize()}")
        self.check_val_rising(epoch)

    def check_val_rising(self, epoch):
        h, k = self.h, self.cfg.overfit_epochs
        recent = h.val_epochs[-k - 1:]
        if k < 1 or len(recent) < k + 1:
            return
        vals = [v for _, v in recent]
        first_train, last_train = h.train_epoch_mean(recent[0][0]), h.train_epoch_mean(epoch)
        rising = all(b > a for a, b in zip(vals, vals[1:])) and vals[-1] - vals[0] > self.noise(epoch)
        if rising and first_train is not None and last_train is not None and last_train < first_train:
            moves, action = self.explain_rise(recent[0][0], epoch)
            message = (f"val loss_total rose {k} epochs in a row, epoch {recent[0][0]} -> {epoch} ({vals[0]:.4g} -> "
                       f"{vals[-1]:.4g}), while train fell ({first_train:.4g} -> {last_train:.4g}){moves}")
            self.emit("val_rising", "warning", message, action)

    def explain_rise(self, first, last):
        """A val loss_total higher at epoch `last` than at epoch `first`, split into its components ->
        (text for the message: which rose and which still fell; the action). When every component that moved
        rose, the first advice is to stop at the best epoch (fewer epochs, early stopping's usual remedy), then to
        regularise. When
        one still improves (the quick preset's captions while its alignment memorises the training pairs),
        stopping at the best epoch would give it up: regularise, and the advice says so."""
        best_epoch, best = self.h.best_val()
        rose, fell = self.component_moves(first, last)
        text = f"; it rose in {moves_text(rose)}" if rose else ""
        by_loss = self.run_config.get("best_metric", "loss_total") == "loss_total"  # then best.pt is that epoch
        if fell:
            text += f"; val {moves_text(fell)} still fell"
            which = "best.pt, by val loss_total" if by_loss else "the lowest val loss_total"
            return text, (f"{self.regularize()}; keep num_epochs: stopping at epoch {best_epoch} ({which}) would "
                          f"give up {', '.join(f'loss_{c}' for c, _, _ in fell)}, which still "
                          f"improve{'s' * (len(fell) == 1)}")
        epochs = self.run_config.get("num_epochs")
        stop = f"lower num_epochs {f'from {epochs} ' if finite(epochs) else ''}to {best_epoch}"
        where = "best.pt holds" if by_loss else "the lowest val loss_total is at"
        stop += f" ({where} epoch {best_epoch}, val {best:.4g})"
        if by_loss:  # early stopping follows best_metric too
            stop += ", or set early_stopping_patience (a run then ends that many epochs after its best)"
        return text, f"{stop}, or {self.regularize()}"

    def component_moves(self, first, last):
        """(rose, fell): (component, val loss at epoch first, at epoch last) for each component that rose or fell
        by more than its noise."""
        a, b = self.val_components.get(first, {}), self.val_components.get(last, {})
        moves = [(c, a[c], b[c], self.noise(last, f"loss_{c}")) for c in COMPONENTS if c in a and c in b]
        return ([(c, x, y) for c, x, y, n in moves if y - x > n], [(c, x, y) for c, x, y, n in moves if x - y > n])

    def verdict(self):
        h = self.h
        table = [["epoch", "train loss_total", "val loss_total", "gap", "gap %"]]
        gaps = []
        for epoch, val in h.val_epochs:
            train = h.train_epoch_mean(epoch)
            gap = val - train if train is not None else None
            rel = gap / train if gap is not None and train > 0 else None
            gaps.append(rel)
            table.append([str(epoch), fmt(train), fmt(val), fmt(gap), f"{rel:+.0%}" if rel is not None else "—"])
        evidence = []
        if h.val_epochs:
            best_epoch, best = h.best_val()
            last_epoch, last = h.val_epochs[-1]
            evidence.append(f"best val loss_total {fmt(best)} at epoch {best_epoch}, "
                            f"last {fmt(last)} at epoch {last_epoch}")
            for c in COMPONENTS:
                series = [(e, v[c]) for e, v in self.val_components.items() if c in v]
                if series:
                    best_e, best_v = min(series, key=lambda ev: ev[1])
                    evidence.append(f"val loss_{c}: best {fmt(best_v)} at epoch {best_e}, last {fmt(series[-1][1])}")
        known = [g for g in gaps if g is not None]
        if known:
            evidence.append(f"last gap {known[-1]:+.0%} of train loss (limit {self.cfg.overfit_gap:.0%})")
        missing = None if known else "no epoch with both a train and a validation loss_total"
        summary = ""
        if known and max(known) > self.cfg.overfit_gap:  # only generalization_gap (info) fired: say so, not "within"
            summary = (f"val loss_total up to {max(known):+.0%} above train, but never {self.cfg.overfit_epochs} "
                       "epochs without a new best: a generalization gap, not overfitting")
        elif known:
            summary = f"val loss_total stays within {self.cfg.overfit_gap:.0%} of train"
        return self.from_findings(missing, summary, evidence, self.rule(), table if len(table) > 1 else ())


def moves_text(moves):
    """'loss_caption 1.564 -> 1.76, loss_image ...' for (component, before, after) triples."""
    return ", ".join(f"loss_{c} {before:.4g} -> {after:.4g}" for c, before, after in moves)
