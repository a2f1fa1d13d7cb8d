"""Diagnosis benchmark: train real sick and healthy runs on the bundled data and check what the health
monitor says about each.

    python diagnose.py                          # every scenario, one after another, on the CPU
    python diagnose.py --only=healthy,low_lr    # some of them
    python diagnose.py --scale=0.5              # fewer items and steps (quicker, noisier)

Each scenario is a `train_wandb.py --preset=quick --mode=disabled --device=cpu` subprocess writing to
out/diagnose/<name>/ (its console output in <name>.log beside it). The pathology is induced through
Config fields or through the data only (latent_collapse trains on a copy of the collection in which
every image is the same picture, captions kept; shuffled_pairs on one in which each image has the caption and
ground truth of another, as a metadata file with shuffled rows gives). The table compares each analysis' verdict
in summary.json with the one expected, shows the first finding of that analysis (code@step) and checks the
expected first action; exit status 1 if any scenario disagrees, 0 if all agree.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from health import ANALYSES

REPO_DIR = Path(__file__).absolute().parent
OUT_DIR = REPO_DIR / "out" / "diagnose"
HEALTHY = dict.fromkeys(ANALYSES, "healthy")
# a healthy run of a few epochs: its latent may not hold the objects beyond what the untrained z reads yet, which the
# latent analysis rightly says as a warning (docs/LOG.md, issue 24); a problem would be a false alarm
SHORT_HEALTHY = {**HEALTHY, "latent_space": "healthy|warning"}
ANY = "any"  # a verdict not judged by the scenario (a side effect that is right either way)


@dataclass
class Scenario:
    description: str
    args: list[str]  # train_wandb.py overrides, after --preset=quick
    expect: dict[str, str]  # analysis -> expected status ("healthy", "warning", "problem", "warning|problem", ANY)
    max_items: int | None = 2000  # items of the collection used (scaled by --scale); None: all of it, unscaled
    first_action: tuple[str, str] | None = None  # (analysis, text its first non-info finding's action contains)
    within: float | None = None  # that finding must fire within this share of the run's steps
    same_picture: bool = False  # train on a copy of the collection where every image is the first one
    shuffled_pairs: bool = False  # train on a copy of the collection where each image has another's caption
    grad_spike_every: int = 0  # every N-th step's gradients 100x (fault injection, see grad_spikes; 0 = off)

    def command(self, out, scale, extra=()):
        """The train_wandb.py command line writing to the folder `out`; `extra` overrides come last and win."""
        items = 0 if self.max_items is None else max(200, round(self.max_items * scale))  # 0: every item
        copy = same_picture_copy if self.same_picture else shuffled_pairs_copy if self.shuffled_pairs else None
        data = [f"--data_dir={copy(out.with_name(out.name + '_data'), items)}",
                "--cache_dir="] if copy else []  # fresh files each time: caching them is waste
        program = ([str(REPO_DIR / "diagnose.py"), f"{SPIKED_TRAINING}={self.grad_spike_every}"]
                   if self.grad_spike_every else [str(REPO_DIR / "train_wandb.py")])
        return [sys.executable, *program, "--preset=quick", "--mode=disabled",
                "--device=cpu", f"--out_dir={out}", f"--max_items={items}", *data, *self.args, *extra]


SCENARIOS = {
    "healthy": Scenario("the quick preset", ["--num_epochs=4", "--log_frequency=4"], SHORT_HEALTHY),
    "healthy_small_lr": Scenario(
        "a second healthy config: width 128, latent_dim 64, half the learning rate",
        ["--num_epochs=3", "--log_frequency=4", "--width=128", "--latent_dim=64", "--learning_rate=1e-3"],
        SHORT_HEALTHY),
    "high_lr": Scenario(
        "learning rate 25x the preset's", ["--num_epochs=3", "--log_frequency=4", "--learning_rate=0.05"],
        {**HEALTHY, "training_health": "problem", "dominant_loss": ANY, "latent_space": ANY},
        first_action=("training_health", "lower learning_rate")),
    "low_lr": Scenario(
        "learning rate 1/2000 of the preset's", ["--num_epochs=4", "--log_frequency=4", "--learning_rate=1e-6"],
        {**HEALTHY, "training_health": "warning", "dominant_loss": ANY, "latent_space": ANY},
        first_action=("training_health", "raise learning_rate"), within=0.5),
    "latent_collapse": Scenario(
        "every image file is the same picture, captions kept", ["--num_epochs=3", "--log_frequency=4"],
        {**HEALTHY, "latent_space": "problem", "dominant_loss": ANY, "training_health": ANY}, same_picture=True),
    "shuffled_pairs": Scenario(
        "each image with the caption and ground truth of another (a metadata file with shuffled rows)",
        ["--num_epochs=3", "--log_frequency=4"],
        {**HEALTHY, "latent_space": "problem", "dominant_loss": ANY, "training_health": ANY}, shuffled_pairs=True),
    "overfitting": Scenario(
        "300 items, 40% for validation, 80 epochs",
        ["--num_epochs=80", "--log_frequency=5", "--val_fraction=0.4", "--batch_size=32"],
        {**HEALTHY, "overfitting": "warning", "training_health": ANY, "dominant_loss": ANY, "latent_space": ANY},
        max_items=300, first_action=("overfitting", "weight_decay")),
    "dominant_caption": Scenario(
        "caption_loss_weight=30", ["--num_epochs=3", "--log_frequency=4", "--caption_loss_weight=30.0"],
        {**HEALTHY, "dominant_loss": "warning", "training_health": ANY, "latent_space": ANY},
        first_action=("dominant_loss", "lower caption_loss_weight")),
    "no_clip_high_lr": Scenario(
        "no gradient clipping at 10x the preset's learning rate", ["--num_epochs=3", "--log_frequency=4",
                                                                  "--grad_clip=0", "--learning_rate=0.02"],
        {**HEALTHY, "training_health": "warning|problem", "dominant_loss": ANY, "latent_space": ANY},
        first_action=("training_health", "lower learning_rate")),
    "no_warmup_high_lr": Scenario(
        "no warm-up at 10x the preset's learning rate", ["--num_epochs=3", "--log_frequency=4",
                                                        "--warmup_fraction=0", "--learning_rate=0.02"],
        {**HEALTHY, "training_health": "warning|problem", "dominant_loss": ANY, "latent_space": ANY},
        first_action=("training_health", "lower learning_rate")),
    "mild_low_lr": Scenario(
        "learning rate 1/100 of the preset's", ["--num_epochs=4", "--log_frequency=4", "--learning_rate=2e-5"],
        {**HEALTHY, "training_health": "warning", "dominant_loss": ANY, "latent_space": ANY},
        first_action=("training_health", "raise learning_rate"), within=0.5),
    "over_regularised": Scenario(
        "weight decay 200x the preset's", ["--num_epochs=4", "--log_frequency=4", "--weight_decay=100"],
        {**HEALTHY, "training_health": "warning|problem", "dominant_loss": ANY, "latent_space": ANY},
        first_action=("training_health", "lower weight_decay"), within=0.5),
    "dominant_image": Scenario(
        "image_loss_weight=3000", ["--num_epochs=3", "--log_frequency=4", "--image_loss_weight=3000.0"],
        {**HEALTHY, "dominant_loss": "warning", "training_health": ANY, "latent_space": ANY},
        first_action=("dominant_loss", "lower image_loss_weight")),
    "dominant_alignment": Scenario(
        "alignment_loss_weight=30", ["--num_epochs=3", "--log_frequency=4", "--alignment_loss_weight=30.0"],
        {**HEALTHY, "dominant_loss": "warning", "training_health": ANY, "latent_space": ANY},
        first_action=("dominant_loss", "lower alignment_loss_weight")),
    "tiny_batch": Scenario(
        "a contrastive batch of 2: one negative per pair, and steps as noisy as two samples make them",
        ["--num_epochs=3", "--log_frequency=8", "--batch_size=2"],
        {**HEALTHY, "training_health": "warning|problem", "dominant_loss": ANY, "latent_space": ANY},
        first_action=("training_health", "batch_size")),
    "grad_spikes": Scenario(
        "every 20th step's gradients x100, as if its loss were x100 before backward (fault injection)",
        ["--num_epochs=3", "--log_frequency=4"],
        {**HEALTHY, "training_health": "warning|problem", "dominant_loss": ANY, "latent_space": ANY},
        first_action=("training_health", "learning_rate"), grad_spike_every=20),
}


# ----------------------------------------------------------------------------
# fault injection: through train_wandb.main's prepare hook, so that the Trainer carries none of it

SPIKED_TRAINING = "--train-with-grad-spikes"  # `diagnose.py --train-with-grad-spikes=N ARGS`: train_wandb.py ARGS


def grad_spikes(every):
    """prepare(trainer) for train_wandb.main: the gradients of every `every`-th optimizer step are 100x, as if
    that step's loss were multiplied by 100 before backward (a hook on each parameter's gradient)."""
    def prepare(trainer):
        def spike(grad):
            return grad * 100.0 if (trainer.step + 1) % every == 0 else grad  # trainer.step: the steps before

        for p in trainer.params:
            p.register_hook(spike)

    return prepare


def write_collection(dest, entries):
    """dest: a fresh collection of entries (source image, file name, caption, truth or None), in the bundled
    layout (images/ and metadata.jsonl)."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "images").mkdir(parents=True)
    lines = []
    for source, file_name, text, truth in entries:
        shutil.copyfile(source, dest / file_name)
        lines.append(json.dumps({"file_name": file_name, "text": text, **({} if truth is None else {"truth": truth})}))
    (dest / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return dest


def same_picture_copy(dest, items):
    """dest: a copy of the bundled collection's first `items` items in which every image is the first picture."""
    from data.engravings import ensure_sample
    from data.imagefolder import find_items  # here: torch loads only when this scenario runs
    from train_wandb import BUNDLED_DATA_DIR

    pairs = find_items(ensure_sample(REPO_DIR / BUNDLED_DATA_DIR))[:items]
    picture = Path(pairs[0][0])
    return write_collection(dest, [(picture, f"images/{i:05d}{picture.suffix}", caption, None)
                                   for i, (_, caption) in enumerate(pairs)])


def shuffled_pairs_copy(dest, items, seed=0):
    """dest: a copy of the bundled collection's first `items` items in which each image has the caption and ground
    truth of another item (a seeded shuffle of the rows' captions and truths; the images keep their order)."""
    from data.engravings import ensure_sample
    from data.imagefolder import read_metadata  # here: torch loads only when this scenario runs
    from train_wandb import BUNDLED_DATA_DIR

    source = ensure_sample(REPO_DIR / BUNDLED_DATA_DIR)
    rows = read_metadata(source / "metadata.jsonl")[:items]
    described = [(text, truth) for _, text, truth in rows]
    random.Random(seed).shuffle(described)
    return write_collection(dest, [(source / file_name, file_name, text, truth)
                                   for (file_name, _, _), (text, truth) in zip(rows, described)])


@dataclass
class Outcome:
    name: str
    summary: dict = field(default_factory=dict)
    error: str = ""  # why the run gave no summary
    seconds: float = 0.0


def run(name, scenario, scale=1.0, out_dir=OUT_DIR, extra=(), reuse=False):
    """Train one scenario into out_dir/name; its console output goes to out_dir/name.log. With reuse, a run
    already there (its summary.json) is read instead of trained again."""
    out = Path(out_dir) / name
    if reuse and (out / "summary.json").is_file():
        return Outcome(name, summary=rejudged(out))
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = scenario.command(out, scale, extra)
    start = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        result = subprocess.run(command, cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT)
    outcome = Outcome(name, seconds=time.perf_counter() - start)
    path = out / "summary.json"
    if path.is_file():
        outcome.summary = json.loads(path.read_text())
    else:
        outcome.error = f"exit {result.returncode}, no summary.json (see {out}.log)"
    return outcome


def rejudged(out):
    """A finished run's summary.json with its findings and verdicts judged again by the analyses as they are now:
    its metrics.csv replayed through a fresh monitor (health.replay, as a resumed run does), so that --reuse
    tables a change to the analyses without training again."""
    from health import replay
    from report import judgement, read_metrics_csv

    summary = json.loads((out / "summary.json").read_text())
    monitor = replay(read_metrics_csv(out / "metrics.csv"), summary.get("config"))
    return {**summary, **judgement(monitor.verdicts(), monitor)}


# ----------------------------------------------------------------------------
# the healthy population: false alarms are measured on runs whose outcome is good

def sweep_draws(n, seed=0, path=REPO_DIR / "sweep.yaml"):
    """n configs drawn at random, seeded, from sweep.yaml's parameters (sweep.py's sampler) -> [[--field=value]]."""
    import sweep  # here: only the population needs it

    parameters = sweep.load_sweep(path)["parameters"]
    return [[f"--{name}={sweep.format_value(value)}" for name, value in trial.items()]
            for trial in sweep.random_trials(parameters, n, seed)]


def population(seeds=(0, 1, 2), draws=8):
    """The healthy population, each run the README's first command at its full length on the whole bundled set:
    the quick preset on each seed (whose verdicts must all be healthy), and `draws` configs from sweep.yaml's
    ranges. Shorter runs were tried (4 epochs of 1,000 items, 8 of 2,000): none reached a healthy outcome, so they
    measured no false alarm (docs/LOG.md)."""
    runs = {f"preset_s{seed}": Scenario(f"the quick preset, seed {seed}", [f"--seed={seed}"], HEALTHY,
                                        max_items=None) for seed in seeds}
    for i, args in enumerate(sweep_draws(draws)):
        runs[f"sweep_{i}"] = Scenario("sweep.yaml draw: " + " ".join(args), args, SHORT_HEALTHY, max_items=None)
    return runs


def good_outcome(outcome):
    """(is the run's outcome healthy, why not): loss_total fell at least 50% from its first logged window, and
    every validation measure of the last epoch beats its baseline (report.not_above_baseline), the probes on z
    aside: what z holds is what the latent analysis judges, and the quick preset's z does not hold the count
    (docs/LOG.md), so with them no run of the README's command would count, and no false alarm could be measured."""
    from evaluation import PROBE_MEASURES
    from report import not_above_baseline

    summary, path = outcome.summary, Path(outcome.summary.get("config", {}).get("out_dir", "")) / "metrics.csv"
    first = None
    if path.is_file():
        import csv
        with open(path) as f:
            first = next((float(r["train/loss_total"]) for r in csv.DictReader(f) if r.get("train/loss_total")), None)
    last = (summary.get("final_train") or {}).get("loss_total")
    if first is None or last is None or last > 0.5 * first:
        return False, f"loss_total {first} -> {last}: fell less than 50%"
    behind = [m for m in not_above_baseline(summary.get("final_val") or {}, summary.get("baseline") or {})
              if m not in PROBE_MEASURES]
    return (False, "not above baseline: " + ", ".join(behind)) if behind else (True, "")


def alarms(summary):
    """The warnings and errors a run raised (each one a W&B alert), as 'analysis/code@step'."""
    return [f"{f['analysis']}/{f['code']}@{f['step']}" for f in summary.get("findings", [])
            if f["severity"] != "info"]


def first_finding(summary, analysis):
    """The first warning or error of an analysis in a run's summary, or None."""
    return next((f for f in summary.get("findings", [])
                 if f["analysis"] == analysis and f["severity"] != "info"), None)


def judge(scenario, outcome):
    """Rows [analysis, expected, actual, first finding, ok] and whether every row agrees."""
    rows, agree = [], True
    verdicts = outcome.summary.get("verdicts", {})
    steps = outcome.summary.get("steps") or 0
    for analysis in ANALYSES:
        expected = scenario.expect[analysis]
        actual = verdicts.get(analysis, {}).get("status", outcome.error or "missing")
        first = first_finding(outcome.summary, analysis)
        ok = expected == ANY or actual in expected.split("|")
        note = f"{first['code']}@{first['step']}" if first else "—"
        if scenario.first_action and scenario.first_action[0] == analysis:
            text = scenario.first_action[1]
            if not first or text not in first["action"]:
                ok, note = False, note + f" (action lacks '{text}')"
            elif scenario.within and steps and first["step"] > scenario.within * steps:
                ok, note = False, note + f" (after {scenario.within:.0%} of {steps} steps)"
        rows.append([analysis, expected, actual, note, "yes" if ok else "NO"])
        agree = agree and ok
    return rows, agree


def target(scenario):
    """The analysis a fault scenario is about: the one whose expected verdict is not healthy (first_action's if
    given)."""
    if scenario.first_action:
        return scenario.first_action[0]
    return next(a for a, e in scenario.expect.items() if e not in ("healthy", ANY, SHORT_HEALTHY[a]))


def right_first(scenario, outcome):
    """Is the run's first warning or error (over all analyses) in the scenario's analysis, with its action?"""
    first = next((f for f in outcome.summary.get("findings", []) if f["severity"] != "info"), None)
    if scenario.first_action:
        return bool(first) and first["analysis"] == target(scenario) and scenario.first_action[1] in first["action"]
    # a fault seen only in a verdict (the probes after a validation): right when no other analysis spoke first
    return first is None or first["analysis"] == target(scenario)


def follow_up(name, scenario, outcome, scale, out_dir, reuse=False, seeded=()):
    """(the advice's field changes as text, fixed?) after running the scenario again, on the same seed
    (`seeded`, the run's own --seed), with its advice applied: fixed when the analysis it is about is healthy and
    no analysis says problem. None when the advice changes no Config field."""
    from compare import advised_changes

    advice = advised_changes(outcome.summary)
    if advice is None:
        return None
    changes = [f"--{k}={v}" for k, v in advice[2].items()]
    after = run(f"{name}_follow", scenario, scale, out_dir, extra=[*seeded, *changes], reuse=reuse)
    verdicts = {a: v.get("status") for a, v in after.summary.get("verdicts", {}).items()}
    fixed = verdicts.get(target(scenario)) == "healthy" and "problem" not in verdicts.values()
    return " ".join(changes), fixed


def print_table(results):
    print("| scenario | analysis | expected | actual | first finding (code@step) | agrees |")
    print("|---|---|---|---|---|---|")
    for name, rows, _, outcome in results:
        for i, row in enumerate(rows):
            label = f"{name} ({outcome.summary.get('steps', 0)} steps, {outcome.seconds:.0f} s)" if i == 0 else ""
            print("| " + " | ".join([label, *row]) + " |")


def run_faults(names, seeds, args):
    """Every fault scenario on every seed: the verdict table, then detection, first finding and advice rates.
    -> the names of the runs that disagree."""
    results, detected, first_right, advice = [], [], [], []
    for name in names:
        scenario = SCENARIOS[name]
        for seed in seeds:
            label = f"{name}_s{seed}" if len(seeds) > 1 else name
            print(f"{label}: {scenario.description} ...", flush=True)
            seeded = [f"--seed={seed}"] if len(seeds) > 1 else []
            outcome = run(label, scenario, args.scale, args.out_dir, extra=seeded, reuse=args.reuse)
            rows, agree = judge(scenario, outcome)
            results.append((label, rows, agree, outcome))
            print(f"{label}: {'agrees' if agree else 'DISAGREES'} ({outcome.seconds:.0f} s)", flush=True)
            if all(e == "healthy" or e == SHORT_HEALTHY[a] for a, e in scenario.expect.items()):
                continue  # a healthy scenario: nothing to detect
            status = outcome.summary.get("verdicts", {}).get(target(scenario), {}).get("status")
            detected.append(status in ("warning", "problem"))
            first_right.append(right_first(scenario, outcome))
            if args.follow and scenario.first_action:
                result = follow_up(label, scenario, outcome, args.scale, args.out_dir, args.reuse, seeded)
                advice.append((label, *(result or ("no Config change advised", False))))
    print()
    print_table(results)
    if detected:
        print(f"\nfaults detected (their analysis not healthy): {sum(detected)} of {len(detected)} runs; "
              f"right first finding (analysis and action): {sum(first_right)} of {len(first_right)}")
    if advice:
        print("\n| run | advice followed | the advice fixes it |\n|---|---|---|")
        for label, changes, fixed in advice:
            print(f"| {label} | {changes} | {'yes' if fixed else 'NO'} |")
        print(f"\nthe advice fixes {sum(f for _, _, f in advice)} of {len(advice)} config-induced faults")
    return [label for label, _, agree, _ in results if not agree]


def run_population(args):
    """The healthy population: its outcomes, and the warnings and alerts each run raised. -> the runs with a
    healthy outcome that raised any."""
    print("| run | config | outcome healthy | verdicts not healthy | warnings and alerts | seconds |\n"
          "|---|---|---|---|---|---|")
    false_alarms, healthy = [], 0
    for name, scenario in population().items():
        outcome = run(name, scenario, args.scale, args.out_dir, reuse=args.reuse)
        good, why = good_outcome(outcome)
        healthy += good
        verdicts = {a: v.get("status") for a, v in outcome.summary.get("verdicts", {}).items()}
        off = [f"{a}: {v}" for a, v in verdicts.items() if v != "healthy"] or ["—"]
        raised = alarms(outcome.summary)
        if good and raised:
            false_alarms.append(name)
        print(f"| {name} | {scenario.description} | {'yes' if good else 'no: ' + why} | {', '.join(off)} | "
              f"{', '.join(raised) or '—'} | {f'{outcome.seconds:.0f}' if outcome.seconds else 'reused'} |", flush=True)
    print(f"\n{healthy} runs with a healthy outcome; {len(false_alarms)} of them raised a warning or alert")
    return false_alarms


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith(SPIKED_TRAINING + "="):
        import train_wandb  # here: the other commands need no torch

        return train_wandb.cli(argv[1:], prepare=grad_spikes(int(argv[0].split("=", 1)[1])))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help=f"comma-separated scenarios (of: {', '.join(SCENARIOS)})")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply each scenario's items (at least 200)")
    parser.add_argument("--out_dir", default=str(OUT_DIR), help="each scenario's run goes to OUT_DIR/<name>")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds: each scenario runs once per seed")
    parser.add_argument("--follow", action="store_true",
                        help="after each config-induced fault, run it again with its first advice applied")
    parser.add_argument("--reuse", action="store_true",
                        help="judge the runs already in OUT_DIR again (their metrics.csv replayed through the "
                             "analyses as they are now) instead of training them: the tables again, without the hours")
    parser.add_argument("--population", action="store_true",
                        help="also run the healthy population (the preset on 3 seeds, 8 configs from sweep.yaml) "
                             "and count the warnings and alerts of those with a healthy outcome")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()] or [0]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, not {args.seeds!r}")
    failed = run_faults(names, seeds, args)
    total = len(names) * len(seeds)
    print(f"\n{total - len(failed)} of {total} scenario runs agree" +
          (f"; disagree: {', '.join(failed)}" if failed else ""))
    false_alarms = run_population(args) if args.population else []
    return 1 if failed or false_alarms else 0


if __name__ == "__main__":
    sys.exit(main())
