"""Flow <-> uint8 images, the TSN/MMAction2 convention: clip to +-bound px, map linearly to 0..255."""

from __future__ import annotations

import numpy as np

DEFAULT_BOUND = 20.0
#: Bounds a cache's flow bound may take: far outside (1e-320, 1e308) the float32 inputs become inf or NaN.
BOUND_RANGE = (0.01, 10_000)


def quantize_flow(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Map displacements in pixels to uint8: -bound -> 0, 0 -> 127.5 (rounded half to even), +bound -> 255. A
    torch tensor is quantised on its device with the same float32 arithmetic (torch is not imported here)."""
    if bound <= 0:
        raise ValueError(f"bound must be positive, got {bound}")
    if hasattr(flow, "clamp"):
        return ((flow.clamp(-bound, bound) + bound) * (255.0 / (2 * bound))).round().byte()
    scaled = (np.clip(np.asarray(flow, dtype=np.float32), -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.rint(scaled).astype(np.uint8)


def dequantize_flow(q: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Inverse of quantize_flow (up to the quantisation step of 2*bound/255 px)."""
    if bound <= 0:
        raise ValueError(f"bound must be positive, got {bound}")
    return np.asarray(q, dtype=np.float32) * (2 * bound / 255.0) - bound
