"""Selection for your own model: a batch to label from a user's COCO-results predictions.

No training here. The pool is the project's unlabelled frames that the predictions cover;
what a strategy may read: the user's detections (with class-probability vectors if the
file has them), our cached embeddings (computed once if missing) and the latest tagger's
situation scores. The outputs are what a labelling team needs: the picked frame list, a
CSV with why each frame was picked, and Label Studio tasks with the model's boxes and the
tagger's situations as pre-annotations.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from scenesift.al.pool import Pool, Selection
from scenesift.al.sources import build_pool, confident, flatten_detections, situation_scores
from scenesift.errors import ConfigError, ScenesiftError
from scenesift.files import atomic_write
from scenesift.models.backbones import DEFAULT_BACKBONE
from scenesift.records import Box, FrameRecord
from scenesift.store import Store, StoreError


@dataclass
class SelectResult:
    selection: Selection
    pool: list[FrameRecord]
    picked: list[FrameRecord]
    out: Path
    files: dict[str, Path]
    predictions: Mapping[str, Sequence[Box]]
    min_score: float
    tagger: str | None  # the tagger whose stored scores the strategy and the tables read
    situation_scores: dict[str, dict[str, float]]
    signals: list[tuple[str, str]]  # (strategy, what of the pool it read), for the summary
    warnings: list[str]  # inputs that were missing, and the command that provides them


def build_spec(
    strategy: str | Mapping[str, Any],
    balance: str | None = None,
    per_drive: int | None = None,
    window: float = 10.0,
) -> dict[str, Any]:
    """The strategy spec the flags describe: ``balance`` fuses the strategy with situation
    or class balancing (rank fusion, equal weights); ``per_drive`` de-duplicates drives."""
    spec: dict[str, Any] = {"name": strategy} if isinstance(strategy, str) else dict(strategy)
    if balance is not None:
        if balance not in ("situations", "classes"):
            raise ValueError(f"--balance must be situations or classes, got {balance!r}")
        spec = {
            "name": "fusion",
            "method": "rank",
            "parts": [{**spec, "weight": 0.5}, {"name": f"balance_{balance}", "weight": 0.5}],
        }
    if per_drive is not None:
        spec = {**spec, "dedup": {"per_drive": per_drive, "window": window}}
    return spec


def select_from_predictions(
    store: Store,
    predictions: Mapping[str, Sequence[Box]],
    spec: Mapping[str, Any],
    budget: int,
    out: Path,
    seed: int = 0,
    min_score: float = 0.2,
    backbone: str = DEFAULT_BACKBONE,
    progress: bool = True,
) -> SelectResult:
    from scenesift.al.strategies import make_strategy

    spec = dict(spec)
    strategy = make_strategy(spec)
    unlabelled = {r.name: r for r in store.records(state="unlabelled")}
    pool = [unlabelled[n] for n in predictions if n in unlabelled]
    if not pool:
        raise StoreError(
            "none of the predicted frames is an unlabelled frame of this project (frame "
            "names come from the ground-truth file's images.file_name)"
        )
    names = [r.name for r in pool]
    tagger = store.latest_model_source()
    scores = situation_scores(store, tagger)
    detections = flatten_detections(predictions, names, store.taxonomy.classes, min_score)
    embed_with = None
    if "embeddings" in strategy.required_fields():
        from scenesift.models import get_backbone

        embed_with = get_backbone(backbone)
    pool_view = build_pool(
        store,
        np.arange(len(pool)),
        pool,
        detections,
        store.records(state="labelled"),
        scores,
        embed_with=embed_with,
        progress=progress,
    )
    strategy, warnings = _with_inputs(spec, pool_view)
    selection = strategy.select(pool_view, min(budget, len(pool)), np.random.default_rng(seed))
    picked = [pool[int(i)] for i in selection.indices]
    files = _write_outputs(
        store, Path(out), picked, selection, predictions, tagger, scores, min_score
    )
    return SelectResult(
        selection, pool, picked, Path(out), files, predictions, min_score, tagger, scores,
        signals(strategy, pool_view), warnings,
    )  # fmt: skip


def _missing(strategy, pool: Pool) -> list[str]:
    return [f for f in strategy.required_fields() if getattr(pool, f) is None]


def _with_inputs(spec: dict[str, Any], pool: Pool):
    """The strategy of ``spec``, less the fusion parts whose input the pool lacks (each
    named in a warning with the command that provides it); a strategy left with no part
    that can run raises a ConfigError saying the same."""
    from scenesift.al.strategies import make_strategy, missing_input

    warnings: list[str] = []
    if spec.get("name") == "fusion" and isinstance(spec.get("parts"), list):
        kept = []
        for part in spec["parts"]:
            part_spec = {k: v for k, v in part.items() if k != "weight"}
            lacking = _missing(make_strategy(part_spec), pool)
            if lacking:
                message = missing_input(str(part.get("name")), lacking[0])
                warnings.append(f"{message}; left out of the fusion")
            else:
                kept.append(part)
        if kept and len(kept) < len(spec["parts"]):
            spec = {**spec, "parts": kept}
    strategy = make_strategy(spec)
    lacking = _missing(strategy, pool)
    if lacking:
        raise ConfigError(missing_input(spec.get("name", "?"), lacking[0]))
    return strategy, warnings


def signals(strategy, pool: Pool) -> list[tuple[str, str]]:
    """What each part of ``strategy`` read from the pool, in words: the summary says, e.g.,
    that least confidence used detection scores because the file had no class vectors."""
    from scenesift.al import strategies as st
    from scenesift.al.heuristics import uncertainty_signal

    if isinstance(strategy, st.Fusion):
        return [sig for part, _ in strategy.parts for sig in signals(part, pool)]
    if isinstance(strategy, st.Dedup):
        return [*signals(strategy.strategy, pool), ("dedup", "drives and timestamps")]
    if isinstance(strategy, st._UncertainDiverse):
        return [*signals(strategy.uncertainty, pool), (strategy.name, "frame embeddings")]
    if isinstance(strategy, st.ClassAware):
        signal = uncertainty_signal(pool.detections)
        return [(strategy.name, f"{signal}, weighted by the labelled boxes per class")]
    if isinstance(strategy, st.UncertainBoxes) or (
        isinstance(strategy, st._Uncertainty) and strategy.target == "detections"
    ):
        return [(strategy.name, uncertainty_signal(pool.detections))]
    if isinstance(strategy, st.BalanceClasses):
        return [(strategy.name, "the detected classes")]
    inputs = [st.INPUTS[f][0] for f in strategy.required_fields() if f in st.INPUTS]
    return [(strategy.name, ", ".join(inputs) or "nothing (random)")]


def _write_outputs(
    store: Store,
    out: Path,
    picked: list[FrameRecord],
    selection: Selection,
    predictions: Mapping[str, Sequence[Box]],
    tagger: str | None,
    scores: dict[str, dict[str, float]],
    min_score: float,
) -> dict[str, Path]:
    from scenesift.io.labelstudio import write_labelstudio_config, write_labelstudio_tasks

    out.mkdir(parents=True, exist_ok=True)
    files = {"list": out / "picked.txt", "csv": out / "picked.csv"}
    with atomic_write(files["list"]) as f:
        f.writelines(f"{r.name}\n" for r in picked)
    with atomic_write(files["csv"]) as f:
        w = csv.writer(f)
        w.writerow(["rank", "frame", "drive", "score", "strategy"])
        for rank, (r, score) in enumerate(zip(picked, selection.scores.tolist(), strict=True)):
            w.writerow([rank, r.name, r.drive, f"{score:.6g}", selection.strategy])
    thresholds = store.decision_thresholds(tagger) if tagger is not None else {}
    shown = [
        replace(
            r,
            predicted_boxes=confident(predictions.get(r.name, ()), min_score),
            situation_scores=scores.get(r.name, {}),
        )
        for r in picked
    ]
    ls = out / "labelstudio"
    files["tasks"] = write_labelstudio_tasks(
        shown, store.taxonomy, ls, thresholds=thresholds, model_version="your-model"
    )
    files["config"] = write_labelstudio_config(store.taxonomy, ls / "labeling_config.xml")
    return files


def spread(result: SelectResult, store: Store) -> dict[str, list[tuple[str, int, int]]]:
    """How the batch is spread over situations (tagger), classes (frames with a predicted
    box above the score threshold) and drives, next to the pool: (name, batch, pool)."""
    thresholds = store.decision_thresholds(result.tagger) if result.tagger else {}
    positive = {
        name: {s for s, v in scores.items() if v >= thresholds.get(s, np.inf)}
        for name, scores in result.situation_scores.items()
    }
    batch_names = {r.name for r in result.picked}

    def table(key) -> list[tuple[str, int, int]]:
        pool_c, batch_c = Counter(), Counter()
        for r in result.pool:
            keys = key(r)
            pool_c.update(keys)
            if r.name in batch_names:
                batch_c.update(keys)
        return [(k, batch_c[k], pool_c[k]) for k, _ in pool_c.most_common()]

    return {
        "situation": table(lambda r: positive.get(r.name, set())),
        "class": table(
            lambda r: {
                b.category for b in confident(result.predictions.get(r.name, ()), result.min_score)
            }
        ),
        "drive": table(lambda r: {r.drive}),
    }


def select_from_results_file(
    store: Store,
    predictions: Path,
    images: Path | None,
    budget: int,
    out: Path,
    *,
    names: Path | None = None,
    strategy: str = "least_confidence",
    balance: str | None = None,
    per_drive: int | None = None,
    window: float = 10.0,
    seed: int = 0,
    min_score: float = 0.2,
) -> tuple[SelectResult, dict[str, list[tuple[str, int, int]]]]:
    """``scenesift select``: a batch from a predictions file (``io.formats.read_predictions``:
    a YOLO txt folder, Ultralytics' predictions.json, or COCO results with the COCO file
    ``images``) and how it spreads over situations, classes and drives. Invalid settings
    raise ``ConfigError``."""
    from scenesift.io.formats import read_predictions

    try:
        spec = build_spec(strategy, balance, per_drive, window)
        frames = store.records(state="unlabelled")
        boxes = read_predictions(
            predictions, frames, store.taxonomy.classes, images=images, names=names
        )
        result = select_from_predictions(
            store, boxes, spec, budget, out, seed=seed, min_score=min_score
        )
    except ScenesiftError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return result, spread(result, store)
