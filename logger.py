"""The one place that talks to Weights & Biases.

    logger = create_logger(wcfg, config, model, rank=0, run_id=None)   # RunLogger on rank 0, NullLogger elsewhere
    logger.log(row)                      # one row of `prefix/name` metrics, with global_step
    logger.log_visuals(step, ...)        # images, caption table, latent histogram
    logger.alert(finding, minutes)       # console line + W&B alert + summary entry
    logger.summary({...}); logger.log_checkpoint(path, ...); logger.finish(...)

RunLogger decides the mode (online when logged in and the server answers, else offline), starts the run,
defines the step axis, and keeps the local history that report.md and metrics.csv are written from. A W&B
failure mid-run is reported once and training goes on: the local history keeps every row. Other ranks under
torchrun get a NullLogger, which has the same methods and does nothing, so the Trainer never asks which rank
it is on in order to log.
"""

import netrc
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import wandb
from tqdm import tqdm

from analysis import write_report
from report import VAL_MEASURES, lower_is_better


class LoggerError(Exception):
    """W&B cannot start in the requested mode: reported in one line, exit status 2."""


# ----------------------------------------------------------------------------
# the W&B mode

def wandb_base_url():
    """The W&B server wandb will talk to: WANDB_BASE_URL, else wandb's default."""
    return os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url


def wandb_api_key():
    """The API key wandb would use: WANDB_API_KEY, else the netrc entry for the W&B server (never printed)."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    host = urlparse(wandb_base_url()).hostname
    try:
        auth = netrc.netrc().authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    return auth[2] if auth else None


def server_reachable(timeout=5.0):
    """Does the W&B server answer an HTTP request within `timeout` seconds? Any HTTP status counts as an
    answer; a refused connection, or one accepted but never answered, does not."""
    try:
        with urllib.request.urlopen(wandb_base_url().rstrip("/") + "/healthz", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def resolve_wandb_mode(mode):
    """'auto' -> 'online' when an API key exists and the server answers, else 'offline'. Never prompts."""
    if mode != "auto":
        return mode, f"mode={mode}"
    if not wandb_api_key():
        return "offline", "not logged in (run `wandb login` to log online)"
    if not server_reachable():
        return "offline", "the W&B server did not answer"
    return "online", "logged in"


def init_run(wcfg, config, mode, run_id):
    """wandb.init, retried: a killed run's W&B service may hold the id for a few seconds; an online start
    that fails falls back to offline. -> (run, mode)."""
    for attempt in range(20):
        try:
            run = wandb.init(project=wcfg.project, entity=wcfg.entity, name=wcfg.run_name, mode=mode,
                             config={**config, "wandb_mode": mode}, id=run_id,
                             resume="allow" if run_id else None, settings=wandb.Settings(init_timeout=90))
            return run, mode
        except Exception as e:
            reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            if "in use" in str(e) and attempt < 4:
                time.sleep(3)
            elif "in use" in str(e) and run_id:
                print(f"warning: W&B run {run_id} is still held by the stopped process; logging this part to a "
                      "new W&B run (sync both)", file=sys.stderr)
                run_id = None
            elif mode == "online":  # a server that refuses or times out must not cost the training run
                print(f"warning: W&B could not start online ({reason}); logging offline instead", file=sys.stderr)
                mode = "offline"
            else:
                raise LoggerError(f"W&B could not start a {mode} run ({reason}); try --mode=disabled") from None
    raise LoggerError(f"W&B could not start a {mode} run after 20 attempts; try --mode=disabled")


# ----------------------------------------------------------------------------
# the loggers

def create_logger(wcfg, config, model, rank=0, run_id=None):
    """The run's logger: a RunLogger that starts the W&B run on rank 0, a NullLogger on the other ranks.
    config: the resolved configuration (Config, WandBConfig, HealthConfig) as one flat dict."""
    if rank != 0:
        return NullLogger()
    print("=" * 70)
    print("SETTING UP WEIGHTS & BIASES")
    print("=" * 70)
    mode, reason = resolve_wandb_mode(wcfg.mode)
    print(f"W&B mode: {mode} ({reason})")
    run, mode = init_run(wcfg, config, mode, run_id)
    logger = RunLogger(run, mode)
    logger.announce()
    if wcfg.log_model and mode != "disabled":
        logger.call("watch", model, log="gradients", log_freq=wcfg.log_frequency)
        print("✓ Model gradients being tracked")
    return logger


class RunLogger:
    """The W&B run and the local history of every logged row.

    Every W&B call goes through `call`: the first one that fails is reported in one warning, later ones are
    skipped, and training goes on (metrics.csv and report.md, written from `history`, keep every row)."""

    def __init__(self, run, mode):
        self.run, self.mode, self.failed = run, mode, False
        self.last_samples = []  # the latest caption samples, for report.html
        self.history = []  # every logged row, for report.md and metrics.csv (and the checkpoint)
        run.define_metric("global_step")
        for prefix in ("train", "val", "baseline", "perf"):
            run.define_metric(f"{prefix}/*", step_metric="global_step")
        run.define_metric("val/loss_total", summary="min")
        for name in VAL_MEASURES:  # each measure's best over the run, in its direction, beside its last value
            run.define_metric(f"val/{name}", summary=("min" if lower_is_better(name) else "max") + ",last")

    @property
    def run_id(self):
        return self.run.id

    @property
    def location(self):
        """Where the run can be seen: its URL online, its folder offline."""
        if self.mode == "online":
            return self.run.url
        return str(Path(self.run.dir).parent) if self.mode == "offline" else None

    def announce(self):
        if self.mode == "online":
            print(f"✓ W&B run initialized: {self.run.url}")
        elif self.mode == "offline":
            print(f"✓ W&B run saved offline in {self.location}")
            print(f"  upload it later:   wandb sync {self.location}")
            print(f"  watch it locally:  wandb leet {self.location}")
        else:
            print("✓ W&B disabled: nothing is logged")

    def call(self, name, *args, **kwargs):
        """self.run.<name>(...), unless W&B already failed; a failure is reported once and swallowed."""
        return self._guarded(name, lambda: getattr(self.run, name)(*args, **kwargs))

    def _guarded(self, name, fn):
        if self.failed:
            return None
        try:
            return fn()
        except Exception as e:
            self.failed = True
            tqdm.write(f"warning: W&B {name} failed ({type(e).__name__}: {str(e)[:200]}); training goes on "
                       "without W&B, and out_dir/metrics.csv and report.md keep every metric", file=sys.stderr)
            return None

    wants_media = True  # the Trainer renders images and captions for log_visuals only when a logger takes them

    def progress(self, iterable, **kwargs):
        """The console's progress bar over `iterable` (tqdm)."""
        return tqdm(iterable, dynamic_ncols=True, **kwargs)

    def write(self, line):
        """A console line that does not break the progress bar."""
        tqdm.write(line)

    def log(self, row):
        """One row {"global_step": n, "prefix/name": value, ...}: kept in the history and sent in one call."""
        self.history.append(row)
        self.call("log", row)

    def summary(self, values):
        self._guarded("summary", lambda: self.run.summary.update(values))

    def log_visuals(self, step, grid, samples, latents):
        """grid: a PIL image (validation images over their reconstructions); samples: rows of (image, recon,
        caption, generated caption) with PIL images; latents: a numpy array of z values."""
        self.last_samples = samples
        table = wandb.Table(columns=["image", "reconstruction", "caption", "generated caption"])
        for image, recon, caption, generated in samples:
            table.add_data(wandb.Image(image), wandb.Image(recon), caption, generated)
        self.call("log", {
            "global_step": step,
            "val/reconstructions": wandb.Image(grid, caption="top: validation images, bottom: reconstructions"),
            "val/captions": table,
            "val/latent_histogram": wandb.Histogram(latents),
        })

    def alert(self, finding, interval_minutes):
        """A health finding: one console line headed by its severity, a summary entry, and for a warning or an
        error a W&B alert (rate-limited by W&B per title); an info finding is no alert."""
        tqdm.write(f"{finding.severity} [{finding.analysis}/{finding.code}] step {finding.step}: {finding.message} "
                   f"-> {finding.action}", file=sys.stderr)
        self.summary({f"health/findings/{finding.code}": finding.message})
        if finding.severity == "info":
            return
        level = wandb.AlertLevel.ERROR if finding.severity == "error" else wandb.AlertLevel.WARN
        self.call("alert", title=f"{finding.analysis}: {finding.code}",
                  text=f"{finding.message}\nAction: {finding.action}", level=level,
                  wait_duration=60 * interval_minutes)

    def log_checkpoint(self, path, epoch, step, is_best):
        """A checkpoint as a W&B model Artifact: aliased latest, epoch-N, and best when it is the best so far."""
        artifact = wandb.Artifact(f"checkpoint-{self.run_id}", type="model", metadata={"epoch": epoch, "step": step})
        artifact.add_file(str(path))
        self.call("log_artifact", artifact, aliases=["latest", f"epoch-{epoch}"] + (["best"] if is_best else []))

    def finish(self, out_dir, monitor, info, weights, step, ok):
        """Write report.md, metrics.csv, summary.json and the plots to out_dir, attach them (plots, charts,
        a report Artifact) and the verdicts to the run, and close it. -> the files written."""
        paths = write_report(out_dir, self.history, monitor, {**info, "wandb_run": self.location},
                             samples=self.last_samples)
        images = {f"report/{name}": wandb.Image(str(p)) for name, p in paths.items() if str(p).endswith(".png")}
        self.call("log", {"global_step": step, **images, **custom_charts(self.history, weights)})
        report = wandb.Artifact(f"report-{self.run_id}", type="report")
        for p in paths.values():
            report.add_file(str(p))
        self.call("log_artifact", report)
        self.summary({"status": info["status"],
                      **{f"health/{name}": verdict.status for name, verdict in monitor.verdicts().items()}})
        self.call("finish", exit_code=0 if ok else 1)
        return paths


class NullLogger:
    """The logger of ranks other than 0 under torchrun: the same methods as RunLogger, doing nothing."""

    run_id = location = None
    wants_media = False

    def progress(self, iterable, **kwargs):
        return _Silent(iterable)

    def write(self, line):
        pass

    def __init__(self):
        self.history = []

    def announce(self):
        pass

    def call(self, name, *args, **kwargs):
        return None

    def log(self, row):
        self.history.append(row)

    def summary(self, values):
        pass

    def log_visuals(self, step, grid, samples, latents):
        pass

    def alert(self, finding, interval_minutes):
        pass

    def log_checkpoint(self, path, epoch, step, is_best):
        pass

    def finish(self, out_dir, monitor, info, weights, step, ok):
        return {}


class _Silent:
    """A progress bar that shows nothing (the iterable, with tqdm's methods as no-ops)."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def set_postfix(self, **kwargs):
        pass

    def close(self):
        pass


def custom_charts(history, weights):
    """Two of the seed's custom dashboards as W&B charts: the weighted loss components over the steps, and
    loss_total against GPU memory. (Hyper-parameter vs final loss spans runs: a parallel-coordinates or
    scatter panel over the project, on the summary's best_val_loss.) weights: {"image": w, ...}."""
    rows = [r for r in history if "train/loss_total" in r]
    if not rows:
        return {}
    named = {f"loss_{component}": w for component, w in weights.items()}
    charts = {"charts/loss_components": wandb.plot.line_series(
        xs=[r["global_step"] for r in rows], ys=[[w * r[f"train/{k}"] for r in rows] for k, w in named.items()],
        keys=[f"{w:g} x {k}" for k, w in named.items()], title="Weighted loss components", xname="global_step")}
    if all("train/gpu_memory_percent" in r for r in rows):
        table = wandb.Table(columns=["gpu_memory_percent", "loss_total"],
                            data=[[r["train/gpu_memory_percent"], r["train/loss_total"]] for r in rows])
        charts["charts/loss_vs_gpu_memory"] = wandb.plot.scatter(table, "gpu_memory_percent", "loss_total",
                                                                 title="loss_total vs GPU memory")
    return charts
