"""The project store: durable, transactional, idempotent, split by drive."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store, StoreError, fingerprint, schema
from scenesift.store.coverage import coverage
from scenesift.store.splits import assign_splits, unsplit_labels


def make_batch(root: Path, spec: dict[str, list[dict]]) -> ImportBatch:
    """spec: drive -> list of {situations, boxes}; images are not needed by the store."""
    frames = []
    for drive, items in spec.items():
        for i, item in enumerate(items):
            name = f"{drive}/{i:03d}.jpg"
            frames.append(
                FrameRecord(
                    name=name,
                    path=root / name,
                    drive=drive,
                    width=64,
                    height=48,
                    timestamp=i * 0.25,
                    situations=dict(item.get("situations", {})),
                    boxes=item.get("boxes"),
                )
            )
    return ImportBatch(frames, root, ImportReport(source="test", frames=len(frames)))


def car(x1=1.0, y1=2.0, x2=20.0, y2=30.0) -> Box:
    return Box("car", x1, y1, x2, y2, occluded=True, attributes={"distance": 12.5})


@pytest.fixture
def store(tmp_path):
    s = Store.init(tmp_path / "proj")
    yield s
    s.close()


def table_counts(store: Store) -> dict[str, int]:
    tables = ["frames", "drives", "situation_labels", "boxes", "box_sets", "image_roots"]
    return {t: store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def test_init_creates_a_wal_catalog_with_foreign_keys_and_the_latest_schema(tmp_path):
    s = Store.init(tmp_path / "p")
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert schema.version(s.conn) == schema.LATEST
    assert (tmp_path / "p" / "arrays").is_dir()
    assert "night" in s.taxonomy and "golf_cart" in s.taxonomy.classes
    with pytest.raises(StoreError, match="already a scenesift project"):
        Store.init(tmp_path / "p")


def test_opening_a_folder_that_is_not_a_project_says_how_to_make_one(tmp_path):
    with pytest.raises(StoreError, match="scenesift init"):
        Store.open(tmp_path)


def test_migrations_run_in_order_and_a_failing_one_changes_nothing(tmp_path):
    conn = sqlite3.connect(tmp_path / "c.sqlite", isolation_level=None)
    steps = ["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y INTEGER);"]
    assert schema.migrate(conn, steps[:1]) == 1
    assert schema.migrate(conn, steps) == 1
    assert schema.version(conn) == 2

    def broken(c):
        c.execute("CREATE TABLE c (z INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        schema.migrate(conn, [*steps, broken])
    assert schema.version(conn) == 2
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "c" not in tables


def test_a_catalog_from_a_newer_scenesift_is_refused(tmp_path):
    s = Store.init(tmp_path / "p")
    s.conn.execute(f"PRAGMA user_version = {schema.LATEST + 1}")
    s.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(tmp_path / "p")


def test_ingest_writes_frames_labels_and_boxes_and_completes_exclusive_groups(store, tmp_path):
    batch = make_batch(
        tmp_path, {"d1": [{"situations": {"night": True, "rain": True}, "boxes": [car()]}]}
    )
    store.ingest(batch)
    [rec] = store.records()
    assert rec.situations == {
        "night": True, "day": False, "dusk": False,
        "rain": True, "clear": False, "fog": False, "snow": False,
    }  # fmt: skip
    assert rec.boxes == [car()]
    assert rec.split in ("train", "val", "test")
    state = store.conn.execute("SELECT state FROM frames").fetchone()[0]
    assert state == "labelled"


def test_frames_without_box_labels_differ_from_frames_labelled_empty(store, tmp_path):
    store.ingest(make_batch(tmp_path, {"d": [{"boxes": None}, {"boxes": []}]}))
    a, b = store.records()
    assert a.boxes is None and b.boxes == []


def test_reimporting_the_same_data_is_idempotent(store, tmp_path):
    spec = {f"d{i}": [{"situations": {"day": True}, "boxes": [car(), car(5, 5, 9, 9)]}] * 3
            for i in range(4)}  # fmt: skip
    store.ingest(make_batch(tmp_path, spec))
    before = table_counts(store)
    records_before = store.records()
    store.ingest(make_batch(tmp_path, spec))
    assert table_counts(store) == before
    assert store.records() == records_before


def test_reimport_replaces_a_frames_boxes_from_the_same_source(store, tmp_path):
    store.ingest(make_batch(tmp_path, {"d": [{"boxes": [car(), car()]}]}))
    store.ingest(make_batch(tmp_path, {"d": [{"boxes": [car(3, 3, 8, 8)]}]}))
    [rec] = store.records()
    assert rec.boxes == [car(3, 3, 8, 8)]


def test_a_failed_import_leaves_the_store_exactly_as_before(store, tmp_path):
    store.ingest(make_batch(tmp_path, {"d0": [{"situations": {"day": True}}]}))
    before = table_counts(store)

    def crash(_n):
        raise KeyboardInterrupt  # e.g. Ctrl-C at the last moment before commit

    with pytest.raises(KeyboardInterrupt):
        store.ingest(make_batch(tmp_path, {"d1": [{"boxes": [car()]}] * 5}), progress=crash)
    assert table_counts(store) == before

    bad = make_batch(tmp_path, {"d2": [{"boxes": [Box("spaceship", 0, 0, 5, 5)]}]})
    with pytest.raises(StoreError, match="unknown class 'spaceship'"):
        store.ingest(bad)
    assert table_counts(store) == before


def test_unknown_situations_are_rejected_with_the_known_ones_listed(store, tmp_path):
    with pytest.raises(StoreError, match=r"unknown situation 'moonlight'.*night"):
        store.ingest(make_batch(tmp_path, {"d": [{"situations": {"moonlight": True}}]}))


def test_a_frame_cannot_move_to_another_drive(store, tmp_path):
    store.ingest(make_batch(tmp_path, {"d1": [{}]}))
    moved = make_batch(tmp_path, {"d1": [{}]})
    moved.frames[0].drive = "d2"
    with pytest.raises(StoreError, match="cannot change drive"):
        store.ingest(moved)


def test_oracle_labels_are_held_back_and_frames_stay_unlabelled(store, tmp_path):
    spec = {"d": [{"situations": {"fog": True}, "boxes": [car()]}] * 2}
    store.ingest(make_batch(tmp_path, spec), label_source="oracle")
    assert {r[0] for r in store.conn.execute("SELECT state FROM frames")} == {"unlabelled"}
    cov = {r.name: r for r in coverage(store).rows}
    assert cov["fog"].hidden == 2 and cov["fog"].labelled == 0
    assert cov["car"].hidden == 2 and cov["car"].labelled == 0
    assert cov["fog"].predicted is None


def test_truth_prefers_human_over_import_over_oracle(store, tmp_path):
    store.ingest(make_batch(tmp_path, {"d": [{"situations": {"rain": True}}]}), "oracle")
    store.ingest(make_batch(tmp_path, {"d": [{"situations": {"rain": False}}]}), "import")
    assert store.records()[0].situations["rain"] is False
    store.ingest(make_batch(tmp_path, {"d": [{"situations": {"rain": True}}]}), "human")
    assert store.records()[0].situations["rain"] is True
    assert store.records(source="import")[0].situations["rain"] is False


def test_coverage_counts_labelled_positives_and_boxes(store, tmp_path):
    spec = {
        "a": [{"situations": {"night": True}, "boxes": [car(), car()]}] * 3,
        "b": [{"situations": {"day": True}, "boxes": []}] * 2,
    }
    store.ingest(make_batch(tmp_path, spec))
    cov = coverage(store)
    rows = {r.name: r for r in cov.rows}
    assert cov.frames == 5 and cov.labelled_frames == 5
    assert rows["night"].labelled == 3 and rows["night"].known == 5
    assert rows["day"].labelled == 2
    assert rows["rain"].known == 0  # weather never labelled: missing, not negative
    assert rows["car"].labelled == 3 and rows["car"].boxes == 6 and rows["car"].known == 5


def ignore(category: str) -> Box:
    """One class's part of a KITTI DontCare region."""
    return Box(category, 50.0, 5.0, 90.0, 40.0, attributes={"iscrowd": True})


def test_ignore_regions_are_no_objects_in_the_box_counts(store, tmp_path):
    """A DontCare region is stored as one iscrowd box per class; none of them is an object."""
    spec = {"a": [{"boxes": [car(), ignore("car"), ignore("truck")]}, {"boxes": [ignore("car")]}]}
    store.ingest(make_batch(tmp_path, spec))
    rows = {r.name: r for r in coverage(store).rows}
    assert (rows["car"].labelled, rows["car"].boxes) == (1, 1)
    assert (rows["truck"].labelled, rows["truck"].boxes) == (0, 0)
    with store.transaction() as c:  # row by row (the triggers), not the bulk path of ingest
        c.execute("DELETE FROM boxes WHERE json_extract(attributes, '$.iscrowd')")
    rows = {r.name: r for r in coverage(store).rows}
    assert (rows["car"].labelled, rows["car"].boxes) == (1, 1)
    with pytest.raises(sqlite3.IntegrityError, match="iscrowd cannot change"):
        store.conn.execute("UPDATE boxes SET attributes = '{\"iscrowd\": true}'")


def test_a_v7_catalog_that_counted_ignore_regions_is_recounted_on_opening(tmp_path):
    root = tmp_path / "p"
    with Store.init(root) as store:
        spec = {"a": [{"boxes": [car(), ignore("car"), ignore("truck")]}]}
        store.ingest(make_batch(tmp_path, spec))
        with store.transaction() as c:  # what V7's counts held
            c.execute("UPDATE count_boxes SET frames = 1, boxes = 2 WHERE category = 'car'")
            c.execute("INSERT INTO count_boxes SELECT source, 'truck', state, 1, 1 "
                      "FROM count_boxes WHERE category = 'car'")  # fmt: skip
            c.execute("DROP TRIGGER boxes_ignore_fixed")
        store.conn.execute("PRAGMA user_version = 7")
    with Store.open(root) as store:
        assert schema.version(store.conn) == schema.LATEST == 8
        rows = {r.name: r for r in coverage(store).rows}
        assert (rows["car"].boxes, rows["truck"].boxes, rows["truck"].labelled) == (1, 0, 0)
        assert store.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'boxes_ignore_fixed'"
        ).fetchone()


def test_every_drive_lies_in_exactly_one_split(store, tmp_path):
    spec = {f"drive{i:02d}": [{"situations": {"day": True}}] * (5 + i % 7) for i in range(40)}
    store.ingest(make_batch(tmp_path, spec))
    splits = defaultdict(set)
    for rec in store.records():
        splits[rec.drive].add(rec.split)
    assert all(len(s) == 1 for s in splits.values())
    assert {next(iter(s)) for s in splits.values()} == {"train", "val", "test"}


def test_new_frames_of_a_known_drive_join_its_split(store, tmp_path):
    store.ingest(make_batch(tmp_path, {"d": [{}] * 2}))
    first = store.records()[0].split
    store.ingest(make_batch(tmp_path, {"d": [{}] * 4}))
    assert {r.split for r in store.records()} == {first}


def test_split_assignment_spreads_rare_labels_over_splits():
    # 60 drives; "snow" in only 5 of them. Random assignment often puts none in test.
    sizes = {f"d{i}": 30 for i in range(60)}
    labels = {f"d{i}": {"situation:day": 30} for i in range(60)}
    for i in range(5):
        labels[f"d{i}"]["situation:snow"] = 30
    out = assign_splits(labels, sizes, (0.6, 0.2, 0.2), seed=3)
    snow_splits = {out[f"d{i}"] for i in range(5)}
    assert snow_splits == {"train", "val", "test"}
    counts = {s: sum(1 for v in out.values() if v == s) for s in ("train", "val", "test")}
    assert counts == {"train": 36, "val": 12, "test": 12}
    assert assign_splits(labels, sizes, (0.6, 0.2, 0.2), seed=3) == out
    assert assign_splits(dict(reversed(labels.items())), sizes, (0.6, 0.2, 0.2), 3) == out


def test_a_rare_label_is_spread_even_when_its_drives_hold_a_rarer_one():
    # snow in 2 drives; one of them also holds the even rarer "tunnel" (as in the synth world)
    sizes = {f"d{i}": 30 for i in range(60)}
    labels = {f"d{i}": {"situation:day": 30} for i in range(60)}
    labels["d0"]["situation:snow"] = 30
    labels["d1"]["situation:snow"] = 30
    labels["d1"]["situation:tunnel"] = 10
    labels["d2"]["situation:tunnel"] = 10
    out = assign_splits(labels, sizes, (0.7, 0.1, 0.2), seed=0)
    assert out["d0"] != out["d1"]
    assert out["d1"] != out["d2"]


def test_a_situation_in_two_drives_gets_one_in_train_and_one_in_test():
    # fog in 2 of 33 drives: proportional placement sends the second to val (it lacks fog
    # most, relative to its target), leaving no fog to test on
    sizes = {f"d{i:02d}": 30 + (i * 7) % 60 for i in range(33)}
    labels = {d: {"situation:day": n} for d, n in sizes.items()}
    for d in ("d03", "d17"):
        labels[d]["situation:fog"] = sizes[d]
    labels["d05"]["situation:tunnel"] = 10  # one drive: cannot be in both
    for i in (1, 2, 4, 6, 7):
        labels[f"d{i:02d}"]["class:golf_cart"] = 3
    out = assign_splits(labels, sizes, (0.64, 0.12, 0.24), seed=0)
    assert {out["d03"], out["d17"]} == {"train", "test"}
    golf = {out[f"d{i:02d}"] for i in (1, 2, 4, 6, 7)}
    assert {"train", "test"} <= golf
    assert unsplit_labels(labels, out) == {"situation:tunnel": 1}
    counts = {s: sum(1 for v in out.values() if v == s) for s in ("train", "val", "test")}
    assert min(counts.values()) >= 3


def test_the_guarantee_never_takes_a_labels_last_drive_from_a_split():
    # a and b share their drives: moving d0 to test for a would take b's only train drive
    sizes = {f"d{i}": 10 for i in range(12)}
    labels = {d: {"situation:day": 10} for d in sizes}
    labels["d0"] |= {"situation:a": 5, "situation:b": 5}
    labels["d1"] |= {"situation:a": 5, "situation:b": 5}
    out = assign_splits(labels, sizes, (0.7, 0.1, 0.2), seed=1)
    assert {out["d0"], out["d1"]} == {"train", "test"}
    assert unsplit_labels(labels, out) == {}


def test_arrays_are_keyed_by_the_fingerprint_of_what_made_them(store):
    spec = {"model": "efficientnet_lite0", "weights": "abc", "size": [192, 320], "layer": 5}
    calls = []

    def compute():
        calls.append(1)
        return np.arange(12, dtype=np.float32).reshape(3, 4)

    a = store.arrays.get_or_compute(spec, compute, kind="features")
    b = store.arrays.get_or_compute(dict(reversed(spec.items())), compute, kind="features")
    assert len(calls) == 1 and np.array_equal(a, b)
    other = store.arrays.get_or_compute({**spec, "size": [96, 160]}, compute, kind="features")
    assert len(calls) == 2 and np.array_equal(a, other)
    assert fingerprint(spec) != fingerprint({**spec, "size": [96, 160]})
    with pytest.raises(KeyError):
        store.arrays.get("0" * 16)
    assert not list((store.root / "arrays").rglob("*.tmp"))


def test_labels_only_ingest_needs_known_frames_and_keeps_their_paths(store, tmp_path):
    store.ingest(make_batch(tmp_path / "data", {"d": [{}, {}]}))
    human = make_batch(tmp_path / "elsewhere", {"d": [{"situations": {"snow": True}}]})
    store.ingest(human, label_source="human", labels_only=True)
    rec = store.records()[0]
    assert rec.situations["snow"] is True
    assert rec.path == tmp_path / "data" / "d" / "000.jpg"
    unknown = make_batch(tmp_path, {"other": [{"situations": {"snow": True}}]})
    before = table_counts(store)
    with pytest.raises(StoreError, match=r"not in the project: 'other/000\.jpg'"):
        store.ingest(unknown, label_source="human", labels_only=True)
    assert table_counts(store) == before


def test_model_predictions_are_stored_per_model_and_read_back(store, tmp_path):
    store.ingest(make_batch(tmp_path, {"d": [{"situations": {"night": True}}, {}]}))
    names = ["d/000.jpg", "d/001.jpg"]
    store.write_situation_scores(
        "model:abc", names, ["night", "fog"], [[0.9, 0.2], [0.4, 0.7]], {"fog": 0.8}
    )
    store.write_box_predictions("model:abc", {names[0]: [Box("car", 1, 1, 9, 9, score=0.8)],
                                              names[1]: []})  # fmt: skip
    a, b = store.records(predictions="latest")
    assert a.situation_scores == {"night": 0.9, "fog": 0.2}
    assert a.predicted_boxes[0].score == 0.8 and b.predicted_boxes == []
    assert a.situations["night"] is True  # truth is untouched by predictions
    fog = store.conn.execute(
        "SELECT value FROM situation_labels WHERE source = 'model:abc' AND situation = 'fog' "
        "ORDER BY frame_id"
    ).fetchall()
    assert fog == [(0,), (0,)]  # 0.7 is below fog's threshold of 0.8
    assert store.decision_thresholds("model:abc") == {"night": 0.9, "fog": float("inf")}
    # a second run of the same model replaces, never duplicates
    store.write_situation_scores("model:abc", names[:1], ["night"], [[0.1]])
    assert store.records(predictions="model:abc")[0].situation_scores["night"] == 0.1
    assert store.model_sources() == ["model:abc"]
    with pytest.raises(StoreError, match="model:<fingerprint>"):
        store.write_situation_scores("human", names, ["night"], [[1.0], [1.0]])
    with pytest.raises(StoreError, match="not in the project"):
        store.write_box_predictions("model:abc", {"nope.jpg": []})


def test_the_latest_model_is_the_one_written_last_whatever_its_kind_of_output(
    store, tmp_path, monkeypatch
):
    """``model_sources`` lists models by their latest write (a rerun counts), read from the
    counts the triggers keep; ``latest_model_source`` is the latest that wrote situation
    scores (what coverage, the gallery and balanced selection read)."""
    from scenesift.store import project

    store.ingest(make_batch(tmp_path, {"d": [{}, {}]}))
    names = ["d/000.jpg", "d/001.jpg"]
    assert store.model_sources() == [] and store.latest_model_source() is None
    clock = iter(f"2026-01-0{day}T00:00:00+00:00" for day in range(1, 10))
    monkeypatch.setattr(project, "now", lambda: next(clock))
    store.write_situation_scores("model:old", names, ["night"], [[0.9], [0.1]])
    store.write_box_predictions("model:boxes", {names[0]: [Box("car", 1, 1, 9, 9, score=0.8)]})
    assert store.model_sources() == ["model:boxes", "model:old"]
    store.write_situation_scores("model:new", names, ["night"], [[0.2], [0.3]])
    assert store.model_sources() == ["model:new", "model:boxes", "model:old"]
    assert store.model_sources("situations") == ["model:new", "model:old"]
    assert store.model_sources("boxes") == ["model:boxes"]
    assert store.latest_model_source() == "model:new"
    store.write_situation_scores("model:old", names[:1], ["night"], [[0.5]])  # a rerun
    assert store.latest_model_source() == "model:old"
    assert store.model_sources("situations") == ["model:old", "model:new"]
    with pytest.raises(ValueError, match="kind must be"):
        store.model_sources("tags")


# ----------------------------------------------------------------------------- robustness
def test_a_reimport_of_identical_data_adds_no_imports_row(store, tmp_path):
    spec = {"d1": [{"situations": {"day": True}, "boxes": [car()]}] * 2}
    imports = "SELECT count(*) FROM imports"
    store.ingest(make_batch(tmp_path, spec))
    store.ingest(make_batch(tmp_path, spec))
    assert store.conn.execute(imports).fetchone()[0] == 1
    store.ingest(make_batch(tmp_path, {"d1": [{"situations": {"night": True}}] * 2}))
    store.ingest(make_batch(tmp_path, spec))  # the first again: it changes the frames back
    assert store.conn.execute(imports).fetchone()[0] == 3
    store.ingest(make_batch(tmp_path, spec), label_source="oracle")  # another source
    assert store.conn.execute(imports).fetchone()[0] == 4


def test_an_imported_split_is_the_split_of_its_drive(store, tmp_path):
    batch = make_batch(tmp_path, {f"d{i}": [{}, {}] for i in range(6)})
    for rec in batch.frames:
        rec.split = "test" if rec.drive in ("d0", "d1") else None
    store.ingest(batch)
    splits = dict(store.conn.execute("SELECT name, split FROM drives"))
    assert splits["d0"] == splits["d1"] == "test"
    batch.frames[0].split = "val"
    with pytest.raises(StoreError, match=r"drive 'd0' is in the test split.*'val'"):
        store.ingest(batch)
    batch.frames[0].split, batch.frames[1].split = "train", "val"  # one drive, two splits
    with pytest.raises(StoreError, match="drive 'd0'"):
        store.ingest(batch)


def test_a_box_attribute_that_is_not_finite_is_refused(store, tmp_path):
    bad = Box("car", 1, 2, 3, 4, attributes={"speed": float("nan")})
    with pytest.raises(StoreError, match=r"d1/000\.jpg.*speed"):
        store.ingest(make_batch(tmp_path, {"d1": [{"boxes": [bad]}]}))
    assert store.count_frames() == 0


def test_a_catalog_identifies_itself(store):
    assert store.conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID


@pytest.mark.parametrize("kind", ["empty", "foreign", "text"])
def test_a_file_that_is_not_a_scenesift_catalog_is_refused_and_left_alone(tmp_path, kind):
    path = tmp_path / "p" / "catalog.sqlite"
    path.parent.mkdir()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE project (key TEXT, value TEXT)")  # a name we use, too
        conn.commit()
        conn.close()
    else:
        path.write_text("not a database at all\n" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"catalog\.sqlite"):
        Store.open(tmp_path / "p")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["catalog.sqlite"]


def test_a_catalog_from_before_application_ids_is_stamped_on_opening(tmp_path):
    Store.init(tmp_path / "p").close()
    conn = sqlite3.connect(tmp_path / "p" / "catalog.sqlite")
    conn.execute("PRAGMA application_id = 0")
    conn.execute("PRAGMA user_version = 5")
    conn.execute("ALTER TABLE features DROP COLUMN image_sig")  # V6 adds it again
    conn.commit()
    conn.close()
    with Store.open(tmp_path / "p") as s:
        assert s.conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
        assert schema.version(s.conn) == schema.LATEST


def test_a_damaged_catalog_is_a_store_error_naming_it(store, tmp_path):
    store.ingest(make_batch(tmp_path, {f"d{i}": [{"boxes": [car()]}] * 50 for i in range(40)}))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = store.conn.execute("PRAGMA page_size").fetchone()[0]
    frames = store.conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'frames'")
    root = frames.fetchone()[0]
    store.close()
    path = store.root / "catalog.sqlite"
    data = path.read_bytes()
    with path.open("r+b") as f:  # garbage over one page: the rest can still be checked
        f.seek((root - 1) * page)
        f.write(b"\x42" * page)
    with pytest.raises(StoreError, match=r"catalog\.sqlite.*malformed.*scenesift check"):
        Store.open(store.root).records()
    path.write_bytes(data[: len(data) // 2])  # half-written: the schema itself is lost
    with pytest.raises(StoreError, match=r"catalog\.sqlite.*schema unreadable"):
        Store.open(store.root)
    path.write_bytes(b"\0" * len(data))  # garbage from the first page
    with pytest.raises(StoreError, match=r"catalog\.sqlite.*not a scenesift catalog"):
        Store.open(store.root)


def test_reading_a_truncated_shard_names_the_file(store):
    fp = store.arrays.put({"x": 1}, np.ones((100, 8), np.float32), kind="features")
    path = store.arrays.path_for(fp)
    path.write_bytes(path.read_bytes()[:1000])
    for mmap in (True, False):
        with pytest.raises(StoreError, match=f"{fp}.npy.*truncated"):
            store.arrays.get(fp, mmap=mmap)
