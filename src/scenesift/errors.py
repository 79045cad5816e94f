"""The errors a user can cause, under one base: the CLI prints any ``ScenesiftError`` as one
red line with exit code 2 and no traceback; anything else is a bug and keeps its traceback.

This module sits below every other (it imports nothing from scenesift), so readers, the
taxonomy and the store share one error vocabulary without importing each other."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from pathlib import Path


class ScenesiftError(Exception):
    """A mistake in the user's input, settings or project, explained by its message."""


class FormatError(ScenesiftError, ValueError):
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


class StoreError(ScenesiftError, RuntimeError):
    """The project is missing, from an unknown version, or asked to do something invalid."""


class ConfigError(ScenesiftError, ValueError):
    """Settings given on the command line or in a TOML file are invalid (a ValueError, so
    code that validated with ValueError keeps working)."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""``: a typo gets a suggestion."""
    close = difflib.get_close_matches(str(value), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_choice(param: str, value: object, allowed: Iterable[str]) -> None:
    """Raise a ConfigError naming ``param``, the allowed values and the closest one."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(
            f"{param} must be one of {', '.join(allowed)}; got {value!r}"
            + did_you_mean(str(value), allowed)
        )


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
