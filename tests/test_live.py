"""live: the sliding window equals predict on the same frames; MJPEG-over-HTTP streams, stalls, drops,
the annotated video, Ctrl-C and the CLI's JSON lines."""

from __future__ import annotations

import http.server
import json
import threading
import time

import cv2
import numpy as np
import pytest

from dualstream.data.sampling import spread_indices
from dualstream.inference import live as live_mod
from dualstream.cli import main
from dualstream.inference.live import LiveError, run_live
from dualstream.inference.window import SlidingWindow
from dualstream.inference.predict import build_clips
from dualstream.inference.runtime import load_predictor
from dualstream.video import iter_frames, video_info, write_video

from .conftest import read_video
from .test_predict import CLASSES, FRAMES, INTERVAL, package, spread_package  # noqa: F401  (the fixtures)

SPAN = (FRAMES - 1) * INTERVAL + 1  # 10 frames per window


def _video(path, frames: int = 30, fps: float = 25.0):
    """Textured objects moving in different directions (so that windows differ)."""
    rng = np.random.default_rng(5)
    tex = rng.integers(0, 255, (48 + frames, 64 + frames, 3), dtype=np.uint8)
    seq = np.stack([tex[t // 2:t // 2 + 48, t:t + 64] if t < frames // 2 else tex[t:t + 48, 0:64]
                    for t in range(frames)])
    write_video(path, seq, fps=fps)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return _video(tmp_path_factory.mktemp("live") / "clip.avi")


def _window_runs(predictor, video, *, stride, smooth):
    window = SlidingWindow(predictor, stride=stride, smooth=smooth)
    return [p for p in (window.push(f) for f in iter_frames(video)) if p is not None]


def test_window_predictions_equal_predict_on_the_same_frames(package, video):
    predictor = load_predictor(package)
    preds = _window_runs(predictor, video, stride=3, smooth=2)
    # 30 frames: windows complete at frames 11, 14, ..., 29 (frame n gives the flow of n - 1)
    assert [p.frame for p in preds] == list(range(SPAN + 1, 31, 3))
    assert preds[0].indices == list(range(1, SPAN + 1, INTERVAL))
    for k, p in enumerate(preds):
        assert p.indices == list(range(p.frame - SPAN, p.frame, INTERVAL))
        # predict, from the file, on this window's clip alone and on the last two (the smoothing)
        alone = predictor.run(build_clips(video, predictor.input, indices=[p.indices]))
        np.testing.assert_allclose(p.clip, alone.probabilities, atol=1e-6)
        clips = [q.indices for q in preds[max(0, k - 1):k + 1]]
        smoothed = predictor.run(build_clips(video, predictor.input, indices=clips))
        np.testing.assert_allclose(p.probabilities, smoothed.probabilities, atol=1e-6)
    assert len({round(float(p.clip[0]), 6) for p in preds}) > 1  # the windows do see different frames


def test_a_spread_model_spreads_its_window_over_the_recorded_length(spread_package, video):
    predictor = load_predictor(spread_package)  # window 13 frames: 12 with their flow
    preds = _window_runs(predictor, video, stride=0, smooth=1)
    assert [p.frame for p in preds] == list(range(13, 31, 3))  # default stride: one segment, 12 // 4
    where = spread_indices(13, frames=FRAMES)
    assert where == [2, 5, 8, 11]
    for p in preds:
        assert p.indices == [p.frame - 13 + i for i in where]
        alone = predictor.run(build_clips(video, predictor.input, indices=[p.indices]))
        np.testing.assert_allclose(p.clip, alone.probabilities, atol=1e-6)


def test_live_cli_json_lines_and_summary(package, video, capsys):
    assert main(["live", str(video), "--model", str(package), "--json", "--stride", "5", "--smooth", "1",
                 "--topk", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    *preds, summary = lines
    assert [p["frame"] for p in preds] == [11, 16, 21, 26]
    assert preds[0]["time"] == pytest.approx(10 / 25)  # seconds into the file: frame 11 at 25 fps
    assert all(len(p["top"]) == 2 and {t["class"] for t in p["top"]} <= set(CLASSES) for p in preds)
    assert summary["frames"] == 30 and summary["predictions"] == 4 and summary["dropped"] == 0
    assert summary["fps"] > 0 and 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"]
    expected = _window_runs(load_predictor(package), video, stride=5, smooth=1)
    assert [p["top"][0]["class"] for p in preds] == [CLASSES[int(np.argmax(p.probabilities))] for p in expected]


class _MJPEG(http.server.BaseHTTPRequestHandler):
    """An MJPEG-over-HTTP camera: multipart/x-mixed-replace JPEGs, then close or hang (a stall)."""

    frames: list[bytes] = []
    stall = threading.Event()  # set: keep the connection open without sending after the frames
    release = threading.Event()

    def do_GET(self):  # noqa: N802  (the handler's name)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for jpg in self.frames:
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                             + jpg + b"\r\n")
            self.wfile.flush()
            time.sleep(0.005)
        if self.stall.is_set():
            self.release.wait(20)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stream(video):
    frames = read_video(video)
    _MJPEG.frames = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
                     .tobytes() for f in frames]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MJPEG)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/camera.mjpg", _MJPEG
    _MJPEG.release.set()
    server.shutdown()
    server.server_close()


def test_mjpeg_stream_from_a_local_server(package, stream, capsys):
    url, handler = stream
    handler.stall.clear()
    assert main(["live", url, "--model", str(package), "--json", "--stride", "4", "--timeout", "10",
                 "--topk", str(len(CLASSES))]) == 0
    out, err = capsys.readouterr()
    *preds, summary = [json.loads(line) for line in out.splitlines()]
    assert summary["frames"] == len(handler.frames) == 30 and summary["ended"] == "stream ended"
    assert [p["frame"] for p in preds] == list(range(SPAN + 1, 31, 4))
    assert all(p["time"] >= 0 for p in preds)  # wall seconds since the first frame of a live source
    assert f"{url}: the stream ended after 30 frames" in err
    # the frames are the served ones (up to the JPEG decoders, FFmpeg's here and OpenCV's in imdecode,
    # which upsample the colour differently: compared in grey) ...
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    received = []
    while (got := cap.read())[0]:
        received.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    cap.release()
    sent = [cv2.cvtColor(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            for j in handler.frames]
    grey = lambda frames: np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(int)  # noqa: E731
    assert len(received) == 30 and np.abs(grey(received) - grey(sent)).mean() < 2
    # ... and the live predictions are the sliding window's on exactly those frames
    window = SlidingWindow(load_predictor(package), stride=4, smooth=3)
    expected = [p for p in map(window.push, received) if p is not None]
    assert len(preds) == len(expected)
    for got, want in zip(preds, expected):
        probs = {t["class"]: t["probability"] for t in got["top"]}
        np.testing.assert_allclose([probs[c] for c in CLASSES], want.probabilities, atol=2e-6)


def test_a_stalled_stream_ends_after_the_timeout(package, stream, capsys):
    url, handler = stream
    handler.stall.set()
    handler.release.clear()
    t = time.perf_counter()
    try:
        rc = main(["live", url, "--model", str(package), "--timeout", "1.5"])
    finally:
        handler.release.set()
    assert rc == 1 and time.perf_counter() - t < 8
    out, err = capsys.readouterr()
    assert f"dualstream live: {url}: no frame for 1.5 s after frame 30 (the stream stalled or stopped; --timeout)" in err
    assert out.splitlines()[-1].startswith("30 frames in ")
    assert "(timeout)" in out.splitlines()[-1]


def test_unreachable_stream_and_missing_file_are_one_line_errors(package, tmp_path, capsys):
    with socket_closed_port() as port:
        assert main(["live", f"http://127.0.0.1:{port}/x.mjpg", "--model", str(package), "--timeout", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dualstream live: error: http://127.0.0.1:") and err.count("\n") == 1
    assert main(["live", str(tmp_path / "nope.avi"), "--model", str(package)]) == 2
    assert capsys.readouterr().err == f"dualstream live: error: {tmp_path / 'nope.avi'}: file not found\n"


class socket_closed_port:  # noqa: N801  (a context manager used like a function)
    """A local port with nothing listening."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def __exit__(self, *exc) -> None:
        pass


def test_realtime_drops_frames_when_behind_and_counts_them(package, tmp_path, monkeypatch):
    video = _video(tmp_path / "fast.avi", frames=40, fps=100.0)  # a frame every 10 ms
    predictor = load_predictor(package)
    real = predictor.probabilities

    def slow(rgb, flow):
        time.sleep(0.05)  # a network five frames slow
        return real(rgb, flow)

    monkeypatch.setattr(predictor, "probabilities", slow)
    summary = run_live(predictor, str(video), stride=1, realtime=True)
    assert summary.dropped > 0 and summary.frames + summary.dropped == 40
    everything = run_live(predictor, str(video), stride=1)
    assert everything.frames == 40 and everything.dropped == 0


def test_annotated_video_and_ctrl_c(package, video, tmp_path, monkeypatch, capsys):
    out = tmp_path / "annotated.mp4"
    real = SlidingWindow.push

    def interrupted(self, rgb):
        if self.frames == 20:
            raise KeyboardInterrupt
        return real(self, rgb)

    monkeypatch.setattr(SlidingWindow, "push", interrupted)
    assert main(["live", str(video), "--model", str(package), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["frames"] == 20 and summary["ended"] == "interrupted"
    info = video_info(out)
    assert (info["width"], info["height"]) == (64, 48)
    annotated = read_video(out)
    original = read_video(video)
    assert len(annotated) == 20
    band, rest = slice(0, 20), slice(30, None)  # the label and the confidence bar are over the top rows
    assert annotated[15, band].mean() < 0.75 * original[15, band].mean()  # the darkened band
    # the rest is the video (up to the mp4v compression of a noise texture)
    assert np.abs(annotated[15, rest].astype(int) - original[15, rest]).mean() < 20


def test_reader_reports_a_source_that_never_opens(monkeypatch):
    def never(*args):
        time.sleep(3)
        raise LiveError("gave up")

    monkeypatch.setattr(live_mod, "_open_source", never)
    reader = live_mod.FrameReader("rtsp://camera.invalid/x", realtime=False, timeout=0.3)
    reader.start()
    with pytest.raises(LiveError, match=r"not opened within 0\.3 s"):
        list(reader)


class _Camera(http.server.BaseHTTPRequestHandler):
    """An endless MJPEG camera: the same few frames at 50 frames/s until the client goes."""

    frames: list[bytes] = []

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        try:
            for k in range(100_000):
                jpg = self.frames[k % len(self.frames)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                                 + jpg + b"\r\n")
                time.sleep(0.02)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def test_ctrl_c_on_a_live_stream_ends_cleanly_with_the_summary(onnx_model, video):
    """A real SIGINT to the command reading an endless stream: exit 0, the summary last, no abort."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    _Camera.frames = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in read_video(video)]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Camera)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/camera.mjpg"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "dualstream", "live", url, "--model", str(onnx_model), "--json",
                             "--stride", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = json.loads(proc.stdout.readline())  # a prediction: the stream is being read
        assert first["frame"] == SPAN + 1
        proc.send_signal(signal.SIGINT)
        t = time.perf_counter()
        out, err = proc.communicate(timeout=120)  # well under a second when idle; minutes under heavy load
        waited = time.perf_counter() - t
    finally:
        proc.kill()
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, f"exit {proc.returncode} {waited:.1f} s after SIGINT: {err[-2000:]}"
    summary = json.loads(out.splitlines()[-1])
    assert summary["ended"] == "interrupted" and summary["frames"] > SPAN and summary["predictions"] >= 1
    assert "Traceback" not in err and "terminate" not in err


def _undecodable(path):
    """An AVI that opens but none of whose frames decode: each JPEG's first 600 bytes overwritten."""
    data = bytearray(_video(path, frames=12).read_bytes())
    rng = np.random.default_rng(0)
    start = data.find(b"\xff\xd8\xff")
    while start >= 0:
        data[start:start + 600] = rng.integers(0, 256, 600, dtype=np.uint8).tobytes()
        start = data.find(b"\xff\xd8\xff", start + 600)
    path.write_bytes(bytes(data[:path.stat().st_size]))
    return path


class _GarbageMJPEG(_MJPEG):
    frames = [np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()] * 20
    stall = threading.Event()


@pytest.fixture()
def garbage_stream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GarbageMJPEG)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/camera.mjpg"
    server.shutdown()
    server.server_close()


def test_nothing_decoded_is_a_one_line_error(package, tmp_path, garbage_stream, capsys):
    bad = _undecodable(tmp_path / "bad.avi")
    assert main(["live", str(bad), "--model", str(package)]) == 2
    assert capsys.readouterr() == ("", f"dualstream live: error: {bad}: no frame could be decoded\n")
    assert main(["predict", str(bad), "--model", str(package)]) == 2  # as predict says of the same file
    assert capsys.readouterr().err == f"dualstream predict: error: {bad}: no frame could be decoded\n"
    t = time.perf_counter()
    assert main(["live", garbage_stream, "--model", str(package), "--timeout", "5"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"dualstream live: error: {garbage_stream}: ") and err.count("\n") == 1
    assert time.perf_counter() - t < 10


@pytest.mark.parametrize("frames", [1, SPAN])
def test_a_source_too_short_for_one_clip_says_why(package, tmp_path, capsys, frames):
    short = _video(tmp_path / "short.avi", frames=frames)
    assert main(["live", str(short), "--model", str(package), "--out", str(tmp_path / "annotated.avi")]) == 2
    decoded = f"{frames} frame{'s' if frames > 1 else ''} decoded"
    assert capsys.readouterr() == ("", (f"dualstream live: error: {short}: {decoded}, too few for one clip: "
                                        f"the model needs {SPAN + 1} frames of one size\n"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.avi"]  # no annotated video of "warming up"


def test_max_frames_before_the_first_clip_says_why(package, video, capsys):
    assert main(["live", str(video), "--model", str(package), "--max-frames", "5"]) == 2
    assert capsys.readouterr() == ("", (f"dualstream live: error: {video}: 5 frames read (--max-frames), too few for "
                                        f"one clip: the model needs {SPAN + 1} frames of one size\n"))


def test_ctrl_c_during_live_sets_a_flag_instead_of_raising_inside_the_queue(package, video, monkeypatch):
    """A KeyboardInterrupt landing inside the frame queue's locks could leave one held (the next get then waits
    forever): during run_live Ctrl-C only asks the loop to stop at the next frame; the handler is put back after."""
    import signal

    real, seen = SlidingWindow.push, []

    def push(self, rgb):
        if self.frames == 20:
            signal.raise_signal(signal.SIGINT)  # a real Ctrl-C, in the middle of a frame's work
            seen.append(signal.getsignal(signal.SIGINT))
        return real(self, rgb)

    monkeypatch.setattr(SlidingWindow, "push", push)
    before = signal.getsignal(signal.SIGINT)
    summary = run_live(load_predictor(package), str(video), stride=1)
    assert summary.ended == "interrupted" and summary.frames == 21  # the interrupted frame's work was finished
    assert seen and seen[0] is not signal.default_int_handler and signal.getsignal(signal.SIGINT) is before
