"""The cached layers: their names, the shape and dtype of one frame's row, and how a batch
of images is reduced to them (the forward pass every engine runs)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from scenesift.errors import ConfigError, did_you_mean
from scenesift.models.backbones import Backbone

#: ``pooled``: the stride-32 map averaged (N, C), float32. ``map``: that map (N, C, h, w).
#: ``pyramid``: the stride-8/16/32 maps of ``Backbone.features`` flattened and concatenated
#: per frame, for detectors whose neck trains on cached features; see :func:`split_pyramid`.
#: ``pyramid4``: the same preceded by the stride-4 map (``Backbone.features(x, fine=True)``),
#: for a stride-4 detector head; a layer of its own, so the stride-8 detectors' cache stays
#: small and neither layer's cache is ever served for the other.
#: ``trunk:K`` (K >= 1): ``Backbone.trunk(x, K)``, the backbone below its top K block
#: groups, on which a tagger fine-tunes those K groups. All but ``pooled`` are float16.
LAYERS = ("pooled", "map", "pyramid", "pyramid4", "trunk:K")
PYRAMIDS = ("pyramid", "pyramid4")


def trunk_layer(k: int) -> str:
    return f"trunk:{k}"


def trunk_cut(layer: str) -> int | None:
    """K of a ``trunk:K`` layer; None for the other layers; ValueError for unknown ones."""
    if layer in LAYERS[:4]:
        return None
    prefix, _, k = layer.partition(":")
    if prefix != "trunk" or not k.isdigit() or int(k) < 1:
        raise ConfigError(
            f"layer must be one of {', '.join(LAYERS)} (K >= 1); got {layer!r}"
            + did_you_mean(layer, LAYERS[:4])
        )
    return int(k)


def layer_dtype(layer: str) -> type[np.floating]:
    """The cached dtype: pooled features are small, so float32; maps halve their bytes."""
    return np.float32 if layer == "pooled" else np.float16


def row_shape(backbone: Backbone, layer: str) -> tuple[int, ...]:
    """The shape of one frame's cached features for ``layer``."""
    h, w = backbone.preprocessing.size
    if layer == "pooled":
        return (backbone.out_channels,)
    if layer in PYRAMIDS:
        return (sum(int(np.prod(s)) for s in pyramid_shapes(backbone, layer)),)
    k = trunk_cut(layer)
    if k is not None:
        probe = copy.deepcopy(backbone).eval()  # never touch the caller's BatchNorm state
        with torch.inference_mode():
            return tuple(probe.trunk(torch.zeros(1, 3, h, w), k).shape[1:])
    return (backbone.out_channels, h // 32, w // 32)


def pyramid_shapes(backbone: Backbone, layer: str = "pyramid") -> list[tuple[int, int, int]]:
    """(C, h, w) of each map of a pyramid layer: strides 8, 16, 32 (``pyramid``) or 4, 8,
    16, 32 (``pyramid4``)."""
    if layer not in PYRAMIDS:
        raise ConfigError(f"not a pyramid layer: {layer!r} (expected one of {PYRAMIDS})")
    h, w = backbone.preprocessing.size
    channels, strides = list(backbone.stage_channels), list(backbone.strides)
    if layer == "pyramid4":
        channels, strides = [backbone.fine_channels, *channels], [backbone.fine_stride, *strides]
    return [(c, h // s, w // s) for c, s in zip(channels, strides, strict=True)]


def split_pyramid(
    array: np.ndarray, backbone: Backbone, layer: str = "pyramid"
) -> list[np.ndarray]:
    """Views (N, C, h, w) of the maps in a pyramid layer's feature array (N, D)."""
    shapes = pyramid_shapes(backbone, layer)
    sizes = [int(np.prod(s)) for s in shapes]
    if array.shape[1] != sum(sizes):
        raise ValueError(f"{layer} features of width {array.shape[1]}, expected {sum(sizes)}")
    offsets = np.cumsum([0, *sizes])
    return [
        array[:, a:b].reshape(len(array), *shape)
        for a, b, shape in zip(offsets[:-1], offsets[1:], shapes, strict=True)
    ]


@torch.inference_mode()
def forward_features(backbone: Backbone, images: torch.Tensor, layer: str) -> np.ndarray:
    """The cached quantity for a batch: pooled (N, C) float32 or the map as float16."""
    if layer in PYRAMIDS:
        maps = backbone.features(images, fine=layer == "pyramid4")
        flat = [m.to(torch.float16).reshape(len(m), -1) for m in maps]  # reshape: NCHW order
        return torch.cat(flat, dim=1).cpu().numpy()
    k = trunk_cut(layer)
    if k is not None:
        return backbone.trunk(images, k).to(torch.float16).contiguous().cpu().numpy()
    fmap = backbone(images)
    if layer == "pooled":
        return fmap.mean(dim=(2, 3)).float().cpu().numpy()
    return fmap.to(torch.float16).contiguous().cpu().numpy()
