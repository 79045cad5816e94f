"""What the routers share: the project (and a catalog connection per request) as
dependencies, the request parameter models, page rendering and small helpers.

Every request opens its own catalog connection (``StoreDep``): SQLite connections are not
shared between requests, and FastAPI runs a route's dependencies and its handler in
thread-pool threads, one at a time. Writes wait at most :data:`WRITE_WAIT` seconds for
another process's write lock and then answer 503 with ``Retry-After`` (see ``app.py``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from scenesift.store import Store
from scenesift.store import browse as q
from scenesift.store import campaign_views as views
from scenesift.store.coverage import Coverage, coverage
from scenesift.taxonomy import Taxonomy
from scenesift.web.images import ImageUnavailable, frame_image

MAX_ID = 2**63 - 1
FrameId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="frame id")]
RoundId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="round id")]
#: Keys that toggle situations on the labelling page, in taxonomy order; s, n and p are
#: save, next and previous, b toggles the boxes.
KEYS = "1234567890qwertyuiodfghjklzxcvm"
#: Seconds a web write waits for another process's write lock (an import of 200k boxes
#: holds it for ~8 s) before answering 503 + Retry-After: the labeller's page retries.
WRITE_WAIT = 3.0
RETRY_AFTER = 2


# ------------------------------------------------------------------------------ project
class WriteBusy(Exception):
    """A write could not start within the project's ``write_wait`` (HTTP 503)."""


class Project:
    """What every request needs: the project folder, its taxonomy, short-lived caches."""

    def __init__(self, root: Path, write_wait: float = WRITE_WAIT) -> None:
        self.root = Path(root).resolve()
        self.write_wait = write_wait
        with Store.open(self.root) as store:  # fails early (StoreError) if not a project
            self.taxonomy = store.taxonomy
        self.keys = dict(zip(self.taxonomy.names, KEYS, strict=False))
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._writes = threading.Lock()

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = Store.open(self.root, busy_timeout=self.write_wait, any_thread=True)
        try:
            yield store
        finally:
            store.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """This app's writes take turns here, in order, so that the short wait for the
        catalog's write lock is spent only on other processes (SQLite's busy handler polls
        and would let 50 labellers of this app starve one another). Raises WriteBusy after
        ``write_wait`` seconds."""
        if not self._writes.acquire(timeout=self.write_wait):
            raise WriteBusy(f"other saves of this app queued for over {self.write_wait:g} s")
        try:
            yield
        finally:
            self._writes.release()

    def cached(self, key: str, seconds: float, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < seconds:
                return hit[1]
        value = compute()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def model_source(self, store: Store) -> str | None:
        return self.cached("model", 10, store.latest_model_source)

    def coverage(self, store: Store) -> Coverage:
        return self.cached("coverage", 15, lambda: coverage(store))

    def reports(self, limit: int = 100) -> list[tuple[str, float]]:
        """HTML reports under ``<project>/reports/``, newest first."""
        base = self.root / "reports"
        if not base.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.endswith((".html", ".htm")) and not name.startswith("."):
                    path = Path(dirpath) / name
                    rel = path.relative_to(base).as_posix()
                    found.append((rel, path.stat().st_mtime))
            if len(found) > 10 * limit:
                break
        found.sort(key=lambda r: (-r[1], r[0]))
        return found[:limit]


def get_project(request: Request) -> Project:
    return request.app.state.project


def get_store(project: Annotated[Project, Depends(get_project)]) -> Iterator[Store]:
    with project.store() as store:
        yield store


ProjectDep = Annotated[Project, Depends(get_project)]
StoreDep = Annotated[Store, Depends(get_store)]


# ------------------------------------------------------------------------------ params
class _Params(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_default(cls, data: Any) -> Any:
        """An HTML form sends ``round=`` for "any": treat it as not given."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != ""}
        return data


class BrowseParams(_Params):
    situation: str | None = Field(None, max_length=200)
    value: Literal["1", "0", "missing"] = "1"
    predicted: str | None = Field(None, max_length=200)
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    state: Literal["unlabelled", "selected", "labelled"] | None = None
    round: int | None = Field(None, ge=1, le=MAX_ID)
    score_min: float | None = Field(None, ge=-1e12, le=1e12)
    score_max: float | None = Field(None, ge=-1e12, le=1e12)
    review: Literal["pending", "accepted", "rejected", "open"] | None = None
    drive: str | None = Field(None, max_length=500)
    sort: Literal["name", "timestamp", "score", "rank"] = "name"
    after: str | None = Field(None, max_length=2000)
    before: str | None = Field(None, max_length=2000)
    limit: int = Field(60, ge=1, le=200)

    def filters(self, taxonomy: Taxonomy) -> q.Filters:
        for name in (self.situation, self.predicted):
            if name is not None and name not in taxonomy:
                raise HTTPException(
                    422,
                    f"unknown situation {name!r}; the project knows {', '.join(taxonomy.names)}",
                )
        fields = {k: getattr(self, k) for k in q.Filters.__dataclass_fields__}
        return q.Filters(**fields)


class ReviewParams(_Params):
    round: int | None = Field(None, ge=1, le=MAX_ID)
    after_rank: int = Field(-1, ge=-1, le=MAX_ID)


class CamParams(_Params):
    situation: str = Field(max_length=200)


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    review: Literal["pending", "accepted", "rejected"]


def parse(model: type[BaseModel], data: Any) -> Any:
    """Validate query parameters (or a form) with ``model``; errors are a 422 like FastAPI's."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False, include_context=False)) from None


def query(model: type[BaseModel]) -> Callable[[Request], Any]:
    """A dependency: the request's query string validated with ``model``."""

    def dependency(request: Request) -> Any:
        return parse(model, dict(request.query_params))

    return dependency


# ------------------------------------------------------------------------------ helpers
def render(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``templates/`` (the app's Jinja2 environment)."""
    templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context, status_code=code)


def frame_or_404(store: Store, frame_id: int) -> q.FrameInfo:
    info = q.frame(store.conn, frame_id)
    if info is None:
        raise HTTPException(404, f"no frame with id {frame_id} in this project")
    return info


def image_or_404(store: Store, info: q.FrameInfo) -> Path:
    try:
        return frame_image(info, q.image_roots(store.conn))
    except ImageUnavailable as e:
        raise HTTPException(404, str(e)) from None


def qs(pairs: list[tuple[str, str]], **extra: Any) -> str:
    items = [(k, v) for k, v in pairs if k not in extra]
    items += [(k, str(v)) for k, v in extra.items() if v is not None]
    return urlencode(items)


def browse(
    project: Project, store: Store, params: BrowseParams
) -> tuple[q.Filters, q.Page, int | None]:
    """One page of the frame browser (or a labelling queue) and, on the first page, the
    match count."""
    filters = params.filters(project.taxonomy)
    model = project.model_source(store)
    latest = views.latest_round(store.conn)
    try:
        result = q.browse(
            store.conn,
            filters,
            model_source=model,
            latest_round=latest,
            after=params.after,
            before=params.before,
            limit=params.limit,
        )
    except q.BadCursor as e:
        raise HTTPException(400, str(e)) from None
    except q.TooSlow:
        result = q.Page(
            [], None, None, None,
            "this filter scans too much of the pool to answer quickly: add a drive, "
            "state or round filter",
        )  # fmt: skip
    total = None
    if params.after is None and params.before is None and result.note is None:
        total = q.count(store.conn, filters, model_source=model, latest_round=latest)
    return filters, result, total
