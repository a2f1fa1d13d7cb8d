"""Train the multimodal engraving model and log every run to Weights & Biases.

    python train_wandb.py                          # the full ~84M model, sized for one GPU
    python train_wandb.py --preset=quick           # ~1M model at 64 px: a few minutes on a laptop CPU
    python train_wandb.py --batch_size=32 --learning_rate=5e-4   # any Config / WandBConfig field
    python train_wandb.py --help                   # every field with its default

Exit status: 0 done; 1 failed (one line, the traceback in out_dir/error.log); 2 a bad setting, data folder, out_dir
or checkpoint; 3 stopped on a non-finite loss or out of memory; 130 / 143 stopped by Ctrl-C / SIGTERM.

Sections, top to bottom: configuration, engraving dataset, metric definitions, the log window, the Trainer, the
builders (data, model, logger, trainer) and main(), which reads as STEP 1..6 and is the one place that decides
which process is the master (master_process) and prints the STEP banners. Beside this file: tokenizer.py (the
caption tokenizer), data/imagefolder.py (reading an image folder), devices.py (--device), logger.py (every W&B
call), checkpoints.py (save, load, resume checks), durable.py (the temporary file, fsync and rename behind every
file that must survive a crash), health/ (the five analyses), report.py and report_html.py (the report, which
finish() writes), compare.py (compare and follow finished runs), evaluation.py (what validation measures, and the
registry of those measures) and probes.py, and model_architecture_large.py (the model).
"""

import ast
import contextlib
import dataclasses
import difflib
import functools
import hashlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import get_type_hints

import psutil
import torch
import torch.distributed as dist
from PIL import Image
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm import tqdm

import devices
from checkpoints import (
    SAME_OPTIMISATION,
    BestCheckpoint,
    CheckpointError,
    Checkpoints,
    check_model_config,
    check_resume,
    load_checkpoint,
)
from data.imagefolder import (
    DataError,
    DataWarning,
    decode_images,
    find_items,
    read_truths,
)
from devices import DeviceError, check_device_name
from durable import format_warning, one_line
from evaluation import (
    BEST_METRICS,
    LOSSES,
    SSIM_WINDOW,
    baseline_split,
    batch_standard_error,
    evaluate_split,
    mean_image,
    missing_packages,
)
from health import HealthConfig, HealthMonitor, replay
from logger import LoggerError, create_logger
from model_architecture_large import ModelConfig, MultimodalModel, estimate_flops
from probes import FIELDS, PROBE_SAMPLE, LatentProbe, LatentReference, image_latents, untrained_levels
from report import write_report
from tokenizer import CaptionTokenizer

REPO_DIR = Path(__file__).resolve().parent
BUNDLED_DATA_DIR = "data/bundled"  # the default data_dir: generated on first use, relative to this file


# ----------------------------------------------------------------------------
# configuration

@dataclass
class Config:
    # data
    data_dir: str = BUNDLED_DATA_DIR  # images + captions: metadata.jsonl/.csv (file_name, text) or a .txt beside each image
    max_items: int = 0  # use only the first N items of the collection (0 = all)
    image_size: int = ModelConfig.image_size  # pixels; images are fitted into a white square of this side
    max_caption_len: int = ModelConfig.max_caption_len  # tokens per caption, <bos> and <eos> included; longer ones are cut
    val_fraction: float = 0.1  # share of the items held out for validation
    num_workers: int = 4  # threads that decode the images once, at start-up
    cache_dir: str = ".cache"  # decoded images are kept here and reused by later runs ('' = no cache)
    seed: int = 42  # seeds the split, the initial weights and the batch order
    # model (model_architecture_large.py; the defaults are ModelConfig's)
    latent_dim: int = ModelConfig.latent_dim  # size of the shared latent z
    latent_patch_dim: int = ModelConfig.latent_patch_dim  # z from every patch token, each squeezed to this many numbers (0 = their mean)
    conv_stem: bool = ModelConfig.conv_stem  # embed patches with a stack of 3x3 convolutions, not one linear map
    width: int = ModelConfig.width  # transformer width of every encoder and decoder
    num_heads: int = ModelConfig.num_heads  # attention heads
    patch_size: int = ModelConfig.patch_size  # pixels per image patch side; image_size must be a multiple
    image_encoder_depth: int = ModelConfig.image_encoder_depth  # transformer blocks of the image encoder
    image_decoder_depth: int = ModelConfig.image_decoder_depth  # transformer blocks of the image decoder
    caption_decoder_depth: int = ModelConfig.caption_decoder_depth  # transformer blocks of the caption decoder
    caption_encoder_depth: int = ModelConfig.caption_encoder_depth  # transformer blocks of the caption encoder
    dropout: float = ModelConfig.dropout  # dropout in attention and MLPs
    caption_lead_weight: float = ModelConfig.caption_lead_weight  # each caption's first sentence (to its first '.') counts this many times in loss_caption
    contrastive_negatives: str = ModelConfig.contrastive_negatives  # under torchrun: 'global' (every process's batch) or 'local'
    # optimisation
    batch_size: int = 128  # samples per optimizer step (the seed used 16, which leaves a large GPU idle: --preset=seed)
    num_epochs: int = 100  # passes over the training split
    max_steps: int = 0  # stop after this many optimizer steps (0 = no limit); the run still validates and finishes
    learning_rate: float = 1e-3  # peak AdamW learning rate
    weight_decay: float = 0.05  # AdamW decoupled weight decay, on weight matrices only
    warmup_fraction: float = 0.05  # share of all steps spent warming the learning rate up linearly
    warmup_min_steps: int = 50  # with warmup_fraction > 0, warm up at least this many steps (or a quarter of the run)
    # so that a short run does not reach the peak rate within a few steps, which can collapse z (warmup_steps)
    min_lr_fraction: float = 0.1  # the cosine schedule ends at learning_rate * this
    grad_clip: float = 1.0  # clip the global gradient L2 norm to this (0 = off)
    # loss weights: loss_total = image * loss_image + caption * loss_caption + alignment * loss_alignment
    image_loss_weight: float = 1.0  # weight of loss_image (pixel MSE of the reconstruction)
    caption_loss_weight: float = 1.0  # weight of loss_caption (next-token cross-entropy, nats)
    alignment_loss_weight: float = 1.0  # weight of loss_alignment (symmetric contrastive loss, nats)
    # hardware and outputs
    device: str = "auto"  # 'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'
    precision: str = "auto"  # 'auto' (bf16 autocast on CUDA, fp32 on CPU), 'bf16' or 'fp32'
    bf16_residual: bool = ModelConfig.bf16_residual  # under bf16 autocast, the residual stream and LayerNorms in bf16, not fp32
    compile: bool | None = None  # torch.compile the model; None: on CUDA, not on a CPU (False: eager everywhere)
    compile_mode: str = "default"  # torch.compile mode: default, reduce-overhead (CUDA graphs: small batches), max-autotune-no-cudagraphs; aot_eager: traced, no code generated (CPU checks)
    out_dir: str = "out"  # checkpoints (last.pt, best.pt), report.md, metrics.csv and plots go here
    best_metric: str = "loss_total"  # best.pt holds the epoch with the best val/<this>: a val loss or a measure (i2t_r1, psnr, ...)
    early_stopping_patience: int = 0  # stop once val/<best_metric> has not improved for this many epochs (0 = never)
    checkpoint_every: float = 30.0  # minutes between mid-epoch saves of last.pt (0 = only at epoch ends)
    resume: bool = False  # continue from out_dir/last.pt (every data and optimisation setting must be the checkpoint's)
    resume_changes: str = ""  # on resume, optimisation fields allowed to differ, comma-separated (e.g. learning_rate,num_epochs): used from here on


@dataclass
class WandBConfig:
    project: str = "multimodal-engravings"  # W&B project (WANDB_PROJECT overrides the default)
    entity: str | None = None  # W&B user or team (WANDB_ENTITY overrides the default)
    run_name: str | None = None  # display name of the run (None = W&B picks one)
    mode: str = "auto"  # 'auto' (asks wandb's settings: online if logged in and reachable, else offline), 'online', 'offline', 'disabled'
    log_frequency: int = 10  # log the mean of every metric over this many batches
    track_gradients: bool = True  # log grad_norm (every step), grad_mean and grad_max (the last step of each window)
    track_hardware: bool = True  # log gpu_memory_used, gpu_memory_percent, cpu_percent
    watch_gradients: bool = False  # wandb.watch: gradient histograms of every layer under gradients/ (costs time)
    log_model: str = "off"  # weights as a W&B Artifact: 'off', 'end' (best + last, at the end), 'best' (each new best), 'all' (every epoch)
    model_ttl_days: float = 0.0  # W&B deletes each model version this many days after upload (0 = no TTL of our own)
    finish_timeout: float = 600.0  # seconds the run's end waits for W&B uploads, the rest left for `wandb sync` (0 = all)


# the Config fields that are also ModelConfig fields (model_config() passes them on)
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name in Config.__dataclass_fields__)

PRESETS = {
    # the seed's own run: batch 16 (too small to keep a large GPU busy; kept for comparison with the seed). Its
    # step is bound by kernel launches, so where it is compiled (on CUDA) it replays CUDA graphs: 1,841 samples/s
    # on an H200 against 643 eager (BENCHMARKS.md, issue 28)
    "seed": dict(batch_size=16, compile_mode="reduce-overhead"),
    # ModelConfig.small() (~1M parameters) at 64 px: learns the bundled engravings on a 2-core CPU in about five
    # minutes. The objects are what takes epochs: the grounded measures climb only after epoch 8, so the preset buys
    # epochs with 16-pixel patches (16 tokens an image: half the step time of 8-pixel ones) and no dropout (a
    # quarter of the step time on a CPU), and a 10% warm-up keeps z from collapsing (docs/LOG.md, issue 12; a run
    # cut to a few dozen steps warms up over warmup_min_steps or a quarter of it: warmup_steps). What teaches z the
    # objects at all is the caption's first sentence ("Two statues on the right.") weighed 10 times, with the
    # convolutional stem that lets the encoder follow a silhouette across patches; weight decay 0.1 (0.5 before
    # them) lets the encoder keep what it learns, and caption_loss_weight 1.25 gives the rest of the caption's words
    # the weight they had beside a lead weighed 7 times (weight 10 alone cost the sky: BENCHMARKS.md, issue 24)
    "quick": dict(**{name: getattr(ModelConfig.small(), name) for name in MODEL_FIELDS
                     if getattr(ModelConfig.small(), name) != getattr(ModelConfig(), name)},
                  image_size=64, patch_size=16, conv_stem=True, caption_lead_weight=10.0, caption_loss_weight=1.25,
                  batch_size=64, num_epochs=26, learning_rate=2e-3, warmup_fraction=0.1, weight_decay=0.1,
                  out_dir="out/quick"),
}

WANDB_MODES = ("auto", "online", "offline", "disabled")
LOG_MODEL = ("off", "end", "best", "all")  # when the weights go to W&B (Trainer.end_epoch, upload_final_model)
RENAMED = {"log_checkpoints": "--log_model=all (weights only)"}  # fields that are gone -> what replaces them
WANDB_ENV = {"WANDB_PROJECT": "project", "WANDB_ENTITY": "entity", "WANDB_MODE": "mode"}  # env var -> field


CONFIG_CLASSES = (Config, WandBConfig, HealthConfig)  # HealthConfig: the health checks' thresholds (health/core.py)


class ConfigError(Exception):
    """A bad command-line or config value: reported in one line, exit status 2."""


def config_fields():
    """Every overridable field: name -> (config class, type)."""
    fields = {}
    for cls in CONFIG_CLASSES:
        hints = get_type_hints(cls)
        fields.update({f.name: (cls, hints[f.name]) for f in dataclasses.fields(cls)})
    return fields


def parse_value(name, raw, typ):
    """Turn the text of `--name=raw` into a value of the field's type, or raise ConfigError."""
    optional = typ in (str | None, bool | None)
    if optional and raw in ("None", "none", ""):
        return None
    if typ in (str, str | None):
        return raw
    if typ in (bool, bool | None):
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"--{name}={raw}: expected True or False")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise ConfigError(f"--{name}={raw}: expected {typ.__name__}") from None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not typ:
        raise ConfigError(f"--{name}={raw}: expected {typ.__name__}, got {type(value).__name__}")
    return value


def parse_args(argv):
    """`--field=value` overrides (after an optional `--preset=NAME`) -> (Config, WandBConfig, HealthConfig)."""
    fields = config_fields()
    values = {}
    for env, name in WANDB_ENV.items():  # environment variables replace the defaults; the command line wins
        if os.environ.get(env):
            values[name] = os.environ[env]
    if values.get("mode") == "dryrun":  # wandb's old name for offline
        values["mode"] = "offline"
    overrides = {}
    for arg in argv:
        match = re.fullmatch(r"--([A-Za-z_][A-Za-z0-9_]*)=(.*)", arg)
        if not match:
            raise ConfigError(f"cannot parse argument {arg!r}: use --field=value (see --help)")
        name, raw = match.groups()
        if name == "preset":
            if raw not in PRESETS:
                raise ConfigError(f"--preset={raw}: unknown preset; choose from {', '.join(PRESETS)}")
            values.update(PRESETS[raw])
            continue
        if name in RENAMED:
            raise ConfigError(f"--{name} is gone: use {RENAMED[name]}")
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=3)
            hint = f"; did you mean {' or '.join('--' + c for c in close)}?" if close else "; see --help"
            raise ConfigError(f"unknown field --{name}{hint}")
        overrides[name] = parse_value(name, raw, fields[name][1])
    values.update(overrides)
    if "mode" in values and "mode" not in overrides and values["mode"] not in WANDB_MODES:
        raise ConfigError(f"WANDB_MODE={values['mode']}: choose from {', '.join(WANDB_MODES)}")
    cfg, wcfg, health = (cls(**{k: v for k, v in values.items() if fields[k][0] is cls}) for cls in CONFIG_CLASSES)
    validate(cfg, wcfg)
    return cfg, wcfg, health


def validate(cfg, wcfg):
    """Check ranges and allowed values before any heavy work; raise ConfigError naming the field."""
    def check(ok, name, allowed):
        if not ok:
            value = getattr(cfg, name, None) if hasattr(cfg, name) else getattr(wcfg, name)
            raise ConfigError(f"--{name}={value}: {allowed}")

    for name in ("image_size", "max_caption_len", "latent_dim", "width", "num_heads", "patch_size",
                 "batch_size", "num_epochs", "image_encoder_depth", "image_decoder_depth", "caption_decoder_depth",
                 "caption_encoder_depth"):
        check(getattr(cfg, name) >= 1, name, "must be at least 1")
    for name in ("max_items", "max_steps", "early_stopping_patience", "num_workers", "weight_decay", "grad_clip",
                 "checkpoint_every", "latent_patch_dim", "warmup_min_steps",
                 "image_loss_weight", "caption_loss_weight", "alignment_loss_weight"):
        check(getattr(cfg, name) >= 0, name, "must not be negative")
    check(cfg.max_caption_len >= 3, "max_caption_len", "must be at least 3 (<bos>, a word, <eos>)")
    check(0 < cfg.val_fraction < 1, "val_fraction", "must be between 0 and 1")
    check(cfg.learning_rate > 0, "learning_rate", "must be positive")
    check(0 <= cfg.warmup_fraction < 1, "warmup_fraction", "must be in [0, 1)")
    check(0 <= cfg.min_lr_fraction <= 1, "min_lr_fraction", "must be in [0, 1]")
    check(0 <= cfg.dropout < 1, "dropout", "must be in [0, 1)")
    check(0 < cfg.caption_lead_weight < math.inf, "caption_lead_weight",
          "must be a finite number above 0 (1 weighs every caption token alike)")
    check(cfg.image_size >= SSIM_WINDOW, "image_size", f"must be at least {SSIM_WINDOW} (the SSIM measure's window)")
    check(cfg.image_size % cfg.patch_size == 0, "image_size", f"must be a multiple of patch_size ({cfg.patch_size})")
    check(not cfg.conv_stem or (cfg.patch_size & (cfg.patch_size - 1)) == 0, "patch_size",
          "must be a power of 2 with --conv_stem=true (one stride-2 convolution per halving)")
    check(cfg.width % cfg.num_heads == 0, "width", f"must be a multiple of num_heads ({cfg.num_heads})")
    try:
        check_device_name(cfg.device)
    except DeviceError as e:
        raise ConfigError(str(e)) from None
    check(cfg.precision in ("auto", "bf16", "fp32"), "precision", "choose 'auto', 'bf16' or 'fp32'")
    check(cfg.compile_mode in COMPILE_MODES, "compile_mode", f"choose from {', '.join(COMPILE_MODES)}")
    check(cfg.contrastive_negatives in ("global", "local"), "contrastive_negatives", "choose 'global' or 'local'")
    check(cfg.best_metric in BEST_METRICS, "best_metric", f"choose a val loss or measure: {', '.join(BEST_METRICS)}")
    unknown = [f for f in filter(None, cfg.resume_changes.split(",")) if f not in SAME_OPTIMISATION]
    check(not unknown, "resume_changes", f"can name only {', '.join(SAME_OPTIMISATION)}")
    check(wcfg.mode in WANDB_MODES, "mode", f"choose from {', '.join(WANDB_MODES)}")
    check(wcfg.log_frequency >= 1, "log_frequency", "must be at least 1")
    check(wcfg.log_model in LOG_MODEL, "log_model", f"choose from {', '.join(LOG_MODEL)} (the gradient histograms "
          "it once switched on are --watch_gradients=True)")
    check(wcfg.model_ttl_days >= 0, "model_ttl_days", "must not be negative")
    check(wcfg.finish_timeout >= 0, "finish_timeout", "must not be negative")
    if cfg.data_dir != BUNDLED_DATA_DIR:
        check(Path(cfg.data_dir).is_dir(), "data_dir", "is not a folder")
    missing = missing_packages()
    if missing:
        raise ConfigError(missing)


def setup_distributed(cfg):
    """-> (rank, world_size, device). Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set) each process drives
    one device through DDP: NCCL on CUDA, gloo on CPU. Otherwise a single process on resolve_device(cfg)."""
    if "RANK" not in os.environ:
        return 0, 1, resolve_device(cfg)
    rank, world_size, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world_size, device


# The attention kernels in the order SDPA tries them. PyTorch's own order is flash, memory-efficient, math, cuDNN,
# so cuDNN never runs; on an H200 at the default shapes cuDNN's forward + backward takes 0.45 ms at the image's 256
# positions against flash's 0.72, and 0.25 against 0.37 (memory-efficient) for the caption encoder's padding mask
# (BENCHMARKS.md, "Attention kernels"; tools/sdpa_backends.py measures it again).
ATTENTION_ORDER = (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                   SDPBackend.MATH)

_attention_order = None  # the sdpa_kernel context configure_cuda holds


def configure_cuda():
    """TF32 for the fp32 matmuls and convolutions autocast leaves, cuDNN's autotuner for the patch embedding
    (every training batch has the same shape), and ATTENTION_ORDER for the rest of the process."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    global _attention_order
    if _attention_order is None:  # entered once and held for the life of the process (torch.compile traces under it)
        _attention_order = sdpa_kernel(list(ATTENTION_ORDER), set_priority=True)
        _attention_order.__enter__()  # torch 2.6's compile ignores the order (fixed in 2.7): slower, not wrong


def attention_kernels(model_cfg, batch_size, device, dtype=torch.bfloat16):
    """-> {the model's attention calls: the SDPA kernel PyTorch picks for them on `device` now}, e.g.
    {"image": "cudnn", "caption_decoder": "cudnn", "caption_encoder": "cudnn"}: what ran, for the run's config."""
    heads, T, L = model_cfg.num_heads, model_cfg.num_patches, model_cfg.max_caption_len
    q = torch.empty(batch_size, heads, T, model_cfg.width // heads, device=device, dtype=dtype)
    mask = torch.ones(batch_size, 1, 1, L, dtype=torch.bool, device=device)
    calls = {"image": (q, None, False), "caption_decoder": (q[:, :, :L], None, True),
             "caption_encoder": (q[:, :, :L], mask, False)}
    names = {SDPBackend.CUDNN_ATTENTION: "cudnn", SDPBackend.FLASH_ATTENTION: "flash",
             SDPBackend.EFFICIENT_ATTENTION: "efficient", SDPBackend.MATH: "math"}
    return {name: names.get(SDPBackend(torch._fused_sdp_choice(x, x, x, m, 0.0, causal)), "other")
            for name, (x, m, causal) in calls.items()}


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "aot_eager")
# the modes that replay CUDA graphs, and each one's mode without them
CUDAGRAPH_MODES = {"reduce-overhead": "default", "max-autotune": "max-autotune-no-cudagraphs"}


def without_cudagraphs(mode):
    """The compile mode for the graphs beside the training forward (the step's metrics, evaluation): `mode`
    without CUDA graphs, since a graph's outputs are overwritten by its next replay, and the step's metrics are kept
    over a log window and the validation latents over an epoch."""
    return CUDAGRAPH_MODES.get(mode, mode)


def compiles(cfg, device):
    """Whether the model is compiled: cfg.compile, or where it is None, on CUDA (on a CPU compilation costs
    minutes and gains little)."""
    return device.type == "cuda" if cfg.compile is None else cfg.compile


def compile_module(fn, mode):
    """torch.compile in one of COMPILE_MODES (aot_eager: the backend that traces forward and backward but runs
    them eagerly, to check graphs and recompiles on a CPU in seconds)."""
    if mode == "aot_eager":
        return torch.compile(fn, backend="aot_eager")
    return torch.compile(fn, mode=None if mode == "default" else mode)


def _evaluate(model, images, captions):
    return model(images, captions)


def evaluation_graph(model, mode):
    """The model's forward compiled for evaluation: a function of its own, so its graphs are cached apart from the
    training graph's (eval mode, no autograd), with the batch dimension dynamic, so that the last, smaller
    validation batch reuses the graph instead of compiling another."""
    compiled = compile_module(_evaluate, without_cudagraphs(mode))

    def forward(images, captions):
        torch._dynamo.maybe_mark_dynamic(images, 0)
        torch._dynamo.maybe_mark_dynamic(captions, 0)
        return compiled(model, images, captions)
    return forward


def resolve_device(cfg):
    """The device of --device (devices.resolve_device), or a ConfigError."""
    try:
        return devices.resolve_device(cfg.device)
    except DeviceError as e:
        raise ConfigError(str(e)) from None


def field_comments(cls):
    """The inline comment after each field of a config dataclass: its documentation for --help."""
    import inspect
    comments = {}
    for line in inspect.getsource(cls).splitlines():
        match = re.match(r"\s+(\w+): [^#]*#\s*(.*)", line)
        if match:
            comments[match.group(1)] = match.group(2)
    return comments


def print_help():
    print(__doc__)
    print("Fields (--field=value):")
    for cls in CONFIG_CLASSES:
        comments = field_comments(cls)
        print(f"  [{cls.__name__}]")
        for f in dataclasses.fields(cls):
            print(f"  --{f.name}={getattr(cls, f.name)!r}" + (f"  # {comments[f.name]}" if f.name in comments else ""))
    print(f"Presets (--preset=NAME, applied before the other fields): {', '.join(PRESETS)}")


# ----------------------------------------------------------------------------
# engraving dataset

class EngravingDataset(torch.utils.data.Dataset):
    """All images decoded once into one uint8 tensor (cached on disk across runs), all captions tokenized
    into one id tensor."""

    def __init__(self, items, tokenizer, image_size, max_caption_len, num_workers=4, cache_dir=""):
        self.images, kept, failed, self.cache_file, self.from_cache = decode_images(
            [path for path, _ in items], image_size, num_workers, cache_dir)
        for message in failed:
            warnings.warn(message, DataWarning)
        self.captions = [items[i][1] for i in kept]
        self.paths = [str(items[i][0]) for i in kept]
        self.tokenize(tokenizer, max_caption_len)

    def tokenize(self, tokenizer, max_caption_len):
        """(Re)encode every caption with this tokenizer into self.tokens (N, max_caption_len)."""
        encoded = [tokenizer.encode(c, max_caption_len) for c in self.captions]
        self.tokens = torch.tensor([ids for ids, _ in encoded], dtype=torch.long).view(-1, max_caption_len)
        self.num_truncated = sum(cut for _, cut in encoded)

    def __len__(self):
        return len(self.captions)

    def __getitem__(self, i):
        return self.images[i].float() / 255, self.tokens[i]


class BatchLoader:
    """Mini-batches indexed straight out of the dataset's tensors: no per-item collate, no worker processes.

    The tensors can live on the GPU (see `to`), so a batch never waits for the host.
    """

    def __init__(self, dataset, indices, batch_size, shuffle, drop_last, seed=0, rank=0, world_size=1):
        self.images, self.tokens = dataset.images[indices], dataset.tokens[indices]
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.rank, self.world_size = rank, world_size  # under torchrun each rank takes every world_size-th item
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch_rng_state = self.generator.get_state()  # the state this epoch's order was drawn from
        self.skip = 0  # batches of the next epoch to skip (resuming mid-epoch)

    def to(self, device):
        self.images, self.tokens = self.images.to(device), self.tokens.to(device)
        return self

    def shard_size(self):
        n = len(self.images)
        if self.drop_last:  # equal shards, so every rank runs the same number of steps
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    def __len__(self):
        n = self.shard_size()
        return n // self.batch_size if self.drop_last and n >= self.batch_size else math.ceil(n / self.batch_size)

    def __iter__(self):
        n, skip = len(self.images), self.skip
        self.epoch_rng_state, self.skip = self.generator.get_state(), 0
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)  # same on every rank
        order = order[self.rank::self.world_size][: self.shard_size()].to(self.images.device)
        for b in range(skip, len(self)):
            idx = order[b * self.batch_size: (b + 1) * self.batch_size]
            yield self.images[idx], self.tokens[idx]


def split_indices(n, val_fraction, seed):
    """A seeded shuffle of range(n) cut into (train, val); val has at least one item."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    return order[n_val:], order[:n_val]


# ----------------------------------------------------------------------------
# metric definitions: each logged metric is defined once, here

def latent_stats(z):
    """Of z (B, D): latent_mean / latent_std over every value (mostly differences between dimensions);
    latent_norm: the mean L2 norm of a sample's z; latent_batch_std: the spread between images, the std of each
    dimension across the batch averaged over dimensions (0 when every image maps to the same z)."""
    z = z.float()
    return {"latent_mean": z.mean(), "latent_std": z.std(), "latent_norm": z.norm(dim=1).mean(),
            "latent_batch_std": z.std(dim=0, correction=0).mean()}


def latent_diversity(z):
    """1 - the mean cosine similarity between the z of two different images of the batch: 0 when every image
    maps to the same direction, about 1 for unrelated directions."""
    z = torch.nn.functional.normalize(z.float(), dim=1)
    n = z.shape[0]
    return 1 - (z @ z.T).sum().sub(n).div(max(n * (n - 1), 1))


def image_errors(recon, target):
    """image_mse and image_l1 between reconstruction and image, both with pixels in [0, 1]."""
    diff = recon.float() - target.float()
    return {"image_mse": diff.pow(2).mean(), "image_l1": diff.abs().mean()}


def caption_stats(logits, targets, pad_id):
    """Teacher-forced next-token accuracy and mean predictive entropy (nats), over non-pad targets."""
    mask = (targets != pad_id).float()
    count = mask.sum().clamp(min=1)
    logp = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(logp.exp() * logp).sum(dim=-1)
    correct = (logits.argmax(dim=-1) == targets).float()
    return {"caption_accuracy": (correct * mask).sum() / count, "caption_entropy": (entropy * mask).sum() / count}


def caption_perplexity(mean_loss_caption):
    """exp of the mean caption cross-entropy over the same window (or validation set)."""
    return math.exp(min(mean_loss_caption, 700.0))  # 700 keeps a diverging run's value finite


def gradient_stats(grads, extremes=True):
    """grad_norm: global L2 norm; with extremes, also grad_mean: mean |g| over every element and grad_max: max |g|
    (of one step; a log window keeps the largest, see WINDOW_MAXIMA).

    Always 0 <= grad_mean <= grad_max <= grad_norm. Fused over all tensors, no host sync. The L2 norm is needed at
    every step (clipping); the two others cost a pass over every gradient each, so the Trainer takes them only on
    the steps that end a log window.
    """
    stats = {"grad_norm": torch.stack(torch._foreach_norm(grads, 2)).float().norm()}
    if extremes:
        l1 = torch.stack(torch._foreach_norm(grads, 1)).float()
        linf = torch.stack(torch._foreach_norm(grads, float("inf"))).float()
        stats.update(grad_mean=l1.sum() / sum(g.numel() for g in grads), grad_max=linf.max())
    return stats


def model_metrics(out, images, captions_pad_id, weights):
    """The per-batch metrics of one forward pass: loss components, loss_total, latent, image, caption."""
    losses = {k: out[k].detach().float() for k in ("loss_image", "loss_caption", "loss_alignment")}
    return {
        "loss_total": total_loss(out, weights).detach().float(),
        **losses,
        **latent_stats(out["z"].detach()),
        **image_errors(out["recon"].detach(), images),
        **caption_stats(out["logits"].detach(), out["targets"], captions_pad_id),
    }


def step_metrics(out, images, pad_id, weights, params, track_gradients, clip, log_step=True,
                 metrics_fn=model_metrics):
    """A training step's metrics after backward (metrics_fn: model_metrics, or a compiled model_metrics; and
    gradient_stats with track_gradients, grad_mean and grad_max on a log_step only), with the gradients clipped to
    a global L2 norm of `clip` (0 = no clipping) on the way, reusing gradient_stats' norm."""
    metrics = metrics_fn(out, images, pad_id, weights)
    if track_gradients:
        metrics.update(gradient_stats([p.grad for p in params if p.grad is not None], extremes=log_step))
        if clip > 0:
            torch.nn.utils.clip_grads_with_norm_(params, clip, metrics["grad_norm"])
    elif clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
    return metrics


def total_loss(out, weights):
    """loss_total = image_loss_weight * loss_image + caption_loss_weight * loss_caption
    + alignment_loss_weight * loss_alignment."""
    return (weights["image"] * out["loss_image"] + weights["caption"] * out["loss_caption"]
            + weights["alignment"] * out["loss_alignment"])


def hardware_stats(device):
    """gpu_memory_used (MB, 10^6 bytes) and gpu_memory_percent of the whole CUDA device (0 without one);
    cpu_percent: system-wide CPU use since the previous call, 0..100."""
    used_mb = percent = 0.0
    if device.type == "cuda":
        try:
            free, total = torch.cuda.mem_get_info(device)
            used_mb, percent = (total - free) / 1e6, 100.0 * (total - free) / total
        except RuntimeError:
            gpu = _gputil_device(device)
            if gpu is not None:
                used_mb, percent = gpu.memoryUsed * 2**20 / 1e6, 100.0 * gpu.memoryUsed / max(gpu.memoryTotal, 1)  # MiB
    return {"gpu_memory_used": used_mb, "gpu_memory_percent": percent, "cpu_percent": psutil.cpu_percent(interval=None)}


# Dense (no sparsity) tensor-core peak FLOP/s from NVIDIA's datasheets: (name fragment, bf16, tf32).
# Matched in order against torch.cuda.get_device_name; the first fragment it contains wins.
PEAK_FLOPS = (
    ("H100 PCIe", 756e12, 378e12),
    ("H100 NVL", 835e12, 418e12),
    ("H200", 989e12, 495e12),
    ("H100", 989e12, 495e12),  # SXM, e.g. "NVIDIA H100 80GB HBM3"
    ("A100", 312e12, 156e12),
)


def peak_memory(device):
    """{peak_memory_allocated_mb} since the last call, on CUDA (the allocator's own counters: no synchronisation)."""
    if device.type != "cuda":
        return {}
    peak = torch.cuda.max_memory_allocated(device) / 1e6
    torch.cuda.reset_peak_memory_stats(device)
    return {"peak_memory_allocated_mb": peak}


def peak_flops(device, precision):
    """The device's datasheet peak for matmuls in this precision ('bf16', 'tf32' or 'fp32'), or None where
    unknown (CPUs, unlisted GPUs, plain fp32): then MFU is not logged rather than guessed."""
    if device.type != "cuda" or precision not in ("bf16", "tf32"):
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, bf16, tf32 in PEAK_FLOPS:
        if fragment in name:
            return bf16 if precision == "bf16" else tf32
    return None


def throughput_stats(samples_per_second, flops_per_sample, peak=None):
    """model_tflops: training FLOPs done per second (estimate_flops' count, 3 x forward), in 10^12;
    mfu: that over the hardware's peak (model FLOPs utilisation, 0..1), only where a peak is known."""
    achieved = samples_per_second * flops_per_sample
    stats = {"model_tflops": achieved / 1e12}
    if peak:
        stats["mfu"] = achieved / peak
    return stats


def _gputil_device(device):
    """GPUtil's view of the device, as a fallback where torch cannot read the memory, or None. GPUtil is optional
    (`pip install GPUtil`); it imports distutils, which Python 3.12 removed, and runs nvidia-smi."""
    try:
        import GPUtil  # ImportError where it is not installed, and from its own `import distutils` on Python 3.12+
        gpus = GPUtil.getGPUs()  # runs nvidia-smi
    except Exception:  # any of these: no fallback, silently
        return None
    return gpus[device.index or 0] if len(gpus) > (device.index or 0) else None


# The window statistics that keep the extremes: logged name -> the per-step metric whose largest value over the
# window's steps it is (of the steps that have it: grad_max only the window's last). grad_max is only a maximum;
# grad_norm is logged as its mean and, as grad_norm_max, its maximum (a single-step spike would be averaged away).
WINDOW_MAXIMA = {"grad_max": "grad_max", "grad_norm_max": "grad_norm"}


class MetricWindow:
    """Accumulates metric tensors on the device: the (weighted) mean of every metric over the steps that have it
    (grad_mean and grad_max: the log steps only), and the maximum of those in WINDOW_MAXIMA. `means()` is the
    single host sync of a log window."""

    def __init__(self):
        self.sums, self.weights, self.maxima, self.weight = {}, {}, {}, 0.0

    def add(self, metrics, weight=1.0):
        for k, v in metrics.items():
            if k not in WINDOW_MAXIMA:
                self.sums[k] = self.sums[k] + v * weight if k in self.sums else v * weight
                self.weights[k] = self.weights.get(k, 0.0) + weight
        for name, k in WINDOW_MAXIMA.items():
            if k in metrics:
                self.maxima[name] = torch.maximum(self.maxima[name], metrics[k]) if name in self.maxima else metrics[k]
        self.weight += weight

    def __len__(self):
        return int(self.weight > 0)

    def state_dict(self):
        """The window so far, on the CPU (a checkpoint's part; the one copy is a host sync, as a save is)."""
        return {"sums": {k: v.detach().cpu() for k, v in self.sums.items()}, "weights": dict(self.weights),
                "maxima": {k: v.detach().cpu() for k, v in self.maxima.items()}, "weight": self.weight}

    def load_state_dict(self, state, device):
        self.sums = {k: v.to(device) for k, v in state["sums"].items()}
        self.maxima = {k: v.to(device) for k, v in state["maxima"].items()}
        self.weights, self.weight = dict(state["weights"]), state["weight"]

    def means(self):
        """Mean of every metric over the window (and over all ranks under torchrun), the maxima of WINDOW_MAXIMA,
        and caption_perplexity derived; resets the window."""
        names, peaks = list(self.sums), list(self.maxima)
        if not names:
            return {}
        weights = torch.tensor([self.weights[k] for k in names], device=self.sums[names[0]].device)
        sums = torch.cat([torch.stack([self.sums[k].float() for k in names]), weights])
        maxima = torch.stack([self.maxima[k].float() for k in peaks]) if peaks else sums[:0]
        if dist.is_initialized():  # every rank logs the same numbers: the mean and maxima over the global window
            dist.all_reduce(sums)
            if peaks:
                dist.all_reduce(maxima, op=dist.ReduceOp.MAX)
        host = torch.cat([sums, maxima]).tolist()  # host sync
        n = len(names)
        result = {k: v / w for k, v, w in zip(names, host[:n], host[n: 2 * n])}
        result.update(zip(peaks, host[2 * n:]))
        if "loss_caption" in result:
            result["caption_perplexity"] = caption_perplexity(result["loss_caption"])
        self.sums, self.weights, self.maxima, self.weight = {}, {}, {}, 0.0
        return result


def waits(batches, clock=time.perf_counter):
    """Yields (batch, seconds spent waiting for it) for each of the batches (measured with clock)."""
    batches = iter(batches)
    while True:
        start = clock()
        batch = next(batches, None)
        waited = clock() - start
        if batch is None:
            return
        yield batch, waited


class LogWindow:
    """One log window of the training loop: the metric sums (MetricWindow), the time spent waiting for data,
    whether the window is due, and its finished row. A window ends every `frequency` global steps and runs on
    across an epoch's end (its clock stopped during validation), so that every logged row but a run's last holds
    the same number of steps; its unfinished state goes into each checkpoint (state_dict)."""

    def __init__(self, frequency, world_size):
        self.frequency, self.world_size = frequency, world_size
        self.metrics = MetricWindow()
        self.samples, self.data_s, self.train_s, self.started = 0, 0.0, 0.0, None

    def start_clock(self):
        """Training runs (an epoch starts): the window's time counts."""
        self.started = time.perf_counter()

    def stop_clock(self):
        """Training pauses (validation, the end): samples_per_second counts training time only."""
        self.train_s, self.started = self.elapsed(), None

    def elapsed(self):
        """The window's training seconds so far."""
        return self.train_s + (time.perf_counter() - self.started if self.started is not None else 0.0)

    def timed(self, batches):
        """Yields the batches, adding the time spent waiting for each one to the window's data time."""
        for batch, waited in waits(batches):
            self.data_s += waited
            yield batch

    def add(self, metrics, batch_size):
        self.metrics.add(metrics)
        self.samples += batch_size * self.world_size  # samples/s counts every process

    def due(self, step):
        return step % self.frequency == 0

    def finish(self):
        """The window's row: the metric means and maxima, samples_per_second and data_time_fraction; starts the
        next window."""
        means = self.metrics.means()  # the one host-device sync of the window
        elapsed = max(self.elapsed(), 1e-9)
        row = {**means, "samples_per_second": self.samples / elapsed, "data_time_fraction": self.data_s / elapsed}
        self.samples, self.data_s, self.train_s = 0, 0.0, 0.0
        if self.started is not None:  # mid-epoch: the next window's clock runs from here
            self.start_clock()
        return row

    def state_dict(self):
        """The unfinished window, for a checkpoint: a resumed run logs it whole, as if it had never stopped (under
        torchrun, each process resumes rank 0's share of it)."""
        return {**self.metrics.state_dict(), "samples": self.samples, "data_s": self.data_s, "train_s": self.elapsed()}

    def load_state_dict(self, state, device):
        self.metrics.load_state_dict(state, device)
        self.samples, self.data_s, self.train_s = state["samples"], state["data_s"], state["train_s"]


# ----------------------------------------------------------------------------
# the Trainer

NON_FINITE_WATCH = ("loss_image", "loss_caption", "loss_alignment", "grad_norm")  # diagnosed when a run goes NaN


def to_pil(image):
    """(C, H, W) floats in [0, 1] -> PIL image (wandb would cast such floats straight to uint8: all black)."""
    pixels = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(pixels.squeeze(2) if pixels.shape[2] == 1 else pixels)


class TrainingStopped(Exception):
    """Training cannot go on (a non-finite loss or gradient): one-line reason, exit status 3."""


class NonFiniteWatch:
    """Remembers, on the device, the first step at which each loss component or the gradient norm stopped being
    finite (no sync per step), and ends training when a logged window is not finite: an explicit step of the loop."""

    def __init__(self):
        self.first = None  # per NON_FINITE_WATCH entry: first step it was not finite (-1: never)
        self.names = ()

    def track(self, metrics, step):
        names = [k for k in NON_FINITE_WATCH if k in metrics]
        bad = ~torch.isfinite(torch.stack([metrics[k] for k in names]))
        if self.first is None:
            self.first, self.names = torch.full((len(names),), -1, dtype=torch.long, device=bad.device), names
        self.first = torch.where(bad & (self.first < 0), step, self.first)

    def diagnosis(self, lr):
        first = dict(zip(self.names, self.first.tolist())) if self.first is not None else {}
        seen = sorted((step, name) for name, step in first.items() if step >= 0)
        if not seen:
            return "non-finite values"
        step = seen[0][0]
        return (f"{', '.join(name for s, name in seen if s == step)} became non-finite first, at step {step} "
                f"(learning rate {lr:.3g})")

    def check(self, row, findings, lr):
        """Raise TrainingStopped when the window's losses or gradient norm are not finite."""
        if all(math.isfinite(row.get(k, 0.0)) for k in NON_FINITE_WATCH):
            return
        action = next((f.action for f in findings if f.code == "non_finite"), "lower learning_rate")
        raise TrainingStopped(f"{self.diagnosis(lr)}; {action}")


class Validator:
    """What is measured on the validation split at each epoch end: the model metrics (as in training), the
    measures of what the model learned (evaluation.py), the linear probes on z (probes.py), and the visuals for
    the logger."""

    def __init__(self, model, forward, val_loader, train_loader, tokenizer, autocast, weights, truths=None,
                 train_truths=None, seed=0):
        self.model, self.forward, self.val_loader, self.tokenizer = model, forward, val_loader, tokenizer
        self.autocast, self.weights, self.truths = autocast, weights, truths
        self.train_images = train_loader.images  # (N, C, H, W) uint8: their mean image is the reconstruction baseline
        # the probes are fit on the z of a sample of the training split, drawn once with the run's seed
        sample = torch.randperm(len(train_loader.images), generator=torch.Generator().manual_seed(seed))[:PROBE_SAMPLE]
        self.probe_items = sample.sort().values.to(train_loader.images.device)
        self.probe = LatentProbe(train_loader.tokens[self.probe_items],
                                 [train_truths[i] for i in self.probe_items.tolist()] if train_truths else None,
                                 val_loader.tokens, truths, tokenizer, seed=seed)
        self.probe_s = None  # seconds the probes took in the last evaluate() (their encoder pass included)
        self.reference = None  # LatentReference of the last evaluate()
        # the probes on the untrained weights, a reference beside chance (probes.untrained_levels): the Validator is
        # built before a resume loads the checkpoint's weights, and the initial ones follow from the seed
        self.untrained = self.probe.score(image_latents(model, self.train_images[self.probe_items], autocast=autocast),
                                          image_latents(model, val_loader.images, autocast=autocast))
        self.shown = None  # what visuals() shows, kept by evaluate()
        self._baseline = None

    def baseline(self):
        """The measures of evaluate() for a model that learned nothing about the individual images (evaluation.py's
        baseline_split: chance retrieval, the training split's mean image as every reconstruction, another
        item's caption for each image), the probes' chance levels and their scores on the untrained weights. It does
        not depend on the trained weights: computed once, then kept."""
        if self._baseline is None:
            chance = self.probe.chance()
            self._baseline = {**baseline_split(self.val_loader.images, self.val_loader.tokens, self.tokenizer,
                                               self.truths, mean_image(self.train_images), self.model.cfg.latent_dim),
                              **chance, **untrained_levels(chance, self.untrained)}
        return self._baseline

    def evaluate(self, generate_batch_size=256, shown=8):
        """One pass over the whole validation split -> the model metrics as in training (weighted by batch size,
        so every item counts once; batches of batch_size, as in training, so the contrastive loss sees as many
        negatives) and the measures of evaluation.py (retrieval both ways, BLEU-4 and CIDEr-D of greedy captions,
        PSNR/SSIM, and grounded caption accuracy where the data has ground truth) and the linear probes on z (the
        validation split's z from the same pass, the training sample's from the image encoder). Under torchrun every
        rank evaluates the whole split, in the same batches, so the one collective (MetricWindow's all-reduce of the
        loss metrics) sees equal work everywhere and cannot wait on a rank with an empty shard.

        The first batch's images, reconstructions and latents and the first `shown` greedy captions are kept
        for visuals(), which then needs no pass of its own."""
        window, first, latents, batch_losses, sizes = MetricWindow(), {}, [], [], []

        def add(out, images):
            if not first:
                first.update(images=images[:shown], recon=out["recon"][:shown], z=out["z"])
            metrics = model_metrics(out, images, self.tokenizer.PAD, self.weights)
            window.add(metrics, weight=images.shape[0])
            batch_losses.append(torch.stack([metrics[name] for name in LOSSES]))
            sizes.append(images.shape[0])
            latents.append(out["z"].detach())

        measures, captions = evaluate_split(
            self.model, self.val_loader.images, self.val_loader.tokens, self.tokenizer, self.truths,
            batch_size=self.val_loader.batch_size, autocast=self.autocast, forward=self.forward, on_batch=add,
            generate_batch_size=generate_batch_size, return_captions=True)
        self.shown = {**first, "generated": captions[:shown], "captions": self.val_loader.tokens[:shown].tolist()}
        started = time.perf_counter()
        fit = image_latents(self.model, self.train_images[self.probe_items], autocast=self.autocast)
        val_z = torch.cat(latents)
        probes = self.probe.score(fit, val_z)  # a host sync
        # where these weights put the training images' z, for sample.py to tell an image unlike them (checkpoints)
        self.reference = LatentReference.fit(fit, val_z)
        self.probe_s = time.perf_counter() - started
        # how many items each share is over (evaluation.Measure.share_of): its standard error follows from it
        counts = {"items": float(len(captions))}
        if self.truths and any(t is not None for t in self.truths):
            counts["grounded_items"] = float(sum(t is not None for t in self.truths))
        # each loss's noise, from its spread between batches: the health checks judge its changes against it
        per_batch = torch.stack(batch_losses).cpu().T if batch_losses else torch.empty(len(LOSSES), 0)
        noise = {f"{name}_se": batch_standard_error(values, sizes) for name, values in zip(LOSSES, per_batch)}
        noise = {k: v for k, v in noise.items() if math.isfinite(v)}  # one batch gives no spread: none logged
        return {**window.means(), **measures, **probes, **counts, **noise}

    def visuals(self):
        """-> (grid of validation images over their reconstructions, rows of (image, reconstruction, caption,
        generated caption), the latents of the first batch): what the logger shows, from the last evaluate()."""
        shown = self.shown
        images, recon = shown["images"], shown["recon"].float().clamp(0, 1)
        from torchvision.utils import make_grid  # imported here: torchvision adds ~2 s to every start-up
        grid = make_grid(torch.cat([images, recon]), nrow=len(images))
        samples = [(to_pil(img), to_pil(rec), self.tokenizer.decode(cap), gen)
                   for img, rec, cap, gen in zip(images.cpu(), recon.cpu(), shown["captions"], shown["generated"])]
        return to_pil(grid), samples, shown["z"].float().cpu().numpy()


class Trainer:
    """Owns the optimisation: the step, the epoch loop, validation and the training state.

    Metrics leave through the logger (RunLogger on rank 0, NullLogger elsewhere), checkpoints through
    Checkpoints; the Trainer itself never talks to W&B nor asks which rank it is on in order to log."""

    def __init__(self, cfg, wcfg, health, model, data, device, logger, run_config=None, world_size=1,
                 checkpoints=None):
        self.cfg, self.wcfg, self.health, self.model, self.tokenizer = cfg, wcfg, health, model, data.tokenizer
        self.train_loader, self.val_loader = data.train_loader, data.val_loader
        self.device, self.logger, self.world_size = device, logger, world_size
        self.checkpoints = checkpoints or Checkpoints(cfg.out_dir, cfg.checkpoint_every, enabled=False)
        self.weights = {"image": cfg.image_loss_weight, "caption": cfg.caption_loss_weight,
                        "alignment": cfg.alignment_loss_weight}
        self.autocast, peak = mixed_precision(cfg, device)
        self.flops_per_sample = estimate_flops(model.cfg)["training"]
        self.peak_flops = peak * world_size if peak else None  # samples_per_second counts every process
        self.compiled = compiles(cfg, device)
        self.eval_forward, self.forward = forwards(model, cfg, device, world_size, self.compiled)
        self.metrics_fn = (compile_module(model_metrics, without_cudagraphs(cfg.compile_mode)) if self.compiled
                           else model_metrics)
        # CUDA graphs: each step tells torch.compile that the last step's graph outputs are no longer needed
        self.cudagraphs = self.compiled and cfg.compile_mode in CUDAGRAPH_MODES
        self.attention = (attention_kernels(model.cfg, cfg.batch_size, device,
                                            torch.bfloat16 if uses_bf16(cfg, device) else torch.float32)
                          if device.type == "cuda" else None)
        self.optimizer = build_optimizer(model, cfg, device)
        self.total_steps = min(len(self.train_loader) * cfg.num_epochs, cfg.max_steps or float("inf"))
        self.scheduler = build_schedule(self.optimizer, cfg, self.total_steps)
        self.params = [p for p in model.parameters() if p.requires_grad]

        self.step, self.epoch = 0, 0
        self.best = BestCheckpoint(cfg.best_metric)  # the epoch best.pt holds, and the lowest val loss_total
        self.lr = self.scheduler.get_last_lr()[0]
        self.batches_done = 0  # batches finished in the current epoch
        self.run_config = {**flat_config(cfg, wcfg, health), **(run_config or {}), "total_steps": self.total_steps}
        self.monitor = HealthMonitor(health, self.run_config)
        self.window = LogWindow(wcfg.log_frequency, world_size)
        self.stop_signal = None  # set by SIGINT / SIGTERM: finish the step, save, report, exit
        self.stopped_early = False  # early_stopping_patience ran out (see out_of_patience)
        self.non_finite = NonFiniteWatch()
        self.validator = Validator(model, self.eval_forward, self.val_loader, self.train_loader, self.tokenizer,
                                   self.autocast, self.weights, data.val_truths, data.train_truths, cfg.seed)
        self.first_step_s = None  # seconds of this process's first train_step (see report_first_step)
        self.time_before = 0.0  # seconds of training in the processes before a resume (from the checkpoint)
        self.started = None  # perf_counter() when this process began training

    @property
    def best_val_loss(self):
        return self.best.lowest_loss

    # -- one step ---------------------------------------------------------------

    def train_step(self, images_u8, captions, log_step=True):
        """Forward, backward, clip, step. Returns the step's metrics as device tensors (no host sync); grad_mean
        and grad_max only on a log_step (one that ends a log window)."""
        images = images_u8.float().div_(255)
        if self.cudagraphs:
            torch.compiler.cudagraph_mark_step_begin()
        with self.autocast:
            out = self.forward(images, captions)
            loss = total_loss(out, self.weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            metrics = step_metrics(out, images, self.tokenizer.PAD, self.weights, self.params,
                                   self.wcfg.track_gradients, self.cfg.grad_clip, log_step, self.metrics_fn)
            metrics.update(self.custom_metrics(out, images, captions))
            self.non_finite.track(metrics, self.step + 1)
        self.lr = self.scheduler.get_last_lr()[0]  # the rate this step used
        self.optimizer.step()
        self.model.clamp_logit_scale_()  # CLIP: clamp the stored temperature, so its gradient never vanishes
        self.scheduler.step()
        self.step += 1
        return metrics

    def custom_metrics(self, out, images, captions):
        """Extra per-batch metrics, name -> 0-dim device tensor (no .item(): a sync), averaged over the log window
        and logged under train/. Add your own here; `out` is the model's output dict (z, recon, logits, targets,
        loss_*), `images` the batch in [0, 1], `captions` its token ids."""
        return {
            "latent_diversity": latent_diversity(out["z"].detach()),
            "caption_length": (captions != self.tokenizer.PAD).sum(dim=1).float().mean() - 2,  # words, no <bos>/<eos>
        }

    # -- epochs -------------------------------------------------------------------

    def fit(self):
        """Train to the end: num_epochs, max_steps or a stop signal. Returns the best validation loss."""
        for _ in self.steps():
            pass
        return self.best_val_loss

    def steps(self):
        """The training loop; each epoch ends with validation, visuals and a checkpoint. A generator that yields
        the step count after every optimizer step, so that benchmark.py can advance several Trainers a few steps
        at a time with next() through the real loop, copying and patching none of it."""
        self.started = time.perf_counter()
        while self.epoch < self.cfg.num_epochs and not (self.cfg.max_steps and self.step >= self.cfg.max_steps):
            if self.stop_requested(window_end=True):  # under torchrun the ranks agree: a signal during validation
                break  # reaches one rank first, and that one must not leave while the others start an epoch
            if self.out_of_patience():  # checked before each epoch: a resumed run that had stopped early stays stopped
                self.stopped_early = True
                self.logger.write(early_stopping_line(self.best, self.cfg.early_stopping_patience))
                break
            self.epoch += 1
            start = time.perf_counter()
            train_loss = yield from self.train_epoch()
            complete = self.batches_done >= len(self.train_loader)
            if self.stop_signal is not None and not complete:
                # mid-epoch: keep the position so --resume=True continues right here
                self.save_checkpoint()
                self.logger.write(f"Stopped by {self.stop_signal} at step {self.step} (epoch {self.epoch}); "
                                  f"checkpoint saved to {self.checkpoints.last}")
                break
            if complete:  # else max_steps ended it mid-epoch: the checkpoint keeps the position for a resume
                self.batches_done = 0
            self.end_epoch(train_loss, start)
        if len(self.window.metrics):  # stopped between epochs (early stopping, a signal during validation)
            self.log_window(epoch=float(self.epoch))
            self.save_checkpoint()  # the epoch's checkpoint held the window just logged: a resume must not log it again
        self.checkpoints.wait()  # the last checkpoint is on disk before the run is reported done
        if self.wcfg.log_model == "end":
            upload_final_model(self.logger, self.checkpoints)

    def out_of_patience(self):
        """Early stopping: has val/<best_metric> gone early_stopping_patience epochs without improving? Under
        torchrun the ranks agree, with one all-reduce an epoch."""
        patience = self.cfg.early_stopping_patience
        out = self.best.out_of_patience(self.epoch, patience)
        return any_rank(out, self.device) if patience and self.world_size > 1 else out

    def train_epoch(self):
        """One pass over the training split, yielding after every step; returns its mean loss_total."""
        self.model.train()
        epoch_loss, window = MetricWindow(), self.window
        steps, first = len(self.train_loader), self.train_loader.skip
        bar = self.logger.progress(self.train_loader, desc=f"Epoch {self.epoch} Train", total=steps, initial=first)
        window.start_clock()
        for i, (images, captions) in enumerate(window.timed(bar), first + 1):
            self.batches_done = i
            started = time.perf_counter()
            reached_max = self.cfg.max_steps and self.step + 1 >= self.cfg.max_steps
            # the log window runs on across the epoch's end, except the last epoch's (LogWindow)
            last = reached_max or (i == steps and self.epoch >= self.cfg.num_epochs)
            # a step that ends a log window takes the gradient extremes as well (gradient_stats)
            metrics = self.train_step(images, captions, window.due(self.step + 1) or last)
            if self.first_step_s is None:
                self.first_step_s = time.perf_counter() - started
                report_first_step(self.logger, self.first_step_s, self.compiled, self.attention)
            window.add(metrics, images.shape[0])
            epoch_loss.add({"loss_total": metrics["loss_total"]})
            window_end = window.due(self.step) or last
            stop = self.stop_requested(window_end)
            if window_end or stop:
                row, findings = self.log_window(epoch=self.epoch - 1 + i / steps)
                bar.set_postfix(loss=f"{row['loss_total']:.4f}")
                self.non_finite.check(row, findings, self.lr)
            yield self.step
            if stop or reached_max:
                break
            if self.checkpoints.due():
                self.save_checkpoint()
        window.stop_clock()
        bar.close()
        return epoch_loss.means().get("loss_total", float("nan"))  # nan: resumed at the very end of an epoch

    def log_window(self, epoch):
        """The finished window's row with lr, epoch, hardware and throughput, logged; -> (row, findings)."""
        row = {**self.window.finish(), "lr": self.lr, "epoch": epoch}
        if self.wcfg.track_hardware:
            row.update(hardware_stats(self.device))
        perf = {**throughput_stats(row["samples_per_second"], self.flops_per_sample, self.peak_flops),
                **peak_memory(self.device)}
        findings = self.log({"train": row, "perf": perf})
        return row, findings

    def end_epoch(self, train_loss, start):
        """Validation, visuals, the best result, checkpoints, and the epoch's console line."""
        started = time.perf_counter()
        val = self.validator.evaluate(max(self.cfg.batch_size, 256))
        perf = {"validation_s": time.perf_counter() - started, "probe_s": self.validator.probe_s,
                "epoch_train_s": started - start}
        # the baseline is constant (computed once, outside validation_s); logged every epoch, so that it is drawn as a
        # flat line beside each measure and is in the history of a resumed run too
        self.log({"val": {**val, "epoch": float(self.epoch)}, "baseline": self.validator.baseline(), "perf": perf})
        if self.logger.wants_media:
            self.logger.log_visuals(self.step, self.epoch, *self.validator.visuals())
        lowest, is_best = self.best_val_loss, self.best.offer(self.epoch, val)
        if self.best_val_loss < lowest:
            self.logger.summary({"best_val_loss": self.best_val_loss})
        if is_best:
            self.logger.summary(self.best.summary())
        saved = self.save_checkpoint()
        if is_best and saved:
            self.checkpoints.mark_best()
        if saved and (self.wcfg.log_model == "all" or (self.wcfg.log_model == "best" and is_best)):
            aliases = ["latest", f"epoch-{self.epoch}"] + ["best"] * is_best
            self.logger.log_model(model_state(self.state_dict()), aliases)
        self.logger.write(f"Epoch {self.epoch} | Train Loss: {train_loss:.4f} | Val Loss: {val['loss_total']:.4f} | "
                          f"Time: {time.perf_counter() - start:.1f}s | LR: {self.lr:.2e}")

    def stop_requested(self, window_end):
        """Has SIGINT/SIGTERM asked us to stop? Under torchrun the ranks agree at window ends only, so that
        they all stop after the same step without a collective in every step."""
        if self.world_size == 1:
            return self.stop_signal is not None
        if not window_end:
            return False
        stop = any_rank(self.stop_signal is not None, self.device)
        if stop and self.stop_signal is None:
            self.stop_signal = "SIGTERM"  # another rank got the signal
        return stop

    def log(self, groups):
        """One row of `prefix/name` keys from {prefix: {name: value}}: to the logger (W&B and the local history)
        and the health monitor, whose findings the logger reports. -> the findings."""
        row = {"global_step": self.step}
        for prefix, metrics in groups.items():
            row.update({f"{prefix}/{k}": v for k, v in metrics.items()})
        self.logger.log(row)
        findings = self.monitor.observe(row)
        for finding in findings:
            self.logger.alert(finding, self.health.alert_interval_minutes)
        return findings

    # -- state --------------------------------------------------------------------

    def training_time(self):
        """Seconds of training of the whole run: this process's so far, plus those before a resume up to the
        checkpoint it resumed from."""
        return self.time_before + (time.perf_counter() - self.started if self.started is not None else 0.0)

    def save_checkpoint(self):
        """out_dir/last.pt, written in the background (Checkpoints); False when it was not written."""
        return self.checkpoints.save(self.state_dict(), self.model)

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            **self.best.state_dict(),  # best_val_loss, best_metric, best_value, best_epoch
            "batches_done": self.batches_done,  # position inside `epoch` (0: the epoch is complete)
            "loader_rng": (self.train_loader.epoch_rng_state if self.batches_done
                           else self.train_loader.generator.get_state()),
            **rng_state(self.device),  # torch_rng, cuda_rng
            "history": self.logger.history,  # every logged row: a resumed run's report and metrics.csv cover the whole run
            "config": self.run_config,
            "model_config": self.model.config_dict(),
            "tokenizer": self.tokenizer.state_dict(),
            # the latest validation's LatentReference (a mid-epoch last.pt: the weights have moved on a little since)
            "latent_reference": self.validator.reference.state_dict() if self.validator.reference else None,
            "wandb_run_id": self.logger.run_id,
            "training_time_s": self.training_time(),
            "log_window": self.window.state_dict(),  # the steps since the last logged row
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.lr = self.scheduler.get_last_lr()[0]
        self.time_before = state.get("training_time_s", 0.0)  # checkpoints before it was kept: this process only
        self.best.load_state_dict(state)
        if state.get("latent_reference"):  # a resumed run's checkpoints keep it until its next validation
            self.validator.reference = LatentReference.from_state_dict(state["latent_reference"])
        set_rng_state(state, self.device)
        self.train_loader.generator.set_state(state["loader_rng"])
        if state.get("log_window"):  # checkpoints before it: the resumed run's first window is a short one
            self.window.load_state_dict(state["log_window"], self.device)
        if state["batches_done"]:  # stopped mid-epoch: replay that epoch's batch order from where it stopped
            self.epoch -= 1
            self.train_loader.skip = self.batches_done = state["batches_done"]


def uses_bf16(cfg, device):
    """Whether the step runs under bf16 autocast: precision 'bf16', or 'auto' on CUDA."""
    return cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")


def mixed_precision(cfg, device):
    """-> (the autocast context: bf16 on CUDA unless precision says otherwise, the device's peak FLOP/s for the
    matmul precision that results, or None where unknown)."""
    use_bf16 = uses_bf16(cfg, device)
    precision = "bf16" if use_bf16 else "tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16), peak_flops(device, precision)


def rng_state(device):
    """The random generators' state, for a checkpoint: torch's, and CUDA's on a GPU."""
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}


def set_rng_state(state, device):
    """Restore rng_state(); CUDA's only on as many GPUs as it was saved from."""
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and len(state.get("cuda_rng", [])) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def report_first_step(logger, seconds, compiled, attention=None):
    """perf/time_to_first_step_s (process start to the first step issued) and perf/first_step_s (that step
    alone, `seconds`; with compile=True it holds the compilation) in the summary, and a console line; on a GPU
    also perf/attention_kernels, the SDPA kernel of each attention call (attention_kernels)."""
    since_start = time.time() - psutil.Process().create_time()
    kernels = ", ".join(f"{k}={v}" for k, v in (attention or {}).items())
    logger.summary({"perf/time_to_first_step_s": since_start, "perf/first_step_s": seconds,
                    **({"perf/attention_kernels": kernels} if kernels else {})})
    logger.write(f"First optimizer step issued {since_start:.1f} s after start (the step itself: {seconds:.2f} s"
                 + (", torch.compile included)" if compiled else ")")
                 + (f"; attention kernels: {kernels}" if kernels else ""))


def early_stopping_line(best, patience):
    where = f"best {best.value:.4g} at epoch {best.epoch}" if best.value is not None else "never finite"
    return (f"Early stopping: val {best.metric} has not improved for {patience} epoch{'s' * (patience != 1)} "
            f"({where}; early_stopping_patience={patience})")


def upload_final_model(logger, checkpoints):
    """--log_model=end, once training has ended (not after a failure): best.pt's weights (alias best) and
    last.pt's (alias latest), one version when they are the same step. Read from the files, which hold only
    finite weights."""
    last, best = checkpoints.last, checkpoints.out_dir / "best.pt"
    if not checkpoints.enabled or not last.is_file():
        return
    final, aliases = model_state(load_checkpoint(last)), ["latest"]
    if best.is_file():
        best_state = model_state(load_checkpoint(best))
        if best_state["step"] == final["step"]:
            aliases.append("best")
        else:
            logger.log_model(best_state, ["best"])
    logger.log_model(final, aliases)


def forwards(model, cfg, device, world_size, compiled):
    """-> (the forward of validation: compiled, a graph of its own with a dynamic batch (evaluation_graph); the
    training forward: compiled, and wrapped in DDP under torchrun so that the gradients are all-reduced)."""
    if not compiled:
        evaluate, forward = model, model
    else:
        evaluate, forward = evaluation_graph(model, cfg.compile_mode), compile_module(model, cfg.compile_mode)
    if world_size == 1:
        return evaluate, forward
    device_ids = [device.index] if device.type == "cuda" else None
    return evaluate, torch.nn.parallel.DistributedDataParallel(forward, device_ids=device_ids)


def build_schedule(optimizer, cfg, total_steps):
    """The learning rate of each step: lr_factor times the optimizer's, over total_steps."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
        lr_factor, warmup_steps=warmup_steps(cfg, total_steps), total_steps=total_steps,
        min_lr_fraction=cfg.min_lr_fraction))


def warmup_steps(cfg, total_steps):
    """The warm-up's length in steps: warmup_fraction of the run, but at least warmup_min_steps or a quarter of the
    run, whichever is fewer; none with warmup_fraction 0. The floor is for short runs: the quick preset cut to four
    epochs of half the data (56 steps) reached its peak rate after 5 steps, and z collapsed on one seed of two; over
    16 steps (warmup_fraction=0.3) or the floor's 14 it did not (docs/LOG.md, sixth and seventh sessions)."""
    if cfg.warmup_fraction == 0:
        return 0
    return max(int(cfg.warmup_fraction * total_steps), min(cfg.warmup_min_steps, total_steps // 4))


def lr_factor(step, warmup_steps, total_steps, min_lr_fraction):
    """The learning-rate schedule: linear warm-up to 1, then cosine decay to min_lr_fraction at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_fraction + (1 - min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def any_rank(flag, device):
    """Is `flag` true on any process? (one all-reduce: a host sync, so only at window ends)"""
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def continue_with(trainer, changed):
    """After a resume with --resume_changes: say what is kept and what changes, and put a new learning rate and
    weight decay into the restored optimizer (the schedule's position is kept; the other fields are read from the
    Config at every step)."""
    if not changed:
        print0("Resume: every data and optimisation setting is the checkpoint's; the run continues exactly")
        return
    for name, (saved, new) in changed.items():
        print0(f"Resume: {name} changes from {saved!r} to {new!r} from step {trainer.step} on")
    groups, scheduler = trainer.optimizer.param_groups, trainer.scheduler
    if "learning_rate" in changed:
        scheduler.base_lrs = [trainer.cfg.learning_rate] * len(groups)
    if "weight_decay" in changed:
        groups[0]["weight_decay"] = trainer.cfg.weight_decay
    for group, base in zip(groups, scheduler.base_lrs):
        group["lr"] = base * scheduler.lr_lambdas[0](scheduler.last_epoch)
    trainer.lr = groups[0]["lr"]


def build_optimizer(model, cfg, device):
    """AdamW with decoupled weight decay on the weight matrices only (not biases, norms, the temperature)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate, betas=(0.9, 0.95), fused=device.type == "cuda",
    )


# ----------------------------------------------------------------------------
# builders: the data, the model, the logger and the Trainer (main() and the benchmark use them)

def flat_config(cfg, wcfg, health):
    """The one resolved configuration, as W&B, the checkpoint and the report see it."""
    return {**asdict(cfg), **asdict(wcfg), **asdict(health)}


# what a model Artifact holds (--log_model): the weights and what sample.py needs to use them (model config,
# tokenizer, which epoch, how best.pt was chosen); no optimizer, RNG state or history
MODEL_STATE = ("model", "model_config", "tokenizer", "epoch", "step", "best_metric", "best_value", "best_epoch",
               "latent_reference")


def model_state(state):
    """The MODEL_STATE part of a checkpoint (Trainer.state_dict())."""
    return {k: state[k] for k in MODEL_STATE if k in state}


def model_config(cfg, tokenizer):
    """The model's configuration from the Config fields and the caption vocabulary."""
    return ModelConfig(vocab_size=len(tokenizer), pad_id=tokenizer.PAD,
                       lead_end_id=tokenizer.stoi.get(".", -1) if cfg.caption_lead_weight != 1 else -1,
                       **{name: getattr(cfg, name) for name in MODEL_FIELDS})


def collection_dir(cfg):
    """The data folder: data_dir, or the bundled collection beside this file."""
    return REPO_DIR / BUNDLED_DATA_DIR if cfg.data_dir == BUNDLED_DATA_DIR else Path(cfg.data_dir)


def load_collection(cfg, generate=True):
    """-> (image+caption items of data_dir, number skipped). The bundled sample is generated on first use
    (by rank 0 under torchrun)."""
    data_dir = collection_dir(cfg)
    if cfg.data_dir == BUNDLED_DATA_DIR:
        from data.engravings import ensure_sample
        if generate:
            ensure_sample(data_dir)
        if dist.is_initialized():
            dist.barrier()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        items = find_items(data_dir)
    report_skipped(caught)
    if cfg.max_items:
        items = items[: cfg.max_items]
    if len(items) < 2:
        raise DataError(f"{data_dir}: found {len(items)} usable image+caption items, need at least 2 "
                        "(layouts: metadata.jsonl / metadata.csv with file_name,text, or a .txt beside each image)")
    return items, len(caught)


def report_skipped(caught, shown=5):
    """Print the first few DataWarnings and a count of the rest, so nothing is skipped silently."""
    for w in caught[:shown]:
        print(format_warning(w.message, w.category, w.filename, w.lineno), end="", file=sys.stderr)
    if len(caught) > shown:
        print(f"warning (DataWarning): ... and {len(caught) - shown} more items skipped", file=sys.stderr)
    if caught:
        print0(f"Skipped items: {len(caught)}")


@dataclass
class Data:
    tokenizer: CaptionTokenizer
    dataset: EngravingDataset
    train_loader: BatchLoader
    val_loader: BatchLoader
    skipped: int  # items of the collection that could not be used
    val_truths: list | None = None  # the generator's ground truth of each validation item (None where unknown)
    train_truths: list | None = None  # ... and of each training item (the probes are fit on a sample of them)
    fingerprint: str = ""  # see fingerprint()


def build_tokenizer(captions, checkpoint):
    """STEP 2: the vocabulary, restored from the checkpoint on resume."""
    if checkpoint:
        tokenizer = CaptionTokenizer.from_state_dict(checkpoint["tokenizer"])
        print0(f"Vocabulary restored from the checkpoint: {len(tokenizer)} tokens")
        return tokenizer
    print0(f"Building vocabulary from the {len(captions)} captions of the training split "
           "(validation words outside it become <unk>)...")
    tokenizer, counts = CaptionTokenizer.build(captions)
    print0("✓ Vocabulary built:")
    print0(f"  Total tokens: {len(tokenizer)}")
    print0(f"  Unique words added: {len(tokenizer) - len(CaptionTokenizer.SPECIALS)}")
    print0(f"  Most common: {counts.most_common(3)}")
    return tokenizer


@dataclass
class Collection:
    """STEP 1's result: the decoded collection, its split and the generator's ground truth of each item."""
    dataset: EngravingDataset
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    truths: list  # per item of dataset: the generator's ground truth, or None
    skipped: int  # items of the collection that could not be used


def load_data(cfg, master_process=True, world_size=1):
    """STEP 1: the collection decoded (the bundled one generated first, by the master process) and split."""
    items, skipped = load_collection(cfg, generate=master_process)
    print0(f"Total captions found: {len(items)}")
    dataset = EngravingDataset(items, CaptionTokenizer([]), cfg.image_size, cfg.max_caption_len, cfg.num_workers,
                               cfg.cache_dir)
    if dataset.cache_file is not None:
        print0(f"Decoded images {'loaded from' if dataset.from_cache else 'saved to'} the cache: {dataset.cache_file}")
    if len(dataset) < len(items):
        print0(f"Unreadable images skipped: {len(items) - len(dataset)}")
    if len(dataset) < 2:
        raise DataError(f"{cfg.data_dir}: fewer than 2 readable images")
    train_idx, val_idx = split_indices(len(dataset), cfg.val_fraction, cfg.seed)
    check_shards(len(train_idx), world_size)
    truth_of = read_truths(collection_dir(cfg))
    truths = [truth_of.get(Path(p).resolve()) for p in dataset.paths]
    needs_truth = cfg.best_metric.startswith("grounded_") or cfg.best_metric in {f"probe_{f}" for f in FIELDS}
    if needs_truth and all(truths[i] is None for i in val_idx.tolist()):
        raise ConfigError(f"--best_metric={cfg.best_metric}: {cfg.data_dir} has no ground truth (the generator's "
                          "'truth' in metadata.jsonl), so it is not measured; choose a loss or another measure")
    return Collection(dataset, train_idx, val_idx, truths, skipped + len(items) - len(dataset))


def tokenize_data(collection, cfg, checkpoint=None):
    """STEP 2: the vocabulary of the training split (the checkpoint's on resume); every caption as its ids."""
    dataset, val_idx = collection.dataset, collection.val_idx
    tokenizer = build_tokenizer([dataset.captions[i] for i in collection.train_idx.tolist()], checkpoint)
    dataset.tokenize(tokenizer, cfg.max_caption_len)
    unknown = int((dataset.tokens[val_idx] == tokenizer.UNK).sum())
    print0(f"  Validation words outside the training vocabulary (<unk>): {unknown}")
    if dataset.num_truncated:
        warnings.warn(f"{dataset.num_truncated} captions are longer than max_caption_len={cfg.max_caption_len} "
                      "tokens and were cut; raise --max_caption_len to keep them whole", DataWarning)
    return tokenizer


def loaders_data(collection, tokenizer, cfg, device, rank=0, world_size=1):
    """STEP 3: the train/val loaders on the device, with everything the Trainer needs of the data."""
    dataset, train_idx, val_idx, truths = (collection.dataset, collection.train_idx, collection.val_idx,
                                           collection.truths)
    train_loader, val_loader = build_loaders(dataset, train_idx, val_idx, cfg, device, rank, world_size)
    shard = train_loader.shard_size()
    if cfg.batch_size > shard:
        where = " of each process" if world_size > 1 else ""
        warnings.warn(f"batch_size={cfg.batch_size} is more than the {shard} training items{where}: every step "
                      f"takes those {shard}, one step an epoch; lower --batch_size for more steps", DataWarning)
    print0(f"Train samples: {len(train_idx)}")
    print0(f"Val samples: {len(val_idx)}")
    print0(f"Batches per epoch: {len(train_loader)}" + (" (per process)" if world_size > 1 else ""))
    return Data(tokenizer, dataset, train_loader, val_loader, collection.skipped,
                [truths[i] for i in val_idx.tolist()], [truths[i] for i in train_idx.tolist()], fingerprint(dataset))


def build_data(cfg, device, rank=0, world_size=1, checkpoint=None):
    """STEPS 1-3 in one call (benchmark.py and the tests; main() prints a banner before each)."""
    collection = load_data(cfg, rank == 0, world_size)
    return loaders_data(collection, tokenize_data(collection, cfg, checkpoint), cfg, device, rank, world_size)


def check_shards(train_items, world_size):
    """Under torchrun each process trains on its own share of the training split: with fewer items than processes
    a share is empty and every epoch would have no step. A DataError then."""
    if train_items < world_size:
        raise DataError(f"{train_items} training item{'s' * (train_items != 1)} for {world_size} processes: each "
                        "process needs at least one; start fewer processes (--nproc_per_node) or use more data")


def build_loaders(dataset, train_idx, val_idx, cfg, device, rank=0, world_size=1):
    """The training loader (shuffled, full batches, this rank's shard) and the validation loader, on the device."""
    shard = dict(rank=rank, world_size=world_size)
    train_loader = BatchLoader(dataset, train_idx, cfg.batch_size, shuffle=True, drop_last=True, seed=cfg.seed, **shard)
    val_loader = BatchLoader(dataset, val_idx, cfg.batch_size, shuffle=False, drop_last=False, **shard)
    return train_loader.to(device), val_loader.to(device)


def fingerprint(dataset):
    """A hash of the collection's file names and captions: a resume must see the same data."""
    h = hashlib.sha256()
    for path, caption in zip(dataset.paths, dataset.captions):
        h.update(f"{Path(path).name}\t{caption}\n".encode())
    return h.hexdigest()[:16]


def reference_levels(data, global_batch, batches=8, seed=0):
    """What each loss component is worth before training, for the dominant-loss analysis:
    loss_image: the MSE of predicting the mean training image (the pixels' variance around it);
    loss_caption: ln(vocabulary), a uniform guess; loss_alignment: ln(global batch), a uniform guess;
    and alignment_floor: the alignment loss a perfect model still has because identical captions in a batch
    cannot be told apart (mean over items of ln(#identical captions in its batch)), on a few random batches."""
    images, tokens = data.train_loader.images, data.train_loader.tokens
    sample = images[: 2048].float().div(255)
    pixel_variance = sample.var(dim=0, correction=0).mean().item()
    g = torch.Generator().manual_seed(seed)
    floors = []
    for _ in range(batches):
        idx = torch.randperm(len(tokens), generator=g)[: global_batch].to(tokens.device)
        batch = tokens[idx]
        same = (batch[:, None, :] == batch[None, :, :]).all(dim=-1).sum(dim=1).float()
        floors.append(same.log().mean().item())
    return {"reference_levels": {"loss_image": pixel_variance, "loss_caption": math.log(len(data.tokenizer)),
                                 "loss_alignment": math.log(global_batch)},
            "alignment_floor": sum(floors) / len(floors)}


def build_model(cfg, tokenizer, device, checkpoint=None):
    """STEP 4: the model (the checkpoint's architecture must match on resume)."""
    model_cfg = model_config(cfg, tokenizer)
    if checkpoint:
        check_model_config(checkpoint, asdict(model_cfg))
    return MultimodalModel(model_cfg).to(device)


# facts known once the data, the model and the Trainer are built, added to the W&B run config to filter runs by
DERIVED_CONFIG = ("world_size", "global_batch_size", "parameters", "vocab_size", "total_steps", "data_fingerprint")


def build_trainer(cfg, wcfg, health, model, data, device, logger, rank=0, world_size=1, checkpoint=None):
    """The Trainer with its checkpoints (written by rank 0 only, the process with a RunLogger); restored from
    the checkpoint on resume."""
    checkpoints = Checkpoints(cfg.out_dir, cfg.checkpoint_every, enabled=rank == 0)
    negatives = cfg.batch_size * (world_size if cfg.contrastive_negatives == "global" else 1)  # the alignment's chance
    run_config = {**reference_levels(data, negatives, seed=cfg.seed), "world_size": world_size,
                  "global_batch_size": cfg.batch_size * world_size, "parameters": model.num_parameters(),
                  "vocab_size": len(data.tokenizer), "data_fingerprint": data.fingerprint}
    trainer = Trainer(cfg, wcfg, health, model, data, device, logger, run_config=run_config, world_size=world_size,
                      checkpoints=checkpoints)
    if checkpoint:
        resume(trainer, checkpoint)
    logger.add_config({name: trainer.run_config[name] for name in DERIVED_CONFIG})
    return trainer


def resume(trainer, checkpoint):
    """Continue the run of the checkpoint: its training state, its logged history (the health monitor replays it)
    and its best results in the summary, with the changes --resume_changes allows."""
    cfg, logger = trainer.cfg, trainer.logger
    changed = check_resume(checkpoint, trainer.run_config, allowed=cfg.resume_changes.split(","))
    trainer.load_state_dict(checkpoint)
    logger.history[:] = checkpoint["history"]
    trainer.monitor = replay(logger.history, trainer.run_config, trainer.health)
    if math.isfinite(trainer.best_val_loss):  # a resumed run keeps the best result so far in its summary
        logger.summary({"best_val_loss": trainer.best_val_loss})
    if trainer.best.epoch:
        logger.summary(trainer.best.summary())
    continue_with(trainer, changed)
    where = f", batch {trainer.batches_done} of epoch {trainer.epoch + 1}" if trainer.batches_done else ""
    print0(f"Resumed from epoch {checkpoint['epoch']}, step {trainer.step}{where}")


# ----------------------------------------------------------------------------
# main

def print0(*args, **kwargs):
    """print() on the master process only: under torchrun one console, on which the other processes only report
    errors and warnings (on stderr)."""
    if int(os.environ.get("RANK", 0)) == 0:
        print(*args, **kwargs)


def print_setup(cfg, wcfg, health, device, world_size):
    print0("=" * 70)
    print0("MULTIMODAL TRAINING WITH W&B LOGGING")
    print0("=" * 70)
    print0()
    if device.type == "cuda":
        print0(f"Using GPU: {torch.cuda.get_device_name(device)}")
    else:
        print0(f"Using CPU ({torch.get_num_threads()} threads)")
        if cfg.width >= 512:
            print0("Note: this config is sized for a GPU; on a CPU try `python train_wandb.py --preset=quick`")
    print0("Config: " + json.dumps(flat_config(cfg, wcfg, health)))
    if world_size > 1:
        print0(f"Distributed: {world_size} processes ({dist.get_backend()}), batch_size {cfg.batch_size} per process, "
               f"{cfg.batch_size * world_size} per optimizer step")


def resume_checkpoint(cfg):
    """The checkpoint to resume from (--resume=True), or None."""
    if not cfg.resume:
        return None
    path = Path(cfg.out_dir) / "last.pt"
    if not path.is_file():
        raise ConfigError(f"--resume=True: no checkpoint at {path}; run once without --resume first")
    return load_checkpoint(path)


def main(argv=None, prepare=None):
    """Train as the command line says. prepare(trainer), if given, is called once the Trainer is built and before
    it trains: the hook through which diagnose.py injects its faults. -> exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print_help()
        return 0
    cfg, wcfg, health = parse_args(argv)
    rank, world_size, device = setup_distributed(cfg)
    master_process = rank == 0  # the one process that prints, logs to W&B and writes checkpoints and the report
    warnings.formatwarning = format_warning
    if master_process:
        check_out_dir(cfg.out_dir)
    with failures_reported(cfg.out_dir):
        if device.type == "cuda":
            configure_cuda()
        torch.manual_seed(cfg.seed)
        print_setup(cfg, wcfg, health, device, world_size)
        checkpoint = resume_checkpoint(cfg)
        print0("\nSTEP 1: Loading dataset...")
        collection = load_data(cfg, master_process, world_size)
        print0("\nSTEP 2: Building tokenizer...")
        tokenizer = tokenize_data(collection, cfg, checkpoint)
        print0("\nSTEP 3: Creating data loaders...")
        data = loaders_data(collection, tokenizer, cfg, device, rank, world_size)
        print0("\nSTEP 4: Building model...")
        model = build_model(cfg, tokenizer, device, checkpoint)
        print0(f"Total parameters: {model.num_parameters():,}")

        print0("\nSTEP 5: Setting up W&B...")
        logger = create_logger(wcfg, flat_config(cfg, wcfg, health), model, rank,
                               run_id=checkpoint.get("wandb_run_id") if checkpoint else None)
        try:
            if os.environ.get("WANDB_SWEEP_ID") and not cfg.resume and logger.run_id:  # sweep trials must not overwrite
                cfg.out_dir = str(Path(cfg.out_dir) / logger.run_id)
                print0(f"Sweep run: checkpoints and report go to {cfg.out_dir}")
            logger.summary({"data/items": len(data.dataset), "data/skipped_items": data.skipped})
            trainer = build_trainer(cfg, wcfg, health, model, data, device, logger, rank, world_size, checkpoint)
        except BaseException:
            logger.call("finish", exit_code=1)  # the W&B run says it failed too
            raise

    if prepare is not None:
        prepare(trainer)
    print0("\nSTEP 6: Starting training...")
    return train(trainer, device, master_process)


def check_out_dir(out_dir):
    """At start-up, not at the first save an epoch later: out_dir is created and written to, or a ConfigError."""
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):  # a real write: permission bits say nothing to root or over NFS
            pass
    except OSError as e:
        raise ConfigError(f"--out_dir={out_dir}: cannot write there ({e.strerror or e})") from None


class ReportError(Exception):
    """report.md or summary.json could not be written: the run ends as failed (exit status 1)."""


class RunFailed(Exception):
    """An unexpected error (a full disk, a bug): reported in one line, its traceback in out_dir/error.log, exit
    status 1."""


@contextlib.contextmanager
def failures_reported(out_dir):
    """An unexpected error in the block becomes RunFailed; the errors that already say what to do pass as they are."""
    try:
        yield
    except (ConfigError, DataError, CheckpointError, LoggerError):
        raise
    except Exception as e:
        raise RunFailed(failure_line(out_dir, e)) from None


def failure_line(out_dir, error):
    """The console line of an unexpected error; its traceback is appended to out_dir/error.log
    (error-rank<N>.log on the other processes under torchrun)."""
    rank = int(os.environ.get("RANK", 0))
    log = Path(out_dir) / ("error.log" if rank == 0 else f"error-rank{rank}.log")
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} python {' '.join(sys.argv)}\n")
            f.write("".join(traceback.format_exception(error)) + "\n")
        where = f"traceback in {log}"
    except OSError as e:
        where = f"its traceback could not be written to {log}: {e.strerror or e}"
    return f"the run failed: {one_line(error)} ({where})"


def train(trainer, device, master_process=True):
    """Run the Trainer to the end, then write the report and close the run whatever happened. -> exit status: 0, 1
    when anything failed unexpectedly (one line; the traceback in out_dir/error.log), 3 when training stopped on a
    non-finite loss or out of memory, 128 + the signal when one stopped it."""
    cfg = trainer.cfg
    install_stop_handlers(trainer)
    start = time.perf_counter()
    status, exit_code, error = "finished", 0, None
    try:
        trainer.fit()
        if trainer.stop_signal is not None:
            status, exit_code = f"interrupted by {trainer.stop_signal}", 128 + signal.Signals[trainer.stop_signal]
        elif cfg.max_steps and trainer.step >= cfg.max_steps:
            status = f"stopped at max_steps={cfg.max_steps}"
        elif trainer.stopped_early:
            patience = cfg.early_stopping_patience
            status = (f"stopped early at epoch {trainer.epoch} of {cfg.num_epochs}: no better val {cfg.best_metric} "
                      f"in {patience} epoch{'s' * (patience != 1)}")
    except TrainingStopped as e:
        status, exit_code, error = f"failed: {e}", 3, f"training stopped: {e}"
    except torch.OutOfMemoryError:
        error = (f"{device} ran out of memory at batch_size={cfg.batch_size}, image_size={cfg.image_size}: lower "
                 f"--batch_size (e.g. {max(1, cfg.batch_size // 2)}) or --image_size; {cfg.out_dir}/last.pt "
                 "holds the last saved state")
        status, exit_code, error = f"failed: {error}", 3, f"training stopped: {error}"
    except Exception as e:  # anything else (a full disk, a failed checkpoint write, a bug) fails the run
        status, exit_code, error = f"failed: {one_line(e)}", 1, failure_line(cfg.out_dir, e)
    except BaseException as e:  # SystemExit, or KeyboardInterrupt without the stop handler: reported, passed on
        status = f"failed: {one_line(e)}"
        raise
    finally:
        elapsed = time.perf_counter() - start
        try:
            finish(trainer, device, status, master_process)
        except Exception as e:  # the report or the closing of the run failed: the run did not end well either
            line = failure_line(cfg.out_dir, e)  # its traceback is logged even when an earlier error is the one shown
            if error is None:
                exit_code, error = 1, line
        if dist.is_initialized():
            dist.destroy_process_group()
    if error:
        print(f"error: {error}", file=sys.stderr)
    else:
        best = trainer.best
        chosen = (f"best.pt: epoch {best.epoch}, val {best.metric} {best.value:.4g}. "
                  if best.metric != "loss_total" and best.value is not None else "")
        print0(f"\nDone in {elapsed:.1f}s ({status}). Best val loss: {trainer.best_val_loss:.4f}. {chosen}"
               f"Checkpoints and report in {cfg.out_dir}/")
    return exit_code


def finish(trainer, device, status, master_process=True):
    """The report (report.md, metrics.csv, summary.json, plots) in out_dir, written by the master process and
    attached to the closed W&B run; ReportError when report.md or summary.json could not be written (the warnings
    before say why)."""
    logger, out_dir = trainer.logger, trainer.checkpoints.out_dir
    elapsed = trainer.training_time()  # the whole run's, a resumed one's included
    logger.summary({"training_time_s": elapsed})
    info = {"status": status, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
            "training_time_s": elapsed, "best_val_loss": trainer.best_val_loss, **trainer.best.summary(),
            "steps": trainer.step, "config": trainer.run_config}
    ok = status == "finished" or status.startswith("stopped ")  # at max_steps, or early
    paths, missing, exit_code = {}, [], 0 if ok else 1
    try:
        if master_process:
            paths = write_report(out_dir, logger.history, trainer.monitor, {**info, "wandb_run": logger.location},
                                 samples=logger.last_samples)
            missing = [name for key, name in (("summary", "summary.json"), ("report", "report.md")) if key not in paths]
        if missing:  # the run failed, if it had not already
            exit_code = 1
            status = status if not ok else f"failed: ReportError: {' and '.join(missing)} not written"
        verdicts = {name: v.status for name, v in trainer.monitor.verdicts().items()} if master_process else {}
    except BaseException:
        exit_code = 1
        logger.call("finish", exit_code=exit_code)  # the W&B run is closed, as failed
        raise
    logger.finish(paths, status, verdicts, trainer.weights, trainer.step, exit_code)
    if missing:
        raise ReportError(f"{' and '.join(missing)} could not be written to {out_dir}")
    if paths:
        print0(f"Report: {paths.get('report', out_dir / 'report.md')}")


def install_stop_handlers(trainer):
    """First SIGINT/SIGTERM: finish the step, save, report, exit 128+signal. A second one: exit at once."""
    def stop(signum, frame):
        trainer.stop_signal = signal.Signals(signum).name
        tqdm.write(f"\n{trainer.stop_signal}: finishing the current step, then saving a checkpoint and the report "
                   "(send it again to quit at once)", file=sys.stderr)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: os._exit(128 + signum))

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def cli(argv=None, prepare=None):
    """main() with its errors as one line and an exit status: 2 for a bad setting, data folder, out_dir or
    checkpoint, 1 for a run that failed unexpectedly."""
    try:
        return main(argv, prepare)
    except (ConfigError, DataError, CheckpointError, LoggerError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
