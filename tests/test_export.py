"""export: ONNX and TorchScript files with named inputs/outputs, metadata, and a parity check that bites."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest
import torch

from dualstream.inference import export as export_mod
from dualstream.cli import main
from dualstream.inference.export import ExportError, export_model
from dualstream.inference.runtime import load_predictor

from .test_predict import CLASSES, make_package, package  # noqa: F401  (package: the fixture)

onnx = pytest.importorskip("onnx", reason="ONNX export needs the 'export' extra (onnx, onnxruntime)")
ort = pytest.importorskip("onnxruntime", reason="ONNX export needs the 'export' extra (onnx, onnxruntime)")


def test_onnx_parity_names_and_metadata(package, tmp_path):
    out = tmp_path / "model.onnx"
    result = export_model(package, fmt="onnx", out=out)
    assert result.max_abs_diff <= 1e-4
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["rgb", "flow"]
    assert [o.name for o in proto.graph.output] == ["logits", "probabilities"]
    assert all(v.doc_string for v in (*proto.graph.input, *proto.graph.output))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["dualstream.model_json"])["classes"] == CLASSES


def test_onnx_predicts_a_video_like_pytorch(onnx_model, tiny_dataset):
    """Another runtime gets the same answer from the same clips (batch of 3, traced with 1)."""
    out = onnx_model  # the same tiny package as ``package``, exported once per session (conftest)
    predictor = load_predictor(onnx_model.parent)
    clips = predictor.clips(tiny_dataset / "videos" / "Grow" / "v_Grow_g01_c01.avi", clips=3)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    probs = session.run(["probabilities"], {"rgb": clips.rgb, "flow": clips.flow})[0]
    assert probs.shape == (3, len(CLASSES))
    np.testing.assert_allclose(probs.mean(0), predictor.run(clips).probabilities, atol=1e-5)


def test_torchscript_roundtrip(package, tmp_path):
    out = tmp_path / "model.pt"
    assert export_model(package, fmt="torchscript", out=out).max_abs_diff <= 1e-4
    extra = {"model.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit; it still loads
        loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["model.json"])["frames"] == 4
    logits, probs = loaded(torch.zeros(2, 12, 32, 32), torch.zeros(2, 8, 32, 32))
    assert logits.shape == probs.shape == (2, len(CLASSES))


def test_parity_failure_is_an_error(package, tmp_path, monkeypatch):
    real = export_mod._run_onnx
    monkeypatch.setattr(export_mod, "_run_onnx", lambda path, inputs: [o + 2e-4 for o in real(path, inputs)])
    with pytest.raises(ExportError, match=r"differs from PyTorch by 2\.\d+e-04 \(> 0\.0001\)"):
        export_model(package, fmt="onnx", out=tmp_path / "model.onnx")


@pytest.mark.parametrize("module", ["onnxscript", "onnxruntime"])  # the exporter's, the parity check's
def test_missing_exporter_dependency_is_named(package, tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # an import of it raises ImportError
    with pytest.raises(ExportError, match=rf"^ONNX export needs {module}: pip install 'dualstream\[export\]'$"):
        export_model(package, fmt="onnx", out=tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_export_cli(package, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["export", "--model", str(package), "--format", "torchscript", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote torchscript model to {out} (parity with PyTorch: max abs diff ")
    assert main(["export", "--model", str(package), "--format", "onnx", "--out", str(tmp_path / "no" / "m.onnx")]) == 2
    assert capsys.readouterr().err == f"dualstream export: error: {tmp_path / 'no'}: output folder does not exist\n"


@pytest.mark.parametrize("name, size, attention_rows, inputs", [
    ("late_fusion_small", 48, True, ["rgb", "flow"]), ("concat_fusion_small", 32, False, ["rgb", "flow"]),
    ("two_stream_average_small", 32, False, ["rgb", "flow"]), ("rgb_only_small", 32, False, ["rgb"]),
])
def test_other_architectures_export_and_explain(tmp_path, tiny_dataset, name, size, attention_rows, inputs):
    from dualstream.inference.explain import render_explanation

    make_package(tmp_path / "pkg", name=name, size=size, kwargs={})
    assert export_model(tmp_path / "pkg", fmt="onnx", out=tmp_path / "m.onnx").max_abs_diff <= 1e-4
    assert [i.name for i in onnx.load(str(tmp_path / "m.onnx")).graph.input] == inputs
    predictor = load_predictor(tmp_path / "pkg")
    clips = predictor.clips(tiny_dataset / "videos" / "Grow" / "v_Grow_g01_c01.avi", clips=1)
    pred = predictor.run(clips, attention=True)
    assert (pred.attention is not None) == attention_rows
    png = render_explanation(clips, pred)
    height = int.from_bytes(png[20:24], "big")  # PNG IHDR
    assert height == (570 if attention_rows else 400)
