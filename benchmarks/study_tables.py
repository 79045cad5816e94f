"""Print a strategy study's results as the Markdown tables BENCHMARKS.md shows: the headline
(each strategy against random: AULC difference, paired tests, labels to 95% of full data,
labels to reach random's mAP@0.5 at the largest budget, each seed against its own run),
each class's AP@0.5 at the largest budget against full data (where the rest of the way to
it is lost), the variance violins (random subsets of each size: their spread, and how many
of them each strategy's mean at that budget beats), a self-training study's rounds against
their teachers (the same labels without pseudo-labels), mAP@0.5 per seed and budget with the
paired difference to random per budget, and each class and situation against random at
every budget (``stats.slice_gains``) for one strategy, then the verdict as the CLI says it.
Every number is computed here from the kept Parquet files, so BENCHMARKS can be redone.

    .venv/bin/python benchmarks/study_tables.py benchmarks/results/fleet-power-study/results \
        [--strategy "least_confidence(agg=sum)"] [--seeds 0 1 2 3]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from scenesift.errors import StoreError
from scenesift.experiments import stats
from scenesift.experiments.joining import join_variance
from scenesift.experiments.results import read_results
from scenesift.report.summary import verdict


def _cells(values: pd.Series) -> str:
    return " ".join(f"{v:.3f}".lstrip("0") for v in values)


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def headline(df: pd.DataFrame, baseline: str, full: float, largest: float) -> None:
    """One row per strategy: what issue 16's targets ask, seeds counted per row."""
    summary = stats.strategy_summary(df, full, baseline=baseline)
    curves = stats.subset(df, "map50")
    at_largest = curves.loc[curves["n_labelled"] == largest].groupby("strategy")["value"]
    match = stats.labels_to_match(df, baseline)
    budgets = match.per_seed.groupby("strategy")["budget"].mean()
    matched_by = match.by_strategy.set_index("strategy")
    print(f"| strategy (against {baseline}) | seeds | AULC difference (95% CI) | paired t p "
          f"| Holm p | Wilcoxon p | reached 95% ({0.95 * full:.3f}) | labels to 95%, median "
          f"| mAP@0.5 at {largest:,.0f} (% of full) | labels to {baseline}'s mAP@0.5 at "
          f"{largest:,.0f}, mean (saving) |")  # fmt: skip
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in summary.itertuples():
        diff = (
            "" if r.strategy == baseline or pd.isna(r.diff)
            else f"{r.diff:+.3f} ({r.diff_low:+.3f}, {r.diff_high:+.3f})"
        )  # fmt: skip
        t = "" if r.strategy == baseline else _p(r.t_pvalue)
        holm = "" if r.strategy == baseline else _p(r.t_pvalue_holm)
        w = "" if r.strategy == baseline else _p(r.wilcoxon_pvalue)
        median = f"{r.labels_median:,.0f}" if pd.notna(r.labels_median) else f"> {largest:,.0f}"
        value = at_largest.mean().get(r.strategy, float("nan"))
        matched = ""
        if r.strategy in matched_by.index:  # mean only when every seed got there
            m = matched_by.loc[r.strategy]
            matched = f"{int(m['n_reached'])} of {int(m['n_seeds'])} seeds reached it"
            if pd.notna(m["mean"]):
                matched = f"{m['mean']:,.0f} ({1 - m['mean'] / budgets[r.strategy]:.0%} fewer)"
            elif pd.notna(m["median"]):
                matched += f"; median {m['median']:,.0f}"
        print(f"| {r.strategy} | {r.n_seeds} | {diff} | {t} | {holm} | {w} | {r.n_reached} "
              f"of {r.n_seeds} seeds | {median} | {value:.3f} ({value / full:.0%}) "
              f"| {matched} |")  # fmt: skip
    print()


def gap_to_full(df: pd.DataFrame, baseline: str, largest: float) -> None:
    """Each class's AP@0.5 at the largest budget against the full-data runs' (the variance
    study's 100% runs, median), per strategy: where the mAP@0.5 still missing at that budget
    is lost. The last column: each class's share of the best strategy's gap (mAP@0.5 is the
    mean over classes, so a class's share is its AP gap over the classes' summed gap)."""
    ap = stats.subset(df, "ap50", None)
    ap = ap.loc[(ap["class"] != stats.ALL) & (ap["n_labelled"] == largest)]
    if ap.empty:
        return
    at = ap.groupby(["class", "strategy"], observed=True)["value"].mean().unstack()
    full = pd.Series({c: stats.full_data_value(df, "ap50", c) for c in at.index}, dtype=float)
    if full.isna().all():
        return
    head = stats.subset(df, "map50")
    head = head.loc[head["n_labelled"] == largest].groupby("strategy")["value"].mean()
    rest = head.drop(baseline, errors="ignore")
    best = rest.idxmax() if len(rest) else baseline  # only the baseline has run so far
    others = [baseline, *sorted(s for s in at.columns if s != baseline)]
    pool = stats.subset(df, stats.POOL_OBJECTS, None)
    pool = pool.loc[pool["class"] != stats.ALL].groupby("class")["value"].first()
    gap = (full - at[best]).clip(lower=0)
    print(f"| AP@0.5 at {largest:,.0f} labels (% of full data) | full data | "
          + " | ".join(others) + f" | share of {best}'s gap |")  # fmt: skip
    print("| --- | ---: |" + " ---: |" * len(others) + " ---: |")
    for c in at.index:
        where = f"{int(pool[c]):,} pool objects" if c in pool.index else "pool not counted"
        cells = [f"{at.loc[c, s]:.3f} ({at.loc[c, s] / full[c]:.0%})" if full[c] > 0.01
                 else f"{at.loc[c, s]:.3f}" for s in others]  # fmt: skip
        share = f"{gap[c] / gap.sum():.0%}" if gap.sum() > 0 else "-"
        print(f"| {c} ({where}) | {full[c]:.3f} | " + " | ".join(cells) + f" | {share} |")
    total = stats.full_data_value(df)
    print(
        f"| mAP@0.5 | {total:.3f} | "
        + " | ".join(f"{head[s]:.3f} ({head[s] / total:.0%})" for s in others)
        + " | |\n"
    )


def against_teacher(df: pd.DataFrame) -> None:
    """Self-training (``learner.pseudo_labels``): each round's model against its teacher,
    trained on the same labelled frames without pseudo-labels, per strategy and budget: the
    gain self-training adds, paired on the labels (``teacher_*`` rows; silent without)."""
    teacher = stats.subset(df, "teacher_map50")
    if teacher.empty:
        return
    keys = ["strategy", "seed", "n_labelled"]
    both = stats.subset(df, "map50").merge(teacher, on=keys, suffixes=("", "_teacher"))
    both["gain"] = both["value"] - both["value_teacher"]
    budgets = sorted(both["n_labelled"].unique())
    print("| self-trained - its teacher, mAP@0.5 (95% CI; seeds) | mean over budgets | "
          + " | ".join(f"{n:,}" for n in budgets) + " |")  # fmt: skip
    print("| --- | ---: |" + " ---: |" * len(budgets))

    def cell(gains: pd.Series) -> str:
        low, high = stats.t_interval(gains)
        ci = f" ({low:+.3f}, {high:+.3f})" if math.isfinite(low) else ""
        return f"{gains.mean():+.3f}{ci}"

    for name, g in both.groupby("strategy"):
        # the mean over budgets only for seeds scored at every budget (a campaign resumed
        # under code that kept no teacher misses its first rounds')
        counts = g.groupby("seed")["gain"].count()
        per_seed = g.groupby("seed")["gain"].mean()[counts == len(budgets)]
        by = g.groupby("n_labelled")["gain"]
        seeds = ",".join(map(str, sorted(per_seed.index)))
        print(f"| {name} ({seeds}) | {cell(per_seed) if len(per_seed) else '-'} | "
              + " | ".join(cell(by.get_group(n)) if n in by.groups else "" for n in budgets)
              + " |")  # fmt: skip
    print()


def violins(df: pd.DataFrame, full: float | None) -> None:
    """The variance study per subset size: how far random subsets of one size spread (seed
    002's violins), and where each strategy's mean at that budget falls among them. A
    strategy that picks well should beat most random subsets of its size, not only their
    mean."""
    summary = stats.variance_summary(df)
    if summary.empty:
        return
    runs = stats.subset(df, "map50", study="variance")
    # keyed as variance_summary keys its rows
    values = {float(f): g["value"].to_numpy(float)
              for f, g in runs.groupby("fraction", observed=True)}  # fmt: skip
    head = stats.subset(df, "map50")
    means = head.groupby(["strategy", "n_labelled"])["value"].mean()
    print(
        "| random subsets of (labelled frames) | runs | min | median | max | max - min "
        "| median % of full | strategies' mean at that budget: random subsets it beats |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")  # fmt: skip
    for r in summary.itertuples():
        n, subsets = round(r.n_labelled), values[r.fraction]
        beats = [f"{name} {mean:.3f}: {int((subsets < mean).sum())} of {subsets.size}"
                 for (name, at), mean in means.items() if at == n]  # fmt: skip
        share = f"{r.median / full:.0%}" if full else "-"
        print(f"| {n:,} | {r.n_runs} | {r.min:.3f} | {r.median:.3f} | {r.max:.3f} "
              f"| {r.spread:.3f} | {share} | {'; '.join(beats)} |")  # fmt: skip
    print()
    if full:
        labels_ratio(df, full)


def labels_ratio(df: pd.DataFrame, full: float) -> None:
    """Issue 16's "random needs >= 1.3x as many labels": random's labels to 95% of full data
    from the variance runs' median curve (which reaches past the campaigns' budget), against
    each strategy's median seed."""
    labels, below, above = stats.variance_labels_to_reach(df, full)
    target = 0.95 * full
    if not math.isfinite(labels):
        print(f"Random subsets do not reach 95% of full data ({target:.3f}) below the full "
              f"pool: labels random needs are not measured.\n")  # fmt: skip
        return
    if not math.isfinite(below):
        print(f"Random subsets reach 95% of full data ({target:.3f}) at the smallest size run "
              f"({above:,.0f} frames): how many labels random needs below it is not "
              "measured.\n")  # fmt: skip
        return
    print(f"Random subsets reach 95% of full data ({target:.3f}) at {labels:,.0f} labelled "
          f"frames (their median mAP@0.5, interpolated between the {below:,.0f}- and "
          f"{above:,.0f}-frame subsets).\n")  # fmt: skip
    reach = stats.labels_to_reach(df, full).by_strategy
    mean_curve = stats.mean_curve_labels_to_reach(df, full).set_index("strategy")["labels"]
    print("| strategy | seeds reaching 95% | labels to 95%: median seed (random needs) "
          "| mean curve (random needs) |")  # fmt: skip
    print("| --- | ---: | ---: | ---: |")
    for r in reach.loc[reach["strategy"] != stats.BASELINE].itertuples():
        mean = mean_curve[r.strategy]
        cells = [f"{n:,.0f} ({labels / n:.2f}x)" if math.isfinite(n) else "not reached"
                 for n in (r.median, mean)]  # fmt: skip
        print(f"| {r.strategy} | {r.n_reached} of {r.n_seeds} | {cells[0]} | {cells[1]} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the experiment's results folder")
    parser.add_argument("--strategy",
                        help="the strategy whose per-slice table is printed (default: the "
                        "one with the largest AULC difference to the baseline)")  # fmt: skip
    parser.add_argument("--more-variance", type=Path, action="append", default=[],
                        help="another experiment's results folder (beside this one, as "
                        "benchmarks/results keeps them) whose variance runs (random subsets "
                        "of other sizes, same worlds and detector) join this one's; "
                        "repeatable")  # fmt: skip
    parser.add_argument("--baseline", default=stats.BASELINE)
    parser.add_argument("--seeds", type=int, nargs="*",
                        help="only these campaign seeds (default: all), to reprint a table "
                        "from before more seeds ran")  # fmt: skip
    args = parser.parse_args()
    df = read_results(args.results)
    if args.more_variance:
        root = args.results.resolve().parent.parent
        if any(m.resolve().parent.parent != root for m in args.more_variance):
            raise SystemExit(f"error: --more-variance folders must be beside {args.results}")
        names = [m.resolve().parent.name for m in args.more_variance]
        try:
            df = join_variance(root, df, names)
        except StoreError as e:
            raise SystemExit(f"error: {e}") from None
    if args.seeds:
        df = df.loc[(df["study"] != "strategies") | df["seed"].isin(args.seeds)]
    b = args.baseline
    full = stats.full_data_value(df)

    head = stats.subset(df, "map50")
    wide = head.pivot_table(index=["strategy", "seed"], columns="n_labelled", values="value")
    budgets = list(wide.columns)
    others = sorted(s for s in wide.index.get_level_values(0).unique() if s != b)
    codes = ", ".join(sorted(set(df["code"])))
    complete = full is not None and b in wide.index.get_level_values(0)
    if complete:
        print(f"full-data mAP@0.5 (median): {full:.3f}; code: {codes}\n")
        headline(df, b, full, max(budgets))
        gap_to_full(df, b, max(budgets))
        violins(df, full)
    else:  # an experiment run --first another strategy: its own tables only, so far
        print(f"no full-data runs or no {b} campaign yet; code: {codes}\n")
    against_teacher(df)

    print("| mAP@0.5, per seed (seeds) | " + " | ".join(f"{n:,}" for n in budgets) + " |")
    print("| --- |" + " ---: |" * len(budgets))
    for name in (b, *others) if complete else others:
        rows = wide.loc[name]
        seeds = ",".join(map(str, rows.index))
        print(f"| {name} ({seeds}) | " + " | ".join(_cells(rows[n].dropna()) for n in budgets)
              + " |")  # fmt: skip
    if not complete:
        return
    for a in others:
        paired = sorted(set(wide.loc[a].index) & set(wide.loc[b].index))
        means = [f"{wide.loc[b].loc[paired][n].mean():.3f} / "
                 f"{wide.loc[a].loc[paired][n].mean():.3f}" for n in budgets]  # fmt: skip
        print(f"| mean of seeds {','.join(map(str, paired))}: {b} / {a} | " + " | ".join(means)
              + " |")  # fmt: skip
        test = stats.paired_test(df, a, b, per_round=True)
        cells = [
            f"{r.mean_diff:+.3f} ({r.ci_low:+.3f}, {r.ci_high:+.3f}), p {_p(r.t_pvalue)}"
            if r.ci_high > r.ci_low or r.mean_diff != 0
            else "(same initial sets)"
            for r in test.per_round.itertuples()
        ]
        print(f"| {a} - {b} (95% CI), t-test p | " + " | ".join(cells) + " |")

    if not others:  # only the baseline has run so far: nothing to compare per slice
        print("\nVerdict: " + verdict(df))
        return
    diffs = {a: stats.paired_test(df, a, b).mean_diff for a in others}
    compared = [s for s in others if math.isfinite(diffs[s])]  # >= 2 seeds paired with b
    a = args.strategy or max(compared or others, key=lambda s: diffs[s])
    gains = stats.slice_gains(df, a, b)
    gains = gains.loc[gains["kind"].eq("situation") | gains["name"].ne(stats.ALL)]
    print(f"\n| {a} / {b} (test objects or frames) | " + " | ".join(f"{n:,}" for n in budgets)
          + " |")  # fmt: skip
    print("| --- |" + " ---: |" * len(budgets))
    for (kind, name), g in gains.groupby(["kind", "name"], sort=False):
        by = g.set_index("n_labelled")
        cells = []
        for n in budgets:
            if n not in by.index:
                cells.append("")
                continue
            r = by.loc[n]
            ratio = f"{r['ratio']:.2f}x" if r["learned"] and pd.notna(r["ratio"]) else "-"
            cells.append(f"{r['strategy_mean']:.3f} / {r['baseline_mean']:.3f} = {ratio}")
        unit = "objects" if kind == "class" else "frames"
        print(f"| {name} ({int(g['count'].iloc[0]):,} {unit}) | " + " | ".join(cells) + " |")
    print("\nVerdict: " + verdict(df))


if __name__ == "__main__":
    main()
