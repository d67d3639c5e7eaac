"""Which frames a clip uses: 1-based numbers (as the rawframes files) of frames that have a forward flow
(1 .. num_frames - 1: a sampled frame's flow goes to its successor), for the samplings of README "Clips":
``interval`` (the paper's: ``frames`` frames at an ``interval`` from an ``offset``, a fixed span) and ``spread``
(TSN-like: one frame at a ``phase`` in [0, 1) of each of ``frames`` equal segments of the video)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..flow.quantize import DEFAULT_BOUND
from .transforms import DEFAULT_SHORT_SIDE

SAMPLINGS = ("interval", "spread")


def clip_indices(num_frames: int, *, frames: int = 10, interval: int = 10, offset: int = 5) -> list[int]:
    """Frames ``offset, offset + interval, ...`` of one clip. In a short video the interval shrinks to fit,
    then the clip starts earlier; a video with fewer usable frames than ``frames`` repeats its last one."""
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
    """A spread clip: frame k at ``phase`` (one, or one per segment) of the k-th of ``frames`` equal segments of
    the usable frames' part [start, start + span) (fractions of the video); non-decreasing."""
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
    """A training spread clip: with ``jitter`` a random phase per segment (else the centre); with ``span_min``
    < 1 a random part of at least ``span_min`` of the video (the action looks slower: speed augmentation)."""
    span = 1.0 if span_min >= 1 else float(rng.uniform(span_min, 1.0))
    start = float(rng.uniform(0.0, 1.0 - span)) if span < 1 else 0.0
    phase = rng.random(frames).tolist() if jitter else 0.5
    return spread_indices(num_frames, frames=frames, phase=phase, start=start, span=span)


def eval_positions(sampling: str, *, interval: int, clips: int) -> list[float]:
    """Where a video's ``clips`` evaluation clips sit: offsets in one interval, or phases for ``spread``."""
    return eval_phases(clips) if sampling == "spread" else list(eval_offsets(interval, clips))


def view_indices(num_frames: int, position: float, *, sampling: str, frames: int, interval: int) -> list[int]:
    """1-based frame numbers of the evaluation clip at ``position`` (one of ``eval_positions``)."""
    if sampling == "spread":
        return spread_indices(num_frames, frames=frames, phase=position)
    return clip_indices(num_frames, frames=frames, interval=interval, offset=int(position))


#: What a model package records of its ClipSpec (model.json), with the defaults of packages that lack a key.
MODEL_JSON_FIELDS = ("frames", "interval", "offsets", "input_size", "flow_bound", "flow_method", "short_side",
                     "eval_clips", "sampling", "window")


@dataclass(frozen=True)
class ClipSpec:
    """How clips are sampled and shaped for the network: the one description that training, evaluation,
    ``prepare --only-sampled`` and inference read, written into model.json and read back."""

    frames: int = 10
    interval: int = 10
    """Frames between two sampled frames (``interval`` sampling; shrinks for short videos)."""
    offsets: tuple[int, ...] = (5, 8)
    """First frame of a training clip, cycled every ``offset_period`` epochs (paper: f5 then f8)."""
    offset_period: int = 100
    eval_clips: int = 5
    """Clips per video at evaluation: offsets in one interval, or phases of the spread segments."""
    sampling: str = "interval"
    span_min: float = 1.0
    """Spread training clips cover a random part of at least this fraction of the video (speed augmentation)."""
    window: int = 0
    """``spread``: the frames of a stream window (``live``, ``timeline``); a video is spread over whole."""
    temporal_jitter: bool = False
    """Training clips at a random offset that fits, not the schedule's (``spread``: a random frame per segment)."""
    input_size: int = 224
    crop_scale_min: float = 0.8
    flip: bool = True
    flow_bound: float = DEFAULT_BOUND
    """+-px bound the flow was quantised with (the cache's)."""
    flow_method: str = "dis"
    """The flow method inference computes (the cache's)."""
    short_side: int = DEFAULT_SHORT_SIDE
    """Short side of the prepared frames, which inference resizes to."""

    @classmethod
    def from_config(cls, data: Any, **prepared: Any) -> "ClipSpec":
        """The spec of a ``config.DataConfig``; ``prepared``: the cache's flow_method, short_side, window."""
        return cls(frames=data.frames, interval=data.interval, offsets=tuple(data.offsets),
                   offset_period=data.offset_period, eval_clips=data.eval_clips, sampling=data.sampling,
                   span_min=data.span_min, temporal_jitter=data.temporal_jitter, input_size=data.input_size,
                   crop_scale_min=data.crop_scale_min, flip=data.flip, flow_bound=data.flow_bound, **prepared)

    def to_model_json(self) -> dict:
        """The keys model.json records (``window`` and ``sampling`` only for ``spread``)."""
        out = {k: getattr(self, k) for k in MODEL_JSON_FIELDS}
        out["offsets"] = list(self.offsets)
        if self.sampling != "spread":
            del out["sampling"], out["window"]
        return out

    @classmethod
    def from_model_json(cls, spec: dict) -> "ClipSpec":
        """The spec of a (validated) model.json; keys older packages lack (and flow_method "unknown") take defaults."""
        kw = {k: spec[k] for k in MODEL_JSON_FIELDS if spec.get(k) is not None}
        if kw.get("flow_method") == "unknown":
            del kw["flow_method"]
        if "offsets" in kw:
            kw["offsets"] = tuple(kw["offsets"])
        return cls(**kw)

    # -- a stream's clips (live, timeline)

    @property
    def span(self) -> int:
        """Frames one clip of a stream covers, first to last (``spread``: the window's frames that have a flow)."""
        if self.sampling == "spread":
            return self.window - 1
        return (self.frames - 1) * self.interval + 1

    @property
    def step(self) -> int:
        """Default frames between two stream clips: the interval, or a spread clip's segment."""
        return max(1, self.span // self.frames) if self.sampling == "spread" else self.interval

    def window_indices(self) -> list[int]:
        """1-based positions, in a stretch of ``span`` frames with their flow, of a stream clip's frames:
        every ``interval``-th from the first, or spread over the stretch (centre of each segment)."""
        if self.sampling == "spread":
            return spread_indices(self.span + 1, frames=self.frames)
        return list(range(1, self.span + 1, self.interval))

    # -- the frames any clip may use (prepare --only-sampled)

    @property
    def all_offsets(self) -> list[int]:
        """Training offsets and the evaluation offsets for 1 and ``eval_clips`` clips per video."""
        evals = set(eval_offsets(self.interval, 1)) | set(eval_offsets(self.interval, self.eval_clips))
        return sorted(set(self.offsets) | evals)

    @property
    def frames_needed(self) -> int:
        """Frames a video needs for no ``interval`` clip to shrink; no kept frame (or its flow partner) lies
        beyond it, so ``prepare --only-sampled`` decides what to keep from the first ``frames_needed`` frames."""
        return max(self.all_offsets) + (self.frames - 1) * self.interval + 1

    def frames_for(self, num_frames: int) -> list[int]:
        """Sorted 1-based frame numbers any ``interval`` clip uses in a video of ``num_frames`` frames."""
        kept: set[int] = set()
        for offset in self.all_offsets:
            kept.update(clip_indices(num_frames, frames=self.frames, interval=self.interval, offset=offset))
        return sorted(kept)

    def schedule_dict(self) -> dict:
        """What a manifest of ``prepare --only-sampled`` records of the schedule it kept frames for."""
        return {"frames": self.frames, "interval": self.interval, "offsets": list(self.offsets),
                "eval_clips": self.eval_clips}
