"""contrastive_loss under DDP: two gloo processes on CPU against one process holding the whole batch.

Each rank holds half of a fixed batch of random embeddings and captions (some captions repeat across the
halves) and runs them through a small nn.Linear shared by both modalities plus a learned logit_scale,
wrapped in DistributedDataParallel with the loss inside forward, as the trainer does. So DDP's gradient
averaging is part of what is checked, and the temperature's gradient (computed in full on every rank)
is checked as well as the features' (computed per shard).

Tolerance 1e-6: both sides do the same float32 arithmetic on the same numbers, except that the distributed
gradient is summed in another order (per shard, then across ranks by DDP). The gradients here are of order 1
(up to 1.6), so that order costs a few roundings of float32's 1.2e-7: measured 2.4e-7 at most (the losses and
the embedding gradients came out bit-identical). Without the world_size gradient scale in
gather_from_all_ranks, the weight gradients are exactly half the single-process ones (off by up to 0.8).
"""
import math
import multiprocessing
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from model_architecture_large import contrastive_loss

WORLD_SIZE = 2
PER_RANK = 4  # batch per rank
DIM = 8
TOL = 1e-6


class SharedHead(nn.Module):
    """One linear map for both modalities and a learned temperature; the loss is computed in forward."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)  # the same weights in every process
        self.proj = nn.Linear(DIM, DIM)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))

    def forward(self, image_emb, caption_emb, captions, negatives):
        return contrastive_loss(self.proj(image_emb), self.proj(caption_emb), captions, self.logit_scale.exp(),
                                negatives)


def global_batch():
    """(2 * PER_RANK, DIM) image and caption embeddings and (2 * PER_RANK, 3) captions, the same every call."""
    g = torch.Generator().manual_seed(0)
    image_emb = torch.randn(WORLD_SIZE * PER_RANK, DIM, generator=g)
    caption_emb = image_emb + 0.5 * torch.randn(WORLD_SIZE * PER_RANK, DIM, generator=g)
    words = [5, 6, 5, 7, 8, 5, 9, 6]  # 5 on both ranks (three times), 6 on both ranks: positives across ranks
    captions = torch.tensor([[1, w, 2] for w in words])
    return image_emb, caption_emb, captions


def loss_and_gradients(model, image_emb, caption_emb, captions, negatives):
    image_emb, caption_emb = image_emb.clone().requires_grad_(), caption_emb.clone().requires_grad_()
    loss = model(image_emb, caption_emb, captions, negatives)
    loss.backward()
    parameters = {name.removeprefix("module."): p.grad.clone() for name, p in model.named_parameters()}
    return {"loss": loss.detach(), "image_grad": image_emb.grad, "caption_grad": caption_emb.grad, **parameters}


def worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        shard = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        image_emb, caption_emb, captions = (t[shard] for t in global_batch())
        results = {}
        for negatives in ("global", "local"):
            model = DistributedDataParallel(SharedHead())  # gradients averaged over the ranks in backward
            results[negatives] = loss_and_gradients(model, image_emb, caption_emb, captions, negatives)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def max_difference(a, b):
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Each rank's results for both settings of negatives, from one start of the two processes."""
    out_dir = tmp_path_factory.mktemp("ranks")
    # A fork server imports torch (and torch._dynamo, which DDP's constructor imports) once and forks both
    # ranks from it: ~3x faster than "spawn", where each rank imports them itself, on a busy 2-core machine.
    # Unlike a plain fork of this process, it has run no threaded torch code that a fork could break.
    multiprocessing.set_forkserver_preload(["torch._dynamo", __name__])
    mp.start_processes(worker, args=(free_port(), str(out_dir)), nprocs=WORLD_SIZE, start_method="forkserver")
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


@pytest.mark.slow
def test_global_negatives_match_one_process_on_the_concatenated_batch(ranks):
    expected = loss_and_gradients(SharedHead(), *global_batch(), negatives="local")  # one process, whole batch

    for rank, results in enumerate(ranks):
        got = results["global"]
        assert max_difference(got["loss"], expected["loss"]) < TOL
        # DDP averaged these over the ranks: identical on every rank and equal to the whole batch's gradient
        for name in ("proj.weight", "proj.bias", "logit_scale"):
            assert max_difference(got[name], expected[name]) < TOL, name
        # the shard's own embedding gradient is world_size x its single-process gradient, the share that
        # DDP's division by world_size expects (the tensors are not parameters, so DDP does not average them)
        shard = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        for name in ("image_grad", "caption_grad"):
            assert max_difference(got[name] / WORLD_SIZE, expected[name][shard]) < TOL, name

    # the captions shared across ranks count as positives: treating them as distinct changes the loss
    image_emb, caption_emb, _ = global_batch()
    distinct = torch.arange(WORLD_SIZE * PER_RANK)[:, None]
    assert abs(SharedHead()(image_emb, caption_emb, distinct, "local").item() - expected["loss"].item()) > 0.1


@pytest.mark.slow
def test_local_negatives_give_each_ranks_own_loss(ranks):
    batch = global_batch()
    for rank, results in enumerate(ranks):
        shard = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        expected = SharedHead()(*(t[shard] for t in batch), negatives="local")
        assert max_difference(results["local"]["loss"], expected.detach()) < TOL
