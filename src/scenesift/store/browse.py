"""The SQL behind the web app's frames: the frame browser, the frame view and label saves
(its campaign views are ``store/campaign_views.py``). Indexed, bounded, never the whole
pool in Python.

The frame browser pages with a *keyset* (the sort key of the last row shown, as an opaque
cursor), so page 1,000 costs what page 1 costs. Filters that need the round's picks start
from the picks of that round (``picks p CROSS JOIN frames f``: a round is thousands of
rows, the pool may be millions). Every browse query runs under a deadline
(:class:`TooSlow`) so a filter that would scan millions of rows answers with advice
instead of tying up the server.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from scenesift.records import Box
from scenesift.store.campaigns import REVIEWS
from scenesift.store.project import TRUTH_PRIORITY, Store, now
from scenesift.taxonomy import Taxonomy

SORTS = ("name", "timestamp", "score", "rank")
STATES = ("unlabelled", "selected", "labelled")
#: ``open``: a pick not rejected (pending or accepted), the labelling queue of a round.
REVIEW_FILTERS = (*REVIEWS, "open")
VALUES = ("1", "0", "missing")

_TRUTH_IN = "('" + "', '".join(TRUTH_PRIORITY) + "')"
_TRUTH_RANK = "CASE {col} WHEN 'human' THEN 0 WHEN 'import' THEN 1 WHEN 'oracle' THEN 2 ELSE 3 END"
_NO_SCORE = -1e308  # picks without a score sort last


class TooSlow(Exception):
    """A browse query ran past its deadline."""


class BadCursor(ValueError):
    """A pagination cursor that this app did not make (or for another sort)."""


@dataclass(frozen=True)
class Filters:
    """What the frame browser (and a labelling queue) shows, and in which order."""

    situation: str | None = None  # truth filter: situation name ...
    value: str = "1"  # ... with this truth value: "1", "0" or "missing"
    predicted: str | None = None  # latest model's score for this situation ...
    min_score: float = 0.5  # ... at least this
    state: str | None = None
    round: int | None = None  # picked in this round (rounds.id)
    score_min: float | None = None  # the pick's (uncertainty) score range
    score_max: float | None = None
    review: str | None = None  # the pick's review verdict, or "open"
    drive: str | None = None
    sort: str = "name"

    @property
    def uses_picks(self) -> bool:
        return (
            self.round is not None
            or self.score_min is not None
            or self.score_max is not None
            or self.review is not None
            or self.sort in ("score", "rank")
        )

    def items(self) -> list[tuple[str, str]]:
        """Query-string pairs of the non-default fields (to rebuild links)."""
        out = []
        for name, default in _DEFAULTS.items():
            value = getattr(self, name)
            if value is not None and value != default:
                out.append((name, _fmt(value)))
        if self.situation and ("value", "1") not in out:
            out.append(("value", self.value))
        if self.predicted and not any(k == "min_score" for k, _ in out):
            out.append(("min_score", _fmt(self.min_score)))
        return out


_DEFAULTS = {
    "situation": None,
    "value": "1",
    "predicted": None,
    "min_score": 0.5,
    "state": None,
    "round": None,
    "score_min": None,
    "score_max": None,
    "review": None,
    "drive": None,
    "sort": "name",
}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class FrameRow:
    id: int
    name: str
    drive: str
    timestamp: float | None
    state: str
    score: float | None
    rank: int | None
    review: str | None
    key: tuple = field(repr=False, default=())


@dataclass
class Page:
    rows: list[FrameRow]
    next: str | None  # cursor for ``after``
    prev: str | None  # cursor for ``before``
    round_id: int | None  # the round whose picks were used, if any
    note: str | None = None  # why nothing can match (no round, no model)


# ------------------------------------------------------------------------------ cursors
def encode_cursor(sort: str, key: Sequence) -> str:
    raw = json.dumps([sort, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> tuple:
    try:
        if len(cursor) > 2000:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise BadCursor(f"bad page cursor ({e})") from None
    if not isinstance(data, list) or not data or data[0] != sort:
        raise BadCursor("page cursor made for another sort order; start from the first page")
    key = tuple(data[1:])
    kinds = {
        "name": (str,),
        "timestamp": (str, (float, int, type(None)), int),
        "score": ((float, int), int),
        "rank": (int, int),
    }[sort]
    if len(key) != len(kinds) or not all(
        isinstance(v, t) and not isinstance(v, bool) for v, t in zip(key, kinds, strict=True)
    ):
        raise BadCursor("malformed page cursor")
    if any(isinstance(v, float) and not math.isfinite(v) for v in key):
        raise BadCursor("malformed page cursor")
    if any(isinstance(v, int) and abs(v) > 2**63 - 1 for v in key):
        raise BadCursor("malformed page cursor")
    return key


# ------------------------------------------------------------------------------ deadline
@contextmanager
def deadline(conn: sqlite3.Connection, seconds: float) -> Iterator[None]:
    """Interrupt queries on ``conn`` that run longer than ``seconds`` (raises TooSlow)."""
    stop = time.monotonic() + seconds
    conn.set_progress_handler(lambda: time.monotonic() > stop, 2000)
    try:
        yield
    except sqlite3.OperationalError as e:
        if "interrupt" in str(e):
            raise TooSlow(str(e)) from None
        raise
    finally:
        conn.set_progress_handler(None, 0)


# ------------------------------------------------------------------------------ browse
_SELECT = "f.id, f.name, f.drive, f.timestamp, f.state"
_KEYS = {
    "name": ["f.name"],
    "timestamp": ["f.drive", "f.timestamp", "f.id"],
    "score": [f"-coalesce(p.score, {_NO_SCORE})", "f.id"],
    "rank": ["p.rank", "f.id"],
}


#: Below this many matching index entries a filter drives the query (look the few rows
#: up, then sort them); above it the query walks the sort order's index and filters.
SELECTIVE = 5000


def _few(conn: sqlite3.Connection, sql: str, args: list) -> bool:
    """Whether ``sql`` (a covering-index lookup) has fewer than SELECTIVE rows: at most
    SELECTIVE index entries read. The catalog has no planner statistics (no ANALYZE), so
    SQLite would otherwise assume every equality filter is selective and sort a million
    rows for ``state = 'unlabelled'``."""
    n = conn.execute(f"SELECT count(*) FROM ({sql} LIMIT {SELECTIVE})", args).fetchone()[0]
    return n < SELECTIVE


def _base(
    conn: sqlite3.Connection, f: Filters, model_source: str | None, round_id: int | None
) -> tuple[str, list[str], list]:
    """(FROM clause, WHERE terms, args) for the filters; the select list is the caller's."""
    where: list[str] = []
    args: list = []
    if f.uses_picks:
        frm = "picks p CROSS JOIN frames f"
        where += ["p.round_id = ?", "f.id = p.frame_id"]
        args.append(round_id)
        if f.score_min is not None:
            where.append("p.score >= ?")
            args.append(f.score_min)
        if f.score_max is not None:
            where.append("p.score <= ?")
            args.append(f.score_max)
        if f.review == "open":
            where.append("p.review != 'rejected'")
        elif f.review is not None:
            where.append("p.review = ?")
            args.append(f.review)
    else:
        frm = "frames f"
    if f.state is not None:
        few = f.uses_picks or _few(conn, "SELECT 1 FROM frames WHERE state = ?", [f.state])
        where.append("f.state = ?" if few else "+f.state = ?")  # +: do not use its index
        args.append(f.state)
    if f.drive is not None:
        where.append("f.drive = ?")
        args.append(f.drive)
    if f.situation is not None:
        if f.value == "missing":
            where.append(
                "NOT EXISTS (SELECT 1 FROM situation_labels sl WHERE sl.frame_id = f.id "
                f"AND sl.situation = ? AND sl.source IN {_TRUTH_IN})"
            )
            args.append(f.situation)
        else:
            where.append(
                "(SELECT sl.value FROM situation_labels sl WHERE sl.frame_id = f.id AND "
                f"sl.situation = ? AND sl.source IN {_TRUTH_IN} "
                f"ORDER BY {_TRUTH_RANK.format(col='sl.source')} LIMIT 1) = ?"
            )
            args += [f.situation, int(f.value)]
            candidates = (
                "SELECT frame_id FROM situation_labels WHERE situation = ? "
                f"AND source IN {_TRUTH_IN} AND value = ?"
            )
            if not f.uses_picks and _few(conn, candidates, [f.situation, int(f.value)]):
                where.append(f"f.id IN ({candidates})")  # rare: start from these frames
                args += [f.situation, int(f.value)]
    if f.predicted is not None:
        where.append(
            "EXISTS (SELECT 1 FROM situation_labels sp WHERE sp.frame_id = f.id AND "
            "sp.situation = ? AND sp.source = ? AND sp.confidence >= ?)"
        )
        args += [f.predicted, model_source, f.min_score]
    return frm, where, args


def _select(f: Filters) -> str:
    picks = "p.score, p.rank, p.review" if f.uses_picks else "NULL, NULL, NULL"
    return f"{_SELECT}, {picks}, {', '.join(_KEYS[f.sort])}"


def _keyset(sort: str, key: tuple, forward: bool) -> tuple[str, list]:
    """The WHERE term for rows after (forward) or before ``key`` in the sort order."""
    op = ">" if forward else "<"
    if sort == "name":
        return f"f.name {op} ?", [key[0]]
    if sort == "timestamp":
        drive, ts, fid = key
        # NULL timestamps sort first within a drive; row values compare NULL as unknown.
        if ts is None:
            if forward:
                return (
                    "(f.drive > ? OR (f.drive = ? AND (f.timestamp IS NOT NULL OR f.id > ?)))",
                    [drive, drive, fid],
                )
            return (
                "(f.drive < ? OR (f.drive = ? AND f.timestamp IS NULL AND f.id < ?))",
                [drive, drive, fid],
            )
        term = f"(f.drive, f.timestamp, f.id) {op} (?, ?, ?)"
        if forward:
            return term, [drive, ts, fid]
        return f"({term} OR (f.drive = ? AND f.timestamp IS NULL))", [drive, ts, fid, drive]
    cols = ", ".join(_KEYS[sort])
    return f"({cols}) {op} (?, ?)", list(key)


def _order(sort: str, forward: bool) -> str:
    direction = "" if forward else " DESC"
    return ", ".join(k + direction for k in _KEYS[sort])


def _row(r: Sequence) -> FrameRow:
    return FrameRow(*r[:8], key=tuple(r[8:]))


def browse(
    conn: sqlite3.Connection,
    f: Filters,
    *,
    model_source: str | None,
    latest_round: int | None,
    after: str | None = None,
    before: str | None = None,
    limit: int = 60,
    seconds: float = 3.0,
) -> Page:
    """One page of frames matching ``f``. Raises BadCursor, TooSlow."""
    round_id = f.round if f.round is not None else latest_round
    if f.uses_picks and round_id is None:
        return Page([], None, None, None, "no active-learning round yet, so no picks to show")
    if f.predicted is not None and model_source is None:
        return Page([], None, None, None, "no model has predicted situations yet")
    frm, where, args = _base(conn, f, model_source, round_id)
    forward = before is None
    cursor = after if forward else before
    if cursor is not None:
        term, more = _keyset(f.sort, decode_cursor(f.sort, cursor), forward)
        where.append(term)
        args += more
    sql = f"SELECT {_select(f)} FROM {frm}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {_order(f.sort, forward)} LIMIT ?"
    args.append(limit + 1)
    with deadline(conn, seconds):
        rows = [_row(r) for r in conn.execute(sql, args)]
    more = len(rows) > limit
    rows = rows[:limit]
    if not forward:
        rows.reverse()
    has_next = more if forward else True
    has_prev = (cursor is not None) if forward else more
    return Page(
        rows,
        encode_cursor(f.sort, rows[-1].key) if rows and has_next else None,
        encode_cursor(f.sort, rows[0].key) if rows and has_prev else None,
        round_id if f.uses_picks else None,
    )


def count(
    conn: sqlite3.Connection,
    f: Filters,
    *,
    model_source: str | None,
    latest_round: int | None,
    cap: int = 10_000,
    seconds: float = 0.25,
) -> int | None:
    """How many frames match, counting at most ``cap`` (None: too slow to count)."""
    round_id = f.round if f.round is not None else latest_round
    if (f.uses_picks and round_id is None) or (f.predicted is not None and model_source is None):
        return 0
    frm, where, args = _base(conn, f, model_source, round_id)
    sql = f"SELECT 1 FROM {frm}" + (" WHERE " + " AND ".join(where) if where else "")
    try:
        with deadline(conn, seconds):
            return conn.execute(f"SELECT count(*) FROM ({sql} LIMIT ?)", [*args, cap]).fetchone()[0]
    except TooSlow:
        return None


def neighbour(
    conn: sqlite3.Connection,
    f: Filters,
    frame_id: int,
    forward: bool,
    *,
    model_source: str | None,
    latest_round: int | None,
) -> int | None:
    """The frame after (or before) ``frame_id`` in the queue that ``f`` describes; when
    the frame is not in that queue, the queue's first frame (forward) or None."""
    round_id = f.round if f.round is not None else latest_round
    if f.uses_picks and round_id is None:
        return None
    frm = "picks p CROSS JOIN frames f" if f.uses_picks else "frames f"
    where = "f.id = ?" + (" AND p.round_id = ? AND p.frame_id = f.id" if f.uses_picks else "")
    args = [frame_id] + ([round_id] if f.uses_picks else [])
    row = conn.execute(f"SELECT {_select(f)} FROM {frm} WHERE {where}", args).fetchone()
    try:
        if row is None:
            page = browse(conn, f, model_source=model_source, latest_round=latest_round, limit=1)
            return page.rows[0].id if forward and page.rows else None
        cursor = encode_cursor(f.sort, _row(row).key)
        page = browse(
            conn,
            f,
            model_source=model_source,
            latest_round=latest_round,
            after=cursor if forward else None,
            before=None if forward else cursor,
            limit=1,
        )
    except TooSlow:
        return None
    return page.rows[0].id if page.rows else None


def drive_neighbours(conn: sqlite3.Connection, frame_id: int) -> tuple[int | None, int | None]:
    """The previous and next frame of the same drive, by timestamp (index frames_drive)."""
    f = Filters(sort="timestamp")
    row = conn.execute("SELECT drive FROM frames WHERE id = ?", (frame_id,)).fetchone()
    if row is None:
        return None, None
    f = replace(f, drive=row[0])
    prev = neighbour(conn, f, frame_id, False, model_source=None, latest_round=None)
    nxt = neighbour(conn, f, frame_id, True, model_source=None, latest_round=None)
    return prev, nxt


# ------------------------------------------------------------------------------ one frame
@dataclass(frozen=True)
class FrameInfo:
    id: int
    name: str
    path: str
    root: str
    root_id: int
    drive: str
    timestamp: float | None
    width: int | None
    height: int | None
    state: str
    selected_round: int | None
    label_version: int
    split: str


def frame(conn: sqlite3.Connection, frame_id: int) -> FrameInfo | None:
    row = conn.execute(
        "SELECT f.id, f.name, f.path, r.path, f.root_id, f.drive, f.timestamp, f.width, "
        "f.height, f.state, f.selected_round, f.label_version, d.split FROM frames f "
        "JOIN image_roots r ON r.id = f.root_id JOIN drives d ON d.name = f.drive "
        "WHERE f.id = ?",
        (frame_id,),
    ).fetchone()
    return FrameInfo(*row) if row else None


def image_roots(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT path FROM image_roots ORDER BY id")]


@dataclass(frozen=True)
class SituationRow:
    name: str
    group: str | None
    description: str
    truth: bool | None  # None: missing
    source: str | None  # the source the truth comes from
    human: bool | None  # the human label, if any
    score: float | None  # the latest model's score
    predicted: bool | None  # the latest model's thresholded value


def situations(
    conn: sqlite3.Connection, frame_id: int, taxonomy: Taxonomy, model_source: str | None
) -> list[SituationRow]:
    labels: dict[str, dict[str, tuple[int, float | None]]] = {}
    for sit, src, value, conf in conn.execute(
        "SELECT situation, source, value, confidence FROM situation_labels WHERE frame_id = ?",
        (frame_id,),
    ):
        labels.setdefault(sit, {})[src] = (value, conf)
    out = []
    for s in taxonomy.situations:
        by_source = labels.get(s.name, {})
        truth_src = next((src for src in TRUTH_PRIORITY if src in by_source), None)
        model = by_source.get(model_source) if model_source else None
        out.append(
            SituationRow(
                s.name,
                s.group,
                s.description,
                bool(by_source[truth_src][0]) if truth_src else None,
                truth_src,
                bool(by_source["human"][0]) if "human" in by_source else None,
                model[1] if model else None,
                bool(model[0]) if model else None,
            )
        )
    return out


@dataclass(frozen=True)
class FrameBoxes:
    truth_source: str | None
    truth: list[Box] | None  # None: the frame's objects were never labelled
    model_source: str | None
    predicted: list[Box]
    #: The truth's ignore regions (``iscrowd`` boxes, KITTI's DontCare), one per area: a
    #: DontCare is stored once per class, but it is one area where nobody labelled objects.
    ignore: list[Box] = field(default_factory=list)


def _boxes(conn: sqlite3.Connection, frame_id: int, source: str) -> list[Box]:
    return [
        Box(cat, x1, y1, x2, y2, bool(occ), bool(tr), score,
            attributes={"iscrowd": True} if crowd else {})
        for cat, x1, y1, x2, y2, occ, tr, score, crowd in conn.execute(
            "SELECT category, x1, y1, x2, y2, occluded, truncated, score, "
            "coalesce(json_extract(attributes, '$.iscrowd'), 0) NOT IN (0, '') FROM boxes "
            "WHERE frame_id = ? AND source = ? ORDER BY id",
            (frame_id, source),
        )
    ]  # fmt: skip


def boxes(conn: sqlite3.Connection, frame_id: int) -> FrameBoxes:
    """The frame's truth objects and ignore regions apart, and its latest model's boxes."""
    sets = conn.execute(
        "SELECT source, created_at FROM box_sets WHERE frame_id = ?", (frame_id,)
    ).fetchall()
    have = {s for s, _ in sets}
    truth_src = next((s for s in TRUTH_PRIORITY if s in have), None)
    models = sorted((t, s) for s, t in sets if s.startswith("model:"))
    model_src = models[-1][1] if models else None
    truth = _boxes(conn, frame_id, truth_src) if truth_src else None
    areas = {(b.x1, b.y1, b.x2, b.y2): b for b in truth or () if b.attributes}
    return FrameBoxes(
        truth_src,
        None if truth is None else [b for b in truth if not b.attributes],
        model_src,
        _boxes(conn, frame_id, model_src) if model_src else [],
        list(areas.values()),
    )


# ------------------------------------------------------------------------------ label saves
@dataclass(frozen=True)
class LabelSave:
    labeller: str
    saved_at: str
    label_version: int


def last_save(conn: sqlite3.Connection, frame_id: int) -> LabelSave | None:
    row = conn.execute(
        "SELECT labeller, saved_at, label_version FROM label_saves WHERE frame_id = ? "
        "ORDER BY label_version DESC LIMIT 1",
        (frame_id,),
    ).fetchone()
    return LabelSave(*row) if row else None


class UnknownFrame(LookupError):
    """No frame with this id in the project."""


class StaleVersion(Exception):
    """The label version a save names is not the frame's: someone saved after the page read
    it, or (a version ahead of the catalog's) the catalog changed under the page."""

    def __init__(self, frame_id: int, read: int, current: int, last: LabelSave | None) -> None:
        super().__init__(frame_id, read, current)
        self.frame_id, self.read, self.current, self.last = frame_id, read, current, last

    def message(self) -> str:
        if self.read > self.current:
            return (
                f"your page names label version {self.read} of frame {self.frame_id}, but "
                f"the catalog has only version {self.current} (was it restored from a backup "
                "or replaced since the page was opened?); your labels were NOT saved: "
                "reload the frame to see its current labels, then save again"
            )
        who = (
            f" by {self.last.labeller} at {self.last.saved_at}"
            if self.last and self.last.label_version == self.current
            else ""
        )
        return (
            f"frame {self.frame_id} was saved{who} after you opened it (you read version "
            f"{self.read}, it is now version {self.current}); your labels were NOT saved: "
            "reload the frame to see the current labels, then save again"
        )


def save_situation_labels(
    store: Store, frame_id: int, read_version: int, labeller: str, values: dict[str, bool]
) -> LabelSave:
    """Replace the frame's ``human`` situation labels with ``values`` (already checked
    against the taxonomy), mark it labelled and record the save, in one transaction whose
    first statement takes the version the page read (optimistic concurrency: of two
    labellers the second gets StaleVersion). Raises UnknownFrame, StaleVersion."""
    stamp = now()
    with store.transaction() as c:
        cur = c.execute(
            "UPDATE frames SET label_version = label_version + 1, state = 'labelled', "
            "updated_at = ? WHERE id = ? AND label_version = ?",
            (stamp, frame_id, read_version),
        )
        if cur.rowcount != 1:
            row = c.execute("SELECT label_version FROM frames WHERE id = ?", (frame_id,)).fetchone()
            if row is None:
                raise UnknownFrame(frame_id)
            raise StaleVersion(frame_id, read_version, row[0], last_save(c, frame_id))
        version = read_version + 1
        c.execute(
            "DELETE FROM situation_labels WHERE frame_id = ? AND source = 'human'", (frame_id,)
        )
        c.executemany(
            "INSERT INTO situation_labels (frame_id, situation, source, value, confidence, "
            "created_at) VALUES (?, ?, 'human', ?, NULL, ?)",
            [(frame_id, name, int(v), stamp) for name, v in values.items()],
        )
        c.execute(
            "INSERT INTO label_saves (frame_id, label_version, labeller, saved_at, situations) "
            "VALUES (?, ?, ?, ?, ?)",
            (frame_id, version, labeller, stamp, json.dumps(values, sort_keys=True)),
        )
    return LabelSave(labeller, stamp, version)


# ------------------------------------------------------------------------------ busy
def is_busy(error: sqlite3.OperationalError) -> bool:
    """Whether a statement gave up waiting for another connection's write lock (an import
    holds it for seconds): worth retrying, unlike every other OperationalError."""
    message = str(error).lower()
    return "database is locked" in message or "database is busy" in message
