"""The integrity check finds what breaks a project, and the running counts behind coverage
(schema V5, kept by triggers) equal a recount after any sequence of writes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scenesift.cli import app
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store, schema
from scenesift.store.coverage import CoverageRow, coverage
from scenesift.store.integrity import check

CLASSES = ["car", "truck", "pedestrian"]
CROWD = "coalesce(json_extract(b.attributes, '$.iscrowd'), 0)"  # an ignore region: no object


def results(store: Store, quick: bool = False) -> dict[str, list[str]]:
    return {r.name: r.problems for r in check(store, quick=quick).results}


# ----------------------------------------------------------------------------- counts
def reference_coverage(store: Store, model: str | None, box_model: str | None) -> list:
    """Coverage by the SQL it used before the running counts: a scan of every label."""
    c = store.conn
    rank = "CASE {} WHEN 'human' THEN 0 WHEN 'import' THEN 1 ELSE 2 END"
    truth = {
        s: (p, k)
        for s, p, k in c.execute(
            f"""WITH best AS (SELECT sl.situation, sl.value, row_number() OVER (
                PARTITION BY sl.frame_id, sl.situation ORDER BY {rank.format("sl.source")}) rn
                FROM situation_labels sl JOIN frames f ON f.id = sl.frame_id
                WHERE f.state = 'labelled' AND sl.source IN ('human', 'import', 'oracle'))
            SELECT situation, sum(value), count(*) FROM best WHERE rn = 1 GROUP BY situation"""
        )
    }
    unlabelled = (
        "SELECT sl.situation, sum(sl.value) FROM situation_labels sl JOIN frames f "
        "ON f.id = sl.frame_id WHERE f.state != 'labelled' AND sl.source = ? GROUP BY 1"
    )
    hidden = dict(c.execute(unlabelled, ("oracle",)).fetchall())
    predicted = dict(c.execute(unlabelled, (model,)).fetchall()) if model else {}
    rows = [
        (s.name, truth.get(s.name, (0, 0)), hidden.get(s.name, 0) or 0,
         (predicted.get(s.name, 0) or 0) if model else None)
        for s in store.taxonomy.situations
    ]  # fmt: skip
    best_sets = f"""SELECT bs.frame_id, bs.source, f.state, row_number() OVER (
        PARTITION BY bs.frame_id ORDER BY {rank.format("bs.source")}) AS rn
        FROM box_sets bs JOIN frames f ON f.id = bs.frame_id
        WHERE bs.source IN ('human', 'import', 'oracle')"""
    known = c.execute(
        f"SELECT count(*) FROM ({best_sets}) WHERE rn = 1 AND state = 'labelled'"
    ).fetchone()[0]
    labelled = {
        cat: (nf, nb)
        for cat, nf, nb in c.execute(
            f"""SELECT b.category, count(DISTINCT b.frame_id), count(*) FROM ({best_sets}) s
            JOIN boxes b ON b.frame_id = s.frame_id AND b.source = s.source
            WHERE s.rn = 1 AND s.state = 'labelled' AND NOT {CROWD} GROUP BY b.category"""
        )
    }
    per_frame = (
        "SELECT b.category, count(DISTINCT b.frame_id) FROM boxes b JOIN frames f "
        f"ON f.id = b.frame_id WHERE b.source = ? AND f.state != 'labelled' AND NOT {CROWD} "
        "GROUP BY 1"
    )
    hidden_boxes = dict(c.execute(per_frame, ("oracle",)).fetchall())
    predicted_boxes = dict(c.execute(per_frame, (box_model,)).fetchall()) if box_model else {}
    for cat in store.taxonomy.classes:
        rows.append((cat, labelled.get(cat, (0, 0)), known, hidden_boxes.get(cat, 0),
                     predicted_boxes.get(cat, 0) if box_model else None))  # fmt: skip
    return rows


def as_rows(rows: list[CoverageRow]) -> list:
    return [
        (r.name, (r.labelled, r.known), r.hidden, r.predicted)
        if r.kind == "situation"
        else (r.name, (r.labelled, r.boxes), r.known, r.hidden, r.predicted)
        for r in rows
    ]


def random_frames(rng: np.random.Generator, root: Path, situations: list[str]) -> list:
    frames = []
    for i in sorted(rng.choice(14, size=int(rng.integers(1, 7)), replace=False).tolist()):
        sits = {s: bool(rng.random() < 0.5) for s in situations if rng.random() < 0.4}
        if rng.random() < 0.2:
            boxes = None
        else:
            boxes = [Box(str(rng.choice(CLASSES)), 1.0, 1.0, float(rng.integers(3, 30)), 20.0,
                         attributes={"iscrowd": True} if rng.random() < 0.3 else {})
                     for _ in range(int(rng.poisson(1.5)))]  # fmt: skip
        frames.append(FrameRecord(f"d{i % 4}/{i:02d}.jpg", root / f"d{i % 4}/{i:02d}.jpg",
                                  f"d{i % 4}", 64, 48, timestamp=float(i), situations=sits,
                                  boxes=boxes))  # fmt: skip
    return frames


def random_write(store: Store, rng: np.random.Generator, root: Path) -> str:
    """One random write of the kinds the app makes (and a few only hand edits make)."""
    c = store.conn
    names = store.taxonomy.names
    ids = [r[0] for r in c.execute("SELECT id FROM frames")]
    op = int(rng.integers(0, 12)) if ids else 0
    fid = int(rng.choice(ids)) if ids else None
    models = ["model:a", "model:b"]
    if op <= 2:
        source = str(rng.choice(["import", "oracle", "human"]))
        batch = ImportBatch(random_frames(rng, root, names), root, ImportReport("random"))
        store.ingest(batch, label_source=source)
        return f"ingest as {source}"
    if op == 3:
        frames = [n for (n,) in c.execute("SELECT name FROM frames")]
        chosen = list(rng.choice(frames, size=min(len(frames), 3), replace=False))
        sits = list(rng.choice(names, size=4, replace=False))
        store.write_situation_scores(str(rng.choice(models)), chosen, sits,
                                     rng.random((len(chosen), 4)).tolist())  # fmt: skip
        return "situation scores"
    if op == 4:
        name = c.execute("SELECT name FROM frames WHERE id = ?", (fid,)).fetchone()[0]
        boxes = [Box("car", 1.0, 2.0, 9.0, 9.0, score=0.4)] * int(rng.integers(0, 3))
        store.write_box_predictions(str(rng.choice(models)), {name: boxes})
        return "box predictions"
    with store.transaction() as tx:
        if op == 5:
            state = str(rng.choice(["unlabelled", "selected", "labelled"]))
            tx.execute("UPDATE frames SET state = ? WHERE id = ?", (state, fid))
        elif op == 6:  # a labeller's save in the web app
            tx.execute("UPDATE frames SET state = 'labelled' WHERE id = ?", (fid,))
            tx.execute("DELETE FROM situation_labels WHERE frame_id = ? AND source = 'human'",
                       (fid,))  # fmt: skip
            tx.executemany(
                "INSERT INTO situation_labels VALUES (?, ?, 'human', ?, NULL, '2026-11-21')",
                [(fid, s, int(rng.random() < 0.5)) for s in rng.choice(names, 3, replace=False)],
            )
        elif op == 7:
            tx.execute("DELETE FROM box_sets WHERE frame_id = ? AND source = (SELECT "
                       "min(source) FROM box_sets WHERE frame_id = ?)", (fid, fid))  # fmt: skip
        elif op == 8:
            tx.execute("DELETE FROM boxes WHERE id = (SELECT min(id) FROM boxes "
                       "WHERE frame_id = ?)", (fid,))  # fmt: skip
        elif op == 9:
            tx.execute("DELETE FROM frames WHERE id = ?", (fid,))
        elif op == 10:
            split = str(rng.choice(["train", "val", "test"]))
            tx.execute("UPDATE drives SET split = ? WHERE name = (SELECT drive FROM frames "
                       "WHERE id = ?)", (split, fid))  # fmt: skip
        else:
            tx.execute("UPDATE situation_labels SET value = 1 - value WHERE frame_id = ? "
                       "AND situation = (SELECT min(situation) FROM situation_labels "
                       "WHERE frame_id = ?)", (fid, fid))  # fmt: skip
    return f"edit {op}"


@pytest.mark.parametrize("seed", range(4))
def test_running_counts_equal_a_recount_after_random_writes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    with Store.init(tmp_path / "p") as store:
        history = []
        for _ in range(60):
            history.append(random_write(store, rng, tmp_path / "data"))
            assert results(store)["counts"] == [], history
            cov = coverage(store)
            box_model = store.conn.execute(
                "SELECT source FROM model_writes WHERE kind = 'boxes' AND frames > 0 "
                "ORDER BY last DESC, source DESC LIMIT 1"
            ).fetchone()
            expected = reference_coverage(store, cov.model_source, box_model and box_model[0])
            assert as_rows(cov.rows) == expected, history
            n = store.count_frames()
            assert (cov.frames, cov.labelled_frames) == (
                n,
                store.conn.execute(
                    "SELECT count(*) FROM frames WHERE state = 'labelled'"
                ).fetchone()[0],
            )


def test_a_rolled_back_write_rolls_its_counts_back(tmp_path):
    with Store.init(tmp_path / "p") as store:
        rng = np.random.default_rng(0)
        random_write(store, rng, tmp_path)
        before = store.conn.execute("SELECT * FROM count_labels ORDER BY 1, 2, 3, 4").fetchall()
        with pytest.raises(RuntimeError), store.transaction() as c:
            c.execute("UPDATE frames SET state = 'labelled'")
            raise RuntimeError("changed my mind")
        after = store.conn.execute("SELECT * FROM count_labels ORDER BY 1, 2, 3, 4").fetchall()
        assert after == before


def test_label_keys_cannot_change_behind_the_counts(tmp_path):
    with Store.init(tmp_path / "p") as store:
        frames = random_frames(np.random.default_rng(1), tmp_path, ["day", "night"])
        store.ingest(ImportBatch(frames, tmp_path, ImportReport("t")))
        with pytest.raises(sqlite3.IntegrityError, match="cannot change"):
            store.conn.execute("UPDATE situation_labels SET source = 'human'")


def test_an_older_catalog_gets_its_counts_on_opening(tmp_path):
    """Migrating a V4 catalog with data backfills the counts (and the triggers take over)."""
    with Store.init(tmp_path / "p") as store:
        rng = np.random.default_rng(2)
        for _ in range(5):
            random_write(store, rng, tmp_path / "data")
        expected = coverage(store)
        c = store.conn
        triggers = c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for (name,) in triggers:
            c.execute(f"DROP TRIGGER {name}")
        for table in [*schema.count_queries(), "count_pause"]:
            c.execute(f"DROP TABLE {table}")
        c.execute("ALTER TABLE features DROP COLUMN image_sig")  # added by V6
        c.execute("PRAGMA user_version = 4")
    with Store.open(tmp_path / "p") as store:
        assert schema.version(store.conn) == schema.LATEST
        assert coverage(store) == expected
        assert results(store)["counts"] == []


# ----------------------------------------------------------------------------- check
@pytest.fixture
def project(tmp_path):
    store = Store.init(tmp_path / "p")
    frames = random_frames(np.random.default_rng(3), tmp_path / "data", ["day", "night"])
    store.ingest(ImportBatch(frames, tmp_path / "data", ImportReport("t")), label_source="oracle")
    yield store
    store.close()


def test_a_healthy_project_passes_every_check(project):
    report = check(project)
    assert report.ok, report.problems()
    names = {r.name for r in report.results}
    assert names >= {"sqlite", "orphans", "duplicates", "features", "campaigns", "counts"}


def test_orphan_labels_are_found(project):
    fid = project.conn.execute("SELECT min(id) FROM frames").fetchone()[0]
    project.conn.execute("PRAGMA foreign_keys = OFF")
    project.conn.execute("INSERT INTO situation_labels VALUES (999, 'day', 'human', 1, NULL, 'x')")
    project.conn.execute("DELETE FROM frames WHERE id = ?", (fid,))  # cascades nothing now
    project.conn.execute("PRAGMA foreign_keys = ON")
    found = results(project)["orphans"]
    assert (
        "1 situation_labels row(s) whose frame_id point at a missing frames row "
        "(e.g. frame_id = 999)" in found
    ), found
    assert not check(project).ok


def test_feature_rows_need_their_shard(project, tmp_path):
    fid = project.conn.execute("SELECT min(id) FROM frames").fetchone()[0]
    fp = project.arrays.put({"x": 1}, np.zeros((2, 3), np.float32), kind="features")
    with project.transaction() as c:
        c.executemany("INSERT INTO features (spec, frame_id, shard, row) VALUES ('spec', ?, ?, ?)",
                      [(fid, fp, 1), (fid + 1, "nowhere", 0)])  # fmt: skip
    assert results(project)["features"] == [
        "1 feature row(s) point at shard nowhere, which is not registered"]  # fmt: skip
    with project.transaction() as c:
        c.execute("UPDATE features SET row = 5 WHERE shard = ?", (fp,))
    assert any("reach row 5; it has 2 rows" in p for p in results(project)["features"])
    project.arrays.path_for(fp).unlink()
    assert any("file missing" in p for p in results(project)["features"])


def test_campaign_invariants(project):
    ids = [r[0] for r in project.conn.execute("SELECT id FROM frames ORDER BY id")]
    train = project.conn.execute(
        "SELECT f.id FROM frames f JOIN drives d ON d.name = f.drive WHERE d.split = 'train'"
    ).fetchall()
    with project.transaction() as c:
        c.execute("INSERT INTO campaigns (id, name, config, created_at) VALUES (1, 'c', ?, 'x')",
                  (json.dumps({"labeler": "labelstudio"}),))  # fmt: skip
        c.execute("INSERT INTO rounds (id, campaign_id, idx, status, metrics, created_at) "
                  "VALUES (1, 1, 0, 'labelled', '{\"n_labelled\": 0}', 'x')")  # fmt: skip
        c.execute("INSERT INTO rounds (id, campaign_id, idx, status, metrics, created_at) "
                  "VALUES (2, 1, 1, 'selected', '{\"n_labelled\": 5}', 'x')")  # fmt: skip
        c.execute("INSERT INTO picks VALUES (1, ?, 0, NULL, 'random', 'pending')", (ids[0],))
        c.execute("INSERT INTO picks VALUES (2, ?, 0, NULL, 'random', 'pending')", (ids[0],))
    found = results(project)["campaigns"]
    assert any("picked in round 0 and again in 1" in p for p in found), found
    assert any("round 0 is labelled but its pick" in p for p in found), found
    assert any("round 1 waits for labels" in p for p in found), found
    assert any("round 1 counts 5 labelled frames" in p for p in found) is False  # human: >=
    if (ids[0],) not in train:
        assert any("outside the pool" in p for p in found), found


def test_leftovers_are_a_warning_not_a_failure(project):
    (project.root / "arrays" / "ab").mkdir()
    np.save(project.root / "arrays" / "ab" / "abc.npy", np.zeros(2))
    (project.root / ".catalog.x.tmp").write_text("half")
    report = check(project)
    assert report.ok
    leftovers = next(r for r in report.results if r.name == "leftovers")
    assert leftovers.count == 2


def test_check_command_prints_a_table_and_fails_on_problems(project):
    runner = CliRunner()
    result = runner.invoke(app, ["check", "-p", str(project.root)])
    assert result.exit_code == 0, result.output
    assert "orphans" in result.output and "ok" in result.output
    project.conn.execute("PRAGMA foreign_keys = OFF")
    project.conn.execute("INSERT INTO box_sets VALUES (4242, 'human', 'x')")
    result = runner.invoke(app, ["check", "-p", str(project.root)])
    assert result.exit_code == 1
    assert "box_sets row(s) whose frame_id point at a missing frames row" in result.output
    assert "frame_id = 4242" in result.output


def test_a_cut_or_overwritten_shard_is_found(project):
    fp = project.arrays.put({"x": 2}, np.arange(400, dtype=np.float32).reshape(100, 4), "t")
    path = project.arrays.path_for(fp)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for quick in (True, False):
        assert any("truncated" in p for p in results(project, quick)["features"]), quick
    path.write_bytes(data[:-16] + b"\xff" * 16)  # same size, other content
    assert results(project, quick=True)["features"] == []  # quick: sizes only
    assert any("checksum" in p for p in results(project)["features"])
    path.write_bytes(data)
    assert results(project)["features"] == []


def test_check_reports_a_damaged_catalog_instead_of_crashing(tmp_path):
    with Store.init(tmp_path / "p") as store:
        frames = random_frames(np.random.default_rng(4), tmp_path / "data", ["day", "night"])
        store.ingest(ImportBatch(frames, tmp_path / "data", ImportReport("t")))
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        size = store.conn.execute("PRAGMA page_size").fetchone()[0]
        frames_page = store.conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'frames'"
        ).fetchone()[0]
    path = tmp_path / "p" / "catalog.sqlite"
    with path.open("r+b") as f:  # garbage over the frames table's root page
        f.seek((frames_page - 1) * size)
        f.write(b"\x42" * size)
    assert pages > frames_page
    for quick in (True, False):
        with Store.open(tmp_path / "p") as store:
            report = check(store, quick=quick)
        assert not report.ok
        assert any("malformed" in p or "corrupt" in p for p in report.problems()), quick
