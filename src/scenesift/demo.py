"""What ``make demo`` runs: synthetic world -> project -> import -> coverage.

Re-running is cheap and safe: the world is regenerated only when its settings changed, the
project is reused, and re-importing the same world is a no-op (imports are idempotent).
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from scenesift.io.bdd import read_bdd
from scenesift.store import Store
from scenesift.store.coverage import coverage
from scenesift.synth import contact_sheet, default_world_config, generate, read_generation
from scenesift.tables import coverage_table, import_report_table, summary_table
from scenesift.ui import console, tracker


def _world_is_current(world: Path, frames: int, seed: int) -> bool:
    """True when ``world`` holds a finished default world made with these settings."""
    if not (world / "labels.json").exists():
        return False
    try:
        config, written_seed, written_frames = read_generation(world / "world.toml")
    except (OSError, ValueError, tomllib.TOMLDecodeError):
        return False
    return (written_seed, written_frames) == (seed, frames) and config == default_world_config()


def run(out: Path, frames: int = 2000, seed: int = 0, workers: int = 2) -> Path:
    out = Path(out)
    world, project = out / "world", out / "project"
    console.rule("[bold]1. Synthetic driving world")
    if _world_is_current(world, frames, seed):
        console.print(f"Reusing {world} ({frames} frames, seed {seed}).")
    else:
        summary = generate(world, frames, seed=seed, workers=workers, progress=True)
        console.print(
            f"Generated {summary.n_frames} frames in {summary.n_drives} drives "
            f"in {summary.seconds:.1f} s."
        )
    sheet = contact_sheet(world, out / "contact_sheet.png")

    console.rule("[bold]2. Project and import")
    store = Store.open(project) if (project / "catalog.sqlite").exists() else Store.init(project)
    with store:
        batch = read_bdd(world / "labels.json", store.taxonomy, track=tracker("reading world"))
        report = store.ingest(batch)
        console.print(import_report_table(report, "import"))

        console.rule("[bold]3. Coverage")
        console.print(summary_table(store))
        console.print(coverage_table(coverage(store)))
    console.print(f"Contact sheet of the world: [bold]{sheet}[/]")
    console.print(f"Project: [bold]{project}[/]  (try: .venv/bin/scenesift info -p {project})")
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    run(args.out, args.frames, args.seed, args.workers)


if __name__ == "__main__":
    main()
