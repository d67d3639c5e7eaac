"""Group-disjoint UCF-101-format split files for any class-per-folder dataset (docs/design.md)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import re2

from ..files import atomic_write
from ..text import cut, shown
from ..video import find_videos
from .ucf101 import GROUP_RE, GROUP_SCOPES, SplitError, VideoEntry, entry_group, group_id, groups_across_classes


def compile_group_regex(pattern: str | None) -> re.Pattern[str]:
    """``--group-regex`` -> compiled RE2 pattern (linear time: docs/design.md; default GROUP_RE); SplitError if bad."""
    if pattern is None:
        return GROUP_RE
    options = re2.Options()
    options.log_errors = False  # the reason travels in the exception, not as a second stderr line
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise SplitError(f"--group-regex {shown(pattern)} is not a regular expression RE2 accepts (linear time: "
                         f"no backreferences or lookaround, a bounded size): {cut(reason, 120)}") from None


def _pick_test_groups(entries: list[VideoEntry], fraction: float, rng: np.random.Generator,
                      key: Callable[[VideoEntry], str]) -> set[str]:
    """Whole groups (``key`` of a video), in a seeded random order, until the test side holds ``fraction`` of
    the videos, then one more for each class without a test video; never one that empties a class's training."""
    members: dict[str, list[VideoEntry]] = {}
    for e in entries:
        members.setdefault(key(e), []).append(e)
    names = sorted(members)
    order = [names[i] for i in rng.permutation(len(names))]
    train_left = Counter(e.label for e in entries)
    target = fraction * len(entries)
    chosen: set[str] = set()

    def take(g: str) -> bool:
        lost = Counter(e.label for e in members[g])
        if any(train_left[c] <= n for c, n in lost.items()):
            return False
        train_left.subtract(lost)
        chosen.add(g)
        return True

    count = 0
    for g in order:
        if chosen and count + len(members[g]) / 2 > target:
            break
        if take(g):
            count += len(members[g])
    for c in sorted(train_left):
        if not any(e.label == c for g in chosen for e in members[g]):
            for g in order:
                if g not in chosen and any(e.label == c for e in members[g]) and take(g):
                    break
    return chosen


def make_split(
    videos_dir: str | Path,
    out: str | Path,
    *,
    test_fraction: float = 0.3,
    group_regex: str | None = None,
    seed: int = 0,
    group_scope: str = "auto",
) -> dict[str, int]:
    """Write ``classInd.txt`` (the sorted folder names), ``trainlist01.txt`` and ``testlist01.txt`` (CRLF) into ``out``;
    ``group_scope`` as ``make-split --group-scope``. Returns the counts: classes, train, test, groups, and across
    (1 when groups were kept across classes)."""
    if not 0 < test_fraction < 1:
        raise SplitError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
    if group_scope not in GROUP_SCOPES:
        raise SplitError(f"--group-scope must be one of {', '.join(GROUP_SCOPES)}, got {group_scope[:40]!r}")
    pattern = compile_group_regex(group_regex)
    videos = find_videos(videos_dir)
    if not videos:
        raise FileNotFoundError(f"{videos_dir}: no video files found (expected <Class>/<video>.avi etc.)")
    classes = sorted({v.split("/")[0] for v in videos})
    spaced = [v for v in videos if any(ch.isspace() for ch in v)]
    if spaced:
        raise SplitError(f"{videos_dir}: {len(spaced)} path(s) contain spaces, which split files cannot hold "
                         f"(they are space-separated), e.g. {spaced[0]!r}")
    rng = np.random.default_rng(seed)
    entries = [VideoEntry(v, classes.index(v.split("/")[0])) for v in videos]
    across = group_scope == "dataset" or (group_scope == "auto" and bool(groups_across_classes(entries, pattern)))
    if across:
        test_ids = _pick_test_groups(entries, test_fraction, rng, lambda e: group_id(e, pattern))
        is_test = [group_id(e, pattern) in test_ids for e in entries]
    else:
        test_groups: set[str] = set()
        for label in range(len(classes)):
            test_groups |= _pick_test_groups([e for e in entries if e.label == label], test_fraction, rng,
                                             lambda e: entry_group(e, pattern))
        is_test = [entry_group(e, pattern) in test_groups for e in entries]
    order = sorted(range(len(entries)), key=lambda i: (entries[i].label, entry_group(entries[i], pattern)))
    train = [entries[i] for i in order if not is_test[i]]
    test = [entries[i] for i in order if is_test[i]]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_crlf(out / "classInd.txt", [f"{i} {c}" for i, c in enumerate(classes, 1)])
    _write_crlf(out / "trainlist01.txt", [f"{e.path} {e.label + 1}" for e in train])
    _write_crlf(out / "testlist01.txt", [e.path for e in test])
    n_groups = len({entry_group(e, pattern) for e in entries})
    return {"classes": len(classes), "train": len(train), "test": len(test), "groups": n_groups, "across": int(across)}


def _write_crlf(path: Path, lines: list[str]) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes("".join(line + "\r\n" for line in lines).encode()))
