"""Batched optical flow in PyTorch (CPU or CUDA): Brox, Bruhn, Papenberg and Weickert, "High Accuracy Optical
Flow Estimation Based on a Theory for Warping" (ECCV 2004). Energy (eqs. 3-6): E(w) = E_data + alpha E_smooth with
  E_data   = sum Psi(|I2(x+w) - I1(x)|^2 + gamma |grad I2(x+w) - grad I1(x)|^2)   (grey + gradient constancy)
  E_smooth = sum Psi(|grad u|^2 + |grad v|^2),         Psi(s^2) = sqrt(s^2 + eps^2)  (Charbonnier, eq. 5).
Minimised coarse-to-fine with warping (the outer fixed point of eqs. 8-11); at each warp the increments
(du, dv) solve the linearised Euler-Lagrange equations (eq. 12) with the nonlinear Psi' factors lagged
(inner fixed point), each lagged linear system being solved by red-black SOR sweeps."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._torch import (
    centered_gradient,
    check_fields,
    choose_backend,
    coarse_to_fine,
    forward_diff,
    gray_pair,
    make_params,
    warp,
)

__all__ = ["BroxParams", "brox_flow"]


@dataclass(frozen=True)
class BroxParams:
    """Solver settings, named after OpenCV's cuda::BroxOpticalFlow; why the defaults: docs/design.md.

    alpha: smoothness weight (images scaled to 0..1); gamma: weight of gradient constancy.
    scale_step: pyramid size ratio; nscales: levels at most (none with a side under 16 px); warps: per level.
    inner_iterations: lagged-nonlinearity fixed-point iterations per warp; solver_iterations: red-black SOR
        sweeps per lagged linear system; omega: SOR relaxation factor; epsilon: Charbonnier epsilon (eq. 5).
    backend: "torch" (the reference), "triton" (one kernel launch per warp) or "auto" (_torch.choose_backend)."""

    alpha: float = 0.1
    gamma: float = 5.0
    scale_step: float = 0.8
    nscales: int = 100
    warps: int = 1
    inner_iterations: int = 5
    solver_iterations: int = 10
    omega: float = 1.8
    epsilon: float = 0.001
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self, "Brox", positive=("alpha", "scale_step", "epsilon", "omega"),
                     at_least_one=("nscales", "warps", "inner_iterations", "solver_iterations"))
        if self.gamma < 0 or self.omega >= 2:
            raise ValueError(f"Brox needs gamma >= 0 and omega < 2, got gamma={self.gamma}, omega={self.omega}")


def _charbonnier_prime(sq: torch.Tensor, eps: float) -> torch.Tensor:
    """Psi'(s^2) = 1 / (2 sqrt(s^2 + eps^2)), the lagged weight of a Charbonnier term (eq. 5)."""
    return 0.5 * torch.rsqrt(sq + eps * eps)


def _neighbour_sum(f: torch.Tensor, w: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """sum_n w_n f_n over the 4 neighbours (right, left, down, up) of (N, C, H, W); f = 0 outside."""
    wr, wl, wd, wu = w
    fr = F.pad(f[..., 1:], (0, 1))
    fl = F.pad(f[..., :-1], (1, 0))
    fd = F.pad(f[..., 1:, :], (0, 0, 0, 1))
    fu = F.pad(f[..., :-1, :], (0, 0, 1, 0))
    return wr * fr + wl * fl + wd * fd + wu * fu


def _smoothness_weights(flow: torch.Tensor, alpha: float, eps: float) -> tuple[torch.Tensor, ...]:
    """alpha * Psi'_smooth averaged onto the 4 neighbour links, 0 across the image border (Neumann)."""
    gx, gy = forward_diff(flow)  # (N, 2, H, W) each
    psi = alpha * _charbonnier_prime((gx.square() + gy.square()).sum(1, keepdim=True), eps)  # (N, 1, H, W)
    wr = F.pad(0.5 * (psi[..., 1:] + psi[..., :-1]), (0, 1))  # link x <-> x+1, zero at the last column
    wl = F.pad(wr[..., :-1], (1, 0))
    wd = F.pad(0.5 * (psi[..., 1:, :] + psi[..., :-1, :]), (0, 0, 0, 1))
    wu = F.pad(wd[..., :-1, :], (0, 0, 1, 0))
    return wr, wl, wd, wu


def _derivatives(i1: torch.Tensor, i2w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """ix, iy, it (brightness), ixx, ixy, iyy (Hessian of the warped frame), ixt, iyt (gradient constancy),
    each (N, H, W), from the first frame and the warped second frame (N, 1, H, W)."""
    g1, g2 = centered_gradient(i1), centered_gradient(i2w)  # (N, 2, H, W): d/dx, d/dy
    ix, iy = (0.5 * (g1 + g2)).unbind(1)  # brightness term derivatives, averaged over both frames
    it = (i2w - i1)[:, 0]
    ixx, iyx, ixy, iyy = centered_gradient(g2).unbind(1)  # the Hessian
    ixy = 0.5 * (ixy + iyx)
    ixt, iyt = (g2 - g1).unbind(1)  # gradient-constancy residuals
    return ix, iy, it, ixx, ixy, iyy, ixt, iyt


def _solve_warp_triton(i1: torch.Tensor, i2w: torch.Tensor, flow: torch.Tensor, prm: BroxParams) -> torch.Tensor:
    from . import _triton_brox

    return _triton_brox.solve_warp(torch.stack(_derivatives(i1, i2w), 1), flow, inner=prm.inner_iterations,
                                   sweeps=prm.solver_iterations, alpha=prm.alpha, gamma=prm.gamma, omega=prm.omega,
                                   eps=prm.epsilon)


def _solve_warp(i1: torch.Tensor, i2w: torch.Tensor, flow: torch.Tensor, prm: BroxParams) -> torch.Tensor:
    """Increment (N, 2, H, W) for one warp: lagged fixed point (eq. 12) + red-black SOR on each linear system."""
    h, w = i1.shape[-2:]
    ix, iy, it, ixx, ixy, iyy, ixt, iyt = _derivatives(i1, i2w)
    du = torch.zeros_like(flow)
    parity = (torch.arange(h, device=i1.device)[:, None] + torch.arange(w, device=i1.device)) % 2
    colours = (parity == 0, parity == 1)  # red / black checkerboard, (H, W)
    for _ in range(prm.inner_iterations):
        d_u, d_v = du[:, 0], du[:, 1]
        psi_d = _charbonnier_prime((it + ix * d_u + iy * d_v).square(), prm.epsilon)
        gxr, gyr = ixt + ixx * d_u + ixy * d_v, iyt + ixy * d_u + iyy * d_v
        psi_g = prm.gamma * _charbonnier_prime(gxr.square() + gyr.square(), prm.epsilon)
        # linear system per pixel (eq. 12): [a11 a12; a12 a22] (du, dv) + (b1, b2) = div(psi_s grad(w + dw))
        a11 = psi_d * ix * ix + psi_g * (ixx * ixx + ixy * ixy)
        a12 = psi_d * ix * iy + psi_g * (ixx * ixy + ixy * iyy)
        a22 = psi_d * iy * iy + psi_g * (ixy * ixy + iyy * iyy)
        b1 = psi_d * ix * it + psi_g * (ixx * ixt + ixy * iyt)
        b2 = psi_d * iy * it + psi_g * (ixy * ixt + iyy * iyt)
        weights = _smoothness_weights(flow + du, prm.alpha, prm.epsilon)
        wsum = sum(weights)[:, 0]  # (N, H, W)
        rhs_flow = _neighbour_sum(flow, weights) - wsum[:, None] * flow  # smoothness pull of the current flow
        for _ in range(prm.solver_iterations):
            for mask in colours:
                nb = _neighbour_sum(du, weights) + rhs_flow  # (N, 2, H, W)
                new_u = (nb[:, 0] - b1 - a12 * du[:, 1]) / (a11 + wsum)
                d_u = torch.where(mask, du[:, 0] + prm.omega * (new_u - du[:, 0]), du[:, 0])
                new_v = (nb[:, 1] - b2 - a12 * d_u) / (a22 + wsum)
                d_v = torch.where(mask, du[:, 1] + prm.omega * (new_v - du[:, 1]), du[:, 1])
                du = torch.stack((d_u, d_v), 1)
    return du


def resolve_backend(prm: BroxParams, device: torch.device) -> str:
    """"torch" or "triton" for ``device`` (see BroxParams.backend)."""
    return choose_backend(prm.backend, device, solver="Brox", module="_triton_brox", unsupported=None,
                          flow_fn=brox_flow, check_params={"nscales": 2})


@torch.inference_mode()
def brox_flow(prev: torch.Tensor, nxt: torch.Tensor, **params: object) -> torch.Tensor:
    """Brox et al. 2004 flow from ``prev`` to ``nxt``: gray frames (N, H, W), 0..255 -> (N, 2, H, W) float32, on
    their device, the whole batch at once; ``params`` are BroxParams fields."""
    prm = make_params(BroxParams, params, {})
    i1, i2 = (t / 255.0 for t in gray_pair(prev, nxt))  # (N, 1, H, W), 0..1 as alpha expects
    solve = _solve_warp_triton if resolve_backend(prm, i1.device) == "triton" else _solve_warp

    def solve_level(i1: torch.Tensor, i2: torch.Tensor, flow: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        for _ in range(prm.warps):
            flow = flow + solve(i1, warp(i2, flow, grid, mode="bilinear"), flow, prm)
        return flow

    return coarse_to_fine(i1, i2, solve_level, nscales=prm.nscales, scale_step=prm.scale_step, antialias=True)
