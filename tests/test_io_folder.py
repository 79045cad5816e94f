"""`import folder`: a plain folder of unlabelled images, drives from the file names."""

from __future__ import annotations

import pytest

from io_fixtures import write_image, write_truncated_jpeg
from scenesift.io.folder import PRESETS, name_pattern, read_folder


def test_every_image_under_the_folder_becomes_an_unlabelled_frame_with_its_size(tmp_path):
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "sub" / "deeper" / "b.png", size=(40, 30))
    write_image(tmp_path / ".cache" / "c.jpg")  # hidden: not a frame
    (tmp_path / "notes.txt").write_text("not an image")
    batch = read_folder(tmp_path)
    assert [(f.name, f.width, f.height) for f in batch.frames] == [
        ("a.jpg", 64, 48),
        ("sub/deeper/b.png", 40, 30),
    ]
    assert all(f.boxes is None and not f.situations for f in batch.frames)
    assert [f.drive for f in batch.frames] == ["a.jpg", "sub/deeper/b.png"]  # own drives


def test_corrupt_images_are_listed_and_skipped(tmp_path):
    write_image(tmp_path / "good.jpg")
    write_truncated_jpeg(tmp_path / "bad.jpg")
    batch = read_folder(tmp_path)
    assert [f.name for f in batch.frames] == ["good.jpg"]
    assert [p.rsplit("/", 1)[-1] for p, _ in batch.report.skipped_images] == ["bad.jpg"]


def test_bdd_names_become_drives_and_frame_numbers_timestamps(tmp_path):
    for name in ("b1c66a42-6f7d68ca-0000001.jpg", "b1c66a42-6f7d68ca-0000006.jpg",
                 "c0a1b2c3-0011aabb.jpg"):  # fmt: skip
        write_image(tmp_path / name)
    batch = read_folder(tmp_path, pattern=PRESETS["bdd100k"])
    got = [(f.drive, f.timestamp) for f in batch.frames]
    assert got == [("b1c66a42-6f7d68ca", 0.2), ("b1c66a42-6f7d68ca", 1.2),
                   ("c0a1b2c3-0011aabb", None)]  # fmt: skip


def test_kitti_raw_paths_become_drives_at_10_hz(tmp_path):
    d = tmp_path / "2011_09_26" / "2011_09_26_drive_0001_sync" / "image_02" / "data"
    write_image(d / "0000000000.png")
    write_image(d / "0000000015.png")
    batch = read_folder(tmp_path, pattern=name_pattern("kitti-raw"))
    assert {f.drive for f in batch.frames} == {"2011_09_26_drive_0001_sync"}
    assert [f.timestamp for f in batch.frames] == pytest.approx([0.0, 1.5])


def test_a_custom_pattern_needs_a_drive_group_and_must_match_something(tmp_path):
    write_image(tmp_path / "cam0_run7_t12.5.jpg")
    batch = read_folder(tmp_path, pattern=name_pattern(r"(?P<drive>run\d+)_t(?P<time>[\d.]+)\."))
    assert [(f.drive, f.timestamp) for f in batch.frames] == [("run7", 12.5)]
    with pytest.raises(ValueError, match="drive"):
        name_pattern(r"run\d+")
    with pytest.raises(ValueError, match="matches none"):
        read_folder(tmp_path, pattern=PRESETS["kitti-raw"])
