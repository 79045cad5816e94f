"""The ``scenesift`` command line: init, synth, import, export, info, embed."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import NoReturn

import typer
from rich.table import Table

from scenesift.io.errors import FormatError
from scenesift.store import Store, StoreError
from scenesift.tables import (
    coverage_table,
    drives_table,
    import_report_table,
    inventory_table,
    not_predicted_line,
    schedule_table,
    skipped_lines,
    summary_table,
)
from scenesift.ui import console, err_console, progress_bar

app = typer.Typer(
    help="scenesift: which driving frames to label next, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _user_error(e: Exception) -> NoReturn:
    """A user's mistake: one red line and exit code 2, no traceback. The message is
    escaped: paths and extras in square brackets (``scenesift[ray]``) are text, not markup."""
    from rich.markup import escape

    err_console.print(f"[red]error:[/] {escape(str(e))}")
    raise typer.Exit(2) from None


PROJECT = typer.Option(
    Path("."), "--project", "-p", help="Project folder (made by `scenesift init`).",
    envvar="SCENESIFT_PROJECT",
)  # fmt: skip


class ImportFormat(StrEnum):
    bdd = "bdd"
    kitti = "kitti"
    coco = "coco"
    csv = "csv"
    labelstudio = "labelstudio"


class ExportFormat(StrEnum):
    bdd = "bdd"
    kitti = "kitti"
    coco = "coco"
    coco_results = "coco-results"
    csv = "csv"
    labelstudio = "labelstudio"


class LabelSource(StrEnum):
    import_ = "import"
    oracle = "oracle"
    human = "human"


@app.command()
def init(
    directory: Path = typer.Argument(..., help="Folder for the new project."),
    taxonomy: Path | None = typer.Option(
        None, help="TOML file declaring situations and classes (default: the driving one)."
    ),
    split: str = typer.Option("0.7,0.1,0.2", help="train,val,test fractions (by drive)."),
    seed: int = typer.Option(0, help="Seed of the drive-level split assignment."),
) -> None:
    """Create a project: a SQLite catalog (frames, situations, labels, boxes, campaigns) and
    a folder of array shards keyed by content fingerprint."""
    from scenesift.taxonomy import Taxonomy

    fractions = _parse_fractions(split)
    tax = Taxonomy.from_toml(taxonomy) if taxonomy else None
    store = Store.init(directory, taxonomy=tax, split_fractions=fractions, seed=seed)
    t = store.taxonomy
    console.print(
        f"Created project [bold]{directory}[/] with {len(t.situations)} situations and "
        f"{len(t.classes)} classes; splits {fractions} by drive."
    )
    store.close()


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Output folder (images/ + labels.json + world.toml)."),
    frames: int = typer.Option(5000, "--frames", "-n", min=1, help="Number of frames."),
    seed: int = typer.Option(0, help="World seed: the same seed gives the same bytes."),
    config: Path | None = typer.Option(None, help="World config TOML (priors, sizes, ...)."),
    workers: int = typer.Option(1, min=1, help="Processes rendering drives in parallel."),
    sheet: bool = typer.Option(True, help="Also write contact_sheet.png with boxes drawn."),
    drive_prefix: str = typer.Option(
        "", help="Put before every drive name (e.g. eval_), so a second world can join a project."
    ),
) -> None:
    """Generate a synthetic driving world in BDD100K/Scalabel format.

    Drives of near-duplicate frames with day/dusk/night, rain/fog/snow, city/highway/
    residential/tunnel, roadworks and close/far participants; rare situations and a rare
    golf_cart class, as in real fleet data. Import it with `scenesift import bdd OUT/labels.json`.
    """
    from scenesift.synth import WorldConfig, contact_sheet, generate

    cfg = WorldConfig.from_toml(config) if config else None
    try:
        summary = generate(out, frames, seed=seed, config=cfg, workers=workers, progress=True,
                           drive_prefix=drive_prefix)  # fmt: skip
    except ValueError as e:
        _user_error(e)
    console.print(
        f"Wrote {summary.n_frames} frames in {summary.n_drives} drives to [bold]{out}[/] "
        f"in {summary.seconds:.1f} s ({summary.n_frames / max(summary.seconds, 1e-9):.0f} "
        "frames/s)."
    )
    if sheet:
        path = contact_sheet(out, Path(out) / "contact_sheet.png")
        console.print(f"Contact sheet: {path}")


@app.command("import")
def import_(
    fmt: ImportFormat = typer.Argument(..., help="Format of SOURCE."),
    source: Path = typer.Argument(
        ...,
        help="bdd: labels JSON; kitti: folder with image_2/ and label_2/; coco: instances "
        "JSON; csv: CSV of situation tags; labelstudio: a Label Studio JSON export.",
    ),
    project: Path = PROJECT,
    images: Path | None = typer.Option(None, help="Image folder, where the format allows."),
    mapping: Path | None = typer.Option(
        None,
        help="bdd: TOML mapping of attributes/categories (default: built in); kitti: TOML "
        '[classes] of KITTI type = class ("" leaves a type out), over the built-in map.',
    ),
    labels_as: LabelSource = typer.Option(
        LabelSource.import_,
        "--as",
        help="import: labels arrive with the data (frames become labelled); oracle: hold "
        "them back for simulated labelling (frames stay unlabelled); human: a finished "
        "labelling round.",
    ),
    verify: bool = typer.Option(
        True, help="Decode every image (fast, reduced-size for JPEG) to catch corrupt files."
    ),
    split: str | None = typer.Option(
        None,
        help="Put every drive of SOURCE in this split (train, val or test) instead of "
        "the stratified assignment (a drive already in another split is refused): e.g. a "
        "separate, larger evaluation world as the test split.",
    ),
) -> None:
    """Import a dataset into the project: validated first, then written in one transaction,
    so a bad file changes nothing and re-importing the same data changes nothing."""
    from scenesift.io.formats import read_dataset
    from scenesift.ui import tracker

    store = Store.open(project)
    batch = read_dataset(
        fmt.value, source, store.taxonomy, images=images, mapping=mapping, verify=verify,
        track=tracker(f"reading {fmt.value}"),
    )  # fmt: skip
    if split is not None:
        from scenesift.store.splits import SPLITS

        if split not in SPLITS:
            _user_error(ValueError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}"))
        for record in batch.frames:
            record.split = split
    with console.status("writing to the catalog"):
        # A Label Studio export brings labels for frames the project already has.
        labels_only = fmt is ImportFormat.labelstudio
        report = store.ingest(batch, label_source=labels_as.value, labels_only=labels_only)
        derived = 0
        if labels_as is not LabelSource.oracle:  # held-back truth stays held back
            from scenesift.derive import derive_all

            derived = store.write_derived_situations(derive_all(batch.frames, store.taxonomy))
    console.print(import_report_table(report, labels_as.value))
    if derived:
        console.print(
            f"Derived {derived:,} object-level situation values from the labelled boxes "
            "(source derived: labels from the data or a person take precedence)"
        )
    for line in skipped_lines(report):
        console.print(line)
    store.close()


@app.command()
def export(
    fmt: ExportFormat = typer.Argument(..., help="Output format."),
    out: Path = typer.Argument(
        ..., help="bdd/coco: a JSON file; kitti: a folder; csv: a CSV file; labelstudio: a folder."
    ),
    project: Path = PROJECT,
    split: str | None = typer.Option(None, help="Only this split (train, val or test)."),
    state: str | None = typer.Option(None, help="Only frames in this label state."),
    source: str | None = typer.Option(
        None, help="Labels from this source only (default: human > import > oracle > derived)."
    ),
    predictions: str | None = typer.Option(
        None,
        help="A model's predictions to include: 'latest' or model:<fingerprint>. "
        "labelstudio: pre-annotations; coco-results: the detections written.",
    ),
    image_prefix: str | None = typer.Option(
        None, help="labelstudio: tasks load images from PREFIX/<frame name> (a web server)."
    ),
    local_files: Path | None = typer.Option(
        None,
        help="labelstudio: tasks load images through Label Studio's local-files storage; "
        "ROOT is its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, every image must lie under it.",
    ),
) -> None:
    """Export frames with their labels (ground truth) and, optionally, a model's predictions.

    coco-results writes a model's detections as a COCO results list (image ids match a
    coco export of the same frames)."""
    from scenesift.io.formats import write_dataset

    store = Store.open(project)
    if fmt is ExportFormat.coco_results and predictions is None:
        predictions = "latest"
    if predictions == "latest":
        models = store.model_sources()
        predictions = models[0] if models else None
    records = store.records(split=split, state=state, source=source, predictions=predictions)
    located = image_prefix is not None or local_files is not None
    if located and fmt is not ExportFormat.labelstudio:
        _user_error(ValueError("--image-prefix and --local-files apply to labelstudio only"))
    if fmt is ExportFormat.labelstudio:
        from scenesift.io.labelstudio import image_url_from, write_labelstudio_tasks

        try:
            image_url = image_url_from(image_prefix=image_prefix, local_files=local_files)
            # pre-select exactly the situations the model's stored values call positive
            thresholds = store.decision_thresholds(predictions) if predictions else None
            path = write_labelstudio_tasks(
                records, store.taxonomy, out, image_url, thresholds=thresholds,
                model_version=predictions or "scenesift",
            )  # fmt: skip
        except ValueError as e:
            _user_error(e)
    else:
        path = write_dataset(fmt.value, records, store.taxonomy, out)
    console.print(f"Wrote {len(records)} frames to [bold]{path}[/]")
    store.close()


@app.command()
def info(project: Path = PROJECT) -> None:
    """Summarise the project: frames per split and label state, and the coverage table of
    situations and classes x labelled / unlabelled / predicted."""
    from scenesift.store.coverage import coverage, drives_per_split
    from scenesift.store.inventory import feature_caches, model_predictions

    with Store.open(project) as store:
        console.print(summary_table(store))
        console.print(coverage_table(coverage(store)))
        console.print(drives_table(drives_per_split(store)))
        inventory = inventory_table(feature_caches(store), model_predictions(store))
        if inventory is not None:
            console.print(inventory)


class Engine(StrEnum):
    local = "local"
    ray = "ray"


ENGINE = typer.Option(
    Engine.local, help="local: this process; ray: Ray Data (decode tasks, model actors)."
)
RAY_ADDRESS = typer.Option(
    None, help="With --engine ray: a cluster (auto, ray://host:10001); default: start a local "
    "Ray. The project folder must be at the same path on every node.",
)  # fmt: skip
RAY_WORKERS = typer.Option(2, min=1, help="With --engine ray: model actors (one CPU each).")


class Runtime(StrEnum):
    torch = "torch"
    onnx = "onnx"


RUNTIME = typer.Option(
    Runtime.torch, help="Forward pass: torch, or onnx (ONNX Runtime, ~1.8x faster on CPU; "
    "pip install 'scenesift[onnx]').",
)  # fmt: skip


@app.command()
def embed(
    project: Path = PROJECT,
    backbone: str = typer.Option(
        "efficientnet_lite0", help="Backbone: efficientnet_lite0, resnet50 or tiny."
    ),
    layer: str = typer.Option(
        "pooled",
        help="pooled: one vector per frame; map: the stride-32 feature map; pyramid: the "
        "stride-8/16/32 maps; trunk:K: the output below the top K block groups (float16).",
    ),
    split: str | None = typer.Option(None, help="Only this split (train, val or test)."),
    batch_size: int = typer.Option(32, min=1, help="Frames per forward pass."),
    workers: int = typer.Option(
        0, min=0, help="Processes decoding images (0: this one; best on 2 cores)."
    ),
    engine: Engine = ENGINE,
    ray_address: str | None = RAY_ADDRESS,
    ray_workers: int = RAY_WORKERS,
    runtime: Runtime = RUNTIME,
) -> None:
    """Compute backbone features for the project's frames into the feature cache.

    Frames already cached for this backbone, weights, preprocessing and layer are not
    computed again; the cache is keyed by the fingerprint printed at the end. With
    --engine ray they are computed by Ray Data (a local Ray, or --ray-address's cluster)."""

    from scenesift.features import embed as embed_frames
    from scenesift.features.memory import keep_freed_memory
    from scenesift.features.onnx import OnnxUnavailable
    from scenesift.features.ray import RayEngineError
    from scenesift.models import (
        BackboneUnavailable,
        ImageLoadError,
        UnknownBackbone,
        get_backbone,
    )

    keep_freed_memory()  # this process is ours: ~2x faster forward passes on CPU
    store = Store.open(project)
    try:
        model = get_backbone(backbone)
        result = embed_frames(
            store, model, layer=layer, split=split, batch_size=batch_size, workers=workers,
            engine=engine.value, ray_address=ray_address, ray_workers=ray_workers,
            runtime=runtime.value,
        )  # fmt: skip
    except (BackboneUnavailable, ImageLoadError, OnnxUnavailable, RayEngineError,
            UnknownBackbone, ValueError) as e:  # fmt: skip
        _user_error(e)
    finally:
        store.close()
    h, w = model.preprocessing.size
    speed = f"{result.throughput:.1f} frames/s" if result.computed else "nothing to compute"
    console.print(
        f"Embedded {len(result)} frames with [bold]{backbone}[/] ({layer}, {h}x{w}): "
        f"{result.computed} computed, {result.cached} from the cache; {speed}.\n"
        f"Feature cache: [bold]{result.fingerprint}[/] (array {tuple(result.array.shape)} "
        f"{result.array.dtype})"
    )


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HxW like 384x640, got {text!r}") from None
    return (h, w)


def _parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        a, b, c = (float(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected three numbers like 0.7,0.1,0.2, got {text!r}") from None
    return (a, b, c)


tagger_app = typer.Typer(
    help="Situation tagger (seed 000): ImageNet backbone -> 1x1 conv per pixel -> global "
    "average pooling, masked BCE over all situations, gradual unfreezing.",
    no_args_is_help=True,
)
app.add_typer(tagger_app, name="tagger")


# Training knobs shared by `tagger train` and `tagger compare` (one definition, one help).
_T_BACKBONE = typer.Option("efficientnet_lite0", help="Backbone from the registry.")
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


def _tagger_config(input_size: str | None, **values):
    from scenesift.models.tagger import TaggerConfig

    return TaggerConfig(input_size=_parse_size(input_size) if input_size else None, **values)


@tagger_app.command("train")
def tagger_train(
    project: Path = PROJECT,
    backbone: str = _T_BACKBONE,
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
) -> None:
    """Train on the labelled train split, early-stop on val, save a checkpoint."""
    from scenesift.features.memory import keep_freed_memory
    from scenesift.pipelines import tagger as pipe

    keep_freed_memory()
    cfg = _tagger_config(
        input_size, backbone=backbone, schedule=schedule, epochs=epochs, seed=seed,
        batch_size=batch_size, samples_per_epoch=samples_per_epoch, head_lr=head_lr,
        head_passes=head_passes, backbone_lr=backbone_lr, lr_decay=lr_decay,
        finetune_head_lr=finetune_head_lr, cache_trunk=cache_trunk,
    )  # fmt: skip
    with Store.open(project) as store:
        if warning := pipe.training_warning(store):
            console.print(f"[yellow]warning:[/] {warning}")
        tagger, path = pipe.train(store, cfg)
    table = Table(title=f"Tagger {tagger.fingerprint} ({schedule})")
    for col in ("epoch", "groups training", "train loss", "val loss", "seconds"):
        table.add_column(col, justify="right")
    for h in tagger.history:
        table.add_row(str(h.epoch), str(h.trainable_groups), f"{h.train_loss:.4f}",
                      f"{h.val_loss:.4f}", f"{h.seconds:.1f}")  # fmt: skip
    console.print(table)
    console.print(f"Checkpoint: [bold]{path}[/]")


@tagger_app.command("eval")
def tagger_eval(
    project: Path = PROJECT,
    checkpoint: Path | None = typer.Option(None, help="Default: the latest trained tagger."),
    split: str = typer.Option("test"),
    plots: bool = typer.Option(True, help="Write ROC and PR curves per situation (PNG)."),
    ci: bool = typer.Option(True, help="Bootstrap 95% intervals of ROC-AUC, over drives."),
) -> None:
    """Per-situation ROC-AUC and PR-AUC (average precision) with test positives; undefined
    where the split has no positives or no negatives."""
    from scenesift.features.memory import keep_freed_memory
    from scenesift.pipelines import tagger as pipe

    keep_freed_memory()
    with Store.open(project) as store:
        tagger, path = pipe.load(store, checkpoint)
        out = store.root / pipe.REPORTS_DIR / tagger.fingerprint if plots else None
        results = pipe.evaluate(store, tagger, split=split, plots=out)
    console.print(results.to_table(title=f"Tagger {tagger.fingerprint} on {split}",
                                   ci=results.ci() if ci else None))  # fmt: skip
    if line := not_predicted_line(results.not_predicted):
        console.print(line)
    pipe.update_sidecar(path, **{f"{split}_metrics": results.metrics()})
    if out:
        console.print(f"Curves: [bold]{out}[/]")


@tagger_app.command("predict")
def tagger_predict(
    project: Path = PROJECT,
    checkpoint: Path | None = typer.Option(None, help="Default: the latest trained tagger."),
    precision: float = typer.Option(
        0.9, help="Per-situation thresholds reach this precision on the val split."
    ),
    state: str | None = typer.Option(None, help="Only frames in this label state."),
    engine: Engine = ENGINE,
    ray_address: str | None = RAY_ADDRESS,
    ray_workers: int = RAY_WORKERS,
    runtime: Runtime = RUNTIME,
) -> None:
    """Pre-label: write situation scores and thresholded values into the store as
    model:<fingerprint> (used by `info`, selection, and `export labelstudio --predictions`).

    With --engine ray (or --runtime onnx) the pooled features are embedded that way first;
    the head then scores them from the feature cache as usual."""

    from scenesift.features import embed as embed_frames
    from scenesift.features.memory import keep_freed_memory
    from scenesift.features.onnx import OnnxUnavailable
    from scenesift.features.ray import RayEngineError
    from scenesift.models import ImageLoadError
    from scenesift.pipelines import tagger as pipe

    keep_freed_memory()
    with Store.open(project) as store:
        tagger, path = pipe.load(store, checkpoint)
        if engine == Engine.ray or runtime == Runtime.onnx:
            if tagger.groups_trained:  # its scores come from a full forward, not the cache
                _user_error(
                    f"--engine ray and --runtime onnx score from cached pooled features, "
                    f"which this tagger cannot use: {tagger.groups_trained} backbone "
                    f"group(s) were fine-tuned; score it without them, or train with "
                    f"--schedule frozen"
                )
            names = None  # every frame; else those of the state and the validation frames
            if state is not None:
                wanted = [r.name for r in store.records(state=state)]
                names = list(dict.fromkeys(wanted + [r.name for r in pipe.labelled(store, "val")]))
            try:
                embed_frames(
                    store, tagger.net.backbone, names, layer="pooled",
                    batch_size=tagger.config.batch_size, workers=tagger.config.workers,
                    engine=engine.value, ray_address=ray_address, ray_workers=ray_workers,
                    runtime=runtime.value,
                )  # fmt: skip
            except (ImageLoadError, OnnxUnavailable, RayEngineError, ValueError) as e:
                _user_error(e)
        summary = pipe.prelabel(store, tagger, path, precision, state=state)
    table = Table(title=f"Pre-labels written as {summary.source} ({summary.frames:,} frames)")
    for col in ("situation", "threshold", "rule", "predicted positive"):
        table.add_column(col)
    for s, t in summary.thresholds.items():
        table.add_row(s, f"{t:.3f}", summary.rules[s], f"{summary.positives[s]:,}")
    console.print(table)
    if line := not_predicted_line(summary.not_predicted):
        console.print(line)


@tagger_app.command("cam")
def tagger_cam(
    project: Path = PROJECT,
    checkpoint: Path | None = typer.Option(None, help="Default: the latest trained tagger."),
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
    console.print(f"Class activation maps: [bold]{path}[/]")


@tagger_app.command("compare")
def tagger_compare(
    project: Path = PROJECT,
    backbone: str = _T_BACKBONE,
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
) -> None:
    """Train the frozen, gradual and full schedules on the same split, seed and settings
    and print their per-situation test ROC-AUC side by side."""
    from scenesift.features.memory import keep_freed_memory
    from scenesift.pipelines import tagger as pipe

    keep_freed_memory()
    cfg = _tagger_config(
        input_size, backbone=backbone, epochs=epochs, seed=seed, batch_size=batch_size,
        samples_per_epoch=samples_per_epoch, head_lr=head_lr, head_passes=head_passes,
        backbone_lr=backbone_lr, lr_decay=lr_decay, finetune_head_lr=finetune_head_lr,
        cache_trunk=cache_trunk,
    )  # fmt: skip
    with Store.open(project) as store:
        results = pipe.compare_schedules(store, cfg)
    console.print(schedule_table(results))


detector_app = typer.Typer(
    help="Object detector (CenterNet-style, anchor-free) on the backbone's multi-scale maps; "
    "COCO evaluation by pycocotools, per class, size and situation.",
    no_args_is_help=True,
)
app.add_typer(detector_app, name="detector")


@detector_app.command("train")
def detector_train(
    project: Path = PROJECT,
    backbone: str = typer.Option("efficientnet_lite0", help="Backbone from the registry."),
    mode: str = typer.Option(
        "frozen",
        help="frozen: cached backbone maps, only neck and heads train (fast); "
        "finetune: the top backbone groups train too.",
    ),
    epochs: int = typer.Option(8, min=1),
    seed: int = typer.Option(0),
) -> None:
    """Train on the labelled train split (early-stopped on val), save a checkpoint."""
    from scenesift.features.memory import keep_freed_memory
    from scenesift.models.detector import DetectorConfig
    from scenesift.pipelines import detector as pipe

    keep_freed_memory()
    cfg = DetectorConfig(backbone=backbone, mode=mode, epochs=epochs, seed=seed)
    with Store.open(project) as store:
        if warning := pipe.training_warning(store):
            console.print(f"[yellow]warning:[/] {warning}")
        detector, path = pipe.train(store, cfg)
    console.print(f"Detector {detector.fingerprint} ({mode}): checkpoint [bold]{path}[/]")


@detector_app.command("predict")
def detector_predict(
    project: Path = PROJECT,
    checkpoint: Path | None = typer.Option(None, help="Default: the latest trained detector."),
    state: str | None = typer.Option(None, help="Only frames in this label state."),
) -> None:
    """Detect objects and store them as model:<fingerprint> (full class-probability vectors
    kept), for selection and `export coco-results` / `export labelstudio --predictions`."""
    from scenesift.features.memory import keep_freed_memory
    from scenesift.pipelines import detector as pipe

    keep_freed_memory()
    with Store.open(project) as store:
        detector, _ = pipe.load(store, checkpoint)
        source, n = pipe.predict(store, detector, state=state)
    console.print(f"Stored detections for {n:,} frames as [bold]{source}[/]")


@detector_app.command("eval")
def detector_eval(
    project: Path = PROJECT,
    checkpoint: Path | None = typer.Option(None, help="Default: the latest trained detector."),
    split: str = typer.Option("test"),
    slices: bool = typer.Option(
        True, help="Also per situation (labels, else tagger) and per object distance band."
    ),
    boot: int = typer.Option(
        0, min=0, help="Bootstrap resamples (of drives) for 95% intervals of AP@0.5 (0: none)."
    ),
) -> None:
    """mAP@[.5:.95], mAP@0.5, per class and size (pycocotools), per situation and per
    object distance band (object:close/mid/far, where the ground truth records distances)."""
    from scenesift.features.memory import keep_freed_memory
    from scenesift.pipelines import detector as pipe

    keep_freed_memory()
    with Store.open(project) as store:
        detector, _ = pipe.load(store, checkpoint)
        frames = pipe.with_boxes(store, split)
        predictions = detector.predict(frames, store=store)
        out = store.root / pipe.REPORTS_DIR / detector.fingerprint
        results, by_situation = pipe.evaluate(store, predictions, split, slices, out, boot)
    _print_detection(results, by_situation)
    console.print(f"PR curves: [bold]{out / 'pr_curves.png'}[/]")


@app.command("eval")
def eval_predictions(
    predictions: Path = typer.Option(
        ..., "--predictions", help="Your model's detections: a COCO results JSON list."
    ),
    gt: Path = typer.Option(
        ...,
        "--gt",
        help="The COCO file whose image ids the results use (e.g. from "
        "`scenesift export coco gt.json --split test`).",
    ),
    project: Path = PROJECT,
    split: str = typer.Option("test"),
    slices: bool = typer.Option(
        False, "--slices", help="Also per situation and per object distance band."
    ),
    boot: int = typer.Option(
        0, min=0, help="Bootstrap resamples (of drives) for 95% intervals of AP@0.5 (0: none)."
    ),
) -> None:
    """Evaluate any detector's predictions (YOLO, Faster R-CNN, ...) against the project's
    labelled boxes: COCO mAP by pycocotools, per class, size, situation and object distance."""
    from scenesift.io.coco_results import read_coco_results
    from scenesift.pipelines import detector as pipe

    with Store.open(project) as store:
        dets = read_coco_results(predictions, gt, store.taxonomy.classes)
        results, by_situation = pipe.evaluate(store, dets, split, slices, n_boot=boot)
    _print_detection(results, by_situation)


@app.command()
def gaps(
    project: Path = PROJECT,
    checkpoint: Path | None = typer.Option(None, help="Detector (default: the latest)."),
    split: str = typer.Option("test"),
    boot: int = typer.Option(30, min=0, help="Bootstrap resamples of drives for mAP intervals."),
) -> None:
    """Situation gap report: per situation, labelled frames, unlabelled frames the tagger
    puts there, detector mAP@0.5 with a 95% interval, ranked by where data is most needed."""
    from scenesift.features.memory import keep_freed_memory
    from scenesift.pipelines import detector as pipe
    from scenesift.pipelines.gaps import gap_report, gap_table, plot_gaps

    keep_freed_memory()
    with Store.open(project) as store:
        detector, _ = pipe.load(store, checkpoint)
        predictions = detector.predict(pipe.with_boxes(store, split), store=store)
        with console.status("bootstrapping mAP per situation"):
            rows = gap_report(store, predictions, split, n_boot=boot)
        png = plot_gaps(rows, store.root / pipe.REPORTS_DIR / detector.fingerprint / "gaps.png")
    console.print(gap_table(rows))
    console.print(f"Plot: [bold]{png}[/]")


al_app = typer.Typer(
    help="Active learning campaigns: rounds of train -> score the pool -> pick a batch -> "
    "label, persisted in the project and resumable after any interruption.",
    no_args_is_help=True,
)
app.add_typer(al_app, name="al")


class Labeler(StrEnum):
    oracle = "oracle"
    labelstudio = "labelstudio"


@al_app.command("start")
def al_start(
    name: str = typer.Argument(..., help="A name for the campaign, unique in the project."),
    project: Path = PROJECT,
    config: Path | None = typer.Option(
        None,
        help="TOML file with the campaign's settings (keys of CampaignConfig); flags "
        "given on the command line override it.",
    ),
    strategy: str | None = typer.Option(
        None, help="Strategy name (see `scenesift al strategies`); default least_confidence."
    ),
    initial: int | None = typer.Option(None, min=1, help="Random seed set size (round 0)."),
    batch: int | None = typer.Option(None, min=1, help="Frames picked per round."),
    rounds: int | None = typer.Option(None, min=1, help="Stop after this many trainings."),
    budget: int | None = typer.Option(None, min=1, help="Stop before exceeding this many labels."),
    target: float | None = typer.Option(None, help="Stop once mAP@0.5 reaches this."),
    plateau: bool = typer.Option(False, help="Stop when the learning curve has flattened."),
    labeler: Labeler | None = typer.Option(
        None,
        help="oracle: reveal held-back truth (simulation); labelstudio: export each "
        "batch for people and wait for `al import-labels`.",
    ),
    epochs: int | None = typer.Option(None, min=1, help="Detector epochs per round."),
    seed: int | None = typer.Option(None),
) -> None:
    """Create a campaign and run it until it stops or waits for labels."""
    import tomllib

    from scenesift.al.campaign import Campaign, CampaignConfig

    data: dict = {}
    if config is not None:
        try:
            data = tomllib.loads(config.read_text())
        except tomllib.TOMLDecodeError as e:
            raise FormatError(f"{config}: {e}") from None
    if strategy is not None:
        data["strategy"] = {"name": strategy}
    for key, value in [("initial", initial), ("batch", batch), ("seed", seed)]:
        if value is not None:
            data[key] = value
    if labeler is not None:
        data["labeler"] = labeler.value
    stopping = dict(data.get("stopping", {"max_rounds": 5}))
    for key, value in [("max_rounds", rounds), ("budget", budget), ("target", target)]:
        if value is not None:
            stopping[key] = value
    if plateau:
        stopping["plateau"] = True
    data["stopping"] = stopping
    if epochs is not None:
        learner = dict(data.get("learner", {}))
        learner["detector"] = {**learner.get("detector", {}), "epochs": epochs}
        data["learner"] = learner
    try:
        cfg = CampaignConfig.from_dict(data, where=str(config or "campaign settings"))
        with Store.open(project) as store:
            campaign = Campaign.create(store, name, cfg)
            _run_campaign(campaign)
    except ValueError as e:
        _user_error(e)


@al_app.command("resume")
def al_resume(
    name: str = typer.Argument(..., help="The campaign to continue."), project: Path = PROJECT
) -> None:
    """Continue a campaign where it stopped (after a crash, a kill or a labelling round)."""
    from scenesift.al.campaign import Campaign

    with Store.open(project) as store:
        _run_campaign(Campaign.open(store, name))


@al_app.command("status")
def al_status(
    name: str | None = typer.Argument(None, help="A campaign (default: list them)."),
    project: Path = PROJECT,
) -> None:
    """Rounds of a campaign (labelled frames, mAP@0.5, picks), or the list of campaigns."""
    from scenesift.al.campaign import Campaign
    from scenesift.store import campaigns
    from scenesift.tables import rounds_table

    with Store.open(project) as store:
        if name is None:
            table = Table(title="Campaigns")
            for col in ("name", "status", "rounds", "created"):
                table.add_column(col)
            for c in campaigns.all_campaigns(store):
                table.add_row(c.name, c.status, str(c.n_rounds), c.created_at)
            console.print(table)
            return
        campaign = Campaign.open(store, name)
        console.print(rounds_table(name, campaign.rounds(), campaign.metric))


@al_app.command("import-labels")
def al_import_labels(
    name: str = typer.Argument(..., help="The campaign waiting for labels."),
    export: Path = typer.Argument(..., help="Label Studio JSON export of the round's tasks."),
    project: Path = PROJECT,
    resume: bool = typer.Option(True, help="Continue the campaign once the batch is complete."),
) -> None:
    """Bring a finished labelling round back as human labels (one transaction)."""
    from scenesift.al.campaign import Campaign

    with Store.open(project) as store:
        campaign = Campaign.open(store, name)
        got, remaining = campaign.import_labels(export)
        console.print(f"Labelled {got} frame(s); {remaining} of this round still to label.")
        if remaining == 0 and resume:
            _run_campaign(campaign)


@al_app.command("strategies")
def al_strategies() -> None:
    """The selection strategies and what each one prefers."""
    from scenesift.al.strategies import STRATEGIES

    table = Table(title="Strategies")
    table.add_column("name", no_wrap=True)
    table.add_column("picks")
    for strategy_name, description in STRATEGIES.items():
        table.add_row(strategy_name, description)
    console.print(table)


def _run_campaign(campaign) -> None:
    from scenesift.features.memory import keep_freed_memory
    from scenesift.tables import rounds_table

    keep_freed_memory()
    rule = campaign.config.stopping_rule()
    total = rule.max_rounds + 1 if rule.max_rounds else None

    with progress_bar() as bar:
        task = bar.add_task(f"campaign {campaign.name}", total=total,
                            completed=len(campaign.rounds()))  # fmt: skip

        def on_round(r) -> None:
            bar.advance(task)
            value = r.metrics.get(campaign.metric)
            shown = "" if value is None else f", {campaign.metric} {value:.3f}"
            bar.console.print(
                f"round {r.idx}: {r.status}, {r.n_labelled or 0:,} labelled{shown}, "
                f"{r.n_picks:,} picked ({r.metrics.get('seconds', 0):.0f} s)"
            )

        result = campaign.run(on_round=on_round)
    console.print(rounds_table(campaign.name, result.rounds, campaign.metric))
    console.print(f"[bold]{result.status}[/]: {result.reason}")


@app.command("select")
def select_cmd(
    predictions: Path = typer.Option(
        ..., "--predictions", help="Your model's detections on the pool: COCO results JSON."
    ),
    gt: Path = typer.Option(
        ...,
        "--images",
        help="COCO file whose images (id, file_name = frame name) the "
        "results refer to, e.g. from `scenesift export coco pool.json --state unlabelled`.",
    ),
    budget: int = typer.Option(..., min=1, help="Frames to pick."),
    strategy: str = typer.Option("least_confidence", help="See `scenesift al strategies`."),
    balance: str | None = typer.Option(
        None, help="Fuse with balancing: 'situations' (the tagger's) or 'classes'."
    ),
    per_drive: int | None = typer.Option(
        None, min=1, help="At most this many frames per drive within --window seconds."
    ),
    window: float = typer.Option(10.0, min=0.0, help="De-duplication window (seconds)."),
    min_score: float = typer.Option(0.2, help="Detections below this score are ignored."),
    out: Path = typer.Option(Path("selection"), help="Output folder."),
    seed: int = typer.Option(0),
    project: Path = PROJECT,
) -> None:
    """Pick a batch to label from your own model's predictions (no training here): writes
    the frame list, a CSV of why each was picked and Label Studio tasks with
    pre-annotations, and shows how the batch spreads over situations, classes and drives."""
    from scenesift.al.select import build_spec, select_from_predictions, spread
    from scenesift.io.coco_results import read_coco_results

    try:
        spec = build_spec(strategy, balance, per_drive, window)
        with Store.open(project) as store:
            boxes = read_coco_results(predictions, gt, store.taxonomy.classes)
            result = select_from_predictions(
                store, boxes, spec, budget, out, seed=seed, min_score=min_score
            )
            tables = spread(result, store)
    except ValueError as e:
        _user_error(e)
    n, k = len(result.pool), len(result.picked)
    for kind, rows in tables.items():
        if not rows:
            continue
        table = Table(title=f"Batch vs pool by {kind}")
        for col in (kind, "batch", "batch %", "pool", "pool %"):
            table.add_column(col, justify="left" if col == kind else "right")
        for name, in_batch, in_pool in rows[:15]:
            table.add_row(name, f"{in_batch:,}", f"{in_batch / max(k, 1):.0%}", f"{in_pool:,}",
                          f"{in_pool / max(n, 1):.0%}")  # fmt: skip
        console.print(table)
    console.print(
        f"Picked [bold]{k:,}[/] of {n:,} unlabelled frames with {result.selection.strategy}.\n"
        f"Frame list: [bold]{result.files['list']}[/]  why: {result.files['csv']}\n"
        f"Label Studio: [bold]{result.files['tasks']}[/] (config {result.files['config']})"
    )


experiment_app = typer.Typer(
    help="Experiments that measure whether active learning pays: variance over random "
    "subsets, strategies vs random over seeds. Results: one tidy Parquet table.",
    no_args_is_help=True,
)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("run")
def experiment_run(
    config: Path = typer.Argument(..., help="Experiment TOML (see docs/experiments.md)."),
    project: Path = PROJECT,
    engine: str | None = typer.Option(None, help="local (process pool) or ray."),
    workers: int | None = typer.Option(None, min=1, help="Parallel runs."),
    address: str | None = typer.Option(
        None, help="Ray: an existing cluster (auto, ray://host:10001); default: start one here."
    ),
) -> None:
    """Run every unfinished run of an experiment (an interrupted one resumes)."""
    from dataclasses import replace

    from scenesift.experiments.config import ExperimentConfig
    from scenesift.experiments.runners import run_experiment

    try:
        cfg = ExperimentConfig.load(config)
        runner = cfg.runner
        if engine is not None or workers is not None or address is not None:
            runner = replace(
                runner,
                engine=engine or runner.engine,
                workers=workers or runner.workers,
                address=address or runner.address,
            )
        cfg = replace(cfg, runner=runner)
    except ValueError as e:
        _user_error(e)
    Store.open(project).close()  # a clear error before any work when it is not a project
    with progress_bar() as bar:
        task = bar.add_task(f"experiment {cfg.name}", total=None)

        def on_progress(p) -> None:
            bar.update(task, total=p.total, completed=p.done)
            if p.run:
                bar.console.print(f"finished {p.run} ({p.seconds:.0f} s)")

        try:
            out = run_experiment(project, cfg, on_progress=on_progress)
        except ValueError as e:
            _user_error(e)
    from scenesift.experiments.results import read_results
    from scenesift.experiments.stats import evaluation_power
    from scenesift.report.summary import experiment_tables
    from scenesift.tables import evaluation_power_table, verdict_text

    results = read_results(out)
    for table in [*experiment_tables(results), evaluation_power_table(evaluation_power(results))]:
        if table is not None:
            console.print(table)
    console.print(f"Results: [bold]{out}[/] (one Parquet file per run; `scenesift report` "
                  "draws the figures)")  # fmt: skip
    said = verdict_text(results)
    if said is not None:
        console.print(said)


@experiment_app.command("remove")
def experiment_remove(
    name: str = typer.Argument(..., help="The experiment to delete."), project: Path = PROJECT
) -> None:
    """Delete an experiment's results and its simulated campaigns."""
    from scenesift.experiments.runners import remove_experiment

    n = remove_experiment(project, name)
    console.print(f"Removed experiment {name!r} ({n} campaigns).")


@app.command("report")
def report_cmd(
    project: Path = PROJECT,
    experiment: str | None = typer.Option(
        None, help="Experiment whose results to include (default: the only/latest one)."
    ),
    campaign: str | None = typer.Option(None, help="Campaign for the galleries (default: latest)."),
    full_map50: float | None = typer.Option(
        None,
        help="Full-data mAP@0.5 for the 95% target (default: the median of the variance "
        "study's 100% runs).",
    ),
    out: Path | None = typer.Option(None, help="Default: PROJECT/reports/report.html."),
) -> None:
    """One self-contained HTML file: learning curves, variance violins, per-class and
    per-situation curves, the tagger's AUCs, the situation gap report, picked frames."""
    from scenesift.experiments.results import read_results
    from scenesift.experiments.runners import RESULTS_DIR
    from scenesift.report import build_report, report_summary_table

    with Store.open(project) as store:
        results = None
        root = store.root / RESULTS_DIR
        names = sorted(
            (p for p in root.glob("*/results") if any(p.glob("*.parquet"))),
            key=lambda p: p.stat().st_mtime,
        )
        if experiment is not None:
            chosen = root / experiment / "results"
            if chosen not in names:
                found = ", ".join(p.parent.name for p in names) or "none"
                raise StoreError(f"no results for experiment {experiment!r} (found: {found})")
            names = [chosen]
        if names:
            results = read_results(names[-1])
        with console.status("building the report"):
            path = build_report(
                store, out or store.root / "reports" / "report.html", results=results,
                full_map50=full_map50, campaign=campaign,
            )  # fmt: skip
    if results is not None:
        console.print(report_summary_table(results, full_map50=full_map50))
    console.print(f"Report: [bold]{path}[/]")


def _print_detection(results, by_situation) -> None:
    console.print(results.to_table())
    if by_situation is not None:
        console.print(by_situation.to_table("AP50", title="Detection AP@0.5 per slice (n)"))


def main() -> None:
    """Entry point: user errors are one red line and exit code 2, never a traceback."""
    try:
        app()
    except (FormatError, StoreError) as e:
        err_console.print(f"[red]error:[/] {e}")
        sys.exit(2)
    except FileNotFoundError as e:
        err_console.print(f"[red]error:[/] {e.filename}: no such file or directory")
        sys.exit(2)


# ----------------------------------------------------------------------------- web app
@app.command()
def serve(
    project: Path = typer.Argument(..., help="Project folder (made by `scenesift init`)."),
    host: str = typer.Option(
        "127.0.0.1", help="Address to bind; anything but loopback requires an access token."
    ),
    port: int = typer.Option(8765, min=1, max=65535, help="Port to listen on."),
    token: str | None = typer.Option(
        None,
        envvar="SCENESIFT_TOKEN",
        help="Access token required on every request (generated and printed when binding a "
        "non-loopback host without one).",
    ),
) -> None:
    """Web app: coverage dashboard, frame browser, frame view, review of a round's picks and
    situation labelling with keyboard shortcuts."""
    from scenesift.web.server import serve as run_server

    run_server(project, host=host, port=port, token=token, say=console.print)


# ----------------------------------------------------------------------------- integrity
@app.command()
def check(
    project: Path = PROJECT,
    quick: bool = typer.Option(
        False, help="SQLite quick_check and no recount of the coverage counts (faster)."
    ),
) -> None:
    """Check a project's integrity (after a crash, a kill or a hand edit): SQLite's own
    check, orphan and duplicate rows, feature shards, campaign rounds and picks, and the
    coverage counts. Exit code 1 when something is wrong; leftovers are only reported."""
    from scenesift.store.integrity import check as check_store

    with Store.open(project) as store:
        report = check_store(store, quick=quick)
    table = Table(title=f"Integrity of {project}")
    for col in ("check", "result", "seconds", "what it checks"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    for r in report.results:
        if r.count == 0:
            result = "[green]ok[/]"
        else:
            result = f"[{'yellow' if r.ok else 'red'}]{r.count:,} found[/]"
        table.add_row(r.name, result, f"{r.seconds:.2f}", r.description)
    console.print(table)
    for r in report.results:
        for problem in r.problems:
            console.print(f"[{'yellow' if r.ok else 'red'}]{r.name}:[/] {problem}")
        if r.count > len(r.problems):
            console.print(f"{r.name}: ... and {r.count - len(r.problems):,} more")
    if not report.ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    main()
