"""Speed settings shared by training, evaluation and the benchmark: autocast, memory format, loaders."""

from __future__ import annotations

import contextlib
import os

import torch

from ..config import TrainConfig


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for ``auto`` on CUDA and for ``bf16`` anywhere; None (full fp32) otherwise."""
    TrainConfig(precision=precision)  # the config's check (ConfigError) for a caller that did not load one
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def use_channels_last(memory_format: str, device: torch.device) -> bool:
    """``auto``: channels_last on CUDA (tensor cores want NHWC), contiguous elsewhere."""
    TrainConfig(memory_format=memory_format)  # as in autocast_dtype
    return memory_format == "channels_last" or (memory_format == "auto" and device.type == "cuda")


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def loader_workers(setting: int) -> int:
    """``-1``: one worker per core this process may use (at most 16), the cores shared by the processes of
    this machine (torchrun's LOCAL_WORLD_SIZE); otherwise the setting."""
    if setting >= 0:
        return setting
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # Linux or not
    return max(1, min(16, cores // max(1, local_world_size) - 1))


def loader_worker_init(_: int) -> None:
    """A loader worker runs one torch thread (DataLoader sets it) and one OpenCV thread (docs/design.md)."""
    import cv2

    cv2.setNumThreads(1)


@contextlib.contextmanager
def forking_workers():
    """Around the start of loader workers this process's OpenCV runs one thread (docs/design.md, engine.accel)."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


class DeviceBatches:
    """Iterate ``loader`` with every batch made ready on ``device`` by ``to_input``; on CUDA one batch ahead
    on a side stream, so that the copy and transform of the next batch overlap the model's work on this one.
    ``views_per_item``: network inputs per loader item (evaluation views cut on the device); ``release(batch)``
    is called on each loader batch once the next is asked for (the workers may then reuse its memory)."""

    def __init__(self, loader, to_input, device: torch.device, *, views_per_item: int = 1, release=None):
        self.loader, self.to_input, self.device, self.views_per_item = loader, to_input, device, views_per_item
        self.release = release or (lambda _: None)

    @property
    def sampler(self):
        return self.loader.sampler

    @property
    def dataset(self):
        return self.loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        with forking_workers() if getattr(self.loader, "num_workers", 0) else contextlib.nullcontext():
            batches = iter(self.loader)
        if self.device.type != "cuda":
            for batch in batches:
                yield self.to_input(batch)
                self.release(batch)
            return
        stream = torch.cuda.Stream(self.device)
        main = torch.cuda.current_stream(self.device)

        def ahead():
            batch = next(batches, None)
            if batch is None:
                return None, None
            with torch.cuda.stream(stream):
                return batch, self.to_input(batch)

        raw, nxt = ahead()
        while nxt is not None:
            main.wait_stream(stream)
            for t in nxt:
                if isinstance(t, torch.Tensor) and t.is_cuda:
                    t.record_stream(main)  # made on the side stream, used on this one
            done, current = raw, nxt
            raw, nxt = ahead()
            yield current
            self.release(done)
