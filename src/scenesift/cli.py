"""The ``scenesift`` command line: init, synth, import, export, info, embed."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from scenesift.io.errors import FormatError
from scenesift.store import Store, StoreError
from scenesift.tables import coverage_table, import_report_table, skipped_lines, summary_table
from scenesift.ui import console, err_console

app = typer.Typer(
    help="scenesift: which driving frames to label next, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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
) -> None:
    """Generate a synthetic driving world in BDD100K/Scalabel format.

    Drives of near-duplicate frames with day/dusk/night, rain/fog/snow, city/highway/
    residential/tunnel, roadworks and close/far participants; rare situations and a rare
    golf_cart class, as in real fleet data. Import it with `scenesift import bdd OUT/labels.json`.
    """
    from scenesift.synth import WorldConfig, contact_sheet, generate

    cfg = WorldConfig.from_toml(config) if config else None
    summary = generate(out, frames, seed=seed, config=cfg, workers=workers, progress=True)
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
        None, help="bdd: TOML mapping of attributes/categories (default: built in)."
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
    with console.status("writing to the catalog"):
        # A Label Studio export brings labels for frames the project already has.
        labels_only = fmt is ImportFormat.labelstudio
        report = store.ingest(batch, label_source=labels_as.value, labels_only=labels_only)
    console.print(import_report_table(report, labels_as.value))
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
        None, help="Labels from this source only (default: human > import > oracle)."
    ),
    predictions: str | None = typer.Option(
        None,
        help="A model's predictions to include: 'latest' or model:<fingerprint>. "
        "labelstudio: pre-annotations; coco-results: the detections written.",
    ),
) -> None:
    """Export frames with their labels (ground truth) and, optionally, a model's predictions.

    coco-results writes a model's detections as a COCO results list (image ids match a
    coco export of the same frames)."""
    from scenesift.io.formats import write_dataset

    store = Store.open(project)
    if fmt is ExportFormat.coco_results and predictions is None:
        predictions = "latest"
    records = store.records(split=split, state=state, source=source, predictions=predictions)
    path = write_dataset(fmt.value, records, store.taxonomy, out)
    console.print(f"Wrote {len(records)} frames to [bold]{path}[/]")
    store.close()


@app.command()
def info(project: Path = PROJECT) -> None:
    """Summarise the project: frames per split and label state, and the coverage table of
    situations and classes x labelled / unlabelled / predicted."""
    from scenesift.store.coverage import coverage

    store = Store.open(project)
    console.print(summary_table(store))
    console.print(coverage_table(coverage(store)))
    store.close()


@app.command()
def embed(
    project: Path = PROJECT,
    backbone: str = typer.Option(
        "efficientnet_lite0", help="Backbone: efficientnet_lite0, resnet50 or tiny."
    ),
    layer: str = typer.Option(
        "pooled", help="pooled: one vector per frame; map: the stride-32 feature map (float16)."
    ),
    split: str | None = typer.Option(None, help="Only this split (train, val or test)."),
    batch_size: int = typer.Option(32, min=1, help="Frames per forward pass."),
    workers: int = typer.Option(
        0, min=0, help="Processes decoding images (0: this one; best on 2 cores)."
    ),
) -> None:
    """Compute backbone features for the project's frames into the feature cache.

    Frames already cached for this backbone, weights, preprocessing and layer are not
    computed again; the cache is keyed by the fingerprint printed at the end."""
    from scenesift.models import (
        BackboneUnavailable,
        ImageLoadError,
        UnknownBackbone,
        get_backbone,
    )
    from scenesift.models import embed as embed_frames
    from scenesift.models.features import keep_freed_memory

    keep_freed_memory()  # this process is ours: ~2x faster forward passes on CPU
    store = Store.open(project)
    try:
        model = get_backbone(backbone)
        result = embed_frames(
            store, model, layer=layer, split=split, batch_size=batch_size, workers=workers
        )
    except (BackboneUnavailable, ImageLoadError, UnknownBackbone, ValueError) as e:
        err_console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
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


def _parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        a, b, c = (float(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected three numbers like 0.7,0.1,0.2, got {text!r}") from None
    return (a, b, c)


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


if __name__ == "__main__":
    main()
