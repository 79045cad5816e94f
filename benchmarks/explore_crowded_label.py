"""How learnable is "crowded" under different definitions? (issue 3)

"crowded" is a threshold on a count of traffic participants. The synthetic world boxes a
participant for detection down to 90% occluded; whether those mostly hidden ones should
count towards a situation a labeller judges by eye is a labelling choice. This script
re-derives the label from each test frame's boxes (their ``occlusion`` attribute) under
several definitions and trains seed 000's head (a linear layer on the cached pooled
features of the frozen backbone, 20 passes, pos_weight) on each, printing test ROC-AUC.
It also prints the ROC-AUC of a perfect counter of the participants with occlusion <= 0.1
(what is plainly in view) against each definition. Needs the project's pooled feature cache
at the given input size (``scenesift tagger train --schedule frozen`` fills it).

    .venv/bin/python benchmarks/explore_crowded_label.py --project p640 --input-size 384x640
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from scenesift.features import embed
from scenesift.models import get_backbone
from scenesift.models.backbones import at_input_size
from scenesift.pipelines.tagger import with_truth
from scenesift.store import Store
from scenesift.synth import PARTICIPANTS

#: (max occlusion of a counted participant, participants needed)
DEFINITIONS = [(0.9, 8), (0.5, 8), (0.5, 6), (0.1, 6)]


def counts(records, max_occlusion: float) -> np.ndarray:
    return np.array([
        sum(b.category in PARTICIPANTS and b.attributes["occlusion"] <= max_occlusion
            for b in r.boxes or [])
        for r in records
    ])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", required=True)
    ap.add_argument("--input-size", default="192x320")
    ap.add_argument("--passes", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    size = tuple(int(v) for v in args.input_size.split("x"))
    backbone = at_input_size(get_backbone("efficientnet_lite0"), size)
    data = {}
    with Store.open(args.project) as store:
        for split in ("train", "test"):
            records = with_truth(store, split)
            feats = embed(store, backbone, [r.name for r in records], layer="pooled")
            data[split] = records, torch.from_numpy(np.asarray(feats.array, np.float32))
    in_view = counts(data["test"][0], 0.1)
    print(f"{'counted: occlusion <=':>22} {'min':>4} {'test rate':>9} {'head AUC':>9} "
          f"{'in-view counter AUC':>20}")  # fmt: skip
    for max_occ, n_min in DEFINITIONS:
        y = {s: torch.from_numpy((counts(data[s][0], max_occ) >= n_min).astype(np.float32))
             for s in data}  # fmt: skip
        pos_weight = ((1 - y["train"]).sum() / y["train"].sum()).clamp(1, 50)
        head = torch.nn.Linear(data["train"][1].shape[1], 1)
        opt = torch.optim.AdamW(head.parameters(), lr=3e-3, weight_decay=1e-4)
        x = data["train"][1]
        for _ in range(args.passes):
            for idx in torch.randperm(len(x)).split(32):
                loss = F.binary_cross_entropy_with_logits(
                    head(x[idx])[:, 0], y["train"][idx], pos_weight=pos_weight
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            score = head(data["test"][1])[:, 0].numpy()
        yt = y["test"].numpy()
        print(f"{max_occ:>22} {n_min:>4} {yt.mean():>9.3f} {roc_auc_score(yt, score):>9.3f} "
              f"{roc_auc_score(yt, in_view):>20.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
