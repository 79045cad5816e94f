"""Options and parsers shared by several command groups (one definition, one help)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from scenesift.io.formats import EXPORT_FORMATS, IMPORT_FORMATS
from scenesift.store.project import LABEL_SOURCES, TRUTH_PRIORITY

PROJECT = typer.Option(
    Path("."), "--project", "-p", help="Project folder (made by `scenesift init`).",
    envvar="SCENESIFT_PROJECT",
)  # fmt: skip

#: Click choices from the registries that define them (shown in --help, checked by click).
ImportFormat = StrEnum("ImportFormat", {f: f for f in IMPORT_FORMATS})
ExportFormat = StrEnum("ExportFormat", {f: f for f in EXPORT_FORMATS})
LabelSource = StrEnum("LabelSource", {s: s for s in TRUTH_PRIORITY if s in LABEL_SOURCES})

# Engine, runtime, backbone, strategy and labeler names are checked by the code that owns
# them (with a "did you mean"): their registries live beside torch, which --help must not load.
ENGINE = typer.Option(
    "local", help="local: this process; ray: Ray Data (decode tasks, model actors)."
)
RAY_ADDRESS = typer.Option(
    None, help="With --engine ray: a cluster (auto, ray://host:10001); default: start a local "
    "Ray. The project folder must be at the same path on every node.",
)  # fmt: skip
RAY_WORKERS = typer.Option(2, min=1, help="With --engine ray: model actors (one CPU each).")
RUNTIME = typer.Option(
    "torch", help="Forward pass: torch, or onnx (ONNX Runtime, ~1.8x faster on CPU; "
    "pip install 'scenesift[onnx]').",
)  # fmt: skip
BACKBONE = typer.Option(
    None, help="Backbone from the registry (default: its default backbone).",
    show_default=False,
)  # fmt: skip
CHECKPOINT_HELP = "Default: the latest trained {}."

#: The COCO file whose images (id, file_name = frame name) COCO results refer to: one name,
#: `--coco`, for `eval` and `select`; their old spellings stay as hidden aliases for scripts.
COCO_HELP = (
    "COCO results: the COCO file whose images (id, file_name = frame name) the results "
    "refer to, e.g. from `scenesift export coco images.json --split test`."
)
COCO = typer.Option(None, "--coco", help=COCO_HELP)
OLD_GT = typer.Option(None, "--gt", hidden=True, help="Deprecated spelling of --coco.")
OLD_IMAGES = typer.Option(None, "--images", hidden=True, help="Deprecated spelling of --coco.")


def coco_file(coco: Path | None, old: Path | None, required: bool = False) -> Path | None:
    """``--coco``, else its deprecated spelling; ``required``: one of them must be given."""
    if coco is not None and old is not None and coco != old:
        raise typer.BadParameter("--coco and its old spelling disagree; give --coco only")
    if required and (coco or old) is None:
        raise typer.BadParameter("missing --coco: the COCO file the results' image ids use")
    return coco or old


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``384x640`` -> ``(384, 640)``; None stays None."""
    if text is None:
        return None
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected HxW like 384x640, got {text!r}") from None
    return (h, w)


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``0.7,0.1,0.2`` -> ``(0.7, 0.1, 0.2)``."""
    try:
        a, b, c = (float(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected three numbers like 0.7,0.1,0.2, got {text!r}") from None
    return (a, b, c)


def fast_inference() -> None:
    """This process is ours: keep freed activation buffers mapped (~2x faster forward
    passes on CPU; see ``keep_freed_memory``)."""
    from scenesift.features.memory import keep_freed_memory

    keep_freed_memory()


DEVICE = typer.Option("auto", help="auto (CUDA when present), cpu, cuda or mps.")
