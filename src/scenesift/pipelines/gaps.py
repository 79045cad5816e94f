"""The situation gap report (seed 000: "we know for what situations we need to gather more
data"): per situation, how much labelled data there is, how much unlabelled data the tagger
says is available, and how well the detector does there, ranked by where data is needed.

need = (1 - mAP@0.5 in the slice) / sqrt(labelled frames in the situation + 1): room to
improve, discounted by the data already spent there (a learning curve's slope falls roughly
like 1/sqrt(n)). The report prints the inputs beside it, so a reader can re-rank by eye.

The ranking uses the drive-level interval, not the point estimate: situations are ordered by
the upper end of need's 95% interval (mAP@0.5's lower end, bootstrapped over test drives).
A situation seen in one or two test drives has a wide interval, so it ranks high: we do not
know how well the detector does there, and more drives of it are what would tell us. Each
row names the test drives behind it, flagged below 3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.table import Table

from scenesift.metrics.bootstrap import FEW_NOTE, drives_text
from scenesift.metrics.detection import evaluate_detection
from scenesift.pipelines.detector import situation_slices, with_truth
from scenesift.records import Box, FrameRecord
from scenesift.store import Store, StoreError
from scenesift.store.coverage import coverage

#: Below this many test images in a situation its mAP is shown but not ranked.
MIN_TEST_IMAGES = 10


@dataclass(frozen=True)
class SituationGap:
    situation: str
    labelled: int  # labelled frames where the situation holds
    unlabelled_predicted: int | None  # unlabelled frames the tagger puts in it (None: no tagger)
    test_images: int
    map50: float | None  # None: no instances in the slice
    ci: tuple[float, float] | None  # of mAP@0.5, bootstrapped over test drives
    need: float | None
    test_drives: int | None = None  # drives among the slice's test images
    need_ci: tuple[float, float] | None = None  # need at mAP@0.5's interval ends

    @property
    def rank_key(self) -> float | None:
        """What the report ranks by: the upper end of need's interval (the point where
        there is no interval)."""
        return self.need_ci[1] if self.need_ci is not None else self.need


def slice_map50(
    frames: Sequence[FrameRecord],
    predictions: Mapping[str, Sequence[Box]],
    classes: Sequence[str],
    n_boot: int = 30,
    seed: int = 0,
) -> tuple[float | None, tuple[float, float] | None, int]:
    """mAP@0.5 of a slice, its percentile bootstrap 95% interval over drives (each resample
    scored by COCOeval; see :func:`evaluate_detection`) and the drives among its frames."""
    if not frames:
        return None, None, 0
    res = evaluate_detection(frames, predictions, classes, n_boot=n_boot, seed=seed)
    ap = res.get("AP50")
    return ap.value, ap.ci, res.n_drives or 0


def gap_report(
    store: Store,
    predictions: Mapping[str, Sequence[Box]],
    split: str = "test",
    n_boot: int = 30,
    seed: int = 0,
    min_images: int = MIN_TEST_IMAGES,
) -> list[SituationGap]:
    """One row per situation, most needed first by the upper end of need's drive-level
    interval (undefined mAP last). Situations with fewer than ``min_images`` test images
    get no need and no interval (one image's AP ranks nothing) and rank last, with the
    undefined ones; :func:`small_sample_warning` names them."""
    gt = with_truth(store, split)
    if not gt:
        raise StoreError(f"no labelled frames with boxes in the {split} split")
    by_name = {f.name: f for f in gt}
    slices = situation_slices(store, gt)
    cov = {r.name: r for r in coverage(store).rows if r.kind == "situation"}
    classes = store.taxonomy.classes
    rows = []
    for situation, names in slices.items():
        frames = [by_name[n] for n in names]
        point, ci, drives = slice_map50(frames, predictions, classes, n_boot, seed)
        labelled = cov[situation].labelled if situation in cov else 0
        scale = math.sqrt(labelled + 1)
        need = None if point is None else (1.0 - point) / scale
        need_ci = None if ci is None else ((1.0 - ci[1]) / scale, (1.0 - ci[0]) / scale)
        if len(frames) < min_images:  # too few to rank: no need, no interval
            ci, need, need_ci = None, None, None
        predicted = cov[situation].predicted if situation in cov else None
        rows.append(SituationGap(
            situation, labelled, predicted, len(frames), point, ci, need, drives, need_ci
        ))  # fmt: skip
    return rank_gaps(rows)


def rank_gaps(rows: Sequence[SituationGap]) -> list[SituationGap]:
    """Most needed first by :attr:`SituationGap.rank_key` (the upper end of need's
    interval), the point estimate breaking ties; undefined mAP last."""
    return sorted(rows, key=lambda r: (r.rank_key is None, -(r.rank_key or 0.0), -(r.need or 0)))


def gap_cells(i: int, r: SituationGap) -> list[str]:
    """One row of the gap table, shared by the CLI and the report."""
    return [
        str(i), r.situation, f"{r.labelled:,}",
        "-" if r.unlabelled_predicted is None else f"{r.unlabelled_predicted:,}",
        f"{r.test_images:,}", drives_text(r.test_drives),
        "undefined" if r.map50 is None else f"{r.map50:.3f}",
        "-" if r.ci is None else f"{r.ci[0]:.3f}-{r.ci[1]:.3f}",
        _need_cell(r),
        "-" if r.need_ci is None else f"{r.need_ci[0]:.4f}-{r.need_ci[1]:.4f}",
    ]  # fmt: skip


GAP_COLUMNS = ("rank", "situation", "labelled", "unlabelled (tagger)", "test images",
               "test drives", "mAP@0.5", "95% CI", "need", "need 95% CI")  # fmt: skip
GAP_CAPTION = (
    "need = (1 - mAP@0.5) / sqrt(labelled + 1). mAP@0.5 on the test frames in the situation "
    "(labels, else the tagger), 95% bootstrap interval over test drives (all frames of "
    "each drawn drive; none for a single drive); ranked by the upper end of need's "
    "interval, so a situation seen in few drives ranks high. " + FEW_NOTE + " Situations "
    f"with fewer than {MIN_TEST_IMAGES} test images are not ranked."
)


def gap_table(rows: Sequence[SituationGap]) -> Table:
    table = Table(
        title="Situation gap report: where more labelled data is most needed",
        caption=GAP_CAPTION,
    )
    for col in GAP_COLUMNS:
        table.add_column(col, justify="left" if col == "situation" else "right")
    for i, r in enumerate(rows, 1):
        table.add_row(*gap_cells(i, r))
    return table


def _need_cell(row: SituationGap) -> str:
    if row.need is not None:
        return f"{row.need:.4f}"
    if row.map50 is not None:  # a defined mAP without a need: too few test images
        return f"too few ({row.test_images})"
    return ""


def small_sample_warning(rows: Sequence[SituationGap]) -> str | None:
    """A line for the situations left unranked for too few test images, or None."""
    few = [
        f"{r.situation} ({r.test_images})" for r in rows if r.map50 is not None and r.need is None
    ]
    if not few:
        return None
    return (
        f"not ranked, too few test images for a comparison: {', '.join(few)}; label more "
        "test frames there"
    )


def plot_gaps(rows: Sequence[SituationGap], path: Path) -> Path:
    """mAP@0.5 per situation with its interval, in need order, annotated with the data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [r for r in rows if r.map50 is not None]
    fig = Figure(figsize=(8.5, 0.45 * max(len(shown), 3) + 1.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(len(shown))[::-1]
    values = [r.map50 for r in shown]
    ax.barh(y, values, color="#4c72b0", height=0.6)
    for yi, r in zip(y, shown, strict=True):
        if r.ci is not None:
            ax.plot(r.ci, [yi, yi], color="black", lw=1.2)
        supply = "-" if r.unlabelled_predicted is None else f"{r.unlabelled_predicted:,}"
        ax.text(1.02, yi, f"labelled {r.labelled:,} | unlabelled {supply} | test drives "
                f"{drives_text(r.test_drives)}", va="center", fontsize=8,
                transform=ax.get_yaxis_transform())  # fmt: skip
    ax.set_yticks(y, [f"{i}. {r.situation}" for i, r in enumerate(shown, 1)], fontsize=9)
    highest = max([v for r in shown for v in (r.map50, *(r.ci or ()))], default=1.0)
    ax.set_xlim(0, min(1.0, max(0.05, 1.15 * highest)))  # scaled to the data
    interval = (
        ", 95% bootstrap interval over drives" if any(r.ci is not None for r in shown) else ""
    )
    ax.set_xlabel(f"detector mAP@0.5 in the situation (test split{interval})")
    ax.set_title("Situation gap report, most needed first", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def checkpoint_gaps(
    store: Store, path: Path | None = None, split: str = "test", n_boot: int = 30
) -> tuple[list[SituationGap], Path]:
    """The gap report of a saved detector (default: the latest) and its plot, written to
    the project's reports folder."""
    from scenesift.pipelines import detector as pipe

    detector, _ = pipe.load(store, path)
    predictions = detector.predict(with_truth(store, split), store=store)
    rows = gap_report(store, predictions, split, n_boot=n_boot)
    png = plot_gaps(rows, store.root / pipe.REPORTS_DIR / detector.fingerprint / "gaps.png")
    return rows, png
