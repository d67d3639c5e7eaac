"""Data parallel with torchrun: 2 CPU processes (gloo) on the tiny set against one process.

With equal global batches, no dropout and no BatchNorm, two processes of batch 2 take exactly the
steps of one process of batch 4 (the sampler shards one permutation, DDP averages the gradients), so
the metrics agree up to float rounding. The test list has 5 videos: an uneven shard, where a padding
sampler would count a clip twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dualstream.cli import main
from dualstream.config import demo_config_path
from dualstream.engine import evaluate
from dualstream.engine.distributed import World

SRC = Path(__file__).resolve().parents[1] / "src"
RECIPE = ["data.input_size=48", "data.frames=4", "data.interval=3", "data.offsets=[1,2]", "data.offset_period=2",
          "data.eval_clips=1", "data.num_workers=0", "train.epochs=4", "model.name=late_fusion_small",
          "model.kwargs.batch_norm=false", "model.kwargs.dropout=0.0",
          "model.kwargs.fusion_dropout=0.0", "model.kwargs.block_a=[4,4]", "model.kwargs.block_b=[4,4,8]",
          "model.kwargs.block_d=[8,4,4]", "model.kwargs.fc=[16,16,16]"]


def _sets(cache: Path, splits: Path, *extra: str) -> list[str]:
    return [a for s in [f"data.cache={cache}", f"data.splits={splits}", *RECIPE, *extra] for a in ("--set", s)]


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def odd_splits(tiny_dataset, tmp_path) -> Path:
    splits = tmp_path / "splits"
    splits.mkdir()
    for name in ("classInd.txt", "trainlist01.txt"):
        (splits / name).write_bytes((tiny_dataset / "ucfTrainTestlist" / name).read_bytes())
    test = (tiny_dataset / "ucfTrainTestlist" / "testlist01.txt").read_text().splitlines()
    assert len(test) == 6
    (splits / "testlist01.txt").write_text("\n".join(test[:5]) + "\n")
    return splits


def test_two_gloo_processes_match_one_process(tiny_cache, odd_splits, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "dualstream", "-q", "train", "--config", str(demo_config_path()), "--out", str(two),
           *_sets(tiny_cache, odd_splits, "train.batch_size=2")]
    ddp = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert main(["-q", "train", "--config", str(demo_config_path()), "--out", str(one),
                 *_sets(tiny_cache, odd_splits, "train.batch_size=4")]) == 0
    out, _ = ddp.communicate(timeout=300)
    assert ddp.returncode == 0, out
    assert out.count("trained late_fusion_small") == 1  # rank 0 alone reports and writes

    info = json.loads((two / "run.json").read_text())
    assert (info["world_size"], info["global_batch"]) == (2, 4)
    a, b = _metrics(one), _metrics(two)
    assert [x["epoch"] for x in b] == [0, 1, 2, 3] and [x["step"] for x in b] == [x["step"] for x in a]
    assert all(x["test_clips"] == 5 and x["train_clips"] == 6 for x in a + b)
    for x, y in zip(a, b):
        for key in ("train_loss", "test_loss"):
            assert x[key] == pytest.approx(y[key], abs=1e-3), (key, x, y)
        assert (x["train_acc"], x["test_acc"]) == (y["train_acc"], y["test_acc"])
    assert a[-1]["train_loss"] < a[0]["train_loss"]  # it learns, so agreement is not agreement at chance

    # the gathered test accuracy of the 2-process run is the single-process evaluation of its model
    assert main(["-q", "evaluate", "--run", str(two), "--clips", "1"]) == 0
    assert json.loads((two / "eval.json").read_text())["clip_top1"] == pytest.approx(b[-1]["test_acc"], abs=1e-6)

    # evaluation under torchrun: 5 videos x 3 crops = 15 views over 2 processes, the same result as one
    assert main(["-q", "evaluate", str(two), "--clips", "1", "--crops", "3"]) == 0
    single = json.loads((two / "eval.json").read_text())
    (two / "eval.json").unlink()
    out = subprocess.run([*cmd[:6], "-m", "dualstream", "-q", "evaluate", str(two), "--clips", "1", "--crops", "3"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((two / "eval.json").read_text()) == single and single["num_clips"] == 15


@pytest.mark.parametrize("n", [0, 1, 5, 6])
def test_shards_cover_every_item_once(n):
    shards = [list(World(rank=r, size=3).shard(n)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(n))
    assert [len(World(rank=r, size=3).shard(n)) for r in range(3)] == [len(s) for s in shards]


def test_predict_puts_gathered_items_in_dataset_order(monkeypatch):
    """Two ranks' shards, gathered, come back in dataset order (here: rank 1's part arrives first)."""
    probs = torch.softmax(torch.randn(5, 3), 1)
    part = {r: (torch.tensor(list(World(rank=r, size=2).shard(5))),) for r in (0, 1)}
    parts = [(part[r][0], probs[part[r][0]], part[r][0] % 3, part[r][0] // 2) for r in (1, 0)]
    monkeypatch.setattr(evaluate, "gather_objects", lambda mine: parts)

    class Loader(list):
        sampler = range(0)

    got, labels, videos = evaluate.predict(torch.nn.Identity(), Loader(), torch.device("cpu"))
    assert torch.equal(got, probs) and labels.tolist() == [0, 1, 2, 0, 1] and videos.tolist() == [0, 0, 1, 1, 2]


def test_a_clean_end_waits_for_every_process_and_an_error_does_not(monkeypatch):
    """A gloo peer that leaves while another still talks to it aborts the process: a clean end meets at a barrier
    first, also when the caller is itself handling an exception; after an error no barrier (the others may never
    reach it)."""
    from dualstream.engine import distributed

    calls = []
    monkeypatch.setattr(distributed, "init_world", lambda device: (World(0, 2, 0), torch.device(device)))
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    with distributed.joined_world("cpu"):
        pass
    assert calls == ["barrier", "destroy"]
    calls.clear()
    try:
        raise KeyError("the caller's own, handled")
    except KeyError:
        with distributed.joined_world("cpu"):
            pass
    assert calls == ["barrier", "destroy"]
    calls.clear()
    with pytest.raises(RuntimeError):
        with distributed.joined_world("cpu"):
            raise RuntimeError("a step failed")
    assert calls == ["destroy"]
