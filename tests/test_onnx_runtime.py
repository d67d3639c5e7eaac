"""The light runtime: predict, live and serve on an exported model.onnx, without importing torch,
with the same answers as the torch runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
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


def _edited_onnx(source: Path, folder: Path, edit) -> Path:
    """A copy of the exported ``source`` in ``folder`` (without a model.json beside it) whose weights
    went through ``edit(name, array) -> array``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(source)
    for tensor in model.graph.initializer:
        tensor.CopyFrom(numpy_helper.from_array(edit(tensor.name, numpy_helper.to_array(tensor).copy()), tensor.name))
    folder.mkdir(exist_ok=True)
    onnx.save(model, folder / "model.onnx")
    return folder / "model.onnx"


def _poison(value: float):
    def edit(name, array):
        if name.endswith("head.8.weight"):
            array.flat[3] = value
        return array
    return edit


def _overflowing(name, array):
    """Finite weights so large that the logits overflow to +-inf (softmax: NaN)."""
    return np.full_like(array, 3e38) if name.endswith("head.8.weight") else array


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_weights_are_refused_at_load(onnx_model, clip, tmp_path, capsys, value):
    poisoned = _edited_onnx(onnx_model, tmp_path / "poisoned", _poison(value))
    expected = f"{poisoned}: weight 'model.head.8.weight' holds NaN or infinite values (a diverged or damaged model)"
    for argv in (["predict", str(clip), "--model", str(poisoned), "--json"],
                 ["live", str(clip), "--model", str(poisoned)], ["serve", "--model", str(poisoned), "--port", "0"]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == f"dualstream {argv[0]}: error: {expected}; refused\n"
    assert sorted(p.name for p in poisoned.parent.iterdir()) == ["model.onnx"]  # nothing written


def test_a_model_that_overflows_never_answers_nan(onnx_model, clip, tmp_path, capsys):
    """Finite weights pass the load checks; the NaN they answer is an error on both runtimes, never printed."""
    from safetensors.numpy import load_file, save_file

    big = _edited_onnx(onnx_model, tmp_path / "big", _overflowing)
    folder = tmp_path / "big_run"
    shutil.copytree(onnx_model.parent, folder)
    state = load_file(folder / "model.safetensors")
    save_file({k: _overflowing(k, v) for k, v in state.items()}, folder / "model.safetensors")
    for model in (big, folder):
        for command, *extra in (["predict", "--json"], ["live"], ["predict", "--timeline"]):
            assert main(["-q", command, str(clip), "--model", str(model), *extra]) == 2
            out, err = capsys.readouterr()
            assert out == "" and err == (f"dualstream {command}: error: {model}: the model answered NaN or infinite "
                                         "probabilities (weights so large that it overflows?); refused\n")
    with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its TestClient; httpx still works
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient
    from dualstream.serve import create_app

    client = TestClient(create_app(big, clips=2), base_url="http://127.0.0.1")
    answer = client.post("/api/predict", files={"file": ("clip.avi", clip.read_bytes(), "video/x-msvideo")})
    assert answer.status_code == 500
    assert answer.json() == {"detail": "the model answered NaN or infinite probabilities (weights so large that "
                                       "it overflows?); refused"}


@pytest.mark.parametrize("changes,fields", [
    ({"classes": CLASSES[::-1]}, "classes"),
    ({"interval": 2, "short_side": 64}, "interval, short_side"),
    ({"flow_bound": 10.0}, "flow_bound"),
    ({"split": 2}, "split"),  # a key the export did not record
])
def test_a_model_json_beside_that_disagrees_with_the_exported_copy(onnx_model, clip, tmp_path, capsys, changes,
                                                                     fields):
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(onnx_model, folder / "model.onnx")
    spec = json.loads((onnx_model.parent / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**spec, **changes}))
    for argv in (["predict", str(clip), "--model", str(folder / "model.onnx")],
                 ["live", str(clip), "--model", str(folder / "model.onnx")]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == (f"dualstream {argv[0]}: error: {folder / 'model.json'}: disagrees with the "
                                     f"model.json exported inside model.onnx on {fields}; put back the exported one, "
                                     "or remove it to use the copy inside\n")
    (folder / "model.json").write_text(json.dumps(spec))  # the same content, written anew: accepted
    assert main(["predict", str(clip), "--model", str(folder / "model.onnx"), "--clips", "1"]) == 0


def test_weights_onnx_cannot_read_and_a_missing_onnx_are_one_line(onnx_model, clip, tmp_path, monkeypatch, capsys):
    import onnx
    from google.protobuf.message import DecodeError

    def unreadable(*args, **kwargs):
        raise DecodeError("Error parsing message with type 'onnx.ModelProto'")

    monkeypatch.setattr(onnx, "load", unreadable)  # a file onnxruntime opens but the onnx package cannot read
    assert main(["predict", str(clip), "--model", str(onnx_model)]) == 2
    assert capsys.readouterr().err == (f"dualstream predict: error: {onnx_model}: its weights cannot be read "
                                       "(Error parsing message with type 'onnx.ModelProto')\n")
    monkeypatch.undo()
    done = _run_without_torch(f"""
        import importlib.abc, sys
        class NoOnnx(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "onnx" or name.startswith("onnx."):
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        sys.meta_path.insert(0, NoOnnx())
        from dualstream.cli import main
        sys.exit(main(["predict", {str(clip)!r}, "--model", {str(onnx_model)!r}]))
    """, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"dualstream predict: error: {onnx_model}: the onnx runtime needs onnx: "
                           "pip install 'dualstream[onnx]'\n")


@pytest.mark.parametrize("bound,shown", [("1e-320", "1e-320"), ("1e308", "1e+308"), ("NaN", None)])
def test_a_flow_bound_that_overflows_is_refused_at_load(onnx_model, clip, tmp_path, capsys, bound, shown):
    """In the copy inside the file and in a model.json beside it (float32 inputs would be NaN)."""
    import onnx

    model = onnx.load(onnx_model)
    entry = next(p for p in model.metadata_props if p.key == "dualstream.model_json")
    assert '"flow_bound": 20.0' in entry.value
    entry.value = entry.value.replace('"flow_bound": 20.0', f'"flow_bound": {bound}')
    (tmp_path / "inside").mkdir()
    onnx.save(model, tmp_path / "inside" / "model.onnx")
    beside = tmp_path / "beside"
    beside.mkdir()
    shutil.copy(onnx_model, beside / "model.onnx")
    (beside / "model.json").write_text(entry.value)
    problem = ("not a valid model.json (NaN is not a number JSON allows)" if bound == "NaN" else
               f"'flow_bound' must be between 0.01 and 10000, got {shown}")
    for path, where in ((tmp_path / "inside" / "model.onnx", f"{tmp_path / 'inside' / 'model.onnx'} (metadata "
                                                             "dualstream.model_json)"),
                        (beside / "model.onnx", beside / "model.json")):
        assert main(["predict", str(clip), "--model", str(path)]) == 2
        assert capsys.readouterr() == ("", f"dualstream predict: error: {where}: {problem}\n")
