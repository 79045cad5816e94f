"""The web app's campaign views: the rounds to review and label, their picks with the
reviewer's verdicts, the latest campaign's learning curve. Read on the web app's own
connections (``conn``, under its deadlines), apart from ``store/campaigns.py``, which owns
the campaign loop's reads and writes of the same tables through a ``Store``.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass

from scenesift.store.campaigns import REVIEWS


@dataclass(frozen=True)
class RoundReview:
    """A round as the dashboard and review page show it: its picks counted per verdict."""

    id: int
    campaign: str
    idx: int
    status: str
    created_at: str
    counts: dict[str, int]

    @property
    def label(self) -> str:
        return f"{self.campaign} · round {self.idx}"


def latest_round(conn: sqlite3.Connection) -> int | None:
    """The most recent round that picked frames (a campaign's final round picks none, so it
    is never the round to review, browse or label)."""
    row = conn.execute(
        "SELECT r.id FROM rounds r WHERE EXISTS (SELECT 1 FROM picks p WHERE p.round_id = r.id) "
        "ORDER BY r.created_at DESC, r.id DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def latest_open_round(conn: sqlite3.Connection) -> int | None:
    """The most recent round with open (not rejected) picks: the default labelling queue."""
    row = conn.execute(
        "SELECT r.id FROM rounds r WHERE EXISTS (SELECT 1 FROM picks p WHERE p.round_id = r.id "
        "AND p.review != 'rejected') ORDER BY r.created_at DESC, r.id DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def round_info(conn: sqlite3.Connection, round_id: int) -> RoundReview | None:
    row = conn.execute(
        "SELECT r.id, c.name, r.idx, r.status, r.created_at FROM rounds r "
        "JOIN campaigns c ON c.id = r.campaign_id WHERE r.id = ?",
        (round_id,),
    ).fetchone()
    if row is None:
        return None
    counts = dict.fromkeys(REVIEWS, 0)
    counts.update(
        conn.execute(
            "SELECT review, count(*) FROM picks WHERE round_id = ? GROUP BY review", (round_id,)
        ).fetchall()
    )
    return RoundReview(*row, counts=counts)


def rounds(conn: sqlite3.Connection, limit: int = 200) -> list[tuple[int, str]]:
    """(round id, label) of the most recent rounds, for the browser's round filter."""
    return [
        (rid, f"{name} · round {idx}")
        for rid, name, idx in conn.execute(
            "SELECT r.id, c.name, r.idx FROM rounds r JOIN campaigns c ON c.id = r.campaign_id "
            "ORDER BY r.created_at DESC, r.id DESC LIMIT ?",
            (limit,),
        )
    ]


@dataclass(frozen=True)
class RoundChoice:
    id: int
    label: str
    status: str
    picks: int


def round_choices(conn: sqlite3.Connection, limit: int = 200) -> list[RoundChoice]:
    """The most recent rounds with their pick counts, for the review page's round chooser."""
    return [
        RoundChoice(rid, f"{name} · round {idx}", status, n)
        for rid, name, idx, status, n in conn.execute(
            "SELECT r.id, c.name, r.idx, r.status, "
            "(SELECT count(*) FROM picks p WHERE p.round_id = r.id) FROM rounds r "
            "JOIN campaigns c ON c.id = r.campaign_id ORDER BY r.created_at DESC, r.id DESC "
            "LIMIT ?",
            (limit,),
        )
    ]


@dataclass(frozen=True)
class PickRow:
    frame_id: int
    name: str
    rank: int
    score: float | None
    strategy: str
    review: str
    state: str


def picks(
    conn: sqlite3.Connection, round_id: int, after_rank: int = -1, limit: int = 100
) -> list[PickRow]:
    rows = conn.execute(
        "SELECT p.frame_id, f.name, p.rank, p.score, p.strategy, p.review, f.state "
        "FROM picks p CROSS JOIN frames f WHERE p.round_id = ? AND f.id = p.frame_id "
        "AND p.rank > ? ORDER BY p.rank, p.frame_id LIMIT ?",
        (round_id, after_rank, limit),
    ).fetchall()
    return [PickRow(*r) for r in rows]


def set_review(conn: sqlite3.Connection, round_id: int, frame_id: int, review: str) -> bool:
    """Record a reviewer's verdict; False when the frame is not a pick of that round."""
    cur = conn.execute(
        "UPDATE picks SET review = ? WHERE round_id = ? AND frame_id = ?",
        (review, round_id, frame_id),
    )
    return cur.rowcount == 1


def frame_picks(conn: sqlite3.Connection, frame_id: int) -> list[tuple]:
    """(round id, round label, rank, score, strategy, review) of every round that picked it."""
    return conn.execute(
        "SELECT p.round_id, c.name || ' · round ' || r.idx, p.rank, p.score, p.strategy, "
        "p.review FROM picks p JOIN rounds r ON r.id = p.round_id "
        "JOIN campaigns c ON c.id = r.campaign_id WHERE p.frame_id = ? ORDER BY p.round_id",
        (frame_id,),
    ).fetchall()


#: Round metrics a learning curve can plot, in legend order: the detector's mAPs and the
#: tagger's mean ROC-AUC (``Campaign.metric`` names the one a campaign optimises).
CURVE_METRICS = {"map50": "mAP@0.5", "map": "mAP@[.5:.95]", "auc_mean": "mean ROC-AUC"}


@dataclass(frozen=True)
class CurvePoint:
    round: int
    n_labelled: float
    values: dict[str, float]  # CURVE_METRICS key -> value, only those the round has


@dataclass(frozen=True)
class LearningCurve:
    campaign: str
    status: str
    rounds: int
    points: list[CurvePoint]

    @property
    def metrics(self) -> dict[str, str]:
        """key -> label of the metrics at least one round has, in CURVE_METRICS order."""
        have = {k for p in self.points for k in p.values}
        return {k: label for k, label in CURVE_METRICS.items() if k in have}


def learning_curve(conn: sqlite3.Connection) -> LearningCurve | None:
    """The latest campaign's rounds with their metrics (None: no campaign yet)."""
    row = conn.execute(
        "SELECT id, name, status FROM campaigns ORDER BY created_at DESC, id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    cid, name, status = row
    points, n_rounds = [], 0
    for idx, metrics in conn.execute(
        "SELECT idx, metrics FROM rounds WHERE campaign_id = ? ORDER BY idx", (cid,)
    ):
        n_rounds += 1
        try:
            m = json.loads(metrics)
        except (TypeError, ValueError):
            continue
        if not isinstance(m, dict) or not _number(m.get("n_labelled")):
            continue
        values = {k: float(m[k]) for k in CURVE_METRICS if _number(m.get(k))}
        points.append(CurvePoint(idx, float(m["n_labelled"]), values))
    return LearningCurve(name, status, n_rounds, points)


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
