"""In a real process an error is one line on stderr: OpenCV's own log lines ("[ WARN:0@0.1] global
cap.cpp:212 open VIDEOIO(FFMPEG): ...", "imread_(...): can't open/read file") never join it, whichever
module imports cv2 first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dualstream.config import Config
from dualstream.data.ucf101 import read_split

from .test_live import socket_closed_port
from .test_predict import FRAMES, INTERVAL, SIZE, make_package

SRC = Path(__file__).resolve().parents[1] / "src"


def _run(*argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCV_", "DUALSTREAM_DEBUG"))}
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run([sys.executable, "-m", "dualstream", "-q", *argv], env=env, capture_output=True, text=True,
                          timeout=120)


def _one_line(done: subprocess.CompletedProcess, command: str) -> str:
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout[-500:])
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"dualstream {command}: error: "), done.stderr
    return done.stderr


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("package")
    make_package(folder)
    return folder


def test_live_on_a_non_video_and_an_unreachable_stream(package, tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(os.urandom(5000))
    err = _one_line(_run("live", str(junk), "--model", str(package)), "live")
    assert err == f"dualstream live: error: {junk}: not a video, or a format/codec FFmpeg cannot open\n"
    with socket_closed_port() as port:
        url = f"http://127.0.0.1:{port}/x.mjpg"
        err = _one_line(_run("live", url, "--model", str(package), "--timeout", "3"), "live")
    assert err.startswith(f"dualstream live: error: {url}: cannot open the stream")


@pytest.mark.parametrize("command", ["pack", "evaluate"])
def test_pack_and_evaluate_on_a_cache_with_missing_frames(command, package, tiny_dataset, tiny_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_cache, cache)
    entry = read_split(tiny_dataset / "ucfTrainTestlist", 1).test[0]
    for frame in (cache / entry.key).glob("img_*.jpg"):
        frame.unlink()
    if command == "pack":
        err = _one_line(_run("pack", str(cache), "--workers", "1"), "pack")
    else:
        run = tmp_path / "run"
        shutil.copytree(package, run)
        cfg = Config()
        cfg.data.cache, cfg.data.splits, cfg.data.num_workers = str(cache), str(tiny_dataset / "ucfTrainTestlist"), 0
        cfg.data.frames, cfg.data.interval, cfg.data.input_size, cfg.data.offsets = FRAMES, INTERVAL, SIZE, [1, 2]
        cfg.model.name, cfg.model.kwargs = "early_fusion_small", {"widths": [8, 4, 8]}
        (run / "config.yaml").write_text(json.dumps(cfg.to_dict()))
        err = _one_line(_run("evaluate", str(run)), "evaluate")
    assert f"{cache / entry.key}/img_" in err and "missing, unreadable or cut short frame" in err
