"""Array shards keyed by content fingerprint (features, scores, embeddings).

A shard's key is a fingerprint of *everything that determines its content* (model weights,
input size, preprocessing, layer, the frames), so a changed input can never be served a
stale array, and computing the same thing twice is a cache hit. Its registry row keeps the
SHA-256 of the file as written: opening a shard checks only its size against its header
(cheap, on every read); ``scenesift check`` compares the checksums.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from scenesift.files import atomic_write
from scenesift.store.errors import StoreError


def fingerprint(spec: Mapping[str, Any] | str | bytes, length: int = 16) -> str:
    """A short stable hash of a JSON-able spec (sorted keys), a string or bytes."""
    if isinstance(spec, bytes):
        data = spec
    elif isinstance(spec, str):
        data = spec.encode()
    else:
        data = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(data).hexdigest()[:length]


class _Hashing:
    """A binary file that hashes what is written through it (the checksum costs no re-read)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.sha256 = hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        return self.f.write(data)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks (shards reach 512 MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def npy_layout(path: Path) -> tuple[tuple[int, ...], str, int, int]:
    """(shape, dtype, data offset, expected file size) from a ``.npy`` header alone.

    Raises OSError (missing, unreadable) or ValueError (not an ``.npy`` header)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)  # fmt: skip
        shape, _, dtype = read(f)
        offset = f.tell()
    size = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return tuple(shape), str(dtype), offset, size


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
            out = _Hashing(f)
            np.save(out, np.ascontiguousarray(array))  # type: ignore[arg-type]
        meta = {"spec": spec, "shape": list(array.shape), "dtype": str(array.dtype),
                "sha256": out.sha256.hexdigest()}  # fmt: skip
        with self._catalog.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO arrays (fingerprint, kind, path, meta, created_at) "
                "VALUES (?, ?, ?, ?, datetime('now'))",
                (fp, kind, path.relative_to(self.root).as_posix(), json.dumps(meta, default=str)),
            )
        return fp

    def get(self, fp: str, mmap: bool = True) -> np.ndarray:
        """Load a shard (memory-mapped by default); KeyError if it was never stored, a
        StoreError naming the file if it is cut short or unreadable."""
        if not self.has(fp):
            raise KeyError(f"no array with fingerprint {fp}")
        path = self.path_for(fp)
        hint = "; `scenesift check` lists every damaged shard"
        try:
            _, _, _, size = npy_layout(path)
            actual = os.path.getsize(path)
            if actual < size:
                raise StoreError(
                    f"array shard {path} is truncated: {actual:,} bytes, its header needs "
                    f"{size:,}{hint}"
                )
            return np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError) as e:
            raise StoreError(f"array shard {path} is unreadable ({e}){hint}") from e

    def get_or_compute(self, spec: Mapping[str, Any], compute, kind: str) -> np.ndarray:
        fp = fingerprint(spec)
        if self.has(fp):
            return self.get(fp)
        self.put(spec, compute(), kind)
        return self.get(fp)
