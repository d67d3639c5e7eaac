"""Small-set training regime: a step budget, the checkpoint chosen on a group-disjoint validation part,
label smoothing and modality dropout, through the real train command."""

import json

import torch
from torch import nn

from dualstream.cli import main
from dualstream.config import demo_config_path, load_config
from dualstream.engine.regime import Selection, batch_hook, plan_epochs
from dualstream.models import create_model

from .test_end_to_end import TINY_RECIPE


def test_plan_epochs_turns_steps_into_epochs_of_about_eval_every_steps():
    cfg = load_config(demo_config_path(), ["train.steps=150", "train.eval_every=50", "train.batch_size=12"])
    epochs, repeats = plan_epochs(cfg, videos=12)
    assert repeats == 50 and epochs == 3  # 12 videos x 50 clips = 600 clips = 50 steps of 12
    assert plan_epochs(cfg, videos=12, world_size=2) == (3, 100)  # a global batch of 24: twice the clips
    assert plan_epochs(load_config(demo_config_path(), ["train.epochs=7"]), videos=12) == (7, 1)


def test_selection_prefers_accuracy_then_loss_and_stops_after_patience():
    sel = Selection(patience=2)
    assert sel.update(0, 0.5, 1.0) and sel.update(1, 0.5, 0.8)  # same accuracy, lower loss: better
    assert not sel.update(2, 0.5, 0.9) and not sel.stop
    assert not sel.update(3, 0.4, 0.1) and sel.stop and sel.best_epoch == 1
    again = Selection.from_history([{"epoch": 0, "val_acc": 0.5, "val_loss": 1.0}, {"epoch": 1, "val_acc": 0.7,
                                                                                     "val_loss": 2.0}])
    assert again.best_epoch == 1


def test_modality_dropout_only_for_models_with_both_streams():
    cfg = load_config(demo_config_path(), ["train.modality_dropout=1.0"])
    single = create_model("flow_only_small", num_classes=3, frames=2, input_size=32)
    assert batch_hook(cfg, single) is None
    hook = batch_hook(cfg, create_model("early_fusion_small", num_classes=3, frames=2, input_size=32))
    rgb, flow = hook(torch.ones(64, 6, 4, 4), torch.ones(64, 4, 4, 4))
    lost_rgb, lost_flow = rgb.flatten(1).amax(1) == 0, flow.flatten(1).amax(1) == 0
    assert (lost_rgb ^ lost_flow).all()  # p = 1: every clip loses exactly one input
    rgb_only = batch_hook(load_config(demo_config_path(), ["train.modality_dropout=1.0", "train.modality_dropout_rgb=1.0"]),
                          create_model("early_fusion_small", num_classes=3, frames=2, input_size=32))
    rgb, flow = rgb_only(torch.ones(64, 6, 4, 4), torch.ones(64, 4, 4, 4))
    assert (rgb.flatten(1).amax(1) == 0).all() and (flow.flatten(1).amax(1) == 1).all()  # the setting reaches the draw
    assert batch_hook(load_config(demo_config_path()), nn.Linear(1, 1)) is None


def _split_with_validation(tiny_dataset, tmp_path):
    """Train on group 2 and one video of group 1 per class, test on the other: two groups to carve from."""
    src = tiny_dataset / "ucfTrainTestlist"
    out = tmp_path / "splits"
    out.mkdir()
    (out / "classInd.txt").write_bytes((src / "classInd.txt").read_bytes())
    names = [line.split()[1] for line in (src / "classInd.txt").read_text().splitlines()]
    test = [t for t in (src / "testlist01.txt").read_text().split() if "_c02" in t]
    moved = [f"{t} {names.index(t.split('/')[0]) + 1}" for t in (src / "testlist01.txt").read_text().split() if "_c01" in t]
    train = (src / "trainlist01.txt").read_text().strip().splitlines() + moved
    (out / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")
    (out / "testlist01.txt").write_text("\r\n".join(test) + "\r\n")
    return out


def test_steps_validation_choice_and_early_stop_through_train(tiny_dataset, tiny_cache, tmp_path, monkeypatch):
    import dualstream.engine.train as train_mod

    hooked, smoothing = [], []  # the loop must apply the batch hook and the label smoothing it was given
    make_hook = train_mod.batch_hook

    def counting_hook(cfg, model):
        hook = make_hook(cfg, model)
        return lambda rgb, flow: (hooked.append(rgb.shape[0]), hook(rgb, flow))[1]

    cross_entropy = train_mod.F.cross_entropy

    def recording_cross_entropy(*args, label_smoothing=0.0, **kwargs):
        smoothing.append(label_smoothing)
        return cross_entropy(*args, label_smoothing=label_smoothing, **kwargs)

    monkeypatch.setattr(train_mod, "batch_hook", counting_hook)
    monkeypatch.setattr(train_mod.F, "cross_entropy", recording_cross_entropy)
    splits = _split_with_validation(tiny_dataset, tmp_path)
    run = tmp_path / "run"
    sets = [f"data.cache={tiny_cache}", f"data.splits={splits}", *TINY_RECIPE, "data.allow_group_overlap=true",
            "data.val_fraction=0.5", "data.temporal_jitter=true", "data.colour_jitter=0.3", "train.steps=6",
            "train.eval_every=2", "train.label_smoothing=0.1", "train.modality_dropout=0.5", "train.patience=1"]
    argv = ["-q", "train", "--config", str(demo_config_path()), "--out", str(run)] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    info = json.loads((run / "run.json").read_text())
    assert len(hooked) == lines[-1]["step"] and smoothing and set(smoothing) == {0.1}
    assert info["val_videos"] + info["train_videos"] == 9 and info["val_videos"] in (3, 6)
    assert info["clips_per_video"] == max(1, round(2 * 4 / info["train_videos"]))
    assert all({"val_acc", "val_loss", "best"} <= set(x) for x in lines)
    assert lines[-1]["step"] <= 6 and [x["step"] for x in lines][:1] == [2]
    best = [x["epoch"] for x in lines if x["best"]]
    assert best[0] == 0 and info["chosen_epoch"] == best[-1]
    if len(lines) < 3:  # stopped early: the last evaluation did not improve on the chosen one
        assert not lines[-1]["best"]


def test_aux_loss_adds_each_streams_loss_and_the_package_rebuilds_the_heads(tiny_dataset, tiny_cache, tmp_path,
                                                                            monkeypatch):
    import dualstream.engine.train as train_mod
    from dualstream.inference.package import load_model

    calls = []  # (rows, classes) of every cross-entropy the loop computes
    cross_entropy = train_mod.F.cross_entropy
    monkeypatch.setattr(train_mod.F, "cross_entropy",
                        lambda logits, *a, **k: (calls.append(tuple(logits.shape)), cross_entropy(logits, *a, **k))[1])
    splits = _split_with_validation(tiny_dataset, tmp_path)
    run = tmp_path / "run"
    sets = [f"data.cache={tiny_cache}", f"data.splits={splits}", *TINY_RECIPE, "data.allow_group_overlap=true",
            "train.steps=2", "train.eval_every=2", "train.aux_loss=0.5", "model.name=early_fusion_small"]
    assert main(["-q", "train", "--config", str(demo_config_path()), "--out", str(run)]
                + [a for s in sets for a in ("--set", s)]) == 0
    steps = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert steps >= 2 and len(calls) == 3 * steps  # the fused loss and the two streams' losses at each step
    spec = json.loads((run / "model.json").read_text())
    assert spec["kwargs"]["aux_heads"] is True
    model, _ = load_model(run)
    assert model.aux is not None and len(model.aux) == 2
    calls.clear()
    single = tmp_path / "single"
    sets[-1] = "model.name=flow_only_small"  # a single stream has no second stream to help: the option is inert
    assert main(["-q", "train", "--config", str(demo_config_path()), "--out", str(single)]
                + [a for s in sets for a in ("--set", s)]) == 0
    assert len(calls) == steps and "aux_heads" not in json.loads((single / "model.json").read_text())["kwargs"]
