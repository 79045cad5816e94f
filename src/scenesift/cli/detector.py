"""``scenesift detector`` (train, predict, eval), ``scenesift eval`` of any detector's
results and ``scenesift gaps``, the situation gap report."""

from __future__ import annotations

from pathlib import Path

import typer

from scenesift import tables
from scenesift.cli.app import app
from scenesift.cli.common import (
    BACKBONE,
    CHECKPOINT_HELP,
    COCO,
    DEVICE,
    OLD_GT,
    PROJECT,
    coco_file,
    fast_inference,
    parse_size,
)
from scenesift.store import Store
from scenesift.ui import console

detector_app = typer.Typer(
    help="Object detector (CenterNet-style, anchor-free) on the backbone's multi-scale maps; "
    "COCO evaluation (COCOeval), per class, size and situation.",
    no_args_is_help=True,
)
app.add_typer(detector_app, name="detector")

CHECKPOINT = typer.Option(None, help=CHECKPOINT_HELP.format("detector"))
BOOT_HELP = "Bootstrap resamples (of drives) for 95% intervals of AP@0.5 (0: none)."


INPUT_SIZE = typer.Option(
    None,
    help="Network input HxW, multiples of 32 (default: the frames' aspect ratio at about "
    "384x640 pixels).",
)
MODE = typer.Option(
    None,
    help="frozen: cached backbone maps, only neck and heads train (fast); "
    "finetune: the top backbone groups train too. Default: the detector's.",
)
STEPS = typer.Option(
    None, min=1, help="Optimiser steps, exactly (default: 800, or 6 epochs when that is more)."
)
EPOCHS = typer.Option(None, min=1, help="Passes over the frames (replaces --steps).")
LR = typer.Option(None, help="Learning rate of the neck and heads.")
EVAL_EVERY = typer.Option(
    None, min=1, help="Validation mAP@0.5 every N epochs (default: 4 over the second half)."
)


@detector_app.command("train")
def detector_train(
    project: Path = PROJECT,
    backbone: str | None = BACKBONE,
    input_size: str | None = INPUT_SIZE,
    mode: str | None = MODE,
    steps: int | None = STEPS,
    epochs: int | None = EPOCHS,
    batch_size: int | None = typer.Option(None, min=1),
    lr: float | None = LR,
    eval_every: int | None = EVAL_EVERY,
    head_stride: int | None = typer.Option(
        None,
        help="Heat-map stride: 8 (default) or 4 (adds the backbone's stride-4 map: small "
        "objects, ~4x the head's cost).",
    ),
    test_flip: bool | None = typer.Option(
        None,
        "--test-flip/--no-test-flip",
        help="Average predictions with the mirrored frame's (default on: +0.013-0.035 mAP@0.5 "
        "for a second pass of the head).",
    ),
    device: str = DEVICE,
    seed: int = typer.Option(0),
) -> None:
    """Train on the labelled train split; keep the weights with the best validation
    mAP@0.5; save a checkpoint. A table row per evaluation is printed as it happens."""
    from scenesift.pipelines import detector as pipe

    fast_inference()
    cfg = pipe.detector_config(
        backbone=backbone, input_size=parse_size(input_size), mode=mode, steps=steps,
        epochs=epochs, batch_size=batch_size, lr=lr, eval_every=eval_every, device=device,
        seed=seed, head_stride=head_stride, test_flip=test_flip,
        min_epochs=None if steps is None else 0,  # --steps N trains exactly N steps
    )  # fmt: skip
    with Store.open(project) as store:
        if warning := pipe.training_warning(store):
            console.print(tables.warning(warning))
        detector, path = pipe.train(store, cfg, on_eval=pipe.print_evaluation)
    console.print(tables.detector_trained(detector, cfg.mode, path))


@detector_app.command("predict")
def detector_predict(
    project: Path = PROJECT,
    checkpoint: Path | None = CHECKPOINT,
    state: str | None = typer.Option(None, help="Only frames in this label state."),
) -> None:
    """Detect objects and store them as model:<fingerprint> (full class-probability vectors
    kept), for selection and `export coco-results` / `export labelstudio --predictions`."""
    from scenesift.pipelines import detector as pipe

    fast_inference()
    with Store.open(project) as store:
        detector, _ = pipe.load(store, checkpoint)
        source, n = pipe.predict(store, detector, state=state)
    console.print(tables.detections_stored(source, n))


@detector_app.command("eval")
def detector_eval(
    project: Path = PROJECT,
    checkpoint: Path | None = CHECKPOINT,
    split: str = typer.Option("test"),
    slices: bool = typer.Option(
        True, help="Also per situation (labels, else tagger) and per object distance band."
    ),
    boot: int = typer.Option(0, min=0, help=BOOT_HELP),
) -> None:
    """mAP@[.5:.95], mAP@0.5 (COCOeval) per class, size, situation and object distance band
    (object:close/mid/far, where the ground truth records distances)."""
    from scenesift.pipelines import detector as pipe

    fast_inference()
    with Store.open(project) as store:
        results, by_situation, out = pipe.evaluate_checkpoint(store, checkpoint, split,
                                                              slices, boot)  # fmt: skip
    console.print(tables.detection_evaluation(results, by_situation, out / "pr_curves.png"))


@app.command("eval")
def eval_predictions(
    predictions: Path = typer.Option(
        ..., "--predictions", help="Your model's detections: a COCO results JSON list."
    ),
    coco: Path | None = COCO,
    old_gt: Path | None = OLD_GT,
    project: Path = PROJECT,
    split: str = typer.Option("test"),
    slices: bool = typer.Option(
        False, "--slices", help="Also per situation and per object distance band."
    ),
    boot: int = typer.Option(0, min=0, help=BOOT_HELP),
) -> None:
    """Evaluate any detector's predictions (YOLO, Faster R-CNN, ...) against the project's
    labelled boxes: COCO mAP (COCOeval, by faster-coco-eval), per class, size, situation
    and object distance."""
    from scenesift.pipelines import detector as pipe

    with Store.open(project) as store:
        results, by_situation = pipe.evaluate_results_file(
            store,
            predictions,
            coco_file(coco, old_gt, required=True),
            split,
            slices,
            n_boot=boot,
        )
    console.print(tables.detection_evaluation(results, by_situation))


@app.command()
def gaps(
    project: Path = PROJECT,
    checkpoint: Path | None = typer.Option(None, help="Detector (default: the latest)."),
    split: str = typer.Option("test"),
    boot: int = typer.Option(30, min=0, help="Bootstrap resamples of drives for mAP intervals."),
) -> None:
    """Situation gap report: per situation, labelled frames, unlabelled frames the tagger
    puts there, detector mAP@0.5 with a 95% interval, ranked by where data is most needed."""
    from scenesift.pipelines.gaps import checkpoint_gaps

    fast_inference()
    with Store.open(project) as store:
        rows, png = checkpoint_gaps(store, checkpoint, split, n_boot=boot)
    console.print(tables.gaps(rows, png))
