"""PyTorch TV-L1 and Brox solvers and the compute_flow interface."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from .conftest import interior_epe, synthetic_pair, with_contrib_skip
from dualstream.flow import FLOW_METHODS, brox_flow, compute_flow, endpoint_error, read_flo, tvl1_flow

# Eager mode keeps the tests quick (torch.compile costs ~20 s per process); the compiled path has its own test.
TVL1 = {"compile": False}
# Thresholds: measured value (2-core CPU, torch 2.13) plus ~30 % margin.
TVL1_SYNTH_EPE = 0.065  # measured 0.0491 px
BROX_SYNTH_EPE = 0.10  # measured 0.0712 px
MIDDLEBURY_CROP_EPE = {"tvl1": 0.14, "brox": 0.15}  # measured 0.1117 / 0.1197 px (OpenCV DualTVL1: 0.1131)


def test_tvl1_recovers_smooth_synthetic_flow():
    prev, nxt, truth = synthetic_pair()
    flow = tvl1_flow(prev, nxt, **TVL1)
    assert flow.shape == (1, 2, 64, 80) and flow.dtype == torch.float32
    assert interior_epe(flow, truth) < TVL1_SYNTH_EPE


def test_brox_recovers_smooth_synthetic_flow():
    prev, nxt, truth = synthetic_pair()
    flow = brox_flow(prev, nxt)
    assert flow.shape == (1, 2, 64, 80) and flow.dtype == torch.float32
    assert interior_epe(flow, truth) < BROX_SYNTH_EPE


@pytest.mark.parametrize("method", ["tvl1", "brox"])
def test_batched_result_equals_per_pair_result(method):
    prev, nxt, _ = synthetic_pair(n=3, height=40, width=48)
    prev = torch.cat((prev[:1], prev[1:] * 0.8))  # pairs of different content converge at different times
    nxt = torch.cat((nxt[:1], nxt[1:] * 0.8))
    params = TVL1 if method == "tvl1" else {}
    batched = compute_flow(prev, nxt, method=method, **params)
    single = np.concatenate([compute_flow(prev[i], nxt[i], method=method, **params) for i in range(3)])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-5)
    chunked = compute_flow(prev, nxt, method=method, batch_size=2, **params)
    np.testing.assert_allclose(chunked, single, rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["tvl1", "brox"])
def test_constant_images_give_zero_flow(method):
    frames = np.full((2, 30, 40), 128, np.uint8)
    frames[1] = 7
    flow = compute_flow(frames, frames, method=method, **(TVL1 if method == "tvl1" else {}))
    assert np.isfinite(flow).all()
    # Not bit-exact zero: the bilinear pyramid of a constant image is constant only up to float32 rounding,
    # which leaves gradients of ~1e-5 and flows of ~1e-8 px.
    assert np.abs(flow).max() < 1e-6


@pytest.mark.parametrize("method", with_contrib_skip(FLOW_METHODS))
def test_tiny_frames_do_not_crash(method):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (2, 10, 12), dtype=np.uint8)
    flow = compute_flow(a, np.roll(a, 1, axis=2), method=method, **(TVL1 if method == "tvl1" else {}))
    assert flow.shape == (2, 2, 10, 12) and flow.dtype == np.float32
    assert np.isfinite(flow).all()


@pytest.mark.parametrize("method", FLOW_METHODS + ("dis", "farneback"))
def test_pairs_of_different_sizes_are_rejected(method):
    with pytest.raises(ValueError, match="differ in size"):
        compute_flow(np.zeros((1, 20, 30), np.uint8), np.zeros((1, 20, 31), np.uint8), method=method)


def test_opencv_tvl1_without_contrib_is_one_clear_line(monkeypatch, tmp_path, capsys):
    """A plain OpenCV build (no cv2.optflow) makes opencv-tvl1 fail in one line naming the package, everywhere."""
    from dualstream.cli import main
    from dualstream.flow import FlowBackendError

    monkeypatch.delattr(cv2, "optflow", raising=False)
    a = np.zeros((20, 30), np.uint8)
    with pytest.raises(FlowBackendError) as err:
        compute_flow(a, a, method="opencv-tvl1")
    message = str(err.value)
    assert "\n" not in message and "opencv-contrib-python" in message and "'tvl1'" in message
    assert compute_flow(a, a, method="tvl1", **TVL1).shape == (1, 2, 20, 30)  # the PyTorch TV-L1 needs no contrib
    cv2.imwrite(str(tmp_path / "a.png"), a)
    assert main(["flow", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--method", "opencv-tvl1",
                 "--out", str(tmp_path / "f.flo")]) == 2
    err_line = capsys.readouterr().err.strip()
    assert "\n" not in err_line and "opencv-contrib-python" in err_line
    (tmp_path / "videos" / "A").mkdir(parents=True)
    assert main(["-q", "prepare", "--videos", str(tmp_path / "videos"), "--out", str(tmp_path / "cache"),
                 "--flow", "opencv-tvl1"]) == 2  # refused before any video is touched
    assert "opencv-contrib-python" in capsys.readouterr().err


def test_unknown_method_lists_the_choices():
    with pytest.raises(ValueError) as err:
        compute_flow(np.zeros((20, 30), np.uint8), np.zeros((20, 30), np.uint8), method="raft")
    message = str(err.value)
    assert "\n" not in message
    assert all(name in message for name in FLOW_METHODS)


def test_unknown_parameter_is_rejected():
    a = np.zeros((20, 30), np.uint8)
    with pytest.raises(ValueError, match="unknown TVL1Params parameter"):
        compute_flow(a, a, method="tvl1", lamda=0.1)


def test_opencv_parameter_names_are_accepted():
    prev, nxt, _ = synthetic_pair(height=32, width=40)
    ours = tvl1_flow(prev, nxt, inner_iterations=7, scale_step=0.6, **TVL1)
    theirs = tvl1_flow(prev, nxt, innerIterations=7, scaleStep=0.6, **TVL1)
    assert torch.equal(ours, theirs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
@pytest.mark.parametrize("method", ["tvl1", "brox"])
def test_cuda_without_gpu_is_a_clear_error(method):
    a = np.zeros((20, 30), np.uint8)
    with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
        compute_flow(a, a, method=method, device="cuda")


def test_opencv_methods_run_on_cpu_only():
    a = np.zeros((20, 30), np.uint8)
    with pytest.raises(ValueError, match="CPU only"):
        compute_flow(a, a, method="opencv-tvl1", device="cuda")


def test_torch_and_numpy_inputs_agree():
    prev, nxt, _ = synthetic_pair(height=32, width=40)
    from_torch = compute_flow(prev, nxt, method="tvl1", **TVL1)
    from_numpy = compute_flow(prev.numpy(), nxt.numpy(), method="tvl1", **TVL1)
    assert np.array_equal(from_torch, from_numpy)


def _middlebury_crop(root, name, size=128):
    """Central size x size crop of a Middlebury pair and its ground truth (full-resolution motion, fast)."""
    a = cv2.imread(str(root / name / "frame10.png"), cv2.IMREAD_GRAYSCALE)
    b = cv2.imread(str(root / name / "frame11.png"), cv2.IMREAD_GRAYSCALE)
    truth = read_flo(root / name / "flow10.flo")
    y, x = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
    window = np.s_[y : y + size, x : x + size]
    return a[window], b[window], truth[window]


@pytest.mark.parametrize("method", ["tvl1", "brox"])
def test_middlebury_rubberwhale_crop(middlebury, method):
    a, b, truth = _middlebury_crop(middlebury, "RubberWhale")
    flow = compute_flow(a, b, method=method, **(TVL1 if method == "tvl1" else {}))[0].transpose(1, 2, 0)
    assert endpoint_error(flow, truth) < MIDDLEBURY_CROP_EPE[method]


@pytest.mark.slow
def test_compiled_iteration_matches_eager():
    """The default compiled path (about 20-60 s of compilation, hence slow) against eager, tiny frames included."""
    prev, nxt, _ = synthetic_pair(n=2, height=48, width=64)
    eager = tvl1_flow(prev, nxt, compile=False)
    compiled = tvl1_flow(prev, nxt, compile=True)
    # Fused kernels round differently; over ~10^3 iterations that moved one value by 1.3e-3 px (measured).
    assert float((compiled - eager).abs().mean()) < 1e-4
    torch.testing.assert_close(compiled, eager, rtol=0, atol=5e-3)
    tiny = compute_flow(prev[:, :10, :12], nxt[:, :10, :12], method="tvl1")  # compile=True is the default
    assert tiny.shape == (2, 2, 10, 12) and np.isfinite(tiny).all()
    # a second setting in the same process (lambda passed as a float to one compiled function was off by 0.21 px)
    other = tvl1_flow(prev, nxt, lambda_=0.25)
    torch.testing.assert_close(other, tvl1_flow(prev, nxt, lambda_=0.25, compile=False), rtol=0, atol=5e-3)


def test_median_filter_branches_agree(monkeypatch):
    from dualstream.flow._torch import median_filter

    x = torch.from_numpy(np.random.default_rng(3).normal(0, 3, (2, 2, 17, 23)).astype(np.float32))
    for ksize in (3, 5):
        monkeypatch.setattr("dualstream.flow._torch.USE_CV2_MEDIAN", True)
        fast = median_filter(x, ksize)  # cv2.medianBlur over the stacked batch
        monkeypatch.setattr("dualstream.flow._torch.USE_CV2_MEDIAN", False)
        generic = median_filter(x, ksize)  # unfold + median, the branch CUDA tensors take
        assert torch.equal(fast, generic)
        single = torch.from_numpy(cv2.medianBlur(x[1, 0].numpy(), ksize))
        assert torch.equal(fast[1, 0], single)


def test_tvl1_device_agnostic_path_on_cpu(monkeypatch):
    """Everything a CUDA run executes, run here on the CPU: the solver code is device-agnostic except the median."""
    prev, nxt, truth = synthetic_pair()
    monkeypatch.setattr("dualstream.flow._torch.USE_CV2_MEDIAN", False)
    generic = tvl1_flow(prev, nxt, **TVL1)
    monkeypatch.setattr("dualstream.flow._torch.USE_CV2_MEDIAN", True)
    torch.testing.assert_close(generic, tvl1_flow(prev, nxt, **TVL1), rtol=0, atol=1e-5)
    assert interior_epe(generic, truth) < TVL1_SYNTH_EPE


def test_quality_preset_and_its_options():
    """tvl1-quality is tvl1 with QUALITY_PRESET (single settings overridable); the optional refinements run."""
    from dualstream.flow import QUALITY_PRESET

    prev, nxt, truth = synthetic_pair(height=40, width=48)
    quality = compute_flow(prev, nxt, method="tvl1-quality", **TVL1)
    assert np.array_equal(quality, compute_flow(prev, nxt, method="tvl1", **QUALITY_PRESET, **TVL1))
    overridden = compute_flow(prev, nxt, method="tvl1-quality", lambda_=0.15, **TVL1)
    assert np.array_equal(overridden, compute_flow(prev, nxt, method="tvl1", **{**QUALITY_PRESET, "lambda_": 0.15}, **TVL1))
    assert interior_epe(tvl1_flow(prev, nxt, pyramid_antialias=True, **TVL1), truth) < 2 * TVL1_SYNTH_EPE
