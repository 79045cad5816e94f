"""One place that maps a format name to its reader and writer (used by the CLI and the demo)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from scenesift.errors import FormatError
from scenesift.records import FrameRecord, ImportBatch
from scenesift.taxonomy import Taxonomy

if TYPE_CHECKING:  # the CLI reads the format names without loading the image code
    from scenesift.io.common import Track

IMPORT_FORMATS = ("bdd", "kitti", "coco", "csv", "labelstudio")
EXPORT_FORMATS = ("bdd", "kitti", "coco", "coco-results", "csv", "labelstudio")

#: The options of ``scenesift import`` each format uses. Any other is refused, not ignored:
#: a ``--mapping`` that silently does nothing looks exactly like one that worked.
IMPORT_OPTIONS: dict[str, frozenset[str]] = {
    "bdd": frozenset({"images", "mapping"}),
    "kitti": frozenset({"mapping"}),
    "coco": frozenset({"images"}),
    "csv": frozenset({"images"}),
    "labelstudio": frozenset(),
}


def read_dataset(
    fmt: str,
    source: Path,
    taxonomy: Taxonomy,
    *,
    images: Path | None = None,
    mapping: Path | None = None,
    verify: bool = True,
    track: Track | None = None,
) -> ImportBatch:
    """Parse and validate ``source`` in format ``fmt``; nothing is written. An option the
    format cannot use is a FormatError naming it."""
    given = {"images": images, "mapping": mapping}
    for option, value in given.items():
        if value is not None and option not in IMPORT_OPTIONS.get(fmt, frozenset({option})):
            usable = ", ".join(f"--{o}" for o in sorted(IMPORT_OPTIONS[fmt])) or "none"
            raise FormatError(value, f"--{option}", f"no --{option} for {fmt} (it uses: {usable})")
    if fmt == "bdd":
        from scenesift.io.bdd import BddMapping, read_bdd

        return read_bdd(
            source, taxonomy, image_dir=images, verify_images=verify, track=track,
            mapping=BddMapping.from_toml(mapping) if mapping else None,
        )  # fmt: skip
    if fmt == "kitti":
        from scenesift.io.kitti import read_class_map, read_kitti

        class_map = read_class_map(mapping, taxonomy) if mapping else None
        return read_kitti(source, taxonomy, verify_images=verify, track=track, class_map=class_map)
    if fmt == "coco":
        from scenesift.io.coco import read_coco

        return read_coco(source, taxonomy, image_dir=images, verify_images=verify, track=track)
    if fmt == "csv":
        from scenesift.io.csv_folder import read_csv_folder

        return read_csv_folder(
            source, taxonomy, image_dir=images, verify_images=verify, track=track
        )
    if fmt == "labelstudio":
        from scenesift.io.labelstudio import read_labelstudio_export

        return read_labelstudio_export(source, taxonomy, verify_images=verify, track=track)
    raise ValueError(f"unknown import format {fmt!r}; expected one of {IMPORT_FORMATS}")


def write_dataset(fmt: str, frames: Iterable[FrameRecord], taxonomy: Taxonomy, out: Path) -> Path:
    """Write frames in format ``fmt``; returns the file or folder written."""
    frames = list(frames)
    if fmt == "bdd":
        from scenesift.io.bdd import write_bdd

        return write_bdd(frames, out)
    if fmt == "kitti":
        from scenesift.io.kitti import write_kitti

        return write_kitti(frames, out)
    if fmt == "coco":
        from scenesift.io.coco import write_coco

        return write_coco(frames, taxonomy, out)
    if fmt == "coco-results":
        from scenesift.io.coco import write_coco_predictions

        return write_coco_predictions(frames, taxonomy, out)
    if fmt == "csv":
        from scenesift.io.csv_folder import write_csv_folder

        return write_csv_folder(frames, taxonomy, out)
    if fmt == "labelstudio":
        from scenesift.io.labelstudio import write_labelstudio_tasks

        return write_labelstudio_tasks(frames, taxonomy, out)
    raise ValueError(f"unknown export format {fmt!r}; expected one of {EXPORT_FORMATS}")
