"""Tagger head variants on the cached backbone pyramid: is the head or the features the limit?

Each variant keeps seed 000's shape (per-pixel logits, then pooling over the image), trains
15 epochs with AdamW and pos_weight on the train split, keeps the epoch with the best
validation loss and prints test ROC-AUC. Needs the project's ``pyramid`` feature cache
(``scenesift detector train`` fills it). About 5-15 minutes per variant on 2 busy cores.

    .venv/bin/python benchmarks/explore_tagger_heads.py --project p5k
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

from scenesift.features import embed, split_pyramid
from scenesift.models import get_backbone
from scenesift.models.tagger import label_matrix
from scenesift.store import Store

#: name, pyramid levels (0: stride 8, 1: 16, 2: 32), hidden width (0: linear), pooling
VARIANTS = [
    ("s32 linear, avg (seed 000)", [2], 0, "avg"),
    ("s32 linear, LSE", [2], 0, "lse"),
    ("s32 MLP-256, avg", [2], 256, "avg"),
    ("s8+s16+s32 MLP-256, avg", [0, 1, 2], 256, "avg"),
]
FOCUS = ["fog", "roadworks", "close_participant", "far_participant", "pedestrian_present",
         "crowded"]  # fmt: skip


class Head(nn.Module):
    """Per-pixel logits on each chosen level, pooled per level, summed."""

    def __init__(self, channels: list[int], levels, hidden: int, pool: str, n: int) -> None:
        super().__init__()
        self.levels, self.pool = levels, pool

        def conv(c: int) -> nn.Module:
            if not hidden:
                return nn.Conv2d(c, n, 1)
            return nn.Sequential(nn.Conv2d(c, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, n, 1))

        self.heads = nn.ModuleList([conv(channels[lvl]) for lvl in levels])

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        out = 0
        for lvl, head in zip(self.levels, self.heads, strict=True):
            z = head(maps[lvl].float()).flatten(2)
            pooled = z.mean(2) if self.pool == "avg" else torch.logsumexp(z, 2) - np.log(z.shape[2])
            out = out + pooled
        return out


def train(data, channels, names, levels, hidden, pool, epochs=15) -> dict[str, float]:
    model = Head(channels, levels, hidden, pool, len(names))
    maps, y = data["train"]
    pos_weight = ((1 - y).sum(0) / y.sum(0).clamp(min=1)).clamp(1, 50)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    best = (float("inf"), None)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = order[i : i + 64]
            logits = model([m[idx] for m in maps])
            loss = F.binary_cross_entropy_with_logits(logits, y[idx], pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val_maps, val_y = data["val"]
            val = float(F.binary_cross_entropy_with_logits(model(val_maps), val_y))
        if val < best[0]:
            best = (val, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[1])
    test_maps, test_y = data["test"]
    with torch.no_grad():
        scores = torch.cat(
            [model([m[i : i + 256] for m in test_maps]) for i in range(0, len(test_y), 256)]
        ).numpy()
    t = test_y.numpy()
    return {
        s: roc_auc_score(t[:, j], scores[:, j])
        for j, s in enumerate(names)
        if 0 < t[:, j].sum() < len(t)
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone = get_backbone("efficientnet_lite0")
    data = {}
    with Store.open(args.project) as store:
        names = list(store.taxonomy.names)
        for split in ("train", "val", "test"):
            records = store.records(split=split)
            feats = embed(store, backbone, [r.name for r in records], layer="pyramid")
            levels = split_pyramid(feats.array, backbone)
            maps = [torch.from_numpy(np.ascontiguousarray(m)) for m in levels]
            data[split] = (maps, torch.from_numpy(label_matrix(records, names)[0]))
    channels = [m.shape[1] for m in data["train"][0]]
    print("| head | mean | " + " | ".join(FOCUS) + " | seconds |")
    print("| --- | ---: | " + " | ".join("---:" for _ in FOCUS) + " | ---: |")
    for name, levels, hidden, pool in VARIANTS:
        started = time.perf_counter()
        auc = train(data, channels, names, levels, hidden, pool)
        cells = " | ".join(f"{auc[s]:.3f}" for s in FOCUS)
        seconds = time.perf_counter() - started
        print(f"| {name} | {np.mean(list(auc.values())):.3f} | {cells} | {seconds:.0f} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
