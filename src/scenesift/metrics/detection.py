"""Object-detection evaluation through COCOeval: COCO mAP, per-class AP, size buckets.

No hand-written mAP: the numbers are ``COCOeval``'s (faster-coco-eval's C++ engine, which
gives pycocotools' numbers ~5x faster; pycocotools itself for bootstrap intervals and as the
reference the tests compare against) on ground truth and
detections built in memory with the conventions of :mod:`scenesift.io.coco` (image ids are
1-based positions in the ground-truth list, category ids 1..N in class order), so they equal
what the reference tool prints on the files ``write_coco`` and ``write_coco_predictions``
write. A class without ground-truth instances (in the whole set or a slice) has no defined
AP: it is reported as None with the reason, never as 0, so it cannot move the mean.

Slices come in two kinds. A *frame slice* (night, fog, ...) evaluates a subset of images.
An *object slice* (``object:close``, ``object:far``, ...) keeps every image but scores only
the objects whose distance (or any other per-box quantity) lies in a range, by COCOeval's own
area-range mechanism (see :class:`ObjectSlices`): a frame-level "far" slice would hold almost
every frame, and its class mean would depend on which classes it happens to contain.

Intervals are percentile bootstraps over *drives* (all images of each drawn drive; see
:mod:`scenesift.metrics.bootstrap`) that re-run pycocotools' ``accumulate`` on the resampled
per-image results (:func:`_bootstrap_ap50`), so every resample is scored exactly as the point
estimate is. Every result carries its effective sample size: the drives holding its objects.

A ground-truth box keeps the ``area`` its COCO import carried (attribute ``area``: the
segment's area, which COCO's size buckets use), else its box area.

The COCO engines and matplotlib are imported where used, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from scenesift.io.coco import coco_area
from scenesift.metrics.bootstrap import (
    FEW_NOTE,
    Unit,
    cluster_ids,
    drives_text,
    one_drive,
    percentile_interval,
    resample_counts,
    resample_indices,
)
from scenesift.records import Box, FrameRecord

#: COCO's area ranges (pixels^2) in COCOeval's order, after "all".
SIZES = ("small", "medium", "large")
_SIZE_LIMITS = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, float("inf"))}
NO_INSTANCES = "no ground-truth instances"
#: Below this many ground-truth objects a class's AP is flagged as too coarse to trust.
FEW_INSTANCES = 10
ALL = "all"
#: Name prefix of object slices in tables and tidy rows (``object:close``).
OBJECT_PREFIX = "object:"
#: COCOeval's own "all" area range (pixels^2).
_COCO_ALL = (0.0, 1e5**2)


@dataclass(frozen=True)
class APResult:
    """One AP: ``metric`` (``AP`` = mAP@[.5:.95], ``AP50``), ``category`` (a class or
    ``all``), ``size`` (``all``/small/medium/large); ``value`` None with ``reason``.
    ``ci``: a 95% bootstrap interval over drives (AP50 only, when asked for);
    ``n_drives``: the drives holding its ground-truth objects (its effective sample size)."""

    metric: str
    category: str
    size: str
    value: float | None
    n_instances: int
    reason: str | None = None
    ci: tuple[float, float] | None = None
    n_drives: int | None = None


@dataclass
class DetectionResults:
    """COCO metrics of detections on a set of frames, plus the PR arrays to plot.

    ``precision`` is COCOeval's ``eval["precision"]`` at maxDets=100: (IoU thresholds,
    recall thresholds, classes, areas [all, small, medium, large]), -1 where undefined; an
    object slice has one area (its own range) and no size buckets.

    ``n_images`` is the slice size in images: for an object slice, the images holding at
    least one of its ground-truth objects (detections on every image are scored), with its
    objects counted in each result's ``n_instances``.
    """

    classes: list[str]
    results: list[APResult]
    n_images: int
    slice: str = ALL
    precision: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    recall_thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    iou_thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    #: AP@0.5 on each bootstrap resample of the images: (resamples, classes + mean), NaN
    #: where undefined; object slices of one evaluation share their resamples (paired).
    ap50_samples: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    #: Drives among the slice's images; ``unit``: what the bootstrap resampled (``frame``
    #: only where frames are independent: no drives known, or asked for).
    n_drives: int | None = None
    unit: Unit = "drive"

    def get(self, metric: str = "AP50", category: str = ALL, size: str = ALL) -> APResult:
        for r in self.results:
            if (r.metric, r.category, r.size) == (metric, category, size):
                return r
        raise KeyError(f"no result for {metric}, class {category!r}, size {size!r}")

    @property
    def map(self) -> float | None:
        """COCO mAP@[.5:.95] over the classes with ground truth."""
        return self.get("AP").value

    @property
    def map50(self) -> float | None:
        """mAP at IoU 0.5."""
        return self.get("AP50").value

    def samples(self, category: str = ALL) -> np.ndarray:
        """Bootstrap resamples of AP@0.5 for a class or the mean (empty without n_boot)."""
        if not self.ap50_samples.size:
            return np.zeros(0)
        return self.ap50_samples[
            :, len(self.classes) if category == ALL else self.classes.index(category)
        ]

    def per_class(self, metric: str = "AP50") -> dict[str, float | None]:
        return {c: self.get(metric, c).value for c in self.classes}

    def few_instances(self, below: int = FEW_INSTANCES) -> dict[str, int]:
        """Classes with ground truth but fewer than ``below`` objects: their AP jumps in
        big steps (with one object it is 0 or 1) and each moves the mean by up to
        1/(classes with ground truth)."""
        counts = {c: self.get("AP50", c).n_instances for c in self.classes}
        return {c: n for c, n in counts.items() if 0 < n < below}

    def few_instances_note(self, below: int = FEW_INSTANCES) -> str:
        """A warning for tables and reports ('' when every class has enough objects)."""
        few = self.few_instances(below)
        if not few:
            return ""
        defined = sum(1 for c in self.classes if self.get("AP50", c).n_instances)
        listed = ", ".join(f"{c} ({n})" for c, n in few.items())
        return (
            f"Few test objects: {listed}. Such a class's AP moves in big steps (0 or 1 "
            f"with one object), and each moves the mean by up to 1/{defined}."
        )

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (metric, class, slice, value, ci_low, ci_high, n_images, n_instances,
        reason); the size bucket is part of the metric name (``AP50_small``)."""
        return [
            {
                "metric": r.metric if r.size == ALL else f"{r.metric}_{r.size}",
                "class": r.category,
                "slice": self.slice,
                "value": r.value,
                "ci_low": r.ci[0] if r.ci else None,
                "ci_high": r.ci[1] if r.ci else None,
                "n_images": self.n_images,
                "n_instances": r.n_instances,
                "n_drives": r.n_drives,
                "reason": r.reason,
            }
            for r in self.results
        ]

    def to_table(self, title: str | None = None) -> Table:
        """Per class AP@0.5, AP@[.5:.95], instance and drive counts; overall and size rows
        last."""
        drives = "" if self.n_drives is None else f", {self.n_drives:,} drives"
        table = Table(
            title=title or f"Detection ({self.slice}: {self.n_images:,} images{drives})",
            caption="COCO evaluation (COCOeval). Classes without ground truth are "
            "undefined and left out of the means. "
            + _interval_note(self)
            + " "
            + self.few_instances_note(),
        )
        table.add_column("class", no_wrap=True)
        for col in ("instances", "drives", "AP@0.5", "AP@[.5:.95]"):
            table.add_column(col, justify="right")
        for c in [*self.classes, ALL]:
            if c == ALL:
                table.add_section()
            a50, a = self.get("AP50", c), self.get("AP", c)
            table.add_row(
                "mean" if c == ALL else c,
                f"{a.n_instances:,}",
                drives_text(a50.n_drives, self.unit),
                _fmt(a50),
                _fmt(a),
                style="bold" if c == ALL else (None if a.value is not None else "dim"),
            )
        for size in SIZES:
            if not any(r.size == size for r in self.results):
                continue  # an object slice has no size buckets
            a50, a = self.get("AP50", ALL, size), self.get("AP", ALL, size)
            table.add_row(
                f"  {size}", f"{a.n_instances:,}", drives_text(a50.n_drives, self.unit),
                _fmt(a50), _fmt(a), style="dim",
            )  # fmt: skip
        return table

    def plot_pr_curves(self, path: Path | str) -> Path:
        """One PNG: precision-recall at IoU 0.5 per class (all sizes, 100 detections)."""
        return _plot_pr(self, Path(path))


@dataclass
class SliceResults:
    """The same metrics per named slice (of frames, or of objects: ``object:*``), each with
    its size."""

    slices: dict[str, DetectionResults]

    def rows(self) -> list[dict[str, Any]]:
        return [row for res in self.slices.values() for row in res.rows()]

    def to_table(
        self, metric: str = "AP50", title: str | None = None, classes: Sequence[str] | None = None
    ) -> Table:
        """One row per slice: images, instances and ``metric`` overall and per class
        (``classes``: which class columns; default all), with intervals where computed."""
        first = next(iter(self.slices.values()), None)
        if classes is None:
            classes = first.classes if first else []
        objects = any(n.startswith(OBJECT_PREFIX) for n in self.slices)
        table = Table(
            title=title or f"Detection {metric} per slice",
            caption=(
                f"{OBJECT_PREFIX}* slices score only the objects in a distance band (ground "
                "truth: labelled distance; detections: distance estimated from box height) on "
                "every image; their images are those holding such objects. "
                if objects
                else ""
            )
            + (_interval_note(first) + " (n, d): objects, drives." if first else ""),
        )
        table.add_column("slice", no_wrap=True)
        table.add_column("images", justify="right")
        table.add_column("drives", justify="right")
        table.add_column("instances", justify="right")
        table.add_column("mean", justify="right")
        for c in classes:
            table.add_column(f"{c} (n)", justify="right")
        started_objects = False
        for name, res in self.slices.items():
            if name.startswith(OBJECT_PREFIX) and not started_objects:
                started_objects = True
                table.add_section()
            overall = res.get(metric)
            cells = [
                name, f"{res.n_images:,}", drives_text(overall.n_drives, res.unit),
                f"{overall.n_instances:,}", _fmt(overall),
            ]  # fmt: skip
            for c in classes:
                r = res.get(metric, c)
                d = "" if res.unit == "frame" else f", {drives_text(r.n_drives)}"
                cells.append(f"{_fmt(r)} ({r.n_instances:,}{d})")
            table.add_row(*cells)
        return table


# --------------------------------------------------------------------------- object slices
#: A per-box quantity (distance in metres, area in pixels^2, ...).
BoxKey = Callable[[Box], float]


@dataclass(frozen=True)
class ObjectSlices:
    """Slices of *objects* by a per-box quantity, scored by COCOeval's area-range mechanism.

    COCOeval evaluates each area range by ignoring the ground truth outside it (a detection
    matched to such an object is ignored too, not a false positive) and ignoring unmatched
    detections outside it. Nothing in that needs the quantity to be an area: feeding it
    ``gt_key(box)`` as each ground-truth object's ``area``, ``dt_key(box)`` as each
    detection's, and ``ranges`` as ``areaRng`` gives the same slicing by distance, with
    pycocotools' own matching. COCO itself uses two keys (segment area for ground truth,
    box area for detections); here, for distance, the ground truth's is the labelled distance
    and the detections' is estimated from their boxes (see :class:`DistanceFromHeight`).

    ``ranges``: name -> [low, high], inclusive at both ends as in COCOeval.
    """

    ranges: Mapping[str, tuple[float, float]]
    gt_key: BoxKey
    dt_key: BoxKey
    quantity: str = "area (px^2)"


@dataclass(frozen=True)
class DistanceFromHeight:
    """Distance (m) of a box from its height in pixels: ``k[class] / height``.

    A pinhole camera over a flat road gives height = focal * object height / distance, so
    per class ``k`` = distance x box height is a constant: calibrated as its median over the
    ground-truth boxes that carry a distance and are neither occluded nor truncated. On the
    synthetic world its median relative error is 4-9% per class, so detections near a band
    edge can land on the wrong side; the ground truth's own band is exact. Classes without
    calibration boxes use the median over all classes.
    """

    k: Mapping[str, float]
    default: float

    @classmethod
    def calibrate(cls, frames: Sequence[FrameRecord]) -> DistanceFromHeight:
        """Fit ``k`` on the ground-truth boxes of ``frames`` that have a distance."""
        by_class: dict[str, list[float]] = {}
        loose: dict[str, list[float]] = {}
        for f in frames:
            for b in f.boxes or ():
                d = _labelled_distance(b)
                if d is None or d <= 0 or b.height <= 0 or b.attributes.get("iscrowd"):
                    continue
                loose.setdefault(b.category, []).append(d * b.height)
                if not (b.occluded or b.truncated):
                    by_class.setdefault(b.category, []).append(d * b.height)
        source = by_class or loose
        if not source:
            raise ValueError(
                "distance slices need ground-truth boxes with a 'distance' attribute "
                "(the synthetic world records it; real data usually does not)"
            )
        k = {c: float(np.median(v)) for c, v in source.items()}
        return cls(k, float(np.median([x for v in source.values() for x in v])))

    def __call__(self, box: Box) -> float:
        return self.k.get(box.category, self.default) / max(box.height, 1e-6)


def has_distances(frames: Sequence[FrameRecord]) -> bool:
    """Whether any ground-truth box carries a distance (needed for distance slices)."""
    return any(_labelled_distance(b) is not None for f in frames for b in f.boxes or ())


def distance_slices(
    frames: Sequence[FrameRecord],
    close_m: float = 10.0,
    far_m: float = 40.0,
    bands: Mapping[str, tuple[float, float]] | None = None,
) -> ObjectSlices:
    """``close`` (<= close_m), ``mid`` and ``far`` (> far_m): the thresholds of the
    close_participant / far_participant situations; or custom ``bands`` (name -> [lo, hi]
    metres). Ground truth by its labelled distance (estimated from its height where it has
    none), detections by :class:`DistanceFromHeight` calibrated on ``frames``."""
    proxy = DistanceFromHeight.calibrate(frames)
    if bands is None:
        bands = {
            "close": (0.0, close_m),
            "mid": (math.nextafter(close_m, math.inf), far_m),
            "far": (math.nextafter(far_m, math.inf), math.inf),
        }

    def gt_key(box: Box) -> float:
        d = _labelled_distance(box)
        return proxy(box) if d is None else d

    return ObjectSlices(dict(bands), gt_key, proxy, quantity="distance (m)")


def size_slices() -> ObjectSlices:
    """COCO's small / medium / large by box area, as object slices: the same numbers as
    COCOeval's own size buckets (a check of the mechanism, and slices for any data)."""
    ranges = {s: (float(lo), float(min(hi, _COCO_ALL[1]))) for s, (lo, hi) in _SIZE_LIMITS.items()}
    return ObjectSlices(ranges, lambda b: b.area, lambda b: b.width * b.height)


def _labelled_distance(box: Box) -> float | None:
    d = box.attributes.get("distance")
    return float(d) if isinstance(d, int | float) and not isinstance(d, bool) else None


# --------------------------------------------------------------------------- evaluation
def evaluate_detection(
    gt: Sequence[FrameRecord],
    predictions: Mapping[str, Sequence[Box]],
    classes: Sequence[str],
    slice_name: str = ALL,
    n_boot: int = 0,
    seed: int = 0,
    unit: Unit = "drive",
    engine: str | None = None,
) -> DetectionResults:
    """COCO evaluation of ``predictions`` (frame name -> boxes) on the frames of ``gt``
    whose boxes are labelled. Predictions for other frames are ignored; a labelled frame
    without predictions counts as one where the model found nothing. ``n_boot`` > 0 adds
    95% bootstrap intervals to AP@0.5 (mean, per class and size), resampling drives (all
    their images); ``unit="frame"`` resamples images as if independent (for comparison).
    ``engine``: one of :data:`ENGINES`; None: ``faster``, or pycocotools to bootstrap."""
    classes = list(classes)
    ranges = {
        ALL: _COCO_ALL,
        **{s: (float(lo), min(hi, _COCO_ALL[1])) for s, (lo, hi) in _SIZE_LIMITS.items()},
    }
    ev, doc = _run_cocoeval(gt, predictions, classes, ranges, engine=_engine(engine, n_boot))
    clusters, unit = _image_clusters(gt, doc, unit)
    samples = _bootstrap_ap50(ev, list(range(len(ranges))), n_boot, seed, clusters)
    precision = np.asarray(ev.eval["precision"])[..., -1]  # maxDets = 100
    drives = _counts(doc, classes, ranges, clusters)
    return DetectionResults(
        classes=classes,
        results=_results(
            precision,
            classes,
            list(ranges),
            _counts(doc, classes, ranges),
            _cis(samples, classes, list(ranges), None if unit == "frame" else drives),
            drives,
        ),
        n_images=len(doc["images"]),
        slice=slice_name,
        precision=precision,
        recall_thresholds=np.asarray(ev.params.recThrs),
        iou_thresholds=np.asarray(ev.params.iouThrs),
        ap50_samples=samples[..., 0],
        n_drives=None if unit == "frame" else int(np.unique(clusters).size),
        unit=unit,
    )


def evaluate_object_slices(
    gt: Sequence[FrameRecord],
    predictions: Mapping[str, Sequence[Box]],
    classes: Sequence[str],
    objects: ObjectSlices,
    n_boot: int = 0,
    seed: int = 0,
    unit: Unit = "drive",
    engine: str | None = None,
) -> SliceResults:
    """One pycocotools evaluation of all images with ``objects.ranges`` as its area ranges
    (see :class:`ObjectSlices`); slices named ``object:<name>``, each with its objects'
    count and the images (and drives) holding them. ``n_boot``, ``unit``: as in
    :func:`evaluate_detection`."""
    classes = list(classes)
    ranges = dict(objects.ranges)
    ev, doc = _run_cocoeval(
        gt, predictions, classes, ranges, objects.gt_key, objects.dt_key, _engine(engine, n_boot)
    )
    clusters, unit = _image_clusters(gt, doc, unit)
    names = list(ranges)
    samples = _bootstrap_ap50(ev, list(range(len(names))), n_boot, seed, clusters)
    drive_counts = _counts(doc, classes, ranges, clusters)
    cis = _cis(samples, classes, names, None if unit == "frame" else drive_counts)
    precision = np.asarray(ev.eval["precision"])[..., -1]
    counts = _counts(doc, classes, ranges)
    out = {}
    for a, name in enumerate(names):
        slice_cis = {(c, ALL): ci for (c, size), ci in cis.items() if size == name}
        slice_counts = {(c, ALL): n for (c, size), n in counts.items() if size == name}
        slice_drives = {(c, ALL): n for (c, size), n in drive_counts.items() if size == name}
        sub = precision[..., a : a + 1]
        out[OBJECT_PREFIX + name] = DetectionResults(
            classes=classes,
            results=_results(sub, classes, [ALL], slice_counts, slice_cis, slice_drives),
            n_images=_images_with(doc, ranges[name]),
            slice=OBJECT_PREFIX + name,
            precision=sub,
            recall_thresholds=np.asarray(ev.params.recThrs),
            iou_thresholds=np.asarray(ev.params.iouThrs),
            ap50_samples=samples[..., a],
            n_drives=None if unit == "frame" else slice_drives.get((ALL, ALL), 0),
            unit=unit,
        )
    return SliceResults(out)


def evaluate_slices(
    gt: Sequence[FrameRecord],
    predictions: Mapping[str, Sequence[Box]],
    classes: Sequence[str],
    slices: Mapping[str, Sequence[str]],
    include_all: bool = True,
    objects: ObjectSlices | None = None,
    n_boot: int = 0,
    seed: int = 0,
    unit: Unit = "drive",
) -> SliceResults:
    """:func:`evaluate_detection` on each named slice of frame names (names not among the
    labelled ``gt`` frames are skipped), plus ``all`` first when ``include_all``, and the
    object slices of ``objects`` on all of ``gt`` last."""
    out: dict[str, DetectionResults] = {}
    if include_all:
        out[ALL] = evaluate_detection(gt, predictions, classes, n_boot=n_boot, seed=seed, unit=unit)
    by_name = {r.name: r for r in gt}
    for name, names in slices.items():
        subset = [by_name[n] for n in dict.fromkeys(names) if n in by_name]
        out[name] = evaluate_detection(subset, predictions, classes, name, n_boot, seed, unit)
    if objects is not None:
        out |= evaluate_object_slices(gt, predictions, classes, objects, n_boot, seed, unit).slices
    return SliceResults(out)


def coco_ground_truth(
    gt: Sequence[FrameRecord], classes: Sequence[str]
) -> tuple[dict[str, Any], dict[str, int]]:
    """A COCO instances document as ``write_coco`` writes it (ids: 1-based positions in
    ``gt``; frames with unlabelled boxes left out), and frame name -> image id."""
    col = {c: i for i, c in enumerate(classes, start=1)}
    images, annotations, ids = [], [], {}
    for pos, frame in enumerate(gt, start=1):
        if frame.boxes is None:
            continue
        if frame.width is None or frame.height is None:
            raise ValueError(f"frame {frame.name!r}: evaluation needs its width and height")
        ids[frame.name] = pos
        images.append(
            {"id": pos, "file_name": frame.name, "width": frame.width, "height": frame.height}
        )
        for box in frame.boxes:
            if box.category not in col:
                raise ValueError(f"frame {frame.name!r}: class {box.category!r} is not evaluated")
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": pos,
                    "category_id": col[box.category],
                    "bbox": _xywh(box),
                    "area": coco_area(box),
                    "iscrowd": 1 if box.attributes.get("iscrowd") else 0,
                }
            )
    categories = [{"id": i, "name": c} for c, i in col.items()]
    return {"images": images, "annotations": annotations, "categories": categories}, ids


def coco_detections(
    gt: Sequence[FrameRecord],
    predictions: Mapping[str, Sequence[Box]],
    classes: Sequence[str],
    image_ids: Mapping[str, int],
) -> list[dict[str, Any]]:
    """COCO results entries for the predictions on evaluated frames, in ``gt`` order."""
    col = {c: i for i, c in enumerate(classes, start=1)}
    out = []
    for frame in gt:
        if frame.name not in image_ids:
            continue
        for box in predictions.get(frame.name, ()):
            if box.category not in col:
                raise ValueError(
                    f"frame {frame.name!r}: predicted class {box.category!r} is not evaluated"
                )
            out.append(
                {
                    "image_id": image_ids[frame.name],
                    "category_id": col[box.category],
                    "bbox": _xywh(box),
                    "score": 1.0 if box.score is None else box.score,
                }
            )
    return out


def _xywh(box: Box) -> list[float]:
    return [box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1]


def _empty_results(coco_gt, coco_cls):
    """What ``loadRes`` would build for no detections (it fails on an empty list)."""
    dt = coco_cls()
    dt.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "annotations": [],
        "categories": list(coco_gt.dataset["categories"]),
    }
    dt.createIndex()
    return dt


#: COCOeval engines: ``faster`` (faster-coco-eval, C++ matching and accumulation: identical
#: AP, ~5x quicker) is the default; ``pycocotools`` is the reference, and the bootstrap needs
#: it (it re-accumulates the per-image ``evalImgs`` that the faster engine keeps in C++).
ENGINES = ("faster", "pycocotools")


def _engine(engine: str | None, n_boot: int) -> str:
    """The engine to run: the one asked for, else the faster one unless bootstrapping."""
    if engine is None:
        return "pycocotools" if n_boot >= 2 else "faster"
    if engine != "pycocotools" and n_boot >= 2:
        raise ValueError("bootstrap intervals need engine='pycocotools' (per-image results)")
    return engine


def _coco_api(engine: str):
    """(COCO, COCOeval) classes of an engine."""
    if engine == "faster":
        from faster_coco_eval import COCO
        from faster_coco_eval.core.faster_eval_api import COCOeval_faster

        return COCO, COCOeval_faster
    if engine == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    raise ValueError(f"COCOeval engine must be one of {ENGINES}, got {engine!r}")


def _run_cocoeval(
    gt: Sequence[FrameRecord],
    predictions: Mapping[str, Sequence[Box]],
    classes: list[str],
    ranges: Mapping[str, tuple[float, float]],
    gt_key: BoxKey | None = None,
    dt_key: BoxKey | None = None,
    engine: str = "faster",
):
    """COCOeval evaluated and accumulated with ``ranges`` as its area ranges; with keys,
    each object's and detection's ``area`` is replaced by its key (object slices)."""
    coco_cls, eval_cls = _coco_api(engine)
    doc, image_ids = coco_ground_truth(gt, classes)
    dets = coco_detections(gt, predictions, classes, image_ids)
    if gt_key is not None:
        boxes = [b for f in gt if f.boxes is not None for b in f.boxes]
        for ann, box in zip(doc["annotations"], boxes, strict=True):
            ann["area"] = float(gt_key(box))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_cls()
        coco_gt.dataset = copy.deepcopy(doc)  # faster-coco-eval's index edits its dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets) if dets else _empty_results(coco_gt, coco_cls)
        if dt_key is not None:
            boxes = [b for f in gt if f.name in image_ids for b in predictions.get(f.name, ())]
            for ann, box in zip(coco_dt.dataset["annotations"], boxes, strict=True):
                ann["area"] = float(dt_key(box))  # loadRes set it to the box area
        ev = eval_cls(coco_gt, coco_dt, "bbox")
        ev.params.areaRng = [[float(lo), float(hi)] for lo, hi in ranges.values()]
        ev.params.areaRngLbl = list(ranges)
        ev.evaluate()
        ev.accumulate()
    return ev, doc


def _counts(
    doc: dict[str, Any],
    classes: Sequence[str],
    ranges: Mapping[str, tuple[float, float]],
    clusters: np.ndarray | None = None,
) -> dict[tuple[str, str], int]:
    """(class or all, range) -> non-crowd GT instances whose ``area`` lies in the range,
    inclusive at both ends as COCOeval tests it; with ``clusters`` (the drive of each
    image, in ``doc`` order), the distinct drives holding such instances instead."""
    found: dict[tuple[str, str], set] = {}
    names = {i: c for i, c in enumerate(classes, start=1)}
    position = {img["id"]: k for k, img in enumerate(doc["images"])}
    for n, ann in enumerate(doc["annotations"]):
        if ann["iscrowd"]:
            continue
        c = names[ann["category_id"]]
        member = n if clusters is None else int(clusters[position[ann["image_id"]]])
        for label, (lo, hi) in ranges.items():
            if lo <= ann["area"] <= hi:
                for key in ((c, label), (ALL, label)):
                    found.setdefault(key, set()).add(member)
    return {key: len(v) for key, v in found.items()}


def _image_clusters(
    gt: Sequence[FrameRecord], doc: dict[str, Any], unit: Unit
) -> tuple[np.ndarray, Unit]:
    """The drive (cluster id) of each evaluated image in ``doc`` order, which is COCOeval's
    image order (ids ascend with position); each image its own with ``unit="frame"``."""
    drive_of = {frame.name: frame.drive for frame in gt}
    drives = [drive_of[img["file_name"]] for img in doc["images"]]
    if unit == "frame":
        return np.arange(len(drives)), "frame"
    return cluster_ids(drives, len(drives))


def _images_with(doc: dict[str, Any], rng: tuple[float, float]) -> int:
    lo, hi = rng
    return len(
        {a["image_id"] for a in doc["annotations"] if not a["iscrowd"] and lo <= a["area"] <= hi}
    )


def _mean_defined(p: np.ndarray) -> float | None:
    defined = p[p > -1]
    return float(defined.mean()) if defined.size else None


def _results(
    precision: np.ndarray,
    classes: Sequence[str],
    labels: Sequence[str],
    counts: Mapping[tuple[str, str], int],
    cis: Mapping[tuple[str, str], tuple[float, float]] | None = None,
    drives: Mapping[tuple[str, str], int] | None = None,
) -> list[APResult]:
    """AP@[.5:.95] and AP@0.5, overall and per class, for each area range of ``precision``
    (T, R, K, A; ``labels`` name the A ranges), averaged over the defined entries as
    COCOeval's summarize does; ``cis``: AP@0.5 intervals by (class or all, label)."""
    out = []
    for a, size in enumerate(labels):
        for k, c in enumerate([ALL, *classes]):
            sel = slice(None) if c == ALL else k - 1
            n = counts.get((c, size), 0)
            for metric, p in (("AP", precision[:, :, sel, a]), ("AP50", precision[:1, :, sel, a])):
                value = _mean_defined(p)
                ci = (cis or {}).get((c, size)) if metric == "AP50" else None
                reason = None if value is not None else NO_INSTANCES
                d = None if drives is None else drives.get((c, size), 0)
                out.append(APResult(metric, c, size, value, n, reason, ci, d))
    return out


def _cis(
    values: np.ndarray,
    classes: Sequence[str],
    labels: Sequence[str],
    drives: Mapping[tuple[str, str], int] | None = None,
) -> dict[tuple[str, str], tuple[float, float]]:
    """95% percentile intervals of AP@0.5 by (class or all, area label) from resamples
    (n_boot, K + 1, A); resamples where a value is undefined are left out, and fewer than 2
    (or fewer than 2 resamples) give none; so do objects of a single drive (``drives``: see
    :func:`~scenesift.metrics.bootstrap.one_drive`)."""
    if values.shape[0] < 2:
        return {}
    out = {}
    for k, c in enumerate([*classes, ALL]):
        for a, label in enumerate(labels):
            if drives is not None and one_drive(drives.get((c, label), 0)):
                continue
            low, high, _ = percentile_interval(values[:, k, a], 0.95, min_used=2)
            if low is not None and high is not None:
                out[(c, label)] = (low, high)
    return out


def _bootstrap_ap50(
    ev, areas: Sequence[int], n_boot: int, seed: int, clusters: np.ndarray | None = None
) -> np.ndarray:
    """AP@0.5 on ``n_boot`` resamples: (n_boot, classes + mean, len(areas)), NaN where
    undefined; none when ``n_boot`` < 2. A resample draws as many drives as there are
    (``clusters``: the drive of each image in COCOeval's image order) with replacement and
    takes all their images; without ``clusters`` each image is its own drive.

    Per-image matching does not depend on the other images, so a resample's evaluation is
    pycocotools' ``accumulate`` over the per-image results (``evalImgs``) of the images it
    drew, repeats included: the same numbers as evaluating a data set in which each drawn
    image appears once per draw under its own id, without re-matching anything.
    """
    p0 = ev._paramsEval
    n_cat = len(p0.catIds)
    if n_boot < 2:
        return np.zeros((0, n_cat + 1, len(areas)))
    if float(p0.iouThrs[0]) != 0.5:
        raise ValueError("expected COCOeval's IoU thresholds to start at 0.5")
    n_img, n_area = len(p0.imgIds), len(p0.areaRng)
    at50 = [
        None if e is None else {**e, "dtMatches": e["dtMatches"][:1], "dtIgnore": e["dtIgnore"][:1]}
        for e in ev.evalImgs
    ]
    p = copy.deepcopy(p0)
    p.iouThrs = np.asarray(p0.iouThrs[:1])
    p.maxDets = [p0.maxDets[-1]]
    p.areaRng = [p0.areaRng[a] for a in areas]
    p.areaRngLbl = [p0.areaRngLbl[a] for a in areas]
    sub = copy.copy(ev)
    sub.params = sub._paramsEval = p
    base = (
        np.arange(n_cat)[:, None, None] * n_area * n_img + np.asarray(areas)[None, :, None] * n_img
    )
    counts = resample_counts(np.arange(n_img) if clusters is None else clusters, n_boot, seed)
    out = np.full((n_boot, n_cat + 1, len(areas)), np.nan)
    for b in range(n_boot):
        picks = resample_indices(counts[b])
        p.imgIds = list(range(picks.size))
        sub.evalImgs = [at50[i] for i in (base + picks[None, None, :]).ravel()]
        with contextlib.redirect_stdout(io.StringIO()):
            sub.accumulate()
        prec = sub.eval["precision"][0, :, :, :, 0]  # (R, K, A)
        for a in range(len(areas)):
            for k in range(n_cat + 1):
                v = _mean_defined(prec[:, k, a] if k < n_cat else prec[:, :, a])
                out[b, k, a] = np.nan if v is None else v
    return out


def _interval_note(res: DetectionResults) -> str:
    if res.unit == "frame":
        return "Intervals: bootstrap over images, treated as independent."
    return (
        "Intervals: bootstrap over drives (all images of each drawn drive); none for objects "
        "of a single drive. " + FEW_NOTE
    )


def _fmt(r: APResult) -> str:
    if r.value is None:
        return "undefined"
    return f"{r.value:.3f}" if r.ci is None else f"{r.value:.3f} [{r.ci[0]:.2f}-{r.ci[1]:.2f}]"


def _plot_pr(res: DetectionResults, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from scenesift.files import atomic_write

    fig = Figure(figsize=(7, 6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    recall = res.recall_thresholds
    for k, c in enumerate(res.classes):
        p = res.precision[0, :, k, 0] if res.precision.size else np.zeros(0)
        ap = res.get("AP50", c)
        if ap.value is None:
            ax.plot([], [], label=f"{c}: undefined (no instances)", color="0.7")
            continue
        drives = "" if res.unit == "frame" else f", drives {drives_text(ap.n_drives)}"
        ax.plot(recall, np.clip(p, 0, 1),
                label=f"{c}: AP@0.5 {ap.value:.3f} (n={ap.n_instances}{drives})")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall", fontsize=11)
    ax.set_ylabel("precision", fontsize=11)
    mean = res.map50
    shown = "undefined" if mean is None else f"{mean:.3f}"
    ax.set_title(
        f"Precision-recall at IoU 0.5 ({res.slice}, {res.n_images:,} images, mAP@0.5 {shown})",
        fontsize=11,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png")
    return path
