"""The ``scenesift`` command line: one module per command group. A command parses its
options, makes one call into the package that owns the work and prints one function of
``scenesift.tables``; user errors are printed in one place (``cli.app``).

Heavy packages (torch, pandas) are imported inside the commands, so ``scenesift --help``
stays fast."""

from scenesift.cli import al, data, detector, embed, experiments, tagger, web  # noqa: F401
from scenesift.cli.app import app, main

__all__ = ["app", "main"]
