"""Training clips as uint8, normalised on the device: a loader that can keep up with a GPU.

``TrainClips`` does the whole transform on the CPU in float32 (about 80 ms per 224x224 clip on
one core). Here the workers only decode, crop, flip and resize in uint8 and hand over uint8
tensors (4x fewer bytes to copy to the device); ``to_network_input`` then dequantises the flow
and normalises both streams on the device, batched. The result equals ``TrainClips``' up to the
rounding of the uint8 resize (at most about one grey level): a flip of quantised flow is exact
(``255 - q`` is the quantised ``-flow``).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .cache import snap_to_available
from .dataset import TrainClips
from .sampling import clip_indices, offset_for_epoch
from .transforms import IMAGENET_MEAN, IMAGENET_STD, _resize_stack, random_crop_params


def _read(path: str, flags: int) -> np.ndarray:
    img = cv2.imread(path, flags)
    if img is None:
        from .cache import CacheError

        raise CacheError(f"{path}: missing or unreadable frame")
    return img


class TrainClipsU8(TrainClips):
    """Same clips and augmentation draws as ``TrainClips``; items are (rgb uint8 (3T, S, S), flow uint8
    (2T, S, S), label, scale) with ``scale`` = S / crop side, for ``to_network_input``."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int, float]:  # type: ignore[override]
        s = self.spec
        offset = offset_for_epoch(self.epoch, offsets=list(s.offsets), period=s.offset_period)
        idx = snap_to_available(clip_indices(self.num_frames[i], frames=s.frames, interval=s.interval, offset=offset),
                                self.available[i])
        folder = str(self.cache / self.entries[i].key)
        first = _read(f"{folder}/img_{idx[0]:05d}.jpg", cv2.IMREAD_COLOR)
        rng = np.random.default_rng([self.seed, self.epoch, i])  # the same draw as TrainClips
        crop = random_crop_params(*first.shape[:2], rng=rng, scale_min=s.crop_scale_min, flip=s.flip)
        rows, cols = slice(crop.top, crop.top + crop.size), slice(crop.left, crop.left + crop.size)
        rgb, flow = [], []
        for k, n in enumerate(idx):
            img = first if k == 0 else _read(f"{folder}/img_{n:05d}.jpg", cv2.IMREAD_COLOR)
            rgb.append(img[rows, cols, ::-1])
            fx = _read(f"{folder}/flow_x_{n:05d}.jpg", cv2.IMREAD_GRAYSCALE)[rows, cols]
            fy = _read(f"{folder}/flow_y_{n:05d}.jpg", cv2.IMREAD_GRAYSCALE)[rows, cols]
            flow.append(np.stack([fx, fy], axis=-1))
        r, f = np.stack(rgb), np.stack(flow)  # (T, c, c, 3), (T, c, c, 2)
        if crop.flip:
            r = r[:, :, ::-1]
            f = f[:, :, ::-1].copy()
            f[..., 0] = 255 - f[..., 0]  # the mirrored field's x component changes sign
        r = _resize_stack(np.ascontiguousarray(r), s.input_size)
        f = _resize_stack(np.ascontiguousarray(f), s.input_size)
        t, size = len(idx), s.input_size
        rt = torch.from_numpy(np.ascontiguousarray(r.transpose(0, 3, 1, 2))).reshape(3 * t, size, size)
        ft = torch.from_numpy(np.ascontiguousarray(f.transpose(0, 3, 1, 2))).reshape(2 * t, size, size)
        return rt, ft, self.entries[i].label, size / crop.size


def to_network_input(rgb: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor, *, flow_bound: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 batches (B, 3T, S, S), (B, 2T, S, S) -> the float inputs ``TrainClips`` gives, on their device.

    RGB: ImageNet mean/std per channel; flow: quantised -> px, times the crop's resize factor
    ``scale`` (B,), divided by the bound.
    """
    b, c3, h, w = rgb.shape
    mean = torch.tensor(IMAGENET_MEAN, device=rgb.device).repeat(c3 // 3).view(1, c3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD, device=rgb.device).repeat(c3 // 3).view(1, c3, 1, 1) * 255
    r = (rgb.float() - mean) / std
    px = flow.float() * (2 * flow_bound / 255.0) - flow_bound
    f = px * (scale.to(flow.device, torch.float32) / flow_bound).view(-1, 1, 1, 1)
    return r, f
