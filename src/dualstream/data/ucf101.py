"""UCF-101 split files as distributed (CRLF): ``classInd.txt``, ``trainlist0N.txt`` (``Class/v_Class_gGG_cCC.avi N``,
1-based labels) and ``testlist0N.txt`` (``Class/v_Class_gGG_cCC.avi``: the label comes from the folder)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

GROUP_RE = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)
GROUP_SCOPES = ("auto", "dataset", "class")  # make-split: where a group must stay on one side (make_split)
SPLITS = (1, 2, 3)


class SplitError(ValueError):
    """A malformed or inconsistent split file; the message names the file and line."""


class GroupLeakageError(SplitError):
    """Train and test share a group (clips of one recording): test accuracy would be inflated."""


@dataclass(frozen=True)
class VideoEntry:
    """One video of a split: its path relative to the videos folder, e.g. ``Class/v_Class_g01_c01.avi``."""

    path: str
    label: int  # 0-based

    @property
    def key(self) -> str:
        """Cache key: ``Class/video_stem`` (the MMAction2 rawframes folder)."""
        p = PurePosixPath(self.path)
        return str(p.parent / p.stem)

    @property
    def group(self) -> str | None:
        m = GROUP_RE.search(PurePosixPath(self.path).name)
        return m.group(1) if m else None


def entry_group(entry: VideoEntry, group_re: re.Pattern[str] | None = None) -> str:
    """The group of a video, ``Class/group``: ``group_re``'s (default ``_gGG_cCC``) first capture group in the
    file name, or its whole match when it has none; a video without a match is its own group."""
    name = PurePosixPath(entry.path).name
    m = (group_re or GROUP_RE).search(name)
    if not m:
        return entry.path
    folder = entry.path.split("/")[0]
    return f"{folder}/{m.group(1) if m.re.groups else m.group(0)}"


def group_id(entry: VideoEntry, group_re: re.Pattern[str] | None = None) -> str:
    """The group without its class (``Class/04`` -> ``04``; docs/design.md); a video without a group is its own."""
    group = entry_group(entry, group_re)
    return entry.path if group == entry.path else group.split("/", 1)[1]


def groups_across_classes(entries: list[VideoEntry], group_re: re.Pattern[str] | None = None) -> list[str]:
    """Group ids (``group_id``) that appear in two or more classes, sorted."""
    classes: dict[str, set[int]] = {}
    for e in entries:
        classes.setdefault(group_id(e, group_re), set()).add(e.label)
    return sorted(g for g, labels in classes.items() if len(labels) > 1)


@dataclass(frozen=True)
class Split:
    classes: list[str]
    train: list[VideoEntry]
    test: list[VideoEntry]

    def group_overlap(self, group_re: re.Pattern[str] | None = None) -> dict[str, tuple[int, int]]:
        """Groups on both sides: ``Class/group`` -> (train videos, test videos), sorted by group."""
        train = Counter(entry_group(e, group_re) for e in self.train)
        test = Counter(entry_group(e, group_re) for e in self.test)
        return {g: (train[g], test[g]) for g in sorted(set(train) & set(test))}

    def shared_across_classes(self, group_re: re.Pattern[str] | None = None) -> dict[str, tuple[int, int]]:
        """Group ids with videos on both sides, in any classes: ``id`` -> (train videos, test videos)."""
        train = Counter(group_id(e, group_re) for e in self.train)
        test = Counter(group_id(e, group_re) for e in self.test)
        return {g: (train[g], test[g]) for g in sorted(set(train) & set(test))}


def _lines(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        raise SplitError(f"{path}: split file not found")
    text = path.read_text(encoding="utf-8-sig")
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def read_class_index(path: str | Path) -> list[str]:
    """``classInd.txt`` -> class names ordered by their 1-based index."""
    path = Path(path)
    classes: dict[int, str] = {}
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitError(f"{path}:{n}: expected 'INDEX ClassName', got {line!r}")
        idx = int(parts[0])
        if idx in classes or parts[1] in classes.values():
            raise SplitError(f"{path}:{n}: duplicate class entry {line!r}")
        classes[idx] = parts[1]
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise SplitError(f"{path}: class indices must run 1..{len(classes)} without gaps")
    return [classes[i] for i in range(1, len(classes) + 1)]


def _check_rel_path(path: Path, n: int, rel: str) -> None:
    p = PurePosixPath(rel.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or len(p.parts) != 2:
        raise SplitError(f"{path}:{n}: entry {rel!r} must be 'Class/file' inside the videos folder")


def read_list(path: str | Path, classes: list[str], *, labelled: bool) -> list[VideoEntry]:
    """A train list (``Class/file.avi N``) or a test list (``Class/file.avi``) -> entries."""
    path = Path(path)
    index = {c: i for i, c in enumerate(classes)}
    entries, seen = [], set()
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) not in ((1, 2) if not labelled else (2,)):
            want = "'Class/file.avi LABEL'" if labelled else "'Class/file.avi'"
            raise SplitError(f"{path}:{n}: expected {want}, got {line!r}")
        rel = parts[0].replace("\\", "/")
        _check_rel_path(path, n, rel)
        folder = rel.split("/")[0]
        if folder not in index:
            raise SplitError(f"{path}:{n}: class folder {folder!r} is not in classInd.txt")
        label = index[folder]
        if len(parts) == 2:
            if not parts[1].isdigit() or int(parts[1]) - 1 != label:
                raise SplitError(f"{path}:{n}: label {parts[1]} does not match class {folder!r} (index {label + 1})")
        if rel in seen:
            raise SplitError(f"{path}:{n}: duplicate entry {rel!r}")
        seen.add(rel)
        entries.append(VideoEntry(rel, label))
    return entries


def read_split(splits_dir: str | Path, split: int = 1) -> Split:
    d = Path(splits_dir)
    if not d.is_dir():
        raise SplitError(f"{d}: splits folder not found")
    classes = read_class_index(d / "classInd.txt")
    train = read_list(d / f"trainlist{split:02d}.txt", classes, labelled=True)
    test = read_list(d / f"testlist{split:02d}.txt", classes, labelled=False)
    return Split(classes=classes, train=train, test=test)


def check_group_overlap(split: Split, *, allow: bool, where: str, group_re: re.Pattern[str] | None = None
                        ) -> dict[str, tuple[int, int]]:
    """GroupLeakageError for a split whose train and test share a group (docs/design.md), unless ``allow``."""
    overlap = split.group_overlap(group_re)
    if overlap and not allow:
        shown = ", ".join(f"{g} (train {a}, test {b})" for g, (a, b) in list(overlap.items())[:5])
        more = f" and {len(overlap) - 5} more" if len(overlap) > 5 else ""
        raise GroupLeakageError(
            f"{where}: {len(overlap)} group(s) appear in both train and test: {shown}{more}. Clips of one group "
            "come from one recording, so this leaks test content into training and inflates accuracy. Use a "
            "group-disjoint split (`dualstream make-split`), or override it knowingly with --allow-group-overlap "
            "(train: --set data.allow_group_overlap=true, which the run's config.yaml records)"
        )
    return overlap


def missing_videos(entries: list[VideoEntry], videos_dir: str | Path) -> list[str]:
    """The entries whose video file is absent from ``videos_dir`` (sorted, each once)."""
    root = Path(videos_dir)
    if not root.is_dir():
        raise SplitError(f"{root}: videos folder not found")
    return sorted({e.path for e in entries if not (root / e.path).is_file()})


def validate_split(split: Split, *, where: str, videos_dir: str | Path | None = None) -> None:
    """One error, before any work, naming every video listed in train and test or missing from ``videos_dir``."""
    both = sorted({e.path for e in split.train} & {e.path for e in split.test})
    if both:
        raise SplitError(f"{where}: {len(both)} video(s) listed in both train and test: {_shown(both)}")
    if videos_dir is not None:
        missing = missing_videos(split.train + split.test, videos_dir)
        if missing:
            raise SplitError(f"{where}: {len(missing)} listed video(s) not found under {videos_dir}: {_shown(missing)}")


def _shown(items: list[str], limit: int = 20) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def split_summary(split: Split, overlap: dict[str, tuple[int, int]],
                  shared: dict[str, tuple[int, int]] | None = None) -> str:
    """Counts and overlap of one split as ``check-split`` prints them; ``shared``: ``Split.shared_across_classes``."""
    groups = {entry_group(e) for e in split.train + split.test}
    across = "" if shared is None else f"group ids on both sides across classes {len(shared)}, "
    text = (f"classes {len(split.classes)}, train {len(split.train)}, test {len(split.test)}, "
            f"groups {len(groups)}, {across}groups in both train and test {len(overlap)}")
    lines = [text] + [f"  overlap {g}: train {a}, test {b}" for g, (a, b) in overlap.items()]
    lines += [f"  across classes {g}: train {a}, test {b}" for g, (a, b) in list((shared or {}).items())[:20]]
    if shared and len(shared) > 20:
        lines.append(f"  across classes: and {len(shared) - 20} more")
    return "\n".join(lines)
