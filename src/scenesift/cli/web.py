"""``scenesift serve``: the web app."""

from __future__ import annotations

from pathlib import Path

import typer

from scenesift.cli.app import app
from scenesift.cli.common import PROJECT
from scenesift.ui import console, err_console


@app.command()
def serve(
    project: Path = PROJECT,
    legacy_project: Path | None = typer.Argument(
        None, hidden=True, metavar="PROJECT", help="Deprecated: the project; use -p."
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Address to bind; anything but loopback requires an access token."
    ),
    port: int = typer.Option(8765, min=1, max=65535, help="Port to listen on."),
    token: str | None = typer.Option(
        None,
        envvar="SCENESIFT_TOKEN",
        help="Access token required on every request (generated and printed when binding a "
        "non-loopback host without one).",
    ),
) -> None:
    """Web app: coverage dashboard, frame browser, frame view, review of a round's picks and
    situation labelling with keyboard shortcuts."""
    from scenesift.web.server import serve as run_server

    if legacy_project is not None:
        err_console.print("warning: `serve PROJECT` is deprecated; use `serve -p PROJECT`")
    run_server(legacy_project or project, host=host, port=port, token=token, say=console.print)
