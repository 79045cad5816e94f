"""Object-detection evaluation through pycocotools: COCO mAP, per-class AP, size buckets.

No hand-written mAP: the numbers are pycocotools' ``COCOeval`` on ground truth and
detections built in memory with the conventions of :mod:`scenesift.io.coco` (image ids are
1-based positions in the ground-truth list, category ids 1..N in class order), so they equal
what the reference tool prints on the files ``write_coco`` and ``write_coco_predictions``
write. A class without ground-truth instances (in the whole set or a slice) has no defined
AP: it is reported as None with the reason, never as 0, so it cannot move the mean.

pycocotools and matplotlib are imported where used, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from scenesift.records import Box, FrameRecord

#: COCO's area ranges (pixels^2) in COCOeval's order, after "all".
SIZES = ("small", "medium", "large")
_SIZE_LIMITS = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, float("inf"))}
NO_INSTANCES = "no ground-truth instances"
ALL = "all"


@dataclass(frozen=True)
class APResult:
    """One AP: ``metric`` (``AP`` = mAP@[.5:.95], ``AP50``), ``category`` (a class or
    ``all``), ``size`` (``all``/small/medium/large); ``value`` None with ``reason``."""

    metric: str
    category: str
    size: str
    value: float | None
    n_instances: int
    reason: str | None = None


@dataclass
class DetectionResults:
    """COCO metrics of detections on a set of frames, plus the PR arrays to plot.

    ``precision`` is COCOeval's ``eval["precision"]`` at maxDets=100: (IoU thresholds,
    recall thresholds, classes, areas [all, small, medium, large]), -1 where undefined.
    """

    classes: list[str]
    results: list[APResult]
    n_images: int
    slice: str = ALL
    precision: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    recall_thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    iou_thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

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

    def per_class(self, metric: str = "AP50") -> dict[str, float | None]:
        return {c: self.get(metric, c).value for c in self.classes}

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (metric, class, slice, size, value, n_images, n_instances, reason)."""
        return [
            {
                "metric": r.metric if r.size == ALL else f"{r.metric}_{r.size}",
                "class": r.category,
                "slice": self.slice,
                "value": r.value,
                "n_images": self.n_images,
                "n_instances": r.n_instances,
                "reason": r.reason,
            }
            for r in self.results
        ]

    def to_table(self, title: str | None = None) -> Table:
        """Per class AP@0.5, AP@[.5:.95] and instance count; overall and size rows last."""
        table = Table(
            title=title or f"Detection ({self.slice}: {self.n_images:,} images)",
            caption="COCO evaluation (pycocotools). Classes without ground truth are "
            "undefined and left out of the means.",
        )
        table.add_column("class", no_wrap=True)
        for col in ("instances", "AP@0.5", "AP@[.5:.95]"):
            table.add_column(col, justify="right")
        for c in [*self.classes, ALL]:
            if c == ALL:
                table.add_section()
            a50, a = self.get("AP50", c), self.get("AP", c)
            table.add_row(
                "mean" if c == ALL else c,
                f"{a.n_instances:,}",
                _fmt(a50),
                _fmt(a),
                style="bold" if c == ALL else (None if a.value is not None else "dim"),
            )
        for size in SIZES:
            a50, a = self.get("AP50", ALL, size), self.get("AP", ALL, size)
            table.add_row(f"  {size}", f"{a.n_instances:,}", _fmt(a50), _fmt(a), style="dim")
        return table

    def plot_pr_curves(self, path: Path | str) -> Path:
        """One PNG: precision-recall at IoU 0.5 per class (all sizes, 100 detections)."""
        return _plot_pr(self, Path(path))


@dataclass
class SliceResults:
    """The same metrics per named slice of frames, each with its size."""

    slices: dict[str, DetectionResults]

    def rows(self) -> list[dict[str, Any]]:
        return [row for res in self.slices.values() for row in res.rows()]

    def to_table(self, metric: str = "AP50", title: str | None = None) -> Table:
        """One row per slice: images, instances and ``metric`` overall and per class."""
        first = next(iter(self.slices.values()), None)
        classes = first.classes if first else []
        table = Table(title=title or f"Detection {metric} per slice")
        table.add_column("slice", no_wrap=True)
        table.add_column("images", justify="right")
        table.add_column("instances", justify="right")
        table.add_column("mean", justify="right")
        for c in classes:
            table.add_column(c, justify="right")
        for name, res in self.slices.items():
            overall = res.get(metric)
            cells = [name, f"{res.n_images:,}", f"{overall.n_instances:,}", _fmt(overall)]
            cells += [_fmt(res.get(metric, c)) for c in classes]
            table.add_row(*cells)
        return table


# --------------------------------------------------------------------------- evaluation
def evaluate_detection(
    gt: Sequence[FrameRecord],
    predictions: Mapping[str, Sequence[Box]],
    classes: Sequence[str],
    slice_name: str = ALL,
) -> DetectionResults:
    """COCO evaluation of ``predictions`` (frame name -> boxes) on the frames of ``gt``
    whose boxes are labelled. Predictions for other frames are ignored; a labelled frame
    without predictions counts as one where the model found nothing."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    classes = list(classes)
    gt_doc, image_ids = coco_ground_truth(gt, classes)
    dets = coco_detections(gt, predictions, classes, image_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_doc
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets) if dets else _empty_results(coco_gt)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    precision = np.asarray(ev.eval["precision"])[..., -1]  # maxDets = 100
    counts = _instance_counts(gt_doc, classes)
    results = _overall(ev.stats, counts) + _per_class(precision, classes, counts)
    return DetectionResults(
        classes=classes,
        results=results,
        n_images=len(gt_doc["images"]),
        slice=slice_name,
        precision=precision,
        recall_thresholds=np.asarray(ev.params.recThrs),
        iou_thresholds=np.asarray(ev.params.iouThrs),
    )


def evaluate_slices(
    gt: Sequence[FrameRecord],
    predictions: Mapping[str, Sequence[Box]],
    classes: Sequence[str],
    slices: Mapping[str, Sequence[str]],
    include_all: bool = True,
) -> SliceResults:
    """:func:`evaluate_detection` on each named slice of frame names (names not among the
    labelled ``gt`` frames are skipped), plus ``all`` first when ``include_all``."""
    out: dict[str, DetectionResults] = {}
    if include_all:
        out[ALL] = evaluate_detection(gt, predictions, classes)
    by_name = {r.name: r for r in gt}
    for name, names in slices.items():
        subset = [by_name[n] for n in dict.fromkeys(names) if n in by_name]
        out[name] = evaluate_detection(subset, predictions, classes, slice_name=name)
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
                    "area": box.area,
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


def _empty_results(coco_gt):
    """What ``loadRes`` would build for no detections (it fails on an empty list)."""
    from pycocotools.coco import COCO

    dt = COCO()
    dt.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "annotations": [],
        "categories": list(coco_gt.dataset["categories"]),
    }
    dt.createIndex()
    return dt


def _instance_counts(doc: dict[str, Any], classes: Sequence[str]) -> dict[tuple[str, str], int]:
    """(class or all, size or all) -> non-crowd GT instances, by COCO's ``area`` buckets."""
    counts: dict[tuple[str, str], int] = {}
    names = {i: c for i, c in enumerate(classes, start=1)}
    for ann in doc["annotations"]:
        if ann["iscrowd"]:
            continue
        c = names[ann["category_id"]]
        for size in (ALL, *(s for s in SIZES if _in_bucket(ann["area"], s))):
            for key in ((c, size), (ALL, size)):
                counts[key] = counts.get(key, 0) + 1
    return counts


def _in_bucket(area: float, size: str) -> bool:
    lo, hi = _SIZE_LIMITS[size]
    return lo <= area < hi if size != "large" else area >= lo


def _value(v: float) -> float | None:
    return None if v < 0 else float(v)


def _overall(stats: np.ndarray, counts: dict[tuple[str, str], int]) -> list[APResult]:
    """COCOeval's own summary numbers: AP, AP50 and AP per size bucket (AP50 per size is
    not in its summary; it is read from the precision array in :func:`_per_class`)."""
    out = []
    for metric, size, k in (
        ("AP", ALL, 0),
        ("AP50", ALL, 1),
        ("AP", "small", 3),
        ("AP", "medium", 4),
        ("AP", "large", 5),
    ):
        value = _value(stats[k])
        n = counts.get((ALL, size), 0)
        out.append(
            APResult(metric, ALL, size, value, n, None if value is not None else NO_INSTANCES)
        )
    return out


def _mean_defined(p: np.ndarray) -> float | None:
    defined = p[p > -1]
    return float(defined.mean()) if defined.size else None


def _per_class(
    precision: np.ndarray, classes: Sequence[str], counts: dict[tuple[str, str], int]
) -> list[APResult]:
    """Per class and size bucket AP@[.5:.95] and AP@0.5, and overall AP@0.5 per size,
    averaged as COCOeval's summarize does (over defined entries)."""
    out = []
    for size_i, size in enumerate((ALL, *SIZES)):
        if size != ALL:
            value = _mean_defined(precision[:1, :, :, size_i])
            out.append(
                APResult(
                    "AP50",
                    ALL,
                    size,
                    value,
                    counts.get((ALL, size), 0),
                    None if value is not None else NO_INSTANCES,
                )
            )
        for k, c in enumerate(classes):
            n = counts.get((c, size), 0)
            for metric, p in (
                ("AP", precision[:, :, k, size_i]),
                ("AP50", precision[:1, :, k, size_i]),
            ):
                value = _mean_defined(p)
                out.append(
                    APResult(metric, c, size, value, n, None if value is not None else NO_INSTANCES)
                )
    return out


def _fmt(r: APResult) -> str:
    return "undefined" if r.value is None else f"{r.value:.3f}"


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
        ax.plot(recall, np.clip(p, 0, 1), label=f"{c}: AP@0.5 {ap.value:.3f} (n={ap.n_instances})")
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
