"""Paired RGB/flow clip transforms: one random crop and one flip drawn for both streams.

A horizontal flip mirrors the flow field and negates flow-x (motion to the right becomes motion
to the left). Resizing a crop by a factor also scales the flow displacements by that factor.

Everything here is numpy and OpenCV (``clip_arrays``); only ``apply_clip_transform`` hands the result
to PyTorch, so the ONNX runtime builds its inputs with exactly these functions without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEAN = np.array(IMAGENET_MEAN, np.float32) * 255
_STD = np.array(IMAGENET_STD, np.float32) * 255
#: Short side of the frames ``prepare`` writes (and predict resizes to) unless told otherwise.
DEFAULT_SHORT_SIDE = 128


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


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so the short side is ``short_side`` (0: keep), keeping the aspect ratio; area filter when shrinking."""
    h, w = frame.shape[:2]
    if short_side == 0 or min(h, w) == short_side:
        return frame
    s = short_side / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def clip_arrays(
    rgb: np.ndarray, flow: np.ndarray, crop: CropParams, *, size: int, flow_bound: float
) -> tuple[np.ndarray, np.ndarray]:
    """Crop, flip, resize and normalise a clip (numpy in, numpy out).

    rgb: uint8 (T, H, W, 3); flow: float32 px (T, 2, H, W). Returns float32 rgb (3T, size, size)
    normalised with ImageNet statistics and flow (2T, size, size) divided by ``flow_bound``,
    frame-major: [f1 R, f1 G, f1 B, f2 R, ...] and [f1 x, f1 y, f2 x, ...]. Every step works frame
    by frame, so a clip's arrays are the concatenation of its frames' (what ``dualstream live`` uses).
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
    r = np.ascontiguousarray(r.transpose(0, 3, 1, 2)).reshape(3 * t, size, size)
    f = np.ascontiguousarray(f.transpose(0, 3, 1, 2)).reshape(2 * t, size, size)
    return r, f


def apply_clip_transform(
    rgb: np.ndarray, flow: np.ndarray, crop: CropParams, *, size: int, flow_bound: float
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """:func:`clip_arrays` as torch tensors (rgb (3T, size, size), flow (2T, size, size)), for the data loaders."""
    import torch

    r, f = clip_arrays(rgb, flow, crop, size=size, flow_bound=flow_bound)
    return torch.from_numpy(r), torch.from_numpy(f)
