"""A log window under torchrun: every rank logs the mean and the maxima over the global window."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD_SIZE = 2
# per rank: steps of (loss_total, grad_norm, grad_max); rank 1 has three steps, rank 0 one, and the spike
STEPS = {0: [(1.0, 2.0, 0.5)], 1: [(2.0, 1.0, 0.1), (3.0, 30.0, 4.0), (4.0, 1.0, 0.2)]}


def worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    from train_wandb import MetricWindow
    window = MetricWindow()
    for loss, norm, largest in STEPS[rank]:
        window.add({"loss_total": torch.tensor(loss), "grad_norm": torch.tensor(norm),
                    "grad_max": torch.tensor(largest)})
    torch.save(window.means(), os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_every_rank_logs_the_global_mean_and_the_global_maxima(tmp_path):
    mp.start_processes(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, start_method="spawn")
    rows = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD_SIZE)]
    assert rows[0] == rows[1]  # the same numbers on every rank
    row = rows[0]
    assert row["loss_total"] == pytest.approx((1 + 2 + 3 + 4) / 4)  # over the 4 steps, not the mean of rank means
    assert row["grad_norm"] == pytest.approx((2 + 1 + 30 + 1) / 4)
    assert row["grad_norm_max"] == 30.0 and row["grad_max"] == 4.0  # the spike on rank 1 reaches rank 0's log
