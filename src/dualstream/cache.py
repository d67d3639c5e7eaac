"""The prepared cache's format: one folder per video with ``manifest.json``, the rawframes JPEGs
(``img_NNNNN.jpg``, ``flow_x_NNNNN.jpg``, ``flow_y_NNNNN.jpg``) and/or the packed uint8 store (``rgb.npy``,
``flow.npy``: row k = frame ``rows[k]``, exactly the JPEGs' decoded pixels); its errors."""

from __future__ import annotations

import json
from bisect import bisect_left
from pathlib import Path

import cv2
import numpy as np

from .text import cut, one_line, shown

MANIFEST = "manifest.json"  # written last into a prepared video's folder: it marks a complete video
PACKED_RGB, PACKED_FLOW = "rgb.npy", "flow.npy"  # flow.npy is written last: it marks a complete store
FRAME_FILES = ("img_{:05d}.jpg", "flow_x_{:05d}.jpg", "flow_y_{:05d}.jpg")  # frame i's RGB, flow-x, flow-y JPEGs


class CacheError(ValueError):
    """The cache is missing videos a split needs, or holds unreadable files."""


def is_prepared(cache: str | Path, key: str) -> bool:
    return (Path(cache) / key / MANIFEST).is_file()


def new_manifest(source: str, frames: int, flows: int, height: int, width: int, flow_method: str, flow_bound: float,
                 kept: str | list[int] = "all") -> dict:
    """A video's manifest (without its "bytes"), the fields in the cache format's order."""
    return {
        "source": source,
        "num_frames": frames,
        "num_flows": flows,
        "height": height,
        "width": width,
        "flow_method": flow_method,
        "flow_bound": flow_bound,
        "format": "mmaction2-rawframes",
        "frames": kept,
    }


def load_manifest(folder: str | Path) -> dict:
    """``folder/manifest.json``, with the fields readers index by checked (frame and flow counts, size, kept
    frames): a lying manifest would give an empty or all-zero packed store, or clips of missing frames."""
    path = Path(folder) / MANIFEST
    try:
        m = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise CacheError(f"{path}: video not prepared (no manifest)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise CacheError(f"{path}: not valid JSON ({cut(str(exc), 120)})") from None
    if not isinstance(m, dict):
        raise CacheError(f"{path}: not a JSON object")

    def need(ok: bool, key: str, rule: str) -> None:
        if not ok:
            raise CacheError(f"{path}: {key} must be {rule}, got {shown(m.get(key))}")

    for key, low in (("num_frames", 2), ("height", 1), ("width", 1)):
        need(type(m.get(key)) is int and m[key] >= low, key, f"an integer >= {low}")
    n, kept = m["num_frames"], m.get("frames", "all")
    flows = m.get("num_flows", n - 1 if kept == "all" else len(kept) if isinstance(kept, list) else None)
    if kept == "all":
        need(type(flows) is int and n - 1 <= flows <= n, "num_flows", f"num_frames - 1 or num_frames ({n - 1} or {n})")
    else:
        need(isinstance(kept, list) and len(kept) > 0 and all(type(i) is int for i in kept)
             and all(a < b for a, b in zip([0, *kept], [*kept, n + 1])), "frames",
             f'"all" or increasing frame numbers in 1..{n}')
        need(flows == len(kept), "num_flows", f"the number of kept frames ({len(kept)})")
    return m


def available_frames(manifest: dict) -> list[int] | None:
    """Frame numbers a video's folder holds, each with its flow (``prepare --only-sampled``); None: all of them."""
    kept = manifest.get("frames", "all")
    return None if kept == "all" else [int(i) for i in kept]


def snap_to_available(indices: list[int], available: list[int] | None) -> list[int]:
    """Each frame number replaced by the nearest one the folder holds (the earlier on a tie): any schedule works."""
    if available is None:
        return indices
    def nearest(i: int) -> int:
        k = bisect_left(available, i)
        return min(available[max(0, k - 1):k + 1], key=lambda a: abs(a - i))  # min keeps the first (earlier)

    return [nearest(i) for i in indices]


def frame_sizes(cache: str | Path, keys: list[str]) -> list[tuple[int, int]]:
    """(height, width) of every video's frames, from the manifests."""
    return [(m["height"], m["width"]) for m in (load_manifest(Path(cache) / k) for k in keys)]


def check_prepared(cache: str | Path, keys: list[str]) -> None:
    """Raise one CacheError naming every video of ``keys`` that the cache lacks."""
    missing = [k for k in keys if not is_prepared(cache, k)]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise CacheError(
            f"{len(missing)} video(s) of the split are not in the cache {cache}: {shown} "
            "(run `dualstream prepare`, or check failures.txt)"
        )


def load_frames_u8(folder: str | Path, indices: list[int], available: list[int] | None = None, *,
                   lines: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``indices`` (1-based, held by the folder; ``available``: its kept frames, None for all): rgb
    ``(T, H, W, 3)`` and quantised flow ``(T, H, W, 2)`` uint8, from the packed store when there is one (only
    the image ``lines`` (top, height) when given), else from the JPEGs (whole)."""
    folder = Path(folder)
    if is_packed(folder):
        rows = [i - 1 for i in indices] if available is None else [bisect_left(available, i) for i in indices]
        return read_packed(folder, rows, lines)
    return decode_frames(folder, indices)


def packed_rows(manifest: dict) -> list[int]:
    """Frame numbers (1-based) of the packed rows: every frame with a forward flow."""
    return available_frames(manifest) or list(range(1, int(manifest.get("num_flows", manifest["num_frames"] - 1)) + 1))


def is_packed(folder: str | Path) -> bool:
    return (Path(folder) / PACKED_FLOW).is_file()


def decode_jpeg(path: Path, flags: int) -> np.ndarray:
    """A frame decoded; a missing, undecodable or cut one is a CacheError naming it (docs/design.md)."""
    try:
        img = cv2.imdecode(np.fromfile(path, np.uint8), flags)
    except (OSError, cv2.error):  # unreadable, or empty (an empty buffer is an error to imdecode)
        img = None
    if img is None:
        raise CacheError(f"{path}: missing, unreadable or cut short frame")
    return img


def decode_frames(folder: Path, indices: list[int], out: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``indices`` of a rawframes folder decoded: rgb ``(T, H, W, 3)`` and flow ``(T, H, W, 2)`` uint8."""
    for t, i in enumerate(indices):
        names = [name.format(i) for name in FRAME_FILES]
        flags = (cv2.IMREAD_COLOR, cv2.IMREAD_GRAYSCALE, cv2.IMREAD_GRAYSCALE)
        bgr, fx, fy = (decode_jpeg(folder / n, f) for n, f in zip(names, flags))
        if out is None:
            out = (np.empty((len(indices), *bgr.shape[:2], 3), np.uint8),
                   np.empty((len(indices), *bgr.shape[:2], 2), np.uint8))
        for name, img in zip(names, (bgr, fx, fy)):  # OpenCV would write a dst of another size elsewhere, silently
            if img.shape[:2] != out[0].shape[1:3]:
                (h, w), (want_h, want_w) = img.shape[:2], out[0].shape[1:3]
                raise CacheError(f"{folder / name}: {w}x{h} pixels, not the video's {want_w}x{want_h} "
                                 "(its manifest.json and other frames)")
        cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=out[0][t])
        cv2.merge([fx, fy], dst=out[1][t])
    assert out is not None, "a clip has at least one frame"
    return out


def read_packed(folder: Path, rows: list[int], lines: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the packed store, rgb (T, H, W, 3) and flow (T, H, W, 2), or only ``lines`` (top, height) of each."""
    return _read_rows(folder / PACKED_RGB, rows, lines), _read_rows(folder / PACKED_FLOW, rows, lines)


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
        _damaged(path, one_line(exc, 120))
    if dtype != np.uint8 or fortran or len(shape) != 4:
        _damaged(path, f"a {'Fortran-order ' if fortran else ''}{dtype} array of shape {shape}, not (N, H, W, C) uint8")
    return shape, fh.tell()


def check_packed(folder: Path, manifest: dict) -> None:
    """The packed store's arrays have the manifest's shape and their full size on disk (docs/design.md)."""
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
    raise CacheError(f"{path}: damaged packed store ({reason}); prepare or pack the video again")
