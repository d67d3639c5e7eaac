import pytest

import numpy as np

from dualstream.data.sampling import (clip_indices, eval_offsets, eval_phases, eval_positions, offset_for_epoch,
                                     random_spread_indices, spread_indices, view_indices)


def test_paper_schedule_f5_to_f95_then_f8():
    assert clip_indices(150, frames=10, interval=10, offset=5) == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    assert clip_indices(150, frames=10, interval=10, offset=8)[:3] == [8, 18, 28]


def test_short_video_shrinks_the_interval():
    idx = clip_indices(48, frames=10, interval=10, offset=5)
    assert idx == [5, 9, 13, 17, 21, 25, 29, 33, 37, 41]
    assert max(idx) <= 47  # every frame has a forward flow


def test_very_short_video_starts_earlier_then_repeats():
    assert clip_indices(12, frames=10, interval=10, offset=5) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert clip_indices(5, frames=10, interval=10, offset=5) == [1, 2, 3, 4, 4, 4, 4, 4, 4, 4]
    with pytest.raises(ValueError):
        clip_indices(1)


def test_the_paper_clip_is_the_default():
    assert clip_indices(150) == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]  # 10 frames, interval 10, from f5


@pytest.mark.parametrize("num_frames, expected", [
    (105, [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]),  # room for interval 11: the interval never grows
    (96, [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]),  # usable 1..95: f95 is the last that fits
    (95, [5, 14, 23, 32, 41, 50, 59, 68, 77, 86]),  # one frame short: interval (94 - 5) // 9 = 9
    (48, [5, 9, 13, 17, 21, 25, 29, 33, 37, 41]),  # (47 - 5) // 9 = 4
    (15, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]),  # interval 1 from f5 just fits
    (14, [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]),  # interval 1 does not fit from f5: the clip starts earlier
    (11, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),  # exactly ten usable frames
    (10, [1, 2, 3, 4, 5, 6, 7, 8, 9, 9]),  # nine: the last repeats
])
def test_the_interval_shrinks_only_as_far_as_the_video_needs(num_frames, expected):
    assert clip_indices(num_frames, frames=10, interval=10, offset=5) == expected


def test_one_and_two_frame_clips_and_the_argument_checks():
    assert clip_indices(5, frames=1, interval=10, offset=3) == [3]
    assert clip_indices(5, frames=1, interval=10, offset=8) == [4]  # past the end: the last usable frame
    assert clip_indices(20, frames=2, interval=10, offset=19) == [18, 19]  # starts earlier to keep two frames
    assert clip_indices(3, frames=1, interval=1, offset=1) == [1]  # 1 is allowed for each, 2 frames is enough
    assert clip_indices(2, frames=3) == [1, 1, 1]
    for frames, interval, offset in ((0, 10, 5), (10, 0, 5), (10, 10, 0), (-1, 10, 5)):
        with pytest.raises(ValueError, match=f"must be >= 1, got {frames}, {interval}, {offset}$"):
            clip_indices(50, frames=frames, interval=interval, offset=offset)
    for n in (1, 0):
        with pytest.raises(ValueError, match=f"a clip needs at least 2 frames, the video has {n}$"):
            clip_indices(n)


def test_offset_schedule_and_eval_offsets_edges():
    assert [offset_for_epoch(e, offsets=[5, 8, 2], period=1) for e in range(4)] == [5, 8, 2, 5]
    for offsets, period in (([], 10), ([5], 0), ([], 0)):
        with pytest.raises(ValueError, match="offsets must be non-empty and period >= 1"):
            offset_for_epoch(0, offsets=offsets, period=period)
    # one clip sits mid-interval (f5 of 9 and of 10, f1 of 1); offsets that round alike are kept once
    assert (eval_offsets(9, 1), eval_offsets(10, 1), eval_offsets(1, 1)) == ([5], [5], [1])
    assert eval_offsets(4, 3) == [1, 3, 4]
    assert eval_offsets(2, 5) == [1, 2]
    for bad in (eval_offsets, eval_phases):
        with pytest.raises(ValueError, match="clips must be >= 1, got 0"):
            bad(10, 0) if bad is eval_offsets else bad(0)


def test_offset_schedule_and_eval_offsets():
    assert [offset_for_epoch(e, offsets=[5, 8], period=100) for e in (0, 99, 100, 199, 200)] == [5, 5, 8, 8, 5]
    assert eval_offsets(10, 5) == [1, 3, 5, 8, 10]  # round half to even
    assert eval_offsets(10, 1) == [5]


def test_spread_takes_one_frame_per_equal_segment_over_the_whole_video():
    # 91 frames: usable 1..90, ten segments of 9 frames, centres at 1 + 4.5 + 9k
    assert spread_indices(91, frames=10) == [5, 14, 23, 32, 41, 50, 59, 68, 77, 86]
    assert spread_indices(91, frames=10, phase=0.0) == [1, 10, 19, 28, 37, 46, 55, 64, 73, 82]
    assert spread_indices(91, frames=10, phase=0.999) == [9, 18, 27, 36, 45, 54, 63, 72, 81, 90]
    # the same clip covers a 20-frame and a 200-frame video, the whole of each
    for n in (20, 75, 200):
        idx = spread_indices(n, frames=10)
        assert idx == sorted(idx) and idx[0] <= n // 10 and idx[-1] >= n - 1 - n // 10 and idx[-1] <= n - 1


def test_spread_of_a_short_video_repeats_in_order_and_bad_arguments_raise():
    assert spread_indices(5, frames=10) == [1, 1, 2, 2, 2, 3, 3, 4, 4, 4]
    assert spread_indices(2, frames=3) == [1, 1, 1]
    for bad in ({"phase": 1.0}, {"phase": [0.5] * 9}, {"start": 0.5, "span": 0.6}, {"span": 0.0}):
        with pytest.raises(ValueError):
            spread_indices(50, frames=10, **bad)
    with pytest.raises(ValueError):
        spread_indices(1, frames=10)


def test_spread_edges_and_argument_checks():
    assert spread_indices(11, frames=1) == [6]  # the centre of usable 1..10
    assert spread_indices(11, frames=2, phase=0) == [1, 6]  # an int phase is one phase for all segments
    assert spread_indices(11, frames=2, phase=[0.0, 0.9]) == [1, 10]  # one phase per segment
    assert spread_indices(11, frames=2, span=0.2) == [1, 2]  # the first fifth: segments of one frame
    assert spread_indices(11, frames=2, start=0.5, span=0.2) == [6, 7]  # a fifth from the middle
    assert spread_indices(11, frames=2, start=0, span=1) == [3, 8]  # ints are fractions too
    assert len(spread_indices(1000, frames=300, phase=[0.5] * 300)) == 300
    for bad, message in (({"phase": -0.1}, "phase must be in"), ({"phase": 1.5}, "phase must be in"),
                         ({"phase": [0.5, 1.0]}, "phase must be in"), ({"phase": [0.5] * 3}, "phase must be in"),
                         ({"start": -0.1}, "start and span must lie in"),
                         ({"start": 0.5, "span": -0.2}, "start and span must lie in"),
                         ({"start": 0.9, "span": 0.2}, "start and span must lie in")):
        with pytest.raises(ValueError, match=message):
            spread_indices(11, frames=2, **bad)
    with pytest.raises(ValueError, match="frames must be >= 1, got 0"):
        spread_indices(11, frames=0)
    with pytest.raises(ValueError, match="a clip needs at least 2 frames, the video has 1"):
        spread_indices(1, frames=2)


def test_a_whole_video_training_clip_spends_its_draws_on_the_phases_only():
    # the draw order is part of resuming exactly: with span_min >= 1 the generator gives the phases only
    for seed in range(5):
        phases = np.random.default_rng(seed).random(6).tolist()
        for span_min in (1.0, 1.5):
            assert random_spread_indices(np.random.default_rng(seed), 121, frames=6, span_min=span_min) == \
                spread_indices(121, frames=6, phase=phases)


def test_spread_part_of_the_video_and_eval_phases():
    # the second half of 101 frames (usable 1..100): segments of 5 frames from frame 51
    assert spread_indices(101, frames=10, start=0.5, span=0.5) == [53, 58, 63, 68, 73, 78, 83, 88, 93, 98]
    assert eval_phases(4) == [0.125, 0.375, 0.625, 0.875]
    assert eval_phases(1) == [0.5]
    assert eval_positions("spread", interval=4, clips=3) == eval_phases(3)
    assert eval_positions("interval", interval=10, clips=5) == eval_offsets(10, 5)
    spread = "".join(["spr", "ead"])  # as read from a config file: equal to, not the same object as, "spread"
    assert eval_positions(spread, interval=4, clips=3) == eval_phases(3)
    assert view_indices(91, 0.5, sampling=spread, frames=10, interval=7) == spread_indices(91, frames=10)
    assert view_indices(91, 0.5, sampling="spread", frames=10, interval=7) == spread_indices(91, frames=10)
    assert view_indices(91, 3, sampling="interval", frames=10, interval=7) == clip_indices(91, frames=10, interval=7,
                                                                                           offset=3)


def test_random_spread_clips_jitter_within_segments_and_shrink_for_speed():
    n, frames = 121, 6  # usable 1..120: segments of 20 frames
    seen = set()
    for seed in range(50):
        idx = random_spread_indices(np.random.default_rng(seed), n, frames=frames)
        assert [(i - 1) // 20 for i in idx] == list(range(frames))  # one frame in each segment, in order
        seen.add(tuple(idx))
        assert idx == random_spread_indices(np.random.default_rng(seed), n, frames=frames)  # seeded
    assert len(seen) == 50
    assert random_spread_indices(np.random.default_rng(0), n, frames=frames, jitter=False) == spread_indices(n, frames=frames)
    spans, firsts = [], []
    for seed in range(50):
        idx = random_spread_indices(np.random.default_rng(seed), n, frames=frames, jitter=False, span_min=0.5)
        assert idx == sorted(idx) and 1 <= idx[0] and idx[-1] <= 120
        spans.append(idx[-1] - idx[0])
        firsts.append(idx[0])
    # whole video: 100 frames between the first and last centre; at half of it down to 50
    assert max(spans) <= 100 and min(spans) < 60
    assert min(firsts) >= 6 and max(firsts) > 30  # the part starts anywhere (the whole video's first centre: 11)


def test_train_and_eval_clips_of_the_datasets_spread_over_the_video(tiny_dataset, tiny_cache):
    from dualstream.cache import load_manifest
    from dualstream.data.dataset import EvalViews, TrainClips
    from dualstream.data.sampling import ClipSpec
    from dualstream.data.ucf101 import read_split

    entries = read_split(tiny_dataset / "ucfTrainTestlist", 1).train[:3]
    spec = ClipSpec(frames=4, interval=3, input_size=32, sampling="spread", temporal_jitter=True)
    train = TrainClips(tiny_cache, entries, spec, seed=0)
    for i in range(3):
        n = load_manifest(tiny_cache / entries[i].key)["num_frames"]
        idx = train.clip_frames(i)
        seg = (n - 1) / 4
        assert [int((j - 1) // seg) for j in idx] == [0, 1, 2, 3]
        assert idx == train.clip_frames(i)  # the same draw for the same (seed, epoch, item)
    views = EvalViews(tiny_cache, entries, spec, offsets=eval_phases(2))
    n = load_manifest(tiny_cache / entries[0].key)["num_frames"]
    assert views.view_frames(0, 1) == spread_indices(n, frames=4, phase=0.75)
    rgb, flow, _, _ = views[1]
    assert tuple(rgb.shape) == (12, 32, 32) and tuple(flow.shape) == (8, 32, 32)


def test_one_clip_spec_from_the_config_into_model_json_and_back():
    from dataclasses import replace

    from dualstream.config import DataConfig
    from dualstream.data.sampling import ClipSpec

    d = DataConfig(frames=3, interval=2, offsets=[1, 4], eval_clips=2, input_size=32, flow_bound=3.0, sampling="spread",
                   span_min=0.5, temporal_jitter=True, crop_scale_min=0.7, flip=False, offset_period=7)
    spec = ClipSpec.from_config(d, flow_method="tvl1", short_side=64, window=40)
    assert (spec.offsets, spec.sampling, spec.window, spec.span_min, spec.flip) == ((1, 4), "spread", 40, 0.5, False)
    saved = spec.to_model_json()
    assert saved == {"frames": 3, "interval": 2, "offsets": [1, 4], "input_size": 32, "flow_bound": 3.0,
                     "flow_method": "tvl1", "short_side": 64, "eval_clips": 2, "sampling": "spread", "window": 40}
    # what inference needs comes back; the training-only draws are not recorded
    assert ClipSpec.from_model_json(saved) == replace(spec, span_min=1.0, temporal_jitter=False, crop_scale_min=0.8,
                                                      flip=True, offset_period=100)
    plain = ClipSpec.from_config(DataConfig(frames=3, interval=2), flow_method="dis", short_side=0).to_model_json()
    assert "sampling" not in plain and "window" not in plain and plain["short_side"] == 0
    old = ClipSpec.from_model_json({"frames": 4, "interval": 3, "input_size": 16, "flow_method": "unknown"})
    assert (old.flow_method, old.short_side, old.flow_bound, old.sampling) == ("dis", 128, 20.0, "interval")




def test_clip_spec_defaults_are_the_papers_and_the_configs():
    import dataclasses

    from dualstream.config import DataConfig
    from dualstream.data.sampling import ClipSpec

    spec = ClipSpec()
    assert dataclasses.asdict(spec) == {
        "frames": 10, "interval": 10, "offsets": (5, 8), "offset_period": 100, "eval_clips": 5, "sampling": "interval",
        "span_min": 1.0, "window": 0, "temporal_jitter": False, "input_size": 224, "crop_scale_min": 0.8, "flip": True,
        "flow_bound": 20.0, "flow_method": "dis", "short_side": 128}
    assert ClipSpec.from_config(DataConfig()) == spec  # one description: the config's defaults are the spec's
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.frames = 3  # type: ignore[misc]


def test_a_streams_clip_for_each_sampling():
    from dualstream.data.sampling import ClipSpec

    spread = "".join(["spr", "ead"])  # as read from a file: equal to, not the same object as, the literal
    paper = ClipSpec(frames=4, interval=3)
    assert (paper.span, paper.step, paper.window_indices()) == (10, 3, [1, 4, 7, 10])
    wide = ClipSpec(frames=4, interval=3, sampling=spread, window=21)  # 20 frames with their flow
    assert (wide.span, wide.step, wide.window_indices()) == (20, 5, spread_indices(21, frames=4))
    assert wide.window_indices() == [3, 8, 13, 18]
    assert ClipSpec(frames=4, sampling=spread, window=4).step == 1  # a segment shorter than a frame: every frame
    assert wide.to_model_json()["sampling"] == "spread" and wide.to_model_json()["window"] == 21
    assert ClipSpec.from_model_json({"frames": 4, "input_size": 8, "flow_method": "".join(["unk", "nown"])}).flow_method \
        == "dis"


def test_the_frames_an_only_sampled_cache_keeps():
    from dualstream.data.sampling import ClipSpec

    spec = ClipSpec(frames=3, interval=4, offsets=(2, 6), eval_clips=3)
    # training offsets 2, 6; evaluation offsets for 1 clip (2) and for 3 clips (1, 3, 4): within one interval
    assert spec.all_offsets == [1, 2, 3, 4, 6]
    assert spec.frames_needed == 6 + 2 * 4 + 1 == 15
    assert spec.frames_for(40) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14]
    assert spec.frames_for(8) == [1, 2, 3, 4, 5, 6, 7]  # a short video: clips shrink and start earlier
    assert spec.schedule_dict() == {"frames": 3, "interval": 4, "offsets": [2, 6], "eval_clips": 3}
