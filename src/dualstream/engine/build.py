"""A run's parts built from its config, shared by training and evaluation: split, clip spec, model, loaders.

The config is turned into constructor arguments here; the modules that do the work never see it.
``train`` and ``evaluate`` both import from this module and not from each other's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from ..config import Config, ConfigError
from ..text import cut, shown
from ..data import device as dev
from ..cache import check_prepared
from ..cache import frame_sizes, is_packed
from ..data.batches import collate_batches, release_batch
from ..data.dataset import EvalViews, TrainClips
from ..data.sampling import ClipSpec, eval_positions
from ..data.ucf101 import Split, VideoEntry, check_group_overlap, read_split, validate_split
from ..models import create_model
from .accel import DeviceBatches, loader_worker_init, to_device
from .distributed import World

CONFIG = "config.yaml"
"""The resolved config a run folder keeps (training writes it, evaluation and --resume read it)."""


def load_split(cfg: Config) -> Split:
    """Read the split, refuse train/test group leakage (unless data.allow_group_overlap) and check
    that the cache holds every video it lists (one error naming all)."""
    split = read_split(cfg.data.splits, cfg.data.split)
    where = f"split {cfg.data.split} of {cfg.data.splits}"
    validate_split(split, where=where)
    overlap = check_group_overlap(split, allow=cfg.data.allow_group_overlap, where=where)
    if overlap:
        tqdm.write(f"warning: {where} shares {len(overlap)} group(s) between train and test "
                   "(data.allow_group_overlap=true): test accuracy is inflated", file=sys.stderr)
    check_prepared(cfg.data.cache, [e.key for e in split.train + split.test])
    return split


def build_model(cfg: Config, num_classes: int, *, aux: bool = True) -> nn.Module:
    """The configured model; a fusion model trained with ``train.aux_loss`` gets its per-stream heads (with ``aux``)."""
    def make(**extra) -> nn.Module:
        return create_model(cfg.model.name, num_classes=num_classes, frames=cfg.data.frames,
                            input_size=cfg.data.input_size, **cfg.model.kwargs, **extra)
    try:
        model = make()
        # a fusion model gets its heads by a second build: the first one's draws stay part of every recipe's results
        # (benchmarks/RESULTS.md reproduces them exactly)
        if aux and cfg.train.aux_loss > 0 and hasattr(model, "aux") and not has_aux_heads(model):
            model = make(aux_heads=True)
        return model
    except (TypeError, ValueError) as exc:  # unknown model or keyword argument: the user's config
        raise ConfigError(f"model {shown(cfg.model.name)} with kwargs {shown(cfg.model.kwargs)}: "
                          f"{cut(str(exc), 200)}") from None


def has_aux_heads(model: nn.Module) -> bool:
    """Whether ``model`` has per-stream heads (``aux_heads``), which ``train.aux_loss`` trains."""
    return getattr(model, "aux", None) is not None


def batch_loader(dataset: Dataset, *, sampler: Sampler | range, batch_size: int, workers: int, pin: bool,
                 collate_fn: Callable | None = None, seed: int = 0) -> DataLoader:
    """``sampler``'s items of ``dataset`` in batches, cut by ``workers`` persistent workers (one OpenCV thread each)."""
    # a generator of its own: starting the workers must not draw from the global RNG (exact resume)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin,
                      persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed),
                      collate_fn=collate_fn, worker_init_fn=loader_worker_init if workers else None)


def resolve_pipeline(cfg: Config, device: torch.device, entries: list[VideoEntry]) -> tuple[str, bool]:
    """(``workers`` or ``device``, whether the device decodes the JPEGs) for this config, device and videos."""
    d = cfg.data
    pipeline = {"auto": "device" if device.type == "cuda" else "workers"}.get(d.pipeline, d.pipeline)
    if pipeline != "device" or d.jpeg_decode == "worker":
        return pipeline, False
    if not dev.jpeg_on_device_available(device):
        if d.jpeg_decode == "device":
            raise ConfigError("data.jpeg_decode=device needs a CUDA device and torchvision's decode_jpeg "
                              "(use data.jpeg_decode=worker or auto)")
        return pipeline, False
    packed = is_packed(Path(d.cache) / entries[0].key) if entries else False
    sizes = set(frame_sizes(d.cache, [e.key for e in entries]))
    if d.jpeg_decode == "device" and (packed or len(sizes) > 1):
        raise ConfigError("data.jpeg_decode=device needs a JPEG (not packed) cache whose videos share one size")
    return pipeline, not packed and len(sizes) == 1


def worker_input(device: torch.device, channels_last: bool) -> Callable:
    """(rgb, flow, label[, video]) cut by the workers -> the same with rgb and flow on ``device``."""
    return lambda batch: (*(to_device(x, device, channels_last) for x in batch[:2]), *batch[2:])


def device_input(fn: Callable, spec: ClipSpec, device: torch.device, channels_last: bool) -> Callable:
    """The device pipeline's transform ``fn`` (``to_train_input`` / ``to_eval_input``): network inputs on ``device``."""
    place = worker_input(device, channels_last)  # the memory format, as for batches the workers cut
    return lambda batch: place(fn(batch, device, size=spec.input_size, flow_bound=spec.flow_bound))


def worker_batches(dataset: TrainClips | EvalViews, device: torch.device) -> tuple[Callable, Callable]:
    """A worker-cut dataset's (collate, release) for its loader and ``DeviceBatches``. On the CPU its batch
    memory is reused once released; on CUDA the loop gets pinned copies, so nothing would be released."""
    if device.type == "cpu":
        dataset.reuse_batches()
    return collate_batches, release_batch


def eval_batches(cfg: Config, entries: list[VideoEntry], *, world: World, device: torch.device, clips: int,
                 crops: int = 1, flip: bool = False, workers: int, channels_last: bool) -> DeviceBatches:
    """Every view (``clips`` positions, ``data.sampling``) of every video of ``entries`` (a shard per process), ready
    on ``device``; the dataset (``.dataset``) says ``offsets``, ``views_per_video``, ``crops`` and ``flips``."""
    spec = ClipSpec.from_config(cfg.data)
    offsets = eval_positions(cfg.data.sampling, interval=cfg.data.interval, clips=clips)
    pipeline, jpeg = resolve_pipeline(cfg, device, entries)
    if pipeline != "device":
        views = EvalViews(cfg.data.cache, entries, spec, offsets=offsets, crops=crops, flip=flip)
        (collate, release), to_input = worker_batches(views, device), worker_input(device, channels_last)
    else:
        views = dev.EvalFrames(cfg.data.cache, entries, spec, offsets=offsets, crops=crops, flip=flip, jpeg_bytes=jpeg)
        collate, release = dev.collate_frames, None
        to_input = device_input(dev.to_eval_input, spec, device, channels_last)
    m = getattr(views, "views_per_item", 1)  # a batch of items is m times as many views: keep the views per batch
    # every view once over all processes (a disjoint shard each, no padding), in order
    loader = batch_loader(views, sampler=world.shard(len(views)), batch_size=max(1, cfg.train.batch_size // m),
                          workers=workers, pin=device.type == "cuda" and not jpeg, collate_fn=collate)
    return DeviceBatches(loader, to_input, device, views_per_item=m, release=release)
