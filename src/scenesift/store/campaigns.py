"""Campaigns, rounds and picks in the catalog: every read and write outside the web app.

The campaign loop (``al.campaign``), the report's gallery, the CLI, experiments and
``scenesift check`` all go through here, so the meaning of a row lives in one place. The
web app's campaign views (pages of picks, review verdicts, the learning curve) read the
same tables on the web app's connections: ``store/campaign_views.py``.

Every write is one ``Store.transaction()``. Called inside a caller's transaction, a write
joins it: ``import_labels`` ingests the human labels and records the round's progress in
one transaction, so a kill between them cannot leave labels without their round.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scenesift.records import Box
from scenesift.store.errors import StoreError
from scenesift.store.project import Store, now

ROUND_STATUSES = ("created", "selected", "labelled", "final")
#: A pick's reviewer verdict (table ``picks``, column ``review``).
REVIEWS = ("pending", "accepted", "rejected")


@dataclass(frozen=True)
class CampaignRow:
    """One campaign as stored: its config is the JSON table it was created with."""

    id: int
    name: str
    status: str
    config: dict[str, Any]
    created_at: str
    n_rounds: int


@dataclass(frozen=True)
class RoundInfo:
    """One round as stored, with the number of its picks and the strategy that made them."""

    id: int
    idx: int
    status: str
    model_fingerprint: str | None
    metrics: dict[str, Any]
    n_picks: int
    strategy: str | None

    @property
    def n_labelled(self) -> int | None:
        return self.metrics.get("n_labelled")


@dataclass(frozen=True)
class Pick:
    """A frame a round selected, with what the report shows of it."""

    frame_id: int
    frame_name: str
    rank: int
    score: float | None
    strategy: str
    review: str


@dataclass(frozen=True)
class PickAudit:
    """A pick with what ``scenesift check`` compares it against (frame state, split, and
    whether a person labelled it); frame columns are None for a dangling pick."""

    round_idx: int
    round_status: str
    frame_id: int
    review: str
    frame_state: str | None
    split: str | None
    by_person: bool


@dataclass(frozen=True)
class NewPick:
    """A pick to store: frame, strategy score (None when not finite) and strategy name."""

    frame_id: int
    score: float | None
    strategy: str


_CAMPAIGN = (
    "SELECT c.id, c.name, c.status, c.config, c.created_at, "
    "(SELECT count(*) FROM rounds r WHERE r.campaign_id = c.id) FROM campaigns c"
)


def _campaign(row: Sequence[Any]) -> CampaignRow:
    return CampaignRow(row[0], row[1], row[2], json.loads(row[3] or "{}"), row[4], row[5])


# ------------------------------------------------------------------------------ campaigns
def create(store: Store, name: str, config: Mapping[str, Any]) -> int:
    """A new running campaign; its name must be free (checked in the same transaction)."""
    with store.transaction() as c:
        if c.execute("SELECT 1 FROM campaigns WHERE name = ?", (name,)).fetchone():
            raise StoreError(
                f"campaign {name!r} already exists: continue it with "
                f"`scenesift al resume {name}` or choose another name"
            )
        cur = c.execute(
            "INSERT INTO campaigns (name, config, status, created_at) VALUES (?, ?, ?, ?)",
            (name, json.dumps(dict(config), sort_keys=True), "running", now()),
        )
    return int(cur.lastrowid)


def find(store: Store, name: str) -> CampaignRow | None:
    row = store.conn.execute(f"{_CAMPAIGN} WHERE c.name = ?", (name,)).fetchone()
    return None if row is None else _campaign(row)


def get(store: Store, name: str) -> CampaignRow:
    """The campaign called ``name``; the error lists the campaigns there are."""
    row = find(store, name)
    if row is None:
        have = names(store)
        hint = f"; campaigns: {', '.join(have)}" if have else "; there are none yet"
        raise StoreError(f"no campaign named {name!r}{hint}")
    return row


def latest(store: Store) -> CampaignRow | None:
    """The most recently created campaign, if any."""
    row = store.conn.execute(f"{_CAMPAIGN} ORDER BY c.id DESC LIMIT 1").fetchone()
    return None if row is None else _campaign(row)


def all_campaigns(store: Store) -> list[CampaignRow]:
    """Every campaign, oldest first."""
    return [_campaign(r) for r in store.conn.execute(f"{_CAMPAIGN} ORDER BY c.id")]


def names(store: Store) -> list[str]:
    """Campaign names, oldest first."""
    return [r[0] for r in store.conn.execute("SELECT name FROM campaigns ORDER BY id")]


def count(store: Store) -> int:
    return store.conn.execute("SELECT count(*) FROM campaigns").fetchone()[0]


def status(store: Store, campaign_id: int) -> str:
    return store.conn.execute(
        "SELECT status FROM campaigns WHERE id = ?", (campaign_id,)
    ).fetchone()[0]


def set_status(store: Store, campaign_id: int, value: str) -> None:
    with store.transaction() as c:
        c.execute("UPDATE campaigns SET status = ? WHERE id = ?", (value, campaign_id))


def remove_prefixed(store: Store, prefix: str) -> int:
    """Delete the campaigns whose names start with ``prefix`` (their rounds and picks go
    with them); returns how many."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    with store.transaction() as c:
        return c.execute(
            "DELETE FROM campaigns WHERE name LIKE ? ESCAPE '\\'", (escaped + "%",)
        ).rowcount


# ------------------------------------------------------------------------------ rounds
def rounds(store: Store, campaign_id: int) -> list[RoundInfo]:
    """A campaign's rounds in order."""
    rows = store.conn.execute(
        "SELECT r.id, r.idx, r.status, r.model_fingerprint, r.metrics, "
        "(SELECT count(*) FROM picks p WHERE p.round_id = r.id), "
        "(SELECT strategy FROM picks p WHERE p.round_id = r.id LIMIT 1) "
        "FROM rounds r WHERE r.campaign_id = ? ORDER BY r.idx",
        (campaign_id,),
    ).fetchall()
    return [RoundInfo(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]


def add_round(store: Store, campaign_id: int, idx: int) -> None:
    """Round ``idx`` in status ``created`` (a no-op when another process added it)."""
    with store.transaction() as c:
        c.execute(
            "INSERT OR IGNORE INTO rounds (campaign_id, idx, status, created_at) "
            "VALUES (?, ?, 'created', ?)",
            (campaign_id, idx, now()),
        )


def finish_round(
    store: Store,
    round_id: int,
    status: str,
    model_fingerprint: str | None,
    metrics: Mapping[str, Any],
    picks: Sequence[NewPick] = (),
    mark_selected: bool = False,
    shown: Mapping[str, Sequence[Box]] | None = None,
) -> bool:
    """A created round becomes ``selected`` (with its picks) or ``final``, in one
    transaction. ``mark_selected``: the picks' frames turn ``selected`` for people to
    label, and ``shown`` (the round model's boxes on them) is stored as the model's
    predictions. Returns False, writing nothing, when the round was no longer ``created``
    (another process finished it first)."""
    with store.transaction() as c:
        current = c.execute("SELECT status FROM rounds WHERE id = ?", (round_id,)).fetchone()
        if current is None or current[0] != "created":
            return False
        c.executemany(
            "INSERT INTO picks (round_id, frame_id, rank, score, strategy) VALUES (?, ?, ?, ?, ?)",
            [(round_id, p.frame_id, rank, p.score, p.strategy) for rank, p in enumerate(picks)],
        )
        if mark_selected:
            c.executemany(
                "UPDATE frames SET state = 'selected', selected_round = ?, updated_at = ? "
                "WHERE id = ? AND state = 'unlabelled'",
                [(round_id, now(), p.frame_id) for p in picks],
            )
            if model_fingerprint is not None and shown:
                store.write_box_predictions(
                    f"model:{model_fingerprint}", {k: list(v) for k, v in shown.items()}
                )
        c.execute(
            "UPDATE rounds SET status = ?, model_fingerprint = ?, metrics = ? WHERE id = ?",
            (status, model_fingerprint, json.dumps(dict(metrics), sort_keys=True), round_id),
        )
    return True


def reveal(store: Store, round_id: int) -> None:
    """The simulated oracle labelled a selected round: its picks count as labelled."""
    with store.transaction() as c:
        c.execute(
            "UPDATE rounds SET status = 'labelled' WHERE id = ? AND status = 'selected'",
            (round_id,),
        )


def human_labels(store: Store, frame_ids: Iterable[int]) -> dict[int, tuple]:
    """Each frame's human situation labels and box set (with its boxes), comparable
    before and after an import: what tells a new label version from the same labels again."""
    ids = json.dumps(sorted(set(map(int, frame_ids))))
    out: dict[int, tuple[list, list]] = {}
    for fid, *row in store.conn.execute(
        "SELECT frame_id, situation, value FROM situation_labels WHERE source = 'human' "
        "AND frame_id IN (SELECT value FROM json_each(?)) ORDER BY frame_id, situation",
        (ids,),
    ):
        out.setdefault(fid, ([], []))[0].append(tuple(row))
    for fid, *row in store.conn.execute(
        "SELECT s.frame_id, b.category, b.x1, b.y1, b.x2, b.y2, b.occluded, b.truncated, "
        "b.attributes FROM box_sets s LEFT JOIN boxes b ON b.frame_id = s.frame_id "
        "AND b.source = s.source WHERE s.source = 'human' "
        "AND s.frame_id IN (SELECT value FROM json_each(?)) ORDER BY s.frame_id, b.id",
        (ids,),
    ):
        out.setdefault(fid, ([], []))[1].append(tuple(row))
    return {fid: (tuple(labels), tuple(boxes)) for fid, (labels, boxes) in out.items()}


def record_labels(
    store: Store,
    campaign_id: int,
    round_id: int,
    frame_ids: Iterable[int],
    changed: Collection[int] | None = None,
) -> int:
    """People labelled ``frame_ids`` of a waiting round: the frames turn ``labelled`` with a
    new label version, unless they already were and their labels are not among ``changed``
    (None: all changed), so the same export imported again is no new version. Once no
    accepted pick is left the round is ``labelled`` and the campaign runs again. Call inside
    the transaction that stores the labels. Returns the picks still to label."""
    frame_ids = list(frame_ids)
    changed = set(frame_ids) if changed is None else set(changed)
    with store.transaction() as c:
        c.executemany(
            "UPDATE frames SET state = 'labelled', label_version = label_version + 1, "
            "updated_at = ? WHERE id = ? AND (state != 'labelled' OR ?)",
            [(now(), fid, fid in changed) for fid in frame_ids],
        )
        remaining = c.execute(
            "SELECT count(*) FROM picks p JOIN frames f ON f.id = p.frame_id "
            "WHERE p.round_id = ? AND p.review != 'rejected' AND f.state != 'labelled'",
            (round_id,),
        ).fetchone()[0]
        if remaining == 0:
            c.execute("UPDATE rounds SET status = 'labelled' WHERE id = ?", (round_id,))
            c.execute("UPDATE campaigns SET status = 'running' WHERE id = ?", (campaign_id,))
    return remaining


# ------------------------------------------------------------------------------ picks
def labelled_picks(store: Store, campaign_id: int) -> set[int]:
    """Frames picked by the campaign's labelled rounds, rejected picks left out."""
    return {
        r[0]
        for r in store.conn.execute(
            "SELECT p.frame_id FROM picks p JOIN rounds r ON r.id = p.round_id "
            "WHERE r.campaign_id = ? AND r.status = 'labelled' AND p.review != 'rejected'",
            (campaign_id,),
        )
    }


def picked(store: Store, campaign_id: int) -> set[int]:
    """Every frame any round of the campaign picked."""
    return {
        r[0]
        for r in store.conn.execute(
            "SELECT p.frame_id FROM picks p JOIN rounds r ON r.id = p.round_id "
            "WHERE r.campaign_id = ?",
            (campaign_id,),
        )
    }


def round_picks(store: Store, round_id: int, include_rejected: bool) -> set[int]:
    sql = "SELECT frame_id FROM picks WHERE round_id = ?"
    if not include_rejected:
        sql += " AND review != 'rejected'"
    return {r[0] for r in store.conn.execute(sql, (round_id,))}


def pick_ranks(store: Store, round_id: int) -> dict[str, int]:
    """A round's picks not rejected in review: frame name -> rank (0 is wanted first)."""
    return dict(
        store.conn.execute(
            "SELECT f.name, p.rank FROM picks p JOIN frames f ON f.id = p.frame_id "
            "WHERE p.round_id = ? AND p.review != 'rejected'",
            (round_id,),
        ).fetchall()
    )


def top_picks(store: Store, round_id: int, limit: int) -> list[Pick]:
    """A round's first ``limit`` picks by rank."""
    rows = store.conn.execute(
        "SELECT p.frame_id, f.name, p.rank, p.score, p.strategy, p.review FROM picks p "
        "JOIN frames f ON f.id = p.frame_id WHERE p.round_id = ? ORDER BY p.rank LIMIT ?",
        (round_id, limit),
    ).fetchall()
    return [Pick(*r) for r in rows]


def audit_picks(store: Store, campaign_id: int) -> list[PickAudit]:
    """Every pick of a campaign by round and rank, for ``scenesift check``."""
    rows = store.conn.execute(
        "SELECT r.idx, r.status, p.frame_id, p.review, f.state, d.split, "
        "EXISTS (SELECT 1 FROM situation_labels l WHERE l.frame_id = p.frame_id "
        "AND l.source = 'human') OR EXISTS (SELECT 1 FROM box_sets b "
        "WHERE b.frame_id = p.frame_id AND b.source = 'human') "
        "FROM picks p JOIN rounds r ON r.id = p.round_id "
        "LEFT JOIN frames f ON f.id = p.frame_id LEFT JOIN drives d ON d.name = f.drive "
        "WHERE r.campaign_id = ? ORDER BY r.idx, p.rank",
        (campaign_id,),
    ).fetchall()
    return [PickAudit(*r[:6], bool(r[6])) for r in rows]


# ------------------------------------------------------------------------------ frames
def labelled_in_split(store: Store, split: str) -> set[int]:
    """Frames people labelled in ``split`` (a campaign with ``use_existing_labels``)."""
    return {
        r[0]
        for r in store.conn.execute(
            "SELECT f.id FROM frames f JOIN drives d ON d.name = f.drive "
            "WHERE d.split = ? AND f.state = 'labelled'",
            (split,),
        )
    }


def frame_ids(store: Store) -> dict[str, int]:
    """Every frame's id by name (picks store ids, records carry names)."""
    return dict(store.conn.execute("SELECT name, id FROM frames").fetchall())
