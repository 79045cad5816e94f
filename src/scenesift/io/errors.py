"""One error type for bad input, always naming the file, the place in it and what was expected."""

from __future__ import annotations

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
            shown = repr(got)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            msg += f", got {shown}"
        super().__init__(msg)
