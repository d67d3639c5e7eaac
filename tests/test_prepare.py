import json

import cv2
import numpy as np
import pytest

from dualstream.cli import main
from dualstream.prepare.common import FAILURES, PrepareOptions
from dualstream.cache import MANIFEST
from dualstream.prepare.run import prepare_dataset, prepare_video
from dualstream.flow import dequantize_flow
from dualstream.video import write_video

from .conftest import TINY, shared_data


def _files(folder, prefix):
    return sorted(p.name for p in folder.glob(f"{prefix}*.jpg"))


def test_rawframes_layout_and_manifest(tiny_cache):
    folder = tiny_cache / "Grow" / "v_Grow_g01_c01"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["num_frames"] == TINY.frames and manifest["num_flows"] == TINY.frames - 1
    assert manifest["flow_method"] == "dis" and manifest["flow_bound"] == 20.0
    assert _files(folder, "img_") == [f"img_{i:05d}.jpg" for i in range(1, TINY.frames + 1)]
    assert _files(folder, "flow_x_") == [f"flow_x_{i:05d}.jpg" for i in range(1, TINY.frames)]
    assert len(_files(folder, "flow_y_")) == TINY.frames - 1
    assert cv2.imread(str(folder / "img_00001.jpg")).shape == (TINY.size, TINY.size, 3)


def test_flow_of_a_moving_pattern_points_the_right_way(tmp_path):
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (64, 96), dtype=np.uint8), (5, 5), 0)
    frames = np.stack([np.roll(base, -2 * t, axis=0) for t in range(6)])  # content moves up 2 px/frame
    src = tmp_path / "up.avi"
    write_video(src, np.repeat(frames[..., None], 3, axis=3))
    prepare_video(src, tmp_path / "out", PrepareOptions(short_side=0))
    fy = dequantize_flow(cv2.imread(str(tmp_path / "out" / "flow_y_00002.jpg"), cv2.IMREAD_GRAYSCALE))
    fx = dequantize_flow(cv2.imread(str(tmp_path / "out" / "flow_x_00002.jpg"), cv2.IMREAD_GRAYSCALE))
    inner = (slice(8, -8), slice(8, -8))
    assert np.median(fy[inner]) == pytest.approx(-2.0, abs=0.35)
    assert abs(np.median(fx[inner])) < 0.35


def test_rerun_skips_finished_and_cleans_interrupted(tiny_dataset, tmp_path):
    cache = tmp_path / "cache"
    opts = PrepareOptions(short_side=0)
    first = prepare_dataset(tiny_dataset / "videos", cache, opts, workers=1, progress=False)
    assert first.prepared == 12 and first.skipped == 0
    # simulate a run killed while writing one video: its folder is gone, a temp folder is left
    victim = cache / "Grow" / "v_Grow_g01_c01"
    stale = victim.parent / ".v_Grow_g01_c01.tmp-host-123"
    victim.rename(stale)
    (stale / MANIFEST).unlink()
    again = prepare_dataset(tiny_dataset / "videos", cache, opts, workers=1, progress=False)
    assert (again.prepared, again.skipped, again.failed) == (1, 11, 0)
    assert not stale.exists() and (victim / MANIFEST).is_file()
    assert len(_files(victim, "img_")) == TINY.frames


def test_bad_videos_listed_in_failures_and_run_goes_on(tiny_dataset, tmp_path, capsys):
    videos = tmp_path / "videos"
    good = tiny_dataset / "videos" / "MoveUp" / "v_MoveUp_g01_c01.avi"
    (videos / "MoveUp").mkdir(parents=True)
    (videos / "MoveUp" / good.name).write_bytes(good.read_bytes())
    (videos / "Bad").mkdir()
    (videos / "Bad" / "empty.avi").write_bytes(b"")
    (videos / "Bad" / "text.avi").write_text("hello, I am not a video\n" * 100)
    data = good.read_bytes()
    (videos / "Bad" / "truncated.avi").write_bytes(data[: len(data) // 2])
    cache = tmp_path / "cache"
    code = main(["-q", "prepare", "--videos", str(videos), "--out", str(cache), "--workers", "2"])
    assert code == 0
    lines = (cache / FAILURES).read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["Bad/empty.avi", "Bad/text.avi", "Bad/truncated.avi"]
    assert "empty" in lines[0] and "truncated" in lines[2]
    assert (cache / "MoveUp" / "v_MoveUp_g01_c01" / MANIFEST).is_file()
    assert not any(p.name.startswith(".") for p in (cache / "Bad").glob("*")) if (cache / "Bad").exists() else True
    out = capsys.readouterr().out
    assert "prepared 1, skipped 0 (already done), failed 3" in out


def test_nothing_prepared_is_a_failure_exit(tmp_path):
    (tmp_path / "v" / "X").mkdir(parents=True)
    (tmp_path / "v" / "X" / "a.avi").write_bytes(b"")
    assert main(["-q", "prepare", "--videos", str(tmp_path / "v"), "--out", str(tmp_path / "c"), "--workers", "1"]) == 1


def test_real_ucf101_clips(tmp_path):
    videos = shared_data("ucf101", "videos")
    summary = prepare_dataset(videos, tmp_path / "c", PrepareOptions(), workers=1, progress=False)
    assert summary.prepared == 2 and summary.failed == 0
    for key, n in [("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01", 164), ("BaseballPitch/v_BaseballPitch_g01_c01", 107)]:
        folder = tmp_path / "c" / key
        assert len(_files(folder, "img_")) == n
        assert len(_files(folder, "flow_x_")) == len(_files(folder, "flow_y_")) == n - 1
        assert cv2.imread(str(folder / "img_00001.jpg")).shape == (128, 171, 3)


def test_prepare_with_pytorch_tvl1_and_bad_flow_options(tiny_dataset, tmp_path, capsys):
    videos = tmp_path / "videos" / "Grow"
    videos.mkdir(parents=True)
    src = tiny_dataset / "videos" / "Grow" / "v_Grow_g01_c01.avi"
    (videos / src.name).write_bytes(src.read_bytes())
    cache = tmp_path / "cache"
    assert main(["-q", "prepare", "--videos", str(tmp_path / "videos"), "--out", str(cache), "--flow", "tvl1",
                 "--short-side", "0", "--workers", "1"]) == 0
    manifest = json.loads((cache / "Grow" / "v_Grow_g01_c01" / MANIFEST).read_text())
    assert manifest["flow_method"] == "tvl1" and manifest["num_flows"] == TINY.frames - 1
    assert main(["-q", "prepare", "--videos", str(tmp_path / "videos"), "--out", str(cache), "--flow", "nope"]) == 2
    assert "unknown flow method 'nope'" in capsys.readouterr().err
    assert main(["-q", "prepare", "--videos", str(tmp_path / "videos"), "--out", str(cache), "--flow", "dis",
                 "--device", "cuda"]) == 2
    assert "needs a PyTorch flow method" in capsys.readouterr().err
