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
# latent analysis rightly says as a warning (BENCHMARKS.md, issue 24); a problem would be a false alarm
SHORT_HEALTHY = {**HEALTHY, "latent_space": "healthy|warning"}
ANY = "any"  # a verdict not judged by the scenario (a side effect that is right either way)


@dataclass
class Scenario:
    description: str
    args: list[str]  # train_wandb.py overrides, after --preset=quick
    expect: dict[str, str]  # analysis -> expected status ("healthy", "warning", "problem", "warning|problem", ANY)
    max_items: int = 2000  # items of the collection used (scaled by --scale)
    first_action: tuple[str, str] | None = None  # (analysis, text its first non-info finding's action contains)
    within: float | None = None  # that finding must fire within this share of the run's steps
    same_picture: bool = False  # train on a copy of the collection where every image is the first one
    shuffled_pairs: bool = False  # train on a copy of the collection where each image has another's caption

    def command(self, out, scale, extra=()):
        """The train_wandb.py command line writing to the folder `out`; `extra` overrides come last and win."""
        items = max(200, round(self.max_items * scale))
        copy = same_picture_copy if self.same_picture else shuffled_pairs_copy if self.shuffled_pairs else None
        data = [f"--data_dir={copy(out.with_name(out.name + '_data'), items)}",
                "--cache_dir="] if copy else []  # fresh files each time: caching them is waste
        return [sys.executable, str(REPO_DIR / "train_wandb.py"), "--preset=quick", "--mode=disabled",
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
        "300 items, 40% for validation, 40 epochs",
        ["--num_epochs=40", "--log_frequency=5", "--val_fraction=0.4", "--batch_size=32"],
        {**HEALTHY, "overfitting": "warning", "training_health": ANY, "dominant_loss": ANY, "latent_space": ANY},
        max_items=300, first_action=("overfitting", "weight_decay")),
    "dominant_caption": Scenario(
        "caption_loss_weight=30", ["--num_epochs=3", "--log_frequency=4", "--caption_loss_weight=30.0"],
        {**HEALTHY, "dominant_loss": "warning", "training_health": ANY, "latent_space": ANY},
        first_action=("dominant_loss", "lower caption_loss_weight")),
    "grad_spikes": Scenario(
        "every 20th step's loss x100 before backward (fault injection)",
        ["--num_epochs=3", "--log_frequency=4", "--fault_grad_spike_every=20"],
        {**HEALTHY, "training_health": "warning|problem", "dominant_loss": ANY, "latent_space": ANY},
        first_action=("training_health", "learning_rate")),
}


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
    from train_wandb import BUNDLED_DATA_DIR, find_items  # here: torch loads only when this scenario runs
    from data.engravings import ensure_sample

    pairs = find_items(ensure_sample(REPO_DIR / BUNDLED_DATA_DIR))[:items]
    picture = Path(pairs[0][0])
    return write_collection(dest, [(picture, f"images/{i:05d}{picture.suffix}", caption, None)
                                   for i, (_, caption) in enumerate(pairs)])


def shuffled_pairs_copy(dest, items, seed=0):
    """dest: a copy of the bundled collection's first `items` items in which each image has the caption and ground
    truth of another item (a seeded shuffle of the rows' captions and truths; the images keep their order)."""
    from train_wandb import BUNDLED_DATA_DIR, _read_metadata  # here: torch loads only when this scenario runs
    from data.engravings import ensure_sample

    source = ensure_sample(REPO_DIR / BUNDLED_DATA_DIR)
    rows = _read_metadata(source / "metadata.jsonl")[:items]
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


def run(name, scenario, scale=1.0, out_dir=OUT_DIR, extra=()):
    """Train one scenario into out_dir/name; its console output goes to out_dir/name.log."""
    out = Path(out_dir) / name
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


def print_table(results):
    print("| scenario | analysis | expected | actual | first finding (code@step) | agrees |")
    print("|---|---|---|---|---|---|")
    for name, rows, _, outcome in results:
        for i, row in enumerate(rows):
            label = f"{name} ({outcome.summary.get('steps', 0)} steps, {outcome.seconds:.0f} s)" if i == 0 else ""
            print("| " + " | ".join([label, *row]) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help=f"comma-separated scenarios (of: {', '.join(SCENARIOS)})")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply each scenario's items (at least 200)")
    parser.add_argument("--out_dir", default=str(OUT_DIR), help="each scenario's run goes to OUT_DIR/<name>")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    results = []
    for name in names:
        scenario = SCENARIOS[name]
        print(f"{name}: {scenario.description} ...", flush=True)
        outcome = run(name, scenario, args.scale, args.out_dir)
        rows, agree = judge(scenario, outcome)
        results.append((name, rows, agree, outcome))
        print(f"{name}: {'agrees' if agree else 'DISAGREES'} ({outcome.seconds:.0f} s)", flush=True)
    print()
    print_table(results)
    failed = [name for name, _, agree, _ in results if not agree]
    print(f"\n{len(results) - len(failed)} of {len(results)} scenarios agree" +
          (f"; disagree: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
