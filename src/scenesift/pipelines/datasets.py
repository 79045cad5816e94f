"""Import and export between dataset files and a project (what ``scenesift import`` and
``scenesift export`` do, usable without the CLI)."""

from __future__ import annotations

from pathlib import Path

from scenesift.io.common import Track
from scenesift.io.formats import read_dataset, write_dataset
from scenesift.records import ImportReport
from scenesift.store import Store

#: Formats whose files bring labels for frames the project already has (no images).
LABELS_ONLY_FORMATS = ("labelstudio",)


def import_dataset(
    store: Store,
    fmt: str,
    source: Path,
    label_source: str = "import",
    *,
    images: Path | None = None,
    mapping: Path | None = None,
    verify: bool = True,
    track: Track | None = None,
) -> ImportReport:
    """Read and validate ``source`` whole, then write it in one transaction: a bad file
    changes nothing."""
    batch = read_dataset(
        fmt, source, store.taxonomy, images=images, mapping=mapping, verify=verify, track=track
    )
    return store.ingest(batch, label_source=label_source, labels_only=fmt in LABELS_ONLY_FORMATS)


def export_dataset(
    store: Store,
    fmt: str,
    out: Path,
    *,
    split: str | None = None,
    state: str | None = None,
    source: str | None = None,
    predictions: str | None = None,
) -> tuple[int, Path]:
    """Write the selected frames' labels (and a model's predictions: ``latest`` or
    ``model:<fingerprint>``; coco-results defaults to the latest); returns the number of
    frames and the file or folder written."""
    if fmt == "coco-results" and predictions is None:
        predictions = "latest"
    if predictions == "latest":
        models = store.model_sources()
        predictions = models[0] if models else None
    records = store.records(split=split, state=state, source=source, predictions=predictions)
    if fmt == "labelstudio" and predictions:
        # pre-select exactly the situations the model's stored values call positive
        from scenesift.io.labelstudio import write_labelstudio_tasks

        thresholds = store.decision_thresholds(predictions)
        path = write_labelstudio_tasks(records, store.taxonomy, out, thresholds=thresholds,
                                       model_version=predictions)  # fmt: skip
    else:
        path = write_dataset(fmt, records, store.taxonomy, out)
    return len(records), path
