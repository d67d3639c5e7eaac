"""A group-disjoint validation part carved from a train list, for choosing checkpoints and stopping.

Choosing a checkpoint, a recipe or a setting on the test list makes the test figure optimistic; the
validation part comes from the training side instead, and whole groups go to it, so that it holds
people (or recordings) that the network does not train on, like the test list.

Groups are chosen by their number across classes: in a set where ``g04`` is the same person in every
class (Weizmann, and many own recordings), validation then holds whole people, not one person's
clips of some classes. A class keeps at least one group in training.
"""

from __future__ import annotations

import math
import re

import numpy as np

from .ucf101 import VideoEntry, group_id


def carve_validation(entries: list[VideoEntry], fraction: float, *, seed: int = 0,
                     group_re: re.Pattern[str] | None = None) -> tuple[list[VideoEntry], list[VideoEntry]]:
    """Split ``entries`` into (train, validation): ``fraction`` of the group ids (at least one, seeded
    random choice) go to validation, except where that would leave a class without training videos.

    Returns the entries unchanged and an empty validation list when there are fewer than two groups.
    """
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
    train, val = [], []
    for label in sorted(by_class):
        videos = by_class[label]
        held = [e for e in videos if group_id(e, group_re) in chosen]
        if len(held) == len(videos):  # the class would lose every training video: it stays in training
            held = []
        train.extend(e for e in videos if e not in held)
        val.extend(held)
    order = {id(e): n for n, e in enumerate(entries)}
    return sorted(train, key=lambda e: order[id(e)]), sorted(val, key=lambda e: order[id(e)])
