"""Backbone features for frames, cached per frame by the fingerprint of what produced them.

The cache key (``spec``) is the fingerprint of the backbone (architecture + weights +
preprocessing) and the layer, so stale features cannot be served and no frame is ever
embedded twice for the same spec: ``embed`` computes only the frames the cache lacks.

Layout: each run writes its new features as array shards (``store.arrays``) and, in the
same transaction that registers a shard, one ``features`` row per frame (spec, frame,
shard, row, image signature). The signature (file size and mtime) is taken before the
image is decoded; a frame whose file no longer matches it is computed again. The shard
file is written before that transaction, so a killed run leaves at most an unregistered
file, never rows pointing at nothing. Reading gathers rows from the memory-mapped shards.
"""

from __future__ import annotations

import copy
import ctypes
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from scenesift.models.backbones import Backbone
from scenesift.models.images import make_loader
from scenesift.store import Store, StoreError, fingerprint
from scenesift.store.inventory import feature_caches  # noqa: F401 (re-exported)
from scenesift.ui import steps

#: ``pyramid``: the stride-8/16/32 maps of ``Backbone.features`` flattened and concatenated
#: per frame (float16), for detectors whose neck trains on cached features; see
#: :func:`split_pyramid`. ``trunk:K`` (K >= 1): ``Backbone.trunk(x, K)``, the backbone below
#: its top K block groups (float16), on which a tagger fine-tunes those K groups.
LAYERS = ("pooled", "map", "pyramid", "trunk:K")
KIND = "features"
#: Bump when the way features are computed changes without the spec noticing.
FORMAT = 1
#: A shard is written every this many frames (or 512 MB), so a killed run keeps its work.
SHARD_FRAMES = 4096
SHARD_BYTES = 512 * 2**20
#: Processes decoding images beside the forward pass. On 2 cores the forward pass already
#: uses both, and decoding in this process (1.2 ms of ~10 ms per frame) beats workers,
#: which only add contention and IPC (bench_embed.py); use more where cores are spare.
DEFAULT_WORKERS = 0
#: Where features are computed: ``local`` (this process, DataLoader) or ``ray`` (Ray Data on
#: a local or existing cluster, :mod:`scenesift.models.ray_engine`); both fill this cache.
ENGINES = ("local", "ray")
#: What runs the forward pass: ``torch`` (eager) or ``onnx`` (ONNX Runtime, an optional extra;
#: ~1.8x faster on 2 CPU cores, features equal up to float rounding, so not in the cache key).
RUNTIMES = ("torch", "onnx")


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


def trunk_layer(k: int) -> str:
    return f"trunk:{k}"


def trunk_cut(layer: str) -> int | None:
    """K of a ``trunk:K`` layer; None for the other layers; ValueError for unknown ones."""
    if layer in LAYERS[:3]:
        return None
    prefix, _, k = layer.partition(":")
    if prefix != "trunk" or not k.isdigit() or int(k) < 1:
        raise ValueError(f"layer must be one of {LAYERS} (K >= 1), got {layer!r}")
    return int(k)


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
        "dtype": "float32" if layer == "pooled" else "float16",
    }


def embed(
    store: Store,
    backbone: Backbone,
    names: Sequence[str] | None = None,
    layer: str = "pooled",
    batch_size: int = 32,
    workers: int = DEFAULT_WORKERS,
    progress: bool = True,
    split: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    ray_workers: int = 2,
    runtime: str = "torch",
) -> FeatureSet:
    """Features of ``names`` (default: every frame, optionally of one ``split``), computing
    only the frames not cached yet for this backbone, preprocessing and layer.

    New features are written as a shard every ``SHARD_FRAMES`` frames, so an interrupted
    run keeps what it finished; an unreadable image raises :class:`ImageLoadError` naming
    the file, and the frames of the unfinished shard are not cached.

    ``engine="ray"`` computes the missing frames with Ray Data on ``ray_workers`` model
    actors (``ray_address``: None starts a local Ray, ``auto`` or ``ray://host:port``
    joins a cluster); the result and the cache are the same as the local engine's.
    ``runtime="onnx"`` runs the forward pass in ONNX Runtime on either engine.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
    spec = cache_spec(backbone, layer)
    fp = fingerprint(spec)
    frames = _frames(store, names, split)
    cached = _fresh(_cached_rows(store, fp, [fid for fid, _, _ in frames]), frames)
    missing = list({f[0]: f for f in frames if f[0] not in cached}.values())  # each once
    started = time.perf_counter()
    if missing and engine == "ray":
        from scenesift.models.ray_engine import compute_on_ray  # Ray is an optional extra

        compute_on_ray(store, backbone, spec, fp, missing, layer, batch_size, progress,
                       address=ray_address, workers=ray_workers, runtime=runtime)  # fmt: skip
    elif missing:
        _compute(store, backbone, spec, fp, missing, layer, batch_size, workers, progress,
                 runtime)  # fmt: skip
    seconds = time.perf_counter() - started
    rows = _cached_rows(store, fp, [fid for fid, _, _ in frames]) if missing else cached
    empty = _empty_shape(backbone, layer) if not frames else (0,)  # the shape of no frames
    array = _gather(store, rows, [fid for fid, _, _ in frames], empty)
    return FeatureSet(
        names=[name for _, name, _ in frames],
        array=array.astype(np.float32 if layer == "pooled" else np.float16, copy=False),
        spec=spec,
        fingerprint=fp,
        computed=len(missing),
        cached=len(frames) - len(missing),
        seconds=seconds if missing else 0.0,
    )


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of unmapping it.

    A convnet on CPU allocates activations of ~100 MB per layer and batch; by default glibc
    serves each with a fresh ``mmap`` and unmaps it when freed, so every batch page-faults
    all its activations in again (half the forward time in the kernel on 2 cores). Keeping
    the memory doubles Lite0's forward rate for ~20% more peak memory. It is process-wide,
    so only entry points that own their process call it (the CLI, benchmarks); returns
    whether it applied (False off glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**30))


# --------------------------------------------------------------------------- computing
def inference_forward(
    backbone: Backbone, layer: str, runtime: str = "torch"
) -> Callable[[torch.Tensor], np.ndarray]:
    """The per-batch function both engines run: images -> the cached quantity, on the
    inference copy of ``backbone`` (BN folded, channels_last: ~2x faster, same features)."""
    model = backbone.for_inference()
    if runtime == "onnx":
        from scenesift.models.onnx_runtime import OnnxForward  # an optional extra

        return OnnxForward.export(model, layer)
    return partial(forward_features, model, layer=layer)


@torch.inference_mode()
def forward_features(backbone: Backbone, images: torch.Tensor, layer: str) -> np.ndarray:
    """The cached quantity for a batch: pooled (N, C) float32 or the map as float16."""
    if layer == "pyramid":
        maps = backbone.features(images)
        flat = [m.to(torch.float16).reshape(len(m), -1) for m in maps]  # reshape: NCHW order
        return torch.cat(flat, dim=1).numpy()
    k = trunk_cut(layer)
    if k is not None:
        return backbone.trunk(images, k).to(torch.float16).contiguous().numpy()
    fmap = backbone(images)
    if layer == "pooled":
        return fmap.mean(dim=(2, 3)).float().numpy()
    return fmap.to(torch.float16).contiguous().numpy()


def _compute(
    store: Store,
    backbone: Backbone,
    spec: dict[str, Any],
    fp: str,
    missing: list[tuple[int, str, str]],
    layer: str,
    batch_size: int,
    workers: int,
    progress: bool,
    runtime: str = "torch",
) -> None:
    forward = inference_forward(backbone, layer, runtime)
    loader = make_loader([p for _, _, p in missing], backbone.preprocessing, batch_size, workers)
    shards = ShardWriter(store, spec, fp, image_signatures(missing))
    with steps(f"embedding ({backbone.name}, {layer})", len(missing), progress) as step:
        for batch in loader:
            out = forward(batch.images)
            shards.add([missing[i][0] for i in batch.index.tolist()], out)
            step(len(out))
    shards.flush()


class ShardWriter:
    """Computed rows in, a registered shard out every ``SHARD_FRAMES`` frames (or
    ``SHARD_BYTES``): what both engines write through, so memory is bounded by a shard,
    never by the pool, and a killed run keeps every shard it finished."""

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
            sigs = [self.sigs.get(i) for i in self.ids]
            _write_shard(self.store, self.spec, self.fp, self.ids, sigs, self.arrays)
            self.written += len(self.ids)
        self.ids, self.arrays, self.nbytes = [], [], 0


def _write_shard(
    store: Store,
    spec: dict[str, Any],
    fp: str,
    ids: list[int],
    sigs: list[str | None],
    arrays: list[np.ndarray],
) -> None:
    """Register a shard and index its rows atomically (the file is written first)."""
    array = np.concatenate(arrays)
    shard_spec = {"cache": spec, "cache_fingerprint": fp, "frames": fingerprint(json.dumps(ids))}
    with store.transaction() as c:
        shard = store.arrays.put(shard_spec, array, kind=KIND)  # joins this transaction
        c.executemany(
            "INSERT OR REPLACE INTO features (spec, frame_id, shard, row, image_sig) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (fp, fid, shard, row, sig)
                for row, (fid, sig) in enumerate(zip(ids, sigs, strict=True))
            ],
        )


# --------------------------------------------------------------------------- catalog
def _frames(
    store: Store, names: Sequence[str] | None, split: str | None
) -> list[tuple[int, str, str]]:
    """(frame id, name, image path) in the order of ``names`` (default: catalog order)."""
    sql = (
        "SELECT f.id, f.name, r.path, f.path FROM frames f JOIN drives d ON d.name = f.drive "
        "JOIN image_roots r ON r.id = f.root_id"
    )
    args: list[str] = []
    if split:
        sql += " WHERE d.split = ?"
        args.append(split)
    sql += " ORDER BY f.drive, f.timestamp, f.name"
    rows = [(fid, name, os.path.join(root, rel)) for fid, name, root, rel in
            store.conn.execute(sql, args)]  # fmt: skip
    if names is None:
        return rows
    by_name = {r[1]: r for r in rows}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        where = f" in split {split!r}" if split else ""
        raise StoreError(f"{len(unknown)} frame(s) are not in the project{where}: {shown}{more}")
    return [by_name[n] for n in names]


def image_signature(path: str) -> str | None:
    """Size and modification time (ns) of an image file; None where it cannot be read
    (decoding will then raise the clear error)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def image_signatures(frames: Sequence[tuple[int, str, str]]) -> dict[int, str | None]:
    """frame id -> signature of its image now, taken *before* decoding: a file replaced
    between this and the decode only causes one needless recomputation later."""
    return {fid: image_signature(path) for fid, _, path in frames}


def _fresh(
    rows: dict[int, tuple[str, int, str | None]], frames: Sequence[tuple[int, str, str]]
) -> dict[int, tuple[str, int, str | None]]:
    """The cached rows whose image file is still the one they were computed from: one
    ``stat`` per frame, ~1 us on a local disk (a second per million frames), more on a
    network file system."""
    paths = {fid: path for fid, _, path in frames}
    return {
        fid: row for fid, row in rows.items()
        if row[2] is None or image_signature(paths[fid]) == row[2]
    }  # fmt: skip


def _cached_rows(store: Store, fp: str, ids: list[int]) -> dict[int, tuple[str, int, str | None]]:
    """frame id -> (shard, row, image signature) for the frames cached under ``fp`` whose
    shard exists."""
    wanted = set(ids)
    rows: dict[int, tuple[str, int, str | None]] = {}
    if len(wanted) <= 900:  # one query with the ids bound (SQLite's limit is 999)
        chunk = sorted(wanted)
        if chunk:
            q = (
                "SELECT frame_id, shard, row, image_sig FROM features WHERE spec = ? "
                f"AND frame_id IN ({','.join('?' * len(chunk))})"
            )
            rows.update(
                (fid, (s, r, sig)) for fid, s, r, sig in store.conn.execute(q, (fp, *chunk))
            )
    else:
        for fid, s, r, sig in store.conn.execute(
            "SELECT frame_id, shard, row, image_sig FROM features WHERE spec = ?", (fp,)
        ):
            if fid in wanted:
                rows[fid] = (s, r, sig)
    present = {s for s in {row[0] for row in rows.values()} if store.arrays.has(s)}
    return {fid: row for fid, row in rows.items() if row[0] in present}  # lost: recompute


def _gather(
    store: Store,
    rows: dict[int, tuple[str, int, str | None]],
    ids: list[int],
    empty_shape: tuple[int, ...],
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


def row_shape(backbone: Backbone, layer: str) -> tuple[int, ...]:
    """The shape of one frame's cached features for ``layer``."""
    h, w = backbone.preprocessing.size
    if layer == "pooled":
        return (backbone.out_channels,)
    if layer == "pyramid":
        return (sum(int(np.prod(s)) for s in pyramid_shapes(backbone)),)
    k = trunk_cut(layer)
    if k is not None:
        probe = copy.deepcopy(backbone).eval()  # never touch the caller's BatchNorm state
        with torch.inference_mode():
            return tuple(probe.trunk(torch.zeros(1, 3, h, w), k).shape[1:])
    return (backbone.out_channels, h // 32, w // 32)


def _empty_shape(backbone: Backbone, layer: str) -> tuple[int, ...]:
    return (0, *row_shape(backbone, layer))


def pyramid_shapes(backbone: Backbone) -> list[tuple[int, int, int]]:
    """(C, h, w) of each map of the ``pyramid`` layer, strides 8, 16, 32."""
    h, w = backbone.preprocessing.size
    return [
        (c, h // s, w // s) for c, s in zip(backbone.stage_channels, backbone.strides, strict=True)
    ]


def split_pyramid(array: np.ndarray, backbone: Backbone) -> list[np.ndarray]:
    """Views (N, C, h, w) of the three maps in a ``pyramid`` feature array (N, D)."""
    shapes = pyramid_shapes(backbone)
    sizes = [int(np.prod(s)) for s in shapes]
    if array.shape[1] != sum(sizes):
        raise ValueError(f"pyramid features of width {array.shape[1]}, expected {sum(sizes)}")
    offsets = np.cumsum([0, *sizes])
    return [
        array[:, a:b].reshape(len(array), *shape)
        for a, b, shape in zip(offsets[:-1], offsets[1:], shapes, strict=True)
    ]
