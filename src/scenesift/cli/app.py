"""The root ``scenesift`` command and the one place where user errors become exit code 2."""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from scenesift import __version__
from scenesift.errors import ScenesiftError
from scenesift.tables import error_line
from scenesift.ui import console, err_console


def reflow(text: str | None) -> str | None:
    """Join the hard-wrapped lines of each paragraph of a docstring: typer's rich help keeps
    every newline, so a docstring wrapped at 100 columns broke mid-sentence in ``--help``.
    Blank lines (paragraphs), list items and indented lines keep their breaks."""
    if not text:
        return text
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        joinable = out and out[-1].strip() and stripped and not line.startswith((" ", "\t"))
        if joinable and not stripped.startswith(("- ", "* ")):
            out[-1] = f"{out[-1].rstrip()} {stripped}"
        else:
            out.append(line)
    return "\n".join(out)


def _reflow_help(command: click.Command) -> None:
    command.help = reflow(command.help)
    for sub in getattr(command, "commands", {}).values():
        _reflow_help(sub)


class _Commands(TyperGroup):
    """Runs a command; a ``ScenesiftError`` (bad input, settings or project) or a missing
    file is one red line and exit code 2, never a traceback. Anything else is a bug."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():  # every subcommand exists by now
            _reflow_help(command)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ScenesiftError as e:
            text = str(e)
        except FileNotFoundError as e:
            text = f"{e.filename}: no such file or directory"
        err_console.print(error_line(text), soft_wrap=True)  # paths stay whole, copyable
        raise typer.Exit(2)


app = typer.Typer(
    cls=_Commands,
    help="scenesift: which driving frames to label next, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"scenesift {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """scenesift: which driving frames to label next, and why."""


def main() -> None:
    """Entry point of the ``scenesift`` script."""
    app()
