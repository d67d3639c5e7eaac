"""Read the prepared rawframes cache: manifests, RGB frames and dequantised flow."""

from __future__ import annotations

import json
from bisect import bisect_left
from pathlib import Path

import numpy as np

from ..config import cut, shown
from ..flow import dequantize_flow
from .packed import decode_frames, is_packed, read_packed
from .prepare import MANIFEST


class CacheError(ValueError):
    """The cache is missing videos a split needs, or holds unreadable files."""


def read_manifest(cache: str | Path, key: str) -> dict:
    return load_manifest(Path(cache) / key)


def load_manifest(folder: str | Path) -> dict:
    """``folder/manifest.json``, with the fields every reader indexes by checked (frame and flow counts,
    size, kept frames): a manifest that lies would otherwise give an empty or all-zero packed store, or
    clips of frames that do not exist."""
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
