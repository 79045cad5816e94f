"""Evaluation metrics: per-label quality of the situation tagger (more to come per issue)."""

from scenesift.metrics.tagging import (
    BootstrapCI,
    LabelResult,
    TaggingResults,
    evaluate_tagging,
    thresholds_for_precision,
)

__all__ = [
    "BootstrapCI",
    "LabelResult",
    "TaggingResults",
    "evaluate_tagging",
    "thresholds_for_precision",
]
