"""Loader batches in shared memory (they reach the main process without a copy), reused once released."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info


def shared_empty(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised tensor, in shared memory inside a loader worker, in ordinary memory elsewhere."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(int(np.prod(shape)))
    return torch.empty(0, dtype=dtype).set_(storage._untyped_storage, 0, shape)


IN_USE, RELEASED = 1234.5, 0.0  # the flag after a pooled batch's two tensors


def _flag(storage) -> torch.Tensor:
    """The last float32 of a batch storage: ``IN_USE`` while the consumer may read it."""
    return torch.empty(0, dtype=torch.float32).set_(storage, storage.nbytes() // 4 - 1, (1,))


class BatchPool:
    """Batch storages of one process, reused once released: fresh memory is what a batch costs most
    (``benchmarks/RESULTS.md``). A storage holds rgb, flow and a flag: ``IN_USE`` until the consumer calls
    ``release_batch`` (``DeviceBatches`` does); batches nobody releases are never reused."""

    def __init__(self, keep: int = 4):
        self.keep, self.pid, self.storages = keep, os.getpid(), []

    def __getstate__(self) -> dict:  # a copy in another process starts empty
        return {"keep": self.keep, "pid": None, "storages": []}

    def batch(self, rgb_shape: tuple[int, ...], flow_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Uninitialised rgb and flow float32 tensors of these shapes, in one storage (a released one if any)."""
        if self.pid != os.getpid():  # a forked copy: another process's storages are not ours
            self.pid, self.storages = os.getpid(), []
        n_rgb, n_flow = int(np.prod(rgb_shape)), int(np.prod(flow_shape))
        nbytes = 4 * (n_rgb + n_flow + 1)
        storage = next((s for s in self.storages if s.nbytes() == nbytes and float(_flag(s)) == RELEASED), None)
        if storage is None:
            storage = shared_empty((n_rgb + n_flow + 1,)).untyped_storage()
            if len(self.storages) < self.keep:
                self.storages.append(storage)
        _flag(storage).fill_(IN_USE)
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
    """A batch ``__getitems__`` cut (a tuple) as it is; a list of items collated as usual."""
    return data if isinstance(data, tuple) else default_collate(data)
