"""A roofline model of one training step, counted on meta tensors (no GPU, no real arithmetic).

    python benchmark.py --roofline                  # the default ~84M config, batch 128, bf16 autocast
    python benchmark.py --roofline --preset=seed    # any preset or --field=value of train_wandb.py

OpCounter, a TorchDispatchMode, sees every aten op of the step (forward, backward, the Trainer's metrics, gradient
clipping, AdamW) and records per op: FLOPs (torch.utils.flop_counter's formulas: matmuls, convolutions, attention),
bytes moved (every tensor read plus every tensor written, each once, at its dtype) and one kernel launch; views and
allocations cost nothing. On a GPU an op takes at least max(flops / peak, bytes / bandwidth) plus a launch gap, so
their sum predicts the eager step time from datasheet numbers alone. It ignores caches (a tensor read twice by
one op counts once, one read by two ops counts twice) and kernels below their roofline, so it is a lower bound on
what eager PyTorch can reach; torch.compile moves toward it by fusing the memory-bound ops.

Meta tensors have no autocast, so AutocastLikeCuda emulates CUDA's bf16 autocast above autograd, as autocast itself
sits: matmul-class ops cast their fp32 inputs to bf16, the fp32-list ops (layer_norm, softmax, losses, ...) cast
bf16 inputs to fp32, the rest follow type promotion; each cast is an op of its own, as on the GPU. Attention is one
fused kernel on the GPU (flash, cuDNN or memory-efficient), not the math decomposition meta tensors get, so it is
recorded as one op forward and one backward (FusedAttention).
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from unittest import mock

import torch
import torch.nn.functional as F
import torch.utils._foreach_utils as foreach_utils
import torch.utils.flop_counter as flop_counter
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# Datasheet numbers, dense (no sparsity): bf16 and TF32 tensor-core FLOP/s, HBM bandwidth in bytes/s.
# NVIDIA H100 Tensor Core GPU datasheet (SXM5: 989.4 TFLOP/s bf16, 494.7 TF32, 3.35 TB/s HBM3) and
# NVIDIA H200 Tensor Core GPU datasheet (SXM: the same tensor cores, 4.8 TB/s HBM3e). train_wandb.PEAK_FLOPS
# holds the same FLOP/s for MFU.
GPUS = {
    "H100 SXM": {"bf16": 989e12, "tf32": 495e12, "bandwidth": 3.35e12},
    "H200": {"bf16": 989e12, "tf32": 495e12, "bandwidth": 4.8e12},
}
LAUNCH_GAP_S = 2e-6  # GPU time between two dependent kernels (launch latency and ramp), per kernel
# Host time eager PyTorch spends per op (Python, modules, autograd, dispatcher, the launch), calibrated on the
# seed's batch of 16, which is bound by it: 660 samples/s on an H200 at 81c58e9 (issue 28) is 24.2 ms per step
# for the 885 ops this model counts there (see predict)
HOST_PER_OP_S = 27e-6

# ops that move no data and launch nothing: aliases, metadata and allocations
FREE_OPS = {"detach", "alias", "_unsafe_view", "lift_fresh", "empty", "empty_like", "empty_strided", "new_empty",
            "new_empty_strided", "_local_scalar_dense", "set_", "_to_copy_meta", "record_stream"}

# CUDA autocast's op lists (torch.amp docs, "CUDA Ops that can autocast to float16 / to float32"), by function name
LOWER_PRECISION = {"linear", "conv1d", "conv2d", "conv3d", "matmul", "__matmul__", "__rmatmul__", "mm", "bmm",
                   "addmm", "baddbmm", "scaled_dot_product_attention"}
FP32 = {"layer_norm", "group_norm", "softmax", "log_softmax", "cross_entropy", "nll_loss", "mse_loss", "l1_loss",
        "normalize", "norm", "sum", "prod", "cumsum", "exp", "log", "pow", "__pow__", "__rpow__", "rsqrt",
        "reciprocal", "softplus", "cosine_similarity", "__rtruediv__", "__rdiv__"}


@dataclass
class Op:
    name: str  # aten op and the dtype of its first tensor input, e.g. "mm bf16"
    phase: str  # forward, backward, metrics, optimizer (whatever the caller set on the counter)
    flops: float
    bytes: float
    launches: int = 1


def tensor_bytes(t):
    """Bytes a kernel touches for t: its elements at its dtype, broadcast (stride-0) dimensions counted once."""
    n = math.prod(s for s, st in zip(t.shape, t.stride()) if st != 0) if t.dim() else 1
    return n * t.element_size()


def _tensors(tree):
    return [x for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor)]


def _dtype_name(dtype):
    return {torch.bfloat16: "bf16", torch.float32: "fp32", torch.float16: "fp16"}.get(dtype, str(dtype).split(".")[-1])


class OpCounter(TorchDispatchMode):
    """Records an Op for every aten op that runs under it; `phase` labels the ops that follow, `quiet` skips them
    (FusedAttention's math, which stands for one fused kernel recorded by itself)."""

    def __init__(self):
        super().__init__()
        self.ops, self.phase, self.quiet = [], "forward", False

    def record(self, name, flops, nbytes, launches=1):
        self.ops.append(Op(name, self.phase, flops, nbytes, launches))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if self.quiet or func.is_view or name in FREE_OPS or func.namespace == "prim":
            return out
        inputs = _tensors((args, kwargs))
        written = [a for a, arg in zip(args, func._schema.arguments) if arg.alias_info and arg.alias_info.is_write]
        nbytes = sum(map(tensor_bytes, inputs)) + sum(map(tensor_bytes, _tensors(written) or _tensors(out)))
        flops = 0
        if func.overloadpacket in flop_counter.flop_registry:
            flops = flop_counter.flop_registry[func.overloadpacket](*args, **kwargs, out_val=out)
        dtype = inputs[0].dtype if inputs else None
        self.record(f"{name} {_dtype_name(dtype)}" if dtype else name, flops, nbytes)
        return out


class FusedAttention(torch.autograd.Function):
    """scaled_dot_product_attention as the GPU runs it: one kernel forward, one backward, recorded as such; the
    values come from the math path run quietly (meta tensors: no arithmetic either way)."""

    @staticmethod
    def forward(ctx, counter, q, k, v, attn_mask, is_causal):
        ctx.counter, ctx.attn_mask, ctx.is_causal = counter, attn_mask, is_causal
        ctx.save_for_backward(q, k, v)
        counter.quiet = True
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        counter.quiet = False
        lse = q.shape[0] * q.shape[1] * q.shape[2] * 4  # the fp32 log-sum-exp per query row, kept for backward
        extra = tensor_bytes(attn_mask) if attn_mask is not None else 0
        kind = "flash" if attn_mask is None else "masked"
        counter.record(f"attention_{kind} {_dtype_name(q.dtype)}",
                       flop_counter.sdpa_flop_count(q.shape, k.shape, v.shape),
                       sum(map(tensor_bytes, (q, k, v, out))) + lse + extra)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v = ctx.saved_tensors
        counter = ctx.counter
        counter.quiet = True
        with torch.enable_grad():
            q_, k_, v_ = (t.detach().requires_grad_() for t in (q, k, v))
            out = F.scaled_dot_product_attention(q_, k_, v_, attn_mask=ctx.attn_mask, is_causal=ctx.is_causal)
            dq, dk, dv = torch.autograd.grad(out, (q_, k_, v_), grad_out)
        counter.quiet = False
        lse = q.shape[0] * q.shape[1] * q.shape[2] * 4
        kind = "flash" if ctx.attn_mask is None else "masked"
        counter.record(f"attention_{kind}_backward {_dtype_name(q.dtype)}",
                       flop_counter.sdpa_backward_flop_count(grad_out.shape, q.shape, k.shape, v.shape),
                       sum(map(tensor_bytes, (q, k, v, out, grad_out, dq, dk, dv))) + lse)
        return None, dq, dk, dv, None, None


class AutocastLikeCuda(TorchFunctionMode):
    """CUDA's bf16 autocast for meta tensors (see the module docstring), and fused attention; with bf16=False
    only the fused attention.

    Inside it, CUDA's autocast flag and dtype are set as `torch.autocast("cuda", torch.bfloat16)` sets them (without
    its check for a GPU): the model reads them (model_architecture_large.autocast_dtype), and a region the model
    runs with CUDA's autocast off is emulated without casts. Meta tensors never dispatch to CUDA's autocast
    kernels, so the flag changes nothing else."""

    def __init__(self, counter, bf16=True):
        super().__init__()
        self.counter, self.bf16 = counter, bf16

    def __enter__(self):
        self.saved = torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
        torch.set_autocast_enabled("cuda", self.bf16)
        torch.set_autocast_dtype("cuda", torch.bfloat16)
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        torch.set_autocast_enabled("cuda", self.saved[0])
        torch.set_autocast_dtype("cuda", self.saved[1])

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in LOWER_PRECISION | FP32 and torch.is_autocast_enabled("cuda"):
            to = torch.bfloat16 if name in LOWER_PRECISION else torch.float32

            def cast(x):
                floating = isinstance(x, torch.Tensor) and x.dtype in (torch.float32, torch.bfloat16)
                return x.to(to) if floating and x.dtype != to else x
            args, kwargs = [cast(a) for a in args], {k: cast(v) for k, v in kwargs.items()}
        if name == "scaled_dot_product_attention":
            q, k, v = args[:3]
            return FusedAttention.apply(self.counter, q, k, v, kwargs.get("attn_mask"), kwargs.get("is_causal", False))
        return func(*args, **kwargs)


# ----------------------------------------------------------------------------
# the step


@dataclass
class StepCount:
    ops: list
    parameters: int
    batch_size: int

    def totals(self, phase=None):
        ops = [o for o in self.ops if phase is None or o.phase == phase]
        return {"flops": sum(o.flops for o in ops), "bytes": sum(o.bytes for o in ops),
                "launches": sum(o.launches for o in ops)}


def count_step(model_cfg, batch_size, bf16=True, weights=None, track_gradients=True, log_step=True,
               fused_adamw=True):
    """Count one training step of train_wandb's Trainer on meta tensors: forward and loss under (emulated) bf16
    autocast, backward, the step's metrics, gradient clipping at 1.0 and AdamW. -> StepCount

    The same sequence as Trainer.train_step (and benchmark.py's bare loop). fused_adamw: AdamW as the fused CUDA
    kernel the Trainer uses on a GPU, recorded as one op reading parameters, gradients and both moments and writing
    the three back (28 bytes per fp32 parameter); meta tensors cannot run it. log_step: whether this step is one
    that logs (gradient_stats' L1 and L-infinity norms are taken then only)."""
    import train_wandb as tw
    from model_architecture_large import MultimodalModel

    weights = weights or {"image": 1.0, "caption": 1.0, "alignment": 1.0}
    with torch.device("meta"):
        model = MultimodalModel(model_cfg)
        images_u8 = torch.empty(batch_size, model_cfg.image_channels, model_cfg.image_size, model_cfg.image_size,
                                dtype=torch.uint8)
        captions = torch.zeros(batch_size, model_cfg.max_caption_len, dtype=torch.long)
    params = [p for p in model.parameters() if p.requires_grad]
    counter = OpCounter()
    with counter, AutocastLikeCuda(counter, bf16=bf16):
        images = images_u8.float().div_(255)
        out = model(images, captions)
        loss = tw.total_loss(out, weights)
    counter.phase = "backward"
    with counter:
        loss.backward()
    counter.phase = "metrics"
    # clipping takes the foreach kernels on a GPU; meta tensors would get the one-op-per-tensor fallback
    cuda_like = mock.patch.object(foreach_utils, "_get_foreach_kernels_supported_devices",
                                  lambda: ["cuda", "meta"])
    with counter, torch.no_grad(), cuda_like:
        tw.step_metrics(out, images, model_cfg.pad_id, weights, params, track_gradients, 1.0, log_step)
        tw.latent_diversity(out["z"].detach())  # and Trainer.custom_metrics' caption_length
        (captions != model_cfg.pad_id).sum(dim=1).float().mean()
    counter.phase = "optimizer"
    with counter:
        if fused_adamw:
            n = sum(p.numel() for p in params)
            counter.record("_fused_adamw_ fp32", 0, 28 * n, launches=math.ceil(len(params) / 110))
        else:
            torch.optim.AdamW(params, lr=1e-3, foreach=True).step()
        model.clamp_logit_scale_()
    return StepCount(counter.ops, sum(p.numel() for p in params), batch_size)


def predict(count, gpu):
    """-> dict: predicted seconds of the step on `gpu` (a GPUS key): gpu_s, the sum over ops of
    max(flops / peak, bytes / bandwidth) + LAUNCH_GAP_S (a matmul in bf16 at the bf16 peak, any other at TF32's);
    host_s, eager PyTorch's dispatch time (launches x HOST_PER_OP_S); step_s, the larger: eager runs ahead of the
    GPU only while the GPU is the slower; and per op name its GPU seconds."""
    spec = GPUS[gpu]
    by_name = defaultdict(float)
    for o in count.ops:
        peak = spec["bf16"] if o.name.endswith("bf16") else spec["tf32"]
        by_name[o.name] += max(o.flops / peak, o.bytes / spec["bandwidth"]) + o.launches * LAUNCH_GAP_S
    launches = sum(o.launches for o in count.ops)
    gpu_s, host_s = sum(by_name.values()), launches * HOST_PER_OP_S
    return {"gpu_s": gpu_s, "host_s": host_s, "step_s": max(gpu_s, host_s), "by_name": dict(by_name)}


def report(count, top=12):
    """The printed roofline: totals per phase, the prediction on each GPU and the top ops by predicted time."""
    lines = []
    for phase in ("forward", "backward", "metrics", "optimizer", None):
        t = count.totals(phase)
        lines.append(f"  {phase or 'step':<9} {t['flops'] / 1e12:8.3f} TFLOP {t['bytes'] / 1e9:8.3f} GB "
                     f"{t['launches']:6d} launches")
    for gpu in GPUS:
        p = predict(count, gpu)
        lines.append(f"{gpu}: predicted {p['step_s'] * 1e3:.2f} ms/step = {count.batch_size / p['step_s']:,.0f} "
                     f"samples/s (GPU {p['gpu_s'] * 1e3:.2f} ms, eager host {p['host_s'] * 1e3:.2f} ms)")
    p = predict(count, "H100 SXM")
    lines.append(f"Top ops by predicted H100 SXM time (of {p['gpu_s'] * 1e3:.2f} ms):")
    agg = defaultdict(lambda: [0.0, 0.0, 0])
    for o in count.ops:
        a = agg[o.name]
        a[0], a[1], a[2] = a[0] + o.flops, a[1] + o.bytes, a[2] + o.launches
    for name, s in sorted(p["by_name"].items(), key=lambda kv: -kv[1])[:top]:
        flops, nbytes, launches = agg[name]
        lines.append(f"  {name:<40} {s * 1e3:7.3f} ms {100 * s / p['gpu_s']:5.1f}%  {flops / 1e9:9.1f} GFLOP "
                     f"{nbytes / 1e9:7.3f} GB {launches:5d} launches")
    return "\n".join(lines)
