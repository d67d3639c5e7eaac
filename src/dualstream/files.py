"""Writing files so that a reader never sees a part: a temporary sibling, renamed into place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def fsync_file(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], *, fsync: bool = False) -> None:
    """``write(tmp)`` fills a temporary file beside ``path``, which then replaces ``path`` in one rename:
    readers see the old file or the whole new one. On any error (or interruption) the temporary file is
    removed and ``path`` is left as it was. ``fsync``: flush the data to disk before the rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        if fsync:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename == str(tmp):
            exc.filename = str(path)  # a one-line error names the user's file, not the temporary one
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text), fsync=fsync)
