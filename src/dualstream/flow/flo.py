"""Middlebury ``.flo`` files: float32 magic 202021.25, int32 width, int32 height, then (H, W, 2) float32 u, v."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FLO_MAGIC = 202021.25
#: Ground-truth values above this magnitude mark unknown flow (Middlebury convention).
UNKNOWN_FLOW_THRESHOLD = 1e9


def read_flo(path: str | Path) -> np.ndarray:
    """Read a .flo file -> float32 (H, W, 2), channel 0 = horizontal displacement."""
    with open(path, "rb") as fh:
        magic = np.fromfile(fh, np.float32, 1)
        if magic.size != 1 or magic[0] != np.float32(FLO_MAGIC):
            raise ValueError(f"{path} is not a .flo file (bad magic number)")
        width, height = (int(v) for v in np.fromfile(fh, "<i4", 2))
        data = np.fromfile(fh, "<f4", width * height * 2)
    if width <= 0 or height <= 0 or data.size != width * height * 2:
        raise ValueError(f"{path} is truncated or has a bad size header ({width}x{height})")
    return data.reshape(height, width, 2).astype(np.float32, copy=False)


def channels_last(flow: np.ndarray) -> np.ndarray:
    """float32 (H, W, 2) view of a flow given as (H, W, 2) or (2, H, W); ValueError for other shapes."""
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim == 3 and flow.shape[0] == 2 and flow.shape[-1] != 2:
        flow = flow.transpose(1, 2, 0)  # (2, H, W) -> (H, W, 2)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be shaped (H, W, 2) or (2, H, W), got {flow.shape}")
    return flow


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write float flow (H, W, 2) or (2, H, W) as a .flo file (bit-exact float32)."""
    flow = channels_last(flow)
    height, width = flow.shape[:2]
    with open(path, "wb") as fh:
        np.array([FLO_MAGIC], "<f4").tofile(fh)
        np.array([width, height], "<i4").tofile(fh)
        np.ascontiguousarray(flow, dtype="<f4").tofile(fh)


def endpoint_error(flow: np.ndarray, truth: np.ndarray) -> float:
    """Mean end-point error between (H, W, 2) flows over pixels where ``truth`` is known."""
    known = np.all(np.abs(truth) < UNKNOWN_FLOW_THRESHOLD, axis=-1)
    if not known.any():
        raise ValueError("ground truth has no known pixels")
    return float(np.linalg.norm(flow[known] - truth[known], axis=-1).mean())
