"""Performance properties checkable on a CPU: the FLOP count behind MFU, and a training step that never
waits for the device (issue 5). Timings are never asserted here; they live in benchmark.py / BENCHMARKS.md."""
import collections
import contextlib
import traceback

import pytest
import torch
import wandb
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

import train_wandb
from logger import RunLogger
from model_architecture_large import ModelConfig, MultimodalModel, estimate_flops

aten = torch.ops.aten


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tests count FLOPs and calls, never time. One thread keeps them fast on a shared 2-core machine,
    where a second busy process can stall two-thread OpenMP regions by 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------
# FLOPs: estimate_flops against torch.utils.flop_counter on the real model


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_flash_attention_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args,
                                        out_shape=None, **kwargs):
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# FlopCounterMode knows the CUDA attention kernels (flash, efficient, cuDNN) but not the CPU one that
# F.scaled_dot_product_attention dispatches to on real CPU tensors; without these entries attention would
# count 0 there. On the meta device SDPA takes the math path (two bmm), which FlopCounterMode counts.
CPU_SDPA = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops,
            aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_attention_backward_flops}


def captions_batch(batch, cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    captions = torch.zeros(batch, cfg.max_caption_len, dtype=torch.long)
    for i in range(batch):
        n = int(torch.randint(1, cfg.max_caption_len - 1, (1,), generator=g))
        captions[i, 0] = 1  # <bos>
        captions[i, 1:n + 1] = torch.randint(4, cfg.vocab_size, (n,), generator=g)
        captions[i, n + 1] = 2  # <eos>, then <pad> = 0
    return captions


def counted_flops(cfg, batch, device):
    """(forward, forward + backward) FLOPs per sample as FlopCounterMode counts them on the real model."""
    torch.manual_seed(0)
    with torch.device(device):
        model = MultimodalModel(cfg)
        images = torch.rand(batch, cfg.image_channels, cfg.image_size, cfg.image_size)
    captions = captions_batch(batch, cfg).to(device)
    counter = FlopCounterMode(display=False, custom_mapping=CPU_SDPA)
    with counter:
        out = model(images, captions)
        forward = counter.get_total_flops()
        (out["loss_image"] + out["loss_caption"] + out["loss_alignment"]).backward()
    return forward / batch, counter.get_total_flops() / batch


@pytest.mark.parametrize("name, cfg, batch, device", [
    ("quick preset, real CPU tensors", ModelConfig.small(vocab_size=1266, image_size=64), 4, "cpu"),
    ("small at 32 px, real CPU tensors", ModelConfig.small(vocab_size=50, image_size=32, max_caption_len=12), 3, "cpu"),
    ("default ~82M, meta device", ModelConfig(vocab_size=1266), 16, "meta"),
])
def test_flop_estimate_matches_torch_flop_counter(name, cfg, batch, device):
    forward, training = counted_flops(cfg, batch, device)
    estimate = estimate_flops(cfg, batch_size=batch)
    assert estimate["forward"] == sum(v for k, v in estimate.items() if k not in ("forward", "training"))
    # The forward count is exact: both count only matmuls/convolutions at 2*m*n*k, attention over the full
    # T x T square (FlopCounterMode's sdpa formula ignores causal/padding masks too), biases not at all.
    assert estimate["forward"] == pytest.approx(forward, rel=0.01), name
    # Training = 3 x forward is the Kaplan/nanoGPT convention; the counted backward differs by under 1%
    # either way: the patch-embedding convolution needs no gradient for its input (the images) and the
    # embedding lookup's backward is a scatter (both make the count lower), while FlopCounterMode's fused
    # attention backward counts 5 T x T matmuls (QK^T recomputed), 2.5 x its forward (makes it higher).
    assert estimate["training"] == 3 * estimate["forward"]
    assert estimate["training"] == pytest.approx(training, rel=0.03), name


def test_default_model_costs_about_32_gflop_per_sample_forward():
    estimate = estimate_flops(ModelConfig(vocab_size=1266), batch_size=16)
    assert 30e9 < estimate["forward"] < 35e9  # what MFU in BENCHMARKS.md is computed from
    assert estimate["image_encoder"] + estimate["image_decoder"] > 0.9 * estimate["forward"]  # 2 x 256 patches


# ----------------------------------------------------------------------------
# no host-device synchronisation inside a log window


SYNC_METHODS = ("item", "cpu", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")
# Aten ops that need the device's result on the host: a scalar read, or an output whose size depends on
# the data (nonzero, boolean-mask indexing, unique, ...). On CUDA each blocks the host until the stream
# drains; on a CPU they are free, so the counting below is what makes the property checkable here.
SYNC_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
            aten.is_nonzero.default, aten.equal.default, aten._unique2.default, aten.unique_dim.default,
            aten.unique_consecutive.default, aten.repeat_interleave.Tensor}


class SyncCounter(TorchDispatchMode):
    """Counts every call that would force a host-device sync on an accelerator, with where it came from.

    Two layers: counting wrappers around the Tensor methods that read device data on the host (.item(),
    .cpu(), .tolist(), .numpy(), float(t), int(t), bool(t), operator.index(t)), and a dispatch mode
    catching the aten ops that do so however they are reached (e.g. x[mask], torch.unique). A copy to
    the host written as .to(device) cannot be told apart from a no-op on a CPU-only machine (the
    clipping code itself calls .to(grad.device)); on CUDA, set_sync_debug_mode catches it.

    Exempt: AdamW's `step` counters. For a non-fused optimizer torch keeps them on the host on purpose
    (so reading them never syncs); AdamW's single-tensor path calls .item() on them every step. The
    Trainer uses fused=True on CUDA, where they live on the device and are never read back.
    """

    def __init__(self, optimizer):
        super().__init__()
        self.optimizer = optimizer
        self.calls = collections.Counter()
        self.sites = collections.Counter()
        self.exempt = 0
        self._patches = contextlib.ExitStack()

    def _host_counter(self, t):
        return any(t is s.get("step") for s in self.optimizer.state.values())

    def _record(self, name, tensor):
        if self._host_counter(tensor):
            self.exempt += 1
            return
        self.calls[name] += 1
        frames = [f for f in traceback.extract_stack()[:-2] if "test_performance" not in f.filename]
        self.sites[(name, " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frames[-3:][::-1]))] += 1

    def _wrap(self, name):
        original = getattr(torch.Tensor, name)
        counter = self

        def wrapper(self, *args, **kwargs):
            counter._record(name, self)
            with counter._paused():  # count the outermost call only
                return original(self, *args, **kwargs)

        return original, wrapper

    @contextlib.contextmanager
    def _paused(self):
        saved, self.counting = self.counting, False
        try:
            yield
        finally:
            self.counting = saved

    def __enter__(self):
        self.counting = True
        for name in SYNC_METHODS:
            original, wrapper = self._wrap(name)
            self._patches.callback(setattr, torch.Tensor, name, original)
            setattr(torch.Tensor, name, wrapper)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._patches.close()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.counting:
            if func in SYNC_OPS:
                self._record(f"aten.{func._overloadpacket.__name__}", args[0])
            elif func is aten.index.Tensor and any(i is not None and i.dtype == torch.bool for i in args[1]):
                self._record("aten.index (boolean mask)", args[0])
        return func(*args, **kwargs)

    def report(self):
        return "; ".join(f"{n} x{c} at {site}" for (n, site), c in self.sites.items()) or "none"


def build_trainer(assemble_trainer, tmp_path, device, *overrides):
    """A Trainer as main() builds it, W&B disabled, and six of its training batches."""
    trainer = assemble_trainer(tmp_path, RunLogger(wandb.init(mode="disabled"), "disabled"), "--mode=disabled",
                               *overrides, device=device)
    batches = list(trainer.train_loader)
    return trainer, [batches[i % len(batches)] for i in range(6)]


STEPS = 5  # one log window's worth of steps (the window's length does not matter: none of them may sync)


@pytest.fixture(scope="module")
def cpu_trainer(assemble_trainer, tmp_path_factory):
    trainer, batches = build_trainer(assemble_trainer, tmp_path_factory.mktemp("out"), torch.device("cpu"))
    trainer.model.train()
    trainer.train_step(*batches[0])  # the first step creates the optimizer state; every later one must not sync
    return trainer, batches


def run_window(trainer, batches):
    """The body of Trainer.train_epoch for one log window, without the flush: steps + window accumulation."""
    window, epoch_loss = train_wandb.MetricWindow(), train_wandb.MetricWindow()
    for images_u8, captions in batches[1:STEPS + 1]:
        metrics = trainer.train_step(images_u8, captions)
        window.add(metrics)
        epoch_loss.add({"loss_total": metrics["loss_total"]})
    return window


@pytest.mark.parametrize("overrides", [{}, {"track_gradients": False}, {"grad_clip": 0.0}],
                         ids=["default", "no-gradient-stats", "no-clipping"])
def test_training_steps_force_no_host_device_sync(cpu_trainer, monkeypatch, overrides):
    trainer, batches = cpu_trainer
    for name, value in overrides.items():  # train_step reads these at every step
        monkeypatch.setattr(trainer.cfg if hasattr(trainer.cfg, name) else trainer.wcfg, name, value)
    # the non-finite tracker is sized for the run's metrics at its first step; a run never toggles these
    monkeypatch.setattr(trainer, "non_finite", train_wandb.NonFiniteWatch())
    step = trainer.step
    counter = SyncCounter(trainer.optimizer)
    with counter:
        window = run_window(trainer, batches)
    assert trainer.step == step + STEPS
    assert sum(counter.calls.values()) == 0, f"host-device syncs inside train_step: {counter.report()}"
    assert counter.exempt > 0  # the optimizer's host-side step counters were seen, so the counting was live

    means_counter = SyncCounter(trainer.optimizer)
    with means_counter:
        means = window.means()
    assert means_counter.calls == {"tolist": 1}, means_counter.report()  # the one sync of the window
    assert set(means) >= {"loss_total", "caption_perplexity"}
    assert ("grad_norm" in means) == trainer.wcfg.track_gradients


def test_only_a_log_step_takes_the_l1_and_linf_gradient_norms(cpu_trainer):
    """Issue 28: two of the three passes over every gradient run only on the steps that log them. Counted with the
    roofline's OpCounter on the real CPU step: every aten op, views and allocations aside."""
    import roofline
    trainer, batches = cpu_trainer
    ops = {}
    for log_step in (False, True):
        counter = roofline.OpCounter()
        with counter:
            metrics = trainer.train_step(*batches[1], log_step=log_step)
        ops[log_step] = collections.Counter(op.name.split()[0] for op in counter.ops)
        assert ("grad_max" in metrics) == log_step and "grad_norm" in metrics
    assert ops[False]["_foreach_norm"] == 1 and ops[True]["_foreach_norm"] == 3
    assert sum(ops[False].values()) < sum(ops[True].values())


@pytest.mark.parametrize("overrides, expected, logged", [
    # 4 steps an epoch, windows of 3: they end at steps 3 and 6, running on across the first epoch's end, and at the
    # last epoch's end
    (("--num_epochs=2",), [False, False, True, False, False, True, False, True], [3, 6, 8]),
    (("--max_steps=2",), [False, True], [2]),  # and at max_steps
    # a run of one epoch: its last window ends with it
    (("--num_epochs=1",), [False, False, True, True], [3, 4]),
])
def test_the_loop_asks_for_the_extremes_at_every_window_end(assemble_trainer, tmp_path, monkeypatch, overrides,
                                                            expected, logged):
    trainer, _ = build_trainer(assemble_trainer, tmp_path, torch.device("cpu"), "--log_frequency=3", *overrides)
    asked, train_step = [], train_wandb.Trainer.train_step

    def recording(self, images_u8, captions, log_step=True):
        asked.append(log_step)
        return train_step(self, images_u8, captions, log_step)
    monkeypatch.setattr(train_wandb.Trainer, "train_step", recording)
    trainer.fit()
    assert len(trainer.train_loader) == 4 and asked == expected
    rows = [r["global_step"] for r in trainer.logger.history if "train/loss_total" in r]
    assert rows == logged


def test_a_run_stopped_between_epochs_logs_its_unfinished_window_and_keeps_its_checkpoint_in_step(
        assemble_trainer, tmp_path, monkeypatch):
    """A stop found before an epoch starts (a signal during validation, early stopping) ends the run with the
    window the first epoch left open: logged, and gone from last.pt, so that a resume does not log it twice."""
    trainer, _ = build_trainer(assemble_trainer, tmp_path, torch.device("cpu"), "--log_frequency=3",
                               "--num_epochs=3")
    end_epoch = train_wandb.Trainer.end_epoch

    def signalled(self, *args):
        end_epoch(self, *args)
        self.stop_signal = "SIGTERM"  # arrives during the first validation
    monkeypatch.setattr(train_wandb.Trainer, "end_epoch", signalled)
    trainer.fit()
    rows = [r["global_step"] for r in trainer.logger.history if "train/loss_total" in r]
    assert trainer.epoch == 1 and rows == [3, 4]
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["step"] == 4 and state["log_window"]["weight"] == 0
    assert [r["global_step"] for r in state["history"] if "train/loss_total" in r] == [3, 4]


def test_sync_counter_catches_syncs():
    """The counter itself: every way of reading a device value on the host is seen, once."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))])
    t = torch.tensor([1.0, 0.0])
    with SyncCounter(opt) as counter:
        t[0].item(), t.cpu(), t.tolist(), t.numpy(), float(t[0]), int(t[0]), bool(t[0]), [0, 1][t[1].long()]
        t[t > 0], torch.nonzero(t), f"{t.sum():.2f}"
    expected = {"item": 2, "cpu": 1, "tolist": 1, "numpy": 1, "__float__": 1, "__int__": 1, "__bool__": 1,
                "__index__": 1, "aten.index (boolean mask)": 1, "aten.nonzero": 1}
    assert dict(counter.calls) == expected, counter.report()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the driver's sync debug mode")
def test_training_steps_pass_cuda_sync_debug_mode(assemble_trainer, tmp_path):
    """The driver itself checks the step: set_sync_debug_mode('error') raises on any synchronising call
    (.item(), blocking copies, nonzero, ...)."""
    trainer, batches = build_trainer(assemble_trainer, tmp_path, torch.device("cuda"))
    trainer.model.train()
    trainer.train_step(*batches[0])  # lazy CUDA/cuBLAS initialisation and optimizer state: once per run
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        window = run_window(trainer, batches)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert window.means()["loss_total"] > 0
