"""The web app: dashboard, frame browser, frame view, review and labelling pages, and the
small JSON API their scripts call. Server-rendered Jinja2 with a little vanilla JS.

:func:`create_app` assembles the routers (``routes/``: pages, api, media, ml), the access
check every router depends on, the Guard middleware and the error pages. Routes read
through the store's indexed, bounded queries (``store/browse.py`` for frames,
``store/campaign_views.py`` for rounds and picks) on a connection of their own
(``deps.StoreDep``) and write in one ``Store.transaction()``.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from scenesift.store.browse import is_busy
from scenesift.web.deps import RETRY_AFTER, WRITE_WAIT, Project, WriteBusy, qs, render
from scenesift.web.routes import api, media, ml, pages
from scenesift.web.security import Access, Guard, Refused

HERE = Path(__file__).parent


def create_app(
    project_path: Path | str, token: str | None = None, *, write_wait: float = WRITE_WAIT
) -> FastAPI:
    """The web app for one project. ``token``: require it on every request (see
    :mod:`scenesift.web.security`); None is for loopback only. ``write_wait``: seconds a
    write waits for another process's write lock before answering 503."""
    project = Project(Path(project_path), write_wait=write_wait)
    app = FastAPI(
        title="scenesift",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by the api router, behind the access check
    )
    app.state.project = project
    app.state.access = access = Access(token)
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(project_name=project.root.name, qs=qs)
    templates.env.filters["fmt"] = _fmt_number
    templates.env.filters["score"] = _fmt_score
    app.state.templates = templates
    for router in (pages.router, api.router, media.router, ml.router):
        app.include_router(router)
    app.add_middleware(Guard)

    def error(request: Request, status: int, detail: Any, headers: dict | None = None) -> Response:
        refusal = access.refusal(request)  # no route, or invalid input: still needs access
        if refusal is not None:
            return refusal
        if _wants_html(request):
            message = detail if isinstance(detail, str) else _describe(detail)
            page = render(request, "error.html", status, status=status, message=message)
            page.headers.update(headers or {})
            return page
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return exc.response

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error(request, exc.status_code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error(request, 422, _json_safe(exc.errors()))

    def busy(request: Request, why: str) -> Response:
        message = f"the project catalog is busy ({why}); nothing was saved: try again shortly"
        return error(request, 503, message, {"Retry-After": str(RETRY_AFTER)})

    @app.exception_handler(sqlite3.OperationalError)
    async def _locked(request: Request, exc: sqlite3.OperationalError) -> Response:
        if not is_busy(exc):
            raise exc
        return busy(request, f"another process held its write lock for over {write_wait:g} s")

    @app.exception_handler(WriteBusy)
    async def _queued(request: Request, exc: WriteBusy) -> Response:
        return busy(request, str(exc))

    return app


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def _describe(errors: Any) -> str:
    if isinstance(errors, list):
        out = []
        for e in errors:
            if isinstance(e, dict):
                loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body"))
                out.append(f"{loc}: {e.get('msg', '')}" if loc else str(e.get("msg", "")))
        return "; ".join(out)
    return str(errors)


def _json_safe(value: Any) -> Any:
    """Validation errors as strict JSON: they echo the input, which may be ``1e400`` or
    ``NaN`` (Python's json reads both), and JSON has no infinities."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


def _fmt_number(v: Any, digits: int = 3) -> str:
    if v is None:
        return "\u2013"  # en dash
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _fmt_score(v: float | None) -> str:
    """A model score in [0, 1] with two decimals, or as many as it takes (up to 6) not to
    read as 0.00 or 1.00 when it is not: a tiny threshold makes 0.003 a prediction."""
    if v is None:
        return "\u2013"
    if v in (0.0, 1.0) or not math.isfinite(v):
        return f"{v:.2f}"
    for digits in range(2, 7):
        text = f"{v:.{digits}f}"
        if text.strip("0.") and text.rstrip("0") not in ("1.", "0."):
            return text
    return "<0.000001" if v < 0.5 else ">0.999999"
