"""benchmarks/train.py runs: one timed training step, and the loader mode on the tiny cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "train.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_model_row():
    row = _bench().measure("early_fusion_small", 32, device=torch.device("cpu"), batch=2, frames=2, classes=3,
                           precision="bf16", memory_format="channels_last", compile=False, seconds=0, warmup=1,
                           min_steps=1)
    assert (row["steps"], row["batch"], row["precision"], row["channels_last"]) == (1, 2, "bfloat16", True)
    assert row["clips_per_s"] > 0


def test_loader_row(tiny_cache):
    row = _bench().measure_loader(str(tiny_cache), 32, workers=0, batch=4, seconds=0.2)
    assert row["videos"] == 12 and row["clips"] % 4 == 0 and row["clips_per_s"] > 0
