"""``dualstream flow FRAME_A FRAME_B --out F.flo [--png F.png]``, as a function."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from . import compute_flow, resolve_method
from .colour import flow_to_rgb
from .flo import write_flo


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 gray (H, W); ValueError when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"frame file not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read an image from {path}")
    return image


def run_flow_command(frame_a: str, frame_b: str, *, method: str, out: str, png: str | None, device: str) -> None:
    """Flow from image ``frame_a`` to image ``frame_b``, written to ``out`` (.flo) and, if given, a colour PNG;
    one-line ValueError for a missing or unreadable frame and the errors of compute_flow."""
    a, b = read_gray(frame_a), read_gray(frame_b)
    if a.shape != b.shape:
        raise ValueError(f"frames differ in size: {frame_a} is {a.shape[1]}x{a.shape[0]}, "
                         f"{frame_b} is {b.shape[1]}x{b.shape[0]}")
    # One pair: torch.compile's warm-up (docs/design.md, flow) would cost far more than it saves.
    params = {"compile": False} if resolve_method(method) in ("tvl1", "tvl1-quality") else {}
    flow = compute_flow(a, b, method=method, device=device, **params)[0]  # (1, 2, H, W) -> (2, H, W)
    write_flo(out, flow)
    if png is not None and not cv2.imwrite(png, cv2.cvtColor(flow_to_rgb(flow), cv2.COLOR_RGB2BGR)):
        raise ValueError(f"could not write image {png}")
