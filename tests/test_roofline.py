"""The roofline model (roofline.py): FLOPs, bytes and launches of known ops on meta tensors, the emulated bf16
autocast, fused attention, and a whole step against the analytic FLOP count."""
import json

import pytest
import torch
import torch.nn.functional as F

import roofline
from model_architecture_large import ModelConfig, estimate_flops


def counted(fn, bf16=False):
    counter = roofline.OpCounter()
    with counter, roofline.AutocastLikeCuda(counter, bf16=bf16):
        result = fn()
    return counter.ops, result


def meta(*shape, dtype=torch.float32, grad=False):
    return torch.empty(*shape, dtype=dtype, device="meta", requires_grad=grad)


def test_a_matmul_counts_2mnk_flops_and_reads_both_operands_and_writes_the_result():
    a, b = meta(64, 128, dtype=torch.bfloat16), meta(128, 32, dtype=torch.bfloat16)
    ops, _ = counted(lambda: a @ b)
    bf16_bytes = 2 * (64 * 128 + 128 * 32 + 64 * 32)
    assert [(o.name, o.flops, o.bytes) for o in ops] == [("mm bf16", 2 * 64 * 128 * 32, bf16_bytes)]


def test_an_elementwise_op_moves_its_inputs_and_output_and_a_broadcast_operand_once():
    x, y = meta(1000), meta(1000)
    ops, _ = counted(lambda: x + y)
    assert [(o.name, o.flops, o.bytes) for o in ops] == [("add fp32", 0, 3 * 4000)]
    ops, _ = counted(lambda: x + meta(1).expand(1000))
    assert ops[0].bytes == 4000 + 4 + 4000


def test_an_in_place_op_reads_and_writes_its_tensor_and_views_cost_nothing():
    x = meta(10, 100)
    ops, _ = counted(lambda: x.view(1000).unsqueeze(0).mul_(2))
    assert [(o.name, o.bytes, o.launches) for o in ops] == [("mul_ fp32", 8000, 1)]


def test_emulated_autocast_runs_linear_in_bf16_after_a_cast_and_layer_norm_in_fp32():
    lin, x = torch.nn.Linear(64, 32, device="meta"), meta(8, 64)
    ops, y = counted(lambda: F.layer_norm(lin(x), (32,)), bf16=True)
    assert y.dtype == torch.float32
    assert [o.name for o in ops] == ["_to_copy fp32"] * 3 + ["addmm bf16", "_to_copy bf16", "native_layer_norm fp32"]
    ops, y = counted(lambda: lin(x), bf16=False)
    assert y.dtype == torch.float32 and [o.name for o in ops] == ["addmm fp32"]


def test_attention_is_one_fused_op_forward_and_one_backward():
    q = meta(2, 4, 16, 8, dtype=torch.bfloat16, grad=True)

    def step():
        F.scaled_dot_product_attention(q, q, q, is_causal=True).sum().backward()
    ops, _ = counted(step)
    attention = [o for o in ops if o.name.startswith("attention")]
    assert [o.name for o in attention] == ["attention_flash bf16", "attention_flash_backward bf16"]
    assert attention[0].flops == 4 * 2 * 4 * 16 * 16 * 8
    assert attention[0].bytes == 4 * (2 * 4 * 16 * 8 * 2) + 2 * 4 * 16 * 4  # q, k, v, out and the fp32 log-sum-exp
    assert not any(o.name.startswith(("bmm", "_softmax", "_safe_softmax")) for o in ops)  # the math path is hidden


@pytest.mark.parametrize("bf16", [True, False])
def test_a_step_counts_the_analytic_flops_and_every_phase(bf16):
    cfg = ModelConfig(vocab_size=1266)
    count = roofline.count_step(cfg, batch_size=8, bf16=bf16)
    # within 1%: FlopCounterMode's formulas differ from estimate_flops' only in the backward (test_performance.py)
    # and the metrics' few matmuls
    assert count.totals()["flops"] == pytest.approx(8 * estimate_flops(cfg, batch_size=8)["training"], rel=0.01)
    assert all(count.totals(phase)["launches"] > 0 for phase in ("forward", "backward", "metrics", "optimizer"))
    h100, h200 = roofline.predict(count, "H100 SXM"), roofline.predict(count, "H200")
    assert h200["gpu_s"] < h100["gpu_s"]  # the same FLOP/s, more bandwidth
    assert h100["step_s"] == max(h100["gpu_s"], h100["host_s"])


def test_benchmark_roofline_prints_both_gpus_and_the_top_ops(capsys):
    import benchmark
    assert benchmark.main(["--roofline", "--preset=quick", "--device=cpu"]) == 0
    out = capsys.readouterr().out
    assert "H100 SXM: predicted" in out and "H200: predicted" in out and "Top ops" in out
    last = json.loads(out.strip().splitlines()[-1])  # for tools/gpu_check.sh
    assert last["batch_size"] == 64 and set(last["roofline"]) == {"H100 SXM", "H200"}
    assert last["roofline"]["H200"]["samples_per_s"] > 0


def test_a_norm_the_model_runs_with_cuda_autocast_off_keeps_bf16():
    # model_architecture_large.LayerNorm turns CUDA's autocast off around a bf16 input; the emulation follows the flag
    from model_architecture_large import LayerNorm
    with torch.device("meta"):
        norm = LayerNorm(32)
    ops, y = counted(lambda: norm(meta(8, 32, dtype=torch.bfloat16)), bf16=True)
    assert y.dtype == torch.bfloat16 and "native_layer_norm bf16" in [o.name for o in ops]
    ops, y = counted(lambda: F.layer_norm(meta(8, 32, dtype=torch.bfloat16), (32,)), bf16=True)
    assert y.dtype == torch.float32  # a plain layer_norm is still autocast's fp32 op


def test_the_bf16_residual_stream_moves_fewer_bytes_and_leaves_no_fp32_norm_in_the_forward():
    counts = {flag: roofline.count_step(ModelConfig(vocab_size=1266, bf16_residual=flag), batch_size=8)
              for flag in (True, False)}

    def forward_bytes(flag, name):
        return sum(o.bytes for o in counts[flag].ops if o.phase == "forward" and o.name == name)
    assert forward_bytes(False, "native_layer_norm fp32") > 0 and forward_bytes(True, "native_layer_norm fp32") == 0
    # the fp32 adds left are each transformer's input (an fp32 parameter added before the cast) and the losses'
    assert forward_bytes(True, "add fp32") < 0.1 * forward_bytes(False, "add fp32")
    # at batch 8 the weights' casts and AdamW's 28 bytes a parameter are most of the bytes; at 128, 21% fewer
    assert counts[True].totals()["bytes"] < 0.95 * counts[False].totals()["bytes"]
    assert counts[True].totals()["flops"] == counts[False].totals()["flops"]
