"""predict --timeline: windows over the whole video, segments of one top class, the JSON and the chart."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dualstream.cli import main
from dualstream.inference.window import SlidingWindow
from dualstream.inference.predict import build_clips
from dualstream.inference.runtime import load_predictor
from dualstream.inference.timeline import Timeline, TimelineWindow, predict_timeline, render_timeline
from dualstream.video import iter_frames

from .test_live import SPAN, _video
from .test_predict import CLASSES, FRAMES, INTERVAL, package  # noqa: F401  (package: the fixture)


def _timeline(tops: list[int], probs: list[float], *, stride: int = 2, fps: float = 10.0) -> Timeline:
    windows = []
    for k, (top, p) in enumerate(zip(tops, probs)):
        v = np.full(len(CLASSES), (1 - p) / (len(CLASSES) - 1))
        v[top] = p
        windows.append(TimelineWindow(1 + k * stride, SPAN + k * stride, v))
    return Timeline(video="v.avi", classes=CLASSES, fps=fps, frames=SPAN + 1 + stride * (len(tops) - 1),
                    stride=stride, windows=windows)


def test_bands_tile_the_time_and_segments_merge_equal_neighbours():
    t = _timeline([0, 0, 2, 2, 2, 1], [0.9, 0.7, 0.6, 0.8, 1.0, 0.5])
    bands = t.bands()
    assert bands[0][0] == 0.0 and bands[-1][1] == pytest.approx(t.windows[-1].last / t.fps)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(bands, bands[1:]))  # no gap, no overlap
    # window k is centred on frames 1 + 2k .. 10 + 2k: centre (2k + 10) / 2 / 10 s; edges half-way
    assert bands[1] == pytest.approx((0.6, 0.8))
    segments = t.segments()
    assert [(s["class"], s["windows"]) for s in segments] == [(CLASSES[0], 2), (CLASSES[2], 3), (CLASSES[1], 1)]
    assert segments[0]["probability"] == pytest.approx(0.8) and segments[1]["probability"] == pytest.approx(0.8)
    assert segments[0]["end"] == segments[1]["start"] == pytest.approx(bands[1][1])


def test_windows_are_predict_on_the_same_frames(package, tmp_path):
    video = _video(tmp_path / "long.avi", frames=40)
    predictor = load_predictor(package)
    t = predict_timeline(predictor, video, stride=5)
    assert t.frames == 40 and t.stride == 5
    assert [(w.first, w.last) for w in t.windows] == [(1 + 5 * k, SPAN + 5 * k) for k in range(6)]
    for w in t.windows:
        clip = list(range(w.first, w.last + 1, INTERVAL))
        assert len(clip) == FRAMES
        expected = predictor.run(build_clips(video, predictor.input, indices=[clip])).probabilities
        np.testing.assert_allclose(w.probabilities, expected, atol=1e-6)


def test_timeline_cli_json_text_and_plot(package, tmp_path, capsys):
    video = _video(tmp_path / "long.avi", frames=40)
    plot = tmp_path / "timeline.png"
    assert main(["-q", "predict", str(video), "--model", str(package), "--timeline", "--json", "--topk", "2",
                 "--plot", str(plot)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["video"] == str(video) and result["stride"] == INTERVAL  # default: the model's interval
    assert len(result["windows"]) == (40 - 1 - SPAN) // INTERVAL + 1
    first = result["windows"][0]
    assert first["frames"] == [1, SPAN] and first["start"] == 0.0 and len(first["top"]) == 2
    assert first["class"] == first["top"][0]["class"]
    assert sum(s["windows"] for s in result["segments"]) == len(result["windows"])
    assert set(result["colours"]) == set(CLASSES)
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[1] > 800

    assert main(["-q", "predict", str(video), "--model", str(package), "--timeline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{video}: 40 frames, 1.60 s, {len(result['windows'])} windows every {INTERVAL} frames")
    assert len(lines) == 1 + len(result["segments"])


def test_timeline_user_errors(package, tmp_path, capsys):
    short = _video(tmp_path / "short.avi", frames=SPAN)  # one frame short of a window
    assert main(["-q", "predict", str(short), "--model", str(package), "--timeline"]) == 2
    assert f"{short}: {SPAN} frames decoded; a timeline window needs {SPAN + 1}" in capsys.readouterr().err
    assert main(["predict", str(short), "--model", str(package), "--plot", "x.png"]) == 2
    assert capsys.readouterr().err == "dualstream predict: error: --plot draws the timeline: add --timeline\n"


def test_chart_renders_many_classes_and_one_window():
    png = render_timeline(_timeline([0], [0.4]))
    assert png[:4] == b"\x89PNG"
    many = _timeline([k % 3 for k in range(50)], [0.5 + 0.01 * k for k in range(50)])
    assert render_timeline(many)[:4] == b"\x89PNG"


def test_sliding_window_restarts_when_the_frame_size_changes(package, tmp_path):
    """A stream that changes resolution: the window starts again rather than mixing sizes."""
    predictor = load_predictor(package)
    window = SlidingWindow(predictor, stride=1)
    small = list(iter_frames(_video(tmp_path / "a.avi", frames=12)))
    big = [cv2.resize(f, (80, 60)) for f in small]
    preds = [window.push(f) for f in small + big]
    done = [i + 1 for i, p in enumerate(preds) if p is not None]
    assert done == [11, 12, 12 + 11, 12 + 12]  # SPAN + 1 frames of each size before a prediction
