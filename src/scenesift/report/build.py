"""``build_report``: one self-contained HTML file with the experiment figures, the summary
tables, the tagger's per-label quality, the situation gap report and galleries of picked
frames. Every section whose inputs are missing says so and says how to get them.

What is computed here, and what is read (so a report stays quick, < 30 s on the 2,000-frame
demo project):

- experiment figures and tables: from the results table (pure pandas + matplotlib);
- the tagger's per-label ROC-AUC / AP: from the latest tagger's *stored* test-split scores
  (written by ``scenesift tagger predict``) against the test labels, by
  ``metrics.tagging.evaluate_tagging`` (the same numbers ``tagger eval`` prints), never by
  running the network; its summary plot is drawn from the same numbers;
- the gap report: the latest detector's stored test detections (``detector predict``), or,
  when missing and ``detect=True``, the detector run once on the test split (slower);
  ``gap_boot`` bootstrap resamples per situation for its 95% intervals (0: none);
- galleries: picks, truth and stored predictions from the catalog; class activation maps
  load the latest tagger and run it on ``cams`` frames only.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from scenesift import __version__
from scenesift.experiments import plots, stats
from scenesift.files import atomic_write
from scenesift.report.gallery import (
    Gallery,
    campaign_gallery,
    data_uri,
    tagger_cams,
)
from scenesift.report.summary import (
    TextTable,
    as_frame,
    summary_text,
    tagger_study_text,
    variance_text,
    verdict,
)
from scenesift.report.template import render
from scenesift.store import Store, StoreError
from scenesift.store.campaigns import count as count_campaigns
from scenesift.store.inventory import (
    frame_ids,
    frames_per_state,
    model_boxes,
    situation_label_count,
)

#: Bootstrap resamples over test images for the gap report's per-situation intervals, as
#: `scenesift gaps` draws by default: each re-accumulates the stored per-image matches (no
#: re-matching), so on the demo's test split they cost seconds.
GAP_BOOT = 30
SECTIONS = ("summary", "curves", "variance", "classes", "situations", "tagger", "gaps",
            "gallery")  # fmt: skip
TITLES = {
    "summary": "Strategies at a glance",
    "curves": "Learning curves: active vs random",
    "variance": "Same budget, different frames: the variance study",
    "classes": "Per-class learning and learning speed",
    "situations": "Learning per situation",
    "tagger": "Situation tagger",
    "gaps": "Situation gap report",
    "gallery": "Frames picked per round",
}
INTROS = {
    "summary": "How many labelled frames each strategy needs to reach 95% of the full-data "
    "mAP@0.5, its mean mAP@0.5 over the labelling budget (AULC), and whether it beats random "
    "on the same seeds.",
    "curves": "Detector mAP@0.5 on the fixed test split as labels are added, per strategy: "
    "a curve higher and further left needs fewer labels for the same accuracy.",
    "variance": "The same number of labels drawn at random many times: the spread shows how "
    "much which frames are labelled matters (seed 002, Figure 2).",
    "classes": "AP@0.5 per object class per loop and its derivative: which class the model "
    "learns fastest, and where more labels stop paying (seed 002, Figures 4 and 5).",
    "situations": "mAP@0.5 inside each situation slice as labels are added: does a strategy's "
    "overall gain reach the rare situations?",
    "tagger": "How well the situation tagger ranks frames per situation (ROC-AUC, AP on the "
    "test split), and how fast rare labels are learned when selection targets them.",
    "gaps": "Per situation: labelled frames, unlabelled frames the tagger finds, and detector "
    "mAP@0.5, ranked by where more labels are most needed.",
    "gallery": "The frames each round of a campaign picked, with truth boxes, the round "
    "model's predictions when stored, and situation tags.",
}
EXPERIMENT_SECTIONS = ("summary", "curves", "variance", "classes", "situations")
EXPERIMENTS_INTRO = (
    "Learning curves per strategy with confidence intervals, labels needed to reach a "
    "target, the variance study and per-class and per-situation learning (seed 002)."
)
TAGGER_STUDY_HOWTO = (
    "The results table has no tagger-study rows (situation-aware vs random selection, "
    "ROC-AUC per rare label; the demo does not run this study, it takes about as long as "
    'the strategy study). To run it, add `"tagger"` to `studies` in the experiment\'s TOML '
    "(its `[tagger]` table sets `strategies`, `seeds`, `initial`, `batch`, `rounds`; see "
    "`src/scenesift/experiments/config.py`), run `scenesift experiment run EXPERIMENT.toml "
    "-p PROJECT` (finished runs are kept) and then `scenesift report -p PROJECT`."
)
NO_RESULTS = (
    "No experiment results were given to the report: run an experiment "
    "(`scenesift experiment`) and build the report with its results table."
)


@dataclass
class Block:
    kind: str  # figure | table | note | gallery
    title: str = ""
    caption: str = ""
    src: str = ""
    width: int = 0
    table: TextTable | None = None
    dim: tuple[str, ...] = ()
    gallery: Gallery | None = None


@dataclass
class Section:
    id: str
    title: str
    intro: str
    blocks: list[Block] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)


class _Figures:
    """Renders figures into a temporary folder and embeds them as PNG data URIs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def block(self, draw: Callable[[Path], Path], name: str, title: str, caption: str) -> Block:
        from PIL import Image

        path = draw(self.folder / f"{name}.png")
        data = path.read_bytes()
        with Image.open(path) as im:
            width = im.width
        return Block("figure", title, caption, data_uri(data, "image/png"), width)


# ------------------------------------------------------------------------------ sections
def _summary(df: pd.DataFrame | None, full: float | None, share: float, baseline: str) -> Section:
    s = Section("summary", TITLES["summary"], INTROS["summary"])
    if df is None:
        s.empty.append(NO_RESULTS)
    elif stats.subset(df, "map50").empty:
        s.empty.append(
            "The results table has no strategy-study rows (campaigns per strategy and seed): "
            "run an experiment with the `strategies` study."
        )
    else:
        table = summary_text(df, full, share, baseline)
        s.blocks.append(Block("table", table=table, dim=(baseline,)))
    return s


def _figure_section(
    key: str,
    df: pd.DataFrame | None,
    figs: _Figures,
    wanted: Sequence[tuple[str, Callable[[pd.DataFrame, Path], Path], str, str]],
    missing: str,
) -> Section:
    s = Section(key, TITLES[key], INTROS[key])
    if df is None:
        s.empty.append(NO_RESULTS)
        return s
    for figure, draw, title, caption in wanted:
        if plots.has_rows(df, figure):
            s.blocks.append(figs.block(lambda p, d=draw: d(df, p), figure, title, caption))
    if not s.blocks:
        s.empty.append(missing)
    return s


def _left_out(df: pd.DataFrame | None, classes: Sequence[str]) -> str:
    """' Left out: traffic_cone (AP@0.5 undefined in every round: ...).' ('' if none)."""
    if df is None or not plots.has_rows(df, "class_curves"):
        return ""
    gone = plots.classes_left_out(df, "ap50", classes)
    if not gone:
        return ""
    return " Left out: " + "; ".join(f"{c} ({why})" for c, why in gone.items()) + "."


def _variance(df: pd.DataFrame | None, figs: _Figures) -> Section:
    s = _figure_section(
        "variance", df, figs,
        [("variance", plots.plot_variance, "mAP@0.5 per training-set size",
          "Each dot is one training on its own random subset; the violin is their "
          "distribution, the black bar the median, red and orange the best and worst subset; "
          "a diamond beside a violin is a strategy's mean over its campaigns at that "
          "budget (above the whole violin: it beat every random subset of that size).")],
        "The results table has no variance-study rows: run an experiment with the "
        "`variance` study (random subsets per training fraction, many repeats).",
    )  # fmt: skip
    if s.blocks and df is not None:
        s.blocks.append(Block("table", table=variance_text(df)))
    return s


def _tagger_results(store: Store) -> tuple[object | None, str]:
    """The latest tagger's per-label results on the test split from its stored scores."""
    from scenesift.metrics.tagging import evaluate_tagging
    from scenesift.pipelines.checkpoints import latest

    source, how = None, ""
    try:
        path = latest(store.root / "models" / "tagger", "tagger")
        source = f"model:{path.stem}"
        if situation_label_count(store, source) == 0:
            return None, (
                f"The latest tagger ({path.stem[:10]}) has no scores in the store: run "
                "`scenesift tagger predict` (the report reads stored scores, it does not run "
                "the network)."
            )
        how = f"tagger {path.stem[:10]}"
    except StoreError:
        source = store.latest_model_source()
        if source is None:
            return None, (
                "No trained tagger in this project: run `scenesift tagger train`, then "
                "`scenesift tagger predict` to store its scores."
            )
        how = f"stored scores of {source} (no tagger checkpoint in models/tagger)"
    records = [
        r for r in store.records(split="test", state="labelled", predictions=source)
        if r.situations
    ]  # fmt: skip
    tax = store.taxonomy
    situations = [s for s in tax.names if any(s in r.situation_scores for r in records)]
    if not records or not situations:
        return None, (
            f"No labelled test frames with {how}'s scores: the per-label ROC-AUC needs "
            "situation labels on the test split."
        )
    y = np.zeros((len(records), len(situations)))
    score = np.full_like(y, np.nan)
    known = np.zeros_like(y, dtype=bool)
    for i, r in enumerate(records):
        for j, s in enumerate(situations):
            if s in r.situations:
                y[i, j], known[i, j] = float(r.situations[s]), True
            value = r.situation_scores.get(s)
            score[i, j] = np.nan if value is None else value
    known &= np.isfinite(score)
    groups = {s: tax.get(s).group for s in situations if s in tax}
    results = evaluate_tagging(
        y, score, known, situations, groups=groups, drives=[r.drive for r in records]
    )
    return results, f"{how}, {len(records):,} labelled test frames"


def _ci_text(c) -> str:
    if c is None or c.low is None:
        return ""
    return f"{c.low:.3f}-{c.high:.3f}"


def _tagger(store: Store, df: pd.DataFrame | None, figs: _Figures) -> Section:
    s = Section("tagger", TITLES["tagger"], INTROS["tagger"])
    from scenesift.metrics.bootstrap import FEW_NOTE
    from scenesift.metrics.tagging import drives_cell

    results, how = _tagger_results(store)
    if results is None:
        s.empty.append(how)
    else:
        ci = results.ci(n_boot=200)
        rows = []
        for r in results.labels:
            undefined = f"undefined ({r.short_reason})"
            rows.append([
                r.situation, r.group or "", f"{r.n:,}", f"{r.positives:,}", drives_cell(r),
                undefined if r.roc_auc is None else f"{r.roc_auc:.3f}",
                _ci_text(ci.get(r.situation)) if r.defined else "",
                undefined if r.average_precision is None else f"{r.average_precision:.3f}",
                "-" if r.base_rate is None else f"{r.base_rate:.3f}",
            ])  # fmt: skip
        mean_auc, mean_ap = results.mean_auc, results.mean_ap
        rows.append([
            f"mean ({len(results.labels) - results.n_undefined} of {len(results.labels)} "
            "defined)", "", "", "", "",
            "-" if mean_auc is None else f"{mean_auc:.3f}", "",
            "-" if mean_ap is None else f"{mean_ap:.3f}", "",
        ])  # fmt: skip
        table = TextTable(
            ["situation", "group", "test frames", "positives", "drives +/-", "ROC-AUC",
             "95% CI", "PR-AUC (AP)", "base rate"],
            rows,
            f"From {how}. Only frames where the situation is labelled count; ROC-AUC 0.5 and "
            "AP = base rate are a random ranker; undefined labels are left out of the mean. "
            + ("95% CI: bootstrap over test drives, all frames of each drawn drive (200 "
               "resamples). drives: with positives / with negatives; " + FEW_NOTE
               if results.unit == "drive" else
               "95% CI: bootstrap over test frames, treated as independent (no drives)."),
            numeric={2, 3, 5, 6, 7, 8},
        )  # fmt: skip
        undefined = tuple(r.situation for r in results.labels if not r.defined)
        s.blocks.append(
            Block("table", "Per-label quality of the latest tagger", table=table, dim=undefined)
        )
        s.blocks.append(
            figs.block(results.plot_summary, "tagger_summary", "Per-label ROC-AUC and AP",
                       "ROC-AUC (blue) and average precision (orange) per situation; the "
                       "black tick is the AP of a random ranker.")
        )  # fmt: skip
    if df is not None and plots.has_rows(df, "tagger"):
        s.blocks.append(Block("table", table=tagger_study_text(df), dim=("random",)))
        s.blocks.append(
            figs.block(lambda p: plots.plot_tagger_curves(df, p), "tagger_study",
                       "Rare-label ROC-AUC vs labels spent",
                       "Tagger study: situation-aware selection vs random, ROC-AUC per rare "
                       "label on the test split as labelled frames are added.")
        )  # fmt: skip
    elif df is not None:
        s.empty.append(TAGGER_STUDY_HOWTO)
    return s


def _gaps(store: Store, figs: _Figures, boot: int, detect: bool) -> Section:
    from scenesift.pipelines.checkpoints import latest

    s = Section("gaps", TITLES["gaps"], INTROS["gaps"])
    try:
        path = latest(store.root / "models" / "detector", "detector")
    except StoreError:
        s.empty.append(
            "No trained detector in this project: run `scenesift detector train` (and "
            "`scenesift detector predict` to store its detections, which the report reads)."
        )
        return s
    from scenesift.pipelines import detector as pipe
    from scenesift.pipelines.gaps import GAP_CAPTION, GAP_COLUMNS, gap_cells, gap_report, plot_gaps

    source = f"model:{path.stem}"
    try:
        gt = pipe.with_truth(store, "test")
        if not gt:
            raise StoreError("no labelled frames with boxes in the test split")
        ids = frame_ids(store)
        stored = model_boxes(store, source, [ids[f.name] for f in gt]) or {}
        if all(ids[f.name] in stored for f in gt):
            predictions, how = {f.name: stored[ids[f.name]] for f in gt}, "stored detections"
        elif detect:
            detector, _ = pipe.load(store, path)
            predictions = detector.predict(gt, store=store, progress=False)
            how = "detections computed for this report (`scenesift detector predict` stores them)"
        else:
            s.empty.append(
                f"The latest detector ({path.stem[:10]}) has no stored detections for the test "
                "split: run `scenesift detector predict`."
            )
            return s
        rows = gap_report(store, predictions, "test", n_boot=boot)
    except StoreError as e:
        s.empty.append(f"No gap report: {e}.")
        return s
    with_ci = boot >= 2
    keep = [k for k, col in enumerate(GAP_COLUMNS) if with_ci or "CI" not in col]
    columns = [GAP_COLUMNS[k] for k in keep]
    table = TextTable(
        columns,
        [[gap_cells(i, r)[k] for k in keep] for i, r in enumerate(rows, 1)],
        f"Detector {path.stem[:10]}, {how}. "
        + (f"{GAP_CAPTION} ({boot} resamples; none where the slice is too small to "
           "resample.)" if with_ci else
           "need = (1 - mAP@0.5) / sqrt(labelled + 1), ranked by its point value: no "
           "interval (gap_boot=0); `scenesift gaps` bootstraps them over drives."),
        numeric={0, *range(2, len(columns))},
    )  # fmt: skip
    s.blocks.append(Block("table", table=table))
    if all((r.map50 or 0.0) < 0.005 for r in rows):
        weak = (
            "No plot: the detector's mAP@0.5 is below 0.005 in every situation; train it "
            "longer (`scenesift detector train`) before reading this ranking."
        )
        s.blocks.append(Block("note", caption=weak))
    else:
        caption = "Most needed first; bars: mAP@0.5" + (
            f", black lines its 95% interval over test drives ({boot} resamples)." if with_ci else
            " (no interval: built with gap_boot=0)."
        )  # fmt: skip
        s.blocks.append(figs.block(lambda p: plot_gaps(rows, p), "gaps", "Gaps", caption))
    return s


def _gallery(store: Store, campaign: str | None, per_round: int, rounds: int, cams: int) -> Section:
    s = Section("gallery", TITLES["gallery"], INTROS["gallery"])
    try:
        gallery = campaign_gallery(store, campaign, per_round, rounds)
    except StoreError as e:
        s.empty.append(str(e))
        return s
    if gallery is None:
        s.empty.append(
            "No campaign in this project: start one with `scenesift al start` (or run an "
            "experiment's strategy study) and its picks appear here round by round."
        )
        return s
    if not gallery.rounds:
        s.empty.append(f"Campaign {gallery.campaign!r} has not picked any frames yet.")
    elif cams > 0:
        last = gallery.rounds[-1]
        try:
            gallery.cams, gallery.cam_note = tagger_cams(store, [t.name for t in last.thumbs], cams)
        except Exception as e:  # a broken tagger must not cost the whole report
            gallery.cam_note = f"No class activation maps: {type(e).__name__}: {e}"
        if gallery.cams:
            gallery.cam_note = f"Round {last.idx}'s picks. " + gallery.cam_note
    s.blocks.append(Block("gallery", gallery=gallery))
    return s


# ------------------------------------------------------------------------------ build
def _meta(store: Store, df: pd.DataFrame | None, generated: str) -> list[tuple[str, str]]:
    states = frames_per_state(store)
    n = sum(states.values())
    campaigns = count_campaigns(store)
    meta = [("folder", str(store.root.resolve())), ("generated", generated),
            ("frames", f"{n:,}"), ("labelled", f"{states.get('labelled', 0):,}"),
            ("campaigns", f"{campaigns:,}")]  # fmt: skip
    if df is not None and len(df):
        experiments = sorted(df["experiment"].dropna().unique())
        meta.append(("experiments", ", ".join(map(str, experiments))))
        meta.append(("runs", f"{df['run'].nunique():,}"))
    return meta


def build_report(
    store: Store,
    out_html: Path | str,
    results: pd.DataFrame | str | Path | None = None,
    full_map50: float | None = None,
    campaign: str | None = None,
    sections: Sequence[str] = SECTIONS,
    *,
    share: float = 0.95,
    baseline: str = stats.BASELINE,
    per_round: int = 8,
    max_rounds: int = 12,
    cams: int = 4,
    gap_boot: int = GAP_BOOT,
    detect: bool = True,
) -> Path:
    """Write the report to ``out_html`` (atomically) and return its path.

    ``results``: the tidy results table, or its directory. ``full_map50``: the full-data
    mAP@0.5 the labels-to-reach target is ``share`` of (default: the variance study's 100%
    runs). ``campaign``: whose picks the gallery shows (default: the latest). ``sections``:
    any of ``SECTIONS``, in that order. See the module docstring for what is computed."""
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown report section(s) {unknown}; sections: {', '.join(SECTIONS)}")
    df = as_frame(results)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    warnings = []
    if df is not None and df["experiment"].nunique() > 1:
        warnings.append(
            "The results table holds several experiments; runs with the same strategy and "
            "seed are pooled across them. Filter it to one experiment for clean statistics."
        )
    out: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="scenesift-report-") as tmp:
        figs = _Figures(Path(tmp))
        build = {
            "summary": lambda: _summary(df, full_map50, share, baseline),
            "curves": lambda: _figure_section(
                "curves", df, figs,
                [("learning_curves",
                  lambda d, p: plots.plot_learning_curves(
                      d, p, full_map50 if full_map50 is not None else stats.full_data_value(d),
                      share),
                  "mAP@0.5 vs labelled frames",
                  "Line: mean across seeds; band: 95% t-interval across seeds. Horizontal "
                  "lines: the full-data mAP@0.5 and the labels-to-reach target; triangles: where "
                  "each strategy's seeds reach it, on average (shown when all seeds do).")],
                "The results table has no strategy-study mAP@0.5 rows: run an experiment "
                "with the `strategies` study.",
            ),
            "variance": lambda: _variance(df, figs),
            "classes": lambda: _figure_section(
                "classes", df, figs,
                [("class_curves", plots.plot_class_curves, "AP@0.5 per class per loop",
                  "One line per class, mean across seeds; one panel per strategy; the y axis "
                  "spans the data." + _left_out(df, store.taxonomy.classes)),
                 ("learning_speed", plots.plot_learning_speed, "Learning speed per class",
                  "The slope of each class's mean AP@0.5 curve, in AP@0.5 per 1,000 labelled "
                  "frames (np.gradient between rounds); below zero, more data hurt.")],
                "The results table has no per-class AP@0.5 rows (class other than 'all').",
            ),
            "situations": lambda: _figure_section(
                "situations", df, figs,
                [("situations", plots.plot_situation_curves, "Per-situation learning curves",
                  "One panel per situation slice of the test split, strategies compared "
                  "(mean across seeds, 95% band); the slice size is in each title.")],
                "The results table has no per-situation rows (situation other than 'all').",
            ),
            "tagger": lambda: _tagger(store, df, figs),
            "gaps": lambda: _gaps(store, figs, gap_boot, detect),
            "gallery": lambda: _gallery(store, campaign, per_round, max_rounds, cams),
        }  # fmt: skip
        for key in SECTIONS:
            if key not in sections:
                continue
            if df is None and key in EXPERIMENT_SECTIONS:
                if not any(sec.id == "experiments" for sec in out):  # say it once
                    out.append(Section("experiments", "Experiments", EXPERIMENTS_INTRO,
                                       empty=[NO_RESULTS]))  # fmt: skip
                continue
            out.append(build[key]())
    page = render(
        title=f"scenesift report: {store.root.name}",
        meta=_meta(store, df, generated),
        verdict=verdict(df, full_map50, share, baseline) if df is not None else "",
        warnings=warnings,
        sections=out,
        version=__version__,
        generated=generated,
    )
    path = Path(out_html)
    with atomic_write(path) as f:
        f.write(page)
    return path
