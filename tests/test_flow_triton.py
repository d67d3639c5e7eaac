"""The Triton TV-L1 and Brox kernels against the PyTorch reference, on the CPU through Triton's interpreter.

TRITON_INTERPRET=1 must be set before Triton is imported (it is read when triton.language and each kernel are
defined); without a GPU, conftest.py sets it first thing. The interpreter runs one numpy operation per kernel
operation, so the images are tiny; the whole-solver comparisons are marked slow. On a GPU machine (no
interpreter) the same tests run the compiled kernels on CUDA tensors. The interpreter never compiles, so one test
has Triton's compiler build every kernel for sm_90 (Hopper) in a subprocess, which needs no GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import interior_epe, synthetic_pair

pytest.importorskip("triton", reason="Triton is not installed (pip install triton; Linux only)")
from dualstream.flow._torch import triton_interpreted  # noqa: E402

if not triton_interpreted() and not torch.cuda.is_available():
    pytest.skip("Triton kernels need a CUDA GPU or TRITON_INTERPRET=1 set before Triton is imported",
                allow_module_level=True)
DEVICE = torch.device("cpu" if triton_interpreted() else "cuda")

from dualstream.flow import tvl1_flow  # noqa: E402
from dualstream.flow import tvl1 as reference  # noqa: E402
from dualstream.flow.tvl1 import TVL1Params  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _warp_state(n: int, h: int, w: int, seed: int = 0):
    """Random warp inputs as TV-L1's solve_level builds them: u (N, 2, H, W), p (N, 2, 2, H, W), gradients, residual."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, 2, h, w, generator=gen)
    p = 0.3 * torch.randn(n, 2, 2, h, w, generator=gen)
    gxy = 5 * torch.randn(n, 2, h, w, generator=gen)
    gxy[:, :, :2, :3] = 0.0  # pixels without data term (outside the second frame)
    rho = 3 * torch.randn(n, 1, h, w, generator=gen)
    return u, p, gxy, rho


def test_median_networks_select_the_median():
    """The generated selection networks return the median, ties included, and use the pruned comparator count."""
    from dualstream.flow._median_net import median_source

    rng = np.random.default_rng(0)
    for n, comparators in ((9, 40), (25, 202)):
        scope = {"tl": type("tl", (), {"minimum": staticmethod(np.minimum), "maximum": staticmethod(np.maximum)})}
        exec(median_source(n), scope)  # noqa: S102 - the generated straight-line network, evaluated with numpy
        assert median_source(n).count("tl.m") == comparators
        for values in (rng.normal(size=(n, 5000)), rng.integers(0, 4, (n, 5000)).astype(float)):  # ties too
            assert np.array_equal(scope[f"median{n}"](*values), np.median(values, axis=0))


def test_median_windows_filter_as_opencv_with_replicated_borders():
    """median_window{k} gathers each pixel's k x k neighbours, clamped at the border, and returns their median."""
    from dualstream.flow._median_net import median_source, window_source

    tl = type("tl", (), {"minimum": staticmethod(np.minimum), "maximum": staticmethod(np.maximum)})
    img = np.random.default_rng(1).normal(size=(7, 9)).astype(np.float32)
    row, col = np.divmod(np.arange(img.size), img.shape[1])

    def at(src, r, c, dy, dx, h, w, mask):
        return src[np.clip(r + dy, 0, h - 1), np.clip(c + dx, 0, w - 1)]

    for k in (3, 5):
        scope = {"tl": tl, "_at": at}
        exec(median_source(k * k) + window_source(k), scope)  # noqa: S102 - the generated code, run with numpy
        got = scope[f"median_window{k}"](img, row, col, *img.shape, None).reshape(img.shape)
        padded = np.pad(img, k // 2, mode="edge")
        want = np.median(np.lib.stride_tricks.sliding_window_view(padded, (k, k)), axis=(-2, -1))
        assert np.array_equal(got, want)


COMPILE_FOR_HOPPER = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from dualstream.flow import _triton_brox, _triton_tvl1

def compile_(fn, types, **constexprs):
    names = [a for a in fn.arg_names if a not in constexprs]
    sig = dict(zip(names, types), **{k: "constexpr" for k in constexprs})
    out = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=constexprs), target=GPUTarget("cuda", 90, 32),
                         options={"num_warps": 8})
    assert ".target sm_90" in out.asm["ptx"]

for median in (3, 5):
    compile_(_triton_tvl1._tvl1_warp_kernel, ["*fp32"] * 6 + ["*i32"] + ["i32"] * 5 + ["fp32"] * 4,
             MEDIAN=median, BLOCK=1024)
compile_(_triton_brox._brox_warp_kernel, ["*fp32"] * 4 + ["i32"] * 4 + ["fp32"] * 4, BLOCK=1024)
print("compiled")
"""


def test_kernels_compile_for_a_hopper_gpu(tmp_path):
    """The interpreter does not compile: Triton's own compiler turns every kernel into sm_90 code, no GPU needed."""
    pytest.importorskip("triton.backends.nvidia", reason="this Triton has no NVIDIA backend")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.update(TRITON_DEFAULT_FP_FUSION="1", TRITON_CACHE_DIR=str(tmp_path))  # a compile, not a cache hit
    run = subprocess.run([sys.executable, "-c", COMPILE_FOR_HOPPER], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "compiled", run.stderr[-3000:]


@pytest.mark.parametrize("median, check_every", [(3, 1), (5, 2)])
def test_kernel_warp_matches_reference(median, check_every):
    """One launch = every outer/inner iteration of a warp, median and stopping rule included, for 2 pairs."""
    from dualstream.flow import _triton_tvl1

    n, h, w = 2, 12, 14
    u, p, gxy, rho = _warp_state(n, h, w)
    # the second pair starts next to its solution (constant flow, residual ~0) and stops much sooner
    u[1], p[1] = 0.5, 0.0
    rho[1] = -(gxy[1] * u[1]).sum(0, keepdim=True) + 0.01 * rho[1]
    u, p, gxy, rho = (t.to(DEVICE) for t in (u, p, gxy, rho))
    gsq = gxy.square().sum(1, keepdim=True)
    prm = TVL1Params(inner_iterations=3, outer_iterations=2, median_filtering=median, check_every=check_every,
                     compile=False)
    eps = 0.05**2 * h * w
    want_u, want_p = reference._iterate_warp(u, p, gxy, gsq, rho, prm, scaled_eps=eps)
    got_u, got_p, iters = _triton_tvl1.iterate_warp(
        u, p, gxy, gsq, rho, total=6, inner=3, check_every=check_every, median=median,
        l_t=prm.lambda_ * prm.theta, theta=prm.theta, taut=prm.tau / prm.theta, scaled_eps=eps)
    assert iters.tolist()[0] == 6 and iters.tolist()[1] < 6  # the pairs stopped on their own
    torch.testing.assert_close(got_u, want_u, rtol=0, atol=1e-5)
    torch.testing.assert_close(got_p, want_p, rtol=0, atol=1e-5)


def test_brox_kernel_warp_matches_reference():
    """Lagged iterations + red-black SOR of one warp in one launch against brox._solve_warp."""
    from dualstream.flow import brox

    gen = torch.Generator().manual_seed(1)
    n, h, w = 2, 12, 14
    i1, i2w = (torch.nn.functional.interpolate(torch.rand(n, 1, 4, 5, generator=gen), size=(h, w), mode="bicubic")
               for _ in range(2))
    flow = 0.5 * torch.randn(n, 2, h, w, generator=gen)
    i1, i2w, flow = i1.to(DEVICE), i2w.to(DEVICE), flow.to(DEVICE)
    prm = brox.BroxParams(inner_iterations=2, solver_iterations=2)
    want = brox._solve_warp(i1, i2w, flow, prm)
    got = brox._solve_warp_triton(i1, i2w, flow, prm)
    assert float(want.abs().max()) > 0.5  # a real increment, not two zeros
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)


def test_backend_choice_and_errors():
    assert reference.resolve_backend(TVL1Params(), torch.device("cpu")) == "torch"  # auto: the reference on CPU
    assert reference.resolve_backend(TVL1Params(backend="triton"), DEVICE) == "triton"  # interpreter or GPU
    with pytest.raises(ValueError, match="does not support median_filtering 7"):
        reference.resolve_backend(TVL1Params(backend="triton", median_filtering=7), DEVICE)
    with pytest.raises(ValueError, match="backend must be one of"):
        TVL1Params(backend="cuda")
    from dualstream.flow import brox

    assert brox.resolve_backend(brox.BroxParams(), torch.device("cpu")) == "torch"
    with pytest.raises(ValueError, match="backend must be one of"):
        brox.BroxParams(backend="gpu")


@pytest.mark.slow
def test_triton_brox_matches_reference_on_a_synthetic_pair():
    from dualstream.flow import brox_flow

    prev, nxt, truth = synthetic_pair(n=2, height=24, width=32)
    prev, nxt = prev.to(DEVICE), nxt.to(DEVICE)
    want = brox_flow(prev, nxt, backend="torch").cpu()
    got = brox_flow(prev, nxt, backend="triton").cpu()
    assert float((got - want).abs().max()) < 1e-4  # measured 4.3e-6 px
    assert abs(interior_epe(got, truth, margin=4) - interior_epe(want, truth, margin=4)) < 1e-5


@pytest.mark.slow
def test_triton_solver_matches_reference_on_a_synthetic_pair():
    """The whole solver (pyramid, warps, kernel) through the interpreter against the eager reference."""
    prev, nxt, truth = synthetic_pair(n=2, height=24, width=32)
    prev, nxt = prev.to(DEVICE), nxt.to(DEVICE)
    params = {"warps": 2, "inner_iterations": 10, "outer_iterations": 2, "compile": False}
    want = tvl1_flow(prev, nxt, backend="torch", **params).cpu()
    got = tvl1_flow(prev, nxt, backend="triton", **params).cpu()
    assert float((got - want).abs().max()) < 1e-3  # measured 4.4e-5 px
    assert abs(interior_epe(got, truth, margin=4) - interior_epe(want, truth, margin=4)) < 1e-4


@pytest.mark.slow
def test_gpu_flow_benchmark_smoke_mode_runs():
    """benchmarks/gpu_flow.sh --smoke: every code path of the GPU benchmark at tiny sizes (4 min on a loaded CPU)."""
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_flow.sh"), "--smoke"], env=env, capture_output=True,
                         text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| tvl1 triton |" in out.stdout and "| brox triton |" in out.stdout and "| failed:" not in out.stdout
    assert "UCF-101's 2.5 M pairs would take" in out.stdout
