"""Catalog schema and its migrations.

The schema version lives in SQLite's ``PRAGMA user_version``. Each migration is applied in
the same transaction as the version bump (SQLite DDL is transactional), so a project is
always at exactly one version. Never edit a released migration: append a new one.
``PRAGMA application_id`` says that a file is a scenesift catalog at all: to SQLite an empty
file is a valid empty database, and migrating any other database would add our tables to it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from scenesift.store.errors import StoreError

#: Label sources: human, import (labels that came with imported data), oracle (held-back
#: ground truth that only the oracle labeler reveals), or model:<fingerprint>. V7 adds
#: ``derived`` (situations read off labelled boxes) for situation labels.
SOURCE_CHECK = "source IN ('human', 'import', 'oracle') OR source LIKE 'model:%'"
SOURCE_CHECK_V7 = "source IN ('human', 'import', 'oracle', 'derived') OR source LIKE 'model:%'"

V1 = f"""
CREATE TABLE project (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE image_roots (
    id   INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE
);
CREATE TABLE drives (
    name  TEXT PRIMARY KEY,
    split TEXT NOT NULL CHECK (split IN ('train', 'val', 'test'))
);
CREATE TABLE campaigns (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    config     TEXT NOT NULL DEFAULT '{{}}',
    status     TEXT NOT NULL DEFAULT 'created',
    created_at TEXT NOT NULL
);
CREATE TABLE rounds (
    id                INTEGER PRIMARY KEY,
    campaign_id       INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    idx               INTEGER NOT NULL,
    status            TEXT NOT NULL DEFAULT 'created',
    model_fingerprint TEXT,
    metrics           TEXT NOT NULL DEFAULT '{{}}',
    created_at        TEXT NOT NULL,
    UNIQUE (campaign_id, idx)
);
CREATE TABLE frames (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    root_id        INTEGER NOT NULL REFERENCES image_roots(id),
    path           TEXT NOT NULL,
    width          INTEGER CHECK (width IS NULL OR width > 0),
    height         INTEGER CHECK (height IS NULL OR height > 0),
    drive          TEXT NOT NULL REFERENCES drives(name),
    timestamp      REAL,
    state          TEXT NOT NULL DEFAULT 'unlabelled'
                   CHECK (state IN ('unlabelled', 'selected', 'labelled')),
    selected_round INTEGER REFERENCES rounds(id),
    updated_at     TEXT NOT NULL
);
CREATE INDEX frames_drive ON frames(drive, timestamp);
CREATE INDEX frames_state ON frames(state);
CREATE TABLE situations (
    name        TEXT PRIMARY KEY,
    grp         TEXT,
    description TEXT NOT NULL DEFAULT '',
    position    INTEGER NOT NULL
);
CREATE TABLE classes (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE situation_labels (
    frame_id   INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
    situation  TEXT NOT NULL REFERENCES situations(name),
    source     TEXT NOT NULL CHECK ({SOURCE_CHECK}),
    value      INTEGER NOT NULL CHECK (value IN (0, 1)),
    confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    created_at TEXT NOT NULL,
    PRIMARY KEY (frame_id, situation, source)
) WITHOUT ROWID;
CREATE INDEX situation_labels_by_situation ON situation_labels(situation, source, value);
-- A box set records that a source labelled (or predicted) a frame's objects, so that
-- "labelled, no objects" differs from "objects not labelled".
CREATE TABLE box_sets (
    frame_id   INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
    source     TEXT NOT NULL CHECK ({SOURCE_CHECK}),
    created_at TEXT NOT NULL,
    PRIMARY KEY (frame_id, source)
) WITHOUT ROWID;
CREATE TABLE boxes (
    id          INTEGER PRIMARY KEY,
    frame_id    INTEGER NOT NULL,
    source      TEXT NOT NULL,
    category    TEXT NOT NULL REFERENCES classes(name),
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    occluded    INTEGER NOT NULL DEFAULT 0 CHECK (occluded IN (0, 1)),
    truncated   INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
    score       REAL,
    class_probs TEXT,
    attributes  TEXT NOT NULL DEFAULT '{{}}',
    FOREIGN KEY (frame_id, source) REFERENCES box_sets(frame_id, source) ON DELETE CASCADE,
    CHECK (x2 > x1 AND y2 > y1)
);
CREATE INDEX boxes_by_frame ON boxes(frame_id, source);
CREATE INDEX boxes_by_category ON boxes(category, source);
CREATE TABLE arrays (
    fingerprint TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    path        TEXT NOT NULL,
    meta        TEXT NOT NULL DEFAULT '{{}}',
    created_at  TEXT NOT NULL
);
CREATE TABLE imports (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    label_source TEXT NOT NULL,
    report      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
"""

#: Feature cache index (scenesift.features): which shard row holds a frame's
#: features under a cache spec (fingerprint of backbone, weights, preprocessing, layer).
V2 = """
CREATE TABLE features (
    spec     TEXT NOT NULL,
    frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
    shard    TEXT NOT NULL,
    row      INTEGER NOT NULL CHECK (row >= 0),
    PRIMARY KEY (spec, frame_id)
) WITHOUT ROWID;
CREATE INDEX features_by_frame ON features(frame_id);
"""

#: Active learning (scenesift.al): the frames each round picked, in rank order, with the
#: strategy score that picked them and the reviewer's verdict before export; and a per-frame
#: label version for optimistic concurrency (two labellers saving one frame: the second
#: save names the version it read and is refused if it changed).
V3 = """
CREATE TABLE picks (
    round_id INTEGER NOT NULL REFERENCES rounds(id) ON DELETE CASCADE,
    frame_id INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
    rank     INTEGER NOT NULL CHECK (rank >= 0),
    score    REAL,
    strategy TEXT NOT NULL,
    review   TEXT NOT NULL DEFAULT 'pending'
             CHECK (review IN ('pending', 'accepted', 'rejected')),
    PRIMARY KEY (round_id, frame_id)
) WITHOUT ROWID;
CREATE INDEX picks_by_frame ON picks(frame_id);
ALTER TABLE frames ADD COLUMN label_version INTEGER NOT NULL DEFAULT 0;
"""

#: Web app labelling (scenesift.web): who saved a frame's situation labels and when, one
#: row per save, keyed by the label version that save produced (so a version is never
#: produced twice, and a refused stale save can name who saved last).
V4 = """
CREATE TABLE label_saves (
    frame_id      INTEGER NOT NULL REFERENCES frames(id) ON DELETE CASCADE,
    label_version INTEGER NOT NULL CHECK (label_version > 0),
    labeller      TEXT NOT NULL,
    saved_at      TEXT NOT NULL,
    situations    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (frame_id, label_version)
) WITHOUT ROWID;
"""


# --------------------------------------------------------------------------- V5: counts
# Running counts for coverage and `scenesift info`, so that these answer in milliseconds on
# millions of frames instead of scanning every label (16 per frame) and box. Triggers keep
# them, so every writer (imports, campaigns, the web app, plain SQL) is covered; a bulk
# write (``store.counts.bulk``) pauses the triggers (a row in count_pause, inside its own
# transaction) and recounts the frames it touched instead: seconds for a million frames,
# where per-row triggers take minutes. ``source = 'truth'`` rows count each frame's truth:
# per situation (and per frame for box sets) the row of the first source present in
# human > import > oracle > derived, as ``Store.records`` reads it (``derived``, since V7,
# labels situations only; V7 recreates these triggers with it). Tables:
#   count_drive_states  (drive, state) -> frames; count_split_states (split, state) ->
#                       frames, drives with such frames
#   count_labels        (situation, source, frame state, value) -> situation labels
#   count_box_sets      (source, frame state) -> box sets
#   count_boxes         (source, category, frame state) -> frames with such boxes, boxes
#   model_writes        (model source, 'situations' | 'boxes') -> frames, latest write time
# ``count_queries()`` recomputes them from the data (the V5 backfill, bulk writes and
# ``scenesift check``).

_TRUTH = "('human', 'import', 'oracle', 'derived')"
_MODEL = "LIKE 'model:%'"


def _rank(col: str) -> str:
    return (
        f"(CASE {col} WHEN 'human' THEN 0 WHEN 'import' THEN 1 WHEN 'oracle' THEN 2 "
        "WHEN 'derived' THEN 3 END)"
    )


def _object(row: str) -> str:
    """Whether box ``row`` is an object, not an ignore region (attribute ``iscrowd``, KITTI's
    DontCare): ignore regions are no class's objects, so no box count holds them. The
    ``instr`` test spares almost every box the JSON parse."""
    return (
        f"(instr({row}.attributes, 'iscrowd') = 0 OR "
        f"coalesce(json_extract({row}.attributes, '$.iscrowd'), 0) IN (0, ''))"
    )


def _upsert(table: str, keys: str, values: str, select: str, sums: str) -> str:
    """``INSERT INTO table (keys, values) <select> ON CONFLICT (keys) DO UPDATE`` adding
    ``sums`` (the count columns); ``select`` must have a WHERE clause (SQLite's upsert)."""
    update = ", ".join(f"{c} = {c} + excluded.{c}" for c in sums.split(", "))
    if "last" in values.split(", "):
        update += ", last = max(coalesce(last, ''), coalesce(excluded.last, ''))"
    return (
        f"INSERT INTO {table} ({keys}, {values}) {select} "
        f"ON CONFLICT ({keys}) DO UPDATE SET {update};"
    )


def _trigger(name: str, event: str, when: str, *body: str) -> str:
    """A counting trigger: it does nothing while a bulk write has paused counting."""
    cond = "NOT EXISTS (SELECT 1 FROM count_pause)" + (f" AND {when}" if when else "")
    return f"CREATE TRIGGER {name} {event}\nWHEN {cond} BEGIN\n" + "\n".join(body) + "\nEND;"


def _frames_delta(drive: str, state: str, sign: int) -> str:
    """One frame of ``drive`` enters (+1) or leaves (-1) ``state``."""
    became = 1 if sign > 0 else 0  # the drive's count in this state that changes its drives
    return "\n".join([
        _upsert("count_drive_states", "drive, state", "n",
                f"SELECT {drive}, {state}, {sign} WHERE 1", "n"),
        _upsert("count_split_states", "split, state", "frames, drives",
                f"SELECT d.split, {state}, {sign}, CASE (SELECT n FROM count_drive_states "
                f"WHERE drive = {drive} AND state = {state}) WHEN {became} THEN {sign} ELSE 0 "
                f"END FROM drives d WHERE d.name = {drive}", "frames, drives"),
        f"DELETE FROM count_drive_states WHERE drive = {drive} AND state = {state} AND n = 0;",
    ])  # fmt: skip


def _better(table: str, match: str, source: str) -> str:
    """Whether a truth source better than ``source`` has a row in ``table`` matching
    ``match``: one primary-key probe for an import, two for an oracle, three for a derived
    label, none for a human."""
    probe = f"EXISTS (SELECT 1 FROM {table} o WHERE {match} AND o.source"
    return (
        f"(CASE {source} WHEN 'human' THEN 0 WHEN 'import' THEN {probe} = 'human') "
        f"WHEN 'oracle' THEN {probe} IN ('human', 'import')) "
        f"WHEN 'derived' THEN {probe} IN ('human', 'import', 'oracle')) ELSE 0 END)"
    )


def _label_better(row: str) -> str:
    """Whether a truth source better than ``row``'s labelled the same frame and situation."""
    match = f"o.frame_id = {row}.frame_id AND o.situation = {row}.situation"
    return _better("situation_labels", match, f"{row}.source")


def _label_worse_value(row: str) -> str:
    """The value of the best truth row worse than ``row`` (the one it shadows), or NULL."""
    return (
        f"(SELECT o.value FROM situation_labels o WHERE o.frame_id = {row}.frame_id "
        f"AND o.situation = {row}.situation AND o.source IN {_TRUTH} "
        f"AND {_rank('o.source')} > {_rank(f'{row}.source')} ORDER BY {_rank('o.source')} "
        "LIMIT 1)"
    )


def _label_alone(row: str) -> str:
    """Whether no other truth source labelled ``row``'s frame and situation."""
    return (
        f"NOT EXISTS (SELECT 1 FROM situation_labels o WHERE o.frame_id = {row}.frame_id "
        f"AND o.situation = {row}.situation AND o.source IN {_TRUTH} "
        f"AND o.source != {row}.source)"
    )


def _labels_delta(row: str, source: str, value: str, sign: int, where: str = "1") -> str:
    """A situation label of ``row``'s frame, in that frame's state, counted +1 or -1."""
    return _upsert("count_labels", "situation, source, state, value", "n",
                   f"SELECT {row}.situation, {source}, f.state, {value}, {sign} FROM frames f "
                   f"WHERE f.id = {row}.frame_id AND {where}", "n")  # fmt: skip


def _set_better(frame: str, source: str) -> str:
    """Whether a truth source better than ``source`` has a box set for ``frame``."""
    return _better("box_sets", f"o.frame_id = {frame}", source)


def _set_worse(frame: str, source: str) -> str:
    """The best truth box set of ``frame`` worse than ``source`` (the one it shadows)."""
    return (
        f"(SELECT o.source FROM box_sets o WHERE o.frame_id = {frame} AND o.source IN {_TRUTH} "
        f"AND {_rank('o.source')} > {_rank(source)} ORDER BY {_rank('o.source')} LIMIT 1)"
    )


def _set_delta(frame: str, set_source: str, counted_as: str, sign: int) -> str:
    """Box set (frame, set_source) and its boxes, counted as ``counted_as``, +1 or -1."""
    return "\n".join([
        _upsert("count_box_sets", "source, state", "n",
                f"SELECT {counted_as}, f.state, {sign} FROM frames f WHERE f.id = {frame} "
                f"AND {set_source} IS NOT NULL", "n"),
        _upsert("count_boxes", "source, category, state", "frames, boxes",
                f"SELECT {counted_as}, b.category, f.state, {sign}, {sign} * count(*) "
                f"FROM boxes b INDEXED BY boxes_by_frame JOIN frames f ON f.id = b.frame_id "
                f"WHERE b.frame_id = {frame} AND b.source = {set_source} AND {_object('b')} "
                "GROUP BY b.category", "frames, boxes"),
    ])  # fmt: skip


def _box_delta(row: str, counted_as: str, sign: int, where: str = "1") -> str:
    """One box of ``row``'s set, +1 or -1; its category's frame count changes when it is the
    set's only object of that category. An ignore region counts nowhere."""
    alone = (
        f"NOT EXISTS (SELECT 1 FROM boxes o INDEXED BY boxes_by_frame "
        f"WHERE o.frame_id = {row}.frame_id AND o.source = {row}.source "
        f"AND o.category = {row}.category AND o.id != {row}.id AND {_object('o')})"
    )
    return _upsert("count_boxes", "source, category, state", "frames, boxes",
                   f"SELECT {counted_as}, {row}.category, f.state, {sign} * ({alone}), {sign} "
                   f"FROM frames f WHERE f.id = {row}.frame_id AND {_object(row)} AND {where}",
                   "frames, boxes")  # fmt: skip


def count_queries(touched_only: bool = False) -> dict[str, str]:
    """Per count table, the query recounting its rows from the data (keys first, counts
    last); with ``touched_only``, of the frames in ``temp.count_touched`` alone (every
    count but count_split_states adds up over frames)."""
    f = ("temp.count_touched t CROSS JOIN frames f ON f.id = t.id" if touched_only
         else "frames f")  # fmt: skip
    best_sets = (
        f"SELECT s.frame_id, s.source, f.state FROM {f} CROSS JOIN box_sets s "
        f"ON s.frame_id = f.id WHERE s.source IN {_TRUTH} "
        f"AND NOT {_set_better('s.frame_id', 's.source')}"
    )
    queries = {
        "count_drive_states": f"SELECT f.drive, f.state, count(*) FROM {f} GROUP BY 1, 2",
        "count_split_states": (
            "SELECT d.split, f.state, count(*), count(DISTINCT f.drive) FROM frames f "
            "JOIN drives d ON d.name = f.drive GROUP BY 1, 2"
        ),
        "count_labels": (
            "WITH g AS MATERIALIZED (SELECT s.situation, s.source, f.state, s.value, "
            f"s.source IN {_TRUTH} AND NOT {_label_better('s')} AS best, count(*) AS n "
            f"FROM {f} CROSS JOIN situation_labels s ON s.frame_id = f.id "
            "GROUP BY 1, 2, 3, 4, 5) "
            "SELECT situation, source, state, value, sum(n) FROM g GROUP BY 1, 2, 3, 4 "
            "UNION ALL SELECT situation, 'truth', state, value, sum(n) FROM g WHERE best "
            "GROUP BY 1, 3, 4"
        ),
        "count_box_sets": (
            f"SELECT s.source, f.state, count(*) FROM {f} CROSS JOIN box_sets s "
            "ON s.frame_id = f.id GROUP BY 1, 2 "
            f"UNION ALL SELECT 'truth', state, count(*) FROM ({best_sets}) GROUP BY 2"
        ),
        "count_boxes": (
            f"SELECT b.source, b.category, f.state, count(DISTINCT b.frame_id), count(*) "
            f"FROM {f} CROSS JOIN boxes b INDEXED BY boxes_by_frame ON b.frame_id = f.id "
            f"WHERE {_object('b')} GROUP BY 1, 2, 3 UNION ALL SELECT 'truth', b.category, "
            f"t.state, count(DISTINCT b.frame_id), count(*) FROM ({best_sets}) t CROSS JOIN "
            "boxes b INDEXED BY boxes_by_frame ON b.frame_id = t.frame_id "
            f"AND b.source = t.source WHERE {_object('b')} GROUP BY 2, 3"
        ),
        "model_writes": (
            "SELECT s.source, 'situations', count(DISTINCT s.frame_id), max(s.created_at) "
            f"FROM {f} CROSS JOIN situation_labels s ON s.frame_id = f.id "
            f"WHERE s.source {_MODEL} GROUP BY 1 UNION ALL SELECT b.source, 'boxes', "
            f"count(*), max(b.created_at) FROM {f} CROSS JOIN box_sets b "
            f"ON b.frame_id = f.id WHERE b.source {_MODEL} GROUP BY 1"
        ),
    }
    if touched_only:
        del queries["count_split_states"]
    return queries


def _frame_moves(old: str, new: str) -> list[str]:
    """All counts of frame NEW.id move from state ``old`` to ``new`` (-1 there, +1 here)."""
    out = []
    for state, sign in ((old, -1), (new, 1)):
        out += [
            _upsert("count_labels", "situation, source, state, value", "n",
                    f"SELECT situation, source, {state}, value, {sign} FROM situation_labels "
                    "WHERE frame_id = NEW.id", "n"),
            _upsert("count_labels", "situation, source, state, value", "n",
                    f"SELECT s.situation, 'truth', {state}, s.value, {sign} FROM "
                    f"situation_labels s WHERE s.frame_id = NEW.id AND s.source IN {_TRUTH} "
                    f"AND NOT {_label_better('s')}", "n"),
            _upsert("count_box_sets", "source, state", "n",
                    f"SELECT source, {state}, {sign} FROM box_sets WHERE frame_id = NEW.id", "n"),
            _upsert("count_box_sets", "source, state", "n",
                    f"SELECT 'truth', {state}, {sign} FROM box_sets s WHERE s.frame_id = NEW.id "
                    f"AND s.source IN {_TRUTH} AND NOT {_set_better('s.frame_id', 's.source')}",
                    "n"),
            _upsert("count_boxes", "source, category, state", "frames, boxes",
                    f"SELECT source, category, {state}, {sign}, {sign} * count(*) FROM boxes b "
                    f"INDEXED BY boxes_by_frame WHERE frame_id = NEW.id AND {_object('b')} "
                    "GROUP BY source, category", "frames, boxes"),
            _upsert("count_boxes", "source, category, state", "frames, boxes",
                    f"SELECT 'truth', b.category, {state}, {sign}, {sign} * count(*) FROM boxes b "
                    "INDEXED BY boxes_by_frame JOIN box_sets s ON s.frame_id = b.frame_id "
                    f"AND s.source = b.source WHERE b.frame_id = NEW.id AND s.source IN {_TRUTH} "
                    f"AND NOT {_set_better('s.frame_id', 's.source')} AND {_object('b')} "
                    "GROUP BY b.category", "frames, boxes"),
        ]  # fmt: skip
    return out


def _fixed(table: str, columns: tuple[str, ...]) -> str:
    """Key columns the counts depend on cannot change (delete and insert instead)."""
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)
    return (
        f"CREATE TRIGGER {table}_keys_fixed BEFORE UPDATE OF {', '.join(columns)} ON {table} "
        f"WHEN {changed} BEGIN SELECT RAISE(ABORT, '{table}: {', '.join(columns)} cannot "
        "change (the counts of coverage depend on them): delete the row and insert another'); "
        "END;"
    )


_TABLES_V5 = """
CREATE TABLE count_pause (paused INTEGER NOT NULL);
CREATE TABLE count_drive_states (
    drive TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (drive, state)
) WITHOUT ROWID;
CREATE TABLE count_split_states (
    split TEXT NOT NULL, state TEXT NOT NULL, frames INTEGER NOT NULL, drives INTEGER NOT NULL,
    PRIMARY KEY (split, state)
) WITHOUT ROWID;
CREATE TABLE count_labels (
    situation TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL,
    value INTEGER NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (situation, source, state, value)
) WITHOUT ROWID;
CREATE TABLE count_box_sets (
    source TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (source, state)
) WITHOUT ROWID;
CREATE TABLE count_boxes (
    source TEXT NOT NULL, category TEXT NOT NULL, state TEXT NOT NULL,
    frames INTEGER NOT NULL, boxes INTEGER NOT NULL,
    PRIMARY KEY (source, category, state)
) WITHOUT ROWID;
CREATE TABLE model_writes (
    source TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('situations', 'boxes')),
    frames INTEGER NOT NULL, last TEXT,
    PRIMARY KEY (source, kind)
) WITHOUT ROWID;
"""

_NEW_TRUTH_LABEL = f"NEW.source IN {_TRUTH} AND NOT {_label_better('NEW')}"
_OLD_TRUTH_LABEL = f"OLD.source IN {_TRUTH} AND NOT {_label_better('OLD')}"
_NEW_TRUTH_SET = f"NEW.source IN {_TRUTH} AND NOT {_set_better('NEW.frame_id', 'NEW.source')}"
_OLD_TRUTH_SET = f"OLD.source IN {_TRUTH} AND NOT {_set_better('OLD.frame_id', 'OLD.source')}"
_OLD_SET_THERE = (
    "EXISTS (SELECT 1 FROM box_sets WHERE frame_id = OLD.frame_id AND source = OLD.source)"
)

_TRIGGERS_V5 = [
    # frames, per drive and state; a deleted frame's labels and box sets go first, while it
    # is still there to say in which state they were counted
    _trigger("frames_count_insert", "AFTER INSERT ON frames", "",
             _frames_delta("NEW.drive", "NEW.state", 1)),
    _trigger("frames_count_delete", "BEFORE DELETE ON frames", "",
             "DELETE FROM box_sets WHERE frame_id = OLD.id;",
             "DELETE FROM situation_labels WHERE frame_id = OLD.id;",
             _frames_delta("OLD.drive", "OLD.state", -1)),
    _trigger("frames_count_update", "AFTER UPDATE OF drive, state ON frames",
             "(OLD.drive IS NOT NEW.drive OR OLD.state IS NOT NEW.state)",
             _frames_delta("OLD.drive", "OLD.state", -1),
             _frames_delta("NEW.drive", "NEW.state", 1)),
    _trigger("frames_count_state", "AFTER UPDATE OF state ON frames",
             "OLD.state IS NOT NEW.state", *_frame_moves("OLD.state", "NEW.state")),
    _trigger("drives_count_split", "AFTER UPDATE OF split ON drives",
             "OLD.split IS NOT NEW.split",
             _upsert("count_split_states", "split, state", "frames, drives",
                     "SELECT OLD.split, state, -n, -1 FROM count_drive_states "
                     "WHERE drive = NEW.name", "frames, drives"),
             _upsert("count_split_states", "split, state", "frames, drives",
                     "SELECT NEW.split, state, n, 1 FROM count_drive_states "
                     "WHERE drive = NEW.name", "frames, drives")),
    # situation labels per source, and the truth: a better source's row shadows a worse one
    # (one trigger per table and event where rows arrive by the million: a trigger's call
    # costs more than the conditions inside it)
    _trigger("labels_count_insert", "AFTER INSERT ON situation_labels", "",
             _labels_delta("NEW", "NEW.source", "NEW.value", 1),
             _labels_delta("NEW", "'truth'", "NEW.value", 1,
                           f"NEW.source IN {_TRUTH} AND {_label_alone('NEW')}"),
             _labels_delta("NEW", "'truth'", _label_worse_value("NEW"), -1,
                           f"NEW.source IN {_TRUTH} AND NOT {_label_alone('NEW')} "
                           f"AND NOT {_label_better('NEW')} "
                           f"AND {_label_worse_value('NEW')} IS NOT NULL"),
             _labels_delta("NEW", "'truth'", "NEW.value", 1,
                           f"NEW.source IN {_TRUTH} AND NOT {_label_alone('NEW')} "
                           f"AND NOT {_label_better('NEW')}"),
             _upsert("model_writes", "source, kind", "frames, last",
                     "SELECT NEW.source, 'situations', NOT EXISTS (SELECT 1 FROM "
                     "situation_labels o WHERE o.frame_id = NEW.frame_id AND o.source = "
                     "NEW.source AND o.situation != NEW.situation), NEW.created_at "
                     f"WHERE NEW.source {_MODEL}", "frames")),
    _trigger("labels_count_delete", "AFTER DELETE ON situation_labels", "",
             _labels_delta("OLD", "OLD.source", "OLD.value", -1)),
    _trigger("labels_count_update", "AFTER UPDATE OF value ON situation_labels",
             "OLD.value IS NOT NEW.value",
             _labels_delta("OLD", "OLD.source", "OLD.value", -1),
             _labels_delta("NEW", "NEW.source", "NEW.value", 1)),
    _trigger("labels_truth_delete", "AFTER DELETE ON situation_labels", _OLD_TRUTH_LABEL,
             _labels_delta("OLD", "'truth'", "OLD.value", -1),
             _labels_delta("OLD", "'truth'", _label_worse_value("OLD"), 1,
                           f"{_label_worse_value('OLD')} IS NOT NULL")),
    _trigger("labels_truth_update", "AFTER UPDATE OF value ON situation_labels",
             f"OLD.value IS NOT NEW.value AND {_NEW_TRUTH_LABEL}",
             _labels_delta("OLD", "'truth'", "OLD.value", -1),
             _labels_delta("NEW", "'truth'", "NEW.value", 1)),
    _trigger("labels_model_delete", "AFTER DELETE ON situation_labels",
             f"OLD.source {_MODEL} AND NOT EXISTS (SELECT 1 FROM situation_labels o "
             "WHERE o.frame_id = OLD.frame_id AND o.source = OLD.source)",
             "UPDATE model_writes SET frames = frames - 1 "
             "WHERE source = OLD.source AND kind = 'situations';"),
    _trigger("labels_model_time", "AFTER UPDATE OF created_at ON situation_labels",
             f"NEW.source {_MODEL}",
             "UPDATE model_writes SET last = max(coalesce(last, ''), NEW.created_at) "
             "WHERE source = NEW.source AND kind = 'situations';"),
    _fixed("situation_labels", ("frame_id", "situation", "source")),
    # box sets and boxes: a set's boxes are counted through the set when it goes (before
    # the cascade removes them); a better source's set shadows a worse one
    _trigger("box_sets_count_insert", "AFTER INSERT ON box_sets", "",
             _upsert("count_box_sets", "source, state", "n",
                     "SELECT NEW.source, f.state, 1 FROM frames f WHERE f.id = NEW.frame_id",
                     "n"),
             _set_delta("NEW.frame_id", f"(CASE WHEN {_NEW_TRUTH_SET} THEN "
                        f"{_set_worse('NEW.frame_id', 'NEW.source')} END)", "'truth'", -1),
             _upsert("count_box_sets", "source, state", "n",
                     "SELECT 'truth', f.state, 1 FROM frames f WHERE f.id = NEW.frame_id "
                     f"AND {_NEW_TRUTH_SET}", "n"),
             _upsert("model_writes", "source, kind", "frames, last",
                     f"SELECT NEW.source, 'boxes', 1, NEW.created_at WHERE NEW.source {_MODEL}",
                     "frames")),
    _trigger("box_sets_count_delete", "BEFORE DELETE ON box_sets", "",
             _set_delta("OLD.frame_id", "OLD.source", "OLD.source", -1)),
    _trigger("box_sets_truth_delete", "BEFORE DELETE ON box_sets", _OLD_TRUTH_SET,
             _set_delta("OLD.frame_id", "OLD.source", "'truth'", -1),
             _set_delta("OLD.frame_id", _set_worse("OLD.frame_id", "OLD.source"), "'truth'", 1)),
    _trigger("box_sets_model_delete", "BEFORE DELETE ON box_sets", f"OLD.source {_MODEL}",
             "UPDATE model_writes SET frames = frames - 1 "
             "WHERE source = OLD.source AND kind = 'boxes';"),
    _fixed("box_sets", ("frame_id", "source")),
    _trigger("boxes_count_insert", "AFTER INSERT ON boxes", "",
             _box_delta("NEW", "NEW.source", 1),
             _box_delta("NEW", "'truth'", 1, _NEW_TRUTH_SET)),
    _trigger("boxes_count_delete", "AFTER DELETE ON boxes", _OLD_SET_THERE,
             _box_delta("OLD", "OLD.source", -1)),
    _trigger("boxes_truth_delete", "AFTER DELETE ON boxes",
             f"{_OLD_SET_THERE} AND {_OLD_TRUTH_SET}", _box_delta("OLD", "'truth'", -1)),
    _fixed("boxes", ("frame_id", "source", "category")),
    "CREATE TRIGGER boxes_ignore_fixed BEFORE UPDATE OF attributes ON boxes "
    f"WHEN {_object('OLD')} IS NOT {_object('NEW')} BEGIN SELECT RAISE(ABORT, 'boxes: "
    "iscrowd cannot change (the counts of coverage leave ignore regions out): delete the "
    "box and insert another'); END;",
]  # fmt: skip

#: (The triggers are generated from today's rules; V7 and V8 recreate them, so a catalog
#: ends with the same triggers whichever version it started from.)
V5 = _TABLES_V5 + "\n".join(_TRIGGERS_V5)


def _backfill_counts(conn: sqlite3.Connection) -> None:
    """V5 on an existing catalog: the tables and triggers, then today's counts."""
    for statement in _statements(V5):
        conn.execute(statement)
    for table, query in count_queries().items():
        conn.execute(f"INSERT INTO {table} SELECT * FROM ({query})")


#: Feature cache rows remember the image file they were computed from (size and mtime in
#: nanoseconds), so a file replaced at the same path is recomputed, not served stale. Rows
#: written before V6 have NULL: nothing is known about their file and they are trusted.
V6 = """
ALTER TABLE features ADD COLUMN image_sig TEXT;
"""


def _derived_source(conn: sqlite3.Connection) -> None:
    """V7: situation labels may come from source ``derived``, the last in the truth
    precedence. The CHECK of ``situation_labels.source`` only gains a value, which no stored
    row can violate, so the table's SQL is edited in place as SQLite documents for loosening
    constraints (no copy of millions of rows); the counting triggers are recreated with the
    new precedence. No derived row exists yet, so every count stays right."""
    old = f"CHECK ({SOURCE_CHECK})"
    (sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'situation_labels'"
    ).fetchone()
    new = f"CHECK ({SOURCE_CHECK_V7})"
    if old not in sql and new not in sql:
        raise StoreError("situation_labels: unexpected schema, cannot add the derived source")
    if old in sql:
        (schema_version,) = conn.execute("PRAGMA schema_version").fetchone()
        conn.execute("PRAGMA writable_schema = ON")
        try:
            conn.execute(
                "UPDATE sqlite_master SET sql = ? "
                "WHERE type = 'table' AND name = 'situation_labels'",
                (sql.replace(old, new),),
            )
            conn.execute(f"PRAGMA schema_version = {schema_version + 1}")
        finally:
            conn.execute("PRAGMA writable_schema = OFF")
    _recreate_triggers(conn)


def _recreate_triggers(conn: sqlite3.Connection) -> None:
    for statement in _TRIGGERS_V5:
        name = statement.split()[2]  # CREATE TRIGGER <name> ...
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute(statement)


def _ignore_regions_uncounted(conn: sqlite3.Connection) -> None:
    """V8: ignore regions (``iscrowd`` boxes, KITTI's DontCare: one per class) are no
    class's objects, yet V5-V7 counted them in ``count_boxes``, so ``info`` showed six
    phantom objects per DontCare. The triggers are recreated to skip them and the box
    counts (those alone) are recounted."""
    _recreate_triggers(conn)
    conn.execute("DELETE FROM count_boxes")
    query = count_queries()["count_boxes"]
    conn.execute(f"INSERT INTO count_boxes SELECT * FROM ({query})")


Migration = str | Callable[[sqlite3.Connection], None]

#: MIGRATIONS[i] takes a catalog from version i to version i + 1.
MIGRATIONS: list[Migration] = [
    V1, V2, V3, V4, _backfill_counts, V6, _derived_source, _ignore_regions_uncounted,
]  # fmt: skip

LATEST = len(MIGRATIONS)


#: ``PRAGMA application_id`` of every scenesift catalog: "SSFT" as a big-endian integer.
APPLICATION_ID = int.from_bytes(b"SSFT", "big")

#: Tables every catalog has had since V1: how one made before application ids is recognised.
_V1_TABLES = frozenset({
    "project", "image_roots", "drives", "campaigns", "rounds", "frames", "situations",
    "classes", "situation_labels", "box_sets", "boxes", "arrays", "imports",
})  # fmt: skip


def is_catalog(conn: sqlite3.Connection) -> bool:
    """Whether ``conn`` is a scenesift catalog: our application id, or (a catalog from before
    application ids) no id, a schema version we wrote and every V1 table. Reads only."""
    app = conn.execute("PRAGMA application_id").fetchone()[0]
    if app == APPLICATION_ID:
        return True
    if app != 0 or version(conn) < 1:
        return False
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return tables >= _V1_TABLES


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> int:
    """Bring the catalog up to the latest version, stamped with our application id (a catalog
    from before ids gets it here); return the number of migrations applied."""
    migrations = MIGRATIONS if migrations is None else migrations
    if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    current = version(conn)
    if current > len(migrations):
        raise StoreError(
            f"catalog schema version {current} is newer than this scenesift understands "
            f"({len(migrations)}); upgrade scenesift"
        )
    for target in range(current + 1, len(migrations) + 1):
        step = migrations[target - 1]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if isinstance(step, str):
                for statement in _statements(step):
                    conn.execute(statement)
            else:
                step(conn)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(migrations) - current


def _statements(script: str) -> list[str]:
    """Split a script into statements (executescript would COMMIT our transaction)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
