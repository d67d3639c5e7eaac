"""Speed settings shared by training, evaluation and the benchmark: autocast, memory format, loaders."""

from __future__ import annotations

import contextlib
import os

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 for ``auto`` on CUDA and for ``bf16`` anywhere; None (full fp32) otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def use_channels_last(memory_format: str, device: torch.device) -> bool:
    """``auto``: channels_last on CUDA (tensor cores want NHWC), contiguous elsewhere."""
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"memory_format must be one of {', '.join(MEMORY_FORMATS)}, got {memory_format!r}")
    return memory_format == "channels_last" or (memory_format == "auto" and device.type == "cuda")


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def loader_workers(setting: int, *, local_world_size: int = 1) -> int:
    """``-1``: one worker per core this process may use (at most 16); otherwise the setting."""
    if setting >= 0:
        return setting
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(16, cores // max(1, local_world_size) - 1))


def loader_worker_init(_: int) -> None:
    """A loader worker runs one thread: torch's (DataLoader sets it) and OpenCV's, whose pool would
    otherwise start one thread per core in every worker and make the workers fight over the cores."""
    import cv2

    cv2.setNumThreads(1)


class DeviceBatches:
    """Iterate ``loader`` with every batch made ready on ``device`` by ``to_input`` (copy, and for the
    device pipeline decode, crop, flip, resize, normalise); on CUDA one batch ahead on a side stream,
    so that the copy and the transform of the next batch overlap the model's work on this one.

    ``views_per_item``: network inputs per loader item (evaluation views cut on the device).
    """

    def __init__(self, loader, to_input, device: torch.device, *, views_per_item: int = 1):
        self.loader, self.to_input, self.device, self.views_per_item = loader, to_input, device, views_per_item

    @property
    def sampler(self):
        return self.loader.sampler

    @property
    def dataset(self):
        return self.loader.dataset

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        if self.device.type != "cuda":
            for batch in self.loader:
                yield self.to_input(batch)
            return
        stream = torch.cuda.Stream(self.device)
        main = torch.cuda.current_stream(self.device)
        batches = iter(self.loader)

        def ahead():
            batch = next(batches, None)
            if batch is None:
                return None
            with torch.cuda.stream(stream):
                return self.to_input(batch)

        nxt = ahead()
        while nxt is not None:
            main.wait_stream(stream)
            for t in nxt:
                if isinstance(t, torch.Tensor) and t.is_cuda:
                    t.record_stream(main)  # made on the side stream, used on this one
            current, nxt = nxt, ahead()
            yield current
