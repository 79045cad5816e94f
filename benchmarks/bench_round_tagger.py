"""Time the round's situation tagger (``DetectorLearner(situations=True)``): fitting the
frozen head on the labelled frames' cached pooled features, then scoring the rest of the
pool, at two labelled-set sizes, on a project whose features are cached (the fleet-power
study's, for example). Prints seconds, to set against the round's detector training.

    .venv/bin/python benchmarks/bench_round_tagger.py /tmp/fleet-power/project
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from scenesift.al.learners import DetectorLearner
from scenesift.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--labelled", type=int, nargs="*", default=[100, 600])
    args = parser.parse_args()
    learner = DetectorLearner(situations=True)
    with Store.open(args.project) as store:
        pool = [r for r in store.records(split="train") if r.boxes is not None]
        val = [r for r in store.records(split="val") if r.boxes is not None]
        for n in args.labelled:
            started = time.perf_counter()
            tagger = learner.fit_tagger(store, pool[:n], val)
            fit = time.perf_counter() - started
            started = time.perf_counter()
            learner.situation_scores(tagger, store, pool[n:])
            score = time.perf_counter() - started
            print(f"{n} labelled frames: fit {fit:.2f} s; scores on {len(pool) - n} pool frames "
                  f"{score:.2f} s; situations it can say: {len(tagger.trained)} of "
                  f"{len(tagger.situations)}")  # fmt: skip


if __name__ == "__main__":
    main()
