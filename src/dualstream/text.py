"""User values in one-line messages: bounded, whatever their size (a config or a file can hold gigabytes)."""

from __future__ import annotations

import reprlib
from typing import Any


class UserError(ValueError):
    """An error the user can fix; the command line prints it as one line without a traceback."""


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxlist, _SHOWN.maxdict, _SHOWN.maxstring, _SHOWN.maxlong = 3, 8, 8, 60, 40


def cut(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, ``...`` ending it where cut."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, walking no more of the value than it shows."""
    return cut(_SHOWN.repr(value), limit)


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message on one line, cut to ``limit`` characters."""
    return cut(" ".join(str(exc).split()), limit)
