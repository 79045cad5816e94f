"""Errors about the project store itself (not about input files: see scenesift.io.errors)."""


class StoreError(RuntimeError):
    """The project is missing, from an unknown version, or asked to do something invalid."""
