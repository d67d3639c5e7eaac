"""Paired RGB/flow clip transforms: one random crop and one flip drawn for both streams.

A horizontal flip mirrors the flow field and negates flow-x (motion to the right becomes motion
to the left). Resizing a crop by a factor also scales the flow displacements by that factor.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN = np.array(IMAGENET_MEAN, np.float32) * 255
_STD = np.array(IMAGENET_STD, np.float32) * 255


@dataclass(frozen=True)
class CropParams:
    top: int
    left: int
    size: int
    flip: bool


def random_crop_params(height: int, width: int, *, rng: np.random.Generator, scale_min: float, flip: bool) -> CropParams:
    """A square crop of side uniform(scale_min, 1) * short side at a random place, flipped with p=0.5."""
    side = max(1, int(round(min(height, width) * rng.uniform(scale_min, 1.0))))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return CropParams(top, left, side, bool(flip and rng.random() < 0.5))


def center_crop_params(height: int, width: int, *, flip: bool = False) -> CropParams:
    side = min(height, width)
    return CropParams((height - side) // 2, (width - side) // 2, side, flip)


def crop_params(height: int, width: int, crops: int) -> list[CropParams]:
    """Square crops of the short side: the centre (crops=1) or both ends and the centre (crops=3)."""
    side = min(height, width)
    centre = center_crop_params(height, width)
    if crops == 1:
        return [centre]
    if height >= width:
        return [CropParams(0, 0, side, False), centre, CropParams(height - side, 0, side, False)]
    return [CropParams(0, 0, side, False), centre, CropParams(0, width - side, side, False)]


def resize_stack(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize (T, h, w, C) frames to (T, size, size, C) with OpenCV (area filter when shrinking)."""
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    interp = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_LINEAR
    out = [cv2.resize(f, (size, size), interpolation=interp) for f in frames]
    return np.stack([o if o.ndim == 3 else o[..., None] for o in out])


def apply_clip_transform(
    rgb: np.ndarray, flow: np.ndarray, crop: CropParams, *, size: int, flow_bound: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop, flip, resize and normalise a clip.

    rgb: uint8 (T, H, W, 3); flow: float32 px (T, 2, H, W). Returns rgb (3T, size, size) normalised
    with ImageNet statistics and flow (2T, size, size) divided by ``flow_bound``, frame-major:
    [f1 R, f1 G, f1 B, f2 R, ...] and [f1 x, f1 y, f2 x, ...].
    """
    t = rgb.shape[0]
    rows, cols = slice(crop.top, crop.top + crop.size), slice(crop.left, crop.left + crop.size)
    r = rgb[:, rows, cols]  # (T, s, s, 3)
    f = flow[:, :, rows, cols].transpose(0, 2, 3, 1)  # (T, 2, s, s) -> (T, s, s, 2)
    if crop.flip:
        r = r[:, :, ::-1]
        f = f[:, :, ::-1] * np.array([-1.0, 1.0], np.float32)  # mirrored field: flow-x changes sign
    r = resize_stack(np.ascontiguousarray(r), size).astype(np.float32)
    f = resize_stack(np.ascontiguousarray(f, dtype=np.float32), size)
    r = (r - _MEAN) / _STD
    f = f * (size / crop.size / flow_bound)  # displacements scale with the image
    r = torch.from_numpy(np.ascontiguousarray(r.transpose(0, 3, 1, 2))).reshape(3 * t, size, size)
    f = torch.from_numpy(np.ascontiguousarray(f.transpose(0, 3, 1, 2))).reshape(2 * t, size, size)
    return r, f
