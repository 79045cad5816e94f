"""Gradual fine-tuning of the tagger: on the cached trunk vs on the images, in one run.

    .venv/bin/python benchmarks/bench_tagger_trunk.py --frames 512 --epochs 4

Both runs fit the same ``gradual`` tagger (same seed, frames and learning rates) on a
fresh synthetic world; epoch 0 trains the head on cached pooled features, each later epoch
unfreezes one more block group. On the images, every fine-tuning epoch decodes the frames
and runs the whole backbone forward; on the trunk (``cache_trunk``, the default), the first
one computes ``Backbone.trunk(x, K)`` once into the feature cache (K = epochs - 1) and
every epoch runs only the top K groups. Prints a markdown table for BENCHMARKS.md: seconds
per epoch, the ratio, and how far the two runs' losses differ (float16 trunk).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from bench_embed import make_project  # the synthetic 320x192 world
from scenesift.models.tagger import SituationTagger, TaggerConfig


def fit(store, cache_trunk: bool, epochs: int) -> SituationTagger:
    cfg = TaggerConfig(schedule="gradual", epochs=epochs, patience=epochs, cache_trunk=cache_trunk)
    train = [r for r in store.records(split="train") if r.situations]
    val = [r for r in store.records(split="val") if r.situations]
    return SituationTagger(store.taxonomy.names, cfg).fit(train, val, store=store, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        store = make_project(Path(tmp), args.frames)
        fit(store, True, 1)  # the pooled cache both runs share (epoch 0), outside the timing
        images = fit(store, False, args.epochs)
        trunk = fit(store, True, args.epochs)
        n_train = len([r for r in store.records(split="train") if r.situations])
    print(f"{n_train} train frames, EfficientNet-Lite0 at 192x320, {args.threads} thread(s), "
          f"gradual, {args.epochs} epochs (trunk: K = {args.epochs - 1} groups)")  # fmt: skip
    print("| epoch | groups training | on images (s) | on the trunk (s) | images / trunk "
          "| train loss: images, trunk |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for a, b in zip(images.history, trunk.history, strict=True):
        note = " (computes the trunk)" if a.epoch == 1 else ""
        ratio = a.seconds / b.seconds
        print(f"| {a.epoch}{note} | {a.trainable_groups} | {a.seconds:.1f} | {b.seconds:.1f} "
              f"| {ratio:.2f} | {a.train_loss:.4f}, {b.train_loss:.4f} |")  # fmt: skip
    fine = slice(1, None)
    total_a = sum(h.seconds for h in images.history[fine])
    total_b = sum(h.seconds for h in trunk.history[fine])
    print(f"| epochs 1-{args.epochs - 1} | | {total_a:.1f} | {total_b:.1f} "
          f"| {total_a / total_b:.2f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
