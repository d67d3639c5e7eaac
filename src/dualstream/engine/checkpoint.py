"""Checkpoints and model packages: weights as safetensors, other state through weights_only loads.

A run folder holds:
  model.safetensors + model.json   the model package (architecture, classes, input spec): all that
                                   prediction needs
  checkpoint/epoch-NNNN/           training state for --resume after epoch NNNN (1-based): weights
                                   (safetensors) and state.pt (optimizer, epoch, step, RNG states,
                                   sampler position, config, metrics history); epoch-NNNN-batch-BBBBBB
                                   is a mid-epoch one (train.checkpoint_every)

A checkpoint is written into a hidden temporary folder and renamed into place only when complete,
then older ones are removed; a crash or a full disk while saving leaves the previous checkpoint as
it was. Single files (the model package) are written to a temporary name and renamed. Nothing is
ever unpickled: ``torch.load(..., weights_only=True)`` only.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..models import create_model

MODEL_WEIGHTS = "model.safetensors"
MODEL_JSON = "model.json"
CHECKPOINT_DIR = "checkpoint"
_EPOCH_DIR = re.compile(r"^epoch-(\d{4,})(?:-batch-(\d{6,}))?$")


class CheckpointError(ValueError):
    """A run folder without a usable model or checkpoint, or a checkpoint that cannot be written."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}


def save_model_package(run: str | Path, model: nn.Module, spec: dict) -> None:
    """Write ``model.safetensors`` and ``model.json`` (spec: name, kwargs, classes, input spec)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    _atomic(run / MODEL_WEIGHTS, lambda p: save_file(_state_dict(model), str(p)))
    _atomic(run / MODEL_JSON, lambda p: p.write_text(json.dumps(spec, indent=1)))


def read_model_spec(path: str | Path) -> dict:
    path = Path(path)
    spec_path = path / MODEL_JSON if path.is_dir() else path
    if not spec_path.is_file():
        raise CheckpointError(f"{path}: no {MODEL_JSON} (not a trained run or model package)")
    return json.loads(spec_path.read_text())


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A ready model (eval mode) and its spec from a run folder or model package."""
    path = Path(path)
    spec = read_model_spec(path)
    folder = path if path.is_dir() else path.parent
    weights = folder / MODEL_WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {MODEL_WEIGHTS}")
    model = create_model(spec["name"], num_classes=len(spec["classes"]), frames=spec["frames"],
                         input_size=spec["input_size"], **spec.get("kwargs", {}))
    load_weights(model, load_file(str(weights)), folder, what=f"{spec['name']} with {len(spec['classes'])} classes")
    return model.to(device).eval(), spec


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], where: Path, *, what: str = "this model") -> None:
    """Load ``state`` strictly; a mismatch names the first differing tensor in one line."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or extra or shapes:
        detail = (f"{shapes[0]} is {tuple(state[shapes[0]].shape)}, expected {tuple(own[shapes[0]].shape)}"
                  if shapes else f"{len(missing)} missing and {len(extra)} unexpected tensors")
        raise CheckpointError(f"{where}: weights do not fit {what} (another architecture or class count: {detail})")
    model.load_state_dict(state)


def checkpoint_dirs(run: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = Path(run) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [((int(m.group(1)), int(m.group(2) or 0)), p) for p in folder.iterdir()
             if (m := _EPOCH_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def save_checkpoint(run: str | Path, model: nn.Module, state: dict, *, epoch: int, batch: int = 0,
                    keep: int = 1) -> Path:
    """Save the training state after ``epoch`` (0-based) completed, or after ``batch`` batches of the
    next epoch (a mid-epoch checkpoint, ``epoch-NNNN-batch-BBBBBB``); keeps the ``keep`` newest.

    ``state`` holds only tensors, numbers, strings, lists and dicts (what ``weights_only`` loads).
    """
    root = Path(run) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / (f"epoch-{epoch + 1:04d}" + (f"-batch-{batch:06d}" if batch else ""))
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        save_file(_state_dict(model), str(tmp / "weights.safetensors"))
        torch.save({**state, "epoch": epoch}, tmp / "state.pt")
        for name in ("weights.safetensors", "state.pt"):
            _fsync(tmp / name)
        if final.exists():  # the same epoch saved again (a rerun after a resume): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(root)
    except (OSError, RuntimeError, SafetensorError) as exc:  # torch.save and safetensors raise their own types
        shutil.rmtree(tmp, ignore_errors=True)
        previous = checkpoint_dirs(run)
        kept = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
        errno_ = getattr(exc, "errno", None)
        full = errno_ == errno.ENOSPC or "No space left" in str(exc)
        reason = "disk full" if full else (getattr(exc, "strerror", None) or str(exc))
        where = f"epoch {epoch + 1}" + (f" + {batch} batches" if batch else "")
        raise CheckpointError(f"could not save the checkpoint for {where} ({reason}); {kept}") from None
    for old in checkpoint_dirs(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(run: str | Path, model: nn.Module, *, what: str = "this model") -> dict:
    """Restore the newest checkpoint's weights into ``model``; returns its state (epoch: last completed)."""
    found = checkpoint_dirs(run)
    if not found:
        raise CheckpointError(f"{run}: no checkpoint to resume from")
    folder = found[-1]
    load_weights(model, load_file(str(folder / "weights.safetensors")), folder, what=what)
    try:
        return torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpicklable global or a torn file: refuse, never unpickle
        raise CheckpointError(f"{folder / 'state.pt'}: not a loadable training state ({type(exc).__name__})") from None
