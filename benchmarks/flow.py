"""Optical-flow benchmark: Middlebury accuracy and 320x240 throughput of every compute_flow method, one run.

    python benchmarks/flow.py                      # all methods, batch 1 and 32, Middlebury EPE
    python benchmarks/flow.py --methods tvl1 opencv-tvl1 --batch 8 --threads 1
    python benchmarks/flow.py --tvl1 '{}' '{"epsilon": 0.005}' --device cuda --batch 64

Throughput frames are the Middlebury pairs resized to the benchmark size (real texture and motion, so the
solvers' stopping rules behave as on real data), repeated to fill the batch; synthetic textured pairs when the
data is absent. "batch 1" times --single pairs one call each; "batch B" times one call on B pairs (OpenCV
methods loop over the pairs). Each method is warmed up first (this includes torch.compile), untimed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dualstream.flow import FLOW_METHODS, compute_flow, endpoint_error, has_contrib, read_flo  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "middlebury"
SEQUENCES = ("RubberWhale", "Dimetrodon", "Grove2", "Venus")
REFERENCE = "opencv-tvl1"


def load_middlebury() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """(frame10, frame11, ground truth) per sequence as gray uint8 / (H, W, 2), or None when absent."""
    if not all((DATA / s / "flow10.flo").is_file() for s in SEQUENCES):
        return None
    out = []
    for s in SEQUENCES:
        a, b = (cv2.imread(str(DATA / s / f), cv2.IMREAD_GRAYSCALE) for f in ("frame10.png", "frame11.png"))
        out.append((a, b, read_flo(DATA / s / "flow10.flo")))
    return out


def speed_frames(data, size: tuple[int, int], count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` gray pairs (count, H, W) at ``size`` = (W, H): resized Middlebury pairs, or synthetic ones."""
    if data is not None:
        pairs = [tuple(cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (a, b)) for a, b, _ in data]
    else:
        rng = np.random.default_rng(0)
        pairs = []
        for _ in range(4):
            a = cv2.resize(rng.integers(0, 255, (size[1] // 8, size[0] // 8), dtype=np.uint8), size, interpolation=cv2.INTER_CUBIC)
            pairs.append((a, np.roll(a, (1, 2), axis=(0, 1))))
    idx = [i % len(pairs) for i in range(count)]
    return np.stack([pairs[i][0] for i in idx]), np.stack([pairs[i][1] for i in idx])


def pairs_per_second(method: str, a: np.ndarray, b: np.ndarray, *, one_by_one: bool, device: str, params: dict) -> float:
    start = time.perf_counter()
    if one_by_one:
        for x, y in zip(a, b):
            compute_flow(x, y, method=method, device=device, **params)
    else:
        compute_flow(a, b, method=method, device=device, **params)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(a) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=list(FLOW_METHODS), choices=FLOW_METHODS)
    ap.add_argument("--size", default="320x240", help="throughput frame size WxH (default 320x240)")
    ap.add_argument("--batch", type=int, default=32, help="pairs in the batched call (default 32)")
    ap.add_argument("--single", type=int, default=4, help="pairs timed one call each (default 4)")
    ap.add_argument("--device", default="cpu", help="device for tvl1/brox (cpu or cuda)")
    ap.add_argument("--threads", type=int, default=0, help="torch and OpenCV threads (0 = library defaults)")
    ap.add_argument("--tvl1", nargs="+", default=["{}"], help="JSON parameters for tvl1 (TVL1Params fields); "
                    "several settings give one row each")
    ap.add_argument("--brox", default="{}", help="JSON parameters for brox (BroxParams fields)")
    ap.add_argument("--no-epe", action="store_true", help="skip the Middlebury accuracy part")
    args = ap.parse_args(argv)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    runs = []  # (row label, method, params)
    for method in args.methods:
        if method == "tvl1":
            settings = [json.loads(t) for t in args.tvl1]
            runs += [(f"tvl1 {json.dumps(p)}" if p else "tvl1", "tvl1", p) for p in settings]
        else:
            runs.append((method, method, json.loads(args.brox) if method == "brox" else {}))
    if not has_contrib() and any(method == REFERENCE for _, method, _ in runs):
        print(f"# {REFERENCE} skipped: this OpenCV has no contrib modules (pip install opencv-contrib-python-headless)")
        runs = [r for r in runs if r[1] != REFERENCE]
    data = load_middlebury()
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  {platform.processor() or platform.machine()}  "
          f"cpus={os.cpu_count()}  torch={torch.__version__} threads={torch.get_num_threads()}  "
          f"opencv={cv2.__version__} threads={cv2.getNumThreads()}  loadavg={os.getloadavg()[0]:.1f}")
    print(f"# device={args.device}  size={width}x{height}  batch={args.batch}  single={args.single}  "
          f"speed frames="
          f"{'Middlebury resized' if data is not None else 'synthetic (Middlebury absent)'}")
    if data is None and not args.no_epe:
        print(f"# Middlebury data not found at {DATA}: EPE skipped")

    a, b = speed_frames(data, (width, height), max(args.batch, args.single))
    rows = {}
    for label, method, prm in runs:
        dev = args.device if method in ("tvl1", "brox") else "cpu"
        compute_flow(a[:1], b[:1], method=method, device=dev, **prm)  # warm-up (torch.compile, allocators)
        if dev != "cpu" or method in ("tvl1", "brox"):  # compiled graphs for the batch shapes
            compute_flow(a[: args.batch], b[: args.batch], method=method, device=dev, **prm)
        epe = float("nan")
        if data is not None and not args.no_epe:
            epe = float(np.mean([
                endpoint_error(compute_flow(x, y, method=method, device=dev, **prm)[0].transpose(1, 2, 0), gt)
                for x, y, gt in data
            ]))
        one = pairs_per_second(method, a[: args.single], b[: args.single], one_by_one=True, device=dev, params=prm)
        many = pairs_per_second(method, a[: args.batch], b[: args.batch], one_by_one=False, device=dev, params=prm)
        rows[label] = (epe, one, many)
        print(f"  done {label}: EPE {epe:.4f}  {one:.3f} / {many:.3f} pairs/s", flush=True)

    ref = rows.get(REFERENCE)
    print(f"\n| method | Middlebury mean EPE | pairs/s batch 1 | pairs/s batch {args.batch} | "
          f"x {REFERENCE} batch 1 | x {REFERENCE} batch {args.batch} |")
    print("|---|---|---|---|---|---|")
    for label, (epe, one, many) in rows.items():
        r1 = f"{one / ref[1]:.2f}" if ref else "-"
        rb = f"{many / ref[2]:.2f}" if ref else "-"
        print(f"| {label} | {epe:.4f} | {one:.3f} | {many:.3f} | {r1} | {rb} |")


if __name__ == "__main__":
    main()
