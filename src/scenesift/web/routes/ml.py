"""scenesift as a Label Studio ML backend: ``/ml/<campaign>`` is the URL to connect.

Label Studio calls ``GET health``, ``POST setup`` (answered with the model version: the
campaign's latest round with picks, so a new round makes it ask again), ``POST predict``
(a batch of tasks in, one prediction per task out) and ``POST webhook`` (its events;
accepted and ignored: the campaign learns from ``al import-labels``).

A prediction is what the round's batch export carries: the round model's confident boxes
and the tagger's situations. Its ``score`` orders the queue: Label Studio's *uncertainty
sampling* serves the lowest score first, so the score is the campaign's pick rank scaled
to [0, 1) (the first pick comes first) and 1.0 for frames the round did not pick. Tasks
name their frame in ``data.frame``, as scenesift's exports do.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict

from scenesift.store import Store, StoreError
from scenesift.web.deps import StoreDep
from scenesift.web.security import require_access

router = APIRouter(prefix="/ml/{campaign}", dependencies=[Depends(require_access)])
#: The score of a task whose frame the round did not pick: after every pick.
NOT_PICKED = 1.0


class PredictBody(BaseModel):
    """Label Studio's predict request; only the tasks matter here."""

    model_config = ConfigDict(extra="allow")
    tasks: list[dict[str, Any]]


def _round(store: Store, name: str):
    """(campaign, its latest round with picks, model version), or 404."""
    from scenesift.al.campaign import Campaign

    try:
        campaign = Campaign.open(store, name)
    except StoreError as e:
        raise HTTPException(404, str(e)) from None
    rounds = [r for r in campaign.rounds() if r.n_picks]
    if not rounds:
        raise HTTPException(409, f"campaign {name!r} has picked no frames yet")
    rnd = rounds[-1]
    return campaign, rnd, f"{name}/round-{rnd.idx:03d}"


@router.get("/health")
def health(campaign: str, store: StoreDep) -> dict:
    _round(store, campaign)
    return {"status": "UP", "model_class": "scenesift", "campaign": campaign}


@router.post("/setup")
def setup(campaign: str, store: StoreDep) -> dict:
    return {"model_version": _round(store, campaign)[2]}


@router.post("/predict")
def predict(campaign: str, body: PredictBody, store: StoreDep) -> dict:
    from scenesift.io.labelstudio import task_prediction

    camp, rnd, version = _round(store, campaign)
    names = [_frame_name(task) for task in body.tasks]
    records, thresholds, _ = camp.shown_records(rnd, {n for n in names if n})
    by_name = {r.name: r for r in records}
    ranks = camp.pick_ranks(rnd)
    results = []
    for name in names:
        frame = by_name.get(name) if name else None
        shown = task_prediction(frame, store.taxonomy, thresholds, version) if frame else None
        rank = ranks.get(name) if name else None
        score = NOT_PICKED if rank is None else rank / max(len(ranks), 1)
        results.append({"model_version": version, "score": score,
                        "result": shown["result"] if shown else []})  # fmt: skip
    return {"results": results, "model_version": version}


@router.post("/webhook")
def webhook(campaign: str, event: dict[str, Any]) -> dict:
    return {"status": "ok", "action": event.get("action")}


def _frame_name(task: dict[str, Any]) -> str | None:
    data = task.get("data")
    name = data.get("frame") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None
