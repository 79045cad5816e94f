"""KITTI object detection: ``image_2/`` images with ``label_2/<stem>.txt`` box files.

Lines read ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry [score]``. Only the 2D
box, the class, truncation, occlusion and depth matter to scenesift; the rest of the 3D fields
are written back as KITTI's "unknown" defaults so the files stay valid for KITTI tools.
KITTI object detection has no drives: every frame is its own drive.

``DontCare`` regions hold objects nobody labelled. They are kept as *ignore regions*: one
box per project class with ``iscrowd`` set, COCO's own way to say "detections here are
neither right nor wrong", so the evaluation ignores detections inside them (as KITTI's own
benchmark does) instead of counting them as false positives, and training neither rewards
nor punishes a detection inside them (``models.detector_net.IGNORE``).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from scenesift.io.common import (
    ImageProblem,
    Track,
    atomic_write,
    clip_box,
    is_text,
    keep_boxes,
    printable,
    probe_image,
    read_text,
    tracked,
)
from scenesift.io.errors import FormatError
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.taxonomy import Taxonomy

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

#: KITTI's type for regions with unlabelled objects: kept as ignore regions unless mapped.
DONTCARE = "DontCare"

#: KITTI type -> project class; None means "not an object we model" (left out, counted in
#: the import report). A class map given to :func:`read_kitti` is applied over this one.
DEFAULT_CLASS_MAP: dict[str, str | None] = {
    "Car": "car",
    "Van": "car",
    "Truck": "truck",
    "Pedestrian": "pedestrian",
    "Person_sitting": "pedestrian",
    "Cyclist": "cyclist",
    "Misc": None,
    "Tram": None,
}

#: Project class -> KITTI type when writing; classes not listed keep their own name.
REVERSE_CLASS_MAP = {
    "car": "Car",
    "truck": "Truck",
    "pedestrian": "Pedestrian",
    "cyclist": "Cyclist",
}

_FIELDS = ("truncated", "occluded", "alpha", "x1", "y1", "x2", "y2")
_FIELDS += ("h", "w", "l", "x", "y", "z", "ry", "score")
_TRUNCATION_THRESHOLD = 0.1
#: Only these end a line (``str.splitlines`` also splits at form feeds, U+2028, ..., which
#: would shift the line numbers in error messages away from what an editor shows).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def read_kitti(
    root: Path,
    taxonomy: Taxonomy,
    *,
    verify_images: bool = True,
    track: Track | None = None,
    class_map: Mapping[str, str | None] | None = None,
    as_predictions: bool = False,
) -> ImportBatch:
    """Read a KITTI split folder (``root/image_2``, ``root/label_2``) into a batch.

    ``class_map`` maps KITTI types to project classes over :data:`DEFAULT_CLASS_MAP`; types
    mapped to None are left out (counted); ``DontCare`` lines become ignore regions unless
    mapped (see the module docstring). An image
    without a label file gets ``boxes=None`` (not labelled). With ``as_predictions`` the
    files are read as detector output (16th field = score) into ``predicted_boxes``.
    """
    root = Path(root).resolve()
    image_dir, label_dir = root / "image_2", root / "label_2"
    if not image_dir.is_dir():
        raise FormatError(root, "image_2", "a KITTI folder with image_2/ (and label_2/)")
    mapping = {**DEFAULT_CLASS_MAP, **(class_map or {})}
    report = ImportReport(source=f"kitti:{root}")
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    _check_unique_stems(images)
    _report_orphan_labels(label_dir, {p.stem for p in images}, report)
    frames = []
    for image in tracked(images, track):
        if not is_text(image.name):  # bytes that are not UTF-8: the catalog stores text
            report.skipped_images.append((printable(image), "file name is not UTF-8"))
            continue
        label_file = label_dir / f"{image.stem}.txt"
        parsed = _parse_label_file(label_file) if label_file.is_file() else None
        try:
            width, height = probe_image(image, verify_images)
        except ImageProblem as e:
            report.skipped_images.append((str(image), str(e)))
            continue
        boxes = None
        if parsed is not None:
            boxes = _keep_boxes(parsed, mapping, taxonomy, width, height, report)
        frame = FrameRecord(
            name=image.name, path=image, drive=image.name, width=width, height=height
        )
        if as_predictions:
            frame.predicted_boxes = boxes or []
        else:
            frame.boxes = boxes
        report.boxes += sum(not b.attributes.get("iscrowd") for b in boxes or ())
        frames.append(frame)
    report.frames = len(frames)
    return ImportBatch(frames=frames, image_root=image_dir, report=report)


def _check_unique_stems(images: list[Path]) -> None:
    """``000001.jpg`` and ``000001.png`` would share ``label_2/000001.txt``: whose is it?"""
    seen: dict[str, Path] = {}
    for image in images:
        other = seen.setdefault(image.stem, image)
        if other is not image:
            raise FormatError(
                printable(image.parent), f"{printable(other.name)} and {printable(image.name)}",
                f"one image per name stem (both would read label_2/{printable(image.stem)}.txt)",
            )  # fmt: skip


def _report_orphan_labels(label_dir: Path, stems: set[str], report: ImportReport) -> None:
    """A label file without its image usually means a broken copy: show it in the summary."""
    if not label_dir.is_dir():
        return
    for label in sorted(label_dir.glob("*.txt")):
        if label.stem not in stems:
            report.skipped_images.append((printable(label), "label file without an image"))


def _parse_label_file(path: Path) -> list[Box]:
    """All boxes of a label file with their raw KITTI type; FormatError on the first bad line."""
    text = read_text(path)
    return [
        _parse_line(line, path, n)
        for n, line in enumerate(_LINE_BREAK.split(text), start=1)
        if line.strip()
    ]


def _parse_line(line: str, shown: Path, n: int) -> Box:
    parts = line.split()
    if len(parts) not in (15, 16):
        raise FormatError(shown, f"line {n}", "15 or 16 whitespace-separated fields", len(parts))
    values: dict[str, float] = {}
    for name, text in zip(_FIELDS, parts[1:], strict=False):
        try:
            values[name] = float(text)
        except ValueError:
            raise FormatError(shown, f"line {n}", f"a number for {name}", text) from None
        if not math.isfinite(values[name]):
            raise FormatError(shown, f"line {n}", f"a finite number for {name}", text)
    kitti_type = parts[0]
    if kitti_type == "DontCare":  # DontCare lines carry -1 truncation/occlusion by convention
        return Box(kitti_type, values["x1"], values["y1"], values["x2"], values["y2"])
    t, o = values["truncated"], values["occluded"]
    if not 0.0 <= t <= 1.0:
        raise FormatError(shown, f"line {n}", "truncated between 0 and 1", parts[1])
    if o not in (0.0, 1.0, 2.0, 3.0):
        raise FormatError(shown, f"line {n}", "occluded as 0, 1, 2 or 3", parts[2])
    attributes: dict[str, float | int] = {"truncation": t, "kitti_occlusion": int(o)}
    if values["z"] > 0:  # -1000 marks an unknown location; a visible object is in front
        attributes["distance"] = values["z"]
    return Box(
        category=kitti_type,
        x1=values["x1"],
        y1=values["y1"],
        x2=values["x2"],
        y2=values["y2"],
        occluded=o >= 1,
        truncated=t > _TRUNCATION_THRESHOLD,
        score=values.get("score"),
        attributes=attributes,
    )


def _keep_boxes(
    parsed: list[Box],
    mapping: Mapping[str, str | None],
    taxonomy: Taxonomy,
    width: int,
    height: int,
    report: ImportReport,
) -> list[Box]:
    """Map KITTI types to classes, drop ignored and unknown ones, clip to the image; each
    unmapped DontCare region becomes an ignore region of every class."""
    regions = [b for b in parsed if b.category == DONTCARE and DONTCARE not in mapping]
    objects = [b for b in parsed if not (b.category == DONTCARE and DONTCARE not in mapping)]
    kept = keep_boxes(objects, mapping, taxonomy.classes, width, height, report)
    for region in regions:
        clipped = clip_box(region, width, height, report)
        if clipped is None:
            continue
        report.ignore_regions += 1
        attributes = {"iscrowd": True, "kitti_type": DONTCARE}
        kept.extend(replace(clipped, category=c, attributes=attributes) for c in taxonomy.classes)
    return kept


def read_class_map(path: Path, taxonomy: Taxonomy) -> dict[str, str | None]:
    """A TOML class map: ``[classes]`` KITTI type = project class, ``""`` to leave the type
    out (``Van = "truck"``, ``Tram = ""``); applied over :data:`DEFAULT_CLASS_MAP`."""
    try:
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as e:
        raise FormatError(path, str(e), "a valid TOML class map") from None
    classes = data.get("classes")
    if not isinstance(classes, dict) or set(data) - {"classes"}:
        raise FormatError(
            path, "top level", "one table [classes] of KITTI type = class", list(data)
        )
    out: dict[str, str | None] = {}
    for kitti_type, name in classes.items():
        if not isinstance(name, str) or (name and name not in taxonomy.classes):
            expected = f'a class of the project ({", ".join(taxonomy.classes)}) or ""'
            raise FormatError(path, f"classes.{kitti_type}", expected, name)
        out[kitti_type] = name or None
    return out


def write_kitti(frames: Iterable[FrameRecord], out_dir: Path, *, predictions: bool = False) -> Path:
    """Write ``out_dir/label_2/<stem>.txt`` for every frame with labelled boxes; return label_2.

    Frames with ``boxes=None`` get no file (so they read back as unlabelled); fields
    scenesift does not know are KITTI's defaults. With ``predictions`` the frames'
    ``predicted_boxes`` are written with their score as the 16th field.
    Ignore regions are written once each, as ``DontCare``.
    """
    label_dir = Path(out_dir) / "label_2"
    label_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for frame in frames:
        boxes = frame.predicted_boxes if predictions else frame.boxes
        if boxes is None:
            continue
        stem = Path(frame.name).stem
        if stem in written:
            raise ValueError(
                f"frames {written[stem]!r} and {frame.name!r} would both be written to "
                f"label_2/{stem}.txt; KITTI folders are flat"
            )
        written[stem] = frame.name
        path = label_dir / f"{stem}.txt"
        with atomic_write(path) as f:
            f.writelines(
                _format_line(box, with_score=predictions) + "\n"
                for box in boxes
                if not box.attributes.get("iscrowd")
            )
            regions = dict.fromkeys(
                (b.x1, b.y1, b.x2, b.y2) for b in boxes if b.attributes.get("iscrowd")
            )
            f.writelines(_dontcare_line(*xyxy) + "\n" for xyxy in regions)
    return label_dir


def _dontcare_line(x1: float, y1: float, x2: float, y2: float) -> str:
    coords = " ".join(f"{v:.4f}" for v in (x1, y1, x2, y2))
    return f"{DONTCARE} -1 -1 -10 {coords} -1 -1 -1 -1000 -1000 -1000 -10"


def _format_line(box: Box, with_score: bool) -> str:
    attrs = box.attributes
    truncation = float(attrs.get("truncation", 1.0 if box.truncated else 0.0))
    occlusion = int(attrs.get("kitti_occlusion", 1 if box.occluded else 0))
    kitti_type = REVERSE_CLASS_MAP.get(box.category, box.category)
    coords = " ".join(f"{v:.4f}" for v in (box.x1, box.y1, box.x2, box.y2))
    line = f"{kitti_type} {truncation:.2f} {occlusion} -10 {coords} -1 -1 -1 -1000 -1000 -1000 -10"
    if with_score:
        line += f" {box.score if box.score is not None else 1.0:.6f}"
    return line
