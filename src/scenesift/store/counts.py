"""Bulk writes and the running counts of coverage (schema V5).

Triggers keep the counts row by row, which costs an import of a million frames (16 million
situation labels) minutes. A bulk write instead pauses the triggers and recounts the frames
it touches, before and after, in a few set-based queries: the counts of those frames are
taken out, the write happens uncounted, and the recount of the same frames goes back in.
All of it inside the caller's transaction, so a failed or killed write leaves the counts
as they were, and no other writer can run in between (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from scenesift.store import schema


@contextmanager
def bulk(
    conn: sqlite3.Connection, frames: Iterable[int], drives: Iterable[str] | None = None
) -> Iterator[list[int]]:
    """Counts for a write confined to the rows of ``frames`` (their labels, box sets,
    boxes, state) plus the frames it adds, whose ids the caller appends to the yielded
    list. ``drives``: those whose frames change or are added (None: no frame changes state
    or is added). Must run inside a transaction."""
    if not conn.in_transaction:
        raise RuntimeError("store.counts.bulk needs a transaction")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS count_touched (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS count_drives (name TEXT PRIMARY KEY)")
    touched = list(frames)
    drives = None if drives is None else sorted(set(drives))
    _touch(conn, touched)
    if drives is not None:
        conn.execute("DELETE FROM temp.count_drives")
        conn.executemany("INSERT INTO temp.count_drives VALUES (?)", [(d,) for d in drives])
        _split_states(conn, -1)
    _recount(conn, -1)
    conn.execute("INSERT INTO count_pause VALUES (1)")
    added: list[int] = []
    try:
        yield added
    finally:
        conn.execute("DELETE FROM count_pause")
    _touch(conn, touched + added)
    _recount(conn, +1)
    if drives is not None:
        conn.execute("DELETE FROM count_drive_states WHERE n = 0")
        _split_states(conn, +1)
    conn.execute("DELETE FROM temp.count_touched")


def _touch(conn: sqlite3.Connection, ids: list[int]) -> None:
    conn.execute("DELETE FROM temp.count_touched")
    conn.executemany("INSERT OR IGNORE INTO temp.count_touched VALUES (?)", [(i,) for i in ids])


def _recount(conn: sqlite3.Connection, sign: int) -> None:
    """Add (+1) or take out (-1) the counts of the frames in temp.count_touched."""
    for table, query in schema.count_queries(touched_only=True).items():
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        keys = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
        values = [row[1] for row in info if not row[5]]
        sums = [v for v in values if v != "last"]
        picked = [*keys, *(f"{sign} * {v}" if v in sums else v for v in values)]
        update = [f"{v} = {v} + excluded.{v}" for v in sums]
        if "last" in values and sign > 0:
            update.append("last = max(coalesce(last, ''), coalesce(excluded.last, ''))")
        columns = ", ".join(keys + values)
        conn.execute(
            f"WITH recount ({columns}) AS ({query}) INSERT INTO {table} ({columns}) "
            f"SELECT {', '.join(picked)} FROM recount WHERE 1 "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(update)}"
        )


def _split_states(conn: sqlite3.Connection, sign: int) -> None:
    """Add or take out the (split, state) frames and drives of the drives in
    temp.count_drives, from their per-drive counts."""
    conn.execute(
        "INSERT INTO count_split_states (split, state, frames, drives) "
        f"SELECT d.split, s.state, {sign} * sum(s.n), {sign} * count(*) "
        "FROM temp.count_drives t CROSS JOIN count_drive_states s ON s.drive = t.name "
        "JOIN drives d ON d.name = s.drive WHERE s.n > 0 GROUP BY d.split, s.state "
        "ON CONFLICT (split, state) DO UPDATE SET frames = frames + excluded.frames, "
        "drives = drives + excluded.drives"
    )
