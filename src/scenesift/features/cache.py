"""The feature cache: what keys it, which cached rows are still valid, and how computed
rows become registered shards.

The cache key (``spec``) is the fingerprint of the backbone (architecture + weights +
preprocessing), the layer and its dtype, so stale features cannot be served and no frame
is ever embedded twice for the same spec.

Layout: new features are written as array shards (``store.arrays``) and, in the same
transaction that registers a shard, one ``features`` row per frame (spec, frame, shard,
row, image signature; SQL in :mod:`scenesift.store.features`). The signature (file size
and mtime) is taken before the image is decoded; a frame whose file no longer matches it
is computed again. The shard file is written before that transaction, so a killed run
leaves at most an unregistered file, never rows pointing at nothing. Reading gathers rows
from the memory-mapped shards.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenesift.features.layers import layer_dtype, trunk_cut
from scenesift.models.backbones import Backbone
from scenesift.store import Store, fingerprint
from scenesift.store import features as index
from scenesift.store.features import FramePath, IndexRow

KIND = "features"
#: Bump when the way features are computed changes without the spec noticing.
FORMAT = 1
#: A shard is written every this many frames (or 512 MB), so a killed run keeps its work.
SHARD_FRAMES = 4096
SHARD_BYTES = 512 * 2**20


@dataclass
class FeatureSet:
    """Features of ``names`` in that order: (N, C) float32 for ``pooled``, (N, C, h, w)
    float16 for ``map``; plus what the call cost."""

    names: list[str]
    array: np.ndarray
    spec: dict[str, Any]
    fingerprint: str
    computed: int = 0
    cached: int = 0
    seconds: float = 0.0

    @property
    def throughput(self) -> float:
        """Frames computed per second (decode + preprocess + forward)."""
        return self.computed / self.seconds if self.seconds > 0 else 0.0

    def __len__(self) -> int:
        return len(self.names)


def cache_spec(backbone: Backbone, layer: str) -> dict[str, Any]:
    """Everything that determines a frame's cached features (the cache key's content).
    A trunk is keyed by the weights below its cut only (``Backbone.trunk_spec``)."""
    k = trunk_cut(layer)
    return {
        "kind": KIND,
        "format": FORMAT,
        "backbone": backbone.name,
        "backbone_fingerprint": (
            backbone.fingerprint if k is None else fingerprint(backbone.trunk_spec(k))
        ),
        "preprocessing": backbone.preprocessing.spec(),
        "layer": layer,
        "dtype": np.dtype(layer_dtype(layer)).name,
    }


def image_signature(path: str) -> str | None:
    """Size and modification time (ns) of an image file; None where it cannot be read
    (decoding will then raise the clear error)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def image_signatures(frames: Sequence[FramePath]) -> dict[int, str | None]:
    """frame id -> signature of its image now, taken *before* decoding: a file replaced
    between this and the decode only causes one needless recomputation later."""
    return {fid: image_signature(path) for fid, _, path in frames}


def cached_rows(store: Store, fp: str, ids: list[int]) -> dict[int, IndexRow]:
    """frame id -> (shard, row, image signature) for the frames cached under ``fp`` whose
    shard exists (a lost shard's frames are computed again)."""
    rows = index.index_rows(store, fp, ids)
    present = {s for s in {row[0] for row in rows.values()} if store.arrays.has(s)}
    return {fid: row for fid, row in rows.items() if row[0] in present}


def fresh(rows: dict[int, IndexRow], frames: Sequence[FramePath]) -> dict[int, IndexRow]:
    """The cached rows whose image file is still the one they were computed from: one
    ``stat`` per frame, ~1 us on a local disk (a second per million frames), more on a
    network file system."""
    paths = {fid: path for fid, _, path in frames}
    return {
        fid: row for fid, row in rows.items()
        if row[2] is None or image_signature(paths[fid]) == row[2]
    }  # fmt: skip


def gather(
    store: Store, rows: dict[int, IndexRow], ids: list[int], empty_shape: tuple[int, ...]
) -> np.ndarray:
    """Stack the cached rows of ``ids`` in order, reading each shard once (memory-mapped)."""
    by_shard: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for pos, fid in enumerate(ids):
        shard, row, _ = rows[fid]
        by_shard[shard][0].append(pos)
        by_shard[shard][1].append(row)
    out: np.ndarray | None = None
    for shard, (positions, shard_rows) in by_shard.items():
        data = store.arrays.get(shard)
        if out is None:
            out = np.empty((len(ids), *data.shape[1:]), dtype=data.dtype)
        order = np.argsort(shard_rows)  # ascending rows read the memory map sequentially
        out[np.asarray(positions)[order]] = data[np.asarray(shard_rows)[order]]
    return out if out is not None else np.empty(empty_shape, dtype=np.float32)


class ShardWriter:
    """Computed rows in, a registered shard out every ``SHARD_FRAMES`` frames (or
    ``SHARD_BYTES``): what every engine's output goes through, so memory is bounded by a
    shard, never by the pool, and a killed run keeps every shard it finished."""

    def __init__(
        self, store: Store, spec: dict[str, Any], fp: str, sigs: dict[int, str | None]
    ) -> None:
        self.store, self.spec, self.fp, self.sigs = store, spec, fp, sigs
        self.ids: list[int] = []
        self.arrays: list[np.ndarray] = []
        self.nbytes = 0
        self.written = 0

    def add(self, ids: Sequence[int], array: np.ndarray) -> None:
        """Queue the features of ``ids`` (one row each); writes a shard when one is full."""
        if len(ids) != len(array):
            raise ValueError(f"{len(ids)} frame ids for {len(array)} feature rows")
        self.ids.extend(int(i) for i in ids)
        self.arrays.append(array)
        self.nbytes += array.nbytes
        if len(self.ids) >= SHARD_FRAMES or self.nbytes >= SHARD_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write and register what is queued (nothing if empty)."""
        if self.ids:
            shard_spec = {
                "cache": self.spec,
                "cache_fingerprint": self.fp,
                "frames": fingerprint(json.dumps(self.ids)),
            }
            sigs = [self.sigs.get(i) for i in self.ids]
            array = np.concatenate(self.arrays)
            index.write_shard(self.store, self.fp, shard_spec, array, self.ids, sigs, KIND)
            self.written += len(self.ids)
        self.ids, self.arrays, self.nbytes = [], [], 0
