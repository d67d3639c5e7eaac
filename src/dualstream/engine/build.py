"""A run's parts built from its config, shared by training and evaluation: split, clip spec, model, loaders.

The config is turned into constructor arguments here; the modules that do the work never see it.
``train`` and ``evaluate`` both import from this module and not from each other's.
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..config import Config, ConfigError
from ..data.cache import check_prepared
from ..data.dataset import ClipSpec
from ..data.ucf101 import Split, check_group_overlap, read_split, validate_split
from ..models import create_model
from .distributed import ShardSampler, World

CONFIG = "config.yaml"
"""The resolved config a run folder keeps (training writes it, evaluation and --resume read it)."""


def clip_spec(cfg: Config) -> ClipSpec:
    d = cfg.data
    return ClipSpec(
        frames=d.frames, interval=d.interval, offsets=tuple(d.offsets), offset_period=d.offset_period,
        input_size=d.input_size, flow_bound=d.flow_bound, crop_scale_min=d.crop_scale_min, flip=d.flip,
    )


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


def build_model(cfg: Config, num_classes: int) -> nn.Module:
    try:
        return create_model(cfg.model.name, num_classes=num_classes, frames=cfg.data.frames,
                            input_size=cfg.data.input_size, **cfg.model.kwargs)
    except (TypeError, ValueError) as exc:  # unknown model or keyword argument: the user's config
        raise ConfigError(f"model {cfg.model.name!r} with kwargs {cfg.model.kwargs}: {exc}") from None


def eval_loader(dataset: Dataset, *, world: World, batch_size: int, workers: int, pin: bool) -> DataLoader:
    """Every item once over all processes (``ShardSampler``: a disjoint shard each, no padding), in order."""
    # a generator of its own: starting the workers must not draw from the global RNG (exact resume)
    return DataLoader(dataset, batch_size=batch_size, sampler=ShardSampler(len(dataset), world),
                      num_workers=workers, pin_memory=pin, persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(0))
