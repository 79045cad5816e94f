"""The integrity check of a project (``scenesift check``): what a crash, a bug or a hand
edit could have broken, each rule checked on its own and reported with examples.

Every write is transactional and shards are written before they are registered, so a
killed process should leave nothing here to find; this is how the crash tests (and users
after a power cut) verify it. Checks:

- ``sqlite``: SQLite's own ``integrity_check`` (b-trees, indexes, NOT NULL/CHECK).
- ``orphans``: ``foreign_key_check``: no label, box, feature or pick of a missing frame, no
  box outside a box set, no frame of a missing drive or round.
- ``duplicates``: at most one label per (frame, situation, source), one box set per (frame,
  source), one cache row per (spec, frame).
- ``features``: every feature row points at a registered shard whose file exists, is the
  registered shape and type, as long as its header says, and has that row; every
  registered array's file exists; in the full check, each file's SHA-256 is the one
  recorded when it was written (shards from before checksums have none to compare).
- ``campaigns``: rounds numbered 0.. with only the last one unfinished; a frame picked at
  most once per campaign; picks only in played rounds and in the pool split; picks of a
  human campaign selected or labelled (labelled, by a person, once the round is); the
  labelled count in each round's metrics matches the picks of the rounds before it.
- ``frame states``: a selected frame names the round that selected it.
- ``counts``: the running counts behind coverage (schema V5) equal a recount.
- ``leftovers`` (a warning, not a failure): temporary files of interrupted writes and
  shards no catalog row registers; harmless, and removable.

A damaged catalog (a garbage page, a file cut short) fails the checks that meet it, each
reporting SQLite's error, rather than ending the check with a traceback.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from pathlib import Path

from scenesift.store import campaigns, schema
from scenesift.store.arrays import file_sha256, npy_layout
from scenesift.store.errors import StoreError
from scenesift.store.project import CATALOG, Store

#: Problems listed per check; the rest are only counted.
EXAMPLES = 10


@dataclass
class CheckResult:
    """One rule: ``problems`` lists the first examples, ``count`` all of them."""

    name: str
    description: str
    count: int = 0
    problems: list[str] = field(default_factory=list)
    warning: bool = False  # found things do not fail the check
    seconds: float = 0.0

    def add(self, problem: str) -> None:
        self.count += 1
        if len(self.problems) < EXAMPLES:
            self.problems.append(problem)

    @property
    def ok(self) -> bool:
        return self.warning or self.count == 0


@dataclass
class IntegrityReport:
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def problems(self) -> list[str]:
        """Every failed check's examples, as ``check: problem`` lines."""
        return [f"{r.name}: {p}" for r in self.results if not r.ok for p in r.problems]


def check(store: Store, quick: bool = False) -> IntegrityReport:
    """Run every check on ``store``. ``quick`` uses SQLite's ``quick_check`` (no index
    cross-check) and skips the recount of the coverage counts: seconds instead of minutes
    on a million frames."""
    checks: list[tuple[str, str, Callable[[Store, CheckResult], None]]] = [
        ("sqlite", "SQLite integrity (quick_check)" if quick else "SQLite integrity_check",
         lambda s, r: _sqlite(s, r, quick)),
        ("orphans", "no row points at a missing frame, drive, round or box set", _orphans),
        ("duplicates", "one label per frame, situation and source; one box set per frame "
         "and source; one cache row per frame and spec", _duplicates),
        ("features", "feature rows point at registered shards that exist and hold them"
         + ("" if quick else "; shard checksums"), lambda s, r: _features(s, r, quick)),
        ("campaigns", "rounds, picks and labelled counts of every campaign agree",
         _campaigns),
        ("frame states", "selected frames name the round that selected them", _frame_states),
    ]  # fmt: skip
    if not quick:
        checks.append(("counts", "coverage counts equal a recount of the labels", _counts))
    checks.append(
        ("leftovers", "temporary files of interrupted writes, unregistered shards", _leftovers)
    )
    results = []
    for name, description, fn in checks:
        result = CheckResult(name, description, warning=name == "leftovers")
        started = time.perf_counter()
        try:
            fn(store, result)
        except (sqlite3.DatabaseError, StoreError) as e:  # a damaged catalog
            cause = e.__cause__ if isinstance(e.__cause__, sqlite3.DatabaseError) else e
            result.add(f"could not finish (SQLite: {cause})")
        result.seconds = time.perf_counter() - started
        results.append(result)
    return IntegrityReport(results)


# ----------------------------------------------------------------------------- checks
def _sqlite(store: Store, r: CheckResult, quick: bool) -> None:
    pragma = "quick_check" if quick else "integrity_check"
    for (message,) in store.conn.execute(f"PRAGMA {pragma}"):
        if message != "ok":
            r.add(message)
    found = schema.version(store.conn)
    if found != schema.LATEST:
        r.add(f"catalog schema version {found}, expected {schema.LATEST}")


def _orphans(store: Store, r: CheckResult) -> None:
    c = store.conn
    found: dict[tuple[str, int, str], int] = defaultdict(int)
    for table, _, parent, fk_id in c.execute("PRAGMA foreign_key_check").fetchall():
        found[(table, fk_id, parent)] += 1
    for (table, fk_id, parent), n in sorted(found.items()):
        pairs = [(row[3], row[4]) for row in c.execute(f"PRAGMA foreign_key_list({table})")
                 if row[0] == fk_id]  # fmt: skip
        if any(to is None for _, to in pairs):  # the parent's primary key
            pk = [row[1] for row in sorted(c.execute(f"PRAGMA table_info({parent})"),
                                           key=lambda row: row[5]) if row[5]]  # fmt: skip
            pairs = [(frm, to) for (frm, _), to in zip(pairs, pk, strict=True)]
        cols = ", ".join(frm for frm, _ in pairs)
        examples = c.execute(
            f"SELECT DISTINCT {', '.join(f't.{frm}' for frm, _ in pairs)} FROM {table} t "
            f"WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE "
            f"{' AND '.join(f'p.{to} = t.{frm}' for frm, to in pairs)}) LIMIT 3"
        ).fetchall()
        shown = "; ".join(", ".join(map(str, e)) for e in examples)
        r.add(f"{n:,} {table} row(s) whose {cols} point at a missing {parent} row "
              f"(e.g. {cols} = {shown})")  # fmt: skip


def _duplicates(store: Store, r: CheckResult) -> None:
    queries = {
        "situation label": "SELECT frame_id, situation || ' from ' || source, count(*) "
        "FROM situation_labels GROUP BY frame_id, situation, source HAVING count(*) > 1",
        "box set": "SELECT frame_id, source, count(*) FROM box_sets "
        "GROUP BY frame_id, source HAVING count(*) > 1",
        "feature row": "SELECT frame_id, 'spec ' || spec, count(*) FROM features "
        "GROUP BY spec, frame_id HAVING count(*) > 1",
    }
    for what, sql in queries.items():
        for fid, key, n in store.conn.execute(sql):
            r.add(f"{what} of frame {fid} ({key}) stored {n} times")


def _features(store: Store, r: CheckResult, quick: bool = False) -> None:
    c = store.conn
    arrays = {fp: (kind, path, json.loads(meta)) for fp, kind, path, meta in
              c.execute("SELECT fingerprint, kind, path, meta FROM arrays")}  # fmt: skip
    headers: dict[str, tuple[tuple[int, ...], str] | str] = {}
    for fp, (_, rel, meta) in arrays.items():
        headers[fp] = _npy_header(store.arrays.root / rel)
        if isinstance(headers[fp], str):
            r.add(f"array {fp} ({rel}): {headers[fp]}")
            continue
        shape, dtype = headers[fp]
        if list(shape) != list(meta.get("shape", shape)) or dtype != meta.get("dtype", dtype):
            r.add(f"array {fp} ({rel}): file is {shape} {dtype}, registered "
                  f"{tuple(meta.get('shape', ()))} {meta.get('dtype')}")  # fmt: skip
        elif not quick and meta.get("sha256") not in (None, file_sha256(store.arrays.root / rel)):
            r.add(f"array {fp} ({rel}): checksum differs from the one recorded when it was "
                  "written (the file was overwritten or is damaged)")  # fmt: skip
    for shard, n, top in c.execute(
        "SELECT shard, count(*), max(row) FROM features GROUP BY shard ORDER BY shard"
    ):
        if shard not in arrays:
            r.add(f"{n} feature row(s) point at shard {shard}, which is not registered")
            continue
        header = headers[shard]
        if isinstance(header, str):
            r.add(f"{n} feature row(s) point at shard {shard}, whose file is unusable")
        elif top >= header[0][0]:
            r.add(f"feature rows of shard {shard} reach row {top}; it has {header[0][0]} rows")


def _npy_header(path: Path) -> tuple[tuple[int, ...], str] | str:
    """(shape, dtype) from a .npy header (not the data), or why the file is unusable."""
    try:
        shape, dtype, _, size = npy_layout(path)
        actual = os.path.getsize(path)
    except FileNotFoundError:
        return "file missing"
    except (OSError, ValueError) as e:
        return f"unreadable ({e})"
    if actual != size:
        cut = "truncated" if actual < size else "longer than its header says"
        return f"{cut}: {actual:,} bytes, its header needs {size:,}"
    return shape, dtype


def _campaigns(store: Store, r: CheckResult) -> None:
    for campaign in campaigns.all_campaigns(store):
        cid, name, status, cfg = campaign.id, campaign.name, campaign.status, campaign.config
        human = cfg.get("labeler", "oracle") != "oracle"
        existing = cfg.get("use_existing_labels")
        existing = human if existing is None else existing
        pool = cfg.get("pool_split", "train")
        where = f"campaign {name!r}"
        rounds = [(x.id, x.idx, x.status, x.metrics) for x in campaigns.rounds(store, cid)]
        statuses = [s for _, _, s, _ in rounds]
        if [idx for _, idx, _, _ in rounds] != list(range(len(rounds))):
            r.add(f"{where}: rounds numbered {[idx for _, idx, _, _ in rounds]}, not 0..")
        for _, idx, s, _ in rounds[:-1]:
            if s != "labelled":
                r.add(f"{where}: round {idx} is {s!r} but a later round exists")
        for _, idx, s, _ in rounds:
            if s not in ("created", "selected", "labelled", "final"):
                r.add(f"{where}: round {idx} has unknown status {s!r}")
        if status == "finished" and (not statuses or statuses[-1] != "final"):
            r.add(f"{where}: finished, but its last round is not final")

        picks = [astuple(p) for p in campaigns.audit_picks(store, cid)]
        first: dict[int, int] = {}
        per_round: dict[int, int] = defaultdict(int)
        rejected = False
        for idx, rstatus, fid, review, state, split, by_person in picks:
            per_round[idx] += 1
            rejected |= review == "rejected"
            if fid in first:
                r.add(f"{where}: frame {fid} picked in round {first[fid]} and again in {idx}")
            first.setdefault(fid, idx)
            if rstatus not in ("selected", "labelled"):
                r.add(f"{where}: round {idx} is {rstatus!r} but has picks (frame {fid})")
            if split is not None and split != pool:
                r.add(f"{where}: round {idx} picked frame {fid} of the {split} split, "
                      f"outside the pool ({pool})")  # fmt: skip
            if not human:
                continue
            if rstatus == "selected" and state not in ("selected", "labelled"):
                r.add(f"{where}: round {idx} waits for labels of frame {fid}, which is {state}")
            if rstatus == "labelled" and review != "rejected":
                if state != "labelled":
                    r.add(f"{where}: round {idx} is labelled but its pick {fid} is {state}")
                elif not by_person:
                    r.add(f"{where}: round {idx} is labelled but frame {fid} has no human labels")
        before = 0
        for _, idx, _, metrics in rounds:
            n = metrics.get("n_labelled")
            if n is not None:
                if existing and n < before and not rejected:
                    r.add(f"{where}: round {idx} trained on {n} labelled frames, fewer than "
                          f"the {before} picked before it")  # fmt: skip
                if not existing and (n > before or (n != before and not rejected)):
                    r.add(f"{where}: round {idx} counts {n} labelled frames; the rounds "
                          f"before it picked {before}")  # fmt: skip
            before += per_round[idx]


def _frame_states(store: Store, r: CheckResult) -> None:
    for fid, name in store.conn.execute(
        "SELECT id, name FROM frames WHERE state = 'selected' AND selected_round IS NULL"
    ):
        r.add(f"frame {fid} ({name}) is selected but names no round")


def _counts(store: Store, r: CheckResult) -> None:
    c = store.conn
    for table, sql in schema.count_queries().items():
        info = c.execute(f"PRAGMA table_info({table})").fetchall()
        keys = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
        values = [row[1] for row in info if not row[5] and row[1] != "last"]
        stored = {
            row[: len(keys)]: row[len(keys) :]
            for row in c.execute(
                f"SELECT {', '.join(keys + values)} FROM {table} "
                f"WHERE {' OR '.join(f'{v} != 0' for v in values)}"
            )
        }
        actual = {row[: len(keys)]: row[len(keys) : len(keys) + len(values)]
                  for row in c.execute(sql)}  # fmt: skip
        for key in sorted(set(stored) | set(actual), key=repr):
            got, want = stored.get(key), actual.get(key)
            if got != want:
                shown = ", ".join(f"{k} {v}" for k, v in zip(keys, key, strict=True))
                r.add(f"{table} ({shown}): stored {_named(values, got)}, "
                      f"recounted {_named(values, want)}")  # fmt: skip


def _named(columns: list[str], values: tuple | None) -> str:
    if values is None:
        return "nothing"
    return ", ".join(f"{c} {v}" for c, v in zip(columns, values, strict=True))


def _leftovers(store: Store, r: CheckResult) -> None:
    root = store.root
    for path in sorted(root.rglob(".*.tmp")):
        r.add(f"{path.relative_to(root)}: temporary file of an interrupted write")
    init = root / (CATALOG + ".init")
    if init.exists():
        r.add(f"{init.name}: catalog of an interrupted `scenesift init`")
    registered = {p for (p,) in store.conn.execute("SELECT path FROM arrays")}
    if store.arrays.root.is_dir():
        for path in sorted(store.arrays.root.rglob("*.npy")):
            rel = path.relative_to(store.arrays.root).as_posix()
            if rel not in registered:
                r.add(f"arrays/{rel}: shard of an interrupted run, registered nowhere")
