"""The project store: one folder holding the SQLite catalog and the array shards.

Every multi-row write happens in one ``BEGIN IMMEDIATE`` transaction, so an import that
fails (or is killed) leaves the catalog exactly as it was, and re-importing the same data is
idempotent (frames are keyed by name, labels by (frame, situation, source), boxes replaced
per (frame, source)).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from scenesift.crashpoints import crashpoint
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.store import counts, schema
from scenesift.store.arrays import ArrayStore
from scenesift.store.errors import StoreError
from scenesift.store.splits import assign_splits
from scenesift.taxonomy import Situation, Taxonomy, default_taxonomy

CATALOG = "catalog.sqlite"
ARRAYS = "arrays"

#: Which source counts as a frame's labels when several exist: a person beats an import,
#: an import beats the simulated oracle.
TRUTH_PRIORITY = ("human", "import", "oracle", "derived")
#: Sources an import may write (``derived`` is written by ``write_derived_situations``).
LABEL_SOURCES = frozenset(TRUTH_PRIORITY) - {"derived"}

#: Called with the number of frames written so far (a progress bar's advance).
ProgressCallback = Callable[[int], None]

_UPSERT_SITUATION_LABEL = (
    "INSERT INTO situation_labels (frame_id, situation, source, value, confidence, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (frame_id, situation, source) DO UPDATE "
    "SET value = excluded.value, confidence = excluded.confidence, "
    "created_at = excluded.created_at"
)
_INSERT_BOX = (
    "INSERT INTO boxes (frame_id, source, category, x1, y1, x2, y2, occluded, truncated, "
    "score, class_probs, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _replace_box_sets(
    c: sqlite3.Connection, sets: list[tuple[int, str]], box_rows: list[tuple], stamp: str
) -> None:
    """Replace whole box sets: a source's boxes for a frame are always written together."""
    c.executemany("DELETE FROM box_sets WHERE frame_id = ? AND source = ?", sets)
    c.executemany(
        "INSERT INTO box_sets (frame_id, source, created_at) VALUES (?, ?, ?)",
        [(fid, src, stamp) for fid, src in sets],
    )
    c.executemany(_INSERT_BOX, box_rows)


#: SQLite's result codes for a damaged file (``database disk image is malformed``) and for
#: one that is no database (``file is not a database``).
_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def _damaged(path: Path, e: sqlite3.DatabaseError, schema_read: bool = True) -> Exception:
    """A damaged catalog as a StoreError naming it and what to run; other errors as they are.
    ``schema_read``: whether SQLite could read the schema (else nothing, not even
    ``scenesift check``, can work with the file)."""
    code = getattr(e, "sqlite_errorcode", 0) & 0xFF
    if code not in _DAMAGED:
        return e
    if code == sqlite3.SQLITE_NOTADB:
        return StoreError(
            f"{path} is not a scenesift catalog, or its first page is damaged (SQLite: {e}); "
            "restore the project from a backup"
        )
    if not schema_read:
        return StoreError(
            f"{path}: the catalog is damaged, its schema unreadable (SQLite: {e}); restore "
            "the project from a backup"
        )
    return StoreError(
        f"{path}: the catalog is damaged (SQLite: {e}); `scenesift check -p {path.parent}` "
        "shows what is broken; restore the project from a backup"
    )


def _naming_damage(method: Callable) -> Callable:
    """``method`` of a cursor, raising a damaged catalog as a StoreError naming the file."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise _damaged(self.connection.path, e) from e

    return wrapped


class _Cursor(sqlite3.Cursor):
    """Cursor whose statements and fetches report a damaged catalog by its file name."""

    execute = _naming_damage(sqlite3.Cursor.execute)
    executemany = _naming_damage(sqlite3.Cursor.executemany)
    fetchone = _naming_damage(sqlite3.Cursor.fetchone)
    fetchmany = _naming_damage(sqlite3.Cursor.fetchmany)
    fetchall = _naming_damage(sqlite3.Cursor.fetchall)


class _Catalog(sqlite3.Connection):
    """The catalog connection: a damaged file is a StoreError naming it, not a traceback
    from deep inside whatever command met the bad page first. (Rows read by iterating a
    cursor are not checked: that is per row, on hot paths.)"""

    path: Path

    def execute(self, sql: str, parameters=(), /) -> _Cursor:
        return self.cursor(_Cursor).execute(sql, parameters)

    def executemany(self, sql: str, seq, /) -> _Cursor:
        return self.cursor(_Cursor).executemany(sql, seq)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _chunks(seq: Sequence, size: int = 900) -> Iterator[Sequence]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class Store:
    """A scenesift project. Open with :meth:`open`, create with :meth:`init`."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = Path(root)
        self.conn = conn
        self.arrays = ArrayStore(self.root / ARRAYS, self)
        self._depth = 0

    # ----------------------------------------------------------------- lifecycle
    @staticmethod
    def _connect(
        path: Path, busy_timeout: float = 30.0, any_thread: bool = False, new: bool = False
    ) -> sqlite3.Connection:
        """Open the catalog; an existing file must be one (checked before anything is
        written to it: an empty or foreign file is refused unchanged)."""
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=busy_timeout, check_same_thread=not any_thread,
            factory=_Catalog,
        )  # fmt: skip
        conn.path = Path(path)
        try:
            try:  # the first statement reads the schema
                ours = new or schema.is_catalog(conn)
            except StoreError as e:
                if isinstance(e.__cause__, sqlite3.DatabaseError):
                    raise _damaged(conn.path, e.__cause__, schema_read=False) from e.__cause__
                raise
            if not ours:
                raise StoreError(
                    f"{path} is not a scenesift catalog (it is empty or another program's "
                    "SQLite database); it was left as it is"
                )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @classmethod
    def init(
        cls,
        root: Path,
        taxonomy: Taxonomy | None = None,
        split_fractions: Sequence[float] = (0.7, 0.1, 0.2),
        seed: int = 0,
    ) -> Store:
        """Create a project in ``root`` (which may exist but must not be a project yet)."""
        root = Path(root)
        if (root / CATALOG).exists():
            raise StoreError(f"{root} is already a scenesift project")
        if len(split_fractions) != 3 or min(split_fractions) < 0 or sum(split_fractions) <= 0:
            raise StoreError(f"split fractions must be 3 non-negative numbers: {split_fractions}")
        taxonomy = taxonomy or default_taxonomy()
        root.mkdir(parents=True, exist_ok=True)
        (root / ARRAYS).mkdir(exist_ok=True)
        tmp = root / (CATALOG + ".init")
        tmp.unlink(missing_ok=True)
        conn = cls._connect(tmp, new=True)
        try:
            schema.migrate(conn)
            store = cls(root, conn)
            with store.transaction() as c:
                settings = {
                    "created_at": now(),
                    "split_fractions": json.dumps(list(split_fractions)),
                    "split_seed": str(seed),
                }
                c.executemany("INSERT INTO project VALUES (?, ?)", settings.items())
                store._write_taxonomy(c, taxonomy)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            # Rename last: a crash during init leaves no half-made project behind.
            tmp.rename(root / CATALOG)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(str(tmp) + suffix).unlink(missing_ok=True)
        return cls.open(root)

    @classmethod
    def open(cls, root: Path, *, busy_timeout: float = 30.0, any_thread: bool = False) -> Store:
        """``busy_timeout``: seconds a write waits for another connection's write lock before
        failing with "database is locked". ``any_thread``: the connection may be used from
        another thread than this one (one at a time), as a web request's dependencies are."""
        root = Path(root)
        path = root / CATALOG
        if not path.exists():
            raise StoreError(
                f"{root} is not a scenesift project (no {CATALOG}); create one with "
                f"`scenesift init {root}`"
            )
        conn = cls._connect(path, busy_timeout, any_thread)
        schema.migrate(conn)
        (root / ARRAYS).mkdir(exist_ok=True)
        return cls(root, conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; nested calls join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            crashpoint("commit")
            self.conn.execute("COMMIT")
            crashpoint("committed")
        finally:
            self._depth = 0

    # ----------------------------------------------------------------- settings
    def setting(self, key: str) -> str:
        row = self.conn.execute("SELECT value FROM project WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"project setting {key!r} is missing")
        return row[0]

    @property
    def split_fractions(self) -> tuple[float, float, float]:
        a, b, c = json.loads(self.setting("split_fractions"))
        return (a, b, c)

    @property
    def taxonomy(self) -> Taxonomy:
        rows = self.conn.execute(
            "SELECT name, grp, description FROM situations ORDER BY position"
        ).fetchall()
        classes = [r[0] for r in self.conn.execute("SELECT name FROM classes ORDER BY position")]
        return Taxonomy([Situation(n, g, d) for n, g, d in rows], classes)

    @staticmethod
    def _write_taxonomy(conn: sqlite3.Connection, taxonomy: Taxonomy) -> None:
        conn.executemany(
            "INSERT INTO situations (name, grp, description, position) VALUES (?, ?, ?, ?)",
            [(s.name, s.group, s.description, i) for i, s in enumerate(taxonomy.situations)],
        )
        conn.executemany(
            "INSERT INTO classes (name, position) VALUES (?, ?)",
            [(c, i) for i, c in enumerate(taxonomy.classes)],
        )

    # ----------------------------------------------------------------- writing
    def ingest(
        self,
        batch: ImportBatch,
        label_source: str = "import",
        progress: ProgressCallback | None = None,
        labels_only: bool = False,
    ) -> ImportReport:
        """Write a parsed batch in one transaction and return its report.

        ``label_source`` is ``import`` (labels that arrive with data: frames become
        labelled), ``human`` (a finished labelling round trip) or ``oracle`` (ground truth
        held back for simulated labelling: frames stay unlabelled until revealed).
        With ``labels_only`` (a labelling round trip) every frame must already be in the
        project and only its labels are written; its path and drive are left alone.
        A frame's ``split``, when given, is its drive's (a new drive gets it, a known drive
        must already have it). ``imports`` records each import once: a re-import of the
        same data, right after it, adds no row.
        """
        if label_source not in LABEL_SOURCES:
            raise StoreError(f"label source must be one of {sorted(LABEL_SOURCES)}")
        taxonomy = self.taxonomy
        self._validate(batch, taxonomy)
        stamp = now()
        frames = batch.frames
        digest = _digest(frames, labels_only)
        with self.transaction() as c:
            names = [f.name for f in frames]
            if labels_only:
                ids = self._existing_ids(c, names, batch.report.source)
                known, drives = list(ids.values()), self._drives_of(c, list(ids.values()))
            else:
                known = list(self._ids(c, names).values())
                drives = {f.drive for f in frames}
            # counted in bulk: the triggers' row-by-row counting would take minutes here
            with counts.bulk(c, known, drives) as added:
                if not labels_only:
                    root_id = self._root_id(c, batch.image_root)
                    self._add_drives(c, frames)
                    ids = self._upsert_frames(c, frames, root_id, stamp)
                    added.extend(ids.values())
                if label_source != "oracle":
                    c.executemany(
                        "UPDATE frames SET state = 'labelled', updated_at = ? WHERE id = ?",
                        [
                            (stamp, ids[rec.name])
                            for rec in frames
                            if rec.situations or rec.boxes is not None
                        ],
                    )
                for chunk in _chunks(frames, 10_000):  # rows of 10k frames in memory at once
                    sit_rows, box_rows, sets = [], [], []
                    for rec in chunk:
                        fid = ids[rec.name]
                        values = taxonomy.complete_groups(rec.situations)
                        for sit, value in values.items():
                            sit_rows.append((fid, sit, label_source, int(bool(value)), None, stamp))
                        if rec.boxes is not None:
                            sets.append((fid, label_source))
                            box_rows.extend(
                                _box_row(fid, label_source, b, rec.name) for b in rec.boxes
                            )
                    c.executemany(_UPSERT_SITUATION_LABEL, sit_rows)
                    _replace_box_sets(c, sets, box_rows, stamp)
            last = c.execute(
                "SELECT source, label_source, json_extract(report, '$.digest') FROM imports "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
            if last != (batch.report.source, label_source, digest):
                report = {**asdict(batch.report), "digest": digest}
                c.execute(
                    "INSERT INTO imports (source, label_source, report, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (batch.report.source, label_source, json.dumps(report), stamp),
                )
            if progress:
                progress(len(frames))
        return batch.report

    @staticmethod
    def _validate(batch: ImportBatch, tax: Taxonomy) -> None:
        """Reject a batch that names situations or classes outside the project's taxonomy."""
        known_classes = set(tax.classes)
        seen: set[str] = set()
        for rec in batch.frames:
            if rec.name in seen:
                raise StoreError(f"frame {rec.name!r} appears twice in {batch.report.source}")
            seen.add(rec.name)
            for sit in rec.situations:
                if sit not in tax:
                    raise StoreError(
                        f"frame {rec.name!r}: unknown situation {sit!r}; the project knows "
                        f"{', '.join(tax.names)}"
                    )
            for box in rec.boxes or ():
                if box.category not in known_classes:
                    raise StoreError(
                        f"frame {rec.name!r}: unknown class {box.category!r}; the project "
                        f"knows {', '.join(tax.classes)}"
                    )

    def _root_id(self, c: sqlite3.Connection, root: Path) -> int:
        path = os.path.abspath(root)
        c.execute("INSERT OR IGNORE INTO image_roots (path) VALUES (?)", (path,))
        return c.execute("SELECT id FROM image_roots WHERE path = ?", (path,)).fetchone()[0]

    def _add_drives(self, c: sqlite3.Connection, frames: list[FrameRecord]) -> None:
        """Give every new drive a split: the one its frames name, else a stratified one.
        Drives already in the project keep theirs (naming another is an error)."""
        names = sorted({f.drive for f in frames})
        known: dict[str, str] = {}
        for chunk in _chunks(names):
            q = f"SELECT name, split FROM drives WHERE name IN ({','.join('?' * len(chunk))})"
            known.update(c.execute(q, chunk).fetchall())
        given: dict[str, tuple[str, str]] = {}
        for f in frames:
            if f.split is None:
                continue
            split, frame = given.setdefault(f.drive, (f.split, f.name))
            if split != f.split:
                raise StoreError(
                    f"drive {f.drive!r}: frame {frame!r} is in the {split} split but frame "
                    f"{f.name!r} in {f.split!r}; a split holds whole drives"
                )
            if f.drive in known and known[f.drive] != f.split:
                raise StoreError(
                    f"drive {f.drive!r} is in the {known[f.drive]} split of the project; "
                    f"frame {f.name!r} of this import puts it in {f.split!r}"
                )
        new = [d for d in names if d not in known]
        fixed = sorted((d, given[d][0]) for d in new if d in given)
        c.executemany("INSERT INTO drives (name, split) VALUES (?, ?)", fixed)
        new = [d for d in new if d not in given]
        if not new:
            return
        sizes: Counter[str] = Counter()
        labels: dict[str, Counter[str]] = defaultdict(Counter)
        new_set = set(new)
        for f in frames:
            if f.drive not in new_set:
                continue
            sizes[f.drive] += 1
            for sit, value in f.situations.items():
                if value:
                    labels[f.drive][f"situation:{sit}"] += 1
            for cat in {b.category for b in f.boxes or ()}:
                labels[f.drive][f"class:{cat}"] += 1
        seed = int(self.setting("split_seed"))
        splits = assign_splits(labels, sizes, self.split_fractions, seed)
        c.executemany("INSERT INTO drives (name, split) VALUES (?, ?)", sorted(splits.items()))

    def _upsert_frames(
        self, c: sqlite3.Connection, frames: list[FrameRecord], root_id: int, stamp: str
    ) -> dict[str, int]:
        names = [f.name for f in frames]
        existing: dict[str, str] = {}
        for chunk in _chunks(names):
            q = f"SELECT name, drive FROM frames WHERE name IN ({','.join('?' * len(chunk))})"
            existing.update(c.execute(q, chunk).fetchall())
        for f in frames:
            if f.name in existing and existing[f.name] != f.drive:
                raise StoreError(
                    f"frame {f.name!r} belongs to drive {existing[f.name]!r} in the project "
                    f"but to drive {f.drive!r} in this import; a frame cannot change drive"
                )
        c.executemany(
            "INSERT INTO frames (name, root_id, path, width, height, drive, timestamp, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "root_id = excluded.root_id, path = excluded.path, "
            "width = coalesce(excluded.width, width), height = coalesce(excluded.height, height),"
            " timestamp = coalesce(excluded.timestamp, timestamp)",
            [
                (
                    f.name,
                    root_id,
                    _relative(f.path, self._root_path(c, root_id)),
                    f.width,
                    f.height,
                    f.drive,
                    f.timestamp,
                    stamp,
                )
                for f in frames
            ],
        )
        return self._existing_ids(c, names, "import")

    @staticmethod
    def _ids(c: sqlite3.Connection, names: list[str]) -> dict[str, int]:
        """name -> id of those frames the project has."""
        ids: dict[str, int] = {}
        for chunk in _chunks(names):
            q = f"SELECT name, id FROM frames WHERE name IN ({','.join('?' * len(chunk))})"
            ids.update(c.execute(q, chunk).fetchall())
        return ids

    @staticmethod
    def _drives_of(c: sqlite3.Connection, ids: list[int]) -> set[str]:
        drives: set[str] = set()
        for chunk in _chunks(ids):
            q = f"SELECT DISTINCT drive FROM frames WHERE id IN ({','.join('?' * len(chunk))})"
            drives.update(r[0] for r in c.execute(q, chunk))
        return drives

    def _existing_ids(self, c: sqlite3.Connection, names: list[str], origin: str) -> dict:
        ids = self._ids(c, names)
        missing = [n for n in names if n not in ids]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise StoreError(
                f"{origin}: {len(missing)} frame(s) are not in the project: {shown}{more}; "
                "labels can only be imported for frames the project has"
            )
        return ids

    def _root_path(self, c: sqlite3.Connection, root_id: int) -> str:
        cache = self.__dict__.setdefault("_roots", {})
        if root_id not in cache:
            row = c.execute("SELECT path FROM image_roots WHERE id = ?", (root_id,)).fetchone()
            cache[root_id] = row[0]
        return cache[root_id]

    def write_derived_situations(self, values: Mapping[str, Mapping[str, bool]]) -> int:
        """Store situations derived from labelled boxes (frame name -> situation -> value,
        see :mod:`scenesift.derive`) as source ``derived``, replacing the frames' earlier
        derived labels. Being last in the truth precedence they never hide a label from a
        person or from the data. Returns rows written."""
        tax = self.taxonomy
        unknown = sorted({s for v in values.values() for s in v if s not in tax})
        if unknown:
            raise StoreError(f"unknown situations {unknown}; the project knows {tax.names}")
        stamp = now()
        n = 0
        with self.transaction() as c:
            ids = self._existing_ids(c, list(values), "derived situations")
            with counts.bulk(c, list(ids.values())):
                for part in _chunks(list(values), 10_000):
                    frame_ids = [ids[name] for name in part]
                    c.executemany(
                        "DELETE FROM situation_labels WHERE frame_id = ? AND source = 'derived'",
                        [(i,) for i in frame_ids],
                    )
                    rows = [
                        (ids[name], sit, "derived", int(bool(v)), None, stamp)
                        for name in part
                        for sit, v in values[name].items()
                    ]
                    c.executemany(_UPSERT_SITUATION_LABEL, rows)
                    n += len(rows)
        return n

    # ----------------------------------------------------------------- predictions
    def write_situation_scores(
        self,
        source: str,
        names: Sequence[str],
        situations: Sequence[str],
        scores: Sequence[Sequence[float]],
        thresholds: dict[str, float] | None = None,
        values: Sequence[Sequence[bool]] | None = None,
    ) -> int:
        """Store a model's situation scores (value = score >= threshold, confidence = score),
        replacing that model's earlier scores for these frames. Returns rows written.
        ``values`` (frames x situations) overrides the thresholded values where a model
        decides otherwise (one choice per exclusive group: ``Taxonomy.decide``)."""
        _check_model_source(source)
        tax = self.taxonomy
        unknown = [s for s in situations if s not in tax]
        if unknown:
            raise StoreError(f"unknown situations {unknown}; the project knows {tax.names}")
        thresholds = thresholds or {}
        stamp = now()
        n = 0
        with self.transaction() as c:
            ids = self._existing_ids(c, list(names), source)
            with counts.bulk(c, list(ids.values())):
                for part in _chunks(range(len(names)), 10_000):  # rows in memory at once
                    rows = []
                    for i in part:
                        for j, (sit, score) in enumerate(zip(situations, scores[i], strict=True)):
                            score = float(score)
                            value = int(
                                score >= thresholds.get(sit, 0.5) if values is None
                                else bool(values[i][j])
                            )  # fmt: skip
                            rows.append((ids[names[i]], sit, source, value, score, stamp))
                    c.executemany(_UPSERT_SITUATION_LABEL, rows)
                    n += len(rows)
        return n

    def write_box_predictions(self, source: str, boxes: dict[str, list[Box]]) -> int:
        """Store a model's detections per frame name (an empty list: it found nothing),
        replacing that model's earlier detections for these frames."""
        _check_model_source(source)
        classes = set(self.taxonomy.classes)
        stamp = now()
        with self.transaction() as c:
            ids = self._existing_ids(c, list(boxes), source)
            rows = []
            for name, frame_boxes in boxes.items():
                for b in frame_boxes:
                    if b.category not in classes:
                        raise StoreError(f"{source}: frame {name!r}: unknown class {b.category!r}")
                    rows.append(_box_row(ids[name], source, b, name))
            with counts.bulk(c, list(ids.values())):
                _replace_box_sets(c, [(ids[n], source) for n in boxes], rows, stamp)
        return len(rows)

    def decision_thresholds(self, source: str) -> dict[str, float]:
        """Per situation, the lowest score a model's stored positives have: ``Taxonomy.decide``
        with these reproduces exactly the stored values (value = score >= threshold, one per
        exclusive group). A situation the model never called positive gets +inf."""
        _check_model_source(source)
        rows = self.conn.execute(
            "SELECT situation, min(CASE WHEN value = 1 THEN confidence END) "
            "FROM situation_labels WHERE source = ? GROUP BY situation",
            (source,),
        ).fetchall()
        return {sit: (thr if thr is not None else float("inf")) for sit, thr in rows}

    def model_sources(self, kind: str | None = None) -> list[str]:
        """Every model that wrote predictions (``kind``: only ``"situations"`` or only
        ``"boxes"``), the latest write first: read from the ``model_writes`` counts the
        triggers keep, a few rows whatever the number of labels."""
        if kind not in (None, "situations", "boxes"):
            raise ValueError(f"kind must be 'situations', 'boxes' or None; got {kind!r}")
        rows = self.conn.execute(
            "SELECT source, max(last) AS t FROM model_writes WHERE frames > 0 "
            "AND (? IS NULL OR kind = ?) GROUP BY source ORDER BY t DESC, source DESC",
            (kind, kind),
        ).fetchall()
        return [r[0] for r in rows]

    def latest_model_source(self) -> str | None:
        """The model whose situation scores were written last: the one a coverage table,
        a gallery or a balanced selection reads when none is named."""
        models = self.model_sources("situations")
        return models[0] if models else None

    # ----------------------------------------------------------------- reading
    def count_frames(self) -> int:
        return self.conn.execute("SELECT count(*) FROM frames").fetchone()[0]

    def records(
        self,
        split: str | None = None,
        state: str | None = None,
        source: str | None = None,
        names: Iterable[str] | None = None,
        predictions: str | None = None,
    ) -> list[FrameRecord]:
        """Frames with their labels, for exporters and training.

        ``source=None`` gives each frame's *truth*: per situation and for boxes, the first
        source present in human > import > oracle. Otherwise only that source's labels.
        ``predictions`` (a ``model:*`` source, or ``latest``) fills ``situation_scores`` and
        ``predicted_boxes`` from that model.
        """
        where, args = [], []
        if split:
            where.append("d.split = ?")
            args.append(split)
        if state:
            where.append("f.state = ?")
            args.append(state)
        sql = (
            "SELECT f.id, f.name, r.path, f.path, f.drive, f.width, f.height, f.timestamp, "
            "d.split FROM frames f JOIN drives d ON d.name = f.drive "
            "JOIN image_roots r ON r.id = f.root_id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY f.drive, f.timestamp, f.name"
        rows = self.conn.execute(sql, args).fetchall()
        if names is not None:
            wanted = set(names)
            rows = [r for r in rows if r[1] in wanted]
        sources = TRUTH_PRIORITY if source is None else (source,)
        rank = {s: i for i, s in enumerate(sources)}
        placeholders = ",".join("?" * len(sources))

        sit: dict[int, dict[str, tuple[int, bool]]] = defaultdict(dict)
        for fid, name, src, value in self.conn.execute(
            f"SELECT frame_id, situation, source, value FROM situation_labels "
            f"WHERE source IN ({placeholders})",
            sources,
        ):
            best = sit[fid].get(name)
            if best is None or rank[src] < best[0]:
                sit[fid][name] = (rank[src], bool(value))
        box_source: dict[int, str] = {}
        for fid, src in self.conn.execute(
            f"SELECT frame_id, source FROM box_sets WHERE source IN ({placeholders})", sources
        ):
            if fid not in box_source or rank[src] < rank[box_source[fid]]:
                box_source[fid] = src
        boxes: dict[int, list[Box]] = defaultdict(list)
        for row in self.conn.execute(
            "SELECT frame_id, source, category, x1, y1, x2, y2, occluded, truncated, score, "
            f"class_probs, attributes FROM boxes WHERE source IN ({placeholders}) ORDER BY id",
            sources,
        ):
            if box_source.get(row[0]) == row[1]:
                boxes[row[0]].append(_box_from_row(row[2:]))

        scores: dict[int, dict[str, float]] = defaultdict(dict)
        predicted: dict[int, list[Box]] = defaultdict(list)
        if predictions == "latest":
            models = self.model_sources()
            predictions = models[0] if models else None
        if predictions is not None:
            _check_model_source(predictions)
            for fid, situation, conf in self.conn.execute(
                "SELECT frame_id, situation, confidence FROM situation_labels WHERE source = ?",
                (predictions,),
            ):
                scores[fid][situation] = conf
            for row in self.conn.execute(
                "SELECT frame_id, source, category, x1, y1, x2, y2, occluded, truncated, score, "
                "class_probs, attributes FROM boxes WHERE source = ? ORDER BY id",
                (predictions,),
            ):
                predicted[row[0]].append(_box_from_row(row[2:]))

        out = []
        for fid, name, root, rel, drive, w, h, ts, split_ in rows:
            out.append(
                FrameRecord(
                    name=name,
                    path=Path(root) / rel,
                    drive=drive,
                    width=w,
                    height=h,
                    timestamp=ts,
                    split=split_,
                    situations={k: v for k, (_, v) in sit.get(fid, {}).items()},
                    boxes=boxes.get(fid, []) if fid in box_source else None,
                    situation_scores=scores.get(fid, {}),
                    predicted_boxes=predicted.get(fid, []),
                )
            )
        return out


def _check_model_source(source: str) -> None:
    if not source.startswith("model:") or len(source) <= len("model:"):
        raise StoreError(f"a model source looks like 'model:<fingerprint>', got {source!r}")


def _relative(path: Path, root: str) -> str:
    # abspath, not resolve: a symlinked image keeps its in-root name (serving checks links).
    rel = os.path.relpath(os.path.abspath(path), root)
    if rel.startswith(os.pardir):
        raise StoreError(f"image {path} is not under its dataset root {root}")
    return Path(rel).as_posix()


def _digest(frames: Sequence[FrameRecord], labels_only: bool) -> str:
    """A fingerprint of everything an import writes, to tell a re-import of the same data."""
    h = hashlib.sha256(b"labels_only" if labels_only else b"frames")
    for f in frames:
        boxes = None if f.boxes is None else [_box_row(0, "", b, f.name) for b in f.boxes]
        item = [f.name, str(f.path), f.drive, f.width, f.height, f.timestamp, f.split,
                sorted(f.situations.items()), boxes]  # fmt: skip
        h.update(json.dumps(item).encode() + b"\n")
    return h.hexdigest()


def _box_row(fid: int, source: str, b: Box, frame: str = "") -> tuple:
    try:
        probs = json.dumps(list(b.class_probs), allow_nan=False) if b.class_probs else None
        attributes = json.dumps(dict(b.attributes), sort_keys=True, allow_nan=False)
    except ValueError as e:  # NaN or infinity: strict JSON readers (and exports) refuse it
        raise StoreError(
            f"frame {frame!r}: a {b.category} box has a value that is not a finite number "
            f"in {dict(b.attributes)} or its class probabilities ({e})"
        ) from None
    return (
        fid,
        source,
        b.category,
        b.x1,
        b.y1,
        b.x2,
        b.y2,
        int(b.occluded),
        int(b.truncated),
        b.score,
        probs,
        attributes,
    )


def _box_from_row(row: Sequence) -> Box:
    cat, x1, y1, x2, y2, occ, trunc, score, probs, attrs = row
    return Box(
        category=cat,
        x1=x1,
        y1=y1,
        x2=x2,
        y2=y2,
        occluded=bool(occ),
        truncated=bool(trunc),
        score=score,
        class_probs=tuple(json.loads(probs)) if probs else None,
        attributes=json.loads(attrs) if attrs else {},
    )
