"""The frames a sampling schedule can ask for: what ``prepare --only-sampled`` keeps.

Training clips start at each of the schedule's offsets (paper: f5.., then f8..); evaluation
clips start at offsets spread over one interval (``sampling.eval_offsets``) for one clip per video
(the test pass during training) and for ``eval_clips`` clips (``dualstream evaluate``). A short
video shrinks the interval, so the set depends on the frame count; but every clip of a video with
at least ``span`` frames uses the same frame numbers, all below ``span``, so preparation only ever
needs the first ``span`` frames of a video to decide and compute what to keep. ``spread`` sampling
has no such schedule: its clips can use every frame (``for_data``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .sampling import clip_indices, eval_offsets


@dataclass(frozen=True)
class SampleSchedule:
    frames: int = 10
    interval: int = 10
    offsets: tuple[int, ...] = (5, 8)
    eval_clips: int = 5

    def __post_init__(self) -> None:
        if self.frames < 1 or self.interval < 1 or self.eval_clips < 1 or not self.offsets or min(self.offsets) < 1:
            raise ValueError(f"a sampling schedule needs frames, interval, eval clips and offsets >= 1, got {self}")

    @property
    def all_offsets(self) -> list[int]:
        """Training offsets and the evaluation offsets for 1 and ``eval_clips`` clips per video."""
        evals = set(eval_offsets(self.interval, 1)) | set(eval_offsets(self.interval, self.eval_clips))
        return sorted(set(self.offsets) | evals)

    @property
    def span(self) -> int:
        """Frames a video needs for no clip to shrink; no kept frame (or its flow partner) lies beyond it."""
        return max(self.all_offsets) + (self.frames - 1) * self.interval + 1

    def frames_for(self, num_frames: int) -> list[int]:
        """Sorted 1-based frame numbers any clip of the schedule uses in a video of ``num_frames`` frames."""
        kept: set[int] = set()
        for offset in self.all_offsets:
            kept.update(clip_indices(num_frames, frames=self.frames, interval=self.interval, offset=offset))
        return sorted(kept)

    @classmethod
    def for_data(cls, data) -> "SampleSchedule | None":
        """The schedule of a ``config.DataConfig``; None for ``spread`` sampling, whose clips spread over
        the whole video (each training clip draws its own frames), so that every frame can be used."""
        if data.sampling == "spread":
            return None
        return cls(frames=data.frames, interval=data.interval, offsets=tuple(data.offsets), eval_clips=data.eval_clips)

    def to_dict(self) -> dict:
        return {"frames": self.frames, "interval": self.interval, "offsets": list(self.offsets),
                "eval_clips": self.eval_clips}
