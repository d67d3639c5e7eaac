"""serve under attack: each request a hostile page or client could send, against a real server process on
127.0.0.1 (the `dualstream serve` command), checking the answer, the time it took and the server's memory,
and that the server keeps serving afterwards."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web demo needs the 'serve' extra (fastapi, uvicorn, python-multipart)")
pytest.importorskip("uvicorn", reason="the web demo needs the 'serve' extra")

from dualstream.video import write_video  # noqa: E402

from .test_predict import _moving_video, package  # noqa: E402, F401  (package: the fixture)

SRC = Path(__file__).resolve().parents[1] / "src"
LIMIT_MB = 4
TIMEOUT_S = 2
# what the server may hold unread: uvicorn's body buffer (64 KiB, then it stops reading) plus one read of
# the event loop from the socket (256 KiB)
READ_BUFFER = 64 * 1024 + 256 * 1024
pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="measures memory through /proc")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    tmp: Path | None = None  # its TMPDIR, where given

    def __init__(self, proc: subprocess.Popen, port: int):
        self.proc, self.port = proc, port

    def kib(self, field: str) -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

    def request(self, raw: bytes, *, timeout: float = 10.0) -> tuple[int, dict, bytes]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(raw)
            return _read_response(s)


def _read_response(s: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


@contextmanager
def running_server(package, *options: str, tmp: Path | None = None) -> Iterator[Server]:
    """``dualstream serve`` on a free port with ``options`` (and ``tmp`` as its TMPDIR), from when it answers."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **({"TMPDIR": str(tmp)} if tmp else {})}
    proc = subprocess.Popen([sys.executable, "-m", "dualstream", "serve", "--model", str(package), "--port", str(port),
                             "--clips", "2", *options], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    srv = Server(proc, port)
    srv.tmp = tmp
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            if srv.request(_get("/api/model", port), timeout=2)[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    try:
        yield srv
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


@pytest.fixture(scope="module")
def server(package):
    with running_server(package, "--max-upload-mb", str(LIMIT_MB), "--timeout", str(TIMEOUT_S)) as srv:
        yield srv


def _get(path: str, port: int, host: str | None = None, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n{extra}Connection: close\r\n\r\n".encode()


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "dualstreamtestboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: video/x-msvideo\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _post(port: int, name: str, data: bytes, extra: str = "") -> bytes:
    body, ctype = _multipart(name, data)
    return (f"POST /api/predict?explain=false HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode() + body


def _still_serving(server: Server, tmp_path: Path) -> None:
    assert server.proc.poll() is None
    video = tmp_path / "ok.avi"
    _moving_video(video, 12)
    status, _, body = server.request(_post(server.port, "ok.avi", video.read_bytes()), timeout=60)
    assert status == 200, body
    assert len(json.loads(body)["top"]) == 3


def _thin(path: Path, width: int, height: int, frames: int = 40) -> None:
    """Noise frames of a thin video; a large one gets a smooth gradient (a small file of big frames)."""
    if width * height < 10**6:
        frames_ = np.random.default_rng(0).integers(0, 255, (frames, height, width, 3), dtype=np.uint8)
    else:
        ramp = (np.arange(width) * 255 // width).astype(np.uint8)
        frames_ = np.broadcast_to(ramp[None, None, :, None], (frames, height, width, 3)).copy()
    write_video(path, frames_)


@pytest.mark.parametrize("width,height,reason", [
    (500, 2, "frames of 500x2 pixels have an aspect ratio of 250:1, over the limit of 10:1"),
    (16000, 2, "frames of 16000x2 pixels have an aspect ratio of 8000:1, over the limit of 10:1"),
    (4000, 2400, "frames of 4000x2400 pixels are over the limit of 8.3 megapixels per frame"),
])
def test_oversized_or_thin_frames_are_422_within_a_second_without_memory_growth(server, tmp_path, width, height,
                                                                                 reason):
    video = tmp_path / "thin.avi"
    _thin(video, width, height, frames=40 if width * height < 10**6 else 2)
    request = _post(server.port, "thin.avi", video.read_bytes())
    rss = server.kib("VmRSS")
    server.reset_peak()
    t0 = time.perf_counter()
    status, _, body = server.request(request)
    elapsed = time.perf_counter() - t0
    growth_mb = (server.kib("VmHWM") - rss) / 1024
    print(f"{width}x{height}: {status} in {elapsed * 1000:.0f} ms, peak memory growth {growth_mb:.1f} MB")
    assert status == 422 and json.loads(body)["detail"] == f"thin.avi: {reason}"
    assert elapsed < 1.0
    assert growth_mb < 100
    _still_serving(server, tmp_path)


def _chunked_attack(server: Server, *, declared: str, total: int) -> tuple[int, dict, bytes, int]:
    """Send a chunked multipart upload of ``total`` bytes (or until answered); returns the answer and bytes sent."""
    head, ctype = _multipart("big.avi", b"")
    head = head[: head.index(b"\r\n\r\n") + 4]
    request = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: {ctype}\r\n"
               f"{declared}Transfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"\x00" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(request + f"{len(head):x}\r\n".encode() + head + b"\r\n")
        s.setblocking(False)
        pending = b""
        while sent < total:
            readable, writable, _ = select.select([s], [s], [], 10)
            if readable:
                break
            if not writable:
                break
            if not pending:
                pending = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            try:
                n = s.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            pending, sent = pending[n:], sent + n
        s.setblocking(True)
        s.settimeout(30)
        status, headers, body = _read_response(s)
    return status, headers, body, sent


def test_chunked_upload_with_a_lying_content_length_is_cut_off_at_the_limit(server, tmp_path):
    rss = server.kib("VmRSS")
    server.reset_peak()
    t0 = time.perf_counter()
    status, headers, body, sent = _chunked_attack(server, declared="Content-Length: 10\r\n", total=300 * 2**20)
    elapsed = time.perf_counter() - t0
    growth_mb = (server.kib("VmHWM") - rss) / 1024
    detail = json.loads(body)["detail"]
    received = int(re.search(r"stopped reading after (\d+) bytes", detail).group(1))
    print(f"chunked: {status} after the server read {received} bytes ({sent} sent) in {elapsed:.2f} s, "
          f"peak memory growth {growth_mb:.1f} MB")
    assert status == 413 and detail.startswith(f"upload over the {LIMIT_MB} MB limit")
    assert LIMIT_MB * 2**20 < received <= LIMIT_MB * 2**20 + READ_BUFFER
    assert sent < 300 * 2**20 / 4  # the answer came long before the client was done
    assert headers.get("connection") == "close"
    assert growth_mb < 100
    _still_serving(server, tmp_path)


def test_an_honest_chunked_upload_is_accepted(server, tmp_path):
    video = tmp_path / "ok.avi"
    _moving_video(video, 12)
    body, ctype = _multipart("ok.avi", video.read_bytes())
    chunks = b"".join(f"{len(body[i:i + 4096]):x}\r\n".encode() + body[i:i + 4096] + b"\r\n"
                      for i in range(0, len(body), 4096))
    request = (f"POST /api/predict?explain=false HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: {ctype}\r\n"
               f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    status, _, answer = server.request(request, timeout=60)
    assert status == 200, answer


def test_declared_content_length_over_the_limit_is_413_before_the_body(server):
    request = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: multipart/form-data; "
               f"boundary=x\r\nContent-Length: {LIMIT_MB * 2**20 + 1}\r\n\r\n").encode()
    status, headers, body = server.request(request)  # no body sent at all: answered on the headers
    assert status == 413 and "over the 4 MB limit" in json.loads(body)["detail"]


@pytest.mark.parametrize("host,status", [
    ("evil.example", 400), ("evil.example:{port}", 400), ("127.0.0.1.nip.io:{port}", 400), ("", 400),
    ("localhost:{port}", 200), ("127.0.0.1:{port}", 200), ("[::1]:{port}", 200), ("LOCALHOST", 200),
])
def test_host_header_allow_list_refuses_dns_rebinding(server, host, status):
    got, _, body = server.request(_get("/api/model", server.port, host.format(port=server.port) or " "))
    assert got == status, body
    if status == 400:
        assert "is not a name of this server" in json.loads(body)["detail"]


@pytest.mark.parametrize("origin,status", [
    ("http://evil.example", 403), ("null", 403), ("http://127.0.0.1.evil.example", 403),
    ("http://127.0.0.1:{port}", 200), ("http://localhost:{port}", 200),
])
def test_requests_from_pages_of_other_sites_are_refused(server, tmp_path, origin, status):
    video = tmp_path / "ok.avi"
    _moving_video(video, 12)
    got, _, body = server.request(_post(server.port, "ok.avi", video.read_bytes(),
                                        f"Origin: {origin.format(port=server.port)}\r\n"), timeout=60)
    assert got == status, body


def test_security_headers_and_no_api_docs_by_default(server):
    status, headers, page = server.request(_get("/", server.port))
    assert status == 200
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "'sha256-" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    for path in ("/docs", "/redoc", "/openapi.json"):
        got, headers, _ = server.request(_get(path, server.port))
        assert got == 404 and headers["x-content-type-options"] == "nosniff"


def test_the_page_script_matches_its_csp_hash(server):
    import base64
    import hashlib

    _, headers, page = server.request(_get("/", server.port))
    [script] = re.findall(rb"<script>(.*?)</script>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(script).digest()).decode()
    assert f"'sha256-{digest}'" in headers["content-security-policy"]


def test_slow_headers_are_cut_off_and_serving_goes_on(server, tmp_path):
    slow = []
    for _ in range(10):  # a slowloris: headers that never end
        s = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S * 5)
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.append(s)
    t0 = time.perf_counter()
    status, _, _ = server.request(_get("/api/model", server.port))
    assert status == 200  # served meanwhile
    for s in slow:
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        s.close()
        assert data.startswith(b"HTTP/1.1 408")
    assert time.perf_counter() - t0 < TIMEOUT_S * 3


def test_a_stalled_body_is_408(server, tmp_path):
    body, ctype = _multipart("ok.avi", b"\x00" * 1000)
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT_S * 5) as s:
        s.sendall((f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: {ctype}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:300])
        t0 = time.perf_counter()
        status, _, answer = _read_response(s)
    assert status == 408 and "stalled" in json.loads(answer)["detail"]
    assert TIMEOUT_S * 0.9 < time.perf_counter() - t0 < TIMEOUT_S * 3
    _still_serving(server, tmp_path)


def test_docs_only_when_asked_for(package):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from dualstream.serve import create_app

    with_docs = TestClient(create_app(package, docs=True), base_url="http://localhost")
    assert with_docs.get("/docs").status_code == 200 and with_docs.get("/openapi.json").status_code == 200
    assert "cdn.jsdelivr.net" in with_docs.get("/docs").headers["content-security-policy"]
    without = TestClient(create_app(package), base_url="http://localhost")
    assert without.get("/docs").status_code == 404
