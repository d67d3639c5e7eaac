import numpy as np
import pytest

from dualstream.video import (BudgetExceeded, DecodeBudget, FrameLimits, VideoReadError, iter_frames,
                              video_info, write_video)

from .conftest import read_video, shared_data


def _frames(t=20, h=40, w=56, seed=0):
    """Smooth moving gradients with a different level per channel (so RGB/BGR mix-ups show)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.empty((t, h, w, 3), np.uint8)
    for i in range(t):
        base = 60 * np.sin((xx + 2 * i) / 9.0) + 40 * np.cos((yy + rng.uniform(0, 3)) / 7.0)
        for c, level in enumerate((180, 110, 50)):
            frames[i, ..., c] = np.clip(level + 0.5 * base, 0, 255)
    return frames


def test_roundtrip_shape_dtype(tmp_path):
    path = tmp_path / "v.avi"
    frames = _frames()
    write_video(path, frames)
    out = read_video(path)
    assert out.shape == frames.shape and out.dtype == np.uint8
    # MJPEG is lossy, but the decoded frames must be the written ones, channels in RGB order
    assert np.abs(out.astype(int) - frames.astype(int)).mean() < 4
    assert np.allclose(out.mean(axis=(0, 1, 2)), frames.mean(axis=(0, 1, 2)), atol=3)


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"this is not a video\n" * 50, "not a video")],
)
def test_bad_files_raise_naming_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.avi"
    path.write_bytes(content)
    with pytest.raises(VideoReadError) as info:
        read_video(path)
    assert str(path) in str(info.value) and reason in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(VideoReadError, match="file not found"):
        read_video(tmp_path / "nope.avi")


def test_truncated_video_is_an_error(tmp_path):
    path = tmp_path / "v.avi"
    write_video(path, _frames(t=40))
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="truncated"):
        read_video(cut)


def test_real_ucf101_clip_counts_decoded_frames():
    path = shared_data("ucf101", "videos", "BaseballPitch", "v_BaseballPitch_g01_c01.avi")
    frames = read_video(path)
    assert frames.shape == (107, 240, 320, 3)
    assert video_info(path)["width"] == 320


def test_frame_limits_refuse_thin_and_huge_frames_before_handing_them_on(tmp_path, monkeypatch):
    import cv2

    thin = tmp_path / "thin.avi"
    write_video(thin, np.zeros((3, 2, 500, 3), np.uint8))
    with pytest.raises(VideoReadError, match=r"500x2 pixels have an aspect ratio of 250:1, over the limit of 10:1"):
        next(iter_frames(thin, limits=FrameLimits()))
    assert next(iter_frames(thin)).shape == (2, 500, 3)  # without limits (prepare) the frames come through
    ok = tmp_path / "ok.avi"
    write_video(ok, _frames(t=3))
    with pytest.raises(VideoReadError, match=r"56x40 pixels are over the limit of 0.0 megapixels per frame"):
        next(iter_frames(ok, limits=FrameLimits(max_pixels=1000)))
    # a container that declares no size: each decoded frame is still checked
    real_get = cv2.VideoCapture.get
    monkeypatch.setattr(cv2.VideoCapture, "get", lambda self, prop: 0 if prop in (3, 4) else real_get(self, prop))
    with pytest.raises(VideoReadError, match="aspect ratio of 250:1"):
        next(iter_frames(thin, limits=FrameLimits()))


def test_a_decode_budget_is_spent_across_decodes_and_stops_at_the_frame_over_it(tmp_path, monkeypatch):
    import cv2

    path = tmp_path / "v.avi"
    write_video(path, _frames(t=20))
    reads = []
    real_read = cv2.VideoCapture.read
    monkeypatch.setattr(cv2.VideoCapture, "read", lambda self: reads.append(1) or real_read(self))
    limits = FrameLimits(budget=DecodeBudget(max_frames=25, max_pixels=10**9, seconds=60))
    assert len(list(iter_frames(path, limits=limits))) == 20
    handed = []
    with pytest.raises(BudgetExceeded, match=r"v.avi: more than 25 frames to decode, the limit per request$"):
        handed.extend(iter_frames(path, limits=limits))  # the same budget: 5 frames left
    assert (len(handed), len(reads), limits.budget.frames) == (5, 21 + 6, 26)
    pixels = FrameLimits(budget=DecodeBudget(max_frames=100, max_pixels=3 * 56 * 40, seconds=60))
    with pytest.raises(BudgetExceeded, match=r"more than 0.00672 megapixels to decode \(frames of 56x40\)"):
        list(iter_frames(path, limits=pixels))
    assert pixels.budget.frames == 4
    late = FrameLimits(budget=DecodeBudget(max_frames=100, max_pixels=10**9, seconds=0.5))
    late.budget.deadline -= 1  # made a second ago
    with pytest.raises(BudgetExceeded, match=r"not done within 0.5 s, the limit per request \(stopped at frame 1\)$"):
        list(iter_frames(path, limits=late))
    restarted = late.budget.restarted()
    assert (restarted.frames, restarted.pixels, restarted.max_frames) == (0, 0, 100) and restarted.remaining() > 0.4


def test_predict_refuses_a_thin_video_in_one_line(tmp_path, capsys):
    from dualstream.cli import main

    from .test_predict import make_package

    make_package(tmp_path / "pkg")
    thin = tmp_path / "thin.avi"
    write_video(thin, np.zeros((30, 2, 500, 3), np.uint8))
    assert main(["predict", str(thin), "--model", str(tmp_path / "pkg")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "aspect ratio of 250:1" in err
