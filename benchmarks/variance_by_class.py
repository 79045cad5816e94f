"""The variance study's spread of mAP@0.5 over chosen classes only (mean of their AP@0.5 per
run): how much of the spread a class with a handful of test objects causes.

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


if __name__ == "__main__":
    main()
