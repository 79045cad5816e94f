"""Why do a few detector trainings reach twice the mAP of the rest? Per training seed, on the
whole train pool: the validation-loss curve, the epoch early stopping keeps, test mAP@0.5 of
that epoch against the last epoch's (the same fit without a validation split), and the kept
model's AP@0.5 per class with the class's test instances.

    .venv/bin/python benchmarks/explore_detector_seeds.py --project demo-output/project \
        --seeds 7,0,28,1

Uses the full-mode experiment's learner (frozen Lite0 pyramid, 10 epochs, min_score 0.2);
about a minute per seed and variant on 2 cores.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from scenesift.al.learners import DetectorLearner
from scenesift.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, required=True)
    ap.add_argument("--seeds", default="7,0,28,1")
    ap.add_argument("--epochs", type=int, default=10)
    args = ap.parse_args()
    learner = DetectorLearner(min_score=0.2, detector={"epochs": args.epochs}, slices=False)
    with Store.open(args.project) as store:
        boxed = {s: [r for r in store.records(split=s) if r.boxes is not None]
                 for s in ("train", "val", "test")}  # fmt: skip
        counts = Counter(b.category for r in boxed["test"] for b in r.boxes)
        classes = [c for c in store.taxonomy.classes if counts[c]]
        print("| seed | validation loss per epoch | kept | mAP@0.5 kept | mAP@0.5 last epoch | "
              + " | ".join(f"{c} ({counts[c]})" for c in classes) + " |")  # fmt: skip
        print("| ---: | --- | ---: | ---: | ---: |" + " ---: |" * len(classes))
        for seed in (int(s) for s in args.seeds.split(",")):
            learner.config = replace(learner.config, seed=seed)
            [kept] = learner.fit(store, boxed["train"], boxed["val"])
            losses = [e.val_loss for e in kept.history]
            [last] = learner.fit(store, boxed["train"], [])
            m = learner.evaluate(kept, store, boxed["test"])
            per_class = " | ".join(f"{m['ap50_per_class'][c]:.3f}" for c in classes)
            print(f"| {seed} | {' '.join(f'{v:.3f}' for v in losses)} | {int(np.argmin(losses))} "
                  f"| {m['map50']:.3f} "
                  f"| {learner.evaluate(last, store, boxed['test'])['map50']:.3f} | {per_class} |",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
