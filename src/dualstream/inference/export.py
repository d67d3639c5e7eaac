"""Export a model package to ONNX or TorchScript, with a parity check against PyTorch. Inputs and outputs are
``IO_DOCS`` (B free; T, S, K as in the ``model.json`` the file carries: ONNX metadata key ``METADATA_KEY``,
TorchScript extra file ``model.json``); a single-stream baseline keeps only the input it reads."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.transforms import _MEAN, _STD, IMAGENET_MEAN, IMAGENET_STD
from .onnx_runtime import needs, onnx_session
from .package import METADATA_KEY, load_model
from .predict import attention_layers

FORMATS = ("onnx", "torchscript")
INPUT_NAMES = ("rgb", "flow")
OUTPUT_NAMES = ("logits", "probabilities")
IO_DOCS = {
    "rgb": f"float32 (B, 3T, S, S): T centre-cropped RGB frames, frame-major [f1 R, f1 G, f1 B, f2 R, ...], 0..1 "
           f"then normalised with the ImageNet mean {IMAGENET_MEAN} and std {IMAGENET_STD}",
    "flow": "float32 (B, 2T, S, S): forward flow (i -> i+1) x, y at the same frames, pixels of the crop / flow_bound",
    "logits": "float32 (B, K): class scores per clip, classes as in model.json",
    "probabilities": "float32 (B, K): softmax of logits; average over a video's clips",
}
PARITY_ATOL = 1e-4
ONNX_OPSET = 18


class ExportError(ValueError):
    """An export that cannot be made or that does not match PyTorch; one line for the user."""


class ClipClassifier(nn.Module):
    """``model`` with the exported signature: (rgb, flow) -> (logits, probabilities)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(rgb, flow)
        return logits, torch.softmax(logits, dim=1)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float

    def line(self) -> str:
        return f"wrote {self.format} model to {self.path} (parity with PyTorch: max abs diff {self.max_abs_diff:.2e})"


def example_inputs(spec: dict, *, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs of the model's shape and of real clips' scale (docs/design.md, export): uniform pixels
    normalised as in training; flow with a std of 0.1 bound, clipped to +-1."""
    g = torch.Generator().manual_seed(seed)
    t, s = int(spec["frames"]), int(spec["input_size"])
    pixels = torch.randint(0, 256, (batch, t, 3, s, s), generator=g).float()
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (_MEAN, _STD))
    rgb = ((pixels - mean) / std).reshape(batch, 3 * t, s, s)
    flow = (torch.randn(batch, 2 * t, s, s, generator=g) * 0.1).clamp(-1.0, 1.0)
    return rgb, flow


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the tracer's shape-check warnings, torch.jit's deprecation and the ONNX exporter's chatter."""
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (torch.jit.TracerWarning, DeprecationWarning, FutureWarning):
                warnings.simplefilter("ignore", category)
            warnings.filterwarnings("ignore", module=r"torch\.onnx\..*")
            yield
    finally:
        onnx_log.setLevel(level)


def _export_onnx(wrapper: ClipClassifier, inputs: tuple, out: Path, spec: dict) -> None:
    """With torch's current exporter (``dynamo=True``, which needs onnxscript); the batch axis is free."""
    # onnxscript: the exporter's own dependency; onnxruntime: the parity check's, checked before anything is written
    onnx, _, _ = (needs(module, "ONNX export", "export", ExportError)
                  for module in ("onnx", "onnxscript", "onnxruntime"))
    batch = torch.export.Dim("batch", min=1, max=4096)
    with _quiet():
        program = torch.onnx.export(wrapper, inputs, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                                    dynamic_shapes={"rgb": {0: batch}, "flow": {0: batch}}, opset_version=ONNX_OPSET,
                                    dynamo=True, verbose=False, optimize=True)
        program.save(str(out))
    proto = onnx.load(str(out))
    used = {name for node in proto.graph.node for name in node.input}
    for value in [v for v in proto.graph.input if v.name not in used]:  # a single-stream baseline's other input
        proto.graph.input.remove(value)
    proto.doc_string = "\n".join([f"dualstream clip classifier (model.json in the metadata key {METADATA_KEY})",
                                  *(f"{name}: {doc}" for name, doc in IO_DOCS.items())])
    for value in (*proto.graph.input, *proto.graph.output):
        value.doc_string = IO_DOCS[value.name]
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(spec))
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))


def _run_onnx(path: Path, inputs: tuple) -> list[np.ndarray]:
    session = onnx_session(path)
    wanted = {i.name for i in session.get_inputs()}  # a single-stream baseline keeps only its input
    return session.run(list(OUTPUT_NAMES), {n: x.numpy() for n, x in zip(INPUT_NAMES, inputs) if n in wanted})


def _export_torchscript(wrapper: ClipClassifier, inputs: tuple, out: Path, spec: dict) -> None:
    with _quiet():
        traced = torch.jit.trace(wrapper, inputs, check_trace=False)
        torch.jit.save(traced, str(out), _extra_files={"model.json": json.dumps(spec)})


def _run_torchscript(path: Path, inputs: tuple) -> list[np.ndarray]:
    with _quiet(), torch.no_grad():
        loaded = torch.jit.load(str(path), map_location="cpu")
        return [o.numpy() for o in loaded(*inputs)]


def export_model(model_path: str | os.PathLike, *, fmt: str, out: str | os.PathLike,
                 atol: float = PARITY_ATOL) -> ExportResult:
    """Export the package at ``model_path`` to ``out``; ExportError when the file (run by onnxruntime for ONNX)
    and PyTorch differ by more than ``atol`` on a batch of three clips (traced with one: the batch is free)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.parent and not out.parent.is_dir():
        raise ExportError(f"{out.parent}: output folder does not exist")
    model, spec = load_model(model_path)  # on the CPU, in eval mode
    for layer in attention_layers(model):
        layer.fused, layer.record = False, False  # plain matmul attention: exportable everywhere
    wrapper = ClipClassifier(model).eval()
    with torch.no_grad():
        (_export_onnx if fmt == "onnx" else _export_torchscript)(wrapper, example_inputs(spec, batch=1), out, spec)
        check = example_inputs(spec, batch=3, seed=1)
        expected = [o.numpy() for o in wrapper(*check)]
    got = _run_onnx(out, check) if fmt == "onnx" else _run_torchscript(out, check)
    diff = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected))
    if not diff <= atol:
        out.unlink(missing_ok=True)  # a file that failed its check must not be picked up later
        raise ExportError(f"{out}: exported model differs from PyTorch by {diff:.2e} (> {atol:g}); not written")
    return ExportResult(path=out, format=fmt, max_abs_diff=diff)
