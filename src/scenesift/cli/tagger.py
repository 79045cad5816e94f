"""``scenesift tagger``: train, evaluate, pre-label, CAMs and schedule comparison."""

from __future__ import annotations

from pathlib import Path

import typer

from scenesift import tables
from scenesift.cli.app import app
from scenesift.cli.common import (
    BACKBONE,
    CHECKPOINT_HELP,
    DEVICE,
    ENGINE,
    PROJECT,
    RAY_ADDRESS,
    RAY_WORKERS,
    RUNTIME,
    fast_inference,
    parse_size,
)
from scenesift.store import Store
from scenesift.ui import console

tagger_app = typer.Typer(
    help="Situation tagger (seed 000): ImageNet backbone -> 1x1 conv per pixel -> global "
    "average pooling, masked BCE over all situations, gradual unfreezing.",
    no_args_is_help=True,
)
app.add_typer(tagger_app, name="tagger")

CHECKPOINT = typer.Option(None, help=CHECKPOINT_HELP.format("tagger"))

# Training knobs shared by `tagger train` and `tagger compare` (one definition, one help).
_T_INPUT_SIZE = typer.Option(
    None, help="Network input HxW, multiples of 32 (default: the backbone's, 192x320)."
)
_T_EPOCHS = typer.Option(5, min=1)
_T_SAMPLES = typer.Option(
    None, help="Frames per backbone-training epoch (random each epoch; default all)."
)
_T_BATCH = typer.Option(32, min=1)
_T_HEAD_LR = typer.Option(3e-3, help="Learning rate of the new 1x1 conv head.")
_T_HEAD_PASSES = typer.Option(
    20, min=1, help="Passes over the cached pooled features in a head-only epoch."
)
_T_BACKBONE_LR = typer.Option(
    1e-4, help="Learning rate of the top backbone group; each lower one gets --lr-decay x."
)
_T_FINETUNE_HEAD_LR = typer.Option(
    3e-4, help="Learning rate of the head in epochs where backbone groups train too."
)
_T_LR_DECAY = typer.Option(0.5)
_T_CACHE_TRUNK = typer.Option(
    True,
    help="gradual: fine-tune the top groups on the cached output of the frozen ones "
    "below (computed once) instead of running every image through the whole backbone "
    "each epoch.",
)
_T_SEED = typer.Option(0)


def _tagger_config(backbone: str | None, input_size: str | None, **values):
    """TaggerConfig from the flags; an omitted backbone is the config's default."""
    from scenesift.models.tagger import TaggerConfig

    if backbone is not None:
        values["backbone"] = backbone
    try:
        return TaggerConfig(input_size=parse_size(input_size), **values)
    except ValueError as e:
        from scenesift.errors import ConfigError

        raise ConfigError(str(e)) from None


@tagger_app.command("train")
def tagger_train(
    project: Path = PROJECT,
    backbone: str | None = BACKBONE,
    input_size: str | None = _T_INPUT_SIZE,
    schedule: str = typer.Option(
        "gradual",
        help="gradual: head alone, then one more block group per epoch; "
        "frozen: head only; full: everything from the start.",
    ),
    epochs: int = _T_EPOCHS,
    samples_per_epoch: int | None = _T_SAMPLES,
    batch_size: int = _T_BATCH,
    head_lr: float = _T_HEAD_LR,
    head_passes: int = _T_HEAD_PASSES,
    backbone_lr: float = _T_BACKBONE_LR,
    finetune_head_lr: float = _T_FINETUNE_HEAD_LR,
    lr_decay: float = _T_LR_DECAY,
    cache_trunk: bool = _T_CACHE_TRUNK,
    seed: int = _T_SEED,
    device: str = DEVICE,
) -> None:
    """Train on the labelled train split, early-stop on val, save a checkpoint."""
    from scenesift.pipelines import tagger as pipe

    fast_inference()
    cfg = _tagger_config(
        backbone, input_size, schedule=schedule, epochs=epochs, seed=seed,
        batch_size=batch_size, samples_per_epoch=samples_per_epoch, head_lr=head_lr,
        head_passes=head_passes, backbone_lr=backbone_lr, lr_decay=lr_decay,
        finetune_head_lr=finetune_head_lr, cache_trunk=cache_trunk, device=device,
    )  # fmt: skip
    with Store.open(project) as store:
        if warning := pipe.training_warning(store):
            console.print(tables.warning(warning))
        tagger, path = pipe.train(store, cfg)
    console.print(tables.tagger_history(tagger, path))


@tagger_app.command("eval")
def tagger_eval(
    project: Path = PROJECT,
    checkpoint: Path | None = CHECKPOINT,
    split: str = typer.Option("test"),
    plots: bool = typer.Option(True, help="Write ROC and PR curves per situation (PNG)."),
    ci: bool = typer.Option(True, help="Bootstrap 95% intervals of ROC-AUC, over drives."),
) -> None:
    """Per-situation ROC-AUC and PR-AUC (average precision) with test positives; undefined
    where the split has no positives or no negatives."""
    from scenesift.pipelines import tagger as pipe

    fast_inference()
    with Store.open(project) as store:
        tagger, results, out = pipe.evaluate_checkpoint(store, checkpoint, split, plots)
    console.print(tables.tagger_evaluation(tagger, results, split, ci, out))


@tagger_app.command("predict")
def tagger_predict(
    project: Path = PROJECT,
    checkpoint: Path | None = CHECKPOINT,
    precision: float = typer.Option(
        0.9, help="Per-situation thresholds reach this precision on the val split."
    ),
    state: str | None = typer.Option(None, help="Only frames in this label state."),
    engine: str = ENGINE,
    ray_address: str | None = RAY_ADDRESS,
    ray_workers: int = RAY_WORKERS,
    runtime: str = RUNTIME,
) -> None:
    """Pre-label: write situation scores and thresholded values into the store as
    model:<fingerprint> (used by `info`, selection, and `export labelstudio --predictions`).

    With --engine ray (or --runtime onnx) the pooled features are embedded that way first;
    the head then scores them from the feature cache as usual."""
    from scenesift.pipelines import tagger as pipe

    fast_inference()
    with Store.open(project) as store:
        tagger, path = pipe.load(store, checkpoint)
        summary = pipe.prelabel(
            store, tagger, path, precision, state=state, engine=engine,
            ray_address=ray_address, ray_workers=ray_workers, runtime=runtime,
        )  # fmt: skip
    console.print(tables.prelabel_summary(summary))


@tagger_app.command("cam")
def tagger_cam(
    project: Path = PROJECT,
    checkpoint: Path | None = CHECKPOINT,
    situation: list[str] = typer.Option(
        None, "--situation", "-s", help="Situations to show (repeat; default: all)."
    ),
    per_situation: int = typer.Option(3, min=1),
    out: Path | None = typer.Option(None, help="PNG path (default: in the project's reports)."),
) -> None:
    """Class activation maps: where in the image the tagger sees each situation."""
    from scenesift.pipelines import tagger as pipe

    with Store.open(project) as store:
        tagger, _ = pipe.load(store, checkpoint)
        out = out or store.root / pipe.REPORTS_DIR / tagger.fingerprint / "cams.png"
        path = pipe.class_activation_maps(store, tagger, out, situation or None, per_situation)
    console.print(tables.wrote("Class activation maps", path))


@tagger_app.command("compare")
def tagger_compare(
    project: Path = PROJECT,
    backbone: str | None = BACKBONE,
    input_size: str | None = _T_INPUT_SIZE,
    epochs: int = _T_EPOCHS,
    samples_per_epoch: int | None = _T_SAMPLES,
    batch_size: int = _T_BATCH,
    head_lr: float = _T_HEAD_LR,
    head_passes: int = _T_HEAD_PASSES,
    backbone_lr: float = _T_BACKBONE_LR,
    finetune_head_lr: float = _T_FINETUNE_HEAD_LR,
    lr_decay: float = _T_LR_DECAY,
    cache_trunk: bool = _T_CACHE_TRUNK,
    seed: int = _T_SEED,
    device: str = DEVICE,
) -> None:
    """Train the frozen, gradual and full schedules on the same split, seed and settings
    and print their per-situation test ROC-AUC side by side."""
    from scenesift.pipelines import tagger as pipe

    fast_inference()
    cfg = _tagger_config(
        backbone, input_size, epochs=epochs, seed=seed, batch_size=batch_size,
        samples_per_epoch=samples_per_epoch, head_lr=head_lr, head_passes=head_passes,
        backbone_lr=backbone_lr, lr_decay=lr_decay, finetune_head_lr=finetune_head_lr,
        cache_trunk=cache_trunk, device=device,
    )  # fmt: skip
    with Store.open(project) as store:
        results = pipe.compare_schedules(store, cfg)
    console.print(tables.schedule_table(results))
