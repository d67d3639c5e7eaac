"""Appearance and temporal augmentation: pure functions of drawn parameters, batched = per clip."""

import numpy as np
import pytest
import torch

from dualstream.data.augment import (ColourJitter, colour_jitter, colour_jitter_normalised, draw_colour_jitter,
                                     draw_modality_dropout, modality_dropout, random_offset)
from dualstream.data.dataset import TrainClips
from dualstream.data.sampling import ClipSpec
from dualstream.data.sampling import clip_indices
from dualstream.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from dualstream.data.ucf101 import read_split


def _clips(b=3, t=4, s=8, seed=0):
    return torch.rand(b, 3 * t, s, s, generator=torch.Generator().manual_seed(seed))


def test_identity_jitter_changes_nothing_and_strength_zero_is_identity():
    x = _clips()
    assert torch.allclose(colour_jitter(x, ColourJitter.identity(3)), x, atol=1e-6)
    p = draw_colour_jitter(np.random.default_rng(0), 0.0, batch=3)
    assert torch.equal(p.brightness, torch.ones(3)) and torch.equal(p.gains, torch.ones(3, 3))


def test_brightness_and_gains_scale_and_the_result_stays_in_range():
    x = _clips() * 0.5
    one = torch.ones(3)
    bright = ColourJitter(one * 1.2, one, one, torch.ones(3, 3))
    assert torch.allclose(colour_jitter(x, bright), x * 1.2, atol=1e-6)
    tint = ColourJitter(one, one, one, torch.tensor([[2.0, 1.0, 1.0]] * 3))
    out = colour_jitter(x, tint).view(3, 4, 3, 8, 8)
    assert torch.allclose(out[:, :, 0], (x.view(3, 4, 3, 8, 8)[:, :, 0] * 2).clamp(0, 1), atol=1e-6)
    assert torch.allclose(out[:, :, 1:], x.view(3, 4, 3, 8, 8)[:, :, 1:], atol=1e-6)
    strong = draw_colour_jitter(np.random.default_rng(1), 0.9, batch=3)
    y = colour_jitter(x * 2, strong)
    assert y.min() >= 0 and y.max() <= 1


def test_saturation_zero_gives_grey_and_a_clip_shares_one_draw_over_its_frames():
    x = _clips(b=1, t=2)
    grey = colour_jitter(x, ColourJitter(torch.ones(1), torch.ones(1), torch.zeros(1), torch.ones(1, 3))).view(1, 2, 3, 8, 8)
    assert torch.allclose(grey[:, :, 0], grey[:, :, 1], atol=1e-6) and torch.allclose(grey[:, :, 1], grey[:, :, 2], atol=1e-6)
    same = x.view(1, 2, 3, 8, 8)[:, :1].repeat(1, 2, 1, 1, 1).reshape(1, 6, 8, 8)  # two equal frames
    p = draw_colour_jitter(np.random.default_rng(3), 0.4)
    out = colour_jitter(same, p).view(1, 2, 3, 8, 8)
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-6)


def test_batched_equals_per_clip_and_five_d_equals_channel_stacked():
    x = _clips(b=4)
    p = draw_colour_jitter(np.random.default_rng(2), 0.3, batch=4)
    batched = colour_jitter(x, p)
    for i in range(4):
        one = ColourJitter(p.brightness[i:i + 1], p.contrast[i:i + 1], p.saturation[i:i + 1], p.gains[i:i + 1])
        assert torch.allclose(batched[i:i + 1], colour_jitter(x[i:i + 1], one), atol=1e-6)
    assert torch.allclose(colour_jitter(x.view(4, 4, 3, 8, 8), p).reshape(4, 12, 8, 8), batched)


def test_normalised_jitter_matches_jitter_of_the_0_1_image():
    x = _clips(b=2, t=3)
    mean = torch.tensor(IMAGENET_MEAN).repeat(3).view(1, 9, 1, 1)
    std = torch.tensor(IMAGENET_STD).repeat(3).view(1, 9, 1, 1)
    p = draw_colour_jitter(np.random.default_rng(4), 0.3, batch=2)
    assert torch.allclose(colour_jitter_normalised((x - mean) / std, p), (colour_jitter(x, p) - mean) / std, atol=1e-5)


def test_modality_dropout_drops_one_stream_at_most():
    drop_rgb, drop_flow = draw_modality_dropout(2000, 0.5, generator=torch.Generator().manual_seed(0))
    assert not (drop_rgb & drop_flow).any()
    assert 0.2 < drop_rgb.float().mean() < 0.3 and 0.2 < drop_flow.float().mean() < 0.3
    rgb, flow = torch.ones(2000, 6, 2, 2), torch.ones(2000, 4, 2, 2)
    r, f = modality_dropout(rgb, flow, drop_rgb, drop_flow)
    assert torch.equal(r.flatten(1).amax(1) == 0, drop_rgb) and torch.equal(f.flatten(1).amax(1) == 0, drop_flow)
    none = draw_modality_dropout(50, 0.0)
    assert not none[0].any() and not none[1].any()
    only_rgb = draw_modality_dropout(2000, 0.5, rgb_share=1.0, generator=torch.Generator().manual_seed(0))
    assert not only_rgb[1].any() and 0.45 < only_rgb[0].float().mean() < 0.55
    # the default share draws exactly what the draw did before it had one
    assert all(torch.equal(a, b) for a, b in zip(draw_modality_dropout(
        2000, 0.5, rgb_share=0.5, generator=torch.Generator().manual_seed(0)), (drop_rgb, drop_flow)))


@pytest.mark.parametrize("num_frames", [60, 146, 20])
def test_random_offset_keeps_the_whole_clip_in_the_video(num_frames):
    rng = np.random.default_rng(0)
    offsets = {random_offset(rng, num_frames, frames=10, interval=4) for _ in range(400)}
    last_start = max(1, num_frames - 1 - 36)
    assert min(offsets) == 1 and max(offsets) == last_start
    for o in offsets:
        idx = clip_indices(num_frames, frames=10, interval=4, offset=o)
        assert idx[-1] <= num_frames - 1 and (num_frames < 38 or np.all(np.diff(idx) == 4))


def test_train_clips_repeat_with_their_own_draws_and_reproduce(tiny_dataset, tiny_cache):
    entries = read_split(tiny_dataset / "ucfTrainTestlist", 1).train[:3]
    spec = ClipSpec(frames=3, interval=2, input_size=24, temporal_jitter=True)
    clips = TrainClips(tiny_cache, entries, spec, seed=1, repeats=4)
    assert len(clips) == 12 and clips.video(4) == 1
    assert len({tuple(clips.clip_frames(i)) for i in (1, 4, 7, 10)}) > 1  # one video, clips of its own
    b = clips[4]
    again = TrainClips(tiny_cache, entries, spec, seed=1, repeats=4)[4]
    assert torch.equal(again[0], b[0]) and torch.equal(again[1], b[1]) and again[2] == b[2]
    plain = TrainClips(tiny_cache, entries, ClipSpec(frames=3, interval=2, input_size=24), seed=1)
    assert len(plain) == 3 and plain.clip_frames(0) == [5, 7, 9]  # the schedule's first offset (5)


def test_in_memory_frames_give_the_same_clips(tiny_dataset, tiny_cache):
    entries = read_split(tiny_dataset / "ucfTrainTestlist", 1).train[:2]
    spec = ClipSpec(frames=3, interval=2, input_size=24, temporal_jitter=True)
    disk = TrainClips(tiny_cache, entries, spec, repeats=3)
    memory = TrainClips(tiny_cache, entries, spec, repeats=3, in_memory=True)
    for i in range(6):
        a, b = disk[i], memory[i]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert memory.frames and len(memory.frames) <= 2 * 15
