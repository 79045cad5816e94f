"""Object-level situations read off labelled boxes, stored under their own source."""

from __future__ import annotations

import sqlite3

import pytest

from io_fixtures import write_image
from scenesift.derive import DeriveSettings, derive_all, derive_situations
from scenesift.io.kitti import read_kitti
from scenesift.pipelines import tagger as tagger_pipe
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store
from scenesift.store.integrity import check
from scenesift.store.schema import MIGRATIONS, migrate
from scenesift.taxonomy import default_taxonomy

TAX = default_taxonomy()


def frame(boxes, height=375) -> FrameRecord:
    return FrameRecord("f.png", "f.png", "d", 1242, height, boxes=boxes)


def car(distance=None, h=50.0, **attrs) -> Box:
    if distance is not None:
        attrs["distance"] = distance
    return Box("car", 10, 100, 60, 100 + h, attributes=attrs, **_flags(attrs))


def _flags(attrs):
    return {k: attrs.pop(k) for k in ("occluded", "truncated") if k in attrs}


def test_unlabelled_objects_derive_nothing_and_no_objects_derive_negatives():
    assert derive_situations(frame(None), TAX) == {}
    assert derive_situations(frame([]), TAX) == {
        "pedestrian_present": False,
        "crowded": False,
        "close_participant": False,
        "far_participant": False,
    }


def test_labelled_distances_decide_close_and_far():
    got = derive_situations(frame([car(8.0), car(25.0)]), TAX)
    assert (got["close_participant"], got["far_participant"]) == (True, False)
    assert derive_situations(frame([car(41.0)]), TAX)["far_participant"] is True


def test_without_a_distance_the_box_height_estimates_one():
    s = DeriveSettings()
    # distance = focal_per_height * image height * 1.5 m / box height
    near_h = s.focal_per_height * 375 * 1.5 / 9.0  # 9 m
    far_h = s.focal_per_height * 375 * 1.5 / 50.0  # 50 m
    got = derive_situations(frame([car(h=near_h), car(h=far_h)]), TAX, s)
    assert (got["close_participant"], got["far_participant"]) == (True, True)
    # a truncated box is cut, so it looks farther than it is: it cannot say "far"
    cut = derive_situations(frame([car(h=far_h, truncated=True)]), TAX, s)
    assert "far_participant" not in cut and cut["close_participant"] is False


def test_crowded_counts_participants_at_least_half_visible():
    visible = [car(20.0, kitti_occlusion=1) for _ in range(8)]
    hidden = [car(20.0, kitti_occlusion=2) for _ in range(8)]
    cones = [Box("traffic_cone", 1, 1, 5, 5) for _ in range(8)]
    assert derive_situations(frame(visible), TAX)["crowded"] is True
    assert derive_situations(frame(hidden + visible[:7] + cones), TAX)["crowded"] is False
    # occluded to an unknown extent: cannot tell whether 8 are half visible
    flagged = [car(20.0, occluded=True) for _ in range(8)]
    assert "crowded" not in derive_situations(frame(flagged), TAX)


def test_ignore_regions_are_not_participants():
    region = Box("pedestrian", 1, 1, 50, 300, attributes={"iscrowd": True})
    assert derive_situations(frame([region]), TAX)["pedestrian_present"] is False


LINE = "{} 0.0 {} -1.5 {} {} {} {} 1.5 1.6 3.9 -1.0 1.8 {} -1.6"


@pytest.fixture
def kitti_project(tmp_path):
    """KITTI frames: pedestrians at 6 m in even frames, only far cars in odd ones."""
    for i in range(12):
        write_image(tmp_path / "kitti" / "image_2" / f"{i:06d}.png")
        lines = [LINE.format("Car", 0, 1, 2, 30, 40, 55.0)]
        if i % 2 == 0:
            lines.append(LINE.format("Pedestrian", 0, 40, 5, 50, 45, 6.0))
        (tmp_path / "kitti" / "label_2").mkdir(exist_ok=True)
        (tmp_path / "kitti" / "label_2" / f"{i:06d}.txt").write_text("\n".join(lines) + "\n")
    store = Store.init(tmp_path / "proj")
    batch = read_kitti(tmp_path / "kitti", store.taxonomy)
    store.ingest(batch)
    yield store, batch
    store.close()


def test_derived_situations_are_truth_for_a_labelled_import_and_never_hide_a_person(kitti_project):
    store, batch = kitti_project
    assert tagger_pipe.with_truth(store, "train") == []  # KITTI brings boxes, no situations
    store.write_derived_situations(derive_all(batch.frames, store.taxonomy))
    truth = {r.name: r.situations for r in store.records()}
    assert truth["000000.png"]["pedestrian_present"] is True
    assert truth["000000.png"]["close_participant"] is True
    assert truth["000001.png"] == {
        "pedestrian_present": False,
        "crowded": False,
        "close_participant": False,
        "far_participant": True,
    }
    assert tagger_pipe.with_truth(store, "train") or tagger_pipe.with_truth(store, "test")

    human = FrameRecord("000000.png", batch.frames[0].path, "000000.png",
                        situations={"pedestrian_present": False})  # fmt: skip
    store.ingest(ImportBatch([human], batch.image_root, ImportReport("review")), "human")
    store.write_derived_situations(derive_all(batch.frames, store.taxonomy))  # derived again
    [first] = [r for r in store.records() if r.name == "000000.png"]
    assert first.situations["pedestrian_present"] is False  # the person's word stands
    [derived] = [r for r in store.records(source="derived") if r.name == "000000.png"]
    assert derived.situations["pedestrian_present"] is True  # kept, under its own source
    assert check(store).problems() == []  # the running counts agree with a recount


def test_the_v7_migration_lets_an_older_catalog_store_derived_labels(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    migrate(conn, MIGRATIONS[:6])
    conn.execute("INSERT INTO image_roots (id, path) VALUES (1, '/')")
    conn.execute("INSERT INTO drives (name, split) VALUES ('d', 'train')")
    conn.execute("INSERT INTO frames (id, name, root_id, path, drive, state, updated_at) "
                 "VALUES (1, 'a', 1, 'a', 'd', 'labelled', 'now')")  # fmt: skip
    conn.execute("INSERT INTO situations (name, position) VALUES ('crowded', 0)")
    assert migrate(conn) == len(MIGRATIONS) - 6
    insert = (
        "INSERT INTO situation_labels (frame_id, situation, source, value, created_at) "
        "VALUES (1, 'crowded', ?, ?, 'now')"
    )
    conn.execute(insert, ("derived", 1))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(insert, ("guessed", 1))
    conn.execute(insert, ("import", 0))  # a better source takes over the truth count
    counts = conn.execute(
        "SELECT source, value, n FROM count_labels WHERE n != 0 ORDER BY source"
    ).fetchall()
    assert counts == [("derived", 1, 1), ("import", 0, 1), ("truth", 0, 1)]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_scenesift_import_derives_object_situations_but_not_from_held_back_truth(tmp_path):
    from typer.testing import CliRunner

    from scenesift.cli import app

    write_image(tmp_path / "kitti" / "image_2" / "000001.png")
    (tmp_path / "kitti" / "label_2").mkdir()
    (tmp_path / "kitti" / "label_2" / "000001.txt").write_text(
        LINE.format("Pedestrian", 0, 0, 5, 20, 45, 6.0) + "\n"
    )
    for as_, expected in (("oracle", {}), ("import", {"pedestrian_present": True})):
        project = tmp_path / f"proj-{as_}"
        runner = CliRunner()
        assert runner.invoke(app, ["init", str(project)]).exit_code == 0
        result = runner.invoke(
            app, ["import", "kitti", str(tmp_path / "kitti"), "--project", str(project),
                  "--as", as_],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        with Store.open(project) as store:
            [rec] = store.records(source="derived")
            assert {k: v for k, v in rec.situations.items() if k in expected} == expected
