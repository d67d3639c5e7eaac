"""Write UCF-101-format split files for any class-per-folder dataset, with a group-disjoint split.

Videos of one group (clips cut from one recording) all land on the same side, so the split
passes the leakage guard by construction. The group is read from the file name with a regular
expression (default: UCF-101's ``_gGG_cCC``); a video whose name does not match is its own group.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import re2

from ..config import cut, shown
from .prepare import find_videos
from .ucf101 import GROUP_RE, SplitError, VideoEntry, entry_group


def compile_group_regex(pattern: str | None) -> re.Pattern[str]:
    """``--group-regex`` -> compiled pattern (default GROUP_RE); a bad pattern is a SplitError.

    A user's pattern is compiled by RE2 (``search`` and ``group`` as ``re``), which matches in time linear
    in the name: Python's backtracking ``re`` spends minutes on ``(a+)+$`` and a name of 30 a's. RE2 has
    no backreferences or lookaround and refuses a pattern whose program exceeds its memory bound (8 MiB).
    """
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


def _pick_test_groups(groups: dict[str, list[str]], fraction: float, rng: np.random.Generator) -> set[str]:
    """Whole groups, in a seeded random order, until the test side holds ``fraction`` of the videos.

    Each side keeps at least one group when the class has two or more.
    """
    names = sorted(groups)
    if len(names) < 2:
        return set()
    order = [names[i] for i in rng.permutation(len(names))]
    total = sum(len(v) for v in groups.values())
    target = fraction * total
    chosen, count = [], 0
    for g in order[:-1]:  # the last group stays in train
        if chosen and count + len(groups[g]) / 2 > target:
            break
        chosen.append(g)
        count += len(groups[g])
    return set(chosen)


def make_split(
    videos_dir: str | Path,
    out: str | Path,
    *,
    test_fraction: float = 0.3,
    group_regex: str | None = None,
    seed: int = 0,
) -> dict[str, int]:
    """Write ``classInd.txt``, ``trainlist01.txt`` and ``testlist01.txt`` (CRLF) into ``out``.

    Returns the counts: classes, train, test, groups. Classes are the sorted folder names.
    """
    if not 0 < test_fraction < 1:
        raise SplitError(f"--test-fraction must be between 0 and 1, got {test_fraction}")
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
    train: list[VideoEntry] = []
    test: list[VideoEntry] = []
    n_groups = 0
    for label, c in enumerate(classes):
        groups: dict[str, list[str]] = {}
        for v in (v for v in videos if v.split("/")[0] == c):
            groups.setdefault(entry_group(VideoEntry(v, label), pattern), []).append(v)
        n_groups += len(groups)
        test_groups = _pick_test_groups(groups, test_fraction, rng)
        for g in sorted(groups):
            side = test if g in test_groups else train
            side.extend(VideoEntry(v, label) for v in groups[g])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_crlf(out / "classInd.txt", [f"{i} {c}" for i, c in enumerate(classes, 1)])
    _write_crlf(out / "trainlist01.txt", [f"{e.path} {e.label + 1}" for e in train])
    _write_crlf(out / "testlist01.txt", [e.path for e in test])
    return {"classes": len(classes), "train": len(train), "test": len(test), "groups": n_groups}


def _write_crlf(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes("".join(line + "\r\n" for line in lines).encode())
    os.replace(tmp, path)
