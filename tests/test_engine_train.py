"""Training failures and settings: a NaN loss stops with one clear line and keeps the last good
checkpoint; resuming needs no --config; speed settings resolve per device."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from dualstream.cli import main
from dualstream.config import demo_config_path
from dualstream.engine.accel import autocast_dtype, loader_workers, use_channels_last
from dualstream.engine.checkpoint import checkpoint_dirs

RECIPE = ["data.input_size=32", "data.frames=4", "data.interval=3", "data.offsets=[1,2]", "data.offset_period=1",
          "data.eval_clips=2", "train.epochs=3", "train.batch_size=4", "model.kwargs.widths=[8,4,8]"]


def _train(cache, splits, out, *extra, config=True):
    sets = [f"data.cache={cache}", f"data.splits={splits}", *RECIPE, *extra]
    head = ["--config", str(demo_config_path())] if config else []
    return ["-q", "train", *head, "--out", str(out)] + [a for s in sets for a in ("--set", s)]


def test_nan_loss_stops_with_one_line_and_keeps_last_good_checkpoint(tiny_dataset, tiny_cache, tmp_path, capsys,
                                                                    monkeypatch):
    calls = {"n": 0}
    real = F.cross_entropy

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss  # 2 batches per epoch: epoch 2, batch 1

    monkeypatch.setattr(F, "cross_entropy", poisoned)
    run = tmp_path / "run"
    assert main(_train(tiny_cache, tiny_dataset / "ucfTrainTestlist", run)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "loss is nan at epoch 2/3, batch 1" in err and "last good checkpoint" in err and "epoch-0001" in err
    assert [p.name for p in checkpoint_dirs(run)] == ["epoch-0001"]
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [0]

    monkeypatch.setattr(F, "cross_entropy", real)  # the cause is gone: resume from the good checkpoint
    assert main(_train(tiny_cache, tiny_dataset / "ucfTrainTestlist", run, config=False) + ["--resume"]) == 0
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]


def test_resume_of_another_model_is_one_clear_error(tiny_dataset, tiny_cache, tmp_path, capsys):
    run = tmp_path / "run"
    splits = tiny_dataset / "ucfTrainTestlist"
    assert main(_train(tiny_cache, splits, run, "train.epochs=1")) == 0
    assert main(_train(tiny_cache, splits, run, "model.name=concat_fusion_small") + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights do not fit concat_fusion_small" in err


def test_train_without_config_needs_resume(tmp_path, capsys):
    assert main(["-q", "train", "--out", str(tmp_path)]) == 2
    assert "--config is required" in capsys.readouterr().err


def test_speed_settings_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert (autocast_dtype("auto", cpu), autocast_dtype("auto", cuda), autocast_dtype("bf16", cpu)) == \
        (None, torch.bfloat16, torch.bfloat16)
    assert autocast_dtype("fp32", cuda) is None
    assert (use_channels_last("auto", cpu), use_channels_last("auto", cuda), use_channels_last("channels_last", cpu)) == \
        (False, True, True)
    assert loader_workers(3) == 3 and loader_workers(-1) >= 1
    with pytest.raises(ValueError, match=r"^train.precision must be auto, bf16 or fp32, got 'fp16'$"):
        autocast_dtype("fp16", cpu)
    with pytest.raises(ValueError, match=r"^train.memory_format must be auto, channels_last or contiguous, got 'nhwc'$"):
        use_channels_last("nhwc", cpu)


def test_bf16_and_channels_last_train_on_cpu(tiny_dataset, tiny_cache, tmp_path):
    run = tmp_path / "run"
    assert main(_train(tiny_cache, tiny_dataset / "ucfTrainTestlist", run, "train.epochs=1", "train.precision=bf16",
                       "train.memory_format=channels_last")) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["precision"] == "bfloat16"
    line = json.loads((run / "metrics.jsonl").read_text())
    assert torch.isfinite(torch.tensor(line["train_loss"]))


def test_fresh_run_in_an_old_run_folder_replaces_its_checkpoints(tiny_dataset, tiny_cache, tmp_path):
    run, splits = tmp_path / "run", tiny_dataset / "ucfTrainTestlist"
    assert main(_train(tiny_cache, splits, run, "train.epochs=2")) == 0
    assert main(_train(tiny_cache, splits, run, "train.epochs=1")) == 0
    assert [p.name for p in checkpoint_dirs(run)] == ["epoch-0001"]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_tensorboard_scalars_when_installed(tiny_dataset, tiny_cache, tmp_path, monkeypatch):
    """With tensorboard importable, every epoch logs losses, accuracies and speed (a stand-in writer here)."""
    import sys
    import types

    logged = []

    class Writer:
        def __init__(self, logdir):
            logged.append(("dir", logdir))

        def add_scalar(self, tag, value, step):
            logged.append((tag, step))

        def flush(self):
            pass

        def close(self):
            logged.append(("closed", None))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    run = tmp_path / "run"
    assert main(_train(tiny_cache, tiny_dataset / "ucfTrainTestlist", run, "train.epochs=2")) == 0
    assert logged[0] == ("dir", str(run / "tensorboard")) and logged[-1] == ("closed", None)
    assert {tag for tag, step in logged[1:-1] if step == 2} == {"train/loss", "test/loss", "train/acc", "test/acc",
                                                                  "speed/clips_per_s"}
