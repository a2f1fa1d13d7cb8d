"""Dominant loss: does the weighting let one component take the gradient while another stalls?

Pixel MSE and cross-entropies in nats are not comparable, so each component is measured against its own
levels: its reference (chance, or predicting the mean image; else its first window) and its floor (0, or
the alignment floor that identical captions in a batch impose). Progress = (reference - now) / (reference -
floor): 0 = not learned, 1 = solved; the component with the least is the furthest from solved. A component
dominates when its weighted range, weight x (reference - floor), is most of all the weighted ranges: the
weights, not the units, give it most of the gradient. Only that, with another component stalled, is worth a
rebalancing; a component that is merely furthest from solved is reported, not flagged.
"""

from __future__ import annotations

from .core import COMPONENTS, Analysis, Verdict, fmt, fmt_config


class DominantLoss(Analysis):
    """Reads: warmup_windows, smoothing_windows, stall_check_fraction (judged from then on), dominant_share,
    stall_progress.
    Verdict: where the run ended (what the weighting has made of the model), not its worst moment."""

    name = "dominant_loss"

    def rule(self):
        return (f"where the run ended: a component whose weighted range (weight x (reference - floor)) is > "
                f"{self.cfg.dominant_share:.0%} of all, while another went < {self.cfg.stall_progress:.0%} of the "
                "way from its reference level to its floor")

    def levels(self):
        """{component: (weight, reference, floor, now, progress)} for the weighted components with data."""
        h, levels = self.h, {}
        for c in COMPONENTS:
            weight, ref, floor, now = h.weights[c], h.reference(c), h.floor(c), h.recent(f"loss_{c}")
            if weight > 0 and ref is not None and now is not None and ref > floor:
                levels[c] = (weight, ref, floor, now, (ref - now) / (ref - floor))
        return levels

    @staticmethod
    def shares(levels):
        """{component: its weighted range over the sum of them}: the weighting in comparable units."""
        ranges = {c: w * (ref - floor) for c, (w, ref, floor, _, _) in levels.items()}
        total = sum(ranges.values())
        return {c: r / total for c, r in ranges.items()}

    def dominance(self):
        """(message, action) when the weighting gives one component most of the loss while another stalls."""
        levels = self.levels()
        if len(levels) < 2:
            return None
        shares = self.shares(levels)
        top = max(shares, key=shares.get)
        stalled = min((c for c in levels if c != top), key=lambda c: levels[c][4])
        share, progress = shares[top], levels[stalled][4]
        if share <= self.cfg.dominant_share or progress >= self.cfg.stall_progress:
            return None
        weight = levels[top][0]
        new = float(f"{weight * min(0.5, (1 - share) / share):.2g}")  # its range = the others' together
        message = (f"{top} (weight {fmt_config(weight)}) holds {share:.0%} of the weighted loss ranges, while "
                   f"{stalled} is {where(levels[stalled])} (last {self.cfg.smoothing_windows} windows)")
        action = (f"lower {top}_loss_weight from {fmt_config(weight)} to {fmt_config(new)} so {stalled} "
                  "gets more of the gradient")
        return message, action

    def observe_train(self, values):
        if self.h.past_start() and all(f"loss_{c}" in values for c in COMPONENTS):
            found = self.dominance()
            if found:
                self.emit("dominant_component", "warning", *found)

    def verdict(self):
        levels = self.levels()
        if len(levels) < 2 or len(self.h.train["loss_total"]) < 2:
            return Verdict("not enough data", "fewer than 2 windows with two weighted loss components",
                           rule=self.rule())
        shares = self.shares(levels)
        evidence = [f"{c} (weight {fmt_config(w)}): loss_{c} {fmt(now)}, reference {fmt(ref)}, floor {fmt(floor)}, "
                    f"progress {progress:.0%}, share of the weighted ranges {shares[c]:.0%}"
                    for c, (w, ref, floor, now, progress) in levels.items()]
        furthest = min(levels, key=lambda c: levels[c][4])
        evidence.append(f"furthest from solved: {furthest} ({where(levels[furthest])})")
        found = self.dominance()
        if found:
            return Verdict("warning", found[0], evidence, [found[1]], rule=self.rule())
        return Verdict("healthy", f"no weighting takes the gradient from a stalled component; {furthest} is "
                                  f"furthest from solved ({where(levels[furthest])})", evidence, rule=self.rule())


def where(level):
    """'12% of the way from 6.8 to its floor 0', or how far above its reference a component sits."""
    _, ref, floor, now, progress = level
    if progress < 0:
        return f"above its reference level {fmt(ref)} (now {fmt(now)})"
    return f"{progress:.0%} of the way from {fmt(ref)} to its floor {fmt(floor)}"
