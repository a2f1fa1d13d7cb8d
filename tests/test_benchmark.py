"""benchmark.py on a CPU with tiny settings: every variant runs, the last line is the JSON summary, and the
loop it times is the Trainer's own. Timings are never asserted against targets here (BENCHMARKS.md)."""
import collections
import json
import re
import time

import pytest

import train_wandb

# the settings of a small benchmark: one round of 2 warm-up and 2 measured steps of each variant
TINY_BENCHMARK = ["--preset=quick", "--image_size=32", "--batch_size=8", "--log_frequency=2", "--steps=2",
                  "--warmup=2", "--rounds=1", "--max-other-cores=100", "--device=cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(autouse=True)
def wandb_offline_in_tmp(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))


@pytest.mark.slow
def test_benchmark_runs_every_variant_and_ends_with_one_json_line(capsys):
    import benchmark
    assert benchmark.main(TINY_BENCHMARK) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["device"].startswith("CPU") and summary["device_type"] == "cpu"
    variants = ("bare", "disabled", "offline", "heavy")
    assert set(summary["samples_per_s"]) == set(variants)
    assert all(summary["samples_per_s"][v]["median"] > 0 for v in variants)
    for key in ("logging_overhead_offline", "logging_overhead_heavy", "harness_ratio"):
        assert summary[key]["n"] == 1 == len(summary[key]["values"])
    assert all(set(summary["breakdown_ms_per_step"][v]) == {"data", "step", "logging", "other"} for v in variants)
    assert summary["breakdown_ms_per_step"]["bare"]["logging"] == 0
    assert summary["rounds"][0]["offline"]["flushes"] == 1 and summary["rounds"][0]["heavy"]["flushes"] == 2
    assert summary["windows_with_epoch_end"] == 0  # the synthetic data holds a whole round in its first epoch
    assert summary["mfu"]["disabled"]["mfu"] is None
    assert summary["startup"]["process_start_to_first_optimizer_step_s"] > 0
    assert summary["flops_per_sample"]["training"] == 3 * summary["flops_per_sample"]["forward"]


@pytest.fixture(scope="module")
def engravings(make_engravings):
    """40 engravings at 32 px: 36 for training, 4 batches of 8 per epoch."""
    return make_engravings(40, 32)


def test_benchmark_runs_on_a_data_folder_and_uses_the_decoded_image_cache(capsys, tmp_path, engravings):
    import benchmark
    args = [*TINY_BENCHMARK, "--variants=ab", "--data=bundled", f"--data_dir={engravings}",
            f"--cache_dir={tmp_path / 'cache'}"]
    assert benchmark.main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["data"] == f"{engravings} (40 items)"
    assert set(summary["samples_per_s"]) == {"bare", "disabled"} and summary["harness_ratio"]["n"] == 1
    assert len(list((tmp_path / "cache").glob("decoded-32px-40-*.pt"))) == 1


@pytest.mark.slow
def test_benchmark_times_the_trainers_own_step_and_keeps_the_console_quiet(capsys, monkeypatch):
    """A change to Trainer.train_step (here: counted and 100 ms slower) shows up in the benchmark without
    editing benchmark.py; health findings (forced by --grad_vanish_norm) are summed up, not printed."""
    import benchmark
    calls, train_step = [], train_wandb.Trainer.train_step

    def slower_step(self, images_u8, captions, log_step=True):
        calls.append("heavy" if self.wcfg.log_frequency == 1 else self.wcfg.mode)
        time.sleep(0.1)
        return train_step(self, images_u8, captions, log_step)

    monkeypatch.setattr(train_wandb.Trainer, "train_step", slower_step)
    assert benchmark.main([*TINY_BENCHMARK, "--grad_vanish_norm=1e9"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    rounds = summary["rounds"][0]
    assert collections.Counter(calls) == {v: rounds[v]["steps_run"] for v in ("disabled", "offline", "heavy")}
    assert len(calls) == 3 * (2 + 2)  # warm-up and measured steps of b, c and d; a never calls train_step
    breakdown = summary["breakdown_ms_per_step"]
    assert all(breakdown[v]["step"] >= 100 for v in ("disabled", "offline", "heavy"))
    assert "training_health/grad_vanishing" in summary["health_findings"]
    console = captured.out + captured.err
    assert not re.search(r"^warning \[", console, re.MULTILINE)  # RunLogger.alert's console line
    assert "it/s]" not in console and "Epoch 1 Train" not in console  # the Trainers' progress bars
    assert "First optimizer step issued" not in console
    assert len([line for line in captured.out.splitlines()[:-1] if "grad_vanishing" in line]) == 1  # the summary


@pytest.mark.slow
def test_benchmark_leaves_out_the_windows_in_which_an_epoch_ended(capsys, tmp_path, engravings):
    """Steps 3..8 of 4-batch epochs: the epoch end (validation, visuals, checkpoint) runs inside steps() in
    window 2 (steps 5-6), which is left out, and said so."""
    import benchmark
    args = [*TINY_BENCHMARK, "--steps=6", "--variants=ab", "--data=bundled", f"--data_dir={engravings}",
            f"--cache_dir={tmp_path / 'cache'}"]
    assert benchmark.main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert [w["disabled"]["epoch_ends"] for w in summary["windows"]] == [0, 1, 0]
    assert summary["windows_with_epoch_end"] == 1 and summary["windows_used"] == 2
    assert any(line.startswith("  round 1 window 2:") and "an epoch ended: left out" in line for line in lines)
    assert not any(line.startswith("Epoch 1 |") for line in lines)  # steps() printed it; kept off the console
