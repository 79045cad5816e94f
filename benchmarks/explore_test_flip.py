"""What flip test-time augmentation buys on identical weights (issue 15): train the default
detector once per seed (or reuse ``--out``'s checkpoint), then evaluate the test split with
``test_flip`` off and on, mAP@0.5 over the classes with >= 50 test objects.

    .venv/bin/python benchmarks/explore_test_flip.py --project /tmp/det/p2k --seeds 0 1 2

Trains with ``test_flip`` off (validation on the plain pass), so the kept weights do not
depend on the option being measured.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from scenesift.features import keep_freed_memory
from scenesift.metrics.detection import evaluate_detection
from scenesift.models.backbones import at_input_size, get_backbone
from scenesift.models.detector import DetectorConfig, ObjectDetector
from scenesift.store import Store

MIN_OBJECTS = 50


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/explore_test_flip"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    args.out.mkdir(parents=True, exist_ok=True)
    with Store.open(args.project) as store:
        classes = list(store.taxonomy.classes)
        train, val, test = (
            [r for r in store.records(split=s) if r.boxes is not None]
            for s in ("train", "val", "test")
        )
        print("| seed | test flip off | on | gain |\n| ---: | ---: | ---: | ---: |")
        for seed in args.seeds:
            cfg = DetectorConfig(seed=seed, test_flip=False)
            backbone = at_input_size(get_backbone(cfg.backbone), cfg.input_size_for(train))
            path = args.out / f"seed{seed}.pt"
            if path.exists():
                det = ObjectDetector.load(path, backbone=backbone)
            else:
                det = ObjectDetector(classes, cfg)
                det.fit(train, val, store=store, backbone=backbone, progress=True)
                det.save(path)
            means = []
            for flip in (False, True):
                det.config = dataclasses.replace(det.config, test_flip=flip)
                res = evaluate_detection(test, det.predict(test, store=store), classes)
                big = [c for c in classes if res.get("AP50", c).n_instances >= MIN_OBJECTS]
                means.append(sum(res.get("AP50", c).value or 0.0 for c in big) / len(big))
            print(f"| {seed} | {means[0]:.3f} | {means[1]:.3f} | {means[1] - means[0]:+.3f} |")


if __name__ == "__main__":
    main()
