"""Web demo: upload a video, see the top-5 as a bar chart and the explanation image.

``create_app`` builds a FastAPI app around one model package:

* ``GET /``: the page (``static/index.html``);
* ``GET /api/model``: the model's name, classes and input spec;
* ``POST /api/predict`` (multipart field ``file``; query ``explain``, default true, ``topk``,
  default 5, and ``timeline``, default false): ``{"video", "clips", "top": [{"class", "probability"}],
  "explanation": "data:image/png;base64,..." | null, "timeline": {...} | null}``, the timeline being
  ``dualstream predict --timeline --json``'s (segments, windows, class colours).

Bad uploads get a 4xx answer whose JSON ``detail`` says what is wrong: 411 without a
Content-Length, 413 over the size limit, 415 for a file that is not a video, 422 for a video that
cannot be decoded or is too short. Nothing of a request outlives it, so the server goes on serving.
"""

from __future__ import annotations

import base64
import os
import tempfile
import threading
from pathlib import Path

from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from ..explain import render_explanation
from ..predict import DEFAULT_CLIPS, Predictor
from ..timeline import predict_timeline
from ..video import VIDEO_EXTENSIONS, VideoReadError

DEFAULT_MAX_UPLOAD_MB = 200
STATIC = Path(__file__).parent / "static"
PREDICT_PATH = "/api/predict"


class UploadLimit:
    """ASGI middleware: answer an upload to PREDICT_PATH that is too large before reading its body."""

    def __init__(self, app, *, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == PREDICT_PATH and scope["method"] == "POST":
            length = dict(scope["headers"]).get(b"content-length", b"")
            detail, status = None, 0
            if not length.isdigit():
                detail, status = "uploads need a Content-Length header", 411
            elif int(length) > self.max_bytes:
                detail, status = (f"upload of {int(length) / 2**20:.1f} MB is over the "
                                  f"{self.max_bytes / 2**20:g} MB limit"), 413
            if detail:
                await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(model: str | os.PathLike | Predictor, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               clips: int = DEFAULT_CLIPS, runtime: str | None = None) -> FastAPI:
    """The web demo app for a model package path or exported .onnx (or a loaded Predictor)."""
    predictor = model if isinstance(model, Predictor) else Predictor.load(model, runtime=runtime)
    max_bytes = int(max_upload_mb * 2**20)
    lock = threading.Lock()  # one prediction at a time: the model's attention recording is shared state
    app = FastAPI(title="dualstream", description=__doc__)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return (STATIC / "index.html").read_text()

    @app.get("/api/model")
    def model_info() -> dict:
        spec = predictor.spec
        return {"name": spec["name"], "classes": predictor.classes, "frames": spec["frames"],
                "interval": spec.get("interval"), "input_size": spec["input_size"],
                "flow_method": predictor.input.flow_method, "runtime": predictor.runtime,
                "max_upload_mb": max_upload_mb}

    def run(path: str, name: str, explain: bool, topk: int, timeline: bool) -> dict:
        with lock:
            built = predictor.clips(path, clips=clips)
            pred = predictor.run(built, video=name, attention=explain)
            result = pred.to_dict(topk)
            png = render_explanation(built, pred, topk=topk) if explain else None
            windows, note = None, None
            if timeline:
                try:
                    windows = predict_timeline(predictor, path)
                except VideoReadError as exc:  # too short for one window: the top-5 still stands
                    note = exc.reason
        result["explanation"] = "data:image/png;base64," + base64.b64encode(png).decode() if png else None
        result["timeline"], result["timeline_note"] = None, note
        if windows is not None:
            windows.video = name
            result["timeline"] = windows.to_dict(topk)
        return result

    @app.post(PREDICT_PATH)
    async def predict(file: UploadFile = File(...), explain: bool = True, topk: int = 5,
                      timeline: bool = False) -> dict:
        name = os.path.basename(file.filename or "upload")
        suffix = Path(name).suffix.lower()
        if topk < 1:
            raise HTTPException(422, "topk must be >= 1")
        if file.size is not None and file.size > max_bytes:
            raise HTTPException(413, f"upload is over the {max_upload_mb:g} MB limit")
        looks_like_video = suffix in VIDEO_EXTENSIONS or (file.content_type or "").startswith("video/")
        if not looks_like_video:
            raise HTTPException(415, f"{name}: not a video file (expected one of {' '.join(VIDEO_EXTENSIONS)})")
        with tempfile.TemporaryDirectory(prefix="dualstream-upload-") as tmp:
            path = os.path.join(tmp, "upload" + (suffix if suffix in VIDEO_EXTENSIONS else ".mp4"))
            with open(path, "wb") as fh:
                while chunk := await file.read(1 << 20):
                    fh.write(chunk)
            try:
                return await run_in_threadpool(run, path, name, explain, topk, timeline)
            except VideoReadError as exc:
                status = 415 if exc.reason.startswith("not a video") else 422
                raise HTTPException(status, f"{name}: {exc.reason}") from None

    app.add_middleware(UploadLimit, max_bytes=max_bytes)
    return app


def serve(model: str | os.PathLike | Predictor, *, host: str = "127.0.0.1", port: int = 8000,
          max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, clips: int = DEFAULT_CLIPS, runtime: str | None = None) -> None:
    """Run the web demo with uvicorn until interrupted."""
    import uvicorn

    app = create_app(model, max_upload_mb=max_upload_mb, clips=clips, runtime=runtime)
    uvicorn.run(app, host=host, port=port, log_level="info")
