"""Batched TV-L1 optical flow in PyTorch (CPU or CUDA): Zach, Pock and Bischof, "A Duality Based Approach for
Realtime TV-L1 Optical Flow" (DAGM 2007), with Wedel et al. 2009's coarse-to-fine warping and median filtering, as
OpenCV's DualTVL1 and IPOL (Sanchez, Meinhardt-Llopis and Facciolo, 2013) do it (docs/design.md).

Energy (Zach et al. eq. 2, linearised data term eq. 4):  E(u) = sum |grad u| + lambda |rho(u)|,
rho(u) = I1(x + u0) + grad I1(x + u0) . (u - u0) - I0(x).  It is split with an auxiliary field v
(eq. 5, coupling 1/(2 theta) |u - v|^2) and solved by alternating:
  * v-step, point-wise thresholding of the data term (eq. 7 / Prop. 3),
  * u-step, ROF denoising of v by Chambolle's dual projection (eqs. 8-9): u = v + theta div p,
    p <- (p + tau/theta grad u) / (1 + tau/theta |grad u|)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch

from ._torch import (
    centered_gradient,
    check_fields,
    choose_backend,
    coarse_to_fine,
    divergence,
    forward_diff,
    gray_pair,
    make_params,
    median_filter,
    warp,
)

__all__ = ["TVL1Params", "tvl1_flow", "tvl1_quality_flow", "QUALITY_PRESET"]


@dataclass(frozen=True)
class TVL1Params:
    """Solver settings; names are OpenCV DualTVL1's in snake_case (``lambda_`` for ``lambda``), same defaults.

    tau: time step of the dual update; lambda_: weight of the data term (images on the 0..255 scale);
    theta: coupling between u and v (eq. 5), small = tight.
    nscales: pyramid levels at most (none with a side under 16 px); scale_step: size ratio between levels;
    warps: re-linearisations per level; epsilon: a pair stops a warp once sum |u_new - u|^2 <= epsilon^2 H W.
    inner_iterations, outer_iterations: v/u/p iterations per median filtering, filterings per warp.
    median_filtering: median kernel size applied to the flow each outer iteration (<= 1: off).
    check_every: test the stopping rule every this many iterations (1: OpenCV's rule; 5-10 on a GPU).
    compile: run the iterations through torch.compile (eager, with one warning, where compiling fails).
    pyramid_antialias: low-pass each level before subsampling (OpenCV does not).
    backend: "torch" (the eager/compiled reference), "triton" (one fused kernel per warp) or "auto" (choose_backend)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    median_filtering: int = 5
    check_every: int = 1
    compile: bool = True
    pyramid_antialias: bool = False
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self, "TV-L1", positive=("tau", "theta", "scale_step"),
                     at_least_one=("nscales", "warps", "inner_iterations", "outer_iterations", "check_every"))
        if self.median_filtering > 1 and self.median_filtering % 2 == 0:
            raise ValueError(f"TV-L1 median_filtering must be odd, got {self.median_filtering}")


#: OpenCV DualTVL1 spellings accepted as keyword arguments too.
OPENCV_NAMES = {
    "lambda": "lambda_",
    "innerIterations": "inner_iterations",
    "outerIterations": "outer_iterations",
    "scaleStep": "scale_step",
    "medianFiltering": "median_filtering",
}


def _tvl1_iteration(
    u: torch.Tensor,
    p: torch.Tensor,
    grad_i1: torch.Tensor,
    grad_sq: torch.Tensor,
    rho_c: torch.Tensor,
    l_t: float,
    theta: float,
    taut: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One v/u/p iteration for the whole batch; returns (u, p, per-pair squared change of u). u (N, 2, H, W) primal
    flow; p (N, 2, 2, H, W) dual variable, [:, :, 0] along x and [:, :, 1] along y; grad_i1 (N, 2, H, W) warped
    gradient of I1; grad_sq (N, 1, H, W) its squared norm; rho_c (N, 1, H, W) residual constant."""
    div = divergence(p[:, :, 0], p[:, :, 1])
    # v-step, thresholding of the linearised residual (Zach et al. eq. 7).
    rho = rho_c + (grad_i1 * u).sum(1, keepdim=True)
    lg = l_t * grad_sq
    coef = torch.where(rho < -lg, l_t, torch.where(rho > lg, -l_t, -rho / grad_sq.clamp_min(1e-10)))
    # u-step (eq. 8): u = v + theta div p, with v = u + coef * grad I1.
    u_new = u + coef * grad_i1 + theta * div
    err = (u_new - u).square().flatten(1).sum(1)
    # p-step (eq. 9), forward differences with zero at the last column/row.
    grad_u = torch.stack(forward_diff(u_new), 2)  # (N, 2, 2, H, W)
    norm = 1.0 + taut * grad_u.square().sum(2, keepdim=True).sqrt()
    p = (p + taut * grad_u) / norm
    return u_new, p, err


#: Compiled iterations per (l_t, theta, taut); "failed" -> eager for the rest of the process.
_COMPILED: dict[object, Callable] = {}


def _run_iterations(prm: TVL1Params, steps: int, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``steps`` iterations in a row on ``state`` (u, p, grad_i1, grad_sq, rho_c) -> (u, p, the last iteration's
    change). Compiled if asked for, as one graph per setting and process with the setting's constants closed over,
    not arguments (RESULTS.md, ``tvl1-quality``: a wrong flow otherwise); any failure to compile switches this
    process to eager for good, with one warning."""
    l_t, theta, taut = float(prm.lambda_ * prm.theta), float(prm.theta), float(prm.tau / prm.theta)

    def iterations(steps, u, p, grad_i1, grad_sq, rho_c):
        for _ in range(steps):
            u, p, err = _tvl1_iteration(u, p, grad_i1, grad_sq, rho_c, l_t, theta, taut)
        return u, p, err

    if prm.compile and not _COMPILED.get("failed"):
        try:
            if (l_t, theta, taut) not in _COMPILED:
                _COMPILED[l_t, theta, taut] = torch.compile(iterations, dynamic=None)
            return _COMPILED[l_t, theta, taut](steps, *state)
        except Exception as exc:  # noqa: BLE001 - e.g. no C++ compiler / no triton: run eager
            warnings.warn(f"torch.compile failed ({type(exc).__name__}); TV-L1 runs eager", RuntimeWarning,
                          stacklevel=3)
            _COMPILED["failed"] = True
    return iterations(steps, *state)


def _iterate_warp(
    u: torch.Tensor,
    p: torch.Tensor,
    gxy: torch.Tensor,
    grad_sq: torch.Tensor,
    rho_c: torch.Tensor,
    prm: TVL1Params,
    *,
    scaled_eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The outer (median filtering) and inner (v/u/p) iterations of one warp, for the whole batch. Pairs whose
    last change is at most ``scaled_eps`` stop; the rest go on as a smaller batch (gathered once per change)."""
    u, p = u.clone(), p.clone()
    rows = torch.arange(u.shape[0], device=u.device)  # the pairs still iterating
    ua, pa, ga, gsa, rca = u, p, gxy, grad_sq, rho_c
    done, total = 0, prm.inner_iterations * prm.outer_iterations
    while done < total and len(rows):
        if prm.median_filtering > 1 and done % prm.inner_iterations == 0:
            ua = median_filter(ua, prm.median_filtering)
        chunk = min(prm.check_every, prm.inner_iterations - done % prm.inner_iterations)
        ua, pa, err = _run_iterations(prm, chunk, ua, pa, ga, gsa, rca)
        done += chunk
        keep = err > scaled_eps  # (n_active,) bool
        if bool(keep.all()):  # host sync, once per chunk
            continue
        u[rows], p[rows] = ua, pa
        rows = rows[keep]
        ua, pa, ga, gsa, rca = (t[rows] for t in (u, p, gxy, grad_sq, rho_c))
    if len(rows) == len(u):  # no pair stopped early: ua, pa are the whole batch (no copy back)
        return ua, pa
    u[rows], p[rows] = ua, pa
    return u, p


def _iterate_warp_triton(u, p, gxy, grad_sq, rho_c, prm: TVL1Params, *, scaled_eps: float):
    from . import _triton_tvl1

    u, p, _ = _triton_tvl1.iterate_warp(
        u, p, gxy, grad_sq, rho_c, total=prm.inner_iterations * prm.outer_iterations, inner=prm.inner_iterations,
        check_every=prm.check_every, median=prm.median_filtering if prm.median_filtering > 1 else 0,
        l_t=prm.lambda_ * prm.theta, theta=prm.theta, taut=prm.tau / prm.theta, scaled_eps=scaled_eps)
    return u, p


def resolve_backend(prm: TVL1Params, device: torch.device) -> str:
    """"torch" or "triton" for these settings on ``device``; one-line ValueError when "triton" cannot run."""
    unsupported = (f"median_filtering {prm.median_filtering} (the fused median is 3x3 or 5x5)"
                   if prm.median_filtering > 1 and prm.median_filtering not in (3, 5) else None)
    return choose_backend(prm.backend, device, solver="TV-L1", module="_triton_tvl1", unsupported=unsupported,
                          flow_fn=tvl1_flow, check_params={"compile": False, "warps": 2, "nscales": 2})


@torch.inference_mode()
def tvl1_flow(prev: torch.Tensor, nxt: torch.Tensor, **params: object) -> torch.Tensor:
    """TV-L1 flow from ``prev`` to ``nxt``: gray frames (N, H, W) on the 0..255 scale -> (N, 2, H, W) float32, on
    their device. ``params`` are TVL1Params fields (or OpenCV's camelCase names, such as ``innerIterations``)."""
    prm = make_params(TVL1Params, params, OPENCV_NAMES)
    i0, i1 = gray_pair(prev, nxt)  # (N, 1, H, W)
    solver = _iterate_warp_triton if resolve_backend(prm, i0.device) == "triton" else _iterate_warp
    p = None  # the dual variable (N, 2, 2, H, W), restarted from zero on a level of a new size, as in OpenCV

    def solve_level(i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        nonlocal p
        h, w = i0.shape[-2:]
        if p is None or p.shape[-2:] != (h, w):
            p = u.new_zeros(u.shape[0], 2, 2, h, w)
        i1_stack = torch.cat((i1, centered_gradient(i1)), 1)  # (N, 3, H, W): I1, dI1/dx, dI1/dy
        for _ in range(prm.warps):
            i1w, gxy = warp(i1_stack, u, grid).split((1, 2), 1)  # I1(x + u0) and its gradient, bicubic
            rho_c = i1w - i0 - (gxy * u).sum(1, keepdim=True)  # (N, 1, H, W)
            # pixels whose match x + u0 lies outside the second frame carry no data term (their flow comes from
            # the TV term), as in OpenCV
            x, y = (grid + u).split(1, dim=1)  # (N, 1, H, W) each
            inside = ((x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)).to(x.dtype)
            gxy, rho_c = gxy * inside, rho_c * inside
            grad_sq = gxy.square().sum(1, keepdim=True)
            u, p = solver(u, p, gxy, grad_sq, rho_c, prm, scaled_eps=prm.epsilon**2 * h * w)
        return u

    return coarse_to_fine(i0, i1, solve_level, nscales=prm.nscales, scale_step=prm.scale_step,
                          antialias=prm.pyramid_antialias)


#: Settings of the "tvl1-quality" method (see benchmarks/RESULTS.md for how they were chosen and what they cost).
QUALITY_PRESET: dict[str, object] = {"lambda_": 0.25, "scale_step": 0.9, "nscales": 10}
#: tvl1_flow with QUALITY_PRESET (keyword arguments override single settings of the preset).
tvl1_quality_flow = partial(tvl1_flow, **QUALITY_PRESET)
