"""Rich tables shown by the CLI and the demo: project summary, coverage, import report."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from scenesift.metrics.bootstrap import FEW_DRIVES
from scenesift.records import ImportReport
from scenesift.store import Store
from scenesift.store.coverage import Coverage, DriveSplitRow, frame_counts


def summary_table(store: Store) -> Table:
    rows = frame_counts(store)
    table = Table(title=f"Project {store.root}")
    for col in ("split", "state", "frames", "drives"):
        table.add_column(col, justify="right" if col in ("frames", "drives") else "left")
    order = {"train": 0, "val": 1, "test": 2}
    for split, state, n, drives in sorted(rows, key=lambda r: (order[r[0]], r[1])):
        table.add_row(split, state, f"{n:,}", f"{drives:,}")
    return table


def coverage_table(cov: Coverage) -> Table:
    predicted_title = f"predicted ({cov.model_source})" if cov.model_source else "predicted"
    table = Table(
        title=f"Coverage: {cov.frames:,} frames, {cov.labelled_frames:,} labelled, "
        f"{cov.unlabelled_frames:,} unlabelled",
        caption="labelled: labelled frames where present, of those where it was labelled; "
        "unlabelled: held-back truth (oracle) in unlabelled frames; predicted: unlabelled "
        "frames the latest model predicts. Red: fewer than 100 labelled positives.",
    )
    table.add_column("situation / class", no_wrap=True)
    table.add_column("group", no_wrap=True)
    for col in ("labelled", "of", "unlabelled", predicted_title, "boxes"):
        table.add_column(col, justify="right")
    kind = None
    for r in cov.rows:
        if kind is not None and r.kind != kind:
            table.add_section()
        kind = r.kind
        style = "red" if r.labelled < 100 and r.known else None
        table.add_row(
            r.name, r.group or "", f"{r.labelled:,}", f"{r.known:,}", f"{r.hidden:,}",
            "-" if r.predicted is None else f"{r.predicted:,}",
            "" if r.boxes is None else f"{r.boxes:,}", style=style,
        )  # fmt: skip
    return table


def drives_table(rows: list[DriveSplitRow]) -> Table:
    """Drives per split for each situation and class: how many independent samples a split
    has of it (consecutive frames of a drive are nearly the same picture)."""
    unsplit = [r.name for r in rows if r.unsplit]
    table = Table(
        title="Drives with positives per split",
        caption=f"Drives holding a positive frame (situations) or an object (classes), by "
        f"labels and held-back truth. (few): fewer than {FEW_DRIVES} drives, too few for an "
        "interval to mean much. "
        + (
            "Not in both train and test (could not be split): " + ", ".join(unsplit) + "."
            if unsplit
            else "Every present situation and class has drives in train and test."
        ),
    )
    table.add_column("situation / class", no_wrap=True)
    for col in ("train", "val", "test", "all"):
        table.add_column(col, justify="right")
    kind = None
    for r in rows:
        if kind is not None and r.kind != kind:
            table.add_section()
        kind = r.kind
        cells = [
            f"{n:,}" + (" (few)" if 0 < n < FEW_DRIVES else "") for n in (r.train, r.val, r.test)
        ]
        table.add_row(r.name, *cells, f"{r.total:,}", style="red" if r.unsplit else None)
    return table


def import_report_table(report: ImportReport, label_source: str) -> Table:
    table = Table(title=f"Imported {report.source} as {label_source}", show_header=False)
    table.add_row("frames", f"{report.frames:,}")
    table.add_row("boxes", f"{report.boxes:,}")
    table.add_row("situation values", f"{report.situation_values:,}")
    table.add_row("boxes clipped to the image", f"{report.clipped_boxes:,}")
    table.add_row("boxes dropped (empty after clipping)", f"{report.dropped_boxes:,}")
    table.add_row("images skipped", f"{len(report.skipped_images):,}")
    for name, n in sorted(report.unknown_categories.items()):
        table.add_row(f"unknown category {name!r} (skipped)", f"{n:,}")
    if report.ignore_regions:
        table.add_row("ignore regions (DontCare: not scored)", f"{report.ignore_regions:,}")
    for name, n in sorted(report.ignored_categories.items()):
        table.add_row(f"category {name!r} (not imported: the class map leaves it out)", f"{n:,}")
    for name, n in sorted(report.mapped_categories.items()):
        table.add_row(f"category {name} (imported under the project's class)", f"{n:,}")
    for name, n in sorted(report.unknown_attributes.items()):
        table.add_row(f"unknown attribute {name!r} (ignored)", f"{n:,}")
    return table


def not_predicted_line(situations: Sequence[str]) -> str | None:
    """What a tagger cannot say (no training positives or negatives): left unpredicted, not
    negative, so it must be said once beside its results; None when it can say everything."""
    if not situations:
        return None
    return (
        f"[yellow]Not predicted[/] ({len(situations)}: no positive and negative training "
        f"labels; left missing, never positive or negative): {', '.join(situations)}"
    )


def skipped_lines(report: ImportReport, limit: int = 20) -> list[str]:
    lines = [f"  [yellow]skipped[/] {p}: {why}" for p, why in report.skipped_images[:limit]]
    if len(report.skipped_images) > limit:
        lines.append(f"  ... and {len(report.skipped_images) - limit} more")
    return lines


def schedule_table(results: dict, min_positives: int = 30) -> Table:
    """Per-situation test ROC-AUC of several tagger schedules, side by side, with the
    weakest situation among those with ``min_positives`` test positives (fewer make the
    AUC a coin-flip-sized estimate)."""
    names = list(results)
    first = next(iter(results.values()))
    table = Table(title="Unfreezing schedules: test ROC-AUC per situation")
    table.add_column("situation")
    table.add_column("positives", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for s in first.situations:
        cells = []
        for name in names:
            r = results[name][s]
            cells.append("undefined" if r.roc_auc is None else f"{r.roc_auc:.3f}")
        table.add_row(s, str(first[s].positives), *cells)
    table.add_section()
    table.add_row("mean (defined)", "", *(
        "-" if results[n].mean_auc is None else f"{results[n].mean_auc:.3f}" for n in names
    ))  # fmt: skip
    cells = []
    for name in names:
        r = results[name]
        scored = [
            (r[s].roc_auc, s)
            for s in first.situations
            if first[s].positives >= min_positives and r[s].roc_auc is not None
        ]
        cells.append("{:.3f} {}".format(*min(scored)) if scored else "-")
    table.add_row(f"lowest (>= {min_positives} positives)", "", *cells)
    return table


def inventory_table(caches: list[dict], models: list[dict]) -> Table | None:
    """Feature caches and model predictions held by the project (None when there are none)."""
    if not caches and not models:
        return None
    table = Table(title="Feature caches and model predictions")
    for col in ("kind", "id", "what", "frames", "written"):
        table.add_column(col, justify="right" if col == "frames" else "left")
    for c in caches:
        pre = c.get("preprocessing", {})
        size = "x".join(str(v) for v in pre.get("size", []))
        what = f"{c.get('backbone', '?')} {c.get('layer', '?')} {size}".strip()
        table.add_row("features", c["fingerprint"], what, f"{c['frames']:,}", "")
    for m in models:
        what = f"{m['scored_frames']:,} scored, {m['detected_frames']:,} with detections"
        frames = max(m["scored_frames"], m["detected_frames"])
        table.add_row("predictions", m["source"], what, f"{frames:,}", m["written"] or "")
    return table


def rounds_table(name: str, rounds: list, metric: str = "map50") -> Table:
    """One row per campaign round: what it trained on, how good it was, what it picked."""
    table = Table(title=f"Campaign {name}")
    for col, justify in [("round", "right"), ("status", "left"), ("labelled", "right"),
                         (metric, "right"), ("picked", "right"), ("strategy", "left"),
                         ("seconds", "right")]:  # fmt: skip
        table.add_column(col, justify=justify)
    for r in rounds:
        value = r.metrics.get(metric)
        table.add_row(
            str(r.idx),
            r.status + (f" ({r.metrics['stop_reason']})" if "stop_reason" in r.metrics else ""),
            "" if r.n_labelled is None else f"{r.n_labelled:,}",
            "" if value is None else f"{value:.3f}",
            f"{r.n_picks:,}",
            r.strategy or "",
            "" if "seconds" not in r.metrics else f"{r.metrics['seconds']:.1f}",
        )
    return table


def evaluation_power_table(power) -> Table | None:
    """``experiments.stats.evaluation_power`` for the terminal: what each class, situation
    and study was measured on, red where it is below the floor a claim needs."""
    if power is None or power.empty:
        return None
    short = power.loc[~power["enough"]]
    table = Table(
        title="Evaluation power",
        caption=f"{len(short)} of {len(power)} below the floor (red): their AP, AUC or "
        "comparison is too noisy to support a claim; use a larger test split or a separate "
        "evaluation world, and more seeds.",
    )
    for col in ("kind", "name", "count", "floor", ""):
        table.add_column(col, justify="right" if col in ("count", "floor") else "left")
    for _, r in power.iterrows():
        table.add_row(
            r["kind"], r["name"], f"{r['count']:,} {r['unit']}", f"{r['minimum']:,}",
            "" if r["enough"] else "too few", style=None if r["enough"] else "red",
        )  # fmt: skip
    return table


def verdict_text(results) -> Text | None:
    """The strategy study's verdict (``report.summary.verdict``), the last thing
    `experiment run` prints, so the answer is said plainly; None without a comparison."""
    from scenesift.report.summary import verdict

    said = verdict(results)
    return Text.assemble(("Verdict: ", "bold"), said) if said else None
