"""Which frames a clip uses. Two samplings (``data.sampling``):

* ``interval`` (the paper's): ``frames`` frames at an ``interval``, starting at a frame ``offset``.
  The paper samples f5, f15, ..., f95 (offset 5, interval 10, 10 frames) and shifts the offset every
  100 epochs (to f8, f18, ...). The clip spans a fixed number of frames, whatever the video's length
  or frame rate.
* ``spread``: the ``frames`` frames spread over the whole video, in order (TSN-like): the usable
  frames are cut into ``frames`` equal segments and one frame is taken in each, at a ``phase`` in
  [0, 1) of its segment. Training draws each segment's phase (``temporal_jitter``) and may cover only
  a random part of the video (``span_min``: speed augmentation); evaluation takes fixed phases, one
  per clip (``eval_phases``). The clip covers the whole action, whatever its duration.

Frame numbers are 1-based, as in the rawframes files. A clip may only use frames that have a
forward flow (1 .. num_frames - 1); the flow of a sampled frame is the flow to its successor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SAMPLINGS = ("interval", "spread")


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


def spread_indices(num_frames: int, *, frames: int, phase: float | Sequence[float] = 0.5, start: float = 0.0,
                   span: float = 1.0) -> list[int]:
    """1-based frame numbers of a spread clip: frame k at ``phase`` (one for all segments, or one per
    segment) of the k-th of ``frames`` equal segments of the usable frames' part [start, start + span)
    (fractions of the video). Non-decreasing; a video with fewer usable frames than ``frames`` repeats some.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    last = num_frames - 1  # the last frame that has a flow to its successor
    if last < 1:
        raise ValueError(f"a clip needs at least 2 frames, the video has {num_frames}")
    phases = [phase] * frames if isinstance(phase, (int, float)) else list(phase)
    if len(phases) != frames or not all(0 <= p < 1 for p in phases):
        raise ValueError(f"phase must be in [0, 1), one or {frames} of them, got {phase}")
    if not (0 <= start and 0 < span and start + span <= 1 + 1e-9):
        raise ValueError(f"start and span must lie in [0, 1], got {start}, {span}")
    segment = span * last / frames
    return [min(last, 1 + int(start * last + (k + p) * segment)) for k, p in enumerate(phases)]


def eval_phases(clips: int) -> list[float]:
    """``clips`` phases spread evenly over a segment, for multi-clip evaluation of spread clips."""
    if clips < 1:
        raise ValueError(f"clips must be >= 1, got {clips}")
    return [(i + 0.5) / clips for i in range(clips)]


def random_spread_indices(rng: np.random.Generator, num_frames: int, *, frames: int, jitter: bool = True,
                          span_min: float = 1.0) -> list[int]:
    """A training spread clip: with ``jitter`` a random phase per segment (else the centre); with
    ``span_min`` < 1 the clip covers a random part of at least ``span_min`` of the video (the action
    then looks slower: speed augmentation)."""
    span = 1.0 if span_min >= 1 else float(rng.uniform(span_min, 1.0))
    start = float(rng.uniform(0.0, 1.0 - span)) if span < 1 else 0.0
    phase = rng.random(frames).tolist() if jitter else 0.5
    return spread_indices(num_frames, frames=frames, phase=phase, start=start, span=span)


def eval_positions(sampling: str, *, interval: int, clips: int) -> list[float]:
    """Where the ``clips`` evaluation clips of a video sit: frame offsets in one interval
    (``eval_offsets``) for ``interval`` sampling, phases (``eval_phases``) for ``spread``."""
    return eval_phases(clips) if sampling == "spread" else list(eval_offsets(interval, clips))


def view_indices(num_frames: int, position: float, *, sampling: str, frames: int, interval: int) -> list[int]:
    """1-based frame numbers of the evaluation clip at ``position`` (one of ``eval_positions``)."""
    if sampling == "spread":
        return spread_indices(num_frames, frames=frames, phase=position)
    return clip_indices(num_frames, frames=frames, interval=interval, offset=int(position))
