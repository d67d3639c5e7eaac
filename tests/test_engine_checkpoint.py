"""Training checkpoints: atomic versioned folders, a full disk, foreign checkpoints, no unpickling."""

from __future__ import annotations

import errno
import pickle

import pytest
import torch

from dualstream.engine import checkpoint as ckpt
from dualstream.engine.checkpoint import CheckpointError, checkpoint_dirs, load_checkpoint, save_checkpoint
from dualstream.models import create_model


def _model(classes: int = 3, name: str = "early_fusion_small"):
    return create_model(name, num_classes=classes, frames=4, input_size=32, widths=[8, 4, 8])


def _state(model) -> dict:
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 12, 32, 32), torch.randn(2, 8, 32, 32)).sum().backward()
    opt.step()
    return {"optimizer": opt.state_dict(), "step": 7, "rng": [{"torch": torch.get_rng_state()}], "history": [{"epoch": 0}]}


def test_save_keeps_newest_and_loads_back(tmp_path):
    model = _model()
    for epoch in range(3):
        save_checkpoint(tmp_path, model, _state(model), epoch=epoch, keep=2)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["epoch-0002", "epoch-0003"]
    assert not list((tmp_path / "checkpoint").glob(".*"))  # no temporary folder left
    fresh = _model()
    state = load_checkpoint(tmp_path, fresh)
    assert state["epoch"] == 2 and state["step"] == 7
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    torch.optim.Adam(fresh.parameters()).load_state_dict(state["optimizer"])


# torch.save on a full device raises RuntimeError (its C++ writer), not OSError: both must be caught
@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   RuntimeError("[enforce fail at inline_container.cc] . No space left on device")])
def test_disk_full_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch, error):
    model = _model()
    save_checkpoint(tmp_path, model, _state(model), epoch=0)
    before = {p.name: p.read_bytes() for p in checkpoint_dirs(tmp_path)[0].iterdir()}

    def full(obj, path):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise error

    monkeypatch.setattr(ckpt.torch, "save", full)
    with pytest.raises(CheckpointError, match=r"epoch 2 \(disk full\); the previous checkpoint .*epoch-0001 is intact"):
        save_checkpoint(tmp_path, model, _state(model), epoch=1)
    monkeypatch.undo()
    [only] = checkpoint_dirs(tmp_path)
    assert {p.name: p.read_bytes() for p in only.iterdir()} == before
    assert not list((tmp_path / "checkpoint").glob(".*"))
    assert load_checkpoint(tmp_path, _model())["epoch"] == 0


def test_checkpoint_for_another_class_count_fails_clearly(tmp_path):
    save_checkpoint(tmp_path, _model(3), _state(_model(3)), epoch=0)
    with pytest.raises(CheckpointError, match=r"do not fit early_fusion_small with 5 classes .*head"):
        load_checkpoint(tmp_path, _model(5), what="early_fusion_small with 5 classes")


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_state_with_a_pickled_object_is_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _model()
    folder = save_checkpoint(tmp_path, model, _state(model), epoch=0)
    (folder / "state.pt").write_bytes(pickle.dumps({"epoch": 0, "evil": _Payload()}, protocol=2))
    with pytest.raises(CheckpointError, match="not a loadable training state"):
        load_checkpoint(tmp_path, _model())
    assert not (tmp_path / "PWNED").exists()


def test_no_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        load_checkpoint(tmp_path, _model())
