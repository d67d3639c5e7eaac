"""dualstream: dual-stream (RGB + optical flow) action recognition with self-attention fusion."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def __getattr__(name: str):
    """Lazy re-exports, so that ``import dualstream`` stays light (no torch at import)."""
    if name == "load_model":
        from .inference.package import load_model

        return load_model
    raise AttributeError(f"module 'dualstream' has no attribute {name!r}")
