"""Fuzzing the KITTI importer: broken label files fail cleanly, never half-written."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from strategies import FUZZ, check_import, kitti_label_files, write_tiny_jpeg

from scenesift.io.errors import FormatError
from scenesift.io.kitti import read_kitti
from scenesift.store import Store
from scenesift.taxonomy import default_taxonomy

IMAGES = ("000000.png", "000001.jpg", "000002.jpg")  # 000002 has no label file: unlabelled


def _line(kind: str, truncated: str, occluded: str, box: str, z: str = "20.1") -> list[str]:
    return [kind, truncated, occluded, "-1.57", *box.split(), "1.5", "1.6", "3.9", "1.0", "1.5",
            z, "0.01"]  # fmt: skip


VALID = {
    "000000": [
        _line("Car", "0.00", "0", "1.0 1.0 6.0 7.0"),
        _line("Pedestrian", "0.50", "2", "0.5 0.5 12.0 3.0", z="-1000"),
        _line("DontCare", "-1", "-1", "0 0 2 2"),
    ],
    "000001": [
        _line("Cyclist", "1.00", "3", "2 2 4 4"),
        _line("Misc", "0", "0", "1 1 2 2"),
        _line("Tram", "0", "1", "1 1 2 2"),
        _line("Spaceship", "0", "1", "1 1 2 2"),
    ],
}


def write_labels(label_dir, files: dict[str, bytes]) -> None:
    label_dir.mkdir(exist_ok=True)
    for old in label_dir.iterdir():
        old.unlink()
    for stem, data in files.items():
        (label_dir / f"{stem}.txt").write_bytes(data)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_kitti")
    for i, name in enumerate(IMAGES):
        write_tiny_jpeg(root / "image_2" / name, i)
    write_labels(root / "label_2", {k: "".join(" ".join(x) + "\n" for x in v).encode()
                                    for k, v in VALID.items()})  # fmt: skip
    store = Store.init(root / "project")
    store.ingest(read_kitti(root, store.taxonomy))
    yield root, store
    store.close()


@pytest.mark.fuzz
@FUZZ
@given(files=kitti_label_files(VALID))
def test_broken_kitti_labels_fail_cleanly_and_change_nothing(env, files):
    root, store = env
    write_labels(root / "label_2", files)
    inputs = [root, *(root / "label_2" / f"{stem}.txt" for stem in files)]
    check_import(store, "kitti", root, inputs)


def _kitti(root, labels: bytes, image: str = "000000.jpg"):
    write_tiny_jpeg(root / "image_2" / image)
    write_labels(root / "label_2", {os.path.splitext(image)[0]: labels})
    return root


def test_a_byte_order_mark_does_not_become_part_of_the_first_type(tmp_path):
    root = _kitti(tmp_path, b"\xef\xbb\xbf" + " ".join(VALID["000000"][0]).encode())
    [frame] = read_kitti(root, default_taxonomy()).frames
    assert [b.category for b in frame.boxes] == ["car"]  # was: unknown type '\ufeffCar'


def test_line_numbers_count_line_breaks_only(tmp_path):
    line = " ".join(VALID["000000"][0])
    root = _kitti(tmp_path, f"{line}\x0c\n{line}\nCar 0 0\n".encode())  # a form feed: blank
    with pytest.raises(FormatError, match=r"000000\.txt: line 3: expected 15 or 16"):
        read_kitti(root, default_taxonomy())


def test_an_image_whose_name_is_not_utf8_is_skipped_and_reported(tmp_path):
    root = _kitti(tmp_path, b"", image=os.fsdecode(b"\xff.jpg"))  # sqlite cannot store it
    write_tiny_jpeg(root / "image_2" / "fine.jpg")
    batch = read_kitti(root, default_taxonomy())
    assert [f.name for f in batch.frames] == ["fine.jpg"]
    [(path, reason)] = batch.report.skipped_images
    assert reason == "file name is not UTF-8" and path.endswith("\\xff.jpg")
    store = Store.init(tmp_path / "project")
    store.ingest(batch)
    store.close()
