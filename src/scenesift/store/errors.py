"""``StoreError`` under its historical name (defined in ``scenesift.errors`` with the other
user errors, so the CLI prints them all in one place)."""

from scenesift.errors import StoreError

__all__ = ["StoreError"]
