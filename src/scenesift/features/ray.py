"""The Ray Data engine of the feature cache (``embed(..., engine="ray")``, ``--engine ray``).

A pool of millions of frames outgrows one machine's cores, so the frames the cache lacks
stream through Ray Data: (frame id, path) blocks -> decode tasks (uint8 pixels, a quarter of
the bytes of float inputs) -> the backbone on an actor pool (each actor builds the model
once) -> Parquet shards in a staging folder inside the project. The driver then reads
those shards back and yields their rows, which ``embed`` registers exactly as it does the
local engine's, and removes them, so ``embed`` afterwards reads every frame as cached and
nothing downstream knows which engine ran.

Memory is bounded by batches and shards, never by the pool: Ray Data streams with
back-pressure, and the driver reads one Parquet row group at a time. On a cluster the
project folder must be at the same path on every node (a shared file system): workers read
the images and write the staging shards there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from scenesift.errors import ScenesiftError
from scenesift.features.engine import Batch, Forward, ImagesSkipped
from scenesift.features.layers import layer_dtype, row_shape
from scenesift.features.memory import keep_freed_memory
from scenesift.models.backbones import Backbone, Preprocessing
from scenesift.models.images import ImageLoadError, load_pixels, normalise
from scenesift.store.features import FramePath
from scenesift.ui import steps

#: Frames per input block: the unit of a decode task, so the pool is read in pieces.
BLOCK_FRAMES = 1024
#: Rows the driver reads from a staging shard at a time.
READ_ROWS = 1024
STAGING_DIR = "tmp"
#: Who made a staging folder (host, pid), so a later run can tell a killed run's from a live one.
OWNER_FILE = "owner.json"
#: Seconds after which a staging folder without an owner (or with one that cannot be read) is
#: taken for a killed run's: folders of older versions, or of a run killed while creating it.
STALE_UNOWNED_S = 24 * 3600


class RayEngineError(ScenesiftError, RuntimeError):
    """Ray is not installed, or the cluster at the given address cannot be reached."""


def require_ray() -> Any:
    """The ``ray`` module, or a clear error saying how to install it."""
    try:
        import ray
        import ray.data  # registers the Arrow tensor types the staging shards use
    except ImportError:
        raise RayEngineError(
            "the ray engine needs Ray Data: pip install 'scenesift[ray]'"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None = None, workers: int = 2) -> Iterator[Any]:
    """Ray, connected: an already initialised session is used as it is (and left
    running); otherwise ``address`` None starts a local Ray with ``workers`` CPUs, and
    ``auto`` or ``ray://host:port`` joins an existing cluster. Shuts down what it started."""
    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(
                address=address,
                num_cpus=None if address else workers,
                include_dashboard=False,
                log_to_driver=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise RayEngineError(f"cannot start or reach Ray at {address or 'local'}: {e}") from e
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


class RayEngine:
    """Ray Data on ``workers`` model actors (``address``: None starts a local Ray, ``auto``
    or ``ray://host:port`` joins a cluster), staging under ``<project>/tmp/ray-<key>-*``.

    Frames whose image cannot be read are not yielded; after the others are,
    :class:`ImagesSkipped` names the first such file (so a re-run computes only those).
    """

    def __init__(
        self,
        project: Path,
        key: str,
        batch_size: int = 32,
        workers: int = 2,
        address: str | None = None,
        progress: bool = True,
        gpus: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError(f"ray workers must be >= 1, got {workers}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.project, self.key = Path(project), key
        self.batch_size, self.workers, self.address = batch_size, workers, address
        self.progress = progress
        self.gpus = gpus  # a CUDA forward pass: each actor reserves one GPU (num_gpus=1)

    def compute(
        self, frames: Sequence[FramePath], backbone: Backbone, layer: str, forward: Forward
    ) -> Generator[Batch, None, None]:
        sweep_stale_staging(self.project)
        staging = self.project / STAGING_DIR / f"ray-{self.key}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True, exist_ok=True)
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        (staging / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")
        try:
            with ray_session(self.address, self.workers) as ray:
                _run(ray, backbone, forward, frames, self.batch_size, self.workers,
                     staging / "rows", self.progress, self.gpus)  # fmt: skip
            yield from _read(backbone, frames, layer, staging, self.progress)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def sweep_stale_staging(project: Path, now: float | None = None) -> list[Path]:
    """Remove the staging folders of runs that died before their ``finally`` (SIGKILL, a
    lost machine): a dead owner process on this host, or no readable owner and older than
    :data:`STALE_UNOWNED_S`. Folders of live runs and of other hosts (whose processes cannot
    be seen from here) are left alone. Returns the folders removed."""
    root = Path(project) / STAGING_DIR
    now = time.time() if now is None else now
    host = socket.gethostname()
    removed = []
    for folder in sorted(root.glob("ray-*")) if root.is_dir() else ():
        if not folder.is_dir() or folder.is_symlink():
            continue
        try:
            owner = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
            stale = owner["host"] == host and not _alive(int(owner["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            try:
                stale = now - folder.stat().st_mtime > STALE_UNOWNED_S
            except OSError:
                continue
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _run(
    ray: Any,
    backbone: Backbone,
    forward: Forward,
    missing: Sequence[FramePath],
    batch_size: int,
    workers: int,
    staging: Path,
    progress: bool,
    gpus: bool = False,
) -> None:
    """frames -> decode tasks -> model actors -> Parquet shards in ``staging``; ``gpus``:
    each actor reserves one GPU (the forward moves its model there on first use)."""
    per_block = min(BLOCK_FRAMES, -(-len(missing) // workers))  # >= one block per worker
    blocks = [
        pa.table(
            {
                "frame_id": pa.array([m[0] for m in missing[i : i + per_block]], pa.int64()),
                "path": pa.array([m[2] for m in missing[i : i + per_block]], pa.string()),
            }
        )
        for i in range(0, len(missing), per_block)
    ]
    model = ray.put(forward)  # the inference model (or its ONNX graph), shipped once
    pixels = ray.data.from_arrow(blocks).map_batches(
        decode_batch,
        fn_kwargs={"preprocessing": backbone.preprocessing},
        batch_size=batch_size,
        batch_format="numpy",
        # Decoding is light next to the forward pass; CPUs are reserved by the actors.
        num_cpus=0,
        compute=ray.data.TaskPoolStrategy(size=workers),
    )
    features = pixels.map_batches(
        ForwardActor,
        fn_constructor_kwargs={"forward": [model], "preprocessing": backbone.preprocessing},
        batch_size=batch_size,
        batch_format="numpy",
        num_cpus=1,
        num_gpus=1 if gpus else 0,
        compute=ray.data.ActorPoolStrategy(size=workers),
    )  # fmt: skip
    context = ray.data.DataContext.get_current()
    before = context.enable_progress_bars, context.print_on_execution_start
    context.enable_progress_bars = context.print_on_execution_start = progress
    try:
        features.write_parquet(str(staging))
    finally:
        context.enable_progress_bars, context.print_on_execution_start = before


def decode_batch(batch: dict[str, np.ndarray], preprocessing: Preprocessing) -> dict[str, Any]:
    """Paths -> RGB uint8 pixels (N, H, W, 3) at the network's size; an unreadable image
    gives zeros and its reason in ``error`` (raised by the driver, naming the file)."""
    h, w = preprocessing.size
    paths = batch["path"]
    pixels = np.zeros((len(paths), h, w, 3), dtype=np.uint8)
    errors = []
    for i, path in enumerate(paths):
        try:
            pixels[i] = load_pixels(str(path), preprocessing)
            errors.append("")
        except ImageLoadError as e:
            errors.append(e.reason)
    return {"frame_id": batch["frame_id"], "pixels": pixels, "error": np.asarray(errors)}


class ForwardActor:
    """Holds the inference model (fetched once per actor) and runs it on decoded batches,
    exactly as the local engine does."""

    def __init__(self, forward: list[Any], preprocessing: Preprocessing) -> None:
        import ray

        keep_freed_memory()  # the actor's process is ours: ~2x faster CPU forward passes
        torch.set_num_threads(1)  # one reserved CPU per actor (ONNX Runtime follows it)
        self.forward = ray.get(forward[0])  # in a list: fetched here, not as an argument
        self.preprocessing = preprocessing

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        pixels = batch["pixels"]
        images = torch.from_numpy(normalise(pixels, self.preprocessing))
        images = images.permute(0, 3, 1, 2)  # NHWC memory seen as NCHW: channels_last
        out = self.forward(images)
        return {"frame_id": batch["frame_id"], "error": batch["error"], "features": out}


def _read(
    backbone: Backbone,
    missing: Sequence[FramePath],
    layer: str,
    staging: Path,
    progress: bool,
) -> Iterator[Batch]:
    """Stream the staging shards back, one row group at a time."""
    shape = row_shape(backbone, layer)
    dtype = layer_dtype(layer)
    files = sorted(staging.rglob("*.parquet"))
    errors: dict[int, str] = {}
    rows = 0
    with steps(f"caching ({backbone.name}, {layer})", len(missing), progress) as step:
        for path in files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_ROWS):
                ids = batch.column("frame_id").to_numpy()
                error = batch.column("error").to_numpy(zero_copy_only=False)
                feats = tensor_column(batch.column("features"), shape, dtype)
                ok = error == ""
                for fid, reason in zip(ids[~ok], error[~ok], strict=True):
                    errors[int(fid)] = str(reason)
                yield ids[ok].tolist(), feats[ok]
                rows += len(ids)
                step(len(ids))
    if rows != len(missing):
        raise RuntimeError(f"the ray engine returned {rows} rows for {len(missing)} frames")
    if errors:
        first = next(iter(errors))
        path = next(p for fid, _, p in missing if fid == first)
        more = f" ({len(errors) - 1} more unreadable)" if len(errors) > 1 else ""
        if len(errors) == len(missing) and errors[first] == "no such file":
            more += "; are the images at the same path on every Ray node (a shared file system)?"
        elif len(errors) < len(missing):
            more += "; the other frames were cached"
        raise ImagesSkipped(path, f"{errors[first]}{more}")


def tensor_column(column: pa.Array, row_shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A Ray tensor column (or its plain list storage) as an (N, *row_shape) array."""
    if isinstance(column, pa.ExtensionArray):
        column = column.storage
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), *row_shape).astype(dtype, copy=False)
