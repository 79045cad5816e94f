"""Models: backbones (ImageNet feature extractors), the image pipeline and the feature cache."""

from scenesift.models.backbones import (
    BACKBONES,
    DEFAULT_BACKBONE,
    Backbone,
    BackboneUnavailable,
    Preprocessing,
    UnknownBackbone,
    get_backbone,
)
from scenesift.models.features import FeatureSet, embed, feature_caches
from scenesift.models.images import FrameImages, ImageLoadError, make_loader

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "Backbone",
    "BackboneUnavailable",
    "FeatureSet",
    "FrameImages",
    "ImageLoadError",
    "Preprocessing",
    "UnknownBackbone",
    "embed",
    "feature_caches",
    "get_backbone",
    "make_loader",
]
