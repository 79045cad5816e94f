"""Embedding throughput: the end-to-end `embed` pipeline vs the raw forward, in one run.

    .venv/bin/python benchmarks/bench_embed.py --frames 256

(a) raw forward of the model `embed` runs (BatchNorm folded, channels_last, inference
mode) on preprocessed tensors already in memory; (b) `embed` on real 320x192 JPEG files
(decode + resize + normalise in DataLoader workers + forward + cache write), for several
worker counts; (c) the same raw forward in NCHW, and both formats without BN folding.
Each measurement is the best of ``--repeats`` after a warm-up (oneDNN builds its kernels
on the first call per batch shape). Prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from scenesift.features import embed
from scenesift.features.memory import keep_freed_memory
from scenesift.models import get_backbone
from scenesift.models.backbones import Backbone
from scenesift.models.images import FrameImages
from scenesift.records import FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store


def make_project(root: Path, n: int) -> Store:
    """A project of ``n`` 320x192 JPEG frames: the synthetic world if available, else
    random road-like pictures (smooth gradients and shapes, so JPEGs have realistic size)."""
    try:
        from scenesift.io.formats import read_dataset
        from scenesift.synth import generate

        generate(root / "world", n, seed=0, progress=False)
        store = Store.init(root / "proj")
        batch = read_dataset("bdd", root / "world" / "labels.json", store.taxonomy,
                             images=root / "world" / "images")  # fmt: skip
        store.ingest(batch)
        return store
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        drive = f"drive{i // 32}"
        path = root / "images" / drive / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        sky = np.linspace(rng.integers(60, 200), rng.integers(0, 120), 192)[:, None, None]
        pixels = np.broadcast_to(sky, (192, 320, 3)) + rng.normal(0, 8, (192, 320, 3))
        im = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(im)
        for _ in range(8):
            x, y = rng.integers(0, 300), rng.integers(60, 180)
            draw.rectangle((x, y, x + rng.integers(8, 60), y + rng.integers(8, 40)),
                           fill=tuple(int(c) for c in rng.integers(0, 255, 3)))  # fmt: skip
        im.save(path, quality=90)
        frames.append(FrameRecord(name=f"{drive}/{i:05d}.jpg", path=path, drive=drive,
                                  width=320, height=192, timestamp=float(i)))  # fmt: skip
    store = Store.init(root / "proj")
    store.ingest(ImportBatch(frames, root / "images", ImportReport("bench", n)))
    return store


def raw_forward(model: Backbone, batches: list[torch.Tensor]) -> float:
    """frames/s of the forward pass over preprocessed in-memory ``batches``."""
    with torch.inference_mode():
        start = time.perf_counter()
        for b in batches:
            model(b).mean(dim=(2, 3))
        return sum(len(b) for b in batches) / (time.perf_counter() - start)


def warm_up(model: Backbone, batches: list[torch.Tensor]) -> None:
    """oneDNN builds its kernels on the first call per batch shape: not part of a rate."""
    with torch.inference_mode():
        for b in {tuple(b.shape): b for b in batches}.values():
            model(b)


def pipeline(store: Store, backbone: Backbone, batch_size: int, workers: int) -> float:
    """frames/s of `embed` computing every frame (the cache is emptied first)."""
    with store.transaction() as c:
        c.execute("DELETE FROM features")
        c.execute("DELETE FROM arrays")
    result = embed(store, backbone, batch_size=batch_size, workers=workers, progress=False)
    assert result.computed == store.count_frames()
    return result.throughput


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", default="0,1,2", help="worker counts to try, comma-separated")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; best is kept")
    ap.add_argument(
        "--malloc",
        choices=["keep", "default"],
        default="keep",
        help="keep: glibc keeps freed memory (what `scenesift embed` does)",
    )
    args = ap.parse_args()
    if args.malloc == "keep":
        keep_freed_memory()

    backbone = get_backbone(args.backbone)
    workers = [int(x) for x in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = make_project(Path(tmp), args.frames)
        ds = FrameImages([r.path for r in store.records()], backbone.preprocessing)
        nchw = list(torch.split(torch.stack([ds[i] for i in range(len(ds))]), args.batch_size))
        last = [b.contiguous(memory_format=torch.channels_last) for b in nchw]
        raw = {  # name -> (model, its input batches)
            "raw forward, channels_last, BN folded (the model embed runs)": (
                backbone.for_inference(), last),
            "raw forward, NCHW, BN folded": (
                backbone.for_inference().to(memory_format=torch.contiguous_format), nchw),
            "raw forward, channels_last, BN not folded": (backbone, last),
            "raw forward, NCHW, BN not folded": (
                get_backbone(args.backbone, channels_last=False), nchw),
        }  # fmt: skip
        for model, batches in raw.values():
            warm_up(model, batches)
        rates: dict[str, list[float]] = {}
        # Interleaved rounds: other load on the machine hits every measurement alike.
        for _ in range(args.repeats):
            for name, (model, batches) in raw.items():
                rates.setdefault(name, []).append(raw_forward(model, batches))
            for w in workers:
                name = f"embed pipeline, workers={w} (decode + preprocess + forward + cache)"
                rates.setdefault(name, []).append(pipeline(store, backbone, args.batch_size, w))
        store.close()

    best = {name: max(v) for name, v in rates.items()}
    names = list(best)
    raw_cl, raw_nchw = best[names[0]], best[names[1]]
    piped = {w: best[names[len(raw) + i]] for i, w in enumerate(workers)}
    best_w = max(piped, key=piped.get)
    h, w = backbone.preprocessing.size
    print(
        f"\n{args.backbone}, {args.frames} frames of {w}x{h} JPEG, batch {args.batch_size}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, malloc {args.malloc}, "
        f"best of {args.repeats} interleaved rounds\n"
    )
    print("| measurement | frames/s (best) | all rounds |\n| --- | ---: | --- |")
    for name, fps in best.items():
        print(f"| {name} | {fps:.1f} | {', '.join(f'{r:.1f}' for r in rates[name])} |")
    print(f"| **pipeline / raw forward** (workers={best_w}) | **{piped[best_w] / raw_cl:.2f}** | |")
    print(f"| channels_last / NCHW (BN folded) | {raw_cl / raw_nchw:.2f} | |")
    print(f"| channels_last / NCHW (BN not folded) | "
          f"{best[names[2]] / best[names[3]]:.2f} | |")  # fmt: skip


if __name__ == "__main__":
    main()
