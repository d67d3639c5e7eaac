import numpy as np
import torch

from dualstream.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropParams,
    apply_clip_transform,
    random_crop_params,
)


def _clip(t=3, h=20, w=30, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    flow = rng.normal(0, 3, (t, 2, h, w)).astype(np.float32)
    return rgb, flow


def _denorm(r, t):
    r = r.reshape(t, 3, *r.shape[-2:]).numpy().transpose(0, 2, 3, 1)
    return r * np.array(IMAGENET_STD) * 255 + np.array(IMAGENET_MEAN) * 255


def test_flip_mirrors_both_streams_and_negates_flow_x():
    rgb, flow = _clip()
    crop = CropParams(top=2, left=5, size=16, flip=False)
    r0, f0 = apply_clip_transform(rgb, flow, crop, size=16, flow_bound=20)
    r1, f1 = apply_clip_transform(rgb, flow, CropParams(2, 5, 16, True), size=16, flow_bound=20)
    assert torch.allclose(r1, r0.flip(-1), atol=1e-5)
    f0, f1 = f0.reshape(3, 2, 16, 16), f1.reshape(3, 2, 16, 16)
    assert torch.allclose(f1[:, 0], -f0[:, 0].flip(-1), atol=1e-6)
    assert torch.allclose(f1[:, 1], f0[:, 1].flip(-1), atol=1e-6)


def test_same_crop_for_both_streams_and_layout():
    rgb, flow = _clip()
    r, f = apply_clip_transform(rgb, flow, CropParams(top=3, left=7, size=12, flip=False), size=12, flow_bound=20)
    assert r.shape == (9, 12, 12) and f.shape == (6, 12, 12) and r.dtype == f.dtype == torch.float32
    assert np.allclose(_denorm(r, 3), rgb[:, 3:15, 7:19], atol=1e-3)
    assert np.allclose(f.numpy().reshape(3, 2, 12, 12) * 20, flow[:, :, 3:15, 7:19], atol=1e-5)


def test_resize_scales_flow_displacements():
    rgb = np.full((2, 16, 16, 3), 100, np.uint8)
    flow = np.full((2, 2, 16, 16), 4.0, np.float32)
    _, f = apply_clip_transform(rgb, flow, CropParams(0, 0, 16, False), size=32, flow_bound=20)
    assert torch.allclose(f, torch.full_like(f, 8.0 / 20))


def test_random_crop_within_bounds():
    rng = np.random.default_rng(0)
    for _ in range(50):
        c = random_crop_params(30, 50, rng=rng, scale_min=0.5, flip=True)
        assert 15 <= c.size <= 30 and c.top + c.size <= 30 and c.left + c.size <= 50
