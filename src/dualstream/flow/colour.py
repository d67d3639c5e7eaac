"""Flow -> RGB with the Middlebury colour wheel (Baker et al., "A Database and Evaluation Methodology for
Optical Flow", IJCV 2011): hue = direction, saturation = magnitude relative to the largest one."""

from __future__ import annotations

import numpy as np

from .flo import UNKNOWN_FLOW_THRESHOLD, channels_last

#: The wheel's segments, red -> yellow -> green -> cyan -> blue -> magenta -> red: (hues, the channel that ramps,
#: ramps up?, the channel held at 255).
_SEGMENTS = ((15, 1, True, 0), (6, 0, False, 1), (4, 2, True, 1), (11, 1, False, 2), (13, 0, True, 2), (6, 2, False, 0))


def colour_wheel() -> np.ndarray:
    """The 55 wheel colours as float (55, 3) RGB in 0..255, each segment a linear ramp of one channel."""
    rows = []
    for count, ramp, up, full in _SEGMENTS:
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
    u, v = np.where(known[..., None], flow, 0.0).transpose(2, 0, 1)
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
    col = np.where((mag <= 1)[..., None], 1 - mag[..., None] * (1 - col), col * 0.75)
    rgb = np.floor(255 * col).astype(np.uint8)
    rgb[~known] = 0
    return rgb
