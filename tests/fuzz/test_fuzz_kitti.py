"""Fuzzing the KITTI importer: broken label files fail cleanly, never half-written."""

from __future__ import annotations

import pytest
from hypothesis import given
from strategies import FUZZ, check_import, kitti_label_files, write_tiny_jpeg

from scenesift.io.kitti import read_kitti
from scenesift.store import Store

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
