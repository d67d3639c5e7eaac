"""Tensor helpers of the PyTorch flow solvers. Images are float32 (N, 1, H, W) intensities; flows (N, 2, H, W)
displacements in pixels, channel 0 = x (columns), 1 = y (rows), from the first frame to the second."""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import fields
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

#: cv2.medianBlur for 3x3/5x5 medians of CPU float32 tensors; the tests switch it off to run the CUDA branch.
USE_CV2_MEDIAN = True

#: Pyramid levels are not built below this many pixels on either side (OpenCV DualTVL1 uses 16 too).
MIN_PYRAMID_SIDE = 16


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn "cpu"/"cuda"/"cuda:1" into a device, failing in one line when CUDA is asked for but absent."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} requested but no CUDA GPU is available to PyTorch; use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {str(device)!r}; use 'cpu' or 'cuda'")
    return dev


def gray_pair(prev: np.ndarray | torch.Tensor, nxt: np.ndarray | torch.Tensor, *, device: torch.device | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gray frames (N, H, W) or one pair (H, W), uint8 or float on the 0..255 scale -> float32 (N, 1, H, W) each,
    on ``device`` (default: that of ``prev``); one-line ValueError for frames of different sizes or other shapes."""
    a, b = (t if isinstance(t, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(t)) for t in (prev, nxt))
    if a.shape != b.shape:
        raise ValueError(f"frames of a pair differ in size: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    if a.ndim != 3:
        raise ValueError(f"frames must be gray, shaped (N, H, W) or (H, W), got shape {tuple(a.shape)}")
    if a.shape[-1] < 2 or a.shape[-2] < 2:
        raise ValueError(f"frames must be at least 2x2 pixels, got {tuple(a.shape[-2:])}")
    device = device or a.device
    return tuple(t.to(device=device, dtype=torch.float32)[:, None] for t in (a, b))  # (N, H, W) -> (N, 1, H, W)


def pyramid_sizes(height: int, width: int, *, nscales: int, scale_step: float) -> list[tuple[int, int]]:
    """Sizes of the pyramid levels, finest first: each level is the previous one times ``scale_step``
    (rounded, as cv2.resize does); stops early once a side would drop below MIN_PYRAMID_SIDE."""
    if not 0.0 < scale_step < 1.0:
        raise ValueError(f"scale_step must be in (0, 1), got {scale_step}")
    sizes = [(height, width)]
    for _ in range(1, max(1, nscales)):
        h, w = (round(sizes[-1][0] * scale_step), round(sizes[-1][1] * scale_step))
        if h < MIN_PYRAMID_SIDE or w < MIN_PYRAMID_SIDE:
            break
        sizes.append((h, w))
    return sizes


def build_pyramid(image: torch.Tensor, sizes: list[tuple[int, int]], *, antialias: bool = False) -> list[torch.Tensor]:
    """Resize (N, C, H, W) level by level (bilinear, each from the previous one) to ``sizes``, finest first."""
    levels = [image]
    for size in sizes[1:]:
        levels.append(F.interpolate(levels[-1], size=size, mode="bilinear", align_corners=False, antialias=antialias))
    return levels


def upsample_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a flow (N, C, h, w) to ``size`` with x/y displacements scaled by the size ratios."""
    h, w = flow.shape[-2:]
    up = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    up[:, 0] *= size[1] / w
    up[:, 1] *= size[0] / h
    return up


def centered_gradient(image: torch.Tensor) -> torch.Tensor:
    """Central differences (I[x+1] - I[x-1]) / 2 with replicated borders: (N, 1, H, W) -> (N, 2, H, W) (x, y)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    gy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return torch.cat((gx, gy), 1)


def forward_diff(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences of (..., H, W) along x and y, zero at the last column and row."""
    return F.pad(x[..., 1:] - x[..., :-1], (0, 1)), F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))


def divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Divergence with backward differences, p = 0 outside: the adjoint of -forward_diff (IPOL eq. 24)."""
    return px - F.pad(px[..., :-1], (1, 0)) + py - F.pad(py[..., :-1, :], (0, 0, 1, 0))


def base_grid(height: int, width: int, *, device: torch.device) -> torch.Tensor:
    """Pixel coordinates (1, 2, H, W): channel 0 = x (column index), channel 1 = y (row index)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack((xs, ys))[None]


def warp(
    image: torch.Tensor, flow: torch.Tensor, grid: torch.Tensor, *, mode: str = "bicubic", padding: str = "border"
) -> torch.Tensor:
    """Sample ``image`` (N, C, H, W) at x + flow(x): the second frame seen from the first. ``padding`` is
    grid_sample's: with "zeros" (OpenCV's border) float32 rounding lets zeros leak in and identical frames drift."""
    h, w = image.shape[-2:]
    pos = grid + flow[:, :2]  # (N, 2, H, W) absolute pixel positions
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=flow.device).view(1, 2, 1, 1)
    norm = (pos * scale - 1.0).permute(0, 2, 3, 1)  # (N, H, W, 2) in [-1, 1], as grid_sample wants
    return F.grid_sample(image, norm, mode=mode, padding_mode=padding, align_corners=True)


def median_filter(x: torch.Tensor, ksize: int) -> torch.Tensor:
    """ksize x ksize median of each channel of (N, C, H, W), borders replicated (as cv2.medianBlur)."""
    n, c, h, w = x.shape
    r = ksize // 2
    if USE_CV2_MEDIAN and x.device.type == "cpu" and ksize in (3, 5) and x.dtype == torch.float32:
        import cv2

        tall = F.pad(x.reshape(n * c, 1, h, w), (0, 0, r, r), mode="replicate")  # (N*C, 1, H+2r, W)
        out = cv2.medianBlur(tall.reshape(n * c * (h + 2 * r), w).contiguous().numpy(), ksize)
        out = torch.from_numpy(out).reshape(n * c, h + 2 * r, w)[:, r : r + h]  # drop the separator rows
        return out.reshape(n, c, h, w)
    padded = F.pad(x.reshape(n * c, 1, h, w), (r, r, r, r), mode="replicate")
    patches = F.unfold(padded, ksize)  # (N*C, ksize*ksize, H*W)
    return patches.median(dim=1).values.reshape(n, c, h, w)


#: Backends of the PyTorch solvers: the PyTorch reference, the Triton kernels, or "triton" where it checks out.
BACKENDS = ("auto", "torch", "triton")


def check_fields(prm: object, solver: str, *, positive: tuple[str, ...], at_least_one: tuple[str, ...]) -> None:
    """One-line ValueError for a solver parameter out of range or an unknown backend."""
    for name in positive:
        if getattr(prm, name) <= 0:
            raise ValueError(f"{solver} parameter {name} must be positive, got {getattr(prm, name)}")
    for name in at_least_one:
        if getattr(prm, name) < 1:
            raise ValueError(f"{solver} parameter {name} must be >= 1, got {getattr(prm, name)}")
    if prm.backend not in BACKENDS:
        raise ValueError(f"{solver} backend must be one of {', '.join(BACKENDS)}, got {prm.backend!r}")


def make_params(cls: type, params: dict, aliases: dict[str, str]) -> object:
    """Build a frozen params dataclass from keyword arguments, mapping aliases; one-line error on unknown keys."""
    names = {f.name for f in fields(cls)}
    mapped = {aliases.get(k, k): v for k, v in params.items()}
    unknown = sorted(k for k in mapped if k not in names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**mapped)


def triton_interpreted() -> bool:
    """Whether Triton kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1, read when they are defined)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def self_check(flow_fn: Callable, device: torch.device, params: dict) -> float:
    """Largest difference (px) between ``flow_fn``'s Triton and PyTorch backends on a small textured pair."""
    gen = torch.Generator().manual_seed(0)
    a = F.interpolate(torch.rand(1, 1, 8, 10, generator=gen), size=(32, 40), mode="bicubic", align_corners=False)
    a = a[:, 0].clamp(0, 1) * 255
    a, b = a.to(device), torch.roll(a, (1, 1), (1, 2)).to(device)
    ref = flow_fn(a, b, backend="torch", **params)
    return float((ref - flow_fn(a, b, backend="triton", **params)).abs().max())


_TRITON_OK: dict[tuple[str, str], bool] = {}
#: Largest difference (px) the self-check accepts between a Triton solver and its reference.
SELF_CHECK_TOLERANCE = 1e-2


def choose_backend(requested: str, device: torch.device, *, solver: str, module: str, unsupported: str | None,
                   flow_fn: Callable, check_params: dict) -> str:
    """The backend ("torch" or "triton") of the solver ``flow_fn``. "auto": "triton" on CUDA when ``flow.<module>``
    imports and the self-check (with ``check_params``, once per process and device) stays within
    SELF_CHECK_TOLERANCE, else "torch" with one warning; "torch" on the CPU. "triton" where it cannot run
    (``unsupported`` settings, no Triton, CPU tensors outside the interpreter) is a one-line ValueError."""
    if requested == "torch" or (requested == "auto" and device.type != "cuda"):
        return "torch"
    if requested == "triton":
        if unsupported:
            raise ValueError(f"{solver} backend 'triton' does not support {unsupported}; use backend='torch'")
        try:
            importlib.import_module(f"{__package__}.{module}")
        except ImportError as exc:
            raise ValueError(f"{solver} backend 'triton' needs Triton (pip install triton; Linux): {exc}") from None
        if device.type != "cuda" and not triton_interpreted():
            raise ValueError(f"{solver} backend 'triton' runs on CUDA tensors; on the CPU only under "
                             "TRITON_INTERPRET=1 (Triton's interpreter, for tests)")
        return "triton"
    if unsupported:
        return "torch"
    key = (solver, str(device))
    if key not in _TRITON_OK:
        try:
            importlib.import_module(f"{__package__}.{module}")
            diff = self_check(flow_fn, device, check_params)
            _TRITON_OK[key] = diff < SELF_CHECK_TOLERANCE
            if not _TRITON_OK[key]:
                warnings.warn(f"Triton {solver} differs from the reference by {diff:.3g} px on {device}; using the "
                              "PyTorch backend", RuntimeWarning, stacklevel=3)
        except Exception as exc:  # noqa: BLE001 - no Triton, no compiler, a kernel error: use the reference
            warnings.warn(f"Triton {solver} unavailable on {device} ({type(exc).__name__}: {exc}); using the PyTorch "
                          "backend", RuntimeWarning, stacklevel=3)
            _TRITON_OK[key] = False
    return "triton" if _TRITON_OK[key] else "torch"
