"""A project's saved models, for every model kind: ``models/<kind>/<fingerprint>.pt`` with a
JSON sidecar, the ``latest`` pointer, and loading with one clear error. Train -> save -> mark
latest is :func:`save_model`, the one path the tagger and detector pipelines share; the
weights file itself is :mod:`scenesift.models.weights`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, TypeVar

from scenesift.files import atomic_write, write_json
from scenesift.store import StoreError

M = TypeVar("M")


class SavedModel(Protocol):
    """What :func:`save_model` needs of a model: its identity, how to write it, and its
    configuration and history for the sidecar."""

    config: Any
    history: list

    @property
    def fingerprint(self) -> str: ...

    def save(self, path: Path) -> Path: ...


def save_model(directory: Path, model: SavedModel, extra: dict | None = None) -> Path:
    """``<directory>/<fingerprint>.pt`` + ``.json`` (fingerprint, config, history, ``extra``),
    then ``latest`` points at it. Each file is written then renamed."""
    directory = Path(directory)
    path = model.save(directory / f"{model.fingerprint}.pt")
    sidecar = {
        "fingerprint": model.fingerprint,
        "config": asdict(model.config),
        "history": [asdict(h) for h in model.history],
        **(extra or {}),
    }
    write_json(path.with_suffix(".json"), sidecar)
    mark_latest(directory, path)
    return path


def load_model(
    directory: Path, load: Callable[[Path], M], what: str, path: Path | None = None
) -> tuple[M, Path]:
    """The model at ``path`` (default: the latest in ``directory``) and its path."""
    path = Path(path) if path else latest(directory, what)
    return load_checkpoint(load, path, what), path


def mark_latest(directory: Path, path: Path) -> None:
    with atomic_write(Path(directory) / "latest") as f:
        f.write(Path(path).name + "\n")


def latest(directory: Path, what: str) -> Path:
    pointer = Path(directory) / "latest"
    if not pointer.exists():
        raise StoreError(f"no trained {what} in this project: run `scenesift {what} train` first")
    return Path(directory) / pointer.read_text(encoding="utf-8").strip()


def load_checkpoint(load: Callable[[Path], M], path: Path, what: str) -> M:
    """``load(path)``, with a missing or unreadable checkpoint as one StoreError."""
    if not Path(path).exists():
        raise StoreError(f"{what} checkpoint {path} does not exist")
    try:
        return load(Path(path))
    except (KeyError, ValueError, RuntimeError, EOFError) as e:
        raise StoreError(
            f"cannot load {what} checkpoint {path} ({type(e).__name__}: {e}); it may come "
            f"from another scenesift version: train again with `scenesift {what} train`"
        ) from None
