"""A group-disjoint validation part carved from a train list, to choose checkpoints without the test list."""

from __future__ import annotations

import math
import re

import numpy as np

from .ucf101 import VideoEntry, group_id


def carve_validation(entries: list[VideoEntry], fraction: float, *, seed: int = 0,
                     group_re: re.Pattern[str] | None = None) -> tuple[list[VideoEntry], list[VideoEntry]]:
    """Split ``entries`` into (train, validation): ``fraction`` of the group ids (``group_id``: across classes;
    at least one, seeded) go to validation, except where a class would lose all its training videos. Fewer
    than two groups: the entries unchanged and no validation."""
    if fraction <= 0:
        return list(entries), []
    ids = sorted({group_id(e, group_re) for e in entries})
    if len(ids) < 2:
        return list(entries), []
    k = min(len(ids) - 1, max(1, math.floor(fraction * len(ids) + 0.5)))
    chosen = {ids[i] for i in np.random.default_rng(seed).permutation(len(ids))[:k]}
    in_val = [group_id(e, group_re) in chosen for e in entries]
    training = {e.label for e, v in zip(entries, in_val) if not v}  # a class that would lose every one stays whole
    held = [v and e.label in training for e, v in zip(entries, in_val)]
    return [e for e, h in zip(entries, held) if not h], [e for e, h in zip(entries, held) if h]
