"""Preparation at scale: shards, SIGKILL + rerun, the sampled-frames mode, awkward videos, CLI errors."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dualstream.cli import main
from dualstream.cache import load_manifest, snap_to_available
from dualstream.data.dataset import EvalViews, TrainClips
from dualstream.data.sampling import ClipSpec
from dualstream.prepare.common import FAILURES, PrepareError, PrepareOptions
from dualstream.cache import MANIFEST
from dualstream.prepare.run import in_shard, prepare_dataset
from dualstream.data.sampling import eval_offsets
from dualstream.data.ucf101 import VideoEntry
from dualstream.video import write_video

from .conftest import TINY

SRC = Path(__file__).resolve().parents[1] / "src"


def _tree(root):
    """Every file under root (hidden ones too) -> its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _moving_video(path, frames, *, size=(48, 64), seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    base = cv2.GaussianBlur(rng.integers(0, 256, (h + 2 * frames, w, 3), dtype=np.uint8), (5, 5), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, np.stack([base[2 * t: 2 * t + h] for t in range(frames)]))


def test_shards_are_disjoint_and_together_equal_one_run(tiny_dataset, tiny_cache, tmp_path):
    cache = tmp_path / "cache"
    opts = PrepareOptions(short_side=0)
    parts = [prepare_dataset(tiny_dataset / "videos", cache, opts, workers=1, shard=(i, 3), progress=False)
             for i in (1, 2, 3)]
    assert [p.prepared for p in parts] == [1, 3, 8] and sum(p.skipped for p in parts) == 0
    assert _tree(cache) == _tree(tiny_cache)
    names = [f"{c}/v_{c}_g01_c{k:02d}.avi" for c in ("A", "B") for k in range(1, 30)]
    assert sorted(sum(([n for n in names if in_shard(n, (i, 4))] for i in range(1, 5)), [])) == sorted(names)


def test_sigkill_then_rerun_gives_the_uninterrupted_cache(tiny_dataset, tiny_cache, tmp_path):
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "dualstream", "-q", "prepare", "--videos", str(tiny_dataset / "videos"),
           "--out", str(cache), "--short-side", "0", "--workers", "2"]
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while proc.poll() is None and not any(cache.glob(f"*/*/{MANIFEST}")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its workers, mid-run
    assert proc.wait() == -signal.SIGKILL
    done = len(list(cache.glob(f"*/*/{MANIFEST}")))
    assert 1 <= done < TINY.classes * TINY.videos_per_class
    assert main(["-q", "prepare", "--videos", str(tiny_dataset / "videos"), "--out", str(cache),
                 "--short-side", "0", "--workers", "2"]) == 0
    assert _tree(cache) == _tree(tiny_cache)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_zombie_owner_does_not_keep_its_temporary_folder(tmp_path):
    """A killed run's worker stays a zombie until reaped (and a container's pid 1 may never reap it):
    its temporary folder must count as stale, or a rerun leaves it in the cache."""
    from dualstream.files import _is_stale, _start_time
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        tmp = tmp_path / f".v_A_g01_c01.tmp-{socket.gethostname()}-{pid}-123"
        tmp.mkdir()
        assert _start_time(pid) is None and _is_stale(tmp)
        assert _start_time(os.getpid()) and not _is_stale(tmp_path / f".x.tmp-{socket.gethostname()}-"
                                                                       f"{os.getpid()}-{_start_time(os.getpid())}")
    finally:
        os.waitpid(pid, 0)


def _paper_frames(offsets, n_frames):
    return sorted({o + 10 * k for o in offsets for k in range(10) if o + 10 * k < n_frames})


def test_only_sampled_keeps_the_schedule_frames_and_loads_the_same_clips(tmp_path):
    videos = tmp_path / "videos"
    _moving_video(videos / "A" / "v_A_g01_c01.avi", 120)
    _moving_video(videos / "A" / "v_A_g02_c01.avi", 5, seed=1)
    dense, sparse = tmp_path / "dense", tmp_path / "sparse"
    prepare_dataset(videos, dense, PrepareOptions(short_side=0), workers=1, progress=False)
    opts = PrepareOptions(short_side=0, schedule=ClipSpec())
    summary = prepare_dataset(videos, sparse, opts, workers=1, progress=False)
    assert (summary.prepared, summary.failed, summary.frames) == (2, 0, 125)

    long_manifest = load_manifest(sparse / "A/v_A_g01_c01")
    expected = _paper_frames([1, 3, 5, 8, 10], 120)  # train offsets 5, 8; eval offsets 5 and 1, 3, 5, 8, 10
    assert len(expected) == 50 and long_manifest["frames"] == expected
    assert long_manifest["num_frames"] == 120 and long_manifest["num_flows"] == 50
    assert long_manifest["schedule"] == {"frames": 10, "interval": 10, "offsets": [5, 8], "eval_clips": 5}
    folder = sparse / "A" / "v_A_g01_c01"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MANIFEST] + [f"{kind}_{i:05d}.jpg" for i in expected for kind in ("img", "flow_x", "flow_y")])
    for name in ("img_00095.jpg", "flow_x_00095.jpg", "flow_y_00008.jpg"):  # the same bytes as a full preparation
        assert (folder / name).read_bytes() == (dense / "A" / "v_A_g01_c01" / name).read_bytes()
    assert load_manifest(sparse / "A/v_A_g02_c01")["frames"] == [1, 2, 3, 4]
    assert load_manifest(dense / "A/v_A_g01_c01")["frames"] == "all"

    entries = [VideoEntry("A/v_A_g01_c01.avi", 0), VideoEntry("A/v_A_g02_c01.avi", 0)]
    spec = ClipSpec(input_size=32)
    for make in (lambda c: TrainClips(c, entries, spec), lambda c: EvalViews(c, entries, spec, offsets=eval_offsets(spec.interval, 5)),
                 lambda c: EvalViews(c, entries, spec, offsets=eval_offsets(spec.interval, 1))):
        a, b = make(dense), make(sparse)
        for k in range(len(a)):
            assert all(np.array_equal(x, y) for x, y in zip(a[k][:2], b[k][:2])), k
    odd = EvalViews(sparse, entries, spec, offsets=eval_offsets(spec.interval, 4))  # a schedule it was not prepared for still loads
    assert odd[1][0].shape == (30, 32, 32)


def test_short_and_huge_videos_are_prepared(tmp_path):
    videos = tmp_path / "videos"
    _moving_video(videos / "A" / "short.avi", 5)
    _moving_video(videos / "A" / "uhd.avi", 2, size=(2160, 3840))
    cache = tmp_path / "cache"
    summary = prepare_dataset(videos, cache, PrepareOptions(short_side=128), workers=2, progress=False)
    assert (summary.prepared, summary.failed) == (2, 0)
    uhd = load_manifest(cache / "A/uhd")
    assert (uhd["num_frames"], uhd["height"], uhd["width"]) == (2, 128, 228)
    assert cv2.imread(str(cache / "A" / "uhd" / "flow_x_00001.jpg"), cv2.IMREAD_GRAYSCALE).shape == (128, 228)
    clip = EvalViews(cache, [VideoEntry("A/short.avi", 0)], ClipSpec(input_size=32), offsets=[5])[0]
    assert clip[0].shape == (30, 32, 32) and clip[1].shape == (20, 32, 32)


def test_summary_line_and_failures_file_per_shard(tiny_dataset, tmp_path, capsys):
    videos = tmp_path / "videos"
    (videos / "Bad").mkdir(parents=True)
    (videos / "Bad" / "zero.avi").write_bytes(b"")
    (videos / "Bad" / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    good = tiny_dataset / "videos" / "Grow" / "v_Grow_g01_c01.avi"
    (videos / "Grow").mkdir()
    (videos / "Grow" / good.name).write_bytes(good.read_bytes())
    cache = tmp_path / "cache"
    assert main(["-q", "prepare", "--videos", str(videos), "--out", str(cache), "--resize", "0", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    size = load_manifest(cache / "Grow/v_Grow_g01_c01")["bytes"]
    assert size == sum(p.stat().st_size for p in (cache / "Grow" / "v_Grow_g01_c01").glob("*.jpg"))
    assert out.startswith(f"prepared 1, skipped 0 (already done), failed 2 (see {cache / FAILURES}); 16 frames in ")
    assert out.rstrip().endswith(f"disk used {size / 1000:.2f} KB")
    assert [x.split("\t")[0] for x in (cache / FAILURES).read_text().splitlines()] == ["Bad/noise.mp4", "Bad/zero.avi"]
    for i in (1, 2):
        main(["-q", "prepare", "--videos", str(videos), "--out", str(cache), "--shard", f"{i}/2", "--workers", "1"])
    shard_files = sorted(p.name for p in cache.glob("failures*.txt"))
    assert shard_files == ["failures-shard-1-of-2.txt", "failures-shard-2-of-2.txt", FAILURES]
    assert sum(len((cache / n).read_text().splitlines()) for n in shard_files[:2]) == 2


@pytest.mark.parametrize("args, message", [
    (["--shard", "0/2"], "--shard 0/2: shards are numbered 1..n, got 0 of 2"),
    (["--shard", "two"], "--shard must look like i/n, e.g. 1/4, got 'two'"),
    (["--workers", "-1"], "--workers must be >= 0 (0: all cores), got -1"),
])
def test_bad_prepare_arguments_are_one_line_errors(tiny_dataset, tmp_path, capsys, args, message):
    code = main(["-q", "prepare", "--videos", str(tiny_dataset / "videos"), "--out", str(tmp_path / "c"), *args])
    assert code == 2
    assert capsys.readouterr().err == f"dualstream prepare: error: {message}\n"


def test_ray_executor_without_ray_is_a_one_line_error(tiny_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if it were not installed
    code = main(["-q", "prepare", "--videos", str(tiny_dataset / "videos"), "--out", str(tmp_path / "c"),
                 "--executor", "ray"])
    assert code == 2 and not (tmp_path / "c").exists()
    assert capsys.readouterr().err == "dualstream prepare: error: --executor ray needs Ray: pip install 'dualstream[ray]'\n"


def test_snap_to_available_picks_the_nearest_kept_frame():
    assert snap_to_available([1, 2, 3, 4, 7, 9, 40], [1, 3, 5, 8, 10]) == [1, 1, 3, 3, 8, 8, 10]
    assert snap_to_available([2, 6], None) == [2, 6]


def test_splits_option_checks_every_listed_video_before_any_work(tiny_dataset, tmp_path, capsys):
    lists = tmp_path / "lists"
    lists.mkdir()
    for f in (tiny_dataset / "ucfTrainTestlist").iterdir():
        (lists / f.name).write_bytes(f.read_bytes())
    with (lists / "testlist01.txt").open("a") as fh:
        fh.write("Grow/v_Grow_g09_c01.avi\r\nGrow/v_Grow_g09_c02.avi\r\n")
    cache = tmp_path / "c"
    code = main(["-q", "prepare", "--videos", str(tiny_dataset / "videos"), "--out", str(cache), "--splits", str(lists)])
    assert code == 2 and not cache.exists()
    assert "2 listed video(s) not found under" in capsys.readouterr().err


def test_only_sampled_takes_the_schedule_from_a_recipe(tiny_dataset, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data:\n  frames: 3\n  interval: 4\n  offsets: [2]\n  eval_clips: 2\n")
    cache = tmp_path / "c"
    assert main(["-q", "prepare", "--videos", str(tiny_dataset / "videos"), "--out", str(cache), "--workers", "1",
                 "--only-sampled", "--config", str(recipe)]) == 0
    manifest = load_manifest(cache / "Grow/v_Grow_g01_c01")
    # offsets: train 2, eval (1 clip) 2, eval (2 clips) 1 and 4 -> frames 1, 2, 4 + 0/4/8
    assert manifest["frames"] == [1, 2, 4, 5, 6, 8, 9, 10, 12] and manifest["num_frames"] == TINY.frames
    assert manifest["schedule"] == {"frames": 3, "interval": 4, "offsets": [2], "eval_clips": 2}


@pytest.mark.slow
def test_ray_executor_prepares_the_same_cache(tiny_dataset, tiny_cache, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    try:
        summary = prepare_dataset(tiny_dataset / "videos", tmp_path / "c", PrepareOptions(short_side=0), workers=2,
                                  executor="ray", progress=False)
    finally:
        ray.shutdown()
    assert (summary.prepared, summary.failed) == (TINY.classes * TINY.videos_per_class, 0)
    assert _tree(tmp_path / "c") == _tree(tiny_cache)


def test_a_worker_that_dies_fails_its_video_not_the_run():
    from dualstream.prepare.pool import WORKER_DIED, run_processes

    from ._jobs import dies_on_b

    todo = [(name, None, None, None) for name in "abcdefg"]
    results = sorted(run_processes(todo, 2, job=dies_on_b))
    assert results == [(n, None, 1, 0) for n in "a"] + [("b", WORKER_DIED, 0, 0)] + [(n, None, 1, 0) for n in "cdefg"]


def test_evaluate_runs_on_an_only_sampled_cache(tmp_path):
    """A run trained and evaluated on an --only-sampled cache: evaluation views snap to the kept frames."""
    videos = tmp_path / "videos"
    for cls, seed in (("A", 0), ("B", 1)):
        for g in (1, 2):
            _moving_video(videos / cls / f"v_{cls}_g{g:02d}_c01.avi", 40, seed=seed + 10 * g)
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "classInd.txt").write_text("1 A\r\n2 B\r\n")
    (splits / "trainlist01.txt").write_text("A/v_A_g02_c01.avi 1\r\nB/v_B_g02_c01.avi 2\r\n")
    (splits / "testlist01.txt").write_text("A/v_A_g01_c01.avi\r\nB/v_B_g01_c01.avi\r\n")
    sched = ["data.frames=4", "data.interval=5", "data.offsets=[2]", "data.eval_clips=2"]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data: {frames: 4, interval: 5, offsets: [2], eval_clips: 2}\n")
    cache = tmp_path / "cache"
    assert main(["-q", "prepare", "--videos", str(videos), "--out", str(cache), "--short-side", "0",
                 "--workers", "1", "--only-sampled", "--config", str(recipe)]) == 0
    assert load_manifest(cache / "A/v_A_g01_c01")["frames"] != "all"
    sets = [f"data.cache={cache}", f"data.splits={splits}", "data.input_size=32", "train.epochs=1",
            "train.batch_size=2", "model.name=early_fusion_small", *sched]
    run = tmp_path / "run"
    assert main(["-q", "train", "--config", str(recipe), "--out", str(run)] + [a for s in sets for a in ("--set", s)]) == 0
    assert main(["-q", "evaluate", "--run", str(run), "--clips", "5", "--crops", "3", "--flip"]) == 0
    assert json.loads((run / "eval.json").read_text())["num_videos"] == 2


@pytest.mark.parametrize("bound", [float("nan"), float("inf"), 0.0, 0.0099, 10_000.5, -1.0])
def test_a_flow_bound_out_of_range_is_refused(bound):
    with pytest.raises(PrepareError, match="--flow-bound must be in"):
        PrepareOptions(bound=bound)
    assert PrepareOptions(bound=0.01).bound == 0.01 and PrepareOptions(bound=10_000).bound == 10_000
