"""Data-parallel training across processes with ``torch.distributed``, launched by torchrun.

A training command run under ``torchrun --nproc_per_node=N`` finds the environment torchrun
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and joins the
group: NCCL on GPUs (rank r on ``cuda:LOCAL_RANK``), gloo on the CPU. Each rank trains on its
shard of every epoch (a ``DistributedSampler``), gradients are averaged by
``DistributedDataParallel``, metrics are summed over ranks, and only rank 0 writes checkpoints,
logs and progress bars. Dropout and augmentation draw from per-rank seeds. Checkpoints hold
whole epochs, so a run resumes on any number of ranks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place in the group: ``rank`` of ``world``, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files and draws progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


SINGLE = Ranks()


def join(device: torch.device) -> Ranks:
    """Join the process group torchrun describes (once), or stay alone without one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def current() -> Ranks:
    """The group this process has joined (:data:`SINGLE` when none)."""
    if not dist.is_available() or not dist.is_initialized():
        return SINGLE
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """Rank r's device: ``cuda:LOCAL_RANK`` for a CUDA run, ``device`` otherwise."""
    if device.type == "cuda" and ranks.distributed:
        return torch.device("cuda", ranks.local_rank)
    return device


def sum_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over every rank (the values themselves when alone)."""
    if not current().distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    if current().distributed:
        dist.barrier()
