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
        raise RuntimeError(f"device {str(device)!r} requested but no CUDA GPU is available to PyTorch; "
                           "use device='cpu'")
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
    return tuple(t.to(device=device or a.device, dtype=torch.float32)[:, None] for t in (a, b))  # -> (N, 1, H, W)


def coarse_to_fine(i0: torch.Tensor, i1: torch.Tensor, solve_level: Callable, *, nscales: int, scale_step: float,
                   antialias: bool) -> torch.Tensor:
    """Flow (N, 2, H, W) from i0 to i1 (N, 1, H, W), coarse to fine: ``solve_level(i0, i1, flow, grid) -> flow`` on
    each pyramid level (``grid``: its base_grid) from zero flow, upsampled (bilinear, displacements scaled by the
    size ratios) between levels. A level is the previous one resized (bilinear) by ``scale_step``, sides rounded as
    cv2.resize does; at most ``nscales`` levels, none with a side under MIN_PYRAMID_SIDE."""
    if not 0.0 < scale_step < 1.0:
        raise ValueError(f"scale_step must be in (0, 1), got {scale_step}")
    levels = [torch.cat((i0, i1), 1)]  # (N, 2, H, W), finest first
    for _ in range(1, nscales):
        size = tuple(round(side * scale_step) for side in levels[-1].shape[-2:])
        if min(size) < MIN_PYRAMID_SIDE:
            break
        levels.append(F.interpolate(levels[-1], size=size, mode="bilinear", align_corners=False, antialias=antialias))
    flow = i0.new_zeros(i0.shape[0], 2, *levels[-1].shape[-2:])
    for level in reversed(levels):
        (h, w), size = flow.shape[-2:], level.shape[-2:]
        if (h, w) != size:
            flow = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
            flow[:, 0] *= size[1] / w
            flow[:, 1] *= size[0] / h
        flow = solve_level(level[:, :1], level[:, 1:], flow, base_grid(*size, device=level.device))
    return flow


def centered_gradient(image: torch.Tensor) -> torch.Tensor:
    """Central differences (I[x+1] - I[x-1]) / 2 with replicated borders: (N, C, H, W) -> (N, 2C, H, W), those
    along x of each channel, then those along y."""
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
    xs = torch.arange(width, device=device, dtype=torch.float32).expand(height, width)
    ys = torch.arange(height, device=device, dtype=torch.float32)[:, None].expand(height, width)
    return torch.stack((xs, ys))[None]


def warp(image: torch.Tensor, flow: torch.Tensor, grid: torch.Tensor, *, mode: str = "bicubic") -> torch.Tensor:
    """Sample ``image`` (N, C, H, W) at x + flow(x): the second frame seen from the first, borders replicated
    (grid_sample's "border": with "zeros", OpenCV's border, float32 rounding lets zeros leak in and identical frames
    drift)."""
    h, w = image.shape[-2:]
    pos = grid + flow[:, :2]  # (N, 2, H, W) absolute pixel positions
    scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=flow.device).view(1, 2, 1, 1)
    norm = (pos * scale - 1.0).permute(0, 2, 3, 1)  # (N, H, W, 2) in [-1, 1], as grid_sample wants
    return F.grid_sample(image, norm, mode=mode, padding_mode="border", align_corners=True)


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


_TRITON_OK: dict[tuple[str, str], bool] = {}
#: Largest difference (px) the self-check accepts between a Triton solver and its reference.
SELF_CHECK_TOLERANCE = 1e-2


def choose_backend(requested: str, device: torch.device, *, solver: str, module: str, unsupported: str | None,
                   flow_fn: Callable, check_params: dict) -> str:
    """The backend ("torch" or "triton") of the solver ``flow_fn``. "auto": "triton" on CUDA for supported settings
    when the Triton backend of ``flow_fn`` (with ``check_params``, once per process and device) stays within
    SELF_CHECK_TOLERANCE of the PyTorch one on a small textured pair, else "torch" with one warning; "torch" on the
    CPU. "triton" where it cannot run (``unsupported`` settings, ``flow.<module>`` or Triton missing, CPU tensors
    outside the interpreter) is a one-line ValueError."""
    if requested == "torch" or (requested == "auto" and (device.type != "cuda" or unsupported)):
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
    key = (solver, str(device))
    if key not in _TRITON_OK:
        gen = torch.Generator().manual_seed(0)
        a = F.interpolate(torch.rand(1, 1, 8, 10, generator=gen), size=(32, 40), mode="bicubic", align_corners=False)
        a = (a[:, 0].clamp(0, 1) * 255).to(device)
        b = torch.roll(a, (1, 1), (1, 2))
        try:  # importing flow.<module> included: no Triton, no compiler, a kernel error all mean the reference
            diff = float((flow_fn(a, b, backend="torch", **check_params)
                          - flow_fn(a, b, backend="triton", **check_params)).abs().max())
            _TRITON_OK[key] = diff < SELF_CHECK_TOLERANCE
            if not _TRITON_OK[key]:
                warnings.warn(f"Triton {solver} differs from the reference by {diff:.3g} px on {device}; using the "
                              "PyTorch backend", RuntimeWarning, stacklevel=3)
        except Exception as exc:  # noqa: BLE001
            warnings.warn(f"Triton {solver} unavailable on {device} ({type(exc).__name__}: {exc}); using the PyTorch "
                          "backend", RuntimeWarning, stacklevel=3)
            _TRITON_OK[key] = False
    return "triton" if _TRITON_OK[key] else "torch"
