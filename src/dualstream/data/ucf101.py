"""UCF-101 split files: ``classInd.txt``, ``trainlist0N.txt`` and ``testlist0N.txt``.

Format as distributed: CRLF line endings, 1-based labels; train lines ``Class/v_Class_gGG_cCC.avi N``,
test lines ``Class/v_Class_gGG_cCC.avi`` (the label comes from the folder name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

GROUP_RE = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


class SplitError(ValueError):
    """A malformed or inconsistent split file; the message names the file and line."""


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


@dataclass(frozen=True)
class Split:
    classes: list[str]
    train: list[VideoEntry]
    test: list[VideoEntry]


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
    """Read split ``split`` (1, 2 or 3) from a ``ucfTrainTestlist`` folder."""
    d = Path(splits_dir)
    if not d.is_dir():
        raise SplitError(f"{d}: splits folder not found")
    classes = read_class_index(d / "classInd.txt")
    train = read_list(d / f"trainlist{split:02d}.txt", classes, labelled=True)
    test = read_list(d / f"testlist{split:02d}.txt", classes, labelled=False)
    return Split(classes=classes, train=train, test=test)
