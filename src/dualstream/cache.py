"""The prepared cache's format: one folder per video with ``manifest.json``, the rawframes JPEGs
(``img_NNNNN.jpg``, ``flow_x_NNNNN.jpg``, ``flow_y_NNNNN.jpg``) and/or the packed uint8 store
(``rgb.npy``, ``flow.npy``: row k = frame ``rows[k]``, exactly the JPEGs' decoded pixels); reading
frames from either, and its errors. Writing the cache is ``dualstream.prepare``'s job."""

from __future__ import annotations

import json
from bisect import bisect_left
from pathlib import Path

import cv2
import numpy as np

from .flow import dequantize_flow

MANIFEST = "manifest.json"
PACKED_RGB, PACKED_FLOW = "rgb.npy", "flow.npy"  # flow.npy is written last: it marks a complete store


class CacheError(ValueError):
    """The cache is missing videos a split needs, or holds unreadable files."""


def is_prepared(cache: str | Path, key: str) -> bool:
    return (Path(cache) / key / MANIFEST).is_file()


def read_manifest(cache: str | Path, key: str) -> dict:
    path = Path(cache) / key / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CacheError(f"{path}: video not prepared (no manifest)") from None


def available_frames(manifest: dict) -> list[int] | None:
    """Frame numbers a video's folder holds (each with its forward flow); None when it holds them all.

    ``prepare --only-sampled`` keeps only the frames of its sampling schedule and lists them here.
    """
    kept = manifest.get("frames", "all")
    return None if kept == "all" else [int(i) for i in kept]


def snap_to_available(indices: list[int], available: list[int] | None) -> list[int]:
    """Each frame number replaced by the nearest one the folder holds (the earlier on a tie).

    With the schedule the cache was prepared for, every index is already held and nothing moves;
    another schedule (e.g. ``evaluate --clips 7``) still gets a clip, of the nearest kept frames.
    """
    if available is None:
        return indices
    out = []
    for i in indices:
        k = bisect_left(available, i)
        if k == len(available) or (k > 0 and i - available[k - 1] <= available[k] - i):
            k -= 1
        out.append(available[k])
    return out


def frame_sizes(cache: str | Path, keys: list[str]) -> list[tuple[int, int]]:
    """(height, width) of every video's frames, from the manifests."""
    return [(m["height"], m["width"]) for m in (read_manifest(cache, k) for k in keys)]


def check_prepared(cache: str | Path, keys: list[str]) -> None:
    """Raise one CacheError naming every video of ``keys`` that the cache lacks."""
    missing = [k for k in keys if not (Path(cache) / k / MANIFEST).is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise CacheError(
            f"{len(missing)} video(s) of the split are not in the cache {cache}: {shown} "
            "(run `dualstream prepare`, or check failures.txt)"
        )


def load_frames_u8(folder: str | Path, indices: list[int], available: list[int] | None = None, *,
                   lines: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``indices`` (1-based, held by the folder): rgb ``(T, H, W, 3)`` and quantised flow
    ``(T, H, W, 2)`` uint8. Sliced from the packed store when the folder has one (``available``: the
    folder's kept frames, None for all), else decoded from the JPEGs. ``lines`` (top, height): the
    packed store reads only those image lines (``(T, height, W, C)``); the JPEGs are decoded whole."""
    folder = Path(folder)
    if is_packed(folder):
        rows = [i - 1 for i in indices] if available is None else [bisect_left(available, i) for i in indices]
        return read_packed(folder, rows, lines)
    return decode_frames(folder, indices)


def load_clip_u8(folder: str | Path, indices: list[int], available: list[int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``indices`` (1-based) of a rawframes folder as stored: rgb uint8 (T, H, W, 3) and quantised
    flow uint8 (T, 2, H, W) (from the packed store when the folder has one)."""
    rgb, flow = load_frames_u8(folder, indices, available)
    return rgb, flow.transpose(0, 3, 1, 2)


def load_clip(folder: str | Path, indices: list[int], *, bound: float, available: list[int] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``indices`` (1-based) of a rawframes folder -> rgb uint8 (T, H, W, 3), flow px (T, 2, H, W)."""
    rgb, q = load_clip_u8(folder, indices, available)
    return rgb, dequantize_flow(q, bound)


def packed_rows(manifest: dict) -> list[int]:
    """Frame numbers (1-based) of the packed rows: every frame with a forward flow."""
    kept = manifest.get("frames", "all")
    if kept != "all":
        return [int(i) for i in kept]
    return list(range(1, int(manifest.get("num_flows", manifest["num_frames"] - 1)) + 1))


def is_packed(folder: str | Path) -> bool:
    return (Path(folder) / PACKED_FLOW).is_file()


def decode_jpeg(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise CacheError(f"{path}: missing or unreadable frame")
    return img


def decode_frames(folder: Path, indices: list[int], out: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``indices`` of a rawframes folder decoded: rgb ``(T, H, W, 3)`` and flow ``(T, H, W, 2)`` uint8."""
    for t, i in enumerate(indices):
        bgr = decode_jpeg(folder / f"img_{i:05d}.jpg", cv2.IMREAD_COLOR)
        if out is None:
            out = (np.empty((len(indices), *bgr.shape[:2], 3), np.uint8),
                   np.empty((len(indices), *bgr.shape[:2], 2), np.uint8))
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out[0][t])
        cv2.merge([decode_jpeg(folder / f"flow_{a}_{i:05d}.jpg", cv2.IMREAD_GRAYSCALE) for a in "xy"], dst=out[1][t])
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
        fmt = np.lib.format
        read_header = fmt.read_array_header_1_0 if fmt.read_magic(fh) == (1, 0) else fmt.read_array_header_2_0
        shape = read_header(fh)[0]
        start = fh.tell()
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
                        raise CacheError(f"{path}: truncated packed store")
    return out
