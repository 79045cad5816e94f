"""The server-rendered pages: dashboard, frame browser, frame view, review and labelling."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from scenesift.metrics.bootstrap import FEW_DRIVES
from scenesift.store import Store
from scenesift.store import browse as q
from scenesift.store import campaign_views as views
from scenesift.store.coverage import drives_per_split
from scenesift.web.charts import learning_curve_svg
from scenesift.web.deps import (
    BrowseParams,
    FrameId,
    ProjectDep,
    ReviewBody,
    ReviewParams,
    RoundId,
    StoreDep,
    browse,
    frame_or_404,
    parse,
    qs,
    query,
    render,
)
from scenesift.web.images import tagger_checkpoint
from scenesift.web.routes.api import set_review
from scenesift.web.security import require_access

LABELLER_COOKIE = "scenesift_labeller"

router = APIRouter(dependencies=[Depends(require_access)], default_response_class=HTMLResponse)
Browse = Annotated[BrowseParams, Depends(query(BrowseParams))]


@router.get("/")
def dashboard(request: Request, project: ProjectDep, store: StoreDep) -> Response:
    cov = project.coverage(store)
    drives = {r.name: r for r in drives_per_split(store)}
    curve = views.learning_curve(store.conn)
    latest = views.latest_round(store.conn)
    round_info = views.round_info(store.conn, latest) if latest else None
    situations = [r for r in cov.rows if r.kind == "situation"]
    classes = [r for r in cov.rows if r.kind == "class"]
    scale = max([1] + [max(r.labelled, r.hidden, r.predicted or 0) for r in cov.rows])
    svg = learning_curve_svg(curve.points) if curve and curve.points else None
    return render(
        request,
        "dashboard.html",
        nav="dashboard",
        cov=cov,
        situations=situations,
        classes=classes,
        scale=scale,
        drives=drives,
        few_drives=FEW_DRIVES,
        curve=curve,
        svg=svg,
        reports=project.reports(),
        round=round_info,
    )


@router.get("/browse")
def browse_page(request: Request, project: ProjectDep, store: StoreDep, params: Browse) -> Response:
    filters, result, total = browse(project, store, params)
    rounds = views.rounds(store.conn)
    return render(
        request,
        "browse.html",
        nav="browse",
        f=filters,
        page=result,
        total=total,
        limit=params.limit,
        rounds=rounds,
        round_labels=dict(rounds),
        model=project.model_source(store),
        taxonomy=project.taxonomy,
        queue=qs(filters.items()),
    )


@router.get("/frames/{frame_id}")
def frame_page(
    request: Request, frame_id: FrameId, project: ProjectDep, store: StoreDep
) -> Response:
    info = frame_or_404(store, frame_id)
    model = project.model_source(store)
    prev_id, next_id = q.drive_neighbours(store.conn, frame_id)
    return render(
        request,
        "frame.html",
        nav="browse",
        info=info,
        rows=q.situations(store.conn, frame_id, project.taxonomy, model),
        boxes=q.boxes(store.conn, frame_id),
        prev_id=prev_id,
        next_id=next_id,
        picks=views.frame_picks(store.conn, frame_id),
        last=q.last_save(store.conn, frame_id),
        model=model,
        tagger=tagger_checkpoint(project.root) is not None,
    )


# ------------------------------------------------------------------------------ review
@router.get("/review")
def review_page(
    request: Request, store: StoreDep, params: Annotated[ReviewParams, Depends(query(ReviewParams))]
) -> Response:
    """A round's picks, 100 at a time; by default the latest round that picked frames."""
    round_id = params.round or views.latest_round(store.conn)
    info = views.round_info(store.conn, round_id) if round_id else None
    if params.round is not None and info is None:
        raise HTTPException(404, f"no round with id {params.round}")
    rows = views.picks(store.conn, round_id, params.after_rank, 101) if info else []
    more = len(rows) > 100
    rows = rows[:100]
    return render(
        request,
        "review.html",
        nav="review",
        round=info,
        choices=views.round_choices(store.conn) if info else [],
        rows=rows,
        next_rank=rows[-1].rank if more else None,
        after_rank=params.after_rank,
    )


@router.post("/review/{round_id}/{frame_id}")
async def review_form(
    request: Request, round_id: RoundId, frame_id: FrameId, project: ProjectDep, store: StoreDep
) -> Response:
    """The no-script fallback of the review buttons (an urlencoded form)."""
    raw = (await request.body())[:10_000].decode("utf-8", "replace")
    values = parse_qs(raw).get("review", [""])
    body = parse(ReviewBody, {"review": values[0]})
    await run_in_threadpool(set_review, project, store, round_id, frame_id, body.review)
    return RedirectResponse(f"/review?round={round_id}#pick-{frame_id}", status_code=303)


# ------------------------------------------------------------------------------ labelling
def default_queue(store: Store) -> list[tuple[str, str]] | None:
    """The open picks of the most recent round that has some, else the unlabelled frames;
    None when there is neither."""
    round_id = views.latest_open_round(store.conn)
    if round_id is not None:
        return [("round", str(round_id)), ("review", "open"), ("sort", "rank")]
    unlabelled = q.Filters(state="unlabelled")
    if q.count(store.conn, unlabelled, model_source=None, latest_round=None, cap=1):
        return [("state", "unlabelled")]
    return None


@router.get("/label")
def label_start(request: Request, project: ProjectDep, store: StoreDep) -> Response:
    """The first frame of a labelling queue (the query string; by default
    :func:`default_queue`), or a page that says why there is nothing to label."""
    pairs = list(request.query_params.items()) or default_queue(store)
    if pairs is None:
        return render(
            request,
            "label_empty.html",
            nav="label",
            message="There is nothing to label: every frame is labelled and no round has "
            "open picks.",
            queue_text=None,
        )
    params = parse(BrowseParams, {**dict(pairs), "limit": 1})
    filters, result, _ = browse(project, store, params)
    if not result.rows:
        queue_round = views.round_info(store.conn, filters.round) if filters.round else None
        return render(
            request,
            "label_empty.html",
            nav="label",
            message=result.note or "This queue is empty: nothing to label here.",
            queue_text=describe_queue(filters, queue_round),
        )
    return RedirectResponse(f"/label/{result.rows[0].id}?{qs(pairs)}", status_code=303)


@router.get("/label/{frame_id}")
def label_page(
    request: Request, frame_id: FrameId, project: ProjectDep, store: StoreDep, params: Browse
) -> Response:
    filters = params.filters(project.taxonomy)
    info = frame_or_404(store, frame_id)
    model = project.model_source(store)
    rows = q.situations(store.conn, frame_id, project.taxonomy, model)
    kw: dict[str, Any] = {"model_source": model, "latest_round": views.latest_round(store.conn)}
    prev_id = q.neighbour(store.conn, filters, frame_id, False, **kw)
    next_id = q.neighbour(store.conn, filters, frame_id, True, **kw)
    queue_round = views.round_info(store.conn, filters.round) if filters.round else None
    prefill, prefill_from = _prefill(rows)
    return render(
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
        queue=qs(filters.items()),
        queue_text=describe_queue(filters, queue_round),
        last=q.last_save(store.conn, frame_id),
        boxes=q.boxes(store.conn, frame_id),
        labeller=unquote(request.cookies.get(LABELLER_COOKIE, ""))[:100],
        groups=project.taxonomy.groups(),
        scores={r.name: r.score for r in rows},
        descriptions={r.name: r.description for r in rows},
    )


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


def describe_queue(f: q.Filters, round_info: views.RoundReview | None) -> str:
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
