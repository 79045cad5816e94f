"""Draw a kept strategy study's figures as PNG files beside its results, so BENCHMARKS.md
can show them: the violins of random subsets with the campaigns' means beside them, the
learning curves against random with the 95% target, AP@0.5 per class, its derivative, and
mAP@0.5 per situation per strategy (the report's figures, from the same code).

    .venv/bin/python benchmarks/study_figures.py benchmarks/results/fleet-power-study \
        --more-variance fleet-random-beyond
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scenesift.errors import StoreError
from scenesift.experiments import plots, stats
from scenesift.experiments.joining import join_variance
from scenesift.experiments.results import read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="the kept study folder (holds results/)")
    parser.add_argument("--more-variance", action="append", default=[], metavar="NAME",
                        help="a kept experiment beside it whose random subsets (other sizes) "
                        "join the violins; repeatable")  # fmt: skip
    args = parser.parse_args()
    if not (args.study / "results").is_dir():
        parser.error(f"{args.study / 'results'} is not a folder of kept results")
    df = read_results(args.study / "results")
    try:
        df = join_variance(args.study.resolve().parent, df, args.more_variance)
    except StoreError as e:
        parser.error(str(e))
    full = stats.full_data_value(df)
    for path in (
        plots.plot_variance(df, args.study / "variance.png"),
        plots.plot_learning_curves(df, args.study / "learning_curves.png", full_value=full),
        plots.plot_class_curves(df, args.study / "class_curves.png"),
        plots.plot_learning_speed(df, args.study / "learning_speed.png"),
        plots.plot_situation_curves(df, args.study / "situation_curves.png"),
    ):
        print(path)


if __name__ == "__main__":
    main()
