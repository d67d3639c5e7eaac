"""Data-parallel plumbing at the edges of training: under ``torchrun`` (RANK / WORLD_SIZE / LOCAL_RANK set)
one process of many, NCCL on CUDA and gloo on CPU; without it a world of one where every helper is a no-op."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..config import ConfigError
from ..text import shown


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Only the main process writes files and prints."""
        return self.rank == 0

    def shard(self, n: int) -> range:
        """Items ``rank, rank + size, ...`` of ``n``: each on one process, none padded (no clip counted twice)."""
        return range(self.rank, n, self.size)


def init_world(device: str) -> tuple[World, torch.device]:
    """Join the torchrun process group when launched by torchrun; pick this process's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    world = World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device is {shown(device)} but no CUDA device is available "
                              "(use --set train.device=cpu)")
        if size > 1 or dev.index is None:
            dev = torch.device("cuda", world.local_rank if size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return world, dev


@contextmanager
def joined_world(device: str) -> Iterator[tuple[World, torch.device]]:
    """``init_world`` for the block; at its end the process group is left. A clean end meets at a barrier first (a
    gloo process that leaves while another still talks to it aborts at exit); after an error no barrier (the others
    may never reach it)."""
    world, dev = init_world(device)
    try:
        yield world, dev
    except BaseException:
        _leave(clean=False)
        raise
    _leave(clean=True)


def _leave(*, clean: bool) -> None:
    if dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over processes (in place); identity for a world of one."""
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


def gather_objects(obj):
    """Every process's ``obj``, in rank order ([obj] for a world of one)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
