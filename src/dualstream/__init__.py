"""dualstream: dual-stream (RGB + optical flow) action recognition with self-attention fusion."""

from __future__ import annotations

import os

# Keep OpenCV's log lines and FFmpeg's decoder chatter off the terminal: problems reach the user as one-line errors.
# OpenCV reads these when cv2 is imported, and every module that imports cv2 is inside this package: this runs first.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def __getattr__(name: str):
    """Lazy re-exports, so that ``import dualstream`` stays light (no torch at import)."""
    if name == "load_model":
        from .inference.package import load_model

        return load_model
    raise AttributeError(f"module 'dualstream' has no attribute {name!r}")
