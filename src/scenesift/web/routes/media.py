"""Files: frame images (only from a registered image root), cached thumbnails and class
activation map overlays, the project's reports and the app's static files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, Response

from scenesift.web.deps import (
    CamParams,
    FrameId,
    ProjectDep,
    StoreDep,
    frame_or_404,
    image_or_404,
    query,
)
from scenesift.web.images import (
    ImageUnavailable,
    cam_overlay,
    media_type,
    tagger_checkpoint,
    thumbnail,
)
from scenesift.web.security import REPORT_CSP, require_access, resolve_under

STATIC = Path(__file__).parent.parent / "static"
REPORT_TYPES = {".html", ".htm", ".png", ".jpg", ".jpeg", ".svg", ".css", ".js", ".json", ".csv"}
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}

router = APIRouter(dependencies=[Depends(require_access)])


def _private_cache() -> dict[str, str]:
    return {"Cache-Control": "private, max-age=300"}


@router.get("/frames/{frame_id}/image")
def image(frame_id: FrameId, store: StoreDep) -> Response:
    path = image_or_404(store, frame_or_404(store, frame_id))
    return FileResponse(path, media_type=media_type(path), headers=_private_cache())


@router.get("/frames/{frame_id}/thumb")
def thumb(frame_id: FrameId, project: ProjectDep, store: StoreDep) -> Response:
    path = image_or_404(store, frame_or_404(store, frame_id))
    try:
        small = thumbnail(project.root, frame_id, path)
    except ImageUnavailable as e:
        raise HTTPException(404, str(e)) from None
    return FileResponse(small, media_type="image/jpeg", headers=_private_cache())


@router.get("/frames/{frame_id}/cam")
def cam(
    frame_id: FrameId,
    project: ProjectDep,
    store: StoreDep,
    params: Annotated[CamParams, Depends(query(CamParams))],
) -> Response:
    if params.situation not in project.taxonomy:
        raise HTTPException(422, f"unknown situation {params.situation!r}")
    if tagger_checkpoint(project.root) is None:
        raise HTTPException(
            404, "no tagger checkpoint in this project: train one with `scenesift tagger train`"
        )
    path = image_or_404(store, frame_or_404(store, frame_id))
    try:
        png = cam_overlay(store, frame_id, path, params.situation)
    except ImageUnavailable as e:
        raise HTTPException(404, str(e)) from None
    return FileResponse(png, media_type="image/png", headers=_private_cache())


@router.get("/reports/{path:path}")
def report(path: str, project: ProjectDep) -> Response:
    target = resolve_under(project.root / "reports", path)
    if target is None or target.suffix.lower() not in REPORT_TYPES:
        raise HTTPException(404, "no such report")
    return FileResponse(target, headers={"Content-Security-Policy": REPORT_CSP})


@router.get("/static/{path:path}")
def static(path: str) -> Response:
    """The app's own CSS and scripts (a route, not a mount, so the access check applies)."""
    target = resolve_under(STATIC, path)
    if target is None or target.suffix not in STATIC_TYPES:
        raise HTTPException(404, "no such file")
    return FileResponse(target, media_type=STATIC_TYPES[target.suffix])
