"""The runs of an experiment, and what one run does.

A run is a pure function of (project, experiment config, run spec): ``execute`` opens the
project itself, so the same run gives the same rows in this process, in a local process
pool or on a Ray worker. Runs of the strategy study are simulated campaigns stored in the
project (named ``<experiment>:<strategy>:s<seed>``): a run interrupted mid-campaign
continues from its last finished round.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scenesift.experiments.config import ExperimentConfig
from scenesift.experiments.results import ALL
from scenesift.experiments.stats import EVAL_FRAMES, EVAL_OBJECTS, POOL_FRAMES, POOL_OBJECTS
from scenesift.files import fit_name
from scenesift.records import FrameRecord, object_counts, situation_counts
from scenesift.taxonomy import Taxonomy


@dataclass(frozen=True)
class RunSpec:
    run: str  # unique id within the experiment
    study: str
    strategy: str
    seed: int
    fraction: float = float("nan")
    spec: str = ""  # JSON strategy spec (strategy study)

    @property
    def label(self) -> str:
        return self.run


def strategy_label(spec: dict[str, Any]) -> str:
    """A short, stable name for a strategy spec: its name, plus its parameters if any; a
    nested spec (``cluster_uncertainty``'s ``uncertainty``, ``fusion``'s parts) reads the
    same way, so tables and file names never show a Python dict."""
    params = {k: v for k, v in spec.items() if k != "name"}
    if not params:
        return str(spec["name"])
    return f"{spec['name']}(" + ",".join(f"{k}={_param(params[k])}" for k in sorted(params)) + ")"


def _param(value: Any) -> str:
    if isinstance(value, dict) and "name" in value:
        return strategy_label(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_param(v) for v in value) + "]"
    return str(value)


def plan(config: ExperimentConfig) -> list[RunSpec]:
    runs: list[RunSpec] = []
    if "variance" in config.studies:
        for f in config.variance.fractions:
            for r in range(config.variance.repeats):
                runs.append(RunSpec(f"variance/f{f:.2f}/r{r:02d}", "variance", "random", r, f))
    for study in ("strategies", "tagger"):
        if study not in config.studies:
            continue
        table = getattr(config, study)
        for spec in table.specs():
            label = strategy_label(spec)
            for seed in range(table.seeds):
                runs.append(RunSpec(f"{study}/{label}/s{seed}", study, label, seed,
                                    spec=json.dumps(spec, sort_keys=True)))  # fmt: skip
    return runs


def execute(project: Path, config: dict[str, Any], run: RunSpec) -> list[dict[str, Any]]:
    """Run one training (variance) or one campaign (strategies); return its tidy rows."""
    from scenesift.store import Store

    cfg = ExperimentConfig.from_dict(config)
    with Store.open(Path(project)) as store:
        if run.study == "variance":
            return _variance_run(store, cfg, run)
        return _strategy_run(store, cfg, run)


def _base(cfg: ExperimentConfig, run: RunSpec) -> dict[str, Any]:
    return {"experiment": cfg.name, "study": run.study, "run": run.run,
            "strategy": run.strategy, "seed": run.seed, "fraction": run.fraction}  # fmt: skip


def metric_rows(base: dict[str, Any], metrics: dict[str, Any], n_frames: int) -> list[dict]:
    """A round's metrics dict (``DetectorLearner.evaluate`` or ``TaggerLearner.evaluate``)
    as tidy rows; a tagger's per-situation ROC-AUC becomes ``metric == "auc"`` rows."""
    rows = []
    common = {**base, "n_labelled": metrics["n_labelled"], "seconds": metrics.get("seconds")}
    # a self-trained round's teacher (``DetectorLearner.evaluate``) as ``teacher_*`` rows
    for prefix, part in (("", metrics), ("teacher_", metrics.get("teacher", {}))):
        for metric in ("map50", "map", "auc_mean", "auc_min30"):
            if metric in part:
                rows.append({**common, "metric": prefix + metric, "value": part[metric],
                             "n_frames": n_frames})  # fmt: skip
        for cls, value in part.get("ap50_per_class", {}).items():
            rows.append({**common, "metric": prefix + "ap50", "class": cls, "value": value,
                         "n_frames": n_frames})  # fmt: skip
    for situation, entry in metrics.get("auc_per_situation", {}).items():
        rows.append({**common, "metric": "auc", "situation": situation,
                     "value": entry["value"], "n_frames": n_frames})  # fmt: skip
    for situation, entry in metrics.get("map50_per_situation", {}).items():
        rows.append({**common, "metric": "map50", "situation": situation,
                     "value": entry["value"], "n_frames": entry["n_frames"]})  # fmt: skip
    for row in rows:
        row.setdefault("class", ALL)
        row.setdefault("situation", ALL)
        if row["value"] is None:
            row["value"] = float("nan")
    return rows


def truth_count_rows(
    base: dict[str, Any],
    evaluation: Sequence[FrameRecord],
    pool: Sequence[FrameRecord],
    taxonomy: Taxonomy,
) -> list[dict[str, Any]]:
    """The truth counted into result rows (round 0): objects per class and positive frames
    per situation, of the evaluation split (``EVAL_*``: so every table and figure can flag
    what is measured on too few, ``stats.evaluation_power``, without opening the project)
    and of the pool (``POOL_*``: how rare each slice is where selection looks)."""
    return _count_rows(base, evaluation, taxonomy, EVAL_OBJECTS, EVAL_FRAMES) + _count_rows(
        base, pool, taxonomy, POOL_OBJECTS, POOL_FRAMES
    )


def _count_rows(
    base: dict[str, Any], frames: Sequence[FrameRecord], taxonomy: Taxonomy, by_class: str,
    by_situation: str,
) -> list[dict[str, Any]]:  # fmt: skip
    # ignore regions are areas nobody labelled, not objects: they give a class no power
    objects = object_counts(frames, taxonomy.classes)
    positives = situation_counts(frames, taxonomy.names)
    common = {**base, "round": 0, "n_labelled": 0, "n_frames": len(frames)}
    return [{**common, "metric": by_class, "class": c, "value": k}
            for c, k in objects.items()] + [
        {**common, "metric": by_situation, "situation": s, "value": k}
        for s, k in positives.items()
    ]  # fmt: skip


def variance_learner(learner: dict[str, Any]) -> dict[str, Any]:
    """The learner a variance run trains: the experiment's, as one detector evaluated on
    the whole test split, with no pool outputs to compute (no campaign reads them)."""
    return {**learner, "slices": False, "ensemble": 1, "situations": False, "tta": "none"}


def _variance_run(store, cfg: ExperimentConfig, run: RunSpec) -> list[dict[str, Any]]:
    from scenesift.al.learners import DetectorLearner

    started = time.perf_counter()
    learner = DetectorLearner(**variance_learner(cfg.learner))
    pool = [r for r in store.records(split=cfg.pool_split) if r.boxes is not None]
    k = max(1, round(run.fraction * len(pool)))
    # one stream per (fraction, repeat): the subsets of different sizes are independent
    rng = np.random.default_rng([run.seed, round(run.fraction * 1000)])
    chosen = set(rng.choice(len(pool), size=k, replace=False).tolist())
    subset = [pool[i] for i in sorted(chosen)]
    # the rest of the pool, unlabelled: what a self-training learner (pseudo_labels) also
    # trains on, as in a campaign at the same budget
    rest = [r for i, r in enumerate(pool) if i not in chosen]
    val = [r for r in store.records(split="val") if r.boxes is not None]
    evaluation = [r for r in store.records(split=cfg.eval_split) if r.boxes is not None]
    learner.config = _seeded(learner.config, run.seed)
    [model] = learner.fit(store, subset, val, rest)
    metrics = learner.evaluate(model, store, evaluation)
    metrics.update(n_labelled=k, seconds=round(time.perf_counter() - started, 2))
    base = _base(cfg, run)
    return [
        {**row, "round": 0} for row in metric_rows(base, metrics, len(evaluation))
    ] + truth_count_rows(base, evaluation, pool, store.taxonomy)


def _seeded(config, seed: int):
    from dataclasses import replace

    return replace(config, seed=seed)


def campaign_name(cfg: ExperimentConfig, run: RunSpec) -> str:
    """``<experiment>:[tagger:]<strategy>:s<seed>``. Detector campaigns keep their
    pre-tagger-study names, so old experiments resume; a strategy label too long for a
    campaign name (a fusion of several parts) is cut with a digest of the whole
    (``fit_name``), keeping the seed readable."""
    from scenesift.al.campaign import NAME_CHARS

    head = f"{cfg.name}:{'tagger:' if run.study == 'tagger' else ''}{run.strategy}"
    tail = f":s{run.seed}"
    return fit_name(head, NAME_CHARS - len(tail)) + tail


def _strategy_run(store, cfg: ExperimentConfig, run: RunSpec) -> list[dict[str, Any]]:
    from scenesift.al.campaign import Campaign, CampaignConfig
    from scenesift.al.learners import learner_for
    from scenesift.al.strategies import make_strategy
    from scenesift.store import StoreError

    tagger = run.study == "tagger"
    study = cfg.tagger if tagger else cfg.strategies
    name = campaign_name(cfg, run)
    spec = json.loads(run.spec)
    learner = {**study.learner, "kind": "tagger"} if tagger else dict(cfg.learner)
    campaign_config = CampaignConfig(
        strategy=spec,
        initial=study.initial,
        batch=study.batch,
        seed=run.seed,  # the same seed gives every strategy the same initial set
        labeler="oracle",
        pool_split=cfg.pool_split,
        eval_split=cfg.eval_split,
        stopping={"max_rounds": study.rounds},
        learner=learner_for(make_strategy(spec), learner),
    )
    try:
        campaign = Campaign.open(store, name)
    except StoreError:
        campaign = Campaign.create(store, name, campaign_config)
    campaign.run()
    has_truth = campaign.learner.has_truth
    evaluation = [r for r in store.records(split=cfg.eval_split) if has_truth(r)]
    n_eval = len(evaluation)
    pool = [r for r in store.records(split=cfg.pool_split) if has_truth(r)]
    rows = truth_count_rows(_base(cfg, run), evaluation, pool, store.taxonomy)
    for rnd in campaign.rounds():
        if rnd.metrics.get(campaign.metric) is None:
            continue  # round 0: the random initial set, nothing trained yet
        base = {**_base(cfg, run), "round": rnd.idx}
        rows += metric_rows(base, rnd.metrics, n_eval)
    return rows
