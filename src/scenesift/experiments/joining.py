"""Join another experiment's random-subset trainings to this one's.

The verdict's "random needs M labels" reads the variance study's median curve where it
crosses 95% of full data. When the study's subset sizes straddle that crossing far apart,
the figure is rough, and the way to pin it down is more sizes between them. Those often
come later, from a second experiment (re-running the first with more fractions would
redo nothing but still needs its whole config); ``join_variance`` lets the report read
both, and refuses what would not be comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scenesift.errors import StoreError
from scenesift.experiments.results import ALL, read_results
from scenesift.experiments.stats import EVAL_FRAMES, EVAL_OBJECTS, POOL_FRAMES, POOL_OBJECTS
from scenesift.experiments.studies import variance_learner

_TRUTH = (EVAL_OBJECTS, EVAL_FRAMES, POOL_OBJECTS, POOL_FRAMES)


def join_variance(root: Path, results: pd.DataFrame, others: Sequence[str]) -> pd.DataFrame:
    """``results`` (one experiment's table) with the variance runs of the experiments
    ``others`` beside it in ``root`` (a project's ``experiments`` folder, or a copy of
    several experiments' folders, as ``benchmarks/results`` keeps them). Each must have
    trained the same detector on the same pool and evaluated on the same split; a
    ``StoreError`` names what differs. A subset size both ran is refused: the same seed
    and size draw the same subset, so pooling them would count one training twice."""
    if not others:
        return results
    if results.empty:
        raise StoreError("no results to join variance runs to")
    root = Path(root)
    name = str(results["experiment"].iloc[0])
    check_settings(root, name, others)
    joined = results
    for other in others:
        extra = read_results(root / other / "results")
        extra = extra.loc[extra["study"] == "variance"]
        if extra.empty:
            raise StoreError(f"experiment {other!r} has no finished variance runs to join")
        _same_truth(joined, extra, name, other)
        have = joined.loc[joined["study"] == "variance", "n_labelled"]
        shared = sorted(set(have[have > 0]) & set(extra.loc[extra["n_labelled"] > 0, "n_labelled"]))
        if shared:
            raise StoreError(
                f"experiment {other!r} has random subsets of {', '.join(map(str, shared))} "
                f"frames, which {name!r} (or an experiment joined before it) has too: the same "
                "seed and size draw the same subset, so join only other sizes"
            )
        joined = pd.concat([joined, extra], ignore_index=True)
    return joined


def check_settings(root: Path, name: str, others: Sequence[str]) -> None:
    """Refuse, before anything is read, an experiment in ``others`` that does not exist or
    trained its random subsets with another detector or on other splits than ``name``.
    ``experiment show`` calls it while ``name`` is still running, so a mistyped or
    incomparable experiment is named then, not only once results exist."""
    ours = _settings(root, name)
    for other in others:
        theirs = _settings(root, other)
        for field in ours.keys() | theirs.keys():
            if ours.get(field) != theirs.get(field):
                raise StoreError(
                    f"experiment {other!r} trained its random subsets with other settings than "
                    f"{name!r} ({field}: {theirs.get(field)!r} there, {ours.get(field)!r} "
                    "here): their mAPs do not compare"
                )


def _settings(root: Path, name: str) -> dict[str, Any]:
    """What a variance run's mAP depends on besides its subset: the learner and splits."""
    from scenesift.experiments.runners import stored_experiment

    stored = stored_experiment(root, name)
    return {
        "learner": variance_learner(stored.get("learner", {})),
        "pool_split": stored.get("pool_split"),
        "eval_split": stored.get("eval_split"),
    }


def _same_truth(ours: pd.DataFrame, theirs: pd.DataFrame, name: str, other: str) -> None:
    """Same settings but another pool or test split (frames imported in between) is still
    not comparable: the runs' truth counts (objects per class, frames per situation, of
    the pool and the evaluation split) must agree."""

    def counts(df: pd.DataFrame) -> pd.Series:
        rows = df.loc[df["metric"].isin(_TRUTH)]
        return rows.groupby(["metric", "class", "situation"], observed=True)["value"].first()

    a, b = counts(ours), counts(theirs)
    if a.empty or b.empty:  # results written before the truth rows existed
        return
    differs = a.index.symmetric_difference(b.index).tolist() or [k for k in a.index if a[k] != b[k]]
    if differs:
        metric, cls, situation = differs[0]
        what = cls if cls != ALL else situation
        raise StoreError(
            f"experiment {other!r} counted other truth than {name!r} ({metric} {what}: "
            f"{b.get(differs[0], 'none')} there, {a.get(differs[0], 'none')} here): its "
            "random subsets came from another pool or were evaluated on another split"
        )
