"""The light runtime: predict, live and serve on an exported model.onnx, without importing torch,
with the same answers as the torch runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dualstream.cli import main
from dualstream.inference.window import SlidingWindow
from dualstream.inference.predict import TorchPredictor
from dualstream.inference.runtime import load_predictor
from dualstream.video import iter_frames

from .test_live import _video
from .test_predict import CLASSES

pytest.importorskip("onnxruntime", reason="the onnx runtime needs onnxruntime (test extra)")

SRC = Path(__file__).resolve().parents[1] / "src"

# A machine without torch: importing it fails, as it would if it were not installed.
NO_TORCH = textwrap.dedent("""
    import importlib.abc, sys

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoTorch())
""")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return _video(tmp_path_factory.mktemp("onnx") / "clip.avi", frames=30)


def _run_without_torch(code: str, tmp_path) -> subprocess.CompletedProcess:
    script = tmp_path / "light.py"
    script.write_text(NO_TORCH + textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)


def test_predict_live_and_serve_run_without_torch(onnx_model, clip, tmp_path):
    """The three commands on model.onnx in a process where torch cannot be imported."""
    code = f"""
        import contextlib, io, json, sys
        from dualstream.cli import main, build_parser

        build_parser().parse_args(["train", "--config", "x.yaml", "--out", "r"])  # parsing never needs torch
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["predict", {str(clip)!r}, "--model", {str(onnx_model)!r}, "--json", "--clips", "3"]) == 0
            assert main(["live", {str(clip)!r}, "--model", {str(onnx_model)!r}, "--json", "--stride", "4"]) == 0
            # a run folder without torch installed: its model.onnx is picked without --runtime
            assert main(["predict", {str(clip)!r}, "--model", {str(onnx_model.parent)!r}, "--json"]) == 0
        from fastapi.testclient import TestClient
        from dualstream.serve import create_app

        client = TestClient(create_app({str(onnx_model)!r}, clips=3), base_url="http://127.0.0.1")
        with open({str(clip)!r}, "rb") as fh:
            served = client.post("/api/predict", files={{"file": ("clip.avi", fh.read(), "video/x-msvideo")}},
                                 params={{"timeline": "true"}}).json()
        print(json.dumps({{"lines": out.getvalue().splitlines(), "served": served,
                          "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}}))
    """
    done = _run_without_torch(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["torch"] == []
    predicted, *live_lines, folder = [json.loads(line) for line in result["lines"]]

    torch_pred = TorchPredictor.load(onnx_model.parent).predict(clip, clips=3)
    assert [t["class"] for t in predicted["top"]] == [c for c, _ in torch_pred.top(5)]
    np.testing.assert_allclose([t["probability"] for t in predicted["top"]], [p for _, p in torch_pred.top(5)],
                               atol=1e-5)
    assert folder["top"][0]["class"] == TorchPredictor.load(onnx_model.parent).predict(clip).top(1)[0][0]
    *live_preds, summary = live_lines
    assert summary["frames"] == 30 and len(live_preds) == summary["predictions"] == 5
    served = result["served"]
    assert [t["class"] for t in served["top"]] == [c for c, _ in torch_pred.top(5)]
    assert served["explanation"].startswith("data:image/png;base64,")  # frames and flow, no attention
    assert served["timeline"]["segments"] and served["timeline"]["windows"]


def test_onnx_and_torch_runtimes_agree(onnx_model, clip):
    onnx_pred = load_predictor(onnx_model)
    torch_pred = load_predictor(onnx_model.parent)
    assert (onnx_pred.runtime, torch_pred.runtime) == ("onnx", "torch")
    assert load_predictor(onnx_model.parent, runtime="onnx").runtime == "onnx"
    clips = torch_pred.clips(clip, clips=3)
    np.testing.assert_allclose(onnx_pred.run(clips).probabilities, torch_pred.run(clips).probabilities, atol=1e-5)
    windows = [SlidingWindow(p, stride=3, smooth=2) for p in (onnx_pred, torch_pred)]
    for frame in iter_frames(clip):
        a, b = (w.push(frame) for w in windows)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
            assert a.indices == b.indices


def test_model_json_from_the_onnx_metadata(onnx_model, clip, tmp_path, capsys):
    alone = tmp_path / "exported.onnx"
    shutil.copy(onnx_model, alone)  # no model.json beside it: the copy in the file's metadata is used
    assert main(["predict", str(clip), "--model", str(alone), "--json", "--clips", "2"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert {t["class"] for t in line["top"]} == set(CLASSES)


def test_onnx_user_errors_are_one_line(onnx_model, clip, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(onnx_model.parent / "model.json", run / "model.json")
    assert main(["predict", str(clip), "--model", str(run), "--runtime", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err == (f"dualstream predict: error: {run}: no model.onnx for --runtime onnx; make it with "
                   f"dualstream export --model {run} --format onnx --out {run / 'model.onnx'}\n")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"\x08\x07garbage" * 10)
    assert main(["predict", str(clip), "--model", str(broken / "model.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dualstream predict: error: {broken / 'model.onnx'}: not a loadable ONNX model (")
    assert err.count("\n") == 1 and err.count(str(broken)) == 1  # onnxruntime's message without the path again

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(onnx_model, wrong / "model.onnx")
    spec = json.loads((onnx_model.parent / "model.json").read_text())
    (wrong / "model.json").write_text(json.dumps({**spec, "input_size": 64}))
    assert main(["live", str(clip), "--model", str(wrong / "model.onnx")]) == 2
    err = capsys.readouterr().err
    assert "input rgb is [12, 32, 32], but its model.json describes [12, 64, 64]" in err and err.count("\n") == 1

    (wrong / "model.json").write_text(json.dumps({**spec, "classes": "abc"}))
    assert main(["predict", str(clip), "--model", str(wrong / "model.onnx")]) == 2
    assert capsys.readouterr().err.count("\n") == 1

    assert main(["predict", str(clip), "--model", str(onnx_model), "--runtime", "torch"]) == 2
    assert "an ONNX file runs on the onnx runtime" in capsys.readouterr().err
    assert main(["predict", str(clip), "--model", str(onnx_model), "--device", "cuda"]) == 2
    assert "the onnx runtime runs on the CPU" in capsys.readouterr().err
