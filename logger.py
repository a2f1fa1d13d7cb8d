"""The one place that talks to Weights & Biases.

    logger = create_logger(wcfg, config, model, rank=0, run_id=None)   # RunLogger on rank 0, NullLogger elsewhere
    logger.log(row)                      # one row of `prefix/name` metrics, with global_step
    logger.log_visuals(step, epoch, ...) # images, caption table, latent histogram
    logger.alert(finding, minutes)       # console line + W&B alert + summary entry
    logger.summary({...}); logger.log_model(state, aliases); logger.finish(...)

create_logger decides the mode from wandb's own settings (online when wandb has a login for its server and the
server answers, else offline; a settings file's `mode = offline` wins) and says why; RunLogger starts the
run, defines the step axis, and keeps the local history that report.md and metrics.csv are written from. A W&B
failure mid-run is reported once and training goes on: the local history keeps every row. Other ranks under
torchrun get a NullLogger, which has the same methods and does nothing, so the Trainer never asks which rank
it is on in order to log.
"""

import configparser
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import wandb
from tqdm import tqdm
from wandb.errors import AuthenticationError
from wandb.sdk.lib import wbauth  # wandb's own credential lookup, the one wandb.init and `wandb login` use

from evaluation import VAL_MEASURES, lower_is_better


class LoggerError(Exception):
    """W&B cannot start in the requested mode: reported in one line, exit status 2."""


# ----------------------------------------------------------------------------
# the W&B mode, decided from wandb's own settings

def settings_file_with(settings, key):
    """The wandb settings file that sets `key` (the workspace file, ./wandb/settings, beats the global one,
    ~/.config/wandb/settings or $WANDB_CONFIG_DIR/settings), or None: only to say where a value came from."""
    for path in reversed(settings.read_system_settings().sources):  # wandb lists the global file first
        parser = configparser.ConfigParser()
        parser.read(path)
        if parser.has_option("default", key):
            return path
    return None


DEFAULT_SERVER = "wandb's default server"


def server_source(settings):
    """Where wandb took its server (settings.base_url) from, in words."""
    if os.environ.get("WANDB_BASE_URL"):
        return "WANDB_BASE_URL"
    path = settings_file_with(settings, "base_url")
    return f"base_url in {path}, from `wandb login --host`" if path else DEFAULT_SERVER


def login_source(settings):
    """Where wandb finds credentials for settings.base_url, in words ("API key in /home/me/.netrc"), or None
    when it has none. wandb looks them up itself (WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, the netrc entry
    for that host, an api_key setting); the key is never read out here. Raises AuthenticationError for a
    malformed key, ValueError for a malformed server URL."""
    auth = wbauth.authenticate_session(host=settings.base_url, source="train_wandb.py", prompt=False,
                                       update_session=False)
    if auth is None:
        return None
    if isinstance(auth, wbauth.AuthIdentityTokenFile):
        return f"identity token in {auth.path}"
    if os.environ.get("WANDB_API_KEY"):
        return "API key from WANDB_API_KEY"
    in_netrc = wbauth.wbnetrc.read_netrc_auth_with_source(host=auth.host)
    return f"API key in {in_netrc.source}" if in_netrc else "API key in the wandb settings"


def server_reachable(url, timeout=5.0):
    """Does the W&B server at `url` answer an HTTP request within `timeout` seconds? Any HTTP status counts
    as an answer; a refused connection, one accepted but never answered, or a name that does not resolve
    does not."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def resolve_wandb_mode(mode):
    """-> (mode, why). 'auto' asks wandb's settings (wandb.setup().settings: its settings files, WANDB_*
    variables, netrc): a settings file's `mode = offline` (what `wandb offline` writes) or `disabled` wins;
    else 'online' when wandb has credentials for its server and the server answers, else 'offline'. Never
    prompts; never prints the key."""
    if mode != "auto":
        return mode, f"mode={mode}"
    settings = wandb.setup().settings
    if settings.mode in ("offline", "dryrun", "disabled"):
        path = settings_file_with(settings, "mode")
        where = f"in the settings file {path}; --mode=online overrides it" if path else "in wandb's settings"
        return ("disabled" if settings.mode == "disabled" else "offline"), f"mode = {settings.mode} {where}"
    host, source = settings.base_url, server_source(settings)
    server = f"{host} ({source})"
    try:
        login = login_source(settings)
    except (AuthenticationError, ValueError) as e:
        return "offline", f"the W&B login for {server} is unusable: {e}"
    if login is None:
        command = "wandb login" if source == DEFAULT_SERVER else f"wandb login --host {host}"
        return "offline", f"not logged in to {server}; run `{command}` to log online"
    if not server_reachable(host):
        return "offline", f"the W&B server {server} did not answer; `--mode=online` forces a try"
    return "online", f"logged in to {server}, {login}"


def init_run(wcfg, config, mode, run_id):
    """wandb.init, retried: a killed run's W&B service may hold the id for a few seconds; an online start
    that fails falls back to offline. -> (run, mode)."""
    for attempt in range(20):
        try:
            run = wandb.init(project=wcfg.project, entity=wcfg.entity, name=wcfg.run_name, mode=mode,
                             config={**config, "wandb_mode": mode}, id=run_id,
                             resume="allow" if run_id else None,
                             settings=wandb.Settings(init_timeout=90, finish_timeout=wcfg.finish_timeout))
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
    logger = RunLogger(run, mode, wcfg.model_ttl_days)
    logger.announce()
    if wcfg.watch_gradients and mode != "disabled":
        logger.call("watch", model, log="gradients", log_freq=wcfg.log_frequency)
        print("✓ Model gradients being tracked")
    return logger


class RunLogger:
    """The W&B run and the local history of every logged row.

    Every W&B call goes through `call`: the first one that fails is reported in one warning, later ones are
    skipped, and training goes on (metrics.csv and report.md, written from `history`, keep every row)."""

    def __init__(self, run, mode, model_ttl_days=0.0):
        self.run, self.mode, self.failed = run, mode, False
        self.model_ttl_days = model_ttl_days  # how long W&B keeps each model version (0: no TTL of our own)
        self.last_samples = []  # the latest caption samples, for report.html
        self.history = []  # every logged row, for report.md and metrics.csv (and the checkpoint)
        self.alerted = {}  # Finding.cause -> time.monotonic() of its last W&B alert
        # one table for the whole run, each validation's samples added with their epoch (only the new rows are sent)
        self.captions = wandb.Table(columns=["epoch", "image", "reconstruction", "caption", "generated caption"],
                                    log_mode="INCREMENTAL")
        run.define_metric("global_step")
        run.define_metric("*", step_metric="global_step")  # every chart, gradients/, report/ and charts/ too
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

    def add_config(self, values):
        """Facts known only once the run is built (parameter count, total steps, ...) into the run config; a
        resumed run may change them."""
        self._guarded("config", lambda: self.run.config.update(values, allow_val_change=True))

    def log_visuals(self, step, epoch, grid, samples, latents):
        """grid: a PIL image (validation images over their reconstructions); samples: rows of (image, recon,
        caption, generated caption) with PIL images, added to the run's one caption table under `epoch`;
        latents: a numpy array of z values."""
        self.last_samples = samples
        finite = np.isfinite(latents)
        if not finite.all():
            tqdm.write(f"warning: {finite.size - finite.sum()} of {finite.size} latent values at step {step} are NaN "
                       "or infinite; val/latent_histogram leaves them out", file=sys.stderr)

        def media():  # built inside the guard: a media object that cannot be built is a W&B failure, not a crash
            for image, recon, caption, generated in samples:
                self.captions.add_data(epoch, wandb.Image(image), wandb.Image(recon), caption, generated)
            row = {"global_step": step, "val/captions": self.captions,
                   "val/reconstructions": wandb.Image(grid, caption="top: validation images, bottom: reconstructions")}
            if finite.any():
                row["val/latent_histogram"] = wandb.Histogram(latents[finite])
            return row

        self._guarded("log", lambda: self.run.log(media()))

    def alert(self, finding, interval_minutes):
        """A health finding: one console line headed by its severity, a summary entry, and for a warning or an
        error a W&B alert; an info finding is no alert. Alerts are rate-limited per cause (Finding.cause: the
        Config field the action changes), not per rule: a second finding of the same cause within
        interval_minutes of the last alert, such as latent_not_growing after not_learning at a too-small
        learning rate, is printed and kept in the summary but sends no alert. The title is the cause, so W&B's
        own limit (wait_duration, per title) agrees."""
        tqdm.write(f"{finding.severity} [{finding.analysis}/{finding.code}] step {finding.step}: {finding.message} "
                   f"-> {finding.action}", file=sys.stderr)
        self.summary({f"health/findings/{finding.code}": finding.message})
        if finding.severity == "info":
            return
        now, last = time.monotonic(), self.alerted.get(finding.cause)
        if last is not None and now - last < 60 * interval_minutes:
            return
        self.alerted[finding.cause] = now
        level = wandb.AlertLevel.ERROR if finding.severity == "error" else wandb.AlertLevel.WARN
        self.call("alert", title=f"health: {finding.cause}",
                  text=f"{finding.analysis}/{finding.code}: {finding.message}\nAction: {finding.action}", level=level,
                  wait_duration=60 * interval_minutes)

    def log_model(self, state, aliases):
        """Weights as a new version of the run's model Artifact, `model-<run id>`: one file, model.pt, holding
        `state` (the weights and what sample.py needs to use them; no optimizer, no history), under `aliases`
        (W&B moves an alias to the newest version that has it). With model_ttl_days W&B deletes the version
        that many days after it is logged."""
        if self.mode == "disabled":
            return

        def log():
            metadata = {k: state.get(k) for k in ("epoch", "step", "best_metric", "best_value", "best_epoch")}
            artifact = wandb.Artifact(f"model-{self.run_id}", type="model", metadata=metadata)
            if self.model_ttl_days:
                artifact.ttl = timedelta(days=self.model_ttl_days)
            with artifact.new_file("model.pt", mode="wb") as f:
                torch.save(state, f)
            self.run.log_artifact(artifact, aliases=aliases)

        self._guarded("log_artifact", log)

    def finish(self, paths, status, verdicts, weights, step, exit_code):
        """Attach the report's files (paths: {name: path}, written by train_wandb.finish; the plots also as images,
        beside the custom charts), the status and the verdicts ({analysis: status}) to the run, and close it with
        exit_code. Whatever fails on the way, the run is closed (as failed)."""
        try:
            def report_media():
                images = {f"report/{name}": wandb.Image(str(p)) for name, p in paths.items() if str(p).endswith(".png")}
                return {"global_step": step, **images, **custom_charts(self.history, weights)}

            def report_artifact():
                report = wandb.Artifact(f"report-{self.run_id}", type="report")
                for p in paths.values():
                    report.add_file(str(p))
                return report

            self._guarded("log", lambda: self.run.log(report_media()))
            self._guarded("log_artifact", lambda: self.run.log_artifact(report_artifact()))
            self.summary({"status": status, **{f"health/{name}": verdict for name, verdict in verdicts.items()}})
        except BaseException:
            exit_code = 1
            raise
        finally:
            self.call("finish", exit_code=exit_code)


class NullLogger:
    """The logger of ranks other than 0 under torchrun: every other method of RunLogger does nothing (and returns
    None), so the Trainer never asks which rank it is on in order to log. It keeps the history (the checkpoint holds
    it) and gives a silent progress bar."""

    run_id = location = None
    wants_media = False

    def __init__(self):
        self.history = []

    def log(self, row):
        self.history.append(row)

    def progress(self, iterable, **kwargs):
        return _Silent(iterable)

    def __getattr__(self, name):
        if not hasattr(RunLogger, name):  # a name RunLogger lacks is a bug, not a call to swallow
            raise AttributeError(name)
        return _nothing


def _nothing(*args, **kwargs):
    return None


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
