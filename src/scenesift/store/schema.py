"""Catalog schema and its migrations.

The schema version lives in SQLite's ``PRAGMA user_version``. Each migration is applied in
the same transaction as the version bump (SQLite DDL is transactional), so a project is
always at exactly one version. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from scenesift.store.errors import StoreError

#: Label sources: human, import (labels that came with imported data), oracle (held-back
#: ground truth that only the simulated labeller reveals), or model:<fingerprint>.
SOURCE_CHECK = "source IN ('human', 'import', 'oracle') OR source LIKE 'model:%'"

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

#: Feature cache index (scenesift.models.features): which shard row holds a frame's
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

Migration = str | Callable[[sqlite3.Connection], None]

#: MIGRATIONS[i] takes a catalog from version i to version i + 1.
MIGRATIONS: list[Migration] = [V1, V2, V3, V4]

LATEST = len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> int:
    """Bring the catalog up to the latest version; return the number of migrations applied."""
    migrations = MIGRATIONS if migrations is None else migrations
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
