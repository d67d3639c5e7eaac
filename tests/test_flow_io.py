"""Flow files, quantisation, colour coding and the flow command."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dualstream.flow import dequantize_flow, flow_to_rgb, quantize_flow, read_flo, write_flo
from dualstream.flow.colour import colour_wheel
from dualstream.flow.command import run_flow_command


def test_flo_round_trip_is_bit_exact(tmp_path):
    flow = np.random.default_rng(0).normal(0, 7, (13, 17, 2)).astype(np.float32)
    flow[3, 4] = [1e10, -1e10]  # unknown-flow markers survive too
    write_flo(tmp_path / "a.flo", flow)
    back = read_flo(tmp_path / "a.flo")
    assert back.dtype == np.float32 and back.shape == (13, 17, 2)
    assert np.array_equal(back, flow)
    write_flo(tmp_path / "b.flo", flow.transpose(2, 0, 1))  # (2, H, W) layout is accepted
    assert np.array_equal(read_flo(tmp_path / "b.flo"), flow)
    assert (tmp_path / "a.flo").stat().st_size == 12 + 13 * 17 * 2 * 4


def test_flo_rejects_other_files(tmp_path):
    (tmp_path / "x.flo").write_bytes(b"JUNK" + b"\0" * 8)
    with pytest.raises(ValueError, match="not a .flo file"):
        read_flo(tmp_path / "x.flo")
    (tmp_path / "y.flo").write_bytes(b"PIEH" + np.array([4, 4], "<i4").tobytes() + b"\0" * 8)  # PIEH = the magic
    with pytest.raises(ValueError, match="truncated"):
        read_flo(tmp_path / "y.flo")


def test_quantise_round_trip_within_one_step():
    bound = 20.0
    flow = np.linspace(-bound, bound, 1001, dtype=np.float32)
    back = dequantize_flow(quantize_flow(flow, bound), bound)
    step = 2 * bound / 255
    assert np.abs(back - flow).max() <= step / 2 + 1e-5
    assert quantize_flow(np.array([-bound, bound, 100.0]), bound).tolist() == [0, 255, 255]


def test_torch_quantisation_matches_numpy():
    import torch

    flow = np.random.default_rng(0).normal(0, 12, (3, 2, 9, 11)).astype(np.float32)
    flow[0, 0, 0, :4] = [-30.0, 30.0, 0.0, 20.0 / 255.0]  # clipped, and a value on a rounding boundary
    q = quantize_flow(torch.from_numpy(flow), 20.0)
    assert q.dtype == torch.uint8 and np.array_equal(q.numpy(), quantize_flow(flow, 20.0))


def test_quantise_default_bound_is_20_px_and_a_bound_must_be_positive():
    # the cache's convention (TSN/MMAction2): +-20 px, 0 px at 127.5 (rounds to 128), one step 40/255 px
    assert quantize_flow(np.array([-20.0, -19.9, 0.0, 19.9, 20.0])).tolist() == [0, 1, 128, 254, 255]
    assert dequantize_flow(np.array([0, 255], np.uint8)).tolist() == [-20.0, 20.0]
    # a bound under one pixel is still a bound
    assert quantize_flow(np.array([-0.5, 0.5]), 0.5).tolist() == [0, 255]
    assert dequantize_flow(np.array([0, 255], np.uint8), 0.5).tolist() == [-0.5, 0.5]
    for bad in (0.0, -1.0, -20.0):
        with pytest.raises(ValueError, match=f"bound must be positive, got {bad}"):
            quantize_flow(np.zeros(2), bad)
        with pytest.raises(ValueError, match=f"bound must be positive, got {bad}"):
            dequantize_flow(np.zeros(2, np.uint8), bad)


def test_colour_wheel_and_known_colours():
    wheel = colour_wheel()
    assert wheel.shape == (55, 3)
    flow = np.array([[[0, 0], [1, 0], [-1, 0]], [[0, 1], [0, -1], [np.nan, 0]]], dtype=np.float32)  # (2, 3, 2)
    rgb = flow_to_rgb(flow, max_magnitude=1.0)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [255, 255, 255]  # no motion: white
    assert rgb[0, 1].tolist() == [255, 0, 0]  # right: red
    assert rgb[0, 2].tolist() == [0, 209, 255]  # left: cyan-blue
    assert rgb[1, 0].tolist() == [255, 229, 0]  # down: yellow
    assert rgb[1, 1].tolist() == [88, 0, 255]  # up: blue-violet
    assert rgb[1, 2].tolist() == [0, 0, 0]  # unknown: black
    assert flow_to_rgb(flow.transpose(2, 0, 1), max_magnitude=1.0).tolist() == rgb.tolist()


def _write_frames(tmp_path, shape_b=(24, 32)):
    rng = np.random.default_rng(1)
    a = cv2.GaussianBlur(rng.integers(0, 255, (24, 32), dtype=np.uint8), (5, 5), 1.5)
    b = cv2.resize(a, shape_b[::-1]) if shape_b != (24, 32) else np.roll(a, 1, axis=1)
    cv2.imwrite(str(tmp_path / "a.png"), a)
    cv2.imwrite(str(tmp_path / "b.png"), b)
    return str(tmp_path / "a.png"), str(tmp_path / "b.png")


def test_flow_command_writes_flo_and_png(tmp_path):
    fa, fb = _write_frames(tmp_path)
    run_flow_command(fa, fb, method="dis", out=str(tmp_path / "f.flo"), png=str(tmp_path / "f.png"), device="cpu")
    assert read_flo(tmp_path / "f.flo").shape == (24, 32, 2)
    assert cv2.imread(str(tmp_path / "f.png")).shape == (24, 32, 3)


def test_flow_command_user_errors(tmp_path):
    fa, fb = _write_frames(tmp_path, shape_b=(20, 32))
    with pytest.raises(ValueError, match="frames differ in size"):
        run_flow_command(fa, fb, method="dis", out=str(tmp_path / "f.flo"), png=None, device="cpu")
    with pytest.raises(ValueError, match="frame file not found"):
        run_flow_command(fa, str(tmp_path / "missing.png"), method="dis", out=str(tmp_path / "f.flo"), png=None, device="cpu")
    with pytest.raises(ValueError, match="unknown flow method 'lk'"):
        run_flow_command(fa, fa, method="lk", out=str(tmp_path / "f.flo"), png=None, device="cpu")


def test_flow_bound_range_is_the_same_at_every_door():
    """The config, prepare's options and a model package accept 0.01 to 10000 px, and nothing outside."""
    from dualstream.config import ConfigError, load_config
    from dualstream.prepare.common import PrepareError, PrepareOptions

    for ok in (0.01, 10_000.0):
        assert load_config(None, [f"data.flow_bound={ok}"]).data.flow_bound == ok
        assert PrepareOptions(bound=ok).bound == ok
    for bad in (0.0099, 10_001.0):
        with pytest.raises(ConfigError, match="data.flow_bound"):
            load_config(None, [f"data.flow_bound={bad}"])
        with pytest.raises(PrepareError, match="--flow-bound"):
            PrepareOptions(bound=bad)
