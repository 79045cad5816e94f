"""Honest statistics on the tidy results table (``experiments.results``): learning curves
with confidence intervals across seeds, area under the learning curve, labels needed to reach
a target, paired tests between strategies, the variance study's spread, learning speed.

Conventions, the same in every function:

- **A seed is the unit of replication.** Intervals are across seeds, never across rounds or
  frames; a campaign's rounds are one curve, not independent samples.
- **Intervals are Student-t intervals** of the mean across seeds (``mean ± t * sd / sqrt(n)``),
  also for labels-to-reach: with the 3-10 seeds an experiment can afford, a percentile
  bootstrap over seeds is too narrow (it cannot see beyond the values drawn), the t interval
  is the honest small-sample choice. One seed gives a NaN interval, not a zero-width one.
- **Undefined values (NaN, e.g. AP of a class without instances) are dropped**, never read
  as 0: they would pull a mean down for a reason that has nothing to do with the model.
- **Many strategies against one baseline are a family of tests**: ``strategy_summary``'s
  ``t_pvalue_holm`` adjusts each paired t p-value for the number of strategies compared
  (Holm), so the best of many strategies is not declared a winner on luck.
- The default rows are ``study == "strategies"``, ``class == "all"`` and
  ``situation == "all"``; pass ``study=None`` to use every study, ``cls``/``situation`` to
  read a per-class or per-situation slice, ``metric`` for another measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from scenesift.experiments.results import ALL

BASELINE = "random"
LEVEL = 0.95
#: Issue 16's floor for evaluation power: a class or situation with fewer test objects or
#: frames than this gives an AP or AUC whose run-to-run noise can hide any strategy's gain;
#: a claim needs at least ``MIN_SEEDS`` seeds.
MIN_EVAL_COUNT = 100
MIN_SEEDS = 8
#: Below this AP@0.5 a class was not learned (a class the pool lacks scores ~0.0005 on
#: chance overlaps): a ratio of two such values measures noise, not selection.
LEARNED = 0.01
#: Result rows that count the evaluation split's truth (written once per run, round 0):
#: objects per class (``class`` set) and positive frames per situation (``situation`` set).
EVAL_OBJECTS = "eval_objects"
EVAL_FRAMES = "eval_frames"
#: The same counts over the pool the campaigns select from: how rare a slice is where
#: selection must find it (an evaluation world oversamples rare contexts, so its counts
#: measure power, not rarity).
POOL_OBJECTS = "pool_objects"
POOL_FRAMES = "pool_frames"


# ------------------------------------------------------------------------------ selection
def subset(
    df: pd.DataFrame,
    metric: str = "map50",
    cls: str | None = ALL,
    situation: str | None = ALL,
    study: str | None = "strategies",
) -> pd.DataFrame:
    """The rows of one measurement; ``None`` for ``cls``/``situation``/``study`` keeps all."""
    mask = df["metric"] == metric
    if cls is not None:
        mask &= df["class"] == cls
    if situation is not None:
        mask &= df["situation"] == situation
    if study is not None:
        mask &= df["study"] == study
    out = df.loc[mask.fillna(False).astype(bool)]
    return out.loc[out["value"].notna()]


def t_interval(values: Sequence[float] | np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Student-t interval of the mean (NaN values dropped); NaNs when fewer than 2 values."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return (float("nan"), float("nan"))
    mean = float(x.mean())
    sem = float(x.std(ddof=1)) / np.sqrt(x.size)
    if sem == 0.0:
        return (mean, mean)
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1)) * sem
    return (mean - half, mean + half)


def _describe(values: pd.Series, level: float = LEVEL) -> dict[str, float]:
    x = values.dropna().to_numpy(dtype=float)
    low, high = t_interval(x, level)
    return {
        "mean": float(x.mean()) if x.size else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "std": float(x.std(ddof=1)) if x.size > 1 else float("nan"),
        "n_seeds": int(x.size),
    }


def _runs(rows: pd.DataFrame, x: str = "n_labelled") -> pd.DataFrame:
    """One value per (strategy, seed, x): duplicates (same run evaluated twice) averaged."""
    agg = {"value": ("value", "mean")}
    if x != "n_labelled":
        agg["n_labelled"] = ("n_labelled", "mean")
    return rows.groupby(["strategy", "seed", x], observed=True).agg(**agg).reset_index()


# ------------------------------------------------------------------------------ curves
def learning_curves(
    df: pd.DataFrame,
    metric: str = "map50",
    cls: str = ALL,
    situation: str = ALL,
    study: str | None = "strategies",
    x: str = "n_labelled",
    level: float = LEVEL,
) -> pd.DataFrame:
    """Per strategy and ``x`` (``n_labelled`` or ``round``): mean across seeds, t interval,
    std and the number of seeds with a defined value.

    Group by ``round`` when seeds do not share the exact labelled counts (e.g. a pool that
    ran out); the mean ``n_labelled`` of the round is then a column too."""
    if x not in ("n_labelled", "round"):
        raise ValueError(f"x must be 'n_labelled' or 'round', got {x!r}")
    runs = _runs(subset(df, metric, cls, situation, study), x)
    cols = ["strategy", x, "mean", "ci_low", "ci_high", "std", "n_seeds"]
    if x == "round":
        cols.append("n_labelled")
    rows = []
    for (strategy, xv), g in runs.groupby(["strategy", x], observed=True, sort=True):
        row = {"strategy": str(strategy), x: xv, **_describe(g["value"], level)}
        if x == "round":
            row["n_labelled"] = float(g["n_labelled"].mean())
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


@dataclass(frozen=True)
class SeedStat:
    """A quantity per (strategy, seed) and its summary per strategy (mean, t interval)."""

    per_seed: pd.DataFrame
    by_strategy: pd.DataFrame


def _summarise(per_seed: pd.DataFrame, column: str, level: float) -> pd.DataFrame:
    rows = [
        {"strategy": str(s), **_describe(g[column], level)}
        for s, g in per_seed.groupby("strategy", observed=True, sort=True)
    ]
    return pd.DataFrame(rows, columns=["strategy", "mean", "ci_low", "ci_high", "std", "n_seeds"])


def _curve_xy(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    g = g.sort_values("n_labelled")
    return g["n_labelled"].to_numpy(float), g["value"].to_numpy(float)


def _curves(runs: pd.DataFrame) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """Each run's learning curve (x: labelled frames, ascending) by (strategy, seed),
    in that order."""
    return {(str(k[0]), int(k[1])): _curve_xy(g)
            for k, g in runs.groupby(["strategy", "seed"], observed=True, sort=True)}  # fmt: skip


def area_under_curve(
    df: pd.DataFrame,
    metric: str = "map50",
    cls: str = ALL,
    situation: str = ALL,
    study: str | None = "strategies",
    x_range: tuple[float, float] | None = None,
    level: float = LEVEL,
) -> SeedStat:
    """Area under each run's learning curve (trapezoid over ``n_labelled``) divided by the
    x range, so it reads as the curve's mean metric over that budget range (AULC).

    All runs are compared over the *same* range (default: the range every run covers, i.e.
    the largest first and the smallest last ``n_labelled``), interpolated linearly at its
    ends; a run that does not cover the range, or has fewer than 2 points, gets NaN."""
    curves = _curves(_runs(subset(df, metric, cls, situation, study)))
    curves = {k: v for k, v in curves.items() if len(v[0]) >= 2}
    if x_range is None and curves:
        x_range = (max(c[0][0] for c in curves.values()), min(c[0][-1] for c in curves.values()))
    rows = []
    for (strategy, seed), (xs, ys) in sorted(curves.items()):
        value = float("nan")
        lo, hi = x_range if x_range is not None else (np.nan, np.nan)
        if hi > lo and xs[0] <= lo and xs[-1] >= hi:
            inner = xs[(xs > lo) & (xs < hi)]
            grid = np.concatenate([[lo], inner, [hi]])
            value = float(np.trapezoid(np.interp(grid, xs, ys), grid) / (hi - lo))
        rows.append(
            {
                "strategy": str(strategy),
                "seed": int(seed),
                "aulc": value,
                "x_min": lo,
                "x_max": hi,
                "n_points": len(xs),
            }
        )
    per_seed = pd.DataFrame(
        rows, columns=["strategy", "seed", "aulc", "x_min", "x_max", "n_points"]
    )
    return SeedStat(per_seed, _summarise(per_seed, "aulc", level))


def first_crossing(xs: np.ndarray, ys: np.ndarray, target: float) -> float:
    """The first x where the piecewise-linear curve reaches ``target`` (NaN: never)."""
    hit = np.flatnonzero(ys >= target)
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(xs[0])  # reached at the first evaluation: nothing earlier to interpolate
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def labels_to_reach(
    df: pd.DataFrame,
    full_value: float,
    share: float = 0.95,
    metric: str = "map50",
    cls: str = ALL,
    situation: str = ALL,
    study: str | None = "strategies",
    level: float = LEVEL,
) -> SeedStat:
    """Labelled frames each run needs to reach ``share * full_value`` (default: 95% of the
    full-data mAP), linearly interpolated between rounds; NaN when never reached.

    ``by_strategy`` has ``n_reached`` beside ``n_seeds``. Its mean and t interval are over
    the seeds that reached the target *only when all did*: a mean over the successful seeds
    alone would be optimistic. The ``median`` stays defined while more than half reached
    (the others count as "more than any budget tried")."""
    target = share * full_value
    curves = _curves(_runs(subset(df, metric, cls, situation, study)))
    rows = []
    for (strategy, seed), (xs, ys) in curves.items():
        n = first_crossing(xs, ys, target)
        rows.append(
            {
                "strategy": strategy,
                "seed": seed,
                "labels": n,
                "reached": bool(np.isfinite(n)),
                "target": target,
                "max_labelled": float(xs[-1]),
            }
        )
    cols = ["strategy", "seed", "labels", "reached", "target", "max_labelled"]
    per_seed = pd.DataFrame(rows, columns=cols)
    return SeedStat(per_seed, _reached_by_strategy(per_seed, level))


def mean_curve_labels_to_reach(
    df: pd.DataFrame,
    full_value: float,
    share: float = 0.95,
    metric: str = "map50",
    study: str | None = "strategies",
) -> pd.DataFrame:
    """Per strategy: where its mean learning curve across seeds first reaches ``share *
    full_value`` (``labels``, NaN: never), over ``n_seeds`` seeds. Where some seeds reach
    the target within the budget and some do not, ``labels_to_reach`` has no mean; the mean
    curve still says where the average run gets there. Only the budgets every seed of the
    strategy was evaluated at count, so a campaign still running does not bend the curve."""
    curves = learning_curves(df, metric, study=study)
    rows = []
    for strategy, g in curves.groupby("strategy", sort=True):
        full = g.loc[g["n_seeds"] == g["n_seeds"].max()].sort_values("n_labelled")
        xs, ys = full["n_labelled"].to_numpy(float), full["mean"].to_numpy(float)
        rows.append({"strategy": str(strategy), "labels": first_crossing(xs, ys,
                     share * full_value), "n_seeds": int(g["n_seeds"].max())})  # fmt: skip
    return pd.DataFrame(rows, columns=["strategy", "labels", "n_seeds"])


def _reached_by_strategy(per_seed: pd.DataFrame, level: float) -> pd.DataFrame:
    """Per strategy, the labels its seeds needed to reach a target (``per_seed.labels``,
    NaN: never): the mean and t interval only when every seed reached it (a mean over the
    seeds that did would be optimistic), ``n_reached``, and the median counting the others
    as "more than any budget tried" (defined while more than half reached)."""
    out = []
    for strategy, g in per_seed.groupby("strategy", observed=True, sort=True):
        n_seeds, n_reached = len(g), int(g["labels"].notna().sum())
        row = {"strategy": str(strategy), **_describe(g["labels"], level)}
        row["n_seeds"], row["n_reached"] = n_seeds, n_reached
        if n_reached < n_seeds:
            row.update(mean=np.nan, ci_low=np.nan, ci_high=np.nan, std=np.nan)
        censored = g["labels"].fillna(np.inf).to_numpy(float)
        median = float(np.median(censored)) if n_seeds else float("nan")
        row["median"] = median if np.isfinite(median) else float("nan")
        out.append(row)
    return pd.DataFrame(
        out,
        columns=["strategy", "mean", "ci_low", "ci_high", "std", "n_seeds", "n_reached", "median"],
    )


def labels_to_match(
    df: pd.DataFrame,
    baseline: str = BASELINE,
    metric: str = "map50",
    study: str | None = "strategies",
    level: float = LEVEL,
) -> SeedStat:
    """The equal-accuracy label count, for when no run reaches the full-data target: per
    strategy and seed, the labelled frames it needed (linearly interpolated between rounds;
    NaN: never) to reach the value its paired ``baseline`` run (same seed, so the same
    initial set) had at the largest budget both ran. ``1 - labels / budget`` is the share
    of labels the strategy saved for that accuracy. ``per_seed`` columns: strategy, seed,
    budget, target, labels; ``by_strategy`` as ``labels_to_reach``'s (mean only when every
    seed got there)."""
    curves = _curves(_runs(subset(df, metric, study=study)))
    rows = []
    for (strategy, seed), (xs, ys) in curves.items():
        if strategy == baseline or (baseline, seed) not in curves:
            continue
        bx, by = curves[(baseline, seed)]
        budget = float(min(xs[-1], bx[-1]))
        target = float(np.interp(budget, bx, by))
        rows.append({"strategy": strategy, "seed": seed, "budget": budget, "target": target,
                     "labels": first_crossing(xs, ys, target)})  # fmt: skip
    per_seed = pd.DataFrame(rows, columns=["strategy", "seed", "budget", "target", "labels"])
    return SeedStat(per_seed, _reached_by_strategy(per_seed, level))


# ------------------------------------------------------------------------------ tests
@dataclass(frozen=True)
class PairedTest:
    """``a - b`` across seeds run with both strategies (paired by seed: same initial set)."""

    a: str
    b: str
    quantity: str
    n_pairs: int
    mean_diff: float
    ci_low: float
    ci_high: float
    t_pvalue: float
    wilcoxon_pvalue: float
    message: str
    per_round: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        return self.n_pairs >= 2


def _paired(d: np.ndarray, level: float) -> tuple[float, float, float, float, float]:
    """mean, CI, paired t p-value, Wilcoxon p-value of differences ``d`` (len >= 2)."""
    from scipy import stats

    mean = float(d.mean())
    low, high = t_interval(d, level)
    if np.allclose(d, 0.0):
        return mean, low, high, 1.0, 1.0  # identical: no evidence of any difference
    # a constant non-zero difference has zero variance: the t statistic is infinite
    t_p = 0.0 if np.allclose(d, d[0]) else float(stats.ttest_1samp(d, 0.0).pvalue)
    try:
        w_p = float(stats.wilcoxon(d).pvalue)
    except ValueError:
        w_p = float("nan")
    return mean, low, high, t_p, w_p


def paired_test(
    df: pd.DataFrame,
    a: str,
    b: str = BASELINE,
    metric: str = "map50",
    cls: str = ALL,
    situation: str = ALL,
    study: str | None = "strategies",
    per_round: bool = False,
    x_range: tuple[float, float] | None = None,
    level: float = LEVEL,
) -> PairedTest:
    """Is strategy ``a`` better than ``b``? AULC of ``a`` minus AULC of ``b`` per seed
    (both over the same labelled range), with a t interval, a paired t-test and a Wilcoxon
    signed-rank test (scipy; two-sided). With 5 seeds the Wilcoxon p-value cannot go below
    0.0625: say "8+ seeds" when a rank test must be able to convince.

    ``per_round=True`` adds the same comparison at each round (``per_round`` table).
    ``x_range``: the AULC range (default: the range both strategies' runs cover)."""
    rows = subset(df, metric, cls, situation, study)
    rows = rows.loc[rows["strategy"].isin([a, b])]
    auc = area_under_curve(rows, metric, cls, situation, None, x_range, level).per_seed
    wide = auc.pivot_table(index="seed", columns="strategy", values="aulc", observed=True)
    pairs = wide.dropna() if {a, b} <= set(wide.columns) else wide.iloc[0:0]
    n = len(pairs)
    table = None
    if per_round:
        table = _per_round(rows, a, b, level)
    if n < 2:
        msg = (
            f"only {n} seed(s) ran both {a!r} and {b!r}: a paired test needs at least 2; "
            f"run more seeds of both"
        )
        nan = float("nan")
        return PairedTest(a, b, "aulc", n, nan, nan, nan, nan, nan, msg, table)
    d = (pairs[a] - pairs[b]).to_numpy(float)
    mean, low, high, t_p, w_p = _paired(d, level)
    msg = f"{a} - {b}: {mean:+.4f} AULC ({level:.0%} CI {low:+.4f} to {high:+.4f}, {n} seeds)"
    return PairedTest(a, b, "aulc", n, mean, low, high, t_p, w_p, msg, table)


def _per_round(rows: pd.DataFrame, a: str, b: str, level: float) -> pd.DataFrame:
    runs = _runs(rows, "round")
    out = []
    for rnd, g in runs.groupby("round", observed=True, sort=True):
        wide = g.pivot_table(index="seed", columns="strategy", values="value", observed=True)
        if not {a, b} <= set(wide.columns):
            continue
        pairs = wide[[a, b]].dropna()
        row = {
            "round": int(rnd),
            "n_labelled": float(g["n_labelled"].mean()),
            "n_pairs": len(pairs),
        }
        if len(pairs) >= 2:
            mean, low, high, t_p, w_p = _paired((pairs[a] - pairs[b]).to_numpy(float), level)
        else:
            mean = low = high = t_p = w_p = float("nan")
        row.update(mean_diff=mean, ci_low=low, ci_high=high, t_pvalue=t_p, wilcoxon_pvalue=w_p)
        out.append(row)
    cols = [
        "round",
        "n_labelled",
        "n_pairs",
        "mean_diff",
        "ci_low",
        "ci_high",
        "t_pvalue",
        "wilcoxon_pvalue",
    ]
    return pd.DataFrame(out, columns=cols)


# ------------------------------------------------------------------------------ studies
def variance_summary(df: pd.DataFrame, metric: str = "map50") -> pd.DataFrame:
    """The variance study (random subsets, ``study == "variance"``) per training fraction:
    runs, min, max, median, mean, std, max - min, and the mean labelled frames. Seed 002's
    "20% of the data gives 45% to 69%" is the min and max of one row."""
    rows = subset(df, metric, ALL, ALL, "variance")
    out = []
    for fraction, g in rows.groupby("fraction", observed=True, sort=True):
        v = g["value"].to_numpy(float)
        out.append(
            {
                "fraction": float(fraction),
                "n_runs": int(v.size),
                "n_labelled": float(g["n_labelled"].mean()),
                "min": float(v.min()),
                "max": float(v.max()),
                "median": float(np.median(v)),
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if v.size > 1 else np.nan,
                "spread": float(v.max() - v.min()),
            }
        )
    cols = ["fraction", "n_runs", "n_labelled", "min", "max", "median", "mean", "std", "spread"]
    return pd.DataFrame(out, columns=cols)


def variance_labels_to_reach(
    df: pd.DataFrame, full_value: float, share: float = 0.95, metric: str = "map50"
) -> tuple[float, float, float]:
    """Labelled frames random subsets need to reach ``share * full_value``: where the
    variance study's median per subset size first reaches it, linearly interpolated between
    sizes (NaN: no size does), with the two sizes it lies between (NaN before the first).
    A strategy study's random campaigns stop at their budget; the variance runs (the same
    training on a random subset) reach past it, so "random needs 1.3x the labels" can be
    measured where random is still short of the target at that budget."""
    summary = variance_summary(df, metric)
    xs, ys = summary["n_labelled"].to_numpy(float), summary["median"].to_numpy(float)
    n = first_crossing(xs, ys, share * full_value)
    if not np.isfinite(n):
        return n, float(xs[-1]) if xs.size else np.nan, np.nan
    i = int(np.searchsorted(xs, n))
    return n, float(xs[i - 1]) if i > 0 else np.nan, float(xs[i])


def full_data_value(df: pd.DataFrame, metric: str = "map50", cls: str = ALL) -> float | None:
    """The median ``metric`` (of class ``cls``: ``ap50`` per class) of the variance study's
    100% runs, if it has any (what labels-to-reach targets when no full-data value is
    given). The median, because a few runs can land far from the rest (on the demo world, 3
    of 30 full-data trainings score twice the others' mAP@0.5 by finding the test split's
    single golf cart): they must not move the target."""
    rows = subset(df, metric, cls, ALL, "variance")
    full = rows.loc[np.isclose(rows["fraction"].astype(float), 1.0)]["value"].dropna()
    return float(full.median()) if len(full) else None


def learning_speed(
    df: pd.DataFrame,
    cls: str | Sequence[str] | None = None,
    metric: str = "ap50",
    study: str | None = "strategies",
    per: float = 1000.0,
) -> pd.DataFrame:
    """Seed 002's Figure 5: how fast each class's AP@0.5 grows with labels. Per strategy and
    class: the mean curve across seeds, and its derivative (``np.gradient`` over
    ``n_labelled``, second-order in the interior) per ``per`` labelled frames.

    ``cls=None``: every class except ``all``. A curve with one point has NaN slope."""
    rows = subset(df, metric, None, ALL, study)
    rows = rows.loc[rows["class"] != ALL]
    if cls is not None:
        wanted = [cls] if isinstance(cls, str) else list(cls)
        rows = rows.loc[rows["class"].isin(wanted)]
    per_seed = (
        rows.groupby(["strategy", "class", "seed", "n_labelled"], observed=True)["value"]
        .mean()
        .reset_index()
    )
    mean = (
        per_seed.groupby(["strategy", "class", "n_labelled"], observed=True)
        .agg(value=("value", "mean"), n_seeds=("value", "size"))
        .reset_index()
    )
    out = []
    for (strategy, c), g in mean.groupby(["strategy", "class"], observed=True, sort=True):
        g = g.sort_values("n_labelled")
        xs, ys = g["n_labelled"].to_numpy(float), g["value"].to_numpy(float)
        slope = np.gradient(ys, xs) * per if len(xs) >= 2 else np.full(len(xs), np.nan)
        for xv, yv, sv, ns in zip(xs, ys, slope, g["n_seeds"], strict=True):
            out.append(
                {
                    "strategy": str(strategy),
                    "class": str(c),
                    "n_labelled": xv,
                    "value": yv,
                    "slope": float(sv),
                    "n_seeds": int(ns),
                }
            )
    return pd.DataFrame(
        out, columns=["strategy", "class", "n_labelled", "value", "slope", "n_seeds"]
    )


# ------------------------------------------------------------------------------ power
def evaluation_power(
    df: pd.DataFrame, minimum: int = MIN_EVAL_COUNT, min_seeds: int = MIN_SEEDS
) -> pd.DataFrame:
    """Per class (test objects) and situation (positive test frames), and per study (seeds):
    the count and whether it reaches ``minimum`` (``min_seeds`` for seeds), so a table can
    flag the rows whose AP, AUC or comparison is too noisy to support a claim.

    Counts are the smallest any run saw (runs of one experiment share the split, so they
    agree unless the project changed between runs). Results written before the counts were
    recorded give only the seed rows."""
    out = []
    for metric, kind, column, unit in (
        (EVAL_OBJECTS, "class", "class", "test objects"),
        (EVAL_FRAMES, "situation", "situation", "positive test frames"),
    ):
        for name, n in _truth_counts(df, metric, column).items():
            out.append({"kind": kind, "name": name, "unit": unit, "count": n,
                        "minimum": minimum, "enough": n >= minimum})  # fmt: skip
    for study in ("strategies", "tagger"):
        seeds = df.loc[(df["study"] == study) & (df["round"] > 0)]
        if seeds.empty:
            continue
        n = int(seeds.groupby("strategy", observed=True)["seed"].nunique().min())
        out.append({"kind": "seeds", "name": study, "unit": "seeds per strategy", "count": n,
                    "minimum": min_seeds, "enough": n >= min_seeds})  # fmt: skip
    cols = ["kind", "name", "unit", "count", "minimum", "enough"]
    return pd.DataFrame(out, columns=cols)


def pool_counts(df: pd.DataFrame) -> dict[tuple[str, str], int]:
    """(kind, name) -> objects per class or positive frames per situation in the pool, as
    the runs counted it (empty for results written before pools were counted)."""
    return {(kind, name): n
            for metric, kind in ((POOL_OBJECTS, "class"), (POOL_FRAMES, "situation"))
            for name, n in _truth_counts(df, metric, kind).items()}  # fmt: skip


def _truth_counts(df: pd.DataFrame, metric: str, column: str) -> dict[str, int]:
    """Name -> the smallest count any run recorded for ``metric`` (runs of one experiment
    share their splits, so they agree unless the project changed between runs)."""
    rows = df.loc[(df["metric"] == metric) & (df[column] != ALL)]
    return {str(name): int(g["value"].min())
            for name, g in rows.groupby(column, observed=True, sort=False)}  # fmt: skip


def slice_gains(
    df: pd.DataFrame,
    strategy: str,
    baseline: str = BASELINE,
    minimum: int = MIN_EVAL_COUNT,
) -> pd.DataFrame:
    """Per class (AP@0.5) and situation (mAP@0.5 on its frames) at each budget: the mean
    over the seeds that ran both of ``strategy``'s value and ``baseline``'s, and their
    ratio, rarest slice first (issue 16: a strategy should lift the slices random rarely
    picks). ``count`` is the slice's test objects or positive test frames, ``pool_count``
    the pool's (-1 in results written before pools were counted); ``enough``
    whether it reaches ``minimum``; ``learned`` whether either mean reaches ``LEARNED``.
    The ratio is NaN where the baseline's mean is 0."""
    power = evaluation_power(df, minimum).set_index(["kind", "name"])
    pool = pool_counts(df)
    out = []
    for kind, metric, column in (("class", "ap50", "class"), ("situation", "map50", "situation")):
        rows = df.loc[(df["metric"] == metric) & (df["study"] == "strategies")]
        rows = rows.loc[(rows[column] != ALL) & rows["strategy"].isin([strategy, baseline])]
        if kind == "situation":
            rows = rows.loc[rows["class"] == ALL]
        rows = rows.loc[rows["value"].notna() & (rows["round"] > 0)]
        for (name, rnd), g in rows.groupby([column, "round"], observed=True, sort=True):
            wide = g.pivot_table(index="seed", columns="strategy", values="value", observed=True)
            if not {strategy, baseline} <= set(wide.columns):
                continue
            pairs = wide[[strategy, baseline]].dropna()
            if pairs.empty:
                continue
            a, b = float(pairs[strategy].mean()), float(pairs[baseline].mean())
            key = (kind, str(name))
            count = int(power.loc[key, "count"]) if key in power.index else -1
            out.append({"kind": kind, "name": str(name), "count": count,
                        "pool_count": pool.get(key, -1),
                        "enough": count >= minimum, "round": int(rnd),
                        "n_labelled": float(g["n_labelled"].mean()), "n_pairs": len(pairs),
                        "strategy_mean": a, "baseline_mean": b,
                        "learned": max(a, b) >= LEARNED,
                        "ratio": a / b if b > 0 else float("nan")})  # fmt: skip
    cols = ["kind", "name", "count", "pool_count", "enough", "round", "n_labelled", "n_pairs",
            "strategy_mean", "baseline_mean", "learned", "ratio"]  # fmt: skip
    table = pd.DataFrame(out, columns=cols)
    return table.sort_values(["count", "name", "round"], kind="stable", ignore_index=True)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN stays NaN and does not
    count): the i-th smallest is multiplied by (m - i), running maximum, capped at 1.
    Written here because scipy only offers false-discovery-rate control
    (``false_discovery_control``) and statsmodels' ``multipletests`` would be a dependency
    for these six lines; ``tests/test_experiment_stats.py`` checks it against hand-computed
    cases."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


# ------------------------------------------------------------------------------ summary
def strategy_summary(
    df: pd.DataFrame,
    full_value: float | None = None,
    share: float = 0.95,
    baseline: str = BASELINE,
    metric: str = "map50",
    level: float = LEVEL,
) -> pd.DataFrame:
    """The headline table, one row per strategy: seeds, AULC (mean, interval), labels to
    reach ``share`` of ``full_value`` (when given), and the paired test against
    ``baseline`` (``t_pvalue_holm``: adjusted for the ``n_compared`` strategies tested).
    ``full_value=None`` falls back to the variance study's 100% runs."""
    if full_value is None:
        full_value = full_data_value(df, metric)
    aulc = area_under_curve(df, metric, level=level)
    auc = aulc.by_strategy.set_index("strategy")
    x_range = None
    if len(aulc.per_seed):
        x_range = (float(aulc.per_seed["x_min"].iloc[0]), float(aulc.per_seed["x_max"].iloc[0]))
    reach = (
        labels_to_reach(df, full_value, share, metric, level=level).by_strategy.set_index(
            "strategy"
        )
        if full_value is not None
        else None
    )
    strategies = list(auc.index)
    strategies.sort(key=lambda s: (s != baseline, s))
    rows = []
    for s in strategies:
        a = auc.loc[s]
        row = {
            "strategy": s,
            "n_seeds": int(a["n_seeds"]),
            "aulc": a["mean"],
            "aulc_low": a["ci_low"],
            "aulc_high": a["ci_high"],
        }
        if reach is not None and s in reach.index:
            r = reach.loc[s]
            row.update(
                labels=r["mean"],
                labels_low=r["ci_low"],
                labels_high=r["ci_high"],
                labels_median=r["median"],
                n_reached=int(r["n_reached"]),
                target=share * full_value,
            )
        if s != baseline and baseline in strategies:
            t = paired_test(df, s, baseline, metric, x_range=x_range, level=level)
            row.update(
                diff=t.mean_diff,
                diff_low=t.ci_low,
                diff_high=t.ci_high,
                n_pairs=t.n_pairs,
                t_pvalue=t.t_pvalue,
                wilcoxon_pvalue=t.wilcoxon_pvalue,
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    p_values = table["t_pvalue"] if "t_pvalue" in table else pd.Series(np.nan, table.index)
    table["t_pvalue_holm"] = holm(p_values.to_numpy(float))
    table["n_compared"] = int(np.isfinite(p_values.to_numpy(float)).sum())
    cols = [
        "strategy",
        "n_seeds",
        "aulc",
        "aulc_low",
        "aulc_high",
        "labels",
        "labels_low",
        "labels_high",
        "labels_median",
        "n_reached",
        "target",
        "diff",
        "diff_low",
        "diff_high",
        "n_pairs",
        "t_pvalue",
        "t_pvalue_holm",
        "n_compared",
        "wilcoxon_pvalue",
    ]
    return table.reindex(columns=cols)
