"""The records every part of scenesift exchanges: frames, boxes and situation values.

Importers produce them, exporters consume them and the store persists them, so the
formats never talk SQL and the store never parses files. Names follow the concepts table
in ``docs/architecture.md``: a *Frame* carries *situation* values and *Boxes*.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Box:
    """One object annotation (or detection) in pixel xyxy, image coordinates.

    ``category`` is the object class name. ``score`` and ``class_probs`` are set only for
    model predictions; ``class_probs`` is the full probability vector over the project's
    classes (in their declared order) so margin and entropy can be computed later.
    ``attributes`` holds anything else a format carries (occlusion ratio, distance, ...).
    """

    category: str
    x1: float
    y1: float
    x2: float
    y2: float
    occluded: bool = False
    truncated: bool = False
    score: float | None = None
    class_probs: tuple[float, ...] | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


@dataclass
class FrameRecord:
    """One camera frame with whatever labels a source carries for it.

    ``name`` is the frame's id within a project (for files: the image path relative to the
    dataset's image root, with forward slashes). ``situations`` maps situation name to a
    binary value; a situation absent from the mapping is *missing* (not labelled), which is
    different from False. ``boxes`` is None when the frame's objects were not labelled at
    all and ``[]`` when they were labelled and there are none.
    ``situation_scores`` and ``predicted_boxes`` carry model predictions (pre-annotations).
    """

    name: str
    path: Path
    drive: str
    width: int | None = None
    height: int | None = None
    timestamp: float | None = None  # seconds since the start of the drive (or epoch)
    split: str | None = None
    situations: dict[str, bool] = field(default_factory=dict)
    boxes: list[Box] | None = None
    situation_scores: dict[str, float] = field(default_factory=dict)
    predicted_boxes: list[Box] = field(default_factory=list)


def object_counts(records: Iterable[FrameRecord], classes: Sequence[str]) -> dict[str, int]:
    """Labelled objects per class of ``classes`` in ``records`` (0 where none). Ignore
    regions (``iscrowd``) are areas nobody labelled, not objects, so they do not count."""
    counts = dict.fromkeys(classes, 0)
    for r in records:
        for b in r.boxes or ():
            if b.category in counts and not b.attributes.get("iscrowd"):
                counts[b.category] += 1
    return counts


def situation_counts(records: Iterable[FrameRecord], names: Sequence[str]) -> dict[str, int]:
    """Frames of ``records`` positive for each situation of ``names`` (0 where none)."""
    counts = dict.fromkeys(names, 0)
    for r in records:
        for name, value in r.situations.items():
            if value and name in counts:
                counts[name] += 1
    return counts


@dataclass
class ImportReport:
    """What an import did, including everything it skipped or repaired, for the summary."""

    source: str
    frames: int = 0
    boxes: int = 0
    situation_values: int = 0
    skipped_images: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    clipped_boxes: int = 0
    dropped_boxes: int = 0  # empty after clipping, or degenerate
    unknown_categories: dict[str, int] = field(default_factory=dict)
    unknown_attributes: dict[str, int] = field(default_factory=dict)
    #: Categories the format's class map leaves out (KITTI's Tram, Misc), per category.
    ignored_categories: dict[str, int] = field(default_factory=dict)
    #: Categories imported under another class name, per ``"Van -> car"``.
    mapped_categories: dict[str, int] = field(default_factory=dict)
    #: Regions whose objects are not labelled (KITTI's DontCare), kept as ``iscrowd`` boxes.
    ignore_regions: int = 0
    unmatched_names: int = 0  # folder import: names the drive/timestamp pattern missed

    def count_unknown_category(self, name: str) -> None:
        self.unknown_categories[name] = self.unknown_categories.get(name, 0) + 1

    def count_ignored_category(self, name: str) -> None:
        self.ignored_categories[name] = self.ignored_categories.get(name, 0) + 1

    def count_mapped_category(self, name: str, to: str) -> None:
        key = f"{name} -> {to}"
        self.mapped_categories[key] = self.mapped_categories.get(key, 0) + 1

    def count_unknown_attribute(self, name: str) -> None:
        self.unknown_attributes[name] = self.unknown_attributes.get(name, 0) + 1


@dataclass
class ImportBatch:
    """Parsed, validated frames ready to be written to a store in one transaction."""

    frames: list[FrameRecord]
    image_root: Path
    report: ImportReport
