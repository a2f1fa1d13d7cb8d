"""Which attention kernel is fastest at the default model's shapes: cuDNN, flash and memory-efficient SDPA, forward
and backward, on a CUDA GPU (issue 28, item 5). Needs torch and model_architecture_large only (no wandb).

    python tools/sdpa_backends.py                  # batch 128, the default ModelConfig, bf16
    python tools/sdpa_backends.py --batch=16

For each attention shape the model has (the image encoder's and decoder's patches, the caption decoder's causal
sequence, the caption encoder's sequence with its padding mask), each backend that accepts it is timed with CUDA
events: the median of --repeats forward+backward passes after warm-up. The last line is one JSON object.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model_architecture_large import ModelConfig  # noqa: E402

BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def shapes(cfg, batch):
    """name -> (sequence length, is_causal, key-padding mask or None, calls per training step)."""
    L = cfg.max_caption_len
    mask = torch.ones(batch, 1, 1, L, dtype=torch.bool, device="cuda")
    mask[:, :, :, L // 2:] = False  # half the positions padding, as short captions leave them
    return {"image (encoder + decoder)": (cfg.num_patches, False, None,
                                          cfg.image_encoder_depth + cfg.image_decoder_depth),
            "caption decoder (causal)": (L, True, None, cfg.caption_decoder_depth),
            "caption encoder (padding mask)": (L, False, mask, cfg.caption_encoder_depth)}


def time_backend(backend, q, k, v, is_causal, mask, repeats):
    """Median ms of one forward + backward with only `backend` allowed, or None where it refuses the inputs."""
    grad = torch.randn_like(q)
    times = []
    try:
        with sdpa_kernel([backend]):
            for i in range(repeats + 3):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
                out.backward(grad)
                end.record()
                torch.cuda.synchronize()
                if i >= 3:  # the first passes pick and load kernels
                    times.append(start.elapsed_time(end))
                q.grad = k.grad = v.grad = None
    except RuntimeError as e:  # "No available kernel" and the like: this backend does not take these inputs
        return None, str(e).splitlines()[0][:120]
    return statistics.median(times), None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: sdpa_backends.py needs a CUDA GPU")
        return 2
    cfg = ModelConfig()
    H, hs = cfg.num_heads, cfg.width // cfg.num_heads
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, batch {args.batch}, {H} heads of {hs}, bf16; "
          "ms per forward + backward (median of %d)" % args.repeats)
    results = {}
    for name, (T, is_causal, mask, calls) in shapes(cfg, args.batch).items():
        q, k, v = (torch.randn(args.batch, H, T, hs, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                   for _ in range(3))
        row = {}
        for label, backend in BACKENDS.items():
            ms, refused = time_backend(backend, q, k, v, is_causal, mask, args.repeats)
            row[label] = ms
            timing = f"{ms:8.3f} ms" if ms is not None else f"refused: {refused}"
            print(f"  {name:<32} T={T:<4} {label:<10} {timing}")
        timed = {k: v for k, v in row.items() if v is not None}
        best = min(timed, key=timed.get) if timed else None
        results[name] = {"T": T, "calls_per_step": calls, "ms": row, "fastest": best}
        if best:
            print(f"  {'':<32} fastest: {best}; {calls} calls a step")
    with sdpa_kernel(list(BACKENDS.values())):  # what PyTorch picks by itself, for the log
        q = torch.randn(2, H, cfg.num_patches, hs, device="cuda", dtype=torch.bfloat16)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            F.scaled_dot_product_attention(q, q, q)
            torch.cuda.synchronize()
        picked = sorted({e.name for e in prof.events() if "attention" in e.name.lower() or "fmha" in e.name.lower()})
    print(f"PyTorch's own choice at T={cfg.num_patches}: {', '.join(picked) or 'unknown'}")
    print(json.dumps({"device": torch.cuda.get_device_name(), "batch": args.batch, "shapes": results,
                      "default_kernels": picked}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
