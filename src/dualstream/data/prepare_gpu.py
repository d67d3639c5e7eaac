"""``prepare --device cuda``: one flow process per GPU, fed by CPU worker processes.

The per-video path (``prepare._job``) computes each video's flow in the worker that decodes it: on a GPU that
means one small batch per video and one solver per worker. Here the work is split by what each part is good at:

  * CPU workers decode and resize a video, write its RGB JPEGs into the video's temporary folder and send its
    gray frames back;
  * the flow process (this one; one per visible GPU) pools the frame pairs of many videos into batches of
    ``batch`` pairs of one frame size, runs the batched solver on the GPU, quantises on the GPU and sends the
    uint8 flow of each video's share of the batch to a CPU worker, which writes the flow JPEGs;
  * when a video's last flow is written, the flow process writes its manifest and renames the folder into
    place (the same atomic-folder contract as the CPU path: a crash leaves only ``.name.tmp-*`` leftovers,
    removed by the next run).

The same pipeline runs with device "cpu" (``prepare_on_gpus(..., devices=["cpu"])``), which is how the tests
check it. The summary line adds pairs/s and the time UCF-101's 2.5 M pairs would take at that rate.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections import defaultdict, deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..flow import torch_solver
from ..flow._torch import resolve_device
from ..video import VideoReadError, iter_frames
from .prepare import (
    PrepareOptions,
    PrepareSummary,
    _die_with_parent,
    _too_short,
    _write_jpeg,
    resize_short_side,
    write_failures,
    write_manifest,
)

UCF101_PAIRS = 2_500_000
DEFAULT_BATCH = 256
#: Videos decoded ahead of the flow process, per CPU worker (bounds the frames held in memory).
DECODE_AHEAD = 3


@dataclass
class GPUPrepareSummary(PrepareSummary):
    pairs: int = 0
    """Frame pairs whose flow this run computed."""
    flow_seconds: float = 0.0
    """Time spent in the solver (including the copy of the frames to the device and of the flow back)."""
    devices: list[str] = field(default_factory=list)

    def line(self, cache: Path) -> str:
        text = super().line(cache)
        if self.pairs and self.seconds > 0:
            rate = self.pairs / self.seconds
            solver = f", solver alone {self.pairs / self.flow_seconds:.0f}" if self.flow_seconds > 0 else ""
            text += (f"; flow {self.pairs} pairs on {'+'.join(self.devices)}: {rate:.1f} pairs/s{solver}; "
                     f"UCF-101's 2.5 M pairs would take {_duration(UCF101_PAIRS / rate)} at this rate")
        return text


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _tmp_folder(dst: Path) -> Path:
    """The temporary sibling a video is written into (stale ones of earlier runs removed first)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for stale in dst.parent.glob(f".{dst.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = dst.parent / f".{dst.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    tmp.mkdir()
    return tmp


def _decode_job(args: tuple[str, str, str, PrepareOptions]) -> tuple:
    """CPU worker: decode + resize one video, write its RGB JPEGs; returns (rel, error, payload).

    payload = (tmp folder, frame count, height, width, kept ("all" or frame numbers), gray frames (M, H, W)
    uint8, pairs): pair k is flow number ``pairs[k][0]`` from gray ``pairs[k][1]`` to gray ``pairs[k][2]``.
    """
    rel, src, dst, opts = args
    cv2.setNumThreads(1)
    tmp = None
    try:
        tmp = _tmp_folder(Path(dst))
        span = opts.schedule.span if opts.schedule is not None else None
        grays, count, height, width = [], 0, 0, 0
        for rgb in iter_frames(src):
            count += 1
            if span is not None and count > span:
                continue  # only counted: no kept frame lies beyond the span
            rgb = resize_short_side(rgb, opts.short_side)
            if count == 1:
                height, width = rgb.shape[:2]
            _write_jpeg(tmp / f"img_{count:05d}.jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            grays.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        if count < 2:
            raise _too_short(Path(src), count)
        if opts.schedule is None:
            kept: str | list[int] = "all"
            pairs = [(i, i - 1, i) for i in range(1, count)]  # flow i: frame i -> i + 1 (1-based numbers)
        else:
            kept = opts.schedule.frames_for(count)
            keep = set(kept)
            for i in range(1, min(count, span) + 1):
                if i not in keep:
                    (tmp / f"img_{i:05d}.jpg").unlink()
            pairs = [(i, i - 1, i) for i in kept]
        return rel, None, (str(tmp), count, height, width, kept, np.stack(grays), pairs)
    except VideoReadError as exc:
        reason = " ".join(exc.reason.split())
    except (Exception, MemoryError) as exc:  # cv2.error, OSError (disk full), ...
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    return rel, reason, None


def _write_job(args: tuple[str, list[int], np.ndarray]) -> str | None:
    """CPU worker: write flow_x/flow_y JPEGs ``numbers`` from uint8 flow (K, 2, H, W); the error or None."""
    tmp, numbers, q = args
    cv2.setNumThreads(1)
    try:
        out = Path(tmp)
        for k, i in enumerate(numbers):
            _write_jpeg(out / f"flow_x_{i:05d}.jpg", q[k, 0])
            _write_jpeg(out / f"flow_y_{i:05d}.jpg", q[k, 1])
        return None
    except (Exception, MemoryError) as exc:
        return " ".join(f"{type(exc).__name__}: {exc}".split())


def quantize_flow_torch(flow: torch.Tensor, bound: float) -> torch.Tensor:
    """quantize_flow on the flow's device: the same float32 arithmetic and round-half-even, uint8 out."""
    return torch.round((flow.clamp(-bound, bound) + bound) * (255.0 / (2 * bound))).to(torch.uint8)


@dataclass
class _Video:
    rel: str
    dst: Path
    tmp: Path
    count: int
    height: int
    width: int
    kept: str | list[int]
    grays: np.ndarray
    pairs_left: int
    writes: int = 0
    error: str | None = None


class FlowBatcher:
    """Pools the pairs of many videos into batches per frame size and runs the solver on one device."""

    def __init__(self, opts: PrepareOptions, device: str, batch: int, params: dict | None = None):
        self.solver = torch_solver(opts.flow)
        self.device = resolve_device(device)
        self.batch = batch
        self.bound = opts.bound
        self.params = params or {}
        self.queues: dict[tuple[int, int], deque] = defaultdict(deque)  # size -> (video, number, prev, next)
        self.pairs = 0
        self.seconds = 0.0

    def add(self, video: _Video, pairs: list[tuple[int, int, int]]) -> None:
        q = self.queues[video.grays.shape[1:]]
        for number, a, b in pairs:
            q.append((video, number, a, b))

    def ready(self, flush: bool) -> list[tuple[int, int]]:
        """Frame sizes with a full batch waiting (or any pairs at all when ``flush``)."""
        return [s for s, q in self.queues.items() if len(q) >= self.batch or (flush and q)]

    def run(self, size: tuple[int, int]) -> list[tuple[_Video, list[int], np.ndarray]]:
        """Flow for up to ``batch`` pairs of ``size``: per video, (video, flow numbers, uint8 (K, 2, H, W))."""
        q = self.queues[size]
        items = [q.popleft() for _ in range(min(self.batch, len(q)))]
        if not q:
            del self.queues[size]
        prev = np.stack([v.grays[a] for v, _, a, _ in items])
        nxt = np.stack([v.grays[b] for v, _, _, b in items])
        start = time.perf_counter()
        a = torch.from_numpy(prev).to(self.device, non_blocking=True)
        b = torch.from_numpy(nxt).to(self.device, non_blocking=True)
        flow = self.solver(a, b, **self.params)
        q8 = quantize_flow_torch(flow, self.bound).cpu().numpy()
        self.seconds += time.perf_counter() - start
        self.pairs += len(items)
        out: dict[int, tuple[_Video, list[int], list[int]]] = {}
        for k, (video, number, _, _) in enumerate(items):
            entry = out.setdefault(id(video), (video, [], []))
            entry[1].append(number)
            entry[2].append(k)
        return [(video, numbers, q8[rows]) for video, numbers, rows in out.values()]


def run_pipeline(todo: list, opts: PrepareOptions, summary: PrepareSummary, *, device: str, workers: int,
                 batch: int = DEFAULT_BATCH, progress: bool = True, params: dict | None = None) -> GPUPrepareSummary:
    """Prepare ``todo`` ((rel, src, dst, opts) as prepare_dataset lists them) with one flow device."""
    out = GPUPrepareSummary(**{k: getattr(summary, k) for k in summary.__dataclass_fields__})
    out.devices = [str(device)]
    batcher = FlowBatcher(opts, device, batch, params)
    queue = deque(todo)
    decoding: dict[Future, tuple] = {}
    writing: dict[Future, _Video] = {}
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"prepare ({device})", unit="video", disable=not progress or not todo)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_die_with_parent)

    def finish(video: _Video) -> None:
        if video.error is None:
            try:
                manifest = write_manifest(video.tmp, Path(video.rel).name, video.count, video.height, video.width,
                                          video.count - 1 if video.kept == "all" else len(video.kept), video.kept,
                                          opts)
                if video.dst.exists():
                    shutil.rmtree(video.dst)
                os.rename(video.tmp, video.dst)
                out.prepared += 1
                out.frames += video.count
                out.disk_bytes += manifest["bytes"]
            except OSError as exc:
                video.error = " ".join(f"{type(exc).__name__}: {exc}".split())
        if video.error is not None:
            shutil.rmtree(video.tmp, ignore_errors=True)
            out.failures.append((video.rel, video.error))
        bar.update()
        elapsed = max(time.perf_counter() - t0, 1e-9)
        bar.set_postfix_str(f"{batcher.pairs / elapsed:.0f} pairs/s, failed {out.failed}", refresh=False)

    try:
        while queue or decoding or writing or batcher.queues:
            while queue and len(decoding) < DECODE_AHEAD * workers:
                args = queue.popleft()
                decoding[pool.submit(_decode_job, args)] = args
            flush = not queue and not decoding  # nothing more is coming: run the partial batches too
            sizes = batcher.ready(flush)
            if sizes:
                for video, numbers, q8 in batcher.run(sizes[0]):
                    video.pairs_left -= len(numbers)
                    video.writes += 1
                    writing[pool.submit(_write_job, (str(video.tmp), numbers, q8))] = video
                continue
            if not decoding and not writing:
                continue
            done, _ = wait(list(decoding) + list(writing), return_when=FIRST_COMPLETED)
            for fut in done:
                if fut in decoding:
                    args = decoding.pop(fut)
                    rel, error, payload = fut.result()
                    if error is not None:
                        out.failures.append((rel, error))
                        bar.update()
                        continue
                    tmp, count, height, width, kept, grays, pairs = payload
                    video = _Video(rel, Path(args[2]), Path(tmp), count, height, width, kept, grays, len(pairs))
                    if pairs:
                        batcher.add(video, pairs)
                    else:
                        finish(video)
                else:
                    video = writing.pop(fut)
                    error = fut.result()
                    video.writes -= 1
                    video.error = video.error or error
                    if video.writes == 0 and video.pairs_left == 0:
                        video.grays = np.empty(0)
                        finish(video)
    finally:
        bar.close()
        pool.shutdown(cancel_futures=True)
        out.seconds = time.perf_counter() - t0
        out.pairs, out.flow_seconds = batcher.pairs, batcher.seconds
    return out


def flow_devices(device: str) -> list[str]:
    """The devices to run flow processes on: every visible GPU for a bare "cuda", else ``device`` alone."""
    if device == "cuda" and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return [f"cuda:{k}" for k in range(torch.cuda.device_count())]
    return [device]


def _device_process(todo, cache, opts, device, workers, batch, params, results) -> None:
    try:
        summary = run_pipeline(todo, opts, PrepareSummary(), device=device, workers=workers, batch=batch,
                               progress=False, params=params)
        results.put((device, summary, None))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent
        results.put((device, None, f"{type(exc).__name__}: {exc}"))


def prepare_on_gpus(todo: list, cache: Path, opts: PrepareOptions, summary: PrepareSummary, *, workers: int,
                    progress: bool = True, devices: list[str] | None = None, batch: int = DEFAULT_BATCH,
                    params: dict | None = None) -> GPUPrepareSummary:
    """Prepare ``todo`` with one flow process per device (default: every visible GPU for "cuda"), the videos
    split between them round-robin, the CPU workers split evenly; failures written as prepare_dataset does."""
    devices = devices or flow_devices(opts.device)
    if len(devices) == 1 or len(todo) < 2:
        result = run_pipeline(todo, opts, summary, device=devices[0], workers=workers, batch=batch,
                              progress=progress, params=params)
    else:
        ctx = get_context("spawn")
        results = ctx.Queue()
        share = max(1, workers // len(devices))
        procs = [ctx.Process(target=_device_process, args=(todo[k::len(devices)], cache, opts, dev, share, batch,
                                                           params, results)) for k, dev in enumerate(devices)]
        t0 = time.perf_counter()
        for proc in procs:
            proc.start()
        result = GPUPrepareSummary(**{k: getattr(summary, k) for k in summary.__dataclass_fields__})
        errors = []
        for _ in procs:
            dev, part, error = results.get()
            if error is not None:
                errors.append(f"{dev}: {error}")
                continue
            result.prepared += part.prepared
            result.frames += part.frames
            result.disk_bytes += part.disk_bytes
            result.failures += part.failures
            result.pairs += part.pairs
            result.flow_seconds = max(result.flow_seconds, part.flow_seconds)
        for proc in procs:
            proc.join()
        result.seconds = time.perf_counter() - t0
        result.devices = devices
        if errors:
            raise RuntimeError("flow process failed: " + "; ".join(errors))
    write_failures(cache / result.failures_file, result.failures)
    return result
