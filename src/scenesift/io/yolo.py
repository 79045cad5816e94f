"""YOLO (Ultralytics) datasets and predictions: the format most detector users already have.

A dataset is a ``data.yaml`` (``path``, ``train``/``val``/``test`` image folders relative
to it, ``names`` as a list or an id -> name table) with, for every image
``.../images/<split>/x.jpg``, a label file ``.../labels/<split>/x.txt`` of lines
``class cx cy w h`` normalised to [0, 1]. An image without a label file is a labelled
background image (``boxes=[]``), as Ultralytics trains it.

Predictions are what ``yolo predict save_txt=True save_conf=True`` writes: one ``x.txt``
per image, lines ``class cx cy w h confidence``. They carry scores and no class vectors;
selection then reads the scores (see ``al.heuristics.box_uncertainty``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from scenesift.errors import ConfigError
from scenesift.files import atomic_write
from scenesift.io.common import ImageProblem, Track, probe_image, relative_name, tracked
from scenesift.io.errors import FormatError
from scenesift.io.folder import IMAGE_SUFFIXES
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.taxonomy import Taxonomy

SPLITS = ("train", "val", "test")


def read_names(data_yaml: Path) -> list[str]:
    """The class names of a ``data.yaml``, by class id (``names`` as a list or table)."""
    doc = _read_yaml(data_yaml)
    names = doc.get("names")
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        if sorted(names) != list(range(len(names))):
            raise FormatError(data_yaml, "names", "class ids 0..N-1", sorted(names))
        return [str(names[i]) for i in range(len(names))]
    raise FormatError(data_yaml, "names", "a list of class names or an id -> name table", names)


def _read_yaml(path: Path) -> dict:
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise FormatError(path, "YAML", "a valid data.yaml", str(e).splitlines()[0]) from None
    if not isinstance(doc, dict):
        raise FormatError(path, "top level", "a YAML mapping (path, train, val, names)", doc)
    return doc


def read_yolo(
    data_yaml: Path,
    taxonomy: Taxonomy,
    *,
    verify_images: bool = True,
    track: Track | None = None,
) -> ImportBatch:
    """A labelled Ultralytics dataset; frames are named relative to its ``path``.

    Class names missing from the taxonomy are counted and their boxes left out; each
    frame is its own drive (YOLO datasets record no sequences), its split the yaml's.
    """
    data_yaml = Path(data_yaml).resolve()
    doc = _read_yaml(data_yaml)
    names = read_names(data_yaml)
    root = (data_yaml.parent / str(doc.get("path") or ".")).resolve()
    report = ImportReport(source=f"yolo:{data_yaml}")
    listed: list[tuple[Path, str]] = []
    for split in SPLITS:
        entry = doc.get(split)
        for folder in [entry] if isinstance(entry, str) else entry or []:
            base = root / str(folder)
            if not base.is_dir():
                raise FormatError(data_yaml, split, "an image folder under path", str(base))
            listed += [
                (p, split) for p in sorted(base.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES
            ]
    if not listed:
        raise FormatError(data_yaml, "train/val/test", "at least one folder with images")
    frames = []
    for path, split in tracked(listed, track):
        try:
            width, height = probe_image(path, verify_images)
        except ImageProblem as e:
            report.skipped_images.append((str(path), str(e)))
            continue
        name = relative_name(path, root)
        boxes = []
        label = label_path(path)
        if label.is_file():
            for b in read_label_file(label, names, width, height):
                if b.category in taxonomy.classes:
                    boxes.append(b)
                else:
                    report.count_unknown_category(b.category)
        report.boxes += len(boxes)
        frames.append(FrameRecord(name, path, name, width, height, split=split, boxes=boxes))
    report.frames = len(frames)
    return ImportBatch(frames=frames, image_root=root, report=report)


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``images`` folder of the path becomes ``labels``."""
    parts = list(image.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        parts[i] = "labels"
    return Path(*parts).with_suffix(".txt")


def read_label_file(
    path: Path, names: Sequence[str], width: int, height: int, scores: bool = False
) -> list[Box]:
    """Boxes of one YOLO txt file in pixels; ``scores``: a 6th column, the confidence, is
    required. Errors name the file and line."""
    boxes = []
    want = 6 if scores else 5
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        cells = line.split()
        if not cells:
            continue
        where = f"line {n}"
        shape = "class cx cy w h" + (" confidence" if scores else "")
        if len(cells) != want:
            raise FormatError(path, where, f"{want} numbers ({shape})", line)
        try:
            cls = int(cells[0])
            cx, cy, w, h, *conf = (float(c) for c in cells[1:])
        except ValueError:
            raise FormatError(path, where, f"numbers ({shape})", line) from None
        if not 0 <= cls < len(names):
            raise FormatError(path, where, f"a class id in 0..{len(names) - 1}", cls)
        if w < 0 or h < 0 or (conf and not 0 <= conf[0] <= 1):
            raise FormatError(path, where, "w, h >= 0 and a confidence in [0, 1]", line)
        box = Box(
            names[cls],
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            (cx + w / 2) * width,
            (cy + h / 2) * height,
            score=conf[0] if conf else None,
        )
        boxes.append(box)
    return boxes


def read_yolo_predictions(
    folder: Path,
    frames: Iterable[FrameRecord],
    classes: Sequence[str],
    names: Sequence[str] | None = None,
) -> dict[str, list[Box]]:
    """Detections per frame name from a folder of YOLO prediction txt files, best first.

    A file ``<stem>.txt`` belongs to the frame whose image has that stem (its size turns
    normalised boxes into pixels); a stem shared by two frames, or a file of no frame, is
    an error naming it. ``names``: the model's class names by id (its data.yaml), default
    the project's classes; a name that is not a project class is an error. Frames without
    a file get ``[]`` (the model found nothing there).
    """
    folder = Path(folder)
    names = list(classes if names is None else names)
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise ConfigError(f"model classes {unknown} are not classes of the project: {classes}")
    by_stem = _by_stem(frames)
    out: dict[str, list[Box]] = {f.name: [] for f in by_stem.values()}
    files = sorted(folder.rglob("*.txt"))
    if not files:
        raise ConfigError(f"{folder}: no YOLO prediction files (*.txt)")
    for path in files:
        frame = by_stem.get(path.stem)
        if frame is None:
            raise FormatError(path, "file name", "the stem of a frame of the project", path.stem)
        if frame.width is None or frame.height is None:
            raise ConfigError(f"frame {frame.name!r}: its image size is unknown")
        boxes = read_label_file(path, names, frame.width, frame.height, scores=True)
        out[frame.name] = sorted(boxes, key=lambda b: -(b.score or 0.0))
    return out


def _by_stem(frames: Iterable[FrameRecord]) -> dict[str, FrameRecord]:
    by_stem: dict[str, FrameRecord] = {}
    for f in frames:
        stem = Path(f.name).stem
        if stem in by_stem:
            raise ConfigError(
                f"frames {by_stem[stem].name!r} and {f.name!r} share the stem {stem!r}: YOLO "
                "names predictions by image stem, so they cannot be told apart"
            )
        by_stem[stem] = f
    return by_stem


def stem_ids(frames: Iterable[FrameRecord]) -> dict[int | str, str]:
    """Image id -> frame name as Ultralytics' ``predictions.json`` writes ids: the image's
    stem, as an integer when it is all digits."""
    return {int(stem) if stem.isdigit() else stem: f.name for stem, f in _by_stem(frames).items()}


def write_yolo(frames: Iterable[FrameRecord], taxonomy: Taxonomy, out: Path) -> Path:
    """An Ultralytics dataset: ``images/<split>/<name>`` links to the images, label files
    beside them under ``labels/``, and ``data.yaml``. Frames never labelled are left out
    (YOLO would train on them as background)."""
    out = Path(out).resolve()
    index = {c: i for i, c in enumerate(taxonomy.classes)}
    splits = set()
    for f in frames:
        if f.boxes is None:
            continue
        if f.width is None or f.height is None:
            raise ConfigError(f"frame {f.name!r}: YOLO needs its width and height")
        split = f.split or "train"
        splits.add(split)
        image = out / "images" / split / f.name
        image.parent.mkdir(parents=True, exist_ok=True)
        if image.is_symlink() or image.exists():
            image.unlink()
        os.symlink(Path(f.path).resolve(), image)
        with atomic_write(label_path(image)) as fh:
            for b in f.boxes:
                cx, cy = (b.x1 + b.x2) / 2 / f.width, (b.y1 + b.y2) / 2 / f.height
                w, h = (b.x2 - b.x1) / f.width, (b.y2 - b.y1) / f.height
                fh.write(f"{index[b.category]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    doc: dict = {"path": str(out)}
    doc.update({s: f"images/{s}" for s in SPLITS if s in splits})
    doc["names"] = dict(enumerate(taxonomy.classes))
    with atomic_write(out / "data.yaml") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)
    return out / "data.yaml"
