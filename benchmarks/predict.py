"""End-to-end latency of ``dualstream predict`` on a 7-second 320x240 video on this machine.

    python benchmarks/predict.py --model RUN [--onnx FILE] [--video FILE] [--clips K] [--repeat N] [--threads N]

Without ``--video`` it writes a 7-second 320x240 25 fps XviD AVI of a moving texture (175 frames).
Without ``--onnx`` it uses RUN/model.onnx, exporting it first when missing. For the torch runtime
(the run folder) and the onnx runtime (the .onnx) it prints:

* ``cli``: wall time of the whole command ``python -m dualstream predict VIDEO --model M``
  (interpreter start, imports, model load, decode, flow, network): the median and range of
  ``--cli-repeat`` runs, the two runtimes alternating so that both see the same load, and the
  median CPU time (user + system) of the process, which load changes much less than wall time;
* ``first``: model load + first prediction inside one process (imports already done);
* ``warm``: the median of ``--repeat`` further predictions, split into decode (with resize),
  flow, transform and network;
* the top-1 class of each runtime.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dualstream.inference.predict import DEFAULT_CLIPS, build_clips
from dualstream.inference.runtime import load_predictor
from dualstream.video import video_info, write_video

SECONDS, FPS, WIDTH, HEIGHT = 7, 25, 320, 240


def make_video(path: Path) -> Path:
    """A 7 s 320x240 XviD video of a smooth random texture panning 2 px per frame."""
    import cv2

    rng = np.random.default_rng(0)
    frames = SECONDS * FPS
    texture = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH + 2 * frames, 3), dtype=np.uint8), (9, 9), 0)
    write_video(path, np.stack([texture[:, 2 * t:2 * t + WIDTH] for t in range(frames)]), fps=FPS, fourcc="XVID")
    return path


def onnx_model(run: str, onnx: str | None) -> Path:
    """``onnx`` or RUN/model.onnx, exported from the run first when it does not exist."""
    path = Path(onnx) if onnx else Path(run) / "model.onnx"
    if not path.is_file():
        from dualstream.inference.export import export_model

        print(export_model(run, fmt="onnx", out=path).line())
    return path


def machine_line(threads: int) -> str:
    load = os.getloadavg()
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; torch {torch.__version__}, threads {threads}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="run folder or model package (e.g. the demo's demo_out/run)")
    ap.add_argument("--onnx", help="exported model (default RUN/model.onnx, exported when missing)")
    ap.add_argument("--video", help="video to time (default: a generated 7 s 320x240 XviD clip)")
    ap.add_argument("--clips", type=int, default=DEFAULT_CLIPS, help=f"clips per video (default {DEFAULT_CLIPS})")
    ap.add_argument("--repeat", type=int, default=5, help="warm predictions to take the median of")
    ap.add_argument("--cli-repeat", type=int, default=5, help="whole-command runs per runtime")
    ap.add_argument("--threads", type=int, default=0, help="runtime threads (default 0: the runtime's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = {"torch": args.model, "onnx": str(onnx_model(args.model, args.onnx))}
    with tempfile.TemporaryDirectory(prefix="dualstream-bench-") as tmp:
        video = Path(args.video) if args.video else make_video(Path(tmp) / "seven_seconds.avi")
        info = video_info(video)
        print(machine_line(args.threads or torch.get_num_threads()))
        print(f"video: {video.name} {info['width']}x{info['height']}, {info['declared_frames']} frames at "
              f"{info['fps']:.2f} fps; clips {args.clips}")

        walls: dict[str, list[float]] = {name: [] for name in models}
        cpus: dict[str, list[float]] = {name: [] for name in models}
        for _ in range(args.cli_repeat):
            for name, model in models.items():
                cmd = [sys.executable, "-m", "dualstream", "predict", str(video), "--model", model,
                       "--clips", str(args.clips), "--threads", str(args.threads)]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                walls[name].append(time.perf_counter() - t)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        for name, times in walls.items():
            print(f"cli    {name:<5} {statistics.median(times):6.3f} s  (median of {len(times)}, range "
                  f"{min(times):.3f}-{max(times):.3f}; CPU time {statistics.median(cpus[name]):.3f} s; "
                  "python -m dualstream predict, process start to exit)")
        print(f"cli    onnx / torch: {statistics.median(walls['onnx']) / statistics.median(walls['torch']):.2f}")

        for name, model in models.items():
            t = time.perf_counter()
            predictor = load_predictor(model)
            t_load = time.perf_counter()
            first: dict[str, float] = {}
            clips = build_clips(video, predictor.input, clips=args.clips, flow_device=predictor.flow_device,
                                timings=first)
            t_net = time.perf_counter()
            pred = predictor.run(clips)
            end = time.perf_counter()
            print(f"first  {name:<5} {end - t:6.3f} s  (in process: load {t_load - t:.3f}, decode {first['decode']:.3f}, "
                  f"flow {first['flow']:.3f}, transform {first['transform']:.3f}, network {end - t_net:.3f})  "
                  f"top-1 {pred.top(1)[0][0]} {pred.top(1)[0][1]:.4f}")

            runs = []
            for _ in range(args.repeat):
                stages: dict[str, float] = {}
                t = time.perf_counter()
                clips = build_clips(video, predictor.input, clips=args.clips, flow_device=predictor.flow_device,
                                    timings=stages)
                t_net = time.perf_counter()
                predictor.run(clips)
                stages["network"] = time.perf_counter() - t_net
                stages["total"] = time.perf_counter() - t
                runs.append(stages)
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            parts = ", ".join(f"{k} {med[k]:.3f}" for k in ("decode", "flow", "transform", "network"))
            print(f"warm   {name:<5} {med['total']:6.3f} s  (median of {args.repeat}: {parts}; "
                  f"{len({i for c in clips.indices for i in c})} flow pairs)")


if __name__ == "__main__":
    main()
