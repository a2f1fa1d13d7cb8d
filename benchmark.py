"""Training throughput of the real Trainer, and what logging costs, in one process.

    python benchmark.py --preset=quick                       # the CPU preset (2-core CPU: a few minutes)
    python benchmark.py --preset=quick --rounds=5 --max-rounds=10  # more turns; skip disturbed ones
    python benchmark.py --device=cuda                        # the default ~82M config on a GPU
    python benchmark.py --data=bundled --batch_size=128      # the bundled engravings; any --field=value of train_wandb.py

Each round builds four variants, each on a fresh model (same seed, same data):
  a  bare      forward + backward + clip + AdamW step over the Trainer's model, optimizer and batches:
               no metrics, no logging (the harness-free reference)
  b  disabled  Trainer.train_epoch (train_step, window accumulation, flush) with W&B disabled
  c  offline   the same with W&B logging offline at the configured log_frequency (WANDB_DIR: a temp dir)
  d  heavy     W&B offline with log_frequency=1 and track_gradients=True
then runs them interleaved: turn after turn, each variant runs one log window of steps (log_frequency),
in an order that rotates every turn, so the slow spells of a shared machine fall on every variant alike.
Turns in which other processes used the CPU (more than --max-other-cores) are left out. It reports
samples/s (median and quartiles over turns), the logging overheads b/c - 1 and b/d - 1 and the harness
ratio b/a (each paired within a turn, then the median; aim >= 0.95), MFU against the GPU's
bf16 dense peak (on a CPU: n/a, and a measured fp32 matmul rate for reference), the step-time breakdown
(data wait / forward+backward / optimizer / logging) and the time from process start to the first
optimizer step. The last line of stdout is one JSON object with every number.

Flags of this script: --steps, --warmup, --rounds, --max-rounds, --max-other-cores, --device, --data,
--variants, --threads; every other argument is a train_wandb.py `--field=value` (with --preset=NAME),
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
from torch.optim.optimizer import register_optimizer_step_post_hook

import wandb

REPO_DIR = Path(__file__).resolve().parent

import train_wandb as tw
from model_architecture_large import ModelConfig, MultimodalModel, estimate_flops

_IMPORTED = time.time()

VARIANTS = {
    "a": ("bare", "bare loop: fwd+bwd+clip+AdamW, no metrics/logging"),
    "b": ("disabled", "Trainer, W&B disabled"),
    "c": ("offline", "Trainer, W&B offline, configured log_frequency"),
    "d": ("heavy", "Trainer, W&B offline, log_frequency=1, track_gradients"),
}

# Peak dense bf16 tensor-core FLOP/s (NVIDIA datasheets, without sparsity). Matched in order against
# torch.cuda.get_device_name: the first key it contains wins.
PEAK_BF16_FLOPS = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200", 989e12),
    ("H100", 989e12),  # SXM: "NVIDIA H100 80GB HBM3"
    ("A100", 312e12),
]


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
    args, rest = parser.parse_known_args(argv)
    if args.steps < 1 or args.rounds < 1 or (args.warmup is not None and args.warmup < 1):
        parser.error("--steps, --warmup and --rounds must be at least 1")
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
    items = tw.load_collection(cfg)
    tokenizer, _ = tw.CaptionTokenizer.build([caption for _, caption in items])
    with contextlib.redirect_stderr(open(os.devnull, "w")):
        dataset = tw.EngravingDataset(items, tokenizer, cfg.image_size, cfg.max_caption_len, cfg.num_workers)
    dataset.name = f"{cfg.data_dir} ({len(dataset)} items)"
    return dataset, tokenizer


def model_config(cfg, tokenizer):
    return ModelConfig(
        vocab_size=len(tokenizer), max_caption_len=cfg.max_caption_len, pad_id=tokenizer.PAD,
        image_size=cfg.image_size, patch_size=cfg.patch_size, width=cfg.width, num_heads=cfg.num_heads,
        image_encoder_depth=cfg.image_encoder_depth, image_decoder_depth=cfg.image_decoder_depth,
        caption_decoder_depth=cfg.caption_decoder_depth, caption_encoder_depth=cfg.caption_encoder_depth,
        latent_dim=cfg.latent_dim, dropout=cfg.dropout,
    )


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


def peak_flops(name):
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None


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
    """Per-phase seconds of one measured run. On CUDA, `sync` is only set for the instrumented pass: the
    synchronisations happen here in the benchmark's wrappers, never inside the Trainer."""

    def __init__(self, device, instrument):
        self.device, self.instrument = device, instrument
        self.data = self.step = self.optimizer = self.flush = 0.0
        self.flushes = 0

    def now(self):
        if self.instrument:
            sync(self.device)
        return time.perf_counter()


class TimedLoader:
    """Wraps a BatchLoader: times each batch fetch (data wait); everything else passes through."""

    def __init__(self, loader, phases):
        self.__dict__.update(_loader=loader, _phases=phases)

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __setattr__(self, name, value):
        setattr(self._loader, name, value)

    def __len__(self):
        return len(self._loader)

    def __iter__(self):
        it = iter(self._loader)
        while True:
            start = self._phases.now()
            try:
                batch = next(it)
            except StopIteration:
                return
            self._phases.data += self._phases.now() - start
            yield batch


@contextlib.contextmanager
def instrumented(trainer, phases):
    """Time the Trainer's phases from outside: batch fetch, train_step, optimizer.step (+ scheduler), flush."""
    train_step, flush, opt_step, loader = trainer.train_step, trainer.flush, trainer.optimizer.step, trainer.train_loader
    mark = {}

    def timed_step(*args, **kwargs):
        start = phases.now()
        out = train_step(*args, **kwargs)
        end = phases.now()
        phases.step += end - start
        phases.optimizer += end - mark.pop("opt", end)  # optimizer.step and scheduler.step
        return out

    def timed_opt_step(*args, **kwargs):
        mark["opt"] = phases.now()
        return opt_step(*args, **kwargs)  # the LR scheduler's own wrapper, which this one keeps

    timed_opt_step._wrapped_by_lr_sched = True

    def timed_flush(*args, **kwargs):
        start = phases.now()
        out = flush(*args, **kwargs)
        phases.flush += phases.now() - start
        phases.flushes += 1
        return out

    trainer.train_step, trainer.flush, trainer.optimizer.step = timed_step, timed_flush, timed_opt_step
    trainer.train_loader = TimedLoader(loader, phases)
    try:
        yield
    finally:
        trainer.train_loader = loader
        trainer.optimizer.step = opt_step
        del trainer.train_step, trainer.flush  # back to the class's methods


class Bench:
    """The data, tokenizer and model config every variant shares; builds fresh Runners."""

    def __init__(self, args, cfg, wcfg, health, tmp):
        self.args, self.cfg, self.wcfg, self.health, self.tmp = args, cfg, wcfg, health, tmp
        self.device = tw.resolve_device(cfg)
        if self.device.type == "cuda":  # as main() does
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.chunk = wcfg.log_frequency  # steps per variant per turn: one log window of b and c, ten of d
        self.warmup = args.warmup if args.warmup is not None else self.chunk
        self.cycles = math.ceil(args.steps / self.chunk)  # turns per variant per round
        start = time.time()
        if args.data == "bundled":
            self.dataset, self.tokenizer = bundled_dataset(cfg)
        else:  # a tokenizer the size of the bundled collection's (1266 tokens)
            self.tokenizer = tw.CaptionTokenizer([f"word{i}" for i in range(1262)])
            n = cfg.batch_size * (max(self.chunk, self.warmup) + 1)
            self.dataset = synthetic_dataset(cfg, self.tokenizer, n, cfg.seed)
        n = len(self.dataset.images)
        self.train_idx, self.val_idx = torch.arange(n), torch.arange(min(n, cfg.batch_size))
        if n // cfg.batch_size < max(self.chunk, self.warmup):
            raise SystemExit(f"error: {self.dataset.name} holds {n // cfg.batch_size} batches of {cfg.batch_size}; "
                             f"need {max(self.chunk, self.warmup)} (log_frequency, warm-up): lower them or --batch_size")
        self.model_cfg = model_config(cfg, self.tokenizer)
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
        return Runner(self, variant, trainer, timings)


class Runner:
    """One variant's Trainer, advanced a given number of optimizer steps at a time."""

    def __init__(self, bench, variant, trainer, timings):
        self.bench, self.variant, self.trainer, self.timings = bench, variant, trainer, timings
        self.phases = Phases(bench.device, instrument=False)  # accumulates over the measured turns
        self.batches = iter(())  # the bare loop's batch stream

    def advance(self, steps, phases=None):
        """Run `steps` optimizer steps -> (seconds, W&B background CPU seconds, other processes' CPU seconds)."""
        phases = phases or Phases(self.bench.device, instrument=False)
        trainer, device = self.trainer, self.bench.device
        sync(device)
        background, others = background_cpu_s(), other_cpu_s()
        start = time.perf_counter()
        if self.variant == "a":
            self.bare_loop(steps, phases)
        else:  # the real loop: train_epoch stops after max_steps, flushing the window it is in
            trainer.epoch, trainer.cfg.max_steps = trainer.epoch + 1, trainer.step + steps
            with instrumented(trainer, phases):
                trainer.train_epoch()
        sync(device)
        elapsed = time.perf_counter() - start
        return elapsed, max(0.0, background_cpu_s() - background), max(0.0, other_cpu_s() - others)

    def bare_loop(self, steps, phases):
        """What a training step costs with nothing around it: the Trainer's forward (compiled and autocast as
        configured), its fused/foreach AdamW and batches; no metrics, no logging, no scheduler."""
        trainer, clip = self.trainer, self.bench.cfg.grad_clip
        trainer.model.train()
        for _ in range(steps):
            start = phases.now()
            batch = next(self.batches, None)
            if batch is None:
                self.batches = iter(trainer.train_loader)
                batch = next(self.batches)
            images_u8, captions = batch
            fetched = phases.now()
            images = images_u8.float().div_(255)
            with trainer.autocast:
                out = trainer.forward(images, captions)
                loss = tw.total_loss(out, trainer.weights)
            trainer.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(trainer.params, clip, foreach=True)
            computed = phases.now()
            trainer.optimizer.step()
            stepped = phases.now()
            phases.data += fetched - start
            phases.step += stepped - fetched
            phases.optimizer += stepped - computed

    def finish(self):
        start = time.time()
        self.trainer.run.finish()
        self.timings["wandb_finish_s"] = time.time() - start

    def breakdown(self, elapsed, steps):
        """ms per step of each phase over the measured turns (`elapsed` seconds, `steps` steps)."""
        p = self.phases
        out = {
            "data": 1000 * p.data / steps,
            "fwd_bwd": 1000 * (p.step - p.optimizer) / steps,  # in the Trainer: with its metrics and clipping
            "optimizer": 1000 * p.optimizer / steps,
            "logging": 1000 * max(0.0, elapsed - p.data - p.step) / steps,  # window, flush, loop, tqdm
        }
        if self.variant != "a":
            out["flush_only"] = 1000 * p.flush / steps
        return out


# ----------------------------------------------------------------------------
# the measurement


def build_round(bench, variants, label):
    """Fresh runners (same seed), each warmed up right after it is built. The Trainer with W&B offline goes
    first, so the first optimizer step of the process is the one `python train_wandb.py` would reach."""
    runners = {}
    for v in sorted(variants, key="cbda".index):
        runners[v] = bench.build(v, f"{VARIANTS[v][0]}-{label}")
        runners[v].advance(bench.warmup)
    return runners


def measure_round(bench, variants, r):
    """One round: fresh runners; then `cycles` turns in which every variant runs one log window of steps,
    in an order that rotates every turn, so slow spells of a shared machine fall on all variants alike."""
    runners = build_round(bench, variants, f"r{r}")
    turns = []
    try:
        for c in range(bench.cycles):
            k = (r * bench.cycles + c) % len(variants)
            order = variants[k:] + variants[:k]
            turn = {}
            for v in order:
                elapsed, background, others = runners[v].advance(bench.chunk, runners[v].phases)
                turn[v] = {"s": elapsed, "background_cpu_s": background, "other_cores": others / elapsed}
            turns.append(turn)
    finally:
        for runner in runners.values():
            runner.finish()
    return runners, turns


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
    steps = bench.cycles * bench.chunk
    print(f"Device: {name}")
    print(f"Config: batch_size={cfg.batch_size} image_size={cfg.image_size} width={cfg.width} "
          f"latent_dim={cfg.latent_dim} precision={cfg.precision} compile={cfg.compile} "
          f"log_frequency={wcfg.log_frequency} track_gradients={wcfg.track_gradients} "
          f"track_hardware={wcfg.track_hardware}; {parameter_count(bench.model_cfg):,} parameters")
    print(f"Data: {bench.dataset.name}. Per round: fresh models, {bench.warmup} warm-up steps each, then "
          f"{bench.cycles} turns of {bench.chunk} steps per variant ({steps} measured steps), interleaved; "
          f"{args.rounds} round(s)" + (f", up to {args.max_rounds} to collect {args.rounds} rounds' worth of "
                                       "undisturbed turns" if args.max_rounds else ""))
    print(f"Training FLOPs per sample (3 x forward, estimate_flops): {flops['training'] / 1e9:.3f} GFLOP")
    sys.stdout.flush()

    # -- measure
    all_turns, round_info = [], []
    breakdown_runners = {}
    max_rounds = max(args.rounds, args.max_rounds or args.rounds)
    wanted = args.rounds * bench.cycles

    def clean(turn):
        return max(t["other_cores"] for t in turn.values()) <= args.max_other_cores

    while sum(clean(t) for t in all_turns) < wanted and len(round_info) < max_rounds:
        r = len(round_info)
        runners, turns = measure_round(bench, variants, r)
        all_turns += turns
        info = {v: {**runners[v].timings, "flushes": runners[v].phases.flushes,
                    "findings": [f"{f.analysis}/{f.code}" for f in runners[v].trainer.monitor.findings]}
                for v in variants}
        round_info.append(info)
        if device.type != "cuda":  # CPU: the phase timers need no sync, so the measured turns give the breakdown
            for v in variants:
                breakdown_runners.setdefault(v, []).append(
                    runners[v].breakdown(sum(t[v]["s"] for t in turns), len(turns) * bench.chunk))
        for c, turn in enumerate(turns):
            print(f"  round {r + 1} turn {c + 1}: " + "  ".join(
                f"{v} {cfg.batch_size * bench.chunk / turn[v]['s']:8.2f}" for v in variants)
                + f" samples/s; other processes up to {max(t['other_cores'] for t in turn.values()):.2f} cores"
                + ("" if clean(turn) else "  (disturbed: not used)"), flush=True)
        del runners
        gc.collect()

    used = [t for t in all_turns if clean(t)]
    if not used:
        print(f"  warning: every turn was disturbed (other processes above {args.max_other_cores} cores); "
              "the numbers below use all of them and are unreliable", flush=True)
        used = all_turns

    breakdown, peak_memory = {}, {}
    if device.type == "cuda":  # one more pass, variant by variant, with synchronising phase timers
        for v in variants:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            runner = bench.build(v, f"{VARIANTS[v][0]}-breakdown")
            runner.advance(bench.warmup)
            phases = Phases(device, instrument=True)
            elapsed = sum(runner.advance(bench.chunk, phases)[0] for _ in range(bench.cycles))
            runner.phases = phases
            breakdown[v] = runner.breakdown(elapsed, steps)
            peak_memory[v] = torch.cuda.max_memory_allocated(device) / 1e9
            runner.finish()
            del runner
    else:
        for v in variants:
            rows = breakdown_runners[v]
            breakdown[v] = {k: statistics.median(row[k] for row in rows) for k in rows[0]}

    # -- summarise
    per_turn = cfg.batch_size * bench.chunk
    sps = {v: summarize([per_turn / t[v]["s"] for t in used]) for v in variants}
    for v in variants:
        sps[v]["overall"] = per_turn * len(used) / sum(t[v]["s"] for t in used)

    def paired(x, y):  # per turn: samples/s of y over x's, minus 1 (x, y ran back to back in the same turn)
        if x in variants and y in variants:
            return summarize([t[x]["s"] / t[y]["s"] - 1 for t in used])
        return None

    overhead_offline, overhead_heavy = paired("c", "b"), paired("d", "b")
    harness = paired("a", "b")
    if harness:
        harness = {k: ([1 + x for x in val] if k == "values" else val if k == "n" else 1 + val)
                   for k, val in harness.items()}
    # W&B's background processes serve both open runs; charge all their CPU to each W&B variant (an upper bound)
    background_ms = 1000 * sum(t[v]["background_cpu_s"] for t in all_turns for v in variants) / (
        len(all_turns) * bench.chunk)

    def attributed(x):
        """Noise-free cross-check: the time logging itself takes per step (loop outside train_step, flush
        included) plus W&B's background CPU, beyond variant b's, over b's median step time."""
        if x not in variants or "b" not in variants:
            return None
        extra = breakdown[x]["logging"] - breakdown["b"]["logging"] + background_ms
        return extra / (1000 * cfg.batch_size / sps["b"]["median"])

    peak = peak_flops(name) if device.type == "cuda" else None
    matmul = measured_matmul_flops(device) if device.type == "cpu" else None
    mfu = {}
    for v in variants:
        achieved = sps[v]["median"] * flops["training"]
        mfu[v] = {"achieved_tflops": achieved / 1e12, "mfu": achieved / peak if peak else None,
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
    print(f"Medians over {len(used)} of {len(all_turns)} turns" + (" (undisturbed)" if used is not all_turns else ""))
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
        return (f"{100 * summary['median']:+.2f}% (quartiles {100 * summary['q1']:+.2f}% .. {100 * summary['q3']:+.2f}%,"
                f" {summary['n']} paired turns)")

    print(f"Logging overhead, W&B offline vs disabled (b/c - 1; target <= 3%):  {pct(overhead_offline)}")
    print(f"Logging overhead, heavy vs disabled (b/d - 1; target <= 10%):       {pct(overhead_heavy)}")
    for x, label in (("c", "offline"), ("d", "heavy")):
        if attributed(x) is not None:
            print(f"  attributed {label:<7} (logging time beyond b's + all W&B background CPU): "
                  f"{100 * attributed(x):+.2f}% of b's step time")
    if harness:
        print(f"Harness ratio, Trainer vs bare loop (b/a; aim >= 0.95):            {harness['median']:.3f} "
              f"(quartiles {harness['q1']:.3f} .. {harness['q3']:.3f})")
    if peak:
        print(f"MFU against {peak / 1e12:.0f} TFLOP/s bf16 dense peak (precision={cfg.precision})")
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
              f"{b['logging']:8.2f} {b.get('flush_only', 0.0):8.2f}")
    print("  (the Trainer's fwd+bwd includes its metrics and gradient statistics; logging = window, flush, loop)")
    print(f"W&B background processes: {background_ms:.2f} ms CPU per measured step")
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
        "warmup": bench.warmup, "turn_steps": bench.chunk, "turns_per_round": bench.cycles,
        "rounds_run": len(round_info), "turns_used": len(used), "turns_run": len(all_turns),
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
        "peak_flops": peak, "peak_kind": "bf16 dense (datasheet)" if peak else None,
        "measured_matmul_flops": matmul,
        "mfu": {VARIANTS[v][0]: mfu[v] for v in variants},
        "breakdown_ms_per_step": {VARIANTS[v][0]: breakdown[v] for v in variants},
        "wandb_background_cpu_ms_per_step": background_ms,
        "startup": startup,
        "rounds": [{VARIANTS[v][0]: info[v] for v in variants} for info in round_info],
        "turns": [{VARIANTS[v][0]: t[v] for v in variants} for t in all_turns],
        "seed_reference_samples_per_s": 14.2,
    }
    if peak_memory:
        summary["peak_memory_gb"] = {VARIANTS[v][0]: peak_memory[v] for v in variants}
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
