"""The light runtime: an exported ``model.onnx`` run by ONNX Runtime on the inputs ``predict`` builds, with
OpenCV flow only. Needs ``onnxruntime`` and ``onnx`` (``pip install 'dualstream[onnx]'``); imports no torch."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np

from ..flow import TORCH_METHODS
from ..text import one_line
from .package import METADATA_KEY, MODEL_JSON, ModelPackageError, parse_model_json, read_spec_file, shown
from .predict import Predictor


def needs(module: str, user: str, extra: str = "onnx", error: type[ValueError] = ModelPackageError):
    """``module`` imported; ``error`` "``user`` needs ``module``: pip install 'dualstream[``extra``]'" without it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise error(f"{user} needs {module}: pip install 'dualstream[{extra}]'") from None


def onnx_session(path: Path, threads: int = 0):
    """An ONNX Runtime session of ``path`` on the CPU; a ModelPackageError when it cannot be made."""
    ort = needs("onnxruntime", f"{path}: the onnx runtime")
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


def check_weights(path: Path) -> None:
    """Refuse an ONNX file whose weights (initializers) hold NaN or infinite values, as the torch runtime does."""
    onnx = needs("onnx", f"{path}: the onnx runtime")
    try:
        graph = onnx.load(str(path)).graph  # with its external data, if any
        for tensor in [*graph.initializer, *(s.values for s in graph.sparse_initializer)]:
            values = onnx.numpy_helper.to_array(tensor)
            # kind V: the float types numpy lacks (bfloat16, float8), which ml_dtypes gives np.isfinite
            if values.dtype.kind in "fcV" and not np.isfinite(values).all():
                raise ModelPackageError(f"{path}: weight {shown(tensor.name)} holds NaN or infinite values "
                                        "(a diverged or damaged model); refused")
    except ModelPackageError:
        raise
    except Exception as exc:  # protobuf's DecodeError, a missing external data file, an unknown dtype, ...
        raise ModelPackageError(f"{path}: its weights cannot be read ({one_line(exc, 160)})") from None


class OnnxPredictor(Predictor):
    """A model exported to ONNX, run by ONNX Runtime on the CPU."""

    runtime = "onnx"

    def __init__(self, session, spec: dict, *, where: str | os.PathLike = "model.onnx"):
        super().__init__(spec, where=where)
        self.session = session
        if self.flow_method in TORCH_METHODS:
            raise ModelPackageError(f"{where}: the model was trained on the PyTorch {self.flow_method} flow, which "
                                    "the onnx runtime cannot compute; use --runtime torch with its run folder")
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
        """Open ``path`` (.onnx) with the model.json in its metadata or beside it; where both exist they must agree."""
        path = Path(path)
        session = onnx_session(path, threads)
        check_weights(path)
        text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        embedded = None if text is None else parse_model_json(text, f"{path} (metadata {METADATA_KEY})")
        spec_path = path.with_name(MODEL_JSON)
        spec = read_spec_file(spec_path) if spec_path.exists() else embedded
        if spec is None:
            raise ModelPackageError(f"{path}: no {MODEL_JSON} beside it and none in its metadata "
                                    "(export it with dualstream export, or copy the run's model.json next to it)")
        predictor = cls(session, spec, where=path)  # the input shapes first: the most specific message
        differ = [] if embedded is None else [k for k in {**embedded, **spec} if spec.get(k) != embedded.get(k)]
        if differ:  # classes, interval, flow_bound, ...: the answers would change without a word
            raise ModelPackageError(f"{spec_path}: disagrees with the {MODEL_JSON} exported inside {path.name} on "
                                    f"{', '.join(differ[:6])}{', ...' if len(differ) > 6 else ''}; put back the "
                                    "exported one, or remove it to use the copy inside")
        return predictor

    def _probabilities(self, rgb: np.ndarray, flow: np.ndarray) -> np.ndarray:
        feeds = {"rgb": rgb, "flow": flow}
        return self.session.run(["probabilities"], {n: np.ascontiguousarray(feeds[n], np.float32)
                                                     for n in self.inputs})[0]
