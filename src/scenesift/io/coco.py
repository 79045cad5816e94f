"""COCO instances (ground truth) and COCO results (predictions).

Ground truth lists the images that were labelled, so an image without annotations is a
labelled empty frame (``boxes=[]``); a file without an ``annotations`` key at all (COCO's
``image_info`` files) carries no boxes (``boxes=None``). Beyond the standard we read and
write per-image ``drive`` (also ``sequence``/``video_id`` when reading), ``timestamp``
(seconds) and a ``situations`` object (``{"night": true, "rain": false}``).
Images without a drive are each their own drive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from scenesift.io.common import (
    ImageProblem,
    JsonCursor,
    Track,
    check_exclusive,
    drive_id,
    image_folder,
    is_file,
    is_relative_name,
    keep_boxes,
    probe_image,
    read_json,
    tracked,
    write_json,
)
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.taxonomy import Taxonomy

_DRIVE_KEYS = ("drive", "sequence", "video_id")
CocoId = int | str
T = TypeVar("T")
_IMAGE_DIR_SAMPLE = 20


@dataclass
class _Image:
    """One validated ``images`` entry, before its file is looked at."""

    file_name: str
    width: int | None
    height: int | None
    drive: str | None
    timestamp: float | None
    situations: dict[str, bool]
    boxes: list[Box] = field(default_factory=list)  # raw COCO category names


def read_coco(
    annotations_json: Path,
    taxonomy: Taxonomy,
    *,
    verify_images: bool = True,
    track: Track | None = None,
    image_dir: Path | None = None,
    category_map: Mapping[str, str | None] | None = None,
) -> ImportBatch:
    """Read a COCO instances file; images are looked up under ``image_dir``.

    ``image_dir`` defaults to the JSON's folder, or ``images/`` beside it when more of the
    files are found there. ``category_map`` maps COCO category names to project classes
    (default: the same name); names mapped to None are ignored without being counted.
    An image whose real size differs from its declared size is skipped: its boxes would
    be misplaced.
    """
    path = Path(annotations_json).resolve()
    doc = JsonCursor(read_json(path), path)
    doc.obj()
    categories = read_categories(doc["categories"])
    images = _read_images(doc["images"], taxonomy)
    has_annotations = doc.has("annotations")
    if has_annotations:
        _read_annotations(doc["annotations"], images, categories)
    root = _find_image_dir(path, images) if image_dir is None else image_folder(image_dir).resolve()
    report = ImportReport(source=f"coco:{path}")
    frames = []
    for image in tracked(list(images.values()), track):
        frame = _to_frame(image, root, taxonomy, category_map or {}, verify_images, report)
        if frame is None:
            continue
        if not has_annotations:
            frame.boxes = None
        frames.append(frame)
        report.boxes += len(frame.boxes or ())
        report.situation_values += len(frame.situations)
    report.frames = len(frames)
    return ImportBatch(frames=frames, image_root=root, report=report)


def coco_id(cur: JsonCursor) -> int | str:
    """COCO ids are integers; some tools write strings (unambiguous too) or 3.0 (taken as 3)."""
    v = cur.value
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int | str) or v == "":
        raise cur.error("an integer id", v)
    return v


def read_categories(cur: JsonCursor) -> dict[CocoId, str]:
    """``$.categories`` as id -> name (an id used twice is an error)."""
    return {cid: item.string("name") for cid, item in by_id(cur, "category").items()}


def by_id(cur: JsonCursor, what: str) -> dict[CocoId, JsonCursor]:
    """The entries of a COCO list (``$.images``, ``$.categories``) by their ``id``, each id
    used once: what every reader resolves ``image_id`` and ``category_id`` against."""
    out: dict[CocoId, JsonCursor] = {}
    for item in cur.items():
        key = coco_id(item["id"])
        if key in out:
            raise item.error(f"an {what} id used once" if what[0] in "aeiou"
                             else f"a {what} id used once", key, "id")  # fmt: skip
        out[key] = item
    return out


def resolve_ids(
    item: JsonCursor, images: Mapping[CocoId, T], categories: Mapping[CocoId, str]
) -> tuple[T, str]:
    """An annotation's (or a result's) image and category name, from its ``image_id`` and
    ``category_id``; FormatError at the JSON path of an unknown one."""
    item.obj()
    image_id = coco_id(item["image_id"])
    if image_id not in images:
        raise item.error("the id of an image in the ground truth's $.images", image_id, "image_id")
    category_id = coco_id(item["category_id"])
    if category_id not in categories:
        raise item.error("the id of a category in $.categories", category_id, "category_id")
    return images[image_id], categories[category_id]


def coco_bbox(item: JsonCursor) -> tuple[float, float, float, float]:
    """``bbox`` [x, y, width, height] as x1, y1, x2, y2."""
    bbox = item["bbox"]
    if not isinstance(bbox.value, list) or len(bbox.value) != 4:
        raise bbox.error("a bbox [x, y, width, height]", bbox.value)
    x, y, w, h = (bbox[i].number() for i in range(4))
    if w < 0 or h < 0:
        raise bbox.error("a bbox with width and height >= 0", bbox.value)
    return x, y, x + w, y + h


def _read_images(cur: JsonCursor, taxonomy: Taxonomy) -> dict[CocoId, _Image]:
    out: dict[CocoId, _Image] = {}
    seen_files: set[str] = set()
    for iid, item in by_id(cur, "image").items():
        file_name = _file_name(item)
        if file_name in seen_files:
            raise item.error("a file_name used by one image only", file_name, "file_name")
        seen_files.add(file_name)
        out[iid] = _Image(
            file_name=file_name,
            width=_size(item, "width"),
            height=_size(item, "height"),
            drive=_drive(item),
            timestamp=_timestamp(item),
            situations=_situations(item.get("situations"), taxonomy),
        )
    return out


def _file_name(item: JsonCursor) -> str:
    """The frame name: ``file_name`` as a normalised relative path that stays in the folder."""
    raw = item.string("file_name")
    name = Path(raw)
    if not is_relative_name(raw) or name.is_absolute() or ".." in name.parts:
        raise item.error("a relative path inside the image folder", raw, "file_name")
    return name.as_posix()


def _size(item: JsonCursor, key: str) -> int | None:
    if not item.has(key):
        return None
    v = item.number(key)
    if v <= 0 or not v.is_integer():
        raise item.error("a positive integer", item.value[key], key)
    return int(v)


def _drive(item: JsonCursor) -> str | None:
    for key in _DRIVE_KEYS:
        if item.has(key):
            return drive_id(item, key)
    return None


def _timestamp(item: JsonCursor) -> float | None:
    """Seconds. (``frame_index`` is not a stand-in: timestamps mean seconds everywhere.)"""
    return item.number("timestamp") if item.has("timestamp") else None


def _situations(cur: JsonCursor | None, taxonomy: Taxonomy) -> dict[str, bool]:
    if cur is None:
        return {}
    out = {}
    for name, value in cur.obj().items():
        if name not in taxonomy:
            raise cur.error(
                f"a situation of the taxonomy ({', '.join(taxonomy.names)})", name, name
            )
        if value is not None:  # null = not labelled
            out[name] = cur.boolean(name)
    check_exclusive(out, taxonomy, cur.path, cur.where)
    return out


def _read_annotations(
    cur: JsonCursor, images: dict[int | str, _Image], categories: dict[int | str, str]
) -> None:
    for item in cur.items():
        image, category = resolve_ids(item, images, categories)
        image.boxes.append(_box(item, category))


def coco_area(box: Box) -> float:
    """The object's COCO ``area``: the one its import carried (a segment's), else w * h."""
    area = box.attributes.get("area")
    if isinstance(area, int | float) and not isinstance(area, bool) and area >= 0:
        return float(area)
    return box.area


def _box(item: JsonCursor, category: str) -> Box:
    x1, y1, x2, y2 = coco_bbox(item)
    attributes: dict[str, Any] = {}
    if item.has("iscrowd"):
        crowd = item["iscrowd"].value
        if crowd not in (0, 1) or isinstance(crowd, float):
            raise item.error("iscrowd 0 or 1", crowd, "iscrowd")
        if crowd:
            attributes["iscrowd"] = True
    if item.has("area"):  # a segment's area (COCO's size buckets use it): kept if not w * h
        area = item["area"].number()
        if area < 0:
            raise item.error("an area >= 0", area, "area")
        if not math.isclose(area, (x2 - x1) * (y2 - y1), rel_tol=1e-6, abs_tol=1e-6):
            attributes["area"] = area
    flags = {"occluded": False, "truncated": False}
    if item.has("attributes"):
        attrs = item["attributes"]
        for key, value in attrs.obj().items():
            if key in flags:
                flags[key] = attrs.boolean(key)
            else:
                attributes[key] = value
    return Box(category, x1, y1, x2, y2, attributes=attributes, **flags)


def _find_image_dir(path: Path, images: dict[int | str, _Image]) -> Path:
    """The JSON's folder, or ``images/`` beside it when more of the first files are there."""
    sample = [im.file_name for im in list(images.values())[:_IMAGE_DIR_SAMPLE]]
    candidates = [path.parent, path.parent / "images"]
    return max(candidates, key=lambda d: sum(is_file(d / name) for name in sample))


def _to_frame(
    image: _Image,
    root: Path,
    taxonomy: Taxonomy,
    category_map: Mapping[str, str | None],
    verify_images: bool,
    report: ImportReport,
) -> FrameRecord | None:
    name = image.file_name
    file = root / name
    try:
        width, height = probe_image(file, verify_images)
    except ImageProblem as e:
        report.skipped_images.append((str(file), str(e)))
        return None
    declared = (image.width or width, image.height or height)
    if declared != (width, height):
        reason = f"image is {width}x{height} but the annotations say {declared[0]}x{declared[1]}"
        report.skipped_images.append((str(file), reason))
        return None
    boxes = keep_boxes(image.boxes, category_map, taxonomy.classes, width, height, report)
    return FrameRecord(
        name=name,
        path=file,
        drive=image.drive or name,
        width=width,
        height=height,
        timestamp=image.timestamp,
        situations=image.situations,
        boxes=boxes,
    )


def _ids(frames: list[FrameRecord], image_ids: Mapping[str, int] | None) -> list[int]:
    """Image ids: the caller's, else 1-based position, so GT and results files agree."""
    if image_ids is None:
        return list(range(1, len(frames) + 1))
    missing = [f.name for f in frames if f.name not in image_ids]
    if missing:
        raise ValueError(f"no image id for frames {missing[:5]}")
    return [image_ids[f.name] for f in frames]


def _category_ids(taxonomy: Taxonomy) -> dict[str, int]:
    return {name: i for i, name in enumerate(taxonomy.classes, start=1)}


def _category_id(ids: Mapping[str, int], frame: FrameRecord, box: Box) -> int:
    if box.category not in ids:
        raise ValueError(f"frame {frame.name!r}: class {box.category!r} is not in the taxonomy")
    return ids[box.category]


def _xywh(box: Box) -> list[float]:
    return [box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1]


def write_coco(
    frames: Iterable[FrameRecord],
    taxonomy: Taxonomy,
    out_path: Path,
    *,
    image_ids: Mapping[str, int] | None = None,
) -> Path:
    """Write ground truth as COCO instances, categories in taxonomy order with ids 1..N.

    Frames whose boxes were never labelled (``boxes=None``) are left out, since COCO would
    read them as labelled empty; they still use up their position-based image id so that
    :func:`write_coco_predictions` over the same frames gives matching ids. When no frame
    has labelled boxes (an unlabelled pool to run a detector on), every frame is written as
    an ``image_info`` file: images and categories, no ``annotations`` key.
    """
    frames = list(frames)
    cat_ids = _category_ids(taxonomy)
    images, annotations = [], []
    image_info = all(frame.boxes is None for frame in frames)
    for frame, image_id in zip(frames, _ids(frames, image_ids), strict=True):
        if frame.boxes is None and not image_info:
            continue
        if frame.width is None or frame.height is None:
            raise ValueError(f"frame {frame.name!r}: COCO needs its width and height")
        images.append(_image_entry(frame, image_id, taxonomy))
        for box in frame.boxes or ():
            annotations.append(
                _annotation(box, len(annotations) + 1, image_id, _category_id(cat_ids, frame, box))
            )
    categories = [{"id": i, "name": name} for name, i in cat_ids.items()]
    doc: dict[str, Any] = {"images": images, "categories": categories}
    if not image_info:
        doc["annotations"] = annotations
    write_json(Path(out_path), doc, strict=True)
    return Path(out_path)


def _image_entry(frame: FrameRecord, image_id: int, taxonomy: Taxonomy) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": image_id,
        "file_name": frame.name,
        "width": frame.width,
        "height": frame.height,
        "drive": frame.drive,
    }
    if frame.timestamp is not None:
        entry["timestamp"] = frame.timestamp
    situations = {s: frame.situations[s] for s in taxonomy.names if s in frame.situations}
    if situations:
        entry["situations"] = situations
    return entry


def _annotation(box: Box, ann_id: int, image_id: int, category_id: int) -> dict[str, Any]:
    attributes = {k: v for k, v in box.attributes.items() if k not in ("iscrowd", "area")}
    if box.occluded:
        attributes["occluded"] = True
    if box.truncated:
        attributes["truncated"] = True
    entry: dict[str, Any] = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": _xywh(box),
        "area": coco_area(box),
        "iscrowd": 1 if box.attributes.get("iscrowd") else 0,
    }
    if attributes:
        entry["attributes"] = attributes
    return entry


def write_coco_predictions(
    frames: Iterable[FrameRecord],
    taxonomy: Taxonomy,
    out_path: Path,
    image_ids: Mapping[str, int] | None = None,
) -> Path:
    """Write ``predicted_boxes`` as a COCO results list, the input of COCO evaluation.

    Image ids default to the 1-based position of each frame, as in :func:`write_coco`;
    ``class_probs`` is added (non-standard, ignored by COCO tools) when a box has them.
    """
    frames = list(frames)
    cat_ids = _category_ids(taxonomy)
    results = []
    for frame, image_id in zip(frames, _ids(frames, image_ids), strict=True):
        for box in frame.predicted_boxes:
            entry: dict[str, Any] = {
                "image_id": image_id,
                "category_id": _category_id(cat_ids, frame, box),
                "bbox": _xywh(box),
                "score": 1.0 if box.score is None else box.score,
            }
            if box.class_probs is not None:
                entry["class_probs"] = list(box.class_probs)
            results.append(entry)
    write_json(Path(out_path), results, strict=True)
    return Path(out_path)
