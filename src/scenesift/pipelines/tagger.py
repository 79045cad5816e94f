"""Situation tagger workflows on a project: train, evaluate, pre-label, explain.

Checkpoints live in ``<project>/models/tagger/<fingerprint>.pt`` with a JSON sidecar
(config, history, thresholds, metrics); ``latest`` names the newest. Predictions go into the
store as source ``model:<fingerprint>``, so coverage, selection and the Label Studio export
read them from there, never from files on the side.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from scenesift.errors import ConfigError
from scenesift.features import embed
from scenesift.files import write_json
from scenesift.metrics.tagging import TaggingResults, evaluate_tagging, thresholds_for_precision
from scenesift.models.backbones import Backbone
from scenesift.models.images import make_loader
from scenesift.models.tagger import SituationTagger, TaggerConfig, label_matrix
from scenesift.pipelines.checkpoints import latest, load_model, save_model
from scenesift.pipelines.evidence import few_drives_warning, positive_drives
from scenesift.records import FrameRecord
from scenesift.store import Store, StoreError

MODELS_DIR = Path("models") / "tagger"
REPORTS_DIR = Path("reports") / "tagger"


def model_dir(store: Store) -> Path:
    return store.root / MODELS_DIR


def with_truth(store: Store, split: str) -> list[FrameRecord]:
    """Labelled frames of a split that carry at least one situation label (their truth)."""
    return [r for r in store.records(split=split, state="labelled") if r.situations]


def train(
    store: Store,
    config: TaggerConfig,
    backbone: Backbone | None = None,
    progress: bool = True,
) -> tuple[SituationTagger, Path]:
    """Fit on the labelled train split, early-stop on val, save; returns (tagger, path)."""
    tr, va = with_truth(store, "train"), with_truth(store, "val")
    if not tr:
        raise StoreError(
            "no labelled frames with situation labels in the train split: import labels "
            "(`scenesift import ... --as import`) or finish a labelling round first"
        )
    tagger = SituationTagger(store.taxonomy.names, config)
    tagger.fit(tr, va, store=store, backbone=backbone, progress=progress)
    path = save(store, tagger)
    return tagger, path


def training_warning(store: Store, situations: Sequence[str] | None = None) -> str | None:
    """One line naming the situations whose training positives come from fewer than 2
    drives (None: all have enough); see :mod:`scenesift.pipelines.evidence`."""
    names = list(situations or store.taxonomy.names)
    drives = positive_drives(with_truth(store, "train"), situations=names)
    return few_drives_warning(drives, "situations")


def save(store: Store, tagger: SituationTagger, extra: dict | None = None) -> Path:
    extra = {
        "situations": tagger.situations,
        "groups_trained": tagger.groups_trained,
        **(extra or {}),
    }
    return save_model(model_dir(store), tagger, extra)


def sidecar(path: Path) -> dict:
    side = Path(path).with_suffix(".json")
    return json.loads(side.read_text(encoding="utf-8")) if side.exists() else {}


def update_sidecar(path: Path, **values) -> None:
    data = sidecar(path)
    data.update(values)
    write_json(Path(path).with_suffix(".json"), data)


def latest_path(store: Store) -> Path:
    return latest(model_dir(store), "tagger")


def load(store: Store, path: Path | None = None, backbone: Backbone | None = None):
    return load_model(
        model_dir(store), lambda p: SituationTagger.load(p, backbone=backbone), "tagger", path
    )


def scores(
    store: Store, tagger: SituationTagger, records: Sequence[FrameRecord], progress: bool = True
) -> np.ndarray:
    return tagger.predict_scores(records, store=store, progress=progress)


def _said(tagger: SituationTagger) -> list[int]:
    """Columns of the tagger's scores for the situations it can say."""
    return [tagger.situations.index(s) for s in tagger.trained]


def evaluate(
    store: Store,
    tagger: SituationTagger,
    split: str = "test",
    plots: Path | None = None,
    progress: bool = True,
) -> TaggingResults:
    """Per-label ROC-AUC / AP on a split's labelled frames; ROC and PR plots if asked. The
    situations the tagger cannot say are listed in ``not_predicted``, not scored."""
    records = with_truth(store, split)
    if not records:
        raise StoreError(f"no labelled frames with situation labels in the {split} split")
    said = _said(tagger)
    y, m = label_matrix(records, tagger.trained)
    tax = store.taxonomy
    results = evaluate_tagging(
        y, scores(store, tagger, records, progress)[:, said], m.astype(bool), tagger.trained,
        groups={s: tax.get(s).group for s in tagger.trained if s in tax},
        drives=[r.drive for r in records],
    )  # fmt: skip
    results.not_predicted = tagger.cannot_say
    if plots is not None:
        results.plot_curves(plots)
        results.plot_summary(Path(plots) / "summary.png")
    return results


def evaluate_checkpoint(
    store: Store, path: Path | None = None, split: str = "test", plots: bool = True
) -> tuple[SituationTagger, TaggingResults, Path | None]:
    """Evaluate a saved tagger (default: the latest) on a split, plots in the project's
    reports; the metrics are recorded in the checkpoint's sidecar as ``<split>_metrics``."""
    tagger, path = load(store, path)
    out = store.root / REPORTS_DIR / tagger.fingerprint if plots else None
    results = evaluate(store, tagger, split=split, plots=out)
    update_sidecar(path, **{f"{split}_metrics": results.metrics()})
    return tagger, results, out


@dataclass
class PrelabelSummary:
    source: str
    frames: int
    thresholds: dict[str, float]
    rules: dict[str, str]
    positives: dict[str, int]
    #: Situations the tagger cannot say: nothing was written for them.
    not_predicted: list[str]


def prelabel(
    store: Store,
    tagger: SituationTagger,
    path: Path,
    target_precision: float = 0.9,
    state: str | None = None,
    progress: bool = True,
    *,
    engine: str = "local",
    ray_address: str | None = None,
    ray_workers: int = 2,
    runtime: str = "torch",
) -> PrelabelSummary:
    """Score frames (default: all) and write them to the store as ``model:<fingerprint>``,
    thresholded per situation for ``target_precision`` on the validation split. Only the
    situations the tagger can say are written (the others stay missing, neither positive
    nor negative), and of an exclusive group at most one is positive per frame.

    With ``engine="ray"`` or ``runtime="onnx"`` the pooled features of the frames to score
    (and of the validation frames) are embedded that way first; the head then scores them
    from the feature cache as usual."""
    if engine != "local" or runtime != "torch":
        _embed_for_scoring(store, tagger, state, engine, ray_address, ray_workers, runtime)
    said, situations = _said(tagger), tagger.trained
    val = with_truth(store, "val")
    if val:
        y, m = label_matrix(val, situations)
        thresholds, rules = thresholds_for_precision(
            y, scores(store, tagger, val, progress)[:, said], m.astype(bool), situations,
            target_precision,
        )  # fmt: skip
    else:
        thresholds = dict.fromkeys(situations, 0.5)
        rules = dict.fromkeys(situations, "0.5 (no labelled validation frames)")
    records = store.records(state=state)
    proba = scores(store, tagger, records, progress)[:, said]
    values = store.taxonomy.decide(proba, situations, thresholds)
    source = f"model:{tagger.fingerprint}"
    store.write_situation_scores(
        source, [r.name for r in records], situations, proba, thresholds, values=values
    )
    update_sidecar(path, thresholds=thresholds, threshold_rules=rules,
                   target_precision=target_precision, not_predicted=tagger.cannot_say)  # fmt: skip
    positives = {s: int(values[:, j].sum()) for j, s in enumerate(situations)}
    return PrelabelSummary(source, len(records), thresholds, rules, positives, tagger.cannot_say)


def _embed_for_scoring(
    store: Store,
    tagger: SituationTagger,
    state: str | None,
    engine: str,
    ray_address: str | None,
    ray_workers: int,
    runtime: str,
) -> None:
    if tagger.groups_trained:  # its scores come from a full forward, not the cache
        raise ConfigError(
            f"--engine ray and --runtime onnx score from cached pooled features, "
            f"which this tagger cannot use: {tagger.groups_trained} backbone "
            f"group(s) were fine-tuned; score it without them, or train with "
            f"--schedule frozen"
        )
    names = None  # every frame; else those of the state and the validation frames
    if state is not None:
        wanted = [r.name for r in store.records(state=state)]
        names = list(dict.fromkeys(wanted + [r.name for r in with_truth(store, "val")]))
    embed(
        store, tagger.net.backbone, names, layer="pooled", batch_size=tagger.config.batch_size,
        workers=tagger.config.workers, engine=engine, ray_address=ray_address,
        ray_workers=ray_workers, runtime=runtime,
    )  # fmt: skip


def compare_schedules(
    store: Store,
    config: TaggerConfig,
    schedules: Sequence[str] = ("frozen", "gradual", "full"),
    backbone_factory=None,
    progress: bool = True,
) -> dict[str, TaggingResults]:
    """Train each schedule on the same split and seed; evaluate each on the test split."""
    out = {}
    for schedule in schedules:
        backbone = backbone_factory() if backbone_factory else None
        tagger, _ = train(store, replace(config, schedule=schedule), backbone, progress)
        out[schedule] = evaluate(store, tagger, progress=progress)
    return out


def class_activation_maps(
    store: Store,
    tagger: SituationTagger,
    out: Path,
    situations: Sequence[str] | None = None,
    per_situation: int = 3,
    split: str = "test",
    progress: bool = True,
) -> Path:
    """A grid of heat maps: for each situation, the frames scored highest, with the map of
    where the per-pixel logits put it. Also stores the raw maps as an array shard."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    records = store.records(split=split)
    if not records:
        raise StoreError(f"no frames in the {split} split")
    situations = list(situations or tagger.situations)
    unknown = [s for s in situations if s not in tagger.situations]
    if unknown:
        raise StoreError(f"the tagger does not know {unknown}")
    proba = scores(store, tagger, records, progress)
    picks: list[tuple[str, FrameRecord, float]] = []
    for s in situations:
        j = tagger.situations.index(s)
        for i in np.argsort(-proba[:, j])[:per_situation]:
            picks.append((s, records[i], float(proba[i, j])))
    pre = tagger.net.backbone.preprocessing
    images = torch.cat([b.images for b in make_loader([r.path for _, r, _ in picks], pre, 16)])
    maps = tagger.cam(images)  # (N, S, h, w)
    store.arrays.put(
        {"kind": "cam", "tagger": tagger.fingerprint, "frames": [r.name for _, r, _ in picks]},
        maps.astype(np.float16),
        kind="cam",
    )
    fig, axes = plt.subplots(
        len(situations), per_situation, figsize=(3.2 * per_situation, 2.2 * len(situations)),
        squeeze=False,
    )  # fmt: skip
    for k, (s, rec, p) in enumerate(picks):
        ax = axes[k // per_situation][k % per_situation]
        with Image.open(rec.path) as im:
            rgb = np.asarray(im.convert("RGB"))
        heat = maps[k, tagger.situations.index(s)]
        heat = torch.sigmoid(torch.from_numpy(heat))[None, None]
        heat = torch.nn.functional.interpolate(heat, size=rgb.shape[:2], mode="bilinear")
        ax.imshow(rgb)
        ax.imshow(heat[0, 0].numpy(), cmap="inferno", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(f"{s}: p={p:.2f}\n{rec.name}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"Class activation maps of tagger {tagger.fingerprint}", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
