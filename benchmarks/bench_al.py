"""Active-learning strategies at fleet scale, on a synthetic pool.

    .venv/bin/python benchmarks/bench_al.py                      # 1,000,000 frames
    .venv/bin/python benchmarks/bench_al.py --frames 100000      # quick

(a) strategies' ``select`` of ``budget`` frames: uncertainty scoring + top-k on the pool's
situation scores (16 sigmoids per frame) and detections (~5 boxes per frame, 6 classes),
best of ``--repeats``; dedup, balancing and a fusion once each. (b) ``kcenter_approx``
picking ``budget`` frames from the 128-d embeddings, in a child process so its peak RSS
(``getrusage``, pool included) is its own. (c) covering radius of the approximation vs the
exact greedy (and a random batch) on a ``--subset`` of the pool, with the budget scaled to
the subset. Embeddings: ``--clusters`` Gaussian clusters ("scenes") whose noise has a
decaying spectrum, like pooled CNN features.
Prints a markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import timeit

import numpy as np

from scenesift.al.diversity import covering_radius, kcenter_approx, kcenter_greedy
from scenesift.al.pool import Detections, Pool
from scenesift.al.strategies import make_strategy

DIMS = 128
SITUATIONS = 16
CLASSES = 6


def embeddings(n: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = (rng.normal(size=(clusters, DIMS)) * 3).astype(np.float32)
    scale = (1 / np.sqrt(np.arange(1, DIMS + 1))).astype(np.float32)
    label = rng.integers(0, clusters, n)
    x = np.empty((n, DIMS), np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        x[s:e] = centres[label[s:e]] + rng.standard_normal((e - s, DIMS), np.float32) * scale
    return x


def scored_pool(n: int, seed: int) -> Pool:
    """Situation sigmoids and detections for ``n`` frames (no embeddings)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, SITUATIONS)).astype(np.float32)
    frame = np.repeat(np.arange(n), rng.poisson(5, n))
    m = len(frame)
    class_probs = rng.dirichlet(np.full(CLASSES, 0.3), m).astype(np.float32)
    xy = rng.uniform(0, 300, (m, 2)).astype(np.float32)
    det = Detections(
        frame=frame,
        scores=class_probs.max(axis=1),
        class_probs=class_probs,
        boxes=np.hstack([xy, xy + rng.uniform(5, 60, (m, 2)).astype(np.float32)]),
    )
    return Pool(
        frame_ids=np.arange(n),
        drives=(np.arange(n) // 200).astype(str).astype(object),
        timestamps=(np.arange(n) % 200) / 10.0,
        situations=tuple(f"s{i}" for i in range(SITUATIONS)),
        situation_scores=1 / (1 + np.exp(-logits)),
        classes=tuple(f"c{i}" for i in range(CLASSES)),
        detections=det,
        labelled_situation_counts={f"s{i}": 50 * i for i in range(SITUATIONS)},
        labelled_class_counts={f"c{i}": 400 * i for i in range(CLASSES)},
        n_labelled=1000,
    )


def best_time(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (the least disturbed by other jobs)."""
    return min(timeit.repeat(fn, number=1, repeat=repeats))


def uncertainty_rows(args: argparse.Namespace) -> tuple[list[tuple[str, str]], int]:
    """Time score + top-k through ``select`` for situation and detection heuristics."""
    pool = scored_pool(args.frames, args.seed)
    assert pool.detections is not None
    rng = np.random.default_rng(args.seed)
    rows = []
    fusion = {
        "name": "fusion",
        "parts": [
            {"name": "least_confidence", "target": "detections", "weight": 0.7},
            {"name": "balance_situations", "weight": 0.3},
        ],
        "dedup": {"per_drive": 2, "window": 10.0},
    }
    for spec, repeats in (
        ({"name": "least_confidence", "target": "situations"}, args.repeats),
        ({"name": "entropy", "target": "situations", "agg": "max"}, args.repeats),
        ({"name": "least_confidence", "target": "detections"}, args.repeats),
        ({"name": "margin", "target": "detections", "agg": "mean"}, args.repeats),
        ({"name": "entropy", "target": "detections", "agg": "topk_mean", "k": 3}, args.repeats),
        ({"name": "entropy", "target": "situations", "dedup": {"per_drive": 2}}, 1),
        ({"name": "balance_situations"}, 1),
        ({"name": "balance_classes"}, 1),
        (fusion, 1),
    ):
        strategy = make_strategy(spec)
        t = best_time(lambda s=strategy: s.select(pool, args.budget, rng), repeats)
        rows.append((f"`{strategy.label}`: top-{args.budget:,}", f"{t:.2f} s"))
    return rows, len(pool.detections.frame)


def child_kcenter(args: argparse.Namespace) -> None:
    """Runs in a subprocess: generate the pool, pick, print time and peak RSS as JSON."""
    x = embeddings(args.frames, args.clusters, args.seed)
    rss_pool = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    picks, _ = kcenter_approx(x, args.budget, rng=np.random.default_rng(args.seed))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    assert len(np.unique(picks)) == args.budget
    print(json.dumps({"seconds": seconds, "peak_gib": peak / 2**20, "pool_gib": rss_pool / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--subset", type=int, default=100_000)
    parser.add_argument("--subset-budget", type=int, default=None,
                        help="picks on the subset (default: budget x subset / frames)")  # fmt: skip
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child-kcenter", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_kcenter:
        child_kcenter(args)
        return

    n, k = args.frames, args.budget
    load = os.getloadavg()[0]
    rows, boxes = uncertainty_rows(args)

    out = subprocess.run(
        [sys.executable, __file__, "--child-kcenter", "--frames", str(n), "--budget", str(k),
         "--clusters", str(args.clusters), "--seed", str(args.seed)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    child = json.loads(out.stdout.strip().splitlines()[-1])
    rows.append((f"kcenter_approx: {k:,} of {n:,} x {DIMS}-d", f"{child['seconds']:.1f} s"))
    rows.append(
        ("  peak RSS of that process (pool alone)",
         f"{child['peak_gib']:.2f} GiB ({child['pool_gib']:.2f} GiB)")
    )  # fmt: skip

    m = min(args.subset, n)
    km = args.subset_budget or max(1, round(k * m / n))
    x = embeddings(m, args.clusters, args.seed + 1)
    start = time.perf_counter()
    exact, _ = kcenter_greedy(x, km, rng=np.random.default_rng(1))
    t_exact = time.perf_counter() - start
    start = time.perf_counter()
    approx, _ = kcenter_approx(x, km, rng=np.random.default_rng(1))
    t_approx = time.perf_counter() - start
    start = time.perf_counter()
    approx32, _ = kcenter_approx(x, km, rng=np.random.default_rng(1), dims=32)
    t_approx32 = time.perf_counter() - start
    random = np.random.default_rng(1).choice(m, km, replace=False)
    r_exact, r_approx, r_32, r_random = (
        covering_radius(x, s) for s in (exact, approx, approx32, random)
    )
    rows += [
        (f"covering radius, {km:,} of {m:,}: exact greedy", f"{r_exact:.3f} ({t_exact:.1f} s)"),
        (
            "  kcenter_approx (default)",
            f"{r_approx:.3f} ({t_approx:.1f} s), {r_approx / r_exact:.3f}x",
        ),
        (
            "  kcenter_approx, PCA to 32 dims",
            f"{r_32:.3f} ({t_approx32:.1f} s), {r_32 / r_exact:.3f}x",
        ),
        ("  random batch", f"{r_random:.3f}, {r_random / r_exact:.3f}x"),
    ]

    print(f"\n```bash\n.venv/bin/python {' '.join(sys.argv)}\n```\n")
    print(f"{n:,} frames, {boxes:,} detections, {SITUATIONS} situations, {CLASSES} classes, "
          f"{args.clusters} clusters; load average {load:.1f} at the start\n")  # fmt: skip
    print("| measurement | result |\n| --- | ---: |")
    for name, value in rows:
        cell = name.replace("|", "\\|")  # a pipe inside a table cell, even in a code span
        print(f"| {cell} | {value} |")


if __name__ == "__main__":
    main()
