import numpy as np

from dualstream.data.clips import cut_arrays
from dualstream.data.transforms import IMAGENET_MEAN, IMAGENET_STD, CropParams, random_crop_params
from dualstream.flow import dequantize_flow


def _clip(t=3, h=20, w=30, seed=0):
    """rgb (T, H, W, 3) and quantised flow (T, H, W, 2) uint8, as the cache stores them."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8), rng.integers(0, 256, (t, h, w, 2), dtype=np.uint8)


def _denorm(r, t):
    r = r.reshape(t, 3, *r.shape[-2:]).transpose(0, 2, 3, 1)
    return r * np.array(IMAGENET_STD) * 255 + np.array(IMAGENET_MEAN) * 255


def test_flip_mirrors_both_streams_and_negates_flow_x():
    rgb, flow = _clip()
    r0, f0 = cut_arrays(rgb, flow, CropParams(top=2, left=5, size=16, flip=False), size=16)
    r1, f1 = cut_arrays(rgb, flow, CropParams(2, 5, 16, True), size=16)
    assert np.allclose(r1, r0[..., ::-1], atol=1e-5)
    f0, f1 = f0.reshape(3, 2, 16, 16), f1.reshape(3, 2, 16, 16)
    assert np.allclose(f1[:, 0], -f0[:, 0, :, ::-1], atol=1e-6)
    assert np.allclose(f1[:, 1], f0[:, 1, :, ::-1], atol=1e-6)
    assert not np.allclose(f1[:, 0], f0[:, 0, :, ::-1], atol=1e-3)  # the sign did change


def test_same_crop_for_both_streams_and_layout():
    rgb, flow = _clip()
    r, f = cut_arrays(rgb, flow, CropParams(top=3, left=7, size=12, flip=False), size=12)
    assert r.shape == (9, 12, 12) and f.shape == (6, 12, 12) and r.dtype == f.dtype == np.float32
    assert np.allclose(_denorm(r, 3), rgb[:, 3:15, 7:19], atol=1e-3)
    px = dequantize_flow(flow.transpose(0, 3, 1, 2), 20.0)  # (T, 2, H, W) px
    assert np.allclose(f.reshape(3, 2, 12, 12) * 20, px[:, :, 3:15, 7:19], atol=1e-4)


def test_resize_scales_flow_displacements():
    rgb = np.full((2, 16, 16, 3), 100, np.uint8)
    q = np.full((2, 16, 16, 2), 178, np.uint8)  # 178 * 40 / 255 - 20 = 7.92 px
    _, f = cut_arrays(rgb, q, CropParams(0, 0, 16, False), size=32)
    assert np.allclose(f, 2 * (178 * 40 / 255 - 20) / 20, atol=1e-5)


def test_random_crop_within_bounds():
    rng = np.random.default_rng(0)
    for _ in range(50):
        c = random_crop_params(30, 50, rng=rng, scale_min=0.5, flip=True)
        assert 15 <= c.size <= 30 and c.top + c.size <= 30 and c.left + c.size <= 50
