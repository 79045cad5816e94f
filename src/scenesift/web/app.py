"""The web app: dashboard, frame browser, frame view, review and labelling pages, and the
small JSON API their scripts call. Server-rendered Jinja2 with a little vanilla JS.

Every request opens its own catalog connection (SQLite connections belong to one thread;
FastAPI runs handlers in a thread pool), reads through indexed, bounded queries
(``queries.py``), and writes in one ``Store.transaction()``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, unquote, urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from scenesift.store import Store
from scenesift.store.coverage import Coverage, coverage
from scenesift.taxonomy import Taxonomy
from scenesift.web import queries as q
from scenesift.web.charts import learning_curve_svg
from scenesift.web.images import (
    ImageUnavailable,
    cam_overlay,
    frame_image,
    media_type,
    tagger_checkpoint,
    thumbnail,
)
from scenesift.web.labels import LabelError, SaveLabels, StaleVersion, UnknownFrame, save_labels
from scenesift.web.security import REPORT_CSP, Guard, resolve_under

HERE = Path(__file__).parent
MAX_ID = 2**63 - 1
FrameId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="frame id")]
RoundId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="round id")]
#: Keys that toggle situations on the labelling page, in taxonomy order; s, n and p are
#: save, next and previous, b toggles the boxes.
KEYS = "1234567890qwertyuiodfghjklzxcvm"
REPORT_TYPES = {".html", ".htm", ".png", ".jpg", ".jpeg", ".svg", ".css", ".js", ".json", ".csv"}
LABELLER_COOKIE = "scenesift_labeller"


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


def _parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False, include_context=False)) from None


# ------------------------------------------------------------------------------ context
class Project:
    """What every request needs: the project folder, its taxonomy, short-lived caches."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        with Store.open(self.root) as store:  # fails early (StoreError) if not a project
            self.taxonomy = store.taxonomy
        self.keys = dict(zip(self.taxonomy.names, KEYS, strict=False))
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = Store.open(self.root)
        try:
            yield store
        finally:
            store.close()

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
        return self.cached(
            "model", 10, lambda: q.latest_model_source(store.conn, self.taxonomy.names)
        )

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


def _frame_or_404(store: Store, frame_id: int) -> q.FrameInfo:
    info = q.frame(store.conn, frame_id)
    if info is None:
        raise HTTPException(404, f"no frame with id {frame_id} in this project")
    return info


def _image_or_404(store: Store, info: q.FrameInfo) -> Path:
    try:
        return frame_image(info, q.image_roots(store.conn))
    except ImageUnavailable as e:
        raise HTTPException(404, str(e)) from None


def _qs(pairs: list[tuple[str, str]], **extra: Any) -> str:
    items = [(k, v) for k, v in pairs if k not in extra]
    items += [(k, str(v)) for k, v in extra.items() if v is not None]
    return urlencode(items)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


# ------------------------------------------------------------------------------ the app
def create_app(project_path: Path | str, token: str | None = None) -> FastAPI:
    """The web app for one project. ``token``: require it on every request (see
    :mod:`scenesift.web.security`); None is for loopback only."""
    project = Project(Path(project_path))
    app = FastAPI(
        title="scenesift",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.project = project
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(project_name=project.root.name, qs=_qs)
    templates.env.filters["fmt"] = _fmt_number
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_middleware(Guard, token=token)

    def page(request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=code)

    # -------------------------------------------------------------- errors
    def _error(request: Request, status: int, detail: Any) -> Response:
        if _wants_html(request):
            message = detail if isinstance(detail, str) else _describe(detail)
            return page(request, "error.html", status, status=status, message=message)
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(request, exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, 422, _json_safe(exc.errors()))

    # -------------------------------------------------------------- dashboard
    @app.get("/", response_class=HTMLResponse)
    def dashboard(request: Request) -> Response:
        with project.store() as store:
            cov = project.coverage(store)
            curve = q.learning_curve(store.conn)
            latest = q.latest_round(store.conn)
            round_info = q.round_info(store.conn, latest) if latest else None
        situations = [r for r in cov.rows if r.kind == "situation"]
        classes = [r for r in cov.rows if r.kind == "class"]
        scale = max([1] + [max(r.labelled, r.hidden, r.predicted or 0) for r in cov.rows])
        svg = learning_curve_svg(curve.points) if curve and curve.points else None
        return page(
            request,
            "dashboard.html",
            nav="dashboard",
            cov=cov,
            situations=situations,
            classes=classes,
            scale=scale,
            curve=curve,
            svg=svg,
            reports=project.reports(),
            round=round_info,
        )

    # -------------------------------------------------------------- browser
    def _browse(store: Store, params: BrowseParams) -> tuple[q.Filters, q.Page, int | None]:
        filters = params.filters(project.taxonomy)
        model = project.model_source(store)
        latest = q.latest_round(store.conn)
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

    @app.get("/browse", response_class=HTMLResponse)
    def browse_page(request: Request) -> Response:
        params = _parse(BrowseParams, dict(request.query_params))
        with project.store() as store:
            filters, result, total = _browse(store, params)
            rounds = q.rounds(store.conn)
            model = project.model_source(store)
        return page(
            request,
            "browse.html",
            nav="browse",
            f=filters,
            page=result,
            total=total,
            limit=params.limit,
            rounds=rounds,
            round_labels=dict(rounds),
            model=model,
            taxonomy=project.taxonomy,
            queue=_qs(filters.items()),
        )

    @app.get("/api/frames")
    def browse_api(request: Request) -> dict:
        params = _parse(BrowseParams, dict(request.query_params))
        with project.store() as store:
            _, result, total = _browse(store, params)
        return {
            "frames": [{k: v for k, v in asdict(r).items() if k != "key"} for r in result.rows],
            "next": result.next,
            "prev": result.prev,
            "round": result.round_id,
            "total": total,
            "note": result.note,
        }

    # -------------------------------------------------------------- one frame
    @app.get("/frames/{frame_id}", response_class=HTMLResponse)
    def frame_page(request: Request, frame_id: FrameId) -> Response:
        with project.store() as store:
            info = _frame_or_404(store, frame_id)
            model = project.model_source(store)
            rows = q.situations(store.conn, frame_id, project.taxonomy, model)
            boxes = q.boxes(store.conn, frame_id)
            prev_id, next_id = q.drive_neighbours(store.conn, frame_id)
            picks = q.frame_picks(store.conn, frame_id)
            last = q.last_save(store.conn, frame_id)
        return page(
            request,
            "frame.html",
            nav="browse",
            info=info,
            rows=rows,
            boxes=boxes,
            prev_id=prev_id,
            next_id=next_id,
            picks=picks,
            last=last,
            model=model,
            tagger=tagger_checkpoint(project.root) is not None,
        )

    @app.get("/api/frames/{frame_id}")
    def frame_api(frame_id: FrameId) -> dict:
        with project.store() as store:
            info = _frame_or_404(store, frame_id)
            model = project.model_source(store)
            rows = q.situations(store.conn, frame_id, project.taxonomy, model)
            last = q.last_save(store.conn, frame_id)
        return {
            "id": info.id,
            "name": info.name,
            "drive": info.drive,
            "timestamp": info.timestamp,
            "state": info.state,
            "split": info.split,
            "label_version": info.label_version,
            "model_source": model,
            "situations": {
                r.name: {"truth": r.truth, "source": r.source, "score": r.score} for r in rows
            },
            "last_save": asdict(last) if last else None,
        }

    @app.get("/frames/{frame_id}/image")
    def frame_image_route(frame_id: FrameId) -> Response:
        with project.store() as store:
            path = _image_or_404(store, _frame_or_404(store, frame_id))
        return FileResponse(path, media_type=media_type(path), headers=_private_cache())

    @app.get("/frames/{frame_id}/thumb")
    def frame_thumb(frame_id: FrameId) -> Response:
        with project.store() as store:
            path = _image_or_404(store, _frame_or_404(store, frame_id))
        try:
            thumb = thumbnail(project.root, frame_id, path)
        except ImageUnavailable as e:
            raise HTTPException(404, str(e)) from None
        return FileResponse(thumb, media_type="image/jpeg", headers=_private_cache())

    @app.get("/frames/{frame_id}/cam")
    def frame_cam(request: Request, frame_id: FrameId) -> Response:
        params = _parse(CamParams, dict(request.query_params))
        if params.situation not in project.taxonomy:
            raise HTTPException(422, f"unknown situation {params.situation!r}")
        if tagger_checkpoint(project.root) is None:
            raise HTTPException(
                404, "no tagger checkpoint in this project: train one with `scenesift tagger "
                "train`"
            )  # fmt: skip
        with project.store() as store:
            path = _image_or_404(store, _frame_or_404(store, frame_id))
            try:
                png = cam_overlay(store, frame_id, path, params.situation)
            except ImageUnavailable as e:
                raise HTTPException(404, str(e)) from None
        return FileResponse(png, media_type="image/png", headers=_private_cache())

    # -------------------------------------------------------------- review
    @app.get("/review", response_class=HTMLResponse)
    def review_page(request: Request) -> Response:
        params = _parse(ReviewParams, dict(request.query_params))
        with project.store() as store:
            round_id = params.round or q.latest_round(store.conn)
            info = q.round_info(store.conn, round_id) if round_id else None
            if params.round is not None and info is None:
                raise HTTPException(404, f"no round with id {params.round}")
            rows = q.picks(store.conn, round_id, params.after_rank, 101) if info else []
        more = len(rows) > 100
        rows = rows[:100]
        return page(
            request,
            "review.html",
            nav="review",
            round=info,
            rows=rows,
            next_rank=rows[-1].rank if more else None,
            after_rank=params.after_rank,
        )

    def _review(round_id: int, frame_id: int, review: str) -> None:
        with project.store() as store, store.transaction() as c:
            if not q.set_review(c, round_id, frame_id, review):
                raise HTTPException(404, f"frame {frame_id} is not a pick of round {round_id}")

    @app.post("/api/rounds/{round_id}/picks/{frame_id}")
    def review_api(round_id: RoundId, frame_id: FrameId, body: ReviewBody) -> dict:
        _review(round_id, frame_id, body.review)
        return {"round": round_id, "frame": frame_id, "review": body.review}

    @app.post("/review/{round_id}/{frame_id}")
    async def review_form(request: Request, round_id: RoundId, frame_id: FrameId) -> Response:
        """The no-script fallback of the review buttons (an urlencoded form)."""
        raw = (await request.body())[:10_000].decode("utf-8", "replace")
        values = parse_qs(raw).get("review", [""])
        body = _parse(ReviewBody, {"review": values[0]})
        await run_in_threadpool(_review, round_id, frame_id, body.review)
        return RedirectResponse(f"/review?round={round_id}#pick-{frame_id}", status_code=303)

    # -------------------------------------------------------------- labelling
    def _default_queue(store: Store) -> list[tuple[str, str]]:
        latest = q.latest_round(store.conn)
        if latest is not None:
            info = q.round_info(store.conn, latest)
            if info and info.counts["pending"] + info.counts["accepted"]:
                return [("round", str(latest)), ("review", "open"), ("sort", "rank")]
        return [("state", "unlabelled")]

    @app.get("/label")
    def label_start(request: Request) -> Response:
        pairs = list(request.query_params.items())
        with project.store() as store:
            if not pairs:
                pairs = _default_queue(store)
            params = _parse(BrowseParams, {**dict(pairs), "limit": 1})
            _, result, _ = _browse(store, params)
        if not result.rows:
            message = result.note or (
                "this queue is empty: nothing to label. Every frame can still be relabelled: "
                "open one from the browser and choose 'label'."
            )
            raise HTTPException(404, message)
        return RedirectResponse(f"/label/{result.rows[0].id}?{_qs(pairs)}", status_code=303)

    @app.get("/label/{frame_id}", response_class=HTMLResponse)
    def label_page(request: Request, frame_id: FrameId) -> Response:
        params = _parse(BrowseParams, dict(request.query_params))
        filters = params.filters(project.taxonomy)
        with project.store() as store:
            info = _frame_or_404(store, frame_id)
            model = project.model_source(store)
            rows = q.situations(store.conn, frame_id, project.taxonomy, model)
            latest = q.latest_round(store.conn)
            kw = {"model_source": model, "latest_round": latest}
            prev_id = q.neighbour(store.conn, filters, frame_id, False, **kw)
            next_id = q.neighbour(store.conn, filters, frame_id, True, **kw)
            last = q.last_save(store.conn, frame_id)
            boxes = q.boxes(store.conn, frame_id)
            queue_round = q.round_info(store.conn, filters.round) if filters.round else None
        prefill, prefill_from = _prefill(rows)
        return page(
            request,
            "label.html",
            nav="label",
            info=info,
            rows=rows,
            keys=project.keys,
            prefill=prefill,
            prefill_from=prefill_from,
            prev_id=prev_id,
            next_id=next_id,
            queue=_qs(filters.items()),
            queue_text=_describe_queue(filters, queue_round),
            last=last,
            boxes=boxes,
            labeller=unquote(request.cookies.get(LABELLER_COOKIE, ""))[:100],
            groups=project.taxonomy.groups(),
            scores={r.name: r.score for r in rows},
            descriptions={r.name: r.description for r in rows},
        )

    @app.post("/api/frames/{frame_id}/labels")
    def save_api(frame_id: FrameId, body: SaveLabels) -> Response:
        try:
            with project.store() as store:
                saved = save_labels(store, project.taxonomy, frame_id, body)
        except LabelError as e:
            raise HTTPException(422, str(e)) from None
        except UnknownFrame:
            raise HTTPException(404, f"no frame with id {frame_id} in this project") from None
        except StaleVersion as e:
            return JSONResponse(
                {
                    "detail": e.message(),
                    "label_version": e.current,
                    "last_save": asdict(e.last) if e.last else None,
                },
                status_code=409,
            )
        return JSONResponse({"frame": frame_id, **asdict(saved)})

    # -------------------------------------------------------------- reports
    @app.get("/reports/{path:path}")
    def report(path: str) -> Response:
        target = resolve_under(project.root / "reports", path)
        if target is None or target.suffix.lower() not in REPORT_TYPES:
            raise HTTPException(404, "no such report")
        return FileResponse(target, headers={"Content-Security-Policy": REPORT_CSP})

    return app


# ------------------------------------------------------------------------------ helpers
def _private_cache() -> dict[str, str]:
    return {"Cache-Control": "private, max-age=300"}


def _prefill(rows: list[q.SituationRow]) -> tuple[dict[str, bool], str | None]:
    """What the labelling page starts from: the human labels, else imported labels, else
    the latest model's predictions (never the oracle: it is for simulated labelling).
    At most one member of an exclusive group starts checked: the highest-scoring one."""
    choices = [
        ({r.name: r.human for r in rows if r.human is not None}, "your team's saved labels"),
        (
            {r.name: r.truth for r in rows if r.source == "import" and r.truth is not None},
            "imported labels",
        ),
        ({r.name: r.predicted for r in rows if r.predicted is not None}, "the latest model"),
    ]
    values, origin = next(((v, o) for v, o in choices if v), ({}, None))
    score = {r.name: r.score if r.score is not None else -1.0 for r in rows}
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r.group and values.get(r.name):
            groups.setdefault(r.group, []).append(r.name)
    for members in groups.values():
        keep = max(members, key=lambda n: score[n])
        for n in members:
            values[n] = n == keep
    return values, origin


def _describe_queue(f: q.Filters, round_info: q.RoundInfo | None) -> str:
    parts = []
    if f.round is not None:
        parts.append(round_info.label if round_info else f"round {f.round}")
    if f.review == "open":
        parts.append("open picks")
    elif f.review:
        parts.append(f"{f.review} picks")
    if f.state:
        parts.append(f"{f.state} frames")
    if f.drive:
        parts.append(f"drive {f.drive}")
    if f.situation:
        parts.append(f"{f.situation}={f.value}")
    if f.predicted:
        parts.append(f"predicted {f.predicted} ≥ {f.min_score:g}")
    if f.score_min is not None or f.score_max is not None:
        parts.append(f"score in [{f.score_min}, {f.score_max}]")
    return (", ".join(parts) or "all frames") + f", by {f.sort}"


def _describe(errors: Any) -> str:
    if isinstance(errors, list):
        out = []
        for e in errors:
            if isinstance(e, dict):
                loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("query", "body"))
                out.append(f"{loc}: {e.get('msg', '')}" if loc else str(e.get("msg", "")))
        return "; ".join(out)
    return str(errors)


def _json_safe(errors: Any) -> Any:
    return json.loads(json.dumps(errors, default=str))


def _fmt_number(v: Any, digits: int = 3) -> str:
    if v is None:
        return "\u2013"  # en dash
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)
