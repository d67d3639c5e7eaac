"""A corpus of damaged model packages and checkpoints: every command that loads one answers with one
line naming the file and the problem, exits non-zero, runs no pickle and writes nothing."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from dualstream.cli import main
from dualstream.config import Config, demo_config_path
from dualstream.engine.checkpoint import checkpoint_dirs
from dualstream.inference.package import ModelPackageError, parse_model_json, read_model_json, safetensors_header
from dualstream.models import create_model, list_models

from .test_predict import CLASSES, FRAMES, SIZE, _moving_video, make_package

SRC = Path(__file__).resolve().parents[1] / "src"


class _Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def _spec(folder: Path) -> dict:
    return json.loads((folder / "model.json").read_text())


def _edit_spec(folder: Path, **changes) -> None:
    spec = {**_spec(folder), **changes}
    (folder / "model.json").write_text(json.dumps({k: v for k, v in spec.items() if v is not None}))


def _replace_in_spec(folder: Path, old: str, new: str) -> None:
    text = (folder / "model.json").read_text()
    assert old in text
    (folder / "model.json").write_text(text.replace(old, new))


def _weights(folder: Path) -> Path:
    return folder / "model.safetensors"


def _truncate(folder: Path) -> None:
    data = _weights(folder).read_bytes()
    _weights(folder).write_bytes(data[: len(data) // 2])


def _nan(folder: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(_weights(folder)))
    state["head.8.weight"][0, 0] = float("nan")
    save_file(state, str(_weights(folder)))


def _other_width(folder: Path) -> None:
    model = create_model("early_fusion_small", num_classes=len(CLASSES), frames=FRAMES, input_size=SIZE,
                         widths=[8, 4, 16])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(_weights(folder)))


def _lying_header(folder: Path) -> None:
    data = _weights(folder).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
    header[last]["data_offsets"][1] += 4096  # the last tensor said to reach past the end of the file
    text = json.dumps(header).encode()
    _weights(folder).write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n:])


def _as_dir(name: str):
    def damage(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).mkdir()
    return damage


def _remove(name: str):
    return lambda folder: (folder / name).unlink()


def _write(name: str, data: bytes):
    return lambda folder: (folder / name).write_bytes(data)


# case id -> (damage, what the one line must say)
CASES = {
    "weights-truncated": (_truncate, "model.safetensors: truncated"),
    "weights-zero-bytes": (_write("model.safetensors", b""), "model.safetensors: empty file (0 bytes)"),
    "weights-garbage": (_write("model.safetensors", b"\x00garbage" * 300), "model.safetensors: not a safetensors file"),
    "weights-lying-header": (_lying_header, "model.safetensors: truncated: tensor"),
    "weights-wrong-shapes": (_other_width, "weights do not fit early_fusion_small with the 3 classes of model.json"),
    "weights-nan": (_nan, "tensor head.8.weight holds NaN or infinite values"),
    "weights-a-pickle": (_write("model.safetensors", pickle.dumps({"w": _Payload()}, protocol=2)),
                         "model.safetensors: a pickle, not safetensors; refused, it is never unpickled"),
    "weights-a-pickle-protocol-0": (_write("model.safetensors", pickle.dumps({"w": _Payload()}, protocol=0)),
                                    "model.safetensors: a pickle, not safetensors"),
    "weights-torch-save": (lambda f: torch.save({"w": torch.zeros(2)}, _weights(f)),
                           "model.safetensors: a zip archive (a torch.save checkpoint?), not safetensors"),
    "weights-missing": (_remove("model.safetensors"), "model.safetensors: missing"),
    "weights-a-directory": (_as_dir("model.safetensors"), "model.safetensors: a directory, expected a file"),
    "json-missing": (_remove("model.json"), "no model.json (not a trained run or model package)"),
    "json-a-directory": (_as_dir("model.json"), "model.json: a directory, expected a file"),
    "json-zero-bytes": (_write("model.json", b""), "model.json: empty file (0 bytes)"),
    "json-binary": (_write("model.json", b"\xff\xfe\x00garbage\x80"), "model.json: not a text file"),
    "json-truncated": (lambda f: (f / "model.json").write_text((f / "model.json").read_text()[:40]),
                       "model.json: not valid JSON"),
    "json-a-list": (_write("model.json", b"[1, 2]"), "model.json: must be a JSON object, got list"),
    "json-missing-keys": (_write("model.json", json.dumps({"architecture": "early_fusion_small",
                                                           "classes": CLASSES}).encode()),
                          "model.json: missing keys name, frames, input_size"),
    "json-extra-key": (lambda f: _edit_spec(f, colour="blue"), "model.json: unknown key 'colour'"),
    "json-unknown-architecture": (lambda f: _edit_spec(f, name="resnet9000"),
                                  "model.json: unknown architecture 'resnet9000' (known: concat_fusion"),
    "json-wrong-type": (lambda f: _edit_spec(f, frames="ten"), "model.json: 'frames' must be an integer, got 'ten'"),
    "json-bool-for-int": (lambda f: _edit_spec(f, input_size=True), "'input_size' must be an integer, got true"),
    "json-out-of-range": (lambda f: _edit_spec(f, input_size=10**9), "'input_size' must be between 8 and 4096"),
    "json-nan-bound": (_write("model.json", b'{"name": "early_fusion_small", "classes": ["a", "b", "c"], '
                                            b'"frames": 4, "input_size": 32, "flow_bound": NaN}'),
                       "model.json: not a valid model.json (NaN is not a number JSON allows)"),
    # far outside its range the flow bound overflows float32 and every probability is NaN
    "json-tiny-bound": (lambda f: _edit_spec(f, flow_bound=1e-320),
                        "'flow_bound' must be between 0.01 and 10000, got 1e-320"),
    "json-huge-bound": (lambda f: _edit_spec(f, flow_bound=1e308),
                        "'flow_bound' must be between 0.01 and 10000, got 1e+308"),
    "json-overflowing-number": (lambda f: _replace_in_spec(f, '"flow_bound": 20.0', '"flow_bound": 1e400'),
                                "model.json: not a valid model.json (the number 1e400 is out of range)"),
    "json-infinity-in-kwargs": (lambda f: _edit_spec(f, kwargs={"widths": [8, 4, 8], "dropout": float("inf")}),
                                "model.json: not a valid model.json (Infinity is not a number JSON allows)"),
    "json-huge-offset": (lambda f: _edit_spec(f, offsets=[1, 10**30]),
                         "'offsets' must be a non-empty list of integers between 1 and 1000000, got [1, 1000000"),
    "json-duplicate-key": (_write("model.json", b'{"name": "early_fusion_small", "name": "x", "classes": ["a"], '
                                                b'"frames": 4, "input_size": 32}'),
                           "model.json: not a valid model.json (key 'name' appears twice)"),
    "json-wrong-class-count": (lambda f: _edit_spec(f, classes=CLASSES + ["Spin"]),
                               "weights do not fit early_fusion_small with the 4 classes of model.json"),
    "json-empty-classes": (lambda f: _edit_spec(f, classes=[]), "'classes' must be a non-empty list"),
    "json-unknown-sampling": (lambda f: _edit_spec(f, sampling="tsn"),
                              "model.json: 'sampling' must be one of interval, spread, got 'tsn'"),
    "json-spread-without-window": (lambda f: _edit_spec(f, sampling="spread"),
                                   "model.json: 'sampling' spread needs 'window'"),
    "json-window-out-of-range": (lambda f: _edit_spec(f, sampling="spread", window=1),
                                 "model.json: 'window' must be between 2 and 100000, got 1"),
    "json-duplicate-class": (lambda f: _edit_spec(f, classes=["a", "b", "a"]), "'classes' lists 'a' twice"),
    "json-bad-kwargs": (lambda f: _edit_spec(f, kwargs={"widht": 3}),
                        "model.json: early_fusion_small cannot be built from it"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pristine") / "run"
    make_package(folder)
    (folder / "config.yaml").write_text(json.dumps(Config().to_dict()))  # evaluate reads it first
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    _moving_video(path, 12)
    return path


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _argv(command: str, model: Path, video: Path, out: Path) -> list[str]:
    return {
        "predict": ["predict", str(video), "--model", str(model), "--explain", str(out / "explain.png")],
        "export": ["export", "--model", str(model), "--format", "torchscript", "--out", str(out / "model.pt")],
        "evaluate": ["evaluate", str(model)],
        "serve": ["serve", "--model", str(model), "--port", "0"],  # port 0: any free one; the model fails first
    }[command]


def _one_line_error(capsys, command: str) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"dualstream {command}: error: "), err
    return err


@pytest.mark.parametrize("command", ["predict", "export", "evaluate", "serve"])
@pytest.mark.parametrize("case", list(CASES))
def test_damaged_package_is_one_line_and_nothing_is_written(case, command, pristine, video, tmp_path, capsys,
                                                            monkeypatch):
    if command == "serve":
        pytest.importorskip("fastapi")
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    damage, expected = CASES[case]
    damage(run)
    out = tmp_path / "out"
    out.mkdir()
    before = _snapshot(tmp_path)
    assert main(_argv(command, run, video, out)) == 2
    err = _one_line_error(capsys, command)
    assert expected in err and str(run) in err
    assert _snapshot(tmp_path) == before  # nothing written, nothing removed
    assert not (tmp_path / "PWNED").exists()


def test_the_pristine_package_works_with_every_command(pristine, video, tmp_path, capsys):
    assert main(["predict", str(video), "--model", str(pristine)]) == 0
    assert main(_argv("export", pristine, video, tmp_path)) == 0 and (tmp_path / "model.pt").is_file()


@pytest.mark.parametrize("name,expected", [
    ("model.onnx", "model.onnx: not a loadable ONNX model ("),  # an .onnx runs on the onnx runtime
    ("clip.avi", "clip.avi: a file; this command needs a run folder or model package"),
    ("weights.pt", "weights.pt: a TorchScript or torch.save file; this command needs a run folder"),
    ("missing", "missing: not found (expected a run folder or model package"),
])
def test_a_file_where_a_package_folder_is_expected(name, expected, video, tmp_path, capsys):
    model = tmp_path / name
    if name != "missing":
        model.write_bytes(b"\x08\x07onnx-ish bytes \xff")
    assert main(["predict", str(video), "--model", str(model)]) == 2
    assert expected in _one_line_error(capsys, "predict")


def test_the_package_files_themselves_are_accepted_as_model(pristine, video, capsys):
    for name in ("model.json", "model.safetensors"):
        assert main(["predict", str(video), "--model", str(pristine / name), "--topk", "1"]) == 0


def test_unknown_flow_method_is_refused_by_predict_only(pristine, tmp_path, video, capsys):
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    _edit_spec(run, flow_method="denseflow-tvl1")
    assert main(["predict", str(video), "--model", str(run)]) == 2
    assert "model.json: flow_method 'denseflow-tvl1' cannot be computed" in _one_line_error(capsys, "predict")


def test_a_real_process_prints_one_line_and_debug_shows_the_traceback(pristine, video, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(pristine, run)
    _truncate(run)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("DUALSTREAM_DEBUG", None)
    argv = [sys.executable, "-m", "dualstream", "predict", str(video), "--model", str(run)]
    plain = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert plain.returncode == 2 and plain.stdout == ""
    assert plain.stderr.count("\n") == 1 and "model.safetensors: truncated" in plain.stderr
    debug = subprocess.run(argv, env={**env, "DUALSTREAM_DEBUG": "1"}, capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ModelPackageError" in debug.stderr


def test_model_json_checks_need_no_torch():
    code = ("import sys, dualstream.inference.package as m; "
            "m.parse_model_json(b'{\"name\": \"x\", \"classes\": [\"a\"], \"frames\": 4, \"input_size\": 32}', 'x'); "
            "assert 'torch' not in sys.modules and 'safetensors' not in sys.modules, sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(SRC)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_what_training_writes_passes_the_schema(pristine):
    folder, spec = read_model_json(pristine, architectures=list_models())
    assert folder == pristine and spec["classes"] == CLASSES
    assert parse_model_json(json.dumps(spec), "x")["frames"] == FRAMES
    header = safetensors_header(pristine / "model.safetensors")
    assert header["head.8.weight"] == ("F32", (3, 64))
    with pytest.raises(ModelPackageError, match="model.json: unknown architecture"):
        read_model_json(pristine, architectures=["rgb_only"])


# ---- checkpoints on train --resume ---------------------------------------------------------------

RECIPE = ["data.input_size=32", "data.frames=4", "data.interval=3", "data.offsets=[1,2]", "data.eval_clips=1",
          "train.batch_size=6", "model.kwargs.widths=[8,4,8]", "train.keep_checkpoints=2", "data.num_workers=0"]


def _train_argv(cache: Path, splits: Path, out: Path, *extra: str) -> list[str]:
    sets = [f"data.cache={cache}", f"data.splits={splits}", *RECIPE, *extra]
    return ["-q", "train", "--config", str(demo_config_path()), "--out", str(out)] + [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def trained(tiny_dataset, tiny_cache, tmp_path_factory) -> tuple[Path, list[str]]:
    """A run with the checkpoints of epochs 1 and 2 (train.epochs=2, keep 2) and its resume command."""
    run = tmp_path_factory.mktemp("trained") / "run"
    argv = _train_argv(tiny_cache, tiny_dataset / "ucfTrainTestlist", run, "train.epochs=2")
    assert main(argv) == 0
    assert [p.name for p in checkpoint_dirs(run)] == ["epoch-0001", "epoch-0002"]
    return run, _train_argv(tiny_cache, tiny_dataset / "ucfTrainTestlist", run, "train.epochs=3") + ["--resume"]


def _ckpt_weights(name: str):
    return lambda run: run / "checkpoint" / name / "weights.safetensors"


CHECKPOINT_CASES = {
    "weights-truncated": (lambda w, s: _truncate_file(w), "weights.safetensors: truncated"),
    "weights-zero-bytes": (lambda w, s: w.write_bytes(b""), "weights.safetensors: empty file (0 bytes)"),
    "weights-a-pickle": (lambda w, s: w.write_bytes(pickle.dumps(_Payload())), "weights.safetensors: a pickle"),
    "weights-a-directory": (lambda w, s: (w.unlink(), w.mkdir()), "weights.safetensors: a directory"),
    "weights-nan": (lambda w, s: _nan_file(w), "holds NaN or infinite values"),
    "state-truncated": (lambda w, s: s.write_bytes(s.read_bytes()[:100]), "state.pt: not a loadable training state"),
    "state-zero-bytes": (lambda w, s: s.write_bytes(b""), "state.pt: empty file (0 bytes)"),
    "state-missing": (lambda w, s: s.unlink(), "state.pt: missing"),
    "state-a-pickle": (lambda w, s: s.write_bytes(pickle.dumps({"epoch": 1, "x": _Payload()}, protocol=2)),
                       "state.pt: not a loadable training state"),
    "state-missing-keys": (lambda w, s: torch.save({"epoch": 1}, s), "state.pt: no valid 'step' entry"),
    "state-bad-partial": (lambda w, s: torch.save({**torch.load(s, weights_only=True), "partial": {"x": 1}}, s),
                          "state.pt: no valid 'partial' entry"),
}


def _truncate_file(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _nan_file(path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("inf")
    save_file(state, str(path))


def _copy_run(trained, tmp_path: Path) -> tuple[Path, list[str]]:
    source, argv = trained
    run = tmp_path / "run"
    shutil.copytree(source, run)
    argv = list(argv)
    argv[argv.index("--out") + 1] = str(run)
    return run, argv


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_damaged_checkpoint_names_itself_and_the_newest_intact_one(case, trained, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run, argv = _copy_run(trained, tmp_path)
    damage, expected = CHECKPOINT_CASES[case]
    newest = run / "checkpoint" / "epoch-0002"
    damage(newest / "weights.safetensors", newest / "state.pt")
    before = _snapshot(run)
    assert main(argv) == 2
    err = _one_line_error(capsys, "train")
    assert expected in err and f"damaged checkpoint {newest}: " in err
    assert f"the newest intact checkpoint is {run / 'checkpoint' / 'epoch-0001'}: move epoch-0002 out of" in err
    assert _snapshot(run) == before and not (tmp_path / "PWNED").exists()


def test_damaged_only_checkpoint_says_none_is_intact(trained, tmp_path, capsys):
    run, argv = _copy_run(trained, tmp_path)
    shutil.rmtree(run / "checkpoint" / "epoch-0001")
    _truncate_file(run / "checkpoint" / "epoch-0002" / "weights.safetensors")
    assert main(argv) == 2
    err = _one_line_error(capsys, "train")
    assert "weights.safetensors: truncated" in err and "no intact older checkpoint is kept" in err


def test_a_foreign_rng_or_optimizer_state_is_one_line(trained, tmp_path, capsys):
    run, argv = _copy_run(trained, tmp_path)
    state_path = run / "checkpoint" / "epoch-0002" / "state.pt"
    state = torch.load(state_path, weights_only=True)
    torch.save({**state, "rng": [{"torch": "not a state"}]}, state_path)
    assert main(argv) == 2
    assert "epoch-0002: its RNG state cannot be restored" in _one_line_error(capsys, "train")
    torch.save({**state, "optimizer": {"state": {}, "param_groups": [{"params": [0]}]}}, state_path)
    assert main(argv) == 2
    assert "epoch-0002: its optimizer state does not fit this model" in _one_line_error(capsys, "train")


def test_resume_continues_after_the_damaged_checkpoint_is_moved_away(trained, tmp_path, capsys):
    run, argv = _copy_run(trained, tmp_path)
    _truncate_file(run / "checkpoint" / "epoch-0002" / "weights.safetensors")
    assert main(argv) == 2
    shutil.move(run / "checkpoint" / "epoch-0002", tmp_path / "epoch-0002.damaged")  # what the message says to do
    assert main(argv) == 0
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]


@pytest.mark.parametrize("argv,expected", [
    (["predict", "x.avi", "--model", "{pkg}", "--device", "bogus"], "--device bogus: "),
    (["predict", "x.avi", "--model", "{pkg}", "--device", "cuda:7"], "--device cuda:7: "),
    (["serve", "--model", "{pkg}", "--port", "99999"], "--port must be 0-65535, got 99999"),
    (["serve", "--model", "{pkg}", "--host", "192.0.2.1"], "cannot listen on 192.0.2.1:8000: "),
    (["serve", "--model", "{pkg}", "--allow-host", "a b"], "--allow-host 'a b': not a host name or address"),
    (["models", "--num-classes", "0"], "--num-classes must be >= 1, got 0"),
])
def test_bad_options_are_one_line(argv, expected, pristine, capsys):
    if argv[0] == "serve":
        pytest.importorskip("fastapi")
    if argv[-1] == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("that GPU exists here")
    assert main([a.format(pkg=pristine) for a in argv]) == 2
    assert expected in _one_line_error(capsys, argv[0])


def test_a_taken_port_is_one_line(pristine, capsys):
    pytest.importorskip("fastapi")
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(pristine), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in _one_line_error(capsys, "serve")


@pytest.mark.parametrize("argv,expected", [
    (["predict", "x.avi", "--topk", "q"], "dualstream predict: error: argument --topk: invalid int value: 'q'"),
    (["nosuch"], "dualstream: error: argument COMMAND: invalid choice: 'nosuch'"),
    (["serve"], "dualstream serve: error: the following arguments are required: --model"),
])
def test_argument_errors_are_one_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith(expected), err
