"""The one clip cutter, numpy and OpenCV only: the loader workers, ``predict``, ``live`` and the ONNX runtime
build their inputs with it (``data.device`` is its batched torch twin). Per frame the crop is resized in uint8,
mirrored if drawn, and written normalised: RGB with ImageNet mean/std, flow in px times the resize factor over the
bound, flow-x negated where mirrored."""

from __future__ import annotations

import cv2
import numpy as np

from .transforms import IMAGENET_MEAN, IMAGENET_STD, CropParams

_RGB_SCALE = (1.0 / (np.array(IMAGENET_STD) * 255.0)).tolist()  # (x - 255 mean) / (255 std) = x * scale + shift
_RGB_SHIFT = (-np.array(IMAGENET_MEAN) / np.array(IMAGENET_STD)).tolist()


def shrink_filter(crop_side: int, size: int) -> int:
    """OpenCV's filter for a ``crop_side`` crop resized to ``size``: area when shrinking by 2 or more, else bilinear."""
    return cv2.INTER_AREA if crop_side >= 2 * size else cv2.INTER_LINEAR


def _resize(img: np.ndarray, size: int, flip: bool) -> np.ndarray:
    """A (h, w, C) uint8 crop (a view), C = 3 (RGB) or 2 (flow) -> (size, size, C) uint8, mirrored if ``flip``."""
    if img.shape[0] != size or img.shape[1] != size:
        img = cv2.resize(img, (size, size), interpolation=shrink_filter(min(img.shape[:2]), size))
    if flip:
        img = cv2.flip(img, 1)
    return img


def _planes(img: np.ndarray, scale: list[float], shift: list[float], out: np.ndarray) -> None:
    """``out[c] = img[..., c] * scale[c] + shift[c]`` in float32, for each channel c of (S, S, C) uint8."""
    for c, plane in enumerate(cv2.split(img)):
        cv2.addWeighted(plane, scale[c], plane, 0.0, shift[c], dst=out[c], dtype=cv2.CV_32F)


def cut_clip(rgb: np.ndarray, flow: np.ndarray, crop: CropParams, *, size: int, out_rgb: np.ndarray,
             out_flow: np.ndarray) -> None:
    """Cut rgb (T, H, W, 3) and quantised flow (T, H, W, 2) uint8 (or just the crop's rows, then ``crop.top``
    is 0) into ``out_rgb`` (3T, S, S) and ``out_flow`` (2T, S, S) float32, frame-major."""
    rows, cols = slice(crop.top, crop.top + crop.size), slice(crop.left, crop.left + crop.size)
    # flow in px is q * 2 bound / 255 - bound; the network takes px / bound (the bound cancels: 2 q / 255 - 1)
    # times size / crop side (displacements scale with the image); a mirrored field's x changes sign
    k = size / crop.size
    sign = -1.0 if crop.flip else 1.0
    flow_scale, flow_shift = [sign * 2 * k / 255.0, 2 * k / 255.0], [-sign * k, -k]
    for t in range(rgb.shape[0]):
        _planes(_resize(rgb[t, rows, cols], size, crop.flip), _RGB_SCALE, _RGB_SHIFT, out_rgb[3 * t:3 * t + 3])
        _planes(_resize(flow[t, rows, cols], size, crop.flip), flow_scale, flow_shift, out_flow[2 * t:2 * t + 2])


def cut_arrays(rgb: np.ndarray, flow: np.ndarray, crop: CropParams, *, size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cut_clip` into new arrays: rgb (3T, S, S) and flow (2T, S, S) float32."""
    t = rgb.shape[0]
    out_rgb, out_flow = np.empty((3 * t, size, size), np.float32), np.empty((2 * t, size, size), np.float32)
    cut_clip(rgb, flow, crop, size=size, out_rgb=out_rgb, out_flow=out_flow)
    return out_rgb, out_flow
