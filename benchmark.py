"""Training throughput of the real Trainer, and what logging costs, in one process.

    python benchmark.py --preset=quick                       # the CPU preset (2-core CPU: a few minutes)
    python benchmark.py --preset=quick --rounds=5 --max-rounds=10  # more turns; skip disturbed ones
    python benchmark.py --device=cuda                        # the default ~84M config on a GPU
    python benchmark.py --data=bundled --batch_size=128      # bundled engravings; any --field=value of train_wandb.py
    python benchmark.py --roofline                           # predicted H100/H200 step time, top ops (roofline.py)
    python benchmark.py --check-compile --preset=quick       # graph breaks and recompiles of the compiled Trainer

Each round builds four variants with train_wandb's builders (build_model, create_logger, build_trainer), each
on a fresh model (same seed, same data):
  a  bare      forward + backward + clip + AdamW step over the Trainer's model, optimizer and batches:
               no metrics, no scheduler, no logging (the harness-free reference)
  b  disabled  the Trainer's own training loop with W&B disabled
  c  offline   the same with W&B logging offline at the configured log_frequency (WANDB_DIR: a temp dir)
  d  heavy     W&B offline with log_frequency=1 and track_gradients=True
The Trainer's loop is driven through its documented hook, Trainer.steps(): the whole loop `python
train_wandb.py` runs (metrics, log windows, health checks, epoch ends), as a generator that yields after
every optimizer step. The benchmark advances b, c and d with next(); nothing of the loop is copied and
nothing is patched, so a change to the Trainer shows up here as it is. The variants run interleaved: turn
after turn each runs one step (on a GPU: one log window, so timing adds no synchronisation), in an order
that rotates every turn, so the slow spells of a shared machine fall on every variant alike.

Statistics are per log window (log_frequency steps of each variant). Left out are the windows in which
other processes used the CPU (more than --max-other-cores) and those in which a Trainer ended an epoch
(validation, visuals, checkpoint: not training throughput; the synthetic data is sized so that a round
stays inside the first epoch). It reports samples/s (median and quartiles over windows), the logging
overheads b/c - 1 and b/d - 1 and the harness ratio b/a (each paired within a window, then the median;
aim >= 0.95), MFU against the GPU's bf16 dense peak (on a CPU: n/a, and a measured fp32 matmul rate for
reference), the step-time breakdown and the time from process start to the first optimizer step.

The breakdown comes from PhaseClock, which times the Trainer's own calls: data (waiting for the batch), step
(Trainer.train_step: forward, backward and optimizer, with the Trainer's metrics), logging (Trainer.log_window:
metric means, hardware, W&B, health checks) and other (the rest of the loop: total - the three). On a GPU it is
taken in one more pass per variant, run alone, with PhaseClock.instrument on (each phase boundary synchronises).
The Trainers' console is kept quiet (QuietLogger: no progress bars; health findings are collected and
summed up in one line at the end). The last line of stdout is one JSON object with every number.

Flags of this script: --steps, --warmup, --rounds, --max-rounds, --max-other-cores, --turn-steps,
--device, --data, --variants, --threads, --roofline, --check-compile; every other argument is a train_wandb.py
`--field=value` (with --preset=NAME), parsed by train_wandb.parse_args.
CPU timings on a shared machine are noisy: compare the medians, their spread, and the attributed
logging cost (measured directly, so background load does not move it).
"""

import time

_WALL_START = time.time()  # the module's first line; the process itself started earlier (see startup below)

import argparse  # noqa: E402  (imports below are timed as part of start-up)
import atexit
import collections
import contextlib
import dataclasses
import gc
import hashlib
import io
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import psutil
import torch
import wandb
from torch.optim.optimizer import register_optimizer_step_post_hook
from tqdm import tqdm

REPO_DIR = Path(__file__).resolve().parent

import roofline
import train_wandb as tw
from logger import create_logger
from model_architecture_large import MultimodalModel, estimate_flops

_IMPORTED = time.time()

VARIANTS = {
    "a": ("bare", "bare loop: fwd+bwd+clip+AdamW, no metrics/logging"),
    "b": ("disabled", "Trainer, W&B disabled"),
    "c": ("offline", "Trainer, W&B offline, configured log_frequency"),
    "d": ("heavy", "Trainer, W&B offline, log_frequency=1, track_gradients"),
}
SYNTHETIC_MAX_BYTES = 512 * 2 ** 20  # synthetic training images beyond the minimum stop here (a copy per variant)

# ----------------------------------------------------------------------------
# set-up


def prepare_environment():
    """A temp dir for W&B's offline runs and the checkpoints (removed at exit); each variant sets its own mode."""
    tmp = tempfile.mkdtemp(prefix="benchmark-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    os.environ["WANDB_DIR"] = tmp  # offline runs are written here, never into the repository
    os.environ.setdefault("WANDB_SILENT", "true")
    for name in ("WANDB_MODE", "WANDB_RUN_ID", "WANDB_RESUME"):
        os.environ.pop(name, None)
    return tmp


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Other --field=value arguments: see `python train_wandb.py --help`.")
    parser.add_argument("--steps", type=int, default=50,
                        help="measured optimizer steps per variant and round (rounded up to whole log windows)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="unmeasured steps before them (default: log_frequency, so windows stay aligned)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each with fresh models (same seed)")
    parser.add_argument("--max-rounds", type=int, default=None,
                        help="keep adding rounds (up to this many) until --rounds rounds' worth of windows "
                             "could be used")
    parser.add_argument("--max-other-cores", type=float, default=None,
                        help="a window is undisturbed when other processes used at most this many cores in each "
                             "variant's share of it (default: 0.1 on a CPU, no limit on a GPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data", choices=("synthetic", "bundled"), default="synthetic",
                        help="random images and captions of the configured shape, or the configured data_dir")
    parser.add_argument("--variants", default="abcd", help="which of a b c d to run (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--roofline", action="store_true",
                        help="print the roofline model's predicted step time on an H100 SXM and an H200 and the "
                             "top ops (roofline.py; counted on meta tensors, nothing is trained) and exit")
    parser.add_argument("--check-compile", action="store_true",
                        help="train two short epochs with validation, compiled (aot_eager on a CPU), and print "
                             "`graph breaks: N, recompiles: M` (check_compile) and exit")
    parser.add_argument("--turn-steps", type=int, default=None,
                        help="steps a variant runs before the next one's turn (default: 1 on a CPU, "
                             "log_frequency on a GPU); must divide log_frequency")
    args, rest = parser.parse_known_args(argv)
    if min(args.steps, args.rounds, args.warmup or 1, args.turn_steps or 1) < 1:
        parser.error("--steps, --warmup, --rounds and --turn-steps must be at least 1")
    if not args.variants or set(args.variants) - set(VARIANTS):
        parser.error("--variants: letters from abcd")
    try:
        cfg, wcfg, health = tw.parse_args([*rest, f"--device={args.device}"])
        tw.resolve_device(cfg)  # --device=cuda without CUDA: one line, not a traceback
    except tw.ConfigError as e:
        parser.error(str(e))
    return args, cfg, wcfg, health


def synthetic_dataset(cfg, tokenizer, n, seed):
    """n random images and captions (<bos> 3..L-2 random words <eos> <pad>...), laid out like EngravingDataset
    for BatchLoader: images uint8 (n, 3, H, W), tokens (n, L)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, generator=g)
    L = cfg.max_caption_len
    tokens = torch.full((n, L), tokenizer.PAD, dtype=torch.long)
    lengths = torch.randint(min(3, L - 2), L - 1, (n,), generator=g)
    for i, length in enumerate(lengths.tolist()):
        tokens[i, 0] = tokenizer.BOS
        tokens[i, 1:length + 1] = torch.randint(len(tokenizer.SPECIALS), len(tokenizer), (length,), generator=g)
        tokens[i, length + 1] = tokenizer.EOS
    return types.SimpleNamespace(images=images, tokens=tokens)


def synthetic_tokenizer():
    """A tokenizer the size of the bundled collection's (1266 tokens with the specials)."""
    return tw.CaptionTokenizer([f"word{i}" for i in range(1262)])


def print_roofline(cfg, wcfg):
    """The roofline model of one training step of this config (roofline.py) on the GPUs it knows."""
    model_cfg = tw.model_config(cfg, synthetic_tokenizer())
    count = roofline.count_step(model_cfg, cfg.batch_size, bf16=cfg.precision != "fp32",
                                track_gradients=wcfg.track_gradients)
    print(f"Roofline of one training step (predictions, not measurements): {count.parameters / 1e6:.1f}M "
          f"parameters, batch {cfg.batch_size}, {'fp32' if cfg.precision == 'fp32' else 'bf16 autocast'}, eager")
    print(roofline.report(count))
    print(json.dumps({"roofline": {gpu: {"step_ms": 1e3 * p["step_s"], "gpu_ms": 1e3 * p["gpu_s"],
                                         "samples_per_s": cfg.batch_size / p["step_s"]}
                                   for gpu, p in ((g, roofline.predict(count, g)) for g in roofline.GPUS)},
                      "batch_size": cfg.batch_size, **count.totals()}))


@contextlib.contextmanager
def recompile_log():
    """-> a list that gets dynamo's reason for every recompilation while the block runs (its recompiles log,
    kept off the console)."""
    reasons = []
    handler = logging.Handler()
    handler.emit = lambda record: reasons.append(record.getMessage())
    log = torch._logging.getArtifactLogger("torch._dynamo.guards", "recompiles")
    torch._logging.set_logs(recompiles=True)
    propagate, log.propagate = log.propagate, False
    log.addHandler(handler)
    try:
        yield reasons
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
        torch._logging.set_logs()


def check_compile(cfg, wcfg, health, tmp, batch_size=8):
    """The compiled Trainer over two short epochs with validation -> (graph breaks, recompiles).

    The configured model, compiled as the Trainer compiles it (on a CPU with the aot_eager backend: traced
    forward and backward, no code generated), trained on synthetic data of batch_size (at most the configured
    one; a graph does not depend on the batch size, only on its staying fixed): 3 steps an epoch, each epoch
    validated on 1.5 batches, so the last validation batch is smaller. Graph breaks: torch._dynamo.explain of
    the training forward (train mode, autocast as configured), the step's metrics and the evaluation graph;
    recompiles: every recompilation dynamo logs during the run (the first compilation of each graph is not
    one)."""
    device = tw.resolve_device(cfg)
    mode = "aot_eager" if device.type == "cpu" else cfg.compile_mode
    batch = min(batch_size, cfg.batch_size)
    cfg = dataclasses.replace(cfg, compile=True, compile_mode=mode, batch_size=batch, num_epochs=2, max_steps=0,
                              checkpoint_every=0.0, out_dir=str(Path(tmp) / "check-compile"))
    wcfg = dataclasses.replace(wcfg, mode="disabled", log_frequency=2)
    tokenizer = synthetic_tokenizer()
    n_train, n_val = 3 * batch, batch + batch // 2 + 1
    dataset = synthetic_dataset(cfg, tokenizer, n_train + n_val, cfg.seed)
    train_idx, val_idx = torch.arange(n_train), torch.arange(n_train, n_train + n_val)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model = tw.build_model(cfg, tokenizer, device)
        train_loader, val_loader = tw.build_loaders(dataset, train_idx, val_idx, cfg, device)
        data = tw.Data(tokenizer, dataset, train_loader, val_loader, skipped=0)
        logger = QuietLogger(create_logger(wcfg, tw.flat_config(cfg, wcfg, health), model, rank=0))
        trainer = tw.build_trainer(cfg, wcfg, health, model, data, device, logger)

    images_u8, captions = next(iter(train_loader))
    images = images_u8.float() / 255
    with trainer.autocast:
        breaks = torch._dynamo.explain(model)(images, captions).graph_break_count
        with torch.no_grad():
            out = model(images, captions)
            breaks += torch._dynamo.explain(tw.model_metrics)(out, images, tokenizer.PAD,
                                                             trainer.weights).graph_break_count
        model.eval()
        with torch.no_grad():
            breaks += torch._dynamo.explain(tw._evaluate)(model, images[:3], captions[:3]).graph_break_count
        model.train()
    torch._dynamo.reset()
    with recompile_log() as recompiles, contextlib.redirect_stdout(printed):
        trainer.fit()
    logger.call("finish", exit_code=0)
    print(f"Compiled ({mode}) the {trainer.model.num_parameters():,}-parameter model: the first step took "
          f"{trainer.first_step_s:.1f} s with its compilation; {trainer.step} steps, {trainer.epoch} epochs validated")
    for reason in recompiles:
        print("  recompiled: " + "; ".join(line.strip() for line in reason.splitlines()[1:]))
    return breaks, len(recompiles)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model}, {psutil.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"


def measured_matmul_flops(device, size=1024, seconds=0.5):
    """Best fp32 matmul rate over a few short bursts: a reference ceiling for this device, not a datasheet peak."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = 0.0
    for _ in range(5):
        sync(device)
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 5:
            a @ b
            n += 1
        sync(device)
        best = max(best, 2 * size ** 3 * n / (time.perf_counter() - start))
    return best


def parameter_count(model_cfg):
    with torch.device("meta"):
        return MultimodalModel(model_cfg).num_parameters()


def background_cpu_s():
    """CPU seconds used so far by this process's children: W&B's wandb-core and system monitor processes."""
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def other_cpu_s():
    """CPU seconds the whole machine has been busy (steal included), less this process's and its children's:
    what other programs took. On a shared 2-core machine they decide whether a timing means anything."""
    t = psutil.cpu_times()
    busy = sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))
    own = psutil.Process().cpu_times()
    return busy - own.user - own.system - background_cpu_s()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def source_state():
    """Which train_wandb.py was measured: the commit, whether the tree differs, and the file's hash."""
    def git(*cmd):
        try:
            result = subprocess.run(["git", *cmd], cwd=REPO_DIR, capture_output=True, text=True, timeout=10)
            return result.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "train_wandb_modified": bool(git("status", "--porcelain", "train_wandb.py")),
        "train_wandb_sha256": hashlib.sha256((REPO_DIR / "train_wandb.py").read_bytes()).hexdigest()[:16],
    }


# ----------------------------------------------------------------------------
# the variants: built with train_wandb's builders, driven a few steps per turn


class QuietLogger:
    """A variant's logger (create_logger's RunLogger) with a quiet console: no progress bar, no console lines,
    and the health findings kept for the benchmark's summary instead of printed. Everything else (the W&B
    calls, the W&B alert itself, the local history) is the wrapped logger's, so logging costs what it costs
    in training."""

    def __init__(self, logger):
        self.logger, self.findings = logger, []

    def __getattr__(self, name):
        return getattr(self.logger, name)

    def progress(self, iterable, **kwargs):
        return tqdm(iterable, disable=True, **kwargs)

    def write(self, line):
        pass  # the Trainer's console lines (first step, epoch ends): the benchmark reports them itself

    def alert(self, finding, interval_minutes):
        self.findings.append(finding)
        with contextlib.redirect_stderr(io.StringIO()):  # its console line only
            self.logger.alert(finding, interval_minutes)


class Bench:
    """What every variant shares: the data, the tokenizer, the model config and the schedule of turns.
    `build` makes a fresh variant."""

    def __init__(self, args, cfg, wcfg, health, tmp):
        self.args, self.cfg, self.wcfg, self.health, self.tmp = args, cfg, wcfg, health, tmp
        self.device = tw.resolve_device(cfg)
        if self.device.type == "cuda":  # as main() does
            tw.configure_cuda()
        self.window = wcfg.log_frequency  # statistics are taken per log window of the configured length
        # steps per variant per turn: on a CPU one step (the finest pairing; nothing to synchronise); on a
        # GPU a whole window, so that timing a turn adds no synchronisation the Trainer does not do itself
        self.turn = args.turn_steps or (self.window if self.device.type == "cuda" else 1)
        if self.window % self.turn:
            raise SystemExit(f"error: --turn-steps={self.turn} must divide log_frequency={self.window}")
        self.warmup = args.warmup if args.warmup is not None else self.window
        self.windows = math.ceil(args.steps / self.window)  # measured windows per round
        self.steps = self.warmup + self.windows * self.window  # optimizer steps per variant and round
        start = time.time()
        self.dataset, self.tokenizer, self.data_name, self.train_idx, self.val_idx = self.load_data()
        self.data_s = time.time() - start
        steps_per_epoch = len(self.train_idx) // cfg.batch_size
        if steps_per_epoch < 1:
            raise SystemExit(f"error: {self.data_name} holds fewer than batch_size={cfg.batch_size} training items")
        self.num_epochs = max(cfg.num_epochs, math.ceil(self.steps / steps_per_epoch))  # steps() must not end first
        self.model_cfg = tw.model_config(cfg, self.tokenizer)
        self.first_step = {}
        self.handle = register_optimizer_step_post_hook(self._first_step_hook)
        wandb.setup(wandb.Settings(reinit="create_new"))  # the offline and heavy runs are open side by side

    def load_data(self):
        """-> (dataset, tokenizer, its name, training indices, validation indices). bundled: build_data's dataset
        and split; synthetic: enough random items for a round to stay inside the first epoch (up to
        SYNTHETIC_MAX_BYTES of images), a tokenizer the size of the bundled collection's (1266 tokens)."""
        cfg = self.cfg
        if self.args.data == "bundled":
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                data = tw.build_data(cfg, torch.device("cpu"))
            train_idx, val_idx = tw.split_indices(len(data.dataset), cfg.val_fraction, cfg.seed)  # build_data's
            return data.dataset, data.tokenizer, f"{cfg.data_dir} ({len(data.dataset)} items)", train_idx, val_idx
        tokenizer = synthetic_tokenizer()
        batch_bytes = cfg.batch_size * 3 * cfg.image_size ** 2
        n_train = cfg.batch_size * min(self.steps + 1, max(16, SYNTHETIC_MAX_BYTES // batch_bytes))
        n = n_train + cfg.batch_size  # and one validation batch
        dataset = synthetic_dataset(cfg, tokenizer, n, cfg.seed)
        return dataset, tokenizer, f"synthetic ({n} items)", torch.arange(n_train), torch.arange(n_train, n)

    def _first_step_hook(self, optimizer, args, kwargs):
        sync(self.device)
        self.first_step["at"] = time.time()
        self.handle.remove()

    def build(self, variant, label):
        """A fresh variant through train_wandb's builders: the model (same seed, so every variant starts from
        the same weights), fresh loaders over the shared data, its logger and its Trainer. -> Runner"""
        name = VARIANTS[variant][0]
        cfg = dataclasses.replace(self.cfg, out_dir=str(Path(self.tmp) / f"out-{label}-{name}"), max_steps=0,
                                  num_epochs=self.num_epochs, checkpoint_every=0.0)  # no timed mid-epoch saves
        wcfg = dataclasses.replace(self.wcfg, mode="offline" if variant in "cd" else "disabled",
                                   run_name=f"benchmark-{label}-{name}")
        if variant == "d":
            wcfg = dataclasses.replace(wcfg, log_frequency=1, track_gradients=True)
        start = time.time()
        torch.manual_seed(cfg.seed)
        model = tw.build_model(cfg, self.tokenizer, self.device)
        train_loader, val_loader = tw.build_loaders(self.dataset, self.train_idx, self.val_idx, cfg, self.device)
        data = tw.Data(self.tokenizer, self.dataset, train_loader, val_loader, skipped=0)
        built = time.time()
        with contextlib.redirect_stdout(io.StringIO()):  # create_logger's W&B set-up lines
            logger = QuietLogger(create_logger(wcfg, tw.flat_config(cfg, wcfg, self.health), model, rank=0))
        logged = time.time()
        trainer = tw.build_trainer(cfg, wcfg, self.health, model, data, self.device, logger, rank=0, world_size=1)
        timings = {"build_s": built - start + time.time() - logged, "wandb_init_s": logged - built}
        return Runner(variant, trainer, logger, timings)


class PhaseClock:
    """The seconds a training loop spends in its three phases, summed over the run: data (waiting for a batch),
    step and log. With `instrument` each phase boundary synchronises the device first, for an exact per-phase
    breakdown on a GPU (a synchronisation per step would stall training, so the Trainer itself times nothing but
    its data wait)."""

    def __init__(self, device):
        self.device, self.instrument = device, False
        self.seconds = {"data": 0.0, "step": 0.0, "log": 0.0}

    def now(self):
        if self.instrument:
            sync(self.device)
        return time.perf_counter()

    def timed(self, batches):
        """Yields the batches, adding the time spent waiting for each one to data."""
        for batch, waited in tw.waits(batches, self.now):
            self.seconds["data"] += waited
            yield batch

    @contextlib.contextmanager
    def timing(self, phase):
        start = self.now()
        yield
        self.seconds[phase] += self.now() - start

    def attach(self, trainer):
        """Time the Trainer's own calls, as they are: its batches, train_step and log_window."""
        def timed_call(phase, call):
            def timed(*args, **kwargs):
                with self.timing(phase):
                    return call(*args, **kwargs)
            return timed

        trainer.train_step = timed_call("step", trainer.train_step)
        trainer.log_window = timed_call("log", trainer.log_window)
        window_timed = trainer.window.timed
        trainer.window.timed = lambda batches: window_timed(self.timed(batches))
        return self


class Runner:
    """One variant in motion, advanced a few optimizer steps per turn with next(): b, c and d through the
    Trainer's own loop, Trainer.steps(); a through bare_steps() over the same Trainer's model, optimizer and
    batches. Both time their phases with a PhaseClock."""

    def __init__(self, variant, trainer, logger, timings):
        self.variant, self.trainer, self.logger, self.timings = variant, trainer, logger, timings
        self.device = trainer.device
        self.clock = PhaseClock(self.device)
        if variant == "a":
            self.loop = self.bare_steps()
        else:
            self.clock.attach(trainer)
            self.loop = trainer.steps()

    def bare_steps(self):
        """What a training step costs with nothing around it: the Trainer's forward (compiled and autocast as
        configured), its fused/foreach AdamW and batches; no metrics, no logging, no scheduler. Yields after
        every optimizer step, like Trainer.steps()."""
        trainer, clock, clip = self.trainer, self.clock, self.trainer.cfg.grad_clip
        trainer.model.train()
        while True:  # epoch after epoch of the Trainer's loader
            for images_u8, captions in clock.timed(trainer.train_loader):
                with clock.timing("step"):
                    if trainer.cudagraphs:
                        torch.compiler.cudagraph_mark_step_begin()
                    images = images_u8.float().div_(255)
                    with trainer.autocast:
                        loss = tw.total_loss(trainer.forward(images, captions), trainer.weights)
                    trainer.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if clip > 0:
                        torch.nn.utils.clip_grad_norm_(trainer.params, clip, foreach=True)
                    trainer.optimizer.step()
                yield

    def advance(self, steps):
        """Run `steps` optimizer steps -> the turn: seconds in all ("s") and per PhaseClock phase (data, step,
        log), W&B's background CPU seconds, other processes' CPU seconds, steps, log windows logged, and
        epoch_ends (1 when a Trainer ended an epoch in this turn: validation, visuals, checkpoint)."""
        before, epoch, rows = dict(self.clock.seconds), self.trainer.epoch, len(self.logger.history)
        sync(self.device)
        background, others = background_cpu_s(), other_cpu_s()
        start = time.perf_counter()
        for _ in range(steps):
            next(self.loop)
        sync(self.device)
        elapsed = time.perf_counter() - start
        background, others = background_cpu_s() - background, other_cpu_s() - others
        epoch_end = 0 < epoch < self.trainer.epoch  # 0 -> 1 is the loop's start, not an epoch end
        if epoch_end:  # the epoch's checkpoint is written in the background: not into the next turns
            self.trainer.checkpoints.wait()
        return {"s": elapsed, **{k: v - before[k] for k, v in self.clock.seconds.items()},
                "background_cpu_s": max(0.0, background), "other_cpu_s": max(0.0, others), "steps": steps,
                "log_windows": sum("train/loss_total" in row for row in self.logger.history[rows:]),
                "epoch_ends": int(epoch_end)}

    def finish(self):
        """Close the loop and the W&B run (timed, outside the measurement; no training report)."""
        self.loop.close()
        self.trainer.checkpoints.wait()
        start = time.time()
        self.logger.call("finish", exit_code=0)
        self.timings["wandb_finish_s"] = time.time() - start


# ----------------------------------------------------------------------------
# the measurement


def build_round(bench, variants, label):
    """Fresh runners (same seed), each warmed up right after it is built. The Trainer with W&B offline goes
    first, so the first optimizer step of the process is the one `python train_wandb.py` would reach."""
    runners = {}
    for v in sorted(variants, key="cbda".index):
        runners[v] = bench.build(v, label)
        runners[v].advance(bench.warmup)
    return runners


def add_turn(total, turn):
    for k, value in turn.items():
        total[k] = total.get(k, 0) + value


def measure_round(bench, variants, r):
    """One round: fresh runners, then turn after turn each variant runs `bench.turn` steps, in an order that
    rotates every turn, so slow spells of a shared machine fall on all variants alike. -> (per log window
    {variant: its turns added up}, per variant what the round says about it)"""
    runners = build_round(bench, variants, f"r{r + 1}")
    turns = bench.window // bench.turn
    windows = []
    try:
        for w in range(bench.windows):
            window = {v: {} for v in variants}
            for t in range(turns):
                k = (w * turns + t) % len(variants)
                for v in variants[k:] + variants[:k]:
                    add_turn(window[v], runners[v].advance(bench.turn))
            windows.append(window)
    finally:
        for runner in runners.values():
            runner.finish()
    info = {v: {**runners[v].timings, "steps_run": bench.steps,
                "flushes": sum(w[v]["log_windows"] for w in windows),  # the log windows logged while measured
                "findings": [f"{f.analysis}/{f.code}" for f in runners[v].logger.findings]} for v in variants}
    return windows, info


def other_cores(window):
    return max(w["other_cpu_s"] / w["s"] for w in window.values())


def left_out(window, max_other_cores):
    """Why a window is not used, or None: other processes took the CPU, or a Trainer ended an epoch in it."""
    if any(w["epoch_ends"] for w in window.values()):
        return "an epoch ended"
    if other_cores(window) > max_other_cores:
        return "disturbed"
    return None


def measure(bench, variants):
    """Rounds until --rounds rounds' worth of windows can be used (at most --max-rounds). -> (every window,
    per round the variants' info)"""
    args, cfg = bench.args, bench.cfg
    all_windows, round_info = [], []
    wanted, max_rounds = args.rounds * bench.windows, max(args.rounds, args.max_rounds or args.rounds)
    while (sum(left_out(w, args.max_other_cores) is None for w in all_windows) < wanted
           and len(round_info) < max_rounds):
        r = len(round_info)
        windows, info = measure_round(bench, variants, r)
        all_windows += windows
        round_info.append(info)
        for i, window in enumerate(windows):
            reason = left_out(window, args.max_other_cores)
            print(f"  round {r + 1} window {i + 1}: " + "  ".join(
                f"{v} {cfg.batch_size * bench.window / window[v]['s']:8.2f}" for v in variants)
                + f" samples/s; other processes {other_cores(window):.2f} cores"
                + (f"  ({reason}: left out)" if reason else ""), flush=True)
        gc.collect()
    return all_windows, round_info


def ms_per_step(windows, v):
    """Variant v's step time over `windows`, split by the LogWindow's phases, in ms per step: data, step
    (forward, backward, optimizer, with the Trainer's metrics), logging (the log windows) and other (the
    rest of the loop: total - the three)."""
    total = {k: sum(w[v][k] for w in windows) for k in ("s", "data", "step", "log", "steps")}
    n = max(total["steps"], 1)
    return {"data": 1000 * total["data"] / n, "step": 1000 * total["step"] / n, "logging": 1000 * total["log"] / n,
            "other": 1000 * max(0.0, total["s"] - total["data"] - total["step"] - total["log"]) / n}


def breakdown_pass(bench, variants):
    """On a GPU: one more build per variant, run alone with PhaseClock.instrument on (each phase boundary
    synchronises the device), so that each phase holds its own GPU work. -> (breakdown, peak memory in GB)"""
    breakdown, peak_memory = {}, {}
    for v in variants:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(bench.device)
        runner = bench.build(v, "breakdown")
        runner.advance(bench.warmup)
        runner.clock.instrument = True
        turns = [runner.advance(bench.turn) for _ in range(bench.windows * bench.window // bench.turn)]
        breakdown[v] = ms_per_step([{v: t} for t in turns if not t["epoch_ends"]], v)
        logged = [row["perf/peak_memory_allocated_mb"] / 1e3 for row in runner.logger.history
                  if "perf/peak_memory_allocated_mb" in row]  # the Trainer resets the counter every log window
        peak_memory[v] = max([torch.cuda.max_memory_allocated(bench.device) / 1e9, *logged])
        runner.finish()
        del runner
    return breakdown, peak_memory


# ----------------------------------------------------------------------------
# the summary: every number, under the names of the JSON line


def quartiles(values):
    values = sorted(values)
    if len(values) < 2:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[1], q[2]


def summarize(values):
    lo, med, hi = quartiles(values)
    return {"median": med, "q1": lo, "q3": hi, "min": min(values), "max": max(values), "n": len(values),
            "values": values}


def throughput(bench, variants, all_windows, used, breakdown):
    """samples/s per variant, the paired overheads and harness ratio, and the attributed logging cost."""
    per_window = bench.cfg.batch_size * bench.window
    sps = {v: summarize([per_window / w[v]["s"] for w in used]) for v in variants}
    for v in variants:
        sps[v]["overall"] = per_window * len(used) / sum(w[v]["s"] for w in used)

    def paired(x, y):  # per window: x's time over y's, minus 1 = y's samples/s over x's, minus 1
        if x in variants and y in variants:
            return summarize([w[x]["s"] / w[y]["s"] - 1 for w in used])
        return None

    harness = paired("a", "b")
    if harness:
        harness = {k: ([1 + x for x in val] if k == "values" else val if k == "n" else 1 + val)
                   for k, val in harness.items()}
    # W&B's background processes (wandb-core, its system monitor) serve both open runs; their CPU time over the
    # wall time is charged in full to each W&B variant: an upper bound on what they take from training (on a
    # GPU machine, with cores to spare, they take nothing)
    background = sum(w[v]["background_cpu_s"] for w in all_windows for v in variants) / sum(
        w[v]["s"] for w in all_windows for v in variants)

    def attributed(x):
        """The time x spends outside data and step beyond b's (logging and the rest of the loop) over b's
        median step time, plus W&B's background CPU share. Background load barely moves it."""
        if x not in variants or "b" not in variants:
            return None
        outside = {v: breakdown[v]["logging"] + breakdown[v]["other"] for v in (x, "b")}
        return (outside[x] - outside["b"]) / (1000 * bench.cfg.batch_size / sps["b"]["median"]) + background

    return {
        "samples_per_s": {VARIANTS[v][0]: sps[v] for v in variants},
        "logging_overhead_offline": paired("c", "b"),
        "logging_overhead_heavy": paired("d", "b"),
        "logging_overhead_attributed": {"offline": attributed("c"), "heavy": attributed("d")},
        "harness_ratio": harness,
        "wandb_background_cpu_cores": background,
    }


def utilisation(bench, variants, sps, flops):
    """MFU against the device's dense peak (the Trainer's own denominator); on a CPU the fraction of a
    measured fp32 matmul rate instead."""
    cfg, device = bench.cfg, bench.device
    bf16 = tw.uses_bf16(cfg, device)
    peak = tw.peak_flops(device, "bf16" if bf16 else "tf32")
    matmul = measured_matmul_flops(device) if device.type == "cpu" else None
    mfu = {}
    for v in variants:
        rate = sps[VARIANTS[v][0]]["median"]
        achieved = rate * flops["training"]
        mfu[VARIANTS[v][0]] = {"achieved_tflops": achieved / 1e12,
                               "mfu": tw.throughput_stats(rate, flops["training"], peak).get("mfu"),
                               "fraction_of_measured_matmul": achieved / matmul if matmul else None}
    return {"peak_flops": peak, "peak_kind": f"{'bf16' if bf16 else 'tf32'} dense (datasheet)" if peak else None,
            "measured_matmul_flops": matmul, "mfu": mfu}


def startup(bench, variants, round_info):
    created = psutil.Process().create_time()
    first = sorted(variants, key="cbda".index)[0]
    return {
        "process_start_to_first_optimizer_step_s": bench.first_step["at"] - created,
        "interpreter_s": _WALL_START - created,
        "interpreter_and_imports_s": _IMPORTED - created,
        "data_s": bench.data_s,
        "first_variant": VARIANTS[first][0],
        "model_build_s": round_info[0][first]["build_s"],
        "wandb_init_s": round_info[0][first]["wandb_init_s"],
        "note": f"includes the first step itself (compile={tw.compiles(bench.cfg, bench.device)})",
    }


def health_findings(variants, round_info):
    """{"analysis/code": {"count": n, "variants": [...]}} over every round: raised by the synthetic data,
    collected by QuietLogger rather than printed."""
    counts, seen = collections.Counter(), collections.defaultdict(set)
    for info in round_info:
        for v in variants:
            for code in info[v]["findings"]:
                counts[code] += 1
                seen[code].add(VARIANTS[v][0])
    return {code: {"count": counts[code], "variants": sorted(seen[code])} for code in sorted(counts)}


def summary(bench, variants, all_windows, used, round_info, breakdown, peak_memory):
    """Every number of the run, as the JSON line gives it."""
    cfg, wcfg, device = bench.cfg, bench.wcfg, bench.device
    flops = estimate_flops(bench.model_cfg, batch_size=cfg.batch_size)
    speed = throughput(bench, variants, all_windows, used, breakdown)
    result = {
        "device": device_name(device), "device_type": device.type,
        "torch": torch.__version__, "wandb": wandb.__version__, "source": source_state(),
        "data": bench.data_name,
        "warmup": bench.warmup, "window_steps": bench.window, "turn_steps": bench.turn,
        "windows_per_round": bench.windows, "rounds_run": len(round_info),
        "windows_used": len(used), "windows_run": len(all_windows),
        "windows_with_epoch_end": sum(any(w[v]["epoch_ends"] for v in variants) for w in all_windows),
        "epoch_ends": "windows in which a Trainer ended an epoch (validation, visuals, checkpoint) are left out",
        "max_other_cores": bench.args.max_other_cores if math.isfinite(bench.args.max_other_cores) else None,
        "config": {**dataclasses.asdict(cfg), **{f"wandb_{k}": v for k, v in dataclasses.asdict(wcfg).items()}},
        "parameters": parameter_count(bench.model_cfg),
        "flops_per_sample": {"forward": flops["forward"], "training": flops["training"],
                             "convention": "2*m*n*k per matmul, attention QK^T+AV, training = 3 x forward"},
        **speed,
        **utilisation(bench, variants, speed["samples_per_s"], flops),
        "breakdown_ms_per_step": {VARIANTS[v][0]: breakdown[v] for v in variants},
        "breakdown_phases": "data: batch wait; step: forward+backward+optimizer with the Trainer's metrics; "
                            "logging: log windows (metric means, hardware, W&B, health checks); other: the rest "
                            "of the loop (PhaseClock.seconds; total - the three)",
        "startup": startup(bench, variants, round_info),
        "health_findings": health_findings(variants, round_info),
        "rounds": [{VARIANTS[v][0]: info[v] for v in variants} for info in round_info],
        "windows": [{VARIANTS[v][0]: w[v] for v in variants} for w in all_windows],
        "seed_reference_samples_per_s": 14.2,
    }
    if peak_memory:
        result["peak_memory_gb"] = {VARIANTS[v][0]: peak_memory[v] for v in variants}
    return result


# ----------------------------------------------------------------------------
# the report


def print_setup(bench, variants):
    cfg, wcfg, args = bench.cfg, bench.wcfg, bench.args
    print(f"Device: {device_name(bench.device)}")
    print(f"Config: batch_size={cfg.batch_size} image_size={cfg.image_size} width={cfg.width} "
          f"latent_dim={cfg.latent_dim} precision={cfg.precision} compile={tw.compiles(cfg, bench.device)} "
          f"log_frequency={wcfg.log_frequency} track_gradients={wcfg.track_gradients} "
          f"track_hardware={wcfg.track_hardware}; {parameter_count(bench.model_cfg):,} parameters"
          + (f", compile_mode={cfg.compile_mode}" if tw.compiles(cfg, bench.device) else ""))
    if bench.device.type == "cuda":
        dtype = torch.bfloat16 if tw.uses_bf16(cfg, bench.device) else torch.float32
        kernels = tw.attention_kernels(bench.model_cfg, cfg.batch_size, bench.device, dtype)
        print("Attention kernels: " + ", ".join(f"{k}={v}" for k, v in kernels.items()))
    print(f"Data: {bench.data_name}. Per round: fresh models, {bench.warmup} warm-up steps each, then "
          f"{bench.windows * bench.window} measured steps each, interleaved {bench.turn} step(s) per turn; "
          f"{args.rounds} round(s)" + (f", up to {args.max_rounds} to collect {args.rounds} rounds' worth of "
                                       "usable windows" if args.max_rounds else ""))
    flops = estimate_flops(bench.model_cfg, batch_size=cfg.batch_size)
    print(f"Training FLOPs per sample (3 x forward, estimate_flops): {flops['training'] / 1e9:.3f} GFLOP")
    sys.stdout.flush()


def pct(stats):
    if not stats:
        return "not run"
    return (f"{100 * stats['median']:+.2f}% (quartiles {100 * stats['q1']:+.2f}% .. "
            f"{100 * stats['q3']:+.2f}%, {stats['n']} paired windows)")


def print_throughput(bench, variants, s):
    print()
    print(f"Medians over {s['windows_used']} of {s['windows_run']} log windows"
          + (f" ({s['windows_with_epoch_end']} left out: an epoch ended in them)" if s["windows_with_epoch_end"]
             else ""))
    print(f"{'variant':<56} {'samples/s':>10} {'quartiles':>17} {'ms/step':>8} {'MFU':>8}")
    for v in variants:
        sps, mfu = s["samples_per_s"][VARIANTS[v][0]], s["mfu"][VARIANTS[v][0]]["mfu"]
        print(f"{v} {VARIANTS[v][1]:<54} {sps['median']:10.2f} {sps['q1']:8.2f}-{sps['q3']:8.2f} "
              f"{1000 * bench.cfg.batch_size / sps['median']:8.1f} "
              f"{f'{100 * mfu:.2f}%' if mfu is not None else 'n/a':>8}")
    print()
    print(f"Logging overhead, W&B offline vs disabled (b/c - 1; target <= 3%):  {pct(s['logging_overhead_offline'])}")
    print(f"Logging overhead, heavy vs disabled (b/d - 1; target <= 10%):       {pct(s['logging_overhead_heavy'])}")
    for label, value in s["logging_overhead_attributed"].items():
        if value is not None:
            print(f"  attributed {label:<7} (time outside data and step beyond b's + W&B background CPU share): "
                  f"{100 * value:+.2f}% of b's step time")
    if s["harness_ratio"]:
        h = s["harness_ratio"]
        print(f"Harness ratio, Trainer vs bare loop (b/a; aim >= 0.95):            {h['median']:.3f} "
              f"(quartiles {h['q1']:.3f} .. {h['q3']:.3f})")
    if s["peak_flops"]:
        print(f"MFU against {s['peak_flops'] / 1e12:.0f} TFLOP/s {s['peak_kind']} peak "
              f"(precision={bench.cfg.precision})")
    elif s["measured_matmul_flops"]:
        ref = s["mfu"]["disabled" if "b" in variants else VARIANTS[variants[0]][0]]
        print(f"MFU: n/a on a CPU. Measured fp32 1024^3 matmul rate for reference: "
              f"{s['measured_matmul_flops'] / 1e9:.1f} GFLOP/s; the Trainer reaches "
              f"{100 * ref['fraction_of_measured_matmul']:.1f}% of it")
    else:
        print(f"MFU: no peak known for {s['device']}")


def print_breakdown_and_startup(variants, s):
    print()
    print(f"{'step-time breakdown, ms/step':<40} {'data':>8} {'step':>8} {'logging':>8} {'other':>8}")
    for v in variants:
        b = s["breakdown_ms_per_step"][VARIANTS[v][0]]
        print(f"{v} {VARIANTS[v][0]:<38} {b['data']:8.2f} {b['step']:8.2f} {b['logging']:8.2f} {b['other']:8.2f}")
    print("  (PhaseClock on the Trainer's calls. step: forward+backward+optimizer, with the Trainer's metrics and "
          "gradient statistics; logging: the log windows; other: the rest of the loop)")
    print(f"W&B background processes (wandb-core, system monitor): {100 * s['wandb_background_cpu_cores']:.2f}% of "
          "one core while measured")
    print()
    st = s["startup"]
    print(f"Process start -> first optimizer step: {st['process_start_to_first_optimizer_step_s']:.2f} s "
          f"(interpreter+imports {st['interpreter_and_imports_s']:.2f} s, data {st['data_s']:.2f} s, "
          f"model build {st['model_build_s']:.2f} s, W&B init {st['wandb_init_s']:.2f} s, "
          f"then the first step of variant {st['first_variant']})")
    for v in variants:
        if v in "cd":
            rounds = [r[VARIANTS[v][0]] for r in s["rounds"]]
            print(f"W&B {VARIANTS[v][0]}: init {statistics.median(r['wandb_init_s'] for r in rounds):.2f} s, "
                  f"finish {statistics.median(r['wandb_finish_s'] for r in rounds):.2f} s (outside the timing)")
    if s["health_findings"]:
        print("Health findings during the runs (collected, not shown as they came): " + ", ".join(
            f"{code} x{f['count']} ({', '.join(f['variants'])})" for code, f in s["health_findings"].items()))


# ----------------------------------------------------------------------------
# main


def main(argv=None):
    args, cfg, wcfg, health = parse(sys.argv[1:] if argv is None else argv)
    if args.roofline:
        print_roofline(cfg, wcfg)
        return 0
    if args.check_compile:
        breaks, recompiles = check_compile(cfg, wcfg, health, prepare_environment())
        print(f"graph breaks: {breaks}, recompiles: {recompiles}")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = Bench(args, cfg, wcfg, health, prepare_environment())
    if args.max_other_cores is None:
        args.max_other_cores = 0.1 if bench.device.type == "cpu" else float("inf")
    variants = [v for v in "abcd" if v in args.variants]
    print_setup(bench, variants)

    all_windows, round_info = measure(bench, variants)
    epoch_free = [w for w in all_windows if left_out(w, math.inf) is None]
    used = [w for w in epoch_free if left_out(w, args.max_other_cores) is None]
    if not used:
        print("  warning: no window was both undisturbed and free of epoch ends; the numbers below use "
              + ("every window without an epoch end" if epoch_free else "every window") + " and are unreliable",
              flush=True)
        used = epoch_free or all_windows
    if bench.device.type == "cuda":
        breakdown, peak_memory = breakdown_pass(bench, variants)
    else:  # on a CPU the phase timers need no synchronisation: the measured windows give the breakdown
        breakdown, peak_memory = {v: ms_per_step(used, v) for v in variants}, {}

    result = summary(bench, variants, all_windows, used, round_info, breakdown, peak_memory)
    print_throughput(bench, variants, result)
    print_breakdown_and_startup(variants, result)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
