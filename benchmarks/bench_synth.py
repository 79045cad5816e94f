"""Synthetic world throughput (frames/s on one core) and what a default world contains.

    .venv/bin/python benchmarks/bench_synth.py --frames 5000

(a) rendering only (simulation + pixels + labels, no encoding), (b) the full ``generate``
(render + JPEG + labels.json) with one worker; then the per-situation positive counts and
per-class box counts of the generated world.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from scenesift.synth import WorldConfig, frame_rng, generate, render_frame, simulate_drive
from scenesift.synth.writer import drive_plan_lengths


def bench_render(cfg: WorldConfig, n_frames: int, seed: int) -> tuple[float, float]:
    """(wall frames/s, CPU frames/s) of simulation + rendering, no disk."""
    wall, cpu = time.perf_counter(), time.process_time()
    done = 0
    for i, n in enumerate(drive_plan_lengths(cfg, seed, n_frames)):
        for state in simulate_drive(cfg, seed, i, n):
            render_frame(state, frame_rng(seed, i, state.frame_index))
            done += 1
    return done / (time.perf_counter() - wall), done / (time.process_time() - cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep the world here (default: temp)")
    args = ap.parse_args()
    cfg = WorldConfig()

    render_fps, render_cpu_fps = bench_render(cfg, args.frames, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "world"
        cpu = time.process_time()
        summary = generate(out, args.frames, seed=args.seed, config=cfg, progress=False)
        gen_cpu_fps = summary.n_frames / (time.process_time() - cpu)
        gen_fps = summary.n_frames / summary.seconds
        size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6

    rare = summary.rare_situations(100)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"python {platform.python_version()}")  # fmt: skip
    print()
    print("| frames | image | drives | render only (frames/s) | generate, 1 worker (frames/s) "
          "| MB on disk | situations < 100 positives |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {summary.n_frames} | {cfg.width}x{cfg.height} | {summary.n_drives} "
        f"| {render_fps:.0f} (cpu {render_cpu_fps:.0f}) | {gen_fps:.0f} (cpu {gen_cpu_fps:.0f}) "
        f"| {size_mb:.1f} | {len(rare)}: {', '.join(rare) or '-'} |"
    )
    print()
    print("| situation | positive frames | share |")
    print("| --- | --- | --- |")
    for name, count in summary.situations.items():
        print(f"| {name} | {count} | {count / summary.n_frames:.1%} |")
    print()
    print("| class | boxes | per frame |")
    print("| --- | --- | --- |")
    for name, count in summary.classes.items():
        print(f"| {name} | {count} | {count / summary.n_frames:.2f} |")


if __name__ == "__main__":
    main()
