"""Run a W&B sweep file locally, without a W&B server: trials drawn from sweep.yaml, trained one after another,
ranked by the sweep's metric.

    python sweep.py sweep.yaml --count=3                      # 3 trials, offline, into out/sweep-<id>/
    python sweep.py sweep.yaml --count=3 --num_epochs=1       # any train_wandb.py field, for every trial
    python sweep.py sweep.yaml --count=8 --sweep_seed=1 --out=runs --id=lr

The file is the one `wandb sweep` reads. Methods: grid (the combinations of the parameters' values, in order)
and random (seeded by --sweep_seed); bayes needs W&B's sweep controller, so it draws at random instead, with a
note. Each trial runs the file's `command` (`${env} python ${program} <fixed args> ${args}`) with the sampled
values as ${args}, then your --field=value overrides (they win), --mode=offline unless you give --mode, and
--out_dir=OUT/sweep-ID/trial_K; its console output goes to trial_K.log beside that folder. A failed trial does
not stop the sweep. At the end OUT/sweep-ID/ranking.md (also printed) ranks the trials by the metric, failed
ones last, and comparison.md / comparison.html compare the finished ones (as `compare.py compare`).
Exit status: 0 if a trial finished, 1 if none did, 2 on a usage error, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml  # a dependency of wandb

from compare import CompareError, compare_runs
from health.core import fmt
from report import fmt_duration, md_table

OVERRIDE = re.compile(r"--([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]  # W&B's, when the file has none
INTERPRETERS = ("${interpreter}", "python", "python3")  # run with the Python that runs sweep.py


class SweepError(Exception):
    """A sweep file or command line sweep.py cannot run: reported in one line, exit status 2."""


@dataclass
class Trial:
    name: str  # trial_K, also its out_dir's name
    params: dict  # the sampled values: parameter -> value
    out_dir: Path
    value: float | None = None  # the sweep metric, once it finished
    seconds: float = 0.0
    error: str = ""  # why it failed

    @property
    def log(self):
        return self.out_dir.with_name(self.out_dir.name + ".log")


# ----------------------------------------------------------------------------
# the sweep file

def load_sweep(path):
    """The sweep file as a dict, with method, metric and parameters checked; SweepError if it cannot run here."""
    try:
        sweep = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError(f"{path}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    except yaml.YAMLError as e:
        raise SweepError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(sweep, dict):
        raise SweepError(f"{path}: expected a mapping with method, metric and parameters")
    if sweep.get("method") not in ("grid", "random", "bayes"):
        raise SweepError(f"{path}: method {sweep.get('method')!r}: choose from grid, random, bayes")
    metric = sweep.get("metric")
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str) \
            or metric.get("goal", "minimize") not in ("minimize", "maximize"):
        raise SweepError(f"{path}: needs `metric: {{name: ..., goal: minimize|maximize}}` to rank the trials")
    parameters = sweep.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise SweepError(f"{path}: no parameters to sweep")
    for name, spec in parameters.items():
        distribution(name, spec)
    return sweep


def distribution(name, spec):
    """The W&B distribution of one parameter, inferred as W&B does when the spec names none; SweepError if
    sweep.py cannot draw from it."""
    if not isinstance(spec, dict):
        raise SweepError(f"parameter {name}: expected a mapping such as {{values: [...]}}, got {spec!r}")
    if "distribution" in spec:
        kind = spec["distribution"]
    elif "values" in spec:
        kind = "categorical"
    elif "value" in spec:
        kind = "constant"
    elif "min" in spec and "max" in spec:
        kind = "int_uniform" if all(type(spec[k]) is int for k in ("min", "max")) else "uniform"
    else:
        raise SweepError(f"parameter {name}: give values, value, or min and max")
    if kind not in SAMPLERS:
        raise SweepError(f"parameter {name}: distribution {kind!r} is not supported by sweep.py "
                         f"(supported: {', '.join(SAMPLERS)})")
    if kind == "constant" and "value" not in spec:
        raise SweepError(f"parameter {name}: distribution constant needs value")
    if kind == "categorical":
        values, weights = spec.get("values"), spec.get("probabilities")
        if not isinstance(values, list) or not values:
            raise SweepError(f"parameter {name}: values must be a non-empty list")
        if weights is not None and not (isinstance(weights, list) and len(weights) == len(values)
                                        and all(is_number(w) and w >= 0 for w in weights) and sum(weights) > 0):
            raise SweepError(f"parameter {name}: probabilities must give one number >= 0 per value")
    if kind not in ("constant", "categorical"):
        low, high, q = spec.get("min"), spec.get("max"), spec.get("q", 1)
        integers = kind == "int_uniform"
        if not all(is_number(v) and (type(v) is int or not integers) for v in (low, high)) \
                or not (is_number(q) and q > 0):
            needs = f"{'integers' if integers else 'numbers'} min and max" + (", and q > 0" if "q_" in kind else "")
            raise SweepError(f"parameter {name}: distribution {kind} needs {needs}")
        if low > high or ("log" in kind and low <= 0):
            raise SweepError(f"parameter {name}: distribution {kind} needs {'0 < ' if 'log' in kind else ''}"
                             "min <= max")
    return kind


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ----------------------------------------------------------------------------
# drawing trials

def continuous(spec, draw):
    """A value drawn in [min, max], kept to 4 significant digits (what the progress line and the table show)."""
    return min(max(float(f"{draw:.4g}"), spec["min"]), spec["max"])


def quantized(value, q):
    """W&B's q_ distributions: round(value / q) * q, an int when q is one."""
    steps = round(value / q)
    return steps * q if isinstance(q, int) else float(f"{steps * q:.10g}")


def log_uniform(spec, rng):
    return math.exp(rng.uniform(math.log(spec["min"]), math.log(spec["max"])))


SAMPLERS = {  # distribution -> (spec, rng) -> value
    "constant": lambda spec, rng: spec["value"],
    "categorical": lambda spec, rng: rng.choices(spec["values"], weights=spec.get("probabilities"))[0],
    "int_uniform": lambda spec, rng: rng.randint(spec["min"], spec["max"]),
    "uniform": lambda spec, rng: continuous(spec, rng.uniform(spec["min"], spec["max"])),
    "log_uniform_values": lambda spec, rng: continuous(spec, log_uniform(spec, rng)),
    "q_uniform": lambda spec, rng: quantized(rng.uniform(spec["min"], spec["max"]), spec.get("q", 1)),
    "q_log_uniform_values": lambda spec, rng: quantized(log_uniform(spec, rng), spec.get("q", 1)),
}


def grid_trials(parameters, count=None):
    """Up to `count` combinations of the parameters' values, in the order of the file (the last one varies fastest)."""
    choices = []
    for name, spec in parameters.items():
        kind = distribution(name, spec)
        if kind not in ("constant", "categorical"):
            raise SweepError(f"method grid needs values for every parameter; {name} has distribution {kind} "
                             "(use method: random)")
        choices.append(spec["values"] if kind == "categorical" else [spec["value"]])
    return [dict(zip(parameters, combination)) for combination in itertools.islice(itertools.product(*choices), count)]


def random_trials(parameters, count, seed=0):
    """`count` trials, each parameter drawn from its distribution by one generator seeded with `seed`."""
    rng = random.Random(seed)
    return [{name: SAMPLERS[distribution(name, spec)](spec, rng) for name, spec in parameters.items()}
            for _ in range(count)]


def draw_trials(sweep, count, seed=0):
    """(the trials' parameter values, a note to print or None) by the sweep's method."""
    method, parameters = sweep["method"], sweep["parameters"]
    if method == "grid":
        trials = grid_trials(parameters, count)
        short = count is not None and len(trials) < count
        return trials, f"note: the grid has only {len(trials)} combinations" if short else None
    if count is None:
        raise SweepError(f"method {method} needs --count")
    note = (f"note: method bayes needs W&B's sweep controller; sweep.py draws the trials at random instead "
            f"(--sweep_seed={seed})") if method == "bayes" else None
    return random_trials(parameters, count, seed), note


# ----------------------------------------------------------------------------
# running a trial

def format_value(value):
    """A sampled value as train_wandb.py reads it after `--name=`."""
    return repr(value) if isinstance(value, float) else str(value)


def trial_args(params, overrides, out_dir):
    """The --name=value arguments of one trial: sampled values, then the user's overrides (they win),
    --mode=offline unless the user gave a mode, and the trial's out_dir."""
    values = {**{name: format_value(value) for name, value in params.items()}, **overrides}
    values.setdefault("mode", "offline")
    values["out_dir"] = str(out_dir)
    return [f"--{name}={value}" for name, value in values.items()]


def trial_command(sweep, args):
    """The sweep file's `command` with its macros filled in: ${env} dropped, the interpreter this one, ${program}
    the file's program and ${args} the trial's arguments; SweepError for a macro sweep.py does not know."""
    command = sweep.get("command") or DEFAULT_COMMAND
    if not isinstance(command, list) or "${args}" not in command:
        raise SweepError("the sweep file's command must be a list holding ${args}")
    parts = []
    for item in map(str, command):
        if item == "${args}":
            parts += args
        elif item == "${env}":
            continue
        elif item in INTERPRETERS:
            parts.append(sys.executable)
        elif item == "${program}":
            parts.append(str(sweep.get("program")))
        elif "${" in item:
            raise SweepError(f"the sweep file's command uses {item}, which sweep.py does not fill in "
                             "(it knows ${env}, ${interpreter}, ${program} and ${args})")
        else:
            parts.append(item)
    return parts


def failure_reason(returncode, log):
    """Why a trial failed, in a few words: its exit status and the last line of its log."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        lines = []
    last = f": {lines[-1][:200]}" if lines else ""
    return f"exit {returncode}{last}" if returncode else f"no summary.json{last}"


def run_trial(trial, command, metric):
    """Train one trial (its console output into trial.log) and fill in its metric value or its error."""
    trial.out_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(trial.log, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            returncode = process.wait()
        except KeyboardInterrupt:  # the trial got the Ctrl-C too: let it save its checkpoint and report first
            process.wait()
            trial.seconds = time.perf_counter() - start
            raise
    trial.seconds = time.perf_counter() - start
    path = trial.out_dir / "summary.json"
    if returncode or not path.is_file():
        trial.error = failure_reason(returncode, trial.log)
        return
    try:
        trial.value = metric_value(json.loads(path.read_text()), metric)
    except (OSError, ValueError) as e:
        trial.error = f"unreadable summary.json ({e})"
        return
    if trial.value is None:
        trial.error = f"no finite {metric} in summary.json"


def metric_value(summary, name):
    """The sweep metric of a finished trial, read from its summary.json as W&B's run summary holds it, or None."""
    # logger.py defines val/loss_total with summary="min": W&B's summary holds the run's lowest value, which is
    # summary.json's best_val_loss (final_val holds the last epoch's). Other val/ and train/ names take the last
    # epoch's value (final_val, final_train), as W&B's summary does by default; any other name (best_val_loss,
    # best_value) is a key of summary.json or of its info.
    if name == "val/loss_total":
        value = summary.get("best_val_loss")
    elif name.startswith(("val/", "train/")):
        split, key = name.split("/", 1)
        value = (summary.get(f"final_{split}") or {}).get(key)
    else:
        value = summary.get(name, (summary.get("info") or {}).get(name))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# ----------------------------------------------------------------------------
# the ranking

def ranked(trials, goal):
    """The finished trials best first by the metric, then the failed ones in trial order."""
    finished = sorted((t for t in trials if not t.error), key=lambda t: t.value, reverse=goal == "maximize")
    return finished + [t for t in trials if t.error]


def ranking_lines(trials, metric, goal):
    """The ranking as a markdown table: rank, trial, metric value, time and one column per parameter."""
    names = list(dict.fromkeys(name for t in trials for name in t.params))
    rows, rank = [["rank", "trial", f"{metric} ({goal})", "time", *names]], 0
    for trial in ranked(trials, goal):
        rank += not trial.error
        result = f"failed: {trial.error}" if trial.error else fmt(trial.value)
        rows.append(["—" if trial.error else str(rank), trial.name, result, fmt_duration(trial.seconds),
                     *(format_value(trial.params[n]) if n in trial.params else "—" for n in names)])
    return md_table(rows)


def write_summary(sweep_dir, trials, metric, goal, header):
    """ranking.md in sweep_dir (`header` lines, then the table; the table is also printed) and, for the finished
    trials, comparison.md and comparison.html."""
    lines = ranking_lines(trials, metric, goal)
    finished = [t for t in ranked(trials, goal) if not t.error]
    note = "No trial finished: no comparison."
    if finished:
        try:
            compare_runs([t.out_dir for t in finished], sweep_dir)
            note = "The finished trials side by side: comparison.md and comparison.html, beside ranking.md."
        except (CompareError, OSError) as e:
            note = f"No comparison: {e}"
    (sweep_dir / "ranking.md").write_text("\n".join([*header, "", *lines, "", note]) + "\n")
    print("\n" + "\n".join([*lines, "", note, f"Ranking: {sweep_dir / 'ranking.md'}"]))


# ----------------------------------------------------------------------------
# main

def parse(argv):
    """(sweep.py's options, {field: raw value} of the overrides); SweepError for an argument it cannot read."""
    parser = argparse.ArgumentParser(prog="sweep.py", description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     epilog="Other --field=value arguments go to every trial: see "
                                            "`python train_wandb.py --help`.")
    parser.add_argument("sweep_file", help="a W&B sweep file, such as sweep.yaml")
    parser.add_argument("--count", type=int, help="trials to run (grid: default every combination)")
    parser.add_argument("--sweep_seed", type=int, default=0,
                        help="seed of the random draws (default 0; --seed is train_wandb.py's)")
    parser.add_argument("--out", default="out", help="folder that receives sweep-ID/ (default out)")
    parser.add_argument("--id", help="the sweep's name in sweep-ID (default: the start time)")
    args, rest = parser.parse_known_args(argv)
    overrides = {}
    for arg in rest:
        match = OVERRIDE.fullmatch(arg)
        if not match:
            raise SweepError(f"cannot parse argument {arg!r}: use --field=value")
        overrides[match[1]] = match[2]
    if args.count is not None and args.count < 1:
        raise SweepError("--count must be at least 1")
    if "out_dir" in overrides:
        raise SweepError("--out_dir is set for each trial; use --out for the folder that receives sweep-ID/")
    return args, overrides


def check_fields(names, program):
    """SweepError naming the first parameter or override that is not a field of train_wandb.py."""
    if Path(program).name != "train_wandb.py":
        return
    from train_wandb import config_fields  # here: reading and drawing need no torch

    fields = {*config_fields(), "preset"}
    unknown = [name for name in names if name not in fields]
    if unknown:
        raise SweepError(f"--{unknown[0]} is not a field of train_wandb.py "
                         "(`python train_wandb.py --help` lists them)")


def main(argv=None):
    try:
        args, overrides = parse(sys.argv[1:] if argv is None else argv)
        sweep = load_sweep(args.sweep_file)
        params, note = draw_trials(sweep, args.count, args.sweep_seed)
        program = str(sweep.get("program") or "")
        if "${program}" in (sweep.get("command") or DEFAULT_COMMAND) and not Path(program).is_file():
            raise SweepError(f"program {program!r}: no such file (run sweep.py from the folder that holds it, "
                             "as `wandb agent` would be)")
        trial_command(sweep, [])  # the command's macros, checked before any trial runs
        check_fields([*sweep["parameters"], *overrides], program)
        sweep_dir = Path(args.out) / f"sweep-{args.id or time.strftime('%Y%m%d-%H%M%S')}"
        if sweep_dir.exists():
            raise SweepError(f"{sweep_dir} exists already; choose another --id or --out")
        sweep_dir.mkdir(parents=True)
    except SweepError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot create the sweep folder: {e}", file=sys.stderr)
        return 2

    metric, goal = sweep["metric"]["name"], sweep["metric"].get("goal", "minimize")
    common = " ".join("python" if part == sys.executable else part
                      for part in trial_command(sweep, trial_args({}, overrides, sweep_dir / "trial_K")))
    print(f"{len(params)} trials of `{common}` (plus the sampled values), {sweep['method']} method, "
          f"ranked by {metric} ({goal})")
    if note:
        print(note)
    trials = [Trial(f"trial_{k}", p, sweep_dir / f"trial_{k}") for k, p in enumerate(params, 1)]
    interrupted = False
    for k, trial in enumerate(trials, 1):
        shown = " ".join(f"--{name}={format_value(value)}" for name, value in trial.params.items())
        print(f"trial {k}/{len(trials)} {shown} ... ", end="", flush=True)
        try:
            run_trial(trial, trial_command(sweep, trial_args(trial.params, overrides, trial.out_dir)), metric)
        except KeyboardInterrupt:
            trial.error, interrupted = "interrupted", True
            print("interrupted")
            trials = trials[:k]
            break
        if trial.error:
            print(f"failed: {trial.error}, see {trial.log}")
        else:
            print(f"{metric} {trial.value:.4g} in {trial.seconds:.0f} s")
    finished = sum(not t.error for t in trials)
    drawn = "grid" if sweep["method"] == "grid" else f"random draws, --sweep_seed={args.sweep_seed}"
    header = [f"# Sweep {sweep_dir.name}: {len(trials)} trials of {args.sweep_file} ({drawn}), {finished} finished",
              "", f"Each trial: `{common}` with the values below, ranked by {metric} ({goal})."]
    write_summary(sweep_dir, trials, metric, goal, header)
    return 130 if interrupted else 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
