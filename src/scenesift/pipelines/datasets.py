"""Import and export between dataset files and a project (what ``scenesift import`` and
``scenesift export`` do, usable without the CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scenesift.errors import ConfigError, check_choice
from scenesift.io.common import Track
from scenesift.io.formats import read_dataset, write_dataset
from scenesift.records import FrameRecord, ImportReport
from scenesift.store import Store
from scenesift.store.splits import SPLITS

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
    split: str | None = None,
    track: Track | None = None,
    pattern: str | None = None,
) -> tuple[ImportReport, int]:
    """Read and validate ``source`` whole, then write it in one transaction: a bad file
    changes nothing. Labels that arrive with the data or from people also give the
    object-level situations derived from their boxes (source ``derived``; held-back truth
    stays held back); returns the import report and how many derived values were written.
    ``split`` puts every drive of ``source`` in that split instead of the stratified
    assignment (a drive already in another split is refused by the store)."""
    if split is not None:
        check_choice("--split", split, SPLITS)
    batch = read_dataset(
        fmt,
        source,
        store.taxonomy,
        images=images,
        mapping=mapping,
        verify=verify,
        track=track,
        pattern=pattern,
    )
    for record in batch.frames if split is not None else ():
        record.split = split
    labels_only = fmt in LABELS_ONLY_FORMATS
    report = store.ingest(batch, label_source=label_source, labels_only=labels_only)
    derived = 0
    if label_source != "oracle":
        from scenesift.derive import derive_all

        derived = store.write_derived_situations(derive_all(batch.frames, store.taxonomy))
    return report, derived


def export_dataset(
    store: Store,
    fmt: str,
    out: Path,
    *,
    split: str | None = None,
    state: str | None = None,
    source: str | None = None,
    predictions: str | None = None,
    image_prefix: str | None = None,
    local_files: Path | None = None,
) -> tuple[int, Path, int]:
    """Write the selected frames' labels (and a model's predictions: ``latest`` or
    ``model:<fingerprint>``; coco-results defaults to the latest); returns the number of
    frames written, the file or folder, and the number of selected frames left out. Label
    Studio tasks load their images from ``image_prefix``/<frame name> or through the
    ``local_files`` root (else by path)."""
    if (image_prefix is not None or local_files is not None) and fmt != "labelstudio":
        raise ConfigError("--image-prefix and --local-files apply to labelstudio only")
    if fmt == "coco-results" and predictions is None:
        predictions = "latest"
    if predictions == "latest":
        models = store.model_sources()
        predictions = models[0] if models else None
    records = store.records(split=split, state=state, source=source, predictions=predictions)
    if fmt == "labelstudio":
        from scenesift.io.labelstudio import image_url_from, write_labelstudio_tasks

        # pre-select exactly the situations the model's stored values call positive
        thresholds = store.decision_thresholds(predictions) if predictions else None
        try:  # a bad prefix or root, or an image outside the local-files root
            image_url = image_url_from(image_prefix=image_prefix, local_files=local_files)
            path = write_labelstudio_tasks(
                records, store.taxonomy, out, image_url, thresholds=thresholds,
                model_version=predictions or "scenesift",
            )  # fmt: skip
        except ValueError as e:
            raise ConfigError(str(e)) from None
    else:
        path = write_dataset(fmt, records, store.taxonomy, out)
    left_out = coco_left_out(fmt, records)
    return len(records) - left_out, path, left_out


def coco_left_out(fmt: str, records: Sequence[FrameRecord]) -> int:
    """Frames a COCO export leaves out: those without labelled boxes, when some frames have
    them (COCO would read them as labelled with no objects); an all-unlabelled pool is
    written whole, as an image_info file."""
    if fmt != "coco":
        return 0
    unlabelled = sum(r.boxes is None for r in records)
    return 0 if unlabelled == len(records) else unlabelled
