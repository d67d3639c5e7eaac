"""Flow -> RGB with the Middlebury colour wheel (Baker et al., "A Database and Evaluation Methodology for
Optical Flow", IJCV 2011): hue = direction, saturation = magnitude relative to the largest one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .flo import UNKNOWN_FLOW_THRESHOLD, channels_last

#: Hues per segment of the wheel, red -> yellow -> green -> cyan -> blue -> magenta -> red.
_SEGMENTS = (("RY", 15), ("YG", 6), ("GC", 4), ("CB", 11), ("BM", 13), ("MR", 6))


def colour_wheel() -> np.ndarray:
    """The 55 wheel colours as float (55, 3) RGB in 0..255, each segment a linear ramp of one channel."""
    rows = []
    # (channel that ramps, ramps up?, channel held at 255) per segment
    ramps = ((1, True, 0), (0, False, 1), (2, True, 1), (1, False, 2), (0, True, 2), (2, False, 0))
    for (_, count), (ramp, up, full) in zip(_SEGMENTS, ramps):
        seg = np.zeros((count, 3))
        step = np.floor(255 * np.arange(count) / count)
        seg[:, ramp] = step if up else 255 - step
        seg[:, full] = 255
        rows.append(seg)
    return np.concatenate(rows)


def flow_to_rgb(flow: np.ndarray, *, max_magnitude: float | None = None) -> np.ndarray:
    """Render flow (H, W, 2) or (2, H, W) as uint8 RGB (H, W, 3): zero motion white, ``max_magnitude`` (default:
    the largest) fully saturated, longer darkened as in Middlebury; unknown or non-finite pixels black."""
    flow = channels_last(flow)
    known = np.all(np.isfinite(flow) & (np.abs(flow) < UNKNOWN_FLOW_THRESHOLD), axis=-1)
    u = np.where(known, flow[..., 0], 0.0)
    v = np.where(known, flow[..., 1], 0.0)
    mag = np.hypot(u, v)
    scale = float(mag.max()) if max_magnitude is None else float(max_magnitude)
    if scale > 0:
        u, v, mag = u / scale, v / scale, mag / scale
    wheel = colour_wheel()
    ncols = len(wheel)
    fk = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (ncols - 1)  # direction -> position on the wheel
    k0 = np.floor(fk).astype(int)
    k1 = (k0 + 1) % ncols
    frac = (fk - k0)[..., None]
    col = ((1 - frac) * wheel[k0] + frac * wheel[k1]) / 255.0  # (H, W, 3)
    inside = (mag <= 1)[..., None]
    col = np.where(inside, 1 - mag[..., None] * (1 - col), col * 0.75)
    rgb = np.floor(255 * col).astype(np.uint8)
    rgb[~known] = 0
    return rgb


def save_flow_png(path: str | Path, flow: np.ndarray, *, max_magnitude: float | None = None) -> None:
    """Write the colour-coded flow to an image file (PNG by extension) through cv2.imwrite."""
    rgb = flow_to_rgb(flow, max_magnitude=max_magnitude)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise ValueError(f"could not write image {path}")
