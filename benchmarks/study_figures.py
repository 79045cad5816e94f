"""Draw a kept strategy study's figures as PNG files beside its results, so BENCHMARKS.md
can show them: the learning curves against random with the 95% target, AP@0.5 per class
and mAP@0.5 per situation per strategy (the report's figures 3-5, from the same code).

    .venv/bin/python benchmarks/study_figures.py benchmarks/results/fleet-power-study
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scenesift.experiments import plots, stats
from scenesift.experiments.results import read_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="the kept study folder (holds results/)")
    args = parser.parse_args()
    if not (args.study / "results").is_dir():
        parser.error(f"{args.study / 'results'} is not a folder of kept results")
    df = read_results(args.study / "results")
    full = stats.full_data_value(df)
    for path in (
        plots.plot_learning_curves(df, args.study / "learning_curves.png", full_value=full),
        plots.plot_class_curves(df, args.study / "class_curves.png"),
        plots.plot_situation_curves(df, args.study / "situation_curves.png"),
    ):
        print(path)


if __name__ == "__main__":
    main()
