"""Multi-view ``evaluate`` views/s of a trained run next to its model's forward-only clips/s (for gpu.sh).

    python benchmarks/gpu_evaluate.py RUN [--clips 10] [--crops 3] [--flip] [--json FILE]

Views/s is the whole ``evaluate_run`` (loader start-up included) over its views; the forward-only rate
runs the run's model on random batches of 25 already on the device, with the run's speed settings.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from dualstream.engine.accel import autocast, autocast_dtype, use_channels_last
from dualstream.inference.package import load_model
from dualstream.engine.evaluate import evaluate_run


def forward_rate(run: str, device: torch.device, *, seconds: float, batch: int = 25) -> float:
    model, spec = load_model(run, device=device)
    fmt = torch.channels_last if use_channels_last("auto", device) else torch.contiguous_format
    size, t = spec["input_size"], spec["frames"]
    rgb = torch.randn(batch, 3 * t, size, size, device=device).contiguous(memory_format=fmt)
    flow = torch.randn(batch, 2 * t, size, size, device=device).contiguous(memory_format=fmt)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad(), autocast(device, autocast_dtype("auto", device)):
        for _ in range(3):
            model(rgb, flow)
        sync()
        n, t0 = 0, time.perf_counter()
        while n < 2 or time.perf_counter() - t0 < seconds:
            model(rgb, flow)
            n += 1
        sync()
    return batch * n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--clips", type=int, default=10)
    ap.add_argument("--crops", type=int, default=3)
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    result = evaluate_run(args.run, clips=args.clips, crops=args.crops, flip=args.flip, progress=False, plots=False)
    wall = time.perf_counter() - t0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    forward = forward_rate(args.run, device, seconds=5 if device.type == "cuda" else 1)
    out = {"views": result["num_clips"], "wall_s": round(wall, 2), "views_per_s": round(result["num_clips"] / wall, 1),
           "forward_clips_per_s": round(forward, 1), "views_per_video": result["views_per_video"]}
    print(f"evaluate: {out['views']} views ({out['views_per_video']} per video) in {wall:.1f} s, start-up included: "
          f"{out['views_per_s']:.0f} views/s; model forward only: {forward:.0f} clips/s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
