"""The JSON API: the frame browser's pages, one frame, label saves and review verdicts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from scenesift.store import Store
from scenesift.store import browse as q
from scenesift.store import campaign_views as views
from scenesift.web.deps import (
    BrowseParams,
    FrameId,
    Project,
    ProjectDep,
    ReviewBody,
    RoundId,
    StoreDep,
    browse,
    frame_or_404,
    query,
)
from scenesift.web.labels import LabelError, SaveLabels, StaleVersion, UnknownFrame, save_labels
from scenesift.web.security import require_access

router = APIRouter(prefix="/api", dependencies=[Depends(require_access)])


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request) -> dict:
    """The API's OpenAPI schema (with the token, like everything else)."""
    return request.app.openapi()


@router.get("/frames")
def frames(
    project: ProjectDep,
    store: StoreDep,
    params: Annotated[BrowseParams, Depends(query(BrowseParams))],
) -> dict:
    _, result, total = browse(project, store, params)
    return {
        "frames": [{k: v for k, v in asdict(r).items() if k != "key"} for r in result.rows],
        "next": result.next,
        "prev": result.prev,
        "round": result.round_id,
        "total": total,
        "note": result.note,
    }


@router.get("/frames/{frame_id}")
def frame(frame_id: FrameId, project: ProjectDep, store: StoreDep) -> dict:
    info = frame_or_404(store, frame_id)
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


@router.post("/frames/{frame_id}/labels")
def save(frame_id: FrameId, body: SaveLabels, project: ProjectDep, store: StoreDep) -> Response:
    try:
        with project.writing():
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


def set_review(project: Project, store: Store, round_id: int, frame_id: int, review: str) -> None:
    """Record a reviewer's verdict (the API and the review page's no-script form)."""
    with project.writing(), store.transaction() as c:
        if not views.set_review(c, round_id, frame_id, review):
            raise HTTPException(404, f"frame {frame_id} is not a pick of round {round_id}")


@router.post("/rounds/{round_id}/picks/{frame_id}")
def review(
    round_id: RoundId, frame_id: FrameId, body: ReviewBody, project: ProjectDep, store: StoreDep
) -> dict:
    set_review(project, store, round_id, frame_id, body.review)
    return {"round": round_id, "frame": frame_id, "review": body.review}
