import numpy as np
import pytest

from dualstream.video import VideoReadError, read_video, video_info, write_video

from .conftest import shared_data


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
