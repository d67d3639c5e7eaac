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
    by_class: dict[int, list[VideoEntry]] = {}
    for e in entries:
        by_class.setdefault(e.label, []).append(e)
    held: set[int] = set()
    for videos in by_class.values():
        in_val = [id(e) for e in videos if group_id(e, group_re) in chosen]
        if len(in_val) < len(videos):  # a class that would lose every training video stays in training
            held.update(in_val)
    return [e for e in entries if id(e) not in held], [e for e in entries if id(e) in held]
