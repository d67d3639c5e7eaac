"""Crops for both streams of a clip (one draw for RGB and flow), cut by ``data.clips.cut_clip`` or its device
twin; a flip negates flow-x, a resize scales the flow by its factor. Numpy and OpenCV only."""

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


def center_crop_params(height: int, width: int) -> CropParams:
    side = min(height, width)
    return CropParams((height - side) // 2, (width - side) // 2, side, False)


def crop_params(height: int, width: int, crops: int) -> list[CropParams]:
    """Square crops of the short side: the centre (crops=1) or both ends and the centre (crops=3)."""
    centre = center_crop_params(height, width)
    if crops == 1:
        return [centre]
    side = centre.size  # one of height - side, width - side is 0: the far end along the long side
    return [CropParams(0, 0, side, False), centre, CropParams(height - side, width - side, side, False)]


def resize_short_side(frame: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so the short side is ``short_side`` (0: keep), keeping the aspect ratio; area filter when shrinking."""
    h, w = frame.shape[:2]
    if short_side == 0 or min(h, w) == short_side:
        return frame
    s = short_side / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
