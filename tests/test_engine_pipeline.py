"""The engine on the device pipeline (data.pipeline=device): multi-view evaluation scores the classic
views, in order, also gathered from two ranks; the settings are checked. (Exact resume on every
pipeline: tests/test_engine_resume.py.)"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from dualstream.cli import main
from dualstream.config import ConfigError, demo_config_path, load_config
from dualstream.data.dataset import EvalViews
from dualstream.data.sampling import ClipSpec
from dualstream.data import device as dev
from dualstream.engine import evaluate
from dualstream.engine.accel import DeviceBatches
from dualstream.engine.build import batch_loader, resolve_pipeline
from dualstream.engine.distributed import World

from .test_data_device import fake_cache

RECIPE = ["data.frames=4", "data.interval=3", "data.offsets=[1,2]", "data.offset_period=2", "data.eval_clips=2",
          "data.num_workers=0", "train.epochs=1", "train.batch_size=2", "model.kwargs.widths=[8,4,8]"]


def _args(cache, splits, run, *extra):
    sets = [f"data.cache={cache}", f"data.splits={splits}", *RECIPE, *extra]
    return ["-q", "train", "--config", str(demo_config_path()), "--out", str(run), *[a for s in sets for a in ("--set", s)]]


def test_device_evaluation_equals_classic_without_resize(tiny_dataset, tiny_cache, tmp_path):
    """Input size = frame size: multi-view evaluation on the device scores the very views of the classic path."""
    run = tmp_path / "run"
    assert main(_args(tiny_cache, tiny_dataset / "ucfTrainTestlist", run, "data.input_size=48")) == 0
    results = {}
    for pipeline in ("workers", "device"):
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        cfg["data"]["pipeline"] = pipeline
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["-q", "evaluate", str(run), "--clips", "2", "--crops", "3", "--flip"]) == 0
        results[pipeline] = json.loads((run / "eval.json").read_text())
    a, b = results["workers"], results["device"]
    assert a["num_clips"] == b["num_clips"] == 6 * 2 * 3 * 2 and a["views_per_video"] == b["views_per_video"] == 12
    for key in ("clip_top1", "video_top1", "top5", "confusion"):
        assert a[key] == b[key], key


def test_device_views_gathered_from_two_ranks_come_back_in_classic_order(tmp_path, monkeypatch):
    """Under torchrun each rank cuts its shard's views on the device; gathered, they are EvalViews' order."""
    entries = fake_cache(tmp_path, [(24, 30)] * 5)
    spec = ClipSpec(frames=3, interval=3, input_size=24)

    class Model(torch.nn.Module):
        def forward(self, rgb, flow):  # logits that depend on every input value
            return torch.stack([rgb.mean((1, 2, 3)), rgb.std((1, 2, 3)), flow.mean((1, 2, 3)), flow.std((1, 2, 3))], 1)

    model = Model()

    ref = EvalViews(tmp_path, entries, spec, offsets=[1, 3], crops=3, flip=True)
    rgb, flow, labels, videos = zip(*[ref[k] for k in range(len(ref))])
    want = torch.softmax(model(torch.stack(rgb), torch.stack(flow)), 1)

    frames = dev.EvalFrames(tmp_path, entries, spec, offsets=[1, 3], crops=3, flip=True)

    def batches(rank):
        loader = batch_loader(frames, sampler=World(rank, 2).shard(len(frames)), batch_size=3, workers=0,
                              pin=False, collate_fn=dev.collate_frames)
        to_input = lambda b: dev.to_eval_input(b, torch.device("cpu"), size=24, flow_bound=20.0)  # noqa: E731
        return DeviceBatches(loader, to_input, torch.device("cpu"), views_per_item=frames.views_per_item)

    parts = []
    monkeypatch.setattr(evaluate, "gather_objects", lambda mine: parts.append(mine) or [mine])
    evaluate.predict(model, batches(1), torch.device("cpu"))
    monkeypatch.setattr(evaluate, "gather_objects", lambda mine: [mine, *parts])
    got, got_labels, got_videos = evaluate.predict(model, batches(0), torch.device("cpu"))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert got_labels.tolist() == list(labels) and got_videos.tolist() == list(videos)


def test_pipeline_settings_are_checked_in_one_line():
    with pytest.raises(ConfigError, match="data.pipeline must be"):
        load_config(None, ["data.pipeline=gpu"])
    cfg = load_config(None, ["data.jpeg_decode=device", "data.pipeline=device"])
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        resolve_pipeline(cfg, torch.device("cpu"), [])
    assert resolve_pipeline(load_config(None), torch.device("cpu"), []) == ("workers", False)
    assert resolve_pipeline(load_config(None, ["data.pipeline=device"]), torch.device("cpu"), []) == ("device", False)
    for old in ("classic", "u8", "fused"):  # the worker pipelines before 0.2 are one now
        assert load_config(None, [f"data.pipeline={old}"]).data.pipeline == "workers"
