"""Prepare a folder of videos for training: decode, resize, optical flow, MMAction2 rawframes.

Per video ``<Class>/<name>.avi`` the cache holds ``<Class>/<name>/img_00001.jpg ...`` (RGB frames),
``flow_x_00001.jpg ...`` and ``flow_y_00001.jpg ...`` (flow from frame i to i+1, clipped to +-bound
px and mapped to uint8) and ``manifest.json``. A video is written into a temporary folder and
renamed into place only when complete, so an interrupted run never leaves a half video that looks
finished; a rerun skips every video whose folder exists and redoes the rest.

At scale: worker processes (or a Ray cluster), ``shard=(i, n)`` so that several machines each
prepare a disjoint part into one shared folder, and a mode that keeps only the frames a sampling
schedule can ask for (``schedule``), for users short of disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from ..flow import DEFAULT_BOUND, TORCH_METHODS, FlowBackendError, check_available, compute_flow, quantize_flow
from ..video import VIDEO_EXTENSIONS, VideoReadError, iter_frames
from .packed import pack_folder
from .schedule import SampleSchedule
from .transforms import DEFAULT_SHORT_SIDE, resize_short_side

MANIFEST = "manifest.json"
FAILURES = "failures.txt"
JPEG_QUALITY = 95
FLOW_CHUNK = 16  # frame pairs handed to the flow engine at once
TASKS_PER_WORKER = 500  # a worker process is replaced after this many videos (bounds slow leaks in codecs)
EXECUTORS = ("process", "ray")


class PrepareError(ValueError):
    """A bad preparation request (shard, executor, options); printed as one line."""


@dataclass(frozen=True)
class PrepareOptions:
    flow: str = "dis"
    short_side: int = DEFAULT_SHORT_SIDE
    bound: float = DEFAULT_BOUND
    device: str = "cpu"
    schedule: SampleSchedule | None = None
    """Keep only the frames (and flows) this schedule can ask for; None keeps every frame."""
    format: str = "rawframes"
    """``rawframes`` (JPEGs) or ``packed`` (memory-mapped uint8 arrays per video instead, ``data/packed.py``)."""

    def __post_init__(self) -> None:
        try:
            method = check_available(self.flow)  # ValueError listing the choices
        except FlowBackendError as exc:  # opencv-tvl1 without OpenCV's contrib modules
            raise PrepareError(str(exc)) from None
        if self.device != "cpu":
            if method not in TORCH_METHODS:
                raise PrepareError(f"--device {self.device} needs a PyTorch flow method ({', '.join(TORCH_METHODS)}), "
                                   f"not {self.flow!r}")
            from ..flow._torch import resolve_device  # torch only for the PyTorch solvers

            try:
                resolve_device(self.device)
            except RuntimeError as exc:
                raise PrepareError(str(exc)) from None
        if self.short_side < 0:
            raise PrepareError(f"--short-side must be >= 0 (0 keeps the original size), got {self.short_side}")
        if self.bound <= 0:
            raise PrepareError(f"the flow bound must be positive, got {self.bound}")
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

    @property
    def failed(self) -> int:
        return len(self.failures)

    def line(self, cache: Path) -> str:
        text = f"prepared {self.prepared}, skipped {self.skipped} (already done), failed {self.failed}"
        text += f" (see {cache / self.failures_file})" if self.failed else ""
        rate = f" ({self.frames / self.seconds:.0f} frames/s)" if self.seconds > 0 and self.frames else ""
        return text + f"; {self.frames} frames in {self.seconds:.1f} s{rate}; disk used {_human(self.disk_bytes)}"


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} TB"  # pragma: no cover


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
    """Whether video ``rel`` belongs to shard (i, n): by a hash of its path, so that machines that list
    the folder differently (or see it grow) still agree and the shards stay disjoint."""
    i, n = shard
    return int.from_bytes(hashlib.sha1(rel.encode()).digest()[:8], "big") % n == i - 1


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


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    """Encode in memory, write with one call: the same bytes as cv2.imwrite, at about half its cost."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"could not encode {path}")
    with open(path, "wb") as fh:
        fh.write(buf.data)


def _write_flows(out: Path, numbers: list[int], prev: list[np.ndarray], nxt: list[np.ndarray],
                 opts: PrepareOptions) -> None:
    """Flow from each gray frame of ``prev`` to the one in ``nxt``, written as flow_x/flow_y ``numbers``."""
    q = quantize_flow(compute_flow(np.stack(prev), np.stack(nxt), method=opts.flow, device=opts.device), opts.bound)
    for k, i in enumerate(numbers):  # q: (N, 2, H, W) uint8
        _write_jpeg(out / f"flow_x_{i:05d}.jpg", q[k, 0])
        _write_jpeg(out / f"flow_y_{i:05d}.jpg", q[k, 1])


def prepare_video(src: str | Path, dst: str | Path, opts: PrepareOptions) -> dict:
    """Decode ``src`` and write its rawframes folder ``dst`` atomically; returns the manifest.

    Frames are streamed: at most FLOW_CHUNK + 1 frames are held at once (the sampled mode parks
    the grayscale frames it may need in the temporary folder instead of memory). A folder counts
    as done only once it has its manifest, which is written last, before the rename.
    """
    src, dst = Path(src), Path(dst)
    with atomic_folder(dst) as tmp:
        if opts.schedule is None:
            count, height, width = _write_all_frames(src, tmp, opts)
            kept: str | list[int] = "all"
        else:
            count, height, width, kept = _write_sampled_frames(src, tmp, opts, opts.schedule)
        manifest = write_manifest(tmp, src.name, count, height, width, kept, opts)
    return manifest


def write_manifest(folder: Path, source: str, count: int, height: int, width: int,
                   kept: str | list[int], opts: PrepareOptions) -> dict:
    """Write ``folder/manifest.json`` (last, once every frame and flow is in ``folder``) and return it."""
    manifest = {
        "source": source,
        "num_frames": count,
        "num_flows": count - 1 if kept == "all" else len(kept),  # every frame but the last, or the kept ones
        "height": height,
        "width": width,
        "flow_method": opts.flow,
        "flow_bound": opts.bound,
        "format": "mmaction2-rawframes",
        "frames": kept,
    }
    if opts.schedule is not None:
        manifest["schedule"] = opts.schedule.to_dict()
    if opts.format == "packed":  # memory-mapped uint8 arrays instead of the JPEGs (data/packed.py)
        pack_folder(folder, manifest, drop_jpeg=True)
    manifest["bytes"] = folder_bytes(folder)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot, from /proc), so that a reused pid is told apart;
    "" where /proc is not available; None when no such process runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "" if not Path("/proc/self/stat").exists() else None
    fields = stat.rsplit(")", 1)[1].split()  # the fields after the parenthesised command name
    if fields[0] in "ZX":  # state: a dead process nobody has reaped yet (a zombie) runs no more
        return None
    return fields[19]  # field 22, the start time


_TMP_OWNER = re.compile(r"\.tmp-(?P<host>.+)-(?P<pid>\d+)-(?P<start>\d*)$")
#: A temporary folder of another machine is taken for an interrupted run's after this long untouched.
FOREIGN_TMP_MAX_AGE_S = 24 * 3600


def _owner_tag() -> str:
    """``host-pid-start``: who writes a temporary folder (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}-{os.getpid()}-{_start_time(os.getpid()) or ''}"


def _is_stale(tmp: Path) -> bool:
    """Whether a temporary folder was left by a run that is gone (so it may be removed).

    Its name says its owner: on this machine, stale when that process no longer runs (or its pid now
    belongs to a younger process); of another machine, when untouched for FOREIGN_TMP_MAX_AGE_S;
    a name without an owner (an older version's) is stale.
    """
    m = _TMP_OWNER.search(tmp.name)
    if not m:
        return True
    if m.group("host") != socket.gethostname():
        try:
            return time.time() - tmp.stat().st_mtime > FOREIGN_TMP_MAX_AGE_S
        except OSError:
            return False
    running = _start_time(int(m.group("pid")))
    return running is None or (bool(m.group("start")) and bool(running) and running != m.group("start"))


@contextmanager
def atomic_folder(dst: Path) -> Iterator[Path]:
    """A temporary sibling of ``dst`` to fill; renamed to ``dst`` when the block ends without error,
    removed when it fails. The temporary name carries its owner (host, pid, process start time):
    leftovers of interrupted runs are removed first, never a live run's. A ``dst`` without manifest
    (a half copy made by hand) is replaced; when a concurrent run finished the same ``dst`` first,
    its copy is kept and ours dropped (both are the same video)."""
    tmp = new_tmp_folder(dst)
    try:
        yield tmp
        commit_folder(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def new_tmp_folder(dst: Path, owner: str | None = None) -> Path:
    """The empty temporary sibling of ``dst`` that atomic_folder fills, named after ``owner`` (default: this
    process, see _owner_tag); stale leftovers of other runs are removed first."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for other in dst.parent.glob(f".{dst.name}.tmp-*"):
        if _is_stale(other):
            shutil.rmtree(other, ignore_errors=True)
    tmp = dst.parent / f".{dst.name}.tmp-{owner or _owner_tag()}"
    shutil.rmtree(tmp, ignore_errors=True)  # our own leftover (this process, an earlier failed attempt)
    tmp.mkdir()
    return tmp


def commit_folder(tmp: Path, dst: Path) -> None:
    """Rename a filled temporary folder to ``dst`` (see atomic_folder for the concurrent-run rules)."""
    if dst.exists() and not (dst / MANIFEST).is_file():
        shutil.rmtree(dst)
    try:
        os.rename(tmp, dst)
    except OSError:
        if not (dst / MANIFEST).is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another run prepared it meanwhile


def folder_bytes(folder: Path) -> int:
    return sum(e.stat().st_size for e in os.scandir(folder) if e.is_file())


def _too_short(src: Path, count: int) -> VideoReadError:
    return VideoReadError(src, f"only {count} frame decoded; optical flow needs at least 2")


def _write_all_frames(src: Path, tmp: Path, opts: PrepareOptions) -> tuple[int, int, int]:
    """Every frame and every forward flow; returns (frames, height, width)."""
    count, height, width = 0, 0, 0
    grays: list[np.ndarray] = []  # frames waiting for their flow; the last one is kept as overlap
    for rgb in iter_frames(src):
        rgb = resize_short_side(rgb, opts.short_side)
        if count == 0:
            height, width = rgb.shape[:2]
        count += 1
        _write_jpeg(tmp / f"img_{count:05d}.jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        grays.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        if len(grays) == FLOW_CHUNK + 1:
            _write_flows(tmp, list(range(count - FLOW_CHUNK, count)), grays[:-1], grays[1:], opts)
            grays = grays[-1:]
    if count < 2:
        raise _too_short(src, count)
    if len(grays) > 1:
        _write_flows(tmp, list(range(count - len(grays) + 1, count)), grays[:-1], grays[1:], opts)
    return count, height, width


def _write_sampled_frames(src: Path, tmp: Path, opts: PrepareOptions, schedule: SampleSchedule
                          ) -> tuple[int, int, int, list[int]]:
    """Only the frames ``schedule`` can ask for, with their forward flow; returns (frames, h, w, kept).

    Which frames those are depends on the frame count, known only at the end of the stream; but
    they all lie within the first ``schedule.span`` frames, so those are parked (RGB as JPEG, gray
    as .npy) in the temporary folder, the rest of the video is only decoded and counted.
    """
    count, height, width = 0, 0, 0
    for rgb in iter_frames(src):
        count += 1
        if count > schedule.span:
            continue
        rgb = resize_short_side(rgb, opts.short_side)
        if count == 1:
            height, width = rgb.shape[:2]
        _write_jpeg(tmp / f"img_{count:05d}.jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        np.save(tmp / f".gray_{count:05d}.npy", cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    if count < 2:
        raise _too_short(src, count)
    kept = schedule.frames_for(count)
    for start in range(0, len(kept), FLOW_CHUNK):
        part = kept[start:start + FLOW_CHUNK]
        prev = [np.load(tmp / f".gray_{i:05d}.npy") for i in part]
        nxt = [np.load(tmp / f".gray_{i + 1:05d}.npy") for i in part]
        _write_flows(tmp, part, prev, nxt, opts)
    keep = set(kept)
    for i in range(1, min(count, schedule.span) + 1):
        (tmp / f".gray_{i:05d}.npy").unlink()
        if i not in keep:
            (tmp / f"img_{i:05d}.jpg").unlink()
    return count, height, width, kept


def _die_with_parent(parent: int) -> None:
    """Worker initialiser: the worker ends when its parent ``parent`` dies, even by SIGKILL, so no
    orphan goes on writing into the cache (or waits forever) while a rerun redoes its video.

    On Linux the kernel sends SIGKILL (PR_SET_PDEATHSIG); a parent that died before that was set
    (while the worker was still importing) is caught by checking the parent pid right after, and a
    watchdog thread checks it every second where prctl is not available.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    cv2.setNumThreads(1)


def _job(args: tuple[str, str, str, PrepareOptions]) -> tuple[str, str | None, int, int]:
    """Prepare one video; returns (rel, failure reason or None, frames, bytes). Never raises for a
    bad video: whatever goes wrong with one file is its failure, not the run's."""
    rel, src, dst, opts = args
    cv2.setNumThreads(1)
    try:
        manifest = prepare_video(src, dst, opts)
        return rel, None, manifest["num_frames"], manifest["bytes"]
    except VideoReadError as exc:
        return rel, " ".join(exc.reason.split()), 0, 0
    except (Exception, MemoryError) as exc:  # cv2.error, OSError (disk full), MemoryError (huge frames), ...
        return rel, " ".join(f"{type(exc).__name__}: {exc}".split()), 0, 0


WORKER_DIED = "the worker process died while preparing this video (a crash in the decoder, or killed, e.g. out of memory)"


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_die_with_parent,
                               initargs=(os.getpid(),), max_tasks_per_child=TASKS_PER_WORKER)


def _run_processes(todo: list, workers: int, job=_job) -> Iterator[tuple[str, str | None, int, int]]:
    """Results of ``job`` over ``todo`` from a process pool, as they complete.

    A worker that dies (a segfault in a codec, the OOM killer) breaks the whole pool; then the
    videos that were in flight (the first ``workers + 1`` unfinished ones, in submission order)
    are retried one at a time in a one-worker pool, where one that kills its worker again is
    reported as failed, and the rest go on in a fresh pool. So one bad file never ends the run.
    """
    if workers == 1 or len(todo) <= 1:
        yield from map(job, todo)
        return
    queue = list(todo)
    while queue:
        unfinished: list[int] = []
        pool = _new_pool(workers)
        try:
            futures = {pool.submit(job, args): k for k, args in enumerate(queue)}
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    unfinished.append(futures[fut])
        finally:
            pool.shutdown(cancel_futures=True)
        unfinished.sort()
        suspects = [queue[k] for k in unfinished[: workers + 1]]
        queue = [queue[k] for k in unfinished[workers + 1:]]
        alone = None  # one worker, one video at a time: a break names its video
        try:
            for args in suspects:
                alone = alone or _new_pool(1)
                try:
                    yield alone.submit(job, args).result()
                except BrokenProcessPool:
                    yield args[0], WORKER_DIED, 0, 0
                    alone.shutdown()
                    alone = None
        finally:
            if alone is not None:
                alone.shutdown(cancel_futures=True)


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
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, **({} if os.environ.get("RAY_ADDRESS") else
                                                                   {"num_cpus": workers}))
    task = ray.remote(num_cpus=1)(_job)
    window = 4 * max(1, int(ray.cluster_resources().get("CPU", workers)))
    pending, queue = [], iter(todo)
    for args in queue:
        pending.append(task.remote(args))
        if len(pending) >= window:
            break
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
        nxt = next(queue, None)
        if nxt is not None:
            pending.append(task.remote(nxt))


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
    """Prepare the videos under ``videos_dir`` (or the listed ``videos``) into ``cache``.

    ``shard=(i, n)`` takes only this machine's part; failures go to ``cache/failures.txt`` (one
    file per shard, ``failures-shard-I-of-N.txt``, so machines never overwrite each other's).
    """
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
    run = _run_ray if executor == "ray" else _run_processes
    gpu = None
    if executor == "process" and opts.device != "cpu":  # one flow process per GPU, fed by CPU workers
        from .prepare_gpu import GPUFlowRunner

        run = gpu = GPUFlowRunner(opts)
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc="prepare", unit="video", disable=not progress or not todo)
    try:
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
    finally:
        bar.close()
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
    """Write the failures file: this run's ``failures`` plus the entries already there (from a
    concurrent or earlier run) for which ``keep(rel)`` holds (without ``keep`` none), so a failure a
    concurrent run reported is not lost when this run writes the file after it."""
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
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(f"{rel}\t{reason}\n" for rel, reason in sorted(rows.items())))
        os.replace(tmp, path)
