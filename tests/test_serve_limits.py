"""serve's bounds on work, against real server processes: each request's decode budget (frames, pixels,
seconds; 413), one prediction at a time (503 with Retry-After for the next), uploads in flight (503)
and slow-header connections at the connection limit. The hostile videos are small files of many
or large frames that compress to little; the limits are scaled down through the command line."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dualstream.video import write_video

from .test_predict import _moving_video, package  # noqa: F401  (package: the fixture)
from .test_serve_attacks import Server, _get, _multipart, _post, running_server

pytest.importorskip("fastapi", reason="the web demo needs the 'serve' extra (fastapi, uvicorn, python-multipart)")
pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="measures memory through /proc")

BUDGET_FRAMES, BUDGET_MEGAPIXELS, BUDGET_SECONDS, MAX_UPLOADS = 30, 1, 3, 2


def _static(path: Path, frames: int, width: int, height: int, fourcc: str = "MJPG") -> bytes:
    """A video of ``frames`` identical gradient frames (compresses to little), as bytes."""
    ramp = (np.arange(width) * 255 // width).astype(np.uint8)
    write_video(path, np.broadcast_to(ramp[None, None, :, None], (frames, height, width, 3)).copy(), fourcc=fourcc)
    return path.read_bytes()


def _timeline(port: int, name: str, data: bytes) -> bytes:
    return _post(port, name, data).replace(b"?explain=false", b"?explain=false&timeline=true", 1)


@pytest.fixture(scope="module")
def budget_server(package, tmp_path_factory):  # small frame and pixel budgets, the rest at its defaults
    with running_server(package, "--budget-frames", str(BUDGET_FRAMES), "--budget-megapixels",
                        str(BUDGET_MEGAPIXELS), tmp=tmp_path_factory.mktemp("budget-tmp")) as srv:
        yield srv


@pytest.fixture(scope="module")
def busy_server(package, tmp_path_factory):  # a small seconds budget, few uploads in flight
    with running_server(package, "--budget-seconds", str(BUDGET_SECONDS), "--max-uploads", str(MAX_UPLOADS),
                        tmp=tmp_path_factory.mktemp("busy-tmp")) as srv:
        yield srv


def _measured(server: Server, request: bytes, timeout: float = 60) -> tuple[int, dict, str, float, float]:
    """The answer (status, headers, detail) to ``request``, its seconds and the server's peak memory growth (MB)."""
    rss = server.kib("VmRSS")
    server.reset_peak()
    t0 = time.perf_counter()
    status, headers, body = server.request(request, timeout=timeout)
    elapsed = time.perf_counter() - t0
    growth = (server.kib("VmHWM") - rss) / 1024
    return status, headers, json.loads(body).get("detail", ""), elapsed, growth


def _served(server: Server, tmp_path: Path) -> None:
    """A small video is still predicted, and no upload is left in the server's temp folder."""
    video = tmp_path / "ok.avi"
    _moving_video(video, 12)
    status, _, body = server.request(_post(server.port, "ok.avi", video.read_bytes()), timeout=60)
    assert status == 200, body
    assert list(server.tmp.iterdir()) == []


def test_a_timeline_over_the_frame_budget_is_413_and_stops_decoding(budget_server, tmp_path):
    data = _static(tmp_path / "many.avi", 200, 32, 24)
    status, _, detail, elapsed, growth = _measured(budget_server, _timeline(budget_server.port, "many.avi", data))
    print(f"200 frames, timeline: {status} in {elapsed:.2f} s, peak memory growth {growth:.1f} MB")
    assert (status, detail) == (413, f"many.avi: more than {BUDGET_FRAMES} frames to decode, the limit per request")
    assert elapsed < 2 and growth < 100
    # the top-5 alone decodes only the frames its clips need: within the budget
    status, _, body = budget_server.request(_post(budget_server.port, "many.avi", data), timeout=60)
    assert status == 200, body
    _served(budget_server, tmp_path)


def test_frames_over_the_pixel_budget_are_413(budget_server, tmp_path):
    data = _static(tmp_path / "large.avi", 20, 640, 480)  # 0.31 megapixels a frame: the 4th passes 1
    status, _, detail, elapsed, growth = _measured(budget_server, _post(budget_server.port, "large.avi", data))
    print(f"20 frames of 640x480: {status} in {elapsed:.2f} s, peak memory growth {growth:.1f} MB")
    assert (status, detail) == (413, f"large.avi: more than {BUDGET_MEGAPIXELS} megapixels to decode (frames of "
                                     "640x480), the limit per request")
    assert elapsed < 2 and growth < 100
    _served(budget_server, tmp_path)


def test_slow_headers_at_the_connection_limit_cannot_lock_clients_out(budget_server):
    slow = []
    for _ in range(70):  # more than the 64 connections served at once, each with headers that never end
        s = socket.create_connection(("127.0.0.1", budget_server.port), timeout=10)
        s.sendall(b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.append(s)
    try:
        t0 = time.perf_counter()
        status, _, _ = budget_server.request(_get("/api/model", budget_server.port))
        elapsed = time.perf_counter() - t0
        readable, _, _ = select.select(slow, [], [], 1)
        answers = [s.recv(4096) for s in readable]
    finally:
        for s in slow:
            s.close()
    print(f"a client beside 70 slow ones: {status} in {elapsed * 1000:.0f} ms; {len(answers)} slow ones closed")
    assert status == 200 and elapsed < 1
    # 71 connections, 63 fit beside a new one: the 8 that waited longest for their headers were closed
    assert len(answers) >= 8 and all(a.startswith(b"HTTP/1.1 408") for a in answers)


def test_a_prediction_over_the_seconds_budget_is_413_and_a_request_meanwhile_gets_a_prompt_503(busy_server,
                                                                                                   tmp_path):
    data = _static(tmp_path / "long.mp4", 1500, 320, 240, fourcc="mp4v")  # several seconds of work
    answers: dict[str, tuple] = {}
    thread = threading.Thread(target=lambda: answers.update(long=_measured(
        busy_server, _timeline(busy_server.port, "long.mp4", data))))
    thread.start()
    time.sleep(1)  # the long one is predicting
    video = tmp_path / "ok.avi"
    _moving_video(video, 12)
    t0 = time.perf_counter()
    status, headers, body = busy_server.request(_post(busy_server.port, "ok.avi", video.read_bytes()))
    elapsed = time.perf_counter() - t0
    thread.join()
    print(f"meanwhile: {status} in {elapsed * 1000:.0f} ms, Retry-After {headers.get('retry-after')}")
    assert status == 503 and elapsed < 1
    wait = int(headers["retry-after"])
    assert 1 <= wait <= BUDGET_SECONDS
    assert json.loads(body)["detail"] == f"ok.avi: the server is predicting another video; try again in {wait} s"
    status, _, detail, elapsed, growth = answers["long"]
    print(f"1500 frames of 320x240, timeline: {status} in {elapsed:.2f} s, peak memory growth {growth:.1f} MB")
    assert status == 413
    assert detail.startswith(f"long.mp4: not done within {BUDGET_SECONDS} s, the limit per request (")
    assert BUDGET_SECONDS < elapsed < BUDGET_SECONDS + 2 and growth < 100
    _served(busy_server, tmp_path)


def test_uploads_over_the_limit_in_flight_get_a_prompt_503(busy_server, tmp_path):
    body, ctype = _multipart("stall.avi", b"\x00" * 100_000)
    head = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{busy_server.port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    stalled = []
    for _ in range(MAX_UPLOADS):  # uploads that stop half-way
        s = socket.create_connection(("127.0.0.1", busy_server.port), timeout=10)
        s.sendall(head + body[: len(body) // 2])
        stalled.append(s)
    time.sleep(0.3)  # their headers are in
    try:
        t0 = time.perf_counter()
        status, headers, answer = busy_server.request(_post(busy_server.port, "ok.avi", b"\x00" * 1000))
        elapsed = time.perf_counter() - t0
        assert busy_server.request(_get("/api/model", busy_server.port))[0] == 200  # other requests are served
    finally:
        for s in stalled:
            s.close()
    print(f"upload beside {MAX_UPLOADS} stalled ones: {status} in {elapsed * 1000:.0f} ms")
    assert status == 503 and elapsed < 1 and headers["retry-after"] == "5"
    assert json.loads(answer)["detail"] == f"{MAX_UPLOADS} uploads are in progress, the most at once; try again in 5 s"
    deadline = time.monotonic() + 10
    while True:  # the stalled uploads end when their clients go away
        status, _, _ = busy_server.request(_post(busy_server.port, "x.avi", b"\x00" * 1000))
        if status != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 415  # read and refused as no video: the slots are free again
    _served(busy_server, tmp_path)
