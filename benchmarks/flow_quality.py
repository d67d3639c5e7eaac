"""Flow accuracy on Middlebury (4 shared sequences) and on generated pairs with known flow, one run, with cost.

    python benchmarks/flow_quality.py                                   # opencv-tvl1, tvl1, tvl1-quality
    python benchmarks/flow_quality.py --settings '{"method": "tvl1", "warps": 10}' '{"method": "tvl1-quality"}'

The generated pairs (``benchmarks/flow_pairs.py``) warp real UCF-101 frames (../shared/data/ucf101, else
procedural textures) by smooth fields and by an affine background with an occluding foreground layer, so a
setting chosen on the four Middlebury sequences is checked on motion it was not tuned on. Seconds are wall time
per pair for the Middlebury part (full resolution) with the torch/OpenCV thread counts printed in the header.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dualstream.flow import compute_flow, endpoint_error, has_contrib  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_pairs import KINDS, make_pair, procedural_texture  # noqa: E402
from flow import load_middlebury  # noqa: E402

UCF = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ucf101" / "videos"
CLIPS = ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "BaseballPitch/v_BaseballPitch_g01_c01.avi")


def textures(count: int) -> tuple[list[np.ndarray], str]:
    """``count`` gray 320x240 textures: frames of the two shared UCF-101 clips, else procedural ones."""
    found = []
    for clip in CLIPS:
        cap = cv2.VideoCapture(str(UCF / clip))
        index = 0
        while len(found) < count and cap.isOpened():
            ok, frame = cap.read()
            if not ok:
                break
            if index % 45 == 5:
                found.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
            index += 1
        cap.release()
    if len(found) >= count // 2:
        return (found * 2)[:count] if len(found) < count else found[:count], "UCF-101 frames"
    return [procedural_texture(240, 320, seed=s) for s in range(count)], "procedural textures"


def generated_pairs(count: int) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], str]:
    texs, source = textures(count)
    pairs = [make_pair(t, KINDS[k % 2], seed=100 + k, magnitude=2.0 + 1.5 * (k % 3)) for k, t in enumerate(texs)]
    return pairs, source


def evaluate(pairs, method: str, params: dict) -> tuple[float, float]:
    """(mean EPE, seconds per pair) over ``pairs``."""
    errors, start = [], time.perf_counter()
    for a, b, gt in pairs:
        flow = compute_flow(a, b, method=method, **params)[0].transpose(1, 2, 0)
        errors.append(endpoint_error(flow, gt))
    return float(np.mean(errors)), (time.perf_counter() - start) / len(pairs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=['{"method": "opencv-tvl1"}', '{"method": "tvl1"}',
                                                      '{"method": "tvl1-quality"}'],
                    help="JSON objects: 'method' plus solver parameters; one row each")
    ap.add_argument("--generated", type=int, default=8, help="generated pairs with known flow (default 8)")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    ap.add_argument("--no-middlebury", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    middlebury = None if args.no_middlebury else load_middlebury()
    generated, source = generated_pairs(args.generated)
    print(f"# torch={torch.__version__} threads={args.threads}  opencv={cv2.__version__}  "
          f"loadavg={os.getloadavg()[0]:.1f}  Middlebury: {'4 sequences' if middlebury else 'absent'}  "
          f"generated: {len(generated)} pairs from {source}")
    print("| setting | Middlebury mean EPE | s/pair (Middlebury) | generated mean EPE | s/pair (generated) |")
    print("|---|---|---|---|---|")
    for text in args.settings:
        prm = json.loads(text)
        method = prm.pop("method", "tvl1")
        if method == "opencv-tvl1" and not has_contrib():
            print(f"| {text} | skipped: no OpenCV contrib | | | |")
            continue
        if method.startswith("tvl1"):
            compute_flow(generated[0][0], generated[0][1], method=method, **prm)  # warm-up (torch.compile)
        mid = evaluate(middlebury, method, prm) if middlebury else (float("nan"), float("nan"))
        gen = evaluate(generated, method, prm)
        print(f"| {text} | {mid[0]:.4f} | {mid[1]:.2f} | {gen[0]:.4f} | {gen[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
