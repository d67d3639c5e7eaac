"""Optical flow on a GPU: accuracy and pairs/s of the PyTorch reference and the Triton kernels, and the frames/s
of ``prepare --flow tvl1 --device cuda`` on 320x240 videos; one run, both sides of each comparison.

    python benchmarks/gpu_flow.py                 # on a GPU machine (benchmarks/gpu_flow.sh calls this)
    python benchmarks/gpu_flow.py --smoke         # the same code paths on the CPU, tiny sizes (Triton interpreted)

Needs only a source checkout: the accuracy pairs are generated with known flow (``benchmarks/flow_pairs.py``,
procedural textures, 320x240), the Middlebury sequences are added when ../shared/data is there, and the videos
for ``prepare`` are written here. Rows: tvl1 (reference = the PyTorch backend, check_every 1 and 10), tvl1
with the Triton backend, tvl1-quality (Triton), brox (PyTorch). "agree" is the largest difference in px between
a Triton row and the reference row on the generated pairs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if "--smoke" in sys.argv and not os.environ.get("TRITON_INTERPRET"):
    import torch as _torch

    if not _torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"  # before any Triton kernel is defined

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dualstream.prepare.common import PrepareOptions
from dualstream.prepare.run import prepare_dataset  # noqa: E402
from dualstream.flow import endpoint_error, torch_solver  # noqa: E402
from flow_pairs import KINDS, make_pair, procedural_texture  # noqa: E402
from flow import load_middlebury  # noqa: E402


def generated(count: int, height: int, width: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [make_pair(procedural_texture(height, width, seed=k), KINDS[k % 2], seed=200 + k,
                      magnitude=2.0 + 1.5 * (k % 3)) for k in range(count)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(method: str, a: np.ndarray, b: np.ndarray, device: torch.device, params: dict) -> np.ndarray:
    flow = torch_solver(method)(torch.from_numpy(a).to(device), torch.from_numpy(b).to(device), **params)
    return flow.cpu().numpy()


def rate(method: str, a: np.ndarray, b: np.ndarray, device: torch.device, params: dict, *, one_by_one: bool) -> float:
    sync(device)
    start = time.perf_counter()
    if one_by_one:
        for k in range(len(a)):
            run(method, a[k : k + 1], b[k : k + 1], device, params)
    else:
        run(method, a, b, device, params)
    sync(device)
    return len(a) / (time.perf_counter() - start)


def write_videos(root: Path, count: int, frames: int, height: int, width: int) -> None:
    """``count`` MJPEG videos (two classes) of a procedural texture drifting and rotating slowly."""
    for k in range(count):
        folder = root / f"Class{k % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        tex = procedural_texture(height + 64, width + 64, seed=1000 + k)
        out = cv2.VideoWriter(str(folder / f"v_Class{k % 2}_g{k:02d}_c01.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25,
                              (width, height))
        for t in range(frames):
            m = cv2.getRotationMatrix2D(((width + 64) / 2, (height + 64) / 2), 0.3 * t, 1.0)
            m[:, 2] += (1.5 * t % 32, 0.7 * t % 32)
            frame = cv2.warpAffine(tex, m, (width + 64, height + 64), borderMode=cv2.BORDER_REFLECT)[32:-32, 32:-32]
            out.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        out.release()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on whatever device there is (CPU: interpreted)")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--batch", type=int, default=256, help="pairs in the batched call (default 256)")
    ap.add_argument("--videos", type=int, default=160, help="320x240 videos of 40 frames for the prepare part "
                    "(default 160: 6,240 pairs, so that the workers' start-up, included, weighs little)")
    ap.add_argument("--workers", type=int, default=0, help="prepare CPU workers (default: cores - 2)")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    smoke = args.smoke
    height, width = (24, 32) if smoke else (240, 320)
    batch, single = (3, 1) if smoke else (args.batch, 4)
    fast = {"warps": 1, "inner_iterations": 5, "outer_iterations": 1, "nscales": 2} if smoke else {}
    brox_fast = {"solver_iterations": 2, "inner_iterations": 1, "nscales": 2} if smoke else {}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"# gpu_flow  {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC  device={device} ({name})  "
          f"torch={torch.__version__}  size={width}x{height}  batch={batch}  smoke={smoke}  "
          f"TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '0')}", flush=True)
    pairs = generated(3 if smoke else 8, height, width)
    middlebury = None if smoke else load_middlebury()
    a = np.stack([pairs[k % len(pairs)][0] for k in range(batch)])
    b = np.stack([pairs[k % len(pairs)][1] for k in range(batch)])
    rows = [
        ("tvl1 reference (torch)", "tvl1", {"backend": "torch", **fast}),
        ("tvl1 reference (torch), check_every 10", "tvl1", {"backend": "torch", "check_every": 10, **fast}),
        ("tvl1 triton", "tvl1", {"backend": "triton", **fast}),
        ("tvl1-quality triton", "tvl1-quality", {"backend": "triton", **fast}),
        ("brox reference (torch)", "brox", {"backend": "torch", **brox_fast}),
        ("brox triton", "brox", {"backend": "triton", **brox_fast}),
    ]
    if smoke:
        rows = [r for r in rows if "check_every" not in r[0]]
    print("| setting | generated EPE | Middlebury EPE | agree (px) | pairs/s batch 1 | pairs/s batch "
          f"{batch} |\n|---|---|---|---|---|---|", flush=True)
    reference_flows = {}
    solver_rate = None
    for label, method, params in rows:
        try:
            run(method, a[:1], b[:1], device, params)  # warm-up: compilation, autotuning, allocator
            flows = [run(method, x[None], y[None], device, params)[0] for x, y, _ in pairs]
            epe = np.mean([endpoint_error(f.transpose(1, 2, 0), gt) for f, (_, _, gt) in zip(flows, pairs)])
            mid = float("nan")
            if middlebury:
                mid = np.mean([endpoint_error(run(method, x[None], y[None], device, params)[0].transpose(1, 2, 0), gt)
                               for x, y, gt in middlebury])
            key = method
            agree = "-"
            if "reference" in label and key not in reference_flows:
                reference_flows[key] = flows
            elif key in reference_flows:
                agree = f"{max(float(np.abs(f - r).max()) for f, r in zip(flows, reference_flows[key])):.2e}"
            one = rate(method, a[:single], b[:single], device, params, one_by_one=True)
            many = rate(method, a, b, device, params, one_by_one=False)
            if label == "tvl1 triton" or (label.startswith("tvl1 reference") and solver_rate is None):
                solver_rate = many  # what prepare's default (auto: Triton on CUDA) should approach
            print(f"| {label} | {epe:.4f} | {mid:.4f} | {agree} | {one:.2f} | {many:.2f} |", flush=True)
        except Exception as exc:  # noqa: BLE001 - one failing row must not hide the others
            print(f"| {label} | failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} | | | | |", flush=True)

    # prepare --flow tvl1 --device <device> on 320x240 videos (MJPEG, written here)
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        write_videos(videos, 2 if smoke else args.videos, 6 if smoke else 40, height, width)
        workers = args.workers or max(1, (os.cpu_count() or 2) - 2)
        opts = PrepareOptions(flow="tvl1", short_side=0, device=str(device))
        start = time.perf_counter()
        if device.type == "cuda":
            summary = prepare_dataset(videos, Path(tmp) / "cache", opts, workers=workers, progress=False)
        else:  # prepare_dataset's CPU path is the per-video one: run the GPU pipeline itself, on the CPU
            from dualstream.prepare.common import PrepareSummary
            from dualstream.video import find_videos
            from dualstream.prepare.run import video_key
            from dualstream.prepare.gpu import GPUFlowRunner

            todo = [(rel, str(videos / rel), str(Path(tmp) / "cache" / video_key(rel)), opts)
                    for rel in find_videos(videos)]
            runner = GPUFlowRunner(opts, devices=["cpu"], batch=batch, params={**fast, "compile": False})
            base = PrepareSummary()
            for _rel, error, frames, size in runner(todo, workers):
                base.prepared += error is None
                base.frames += frames
                base.disk_bytes += size
            base.seconds = time.perf_counter() - start
            summary = runner.summary(base)
        wall = time.perf_counter() - start
        print(f"\nprepare --flow tvl1 --device {device} ({workers} CPU workers, {width}x{height}): "
              f"{summary.line(Path(tmp) / 'cache')}")
        pairs_rate = getattr(summary, "pairs", 0) / max(summary.seconds, 1e-9)
        if solver_rate:
            print(f"prepare: {summary.frames / wall:.1f} frames/s, {pairs_rate:.1f} pairs/s = "
                  f"{pairs_rate / solver_rate:.2f} x the solver's batch-{batch} pairs/s (target >= 0.80)")
    if device.type != "cuda":
        print("# no GPU: the figures above are CPU/interpreter smoke figures, not GPU figures")


if __name__ == "__main__":
    main()
