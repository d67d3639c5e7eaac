"""Time each stage of the demo (generate, prepare, train, evaluate) on this machine.

    python benchmarks/demo_stages.py [--out DIR] [--epochs N]

Runs the real demo into a fresh folder and prints the wall time of every stage and its share.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time

import torch

from dualstream.demo import run_demo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="working folder (default: a temporary one, removed after)")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="dualstream-bench-")
    if os.path.exists(out) and args.out:
        shutil.rmtree(out)
    overrides = [f"train.epochs={args.epochs}"] if args.epochs else []
    t0 = time.perf_counter()
    result = run_demo(out, quiet=True, overrides=overrides)
    total = time.perf_counter() - t0
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(f"{'stage':<10} {'seconds':>8} {'share':>7}")
    for stage, sec in result["timings"].items():
        print(f"{stage:<10} {sec:8.1f} {sec / total:7.1%}")
    print(f"{'total':<10} {total:8.1f}")
    print(f"video_top1={result['video_top1']:.4f}")
    if not args.out:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
