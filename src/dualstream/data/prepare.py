"""Prepare a folder of videos for training: decode, resize, optical flow, MMAction2 rawframes.

Per video ``<Class>/<name>.avi`` the cache holds ``<Class>/<name>/img_00001.jpg ...`` (RGB frames),
``flow_x_00001.jpg ...`` and ``flow_y_00001.jpg ...`` (flow from frame i to i+1, clipped to +-bound
px and mapped to uint8) and ``manifest.json``. A video is written into a temporary folder and
renamed into place only when complete, so an interrupted run never leaves a half video that looks
finished; a rerun skips every video whose folder exists and redoes the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..flow import DEFAULT_BOUND, FLOW_METHODS, METHOD_ALIASES, compute_flow, quantize_flow, resolve_method
from ..flow._torch import resolve_device
from ..video import VideoReadError, iter_frames

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp")
MANIFEST = "manifest.json"
FAILURES = "failures.txt"
PREPARE_FLOW_METHODS = tuple(METHOD_ALIASES) + FLOW_METHODS  # dis, farneback, opencv-*, tvl1, brox
JPEG_QUALITY = 95
FLOW_CHUNK = 16  # frame pairs handed to the flow engine at once


@dataclass(frozen=True)
class PrepareOptions:
    flow: str = "dis"
    short_side: int = 128
    bound: float = DEFAULT_BOUND
    device: str = "cpu"

    def __post_init__(self) -> None:
        method = resolve_method(self.flow)  # ValueError listing the choices
        if self.device != "cpu":
            if method not in ("tvl1", "brox"):
                raise ValueError(f"--device {self.device} needs a PyTorch flow method (tvl1 or brox), not {self.flow!r}")
            try:
                resolve_device(self.device)
            except RuntimeError as exc:
                raise ValueError(str(exc)) from None
        if self.short_side < 0:
            raise ValueError(f"--short-side must be >= 0 (0 keeps the original size), got {self.short_side}")
        if self.bound <= 0:
            raise ValueError(f"the flow bound must be positive, got {self.bound}")


@dataclass
class PrepareSummary:
    prepared: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def line(self, cache: Path) -> str:
        text = f"prepared {self.prepared}, skipped {self.skipped} (already done), failed {self.failed}"
        return text + (f" (see {cache / FAILURES})" if self.failed else "")


def find_videos(videos_dir: str | Path) -> list[str]:
    """Video files under ``videos_dir`` as sorted ``Class/file.ext`` paths (one class level deep)."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: videos folder not found")
    found = [
        p.relative_to(root).as_posix()
        for p in root.glob("*/*")
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
    ]
    return sorted(found)


def video_key(rel: str) -> str:
    """``Class/v_x.avi`` -> ``Class/v_x``: the video's folder in the cache."""
    return rel.rsplit(".", 1)[0]


def is_prepared(cache: str | Path, key: str) -> bool:
    return (Path(cache) / key / MANIFEST).is_file()


def _resize(frame: np.ndarray, short_side: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if short_side == 0 or min(h, w) == short_side:
        return frame
    s = short_side / min(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"could not write {path}")


def _write_flows(out: Path, first_index: int, grays: list[np.ndarray], opts: PrepareOptions) -> None:
    """Flow between consecutive frames of ``grays``; pair k is written as index first_index + k."""
    flows = compute_flow(np.stack(grays[:-1]), np.stack(grays[1:]), method=opts.flow, device=opts.device)
    q = quantize_flow(flows, opts.bound)  # (N, 2, H, W) uint8
    for k in range(q.shape[0]):
        _write_jpeg(out / f"flow_x_{first_index + k:05d}.jpg", q[k, 0])
        _write_jpeg(out / f"flow_y_{first_index + k:05d}.jpg", q[k, 1])


def prepare_video(src: str | Path, dst: str | Path, opts: PrepareOptions) -> dict:
    """Decode ``src`` and write its rawframes folder ``dst`` atomically; returns the manifest.

    Frames are streamed: at most FLOW_CHUNK + 1 frames are held at once.
    """
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    for stale in dst.parent.glob(f".{dst.name}.tmp-*"):  # leftovers of an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = dst.parent / f".{dst.name}.tmp-{socket.gethostname()}-{os.getpid()}"
    tmp.mkdir()
    try:
        count, height, width = 0, 0, 0
        grays: list[np.ndarray] = []  # frames waiting for their flow; the last one is kept as overlap
        for rgb in iter_frames(src):
            rgb = _resize(rgb, opts.short_side)
            if count == 0:
                height, width = rgb.shape[:2]
            count += 1
            _write_jpeg(tmp / f"img_{count:05d}.jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            grays.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
            if len(grays) == FLOW_CHUNK + 1:
                _write_flows(tmp, count - FLOW_CHUNK, grays, opts)
                grays = grays[-1:]
        if count < 2:
            raise VideoReadError(src, f"only {count} frame decoded; optical flow needs at least 2")
        if len(grays) > 1:
            _write_flows(tmp, count - len(grays) + 1, grays, opts)
        manifest = {
            "source": src.name,
            "num_frames": count,
            "num_flows": count - 1,
            "height": height,
            "width": width,
            "flow_method": opts.flow,
            "flow_bound": opts.bound,
            "format": "mmaction2-rawframes",
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if dst.exists():  # a folder without manifest (e.g. copied in by hand): replace it
            shutil.rmtree(dst)
        os.rename(tmp, dst)
        return manifest
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _job(args: tuple[str, str, str, PrepareOptions]) -> tuple[str, str | None]:
    rel, src, dst, opts = args
    cv2.setNumThreads(1)
    try:
        prepare_video(src, dst, opts)
        return rel, None
    except (VideoReadError, OSError, cv2.error, ValueError) as exc:
        reason = exc.reason if isinstance(exc, VideoReadError) else f"{type(exc).__name__}: {exc}"
        return rel, " ".join(str(reason).split())


def prepare_dataset(
    videos_dir: str | Path,
    cache: str | Path,
    opts: PrepareOptions = PrepareOptions(),
    *,
    workers: int = 0,
    progress: bool = True,
) -> PrepareSummary:
    """Prepare every video under ``videos_dir`` into ``cache``; failures go to ``cache/failures.txt``."""
    videos_dir, cache = Path(videos_dir), Path(cache)
    videos = find_videos(videos_dir)
    if not videos:
        raise FileNotFoundError(f"{videos_dir}: no video files found (expected <Class>/<video>.avi etc.)")
    cache.mkdir(parents=True, exist_ok=True)
    summary = PrepareSummary()
    todo = []
    for rel in videos:
        key = video_key(rel)
        if is_prepared(cache, key):
            summary.skipped += 1
        else:
            todo.append((rel, str(videos_dir / rel), str(cache / key), opts))
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(todo), desc="prepare", unit="video", disable=not progress or not todo)
    try:
        if workers == 1 or len(todo) <= 1:
            results = map(_job, todo)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
            results = pool.map(_job, todo, chunksize=1)
        for rel, error in results:
            if error is None:
                summary.prepared += 1
            else:
                summary.failures.append((rel, error))
            bar.update()
            bar.set_postfix(failed=summary.failed, refresh=False)
        if pool is not None:
            pool.shutdown()
    finally:
        bar.close()
    _write_failures(cache, summary.failures)
    return summary


def _write_failures(cache: Path, failures: list[tuple[str, str]]) -> None:
    path = cache / FAILURES
    if not failures:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".txt.tmp")
    tmp.write_text("".join(f"{rel}\t{reason}\n" for rel, reason in sorted(failures)))
    os.replace(tmp, path)
