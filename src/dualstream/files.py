"""Writing files and folders so that a reader never sees a part: a temporary sibling, renamed into place."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


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


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot, from /proc), so that a reused pid is told apart;
    "" where /proc is not available; None when no such process runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "" if not Path("/proc/self/stat").exists() else None
    fields = stat.rsplit(")", 1)[1].split()  # the fields after the parenthesised command name
    if fields[0] in "ZX":  # state: a dead process nobody has reaped yet (a zombie) runs no more
        return None
    return fields[19]  # field 22, the start time


_TMP_OWNER = re.compile(r"\.tmp-(?P<host>.+)-(?P<pid>\d+)-(?P<start>\d*)$")
#: A temporary folder of another machine is taken for an interrupted run's after this long untouched.
FOREIGN_TMP_MAX_AGE_S = 24 * 3600


def owner_tag() -> str:
    """``host-pid-start``: who writes a temporary folder (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}-{os.getpid()}-{_start_time(os.getpid()) or ''}"


def _is_stale(tmp: Path) -> bool:
    """Whether a temporary folder was left by a run that is gone: on this machine, its owner process no longer
    runs (or its pid is a younger process's); of another machine, untouched for FOREIGN_TMP_MAX_AGE_S."""
    m = _TMP_OWNER.search(tmp.name)
    if not m:
        return True
    if m.group("host") != socket.gethostname():
        try:
            return time.time() - tmp.stat().st_mtime > FOREIGN_TMP_MAX_AGE_S
        except OSError:
            return False
    running = _start_time(int(m.group("pid")))
    return running is None or (bool(m.group("start")) and bool(running) and running != m.group("start"))


@contextmanager
def atomic_folder(dst: Path, done: str | None = None) -> Iterator[Path]:
    """``new_tmp_folder(dst)`` to fill, renamed to ``dst`` (``commit_folder``) when the block succeeds, else removed."""
    tmp = new_tmp_folder(dst)
    try:
        yield tmp
        commit_folder(tmp, dst, done)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def new_tmp_folder(dst: Path, owner: str | None = None) -> Path:
    """The empty temporary sibling of ``dst`` named after ``owner`` (default: this process, see owner_tag);
    stale leftovers of other runs are removed first."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for other in dst.parent.glob(f".{dst.name}.tmp-*"):
        if _is_stale(other):
            shutil.rmtree(other, ignore_errors=True)
    tmp = dst.parent / f".{dst.name}.tmp-{owner or owner_tag()}"
    shutil.rmtree(tmp, ignore_errors=True)  # our own leftover (this process, an earlier failed attempt)
    tmp.mkdir()
    return tmp


def commit_folder(tmp: Path, dst: Path, done: str | None = None) -> None:
    """Rename a filled temporary folder to ``dst``. ``done`` names the file that marks a complete folder (a
    prepared video's manifest): a ``dst`` without it (a half copy made by hand, a checkpoint saved again) is
    replaced; when a concurrent run finished the same ``dst`` first, its copy is kept and ours dropped."""
    complete = lambda: done is not None and (dst / done).is_file()  # noqa: E731
    if dst.exists() and not complete():
        shutil.rmtree(dst)
    try:
        os.rename(tmp, dst)
    except OSError:
        if not complete():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another run prepared it meanwhile
