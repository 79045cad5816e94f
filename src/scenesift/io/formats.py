"""One place that maps a format name to its reader and writer (used by the CLI and the demo)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from scenesift.errors import FormatError
from scenesift.records import Box, FrameRecord, ImportBatch
from scenesift.taxonomy import Taxonomy

if TYPE_CHECKING:  # the CLI reads the format names without loading the image code
    from scenesift.io.common import Track

IMPORT_FORMATS = ("bdd", "kitti", "coco", "csv", "labelstudio", "folder", "yolo")
EXPORT_FORMATS = ("bdd", "kitti", "coco", "coco-results", "csv", "labelstudio", "yolo")

#: The options of ``scenesift import`` each format uses. Any other is refused, not ignored:
#: a ``--mapping`` that silently does nothing looks exactly like one that worked.
IMPORT_OPTIONS: dict[str, frozenset[str]] = {
    "bdd": frozenset({"images", "mapping"}),
    "kitti": frozenset({"mapping"}),
    "coco": frozenset({"images"}),
    "csv": frozenset({"images"}),
    "labelstudio": frozenset(),
    "folder": frozenset({"pattern"}),
    "yolo": frozenset(),
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
    pattern: str | None = None,
) -> ImportBatch:
    """Parse and validate ``source`` in format ``fmt``; nothing is written. An option the
    format cannot use is a FormatError naming it. ``pattern`` (folder): a preset or regular
    expression giving each frame's drive and timestamp."""
    given = {"images": images, "mapping": mapping, "pattern": pattern}
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
    if fmt == "folder":
        from scenesift.io.folder import name_pattern, read_folder

        return read_folder(source, pattern=name_pattern(pattern), verify_images=verify, track=track)
    if fmt == "yolo":
        from scenesift.io.yolo import read_yolo

        return read_yolo(source, taxonomy, verify_images=verify, track=track)
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
    if fmt == "yolo":
        from scenesift.io.yolo import write_yolo

        return write_yolo(frames, taxonomy, out)
    raise ValueError(f"unknown export format {fmt!r}; expected one of {EXPORT_FORMATS}")


def read_predictions(
    source: Path,
    frames: Sequence[FrameRecord],
    classes: Sequence[str],
    *,
    images: Path | None = None,
    names: Path | None = None,
) -> dict[str, list[Box]]:
    """A detector's predictions per frame name, in whichever form it wrote them: a folder
    of YOLO txt files with confidences, or a COCO results JSON whose image ids ``images``
    (a COCO file of the frames, e.g. ``export coco pool.json``) resolves, or, without
    ``images``, Ultralytics' ``predictions.json`` (image ids are stems). ``names``: the
    model's data.yaml (class names by id), default the project's classes in order."""
    source = Path(source)
    if source.is_dir():
        from scenesift.io.yolo import read_names, read_yolo_predictions

        model_names = read_names(names) if names is not None else None
        return read_yolo_predictions(source, frames, classes, model_names)
    from scenesift.io.coco_results import read_coco_results

    if images is not None:
        return read_coco_results(source, images, classes)
    # Ultralytics' predictions.json: image_id = the image's stem (an int when numeric),
    # category_id = the model's class index + 1
    from scenesift.io.yolo import read_names, stem_ids

    model_names = read_names(names) if names is not None else None
    return read_coco_results(source, stem_ids(frames), classes, category_names=model_names)
