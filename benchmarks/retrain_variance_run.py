"""Retrain one variance run of an experiment (a random subset of the pool, or the whole pool)
with today's code and a chosen thread count, and print its mAP@0.5 beside the kept one: so a
reference pooled across sessions can be checked for drift in the code or the engine.

    .venv/bin/python benchmarks/retrain_variance_run.py /tmp/fleet-power/project \
        benchmarks/fleet_power_study.toml --seed 0 --fraction 1.0 --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from scenesift.experiments import stats
from scenesift.experiments.config import ExperimentConfig
from scenesift.experiments.results import ALL, read_results
from scenesift.experiments.runners import results_dir
from scenesift.experiments.studies import RunSpec, execute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("experiment", type=Path, help="the experiment's TOML")
    parser.add_argument("--seed", type=int, default=0, help="the run's repeat (its seed)")
    parser.add_argument("--fraction", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ExperimentConfig.load(args.experiment)
    started = time.perf_counter()
    run = RunSpec(run="retrain", study="variance", strategy="", seed=args.seed,
                  fraction=args.fraction)  # fmt: skip
    rows = execute(args.project, config.to_dict(), run)
    [now] = [r["value"] for r in rows if r["metric"] == "map50" and r.get("situation") == ALL]
    kept = stats.subset(read_results(results_dir(args.project, config)), "map50",
                        study="variance")  # fmt: skip
    kept = kept.loc[np.isclose(kept["fraction"].astype(float), args.fraction)
                    & (kept["seed"] == args.seed), "value"]  # fmt: skip
    was = f"{kept.iloc[0]:.4f}" if len(kept) else "not run"
    print(f"seed {args.seed}, fraction {args.fraction}, {args.threads} thread(s): mAP@0.5 "
          f"{now:.4f} now, {was} kept ({time.perf_counter() - started:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
