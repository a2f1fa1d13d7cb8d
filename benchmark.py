"""Training throughput of the real Trainer, and what logging costs, in one process.

    python benchmark.py --preset=quick                       # the CPU preset (2-core CPU: a few minutes)
    python benchmark.py --preset=quick --rounds=5 --max-rounds=10  # more turns; skip disturbed ones
    python benchmark.py --device=cuda                        # the default ~82M config on a GPU
    python benchmark.py --data=bundled --batch_size=128      # the bundled engravings; any --field=value of train_wandb.py

Each round builds four variants, each on a fresh model (same seed, same data):
  a  bare      forward + backward + clip + AdamW step over the Trainer's model, optimizer and batches:
               no metrics, no logging (the harness-free reference)
  b  disabled  the Trainer's loop (train_step, window accumulation, progress bar, flush at each window's
               end: Trainer.train_epoch's body) with W&B disabled
  c  offline   the same with W&B logging offline at the configured log_frequency (WANDB_DIR: a temp dir)
  d  heavy     W&B offline with log_frequency=1 and track_gradients=True
then runs them interleaved: turn after turn each variant runs one step (on a GPU: one log window, so
timing adds no synchronisation), in an order that rotates every turn, so the slow spells of a shared
machine fall on every variant alike. Statistics are per log window (log_frequency steps of each variant);
windows in which other processes used the CPU (more than --max-other-cores) are left out. It reports
samples/s (median and quartiles over windows), the logging overheads b/c - 1 and b/d - 1 and the harness
ratio b/a (each paired within a window, then the median; aim >= 0.95), MFU against the GPU's
bf16 dense peak (on a CPU: n/a, and a measured fp32 matmul rate for reference), the step-time breakdown
(data wait / forward+backward / optimizer / logging) and the time from process start to the first
optimizer step. The last line of stdout is one JSON object with every number.

Flags of this script: --steps, --warmup, --rounds, --max-rounds, --max-other-cores, --turn-steps,
--device, --data, --variants, --threads; every other argument is a train_wandb.py `--field=value` (with --preset=NAME),
parsed by train_wandb.parse_args.
CPU timings on a shared machine are noisy: compare the medians, their spread, and the attributed
logging cost (measured directly, so background load does not move it).
"""

import time

_WALL_START = time.time()  # the module's first line; the process itself started earlier (see startup below)

import argparse  # noqa: E402  (imports below are timed as part of start-up)
import atexit
import contextlib
import dataclasses
import gc
import hashlib
import json
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
from tqdm import tqdm
from torch.optim.optimizer import register_optimizer_step_post_hook

import wandb

REPO_DIR = Path(__file__).resolve().parent

import train_wandb as tw
from model_architecture_large import MultimodalModel, estimate_flops

_IMPORTED = time.time()

VARIANTS = {
    "a": ("bare", "bare loop: fwd+bwd+clip+AdamW, no metrics/logging"),
    "b": ("disabled", "Trainer, W&B disabled"),
    "c": ("offline", "Trainer, W&B offline, configured log_frequency"),
    "d": ("heavy", "Trainer, W&B offline, log_frequency=1, track_gradients"),
}

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
                        help="keep adding rounds (up to this many) until --rounds rounds' worth of turns ran "
                             "undisturbed")
    parser.add_argument("--max-other-cores", type=float, default=None,
                        help="a round is undisturbed when other processes used at most this many cores in each of "
                             "its runs (default: 0.1 on a CPU, no limit on a GPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--data", choices=("synthetic", "bundled"), default="synthetic",
                        help="random images and captions of the configured shape, or the configured data_dir")
    parser.add_argument("--variants", default="abcd", help="which of a b c d to run (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
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
    except tw.ConfigError as e:
        parser.error(str(e))
    return args, cfg, wcfg, health


def synthetic_dataset(cfg, tokenizer, n, seed):
    """n random images (uint8) and captions (<bos> 3..L-2 random words <eos> <pad>...), like EngravingDataset."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8, generator=g)
    L = cfg.max_caption_len
    tokens = torch.full((n, L), tokenizer.PAD, dtype=torch.long)
    lengths = torch.randint(min(3, L - 2), L - 1, (n,), generator=g)
    for i, length in enumerate(lengths.tolist()):
        tokens[i, 0] = tokenizer.BOS
        tokens[i, 1:length + 1] = torch.randint(len(tokenizer.SPECIALS), len(tokenizer), (length,), generator=g)
        tokens[i, length + 1] = tokenizer.EOS
    return types.SimpleNamespace(images=images, tokens=tokens, name=f"synthetic ({n} items)")


def bundled_dataset(cfg):
    items, _ = tw.load_collection(cfg)
    tokenizer, _ = tw.CaptionTokenizer.build([caption for _, caption in items])
    with contextlib.redirect_stderr(open(os.devnull, "w")):
        dataset = tw.EngravingDataset(items, tokenizer, cfg.image_size, cfg.max_caption_len, cfg.num_workers,
                                        cfg.cache_dir)
    dataset.name = f"{cfg.data_dir} ({len(dataset)} items)"
    return dataset, tokenizer


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
            return subprocess.run(["git", *cmd], cwd=REPO_DIR, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "train_wandb_modified": bool(git("status", "--porcelain", "train_wandb.py")),
        "train_wandb_sha256": hashlib.sha256((REPO_DIR / "train_wandb.py").read_bytes()).hexdigest()[:16],
    }


# ----------------------------------------------------------------------------
# timing


class Phases:
    """Seconds per phase, accumulated. `instrument` (the CUDA breakdown pass only) synchronises the device
    at each phase boundary; the synchronisations happen in the benchmark's timers, never in the Trainer."""

    def __init__(self, device, instrument=False):
        self.device, self.instrument = device, instrument
        self.data = self.step = self.optimizer = self.flush = self.total = 0.0
        self.steps = self.flushes = 0

    def now(self):
        if self.instrument:
            sync(self.device)
        return time.perf_counter()

    def ms_per_step(self):
        """data wait / forward+backward / optimizer / logging, in ms per step."""
        n = max(self.steps, 1)
        return {
            "data": 1000 * self.data / n,
            "fwd_bwd": 1000 * (self.step - self.optimizer) / n,  # in the Trainer: with its metrics and clipping
            "optimizer": 1000 * self.optimizer / n,  # optimizer.step (+ the LR scheduler's step)
            "logging": 1000 * max(0.0, self.total - self.data - self.step) / n,  # window, flush, bar, loop
            "flush_only": 1000 * self.flush / n,
        }


class Bench:
    """The data, tokenizer and model config every variant shares; builds fresh Runners."""

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
        start = time.time()
        if args.data == "bundled":
            self.dataset, self.tokenizer = bundled_dataset(cfg)
        else:  # a tokenizer the size of the bundled collection's (1266 tokens)
            self.tokenizer = tw.CaptionTokenizer([f"word{i}" for i in range(1262)])
            self.dataset = synthetic_dataset(cfg, self.tokenizer, cfg.batch_size * 16, cfg.seed)
        n = len(self.dataset.images)
        self.train_idx, self.val_idx = torch.arange(n), torch.arange(min(n, cfg.batch_size))
        if n < cfg.batch_size:
            raise SystemExit(f"error: {self.dataset.name} holds fewer than batch_size={cfg.batch_size} items")
        self.model_cfg = tw.model_config(cfg, self.tokenizer)
        self.data_s = time.time() - start
        self.first_step = {}
        self.handle = register_optimizer_step_post_hook(self._first_step_hook)
        wandb.setup(wandb.Settings(reinit="create_new"))  # the offline and heavy runs are open side by side

    def _first_step_hook(self, optimizer, args, kwargs):
        sync(self.device)
        self.first_step["at"] = time.time()
        self.handle.remove()

    def build(self, variant, label):
        """A fresh model (same seed, so every variant starts from the same weights), loader, run and Trainer."""
        cfg = dataclasses.replace(self.cfg, out_dir=str(Path(self.tmp) / f"out-{label}"), max_steps=0)
        wcfg = dataclasses.replace(self.wcfg, mode="offline" if variant in "cd" else "disabled")
        if variant == "d":
            wcfg = dataclasses.replace(wcfg, log_frequency=1, track_gradients=True)
        timings = {}
        start = time.time()
        torch.manual_seed(cfg.seed)
        model = MultimodalModel(self.model_cfg).to(self.device)
        train_loader = tw.BatchLoader(self.dataset, self.train_idx, cfg.batch_size, shuffle=True, drop_last=True,
                                      seed=cfg.seed).to(self.device)
        val_loader = tw.BatchLoader(self.dataset, self.val_idx, cfg.batch_size, shuffle=False,
                                    drop_last=False).to(self.device)
        timings["build_s"] = time.time() - start
        start = time.time()
        if wcfg.mode == "disabled":
            run = tw.ResilientRun(wandb.init(mode="disabled"))
        else:
            with contextlib.redirect_stdout(open(os.devnull, "w")):
                run = tw.setup_wandb(cfg, dataclasses.replace(wcfg, run_name=f"benchmark-{label}"), model)
        timings["wandb_init_s"] = time.time() - start
        trainer = tw.Trainer(cfg, wcfg, self.health, model, self.tokenizer, train_loader, val_loader, self.device, run)
        return Runner(self, variant, trainer, timings, label)


class Runner:
    """One variant: its Trainer and the state of its training loop, advanced a few steps at a time.

    a: the bare step. b, c, d: the body of Trainer.train_epoch (batch, train_step, window accumulation,
    progress bar, flush at each window end), calling the Trainer's own train_step and flush."""

    def __init__(self, bench, variant, trainer, timings, label):
        self.bench, self.variant, self.trainer, self.timings = bench, variant, trainer, timings
        self.phases = Phases(bench.device)  # replaced by the caller: warm-up and measured steps apart
        self.batches = iter(())
        self.window, self.epoch_loss = tw.MetricWindow(), tw.MetricWindow()
        self.bar = None if variant == "a" else tqdm(desc=f"{variant} {label}", dynamic_ncols=True, leave=False,
                                                      disable=not trainer.master)
        trainer.model.train()
        trainer.window_start, trainer.window_samples, trainer.data_time = time.perf_counter(), 0, 0.0
        if variant != "a":
            self._instrument()

    def _instrument(self):
        """Time train_step, the optimizer step inside it and flush, from outside the Trainer."""
        trainer = self.trainer
        train_step, flush, opt_step = trainer.train_step, trainer.flush, trainer.optimizer.step
        opt_started = []

        def timed_step(*args, **kwargs):
            p = self.phases
            start = p.now()
            out = train_step(*args, **kwargs)
            end = p.now()
            p.step += end - start
            p.optimizer += end - (opt_started.pop() if opt_started else end)  # optimizer and scheduler step
            return out

        def timed_opt_step(*args, **kwargs):
            opt_started.append(self.phases.now())
            return opt_step(*args, **kwargs)  # the LR scheduler's own wrapper, kept

        def timed_flush(*args, **kwargs):
            p = self.phases
            start = p.now()
            out = flush(*args, **kwargs)
            p.flush += p.now() - start
            p.flushes += 1
            return out

        timed_opt_step._wrapped_by_lr_sched = True
        trainer.train_step, trainer.flush, trainer.optimizer.step = timed_step, timed_flush, timed_opt_step

    def next_batch(self):
        batch = next(self.batches, None)
        if batch is None:  # a new epoch of the loader
            self.batches = iter(self.trainer.train_loader)
            batch = next(self.batches)
        return batch

    def advance(self, steps):
        """Run `steps` optimizer steps -> (seconds, W&B background CPU seconds, other processes' CPU seconds)."""
        p, device = self.phases, self.bench.device
        sync(device)
        background, others = background_cpu_s(), other_cpu_s()
        start = time.perf_counter()
        for _ in range(steps):
            self.bare_step() if self.variant == "a" else self.trainer_step()
        sync(device)
        elapsed = time.perf_counter() - start
        p.total += elapsed
        p.steps += steps
        return elapsed, max(0.0, background_cpu_s() - background), max(0.0, other_cpu_s() - others)

    def trainer_step(self):
        """One iteration of Trainer.train_epoch's loop (without the epoch end, stop and checkpoint checks)."""
        trainer, p = self.trainer, self.phases
        start = p.now()
        images, captions = self.next_batch()
        fetched = p.now()
        p.data += fetched - start
        trainer.data_time += fetched - start
        metrics = trainer.train_step(images, captions)
        self.window.add(metrics)
        self.epoch_loss.add({"loss_total": metrics["loss_total"]})
        trainer.window_samples += images.shape[0] * trainer.world_size
        self.bar.update(1)
        if trainer.step % trainer.wcfg.log_frequency == 0:
            means = trainer.flush(self.window, epoch=trainer.step / len(trainer.train_loader))
            self.bar.set_postfix(loss=f"{means['loss_total']:.4f}")

    def bare_step(self):
        """What a training step costs with nothing around it: the Trainer's forward (compiled and autocast as
        configured), its fused/foreach AdamW and batches; no metrics, no logging, no scheduler."""
        trainer, p, clip = self.trainer, self.phases, self.bench.cfg.grad_clip
        start = p.now()
        images_u8, captions = self.next_batch()
        fetched = p.now()
        images = images_u8.float().div_(255)
        with trainer.autocast:
            out = trainer.forward(images, captions)
            loss = tw.total_loss(out, trainer.weights)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(trainer.params, clip, foreach=True)
        computed = p.now()
        trainer.optimizer.step()
        stepped = p.now()
        p.data += fetched - start
        p.step += stepped - fetched
        p.optimizer += stepped - computed

    def finish(self):
        if self.bar is not None:
            self.bar.close()
        start = time.time()
        self.trainer.run.finish()
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


def measure_round(bench, variants, r, instrument=False):
    """One round: fresh runners, then turn after turn each variant runs `bench.turn` steps, in an order that
    rotates every turn, so slow spells of a shared machine fall on all variants alike. Returns the runners
    and, per log window, each variant's seconds, W&B background CPU and other processes' CPU."""
    runners = build_round(bench, variants, f"r{r + 1}")
    for runner in runners.values():
        runner.phases = Phases(bench.device, instrument)
    windows = []
    try:
        for w in range(bench.windows):
            window = {v: {"s": 0.0, "background_cpu_s": 0.0, "other_cpu_s": 0.0} for v in variants}
            for t in range(bench.window // bench.turn):
                k = (w * bench.window // bench.turn + t) % len(variants)
                for v in variants[k:] + variants[:k]:
                    for key, value in zip(("s", "background_cpu_s", "other_cpu_s"), runners[v].advance(bench.turn)):
                        window[v][key] += value
            windows.append(window)
    finally:
        for runner in runners.values():
            runner.finish()
    return runners, windows


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


def main(argv=None):
    args, cfg, wcfg, health = parse(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = Bench(args, cfg, wcfg, health, prepare_environment())
    device, name = bench.device, device_name(bench.device)
    if args.max_other_cores is None:
        args.max_other_cores = 0.1 if device.type == "cpu" else float("inf")
    variants = [v for v in "abcd" if v in args.variants]
    flops = estimate_flops(bench.model_cfg, batch_size=cfg.batch_size)
    steps = bench.windows * bench.window
    print(f"Device: {name}")
    print(f"Config: batch_size={cfg.batch_size} image_size={cfg.image_size} width={cfg.width} "
          f"latent_dim={cfg.latent_dim} precision={cfg.precision} compile={cfg.compile} "
          f"log_frequency={wcfg.log_frequency} track_gradients={wcfg.track_gradients} "
          f"track_hardware={wcfg.track_hardware}; {parameter_count(bench.model_cfg):,} parameters")
    print(f"Data: {bench.dataset.name}. Per round: fresh models, {bench.warmup} warm-up steps each, then "
          f"{steps} measured steps each, interleaved {bench.turn} step(s) per turn; {args.rounds} round(s)"
          + (f", up to {args.max_rounds} to collect {args.rounds} rounds' worth of undisturbed windows"
             if args.max_rounds else ""))
    print(f"Training FLOPs per sample (3 x forward, estimate_flops): {flops['training'] / 1e9:.3f} GFLOP")
    sys.stdout.flush()

    # -- measure
    all_windows, round_info, phases = [], [], {v: [] for v in variants}
    max_rounds = max(args.rounds, args.max_rounds or args.rounds)
    wanted = args.rounds * bench.windows

    def other_cores(window):
        return max(w["other_cpu_s"] / w["s"] for w in window.values())

    def clean(window):
        return other_cores(window) <= args.max_other_cores

    while sum(map(clean, all_windows)) < wanted and len(round_info) < max_rounds:
        r = len(round_info)
        runners, windows = measure_round(bench, variants, r)
        all_windows += windows
        round_info.append({v: {**runners[v].timings, "flushes": runners[v].phases.flushes,
                               "findings": [f"{f.analysis}/{f.code}" for f in runners[v].trainer.monitor.findings]}
                           for v in variants})
        for v in variants:
            phases[v].append(runners[v].phases.ms_per_step())
        for i, window in enumerate(windows):
            print(f"  round {r + 1} window {i + 1}: " + "  ".join(
                f"{v} {cfg.batch_size * bench.window / window[v]['s']:8.2f}" for v in variants)
                + f" samples/s; other processes {other_cores(window):.2f} cores"
                + ("" if clean(window) else "  (disturbed: left out)"), flush=True)
        del runners
        gc.collect()

    used = [w for w in all_windows if clean(w)]
    if not used:
        print(f"  warning: every window was disturbed (other processes above {args.max_other_cores} cores); "
              "the numbers below use all of them and are unreliable", flush=True)
        used = all_windows

    peak_memory = {}
    if device.type == "cuda":  # one more round, variant by variant, with synchronising phase timers
        breakdown = {}
        for v in variants:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            runner = bench.build(v, "breakdown")
            runner.advance(bench.warmup)
            runner.phases = Phases(device, instrument=True)
            runner.advance(steps)
            breakdown[v] = runner.phases.ms_per_step()
            peak_memory[v] = torch.cuda.max_memory_allocated(device) / 1e9
            runner.finish()
            del runner
    else:  # on a CPU the phase timers need no synchronisation: the measured rounds give the breakdown
        breakdown = {v: {k: statistics.median(row[k] for row in phases[v]) for k in phases[v][0]} for v in variants}

    # -- summarise
    per_window = cfg.batch_size * bench.window
    sps = {v: summarize([per_window / w[v]["s"] for w in used]) for v in variants}
    for v in variants:
        sps[v]["overall"] = per_window * len(used) / sum(w[v]["s"] for w in used)

    def paired(x, y):  # per window: x's time over y's, minus 1 = y's samples/s over x's, minus 1
        if x in variants and y in variants:
            return summarize([w[x]["s"] / w[y]["s"] - 1 for w in used])
        return None

    overhead_offline, overhead_heavy, harness = paired("c", "b"), paired("d", "b"), paired("a", "b")
    if harness:
        harness = {k: ([1 + x for x in val] if k == "values" else val if k == "n" else 1 + val)
                   for k, val in harness.items()}
    # W&B's background processes (wandb-core, its system monitor) serve both open runs and capture every
    # variant's progress bar; their CPU time over the wall time is charged in full to each W&B variant: an
    # upper bound on what they take from training (on a GPU machine, with cores to spare, they take nothing)
    background = sum(w[v]["background_cpu_s"] for w in all_windows for v in variants) / sum(
        w[v]["s"] for w in all_windows for v in variants)
    step_ms_b = 1000 * cfg.batch_size / sps["b"]["median"] if "b" in variants else None

    def attributed(x):
        """The time logging itself takes per step beyond variant b's (the loop outside train_step, flush
        included) over b's median step time, plus W&B's background CPU share. Background load on the
        machine barely moves it, unlike the wall-clock ratios."""
        if x not in variants or "b" not in variants:
            return None
        return (breakdown[x]["logging"] - breakdown["b"]["logging"]) / step_ms_b + background

    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    peak = tw.peak_flops(device, "bf16" if bf16 else "tf32")  # the Trainer's own MFU denominator
    matmul = measured_matmul_flops(device) if device.type == "cpu" else None
    mfu = {}
    for v in variants:
        achieved = sps[v]["median"] * flops["training"]
        mfu[v] = {"achieved_tflops": achieved / 1e12,
                  "mfu": tw.throughput_stats(sps[v]["median"], flops["training"], peak).get("mfu"),
                  "fraction_of_measured_matmul": achieved / matmul if matmul else None}
    created = psutil.Process().create_time()
    first = sorted(variants, key="cbda".index)[0]
    startup = {
        "process_start_to_first_optimizer_step_s": bench.first_step["at"] - created,
        "interpreter_s": _WALL_START - created,
        "interpreter_and_imports_s": _IMPORTED - created,
        "data_s": bench.data_s,
        "first_variant": VARIANTS[first][0],
        "model_build_s": round_info[0][first]["build_s"],
        "wandb_init_s": round_info[0][first]["wandb_init_s"],
        "note": f"includes the first step itself (compile={cfg.compile})",
    }

    # -- report
    print()
    print(f"Medians over {len(used)} of {len(all_windows)} log windows"
          + (" (undisturbed)" if used is not all_windows else ""))
    print(f"{'variant':<56} {'samples/s':>10} {'quartiles':>17} {'ms/step':>8} {'MFU':>8}")
    for v in variants:
        s, m = sps[v], mfu[v]
        mfu_text = f"{100 * m['mfu']:.2f}%" if m["mfu"] is not None else "n/a"
        print(f"{v} {VARIANTS[v][1]:<54} {s['median']:10.2f} {s['q1']:8.2f}-{s['q3']:8.2f} "
              f"{1000 * cfg.batch_size / s['median']:8.1f} {mfu_text:>8}")
    print()

    def pct(summary):
        if not summary:
            return "not run"
        return (f"{100 * summary['median']:+.2f}% (quartiles {100 * summary['q1']:+.2f}% .. "
                f"{100 * summary['q3']:+.2f}%, {summary['n']} paired windows)")

    print(f"Logging overhead, W&B offline vs disabled (b/c - 1; target <= 3%):  {pct(overhead_offline)}")
    print(f"Logging overhead, heavy vs disabled (b/d - 1; target <= 10%):       {pct(overhead_heavy)}")
    for x, label in (("c", "offline"), ("d", "heavy")):
        if attributed(x) is not None:
            print(f"  attributed {label:<7} (logging time beyond b's + W&B background CPU share): "
                  f"{100 * attributed(x):+.2f}% of b's step time")
    if harness:
        print(f"Harness ratio, Trainer vs bare loop (b/a; aim >= 0.95):            {harness['median']:.3f} "
              f"(quartiles {harness['q1']:.3f} .. {harness['q3']:.3f})")
    if peak:
        print(f"MFU against {peak / 1e12:.0f} TFLOP/s {'bf16' if bf16 else 'tf32'} dense peak (precision={cfg.precision})")
    elif matmul:
        ref = mfu["b" if "b" in variants else variants[0]]
        print(f"MFU: n/a on a CPU. Measured fp32 1024^3 matmul rate for reference: {matmul / 1e9:.1f} GFLOP/s; "
              f"the Trainer reaches {100 * ref['fraction_of_measured_matmul']:.1f}% of it")
    else:
        print(f"MFU: no peak known for {name}")
    print()
    print(f"{'step-time breakdown, ms/step (median)':<40} {'data':>8} {'fwd+bwd':>8} {'optim':>8} {'logging':>8}"
          f" {'(flush)':>8}")
    for v in variants:
        b = breakdown[v]
        print(f"{v} {VARIANTS[v][0]:<38} {b['data']:8.2f} {b['fwd_bwd']:8.2f} {b['optimizer']:8.2f} "
              f"{b['logging']:8.2f} {b['flush_only']:8.2f}")
    print("  (the Trainer's fwd+bwd includes its metrics and gradient statistics; logging = window, flush, bar)")
    print(f"W&B background processes (wandb-core, system monitor): {100 * background:.2f}% of one core while measured")
    print()
    print(f"Process start -> first optimizer step: {startup['process_start_to_first_optimizer_step_s']:.2f} s "
          f"(interpreter+imports {startup['interpreter_and_imports_s']:.2f} s, data {bench.data_s:.2f} s, "
          f"model build {startup['model_build_s']:.2f} s, W&B init {startup['wandb_init_s']:.2f} s, "
          f"then the first step of variant {first} {VARIANTS[first][0]})")
    for v in variants:
        if v in "cd":
            print(f"W&B {VARIANTS[v][0]}: init {statistics.median(i[v]['wandb_init_s'] for i in round_info):.2f} s, "
                  f"finish {statistics.median(i[v]['wandb_finish_s'] for i in round_info):.2f} s (outside the timing)")
    findings = sorted({f for info in round_info for v in variants for f in info[v]["findings"]})
    if findings:
        print(f"Health findings during the runs: {', '.join(findings)}")

    summary = {
        "device": name,
        "device_type": device.type,
        "torch": torch.__version__,
        "wandb": wandb.__version__,
        "source": source_state(),
        "data": bench.dataset.name,
        "warmup": bench.warmup, "window_steps": bench.window, "turn_steps": bench.turn,
        "windows_per_round": bench.windows, "rounds_run": len(round_info),
        "windows_used": len(used), "windows_run": len(all_windows),
        "max_other_cores": args.max_other_cores if math.isfinite(args.max_other_cores) else None,
        "config": {**dataclasses.asdict(cfg), **{f"wandb_{k}": v for k, v in dataclasses.asdict(wcfg).items()}},
        "parameters": parameter_count(bench.model_cfg),
        "flops_per_sample": {"forward": flops["forward"], "training": flops["training"],
                             "convention": "2*m*n*k per matmul, attention QK^T+AV, training = 3 x forward"},
        "samples_per_s": {VARIANTS[v][0]: sps[v] for v in variants},
        "logging_overhead_offline": overhead_offline,
        "logging_overhead_heavy": overhead_heavy,
        "logging_overhead_attributed": {"offline": attributed("c"), "heavy": attributed("d")},
        "harness_ratio": harness,
        "peak_flops": peak, "peak_kind": f"{'bf16' if bf16 else 'tf32'} dense (datasheet)" if peak else None,
        "measured_matmul_flops": matmul,
        "mfu": {VARIANTS[v][0]: mfu[v] for v in variants},
        "breakdown_ms_per_step": {VARIANTS[v][0]: breakdown[v] for v in variants},
        "wandb_background_cpu_cores": background,
        "startup": startup,
        "rounds": [{VARIANTS[v][0]: info[v] for v in variants} for info in round_info],
        "windows": [{VARIANTS[v][0]: w[v] for v in variants} for w in all_windows],
        "seed_reference_samples_per_s": 14.2,
    }
    if peak_memory:
        summary["peak_memory_gb"] = {VARIANTS[v][0]: peak_memory[v] for v in variants}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
