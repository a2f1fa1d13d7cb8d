"""Each logged metric's definition, checked on tensors whose answer is known by hand."""
import io
import math
import sys
import time

import psutil
import pytest
import torch

import train_wandb
from train_wandb import (
    LogWindow,
    MetricWindow,
    caption_perplexity,
    caption_stats,
    gradient_stats,
    hardware_stats,
    image_errors,
    latent_diversity,
    latent_stats,
    peak_flops,
    throughput_stats,
    total_loss,
)


def test_latent_stats_on_known_latents():
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    stats = latent_stats(z)
    assert stats["latent_mean"].item() == pytest.approx(1.75)
    assert stats["latent_std"].item() == pytest.approx(math.sqrt(12.75 / 3))  # unbiased std of 3, 4, 0, 0
    assert stats["latent_norm"].item() == pytest.approx(2.5)  # mean of per-sample L2 norms 5 and 0


def test_image_errors_on_known_pixels():
    target = torch.tensor([0.5, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    stats = image_errors(torch.zeros_like(target), target)
    assert stats["image_mse"].item() == pytest.approx((0.25 + 1.0) / 4)
    assert stats["image_l1"].item() == pytest.approx(1.5 / 4)
    assert stats["image_mse"].item() >= stats["image_l1"].item() ** 2


def test_caption_accuracy_counts_only_non_pad_targets():
    pad = 0
    targets = torch.tensor([[2, 3, pad, pad]])
    logits = torch.full((1, 4, 5), -10.0)
    logits[0, 0, 2] = 10.0  # right
    logits[0, 1, 4] = 10.0  # wrong
    logits[0, 2, 1] = 10.0  # pad position: ignored
    logits[0, 3, pad] = 10.0  # pad position predicted as pad: still ignored
    assert caption_stats(logits, targets, pad)["caption_accuracy"].item() == pytest.approx(0.5)


def test_caption_entropy_is_log_vocab_for_uniform_predictions_and_zero_for_certain_ones():
    targets = torch.tensor([[1, 2, 0]])
    uniform = caption_stats(torch.zeros(1, 3, 7), targets, 0)["caption_entropy"].item()
    assert uniform == pytest.approx(math.log(7), rel=1e-5)
    certain = torch.full((1, 3, 7), -1e4)
    certain[..., 1] = 1e4
    assert caption_stats(certain, targets, 0)["caption_entropy"].item() == pytest.approx(0.0, abs=1e-6)


def test_caption_perplexity_is_exp_of_mean_caption_loss():
    assert caption_perplexity(math.log(5.0)) == pytest.approx(5.0)
    assert math.isfinite(caption_perplexity(1e6))


def test_gradient_stats_on_known_gradients():
    grads = [torch.tensor([3.0, -4.0]), torch.tensor([[0.0, 12.0]])]
    stats = gradient_stats(grads)
    assert stats["grad_norm"].item() == pytest.approx(13.0)  # sqrt(9 + 16 + 144)
    assert stats["grad_mean"].item() == pytest.approx(19.0 / 4)
    assert stats["grad_max"].item() == pytest.approx(12.0)


def test_gradient_stats_without_extremes_take_the_l2_norm_alone():
    grads = [torch.tensor([3.0, -4.0]), torch.tensor([[0.0, 12.0]])]
    assert gradient_stats(grads, extremes=False) == {"grad_norm": gradient_stats(grads)["grad_norm"]}


def test_a_metric_of_some_steps_only_is_averaged_over_those_steps():
    window = MetricWindow()
    window.add({"loss_total": torch.tensor(1.0)})
    window.add({"loss_total": torch.tensor(3.0), "grad_mean": torch.tensor(0.5), "grad_max": torch.tensor(2.0)})
    row = window.means()
    assert row["loss_total"] == 2.0 and row["grad_mean"] == 0.5 and row["grad_max"] == 2.0


def test_gradient_stats_are_ordered_for_random_gradients():
    torch.manual_seed(0)
    grads = [torch.randn(17, 5), torch.randn(3), torch.randn(2, 2, 2) * 100]
    s = {k: v.item() for k, v in gradient_stats(grads).items()}
    assert 0 <= s["grad_mean"] <= s["grad_max"] <= s["grad_norm"]


def test_total_loss_is_the_weighted_sum_of_the_components():
    out = {"loss_image": torch.tensor(0.5), "loss_caption": torch.tensor(2.0), "loss_alignment": torch.tensor(3.0)}
    weights = {"image": 2.0, "caption": 0.5, "alignment": 0.1}
    assert total_loss(out, weights).item() == pytest.approx(2.0 * 0.5 + 0.5 * 2.0 + 0.1 * 3.0)


def test_metric_window_means_are_weighted_and_perplexity_comes_from_the_window_mean_loss():
    window = MetricWindow()
    window.add({"loss_caption": torch.tensor(1.0), "latent_std": torch.tensor(2.0)}, weight=1)
    window.add({"loss_caption": torch.tensor(3.0), "latent_std": torch.tensor(4.0)}, weight=3)
    means = window.means()
    assert means["loss_caption"] == pytest.approx((1 + 9) / 4)
    assert means["latent_std"] == pytest.approx((2 + 12) / 4)
    # exp of the mean, not the mean of exps
    assert means["caption_perplexity"] == pytest.approx(math.exp(2.5))
    assert len(window) == 0 and window.means() == {}


def test_hardware_stats_without_a_gpu():
    hardware_stats(torch.device("cpu"))  # cpu_percent measures from the previous call
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:  # keep one core busy: system-wide use is at least 1/cores of the time
        pass
    stats = hardware_stats(torch.device("cpu"))
    assert stats["gpu_memory_used"] == 0 and stats["gpu_memory_percent"] == 0
    assert 100 / psutil.cpu_count() * 0.8 <= stats["cpu_percent"] <= 100


def test_a_gpu_memory_torch_cannot_read_and_gputil_cannot_import_is_0_not_a_crash(monkeypatch, tmp_path):
    """GPUtil, the optional fallback, imports distutils, which Python 3.12 removed: no fallback then, silently."""
    def unreadable(device):
        raise RuntimeError("CUDA driver error")

    monkeypatch.setattr(torch.cuda, "mem_get_info", unreadable)
    (tmp_path / "GPUtil.py").write_text("import pathlib\n"
                                        "pathlib.Path(__file__).with_name('imported').touch()\n"
                                        "raise ModuleNotFoundError('distutils', name='distutils')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "GPUtil", raising=False)
    stats = hardware_stats(torch.device("cuda", 0))
    assert (tmp_path / "imported").exists()  # the fallback was tried
    assert stats["gpu_memory_used"] == 0 and stats["gpu_memory_percent"] == 0


def test_throughput_stats_on_known_numbers():
    # 1,000 samples/s at 3 GFLOP per training sample = 3 TFLOP/s; against a 10 TFLOP/s peak, 30% MFU
    stats = throughput_stats(1000.0, 3e9, peak=10e12)
    assert stats["model_tflops"] == pytest.approx(3.0)
    assert stats["mfu"] == pytest.approx(0.3)


def test_throughput_stats_leaves_mfu_out_without_a_known_peak():
    assert throughput_stats(500.0, 2e9) == {"model_tflops": pytest.approx(1.0)}


def test_peak_flops_is_unknown_on_a_cpu_and_for_plain_fp32():
    assert peak_flops(torch.device("cpu"), "bf16") is None
    assert peak_flops(torch.device("cuda"), "fp32") is None  # no tensor-core peak for IEEE fp32 matmuls


@pytest.mark.parametrize("name, precision, expected", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989e12),
    ("NVIDIA H100 80GB HBM3", "tf32", 495e12),
    ("NVIDIA H100 PCIe", "bf16", 756e12),
    ("NVIDIA H200", "bf16", 989e12),
    ("NVIDIA A100-SXM4-80GB", "bf16", 312e12),
    ("NVIDIA GeForce RTX 4090", "bf16", None),
])
def test_peak_flops_matches_the_device_name(monkeypatch, name, precision, expected):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_flops(torch.device("cuda"), precision) == expected


def test_to_pil_maps_0_1_floats_to_0_255_pixels_in_height_width_order():
    from train_wandb import to_pil
    image = torch.zeros(3, 2, 4)  # C, H, W
    image[0, 0, 0], image[1, 1, 3], image[2, 0, 1] = 1.0, 0.5, 2.0  # 2.0 is clamped to white
    pil = to_pil(image)
    assert pil.mode == "RGB" and pil.size == (4, 2)  # PIL sizes are (width, height)
    assert pil.getpixel((0, 0)) == (255, 0, 0)
    assert pil.getpixel((3, 1)) == (0, 128, 0)
    assert pil.getpixel((1, 0)) == (0, 0, 255)
    assert to_pil(torch.full((1, 3, 3), 0.25)).getpixel((2, 2)) == 64


def test_a_log_window_keeps_the_largest_gradient_of_its_steps_not_their_mean():
    window = MetricWindow()
    for norm, largest in ((1.0, 0.1), (20.0, 3.0), (1.0, 0.2)):  # one spiking step among three
        window.add({"grad_norm": torch.tensor(norm), "grad_max": torch.tensor(largest),
                    "loss_caption": torch.tensor(1.0)})
    row = window.means()
    assert row["grad_norm"] == pytest.approx(22.0 / 3)  # the mean, as before
    assert row["grad_norm_max"] == 20.0  # the spike itself, for the spike check
    assert row["grad_max"] == 3.0  # the largest |g| of any step, not a mean of maxima
    assert row["caption_perplexity"] == pytest.approx(math.e)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_window_counts_training_time_only_across_an_epochs_end(monkeypatch):
    """samples_per_second of a window that spans a validation: its samples over the training time of its steps."""
    clock = FakeClock()
    monkeypatch.setattr(train_wandb.time, "perf_counter", clock)
    window = LogWindow(frequency=10, world_size=2)
    window.start_clock()
    window.add({"loss_total": torch.tensor(1.0)}, batch_size=4)  # 8 samples: two processes
    clock.now = 1.0
    window.stop_clock()  # the epoch ends; validation takes 10 s
    clock.now = 11.0
    window.start_clock()
    window.add({"loss_total": torch.tensor(3.0)}, batch_size=4)
    clock.now = 12.0
    row = window.finish()
    assert row["samples_per_second"] == pytest.approx(16 / 2.0)  # not 16 / 12
    assert row["loss_total"] == pytest.approx(2.0)
    window.add({"loss_total": torch.tensor(5.0)}, batch_size=4)  # the next window's clock runs from the finish
    clock.now = 14.0
    assert window.finish()["samples_per_second"] == pytest.approx(8 / 2.0)


def test_an_unfinished_log_window_survives_a_checkpoint(monkeypatch):
    """A window resumed from its state_dict (as a checkpoint holds it) ends in the row it would have ended in."""
    clock = FakeClock()
    monkeypatch.setattr(train_wandb.time, "perf_counter", clock)
    steps = [{"loss_total": torch.tensor(v), "grad_norm": torch.tensor(v * 2)} for v in (1.0, 4.0, 2.5)]
    whole, parted = LogWindow(10, 1), LogWindow(10, 1)
    for window in (whole, parted):
        window.start_clock()
        window.add(steps[0], batch_size=8)
    clock.now = 2.0
    state = parted.state_dict()
    assert state["train_s"] == 2.0 and all(v.device.type == "cpu" for v in state["sums"].values())
    resumed = LogWindow(10, 1)
    resumed.load_state_dict(torch.load(io.BytesIO(save(state)), weights_only=True), torch.device("cpu"))
    resumed.start_clock()
    for window in (whole, resumed):
        for metrics in steps[1:]:
            window.add(metrics, batch_size=8)
    clock.now = 3.0
    a, b = whole.finish(), resumed.finish()
    assert a == b
    assert a["loss_total"] == pytest.approx(2.5) and a["grad_norm_max"] == 8.0
    assert a["samples_per_second"] == pytest.approx(24 / 3.0)


def save(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def test_latent_spread_between_images_is_zero_when_every_image_shares_one_z():
    shared = torch.randn(1, 16).expand(8, 16)  # one random vector for every image: latent_std stays large
    stats = latent_stats(shared)
    assert stats["latent_std"] > 0.3
    assert stats["latent_batch_std"] == 0
    assert latent_diversity(shared) == pytest.approx(0.0, abs=1e-6)
    spread = torch.eye(8)  # orthogonal latents: cosine 0 between any two images
    assert latent_diversity(spread) == pytest.approx(1.0)
    assert latent_stats(spread)["latent_batch_std"] == pytest.approx(math.sqrt(1 / 8 - 1 / 64))
