"""Clip datasets over the rawframes cache, for training (random paired augmentation) and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..flow import dequantize_flow
from .augment import random_offset
from .cache import CacheError, available_frames, load_clip, load_clip_u8, read_manifest, snap_to_available
from .packed import check_packed, is_packed
from .sampling import clip_indices, offset_for_epoch
from .transforms import CropParams, apply_clip_transform, crop_params, random_crop_params
from .ucf101 import VideoEntry


@dataclass(frozen=True)
class ClipSpec:
    """How clips are cut from a video and shaped for the network."""

    frames: int = 10
    interval: int = 10
    offsets: tuple[int, ...] = (5, 8)
    offset_period: int = 100
    input_size: int = 224
    flow_bound: float = 20.0
    crop_scale_min: float = 0.8
    flip: bool = True
    temporal_jitter: bool = False
    """Training clips start at a random frame (any offset whose clip fits) instead of the schedule's offset."""


def _frame_index(cache: str | Path, entries: list[VideoEntry], spec: ClipSpec
                 ) -> tuple[list[int], list[list[int] | None], list[tuple[int, int]]]:
    """Frame counts, kept frames and (height, width) of every video, from the manifests; their flow
    must have been quantised with ``spec.flow_bound`` (another bound would rescale every flow value silently).
    Packed stores are checked here too (headers and sizes), before any training or evaluation time is spent."""
    manifests = [read_manifest(cache, e.key) for e in entries]
    for e, m in zip(entries, manifests):
        if is_packed(Path(cache) / e.key):
            check_packed(Path(cache) / e.key, m)
    other = sorted({m["flow_bound"] for m in manifests if m.get("flow_bound", spec.flow_bound) != spec.flow_bound})
    if other:
        raise CacheError(f"{cache}: flow was quantised with bound {', '.join(map(str, other))}, the config says "
                         f"data.flow_bound={spec.flow_bound}; set data.flow_bound to match the cache")
    return ([m["num_frames"] for m in manifests], [available_frames(m) for m in manifests],
            [(m["height"], m["width"]) for m in manifests])


class TrainClips(Dataset):
    """``repeats`` randomly augmented clips per video per epoch, at the schedule's offset or a random
    one (``spec.temporal_jitter``); call set_epoch. Item ``i`` is a clip of video ``i % len(entries)``,
    with draws of its own: the same for the same (seed, epoch, item), so a resumed run gets them again."""

    def __init__(self, cache: str | Path, entries: list[VideoEntry], spec: ClipSpec, *, seed: int = 0,
                 repeats: int = 1, in_memory: bool = False):
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.cache, self.entries, self.spec, self.seed, self.repeats = Path(cache), entries, spec, seed, repeats
        self.num_frames, self.available, self.sizes = _frame_index(cache, entries, spec)
        self.epoch = 0
        self.frames: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] | None = {} if in_memory else None

    def load(self, v: int, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Video ``v``'s frames ``indices``: rgb uint8 (T, H, W, 3), flow px (T, 2, H, W); with ``in_memory``
        each decoded frame is kept (a small set is decoded once, not once per clip)."""
        folder = self.cache / self.entries[v].key
        if self.frames is None:
            return load_clip(folder, indices, bound=self.spec.flow_bound, available=self.available[v])
        todo = sorted({i for i in indices if (v, i) not in self.frames})
        if todo:
            rgb, q = load_clip_u8(folder, todo, available=self.available[v])
            self.frames.update({(v, i): (rgb[k], q[k]) for k, i in enumerate(todo)})
        rgb = np.stack([self.frames[v, i][0] for i in indices])
        q = np.stack([self.frames[v, i][1] for i in indices])
        return rgb, dequantize_flow(q, self.spec.flow_bound)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries) * self.repeats

    def video(self, i: int) -> int:
        """The video of item ``i``."""
        return i % len(self.entries)

    def _rng(self, i: int, stream: int) -> np.random.Generator:
        # stream 0 is the crop draw (as before temporal jitter existed), 1 the clip offset
        key = [self.seed, self.epoch, i] if stream == 0 else [self.seed, self.epoch, i, stream]
        return np.random.default_rng(key)

    def clip_frames(self, i: int) -> list[int]:
        """1-based frame numbers of item ``i``'s clip at this epoch's offset (snapped to the kept frames)."""
        s, v = self.spec, self.video(i)
        if s.temporal_jitter:
            offset = random_offset(self._rng(i, 1), self.num_frames[v], frames=s.frames, interval=s.interval)
        else:
            offset = offset_for_epoch(self.epoch, offsets=list(s.offsets), period=s.offset_period)
        idx = clip_indices(self.num_frames[v], frames=s.frames, interval=s.interval, offset=offset)
        return snap_to_available(idx, self.available[v])

    def crop(self, i: int, height: int, width: int) -> CropParams:
        """Item ``i``'s random crop and flip this epoch: the same draw for the same epoch (resumable)."""
        return random_crop_params(height, width, rng=self._rng(i, 0), scale_min=self.spec.crop_scale_min,
                                  flip=self.spec.flip)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        s, v = self.spec, self.video(i)
        rgb, flow = self.load(v, self.clip_frames(i))
        crop = self.crop(i, *rgb.shape[1:3])
        r, f = apply_clip_transform(rgb, flow, crop, size=s.input_size, flow_bound=s.flow_bound)
        return r, f, self.entries[v].label


class EvalViews(Dataset):
    """``len(offsets) * crops * (2 if flip else 1)`` views per video; item k is view ``k % n`` of video ``k // n``.

    A view is one frame offset (``sampling.eval_offsets``), one crop (``transforms.crop_params``) and
    optionally its mirror image. Returns (rgb, flow, label, video index).
    """

    def __init__(self, cache: str | Path, entries: list[VideoEntry], spec: ClipSpec, *,
                 offsets: list[int], crops: int = 1, flip: bool = False):
        self.cache, self.entries, self.spec = Path(cache), entries, spec
        self.offsets, self.crops, self.flips = list(offsets), crops, (False, True) if flip else (False,)
        self.num_frames, self.available, self.sizes = _frame_index(cache, entries, spec)

    @property
    def views_per_video(self) -> int:
        return len(self.offsets) * self.crops * len(self.flips)

    def __len__(self) -> int:
        return len(self.entries) * self.views_per_video

    def view(self, k: int) -> tuple[int, tuple[int, int, int]]:
        """Item ``k``'s video and (offset, crop, flip) numbers."""
        v, view = divmod(k, self.views_per_video)
        o, rest = divmod(view, self.crops * len(self.flips))
        return v, (o, *divmod(rest, len(self.flips)))

    def view_frames(self, v: int, o: int) -> list[int]:
        """1-based frame numbers of video ``v``'s clip at offset number ``o`` (snapped to the kept frames)."""
        s = self.spec
        return snap_to_available(clip_indices(self.num_frames[v], frames=s.frames, interval=s.interval,
                                              offset=self.offsets[o]), self.available[v])

    def view_crop(self, height: int, width: int, c: int, f: int) -> CropParams:
        """Crop number ``c`` of a (height, width) clip, mirrored as flip number ``f`` says."""
        crop = crop_params(height, width, self.crops)[c]
        return CropParams(crop.top, crop.left, crop.size, self.flips[f])

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        s = self.spec
        v, (o, c, f) = self.view(k)
        rgb, flow = load_clip(self.cache / self.entries[v].key, self.view_frames(v, o), bound=s.flow_bound,
                              available=self.available[v])
        crop = self.view_crop(*rgb.shape[1:3], c, f)
        r, fl = apply_clip_transform(rgb, flow, crop, size=s.input_size, flow_bound=s.flow_bound)
        return r, fl, self.entries[v].label, v
