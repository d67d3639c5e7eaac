"""Optical flow through OpenCV on the CPU: DIS, Farneback and DualTVL1 (opencv-contrib)."""

from __future__ import annotations

import cv2
import numpy as np

class FlowBackendError(RuntimeError):
    """A flow method whose backend is missing from this installation (one line, says what to install)."""


def has_contrib() -> bool:
    """Whether this cv2 carries the contrib optflow module (DualTVL1)."""
    return hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create")


def check_available(method: str) -> None:
    """FlowBackendError when OpenCV method ``method`` ("tvl1", "dis", ...) cannot run with this cv2."""
    if method == "tvl1" and not has_contrib():
        raise FlowBackendError(f"flow method 'opencv-tvl1' needs OpenCV's contrib modules (cv2.optflow), which this "
                               f"OpenCV {cv2.__version__} lacks: pip install opencv-contrib-python-headless (or "
                               "opencv-contrib-python) in place of opencv-python[-headless]; the PyTorch TV-L1 "
                               "(method/--flow 'tvl1') needs no contrib")


def opencv_flow(prev: np.ndarray, nxt: np.ndarray, method: str) -> np.ndarray:
    """OpenCV ``method`` ("dis", "farneback" or "tvl1") on gray frames (N, H, W) or one pair (H, W), numpy or
    torch, uint8 or float on the 0..255 scale -> float32 (N, 2, H, W) in pixels, one pair at a time."""
    a, b = _as_gray_u8(prev), _as_gray_u8(nxt)
    if a.shape != b.shape:
        raise ValueError(f"frames of a pair differ in size: {a.shape} vs {b.shape}")
    if method == "farneback":
        flows = [cv2.calcOpticalFlowFarneback(x, y, None, 0.5, 3, 15, 3, 5, 1.2, 0) for x, y in zip(a, b)]
    else:
        check_available(method)
        engine = (cv2.optflow.DualTVL1OpticalFlow_create() if method == "tvl1"
                  else cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM))
        flows = [engine.calc(x, y, None) for x, y in zip(a, b)]
    return np.ascontiguousarray(np.stack(flows).transpose(0, 3, 1, 2), dtype=np.float32)  # (N, H, W, 2) -> (N, 2, H, W)


def _as_gray_u8(frames) -> np.ndarray:
    """uint8 (N, H, W) of gray frames given as numpy or torch, one frame (H, W) or a batch."""
    arr = frames.detach().cpu().numpy() if hasattr(frames, "detach") else np.asarray(frames)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"frames must be gray, shaped (N, H, W) or (H, W), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)
