"""Does the detector learn more per label when it also trains on its own confident
detections on the unlabelled pool (pseudo-labels, self-training)? Issue 16's 95% target
fails on the common classes (car, pedestrian, truck still gain from every labelled frame
at 600 of the fleet pool's 1,640), which a detector's confident boxes cover best.

On a project whose features are cached (the fleet-power study's), for a random labelled
set of ``--labelled`` pool frames: train the default detector on it (A), predict the rest
of the pool, keep detections scoring at least each ``--thresholds`` value as boxes, train
again on the labelled frames plus those pseudo-labelled ones (B), and print both models'
mAP@0.5 and AP@0.5 per class on the test split. The pseudo-labelled frames take no
labelling budget, so B is what a campaign's learner would gain at the same budget; the
full-data reference (every frame labelled) is unchanged. ``--ignore-below S`` also keeps
detections scoring from S up to the threshold as ignore regions (``learner.pseudo_ignore``);
``--repeat R`` (an integer, or ``auto``) has B read the labelled frames R times
(``learner.pseudo_repeat``).

    .venv/bin/python benchmarks/explore_pseudo_labels.py /tmp/fleet-power/project \
        --labelled 600 --seed 0 --thresholds 0.3,0.5 [--ignore-below 0.2] [--repeat auto]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from scenesift.al.learners import DetectorLearner
from scenesift.metrics.detection import evaluate_detection
from scenesift.models.detector import DetectorConfig, ObjectDetector
from scenesift.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--labelled", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--thresholds", default="0.3,0.5",
                        help="detection scores kept as pseudo-labels, comma-separated")  # fmt: skip
    parser.add_argument("--ignore-below", type=float, default=None,
                        help="detections from this score up to the threshold become "
                        "ignore regions (default: none)")  # fmt: skip
    parser.add_argument("--repeat", default="1",
                        help="times B reads each labelled frame: an integer or auto "
                        "(default: 1)")  # fmt: skip
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    with Store.open(args.project) as store:
        pool = [r for r in store.records(split="train") if r.boxes is not None]
        val = [r for r in store.records(split="val") if r.boxes is not None]
        test = [r for r in store.records(split="test") if r.boxes is not None]
        order = np.random.default_rng(args.seed).permutation(len(pool))
        labelled = [pool[i] for i in order[: args.labelled]]
        rest = [pool[i] for i in order[args.labelled :]]
        classes = store.taxonomy.classes
        cfg = DetectorConfig(seed=args.seed)

        def train_and_score(name: str, frames: list) -> ObjectDetector:
            started = time.perf_counter()
            model = ObjectDetector(classes, cfg).fit(frames, val, store=store, progress=False)
            res = evaluate_detection(test, model.predict(test, store=store), classes)
            per_class = ", ".join(f"{c} {v or 0:.3f}" for c, v in res.per_class().items())
            print(f"{name}: mAP@0.5 {res.map50:.4f} ({per_class}; "
                  f"{time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
            return model

        a = train_and_score(f"A {args.labelled} labelled (seed {args.seed})", labelled)
        truth = sum(len(r.boxes) for r in rest)
        for tau in thresholds:
            # the loop's own pseudo-labelling (learner.pseudo_labels), so the probe measures it
            learner = DetectorLearner(
                pseudo_labels=tau,
                pseudo_ignore=args.ignore_below,
                pseudo_repeat=args.repeat if args.repeat == "auto" else int(args.repeat),
            )
            pseudo = learner.pseudo_labelled(a, store, rest)
            times = learner.repeats(len(labelled), len(pseudo))
            kinds = [bool(b.attributes.get("iscrowd")) for r in pseudo for b in r.boxes]
            ignored = f", {sum(kinds)} ignore regions from {args.ignore_below}" * any(kinds)
            train_and_score(
                f"B + {len(rest)} pseudo-labelled at score >= {tau} ({kinds.count(False)} "
                f"boxes{ignored}; the truth has {truth}; labelled frames read {times}x)",
                labelled * times + pseudo,
            )


if __name__ == "__main__":
    main()
