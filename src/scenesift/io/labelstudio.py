"""Label Studio round trip: tasks with pre-annotations out, the annotators' export back in.

Tasks carry the frame name in ``data.frame`` so that the export maps back to frames whatever
URL Label Studio served the image from: a filesystem path (the default, for a Label Studio on
the same machine that may read it), ``PREFIX/<frame name>`` (:func:`image_url_from`'s
``image_prefix``, images behind any web server) or Label Studio's own local-files serving
(``local_files``, with a local-files storage on that folder). Boxes travel in Label
Studio's percent coordinates; situations are one multiple-choice list, so an annotation
states every situation: those chosen are True and all the others False.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import quote

from scenesift.io.common import (
    ImageProblem,
    JsonCursor,
    Track,
    atomic_write,
    check_exclusive,
    clip_box,
    drive_id,
    image_folder,
    is_relative_name,
    probe_image,
    read_json,
    tracked,
    write_json,
)
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.taxonomy import Taxonomy

BOXES = "boxes"  # RectangleLabels control name
SITUATIONS = "situations"  # Choices control name
IMAGE = "image"  # Image object name and data key
DEFAULT_THRESHOLD = 0.5
#: Prefixes of the URLs Label Studio serves files from (not filesystem paths).
_SERVED_PREFIXES = ("/data/local-files/", "/data/upload/")


# --- export: tasks and labelling config -------------------------------------------------

#: The URL path Label Studio serves local-files storage from (``?d=`` is relative to
#: LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT).
LOCAL_FILES_URL = "/data/local-files/?d="


def image_url_from(
    *, image_prefix: str | None = None, local_files: Path | None = None
) -> Callable[[FrameRecord], str] | None:
    """How tasks reference images so that they open as they are in Label Studio.

    ``image_prefix``: ``PREFIX/<frame name>``. ``local_files``: the folder Label Studio's
    LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT points at; each image must lie under it. Neither:
    None (the image's absolute path).
    """
    if image_prefix is not None and local_files is not None:
        raise ValueError("give an image URL prefix or a local-files root, not both")
    if image_prefix is not None:
        if not image_prefix.strip():
            raise ValueError("the image URL prefix is empty")
        prefix = image_prefix.rstrip("/")
        return lambda f: f"{prefix}/{quote(PurePath(f.name).as_posix())}"
    if local_files is not None:
        root = Path(local_files).resolve()

        def local_url(f: FrameRecord) -> str:
            path = Path(f.path).resolve()
            if not path.is_relative_to(root):
                raise ValueError(
                    f"frame {f.name!r}: its image {path} is not under the local-files "
                    f"root {root} (Label Studio serves only files below its document root)"
                )
            return LOCAL_FILES_URL + quote(path.relative_to(root).as_posix())

        return local_url
    return None


def write_labelstudio_tasks(
    frames: Iterable[FrameRecord],
    taxonomy: Taxonomy,
    out_dir: Path,
    image_url: Callable[[FrameRecord], str] | None = None,
    *,
    thresholds: Mapping[str, float] | None = None,
    prefill_with_labels: bool = False,
    model_version: str = "scenesift",
) -> Path:
    """Write ``tasks.json`` and ``labeling_config.xml`` into ``out_dir``; return tasks.json.

    Pre-annotations come from ``predicted_boxes`` and ``situation_scores`` (a situation is
    pre-selected when its score reaches its threshold, default 0.5, and, in an exclusive
    group, is the group's highest score: ``Taxonomy.decide``; unscored ones never are). A
    frame without predictions is pre-filled with its own labels only with ``prefill_with_labels``.
    ``image_url`` maps a frame to the URL Label Studio loads (default: its absolute path).
    """
    out_dir = Path(out_dir)
    to_url = image_url or (lambda f: str(Path(f.path).absolute()))
    tasks = [
        _task(f, to_url(f), taxonomy, thresholds or {}, prefill_with_labels, model_version)
        for f in frames
    ]
    write_labelstudio_config(taxonomy, out_dir / "labeling_config.xml")
    tasks_path = out_dir / "tasks.json"
    write_json(tasks_path, tasks, strict=True)
    return tasks_path


def write_labelstudio_config(taxonomy: Taxonomy, path: Path) -> Path:
    """The labelling interface: one rectangle label per class, one choice per situation."""
    view = ET.Element("View")
    ET.SubElement(view, "Image", name=IMAGE, value=f"${IMAGE}")
    rects = ET.SubElement(view, "RectangleLabels", name=BOXES, toName=IMAGE)
    for name in taxonomy.classes:
        ET.SubElement(rects, "Label", value=name)
    choices = ET.SubElement(
        view, "Choices", name=SITUATIONS, toName=IMAGE, choice="multiple", showInline="true"
    )
    for name in taxonomy.names:
        ET.SubElement(choices, "Choice", value=name)
    ET.indent(view)
    with atomic_write(Path(path)) as f:
        f.write(ET.tostring(view, encoding="unicode") + "\n")
    return Path(path)


def _task(
    frame: FrameRecord,
    url: str,
    taxonomy: Taxonomy,
    thresholds: Mapping[str, float],
    prefill: bool,
    model_version: str,
) -> dict[str, Any]:
    data: dict[str, Any] = {IMAGE: url, "frame": frame.name, "drive": frame.drive}
    data.update(width=frame.width, height=frame.height)
    if frame.timestamp is not None:
        data["timestamp"] = frame.timestamp
    prediction = task_prediction(frame, taxonomy, thresholds, model_version)
    if prediction is None and prefill and (frame.boxes or frame.situations):
        chosen = [s for s in taxonomy.names if frame.situations.get(s)]
        prediction = _prediction(frame, frame.boxes or [], chosen, "labels")
        prediction["score"] = 1.0
    return {"data": data, "predictions": [prediction] if prediction else []}


def task_prediction(
    frame: FrameRecord,
    taxonomy: Taxonomy,
    thresholds: Mapping[str, float],
    model_version: str,
) -> dict[str, Any] | None:
    """A frame's pre-annotation from ``predicted_boxes`` and ``situation_scores`` (None
    without either): what tasks carry and what the ML backend's /predict answers."""
    if not (frame.predicted_boxes or frame.situation_scores):
        return None
    scored = [s for s in taxonomy.names if s in frame.situation_scores]
    values = taxonomy.decide(
        [[frame.situation_scores[s] for s in scored]], scored, thresholds, DEFAULT_THRESHOLD
    )[0]
    chosen = [s for s, v in zip(scored, values, strict=True) if v]
    prediction = _prediction(frame, frame.predicted_boxes, chosen, model_version)
    prediction["score"] = _prediction_score(frame)
    return prediction


def _prediction(
    frame: FrameRecord, boxes: list[Box], chosen: list[str], model_version: str
) -> dict[str, Any]:
    result = [_rectangle(frame, box, i) for i, box in enumerate(boxes)]
    if chosen:
        result.append(
            {
                "id": "situations",
                "type": "choices",
                "from_name": SITUATIONS,
                "to_name": IMAGE,
                "value": {"choices": chosen},
            }
        )
    return {"model_version": model_version, "result": result}


def _rectangle(frame: FrameRecord, box: Box, index: int) -> dict[str, Any]:
    w, h = frame.width, frame.height
    if not w or not h:
        raise ValueError(f"frame {frame.name!r}: Label Studio boxes need its width and height")
    item: dict[str, Any] = {
        "id": f"box{index}",
        "type": "rectanglelabels",
        "from_name": BOXES,
        "to_name": IMAGE,
        "original_width": w,
        "original_height": h,
        "image_rotation": 0,
        "value": {
            "x": 100.0 * box.x1 / w,
            "y": 100.0 * box.y1 / h,
            "width": 100.0 * box.width / w,
            "height": 100.0 * box.height / h,
            "rotation": 0,
            "rectanglelabels": [box.category],
        },
    }
    if box.score is not None:
        item["score"] = box.score
    return item


def _prediction_score(frame: FrameRecord) -> float:
    """Task-level confidence Label Studio sorts by: mean box score, else mean decisiveness
    of the situation scores (a score near 0.5 is an unsure call)."""
    scores = [b.score for b in frame.predicted_boxes if b.score is not None]
    if not scores:
        scores = [max(p, 1.0 - p) for p in frame.situation_scores.values()]
    return sum(scores) / len(scores) if scores else 1.0


# --- import: the annotators' JSON export ------------------------------------------------


def read_labelstudio_export(
    export_json: Path,
    taxonomy: Taxonomy,
    *,
    verify_images: bool = True,
    track: Track | None = None,
    image_root: Path | None = None,
    situations_labelled: bool = True,
) -> ImportBatch:
    """Read Label Studio's full JSON export: the latest non-cancelled annotation per task.

    Tasks without one are listed in ``report.skipped_images`` as (frame, ``no annotation``).
    A frame's image is ``image_root / data.frame``, or ``data.image`` when no root is given
    and that is a filesystem path; the default root is such a path minus the frame name
    (else the working folder). Images are probed only where their location is known:
    URLs that Label Studio serves are not. Set ``situations_labelled=False`` when the
    labelling interface had no situation list, so situations stay missing, not all False.
    """
    path = Path(export_json).resolve()
    doc = JsonCursor(read_json(path), path)
    tasks = _tasks(doc)
    root = image_folder(image_root).resolve() if image_root is not None else _derive_root(tasks)
    parsed = _parse_tasks(tasks, taxonomy, situations_labelled)
    report = ImportReport(source=f"labelstudio:{path}")
    frames = []
    for name, frame, local in tracked(parsed, track):
        if frame is None:
            report.skipped_images.append((name, "no annotation"))
            continue
        if local is None or image_root is not None:
            frame.path = root / name
        probe = verify_images and (local is not None or image_root is not None)
        if _finish(frame, probe, taxonomy, report):
            frames.append(frame)
    report.frames = len(frames)
    return ImportBatch(frames=frames, image_root=root, report=report)


_SHAPE = (
    "Label Studio's full JSON export: a list of tasks with 'data' and 'annotations' "
    "(JSON-MIN and CSV exports are not supported)"
)


def _tasks(doc: JsonCursor) -> list[JsonCursor]:
    if not isinstance(doc.value, list):
        raise doc.error(_SHAPE, type(doc.value).__name__)
    tasks = list(doc.items())
    for task in tasks:
        value = task.value
        if not (isinstance(value, dict) and isinstance(value.get("annotations"), list)):
            raise task.error(_SHAPE, sorted(value) if isinstance(value, dict) else value)
        task["data"].obj()
    return tasks


def _local_path(url: str) -> Path | None:
    """``data.image`` as a filesystem path, or None for URLs Label Studio serves."""
    if "://" in url or url.startswith(_SERVED_PREFIXES) or url.startswith("data:"):
        return None
    return Path(url).absolute()


def _derive_root(tasks: list[JsonCursor]) -> Path:
    """The folder frame names are relative to: a local ``data.image`` minus the frame name."""
    for task in tasks:
        data = task["data"].value
        image, name = data.get(IMAGE), data.get("frame")
        if not (isinstance(image, str) and isinstance(name, str) and name):
            continue
        local = _local_path(image)
        parts = PurePath(name).parts
        if local is not None and local.parts[-len(parts) :] == parts:
            return Path(*local.parts[: -len(parts)])
    return Path.cwd()


def _parse_tasks(
    tasks: list[JsonCursor], taxonomy: Taxonomy, situations_labelled: bool
) -> list[tuple[str, FrameRecord | None, Path | None]]:
    """(frame name, frame or None when unannotated, local image path or None) per task."""
    out = []
    first: dict[str, str] = {}
    for task in tasks:
        data = task["data"]
        name = data.string("frame")
        if not is_relative_name(name):
            raise data.error("a frame name (a path relative to the image folder)", name, "frame")
        if name in first:
            expected = f"each frame in one task only (already in {first[name]})"
            raise data.error(expected, name, "frame")
        first[name] = task.where
        annotation = _latest_annotation(task["annotations"])
        if annotation is None:
            out.append((name, None, None))
            continue
        local = _local_path(data.string(IMAGE)) if data.has(IMAGE) else None
        width, height = _data_size(data)
        result = annotation["result"]
        boxes, chosen, size = _parse_result(result, (width, height), taxonomy)
        check_exclusive(dict.fromkeys(chosen, True), taxonomy, result.path, result.where)
        frame = FrameRecord(
            name=name,
            path=local or Path(name),
            drive=_drive(data, name),
            width=width or size[0],
            height=height or size[1],
            timestamp=data.number("timestamp") if data.has("timestamp") else None,
            boxes=boxes,
        )
        if situations_labelled:
            frame.situations = {s: s in chosen for s in taxonomy.names}
        out.append((name, frame, local))
    return out


def _drive(data: JsonCursor, name: str) -> str:
    return drive_id(data, "drive") if data.has("drive") else name


def _data_size(data: JsonCursor) -> tuple[int | None, int | None]:
    if not (data.has("width") and data.has("height")):
        return None, None
    return _pixels(data, "width"), _pixels(data, "height")


def _pixels(cur: JsonCursor, key: str) -> int:
    """An image side in pixels: a number >= 1 (rounded; the image probe has the last word)."""
    v = round(cur.number(key))
    if not 1 <= v <= 1_000_000:
        raise cur.error("an image size in pixels (1 to 1000000)", cur.value[key], key)
    return v


def _latest_annotation(annotations: JsonCursor) -> JsonCursor | None:
    """The most recently updated annotation that was not cancelled (later in list on ties)."""
    best, best_time = None, None
    for ann in annotations.items():
        ann.obj()
        if ann.has("was_cancelled") and ann.boolean("was_cancelled"):
            continue
        stamp = _annotation_time(ann)
        if best_time is None or stamp >= best_time:
            best, best_time = ann, stamp
    return best


def _annotation_time(ann: JsonCursor) -> datetime:
    """``updated_at``, else ``created_at``; times without a zone are taken as UTC."""
    for key in ("updated_at", "created_at"):
        if ann.has(key):
            text = ann.string(key)
            try:
                stamp = datetime.fromisoformat(text)
                # in UTC, so that comparing times cannot overflow (0001-01-01T00:00+01:00)
                return stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)
            except (ValueError, OverflowError):
                raise ann.error("an ISO 8601 time", text, key) from None
    return datetime.min.replace(tzinfo=UTC)


def _parse_result(
    result: JsonCursor, size: tuple[int | None, int | None], taxonomy: Taxonomy
) -> tuple[list[Box], set[str], tuple[int | None, int | None]]:
    """Rectangles (pixels, unclipped), chosen situations and the image size the annotator saw."""
    boxes: list[Box] = []
    chosen: set[str] = set()
    for item in result.items():
        kind = item.string("type")
        if kind == "rectanglelabels":
            if item.has("original_width") and item.has("original_height"):
                size = _pixels(item, "original_width"), _pixels(item, "original_height")
            boxes.append(_box(item, size))
        elif kind == "choices" and item.has("from_name") and item["from_name"].value == SITUATIONS:
            chosen.update(_situation(c, taxonomy) for c in item["value"]["choices"].items())
    return boxes, chosen, size


def _situation(choice: JsonCursor, taxonomy: Taxonomy) -> str:
    name = choice.string()
    if name not in taxonomy:
        raise choice.error(f"a situation of the taxonomy ({', '.join(taxonomy.names)})", name)
    return name


def _box(item: JsonCursor, size: tuple[int | None, int | None]) -> Box:
    """A rectangle in pixels; a rotated one becomes the axis-aligned box around it."""
    value = item["value"]
    labels = value["rectanglelabels"]
    if not isinstance(labels.value, list) or len(labels.value) != 1:
        raise labels.error("exactly one label", labels.value)
    w, h = size
    if not (w and h):
        raise item.error("original_width/original_height here or width/height in the task data")
    x, y = value.number("x") * w / 100, value.number("y") * h / 100
    bw, bh = value.number("width") * w / 100, value.number("height") * h / 100
    angle = math.radians(value.number("rotation")) if value.has("rotation") else 0.0
    cos, sin = math.cos(angle), math.sin(angle)
    xs = [x + dx * cos - dy * sin for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
    ys = [y + dx * sin + dy * cos for dx, dy in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
    return Box(labels[0].string(), min(xs), min(ys), max(xs), max(ys))


def _finish(frame: FrameRecord, probe: bool, taxonomy: Taxonomy, report: ImportReport) -> bool:
    """Probe the image if asked, keep known classes and clip; False when the frame is skipped."""
    if probe:
        try:
            frame.width, frame.height = probe_image(frame.path, True)
        except ImageProblem as e:
            report.skipped_images.append((str(frame.path), str(e)))
            return False
    kept = []
    for box in frame.boxes or ():
        if box.category not in taxonomy.classes:
            report.count_unknown_category(box.category)
            continue
        clipped = clip_box(box, frame.width or 0, frame.height or 0, report)
        if clipped is not None:
            kept.append(clipped)
    frame.boxes = kept
    report.boxes += len(kept)
    report.situation_values += len(frame.situations)
    return True
