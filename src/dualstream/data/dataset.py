"""Clip datasets over the prepared cache, training (random paired augmentation) and evaluation views: the
workers cut whole batches (``__getitems__``, ``clips.cut_clip``); ``data.device``'s take the same draws."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..cache import CacheError, available_frames, check_packed, is_packed, load_frames_u8, load_manifest, snap_to_available
from .augment import random_offset
from .batches import BatchPool, shared_empty
from .clips import cut_clip
from .sampling import ClipSpec, clip_indices, offset_for_epoch, random_spread_indices, view_indices
from .transforms import CropParams, crop_params, random_crop_params
from .ucf101 import VideoEntry


class _Cut:
    """Whole batches cut by the worker: a subclass's ``clip(k)`` gives (video, frames, crop) of item k."""

    def __init__(self, cache: str | Path, entries: list[VideoEntry], spec: ClipSpec):
        """Frame counts, kept frames and (height, width) of every video from the manifests (packed stores checked
        too); a CacheError when their flow was quantised with another bound than ``spec.flow_bound``."""
        self.cache, self.entries, self.spec = Path(cache), entries, spec
        self.frames: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] | None = None
        self.pool: BatchPool | None = None
        manifests = [load_manifest(self.cache / e.key) for e in entries]
        for e, m in zip(entries, manifests):
            if is_packed(self.cache / e.key):
                check_packed(self.cache / e.key, m)
        other = sorted({m["flow_bound"] for m in manifests if m.get("flow_bound", spec.flow_bound) != spec.flow_bound})
        if other:
            raise CacheError(f"{cache}: flow was quantised with bound {', '.join(map(str, other))}, the config says "
                             f"data.flow_bound={spec.flow_bound}; set data.flow_bound to match the cache")
        self.num_frames = [m["num_frames"] for m in manifests]
        self.available = [available_frames(m) for m in manifests]
        self.sizes = [(m["height"], m["width"]) for m in manifests]

    def reuse_batches(self, keep: int = 4):
        """Cut batches into released batches' memory (``BatchPool``); returns the dataset."""
        self.pool = BatchPool(keep)
        return self

    def load(self, v: int, indices: list[int], lines: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Video ``v``'s frames ``indices`` as stored: rgb (T, H, W, 3) and quantised flow (T, H, W, 2) uint8;
        ``lines`` (top, height): the packed store reads only those lines. With ``in_memory`` each decoded
        frame is kept whole (a small set is decoded once, not once per clip)."""
        folder = self.cache / self.entries[v].key
        if self.frames is None:
            return load_frames_u8(folder, indices, self.available[v], lines=lines)
        todo = sorted({i for i in indices if (v, i) not in self.frames})
        if todo:
            rgb, q = load_frames_u8(folder, todo, self.available[v])
            self.frames.update({(v, i): (rgb[k], q[k]) for k, i in enumerate(todo)})
        return (np.stack([self.frames[v, i][0] for i in indices]), np.stack([self.frames[v, i][1] for i in indices]))

    def __getitems__(self, keys: list[int]) -> tuple[torch.Tensor, ...]:
        """rgb (B, 3T, S, S), flow (B, 2T, S, S) float32, labels and videos of items ``keys``."""
        s, t = self.spec.input_size, self.spec.frames
        shapes = (len(keys), 3 * t, s, s), (len(keys), 2 * t, s, s)
        if self.pool is not None and len(keys) > 1:
            rgb, flow = self.pool.batch(*shapes)
        else:
            rgb, flow = (shared_empty(shape) for shape in shapes)
        r, f = rgb.numpy(), flow.numpy()
        videos = []
        for b, k in enumerate(keys):
            v, idx, crop = self.clip(k)
            frames = self.load(v, idx, lines=(crop.top, crop.size))
            if frames[0].shape[1] == crop.size:  # only the crop's rows were read
                crop = CropParams(0, crop.left, crop.size, crop.flip)
            cut_clip(*frames, crop, size=s, out_rgb=r[b], out_flow=f[b])
            videos.append(v)
        return rgb, flow, torch.tensor([self.entries[v].label for v in videos]), torch.tensor(videos)

    def __getitem__(self, k: int) -> tuple:
        rgb, flow, *rest = self.__getitems__([k])
        return (rgb[0], flow[0], *(int(x[0]) for x in rest))


class TrainClips(_Cut, Dataset):
    """``repeats`` randomly augmented clips per video per epoch, at the schedule's offset or a random
    one (``spec.temporal_jitter``); call set_epoch. Item ``i`` is a clip of video ``i % len(entries)``,
    with draws of its own: the same for the same (seed, epoch, item), so a resumed run gets them again."""

    def __init__(self, cache: str | Path, entries: list[VideoEntry], spec: ClipSpec, *, seed: int = 0,
                 repeats: int = 1, in_memory: bool = False):
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        super().__init__(cache, entries, spec)
        self.seed, self.repeats, self.epoch = seed, repeats, 0
        if in_memory:
            self.frames = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.entries) * self.repeats

    def video(self, i: int) -> int:
        return i % len(self.entries)

    def _rng(self, i: int, stream: int) -> np.random.Generator:
        # stream 0: the crop draw (its key has no stream number), 1: the clip offset
        key = [self.seed, self.epoch, i] if stream == 0 else [self.seed, self.epoch, i, stream]
        return np.random.default_rng(key)

    def clip_frames(self, i: int) -> list[int]:
        """1-based frame numbers of item ``i``'s clip at this epoch's offset (snapped to the kept frames)."""
        s, v = self.spec, self.video(i)
        if s.sampling == "spread":
            idx = random_spread_indices(self._rng(i, 1), self.num_frames[v], frames=s.frames,
                                        jitter=s.temporal_jitter, span_min=s.span_min)
        else:
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

    def clip(self, i: int) -> tuple[int, list[int], CropParams]:
        v = self.video(i)
        return v, self.clip_frames(i), self.crop(i, *self.sizes[v])

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        return super().__getitems__(indices)[:3]  # rgb, flow, labels


class EvalViews(_Cut, Dataset):
    """Views of every video: each clip position (``sampling.eval_positions``) x crop (``transforms.crop_params``)
    x flip; item k is view ``k % n`` of video ``k // n``. Items: (rgb, flow, label, video index)."""

    def __init__(self, cache: str | Path, entries: list[VideoEntry], spec: ClipSpec, *,
                 offsets: list[float], crops: int = 1, flip: bool = False):
        super().__init__(cache, entries, spec)
        self.offsets, self.crops, self.flips = list(offsets), crops, (False, True) if flip else (False,)
        self.views_per_video = len(self.offsets) * crops * len(self.flips)

    def __len__(self) -> int:
        return len(self.entries) * self.views_per_video

    def view_crops(self, v: int) -> list[CropParams]:
        """Video ``v``'s views at one clip position, in item order: each crop unmirrored, then mirrored."""
        return [replace(c, flip=f) for c in crop_params(*self.sizes[v], self.crops) for f in self.flips]

    def view_frames(self, v: int, o: int) -> list[int]:
        """1-based frame numbers of video ``v``'s clip at position number ``o`` (snapped to the kept frames)."""
        s = self.spec
        return snap_to_available(view_indices(self.num_frames[v], self.offsets[o], sampling=s.sampling,
                                              frames=s.frames, interval=s.interval), self.available[v])

    def clip(self, k: int) -> tuple[int, list[int], CropParams]:
        v, view = divmod(k, self.views_per_video)
        o, r = divmod(view, self.crops * len(self.flips))
        return v, self.view_frames(v, o), self.view_crops(v)[r]
