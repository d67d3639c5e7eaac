"""dualstream: dual-stream (RGB + optical flow) action recognition with self-attention fusion."""

__version__ = "0.1.0"
