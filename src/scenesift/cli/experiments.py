"""``scenesift experiment`` (run, show, remove) and ``scenesift report``."""

from __future__ import annotations

from pathlib import Path

import typer

from scenesift import tables
from scenesift.cli.app import app
from scenesift.cli.common import PROJECT
from scenesift.store import Store
from scenesift.ui import console, progress_bar

experiment_app = typer.Typer(
    help="Experiments that measure whether active learning pays: variance over random "
    "subsets, strategies vs random over seeds. Results: one tidy Parquet table.",
    no_args_is_help=True,
)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("run")
def experiment_run(
    config: Path = typer.Argument(..., help="Experiment TOML (see docs/experiments.md)."),
    project: Path = PROJECT,
    engine: str | None = typer.Option(None, help="local (process pool) or ray."),
    workers: int | None = typer.Option(None, min=1, help="Parallel runs."),
    address: str | None = typer.Option(
        None, help="Ray: an existing cluster (auto, ray://host:10001); default: start one here."
    ),
    first: list[str] = typer.Option(
        [],
        "--first",
        help="Run this strategy's campaigns before the others' (its label as "
        "`experiment show` lists it, or its name), or a study's runs (variance, "
        "strategies, tagger); repeat for several.",
    ),
) -> None:
    """Run every unfinished run of an experiment (an interrupted one resumes)."""
    from scenesift.experiments.config import ExperimentConfig
    from scenesift.experiments.runners import run_experiment

    cfg = ExperimentConfig.load(config).with_runner(engine, workers, address)
    Store.open(project).close()  # a clear error before any work when it is not a project
    with progress_bar() as bar:
        task = bar.add_task(f"experiment {cfg.name}", total=None)

        def on_progress(p) -> None:
            bar.update(task, total=p.total, completed=p.done)
            if p.run:
                bar.console.print(tables.message("finished {} ({:.0f} s)", p.run, p.seconds))

        out = run_experiment(project, cfg, on_progress=on_progress, first=first)
    console.print(tables.experiment_finished(out))


MORE_VARIANCE = typer.Option(
    [],
    "--more-variance",
    help="Another experiment whose random subsets (other sizes, same detector and splits) "
    "join this one's: the violins, and random's labels to 95% in the verdict; repeatable.",
)


@experiment_app.command("show")
def experiment_show(
    name: str = typer.Argument(..., help="The experiment to show."),
    project: Path = PROJECT,
    more_variance: list[str] = MORE_VARIANCE,
) -> None:
    """What an experiment has finished so far: its tables, evaluation power and verdict.
    Runs nothing, so it can watch an experiment another process is running."""
    from scenesift.experiments.joining import check_settings, join_variance
    from scenesift.experiments.results import read_results
    from scenesift.experiments.runners import RESULTS_DIR, experiment_progress

    Store.open(project).close()
    progress = experiment_progress(project, name)
    results = None
    if more_variance and not progress.done:
        check_settings(project / RESULTS_DIR, name, more_variance)
    elif more_variance:
        results = join_variance(
            project / RESULTS_DIR, read_results(progress.results), more_variance
        )
    console.print(tables.experiment_progress(progress, results))


@experiment_app.command("remove")
def experiment_remove(
    name: str = typer.Argument(..., help="The experiment to delete."), project: Path = PROJECT
) -> None:
    """Delete an experiment's results and its simulated campaigns."""
    from scenesift.experiments.runners import remove_experiment

    n = remove_experiment(project, name)
    console.print(tables.message("Removed experiment {!r} ({} campaigns).", name, n))


@app.command("report")
def report_cmd(
    project: Path = PROJECT,
    experiment: str | None = typer.Option(
        None, help="Experiment whose results to include (default: the only/latest one)."
    ),
    campaign: str | None = typer.Option(None, help="Campaign for the galleries (default: latest)."),
    full_map50: float | None = typer.Option(
        None,
        help="Full-data mAP@0.5 for the 95% target (default: the median of the variance "
        "study's 100% runs).",
    ),
    more_variance: list[str] = MORE_VARIANCE,
    out: Path | None = typer.Option(None, help="Default: PROJECT/reports/report.html."),
) -> None:
    """One self-contained HTML file: learning curves, variance violins, per-class and
    per-situation curves, the tagger's AUCs, the situation gap report, picked frames."""
    from scenesift.errors import StoreError
    from scenesift.experiments.joining import join_variance
    from scenesift.experiments.results import latest_results
    from scenesift.experiments.runners import RESULTS_DIR
    from scenesift.report import build_report

    with Store.open(project) as store:
        results = latest_results(store.root, experiment)
        if more_variance:
            if results is None:
                raise StoreError("no experiment has finished a run: nothing to join to")
            results = join_variance(store.root / RESULTS_DIR, results, more_variance)
        with console.status("building the report"):
            path = build_report(
                store, out or store.root / "reports" / "report.html", results=results,
                full_map50=full_map50, campaign=campaign,
            )  # fmt: skip
    console.print(tables.report_built(results, full_map50, path))
