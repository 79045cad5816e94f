"""Detector workflows on a project: train, predict into the store, evaluate per situation.

Per-situation slices (seed 000: "how does our detector do at night, in rain, with far-away
pedestrians?") take a frame's situation from its labels where they exist, else from the
latest tagger's stored predictions, and every number is printed with its slice size. Where
the ground truth records each object's distance (the synthetic world, KITTI), object slices
``object:close`` / ``object:mid`` / ``object:far`` follow (see
:class:`scenesift.metrics.detection.ObjectSlices`): a frame-level "far" slice holds almost
every frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from scenesift.metrics.detection import (
    DetectionResults,
    SliceResults,
    distance_slices,
    evaluate_detection,
    evaluate_slices,
    has_distances,
)
from scenesift.models.backbones import Backbone
from scenesift.models.detector import DetectorConfig, DetectorEpoch, ObjectDetector
from scenesift.pipelines.checkpoints import load_model, save_model
from scenesift.pipelines.evidence import few_drives_warning, positive_drives
from scenesift.records import Box, FrameRecord
from scenesift.store import Store, StoreError
from scenesift.ui import console

MODELS_DIR = Path("models") / "detector"
REPORTS_DIR = Path("reports") / "detector"


def with_truth(store: Store, split: str) -> list[FrameRecord]:
    """Labelled frames of a split whose objects were labelled (truth boxes, maybe none)."""
    return [r for r in store.records(split=split, state="labelled") if r.boxes is not None]


def print_evaluation(log: DetectorEpoch) -> None:
    """One row of the live training table, printed above the progress bar as it happens:
    each row names its columns, so rows read alone in a log."""
    m = "-" if log.val_map50 is None else f"{log.val_map50:.3f}"
    console.print(
        f"epoch {log.epoch + 1:>4}  step {log.steps:>6}  train loss {log.train_loss:7.3f}  "
        f"val loss {log.val_loss:7.3f}  val mAP@0.5 {m:>5}  {log.seconds:6.1f} s"
        + ("  [bold green]kept[/]" if log.kept else ""),
        soft_wrap=True,
    )


def detector_config(**given: object) -> DetectorConfig:
    """A DetectorConfig from command-line values; None means the detector's default, and an
    invalid value is a ConfigError (a user error, printed in one line)."""
    from scenesift.errors import ConfigError

    try:
        return DetectorConfig(**{k: v for k, v in given.items() if v is not None})
    except ValueError as e:
        raise ConfigError(str(e)) from None


def train(
    store: Store,
    config: DetectorConfig,
    backbone: Backbone | None = None,
    progress: bool = True,
    on_eval: Callable[[DetectorEpoch], None] | None = None,
) -> tuple[ObjectDetector, Path]:
    """Train on the labelled train split, select on the val split, save, mark latest."""
    train_frames, val = with_truth(store, "train"), with_truth(store, "val")
    if not train_frames:
        raise StoreError(
            "no labelled frames with boxes in the train split: import labelled boxes or "
            "finish a labelling round first"
        )
    detector = ObjectDetector(store.taxonomy.classes, config)
    detector.fit(
        train_frames, val or None, store=store, backbone=backbone, progress=progress,
        on_eval=on_eval,
    )  # fmt: skip
    return detector, save_model(store.root / MODELS_DIR, detector, {"classes": detector.classes})


def training_warning(store: Store) -> str | None:
    """One line naming the classes whose training objects come from fewer than 2 drives
    (None: all have enough); see :mod:`scenesift.pipelines.evidence`."""
    drives = positive_drives(with_truth(store, "train"), classes=store.taxonomy.classes)
    return few_drives_warning(drives, "classes")


def load(store: Store, path: Path | None = None) -> tuple[ObjectDetector, Path]:
    return load_model(store.root / MODELS_DIR, ObjectDetector.load, "detector", path)


def predict(
    store: Store, detector: ObjectDetector, state: str | None = None, progress: bool = True
) -> tuple[str, int]:
    """Detect on frames (default: all) and store them as ``model:<fingerprint>``."""
    records = store.records(state=state)
    boxes = detector.predict(records, store=store, progress=progress)
    source = f"model:{detector.fingerprint}"
    store.write_box_predictions(source, {r.name: boxes.get(r.name, []) for r in records})
    return source, len(records)


def situation_slices(
    store: Store, frames: Sequence[FrameRecord], tagger_source: str | None = "latest"
) -> dict[str, list[str]]:
    """Frame names per situation: the frame's label where it has one, otherwise the stored
    tagger prediction (``latest``: the most recent model with situation scores)."""
    predicted: dict[str, dict[str, bool]] = {}
    if tagger_source == "latest":
        tagger_source = store.latest_model_source()
    if tagger_source is not None:
        thresholds = store.decision_thresholds(tagger_source)
        names = {f.name for f in frames}
        for rec in store.records(predictions=tagger_source):
            if rec.name in names:
                scored = list(rec.situation_scores)
                values = store.taxonomy.decide(  # the stored values: one per exclusive group
                    [list(rec.situation_scores.values())], scored, thresholds, float("inf")
                )[0]
                predicted[rec.name] = dict(zip(scored, map(bool, values), strict=True))
    out: dict[str, list[str]] = {}
    for situation in store.taxonomy.names:
        members = []
        for f in frames:
            value = f.situations.get(situation)
            if value is None:
                value = predicted.get(f.name, {}).get(situation)
            if value:
                members.append(f.name)
        out[situation] = members
    return out


def evaluate(
    store: Store,
    predictions: Mapping[str, Sequence[Box]],
    split: str = "test",
    slices: bool = True,
    plots: Path | None = None,
    n_boot: int = 0,
) -> tuple[DetectionResults, SliceResults | None]:
    """COCO metrics (COCOeval, by faster-coco-eval) of ``predictions`` against a split's
    labelled boxes, and the same per situation and per distance band of objects (where
    distances are labelled); ``n_boot`` > 0 adds 95% bootstrap intervals over drives to
    every AP@0.5."""
    gt = with_truth(store, split)
    if not gt:
        raise StoreError(f"no labelled frames with boxes in the {split} split")
    classes = store.taxonomy.classes
    results = evaluate_detection(gt, predictions, classes, n_boot=n_boot)
    if plots is not None:
        results.plot_pr_curves(Path(plots) / "pr_curves.png")
    if not slices:
        return results, None
    objects = distance_slices(gt) if has_distances(gt) else None
    rest = evaluate_slices(
        gt, predictions, classes, situation_slices(store, gt), False, objects, n_boot
    )
    return results, SliceResults({results.slice: results, **rest.slices})


def evaluate_checkpoint(
    store: Store,
    path: Path | None = None,
    split: str = "test",
    slices: bool = True,
    n_boot: int = 0,
) -> tuple[DetectionResults, SliceResults | None, Path]:
    """Evaluate a saved detector (default: the latest) on a split; PR curves go to the
    project's reports folder, which is returned."""
    detector, _ = load(store, path)
    predictions = detector.predict(with_truth(store, split), store=store)
    out = store.root / REPORTS_DIR / detector.fingerprint
    results, by_situation = evaluate(store, predictions, split, slices, out, n_boot)
    return results, by_situation, out


def evaluate_results_file(
    store: Store,
    predictions: Path,
    gt: Path,
    split: str = "test",
    slices: bool = False,
    n_boot: int = 0,
) -> tuple[DetectionResults, SliceResults | None]:
    """Evaluate any detector's COCO results file (image ids from the COCO file ``gt``); a
    split the file does not cover is a ConfigError (``check_coverage``), not AP 0."""
    from scenesift.errors import ConfigError
    from scenesift.io.coco_results import check_coverage, read_coco_results

    boxes = read_coco_results(predictions, gt, store.taxonomy.classes)
    try:
        check_coverage(boxes, with_truth(store, split), split)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return evaluate(store, boxes, split, slices, n_boot=n_boot)
