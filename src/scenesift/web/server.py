"""Running the web app: ``scenesift serve`` calls :func:`serve`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from scenesift.web.security import is_loopback, new_token


def access(host: str, token: str | None) -> tuple[str | None, bool]:
    """(token to require, whether it was generated): a non-loopback host always needs one."""
    if token is not None and not token.strip():
        token = None
    if token is None and not is_loopback(host):
        return new_token(), True
    return token, False


def url(host: str, port: int, token: str | None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(
    project: Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    say: Callable[[str], None] = print,
) -> None:
    import uvicorn

    from scenesift.web.app import create_app

    token, generated = access(host, token)
    app = create_app(project, token=token)  # StoreError if not a project
    if generated:
        say(f"{host} is not a loopback address, so every request needs this access token:")
        say(f"  {token}")
    say(f"scenesift web app for {Path(project).resolve()}: open {url(host, port, token)}")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
