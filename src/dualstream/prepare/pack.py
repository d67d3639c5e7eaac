"""``dualstream pack``: a video's packed uint8 store (``rgb.npy``, ``flow.npy``: the format is ``dualstream.cache``'s)
written from its JPEGs, beside them or instead of them (``--drop-jpeg``, ``prepare --format packed``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..cache import (MANIFEST, PACKED_FLOW, PACKED_RGB, CacheError, decode_frames, is_packed, load_manifest,
                     packed_rows)
from ..files import atomic_write_text
from .pool import run_processes


def pack_folder(folder: str | Path, manifest: dict | None = None, *, drop_jpeg: bool = False) -> int:
    """Write the folder's packed store from its JPEGs (atomically: a temporary file renamed); returns its bytes.
    ``manifest``: the folder's manifest when it is not written yet (``prepare --format packed``); ``drop_jpeg``:
    remove the JPEGs afterwards and mark the manifest ``"format": "packed-uint8"``."""
    folder = Path(folder)
    on_disk = manifest is None
    if manifest is None:
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
            atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1))
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
    workers = workers or len(os.sched_getaffinity(0))
    # prepare's pool: workers that end with this process (even on SIGKILL) and a crash named by its video
    with tqdm(total=len(todo), desc="pack", unit="video", disable=not progress) as bar:
        for folder, failure, _, size in run_processes(todo, workers, job=_pack_job):
            if failure:  # its worker died (a crash in the decoder, or killed)
                raise CacheError(f"{folder}: {failure}")
            summary.packed += 1
            summary.bytes += size
            bar.update()
    return summary
