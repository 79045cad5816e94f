"""Backbone features for frames, cached per frame by the fingerprint of what produced them.

:func:`embed` is the one entry point: it reads what the cache holds
(:mod:`~scenesift.features.cache`), hands the missing frames to an engine
(:mod:`~scenesift.features.local` in this process, :mod:`~scenesift.features.ray` on Ray
Data) and registers every row the engine yields, so no frame is embedded twice for the
same spec and nothing downstream knows which engine ran. Engines import the cache and the
layers, never this module.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch

from scenesift.devices import autocast, pin_memory, resolve_device, to_device
from scenesift.errors import check_choice
from scenesift.features.cache import (
    FeatureSet,
    ShardWriter,
    cache_spec,
    cached_rows,
    fresh,
    gather,
    image_signatures,
)
from scenesift.features.engine import Engine, Forward, ImagesSkipped
from scenesift.features.layers import (
    LAYERS,
    PYRAMIDS,
    forward_features,
    layer_dtype,
    row_shape,
    split_pyramid,
    trunk_cut,
    trunk_layer,
)
from scenesift.features.local import DEFAULT_WORKERS, LocalEngine
from scenesift.features.memory import keep_freed_memory
from scenesift.models.backbones import Backbone
from scenesift.store import Store, fingerprint
from scenesift.store.features import FramePath, frame_paths
from scenesift.store.inventory import feature_caches

#: Where features are computed: ``local`` (this process, DataLoader) or ``ray`` (Ray Data on
#: a local or existing cluster, :mod:`scenesift.features.ray`); both fill this cache.
ENGINES = ("local", "ray")
#: What runs the forward pass: ``torch`` (eager) or ``onnx`` (ONNX Runtime, an optional extra;
#: ~1.8x faster on 2 CPU cores, features equal up to float rounding, so not in the cache key).
RUNTIMES = ("torch", "onnx")

__all__ = [
    "DEFAULT_WORKERS",
    "ENGINES",
    "LAYERS",
    "PYRAMIDS",
    "RUNTIMES",
    "Engine",
    "FeatureSet",
    "cache_spec",
    "embed",
    "feature_caches",
    "forward_features",
    "inference_forward",
    "keep_freed_memory",
    "row_shape",
    "split_pyramid",
    "trunk_cut",
    "trunk_layer",
]


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
    device: str = "cpu",
) -> FeatureSet:
    """Features of ``names`` (default: every frame, optionally of one ``split``), computing
    only the frames not cached yet for this backbone, preprocessing and layer.

    New features are written as a shard every ``SHARD_FRAMES`` frames, so an interrupted
    run keeps what it finished; an unreadable image raises :class:`ImageLoadError` naming
    the file, and the frames of the unfinished shard are not cached.

    ``engine="ray"`` computes the missing frames with Ray Data on ``ray_workers`` model
    actors (``ray_address``: None starts a local Ray, ``auto`` or ``ray://host:port``
    joins a cluster); the result and the cache are the same as the local engine's, except
    that the frames whose images could be read are cached before the error is raised.
    ``runtime="onnx"`` runs the forward pass in ONNX Runtime on either engine.
    ``device`` (``auto|cpu|cuda|mps``) is where the torch forward pass runs (mixed precision
    and pinned loaders on CUDA); it is not part of the fingerprint: features are the same
    quantity on any device, up to float tolerance.
    """
    check_choice("engine", engine, ENGINES)
    dev = resolve_device(device)  # before any work: a missing GPU is a one-line error
    check_choice("runtime", runtime, RUNTIMES)
    spec = cache_spec(backbone, layer)
    fp = fingerprint(spec)
    frames = frame_paths(store, names, split)
    ids = [fid for fid, _, _ in frames]
    cached = fresh(cached_rows(store, fp, ids), frames)
    missing = list({f[0]: f for f in frames if f[0] not in cached}.values())  # each once
    started = time.perf_counter()
    if missing:
        if engine == "ray":
            from scenesift.features.ray import RayEngine  # Ray is an optional extra

            worker: Engine = RayEngine(store.root, fp, batch_size, ray_workers, ray_address,
                                       progress, gpus=pin_memory(dev))  # fmt: skip
        else:
            worker = LocalEngine(batch_size, workers, progress, pin_memory=pin_memory(dev))
        # exported once if onnx
        forward = inference_forward(backbone, layer, runtime, dev, explicit=device != "auto")
        _fill(worker, ShardWriter(store, spec, fp, image_signatures(missing)), missing,
              backbone, layer, forward)  # fmt: skip
    seconds = time.perf_counter() - started
    rows = cached_rows(store, fp, ids) if missing else cached
    empty = (0, *row_shape(backbone, layer)) if not frames else (0,)  # the shape of no frames
    return FeatureSet(
        names=[name for _, name, _ in frames],
        array=gather(store, rows, ids, empty).astype(layer_dtype(layer), copy=False),
        spec=spec,
        fingerprint=fp,
        computed=len(missing),
        cached=len(frames) - len(missing),
        seconds=seconds if missing else 0.0,
    )


def _fill(
    engine: Engine,
    shards: ShardWriter,
    missing: Sequence[FramePath],
    backbone: Backbone,
    layer: str,
    forward: Forward,
) -> None:
    """Register every row ``engine`` yields; the engine is closed however this ends (the
    Ray engine removes its staging folder)."""
    batches = engine.compute(missing, backbone, layer, forward)
    try:
        for ids, rows in batches:
            shards.add(ids, rows)
    except ImagesSkipped:
        shards.flush()  # every readable frame was yielded: keep them
        raise
    finally:
        batches.close()
    shards.flush()


def inference_forward(
    backbone: Backbone,
    layer: str,
    runtime: str = "torch",
    device: torch.device | None = None,
    explicit: bool = True,
) -> Forward:
    """The per-batch function every engine runs: images -> the cached quantity, on the
    inference copy of ``backbone`` (BN folded, channels_last: ~2x faster, same features);
    off the CPU it runs on ``device`` (ONNX Runtime: with its CUDA provider; a device that
    ``auto`` chose (``explicit`` False) falls back to its CPU provider when it has none)."""
    model = backbone.for_inference()
    if runtime == "onnx":
        from scenesift.features.onnx import OnnxForward, providers  # an optional extra

        on = providers(device or torch.device("cpu"), explicit)
        return OnnxForward.export(model, layer, on)
    if device is not None and device.type != "cpu":
        return DeviceForward(model, layer, device)
    return partial(forward_features, model, layer=layer)


class DeviceForward:
    """The torch forward pass on a GPU: the model moves there on first use (so it pickles as
    a CPU model to Ray actors), batches are copied there and run under autocast on CUDA."""

    def __init__(self, model: Backbone, layer: str, device: torch.device) -> None:
        self.model, self.layer, self.device, self.moved = model, layer, device, False

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        if not self.moved:
            self.model, self.moved = self.model.to(self.device), True
        with torch.inference_mode(), autocast(self.device):
            return forward_features(self.model, to_device(images, self.device), self.layer)
