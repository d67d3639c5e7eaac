"""Shared fixtures: a tiny synthetic dataset and its prepared cache, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from dualstream.data.prepare import PrepareOptions, prepare_dataset
from dualstream.data.synthetic import SyntheticSpec, generate

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TINY = SyntheticSpec(classes=3, videos_per_class=4, frames=16, size=48, seed=3)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test when the shared data is absent (a user's clone)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("tiny") / "data", TINY, progress=False)


@pytest.fixture(scope="session")
def tiny_cache(tiny_dataset, tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("tiny_cache") / "cache"
    summary = prepare_dataset(tiny_dataset / "videos", cache, PrepareOptions(short_side=0), workers=1, progress=False)
    assert summary.failed == 0 and summary.prepared == TINY.classes * TINY.videos_per_class
    return cache
