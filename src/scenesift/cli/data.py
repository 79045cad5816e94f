"""Project and data commands: init, synth, import, export, info, check."""

from __future__ import annotations

from pathlib import Path

import typer

from scenesift import tables
from scenesift.cli.app import app
from scenesift.cli.common import PROJECT, ExportFormat, ImportFormat, LabelSource, parse_fractions
from scenesift.store import Store
from scenesift.store.integrity import check as check_store
from scenesift.taxonomy import Taxonomy
from scenesift.ui import console, tracker


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
    fractions = parse_fractions(split)
    tax = Taxonomy.from_toml(taxonomy) if taxonomy else None
    with Store.init(directory, taxonomy=tax, split_fractions=fractions, seed=seed) as store:
        console.print(tables.project_created(store, fractions))


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
    summary = generate(out, frames, seed=seed, config=cfg, workers=workers, progress=True,
                       drive_prefix=drive_prefix)  # fmt: skip
    png = contact_sheet(out, Path(out) / "contact_sheet.png") if sheet else None
    console.print(tables.synth_summary(summary, out, png))


_IMPORT_SPLIT = typer.Option(
    None,
    help="Put every drive of SOURCE in this split (train, val or test) instead of "
    "the stratified assignment (a drive already in another split is refused): e.g. a "
    "separate, larger evaluation world as the test split.",
)


_IMPORT_PATTERN = typer.Option(
    None,
    help="folder: drive and timestamp from each image's path: 'bdd100k' "
    "(<video>-<frame>.jpg), 'kitti-raw' (<date>_drive_<n>_sync/image_02/data/<frame>.png) "
    "or a regular expression with (?P<drive>...) and (?P<time>...) groups.",
)


@app.command("import")
def import_(
    fmt: ImportFormat = typer.Argument(..., help="Format of SOURCE."),
    source: Path = typer.Argument(
        ...,
        help="bdd: labels JSON; kitti: folder with image_2/ and label_2/; coco: instances "
        "JSON; csv: CSV of situation tags; labelstudio: a Label Studio JSON export; folder: "
        "a folder of unlabelled images (recursive); yolo: an Ultralytics data.yaml.",
    ),
    project: Path = PROJECT,
    images: Path | None = typer.Option(None, help="Image folder, where the format allows."),
    mapping: Path | None = typer.Option(
        None,
        help="bdd: TOML mapping of attributes/categories (default: built in); kitti: TOML "
        '[classes] of KITTI type = class ("" leaves a type out), over the built-in map.',
    ),
    labels_as: LabelSource = typer.Option(
        "import",
        "--as",
        help="import: labels arrive with the data (frames become labelled); oracle: hold "
        "them back for simulated labelling (frames stay unlabelled); human: a finished "
        "labelling round.",
    ),
    verify: bool = typer.Option(
        True, help="Decode every image (fast, reduced-size for JPEG) to catch corrupt files."
    ),
    split: str | None = _IMPORT_SPLIT,
    pattern: str | None = _IMPORT_PATTERN,
) -> None:
    """Import a dataset into the project: validated first, then written in one transaction,
    so a bad file changes nothing and re-importing the same data changes nothing."""
    from scenesift.pipelines.datasets import import_dataset

    with Store.open(project) as store:
        report, derived = import_dataset(
            store, fmt.value, source, labels_as.value, images=images, mapping=mapping,
            verify=verify, split=split, track=tracker(f"reading {fmt.value}"), pattern=pattern,
        )  # fmt: skip
    console.print(tables.import_report(report, labels_as.value, derived))


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
    from scenesift.pipelines.datasets import export_dataset

    with Store.open(project) as store:
        n, path, left_out = export_dataset(
            store, fmt.value, out, split=split, state=state, source=source,
            predictions=predictions, image_prefix=image_prefix, local_files=local_files,
        )  # fmt: skip
    console.print(tables.wrote_frames(n, path, left_out))


@app.command()
def info(project: Path = PROJECT) -> None:
    """Summarise the project: frames per split and label state, and the coverage table of
    situations and classes x labelled / unlabelled / predicted."""
    with Store.open(project) as store:
        console.print(tables.project_info(store))


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
    with Store.open(project) as store:
        report = check_store(store, quick=quick)
    console.print(tables.integrity_report(report, project))
    if not report.ok:
        raise typer.Exit(1)
