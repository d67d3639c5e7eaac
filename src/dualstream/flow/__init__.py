"""Optical flow: one interface over OpenCV (CPU) and the batched PyTorch solvers."""

from __future__ import annotations

import numpy as np

from .opencv import OPENCV_METHODS, OpenCVFlow
from .quantize import DEFAULT_BOUND, dequantize_flow, quantize_flow

__all__ = ["OpenCVFlow", "OPENCV_METHODS", "DEFAULT_BOUND", "quantize_flow", "dequantize_flow", "compute_flow"]


def compute_flow(prev: np.ndarray, nxt: np.ndarray, *, method: str = "dis", device: str = "cpu") -> np.ndarray:
    """Flow for a batch of grayscale frame pairs (N, H, W) -> float32 (N, 2, H, W) displacements in px."""
    if device != "cpu":
        raise ValueError(f"flow method {method!r} runs on the CPU only (asked for device {device!r})")
    prev, nxt = np.asarray(prev), np.asarray(nxt)
    if prev.shape != nxt.shape:
        raise ValueError(f"frames of a pair differ in size: {prev.shape} vs {nxt.shape}")
    engine = OpenCVFlow(method)
    return np.stack([engine(a, b).transpose(2, 0, 1) for a, b in zip(prev, nxt)]).astype(np.float32)
