"""The demo, the main job: generate -> prepare -> train -> evaluate on the built-in synthetic data."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .config import demo_config_path, load_config
from .files import atomic_write_text
from .prepare.common import PrepareOptions
from .prepare.run import prepare_dataset
from .prepare.synthetic import SyntheticSpec, generate
from .engine.evaluate import evaluate_run
from .engine.train import train

TIMINGS = "timings.json"


def run_demo(out: str | Path = "demo_out", *, quiet: bool = False, overrides: list[str] = ()) -> dict:
    """Run every stage into ``out``; returns the evaluation result with stage timings (s) added."""
    out, spec = Path(out), SyntheticSpec()
    data, cache, run = out / "data", out / "cache", out / "run"
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if not (data / "ucfTrainTestlist" / "testlist01.txt").is_file():
        generate(data, spec, progress=not quiet)
    timings["generate"] = time.perf_counter() - t

    t = time.perf_counter()
    summary = prepare_dataset(data / "videos", cache, PrepareOptions(flow="dis", short_side=spec.size),
                              progress=not quiet)
    timings["prepare"] = time.perf_counter() - t
    if not quiet:
        print(summary.line(cache))

    # --set values are YAML: quote the paths (as JSON strings) so "#" or ": " in them stay literal
    paths = [f"data.cache={json.dumps(str(cache))}", f"data.splits={json.dumps(str(data / 'ucfTrainTestlist'))}"]
    cfg = load_config(demo_config_path(), [*paths, *overrides])
    t = time.perf_counter()
    train(cfg, run, progress=not quiet)
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    result = evaluate_run(run, progress=not quiet)
    timings["evaluate"] = time.perf_counter() - t
    atomic_write_text(out / TIMINGS, json.dumps({k: round(v, 3) for k, v in timings.items()}, indent=1))
    if not quiet:
        print("stage timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return {**result, "timings": timings}
