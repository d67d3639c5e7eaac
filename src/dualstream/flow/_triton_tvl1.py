"""TV-L1 inner solver as one Triton kernel launch per warp: iterations, median filtering and stopping rule on the
device, no host synchronisation per iteration. One program per pair sweeps its image in tiles of BLOCK pixels twice
per iteration (the p step reads its neighbours' new u), with ``tvl1._tvl1_iteration``'s arithmetic line by line
(but for the order of the stopping sum). Under TRITON_INTERPRET=1, set before the import, it runs on CPU tensors."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._median_net import median_window3, median_window5
from ._torch import triton_interpreted as interpreted

#: Median kernel sizes the fused filter supports (others run through the PyTorch backend).
MEDIAN_SIZES = (0, 1, 3, 5)


@triton.jit
def _median_tile(src, dst, offs, row, col, H, W, mask, K: tl.constexpr):
    if K == 3:
        m = median_window3(src, row, col, H, W, mask)
    else:
        m = median_window5(src, row, col, H, W, mask)
    tl.store(dst + offs, m, mask=mask)


@triton.jit
def _tvl1_warp_kernel(
    u_ptr, p_ptr, g_ptr, gsq_ptr, rho_ptr, tmp_ptr, iters_ptr,
    H, W, total, inner, check_every,
    l_t, theta, taut, eps,
    MEDIAN: tl.constexpr, BLOCK: tl.constexpr,
):
    """u (N, 2, H, W) and p (N, 2, 2, H, W) updated in place; g (N, 2, H, W), gsq and rho (N, 1, H, W) read;
    tmp (N, 2, H, W) scratch for the median; iters (N,) int32 receives the iterations each pair ran."""
    n = tl.program_id(0).to(tl.int64)
    HW = H * W
    u = u_ptr + n * 2 * HW
    p = p_ptr + n * 4 * HW
    g = g_ptr + n * 2 * HW
    gsq = gsq_ptr + n * HW
    rho = rho_ptr + n * HW
    tmp = tmp_ptr + n * 2 * HW
    lanes = tl.arange(0, BLOCK)
    k = tl.program_id(0) * 0  # int32 tensors, so that the loop may carry them
    go = k + 1
    while (k < total) & (go == 1):
        kin = k % inner
        if MEDIAN > 1:
            if kin == 0:  # median filtering of u at the start of every outer iteration
                for start in range(0, HW, BLOCK):
                    offs = start + lanes
                    mask = offs < HW
                    row = offs // W
                    col = offs - row * W
                    _median_tile(u, tmp, offs, row, col, H, W, mask, MEDIAN)
                    _median_tile(u + HW, tmp + HW, offs, row, col, H, W, mask, MEDIAN)
                tl.debug_barrier()
                for start in range(0, HW, BLOCK):
                    offs = start + lanes
                    mask = offs < HW
                    tl.store(u + offs, tl.load(tmp + offs, mask=mask), mask=mask)
                    tl.store(u + HW + offs, tl.load(tmp + HW + offs, mask=mask), mask=mask)
                tl.debug_barrier()
        # sweep 1: v-step (thresholding) and u = v + theta div p, in place; the squared change is summed
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, HW, BLOCK):
            offs = start + lanes
            mask = offs < HW
            row = offs // W
            col = offs - row * W
            left = mask & (col > 0)
            up = mask & (row > 0)
            div1 = (tl.load(p + offs, mask=mask, other=0.0) - tl.load(p + offs - 1, mask=left, other=0.0)
                    + tl.load(p + HW + offs, mask=mask, other=0.0) - tl.load(p + HW + offs - W, mask=up, other=0.0))
            div2 = (tl.load(p + 2 * HW + offs, mask=mask, other=0.0) - tl.load(p + 2 * HW + offs - 1, mask=left, other=0.0)
                    + tl.load(p + 3 * HW + offs, mask=mask, other=0.0)
                    - tl.load(p + 3 * HW + offs - W, mask=up, other=0.0))
            u1 = tl.load(u + offs, mask=mask, other=0.0)
            u2 = tl.load(u + HW + offs, mask=mask, other=0.0)
            g1 = tl.load(g + offs, mask=mask, other=0.0)
            g2 = tl.load(g + HW + offs, mask=mask, other=0.0)
            gs = tl.load(gsq + offs, mask=mask, other=0.0)
            r = tl.load(rho + offs, mask=mask, other=0.0) + g1 * u1 + g2 * u2
            lg = l_t * gs
            coef = tl.where(r < -lg, l_t, tl.where(r > lg, -l_t, -r / tl.maximum(gs, 1e-10)))
            n1 = u1 + coef * g1 + theta * div1
            n2 = u2 + coef * g2 + theta * div2
            d1 = n1 - u1
            d2 = n2 - u2
            acc += tl.where(mask, d1 * d1 + d2 * d2, 0.0)
            tl.store(u + offs, n1, mask=mask)
            tl.store(u + HW + offs, n2, mask=mask)
        tl.debug_barrier()
        # sweep 2: dual step p = (p + tau/theta grad u) / (1 + tau/theta |grad u|), forward differences
        for start in range(0, HW, BLOCK):
            offs = start + lanes
            mask = offs < HW
            row = offs // W
            col = offs - row * W
            right = mask & (col < W - 1)
            down = mask & (row < H - 1)
            for c in tl.static_range(2):
                uc = tl.load(u + c * HW + offs, mask=mask, other=0.0)
                ux = tl.where(right, tl.load(u + c * HW + offs + 1, mask=right, other=0.0) - uc, 0.0)
                uy = tl.where(down, tl.load(u + c * HW + offs + W, mask=down, other=0.0) - uc, 0.0)
                norm = 1.0 + taut * tl.sqrt(ux * ux + uy * uy)
                px = tl.load(p + (2 * c) * HW + offs, mask=mask, other=0.0)
                py = tl.load(p + (2 * c + 1) * HW + offs, mask=mask, other=0.0)
                tl.store(p + (2 * c) * HW + offs, (px + taut * ux) / norm, mask=mask)
                tl.store(p + (2 * c + 1) * HW + offs, (py + taut * uy) / norm, mask=mask)
        tl.debug_barrier()
        err = tl.sum(acc, axis=0)
        k += 1
        # the stopping rule is tested where the reference tests it: every check_every iterations, and at the end
        if (((kin + 1) % check_every) == 0) | ((kin + 1) == inner):
            if err <= eps:
                go = go * 0
    tl.store(iters_ptr + n, k)


def block_size(pixels: int) -> int:
    """Pixels per tile: 1024 on a GPU; the interpreter runs one numpy op per tile op, so it takes whole images."""
    cap = 1 << 14 if interpreted() else 1024
    return min(cap, triton.next_power_of_2(max(pixels, 16)))


def iterate_warp(u: torch.Tensor, p: torch.Tensor, gxy: torch.Tensor, grad_sq: torch.Tensor, rho_c: torch.Tensor, *,
                 total: int, inner: int, check_every: int, median: int, l_t: float, theta: float, taut: float,
                 scaled_eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All outer/inner iterations of one warp for the batch, one launch; returns (u, p, iterations per pair)."""
    n, _, h, w = u.shape
    if median not in MEDIAN_SIZES:
        raise ValueError(f"the Triton TV-L1 kernel filters with a median of size 3 or 5, got {median}")
    u = u.contiguous().clone()
    p = p.contiguous().clone()
    tmp = torch.empty_like(u) if median > 1 else u
    iters = torch.zeros(n, dtype=torch.int32, device=u.device)
    _tvl1_warp_kernel[(n,)](
        u, p, gxy.contiguous(), grad_sq.contiguous(), rho_c.contiguous(), tmp, iters,
        h, w, total, inner, check_every,
        float(l_t), float(theta), float(taut), float(scaled_eps),
        MEDIAN=median if median > 1 else 0, BLOCK=block_size(h * w), num_warps=8,
    )
    return u, p, iters
