"""Which runtime runs a model: PyTorch for a run folder, ONNX Runtime for an exported ``.onnx``."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..text import UserError
from .onnx_runtime import OnnxPredictor
from .predict import Predictor, TorchPredictor

RUNTIMES = ("torch", "onnx")
RUN_ONNX = "model.onnx"


def load_predictor(path: str | os.PathLike, *, runtime: str | None = None, device: str = "cpu",
                   threads: int = 0) -> Predictor:
    """The predictor for ``--model path [--runtime R]``: a ``.onnx`` runs on ONNX Runtime; a folder (or its
    model.json) on PyTorch, or on its ``model.onnx`` with ``runtime="onnx"`` or when PyTorch is not installed.
    ``threads``: the runtime's intra-op threads (0: its default). Errors (an absent or unknown device among
    them) are one-line UserErrors."""
    if threads < 0:
        raise UserError("--threads must be >= 0 (0: the runtime's default)")
    if runtime is not None and runtime not in RUNTIMES:
        raise UserError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if runtime == "torch":
            raise UserError(f"{path}: an ONNX file runs on the onnx runtime; for --runtime torch give the run folder")
        runtime = "onnx"
    else:
        folder = path.parent if path.is_file() else path
        onnx_file = folder / RUN_ONNX
        try:
            has_torch = importlib.util.find_spec("torch") is not None
        except (ImportError, ValueError):  # a broken or blocked install counts as none
            has_torch = False
        if runtime is None:
            runtime = "onnx" if not has_torch and onnx_file.is_file() else "torch"
        if runtime == "torch" and not has_torch:
            instead = ("use its model.onnx with --runtime onnx" if onnx_file.is_file() else
                       "export the model to ONNX where torch is installed and pass the .onnx file")
            raise UserError(f"{path}: the torch runtime needs PyTorch (pip install 'dualstream[torch]'); "
                            f"without it, {instead}")
        if runtime == "onnx" and not onnx_file.is_file():
            raise UserError(f"{folder}: no {RUN_ONNX} for --runtime onnx; make it with "
                            f"dualstream export --model {folder} --format onnx --out {onnx_file}")
        path = onnx_file if runtime == "onnx" else path
    if runtime == "onnx":
        if device != "cpu":
            raise UserError(f"the onnx runtime runs on the CPU; --device {device} needs --runtime torch")
        return OnnxPredictor.load(path, threads=threads)
    import torch

    from ..flow._torch import resolve_device

    try:  # before any work
        resolve_device(device)
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"--device {device}: {exc}") from None
    if threads:
        torch.set_num_threads(threads)
    return TorchPredictor.load(path, device=device)
