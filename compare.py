"""Compare finished runs, and follow a run's advice.

    python compare.py compare out/run_a out/run_b --out out/compare   # table + overlay plots of runs
    python compare.py compare --help
    python compare.py follow out/run          # the run its advice asks for, as a command (--run trains it)

Both read what train_wandb.py leaves in each out_dir (summary.json, metrics.csv). The health checks are the
health package, the report report.py: import them from there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from evaluation import VAL_MEASURES
from health.core import action_changes, finite, fmt, fmt_config
from report import (
    attempt,
    fmt_duration,
    line_style,
    md_table,
    pyplot,
    quietly,
    read_metrics_csv,
    save_figure,
    series,
)
from report_html import render_comparison_html, write_html

COMPARE_IGNORED = {"out_dir"}  # differs between any two runs; the table's run column already names it

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


def measures_table(labels, summaries):
    """The validation measures of each run's last epoch (those any run logged) -> a table, or [].

    Below them the baseline (what each measure gives for a model that learned nothing): one row when every run
    that logged one has the same, else one row per run."""
    finals = [s.get("final_val") or {} for s in summaries]
    names = [m for m in VAL_MEASURES if any(finite(val.get(m)) for val in finals)]
    if not names:
        return []
    baselines = [(label, s["baseline"]) for label, s in zip(labels, summaries) if s.get("baseline")]
    if baselines and all(b == baselines[0][1] for _, b in baselines):
        baselines = [("", baselines[0][1])]
    rows = [(label, val) for label, val in zip(labels, finals)]
    rows += [(f"baseline{' of ' + label if label else ''}", b) for label, b in baselines]
    return [["run", *names]] + [[label, *[fmt(val.get(m), 3) if finite(val.get(m)) else "—" for m in names]]
                                for label, val in rows]


def best_run_line(labels, summaries, fields):
    scored = [(s["best_val_loss"], label, s) for label, s in zip(labels, summaries) if finite(s.get("best_val_loss"))]
    if not scored:
        return "No run has a validation loss, so none can be called best."
    scored.sort(key=lambda t: t[0])
    loss, label, s = scored[0]
    others = ", ".join(f"{other} {fmt(value)}" for value, other, _ in scored[1:])
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
            ax.plot(xs, ys, color=color, linewidth=1.1, alpha=0.8, label=f"{label} train", **line_style(len(ys)))
        xs, ys = series(rows, f"val/{metric}")
        if ys:
            ax.plot(xs, ys, color=color, linewidth=1.8, linestyle="--", marker="o", label=f"{label} val")
    ax.set(xlabel="global_step", ylabel=metric, title=title)
    ax.legend(fontsize="small", ncol=1 + len(labels) // 8)
    save_figure(fig, path)
    return True


def comparison_parts(labels, summaries, fields):
    """What comparison.md and comparison.html both show, computed once: the number of runs, the best-run line,
    the runs' table and the last epoch's measures (empty when no run logged any)."""
    return {"runs": len(labels), "best": best_run_line(labels, summaries, fields),
            "table": comparison_table(labels, summaries, fields), "measures": measures_table(labels, summaries)}


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
    parts = comparison_parts(labels, summaries, fields)
    lines = [f"# Comparison of {parts['runs']} runs", ""]
    lines += md_table(parts["table"]) + [""]
    lines += ["Config fields that differ: " + (", ".join(fields) if fields else "none") + ".", "", parts["best"], ""]
    if parts["measures"]:
        lines += ["Validation measures of the last epoch:", ""] + md_table(parts["measures"]) + [""]
    lines += [f"![{file}]({file})" for file in plots]
    path = dest / "comparison.md"
    path.write_text("\n".join(lines) + "\n")
    attempt("comparison.html", lambda: write_html(dest / "comparison.html", render_comparison_html(
        parts, fields, {file: dest / file for file in plots})))
    return path


# ----------------------------------------------------------------------------
# following the advice

NOT_CARRIED = {"out_dir", "resume", "resume_changes"}  # the follow-up is a fresh run in a folder of its own


def advised_changes(summary):
    """(where the advice comes from, its action, {field: new value}) for the first piece of advice of a finished
    run that changes Config fields, or None. Open warnings and errors come first, in the order they fired (the
    monitor puts the root cause first), then the actions of the verdicts that are not healthy. Of an action
    with alternatives ('raise weight_decay from 0.05 to 0.1 or set dropout from 0 to 0.1') the first is taken."""
    config = summary.get("config") or {}
    advice = [(f"{f['analysis']}/{f['code']}", f["action"]) for f in summary.get("findings") or []
              if f.get("severity") in ("warning", "error") and not f.get("resolved")]
    advice += [(f"{name} verdict", action) for name, verdict in (summary.get("verdicts") or {}).items()
               if verdict.get("status") in ("warning", "problem") for action in verdict.get("actions") or []]
    for source, action in advice:
        changes = {name: value for name, value in action_changes(action).items() if name in config}
        if changes:
            return source, action, changes
    return None


def follow_command(summary, changes, out_dir):
    """The train_wandb.py command line that repeats a finished run (every field it set away from the default)
    with `changes` applied, writing to out_dir."""
    from train_wandb import CONFIG_CLASSES  # here: the other commands need no torch

    defaults = {f.name: f.default for cls in CONFIG_CLASSES for f in dataclasses.fields(cls)}
    config = summary.get("config") or {}
    fields = {name: value for name, value in config.items()
              if name in defaults and name not in NOT_CARRIED and value != defaults[name] and value is not None}
    fields.update(changes)
    return [sys.executable, str(Path(__file__).absolute().parent / "train_wandb.py"),
            *(f"--{name}={value}" for name, value in fields.items()), f"--out_dir={out_dir}"]


def follow(out_dir, run=False, dest=None):
    """Print the follow-up of a finished run: its advice as a command; with run, train it and compare the two.
    -> exit status (0, 1 when the follow-up failed, 2 when there is nothing to follow)."""
    summary, _ = load_run(out_dir)
    advice = advised_changes(summary)
    if advice is None:
        print(f"{out_dir}: no open finding or verdict advises a change of a Config field: nothing to follow")
        return 2
    source, action, changes = advice
    dest = Path(dest) if dest else Path(f"{str(out_dir).rstrip('/')}_follow")
    command = follow_command(summary, changes, dest)
    print(f"advice ({source}): {action}")
    script = os.path.relpath(command[1]) if Path(command[1]).parent == Path.cwd() else command[1]
    print("follow-up: " + " ".join(shlex.quote(part) for part in ["python", script, *command[2:]]))
    if not run:
        return 0
    if subprocess.run(command).returncode != 0:
        print(f"error: the follow-up run failed; its output is above and in {dest}", file=sys.stderr)
        return 1
    print(compare_runs([out_dir, dest], dest / "comparison").read_text(), end="")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare", help="compare finished runs: a table of what differs and how they did, plus overlay plots",
        description="Read each OUT_DIR's summary.json and metrics.csv (written by train_wandb.py at the end of a "
                    "run); write DIR/comparison.md, DIR/compare_loss.png and DIR/compare_caption_accuracy.png; "
                    "print the comparison.")
    compare.add_argument("out_dirs", nargs="+", metavar="OUT_DIR", help="a run's out_dir (holds summary.json)")
    compare.add_argument("--out", required=True, metavar="DIR", help="folder for comparison.md and the plots")
    follow_up = commands.add_parser(
        "follow", help="the follow-up run a finished run's advice asks for: print its command, or train it",
        description="Read OUT_DIR/summary.json, take the first open finding (or verdict) whose action changes "
                    "Config fields, and print the train_wandb.py command that repeats the run with those changes "
                    "in OUT_DIR_follow. With --run, train it and write the comparison of the two runs.")
    follow_up.add_argument("out_dir", metavar="OUT_DIR", help="a finished run's out_dir (holds summary.json)")
    follow_up.add_argument("--run", action="store_true", help="train the follow-up and compare it with OUT_DIR")
    follow_up.add_argument("--out", metavar="DIR", help="the follow-up's out_dir (default OUT_DIR_follow)")
    args = parser.parse_args(argv)
    if args.command == "follow":
        try:
            return follow(args.out_dir, args.run, args.out)
        except CompareError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
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
