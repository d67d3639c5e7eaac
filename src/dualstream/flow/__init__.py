"""Optical flow: one interface over OpenCV (CPU) and the batched PyTorch solvers (CPU or CUDA). Importing it
does not import PyTorch (docs/design.md): the solvers are imported on first use."""

from __future__ import annotations

from importlib import import_module

import numpy as np

from .colour import flow_to_rgb
from .flo import endpoint_error, read_flo, write_flo
from .opencv import FlowBackendError, has_contrib, opencv_flow
from .opencv import check_available as _check_opencv
from .quantize import DEFAULT_BOUND, dequantize_flow, quantize_flow

__all__ = [
    "FLOW_METHODS",
    "TORCH_METHODS",
    "compute_flow",
    "resolve_method",
    "check_available",
    "torch_solver",
    "tvl1_flow",
    "tvl1_quality_flow",
    "QUALITY_PRESET",
    "brox_flow",
    "FlowBackendError",
    "has_contrib",
    "DEFAULT_BOUND",
    "quantize_flow",
    "dequantize_flow",
    "read_flo",
    "write_flo",
    "endpoint_error",
    "flow_to_rgb",
]

#: Methods accepted by compute_flow: OpenCV on the CPU, and the batched PyTorch solvers (CPU or CUDA).
FLOW_METHODS = ("opencv-tvl1", "opencv-dis", "opencv-farneback", "tvl1", "tvl1-quality", "brox")
#: The PyTorch solvers: method -> function (its module in ``_LAZY``); imported on first use.
_TORCH_SOLVERS = {"tvl1": "tvl1_flow", "tvl1-quality": "tvl1_quality_flow", "brox": "brox_flow"}
TORCH_METHODS = tuple(_TORCH_SOLVERS)
#: Short names kept for the data preparation step ("tvl1" itself is the PyTorch solver).
METHOD_ALIASES = {"dis": "opencv-dis", "farneback": "opencv-farneback"}
_LAZY = {"tvl1_flow": "tvl1", "tvl1_quality_flow": "tvl1", "QUALITY_PRESET": "tvl1", "brox_flow": "brox"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_method(method: str) -> str:
    """Canonical method name; ValueError listing the choices when unknown."""
    name = METHOD_ALIASES.get(method, method)
    if name not in FLOW_METHODS:
        choices = ", ".join(FLOW_METHODS + tuple(METHOD_ALIASES))
        raise ValueError(f"unknown flow method {method!r}; choose one of: {choices}")
    return name


def torch_solver(method: str):
    """The tensor-level solver of a PyTorch method (frames (N, H, W) on any device -> flow (N, 2, H, W))."""
    name = resolve_method(method)
    if name not in _TORCH_SOLVERS:
        raise ValueError(f"method {name!r} is not a PyTorch solver; choose one of {', '.join(TORCH_METHODS)}")
    return __getattr__(_TORCH_SOLVERS[name])


def check_available(method: str) -> str:
    """Canonical name of ``method`` after checking its backend is installed: ValueError for an unknown name,
    FlowBackendError (one line naming the package) for 'opencv-tvl1' without OpenCV's contrib modules."""
    name = resolve_method(method)
    if name.startswith("opencv-"):
        _check_opencv(name.removeprefix("opencv-"))
    return name


def compute_flow(
    prev: np.ndarray | "torch.Tensor",
    nxt: np.ndarray | "torch.Tensor",
    *,
    method: str = "dis",
    device: str = "cpu",
    batch_size: int | None = None,
    **params: object,
) -> np.ndarray:
    """Flow for gray frame pairs (N, H, W) (or one pair (H, W)), uint8 or float on the 0..255 scale, numpy or
    torch -> float32 (N, 2, H, W) in pixels. The PyTorch methods run on ``device`` in chunks of ``batch_size``
    pairs (None = all at once) with ``params`` (TVL1Params/BroxParams fields); OpenCV's on the CPU, one pair at a
    time, without parameters. One-line errors: ValueError for an unknown method or parameter, frames of different
    sizes, an OpenCV method off the CPU; RuntimeError for "cuda" without a CUDA GPU; FlowBackendError for
    "opencv-tvl1" without OpenCV's contrib modules."""
    name = resolve_method(method)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    if name not in _TORCH_SOLVERS:
        if str(device) != "cpu":
            raise ValueError(f"method {name!r} runs on the CPU only (OpenCV); use device='cpu' or one of "
                             f"{', '.join(TORCH_METHODS)}")
        if params:
            raise ValueError(f"method {name!r} takes no parameters, got {', '.join(sorted(params))}")
        return opencv_flow(prev, nxt, name.removeprefix("opencv-"))
    import torch

    from ._torch import gray_pair, resolve_device

    solver = torch_solver(name)
    a, b = gray_pair(prev, nxt, device=resolve_device(device))  # (N, 1, H, W)
    step = batch_size or max(1, a.shape[0])
    chunks = [solver(a[i : i + step, 0], b[i : i + step, 0], **params) for i in range(0, a.shape[0], step)]
    return torch.cat(chunks).cpu().numpy()
