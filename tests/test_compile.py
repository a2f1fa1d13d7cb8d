"""Compilation (issue 28): the compiled model computes what the eager one does, the Trainer's graphs neither break
nor recompile over two epochs with validation (aot_eager on a CPU: traced, no code generated), and the recompile
counter behind that check does count recompilations."""
import pytest
import torch

import benchmark
import train_wandb
from model_architecture_large import ModelConfig, MultimodalModel

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def small_batch(cfg, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, cfg.image_channels, cfg.image_size, cfg.image_size, generator=g)
    captions = torch.randint(3, cfg.vocab_size, (batch, cfg.max_caption_len), generator=g)
    captions[:, 0], captions[:, -3:] = 1, 0  # <bos> ... <pad>
    return images, captions


def losses_and_grads(forward, model, images, captions):
    model.zero_grad(set_to_none=True)
    out = forward(images, captions)
    loss = train_wandb.total_loss(out, {"image": 1.0, "caption": 1.0, "alignment": 1.0})
    loss.backward()
    return ([out[k].detach() for k in ("loss_image", "loss_caption", "loss_alignment")],
            [p.grad.clone() for p in model.parameters()])


@pytest.mark.slow  # about 10 s of tracing
def test_compiled_and_eager_losses_and_gradients_match():
    torch.manual_seed(0)
    cfg = ModelConfig.small(vocab_size=60, image_size=32, patch_size=8, max_caption_len=12)
    model = MultimodalModel(cfg)
    images, captions = small_batch(cfg)
    eager_losses, eager_grads = losses_and_grads(model, model, images, captions)
    compiled = train_wandb.compile_module(model, "aot_eager")
    losses, grads = losses_and_grads(compiled, model, images, captions)
    for a, b in zip(losses + grads, eager_losses + eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # about 7 s of tracing
def test_the_evaluation_graph_takes_a_smaller_last_batch_without_recompiling():
    torch._dynamo.reset()
    cfg = ModelConfig.small(vocab_size=60, image_size=32, patch_size=8, max_caption_len=12)
    model = MultimodalModel(cfg).eval()
    forward = train_wandb.evaluation_graph(model, "aot_eager")
    images, captions = small_batch(cfg, batch=6)
    with benchmark.recompile_log() as recompiles, torch.no_grad():
        full, last = forward(images[:4], captions[:4]), forward(images[4:], captions[4:])
    assert recompiles == []
    assert full["z"].shape[0] == 4 and last["z"].shape[0] == 2
    torch.testing.assert_close(last["z"], model(images[4:], captions[4:])["z"])


def test_the_recompile_log_counts_a_recompilation():
    torch._dynamo.reset()
    double = torch.compile(lambda x: 2 * x, backend="aot_eager", dynamic=False)
    with benchmark.recompile_log() as recompiles:
        double(torch.ones(3))
        double(torch.ones(3))
        assert recompiles == []
        double(torch.ones(5))  # a new static shape: compiled again
    assert len(recompiles) == 1 and "size mismatch" in recompiles[0]


@pytest.mark.slow  # about 10 s of tracing
def test_compiled_and_eager_agree_under_bf16_autocast_with_the_bf16_residual_stream():
    # the branch CUDA runs: the stream cast at each transformer's input, LayerNorm with CUDA's autocast turned off
    torch.manual_seed(0)
    cfg = ModelConfig.small(vocab_size=60, image_size=32, patch_size=8, max_caption_len=12, bf16_residual=True)
    model = MultimodalModel(cfg)
    images, captions = small_batch(cfg)
    compiled = train_wandb.compile_module(model, "aot_eager")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eager_losses, eager_grads = losses_and_grads(model, model, images, captions)
        losses, grads = losses_and_grads(compiled, model, images, captions)
    for a, b in zip(losses + grads, eager_losses + eager_grads):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-3)  # bf16's rounding, where the traced graph may order
        # an op differently


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["auto", "bf16"])  # bf16: the autocast branches CUDA takes
def test_check_compile_finds_no_graph_break_and_no_recompile(capsys, tmp_path, monkeypatch, precision):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    assert benchmark.main(["--check-compile", "--preset=quick", "--device=cpu", f"--precision={precision}"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "graph breaks: 0, recompiles: 0"


def test_the_graphs_beside_the_training_forward_never_replay_cuda_graphs():
    # a CUDA graph's outputs are overwritten by its next replay: the step's metrics live for a log window
    for mode in train_wandb.COMPILE_MODES:
        other = train_wandb.without_cudagraphs(mode)
        assert other in train_wandb.COMPILE_MODES and other not in train_wandb.CUDAGRAPH_MODES
    assert train_wandb.without_cudagraphs("reduce-overhead") == "default"
    assert train_wandb.without_cudagraphs("max-autotune") == "max-autotune-no-cudagraphs"


def test_configure_cuda_puts_cudnn_attention_first_for_the_whole_process():
    import subprocess
    import sys
    code = ("import gc, torch, train_wandb; train_wandb.configure_cuda(); gc.collect(); "
            "from torch.nn.attention import _cur_sdpa_kernel_backends as cur; "
            "print([b.name for b in cur(with_priority=True)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=train_wandb.REPO_DIR).stdout
    assert out.split() == ["['CUDNN_ATTENTION',", "'FLASH_ATTENTION',", "'EFFICIENT_ATTENTION',", "'MATH']"]


def test_attention_kernels_names_the_kernel_of_each_attention_call():
    kernels = train_wandb.attention_kernels(ModelConfig.small(), 2, torch.device("cpu"), torch.float32)
    assert set(kernels) == {"image", "caption_decoder", "caption_encoder"}
    assert set(kernels.values()) <= {"cudnn", "flash", "efficient", "math", "other"}


class RecordingLogger:
    def __init__(self):
        self.values, self.lines = {}, []

    def summary(self, values):
        self.values.update(values)

    def write(self, line):
        self.lines.append(line)


def test_the_first_step_report_names_the_attention_kernels_where_there_are_any():
    gpu, cpu = RecordingLogger(), RecordingLogger()
    train_wandb.report_first_step(gpu, 1.5, True, {"image": "cudnn", "caption_decoder": "flash"})
    train_wandb.report_first_step(cpu, 1.5, False)
    assert gpu.values["perf/attention_kernels"] == "image=cudnn, caption_decoder=flash"
    assert gpu.lines[0].endswith("(the step itself: 1.50 s, torch.compile included); attention kernels: "
                                 "image=cudnn, caption_decoder=flash")
    assert "perf/attention_kernels" not in cpu.values and cpu.lines[0].endswith("(the step itself: 1.50 s)")
