"""The fused pipeline: loader workers hand over network-ready batches, every clip cut in one pass.

The fastest loader on the CPU (``benchmarks/loader.py``: the ``fused`` rows). A worker takes a whole
batch at once (``__getitems__``) and allocates its two float tensors in shared memory; for each clip
it reads only the rows of the frames that the crop covers (the packed store) or decodes the JPEGs,
then per frame:

* resizes the crop in uint8 (OpenCV: bilinear when shrinking by less than 2, as the ``device``
  pipeline samples; area when shrinking more), then mirrors it if drawn;
* writes each plane dequantised and normalised straight into its slot of the batch (one OpenCV call
  per plane: ``q * a + b`` in float32), RGB with ImageNet mean/std, flow in px times the resize
  factor over the bound, flow-x negated where mirrored.

So no float frame, no per-clip tensor and no collate copy exists, and the main process has nothing
left to do. The clips and draws are ``TrainClips``' (``crop``, ``clip_frames``), so resume is exact;
the values equal ``TrainClips``' up to the resize filter (bilinear, and the flow resized as uint8),
and exactly where the crop is not resized. Evaluation views (``FusedViews``) are ``EvalViews``' in order.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import default_collate

from ..cache import load_frames_u8
from .dataset import ClipSpec, EvalViews, TrainClips
from .device import shared_empty
from .transforms import IMAGENET_MEAN, IMAGENET_STD, CropParams
from .ucf101 import VideoEntry

_RGB_SCALE = (1.0 / (np.array(IMAGENET_STD) * 255.0)).tolist()  # (x - 255 mean) / (255 std) = x * scale + shift
_RGB_SHIFT = (-np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD)).tolist()


IN_USE, RELEASED = 1234.5, 0.0  # the flag after a pooled batch's two tensors


def _flag(storage) -> torch.Tensor:
    """The last float32 of a batch storage: ``IN_USE`` while the consumer may read it."""
    return torch.empty(0, dtype=torch.float32).set_(storage, storage.nbytes() // 4 - 1, (1,))


class BatchPool:
    """Batch storages of one process, reused once released: fresh memory is what a network-ready batch
    costs most (the kernel faults in and zeroes every page: 250 MB per batch of 25 at 224), so a worker
    writes its next batch into one the consumer has finished with (``benchmarks/RESULTS.md``: 2.8x
    ``TrainClips`` per worker without, 8-9x with).

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


def _resize(img: np.ndarray, size: int, flip: bool) -> np.ndarray:
    """A (h, w, C) uint8 crop (a view) -> (size, size, C) uint8, mirrored if ``flip``."""
    if img.shape[0] != size or img.shape[1] != size:
        interp = cv2.INTER_AREA if min(img.shape[:2]) >= 2 * size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
    if flip:
        img = cv2.flip(img, 1)
    if img.ndim == 2:  # OpenCV drops a single channel
        img = img[..., None]
    return img


def _planes(img: np.ndarray, scale: list[float], shift: list[float], out: np.ndarray) -> None:
    """``out[c] = img[..., c] * scale[c] + shift[c]`` in float32, for each channel c of (S, S, C) uint8."""
    planes = cv2.split(img) if img.shape[2] > 1 else [img[..., 0]]
    for c, plane in enumerate(planes):
        cv2.addWeighted(plane, scale[c], plane, 0.0, shift[c], dst=out[c], dtype=cv2.CV_32F)


def cut_clip(rgb: np.ndarray, flow: np.ndarray, crop: CropParams, *, size: int, out_rgb: np.ndarray,
             out_flow: np.ndarray) -> None:
    """Crop, resize, mirror and normalise one clip into ``out_rgb`` (3T, S, S) and ``out_flow`` (2T, S, S)
    float32 (frame-major, as ``TrainClips``): rgb (T, H, W, 3) and quantised flow (T, H, W, 2) uint8,
    which may be just the rows the crop covers (then ``crop.top`` is 0)."""
    rows, cols = slice(crop.top, crop.top + crop.size), slice(crop.left, crop.left + crop.size)
    # flow in px is q * 2 bound / 255 - bound; the network takes px / bound (the bound cancels: 2 q / 255 - 1)
    # times size / crop side (displacements scale with the image); a mirrored field's x changes sign
    k = size / crop.size
    sign = -1.0 if crop.flip else 1.0
    flow_scale, flow_shift = [sign * 2 * k / 255.0, 2 * k / 255.0], [-sign * k, -k]
    for t in range(rgb.shape[0]):
        _planes(_resize(rgb[t, rows, cols], size, crop.flip), _RGB_SCALE, _RGB_SHIFT, out_rgb[3 * t:3 * t + 3])
        _planes(_resize(flow[t, rows, cols], size, crop.flip), flow_scale, flow_shift, out_flow[2 * t:2 * t + 2])


class _Batches:
    """Whole batches cut into shared memory: ``clip(k)`` gives (video, frames, crop) of item k."""

    cache: Path
    entries: list[VideoEntry]
    spec: ClipSpec
    available: list
    pool: BatchPool | None = None
    """Set by ``reuse_batches`` where the consumer calls ``release_batch``: batches then reuse released storages."""

    def clip(self, k: int) -> tuple[int, list[int], CropParams]:
        raise NotImplementedError

    def reuse_batches(self, keep: int = 4):
        """Cut batches into released batches' memory (``BatchPool``); returns the dataset."""
        self.pool = BatchPool(keep)
        return self

    def _cut(self, keys: list[int]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
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
            frames = load_frames_u8(self.cache / self.entries[v].key, idx, self.available[v],
                                    lines=(crop.top, crop.size))
            if frames[0].shape[1] == crop.size:  # only the crop's rows were read
                crop = CropParams(0, crop.left, crop.size, crop.flip)
            cut_clip(*frames, crop, size=s, out_rgb=r[b], out_flow=f[b])
            videos.append(v)
        return rgb, flow, videos


class FusedClips(_Batches, TrainClips):
    """``TrainClips``' clips and draws, cut by ``cut_clip``: items (rgb (3T, S, S), flow (2T, S, S), label)
    and, through ``__getitems__``, whole batches (rgb (B, 3T, S, S), flow, labels) as a tuple."""

    def clip(self, i: int) -> tuple[int, list[int], CropParams]:
        v = self.video(i)
        return v, self.clip_frames(i), self.crop(i, *self.sizes[v])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:  # type: ignore[override]
        rgb, flow, labels = self.__getitems__([i])
        return rgb[0], flow[0], int(labels[0])

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rgb, flow, videos = self._cut(list(indices))
        return rgb, flow, torch.tensor([self.entries[v].label for v in videos])


class FusedViews(_Batches, EvalViews):
    """``EvalViews``' views in its order, cut by ``cut_clip``: items (rgb, flow, label, video) and whole batches."""

    def clip(self, k: int) -> tuple[int, list[int], CropParams]:
        v, (o, c, f) = self.view(k)
        return v, self.view_frames(v, o), self.view_crop(*self.sizes[v], c, f)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:  # type: ignore[override]
        rgb, flow, labels, videos = self.__getitems__([k])
        return rgb[0], flow[0], int(labels[0]), int(videos[0])

    def __getitems__(self, keys: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        rgb, flow, videos = self._cut(list(keys))
        return rgb, flow, torch.tensor([self.entries[v].label for v in videos]), torch.tensor(videos)


def collate_fused(data):
    """The loaders' collate: a batch ``__getitems__`` cut (a tuple) as it is; a list of items (a dataset
    wrapper without ``__getitems__``) collated as usual."""
    return data if isinstance(data, tuple) else default_collate(data)
