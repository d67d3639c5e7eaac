"""The paper's recipes in configs/: the paper's hyper-parameters, one per model and split, and they build."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dualstream.config import load_config
from dualstream.engine.build import build_model

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "dualstream" / "configs"
RECIPES = [f"{m}_ucf101_split{s}.yaml" for m in ("early_fusion", "late_fusion") for s in (1, 2, 3)]


def test_recipe_set():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(RECIPES + ["demo_synthetic.yaml", "small_real.yaml"])


def test_small_real_recipe_is_what_fit_prepares_for():
    cfg = load_config(CONFIGS / "small_real.yaml")
    assert (cfg.model.name, cfg.data.input_size, cfg.data.flow_bound) == ("early_fusion_small", 64, 3.0)
    assert cfg.train.steps > 0 and 0 < cfg.data.val_fraction < 1 and cfg.data.temporal_jitter
    assert cfg.data.colour_jitter > 0 and cfg.train.modality_dropout > 0
    # the whole action in every clip, and no flip that turns Left into Right (issue 18)
    assert (cfg.data.sampling, cfg.data.flip) == ("spread", False)


@pytest.mark.parametrize("name", RECIPES)
def test_paper_hyper_parameters(name):
    cfg = load_config(CONFIGS / name)
    model, split = name.split("_ucf101_split")
    assert (cfg.model.name, cfg.data.split) == (model, int(split[0]))
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.batch_size) == (1e-4, 0.0, 25)
    assert (cfg.data.input_size, cfg.data.frames, cfg.data.interval) == (224, 10, 10)
    assert (cfg.data.offsets, cfg.data.offset_period) == ([5, 8], 100)
    assert cfg.train.epochs >= 2 * cfg.data.offset_period  # both offsets are trained
    want = {"dropout": 0.5} if model == "early_fusion" else {"dropout": 0.5, "fusion_dropout": 0.85}
    assert cfg.model.kwargs == want
    with torch.device("meta"):  # builds without allocating 280 M parameters
        net = build_model(cfg, 101)
    assert net.num_classes == 101
