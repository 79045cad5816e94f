"""One error type for bad input, always naming the file, the place in it and what was expected."""

from __future__ import annotations

import reprlib
from pathlib import Path


class FormatError(ValueError):
    """Malformed input. ``where`` is a line (``line 12``), a JSON path (``$[3].box2d.x1``) or
    a column; the message reads ``file:where: expected ..., got ...``."""

    def __init__(
        self, path: Path | str, where: str, expected: str, got: object | None = None
    ) -> None:
        self.path = str(path)
        self.where = where
        self.expected = expected
        self.got = got
        msg = f"{self.path}: {where}: expected {expected}"
        if got is not None:
            msg += f", got {_shown(got)}"
        super().__init__(msg)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 80, 80


def _shown(value: object) -> str:
    """``repr`` cut to 80 characters; a value too deep or too big to repr is abbreviated."""
    try:
        shown = repr(value)
    except (RecursionError, ValueError):  # deeply nested JSON, an int of > 4300 digits
        try:
            shown = _SHORT.repr(value)
        except ValueError:
            shown = f"<{type(value).__name__}>"
    return shown if len(shown) <= 80 else shown[:77] + "..."
