"""A packed uint8 store beside (or instead of) the rawframes JPEGs: memory-mapped arrays per video.

``<video>/rgb.npy`` holds ``(N, H, W, 3)`` uint8 and ``<video>/flow.npy`` ``(N, H, W, 2)`` uint8
(quantised flow-x, flow-y to the next frame), row k = frame ``rows[k]``: exactly the decoded pixels
of ``img_*.jpg``, ``flow_x_*.jpg`` and ``flow_y_*.jpg``. The rows are the frames that have a flow
(1 .. num_frames - 1, or the kept frames of ``prepare --only-sampled``), the only ones a clip may
use. A clip is then 10 rows of two files instead of 30 JPEG opens and decodes: the loader copies bytes.

Size: ``5 * H * W`` bytes per frame, uncompressed (320x240: 384 KB, about 12x the JPEGs): for sets
that fit in the page cache or on fast disk; ``prepare --only-sampled`` keeps the set small.
``dualstream pack CACHE`` converts a rawframes cache in place (``--drop-jpeg`` removes the JPEGs);
``prepare --format packed`` writes the packed store directly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

PACKED_RGB, PACKED_FLOW = "rgb.npy", "flow.npy"  # flow.npy is written last: it marks a complete store
MANIFEST = "manifest.json"  # as data.prepare.MANIFEST (not imported: prepare imports this module)


def packed_rows(manifest: dict) -> list[int]:
    """Frame numbers (1-based) of the packed rows: every frame with a forward flow."""
    kept = manifest.get("frames", "all")
    if kept != "all":
        return [int(i) for i in kept]
    return list(range(1, int(manifest.get("num_flows", manifest["num_frames"] - 1)) + 1))


def is_packed(folder: str | Path) -> bool:
    return (Path(folder) / PACKED_FLOW).is_file()


def decode_jpeg(path: Path, flags: int) -> np.ndarray:
    """A frame decoded; a missing, undecodable or cut one is a CacheError naming it. (Decoded from memory:
    ``cv2.imread`` decodes a JPEG cut short without an error, the missing part grey.)"""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        data = None
    img = cv2.imdecode(data, flags) if data is not None and data.size else None
    if img is None:
        from .cache import CacheError

        raise CacheError(f"{path}: missing, unreadable or cut short frame")
    return img


def decode_frames(folder: Path, indices: list[int], out: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``indices`` of a rawframes folder decoded: rgb ``(T, H, W, 3)`` and flow ``(T, H, W, 2)`` uint8."""
    for t, i in enumerate(indices):
        names = (f"img_{i:05d}.jpg", f"flow_x_{i:05d}.jpg", f"flow_y_{i:05d}.jpg")
        bgr, fx, fy = (decode_jpeg(folder / n, f) for n, f in zip(names, (cv2.IMREAD_COLOR, *[cv2.IMREAD_GRAYSCALE] * 2)))
        if out is None:
            out = (np.empty((len(indices), *bgr.shape[:2], 3), np.uint8),
                   np.empty((len(indices), *bgr.shape[:2], 2), np.uint8))
        for name, img in zip(names, (bgr, fx, fy)):  # OpenCV would write a dst of another size elsewhere, silently
            if img.shape[:2] != out[0].shape[1:3]:
                from .cache import CacheError

                (h, w), (want_h, want_w) = img.shape[:2], out[0].shape[1:3]
                raise CacheError(f"{folder / name}: {w}x{h} pixels, not the video's {want_w}x{want_h} "
                                 "(its manifest.json and other frames)")
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out[0][t])
        cv2.merge([fx, fy], dst=out[1][t])
    assert out is not None, "a clip has at least one frame"
    return out


def read_packed(folder: Path, rows: list[int], lines: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the packed store: rgb (T, H, W, 3), flow (T, H, W, 2); ``lines`` (top, height): only those
    image lines of each frame (T, height, W, C). Read with one ``readinto`` per row (no memory-map page
    faults; from the page cache once the set has been read)."""
    rgb, flow = (_read_rows(folder / name, rows, lines) for name in (PACKED_RGB, PACKED_FLOW))
    return rgb, flow


def _read_rows(path: Path, rows: list[int], lines: tuple[int, int] | None) -> np.ndarray:
    with open(path, "rb") as fh:
        shape, start = _store_header(fh, path)
        top, height = (0, shape[1]) if lines is None else lines
        if not (0 <= top and height >= 1 and top + height <= shape[1]):
            raise IndexError(f"{path}: lines {top}..{top + height - 1} of {shape[1]}")
        out = np.empty((len(rows), height, *shape[2:]), np.uint8)
        line_bytes = out[0, 0].nbytes
        row_bytes, want = shape[1] * line_bytes, height * line_bytes
        for k, r in enumerate(rows):
            if not 0 <= r < shape[0]:
                raise IndexError(f"{path}: row {r} of {shape[0]}")
            fh.seek(start + r * row_bytes + top * line_bytes)
            if fh.readinto(memoryview(out[k]).cast("B")) != want:
                _damaged(path, "truncated")
    return out


def _store_header(fh, path: Path) -> tuple[tuple[int, ...], int]:
    """Shape (N, H, W, C) and data offset of an open packed array; a damaged ``.npy`` header is a CacheError."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(fh)
    except ValueError as exc:
        _damaged(path, " ".join(str(exc).split())[:120])
    if dtype != np.uint8 or fortran or len(shape) != 4:
        _damaged(path, f"a {'Fortran-order ' if fortran else ''}{dtype} array of shape {shape}, not (N, H, W, C) uint8")
    return shape, fh.tell()


def check_packed(folder: Path, manifest: dict) -> None:
    """The packed store's arrays have the shape the manifest gives and their full size on disk: checked when a
    dataset is built, so that a damaged store stops a run before training rather than in a loader mid-run."""
    for name, channels in ((PACKED_RGB, 3), (PACKED_FLOW, 2)):
        path = folder / name
        with open(path, "rb") as fh:
            shape, start = _store_header(fh, path)
        want = (len(packed_rows(manifest)), manifest["height"], manifest["width"], channels)
        if shape != want:
            _damaged(path, f"shape {shape}, the manifest gives {want}")
        if path.stat().st_size < start + int(np.prod(want)):
            _damaged(path, f"truncated: {path.stat().st_size} bytes of {start + int(np.prod(want))}")


def _damaged(path: Path, reason: str):
    from .cache import CacheError

    raise CacheError(f"{path}: damaged packed store ({reason}); prepare or pack the video again")


def pack_folder(folder: str | Path, manifest: dict | None = None, *, drop_jpeg: bool = False) -> int:
    """Write the folder's packed store from its JPEGs (atomically: a temporary file renamed); returns its bytes.

    ``manifest``: the folder's manifest when it is not written yet (``prepare --format packed``).
    ``drop_jpeg``: remove the JPEGs afterwards (the store then serves every reader of the cache) and
    mark the manifest ``"format": "packed-uint8"``.
    """
    folder = Path(folder)
    on_disk = manifest is None
    if manifest is None:
        from .cache import load_manifest

        manifest = load_manifest(folder)
    rows = packed_rows(manifest)
    shape = (len(rows), manifest["height"], manifest["width"])
    tmps = [folder / f".{name}.tmp" for name in (PACKED_RGB, PACKED_FLOW)]
    try:
        out = tuple(np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(*shape, c))
                    for tmp, c in zip(tmps, (3, 2)))
        for k in range(0, len(rows), 16):  # a few frames at a time: memory stays small for long videos
            decode_frames(folder, rows[k:k + 16], (out[0][k:k + 16], out[1][k:k + 16]))
        for a in out:
            a.flush()
        del out
        for tmp, name in zip(tmps, (PACKED_RGB, PACKED_FLOW)):
            os.replace(tmp, folder / name)
    except BaseException:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        raise
    if drop_jpeg:
        manifest["format"] = "packed-uint8"
        if on_disk:
            tmp_manifest = folder / f".{MANIFEST}.tmp"
            tmp_manifest.write_text(json.dumps(manifest, indent=1))
            os.replace(tmp_manifest, folder / MANIFEST)
        for p in folder.glob("*.jpg"):
            p.unlink()
    return packed_bytes(folder)


def packed_bytes(folder: Path) -> int:
    return sum((folder / name).stat().st_size for name in (PACKED_RGB, PACKED_FLOW))


@dataclass
class PackSummary:
    packed: int = 0
    skipped: int = 0
    bytes: int = 0

    def line(self, cache: Path) -> str:
        return (f"packed {self.packed}, skipped {self.skipped} (already packed) in {cache}; "
                f"packed store {self.bytes / 2**20:.1f} MiB")


def _pack_job(args: tuple[str, bool]) -> tuple[str, None, int, int]:
    """Pack one folder: (folder, None, rows, bytes), the shape of prepare's job results; a bad frame raises."""
    cv2.setNumThreads(1)
    size = pack_folder(args[0], drop_jpeg=args[1])
    return args[0], None, 0, size


def pack_cache(cache: str | Path, *, workers: int = 0, drop_jpeg: bool = False, progress: bool = True) -> PackSummary:
    """Pack every prepared video of a rawframes cache (skips those already packed; resumable)."""
    from .cache import CacheError

    cache = Path(cache)
    folders = sorted({m.parent.resolve() for m in cache.glob(f"*/*/{MANIFEST}")})  # a linked folder once
    if not folders:
        raise CacheError(f"{cache}: no prepared videos (run `dualstream prepare` first)")
    summary = PackSummary()
    todo = []
    for f in folders:
        if is_packed(f):
            summary.skipped += 1
            summary.bytes += packed_bytes(f)
        else:
            todo.append((str(f), drop_jpeg))
    from .prepare import _run_processes  # prepare imports this module

    workers = workers or len(os.sched_getaffinity(0))
    # prepare's pool: workers that end with this process (even on SIGKILL) and a crash named by its video
    with tqdm(total=len(todo), desc="pack", unit="video", disable=not progress) as bar:
        for folder, failure, _, size in _run_processes(todo, workers, job=_pack_job):
            if failure:  # its worker died (a crash in the decoder, or killed)
                raise CacheError(f"{folder}: {failure}")
            summary.packed += 1
            summary.bytes += size
            bar.update()
    return summary
