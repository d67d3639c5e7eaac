"""Preparation speed (decode + DIS flow + JPEG writes) and peak memory on this machine.

    python benchmarks/prepare.py [--videos 8] [--frames 120] [--short-side 128]
    python benchmarks/prepare.py --memory [--count 1000]

Speed: writes ``--videos`` 320x240 MJPEG videos of ``--frames`` frames each (a moving texture, so
that the flow has work to do), prepares them with 1 worker and with all cores, each into a fresh
cache, and prints frames/s of both from one run (the machine may be shared: compare the ratio).
Memory: writes ``--count`` tiny videos, runs ``dualstream prepare`` on them in a subprocess and
samples the resident memory of its whole process tree (parent + workers) from /proc; prints the peak.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dualstream.prepare.common import PrepareOptions
from dualstream.prepare.run import prepare_dataset
from dualstream.video import write_video


def write_moving_videos(root: Path, *, count: int, frames: int, height: int, width: int) -> None:
    """``count`` videos ``C<k % 10>/v_<k>.avi``: a blurred noise texture drifting 2 px/frame down and 1 px/frame right."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 256, (height + 2 * frames, width + frames, 3), dtype=np.uint8), (7, 7), 0)
    clip = np.stack([base[2 * t: 2 * t + height, t: t + width] for t in range(frames)])
    for k in range(count):
        path = root / f"C{k % 10}" / f"v_C{k % 10}_g{k // 10 + 1:02d}_c01.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, np.roll(clip, k, axis=2))


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers are reaped at shutdown)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def speed(args: argparse.Namespace, work: Path) -> None:
    videos = work / "videos"
    write_moving_videos(videos, count=args.videos, frames=args.frames, height=240, width=320)
    total = args.videos * args.frames
    cores = os.cpu_count() or 1
    print(f"{args.videos} videos x {args.frames} frames of 320x240, DIS flow, --short-side {args.short_side}, "
          f"{cores} cores, load average before {os.getloadavg()[0]:.1f}")
    rates = {}
    for workers in (1, cores):
        cache = work / f"cache-{workers}"
        t0, c0 = time.perf_counter(), _cpu_seconds()
        s = prepare_dataset(videos, cache, PrepareOptions(short_side=args.short_side), workers=workers, progress=False)
        sec, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        assert s.prepared == args.videos and s.frames == total, s
        rates[workers] = total / sec
        print(f"workers {workers}: {total} frames in {sec:.1f} s = {rates[workers]:.0f} frames/s "
              f"({args.videos / sec:.2f} videos/s), {total / cpu:.0f} frames per CPU-second "
              f"(CPU busy {cpu / sec:.2f} of {workers} cores), cache {s.disk_bytes / 1e6:.1f} MB")
    print(f"speed-up with {cores} workers: {rates[cores] / rates[1]:.2f}x; load average after {os.getloadavg()[0]:.1f}")


def _tree_rss(root_pid: int) -> int:
    """Resident bytes of ``root_pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def memory(args: argparse.Namespace, work: Path) -> None:
    videos = work / "videos"
    t0 = time.perf_counter()
    write_moving_videos(videos, count=args.count, frames=24, height=48, width=64)
    print(f"wrote {args.count} videos of 24 frames 64x48 in {time.perf_counter() - t0:.0f} s")
    cmd = [sys.executable, "-m", "dualstream", "-q", "prepare", "--videos", str(videos), "--out", str(work / "cache")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak, samples, t0 = 0, 0, time.perf_counter()
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        samples += 1
        time.sleep(0.05)
    out = proc.stdout.read().strip() if proc.stdout else ""
    print(out)
    print(f"peak RSS of the prepare process tree: {peak / 2**20:.0f} MiB ({samples} samples over "
          f"{time.perf_counter() - t0:.0f} s, workers: all {os.cpu_count()} cores); limit 1536 MiB: "
          f"{'OK' if peak < 1.5 * 2**30 else 'EXCEEDED'}")
    if proc.returncode != 0:
        sys.exit(proc.returncode)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=16, help="videos for the speed run (default 16)")
    ap.add_argument("--frames", type=int, default=120, help="frames per video for the speed run (default 120)")
    ap.add_argument("--short-side", type=int, default=128, help="prepare's --short-side (0: keep 320x240)")
    ap.add_argument("--memory", action="store_true", help="measure peak memory on --count tiny videos instead")
    ap.add_argument("--count", type=int, default=1000, help="videos for --memory (default 1000)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dualstream-prepare-bench-"))
    try:
        (memory if args.memory else speed)(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
