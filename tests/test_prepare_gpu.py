"""The GPU preparation pipeline (one flow process fed by CPU workers), run on the CPU against the per-video path."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from dualstream.prepare import gpu as prepare_gpu
from dualstream.cache import MANIFEST
from dualstream.prepare.common import PrepareOptions, PrepareSummary
from dualstream.video import find_videos
from dualstream.prepare.run import prepare_dataset, video_key
from dualstream.prepare.gpu import GPUFlowRunner
from dualstream.data.sampling import ClipSpec


def _todo(videos: Path, cache: Path, rels: list[str], opts: PrepareOptions) -> list:
    return [(rel, str(videos / rel), str(cache / video_key(rel)), opts) for rel in rels]


def _same_folders(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    ma, mb = (json.loads((f / MANIFEST).read_text()) for f in (a, b))
    assert {k: v for k, v in ma.items() if k != "bytes"} == {k: v for k, v in mb.items() if k != "bytes"}
    for name in names:
        if name.startswith("img_"):
            assert (a / name).read_bytes() == (b / name).read_bytes()
        elif name.startswith("flow_"):
            x, y = (cv2.imread(str(f / name), cv2.IMREAD_GRAYSCALE).astype(int) for f in (a, b))
            # the batch differs (pairs of other videos), which may move a value across a rounding boundary
            assert np.abs(x - y).max() <= 1 and (x != y).mean() < 0.01


def test_pipeline_on_cpu_writes_what_the_per_video_path_writes(tiny_dataset, tmp_path, monkeypatch):
    videos = tiny_dataset / "videos"
    rels = find_videos(videos)[:4]
    opts = PrepareOptions(flow="brox", short_side=0)
    ref = prepare_dataset(videos, tmp_path / "ref", opts, workers=1, videos=rels, progress=False)
    assert ref.prepared == 4
    # prepare_dataset with a non-CPU device takes the GPU pipeline; here its one "GPU" is the CPU
    gpu_opts = PrepareOptions(flow="brox", short_side=0)
    object.__setattr__(gpu_opts, "device", "cuda")  # past the CUDA check, which this machine would fail
    monkeypatch.setattr(prepare_gpu, "flow_devices", lambda device: ["cpu"])
    monkeypatch.setattr(prepare_gpu, "DEFAULT_BATCH", 7)  # one batch holds pairs of two videos, one video spans two
    new = prepare_dataset(videos, tmp_path / "new", gpu_opts, workers=1, videos=rels, progress=False)
    assert (new.prepared, new.failed, new.frames, new.pairs) == (4, 0, ref.frames, ref.frames - 4)
    for rel in rels:
        _same_folders(tmp_path / "ref" / video_key(rel), tmp_path / "new" / video_key(rel))
    line = new.line(tmp_path / "new")
    assert "pairs/s" in line and "UCF-101's 2.5 M pairs would take" in line and "\n" not in line
    assert not list((tmp_path / "new").glob("*/.*tmp-*"))


def test_pipeline_sampled_mode_and_a_broken_video(tiny_dataset, tmp_path):
    videos = tmp_path / "videos"
    (videos / "A").mkdir(parents=True)
    rels = find_videos(tiny_dataset / "videos")[:2]
    for rel in rels:
        (videos / "A" / Path(rel).name).write_bytes((tiny_dataset / "videos" / rel).read_bytes())
    (videos / "A" / "broken.avi").write_bytes(b"not a video")
    opts = PrepareOptions(flow="tvl1", short_side=0, schedule=ClipSpec(frames=2, interval=3, offsets=(1, 2),
                                                                             eval_clips=1))
    listed = find_videos(videos)
    runner = GPUFlowRunner(opts, devices=["cpu"], batch=64, params={"compile": False})
    results = list(runner(_todo(videos, tmp_path / "cache", listed, opts), 1))
    assert sorted((rel, error is None) for rel, error, _, _ in results) == [
        ("A/broken.avi", False), (f"A/{Path(rels[0]).name}", True), (f"A/{Path(rels[1]).name}", True)]
    summary = runner.summary(PrepareSummary(prepared=2, seconds=1.0))
    assert summary.pairs == sum(len(json.loads((tmp_path / "cache" / video_key(rel) / MANIFEST).read_text())["frames"])
                                for rel in listed[1:])
    assert not (tmp_path / "cache" / "A" / "broken").exists() and not list((tmp_path / "cache" / "A").glob(".*"))
    for rel in listed[1:]:
        folder = tmp_path / "cache" / video_key(rel)
        manifest = json.loads((folder / MANIFEST).read_text())
        kept = manifest["frames"]
        assert kept != "all" and manifest["num_flows"] == len(kept) and manifest["flow_method"] == "tvl1"
        assert sorted(p.name for p in folder.glob("img_*")) == [f"img_{i:05d}.jpg" for i in kept]
        assert sorted(p.name for p in folder.glob("flow_x_*")) == [f"flow_x_{i:05d}.jpg" for i in kept]
