"""How well could *any* tagger rank the object-level situations from what the camera shows?

The synthetic world labels ``pedestrian_present``, ``crowded`` (>= 8 participants) and
``far_participant`` from every object it keeps as a box: down to 5 px tall and 90%
occluded. This scores each test frame by counting the ground-truth objects that are at
least ``h`` px tall and not flagged occluded (an oracle that sees exactly those objects
perfectly) and reports the ROC-AUC of that count against the situation label: an upper
bound for a tagger that cannot resolve objects below ``h`` px.

    .venv/bin/python benchmarks/bench_tagger_ceiling.py --project p5k
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from scenesift.store import Store

PARTICIPANTS = {"car", "truck", "pedestrian", "cyclist", "golf_cart"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--heights", default="0,6,8,10,12,16")
    args = ap.parse_args()
    with Store.open(args.project) as store:
        frames = [r for r in store.records(split=args.split) if r.boxes is not None]
    far_m = 40.0

    def label(name: str) -> np.ndarray:
        return np.array([bool(r.situations.get(name)) for r in frames])

    print(f"{len(frames)} {args.split} frames; ROC-AUC of a count of visible objects")
    print("| min height (px) | pedestrian_present | crowded | far_participant |")
    print("| ---: | ---: | ---: | ---: |")
    for h in (float(x) for x in args.heights.split(",")):
        ped, crowd, far = [], [], []
        for r in frames:
            seen = [
                b for b in r.boxes
                if b.category in PARTICIPANTS and b.y2 - b.y1 >= h and not b.occluded
            ]  # fmt: skip
            ped.append(sum(b.category == "pedestrian" for b in seen))
            crowd.append(len(seen))
            far.append(sum((b.attributes or {}).get("distance", 0) > far_m for b in seen))
        aucs = [
            roc_auc_score(label(s), x)
            for s, x in (("pedestrian_present", ped), ("crowded", crowd), ("far_participant", far))
        ]
        print(f"| {h:g} | " + " | ".join(f"{a:.3f}" for a in aucs) + " |")


if __name__ == "__main__":
    main()
