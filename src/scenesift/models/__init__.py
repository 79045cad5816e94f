"""Models: backbones (ImageNet feature extractors), the image pipeline, the tagger and the
detector (the feature cache is :mod:`scenesift.features`)."""

from scenesift.models.backbones import (
    BACKBONES,
    DEFAULT_BACKBONE,
    Backbone,
    BackboneUnavailable,
    Preprocessing,
    UnknownBackbone,
    get_backbone,
)
from scenesift.models.images import FrameImages, ImageLoadError, make_loader

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "Backbone",
    "BackboneUnavailable",
    "FrameImages",
    "ImageLoadError",
    "Preprocessing",
    "UnknownBackbone",
    "get_backbone",
    "make_loader",
]
