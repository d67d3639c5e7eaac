"""Optical flow through OpenCV on the CPU: DIS, Farneback and DualTVL1 (opencv-contrib)."""

from __future__ import annotations

import cv2
import numpy as np

OPENCV_METHODS = ("dis", "farneback", "tvl1")

#: Why ``opencv-tvl1`` cannot run with a plain OpenCV build (opencv-python without the contrib modules).
CONTRIB_MISSING = (
    "flow method 'opencv-tvl1' needs OpenCV's contrib modules (cv2.optflow), which this OpenCV {version} lacks: "
    "pip install opencv-contrib-python-headless (or opencv-contrib-python) in place of opencv-python[-headless]; "
    "the PyTorch TV-L1 (method/--flow 'tvl1') needs no contrib"
)


class FlowBackendError(RuntimeError):
    """A flow method whose backend is missing from this installation (one line, says what to install)."""


def has_contrib() -> bool:
    """Whether this cv2 carries the contrib optflow module (DualTVL1)."""
    return hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create")


def check_available(method: str) -> None:
    """FlowBackendError when OpenCV method ``method`` ("tvl1", "dis", ...) cannot run with this cv2."""
    if method == "tvl1" and not has_contrib():
        raise FlowBackendError(CONTRIB_MISSING.format(version=cv2.__version__))


def _make_engine(method: str):
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    if method == "tvl1":
        check_available(method)
        return cv2.optflow.DualTVL1OpticalFlow_create()
    if method == "farneback":
        return None
    raise ValueError(f"unknown OpenCV flow method {method!r}; choose one of {', '.join(OPENCV_METHODS)}")


class OpenCVFlow:
    """Reusable flow engine for one method; call it on a pair of uint8 grayscale frames (H, W).

    Returns float32 displacements (H, W, 2) in pixels, x then y, from ``prev`` to ``nxt``.
    """

    def __init__(self, method: str = "dis"):
        self.method = method
        self._engine = _make_engine(method)

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        prev = _as_gray_u8(prev)
        nxt = _as_gray_u8(nxt)
        if prev.shape != nxt.shape:
            raise ValueError(f"frames of a pair differ in size: {prev.shape} vs {nxt.shape}")
        if self.method == "farneback":
            flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        else:
            flow = self._engine.calc(prev, nxt, None)
        return flow.astype(np.float32, copy=False)


def _as_gray_u8(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame.astype(np.uint8, copy=False), cv2.COLOR_RGB2GRAY)
    if frame.dtype != np.uint8:
        frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame)
