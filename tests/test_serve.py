"""serve: the JSON endpoint, the page, and clear 4xx answers after which the server keeps serving."""

from __future__ import annotations

import base64
import warnings

import pytest

pytest.importorskip("fastapi", reason="the web demo needs the 'serve' extra (fastapi, uvicorn, python-multipart)")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx (test extra)")

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its TestClient; httpx still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from dualstream.cli import build_parser, main  # noqa: E402
from dualstream.inference.runtime import load_predictor  # noqa: E402
from dualstream.serve import DEFAULT_BUDGET, DEFAULT_MAX_UPLOADS, create_app  # noqa: E402

from .test_predict import CLASSES, _moving_video, package  # noqa: E402, F401  (package: the fixture)


@pytest.fixture(scope="module")
def client(package):
    return TestClient(create_app(package, max_upload_mb=0.5, clips=2), base_url="http://127.0.0.1:8000")


def _post(client, name: str, data: bytes, content_type: str = "video/x-msvideo", **params):
    return client.post("/api/predict", files={"file": (name, data, content_type)}, params=params)


def test_page_and_model_info(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="video"' in page.text and 'id="results"' in page.text
    info = client.get("/api/model").json()
    assert info["classes"] == CLASSES and info["max_upload_mb"] == 0.5


def test_predict_json_matches_the_cli_predictor(client, package, tiny_dataset):
    video = tiny_dataset / "videos" / "Grow" / "v_Grow_g01_c01.avi"
    response = _post(client, "grow.avi", video.read_bytes())
    assert response.status_code == 200
    body = response.json()
    expected = load_predictor(package).predict(video, clips=2)
    assert body["video"] == "grow.avi" and body["clips"] == 2
    assert [t["class"] for t in body["top"]] == [c for c, _ in expected.top(5)]
    assert [t["probability"] for t in body["top"]] == [round(p, 6) for _, p in expected.top(5)]
    prefix = "data:image/png;base64,"
    assert body["explanation"].startswith(prefix)
    assert base64.b64decode(body["explanation"][len(prefix):])[:4] == b"\x89PNG"
    plain = _post(client, "grow.avi", video.read_bytes(), explain="false", topk="1").json()
    assert plain["explanation"] is None and len(plain["top"]) == 1


def test_bad_uploads_get_clear_4xx_and_the_server_keeps_serving(client, tiny_dataset, tmp_path):
    text = _post(client, "notes.txt", b"hello", "text/plain")
    assert text.status_code == 415
    assert text.json()["detail"].startswith("notes.txt: not a video file (expected one of .avi")

    garbage = _post(client, "clip.avi", b"\x00garbage" * 100)
    assert garbage.status_code == 415
    assert garbage.json()["detail"] == "clip.avi: not a video, or a format/codec FFmpeg cannot open"

    one = tmp_path / "one.avi"
    _moving_video(one, 1)
    short = _post(client, "one.avi", one.read_bytes())
    assert short.status_code == 422
    assert short.json()["detail"] == "one.avi: only 1 frame decoded; optical flow needs at least 2"

    big = _post(client, "big.avi", b"\x00" * (600 * 1024))
    assert big.status_code == 413
    assert big.json()["detail"].endswith("MB is over the 0.5 MB limit")

    assert client.post("/api/predict").status_code == 422  # no file field
    video = tiny_dataset / "videos" / "MoveUp" / "v_MoveUp_g01_c01.avi"
    assert _post(client, "ok.avi", video.read_bytes(), explain="false").status_code == 200


def test_serve_binds_to_localhost_by_default(package):
    args = build_parser().parse_args(["serve", "--model", str(package)])
    assert (args.host, args.port, args.max_upload_mb) == ("127.0.0.1", 8000, 200.0)
    assert (args.budget_frames, args.budget_megapixels * 1e6, args.budget_seconds, args.max_uploads) == (
        DEFAULT_BUDGET.max_frames, DEFAULT_BUDGET.max_pixels, DEFAULT_BUDGET.seconds, DEFAULT_MAX_UPLOADS)


@pytest.mark.parametrize("option,value,message", [
    ("--budget-frames", "0", "--budget-frames and --max-uploads must be >= 1"),
    ("--max-uploads", "0", "--budget-frames and --max-uploads must be >= 1"),
    ("--budget-megapixels", "0", "--budget-megapixels and --budget-seconds must be positive"),
    ("--budget-seconds", "nan", "--budget-megapixels and --budget-seconds must be positive"),
])
def test_serve_refuses_a_budget_that_is_not_positive_in_one_line(package, capsys, option, value, message):
    assert main(["serve", "--model", str(package), option, value]) == 2
    assert capsys.readouterr().err == f"dualstream serve: error: {message}\n"
