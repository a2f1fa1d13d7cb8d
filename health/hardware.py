"""Hardware: input wait, CPU, GPU memory, throughput.

Batches are indexed out of tensors that already live on the training device (train_wandb.BatchLoader):
there are no loader workers to add (num_workers only sets the decode threads at start-up). What acts on
the per-step overhead is batch_size (fewer steps per sample) and compile (fewer kernel launches).
"""

from __future__ import annotations

import statistics

from .core import HARDWARE, Analysis, change, fmt, median_tail


class Hardware(Analysis):
    """Reads: warmup_windows, smoothing_windows, data_wait_fraction, cpu_bound_percent, gpu_headroom_percent,
    gpu_oom_percent.
    Verdict: the worst finding of the run (gpu_headroom is advice, so the verdict stays healthy)."""

    name = "hardware"

    def __init__(self, monitor):
        super().__init__(monitor)
        self.gpu_peak = 0.0

    def rule(self):
        c = self.cfg
        return (f"worst finding: data wait > {c.data_wait_fraction:.0%} of the time, CPU > {c.cpu_bound_percent:.0f}% "
                f"with a GPU, GPU memory > {c.gpu_oom_percent:.0f}% (medians of {c.smoothing_windows} windows after "
                "the warm-up)")

    def fewer_launches(self):
        """The knobs that cut the Python work per sample in this trainer: fewer kernel launches, fewer steps."""
        action = change(self.run_config, "batch_size", 2)
        if self.run_config.get("compile") is False:
            action = f"set compile from False to True or {action}"
        return action + " (less Python work per sample)"

    def observe_train(self, values):
        if not self.h.warm:
            return
        cfg, n = self.cfg, self.cfg.smoothing_windows
        gpu = values.get("gpu_memory_percent")
        if gpu is not None and gpu > 0:
            self.check_gpu_memory(gpu)
        wait = median_tail(self.h.settled["data_time_fraction"], n)
        if wait is not None and wait > cfg.data_wait_fraction:
            self.emit("input_bound", "warning",
                      f"the loop spends {wait:.0%} of the time fetching batches (median of the last windows; "
                      f"limit {cfg.data_wait_fraction:.0%}); a fetch indexes tensors already on the device, a fixed "
                      "cost per step", change(self.run_config, "batch_size", 2) + " (fewer fetches per sample)")
        cpu = median_tail(self.h.settled["cpu_percent"], n)
        if self.gpu_peak > 0 and cpu is not None and cpu > cfg.cpu_bound_percent:  # on a CPU run, 100% is the model
            self.emit("cpu_bound", "warning",
                      f"cpu_percent {cpu:.0f}% while the GPU trains (limit {cfg.cpu_bound_percent:.0f}%): the GPU "
                      "waits for Python to launch its kernels", self.fewer_launches())

    def check_gpu_memory(self, gpu):
        cfg = self.cfg
        self.gpu_peak = max(self.gpu_peak, gpu)
        if gpu > cfg.gpu_oom_percent:
            self.emit("oom_risk", "warning",
                      f"gpu_memory_percent {gpu:.1f}% > {cfg.gpu_oom_percent:.0f}%: a larger batch or longer "
                      f"caption may run out of memory", change(self.run_config, "batch_size", 0.5))
        enough = len(self.h.settled["gpu_memory_percent"]) >= cfg.smoothing_windows
        if enough and self.gpu_peak < cfg.gpu_headroom_percent:
            self.emit("gpu_headroom", "info",
                      f"peak gpu_memory_percent {self.gpu_peak:.0f}% < {cfg.gpu_headroom_percent:.0f}%: "
                      f"room for a larger batch", change(self.run_config, "batch_size", 2))

    def verdict(self):
        s, evidence = self.h.settled, []
        rate = s["samples_per_second"] or self.h.train["samples_per_second"]
        if rate:
            evidence.append(f"throughput: median {fmt(statistics.median(rate))} samples/s "
                            f"(min {fmt(min(rate))}, max {fmt(max(rate))})")
        if s["mfu"]:
            evidence.append(f"MFU: median {statistics.median(s['mfu']):.1%} of the GPU's peak FLOP/s (perf/mfu)")
        if s["data_time_fraction"]:
            evidence.append(f"data wait: median {statistics.median(s['data_time_fraction']):.1%} of the time "
                            f"(limit {self.cfg.data_wait_fraction:.0%})")
        if s["cpu_percent"]:
            cpu = statistics.median(s["cpu_percent"])
            note = "" if self.gpu_peak > 0 else " (training on the CPU: high use is the model itself)"
            evidence.append(f"cpu_percent: median {cpu:.0f}%{note}")
        if self.gpu_peak > 0:
            evidence.append(f"GPU memory: peak {self.gpu_peak:.0f}%, headroom {100 - self.gpu_peak:.0f}%"
                            + (f", peak {fmt(max(s['gpu_memory_used']))} MB" if s["gpu_memory_used"] else ""))
        elif s["gpu_memory_percent"]:
            evidence.append("no GPU (gpu_memory_percent is 0)")
        missing = None if any(s[m] for m in HARDWARE) else "no hardware metrics after the warm-up windows"
        summary = "no input, CPU or GPU memory bottleneck"
        if self.gpu_peak == 0 and s["gpu_memory_percent"]:
            summary += " (no GPU)"
        return self.from_findings(missing, summary, evidence, self.rule())
