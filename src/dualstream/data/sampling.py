"""Which frames a clip uses: ``frames`` frames at an ``interval``, starting at a frame ``offset``.

The paper samples f5, f15, ..., f95 (offset 5, interval 10, 10 frames) and shifts the offset every
100 epochs (to f8, f18, ...). Frame numbers are 1-based, as in the rawframes files. A clip may only
use frames that have a forward flow (1 .. num_frames - 1).
"""

from __future__ import annotations


def clip_indices(num_frames: int, *, frames: int = 10, interval: int = 10, offset: int = 5) -> list[int]:
    """1-based frame numbers ``offset, offset + interval, ...`` of one clip.

    When the video is too short the interval shrinks so that the ``frames`` frames fit; when even
    interval 1 does not fit from ``offset``, the clip starts earlier; a video with fewer usable
    frames than ``frames`` repeats its last usable frame.
    """
    if frames < 1 or interval < 1 or offset < 1:
        raise ValueError(f"frames, interval and offset must be >= 1, got {frames}, {interval}, {offset}")
    last = num_frames - 1  # the last frame that has a flow to its successor
    if last < 1:
        raise ValueError(f"a clip needs at least 2 frames, the video has {num_frames}")
    if frames > 1 and offset + (frames - 1) * interval > last:
        interval = max(1, (last - offset) // (frames - 1))
        if offset + (frames - 1) * interval > last:
            offset = max(1, last - (frames - 1) * interval)
    return [min(offset + i * interval, last) for i in range(frames)]


def offset_for_epoch(epoch: int, *, offsets: list[int], period: int) -> int:
    """The schedule's offset at ``epoch`` (0-based): offsets[0] for ``period`` epochs, then offsets[1], ..."""
    if not offsets or period < 1:
        raise ValueError("offsets must be non-empty and period >= 1")
    return offsets[(epoch // period) % len(offsets)]


def eval_offsets(interval: int, clips: int) -> list[int]:
    """``clips`` offsets spread evenly over one interval, for multi-clip video-level evaluation."""
    if clips < 1:
        raise ValueError(f"clips must be >= 1, got {clips}")
    if clips == 1:
        return [max(1, (interval + 1) // 2)]
    return sorted({1 + round(i * (interval - 1) / (clips - 1)) for i in range(clips)})
