"""``dualstream prepare``: a folder of videos -> the cache (``dualstream.cache``), one video per worker task
(processes or a Ray cluster), a shard of the videos per machine; a rerun skips the videos already done."""

from __future__ import annotations

import hashlib
import json
import os
import time
from itertools import islice
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from ..cache import MANIFEST, is_prepared
from ..files import atomic_folder
from ..flow import compute_flow, quantize_flow
from ..video import find_videos
from .common import (EXECUTORS, FAILURES, FLOW_CHUNK, DecodedFrames, PrepareError, PrepareOptions, PrepareSummary,
                     failure_reason, folder_bytes, write_failures, write_flow_jpegs)
from .pool import run_processes


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` (1 <= i <= n) -> (i, n); a malformed value is a PrepareError."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise PrepareError(f"--shard must look like i/n, e.g. 1/4, got {text!r}") from None
    if not 1 <= i <= n:
        raise PrepareError(f"--shard {text}: shards are numbered 1..n, got {i} of {n}")
    return i, n


def in_shard(rel: str, shard: tuple[int, int]) -> bool:
    """Whether video ``rel`` belongs to shard (i, n), by a hash of its path (docs/design.md)."""
    i, n = shard
    return int.from_bytes(hashlib.sha1(rel.encode()).digest()[:8], "big") % n == i - 1


def video_key(rel: str) -> str:
    """``Class/v_x.avi`` -> ``Class/v_x``: the video's folder in the cache."""
    return rel.rsplit(".", 1)[0]


def prepare_video(src: str | Path, dst: str | Path, opts: PrepareOptions) -> dict:
    """Decode ``src`` and write its rawframes folder ``dst`` atomically (manifest last); returns the manifest.
    At most FLOW_CHUNK + 1 frames are held in memory."""
    with atomic_folder(Path(dst), done=MANIFEST) as tmp:
        video = DecodedFrames(src, tmp, opts)
        pairs = _all_pairs(video) if opts.schedule is None else _sampled_pairs(video)
        while chunk := list(islice(pairs, FLOW_CHUNK)):
            numbers, prev, nxt = zip(*chunk)
            flow = compute_flow(np.stack(prev), np.stack(nxt), method=opts.flow, device=opts.device)
            write_flow_jpegs(tmp, list(numbers), quantize_flow(flow, opts.bound))
        return video.write_manifest()


def _all_pairs(video: DecodedFrames) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(n, frame n, frame n + 1)`` as the frames are decoded."""
    prev = None
    for n, gray in video:
        if prev is not None:
            yield n - 1, prev, gray
        prev = gray


def _sampled_pairs(video: DecodedFrames) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """The pairs of the frames the schedule can ask for; until the frame count is known, the gray frames
    wait as .npy files in the temporary folder, not in memory (docs/design.md)."""
    for n, gray in video:
        np.save(video.tmp / f".gray_{n:05d}.npy", gray)
    for i in video.kept:
        yield i, np.load(video.tmp / f".gray_{i:05d}.npy"), np.load(video.tmp / f".gray_{i + 1:05d}.npy")
    for p in video.tmp.glob(".gray_*.npy"):
        p.unlink()


def _job(args: tuple[str, str, str, PrepareOptions]) -> tuple[str, str | None, int, int]:
    """Prepare one video: (rel, failure reason or None, frames, bytes); a failure is the file's, not the run's."""
    rel, src, dst, opts = args
    cv2.setNumThreads(1)
    try:
        manifest = prepare_video(src, dst, opts)
        return rel, None, manifest["num_frames"], manifest["bytes"]
    except (Exception, MemoryError) as exc:  # VideoReadError, cv2.error, OSError (disk full), MemoryError, ...
        return rel, failure_reason(exc), 0, 0


def _import_ray():
    try:
        import ray
    except ImportError:
        raise PrepareError("--executor ray needs Ray: pip install 'dualstream[ray]'") from None
    return ray


def _run_ray(todo: list, workers: int) -> Iterator[tuple[str, str | None, int, int]]:
    """One Ray task per video on the cluster at RAY_ADDRESS (a local Ray otherwise); the cache must be
    a folder every node sees. At most 4 tasks per worker slot are in flight, to keep memory flat."""
    ray = _import_ray()
    address = os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        ray.init(**({"address": address} if address else {"num_cpus": workers}))
    task = ray.remote(num_cpus=1)(_job)
    window = 4 * max(1, int(ray.cluster_resources().get("CPU", workers)))
    queue = iter(todo)
    pending = [task.remote(args) for args in islice(queue, window)]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
        pending.extend(task.remote(args) for args in islice(queue, 1))


def prepare_dataset(
    videos_dir: str | Path,
    cache: str | Path,
    opts: PrepareOptions = PrepareOptions(),
    *,
    workers: int = 0,
    shard: tuple[int, int] | None = None,
    executor: str = "process",
    videos: Iterable[str] | None = None,
    progress: bool = True,
) -> PrepareSummary:
    """Prepare the videos under ``videos_dir`` (or the listed ``videos``) into ``cache``; ``shard=(i, n)`` takes
    only this machine's part. Failures go to ``cache/failures.txt`` (per shard ``failures-shard-I-of-N.txt``)."""
    if executor not in EXECUTORS:
        raise PrepareError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers < 0:
        raise PrepareError(f"--workers must be >= 0 (0: all cores), got {workers}")
    if executor == "ray":
        _import_ray()  # before any work
    videos_dir, cache = Path(videos_dir), Path(cache)
    listed = sorted(videos) if videos is not None else find_videos(videos_dir)
    if not listed:
        raise FileNotFoundError(f"{videos_dir}: no video files found (expected <Class>/<video>.avi etc.)")
    if shard is not None:
        listed = [rel for rel in listed if in_shard(rel, shard)]
    cache.mkdir(parents=True, exist_ok=True)
    summary = PrepareSummary(failures_file=FAILURES if shard is None else f"failures-shard-{shard[0]}-of-{shard[1]}.txt")
    todo = []
    for rel in listed:
        key = video_key(rel)
        if is_prepared(cache, key):
            summary.skipped += 1
            summary.disk_bytes += _prepared_bytes(cache / key)
        else:
            todo.append((rel, str(videos_dir / rel), str(cache / key), opts))
    workers = workers or os.cpu_count() or 1
    run = _run_ray if executor == "ray" else lambda todo, workers: run_processes(todo, workers, _job)
    gpu = None
    if executor == "process" and opts.device != "cpu":  # one flow process per GPU, fed by CPU workers
        from .gpu import GPUFlowRunner

        run = gpu = GPUFlowRunner(opts)
    t0 = time.perf_counter()
    with tqdm(total=len(todo), desc="prepare", unit="video", disable=not progress or not todo) as bar:
        for rel, error, frames, size in run(todo, workers):
            if error is None:
                summary.prepared += 1
                summary.frames += frames
                summary.disk_bytes += size
            else:
                summary.failures.append((rel, error))
            bar.update()
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix_str(f"{summary.frames / elapsed:.0f} frames/s, failed {summary.failed}", refresh=False)
    summary.seconds = time.perf_counter() - t0
    listed_set = set(listed)  # an entry stays while its video is listed and not prepared
    write_failures(cache / summary.failures_file, summary.failures,
                   keep=lambda rel: rel in listed_set and not is_prepared(cache, video_key(rel)))
    return gpu.summary(summary) if gpu is not None else summary  # with pairs/s and the UCF-101 projection


def _prepared_bytes(folder: Path) -> int:
    """A finished video's size: from its manifest, or by listing the folder (imported or older caches)."""
    try:
        return int(json.loads((folder / MANIFEST).read_text())["bytes"])
    except (KeyError, ValueError, TypeError, OSError):
        return folder_bytes(folder)


