"""Brox et al. increments as one Triton kernel launch per warp (the reference, ``brox._solve_warp``, issues ~60
small tensor operations per SOR sweep). One program per pair, in tiles of BLOCK pixels with block-wide barriers
between the phases (numbered in the kernel); each SOR colour reads only neighbours of the other, so the in-place
update keeps the reference's Gauss-Seidel order."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._triton_tvl1 import block_size


@triton.jit
def _ld(ptr, offs, mask):
    return tl.load(ptr + offs, mask=mask, other=0.0)


@triton.jit
def _links(psi_ptr, offs, row, col, H, W, m):
    """Smoothness weights of the 4 links of each pixel (right, left, down, up): the mean Psi' of the two ends,
    0 across the border; and their sum."""
    right = m & (col < W - 1)
    left = m & (col > 0)
    down = m & (row < H - 1)
    up = m & (row > 0)
    psi = _ld(psi_ptr, offs, m)
    wr = tl.where(right, 0.5 * (psi + _ld(psi_ptr, offs + 1, right)), 0.0)
    wl = tl.where(left, 0.5 * (psi + _ld(psi_ptr, offs - 1, left)), 0.0)
    wd = tl.where(down, 0.5 * (psi + _ld(psi_ptr, offs + W, down)), 0.0)
    wu = tl.where(up, 0.5 * (psi + _ld(psi_ptr, offs - W, up)), 0.0)
    return wr, wl, wd, wu, wr + wl + wd + wu


@triton.jit
def _pull(f, offs, row, col, H, W, m, wr, wl, wd, wu):
    """sum_n w_n f_n over the 4 neighbours (0 outside)."""
    return (wr * _ld(f, offs + 1, m & (col < W - 1)) + wl * _ld(f, offs - 1, m & (col > 0))
            + wd * _ld(f, offs + W, m & (row < H - 1)) + wu * _ld(f, offs - W, m & (row > 0)))


@triton.jit
def _brox_warp_kernel(
    d_ptr, flow_ptr, du_ptr, s_ptr,
    H, W, inner, sweeps,
    alpha, gamma, omega, eps,
    BLOCK: tl.constexpr,
):
    """d (N, 8, H, W): ix, iy, it, ixx, ixy, iyy, ixt, iyt; flow (N, 2, H, W) read; du (N, 2, H, W) zero on
    entry, the increment on exit; s (N, 8, H, W) scratch: a11, a12, a22, b1, b2, psi_s, rhs_u, rhs_v."""
    n = tl.program_id(0).to(tl.int64)
    HW = H * W
    d = d_ptr + n * 8 * HW
    fl = flow_ptr + n * 2 * HW
    du = du_ptr + n * 2 * HW
    s = s_ptr + n * 8 * HW
    lanes = tl.arange(0, BLOCK)
    eps2 = eps * eps
    for _ in range(inner):
        # (1) lagged weights: data terms (point-wise) and the smoothness Psi' of flow + du (forward differences)
        for start in range(0, HW, BLOCK):
            offs = start + lanes
            m = offs < HW
            row = offs // W
            col = offs - row * W
            right = m & (col < W - 1)
            down = m & (row < H - 1)
            ix = _ld(d, offs, m)
            iy = _ld(d + HW, offs, m)
            it = _ld(d + 2 * HW, offs, m)
            ixx = _ld(d + 3 * HW, offs, m)
            ixy = _ld(d + 4 * HW, offs, m)
            iyy = _ld(d + 5 * HW, offs, m)
            ixt = _ld(d + 6 * HW, offs, m)
            iyt = _ld(d + 7 * HW, offs, m)
            u = _ld(du, offs, m)
            v = _ld(du + HW, offs, m)
            r = it + ix * u + iy * v
            psi_d = 0.5 / tl.sqrt(r * r + eps2)
            gxr = ixt + ixx * u + ixy * v
            gyr = iyt + ixy * u + iyy * v
            psi_g = gamma * (0.5 / tl.sqrt(gxr * gxr + gyr * gyr + eps2))
            tl.store(s + offs, psi_d * ix * ix + psi_g * (ixx * ixx + ixy * ixy), mask=m)
            tl.store(s + HW + offs, psi_d * ix * iy + psi_g * (ixx * ixy + ixy * iyy), mask=m)
            tl.store(s + 2 * HW + offs, psi_d * iy * iy + psi_g * (ixy * ixy + iyy * iyy), mask=m)
            tl.store(s + 3 * HW + offs, psi_d * ix * it + psi_g * (ixx * ixt + ixy * iyt), mask=m)
            tl.store(s + 4 * HW + offs, psi_d * iy * it + psi_g * (ixy * ixt + iyy * iyt), mask=m)
            w0 = _ld(fl, offs, m) + u
            w1 = _ld(fl + HW, offs, m) + v
            gx0 = tl.where(right, _ld(fl, offs + 1, right) + _ld(du, offs + 1, right) - w0, 0.0)
            gx1 = tl.where(right, _ld(fl + HW, offs + 1, right) + _ld(du + HW, offs + 1, right) - w1, 0.0)
            gy0 = tl.where(down, _ld(fl, offs + W, down) + _ld(du, offs + W, down) - w0, 0.0)
            gy1 = tl.where(down, _ld(fl + HW, offs + W, down) + _ld(du + HW, offs + W, down) - w1, 0.0)
            sq = gx0 * gx0 + gy0 * gy0 + gx1 * gx1 + gy1 * gy1
            tl.store(s + 5 * HW + offs, alpha * (0.5 / tl.sqrt(sq + eps2)), mask=m)
        tl.debug_barrier()
        # (2) smoothness pull of the current flow: sum_n w_n flow_n - (sum_n w_n) flow
        for start in range(0, HW, BLOCK):
            offs = start + lanes
            m = offs < HW
            row = offs // W
            col = offs - row * W
            wr, wl, wd, wu, wsum = _links(s + 5 * HW, offs, row, col, H, W, m)
            for c in tl.static_range(2):
                f = fl + c * HW
                pull = _pull(f, offs, row, col, H, W, m, wr, wl, wd, wu) - wsum * _ld(f, offs, m)
                tl.store(s + (6 + c) * HW + offs, pull, mask=m)
        tl.debug_barrier()
        # (3, 4) SOR sweeps: red pixels (row + col even), then black ones
        for _s in range(sweeps):
            for colour in tl.static_range(2):
                for start in range(0, HW, BLOCK):
                    offs = start + lanes
                    m = offs < HW
                    row = offs // W
                    col = offs - row * W
                    mine = m & (((row + col) % 2) == colour)
                    wr, wl, wd, wu, wsum = _links(s + 5 * HW, offs, row, col, H, W, mine)
                    nb0 = _pull(du, offs, row, col, H, W, mine, wr, wl, wd, wu) + _ld(s + 6 * HW, offs, mine)
                    nb1 = _pull(du + HW, offs, row, col, H, W, mine, wr, wl, wd, wu) + _ld(s + 7 * HW, offs, mine)
                    u = _ld(du, offs, mine)
                    v = _ld(du + HW, offs, mine)
                    a11 = _ld(s, offs, mine)
                    a12 = _ld(s + HW, offs, mine)
                    a22 = _ld(s + 2 * HW, offs, mine)
                    new_u = (nb0 - _ld(s + 3 * HW, offs, mine) - a12 * v) / tl.where(mine, a11 + wsum, 1.0)
                    u = u + omega * (new_u - u)
                    new_v = (nb1 - _ld(s + 4 * HW, offs, mine) - a12 * u) / tl.where(mine, a22 + wsum, 1.0)
                    v = v + omega * (new_v - v)
                    tl.store(du + offs, u, mask=mine)
                    tl.store(du + HW + offs, v, mask=mine)
                tl.debug_barrier()


def solve_warp(data: torch.Tensor, flow: torch.Tensor, *, inner: int, sweeps: int, alpha: float, gamma: float,
               omega: float, eps: float) -> torch.Tensor:
    """Increment (N, 2, H, W) of one warp; ``data`` (N, 8, H, W) holds ix, iy, it, ixx, ixy, iyy, ixt, iyt."""
    n, _, h, w = flow.shape
    flow = flow.contiguous()
    du = torch.zeros_like(flow)
    scratch = torch.empty(n, 8, h, w, device=flow.device, dtype=torch.float32)
    _brox_warp_kernel[(n,)](data.contiguous(), flow, du, scratch, h, w, inner, sweeps, float(alpha), float(gamma),
                            float(omega), float(eps), BLOCK=block_size(h * w), num_warps=8)
    return du
