"""Per-label evaluation of a multi-label situation tagger.

Each situation is its own binary problem, judged only on the frames where that situation is
known: a missing label is excluded, never counted as a negative (that would reward a tagger for
agreeing with a labelling gap). A label whose known test frames are all positive or all negative
has no defined ROC-AUC or average precision; it is reported as undefined with the reason, never
as 0, 0.5 or 1, so it cannot silently move the mean.

Intervals resample drives, not frames (:mod:`scenesift.metrics.bootstrap`), and every label
carries the number of drives behind it: those with a positive and those with a negative frame.

``sklearn`` and ``matplotlib`` are imported where they are used, so importing this module (and
the CLI that imports it) stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rich.table import Table

from scenesift.metrics.bootstrap import (
    FEW_NOTE,
    Unit,
    cluster_ids,
    drives_with,
    few,
    one_drive,
    percentile_interval,
    resample_counts,
)

METRICS = ("roc_auc", "average_precision", "base_rate")
_SHORT_REASON = {
    "no positives in the test split": "no positives",
    "no negatives in the test split": "no negatives",
    "no known labels in the test split": "no labels",
}


@dataclass(frozen=True)
class LabelResult:
    """One situation's scores on its known test frames; ``reason`` says why AUC/AP are None."""

    situation: str
    group: str | None
    n: int
    positives: int
    negatives: int
    roc_auc: float | None
    average_precision: float | None
    base_rate: float | None  # positives / n: the AP of a random ranker
    reason: str | None = None
    #: Drives holding a positive / a negative known frame (None: drives unknown).
    drives_pos: int | None = None
    drives_neg: int | None = None

    @property
    def defined(self) -> bool:
        return self.reason is None

    @property
    def drives(self) -> int | None:
        """Effective sample size: the drives on the rarer side (a ranking needs both)."""
        if self.drives_pos is None or self.drives_neg is None:
            return None
        return min(self.drives_pos, self.drives_neg)

    @property
    def few_drives(self) -> bool:
        return few(self.drives)

    @property
    def short_reason(self) -> str | None:
        return None if self.reason is None else _SHORT_REASON.get(self.reason, self.reason)


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile interval of one label's metric; ``n_used`` resamples had the label defined;
    ``unit``: what was resampled (``drive``, or ``frame`` where no drives were known)."""

    situation: str
    metric: str
    low: float | None
    high: float | None
    level: float
    n_used: int
    n_boot: int
    unit: Unit = "drive"


@dataclass
class TaggingResults:
    """Per-label ROC-AUC / AP of a tagger on a test split, plus what is needed to resample/plot.

    Modelled on FiftyOne's evaluation results: metrics on the object, ``rows()`` for tables,
    ``to_table()`` for the terminal, ``plot_curves()`` / ``plot_summary()`` for reports.
    """

    situations: list[str]
    labels: list[LabelResult]
    y_true: np.ndarray = field(repr=False)
    y_score: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    #: Cluster id of each frame (its drive; each frame its own when drives are unknown).
    clusters: np.ndarray | None = field(default=None, repr=False)
    unit: Unit = "frame"
    #: Situations the tagger cannot say (no training positives or negatives): not scored.
    not_predicted: list[str] = field(default_factory=list)

    # -- summary ------------------------------------------------------------------------------

    def __getitem__(self, situation: str) -> LabelResult:
        return self.labels[self._index(situation)]

    @property
    def roc_auc(self) -> np.ndarray:
        """Per-label ROC-AUC in taxonomy order, NaN where undefined."""
        return _as_array(r.roc_auc for r in self.labels)

    @property
    def average_precision(self) -> np.ndarray:
        """Per-label average precision in taxonomy order, NaN where undefined."""
        return _as_array(r.average_precision for r in self.labels)

    @property
    def n_undefined(self) -> int:
        return sum(not r.defined for r in self.labels)

    @property
    def mean_auc(self) -> float | None:
        """Mean ROC-AUC over defined labels only (None when no label is defined)."""
        return _nanmean(self.roc_auc)

    @property
    def mean_ap(self) -> float | None:
        return _nanmean(self.average_precision)

    def min_auc_with(self, min_positives: int = 30) -> tuple[float, str] | None:
        """Worst ROC-AUC among labels with enough test positives to trust it, and which label.

        Labels with few positives have very noisy AUCs; the "done" bar only applies to the rest.
        """
        cands = [
            (r.roc_auc, r.situation)
            for r in self.labels
            if r.roc_auc is not None and r.positives >= min_positives
        ]
        return min(cands) if cands else None

    def metrics(self) -> dict[str, float | int | None]:
        """Headline numbers, e.g. for a benchmark line or JSON output."""
        worst = self.min_auc_with()
        return {
            "labels": len(self.labels),
            "undefined": self.n_undefined,
            "mean_roc_auc": self.mean_auc,
            "mean_average_precision": self.mean_ap,
            "min_roc_auc_30_positives": None if worst is None else worst[0],
            "not_predicted": list(self.not_predicted),
        }

    # -- uncertainty --------------------------------------------------------------------------

    def ci(
        self,
        n_boot: int = 200,
        seed: int = 0,
        level: float = 0.95,
        metric: str = "roc_auc",
    ) -> dict[str, BootstrapCI]:
        """Bootstrap percentile intervals per label, resampling drives (with replacement)
        and taking all their frames; frames only where drives are unknown (``unit``). A
        label whose positives or negatives all come from one drive gets no interval.

        All labels share the same resampled drives. A resample in which a label has no
        positives or no negatives is skipped for that label; ``n_used`` says how many counted.
        Resamples are expressed as per-frame counts, i.e. sample weights, so every resample of
        a label is computed at once from one sort of its scores.
        """
        if metric not in ("roc_auc", "average_precision"):
            raise ValueError(f"metric must be 'roc_auc' or 'average_precision', not {metric!r}")
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        clusters = self.clusters if self.clusters is not None else np.arange(len(self.y_true))
        counts = resample_counts(clusters, n_boot, seed)
        weighted = _weighted_auc if metric == "roc_auc" else _weighted_ap
        out: dict[str, BootstrapCI] = {}
        for j, name in enumerate(self.situations):
            known = self.mask[:, j]
            values = np.full(n_boot, np.nan)
            # one drive on either side: every resample holding it repeats the same ranking,
            # so the percentiles would collapse onto the estimate; no interval is honest
            if self.labels[j].defined and not one_drive(self.labels[j].drives):
                values = weighted(self.y_score[known, j], self.y_true[known, j], counts[:, known])
            low, high, used = percentile_interval(values, level)
            out[name] = BootstrapCI(name, metric, low, high, level, used, n_boot, self.unit)
        return out

    # -- tables -------------------------------------------------------------------------------

    def rows(self) -> list[dict]:
        """Tidy rows, one per (metric, situation): easy to concatenate across runs or models."""
        return [
            {
                "metric": metric,
                "situation": r.situation,
                "value": getattr(r, metric),
                "n": r.n,
                "positives": r.positives,
                "drives_pos": r.drives_pos,
                "drives_neg": r.drives_neg,
            }
            for metric in METRICS
            for r in self.labels
        ]

    def to_table(
        self, title: str = "Tagger evaluation (test split)", ci: dict | None = None
    ) -> Table:
        """Rich table in taxonomy order, undefined labels spelled out, mean over defined last.

        Pass ``ci=self.ci()`` to add a bootstrap interval column for ROC-AUC. With drives
        known, a column gives the drives with positives / with negatives, flagged below
        :data:`~scenesift.metrics.bootstrap.FEW_DRIVES` on the rarer side.
        """
        caption = (
            "Only frames where the situation is known count. ROC-AUC 0.5 and AP = base "
            "rate are a random ranker; undefined labels are left out of the mean."
        )
        if ci is not None:
            caption += (
                " CI: bootstrap over drives (all frames of each drawn drive); none where the "
                "positives or the negatives come from one drive."
                if self.unit == "drive"
                else " CI: bootstrap over frames, treated as independent (no drives known)."
            )
        drives = self.unit == "drive"
        if drives:
            caption += " drives: with positives / with negatives; " + FEW_NOTE
        table = Table(title=title, caption=caption)
        table.add_column("situation", no_wrap=True)
        table.add_column("group", no_wrap=True)
        for col in ("n", "positives", *(("drives +/-",) if drives else ()), "ROC-AUC"):
            table.add_column(col, justify="right")
        if ci is not None:
            level = next(iter(ci.values())).level if ci else 0.95
            table.add_column(f"{level:.0%} CI", justify="right")
        for col in ("PR-AUC (AP)", "base rate"):
            table.add_column(col, justify="right")
        for r in self.labels:
            undefined = f"undefined ({r.short_reason})"
            cells = [r.situation, r.group or "", f"{r.n:,}", f"{r.positives:,}"]
            if drives:
                cells.append(drives_cell(r))
            cells.append(_fmt(r.roc_auc, undefined))
            if ci is not None:
                cells.append(_fmt_ci(ci.get(r.situation)))
            cells += [_fmt(r.average_precision, undefined), _fmt(r.base_rate, "-")]
            table.add_row(*cells, style=None if r.defined else "dim")
        table.add_section()
        defined = len(self.labels) - self.n_undefined
        mean_base = _nanmean(_as_array(r.base_rate for r in self.labels if r.defined))
        cells = [f"mean ({defined} of {len(self.labels)} defined)", "", "", ""]
        if drives:
            cells.append("")
        cells.append(_fmt(self.mean_auc, "-"))
        if ci is not None:
            cells.append("")
        cells += [_fmt(self.mean_ap, "-"), _fmt(mean_base, "-")]
        table.add_row(*cells, style="bold")
        return table

    # -- plots --------------------------------------------------------------------------------

    def plot_curves(self, out_dir: Path | str, labels: Sequence[str] | None = None) -> list[Path]:
        """One PNG per label: ROC (with the chance diagonal) beside PR (with the base rate).

        Undefined labels still get a file, with annotated empty panels saying why, so a report
        never silently lacks a situation. Returns the paths in taxonomy order.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        wanted = self.situations if labels is None else list(labels)
        order = sorted(self._index(name) for name in wanted)
        return [
            _plot_label(self.labels[j], *self._known(j), out / _png_name(j, self.situations[j]))
            for j in order
        ]

    def plot_summary(self, path: Path | str) -> Path:
        """Horizontal bars of ROC-AUC and AP per label in taxonomy order (undefined: hatched)."""
        return _plot_summary(self.labels, self.mean_auc, Path(path))

    # -- helpers ------------------------------------------------------------------------------

    def _index(self, situation: str) -> int:
        try:
            return self.situations.index(situation)
        except ValueError:
            raise KeyError(f"unknown situation {situation!r}; have {self.situations}") from None

    def _known(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        known = self.mask[:, j]
        return self.y_true[known, j], self.y_score[known, j]


# ------------------------------------------------------------------------------------------------
# evaluation


def evaluate_tagging(
    y_true: np.ndarray,
    y_score: np.ndarray,
    mask: np.ndarray,
    situations: list[str],
    *,
    groups: dict[str, str | None] | None = None,
    drives: Sequence[str | None] | None = None,
) -> TaggingResults:
    """Per-label ROC-AUC and average precision of tagger scores on the known labels of a split.

    ``y_true`` (N, S) in {0, 1}, ``y_score`` (N, S) probabilities, ``mask`` (N, S) True where the
    label is known; values where ``mask`` is False are ignored (they may be NaN or -1).
    ``groups`` maps a situation to its taxonomy group, for display only. ``drives``: each
    frame's drive, the unit that intervals resample and effective sample sizes count (None:
    frames are independent).
    """
    y_true, y_score, mask = _validate(y_true, y_score, mask, situations)
    groups = groups or {}
    clusters, unit = cluster_ids(drives, y_true.shape[0])
    labels = []
    for j, name in enumerate(situations):
        k = mask[:, j]
        r = _label_result(name, groups.get(name), y_true[k, j], y_score[k, j])
        if unit == "drive":
            pos = drives_with(clusters, k & (y_true[:, j] == 1))
            r = replace(
                r, drives_pos=pos, drives_neg=drives_with(clusters, k & (y_true[:, j] == 0))
            )
        labels.append(r)
    return TaggingResults(list(situations), labels, y_true, y_score, mask, clusters, unit)


def drives_cell(r: LabelResult) -> str:
    """``positive drives/negative drives``, flagged ``(few)`` when the rarer side is short."""
    if r.drives is None:
        return "-"
    return f"{r.drives_pos}/{r.drives_neg}" + (" (few)" if r.few_drives else "")


def thresholds_for_precision(
    y_true: np.ndarray,
    y_score: np.ndarray,
    mask: np.ndarray,
    situations: list[str],
    target_precision: float = 0.9,
) -> tuple[dict[str, float], dict[str, str]]:
    """Per-label score thresholds for pre-labelling, chosen on validation data.

    The lowest threshold whose precision (``score >= threshold``) reaches the target, which
    keeps the most recall at that precision; where no threshold reaches it, the max-F1
    threshold. Where the base rate alone reaches the target (a common situation such as
    "clear" at 90% precision), that rule would call every frame positive, and so would max
    F1: the threshold that best separates the classes (Youden's J, max TPR - FPR on the ROC
    curve) is used instead. Undefined labels get 0.5. The second dict says which rule applied.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    y_true, y_score, mask = _validate(y_true, y_score, mask, situations)
    thresholds: dict[str, float] = {}
    how: dict[str, str] = {}
    for j, name in enumerate(situations):
        t, s = y_true[mask[:, j], j], y_score[mask[:, j], j]
        reason = _undefined_reason(t)
        if reason is not None:
            thresholds[name], how[name] = 0.5, f"undefined ({_SHORT_REASON[reason]})"
            continue
        if t.mean() >= target_precision:
            fpr, tpr, roc_thr = roc_curve(t, s)
            best = int(np.argmax(tpr - fpr))
            thresholds[name] = float(min(roc_thr[best], s.max()))  # roc_curve's first is inf
            how[name] = f"Youden J (base rate {t.mean():.2f} >= precision {target_precision:g})"
            continue
        precision, recall, thr = precision_recall_curve(t, s)
        precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
        reached = np.flatnonzero(precision >= target_precision)
        if reached.size:  # thresholds ascend, so the first hit is the lowest threshold
            thresholds[name] = float(thr[reached[0]])
            how[name] = f"precision {target_precision:g} reached"
        else:
            total = precision + recall
            f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
            thresholds[name] = float(thr[int(np.argmax(f1))])
            how[name] = f"max F1 (precision {target_precision:g} not reachable)"
    return thresholds, how


def _validate(
    y_true: np.ndarray, y_score: np.ndarray, mask: np.ndarray, situations: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_true, y_score = np.asarray(y_true, dtype=float), np.asarray(y_score, dtype=float)
    mask = np.asarray(mask, dtype=bool)
    if y_true.ndim != 2 or y_true.shape != y_score.shape or y_true.shape != mask.shape:
        raise ValueError(
            f"y_true, y_score and mask must all be (N, S); got {y_true.shape}, "
            f"{y_score.shape}, {mask.shape}"
        )
    if len(situations) != y_true.shape[1]:
        raise ValueError(f"{len(situations)} situation names for {y_true.shape[1]} columns")
    if not np.isin(y_true[mask], (0.0, 1.0)).all():
        raise ValueError("y_true must be 0 or 1 wherever mask is True")
    if not np.isfinite(y_score[mask]).all():
        raise ValueError("y_score must be finite wherever mask is True")
    return np.where(mask, y_true, 0).astype(np.int8), np.where(mask, y_score, 0.0), mask


def _undefined_reason(t: np.ndarray) -> str | None:
    if t.size == 0:
        return "no known labels in the test split"
    if not t.any():
        return "no positives in the test split"
    if t.all():
        return "no negatives in the test split"
    return None


def _label_result(name: str, group: str | None, t: np.ndarray, s: np.ndarray) -> LabelResult:
    from sklearn.metrics import average_precision_score, roc_auc_score

    n, pos = int(t.size), int(t.sum())
    base = pos / n if n else None
    reason = _undefined_reason(t)
    if reason is not None:
        return LabelResult(name, group, n, pos, n - pos, None, None, base, reason)
    auc, ap = float(roc_auc_score(t, s)), float(average_precision_score(t, s))
    return LabelResult(name, group, n, pos, n - pos, auc, ap, base)


# ------------------------------------------------------------------------------------------------
# bootstrap: every resample of a label at once, as sample weights (see metrics/bootstrap.py)


def _tie_groups(sorted_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position of a sorted array: first and last index of its run of equal values."""
    n = sorted_scores.size
    new = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    starts = np.flatnonzero(new)
    run = np.cumsum(new) - 1
    ends = np.r_[starts[1:] - 1, n - 1]
    return starts[run], ends[run]


def _weighted_auc(score: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC-AUC (Mann-Whitney, ties count half) for each row of weights ``w`` (B, n); NaN where
    a row has no positive or no negative weight. Equals sklearn's with ``sample_weight``."""
    order = np.argsort(score, kind="stable")
    s, yy, w = score[order], y[order].astype(bool), w[:, order]
    first, last = _tie_groups(s)
    neg_w = np.where(yy, 0.0, w)
    cum_neg = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(neg_w, axis=1)], axis=1)
    below = cum_neg[:, first]
    tied = cum_neg[:, last + 1] - below
    pos_w = np.where(yy, w, 0.0)
    wins = (pos_w * (below + 0.5 * tied)).sum(axis=1)
    denom = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    return np.divide(wins, denom, out=np.full(w.shape[0], np.nan), where=denom > 0)


def _weighted_ap(score: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision (sklearn's step-wise sum) for each row of weights ``w`` (B, n)."""
    order = np.argsort(-score, kind="stable")
    s, yy, w = score[order], y[order].astype(bool), w[:, order]
    _, last = _tie_groups(s)
    ends = np.unique(last)  # one operating point per distinct score, highest first
    tp = np.cumsum(np.where(yy, w, 0.0), axis=1)[:, ends]
    fp = np.cumsum(np.where(yy, 0.0, w), axis=1)[:, ends]
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = np.divide(tp, n_pos[:, None], out=np.zeros_like(tp), where=n_pos[:, None] > 0)
    d_recall = np.diff(recall, axis=1, prepend=0.0)
    ap = (d_recall * precision).sum(axis=1)
    return np.where((n_pos > 0) & (n_neg > 0), ap, np.nan)


# ------------------------------------------------------------------------------------------------
# formatting and plotting


def _as_array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _nanmean(a: np.ndarray) -> float | None:
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else None


def _fmt(v: float | None, missing: str) -> str:
    return missing if v is None else f"{v:.3f}"


def _fmt_ci(c: BootstrapCI | None) -> str:
    if c is None or c.low is None:
        return "-"
    used = "" if c.n_used == c.n_boot else f" ({c.n_used}/{c.n_boot} resamples)"
    return f"{c.low:.3f}-{c.high:.3f}{used}"


def _png_name(j: int, situation: str) -> str:
    """Index-prefixed so a directory listing keeps taxonomy order; safe on any filesystem."""
    return f"{j:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', situation)}.png"


def _new_figure(width: float, height: float):
    """A pyplot-free figure on the Agg canvas: no global backend state, safe in threads/CLI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _style_unit_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_ylabel(ylabel, fontsize=11)
    ax.set_title(title, fontsize=11)
    ax.tick_params(labelsize=10)
    ax.grid(alpha=0.3)
    ax.set_aspect("equal")


def _plot_label(r: LabelResult, t: np.ndarray, s: np.ndarray, path: Path) -> Path:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig = _new_figure(10, 5)
    roc_ax, pr_ax = fig.subplots(1, 2)
    if r.defined:
        fpr, tpr, _ = roc_curve(t, s)
        roc_ax.plot(fpr, tpr, lw=2, color="C0", label=f"tagger (AUC {r.roc_auc:.3f})")
        precision, recall, _ = precision_recall_curve(t, s)
        pr_ax.plot(
            recall,
            precision,
            lw=2,
            color="C1",
            drawstyle="steps-post",
            label=f"tagger (AP {r.average_precision:.3f})",
        )
        roc_ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="random (AUC 0.5)")
        pr_ax.axhline(
            r.base_rate, ls="--", color="0.5", lw=1, label=f"random (base rate {r.base_rate:.3f})"
        )
        roc_ax.legend(loc="lower right", fontsize=9)
        pr_ax.legend(loc="best", fontsize=9)  # the PR curve wanders; let matplotlib dodge it
        headline = f"ROC-AUC {r.roc_auc:.3f}   AP {r.average_precision:.3f}"
    else:  # no curve and no reference line: an empty, annotated panel says why
        for ax in (roc_ax, pr_ax):
            ax.text(
                0.5,
                0.5,
                f"undefined:\n{r.reason}",
                ha="center",
                va="center",
                fontsize=12,
                color="0.35",
                transform=ax.transAxes,
            )
        headline = f"undefined ({r.short_reason})"
    _style_unit_axes(roc_ax, "false positive rate", "true positive rate", "ROC")
    _style_unit_axes(pr_ax, "recall", "precision", "Precision-recall")
    fig.suptitle(
        f"{r.situation}: {headline}   ({r.positives:,} positives of {r.n:,} frames)", fontsize=13
    )
    fig.tight_layout()
    fig.savefig(path)
    return path


def _bar_value(ax, value: float, y: float) -> None:
    """Value at the bar's end, on white so the mean line behind it cannot garble it."""
    ax.text(
        value + 0.01,
        y,
        f"{value:.2f}",
        va="center",
        fontsize=9,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5},
    )


def _tick(r: LabelResult) -> str:
    """A label's name and its sample sizes: frames, and drives where known."""
    sizes = f"{r.positives:,} pos / {r.n:,}"
    if r.drives is not None:
        sizes += f"; drives {drives_cell(r)}"
    return f"{r.situation}\n({sizes})"


def _plot_summary(labels: list[LabelResult], mean_auc: float | None, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = _new_figure(8, 1.3 + 0.55 * len(labels))
    ax = fig.subplots()
    y = np.arange(len(labels))
    h = 0.38
    for i, r in enumerate(labels):
        if r.defined:
            ax.barh(i - h / 2, r.roc_auc, h, color="C0")
            ax.barh(i + h / 2, r.average_precision, h, color="C1")
            ax.plot([r.base_rate] * 2, [i + 0.02, i + h - 0.02], color="k", lw=2)
            _bar_value(ax, r.roc_auc, i - h / 2)
            _bar_value(ax, r.average_precision, i + h / 2)
        else:
            ax.barh(i, 1.0, 2 * h, fill=False, hatch="//", edgecolor="0.6")
            ax.text(
                0.5,
                i,
                f"undefined ({r.short_reason})",
                ha="center",
                va="center",
                fontsize=10,
                bbox={"facecolor": "white", "edgecolor": "none"},
            )
    # legend proxies so the legend does not depend on which labels happen to be defined
    ax.barh([np.nan], [np.nan], color="C0", label="ROC-AUC")
    ax.barh([np.nan], [np.nan], color="C1", label="PR-AUC (AP)")
    ax.plot([np.nan], [np.nan], color="k", lw=2, label="AP of a random ranker (base rate)")
    if mean_auc is not None:
        ax.axvline(mean_auc, ls="--", color="C0", lw=1, label=f"mean ROC-AUC {mean_auc:.3f}")
    ax.set_yticks(y, [_tick(r) for r in labels])
    ax.tick_params(axis="y", labelsize=10)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # taxonomy order top to bottom, no empty margins
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("score", fontsize=11)
    ax.set_title("Per-label tagger quality (test split)", fontsize=12)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.09 * 8 / (1.3 + 0.55 * len(labels))),
        ncol=2,
        fontsize=9,
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path)
    return path
