"""``FormatError`` under its historical name (it lives in ``scenesift.errors``, below the
taxonomy, so the taxonomy and the readers no longer import each other)."""

from scenesift.errors import FormatError

__all__ = ["FormatError"]
