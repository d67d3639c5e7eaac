"""Training checkpoints (``RUN/checkpoint/epoch-NNNN[-batch-BBBBBB]/``: weights.safetensors + state.pt, written and
read as README *Resume* says) and the model package's writer."""

from __future__ import annotations

import contextlib
import errno
import json
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from ..inference.package import MODEL_JSON, MODEL_WEIGHTS, ModelPackageError, check_file, read_weights
from ..files import atomic_folder, atomic_write, atomic_write_text, fsync_file

CHECKPOINT_DIR = "checkpoint"
_EPOCH_DIR = re.compile(r"^epoch-(\d{4,})(?:-batch-(\d{6,}))?$")


class CheckpointError(ValueError):
    """A run folder without a usable model or checkpoint, or a checkpoint that cannot be written."""


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}


def save_model_package(run: str | Path, model: nn.Module, spec: dict) -> None:
    """Write ``model.safetensors`` and ``model.json`` (spec: name, kwargs, classes, input spec)."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write(run / MODEL_WEIGHTS, lambda p: save_file(_state_dict(model), str(p)), fsync=True)
    atomic_write_text(run / MODEL_JSON, json.dumps(spec, indent=1), fsync=True)


def checkpoint_dirs(run: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = [((int(m.group(1)), int(m.group(2) or 0)), p) for p in (Path(run) / CHECKPOINT_DIR).glob("epoch-*")
             if (m := _EPOCH_DIR.match(p.name)) and p.is_dir()]  # none when the folder is missing
    return [p for _, p in sorted(found)]


def save_checkpoint(run: str | Path, model: nn.Module, state: dict, *, epoch: int, batch: int = 0,
                    keep: int = 1) -> Path:
    """Save the training state after ``epoch`` (0-based) completed, or after ``batch`` batches of the next epoch;
    keeps the ``keep`` newest. ``state`` holds only what ``weights_only`` loads (tensors, numbers, str, list, dict)."""
    root = Path(run) / CHECKPOINT_DIR
    final = root / (f"epoch-{epoch + 1:04d}" + (f"-batch-{batch:06d}" if batch else ""))
    try:  # the same epoch saved again (a rerun after a resume) is replaced
        with atomic_folder(final) as tmp:
            save_file(_state_dict(model), str(tmp / "weights.safetensors"))
            torch.save({**state, "epoch": epoch}, tmp / "state.pt")
            for name in ("weights.safetensors", "state.pt"):
                fsync_file(tmp / name)
        fsync_file(root)
    except (OSError, RuntimeError, SafetensorError) as exc:  # torch.save and safetensors raise their own types
        previous = checkpoint_dirs(run)
        kept = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
        full = getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc)
        reason = "disk full" if full else (getattr(exc, "strerror", None) or str(exc))
        where = f"epoch {epoch + 1}" + (f" + {batch} batches" if batch else "")
        raise CheckpointError(f"could not save the checkpoint for {where} ({reason}); {kept}") from None
    for old in checkpoint_dirs(run)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


class DamagedCheckpoint(CheckpointError):
    """A checkpoint folder whose files are unreadable, incomplete or hold NaN/inf (not a mismatch)."""


#: What a training state must hold (types as ``weights_only`` loads them).
_STATE_KEYS = {"epoch": int, "step": int, "history": list, "optimizer": dict, "rng": list}


def _read_checkpoint(folder: Path, model: nn.Module, what: str) -> tuple[dict[str, torch.Tensor], dict]:
    """The checked weights and training state of one checkpoint folder, without touching ``model``."""
    tensors = read_weights(folder / "weights.safetensors", model, what=what, error=DamagedCheckpoint,
                           mismatch=CheckpointError)
    path = folder / "state.pt"
    try:
        check_file(path)
    except ModelPackageError as exc:
        raise DamagedCheckpoint(str(exc)) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpicklable global or a torn file: refuse, never unpickle
        raise DamagedCheckpoint(f"{path}: not a loadable training state ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise DamagedCheckpoint(f"{path}: not a training state (a {type(state).__name__}, not a dict)")
    for key, kind in _STATE_KEYS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise DamagedCheckpoint(f"{path}: no valid {key!r} entry (a damaged or foreign training state)")
    partial = state.get("partial")
    if partial is not None and not (isinstance(partial, dict) and isinstance(partial.get("batches"), int)
                                    and isinstance(partial.get("sums"), list)):
        raise DamagedCheckpoint(f"{path}: no valid 'partial' entry (a damaged or foreign training state)")
    return tensors, state


def load_checkpoint(run: str | Path, model: nn.Module, *, what: str = "this model") -> dict:
    """Restore the newest checkpoint's weights into ``model``; returns its state (epoch: last completed). A damaged
    newest checkpoint is refused, not skipped (``model`` unchanged); the error names the newest intact older one."""
    found = checkpoint_dirs(run)
    if not found:
        raise CheckpointError(f"{run}: no checkpoint to resume from")
    newest = found[-1]
    try:
        tensors, state = _read_checkpoint(newest, model, what)
    except DamagedCheckpoint as exc:
        intact = None
        for older in reversed(found[:-1]):
            with contextlib.suppress(CheckpointError):
                _read_checkpoint(older, model, what)
                intact = older
                break
        hint = (f"the newest intact checkpoint is {intact}: move {newest.name} out of {newest.parent} to resume "
                "from it" if intact else
                "no intact older checkpoint is kept (train.keep_checkpoints); train again without --resume")
        raise CheckpointError(f"damaged checkpoint {newest}: {exc}; {hint}") from None
    model.load_state_dict(tensors)
    return state
