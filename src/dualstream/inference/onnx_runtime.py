"""The light runtime: an exported ``model.onnx`` run by ONNX Runtime, without PyTorch.

``OnnxPredictor.load("model.onnx")`` reads the model package description from the ``model.json``
beside the file (or, when there is none, from the copy ``dualstream export`` stores in the file's
metadata) and checks it with the same rules as every other package reader
(``dualstream.inference.package``). Inputs are built by ``dualstream.inference.predict`` exactly as for the PyTorch
runtime (OpenCV decoding and flow, numpy transforms), so both runtimes see the same arrays and agree
to float32 rounding. Only OpenCV flow methods are available here: a model trained on the PyTorch
TV-L1 or Brox flow needs the torch runtime.

Needs ``onnxruntime`` (``pip install 'dualstream[onnx]'``); imports no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..flow import TORCH_METHODS, resolve_method
from .package import (MAX_JSON_BYTES, METADATA_KEY, MODEL_JSON, ModelPackageError, check_file,
                            parse_model_json)
from .predict import Predictor


def _session(path: Path, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelPackageError(f"{path}: the onnx runtime needs onnxruntime: pip install 'dualstream[onnx]'") from None
    if not path.is_file():
        raise ModelPackageError(f"{path}: not found (expected an ONNX file written by dualstream export)")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; the graph optimiser's notes are not for users
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from PATH failed:Protobuf parsing failed."
        detail = " ".join(str(exc).split()).rsplit(" failed:", 1)[-1].strip()[:160]
        raise ModelPackageError(f"{path}: not a loadable ONNX model ({detail})") from None


class OnnxPredictor(Predictor):
    """A model exported to ONNX, run by ONNX Runtime on the CPU."""

    runtime = "onnx"

    def __init__(self, session, spec: dict, *, where: str | os.PathLike = "model.onnx"):
        super().__init__(spec)
        self.session = session
        method = resolve_method(self.input.flow_method)
        if method in TORCH_METHODS:
            raise ModelPackageError(f"{where}: the model was trained on the PyTorch {method} flow, which the onnx "
                                    "runtime cannot compute; use --runtime torch with its run folder")
        self.inputs = [i.name for i in session.get_inputs()]  # a single-stream baseline keeps only its input
        t, s = self.input.frames, self.input.input_size
        for i in session.get_inputs():
            channels = {"rgb": 3 * t, "flow": 2 * t}.get(i.name)
            if channels is None:
                raise ModelPackageError(f"{where}: unexpected input {i.name!r} (a dualstream export has rgb and flow)")
            if list(i.shape[1:]) != [channels, s, s]:
                raise ModelPackageError(f"{where}: input {i.name} is {i.shape[1:]}, but its model.json describes "
                                        f"{[channels, s, s]} ({t} frames at {s}x{s}): another model's model.json?")
        outputs = {o.name: o for o in session.get_outputs()}
        if "probabilities" not in outputs or outputs["probabilities"].shape[1:] != [len(self.classes)]:
            raise ModelPackageError(f"{where}: no 'probabilities' output over the {len(self.classes)} classes of "
                                    "its model.json")

    @classmethod
    def load(cls, path: str | os.PathLike, *, threads: int = 0) -> "OnnxPredictor":
        """Open ``path`` (.onnx) with the model.json beside it (or the one in its metadata)."""
        path = Path(path)
        session = _session(path, threads)
        spec_path = path.with_name(MODEL_JSON)
        if spec_path.exists():
            check_file(spec_path, max_bytes=MAX_JSON_BYTES)
            spec = parse_model_json(spec_path.read_bytes(), spec_path)
        else:
            text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
            if text is None:
                raise ModelPackageError(f"{path}: no {MODEL_JSON} beside it and none in its metadata "
                                        "(export it with dualstream export, or copy the run's model.json next to it)")
            spec = parse_model_json(text, f"{path} (metadata {METADATA_KEY})")
        return cls(session, spec, where=path)

    def probabilities(self, rgb: np.ndarray, flow: np.ndarray) -> np.ndarray:
        feeds = {"rgb": rgb, "flow": flow}
        return self.session.run(["probabilities"], {n: np.ascontiguousarray(feeds[n], np.float32)
                                                     for n in self.inputs})[0]
