"""Exact resume: a training run killed with SIGKILL and resumed writes the same metrics lines as an
uninterrupted run (wall times live in the separate "time" field and are left out of the comparison)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from dualstream.config import demo_config_path
from dualstream.data.batches import collate_batches
from dualstream.data.dataset import TrainClips
from dualstream.data.sampling import ClipSpec
from dualstream.data.ucf101 import read_split
from dualstream.engine.train import EpochClips, EpochSampler

SRC = Path(__file__).resolve().parents[1] / "src"
RECIPE = ["data.input_size=32", "data.frames=4", "data.interval=3", "data.offsets=[1,2]", "data.offset_period=2",
          "data.eval_clips=2", "data.num_workers=1", "train.epochs=6", "train.batch_size=3", "model.kwargs.widths=[8,4,8]"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cmd(cache: Path, splits: Path, run: Path, *extra: str) -> list[str]:
    sets = [f"data.cache={cache}", f"data.splits={splits}", *RECIPE]
    return [sys.executable, "-m", "dualstream", "-q", "train", "--config", str(demo_config_path()), "--out", str(run),
            *[a for s in sets for a in ("--set", s)], *extra]


def _lines(run: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        assert line.pop("time")["train_s"] > 0
    return lines


def test_sigkill_then_resume_matches_uninterrupted_run(tiny_dataset, tiny_cache, tmp_path):
    splits = tiny_dataset / "ucfTrainTestlist"
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = subprocess.Popen(_cmd(tiny_cache, splits, whole), env=_env())
    victim = subprocess.Popen(_cmd(tiny_cache, splits, killed), env=_env())
    metrics, deadline = killed / "metrics.jsonl", time.monotonic() + 240
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        assert victim.poll() is None and time.monotonic() < deadline, "training ended before it could be killed"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    done_at_kill = len(metrics.read_text().splitlines())
    assert 2 <= done_at_kill < 6

    resumed = subprocess.run(_cmd(tiny_cache, splits, killed, "--resume"), env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait() == 0
    want = _lines(whole)
    assert [x["epoch"] for x in want] == [0, 1, 2, 3, 4, 5]
    assert _lines(killed) == want
    assert (killed / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()


def test_persistent_workers_follow_the_epoch(tiny_dataset, tiny_cache):
    """EpochSampler passes the epoch to long-lived loader workers: batches equal the in-process ones."""
    split = read_split(tiny_dataset / "ucfTrainTestlist", 1)
    clips = TrainClips(tiny_cache, split.train[:4], ClipSpec(frames=3, interval=2, offsets=(1, 3), offset_period=1,
                                                             input_size=16), seed=5)

    def batches(workers: int) -> list[torch.Tensor]:
        sampler = EpochSampler(clips, num_replicas=1, rank=0, shuffle=True, seed=5)
        loader = DataLoader(EpochClips(clips), batch_size=2, sampler=sampler, num_workers=workers,
                            persistent_workers=workers > 0, collate_fn=collate_batches)
        out = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            out += [rgb for rgb, _, _ in loader]
        return out

    a, b = batches(0), batches(1)
    assert len(a) == 4 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], a[2])  # another epoch: another offset and crop


@pytest.mark.parametrize("pipeline", ["workers", "device"])
def test_resume_from_a_mid_epoch_checkpoint_matches_uninterrupted_run(tiny_dataset, tiny_cache, tmp_path, monkeypatch,
                                                                      pipeline):
    """train.checkpoint_every: interrupted after batch 1 of epoch 2, resumed there (sampler position,
    partial sums, RNG), the run ends exactly as one never interrupted; on every data pipeline (the
    augmentation is drawn from seed, epoch and video wherever the clip is cut)."""
    from dualstream.cli import main
    from dualstream.engine import train as train_mod
    from dualstream.engine.checkpoint import checkpoint_dirs

    sets = [f"data.cache={tiny_cache}", f"data.splits={tiny_dataset / 'ucfTrainTestlist'}", *RECIPE,
            "data.num_workers=0", "train.epochs=3", "train.batch_size=2", f"data.pipeline={pipeline}"]

    def args(run, *extra):
        return ["-q", "train", "--config", str(demo_config_path()), "--out", str(run),
                *[a for s in [*sets, *extra] for a in ("--set", s)]]

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(args(whole)) == 0
    assert json.loads((whole / "run.json").read_text())["pipeline"] == pipeline
    real = train_mod.save_checkpoint

    def interrupt(run, model, state, *, epoch, batch=0, keep=1):
        path = real(run, model, state, epoch=epoch, batch=batch, keep=keep)
        if (epoch, batch) == (0, 1):
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(train_mod, "save_checkpoint", interrupt)
    assert main(args(cut, "train.checkpoint_every=1")) == 130
    monkeypatch.undo()
    assert [p.name for p in checkpoint_dirs(cut)] == ["epoch-0001-batch-000001"]
    # the sampler position is counted in batches: another batch size would repeat or skip clips
    assert main(args(cut, "train.checkpoint_every=1", "train.batch_size=3") + ["--resume"]) == 2
    assert main(args(cut, "train.checkpoint_every=1") + ["--resume"]) == 0
    assert _lines(cut) == _lines(whole)
    assert (cut / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
