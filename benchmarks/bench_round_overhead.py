"""Loop cost (issue 16): how much of a campaign round is not training.

    .venv/bin/python benchmarks/bench_round_overhead.py                    # a 600-frame world
    .venv/bin/python benchmarks/bench_round_overhead.py --world /tmp/fleet  # a synth output

Builds a project from a fleet-like world (``benchmarks/fleet_world.toml``; generated unless
``--world`` names one), imports its truth as oracle, caches the backbone features once (as
``experiment run`` does before its runs; reported, not counted in a round) and runs one
simulated detector campaign. Every part of a round is timed by wrapping the function that
does it: training (``learner.fit``), evaluation on the test split (``learner.evaluate``),
pool inference (``learner.pool_outputs``), scoring and selection (``build_pool`` +
``strategy.select``), catalog reads (the frame table, reference splits) and store writes
(round rows, picks, the oracle's reveal). Overhead = round wall time - training. Prints a
markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TIMES: dict[str, float] = defaultdict(float)


def timed(part: str, fn: Callable) -> Callable:
    """``fn`` with its wall time added to ``TIMES[part]``."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[part] += time.perf_counter() - start

    return wrapper


def instrument() -> None:
    """Wrap each part of a round where the campaign calls it."""
    import scenesift.al.campaign as campaign
    from scenesift.al.learners import DetectorLearner
    from scenesift.al.strategies import make_strategy
    from scenesift.store import campaigns as catalog

    DetectorLearner.fit = timed("train", DetectorLearner.fit)
    DetectorLearner.evaluate = timed("evaluate (test split)", DetectorLearner.evaluate)
    DetectorLearner.pool_outputs = timed("pool inference", DetectorLearner.pool_outputs)
    campaign.build_pool = timed("scoring + selection", campaign.build_pool)

    def strategy(self):
        s = make_strategy(self.config.strategy)
        s.select = timed("scoring + selection", s.select)
        return s

    campaign.Campaign._strategy = strategy
    campaign.Campaign._frame_table = timed("catalog reads", campaign.Campaign._frame_table)
    campaign.Campaign._reference = timed("catalog reads", campaign.Campaign._reference)
    for name in ("add_round", "finish_round", "reveal", "set_status"):
        setattr(catalog, name, timed("store writes", getattr(catalog, name)))


def build_project(world: Path, out: Path):
    from scenesift.io.formats import read_dataset
    from scenesift.store import Store

    store = Store.init(out / "project")
    batch = read_dataset("bdd", world / "labels.json", store.taxonomy, images=world / "images")
    store.ingest(batch, label_source="oracle")
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, help="a `scenesift synth` output (default: generate)")
    ap.add_argument("--frames", type=int, default=600, help="frames to generate")
    ap.add_argument("--strategy", default="least_confidence")
    ap.add_argument("--initial", type=int, default=50)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=4, help="the campaign's max_rounds")
    ap.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="detector epochs per round (default: the detector's step schedule)",
    )
    args = ap.parse_args()

    import torch

    from scenesift.al.campaign import Campaign, CampaignConfig
    from scenesift.al.learners import DetectorLearner
    from scenesift.features import embed
    from scenesift.features.memory import keep_freed_memory
    from scenesift.synth import WorldConfig, generate

    keep_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = args.world
        if world is None:
            world = tmp / "world"
            fleet = WorldConfig.from_toml(ROOT / "fleet_world.toml")
            generate(world, args.frames, seed=0, config=fleet, progress=False)
        store = build_project(world, tmp)
        detector = {"epochs": args.epochs} if args.epochs else {}
        learner = {"detector": detector, "slices": False}
        start = time.perf_counter()
        backbone = DetectorLearner(**learner).backbone(list(store.records(split="train")))
        for split in ("train", "val", "test"):
            embed(store, backbone, split=split, layer="pyramid", progress=False)
        embed(store, backbone, split="train", layer="pooled", progress=False)
        features = time.perf_counter() - start

        instrument()
        config = CampaignConfig(
            strategy={"name": args.strategy}, initial=args.initial, batch=args.batch,
            stopping={"max_rounds": args.rounds}, learner=learner,
        )  # fmt: skip
        campaign = Campaign.create(store, "overhead", config)
        start = time.perf_counter()
        campaign.run()
        total = time.perf_counter() - start
        rounds = campaign.rounds()
        n_pool = max(r.metrics.get("n_pool", 0) for r in rounds)
        labelled = [r.metrics.get("n_labelled", 0) for r in rounds]
        store.close()

    trained = sum(1 for r in rounds if r.model_fingerprint)
    print(f"\n{world.name}: {trained} trained rounds, labelled {labelled}, pool "
          f"{n_pool:,} frames, {torch.get_num_threads()} threads; features cached once in "
          f"{features:.1f} s (not counted)\n")  # fmt: skip
    parts = ["train", "evaluate (test split)", "pool inference", "scoring + selection",
             "catalog reads", "store writes"]  # fmt: skip
    other = total - sum(TIMES[p] for p in parts)
    print("| part | seconds (all rounds) | per trained round | share of round time |")
    print("| --- | --- | --- | --- |")
    for part, s in [*((p, TIMES[p]) for p in parts), ("other (bookkeeping)", other)]:
        print(f"| {part} | {s:.2f} | {s / max(trained, 1):.2f} | {s / total:.1%} |")
    overhead = total - TIMES["train"]
    print(f"| **round total** | {total:.2f} | {total / max(trained, 1):.2f} | 100% |")
    print(f"\noverhead (everything but training): {overhead:.2f} s = {overhead / total:.1%} of "
          f"the round; without the test-split evaluation: "
          f"{(overhead - TIMES['evaluate (test split)']) / total:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
