"""Several processes under ``torchrun``: joining the group, syncing buffers, summing metrics."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn


@dataclass
class Distributed:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Distributed:
    """Join the torchrun process group when launched by torchrun, else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if use_cuda else "gloo")
    return Distributed(rank, world, dev)


def sync_buffers(core: nn.Module, dist: Distributed) -> None:
    """Average floating buffers (batch-norm running statistics) over the processes.

    DDP copies rank 0's buffers at the start of every forward, so after the last step each
    process holds its own update; averaging makes evaluation and checkpoints agree.
    """
    if dist.world == 1:
        return
    for buf in core.buffers():
        if buf.is_floating_point():
            torch_dist.all_reduce(buf)
            buf /= dist.world
        else:
            torch_dist.broadcast(buf, 0)


def all_sum(values: list[float], dist: Distributed) -> list[float]:
    if dist.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=dist.device)
    torch_dist.all_reduce(t)
    return t.tolist()
