"""The variance study's spread of mAP@0.5 over chosen classes only (mean of their AP@0.5 per
run): how much of the spread a class with a handful of test objects causes; and the strategy
study's mean over those classes per labelled-set size, each strategy paired with random.

    .venv/bin/python benchmarks/variance_by_class.py \
        demo-output/project/experiments/full/results --classes car,truck,pedestrian,cyclist
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scenesift.experiments.results import read_results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="an experiment's results folder")
    ap.add_argument("--classes", required=True, help="comma-separated class names")
    args = ap.parse_args()
    classes = args.classes.split(",")
    df = read_results(args.results)
    rows = df[(df["study"] == "variance") & (df["metric"] == "ap50") & (df["situation"] == "all")
              & df["class"].isin(classes)]  # fmt: skip
    per_run = rows.groupby(["fraction", "run"])["value"].mean()
    stats = per_run.groupby("fraction").agg(["count", "min", "median", "max", "std"])
    print(f"mean AP@0.5 over {', '.join(classes)}, per variance-study run")
    print("| share | runs | min | median | max | std |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for fraction, r in stats.iterrows():
        print(f"| {fraction:.0%} | {r['count']:.0f} | {r['min']:.3f} | {r['median']:.3f} "
              f"| {r['max']:.3f} | {r['std']:.3f} |")  # fmt: skip
    rows = df[(df["study"] == "strategies") & (df["metric"] == "ap50")
              & (df["situation"] == "all") & df["class"].isin(classes)]  # fmt: skip
    if rows.empty:
        return
    curves = rows.groupby(["strategy", "seed", "n_labelled"])["value"].mean()
    random = curves.loc["random"]
    sizes = sorted(random.index.get_level_values("n_labelled").unique())
    print("\nstrategies: mean over seeds; others as the paired difference from random")
    print("| strategy | " + " | ".join(str(n) for n in sizes) + " |")
    print("| --- |" + " ---: |" * len(sizes))
    mean = random.groupby("n_labelled").mean()
    print("| random | " + " | ".join(f"{mean[n]:.3f}" for n in sizes) + " |")
    for strategy in curves.index.get_level_values("strategy").unique():
        if strategy != "random":
            diff = (curves.loc[strategy] - random).groupby("n_labelled").mean()
            print(f"| {strategy} | " + " | ".join(f"{diff[n]:+.3f}" for n in sizes) + " |")


if __name__ == "__main__":
    main()
