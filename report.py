"""The local report of a run: metrics.csv, PNG plots, summary.json and report.md (one section per analysis).

    write_report("out/run", rows, monitor, info)   # {name: path}; info: status, device, training_time_s, ...
"""

from __future__ import annotations

import csv
import json
import math
import numbers
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

from durable import write_atomic, write_text_atomic
from evaluation import PROBE_MEASURES, VAL_MEASURES, better
from health import ANALYSES, COMPONENTS, HealthMonitor, replay
from health.core import UNTRAINED, finite, fmt, fmt_config, is_number, loss_weights, share_error
from report_html import render_report_html, write_html

# the training metrics of the report's first table, their last train window beside the last validation
FINAL_METRICS = ("loss_total", "loss_image", "loss_caption", "loss_alignment", "caption_accuracy", "caption_perplexity",
                 "image_mse", "latent_std")
KEY_CONFIG = ("learning_rate", "batch_size", "num_epochs", "weight_decay", "dropout", "latent_dim",
              "image_loss_weight", "caption_loss_weight", "alignment_loss_weight")




def fmt_duration(seconds) -> str:
    if not finite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# ----------------------------------------------------------------------------
# rows and metrics.csv

def columns(rows):
    """Every scalar column of the rows, sorted, global_step first."""
    names = {k for row in rows for k, v in row.items() if is_number(v) or isinstance(v, str)}
    return ["global_step"] + sorted(names - {"global_step"})


def write_metrics_csv(rows, path):
    """metrics.csv in UTF-8, through a temporary file (durable.write_atomic): a crash leaves the previous one whole."""
    header = columns(rows)

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, header, restval="", extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: v for k, v in row.items() if is_number(v) or isinstance(v, str)})

    write_atomic(path, write)
    return True


def read_metrics_csv(path):
    """Rows of a metrics.csv as dicts of floats; empty cells and text are left out."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for record in csv.DictReader(f):
            row = {}
            for key, text in record.items():
                try:
                    row[key] = float(text)
                except (TypeError, ValueError):
                    continue
            rows.append(row)
    return rows


def series(rows, key):
    """(global_steps, values) of one metric, finite points only (NaN/inf and missing rows are skipped)."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        x, y = row.get("global_step", i), row.get(key)
        if finite(x) and finite(y):
            xs.append(float(x))
            ys.append(float(y))
    return xs, ys


def val_at_epoch(rows, epoch):
    """The val/ metrics of that epoch's validation row, prefix removed; {} when there is none."""
    for row in rows:
        if finite(row.get("val/epoch")) and round(row["val/epoch"]) == epoch and finite(row.get("val/loss_total")):
            return {k[4:]: v for k, v in row.items() if k.startswith("val/") and is_number(v)}
    return {}


def last_text(rows, keys):
    """{name: the text of the last row that has it under key} for keys {name: key}; {} when no row has text."""
    texts = {}
    for name, key in keys.items():
        found = [row[key] for row in rows if isinstance(row.get(key), str)]
        if found:
            texts[name] = found[-1]
    return texts


def last_metrics(rows, prefix):
    """Metrics of the last row with this prefix, prefix removed."""
    for row in reversed(rows):
        values = {k.partition("/")[2]: v for k, v in row.items() if k.startswith(prefix + "/") and is_number(v)}
        if values:
            return values
    return {}


# ----------------------------------------------------------------------------
# plots

def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: works without a display, on servers and in threads
    import matplotlib.pyplot as plt
    return plt


def line_style(n):
    """Markers when there are few points, so a single point is still visible."""
    return {"marker": "o", "markersize": 3} if n < 30 else {}


def save_figure(fig, path, left=0.75, right=0.2, bottom=0.55, top=0.4, wspace=0.3):
    """Save with fixed margins (inches): tight_layout would measure every label and cost a third of the time."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
                        wspace=wspace)
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def plot_loss_components(rows, path, weights):
    """Stacked area of the weighted components (what loss_total is made of), loss_total on top."""
    train = [r for r in rows if any(k.startswith("train/") for k in r)]
    keys = [c for c in COMPONENTS if any(f"train/loss_{c}" in r for r in train)]
    points = [r for r in train if finite(r.get("global_step")) and all(finite(r.get(f"train/loss_{c}")) for c in keys)]
    if not keys or not points:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    xs = [float(r["global_step"]) for r in points]
    stacks = [[weights[c] * r[f"train/loss_{c}"] for r in points] for c in keys]
    ax.stackplot(xs, *stacks, labels=[f"{c} × {fmt_config(weights[c])}" for c in keys], alpha=0.75)
    tx, ty = series(train, "train/loss_total")
    if ty:
        ax.plot(tx, ty, color="black", linewidth=1.4, label="loss_total", **line_style(len(ty)))
    ax.set(xlabel="global_step", ylabel="weighted loss", title="Weighted loss components (train)")
    ax.legend(loc="upper right")
    save_figure(fig, path)
    return True


def _train_val(ax, rows, metric, ylabel):
    drawn = False
    for prefix, style in (("train", {"linewidth": 1.2}), ("val", {"linewidth": 1.8, "marker": "o"})):
        xs, ys = series(rows, f"{prefix}/{metric}")
        if ys:
            ax.plot(xs, ys, label=prefix, **{**line_style(len(ys)), **style})
            drawn = True
    ax.set(xlabel="global_step", ylabel=ylabel)
    if drawn:
        ax.legend()
    return drawn


def plot_train_vs_val(rows, path):
    plt = pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = _train_val(loss_ax, rows, "loss_total", "loss_total")
    drawn = _train_val(acc_ax, rows, "caption_accuracy", "caption_accuracy") or drawn
    loss_ax.set_title("loss_total: train vs val")
    acc_ax.set_title("caption_accuracy: train vs val")
    if not drawn:
        plt.close(fig)
        return False
    save_figure(fig, path)
    return True


def plot_latent(rows, path):
    """The spread of z between images (latent_batch_std, latent_diversity) where logged, then latent_std/norm."""
    logged = [m for m in ("latent_batch_std", "latent_diversity", "latent_std", "latent_norm", "latent_mean")
              if any(series(rows, f"{p}/{m}")[1] for p in ("train", "val"))]
    metrics = logged[:3]
    if not metrics:
        return False
    plt = pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        _train_val(ax, rows, metric, metric)
        ax.set_title(metric)
    save_figure(fig, path)
    return True


def plot_gradients(rows, path):
    lines = {m: series(rows, f"train/{m}") for m in ("grad_norm", "grad_norm_max", "grad_mean", "grad_max")}
    lines = {m: [(x, y) for x, y in zip(*xy) if y > 0] for m, xy in lines.items()}  # log axis: positive only
    if not any(lines.values()):
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for metric, points in lines.items():
        if points:
            ax.plot(*zip(*points), label=metric, **line_style(len(points)))
    ax.set_yscale("log")
    ax.set(xlabel="global_step", ylabel="gradient (log scale)", title="Gradient statistics (train, before clipping)")
    ax.legend()
    save_figure(fig, path)
    return True


def plot_hardware(rows, path):
    """loss_total against the hardware metrics on twin axes: does the cost track the progress?"""
    percents = {label: series(rows, f"train/{metric}") for metric, label in
                (("gpu_memory_percent", "GPU memory %"), ("cpu_percent", "CPU %"))}
    percents = {label: xy for label, xy in percents.items() if xy[1] and max(xy[1]) > 0}  # all-zero GPU = no GPU
    rate = series(rows, "train/samples_per_second")
    if not percents and not rate[1]:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    lines = []
    lx, ly = series(rows, "train/loss_total")
    if ly:
        lines += ax.plot(lx, ly, color="black", linewidth=1.4, label="loss_total", **line_style(len(ly)))
    ax.set(xlabel="global_step", ylabel="loss_total", title="loss_total vs hardware (train)")
    if percents:
        pct = ax.twinx()
        for (label, (xs, ys)), color in zip(percents.items(), ("tab:red", "tab:orange")):
            lines += pct.plot(xs, ys, color=color, linewidth=1.1, label=label, **line_style(len(ys)))
        pct.set(ylabel="percent", ylim=(0, 105))
    if rate[1]:
        speed = ax.twinx()
        speed.spines["right"].set_position(("axes", 1.12))  # a second right axis beside the percent one
        lines += speed.plot(*rate, color="tab:blue", linewidth=1.1, label="samples/s", **line_style(len(rate[1])))
        speed.set_ylabel("samples/s", color="tab:blue")
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center", bbox_to_anchor=(0.5, -0.14),
              ncol=len(lines), fontsize="small", frameon=False)  # below the plot: no curve hides behind it
    save_figure(fig, path, right=1.9, bottom=0.85)
    return True


MEASURE_PANELS = (  # the panels of measures.png: title, the VAL_MEASURES drawn in it
    ("retrieval", ("i2t_r1", "t2i_r1", "i2t_r5", "t2i_r5")),
    ("captions vs their references", ("bleu4", "cider_d")),
    ("reconstruction: PSNR (dB)", ("psnr",)),
    ("reconstruction: SSIM", ("ssim",)),
    ("grounded caption accuracy", ("grounded_object", "grounded_count", "grounded_position", "grounded_technique",
                                   "grounded_sky")),
    ("linear probes on z", PROBE_MEASURES),
)


def plot_measures(rows, path):
    """The validation measures by epoch, each with its baseline (a model that learned nothing about the
    individual images) as a dashed line of its colour: what the model learned, at a glance."""
    baseline = last_metrics(rows, "baseline")
    panels = [(title, [m for m in names if series(rows, f"val/{m}")[1]]) for title, names in MEASURE_PANELS]
    panels = [(title, names) for title, names in panels if names]
    if not panels:
        return False
    plt = pyplot()
    cols = min(3, len(panels))  # at most three a row: a page-wide figure stays legible
    rows_of_panels = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows_of_panels, cols, figsize=(3.6 * cols, 3.8 * rows_of_panels), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    fig.subplots_adjust(hspace=0.45)
    for ax, (title, names) in zip(axes.flat, panels):
        for m in names:
            points = [(r["val/epoch"], r[f"val/{m}"]) for r in rows if finite(r.get("val/epoch"))
                      and finite(r.get(f"val/{m}"))]
            line, = ax.plot(*zip(*points), label=m, **line_style(len(points)))
            if finite(baseline.get(m)):
                ax.axhline(baseline[m], color=line.get_color(), linestyle="--", linewidth=0.9)
        ax.set(xlabel="epoch", title=title)
        ax.legend(fontsize="x-small")
    save_figure(fig, path)
    return True


PLOTS = {  # name -> (file, plot(rows, path, weights) -> whether it drew, caption in report.md)
    "loss_components": ("loss_components.png", plot_loss_components, "Weighted loss components"),
    "train_vs_val": ("train_vs_val.png", lambda rows, path, _: plot_train_vs_val(rows, path), "Train vs val"),
    "measures": ("measures.png", lambda rows, path, _: plot_measures(rows, path),
                 "Validation measures by epoch (dashed: each one's baseline)"),
    "latent": ("latent.png", lambda rows, path, _: plot_latent(rows, path), "Latent statistics"),
    "gradients": ("gradients.png", lambda rows, path, _: plot_gradients(rows, path), "Gradients"),
    "hardware": ("hardware.png", lambda rows, path, _: plot_hardware(rows, path), "Hardware vs loss"),
}


# ----------------------------------------------------------------------------
# the local report

def attempt(what, fn, *args):
    """Run one output step; on any failure warn and go on: a broken run needs its report most."""
    try:
        return fn(*args)
    except Exception as e:
        print(f"warning: report: {what} failed ({type(e).__name__}: {e})", file=sys.stderr)
        return None


def quietly(fn, *args):
    """Draw a plot without numpy/matplotlib warnings: a failed run's extreme values overflow, a crowded
    legend defeats tight_layout; the plot is still written and the console stays readable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args)


def json_safe(value):
    """JSON without NaN/Infinity (not valid JSON): non-finite numbers become null, unknown objects text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if is_number(value):
        return float(value) if math.isfinite(value) else None
    return str(value)


def run_facts(out_dir, rows, info):
    """The run's headline numbers: info's values where given and finite, else derived from the rows."""
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    val = [(row.get("val/epoch"), row["val/loss_total"]) for row in rows if finite(row.get("val/loss_total"))]
    best = min(val, key=lambda v: v[1]) if val else None
    steps = [row["global_step"] for row in rows if finite(row.get("global_step"))]
    epochs = [row[k] for row in rows for k in ("train/epoch", "val/epoch") if finite(row.get(k))]
    metric = config.get("best_metric") or "loss_total"
    best_epoch = info.get("best_epoch") if finite(info.get("best_epoch")) and info.get("best_epoch") else None
    loss_epoch = round(best[0]) if best and finite(best[0]) else None
    if best_epoch is None and metric == "loss_total":
        best_epoch = loss_epoch
    return {
        "run": config.get("run_name") or Path(out_dir).resolve().name,
        "status": info.get("status") or "unknown",
        "device": info.get("device"),
        "training_time_s": info.get("training_time_s") if finite(info.get("training_time_s")) else None,
        "best_val_loss": info["best_val_loss"] if finite(info.get("best_val_loss")) else (best[1] if best else None),
        "best_loss_epoch": loss_epoch if loss_epoch is not None or metric != "loss_total" else best_epoch,
        "best_metric": metric,  # best.pt holds the epoch best_epoch, the best val <best_metric>
        "best_epoch": best_epoch,
        "steps": int(info["steps"]) if finite(info.get("steps")) else (int(max(steps)) if steps else 0),
        "epochs": max(epochs) if epochs else None,
        "wandb_run": info.get("wandb_url") or info.get("wandb_run") or info.get("run_dir"),
        "final_train": last_metrics(rows, "train"),
        "final_val": last_metrics(rows, "val"),
        "baseline": last_metrics(rows, "baseline"),
        "best_val": val_at_epoch(rows, best_epoch) if best_epoch is not None else {},  # what best.pt scores
        "probe_words": last_text(rows, {"best": "val/probe_words_best", "worst": "val/probe_words_worst"}),
        "config": config,
    }


def _md_cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(table):
    header, *body = table
    lines = ["| " + " | ".join(_md_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in body]
    return lines


def summary_paragraph(facts):
    """A short paper-style account of the run, from the facts that exist."""
    train, val = facts["final_train"], facts["final_val"]
    epochs = f" ({fmt(facts['epochs'], 3)} epochs)" if facts["epochs"] is not None else ""
    device = f" on {facts['device']}" if facts["device"] else ""
    time_part = f" in {fmt_duration(facts['training_time_s'])}" if facts["training_time_s"] is not None else ""
    sentences = [f"The model trained for {facts['steps']} steps{epochs}{time_part}{device}; status: {facts['status']}."]
    if facts["best_val_loss"] is not None:
        at = f" at epoch {facts['best_loss_epoch']}" if facts.get("best_loss_epoch") is not None else ""
        sentences.append(f"The best validation loss was {fmt(facts['best_val_loss'])}{at}.")
    else:
        sentences.append("There is no validation result.")
    chosen = best_pt_fact(facts)
    if chosen:
        sentences.append(f"best.pt holds {chosen}.")
    acc = [f"{fmt(d['caption_accuracy'], 3)} ({name})" for name, d in (("train", train), ("val", val))
           if "caption_accuracy" in d]
    mse = [f"{fmt(d['image_mse'], 3)} ({name})" for name, d in (("train", train), ("val", val)) if "image_mse" in d]
    if acc or mse:
        parts = ([f"caption accuracy was {' and '.join(acc)}"] if acc else []) + (
            [f"image_mse {' and '.join(mse)}"] if mse else [])
        sentences.append("At the end, " + ", ".join(parts) + ".")
    return " ".join(sentences)


def _judged(val, baseline):
    """The measures with a value and a baseline, in VAL_MEASURES order."""
    return [m for m in VAL_MEASURES if finite(val.get(m)) and finite(baseline.get(m))]


# the measures that are shares of the validation items -> the logged count of the items each is over
SHARE_ITEMS = {m: measure.share_of for m, measure in VAL_MEASURES.items() if measure.share_of}
LOGGED_ERRORS = {m: measure.error for m, measure in VAL_MEASURES.items() if measure.error}  # its error at chance


def clearly_better(name, value, baseline, items=None, error=None):
    """Is value better than the baseline by more than chance moves it? For a share of `items` items, by more
    than two standard errors of a share at the baseline's rate (health.core.share_error; 514 items: 0.011 at
    p = 0.07); for a measure logged with its standard error at chance (LOGGED_ERRORS, `error`), by more than two
    of it; for any other measure, or without a count, any amount."""
    if finite(error):
        return better(name, value, baseline) and abs(value - baseline) > 2 * error
    if name not in SHARE_ITEMS or not finite(items) or items < 1:
        return better(name, value, baseline)
    return value - baseline > 2 * share_error(baseline, items)


def clearly_ahead(val, other):
    """The measures on which val is clearly better than other (clearly_better, with val's item counts and
    logged errors), in VAL_MEASURES order; only measures with both values."""
    return [m for m in _judged(val, other) if clearly_better(m, val[m], other[m], val.get(SHARE_ITEMS.get(m, "")),
                                                             val.get(LOGGED_ERRORS.get(m, "")))]


def _counted(val, names):
    """Was a share among names judged against its noise (val logged the count of items it is over)?"""
    return any(finite(val.get(SHARE_ITEMS.get(m, ""))) for m in names)


def not_above_baseline(val, baseline):
    """The measures whose value is not clearly better than their baseline (the model learned nothing they can
    see; a share must beat it by two standard errors, see clearly_better), in VAL_MEASURES order; only measures
    with both values."""
    ahead = clearly_ahead(val, baseline)
    return [m for m in _judged(val, baseline) if m not in ahead]


def move(before, after):
    """'before → after' with 3 significant digits, or as many more (up to 6) as it takes to tell them apart."""
    digits = next((d for d in range(3, 7) if fmt(before, d) != fmt(after, d)), 6)
    return f"{fmt(before, digits)} → {fmt(after, digits)}"


def best_pt_choice(facts):
    """How best.pt was chosen, e.g. "the lowest val loss_total" or "the best val i2t_r1 (0.761)"."""
    metric = facts.get("best_metric") or "loss_total"
    if metric == "loss_total":
        return "the lowest val loss_total"
    value = (facts.get("best_val") or {}).get(metric)
    return f"the best val {metric}" + (f" ({fmt(value, 3)})" if finite(value) else "")


def best_checkpoint_sentence(facts):
    """One sentence naming the measures on which the last epoch beats best.pt's (the epoch of the best val
    best_metric), or None: the val loss can rise through one component while retrieval or reconstruction improve."""
    at_best, last = facts.get("best_val") or {}, facts.get("final_val") or {}
    if not at_best or not finite(last.get("epoch")) or round(last["epoch"]) == facts.get("best_epoch"):
        return None
    judged = _judged(last, at_best)
    ahead = clearly_ahead(last, at_best)
    if not ahead:
        return None
    moves = ", ".join(f"{m} {move(at_best[m], last[m])}" for m in ahead)
    if _counted(last, judged):
        moves += "; a share counts only by more than two standard errors"
    return (f"best.pt holds epoch {facts['best_epoch']}, {best_pt_choice(facts)}, but at the last epoch "
            f"{len(ahead)} of {len(judged)} measures are better than there ({moves}): for them, last.pt is the "
            f"better model.")


def baseline_sentence(facts):
    """One sentence on the last epoch's measures against their baseline, or None without a baseline."""
    val, baseline = facts.get("final_val") or {}, facts.get("baseline") or {}
    judged = _judged(val, baseline)
    if not judged:
        return None
    behind = not_above_baseline(val, baseline)
    if not behind:
        return "At the last epoch every measure is better than its baseline."
    noise = " (a share must beat it by two standard errors)" if _counted(val, behind) else ""
    return (f"At the last epoch {len(behind)} of {len(judged)} measures are no better than their baseline{noise}, "
            f"so the model has learned nothing they can see: {', '.join(behind)}.")


def measures_by_epoch(rows, baseline=None, measures=None, first="baseline"):
    """The validation measures of every epoch (by default evaluation.py's, all of VAL_MEASURES but the probes;
    only those the run logged) -> a table, or [].

    Its first row, named `first`, is the baseline (run_facts' "baseline", from baseline/*: what each measure gives
    for a model that learned nothing about the individual images), where the run logged one."""
    measures = measures or [m for m in VAL_MEASURES if m not in PROBE_MEASURES]
    names = [m for m in measures if any(finite(row.get(f"val/{m}")) for row in rows)]
    epochs = [row for row in rows if finite(row.get("val/epoch")) and any(finite(row.get(f"val/{m}")) for m in names)]
    if not epochs:
        return []
    head = [[first, *[fmt(baseline.get(m), 3) for m in names]]] if baseline else []
    return [["epoch", *names]] + head + [[fmt(row["val/epoch"]), *[fmt(row.get(f"val/{m}"), 3) for m in names]]
                                         for row in epochs]


def probes_by_epoch(rows, baseline=None):
    """The linear probes on z (probes.py) of every epoch -> a table, or []: its first row their chance levels (0.5
    for the word AUC, each field's majority share), its second their scores on the untrained model's z (where the run
    logged them), from baseline/*."""
    table = measures_by_epoch(rows, baseline, PROBE_MEASURES, first="chance")
    untrained = {m: (baseline or {}).get(m + UNTRAINED) for m in table[0][1:]} if table else {}
    if any(finite(v) for v in untrained.values()):
        table.insert(2, ["untrained z", *[fmt(untrained[m], 3) for m in table[0][1:]]])
    return table


PROBES_TEXT = ("A linear map (ridge regression) fit on the z of a sample of training items predicts, for each "
               "validation item, which of the training captions' most frequent content words its caption holds "
               "(probe_word_auc: the mean ROC AUC over the words) and, where the data has a ground truth, each "
               "field (accuracy). The chance row is what a z that knows nothing scores: 0.5 for the AUC, and for a "
               "field the share of the validation items in the training sample's most frequent class. The "
               "untrained-z row is what the same probes read from the model's initial weights: random features "
               "already tell much of what fills the picture, so a probe shows what training taught z only where "
               "it beats that row too (WANDB_GUIDE.md, Linear probes on z).")


def probe_words_sentence(facts):
    """'At the last epoch z predicts these words best: ...; worst: ...', or None without the word probe."""
    best, worst = (facts.get("probe_words") or {}).get("best"), (facts.get("probe_words") or {}).get("worst")
    if not best:
        return None
    return f"At the last epoch z predicts these words best: {best}; worst: {worst} (ROC AUC of each)."


def best_pt_fact(facts):
    """'epoch E, the best val <metric> (V)' when best.pt is not chosen by val loss_total (so that its epoch can
    differ from the lowest val loss's), else None: for the headers and the summary paragraph."""
    if facts.get("best_metric", "loss_total") == "loss_total" or facts.get("best_epoch") is None:
        return None
    return f"epoch {facts['best_epoch']}, {best_pt_choice(facts)}"


def report_parts(facts, verdicts, findings, plots, probes=()):
    """What report.md and report.html both show, computed once: the run's facts and headline values, the summary
    paragraph, the final metrics, the key configuration, the last epoch's measures beside their baseline with their
    meaning, the sentences on the baseline and on best.pt, the probes' table and sentence, the verdicts, the
    findings and the plots ({caption: path}). facts: run_facts(...) (a "summary" key overrides the paragraph);
    plots {PLOTS name: path}; probes: probes_by_epoch's table. report_html renders it without importing this
    module."""
    train, val = facts.get("final_train") or {}, facts.get("final_val") or {}
    config, baseline = facts.get("config") or {}, facts.get("baseline") or {}
    measures = [["measure", "val (last epoch)", *(["baseline"] if baseline else []), "what it measures"]]
    measures += [[m, fmt(val[m]), *([fmt(baseline.get(m))] if baseline else []), measure.meaning]
                 for m, measure in VAL_MEASURES.items() if m in val and m not in PROBE_MEASURES]
    return {
        "facts": facts,
        "best_pt": best_pt_fact(facts),
        "training_time": fmt_duration(facts.get("training_time_s")),
        "summary": facts.get("summary") or summary_paragraph(facts),
        "final": [["metric", "train (last window)", "val (last epoch)"]] + [
            [m, fmt(train.get(m)), fmt(val.get(m))] for m in FINAL_METRICS if m in train or m in val],
        "key_config": [f"{k}={fmt_config(config[k])}" for k in KEY_CONFIG if k in config],
        "measures": measures if len(measures) > 1 else [],
        "sentences": [s for s in (baseline_sentence(facts), best_checkpoint_sentence(facts)) if s],
        "probes": list(probes),
        "probes_text": PROBES_TEXT,
        "probe_sentence": probe_words_sentence(facts),
        "verdicts": verdicts,
        "analyses": {a: ANALYSES.get(a, a) for a in verdicts},
        "findings": findings,
        "plots": {PLOTS[name][2] if name in PLOTS else name: path for name, path in plots.items()},
    }


def report_markdown(parts, monitor, plots, measures=()):
    """report.md from report_parts; plots: the PLOTS names drawn; measures: measures_by_epoch's table."""
    facts, chosen = parts["facts"], parts["best_pt"]
    lines = [f"# Run report: {facts['run']}", "",
             f"**Status:** {facts['status']} · **Best val loss:** {fmt(facts['best_val_loss'])}"
             f" (epoch {fmt(facts.get('best_loss_epoch'))})" + (f" · **best.pt:** {chosen}" if chosen else "") +
             f" · **Training time:** {parts['training_time']}"
             f" · **Device:** {facts['device'] or '—'} · **Steps:** {facts['steps']}", "",
             "## Summary", "", parts["summary"], ""]
    if len(parts["final"]) > 1:
        lines += md_table(parts["final"]) + [""]
    if parts["key_config"]:
        lines += ["Configuration: " + ", ".join(parts["key_config"]) + " (all fields in summary.json).", ""]
    probes = parts["probes"]
    if measures or probes:
        lines += ["## What the model learned", ""]
    if measures:
        lines += ["The validation measures of every epoch (their meaning: WANDB_GUIDE.md, Evaluation measures). The "
                  "baseline row is what each measure gives for a model that learned nothing about the individual "
                  "images: chance retrieval, the training split's mean image as every reconstruction, and for each "
                  "image the caption of another.", ""]
        lines += md_table(measures) + [""]
        for sentence in parts["sentences"]:
            lines += [sentence, ""]
    if probes:
        lines += ["### Linear probes on z", "", parts["probes_text"], ""] + md_table(probes) + [""]
        lines += [parts["probe_sentence"], ""] if parts["probe_sentence"] else []
    lines += ["## Analyses", ""]
    verdicts = parts["verdicts"]
    lines += md_table([["analysis", "verdict", "summary"]] +
                      [[parts["analyses"][a], v.status, v.summary] for a, v in verdicts.items()]) + [""]
    for i, (analysis, verdict) in enumerate(verdicts.items(), 1):
        lines += [f"### {i}. {parts['analyses'][analysis]}: {verdict.status}", "", verdict.summary, ""]
        if verdict.rule:
            lines += [f"*How it decides:* {verdict.rule}.", ""]
        if verdict.evidence:
            lines += ["Evidence:", ""] + [f"- {e}" for e in verdict.evidence] + [""]
        if verdict.table:
            lines += md_table(verdict.table) + [""]
        if verdict.actions:
            lines += ["Actions:", ""] + [f"- {a}" for a in verdict.actions] + [""]
    lines += ["## Findings", ""]
    if parts["findings"]:
        lines += md_table([["step", "severity", "analysis", "code", "message", "action", "resolved"]] +
                          [[f.step, f.severity, f.analysis, f.code, f.message, f.action, f.resolved or "—"]
                           for f in parts["findings"]])
    else:
        lines.append("None.")
    repeats = [f"{code} ×{n}" for code, n in monitor.repeats.items() if n]
    if repeats:
        lines += ["", "Repeats held back by the rate limit (alert_interval_minutes): " + ", ".join(repeats) + "."]
    lines += ["", "## Plots", ""]
    lines += [f"![{PLOTS[name][2]}]({PLOTS[name][0]})" for name in plots] or ["No plots (no plottable metrics)."]
    if facts["wandb_run"]:
        lines += ["", f"W&B run: {facts['wandb_run']}"]
    return "\n".join(lines) + "\n"


def summary_json(facts, info, verdicts, monitor):
    return {
        **{k: facts[k] for k in ("run", "status", "device", "training_time_s", "best_val_loss", "best_loss_epoch",
                                 "best_metric", "best_epoch", "steps", "epochs", "wandb_run", "final_train",
                                 "final_val", "baseline", "probe_words", "config")},
        "info": {k: v for k, v in info.items() if k != "config"},
        **judgement(verdicts, monitor),
    }


def judgement(verdicts, monitor):
    """summary.json's "verdicts" and "findings": what the analyses said (also what diagnose.py --reuse rewrites)."""
    return {"verdicts": {a: {"status": v.status, "summary": v.summary, "rule": v.rule} for a, v in verdicts.items()},
            "findings": [asdict(f) for f in monitor.findings]}


def write_report(out_dir, rows, monitor=None, info=None, samples=()) -> dict[str, Path]:
    """Write metrics.csv, the PNG plots, summary.json, report.md and report.html (self-contained: the plots and the
    caption samples, rows of (image, reconstruction, caption, generated caption), inline) into out_dir; return
    {name: path}.

    Called at the end of every run, finished or not: odd data (one row, no validation, NaN, missing
    columns) gives a thinner report, never an exception. Without a monitor, the rows are replayed.
    """
    out = Path(out_dir)
    if not attempt(f"creating {out}", _make_dir, out):
        return {}
    rows = [r for r in rows or [] if isinstance(r, dict)]
    info = dict(info or {})
    facts = attempt("run facts", run_facts, out, rows, info) or run_facts(out, [], {})
    if monitor is None:
        monitor = attempt("health checks", replay, rows, facts["config"]) or HealthMonitor()
    paths = {}
    if attempt("metrics.csv", write_metrics_csv, rows, out / "metrics.csv"):
        paths["metrics"] = out / "metrics.csv"
    weights = loss_weights(facts["config"])
    for name, (file, plot, _) in PLOTS.items():
        if attempt(file, quietly, plot, rows, out / file, weights):
            paths[name] = out / file
    verdicts = attempt("verdicts", monitor.verdicts) or {}
    plots = [name for name in PLOTS if name in paths]
    if attempt("summary.json", _write_text, out / "summary.json",
               lambda: json.dumps(json_safe(summary_json(facts, info, verdicts, monitor)), indent=2)):
        paths["summary"] = out / "summary.json"
    probes = attempt("probe table", probes_by_epoch, rows, facts["baseline"]) or []
    parts = attempt("report parts", report_parts, facts, verdicts, monitor.findings,
                    {name: paths[name] for name in plots}, probes)
    if parts and attempt("report.md", _write_text, out / "report.md",
                         lambda: report_markdown(parts, monitor, plots, measures_by_epoch(rows, facts["baseline"]))):
        paths["report"] = out / "report.md"
    if parts and attempt("report.html", lambda: write_html(out / "report.html", render_report_html(parts, samples))):
        paths["html"] = out / "report.html"
    return paths


def _make_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    return True


def _write_text(path, render):
    """UTF-8, through a temporary file (durable.write_text_atomic): a crash never leaves half a report."""
    write_text_atomic(path, render())
    return True
