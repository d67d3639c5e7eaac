import pytest

from dualstream.data.sampling import clip_indices, eval_offsets, offset_for_epoch


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


def test_offset_schedule_and_eval_offsets():
    assert [offset_for_epoch(e, offsets=[5, 8], period=100) for e in (0, 99, 100, 199, 200)] == [5, 5, 8, 8, 5]
    assert eval_offsets(10, 5) == [1, 3, 5, 8, 10]  # round half to even
    assert eval_offsets(10, 1) == [5]
