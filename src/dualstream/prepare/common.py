"""What the preparation paths (the CPU pool in ``run``, the GPU flow batcher in ``gpu``, ``import_rawframes``)
share: options, summary, the one decode loop and the writers (atomic folders: ``files.atomic_folder``)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..cache import FRAME_FILES, MANIFEST, new_manifest
from ..data.sampling import ClipSpec
from ..data.transforms import DEFAULT_SHORT_SIDE, resize_short_side
from ..files import atomic_write_text
from ..flow import DEFAULT_BOUND, TORCH_METHODS, check_available
from ..flow.quantize import BOUND_RANGE
from ..video import VideoReadError, iter_frames
from .pack import pack_folder

FAILURES = "failures.txt"
JPEG_QUALITY = 95
FLOW_CHUNK = 16  # frame pairs handed to the flow engine at once
UCF101_PAIRS = 2_500_000
EXECUTORS = ("process", "ray")


class PrepareError(ValueError):
    """A bad preparation request (shard, executor, options); printed as one line."""


@dataclass(frozen=True)
class PrepareOptions:
    flow: str = "dis"
    short_side: int = DEFAULT_SHORT_SIDE
    bound: float = DEFAULT_BOUND
    device: str = "cpu"
    schedule: ClipSpec | None = None
    """Keep only the frames (and flows) this schedule can ask for; None keeps every frame."""
    format: str = "rawframes"
    """``rawframes`` (JPEGs) or ``packed`` (memory-mapped uint8 arrays per video instead, ``prepare/pack.py``)."""

    def __post_init__(self) -> None:
        try:  # an unknown method (the message lists the choices) or device; opencv-tvl1 without contrib modules
            method = check_available(self.flow)
            if self.device != "cpu" and method in TORCH_METHODS:
                from ..flow._torch import resolve_device  # torch only for the PyTorch solvers

                resolve_device(self.device)
        except (ValueError, RuntimeError) as exc:
            raise PrepareError(str(exc)) from None
        if self.device != "cpu" and method not in TORCH_METHODS:
            raise PrepareError(f"--device {self.device} needs a PyTorch flow method ({', '.join(TORCH_METHODS)}), "
                               f"not {self.flow!r}")
        if self.short_side < 0:
            raise PrepareError(f"--short-side must be >= 0 (0 keeps the original size), got {self.short_side}")
        if not BOUND_RANGE[0] <= self.bound <= BOUND_RANGE[1]:  # NaN fails this too
            raise PrepareError(f"--flow-bound must be in [{BOUND_RANGE[0]}, {BOUND_RANGE[1]}] px, got {self.bound}")
        if self.format not in ("rawframes", "packed"):
            raise PrepareError(f"--format must be rawframes or packed, got {self.format!r}")


@dataclass
class PrepareSummary:
    prepared: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    """Frames decoded by this run (prepared videos only)."""
    seconds: float = 0.0
    disk_bytes: int = 0
    """Bytes of the prepared and skipped videos' folders (this run's share of the cache)."""
    failures_file: str = FAILURES
    pairs: int = 0
    """Frame pairs whose flow the GPU pipeline computed (``prepare --device cuda``)."""
    flow_seconds: float = 0.0
    """Its time in the solver (with the copies of the frames to the device and of the flow back)."""
    devices: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def line(self, cache: Path) -> str:
        text = f"prepared {self.prepared}, skipped {self.skipped} (already done), failed {self.failed}"
        text += f" (see {cache / self.failures_file})" if self.failed else ""
        rate = f" ({self.frames / self.seconds:.0f} frames/s)" if self.seconds > 0 and self.frames else ""
        text += f"; {self.frames} frames in {self.seconds:.1f} s{rate}; disk used {_human(self.disk_bytes)}"
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


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def failure_reason(exc: BaseException) -> str:
    """A video's line in the failures file: a VideoReadError's reason, else the exception's type and message."""
    return " ".join((exc.reason if isinstance(exc, VideoReadError) else f"{type(exc).__name__}: {exc}").split())


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    """Encode in memory, write with one call: the same bytes as cv2.imwrite, cheaper (benchmarks/RESULTS.md)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"could not encode {path}")
    buf.tofile(path)


def write_flow_jpegs(out: Path, numbers: list[int], q: np.ndarray) -> None:
    """Quantised flow (N, 2, H, W) uint8 written as flow_x/flow_y ``numbers``."""
    for k, i in enumerate(numbers):
        for name, plane in zip(FRAME_FILES[1:], q[k]):  # flow-x, flow-y
            _write_jpeg(out / name.format(i), plane)


class DecodedFrames:
    """The one decode loop of preparation: yields ``(number, gray)`` per frame of ``src`` (from 1), resized to
    ``opts.short_side`` and written as ``img_NNNNN.jpg`` into ``tmp``; with a schedule only the first
    ``frames_needed`` frames are written, the rest counted, and at the end those it does not keep removed.
    Afterwards ``count``, ``height``, ``width`` and ``kept`` (``"all"`` or the kept frame numbers) are set."""

    def __init__(self, src: str | Path, tmp: Path, opts: PrepareOptions):
        self.src, self.tmp, self.opts = Path(src), tmp, opts
        self.count = self.height = self.width = 0
        self.kept: str | list[int] = "all"

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        limit = self.opts.schedule.frames_needed if self.opts.schedule is not None else None
        for rgb in iter_frames(self.src):
            self.count += 1
            if limit is not None and self.count > limit:
                continue
            rgb = resize_short_side(rgb, self.opts.short_side)
            if self.count == 1:
                self.height, self.width = rgb.shape[:2]
            _write_jpeg(self.tmp / FRAME_FILES[0].format(self.count), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            yield self.count, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if self.count < 2:
            raise VideoReadError(self.src, f"only {self.count} frame decoded; optical flow needs at least 2")
        if limit is not None:
            self.kept = self.opts.schedule.frames_for(self.count)
            for i in set(range(1, min(self.count, limit) + 1)) - set(self.kept):
                (self.tmp / FRAME_FILES[0].format(i)).unlink()

    def flow_numbers(self) -> list[int]:
        """The frames whose forward flow the folder holds: every frame but the last, or the kept ones."""
        return list(range(1, self.count)) if self.kept == "all" else self.kept

    def write_manifest(self) -> dict:
        """Write ``tmp/manifest.json`` (last, once every frame and flow is in ``tmp``) and return it."""
        opts = self.opts
        manifest = new_manifest(self.src.name, self.count, len(self.flow_numbers()), self.height, self.width,
                                opts.flow, opts.bound, self.kept)
        if opts.schedule is not None:
            manifest["schedule"] = opts.schedule.schedule_dict()
        if opts.format == "packed":  # memory-mapped uint8 arrays instead of the JPEGs
            pack_folder(self.tmp, manifest, drop_jpeg=True)
        manifest["bytes"] = folder_bytes(self.tmp)
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        return manifest


def folder_bytes(folder: Path) -> int:
    return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (flock on its descriptor: no lock file left behind) where
    supported; concurrent runs into one cache then update its failures file one at a time."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (not POSIX)
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_failures(path: Path, failures: list[tuple[str, str]], *, keep=None) -> None:
    """Write the failures file: this run's ``failures`` plus the entries already there for which ``keep(rel)``
    holds (without ``keep`` none), so that a concurrent run's failures are not lost (docs/design.md)."""
    with _locked(path.parent):
        rows = dict(failures)
        if keep is not None and path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                rel, sep, reason = line.partition("\t")
                if sep and rel not in rows and keep(rel):
                    rows[rel] = reason
        if not rows:
            path.unlink(missing_ok=True)
            return
        atomic_write_text(path, "".join(f"{rel}\t{reason}\n" for rel, reason in sorted(rows.items())))
