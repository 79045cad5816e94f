"""Seed 002's figures from the tidy results table, as PNG files.

Each function takes the table and an output path and returns the path. When the table has
none of the rows a figure needs, it raises ``ValueError`` saying which rows and which study
makes them (a report shows that sentence instead of an empty plot; :func:`has_rows` asks
first). matplotlib is imported inside the functions, on the Agg canvas without pyplot, so
importing this module is cheap and plotting is safe from threads.

Colours are stable across figures: the ``random`` baseline is always grey and dashed, the
other strategies take the tab10 colours in name order; classes likewise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from scenesift.experiments import stats
from scenesift.experiments.results import ALL

DPI = 110
BASELINE = stats.BASELINE
FIGURES = ("variance", "learning_curves", "class_curves", "learning_speed", "situations", "tagger")


# ------------------------------------------------------------------------------ rows
def _variance_rows(df: pd.DataFrame, metric: str = "map50") -> pd.DataFrame:
    return stats.subset(df, metric, ALL, ALL, "variance")


def _class_rows(df: pd.DataFrame, metric: str = "ap50") -> pd.DataFrame:
    rows = stats.subset(df, metric, None, ALL, "strategies")
    return rows.loc[rows["class"] != ALL]


def situation_metric(df: pd.DataFrame) -> str:
    """The metric of the per-situation rows: ``map50`` (mAP@0.5 over the classes in the
    slice, what the campaign runner records) where present, else ``ap50``."""
    sliced = df.loc[(df["situation"] != ALL) & (df["study"] == "strategies")]
    return "map50" if (sliced["metric"] == "map50").any() else "ap50"


def _situation_rows(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    rows = stats.subset(df, metric or situation_metric(df), ALL, None, "strategies")
    return rows.loc[rows["situation"] != ALL]


def _tagger_rows(df: pd.DataFrame) -> pd.DataFrame:
    rows = stats.subset(df, "auc", ALL, None, "tagger")
    return rows.loc[rows["situation"] != ALL]


def has_rows(df: pd.DataFrame | None, figure: str) -> bool:
    """Whether ``df`` has the rows ``figure`` (one of ``FIGURES``) needs."""
    if df is None or df.empty:
        return False
    rows = {
        "variance": lambda: _variance_rows(df),
        "learning_curves": lambda: stats.subset(df, "map50"),
        "class_curves": lambda: _class_rows(df),
        "learning_speed": lambda: _class_rows(df),
        "situations": lambda: _situation_rows(df),
        "tagger": lambda: _tagger_rows(df),
    }
    if figure not in rows:
        raise ValueError(f"unknown figure {figure!r}; figures: {', '.join(FIGURES)}")
    return len(rows[figure]()) > 0


def _require(rows: pd.DataFrame, what: str, how: str) -> None:
    if rows.empty:
        raise ValueError(f"the results table has no {what} rows; {how}")


# ------------------------------------------------------------------------------ style
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def strategy_styles(strategies: Sequence[str]) -> dict[str, dict]:
    """Line style per strategy: the baseline grey and dashed, others tab10 by name."""
    from matplotlib import colormaps

    tab = colormaps["tab10"].colors
    others = sorted(s for s in set(strategies) if s != BASELINE)
    out = {s: {"color": tab[i % 10], "ls": "-"} for i, s in enumerate(others)}
    if BASELINE in strategies:
        out[BASELINE] = {"color": "0.35", "ls": "--"}
    return out


def _ordered(strategies: Sequence[str]) -> list[str]:
    """Baseline first (drawn under the others), then by name."""
    return sorted(set(strategies), key=lambda s: (s != BASELINE, s))


def wrapped(label: str, width: int = 40) -> str:
    """A strategy label on lines of at most ``width`` characters where it can break: after
    a comma or an opening bracket. A fusion's label names all its parts (~100 characters)
    and would otherwise widen a legend or a panel title past the figure."""
    lines = [""]
    for piece in re.split(r"(?<=[,(\[])", label):
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append("")
        lines[-1] += piece
    return "\n".join(lines)


def class_colors(classes: Sequence[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    tab = colormaps["tab10"].colors
    return {c: tab[i % 10] for i, c in enumerate(sorted(set(classes)))}


def _thousands(ax, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    target.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=True))


def _grid(n: int, ncols: int, panel: tuple[float, float], extra_h: float = 0.9):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = _figure(panel[0] * ncols + 0.4, panel[1] * nrows + extra_h)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n], axes


def _label_outer(axes_grid, n: int, xlabel: str, ylabel: str) -> None:
    """Axis labels on the left column and on the lowest visible panel of each column."""
    nrows, ncols = axes_grid.shape
    for k in range(n):
        r, c = divmod(k, ncols)
        ax = axes_grid[r, c]
        if c == 0:
            ax.set_ylabel(ylabel, fontsize=9)
        if r == nrows - 1 or (r + 1) * ncols + c >= n:
            ax.set_xlabel(xlabel, fontsize=9)
            ax.tick_params(axis="x", labelbottom=True)


def _band(ax, lc: pd.DataFrame, x: str, style: dict, label: str) -> None:
    ax.plot(lc[x], lc["mean"], marker="o", ms=3, lw=1.8, label=label, **style)
    ok = lc["ci_low"].notna()
    if ok.any():
        ax.fill_between(
            lc.loc[ok, x],
            lc.loc[ok, "ci_low"],
            lc.loc[ok, "ci_high"],
            color=style["color"],
            alpha=0.18,
            lw=0,
        )


def _seeds_note(lc: pd.DataFrame) -> str:
    n = sorted(set(lc["n_seeds"].astype(int)))
    if not n:
        return ""
    seeds = f"{n[0]}" if len(n) == 1 else f"{n[0]}-{n[-1]}"
    ci = "95% t-interval across seeds" if n[-1] > 1 else "one seed: no interval"
    return f"mean of {seeds} seed(s), band: {ci}"


# ------------------------------------------------------------------------------ figures
def plot_variance(df: pd.DataFrame, path: Path | str, metric: str = "map50") -> Path:
    """Figure 2: the distribution of mAP@0.5 over random training subsets of each size,
    min and max marked and annotated ("20% of the data gives 45% to 69%")."""
    rows = _variance_rows(df, metric)
    _require(rows, "variance-study", "run the variance study (random subsets per fraction)")
    summary = stats.variance_summary(df, metric)
    groups = [g["value"].to_numpy(float) for _, g in rows.groupby("fraction", sort=True)]
    pos = np.arange(1, len(groups) + 1)
    fig = _figure(max(6.5, 1.0 * len(groups) + 2.5), 5.0)
    ax = fig.subplots()
    multi = [i for i, g in enumerate(groups) if g.size >= 2]
    if multi:
        parts = ax.violinplot(
            [groups[i] for i in multi],
            positions=pos[multi],
            widths=0.8,
            showextrema=False,
            showmedians=False,
        )
        for body in parts["bodies"]:
            body.set_facecolor("#4c72b0")
            body.set_alpha(0.35)
            body.set_edgecolor("#4c72b0")
    rng = np.random.default_rng(0)
    for p, g in zip(pos, groups, strict=True):
        ax.scatter(
            p + rng.uniform(-0.08, 0.08, g.size), g, s=6, color="#4c72b0", alpha=0.6, lw=0, zorder=2
        )
    for p, (_, r) in zip(pos, summary.iterrows(), strict=True):
        ax.hlines(r["median"], p - 0.25, p + 0.25, color="black", lw=1.5, zorder=3)
        for key, color, va, dy in (("max", "#c44e52", "bottom", 4), ("min", "#dd8452", "top", -4)):
            ax.plot(p, r[key], marker="_", ms=18, mew=2.2, color=color, zorder=4)
            ax.annotate(
                f"{r[key]:.2f}",
                (p, r[key]),
                xytext=(0, dy),
                textcoords="offset points",
                ha="center",
                va=va,
                fontsize=8,
                color=color,
                fontweight="bold",
            )
    beside = _strategies_beside(ax, df, summary, pos, metric)
    ticks = [
        f"{r['fraction']:.0%}\n{r['n_labelled']:,.0f} frames\n{int(r['n_runs'])} runs"
        for _, r in summary.iterrows()
    ]
    ax.set_xticks(pos, ticks, fontsize=8)
    lo, hi = float(summary["min"].min()), float(summary["max"].max())
    pad = max(0.04, 0.12 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), hi + pad)
    ax.set_xlim(0.4, len(groups) + 0.6)
    ax.set_xlabel("training set: share of the pool (labelled frames, trainings)")
    ax.set_ylabel("mAP@0.5 on the test split")
    ax.set_title(
        "Same amount of data, different subsets: mAP@0.5 of random training subsets\n"
        "(violin: distribution; bar: median; red/orange: max/min"
        + ("; diamonds: the campaigns' mean at that budget)" if beside else ")"),
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    if beside:
        width, height = fig.get_size_inches()
        fig.set_size_inches(width, height + 0.22 * math.ceil(len(beside) / 2))
        _bottom_legend(fig, beside, columns=2)
    return _save(fig, path)


def _strategies_beside(ax, df: pd.DataFrame, summary: pd.DataFrame, pos, metric: str) -> list:
    """Each strategy's mean over its seeds where a campaign budget equals a subset size,
    beside that violin: whether selection beats *every* random subset of the same size,
    not only random's mean (seed 002's picture). Returns the legend's handles."""
    from matplotlib.lines import Line2D

    lc = stats.learning_curves(df, metric)
    lc = lc.loc[lc["mean"].notna()]
    strategies = _ordered(lc["strategy"].unique())
    styles = strategy_styles(strategies)

    def marker(s: str) -> dict:  # the baseline hollow: its grey is close to tab10's
        color = styles[s]["color"]
        face = "white" if s == stats.BASELINE else color
        return {"marker": "D", "color": color, "mfc": face, "mec": "black", "mew": 0.4,
                "ls": "none"}  # fmt: skip

    drawn: set[str] = set()
    for p, (_, r) in zip(pos, summary.iterrows(), strict=True):
        at = lc.loc[(lc["n_labelled"] - r["n_labelled"]).abs() < 0.5].set_index("strategy")
        for i, s in enumerate(strategies):
            if s in at.index:
                x = p + 0.3 + 0.15 * i / max(1, len(strategies) - 1)
                ax.plot(x, at.loc[s, "mean"], ms=4, zorder=5, **marker(s))
                drawn.add(s)
    return [Line2D([], [], ms=5, label=wrapped(s, 60), **marker(s)) for s in strategies
            if s in drawn]  # fmt: skip


def plot_learning_curves(
    df: pd.DataFrame,
    path: Path | str,
    full_value: float | None = None,
    share: float = 0.95,
    metric: str = "map50",
    title: str | None = None,
) -> Path:
    """Figure 3 ("active vs random"): mAP@0.5 vs labelled frames per strategy, mean line
    and 95% band across seeds, with the full-data mAP and the ``share`` target if given,
    and a triangle where each strategy reaches it (mean over seeds, when all seeds do)."""
    lc = stats.learning_curves(df, metric)
    _require(lc, f"strategy-study {metric}", "run a strategy comparison (campaigns per seed)")
    styles = strategy_styles(lc["strategy"].unique())
    reach = {}
    if full_value is not None:
        by = stats.labels_to_reach(df, full_value, share, metric).by_strategy
        reach = dict(zip(by["strategy"], by["mean"], strict=True))
    fig = _figure(9.0, 5.0)
    ax = fig.subplots()
    for s in _ordered(lc["strategy"].unique()):
        part = lc.loc[lc["strategy"] == s]
        label = f"{wrapped(s)} ({int(part['n_seeds'].max())} seeds)"
        n = reach.get(s, np.nan)
        if np.isfinite(n):
            ax.plot(n, share * full_value, marker="v", ms=9, color=styles[s]["color"],
                    mec="black", mew=0.6, ls="none", zorder=5)  # fmt: skip
            label += f"\nreaches {share:.0%} at {n:,.0f} frames"
        elif full_value is not None:
            label += f"\n{share:.0%} not reached by every seed"
        _band(ax, part, "n_labelled", styles[s], label)
    if full_value is not None:
        ax.axhline(full_value, color="black", lw=1.2, label=f"full data: {full_value:.3f}")
        ax.axhline(
            share * full_value,
            color="black",
            lw=1.0,
            ls=":",
            label=f"{share:.0%} of full data: {share * full_value:.3f}",
        )
    _thousands(ax)
    ax.set_xlabel("labelled frames")
    ax.set_ylabel(f"{_metric_name(metric)} on the test split")
    ax.set_title(
        title
        or f"Active vs random: {_metric_name(metric)} vs labelled frames\n({_seeds_note(lc)})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _save(fig, path)


def _metric_name(metric: str) -> str:
    return {"map50": "mAP@0.5", "map": "mAP@[.5:.95]", "ap50": "AP@0.5", "auc": "ROC-AUC"}.get(
        metric, metric
    )


def classes_left_out(
    df: pd.DataFrame, metric: str = "ap50", classes: Sequence[str] = ()
) -> dict[str, str]:
    """Classes a per-class figure cannot draw, each with the reason: its AP is undefined in
    every evaluation (COCO leaves AP undefined for a class without test objects), or, for
    ``classes`` (e.g. the taxonomy's) that have no per-class rows at all, not recorded."""
    mask = (df["metric"] == metric) & (df["study"] == "strategies") & (df["situation"] == ALL)
    rows = df.loc[mask.fillna(False).astype(bool) & (df["class"] != ALL)]
    recorded = {str(c) for c in rows["class"].dropna().unique()}
    defined = {str(c) for c in rows.loc[rows["value"].notna(), "class"].unique()}
    out = {
        c: f"{_metric_name(metric)} undefined in every round: no {c} objects in the test split"
        for c in sorted(recorded - defined)
    }
    out.update({c: "no per-class rows in the results" for c in classes if c not in recorded})
    return out


def plot_class_curves(
    df: pd.DataFrame, path: Path | str, metric: str = "ap50", x: str = "n_labelled"
) -> Path:
    """Figure 4: AP@0.5 per class per loop (mean across seeds), one panel per strategy.
    The y axis spans the data (AP often stays far below 1 on a small budget); classes whose
    AP is undefined throughout are named in the legend, not silently dropped."""
    rows = _class_rows(df, metric)
    _require(rows, "per-class (class != 'all')", "campaigns record AP@0.5 per class each round")
    strategies = _ordered(rows["strategy"].unique())
    colors = class_colors(rows["class"].unique())
    left_out = classes_left_out(df, metric)
    fig, axes, grid = _grid(len(strategies), 3, (4.2, 3.2), extra_h=1.2)
    top = 0.0
    for ax, s in zip(axes, strategies, strict=True):
        part = rows.loc[rows["strategy"] == s]
        for c in sorted(colors):
            lc = stats.learning_curves(part, metric, cls=c, x=x)
            lc = lc.loc[lc["mean"].notna()]
            if len(lc):
                ax.plot(lc[x], lc["mean"], marker="o", ms=3, lw=1.6, color=colors[c], label=c)
                top = max(top, float(lc["mean"].max()))
        ax.set_title(f"{wrapped(s)} ({part['seed'].nunique()} seeds)", fontsize=10)
        ax.grid(alpha=0.3)
        if x == "n_labelled":
            _thousands(ax)
    axes[0].set_ylim(0, min(1.02, max(0.05, top * 1.12)))  # shared y: one call sets all
    _label_outer(grid, len(strategies), _x_name(x), f"{_metric_name(metric)} (test)")
    counts = _counts(df, "class")
    handles = [_line(colors[c], _flagged(c, counts)) for c in sorted(colors) if c not in left_out]
    handles += [_line("0.75", f"{c}: undefined (no test objects)", ":") for c in left_out]
    _bottom_legend(fig, handles, columns=6)
    fig.suptitle(f"{_metric_name(metric)} per class per loop (mean across seeds)", fontsize=11)
    return _save(fig, path)


def _counts(df: pd.DataFrame, kind: str) -> dict[str, tuple[int, bool]]:
    """``name -> (test count, enough)`` of ``stats.evaluation_power`` for classes or
    situations; empty for results recorded before the counts were."""
    power = stats.evaluation_power(df)
    power = power.loc[power["kind"] == kind]
    return {str(r["name"]): (int(r["count"]), bool(r["enough"])) for _, r in power.iterrows()}


def _flagged(name: str, counts: dict[str, tuple[int, bool]]) -> str:
    """``golf_cart (12 test objects < 100)``: a curve measured on too few is marked where
    it is drawn, so nobody reads a claim into its noise."""
    if name not in counts or counts[name][1]:
        return name
    return f"{name} ({counts[name][0]:,} test objects < {stats.MIN_EVAL_COUNT})"


def _bottom_legend(fig, handles: list, columns: int) -> None:
    """One legend for a grid of panels, below them (inside no panel's data)."""
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), columns),
        fontsize=8,
        frameon=False,
    )


def _x_name(x: str) -> str:
    return "labelled frames" if x == "n_labelled" else "round (loop)"


def _line(color, label: str, ls: str = "-"):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=color, ls=ls, lw=2, label=label)


def plot_learning_speed(df: pd.DataFrame, path: Path | str, metric: str = "ap50") -> Path:
    """Figure 5: the derivative of each class's learning curve (AP@0.5 gained per 1,000
    labelled frames), one panel per strategy: which class the model learns fastest when."""
    rows = _class_rows(df, metric)
    _require(rows, "per-class (class != 'all')", "campaigns record AP@0.5 per class each round")
    speed = stats.learning_speed(df, metric=metric)
    speed = speed.loc[speed["slope"].notna()]
    _require(speed, "per-class rows with 2+ rounds", "a derivative needs at least two rounds")
    strategies = _ordered(speed["strategy"].unique())
    colors = class_colors(rows["class"].unique())
    fig, axes, grid = _grid(len(strategies), 3, (4.2, 3.2), extra_h=1.2)
    for ax, s in zip(axes, strategies, strict=True):
        part = speed.loc[speed["strategy"] == s]
        for c, g in part.groupby("class", sort=True):
            ax.plot(g["n_labelled"], g["slope"], marker="o", ms=3, lw=1.6, color=colors[c])
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(wrapped(s), fontsize=10)
        ax.grid(alpha=0.3)
        _thousands(ax)
    _label_outer(grid, len(strategies), "labelled frames", "AP@0.5 gain\nper 1,000 frames")
    left_out = classes_left_out(df, metric)
    counts = _counts(df, "class")
    handles = [_line(colors[c], _flagged(c, counts)) for c in sorted(colors) if c not in left_out]
    handles += [_line("0.75", f"{c}: undefined (no test objects)", ":") for c in left_out]
    _bottom_legend(fig, handles, columns=6)
    fig.suptitle(
        "Learning speed per class: derivative of the mean AP@0.5 curve (below 0: more data hurt)",
        fontsize=11,
    )
    return _save(fig, path)


def _strategy_panels(
    rows: pd.DataFrame,
    path: Path | str,
    metric: str,
    title: str,
    ylabel: str,
    xlabel: str,
    chance: float | None = None,
    counts: dict[str, tuple[int, bool]] | None = None,
) -> Path:
    """One small panel per situation, strategies compared (mean and 95% band); a situation
    with fewer than ``stats.MIN_EVAL_COUNT`` positive test frames (``counts``) is titled in
    red with its count."""
    situations = sorted(rows["situation"].unique())
    strategies = _ordered(rows["strategy"].unique())
    styles = strategy_styles(strategies)
    fig, axes, grid = _grid(len(situations), 4, (3.1, 2.4), extra_h=1.2)
    for ax, sit in zip(axes, situations, strict=True):
        part = rows.loc[rows["situation"] == sit]
        for s in strategies:
            lc = stats.learning_curves(part, metric, ALL, sit, study=None)
            lc = lc.loc[lc["strategy"] == s]
            if len(lc):
                _band(ax, lc, "n_labelled", styles[s], wrapped(s))
        if chance is not None:
            ax.axhline(chance, color="black", lw=0.8, ls=":")
        n = part["n_frames"].max()
        positives, enough = (counts or {}).get(sit, (None, True))
        if not enough:
            few = f"{positives:,} positive test frames < {stats.MIN_EVAL_COUNT}"
            ax.set_title(f"{sit} ({few})", fontsize=9, color="firebrick")
        else:
            ax.set_title(f"{sit}" + (f" ({n:,} test frames)" if n else ""), fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        _thousands(ax)
    _label_outer(grid, len(situations), xlabel, ylabel)
    handles = [_line(styles[s]["color"], wrapped(s), styles[s]["ls"]) for s in strategies]
    if chance is not None:
        handles.append(_line("black", f"chance ({chance})", ":"))
    _bottom_legend(fig, handles, columns=5)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_situation_curves(df: pd.DataFrame, path: Path | str, metric: str | None = None) -> Path:
    """mAP@0.5 (or AP@0.5) per situation slice vs labelled frames, strategies compared:
    does a strategy buy its overall gain in the situations that need it?"""
    metric = metric or situation_metric(df)
    rows = _situation_rows(df, metric)
    _require(
        rows,
        "per-situation (situation != 'all')",
        "campaigns record mAP@0.5 per situation slice each round",
    )
    name = _metric_name(metric)
    return _strategy_panels(
        rows,
        path,
        metric,
        f"{name} per situation slice vs labelled frames (mean across seeds, 95% band)",
        f"{name} (test)",
        "labelled frames",
        counts=_counts(df, "situation"),
    )


def plot_tagger_curves(df: pd.DataFrame, path: Path | str) -> Path:
    """The tagger study: rare-label ROC-AUC vs labels spent, situation-aware selection vs
    random (rows ``study == "tagger"``, ``metric == "auc"``, one ``situation`` per label)."""
    rows = _tagger_rows(df)
    _require(rows, "tagger-study auc", "run the tagger study (situation-aware vs random)")
    return _strategy_panels(
        rows,
        path,
        "auc",
        "Situation tagger: ROC-AUC per label vs labelled frames (mean across seeds, 95% band)",
        "ROC-AUC (test)",
        "labelled frames",
        chance=0.5,
        counts=_counts(df, "situation"),
    )
