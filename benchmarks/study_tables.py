"""Print a strategy study's results as the Markdown tables BENCHMARKS.md shows: mAP@0.5 per
seed and budget, the paired difference to random per budget, and each class and situation
against random at every budget (``stats.slice_gains``), then the verdict as the CLI says it.
Every number is computed here from the kept Parquet files, so BENCHMARKS can be redone.

    .venv/bin/python benchmarks/study_tables.py benchmarks/results/fleet-power-study/results \
        --strategy "least_confidence(agg=sum)" [--seeds 0 1 2 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from scenesift.experiments import stats
from scenesift.experiments.results import read_results
from scenesift.report.summary import verdict


def _cells(values: pd.Series) -> str:
    return " ".join(f"{v:.3f}".lstrip("0") for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the experiment's results folder")
    parser.add_argument("--strategy", required=True, help="the strategy to set against random")
    parser.add_argument("--baseline", default=stats.BASELINE)
    parser.add_argument("--seeds", type=int, nargs="*",
                        help="only these campaign seeds (default: all), to reprint a table "
                        "from before more seeds ran")  # fmt: skip
    args = parser.parse_args()
    df = read_results(args.results)
    if args.seeds:
        df = df.loc[(df["study"] != "strategies") | df["seed"].isin(args.seeds)]
    a, b = args.strategy, args.baseline

    head = stats.subset(df, "map50")
    wide = head.pivot_table(index=["strategy", "seed"], columns="n_labelled", values="value")
    budgets = list(wide.columns)
    paired = sorted(set(wide.loc[a].index) & set(wide.loc[b].index))
    codes = ", ".join(sorted(set(df["code"])))
    print(f"seeds run by both: {', '.join(map(str, paired))}; full-data mAP@0.5 (median): "
          f"{stats.full_data_value(df):.3f}; code: {codes}\n")  # fmt: skip
    print("| mAP@0.5, per seed | " + " | ".join(f"{n:,}" for n in budgets) + " |")
    print("| --- |" + " ---: |" * len(budgets))
    for name in (b, a):
        rows = wide.loc[name].loc[paired]
        print(f"| {name} | " + " | ".join(_cells(rows[n]) for n in budgets) + " |")
    means = [f"{wide.loc[b].loc[paired][n].mean():.3f} / {wide.loc[a].loc[paired][n].mean():.3f}"
             for n in budgets]  # fmt: skip
    print(f"| mean: {b} / {a} | " + " | ".join(means) + " |")
    test = stats.paired_test(df, a, b, per_round=True)
    cells = [
        f"{r.mean_diff:+.3f} ({r.ci_low:+.3f}, {r.ci_high:+.3f}), p {r.t_pvalue:.3f}"
        for r in test.per_round.itertuples()
    ]
    print("| paired difference (95% CI), t-test p | " + " | ".join(cells) + " |")
    print(f"\nAULC: {test.message}; paired t p = {test.t_pvalue:.3f}, "
          f"Wilcoxon p = {test.wilcoxon_pvalue:.3f}\n")  # fmt: skip

    gains = stats.slice_gains(df, a, b)
    gains = gains.loc[gains["kind"].eq("situation") | gains["name"].ne(stats.ALL)]
    print(f"| {a} / {b} (test objects or frames) | " + " | ".join(f"{n:,}" for n in budgets)
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
