"""Files that readers see whole or not at all: write to a temporary file, then rename."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[Any]:
    """Write a file so that readers see the old content or the new, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any, strict: bool = False) -> None:
    """JSON written atomically. ``strict`` (exports for other tools): NaN and Infinity,
    which strict parsers reject, are a ValueError and no file is written; otherwise they are
    written as Python's json reads them back (our own sidecars: an undefined ROC-AUC)."""
    with atomic_write(path) as f:
        json.dump(data, f, indent=1, allow_nan=not strict)
        f.write("\n")


def fit_name(name: str, limit: int) -> str:
    """``name`` itself when it has at most ``limit`` characters, else its first characters
    and a digest of all of it: still unique and stable (a run or campaign keeps its name
    across resumes), where a plain cut would merge two names that share a long prefix
    (two fusions that differ in their last part's weight)."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[: max(0, limit - len(digest) - 1)]}~{digest}"
