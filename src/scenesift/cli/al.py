"""``scenesift al`` (campaigns: start, resume, status, import-labels, strategies) and
``scenesift select`` (a batch from your own model's predictions)."""

from __future__ import annotations

from pathlib import Path

import typer

from scenesift import tables
from scenesift.al.campaign import LABELERS, Campaign
from scenesift.al.settings import campaign_config, defaults
from scenesift.cli.app import app
from scenesift.cli.common import (
    COCO,
    OLD_IMAGES,
    PROJECT,
    coco_file,
    fast_inference,
    parse_size,
)
from scenesift.store import Store
from scenesift.store.campaigns import all_campaigns
from scenesift.ui import console, progress_bar

al_app = typer.Typer(
    help="Active learning campaigns: rounds of train -> score the pool -> pick a batch -> "
    "label, persisted in the project and resumable after any interruption.",
    no_args_is_help=True,
)
app.add_typer(al_app, name="al")

STRATEGY_HELP = "Strategy name (see `scenesift al strategies`)."
_D = defaults()  # CampaignConfig's, shown as the flags' defaults

# `al start` flags: each given one overrides the --config file's key.
_CONFIG = typer.Option(
    None,
    help="TOML file with the campaign's settings (keys of CampaignConfig); flags "
    "given on the command line override it.",
)
_STRATEGY = typer.Option(None, help=STRATEGY_HELP, show_default=_D["strategy"]["name"])
_INITIAL = typer.Option(
    None, min=1, help="Random seed set size (round 0).", show_default=str(_D["initial"])
)
_BATCH = typer.Option(None, min=1, help="Frames picked per round.", show_default=str(_D["batch"]))
_ROUNDS = typer.Option(
    None, min=1, help="Stop after this many trainings.",
    show_default=str(_D["stopping"].get("max_rounds")),
)  # fmt: skip
_BUDGET = typer.Option(None, min=1, help="Stop before exceeding this many labels.")
_TARGET = typer.Option(None, help="Stop once mAP@0.5 reaches this.")
_PLATEAU = typer.Option(False, help="Stop when the learning curve has flattened.")
_LABELER = typer.Option(
    None,
    help=f"One of {', '.join(LABELERS)}. oracle: reveal held-back truth (simulation); "
    "labelstudio: export each batch for people and wait for `al import-labels`.",
    show_default=_D["labeler"],
)
_EPOCHS = typer.Option(
    None, min=1, help="Detector epochs per round.", show_default="the detector's"
)
_SEED = typer.Option(
    None, help="Seed of the initial random set and of every round's training.",
    show_default=str(_D["seed"]),
)  # fmt: skip


_DEVICE = typer.Option(
    None, help="Where rounds train: auto (CUDA when present), cpu, cuda or mps.",
    show_default="the config's learner.device, else auto",
)  # fmt: skip
_INPUT_SIZE = typer.Option(
    None, help="Detector input HxW, multiples of 32 (default: from the images' aspect)."
)


@al_app.command("start")
def al_start(
    name: str = typer.Argument(..., help="A name for the campaign, unique in the project."),
    project: Path = PROJECT,
    config: Path | None = _CONFIG,
    strategy: str | None = _STRATEGY,
    initial: int | None = _INITIAL,
    batch: int | None = _BATCH,
    rounds: int | None = _ROUNDS,
    budget: int | None = _BUDGET,
    target: float | None = _TARGET,
    plateau: bool = _PLATEAU,
    labeler: str | None = _LABELER,
    epochs: int | None = _EPOCHS,
    seed: int | None = _SEED,
    device: str | None = _DEVICE,
    input_size: str | None = _INPUT_SIZE,
) -> None:
    """Create a campaign and run it until it stops or waits for labels."""
    cfg = campaign_config(
        config, strategy=strategy, initial=initial, batch=batch, seed=seed, labeler=labeler,
        rounds=rounds, budget=budget, target=target, plateau=plateau, epochs=epochs,
        device=device, input_size=parse_size(input_size),
    )  # fmt: skip
    with Store.open(project) as store:
        _run_campaign(Campaign.create(store, name, cfg))


@al_app.command("resume")
def al_resume(
    name: str = typer.Argument(..., help="The campaign to continue."), project: Path = PROJECT
) -> None:
    """Continue a campaign where it stopped (after a crash, a kill or a labelling round)."""
    with Store.open(project) as store:
        _run_campaign(Campaign.open(store, name))


@al_app.command("status")
def al_status(
    name: str | None = typer.Argument(None, help="A campaign (default: list them)."),
    project: Path = PROJECT,
) -> None:
    """Rounds of a campaign (labelled frames, mAP@0.5, picks), or the list of campaigns."""
    with Store.open(project) as store:
        if name is None:
            console.print(tables.campaigns_table(all_campaigns(store)))
            return
        campaign = Campaign.open(store, name)
        console.print(tables.rounds_table(name, campaign.rounds(), campaign.metric))


@al_app.command("import-labels")
def al_import_labels(
    name: str = typer.Argument(..., help="The campaign waiting for labels."),
    export: Path = typer.Argument(..., help="Label Studio JSON export of the round's tasks."),
    project: Path = PROJECT,
    resume: bool = typer.Option(True, help="Continue the campaign once the batch is complete."),
) -> None:
    """Bring a finished labelling round back as human labels (one transaction)."""
    with Store.open(project) as store:
        campaign = Campaign.open(store, name)
        got, remaining = campaign.import_labels(export)
        console.print(tables.labels_imported(got, remaining))
        if remaining == 0 and resume:
            _run_campaign(campaign)


@al_app.command("strategies")
def al_strategies() -> None:
    """The selection strategies and what each one prefers."""
    from scenesift.al.strategies import STRATEGIES

    console.print(tables.strategies_table(STRATEGIES))


def _run_campaign(campaign) -> None:
    """Run with a progress bar and a line per finished round, then the rounds table."""
    fast_inference()
    rule = campaign.config.stopping_rule()
    total = rule.max_rounds + 1 if rule.max_rounds else None
    with progress_bar() as bar:
        task = bar.add_task(f"campaign {campaign.name}", total=total,
                            completed=len(campaign.rounds()))  # fmt: skip

        def on_round(r) -> None:
            bar.advance(task)
            bar.console.print(tables.round_line(r, campaign.metric))

        result = campaign.run(on_round=on_round)
    console.print(tables.campaign_result(campaign.name, result, campaign.metric))


_SELECT_NAMES = typer.Option(
    None, help="YOLO: the model's data.yaml (class names by id; default: project classes)."
)


@app.command("select")
def select_cmd(
    predictions: Path = typer.Option(
        ...,
        "--predictions",
        help="Your model's detections on the pool: a folder of YOLO txt files with "
        "confidences, Ultralytics' predictions.json, or a COCO results JSON (with --coco).",
    ),
    coco: Path | None = COCO,
    old_images: Path | None = OLD_IMAGES,
    names: Path | None = _SELECT_NAMES,
    budget: int = typer.Option(..., min=1, help="Frames to pick."),
    strategy: str = typer.Option("least_confidence", help=STRATEGY_HELP),
    balance: str | None = typer.Option(
        None, help="Fuse with balancing: 'situations' (the tagger's) or 'classes'."
    ),
    per_drive: int | None = typer.Option(
        None, min=1, help="At most this many frames per drive within --window seconds."
    ),
    window: float = typer.Option(10.0, min=0.0, help="De-duplication window (seconds)."),
    min_score: float = typer.Option(0.2, help="Detections below this score are ignored."),
    out: Path = typer.Option(Path("selection"), help="Output folder."),
    seed: int = typer.Option(0),
    project: Path = PROJECT,
) -> None:
    """Pick a batch to label from your own model's predictions (no training here): writes
    the frame list, a CSV of why each was picked and Label Studio tasks with
    pre-annotations, and shows how the batch spreads over situations, classes and drives."""
    from scenesift.al.select import select_from_results_file

    with Store.open(project) as store:
        result, spread = select_from_results_file(
            store, predictions, coco_file(coco, old_images), budget, out, names=names,
            strategy=strategy, balance=balance, per_drive=per_drive, window=window, seed=seed,
            min_score=min_score,
        )  # fmt: skip
    console.print(tables.selection_summary(result, spread))
