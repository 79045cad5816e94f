"""What the CLI and the demo print: one function per command's output, returning a rich
renderable (tables, messages).

User text (file and frame names, categories, situations, campaign names, error messages)
may contain square brackets, which rich would read as markup (``good/[/x].jpg`` raises
``MarkupError``, ``[x, y, width, height]`` vanishes). So it enters a renderable only here,
escaped (``message``) or as a plain ``Text`` cell (``_cells``), never pasted into markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from scenesift.records import ImportReport
from scenesift.store import Store
from scenesift.store.coverage import Coverage, DriveSplitRow, frame_counts


def message(template: str, *values: Any) -> Text:
    """``template`` (rich markup with ``str.format`` fields) with ``values`` filled in as
    plain text: ``message("Wrote [bold]{}[/]", path)`` is safe for any path."""
    return Text.from_markup(_format(template, values))


def _format(template: str, values: Sequence[Any]) -> str:
    """``template.format(*values)`` with every formatted value escaped (specs such as
    ``{:.1f}`` and ``{!r}`` apply to the value first)."""
    import string

    out: list[str] = []
    auto = iter(range(len(values)))
    for literal, field, spec, conv in string.Formatter().parse(template):
        out.append(literal)
        if field is None:
            continue
        value = values[next(auto) if field == "" else int(field)]
        if conv == "r":
            value = repr(value)
        elif conv == "s":
            value = str(value)
        out.append(escape(format(value, spec or "")))
    return "".join(out)


def error_line(text: str) -> Text:
    """A user error as the CLI prints it: ``error:`` in red, then the message as is."""
    return Text.assemble(("error:", "red"), " ", text)


def _cells(*values: Any) -> list[Text]:
    """Table cells shown as plain text, whatever brackets they contain."""
    return [v if isinstance(v, Text) else Text("" if v is None else str(v)) for v in values]


def _group(*parts: RenderableType | None) -> Group:
    return Group(*(p for p in parts if p is not None))


def summary_table(store: Store) -> Table:
    rows = frame_counts(store)
    table = Table(title=_format("Project {}", [store.root]))
    for col in ("split", "state", "frames", "drives"):
        table.add_column(col, justify="right" if col in ("frames", "drives") else "left")
    order = {"train": 0, "val": 1, "test": 2}
    for split, state, n, drives in sorted(rows, key=lambda r: (order[r[0]], r[1])):
        table.add_row(*_cells(split, state, f"{n:,}", f"{drives:,}"))
    return table


def coverage_table(cov: Coverage) -> Table:
    predicted_title = "predicted"
    if cov.model_source:
        predicted_title = _format("predicted ({})", [cov.model_source])
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
        table.add_row(*_cells(
            r.name, r.group or "", f"{r.labelled:,}", f"{r.known:,}", f"{r.hidden:,}",
            "-" if r.predicted is None else f"{r.predicted:,}",
            "" if r.boxes is None else f"{r.boxes:,}"), style=style,
        )  # fmt: skip
    return table


def drives_table(rows: list[DriveSplitRow]) -> Table:
    """Drives per split for each situation and class: how many independent samples a split
    has of it (consecutive frames of a drive are nearly the same picture)."""
    from scenesift.metrics.bootstrap import FEW_DRIVES  # metrics loads scikit-learn: not for --help

    unsplit = [r.name for r in rows if r.unsplit]
    table = Table(
        title="Drives with positives per split",
        caption=f"Drives holding a positive frame (situations) or an object (classes), by "
        f"labels and held-back truth. (few): fewer than {FEW_DRIVES} drives, too few for an "
        "interval to mean much. "
        + (
            "Not in both train and test (could not be split): " + escape(", ".join(unsplit)) + "."
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
        table.add_row(*_cells(r.name, *cells, f"{r.total:,}"), style="red" if r.unsplit else None)
    return table


def import_report_table(report: ImportReport, label_source: str) -> Table:
    table = Table(
        title=_format("Imported {} as {}", [report.source, label_source]), show_header=False
    )
    rows = [
        ("frames", report.frames),
        ("boxes", report.boxes),
        ("situation values", report.situation_values),
        ("boxes clipped to the image", report.clipped_boxes),
        ("boxes dropped (empty after clipping)", report.dropped_boxes),
        ("images skipped", len(report.skipped_images)),
    ]
    if report.unmatched_names:
        rows.append(("names the --pattern missed (own drive each)", report.unmatched_names))
    rows += [(f"unknown category {name!r} (skipped)", n)
             for name, n in sorted(report.unknown_categories.items())]  # fmt: skip
    if report.ignore_regions:
        rows.append(("ignore regions (DontCare: not scored)", report.ignore_regions))
    rows += [(f"category {name!r} (not imported: the class map leaves it out)", n)
             for name, n in sorted(report.ignored_categories.items())]  # fmt: skip
    rows += [(f"category {name} (imported under the project's class)", n)
             for name, n in sorted(report.mapped_categories.items())]  # fmt: skip
    rows += [(f"unknown attribute {name!r} (ignored)", n)
             for name, n in sorted(report.unknown_attributes.items())]  # fmt: skip
    for label, n in rows:
        table.add_row(*_cells(label, f"{n:,}"))
    return table


def not_predicted_line(situations: Sequence[str]) -> Text | None:
    """What a tagger cannot say (no training positives or negatives): left unpredicted, not
    negative, so it must be said once beside its results; None when it can say everything."""
    if not situations:
        return None
    return message(
        "[yellow]Not predicted[/] ({}: no positive and negative training labels; left "
        "missing, never positive or negative): {}", len(situations), ", ".join(situations),
    )  # fmt: skip


def skipped_lines(report: ImportReport, limit: int = 20) -> list[Text]:
    lines = [
        message("  [yellow]skipped[/] {}: {}", p, why) for p, why in report.skipped_images[:limit]
    ]
    if len(report.skipped_images) > limit:
        lines.append(Text(f"  ... and {len(report.skipped_images) - limit} more"))
    return lines


def import_report(report: ImportReport, label_source: str, derived: int = 0) -> Group:
    """``scenesift import``: what was written, the situations derived from its boxes, then
    each skipped image and why."""
    return _group(
        import_report_table(report, label_source),
        message("Derived {} object-level situation values from the labelled boxes (source "
                "derived: labels from the data or a person take precedence)", f"{derived:,}")
        if derived else None,
        *skipped_lines(report),
    )  # fmt: skip


def project_created(store: Store, fractions: Sequence[float]) -> Text:
    t = store.taxonomy
    return message(
        "Created project [bold]{}[/] with {} situations and {} classes; splits {} by drive.",
        store.root, len(t.situations), len(t.classes), tuple(fractions),
    )  # fmt: skip


def synth_summary(summary: Any, out: Path, sheet: Path | None) -> Group:
    speed = summary.n_frames / max(summary.seconds, 1e-9)
    return _group(
        message("Wrote {} frames in {} drives to [bold]{}[/] in {:.1f} s ({:.0f} frames/s).",
                summary.n_frames, summary.n_drives, out, summary.seconds, speed),
        message("Contact sheet: {}", sheet) if sheet else None,
    )  # fmt: skip


def wrote_frames(n: int, path: Path, left_out: int = 0) -> Text:
    if not left_out:
        return message("Wrote {} frames to [bold]{}[/]", n, path)
    return message(
        "Wrote {} frames to [bold]{}[/]; left out {} frames without labelled boxes (COCO would "
        "read them as labelled empty): export them alone with --state unlabelled.",
        n, path, left_out,
    )  # fmt: skip


def wrote(what: str, path: Path) -> Text:
    """``<what>: <path>``, the path in bold."""
    return message("{}: [bold]{}[/]", what, path)


def project_info(store: Store) -> Group:
    """``scenesift info``: frames per split and state, coverage, caches and predictions."""
    from scenesift.store.coverage import coverage, drives_per_split
    from scenesift.store.inventory import feature_caches, model_predictions

    return _group(
        summary_table(store),
        coverage_table(coverage(store)),
        drives_table(drives_per_split(store)),
        inventory_table(feature_caches(store), model_predictions(store)),
    )


def integrity_report(report: Any, project: Path) -> Group:
    """``scenesift check``: one row per check, then the problems each found."""
    table = Table(title=_format("Integrity of {}", [project]))
    for col in ("check", "result", "seconds", "what it checks"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    lines: list[RenderableType] = []
    for r in report.results:
        colour = "yellow" if r.ok else "red"
        result = Text("ok", "green") if r.count == 0 else Text(f"{r.count:,} found", colour)
        table.add_row(*_cells(r.name, result, f"{r.seconds:.2f}", r.description))
        lines += [message(f"[{colour}]{{}}:[/] {{}}", r.name, p) for p in r.problems]
        if r.count > len(r.problems):
            lines.append(message("{}: ... and {} more", r.name, f"{r.count - len(r.problems):,}"))
    return _group(table, *lines)


def embedded(result: Any, backbone: Any, layer: str) -> Text:
    """``scenesift embed``: what was computed, how fast, and the cache's fingerprint."""
    h, w = backbone.preprocessing.size
    speed = f"{result.throughput:.1f} frames/s" if result.computed else "nothing to compute"
    return message(
        "Embedded {} frames with [bold]{}[/] ({}, {}x{}): {} computed, {} from the cache; {}.\n"
        "Feature cache: [bold]{}[/] (array {} {})",
        len(result), backbone.name, layer, h, w, result.computed, result.cached, speed,
        result.fingerprint, tuple(result.array.shape), result.array.dtype,
    )  # fmt: skip


def tagger_history(tagger: Any, path: Path) -> Group:
    """``tagger train``: loss per epoch and the checkpoint written."""
    table = Table(title=_format("Tagger {} ({})", [tagger.fingerprint, tagger.config.schedule]))
    for col in ("epoch", "groups training", "train loss", "val loss", "seconds"):
        table.add_column(col, justify="right")
    for h in tagger.history:
        table.add_row(str(h.epoch), str(h.trainable_groups), f"{h.train_loss:.4f}",
                      f"{h.val_loss:.4f}", f"{h.seconds:.1f}")  # fmt: skip
    return _group(table, wrote("Checkpoint", path))


def tagger_evaluation(
    tagger: Any, results: Any, split: str, ci: bool, curves: Path | None
) -> Group:
    """``tagger eval``: ROC-AUC and AP per situation (with bootstrap intervals)."""
    title = _format("Tagger {} on {}", [tagger.fingerprint, split])
    table = results.to_table(title=title, ci=results.ci() if ci else None)
    return _group(
        table,
        not_predicted_line(results.not_predicted),
        wrote("Curves", curves) if curves else None,
    )


def prelabel_summary(summary: Any) -> Group:
    """``tagger predict``: the threshold of each situation, why, and how many it marks;
    then the situations it cannot say."""
    table = Table(
        title=_format("Pre-labels written as {} ({} frames)", [summary.source,
                                                                f"{summary.frames:,}"])
    )  # fmt: skip
    for col in ("situation", "threshold", "rule", "predicted positive"):
        table.add_column(col)
    for s, t in summary.thresholds.items():
        table.add_row(*_cells(s, f"{t:.3f}", summary.rules[s], f"{summary.positives[s]:,}"))
    return _group(table, not_predicted_line(summary.not_predicted))


def detector_trained(detector: Any, mode: str, path: Path) -> Text:
    return message("Detector {} ({}): checkpoint [bold]{}[/]", detector.fingerprint, mode, path)


def detections_stored(source: str, n: int) -> Text:
    return message("Stored detections for {} frames as [bold]{}[/]", f"{n:,}", source)


def detection_evaluation(results: Any, by_situation: Any, curves: Path | None = None) -> Group:
    """COCO metrics per class and size, then per slice (situation, distance band)."""
    return _group(
        results.to_table(),
        None if by_situation is None
        else by_situation.to_table("AP50", title="Detection AP@0.5 per slice (n)"),
        wrote("PR curves", curves) if curves else None,
    )  # fmt: skip


def gaps(rows: Sequence[Any], png: Path) -> Group:
    """``scenesift gaps``: the situation gap table and its plot."""
    from scenesift.pipelines.gaps import gap_table, small_sample_warning

    few = small_sample_warning(rows)
    return _group(gap_table(rows), *([warning(few)] if few else []), wrote("Plot", png))


def campaigns_table(campaigns: Iterable[Any]) -> Table:
    """``al status`` without a name: every campaign, its status, rounds and creation time."""
    table = Table(title="Campaigns")
    for col in ("name", "status", "rounds", "created"):
        table.add_column(col)
    for c in campaigns:
        table.add_row(*_cells(c.name, c.status, c.n_rounds, c.created_at))
    return table


def warning(text: str) -> Text:
    """A warning before long work (it goes on): ``warning:`` in yellow, then the text."""
    return Text.assemble(("warning:", "yellow"), " ", text)


def labels_imported(got: int, remaining: int) -> Text:
    return message("Labelled {} frame(s); {} of this round still to label.", got, remaining)


def strategies_table(strategies: Mapping[str, str]) -> Table:
    """``al strategies``: each strategy's name and what it prefers."""
    table = Table(title="Strategies")
    table.add_column("name", no_wrap=True)
    table.add_column("picks")
    for name, description in strategies.items():
        table.add_row(*_cells(name, description))
    return table


def round_line(r: Any, metric: str) -> Text:
    """A campaign round as it finishes (printed above the progress bar)."""
    value = r.metrics.get(metric)
    shown = "" if value is None else f", {metric} {value:.3f}"
    taught = _teacher_value(r, metric)
    if value is not None and taught is not None:  # self-training: what it added
        shown += f" (its teacher {taught:.3f})"
    return message(
        "round {}: {}, {} labelled{}, {} picked ({:.0f} s)", r.idx, r.status,
        f"{r.n_labelled or 0:,}", shown, f"{r.n_picks:,}", r.metrics.get("seconds", 0),
    )  # fmt: skip


def campaign_result(name: str, result: Any, metric: str) -> Group:
    """A campaign that stopped or waits for labels: its rounds and why."""
    return _group(
        rounds_table(name, result.rounds, metric),
        message("[bold]{}[/]: {}", result.status, result.reason),
    )


def selection_summary(result: Any, spread: Mapping[str, list[tuple[str, int, int]]]) -> Group:
    """``scenesift select``: how the batch spreads over situations, classes and drives
    compared with the pool, and the files written."""
    n, k = len(result.pool), len(result.picked)
    parts: list[RenderableType] = []
    for kind, rows in spread.items():
        if not rows:
            continue
        table = Table(title=_format("Batch vs pool by {}", [kind]))
        for col in (kind, "batch", "batch %", "pool", "pool %"):
            table.add_column(escape(col), justify="left" if col == kind else "right")
        for name, in_batch, in_pool in rows[:15]:
            table.add_row(*_cells(name, f"{in_batch:,}", f"{in_batch / max(k, 1):.0%}",
                                  f"{in_pool:,}", f"{in_pool / max(n, 1):.0%}"))  # fmt: skip
        parts.append(table)
    parts += [warning(w) for w in result.warnings]
    parts += [message("{} read: {}", name, signal) for name, signal in result.signals]
    files = result.files
    parts.append(message(
        "Picked [bold]{}[/] of {} unlabelled frames with {}.\n"
        "Frame list: [bold]{}[/]  why: {}\nLabel Studio: [bold]{}[/] (config {})",
        f"{k:,}", f"{n:,}", result.selection.strategy, files["list"], files["csv"],
        files["tasks"], files["config"],
    ))  # fmt: skip
    return _group(*parts)


def experiment_finished(out: Path, results: Any = None) -> Group:
    """``experiment run``: each study's headline table, what the evaluation could measure,
    where the results are, and last the verdict, said plainly. ``results``: the table
    read from ``out`` (default), or that with other experiments' random subsets joined."""
    from scenesift.experiments.results import read_results
    from scenesift.experiments.stats import evaluation_power
    from scenesift.report.summary import experiment_tables

    if results is None:
        results = read_results(out)
    return _group(
        *experiment_tables(results),
        evaluation_power_table(evaluation_power(results)),
        message("Results: [bold]{}[/] (one Parquet file per run; `scenesift report` draws "
                "the figures)", out),
        verdict_text(results),
    )  # fmt: skip


def _duration(seconds: float) -> str:
    """'2 h 05 min', '12 min'."""
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def experiment_progress(progress: Any, results: Any = None) -> Group:
    """``experiment show``: runs finished of those planned, then what ``experiment run``
    prints at its end, for the runs finished so far (``results``: see
    ``experiment_finished``)."""
    template = "Experiment {!r}: {} of {} runs finished."
    values: list[Any] = [progress.config.name, progress.done, progress.total]
    if progress.done < progress.total and progress.seconds_left is None:
        template += " No estimate of the rest yet (a study has no finished run)."
    elif progress.done < progress.total:
        template += " The rest: about {} at the pace of the finished runs."
        values.append(_duration(progress.seconds_left))
    head = message(template, *values)
    if not progress.done:
        return _group(head)
    return _group(head, experiment_finished(progress.results, results))


def report_built(results: Any, full_map50: float | None, path: Path) -> Group:
    """``scenesift report``: the headline numbers (when there are results) and the file."""
    summary = None
    if results is not None:
        from scenesift.report import report_summary_table

        summary = report_summary_table(results, full_map50=full_map50)
    return _group(summary, wrote("Report", path))


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
        table.add_column(escape(name), justify="right")
    for s in first.situations:
        cells = []
        for name in names:
            r = results[name][s]
            cells.append("undefined" if r.roc_auc is None else f"{r.roc_auc:.3f}")
        table.add_row(*_cells(s, str(first[s].positives), *cells))
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
    table.add_row(*_cells(f"lowest (>= {min_positives} positives)", "", *cells))
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
        table.add_row(*_cells("features", c["fingerprint"], what, f"{c['frames']:,}", ""))
    for m in models:
        what = f"{m['scored_frames']:,} scored, {m['detected_frames']:,} with detections"
        frames = max(m["scored_frames"], m["detected_frames"])
        table.add_row(*_cells("predictions", m["source"], what, f"{frames:,}", m["written"]))
    return table


def rounds_table(name: str, rounds: list, metric: str = "map50") -> Table:
    """One row per campaign round: what it trained on, how good it was, what it picked."""
    table = Table(title=_format("Campaign {}", [name]))
    # self-training rounds also show their teacher (the same labels, no pseudo-labels)
    taught = any(_teacher_value(r, metric) is not None for r in rounds)
    columns = [("round", "right"), ("status", "left"), ("labelled", "right"),
               (escape(metric), "right")] + [("its teacher", "right")] * taught + [
               ("picked", "right"), ("strategy", "left"), ("seconds", "right")]  # fmt: skip
    for col, justify in columns:
        table.add_column(col, justify=justify)
    for r in rounds:
        value, teacher = r.metrics.get(metric), _teacher_value(r, metric)
        table.add_row(
            *_cells(
                str(r.idx),
                r.status + (f" ({r.metrics['stop_reason']})" if "stop_reason" in r.metrics else ""),
                "" if r.n_labelled is None else f"{r.n_labelled:,}",
                "" if value is None else f"{value:.3f}",
                *(["" if teacher is None else f"{teacher:.3f}"] if taught else []),
                f"{r.n_picks:,}",
                r.strategy or "",
                "" if "seconds" not in r.metrics else f"{r.metrics['seconds']:.1f}",
            )
        )
    return table


def _teacher_value(r: Any, metric: str) -> float | None:
    """A self-trained round's teacher's ``metric`` (``DetectorLearner.evaluate``)."""
    return (r.metrics.get("teacher") or {}).get(metric)


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
        table.add_row(*_cells(
            r["kind"], r["name"], f"{r['count']:,} {r['unit']}", f"{r['minimum']:,}",
            "" if r["enough"] else "too few"), style=None if r["enough"] else "red",
        )  # fmt: skip
    return table


def verdict_text(results) -> Text | None:
    """The strategy study's verdict (``report.summary.verdict``), the last thing
    `experiment run` prints, so the answer is said plainly; None without a comparison."""
    from scenesift.report.summary import verdict

    said = verdict(results)
    return Text.assemble(("Verdict: ", "bold"), said) if said else None
