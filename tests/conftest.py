"""Shared fixtures: a tiny synthetic dataset and its prepared cache (made once per session), synthetic
flow pairs with known flow, and the real data in ../shared/data when present."""

from __future__ import annotations

import os
import shutil

# Triton reads TRITON_INTERPRET when its language module and each kernel are defined, and torch may import
# Triton long before test_flow_triton.py does, so it is set here, first: without a GPU the Triton kernels run
# in Triton's interpreter on CPU tensors (tests/test_flow_triton.py). It changes nothing else on the CPU.
if shutil.which("nvidia-smi") is None:
    os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dualstream.prepare.common import PrepareOptions
from dualstream.prepare.run import prepare_dataset  # noqa: E402
from dualstream.prepare.synthetic import SyntheticSpec, generate  # noqa: E402
from dualstream.flow import has_contrib  # noqa: E402
from dualstream.flow._torch import base_grid, warp  # noqa: E402
from dualstream.video import iter_frames  # noqa: E402

# The flow solvers run thousands of small tensor ops; on a shared 2-core machine one intra-op thread is an
# order of magnitude faster than two (measured 0.57 s against 8.7 s for TV-L1 on a 128x128 crop under load).
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MIDDLEBURY = SHARED_DATA / "middlebury"
TINY = SyntheticSpec(classes=3, videos_per_class=4, frames=16, size=48, seed=3)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test when the shared data is absent (a user's clone)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def read_video(path) -> np.ndarray:
    """A whole video decoded: uint8 RGB (T, H, W, 3)."""
    return np.stack(list(iter_frames(path)))


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("tiny") / "data", TINY, progress=False)


@pytest.fixture(scope="session")
def tiny_cache(tiny_dataset, tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("tiny_cache") / "cache"
    summary = prepare_dataset(tiny_dataset / "videos", cache, PrepareOptions(short_side=0), workers=1, progress=False)
    assert summary.failed == 0 and summary.prepared == TINY.classes * TINY.videos_per_class
    return cache


#: Skip reason of tests that run OpenCV DualTVL1 where cv2 lacks the contrib modules (e.g. plain opencv-python).
NO_CONTRIB = "opencv-tvl1 needs opencv-contrib-python[-headless]; this cv2 has no contrib modules (tvl1 needs none)"


def with_contrib_skip(methods) -> list:
    """Flow method names for parametrize, 'opencv-tvl1' marked to skip (with the reason) without OpenCV contrib."""
    mark = pytest.mark.skipif(not has_contrib(), reason=NO_CONTRIB)
    return [pytest.param(m, marks=mark) if m == "opencv-tvl1" else m for m in methods]


def synthetic_pair(n: int = 1, height: int = 64, width: int = 80, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Smooth random texture (0..255) and its warp by a smooth field: returns (prev, nxt) (N, H, W) and flow (N, 2, H, W).

    nxt(x) = prev(x - flow(x)) approximately, i.e. prev moved by +flow.
    """
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 1, height // 8, width // 8, generator=gen)
    prev = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)
    prev = (prev.clamp(0, 1) * 255)  # (N, 1, H, W)
    ys, xs = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    flow = torch.stack((1.2 + 0.6 * torch.sin(ys / 15), -0.7 + 0.5 * torch.cos(xs / 20)))[None].repeat(n, 1, 1, 1)
    nxt = warp(prev, -flow, base_grid(height, width, device=torch.device("cpu")), mode="bicubic")
    return prev[:, 0], nxt[:, 0], flow


def interior_epe(flow: torch.Tensor | np.ndarray, truth: torch.Tensor, margin: int = 6) -> float:
    """Mean end-point error away from the border (where the synthetic warp has no true correspondence)."""
    flow = torch.as_tensor(flow)
    return float((flow - truth).norm(dim=1)[:, margin:-margin, margin:-margin].mean())


@pytest.fixture(scope="session")
def middlebury() -> Path:
    if not (MIDDLEBURY / "RubberWhale" / "flow10.flo").is_file():
        pytest.skip(f"Middlebury data not found at {MIDDLEBURY}")
    return MIDDLEBURY


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> Path:
    """The tiny package of test_predict exported to ONNX once per session: DIR/model.onnx with
    DIR/model.json beside it (as a run folder after ``dualstream export --out RUN/model.onnx``)."""
    pytest.importorskip("onnxruntime", reason="the onnx runtime needs onnxruntime (test extra)")
    pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (export extra)")
    from dualstream.inference.export import export_model

    from .test_predict import make_package

    folder = tmp_path_factory.mktemp("onnx_run")
    make_package(folder)
    export_model(folder, fmt="onnx", out=folder / "model.onnx")
    return folder / "model.onnx"
