"""Checkpoints and model packages: weights as safetensors, other state through weights_only loads.

A run folder holds:
  model.safetensors + model.json   the model package (architecture, classes, input spec): all that
                                   prediction needs
  checkpoint/                      training state for --resume: weights, optimizer, epoch, RNG
Every file is written to a temporary name and renamed, so a crash never leaves a torn file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..models import create_model

MODEL_WEIGHTS = "model.safetensors"
MODEL_JSON = "model.json"
CHECKPOINT_DIR = "checkpoint"


class CheckpointError(ValueError):
    """A run folder without a usable model or checkpoint."""


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


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
    _load_weights(model, load_file(str(weights)), folder)
    return model.to(device).eval(), spec


def _load_weights(model: nn.Module, state: dict[str, torch.Tensor], where: Path) -> None:
    own = model.state_dict()
    if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
        raise CheckpointError(f"{where}: weights do not fit this model (another architecture or class count)")
    model.load_state_dict(state)


def save_checkpoint(run: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, *, epoch: int) -> None:
    """Training state after ``epoch`` (0-based) is complete."""
    folder = Path(run) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    _atomic(folder / "weights.safetensors", lambda p: save_file(_state_dict(model), str(p)))
    state = {"epoch": epoch, "optimizer": optimizer.state_dict()}
    _atomic(folder / "state.pt", lambda p: torch.save(state, p))


def load_checkpoint(run: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore model and optimizer; returns the last completed epoch."""
    folder = Path(run) / CHECKPOINT_DIR
    if not (folder / "state.pt").is_file() or not (folder / "weights.safetensors").is_file():
        raise CheckpointError(f"{run}: no checkpoint to resume from")
    _load_weights(model, load_file(str(folder / "weights.safetensors")), folder)
    state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"])
