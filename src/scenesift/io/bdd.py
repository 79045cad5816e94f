"""BDD100K / Scalabel JSON: the format of real fleet data and of the synthetic world.

Frame attributes (``timeofday``, ``weather``, ``scene`` and boolean ones) become situations
through a :class:`BddMapping`; ``box2d`` labels become boxes. A frame's drive is its
``videoName`` when present (Scalabel video frames, the synthetic world); BDD100K detection
frames carry no sequence id, so each is its own drive (each comes from a different video).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from scenesift.io.common import (
    ImageProblem,
    JsonCursor,
    Track,
    check_exclusive,
    clip_box,
    image_folder,
    is_relative_name,
    probe_image,
    read_json,
    read_text,
    tracked,
    write_json,
)
from scenesift.io.errors import FormatError
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.taxonomy import Taxonomy

#: Box attributes with a column of their own in the store; the rest go to ``attributes``.
_FLAG_ATTRIBUTES = ("occluded", "truncated")


@dataclass
class BddMapping:
    """attribute -> {BDD value -> situation}, and BDD category -> project class."""

    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    categories: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_toml(cls, path: Path) -> BddMapping:
        try:
            data = tomllib.loads(read_text(path))
        except tomllib.TOMLDecodeError as e:
            raise FormatError(path, str(e), "a valid TOML mapping") from None
        return cls.from_dict(data, origin=path)

    @classmethod
    def from_dict(cls, data: dict, origin: Path | str = "<mapping>") -> BddMapping:
        attrs = data.get("attributes", {})
        cats = data.get("categories", {})
        if not isinstance(attrs, dict) or not all(
            isinstance(v, dict) and all(isinstance(s, str) for s in v.values())
            for v in attrs.values()
        ):
            raise FormatError(origin, "attributes", "tables of BDD value = situation name")
        if not isinstance(cats, dict) or not all(isinstance(v, str) for v in cats.values()):
            raise FormatError(origin, "categories", "a table of BDD category = class name")
        return cls(attributes={k: dict(v) for k, v in attrs.items()}, categories=dict(cats))

    def check(self, taxonomy: Taxonomy, origin: str = "<mapping>") -> None:
        for attr, values in self.attributes.items():
            for value, sit in values.items():
                if sit not in taxonomy:
                    raise FormatError(
                        origin, f"attributes.{attr}.{value!r}", "a situation of the project", sit
                    )
        for cat, cls_name in self.categories.items():
            if cls_name not in taxonomy.classes:
                raise FormatError(origin, f"categories.{cat!r}", "a class of the project", cls_name)

    def situation_to_value(self, attr: str) -> dict[str, str]:
        """Inverse of one attribute's map, for export: the first BDD value per situation."""
        out: dict[str, str] = {}
        for value, sit in self.attributes.get(attr, {}).items():
            out.setdefault(sit, value)
        return out


def default_mapping() -> BddMapping:
    text = resources.files("scenesift").joinpath("data/bdd_mapping.toml").read_text("utf-8")
    return BddMapping.from_dict(tomllib.loads(text), origin="scenesift/data/bdd_mapping.toml")


def read_bdd(
    labels_json: Path,
    taxonomy: Taxonomy,
    *,
    image_dir: Path | None = None,
    mapping: BddMapping | None = None,
    verify_images: bool = True,
    track: Track | None = None,
) -> ImportBatch:
    """Parse a BDD100K/Scalabel label file (a list of frames, or ``{"frames": [...]}``).

    ``image_dir`` defaults to ``images/`` beside the JSON when it exists, else its folder.
    """
    labels_json = Path(labels_json)
    mapping = mapping or default_mapping()
    mapping.check(taxonomy)
    if image_dir is None:
        beside = labels_json.parent / "images"
        image_dir = beside if beside.is_dir() else labels_json.parent
    image_dir = Path(os.path.abspath(image_folder(image_dir)))
    doc = JsonCursor(read_json(labels_json), labels_json)
    frames_cur = doc["frames"] if isinstance(doc.value, dict) else doc
    if not isinstance(frames_cur.value, list):
        raise frames_cur.error("a list of frames (or an object with a 'frames' list)")

    report = ImportReport(source=f"bdd:{labels_json.resolve()}")
    records: list[FrameRecord] = []
    seen: dict[str, str] = {}
    items = frames_cur.value
    for i in tracked(range(len(items)), track):
        cur = frames_cur[i]
        items[i] = None  # parsed: its JSON goes as the records grow (1M frames: GBs less)
        rec = _parse_frame(cur, taxonomy, mapping, image_dir, report)
        if rec.name in seen:
            raise cur.error(f"a unique frame name ({rec.name!r} is also at {seen[rec.name]})")
        seen[rec.name] = cur.where
        try:
            rec.width, rec.height = probe_image(rec.path, verify=verify_images)
        except ImageProblem as e:
            report.skipped_images.append((str(rec.path), str(e)))
            continue
        if rec.boxes is not None:
            clipped = [clip_box(b, rec.width, rec.height, report) for b in rec.boxes]
            rec.boxes = [b for b in clipped if b is not None]
            report.boxes += len(rec.boxes)
        report.frames += 1
        report.situation_values += len(rec.situations)
        records.append(rec)
    return ImportBatch(frames=records, image_root=image_dir, report=report)


def _parse_frame(
    cur: JsonCursor, taxonomy: Taxonomy, mapping: BddMapping, image_dir: Path, report
) -> FrameRecord:
    name = cur.string("name")
    if not is_relative_name(name):
        raise cur["name"].error("a path relative to the image folder", name)
    name = Path(name).as_posix()  # "./a//b.jpg" is "a/b.jpg": one image, one frame name
    drive = cur.string("videoName") if cur.has("videoName") else Path(name).stem
    if "\x00" in drive:
        raise cur["videoName"].error("a drive id without NUL characters", drive)
    timestamp = cur.number("timestamp") / 1000.0 if cur.has("timestamp") else None

    situations: dict[str, bool] = {}
    attrs = cur.get("attributes")
    for key, value in (attrs.obj() if attrs else {}).items():
        if key in mapping.attributes:
            if not isinstance(value, str):
                raise attrs[key].error("a string", value)
            sit = mapping.attributes[key].get(value)
            if sit is not None:
                situations[sit] = True
            elif value != "undefined":
                report.count_unknown_attribute(f"{key}={value}")
        elif key in taxonomy:
            situations[key] = attrs.boolean(key)
        else:
            report.count_unknown_attribute(key)
    check_exclusive(situations, taxonomy, cur.path, attrs.where if attrs else cur.where)
    situations = taxonomy.complete_groups(situations)

    boxes: list[Box] | None = None
    labels = cur.get("labels")
    if labels is not None:
        boxes = []
        for lab in labels.items():
            lab.obj()
            if not lab.has("box2d"):
                continue  # lanes and drivable areas (poly2d) are not objects
            box = _parse_box(lab, mapping, taxonomy, report)
            if box is not None:
                boxes.append(box)
    return FrameRecord(
        name=name,
        path=image_dir / name,
        drive=drive,
        timestamp=timestamp,
        situations=situations,
        boxes=boxes,
    )


def _parse_box(lab: JsonCursor, mapping: BddMapping, taxonomy: Taxonomy, report) -> Box | None:
    category = lab.string("category")
    category = mapping.categories.get(category, category)
    b = lab["box2d"]
    x1, y1, x2, y2 = (b.number(k) for k in ("x1", "y1", "x2", "y2"))
    if x2 < x1 or y2 < y1:
        raise b.error("x1 <= x2 and y1 <= y2", {"x1": x1, "y1": y1, "x2": x2, "y2": y2})
    if category not in taxonomy.classes:
        report.count_unknown_category(category)
        return None
    flags = {k: False for k in _FLAG_ATTRIBUTES}
    extra = {}
    attrs = lab.get("attributes")
    for key, value in (attrs.obj() if attrs else {}).items():
        if key in flags:
            flags[key] = attrs.boolean(key)
        else:
            extra[key] = value
    return Box(category, x1, y1, x2, y2, attributes=extra, **flags)


def write_bdd(
    frames: Iterable[FrameRecord],
    out_path: Path,
    mapping: BddMapping | None = None,
) -> Path:
    """Write frames (ground truth) as a Scalabel/BDD100K list; inverse of :func:`read_bdd`."""
    mapping = mapping or default_mapping()
    inverse = {attr: mapping.situation_to_value(attr) for attr in mapping.attributes}
    mapped = {sit for values in mapping.attributes.values() for sit in values.values()}
    out = []
    for rec in frames:
        attributes: dict[str, object] = {}
        for attr, to_value in inverse.items():
            for sit, value in rec.situations.items():
                if value and sit in to_value:
                    attributes[attr] = to_value[sit]
        for sit, value in rec.situations.items():
            if sit not in mapped:  # no BDD attribute carries it: write it as a flag
                attributes[sit] = bool(value)
        item: dict[str, object] = {"name": rec.name, "videoName": rec.drive}
        if rec.timestamp is not None:
            item["timestamp"] = round(rec.timestamp * 1000)
        item["attributes"] = attributes
        if rec.boxes is not None:
            item["labels"] = [_box_json(b) for b in rec.boxes]
        out.append(item)
    write_json(out_path, out, strict=True)
    return Path(out_path)


def _box_json(b: Box) -> dict:
    attributes = {"occluded": b.occluded, "truncated": b.truncated, **dict(b.attributes)}
    return {
        "category": b.category,
        "attributes": attributes,
        "box2d": {"x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2},
    }
