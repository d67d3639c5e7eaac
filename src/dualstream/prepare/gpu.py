"""``prepare --device cuda`` (docs/design.md): CPU workers decode and write the JPEGs, one flow process per GPU
batches the pairs of many videos; a finished video is renamed into place with its manifest, as on the CPU path.
With ``devices=["cpu"]`` the same pipeline runs on the CPU (the tests)."""

from __future__ import annotations

import shutil
import time
from collections import defaultdict, deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..cache import MANIFEST
from ..files import commit_folder, new_tmp_folder, owner_tag
from ..flow import quantize_flow, torch_solver
from ..flow._torch import resolve_device
from .common import DecodedFrames, PrepareOptions, PrepareSummary, failure_reason, write_flow_jpegs
from .pool import new_pool

DEFAULT_BATCH = 256
#: Videos decoded ahead of the flow process, per CPU worker (bounds the frames held in memory).
DECODE_AHEAD = 3


@dataclass
class _Video:
    rel: str
    dst: Path
    frames: DecodedFrames
    """Decoded, its RGB JPEGs written into ``frames.tmp``."""
    grays: np.ndarray
    """(M, H, W) uint8: frame n is ``grays[n - 1]``; flow n goes from frame n to frame n + 1."""
    pairs_left: int
    """Pairs whose flow JPEGs are not written yet."""
    error: str | None = None


def _decode_job(args: tuple[str, str, str, PrepareOptions, str]) -> tuple[str, str | None, _Video | None]:
    """CPU worker: decode + resize one video, write its RGB JPEGs; returns (rel, error or None, the video)."""
    rel, src, dst, opts, owner = args
    tmp = None
    try:
        tmp = new_tmp_folder(Path(dst), owner)  # named after the flow process, which renames it when done
        frames = DecodedFrames(src, tmp, opts)
        grays = np.stack([gray for _, gray in frames])
        return rel, None, _Video(rel, Path(dst), frames, grays, len(frames.flow_numbers()))
    except (Exception, MemoryError) as exc:  # VideoReadError, cv2.error, OSError (disk full), ...
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        return rel, failure_reason(exc), None


def _write_job(args: tuple[str, list[int], np.ndarray]) -> str | None:
    """CPU worker: write flow_x/flow_y JPEGs ``numbers`` from uint8 flow (K, 2, H, W); the error or None."""
    tmp, numbers, q = args
    try:
        write_flow_jpegs(Path(tmp), numbers, q)
        return None
    except (Exception, MemoryError) as exc:
        return failure_reason(exc)


def _finish_job(video: _Video) -> tuple[str | None, int]:
    """CPU worker: a finished video's manifest (with ``--format packed`` the packing first, which decodes
    every JPEG) and the rename into the cache, away from the flow process; (error or None, bytes)."""
    try:
        manifest = video.frames.write_manifest()
        commit_folder(video.frames.tmp, video.dst, done=MANIFEST)
        return None, manifest["bytes"]
    except OSError as exc:
        shutil.rmtree(video.frames.tmp, ignore_errors=True)
        return failure_reason(exc), 0


class FlowBatcher:
    """Pools the pairs of many videos into batches per frame size and runs the solver on one device."""

    def __init__(self, opts: PrepareOptions, device: str, batch: int, params: dict | None = None):
        self.solver = torch_solver(opts.flow)
        self.device = resolve_device(device)
        self.batch = batch
        self.bound = opts.bound
        self.params = params or {}
        self.queues: dict[tuple[int, int], deque] = defaultdict(deque)  # size -> (video, flow number)
        self.pairs = 0
        self.seconds = 0.0

    def add(self, video: _Video) -> None:
        self.queues[video.grays.shape[1:]].extend((video, n) for n in video.frames.flow_numbers())

    def run(self, flush: bool) -> list[tuple[_Video, list[int], np.ndarray]]:
        """Flow for up to ``batch`` pairs of a frame size with a full batch waiting (or any pairs at all when
        ``flush``): per video, (video, flow numbers, uint8 (K, 2, H, W)); [] when no batch is ready."""
        size = next((s for s, q in self.queues.items() if len(q) >= self.batch or (flush and q)), None)
        if size is None:
            return []
        q = self.queues[size]
        items = [q.popleft() for _ in range(min(self.batch, len(q)))]
        if not q:
            del self.queues[size]
        prev = np.stack([v.grays[n - 1] for v, n in items])
        nxt = np.stack([v.grays[n] for v, n in items])
        start = time.perf_counter()
        a, b = (torch.from_numpy(x).to(self.device, non_blocking=True) for x in (prev, nxt))
        q8 = quantize_flow(self.solver(a, b, **self.params), self.bound).cpu().numpy()
        self.seconds += time.perf_counter() - start
        self.pairs += len(items)
        out: dict[int, tuple[_Video, list[int], list[int]]] = {}
        for k, (video, number) in enumerate(items):
            entry = out.setdefault(id(video), (video, [], []))
            entry[1].append(number)
            entry[2].append(k)
        return [(video, numbers, q8[rows]) for video, numbers, rows in out.values()]


def run_pipeline(todo: list, batcher: FlowBatcher, workers: int) -> Iterator[tuple[str, str | None, int, int]]:
    """Prepare ``todo`` ((rel, src, dst, opts) as prepare_dataset lists them) with the flow of ``batcher``;
    yields (rel, failure or None, frames, bytes) per video as it completes, like prepare's other runners."""
    owner = owner_tag()  # the temporary folders belong to this process (alive until it renames them)
    queue = deque(todo)
    decoding: set[Future] = set()
    writing: dict[Future, tuple[_Video, int]] = {}  # -> (video, pairs written)
    finishing: dict[Future, _Video] = {}
    pool = new_pool(workers)
    try:
        while queue or decoding or writing or finishing or batcher.queues:
            while queue and len(decoding) < DECODE_AHEAD * workers:
                decoding.add(pool.submit(_decode_job, (*queue.popleft(), owner)))
            # when nothing more is coming, the partial batches run too
            flows = batcher.run(flush=not queue and not decoding)
            for video, numbers, q8 in flows:
                writing[pool.submit(_write_job, (str(video.frames.tmp), numbers, q8))] = video, len(numbers)
            if flows:
                continue
            done, _ = wait([*decoding, *writing, *finishing], return_when=FIRST_COMPLETED)
            for fut in done:
                if fut in decoding:
                    decoding.remove(fut)
                    rel, error, video = fut.result()
                    if error is not None:
                        yield rel, error, 0, 0
                    else:
                        batcher.add(video)
                elif fut in writing:
                    video, written = writing.pop(fut)
                    video.error = video.error or fut.result()
                    video.pairs_left -= written
                    if video.pairs_left == 0 and video.error is None:  # manifest and rename: in the pool
                        video.grays = np.empty(0)
                        finishing[pool.submit(_finish_job, video)] = video
                    elif video.pairs_left == 0:
                        shutil.rmtree(video.frames.tmp, ignore_errors=True)
                        yield video.rel, video.error, 0, 0
                else:
                    video = finishing.pop(fut)
                    error, size = fut.result()
                    yield video.rel, error, 0 if error else video.frames.count, size
    finally:
        pool.shutdown(cancel_futures=True)


def flow_devices(device: str) -> list[str]:
    """The devices to run flow processes on: every visible GPU for a bare "cuda", else ``device`` alone."""
    if device == "cuda" and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return [f"cuda:{k}" for k in range(torch.cuda.device_count())]
    return [device]


def _device_process(todo, opts, device, workers, batch, params, results) -> None:
    """One flow process of several: its results, then ("done", pairs, solver seconds) or ("error", message)."""
    batcher = FlowBatcher(opts, device, batch, params)
    try:
        for result in run_pipeline(todo, batcher, workers):
            results.put(("video", result))
        results.put(("done", batcher.pairs, batcher.seconds))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        results.put(("error", f"{device}: {type(exc).__name__}: {exc}"))


class GPUFlowRunner:
    """prepare_dataset's runner for ``--device cuda``: one flow process per device (default: every visible GPU
    for "cuda"; the videos split round-robin, the CPU workers evenly), called as ``runner(todo, workers)``."""

    def __init__(self, opts: PrepareOptions, *, devices: list[str] | None = None, batch: int | None = None,
                 params: dict | None = None):
        self.opts, self.batch, self.params = opts, batch or DEFAULT_BATCH, params
        self.devices = devices or flow_devices(opts.device)
        self.pairs, self.flow_seconds = 0, 0.0

    def __call__(self, todo: list, workers: int) -> Iterator[tuple[str, str | None, int, int]]:
        if len(self.devices) == 1 or len(todo) < 2:
            batcher = FlowBatcher(self.opts, self.devices[0], self.batch, self.params)
            try:
                yield from run_pipeline(todo, batcher, workers)
            finally:
                self.pairs, self.flow_seconds = batcher.pairs, batcher.seconds
            return
        ctx = get_context("spawn")
        results = ctx.Queue()
        share = max(1, workers // len(self.devices))
        procs = [ctx.Process(target=_device_process, args=(todo[k::len(self.devices)], self.opts, dev, share,
                                                           self.batch, self.params, results))
                 for k, dev in enumerate(self.devices)]
        for proc in procs:
            proc.start()
        try:
            running, errors = len(procs), []
            while running:
                kind, *rest = results.get()
                if kind == "video":
                    yield rest[0]
                elif kind == "done":
                    running -= 1
                    self.pairs += rest[0]
                    self.flow_seconds = max(self.flow_seconds, rest[1])  # they run side by side
                else:
                    running -= 1
                    errors.append(rest[0])
            if errors:
                raise RuntimeError("flow process failed: " + "; ".join(errors))
        finally:
            for proc in procs:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.kill()

    def summary(self, summary: PrepareSummary) -> PrepareSummary:
        """``summary`` (filled by prepare_dataset) with this run's pairs, solver time and devices."""
        summary.pairs, summary.flow_seconds, summary.devices = self.pairs, self.flow_seconds, list(self.devices)
        return summary
