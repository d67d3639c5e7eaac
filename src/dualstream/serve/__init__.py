"""Web demo: upload a video, see the top-5 as a bar chart, the explanation image and the timeline.

* ``GET /``: the page; ``GET /api/model``: the model's name, classes and input spec;
* ``POST /api/predict`` (multipart field ``file``; query ``explain`` (true), ``topk`` (5), ``timeline``
  (false)): ``{"video", "clips", "top": [{"class", "probability"}], "explanation": "data:image/png;base64,..."
  | null, "timeline": predict --timeline --json's | null, "timeline_note"}``.

A bad upload gets a 4xx (413, 415, 422, 503: README "Using a trained model") whose JSON ``detail`` says what is
wrong; a model that answers NaN gets a 500, never a 200."""

from __future__ import annotations

import base64
import math
import os
import socket
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from ..inference.explain import render_explanation
from ..inference.package import ModelPackageError
from ..inference.predict import DEFAULT_CLIPS, Predictor
from ..inference.runtime import load_predictor
from ..inference.timeline import predict_timeline
from ..text import UserError
from ..video import VIDEO_EXTENSIONS, BudgetExceeded, DecodeBudget, FrameLimits, VideoReadError
from .guard import WILDCARD_BINDS, Guard, SlowClientProtocol, allowed_host_names, host_name, page_csp

DEFAULT_MAX_UPLOAD_MB = 200
#: Frames larger than 4K UHD, or thinner than 10:1, are refused (422) before they are resized.
DEFAULT_FRAME_LIMITS = FrameLimits(max_pixels=3840 * 2160, max_aspect=10.0)
DEFAULT_TIMEOUT_S = 30.0
#: What one request may make the server decode, and for how long it may run (413 beyond).
DEFAULT_BUDGET = DecodeBudget(max_frames=20_000, max_pixels=2_000 * 10**6, seconds=60.0)
#: Prediction requests in flight at once (uploading, or predicting); 503 beyond, before the body is read.
DEFAULT_MAX_UPLOADS = 4
STATIC = Path(__file__).parent / "static"
PREDICT_PATH = "/api/predict"
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


def create_app(model: str | os.PathLike | Predictor, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               clips: int = DEFAULT_CLIPS, docs: bool = False, allowed_hosts: list[str] | None = None,
               frame_limits: FrameLimits = DEFAULT_FRAME_LIMITS, timeout_s: float = DEFAULT_TIMEOUT_S,
               budget: DecodeBudget = DEFAULT_BUDGET, max_uploads: int = DEFAULT_MAX_UPLOADS) -> FastAPI:
    """The web demo app for a model package path or exported .onnx (or a loaded Predictor). ``allowed_hosts``:
    the Host names answered besides the localhost names (``"*"``: any); ``timeout_s``: the longest pause in an
    upload's body; ``budget``: each request's, restarted when its prediction starts."""
    predictor = model if isinstance(model, Predictor) else load_predictor(model)
    max_bytes = int(max_upload_mb * 2**20)
    busy = threading.Lock()  # one prediction at a time: the model's attention recording is shared state
    running: list[DecodeBudget] = []  # the budget of the prediction that holds ``busy``
    urls = {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="dualstream", description=__doc__, **urls)
    html = (STATIC / "index.html").read_text()

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return html

    @app.get("/api/model")
    def model_info() -> dict:
        spec = predictor.spec
        return {"name": spec["name"], "classes": predictor.classes, "frames": spec["frames"],
                "interval": spec.get("interval"), "sampling": predictor.input.sampling,
                "input_size": spec["input_size"], "flow_method": predictor.input.flow_method,
                "runtime": predictor.runtime, "max_upload_mb": max_upload_mb}

    def run(path: str, name: str, explain: bool, topk: int, timeline: bool) -> dict:
        if not busy.acquire(blocking=False):
            other = list(running)  # a copy: the running prediction may end meanwhile
            wait = max(1, math.ceil(other[0].remaining())) if other else 1
            raise HTTPException(503, f"{name}: the server is predicting another video; try again in {wait} s",
                                headers={"Retry-After": str(wait)})
        try:
            running[:] = [budget.restarted()]
            limits = replace(frame_limits, budget=running[0])
            built = predictor.clips(path, clips=clips, limits=limits)
            pred = predictor.run(built, video=name, attention=explain)
            result = {**pred.to_dict(topk), "explanation": None, "timeline": None, "timeline_note": None}
            if explain:
                png = base64.b64encode(render_explanation(built, pred, topk=topk)).decode()
                result["explanation"] = "data:image/png;base64," + png
            if timeline:
                try:
                    found = predict_timeline(predictor, path, limits=limits)
                    result["timeline"] = replace(found, video=name).to_dict(topk)
                except BudgetExceeded:
                    raise
                except VideoReadError as exc:  # too short for one window: the top-5 still stands
                    result["timeline_note"] = exc.reason
        finally:
            running.clear()
            busy.release()
        return result

    @app.post(PREDICT_PATH)
    async def predict(file: UploadFile = File(...), explain: bool = True, topk: int = 5,
                      timeline: bool = False) -> dict:
        name = os.path.basename(file.filename or "upload")
        suffix = Path(name).suffix.lower()
        if topk < 1:
            raise HTTPException(422, "topk must be >= 1")
        if suffix not in VIDEO_EXTENSIONS and not (file.content_type or "").startswith("video/"):
            raise HTTPException(415, f"{name}: not a video file (expected one of {' '.join(VIDEO_EXTENSIONS)})")
        with tempfile.TemporaryDirectory(prefix="dualstream-upload-") as tmp:
            path = os.path.join(tmp, "upload" + (suffix if suffix in VIDEO_EXTENSIONS else ".mp4"))
            with open(path, "wb") as fh:
                while chunk := await file.read(1 << 20):
                    fh.write(chunk)
            await file.close()  # the parser's copy: one copy of the upload on disk from here on
            try:
                return await run_in_threadpool(run, path, name, explain, topk, timeline)
            except BudgetExceeded as exc:
                raise HTTPException(413, f"{name}: {exc.reason}") from None
            except VideoReadError as exc:
                status = 415 if exc.reason.startswith("not a video") else 422
                raise HTTPException(status, f"{name}: {exc.reason}") from None
            except ModelPackageError as exc:  # the model's fault, not the upload's: its path stays on the server
                raise HTTPException(500, str(exc).removeprefix(f"{predictor.where}: ")) from None

    app.add_middleware(Guard, allowed_hosts=allowed_host_names("127.0.0.1", allowed_hosts or []),
                       max_body=max_bytes, csp=page_csp(html), docs_paths=DOCS_PATHS if docs else (),
                       upload_path=PREDICT_PATH, max_uploads=max_uploads,
                       idle_timeout=timeout_s, body_timeout=timeout_s + max_bytes / 2**20)  # >= 1 MB/s
    return app


def serve(model: str | os.PathLike | Predictor | Callable[[], Predictor], *, host: str = "127.0.0.1",
          port: int = 8000, allowed_hosts: list[str] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
          max_connections: int = 64, **options) -> None:
    """Run ``create_app(model, **options)`` with uvicorn until interrupted, answering ``host`` and
    ``allowed_hosts`` (names or comma-separated lists of names; ``"*"``: any) too; request headers must arrive
    within ``timeout_s``; at ``max_connections`` open a new connection closes the one that has waited longest for
    its request headers (503 when every connection has a request). A malformed name or an address that cannot be
    bound is a one-line UserError before ``model`` (a path, or a function that loads it) is loaded."""
    import uvicorn

    hosts = [h.strip() for item in allowed_hosts or [] for h in item.split(",") if h.strip()]
    bad = [h for h in hosts if h != "*" and host_name(h) is None]
    if bad:
        raise UserError(f"--allow-host {bad[0]!r}: not a host name or address")
    try:  # a taken port or an address not of this machine
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if host in WILDCARD_BINDS and not hosts:
        print("note: serving on every interface, but only requests for localhost, 127.0.0.1 or ::1 are "
              "answered; add this machine's name or address with --allow-host", file=sys.stderr)
    app = create_app(model() if callable(model) else model, allowed_hosts=allowed_host_names(host, hosts),
                     timeout_s=timeout_s, **options)
    protocol = type("Protocol", (SlowClientProtocol,), {"header_timeout": timeout_s})
    uvicorn.run(app, host=host, port=port, log_level="info", http=protocol, limit_concurrency=max_connections,
                timeout_keep_alive=5, h11_max_incomplete_event_size=16 * 1024)
