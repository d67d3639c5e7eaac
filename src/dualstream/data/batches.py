"""Loader batches in shared memory, reused once the consumer is done with them.

A worker cuts a whole batch at once (the datasets' ``__getitems__``) into float32 tensors it allocates in
shared memory (``shared_empty``), so the batch reaches the main process without a copy; ``BatchPool``
lets it write a later batch into the memory of one the training loop has released.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info


def shared_empty(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised tensor, in shared memory inside a loader worker (as ``default_collate``'s
    batches: it then reaches the main process without a copy), in ordinary memory elsewhere."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(int(np.prod(shape)))
    return torch.empty(0, dtype=dtype).set_(storage._untyped_storage, 0, shape)


IN_USE, RELEASED = 1234.5, 0.0  # the flag after a pooled batch's two tensors


def _flag(storage) -> torch.Tensor:
    """The last float32 of a batch storage: ``IN_USE`` while the consumer may read it."""
    return torch.empty(0, dtype=torch.float32).set_(storage, storage.nbytes() // 4 - 1, (1,))


class BatchPool:
    """Batch storages of one process, reused once released: fresh memory is what a network-ready batch
    costs most (the kernel faults in and zeroes every page: 250 MB per batch of 25 at 224), so a worker
    writes its next batch into one the consumer has finished with (``benchmarks/RESULTS.md``).

    A storage holds a batch's rgb and flow and, last, a flag: ``IN_USE`` from the worker's side,
    ``RELEASED`` once the consumer calls ``release_batch`` (``DeviceBatches`` does when it asks for the
    next batch). Batches nobody releases are never reused. Inside a loader worker the storages are in
    shared memory, so they reach the main process without a copy (as ``default_collate``'s batches)."""

    def __init__(self, keep: int = 4):
        self.keep, self.pid, self.storages = keep, os.getpid(), []

    def __getstate__(self) -> dict:  # a copy in another process starts empty
        return {"keep": self.keep, "pid": None, "storages": []}

    def take(self, numel: int):
        if self.pid != os.getpid():  # a forked copy: another process's storages are not ours
            self.pid, self.storages = os.getpid(), []
        nbytes = 4 * (numel + 1)
        for storage in self.storages:
            flag = _flag(storage)
            if storage.nbytes() == nbytes and float(flag) == RELEASED:
                flag.fill_(IN_USE)
                return storage
        storage = shared_empty((numel + 1,)).untyped_storage()
        _flag(storage).fill_(IN_USE)
        if len(self.storages) < self.keep:
            self.storages.append(storage)
        return storage

    def batch(self, rgb_shape: tuple[int, ...], flow_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Uninitialised rgb and flow float32 tensors of these shapes, in one storage."""
        n_rgb, n_flow = int(np.prod(rgb_shape)), int(np.prod(flow_shape))
        storage = self.take(n_rgb + n_flow)
        rgb = torch.empty(0, dtype=torch.float32).set_(storage, 0, rgb_shape)
        flow = torch.empty(0, dtype=torch.float32).set_(storage, n_rgb, flow_shape)
        return rgb, flow


def release_batch(batch) -> None:
    """The consumer is done with ``batch`` (a ``BatchPool`` batch: its storage may be reused; others: nothing)."""
    rgb, flow = batch[0], batch[1]
    storage = rgb.untyped_storage()
    if (flow.untyped_storage().data_ptr() == storage.data_ptr() == rgb.data_ptr()
            and storage.nbytes() == 4 * (rgb.numel() + flow.numel() + 1)):
        flag = _flag(storage)
        if float(flag) == IN_USE:
            flag.fill_(RELEASED)


def collate_batches(data):
    """The loaders' collate: a batch ``__getitems__`` cut (a tuple) as it is; a list of items (a dataset
    wrapper without ``__getitems__``) collated as usual."""
    return data if isinstance(data, tuple) else default_collate(data)
