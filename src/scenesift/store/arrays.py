"""Array shards keyed by content fingerprint (features, scores, embeddings).

A shard's key is a fingerprint of *everything that determines its content* (model weights,
input size, preprocessing, layer, the frames), so a changed input can never be served a
stale array, and computing the same thing twice is a cache hit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from scenesift.files import atomic_write


def fingerprint(spec: Mapping[str, Any] | str | bytes, length: int = 16) -> str:
    """A short stable hash of a JSON-able spec (sorted keys), a string or bytes."""
    if isinstance(spec, bytes):
        data = spec
    elif isinstance(spec, str):
        data = spec.encode()
    else:
        data = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(data).hexdigest()[:length]


class ArrayStore:
    """``.npy`` shards under ``<project>/arrays/<fp[:2]>/<fp>.npy``, registered in the catalog.

    The registry row and the file are written so that a crash leaves either both or an
    unregistered temporary file, never a registered half-written array.
    """

    def __init__(self, root: Path, catalog) -> None:  # catalog: scenesift.store.Store
        self.root = Path(root)
        self._catalog = catalog

    def path_for(self, fp: str) -> Path:
        return self.root / fp[:2] / f"{fp}.npy"

    def has(self, fp: str) -> bool:
        row = self._catalog.conn.execute(
            "SELECT path FROM arrays WHERE fingerprint = ?", (fp,)
        ).fetchone()
        return row is not None and (self.root / row[0]).exists()

    def put(self, spec: Mapping[str, Any], array: np.ndarray, kind: str) -> str:
        """Store ``array`` under the fingerprint of ``spec``; return the fingerprint."""
        fp = fingerprint(spec)
        path = self.path_for(fp)
        with atomic_write(path, "wb") as f:
            np.save(f, np.ascontiguousarray(array))
        meta = {"spec": spec, "shape": list(array.shape), "dtype": str(array.dtype)}
        with self._catalog.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO arrays (fingerprint, kind, path, meta, created_at) "
                "VALUES (?, ?, ?, ?, datetime('now'))",
                (fp, kind, path.relative_to(self.root).as_posix(), json.dumps(meta, default=str)),
            )
        return fp

    def get(self, fp: str, mmap: bool = True) -> np.ndarray:
        """Load a shard (memory-mapped by default); KeyError if it was never stored."""
        if not self.has(fp):
            raise KeyError(f"no array with fingerprint {fp}")
        return np.load(self.path_for(fp), mmap_mode="r" if mmap else None)

    def get_or_compute(self, spec: Mapping[str, Any], compute, kind: str) -> np.ndarray:
        fp = fingerprint(spec)
        if self.has(fp):
            return self.get(fp)
        self.put(spec, compute(), kind)
        return self.get(fp)
