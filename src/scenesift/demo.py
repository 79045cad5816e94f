"""What ``make demo`` runs, end to end on a laptop CPU:

synthetic world -> project -> import -> coverage -> situation tagger (train, AUC,
pre-labels) -> detector on all labels (the full-data reference mAP) -> an experiment:
active learning vs random over seeds, plus the variance of random subsets -> the report,
in the project's ``reports/`` folder (``scenesift serve`` lists it).

Re-running is cheap and safe: the world is regenerated only when its settings changed, the
project is reused, re-importing the same world is a no-op, trained models are reused, and
the experiment skips the runs it already finished.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from scenesift.io.bdd import read_bdd
from scenesift.store import Store, StoreError
from scenesift.store.coverage import coverage
from scenesift.synth import (
    WorldConfig,
    contact_sheet,
    default_world_config,
    generate,
    read_generation,
)
from scenesift.tables import coverage_table, import_report_table, summary_table
from scenesift.ui import console, progress_bar, tracker

if TYPE_CHECKING:  # the models import torch: not needed by `--quick`
    import pandas as pd

    from scenesift.experiments.config import ExperimentConfig
    from scenesift.models.detector import DetectorConfig
    from scenesift.models.tagger import TaggerConfig


def _world_is_current(world: Path, frames: int, seed: int, config: WorldConfig) -> bool:
    """True when ``world`` holds a finished world made with these settings."""
    if not (world / "labels.json").exists():
        return False
    try:
        written, written_seed, written_frames = read_generation(world / "world.toml")
    except (OSError, ValueError, tomllib.TOMLDecodeError):
        return False
    return (written_seed, written_frames) == (seed, frames) and written == config


def run(
    out: Path,
    frames: int = 2000,
    seed: int = 0,
    workers: int = 2,
    quick: bool = False,
    world_config: WorldConfig | None = None,
) -> Path:
    """Steps 1-3 (world, project, import, coverage), then, unless ``quick``, the rest (see
    :func:`models_and_experiment`). ``world_config``: default the shipped world."""
    out = Path(out)
    world, project = out / "world", out / "project"
    config = world_config or default_world_config()
    console.rule("[bold]1. Synthetic driving world")
    if _world_is_current(world, frames, seed, config):
        console.print(f"Reusing {world} ({frames} frames, seed {seed}).")
    else:
        summary = generate(world, frames, seed=seed, config=config, workers=workers, progress=True)
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
    if quick:
        console.print(f"Project: [bold]{project}[/]  (try: .venv/bin/scenesift info -p {project})")
        return project
    models_and_experiment(out, project, workers)
    return project


#: The demo's experiment: small enough for ~10 minutes on 2 cores, big enough to show the
#: shape of the curves. The full-size study is in BENCHMARKS.md.
DEMO_EXPERIMENT = """\
name = "demo"
studies = ["variance", "strategies"]

[variance]
fractions = [0.1, 0.2, 0.3, 0.5]
repeats = 3

[strategies]
strategies = ["random", "least_confidence"]
seeds = 3
initial = 100
batch = 100
rounds = 5

[learner]
min_score = 0.2
slices = ["day", "night", "rain", "crowded"]
# the quick detector: 192x320 input (a quarter of the default's pixels, ~4x cheaper to
# embed and train) keeps the demo within ~12 minutes on 2 cores
detector = { epochs = 10, input_pixels = 61440 }

[runner]
engine = "local"
workers = 2
"""


def models_and_experiment(
    out: Path,
    project: Path,
    workers: int,
    experiment_toml: str = DEMO_EXPERIMENT,
    tagger_config: TaggerConfig | None = None,
) -> Path:
    """Steps 4-7: tagger, full-data detector, the experiment and the report; returns the
    report's path. ``experiment_toml`` and ``tagger_config``: smaller settings (tests)."""
    from dataclasses import replace

    from scenesift.experiments.config import ExperimentConfig
    from scenesift.experiments.runners import remove_experiment
    from scenesift.features.memory import keep_freed_memory
    from scenesift.models.detector import DetectorConfig

    keep_freed_memory()
    config_path = out / "experiment.toml"
    if not config_path.exists() or config_path.read_text() != experiment_toml:
        config_path.write_text(experiment_toml)
        remove_experiment(project, "demo")  # an older demo's runs are not comparable
    experiment = ExperimentConfig.load(config_path)
    experiment = replace(experiment, runner=replace(experiment.runner, workers=workers))

    with Store.open(project) as store:
        situation_tagger(store, tagger_config)
        full_map50 = full_data_detector(
            store, DetectorConfig(**experiment.learner.get("detector", {}))
        )
    table = run_demo_experiment(project, experiment)
    return write_report(out, project, table, full_map50)


def situation_tagger(store: Store, config: TaggerConfig | None = None) -> None:
    """Step 4: train (or reuse) the tagger, print its test quality, store its pre-labels."""
    from scenesift.models.tagger import TaggerConfig
    from scenesift.pipelines import tagger as tag

    console.rule("[bold]4. Situation tagger (seed 000)")
    try:
        tagger, path = tag.load(store)
        console.print(f"Reusing tagger {tagger.fingerprint}.")
    except StoreError:
        tagger, path = tag.train(store, config or TaggerConfig(schedule="frozen", epochs=3))
    results = tag.evaluate(store, tagger, plots=store.root / "reports" / "tagger")
    console.print(results.to_table())
    summary = tag.prelabel(store, tagger, path, progress=True)
    console.print(f"Pre-labelled {summary.frames:,} frames as {summary.source}.")


def full_data_detector(store: Store, config: DetectorConfig) -> float | None:
    """Step 5: train (or reuse) the detector on every labelled train frame, store its
    detections on every frame (the web app's frame view and dashboard, and the report's
    gap report, read them) and return its test mAP@0.5: the experiment's full-data
    reference."""
    from scenesift.pipelines import detector as det

    console.rule("[bold]5. Detector on all labels (the full-data reference)")
    try:
        detector, _ = det.load(store)
        if detector.config != config:
            raise StoreError("retrain with the experiment's settings")
        console.print(f"Reusing detector {detector.fingerprint}.")
    except StoreError:
        detector, _ = det.train(store, config)
    source, n = det.predict(store, detector, progress=True)
    console.print(f"Stored its detections on {n:,} frames as {source}.")
    frames = det.with_truth(store, "test")
    stored = {r.name: r.predicted_boxes for r in store.records(names={f.name for f in frames},
                                                               predictions=source)}  # fmt: skip
    # per situation: in the report (a table this wide does not fit a terminal)
    full, _ = det.evaluate(store, {f.name: stored[f.name] for f in frames}, "test", slices=False)
    console.print(full.to_table())
    return full.map50


def run_demo_experiment(project: Path, experiment: ExperimentConfig) -> pd.DataFrame:
    """Step 6: the experiment's unfinished runs; returns its whole results table."""
    from scenesift.experiments.results import read_results
    from scenesift.experiments.runners import run_experiment

    console.rule("[bold]6. Experiment: active learning vs random, variance of random subsets")
    with progress_bar() as bar:
        task = bar.add_task("experiment runs", total=None)

        def on_progress(p) -> None:
            bar.update(task, total=p.total, completed=p.done)

        results_dir = run_experiment(project, experiment, on_progress=on_progress)
    return read_results(results_dir)


def write_report(out: Path, project: Path, table: pd.DataFrame, full_map50: float | None) -> Path:
    """Step 7: the report, in the project's ``reports/`` folder (where ``scenesift serve``
    lists it), a link to it in ``out``, and the verdict on the terminal."""
    from scenesift.report import build_report, report_summary_table, verdict

    console.rule("[bold]7. Report")
    with Store.open(project) as store:
        path = project / "reports" / "report.html"
        report = build_report(store, path, results=table, full_map50=full_map50)
        console.print(report_summary_table(table, full_map50=full_map50))
    sentence = verdict(table, full_map50=full_map50)
    if sentence:
        console.print(f"[bold]Verdict:[/] {sentence}")
    link = _link(Path(out) / "report.html", report)
    console.print(f"Report: [bold]{report}[/]" + (f"  (also {link})" if link else ""))
    console.print(
        f"Browse the project: [bold].venv/bin/scenesift serve -p {project}[/] (the dashboard "
        "lists the report; each frame shows its truth and predicted boxes)"
    )
    return report


def _link(link: Path, target: Path) -> Path | None:
    """A symlink at ``link`` to the report in the project (where older demos wrote it), or
    None where the file system has no symlinks."""
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        # relative: the output folder can be moved or copied whole
        link.symlink_to(os.path.relpath(Path(target).resolve(), link.parent.resolve()))
    except OSError:
        return None
    return link


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="Stop after the import (no models, no experiment)."
    )
    args = parser.parse_args()
    run(args.out, args.frames, args.seed, args.workers, args.quick)


if __name__ == "__main__":
    main()
