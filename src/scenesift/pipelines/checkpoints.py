"""A model folder's ``latest`` pointer and loading with one clear error, for every model kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from scenesift.files import atomic_write
from scenesift.store import StoreError

M = TypeVar("M")


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
