"""``dualstream live`` throughput and latency, the torch and ONNX runtimes side by side.

    python benchmarks/live.py --model RUN [--onnx RUN/model.onnx] [--video FILE] [--stride N] [--smooth K]
                              [--threads N] [--repeat R]

Without ``--video`` it writes the 7-second 320x240 25 fps XviD clip of ``benchmarks/predict.py``
(175 frames); without ``--onnx`` it uses RUN/model.onnx, exporting it first when missing. Each
runtime processes every frame of the file as fast as it can (no ``--realtime``), ``--repeat`` times,
alternating runtimes so that both see the same load; it prints, per runtime, the median frames/s
and the latency percentiles (the frame completing a window -> smoothed probabilities) of the
median run, and checks that every live prediction equals ``predict`` on the same frames (top-1 and
max abs difference of the probabilities).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import machine_line, make_video, onnx_model  # noqa: E402  (benchmarks/predict.py)

from dualstream.inference.live import run_live  # noqa: E402
from dualstream.inference.window import SlidingWindow  # noqa: E402
from dualstream.inference.predict import Predictor, build_clips  # noqa: E402
from dualstream.inference.runtime import load_predictor
from dualstream.video import iter_frames, video_info  # noqa: E402


def check_against_predict(predictor: Predictor, video: Path, *, stride: int, smooth: int) -> tuple[int, int, float]:
    """(windows agreeing on top-1, windows, max abs probability difference) between live and predict."""
    window = SlidingWindow(predictor, stride=stride, smooth=smooth)
    preds = [p for p in map(window.push, iter_frames(video)) if p is not None]
    agree, worst = 0, 0.0
    for k, p in enumerate(preds):
        clips = [q.indices for q in preds[max(0, k - smooth + 1):k + 1]]
        ref = predictor.run(build_clips(video, predictor.input, indices=clips)).probabilities
        agree += int(np.argmax(ref) == np.argmax(p.probabilities))
        worst = max(worst, float(np.abs(ref - p.probabilities).max()))
    return agree, len(preds), worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="run folder (e.g. the demo's demo_out/run)")
    ap.add_argument("--onnx", help="exported model (default RUN/model.onnx, exported when missing)")
    ap.add_argument("--video", help="video to stream (default: a generated 7 s 320x240 XviD clip)")
    ap.add_argument("--stride", type=int, default=0, help="frames between predictions (default: the interval)")
    ap.add_argument("--smooth", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="runtime threads (default 1)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import torch

    from dualstream.inference.onnx_runtime import OnnxPredictor

    torch.set_num_threads(args.threads)
    runtimes = {"torch": load_predictor(args.model, runtime="torch"),
                "onnx": OnnxPredictor.load(onnx_model(args.model, args.onnx), threads=args.threads)}
    with tempfile.TemporaryDirectory(prefix="dualstream-live-bench-") as tmp:
        video = Path(args.video) if args.video else make_video(Path(tmp) / "seven_seconds.avi")
        info = video_info(video)
        print(machine_line(args.threads))
        spec = runtimes["torch"].input
        print(f"video: {video.name} {info['width']}x{info['height']}, {info['declared_frames']} frames at "
              f"{info['fps']:.2f} fps; model {runtimes['torch'].spec['name']} {spec.frames} frames x interval "
              f"{spec.interval}, {spec.input_size} px, {spec.flow_method} flow at short side {spec.short_side}; "
              f"stride {args.stride or spec.interval}, smooth {args.smooth}")
        results: dict[str, list] = {name: [] for name in runtimes}
        for _ in range(args.repeat):
            for name, predictor in runtimes.items():
                results[name].append(run_live(predictor, str(video), stride=args.stride, smooth=args.smooth))
        print(f"{'runtime':<8} {'frames/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'frames':>7} {'predictions':>12}  "
              f"live == predict (top-1, max |dp|)")
        fps = {}
        for name, runs in results.items():
            runs.sort(key=lambda s: s.fps)
            mid = runs[len(runs) // 2]
            fps[name] = statistics.median(s.fps for s in runs)
            agree, total, worst = check_against_predict(runtimes[name], video, stride=args.stride, smooth=args.smooth)
            print(f"{name:<8} {fps[name]:9.1f} {mid.percentile(50):8.2f} {mid.percentile(95):8.2f} {mid.frames:7d} "
                  f"{mid.predictions:12d}  {agree}/{total}, {worst:.1e}   (runs: "
                  + ", ".join(f"{s.fps:.1f}" for s in runs) + " frames/s)")
        print(f"onnx / torch frames/s: {fps['onnx'] / fps['torch']:.2f}")


if __name__ == "__main__":
    main()
