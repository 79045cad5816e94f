"""The report's tables as plain strings: one formatting for the HTML report and the terminal
(``report_summary_table``), so both always show the same numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.markup import escape
from rich.table import Table

from scenesift.experiments import stats
from scenesift.experiments.results import ALL, read_results


@dataclass
class TextTable:
    """Column names, rows of cell strings, a caption; ``numeric`` columns align right."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    numeric: set[int] = field(default_factory=set)


def as_frame(results: pd.DataFrame | str | Path | None) -> pd.DataFrame | None:
    """A results DataFrame, or the table read from a results directory, or None."""
    if results is None or isinstance(results, pd.DataFrame):
        return results
    return read_results(Path(results))


def _ok(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def fmt_ci(mean: float, low: float, high: float, digits: int = 3, sign: bool = False) -> str:
    """``0.612 [0.601, 0.624]``; the interval left out when undefined (one seed)."""
    if not _ok(mean):
        return "-"
    spec = f"{'+' if sign else ''}.{digits}f"
    text = format(mean, spec)
    if _ok(low) and _ok(high):
        text += f" [{format(low, spec)}, {format(high, spec)}]"
    return text


def fmt_p(p: float) -> str:
    if not _ok(p):
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _labels_cell(row: pd.Series) -> str:
    n_seeds, n_reached = int(row.get("n_seeds", 0)), row.get("n_reached")
    if not _ok(n_reached):
        return "-"
    n_reached = int(n_reached)
    if n_reached == n_seeds:
        return fmt_ci(row["labels"], row["labels_low"], row["labels_high"], digits=0)
    if n_reached == 0:
        return "not reached"
    median = row.get("labels_median")
    tail = f" (median {median:,.0f})" if _ok(median) else ""
    return f"not reached by {n_seeds - n_reached}/{n_seeds} seeds{tail}"


def summary_text(
    results: pd.DataFrame,
    full_map50: float | None = None,
    share: float = 0.95,
    baseline: str = stats.BASELINE,
    metric: str = "map50",
) -> TextTable:
    """Per strategy: seeds, labels to reach ``share`` of the full-data mAP@0.5, AULC, and
    the paired difference to ``baseline`` with its t and Wilcoxon p-values."""
    from_variance = full_map50 is None
    if full_map50 is None:
        full_map50 = stats.full_data_value(results, metric)
    s = stats.strategy_summary(results, full_map50, share, baseline, metric)
    target = (
        f"labels to reach {share:.0%} of full-data mAP@0.5 ({share * full_map50:.3f})"
        if full_map50 is not None
        else f"labels to reach {share:.0%} of full-data mAP@0.5"
    )
    columns = ["strategy", "seeds", target, "AULC (mean mAP@0.5)", f"AULC - {baseline}",
               "p (paired t)", "p (t, Holm)", "p (Wilcoxon)"]  # fmt: skip
    rows = []
    for _, r in s.iterrows():
        rows.append([
            str(r["strategy"]), str(int(r["n_seeds"])), _labels_cell(r),
            fmt_ci(r["aulc"], r["aulc_low"], r["aulc_high"]),
            fmt_ci(r["diff"], r["diff_low"], r["diff_high"], sign=True)
            if _ok(r["diff"]) else ("baseline" if r["strategy"] == baseline else "-"),
            fmt_p(r["t_pvalue"]), fmt_p(r["t_pvalue_holm"]), fmt_p(r["wilcoxon_pvalue"]),
        ])  # fmt: skip
    if full_map50 is None:
        source = "no full-data mAP@0.5: pass it, or run the variance study with fraction 1.0"
    elif from_variance:
        source = f"full-data mAP@0.5 {full_map50:.3f}: median of the variance study's 100% runs"
    else:
        source = f"full-data mAP@0.5 {full_map50:.3f} (given)"
    x = ""
    auc = stats.area_under_curve(results, metric).per_seed
    if len(auc) and _ok(auc["x_min"].iloc[0]):
        x = f" over {auc['x_min'].iloc[0]:,.0f}-{auc['x_max'].iloc[0]:,.0f} labelled frames"
    pairs = s["n_pairs"].dropna()
    floor = ""
    if len(pairs) and 2 <= pairs.min() < 8:
        n = int(pairs.min())
        floor = f" With {n} seeds a Wilcoxon p-value cannot go below {2 / 2**n:.3g}."
    caption = (
        f"Mean [95% t-interval across seeds]. AULC: area under the mAP@0.5 learning curve"
        f"{x}, divided by its width. Paired by seed (same initial set); "
        f"two-sided tests; Holm: the t-test's p adjusted for the strategies compared with "
        f"{baseline}.{floor} Labels to reach: linear between rounds; {source}."
        f"{_code_versions(results)}"
    )
    return TextTable(columns, rows, caption, numeric={1, 2, 3, 4, 5, 6, 7})


def _code_versions(results: pd.DataFrame) -> str:
    """' Runs from 2 code versions (0.1.0+gabc: 16; unrecorded: 4).' when the table pools
    runs that different code computed (an experiment extended over sessions or machines)."""
    if "code" not in results or results.empty:
        return ""
    runs = results.drop_duplicates("run").groupby("code", dropna=False)["run"].size()
    if len(runs) < 2:
        return ""
    parts = "; ".join(f"{code or 'unrecorded'}: {n}" for code, n in runs.items())
    return f" Runs from {len(runs)} code versions ({parts})."


#: Below this mAP@0.5 everywhere a detector has learned nothing a comparison could show (the
#: gap report's rule too).
WEAK = 0.005


def metric_name(metric: str) -> str:
    return {"map50": "mAP@0.5", "map": "mAP@[.5:.95]"}.get(metric, metric)


def _p_text(p: float) -> str:
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def verdict(
    results: pd.DataFrame | str | Path | None,
    full_map50: float | None = None,
    share: float = 0.95,
    baseline: str = stats.BASELINE,
    metric: str = "map50",
) -> str:
    """What the strategy study found, in plain words and computed from ``results`` (every
    number comes from ``stats.strategy_summary``): which strategy beat ``baseline`` on its
    mAP@0.5 averaged over the labelling budget (the paired 95% t-interval across seeds
    excludes zero), the labels each needed to reach ``share`` of the full-data mAP@0.5, and
    why the outcome is worth knowing. '' when the results hold no strategy comparison."""
    df = as_frame(results)
    if df is None or stats.subset(df, metric).empty:
        return ""
    if full_map50 is None:
        full_map50 = stats.full_data_value(df, metric)
    if stats.subset(df, metric)["value"].max() < WEAK:
        return (
            f"No verdict: the detector's {metric_name(metric)} stayed below {WEAK} in every "
            "round of every run, so these runs cannot tell strategies apart. Train it longer "
            "(the experiment's `[learner]` table, e.g. `detector = { epochs = 12 }`) and run "
            "the experiment again."
        )
    s = stats.strategy_summary(df, full_map50, share, baseline, metric)
    if baseline not in set(s["strategy"]):
        return (
            f"No verdict: the strategy study has no {baseline!r} runs to compare with "
            f"(strategies: {', '.join(map(str, s['strategy']))})."
        )
    auc = stats.area_under_curve(df, metric).per_seed
    budget, top = "", float("nan")
    if len(auc) and _ok(auc["x_min"].iloc[0]):
        top = float(auc["x_max"].iloc[0])
        budget = f"averaged over {auc['x_min'].iloc[0]:,.0f}-{top:,.0f} labelled frames, "
    base = s.loc[s["strategy"] == baseline].iloc[0]
    better, tied, worse, unpaired = [], [], [], []
    for _, r in s.loc[s["strategy"] != baseline].iterrows():
        if not _ok(r["diff"]) or not _ok(r["diff_low"]):
            unpaired.append(str(r["strategy"]))
            continue
        # several strategies against one baseline: the decision uses Holm's adjusted p, so
        # the best of many is not declared a winner on luck
        family = int(r["n_compared"]) if _ok(r.get("n_compared")) else 1
        adjusted = ""
        if family > 1:
            adjusted = f"; Holm-adjusted for {family} strategies, {_p_text(r['t_pvalue_holm'])}"
        lucky = family > 1 and _ok(r["t_pvalue_holm"]) and r["t_pvalue_holm"] >= 1 - stats.LEVEL
        evidence = (
            f"(95% CI {r['diff_low']:+.3f} to {r['diff_high']:+.3f}; paired t-test "
            f"{_p_text(r['t_pvalue'])}{adjusted}, {int(r['n_pairs'])} seeds)"
        )
        reach = _reach(r, base, share, top)
        name = str(r["strategy"])
        if r["diff_low"] > 0 and not lucky:
            better.append((name, r, f"its mAP@0.5 was {r['diff']:.3f} higher "
                                    f"{evidence}.{_few_seeds(r)}{reach}"))  # fmt: skip
        elif r["diff_high"] < 0 and not lucky:
            worse.append((name, r, f"{name} did worse than {baseline}: {budget}its mAP@0.5 was "
                                   f"{-r['diff']:.3f} lower {evidence}.{reach}"))  # fmt: skip
        else:
            tied.append((name, r, f"{budget}{name}'s mAP@0.5 differed from {baseline}'s by "
                                  f"{r['diff']:+.3f} {evidence}.{reach}"))  # fmt: skip
    # the winners best first: the sentences that follow (what it saves, the rare slice)
    # are about the first one named; the others say only what differs. A winner on fewer
    # seeds than a claim needs (an experiment extended one strategy at a time) comes after
    # those with enough: its larger mean is the less certain one
    better.sort(key=lambda b: (b[1]["n_pairs"] < stats.MIN_SEEDS, -b[1]["diff"]))
    out = [f"On this pool, {name} beat {baseline}: {budget}{text}" if i == 0 else
           f"{name} beat {baseline} too: {text}"
           for i, (name, _, text) in enumerate(better)]  # fmt: skip
    if better:
        name, r, _ = better[0]
        reached = _ok(r.get("labels"))
        saved = (
            1 - r["labels"] / base["labels"]
            if reached and _ok(base.get("labels")) and base["labels"] > 0
            else float("nan")
        )
        # the baseline reached the target on no seed within the budget: it needs more
        # than the budget, so the saving is at least what the budget gives
        at_least = (
            1 - r["labels"] / top
            if reached and _ok(top) and _ok(base.get("n_reached")) and base["n_reached"] == 0
            else float("nan")
        )
        if _ok(saved) and saved > 0:
            out.append(f"Worth knowing: on data like this, {name} gets the same accuracy for "
                       f"about {saved:.0%} fewer labels than {baseline} picks.")  # fmt: skip
        elif subsets := _random_subsets(df, r, full_map50, share, baseline, metric):
            out.append(subsets)
        elif _ok(at_least) and at_least > 0:
            out.append(
                f"Worth knowing: on data like this, {name} gets the same accuracy for at "
                f"least {at_least:.0%} fewer labels than {baseline} picks ({baseline} had "
                f"not reached it at {top:,.0f} labelled frames, where the study stopped)."
            )
        elif match := _match(df, name, baseline, metric):
            out.append(match)
        else:
            out.append(f"Worth knowing: on data like this, frames chosen by {name} give more "
                       f"accuracy per label than {baseline} picks, so a labelling budget goes "
                       "further.")  # fmt: skip
    elif tied:
        first = tied[0][2]
        out.append(f"No strategy beat {baseline} here: {first[0].lower()}{first[1:]}")
        out.extend(text[0].upper() + text[1:] for _, _, text in tied[1:])
        high = max(r["diff_high"] for _, r, _ in tied)
        out.append(
            f"Worth knowing: at this budget, choosing frames by a strategy bought no "
            f"measurable accuracy over {baseline} picks, so {baseline} sampling (simpler, and "
            f"unbiased for evaluation) is the safe choice until a larger study shows a gain; "
            f"this one could have missed a gain of up to {high:.3f} mAP@0.5."
        )
    out.extend(text for _, _, text in worse)
    if worse and not better and not tied:
        out.append(
            f"Worth knowing: on data like this, {baseline} picks were the better use of "
            "labels; a strategy has to be checked against random before it is trusted."
        )
    if unpaired:
        out.append(
            f"Not compared ({', '.join(unpaired)}): a paired test needs at least 2 seeds run "
            f"with both the strategy and {baseline}."
        )
    # the rare slice of the strategy the verdict named the winner (a tied strategy with a
    # larger mean difference on fewer seeds is not the one the reader was told about)
    named = better[0] if better else max(tied + worse, key=lambda b: b[1]["diff"], default=None)
    if named:
        out.append(_rare_slice(df, named[0], baseline))
    return " ".join(t for t in out if t)


#: Variance subset sizes further apart than this ratio make random's labels to a target a
#: rough figure (the verdict says so).
WIDE_STEP = 1.5


def _random_subsets(
    df: pd.DataFrame,
    r: pd.Series,
    full_value: float | None,
    share: float,
    baseline: str,
    metric: str,
) -> str:
    """'Worth knowing: on data like this, badge reached 95% of the full-data mAP@0.5 (0.237)
    at 579 labelled frames (its mean learning curve over 8 seeds ...); random subsets of the
    pool needed about 1,027 (...): 44% fewer labels (random needs 1.77x).' Random campaigns
    stop at the study's budget, often short of the target; the variance study trains the
    same detector on random subsets up to the whole pool, so its median curve says how many
    labels random needs past that budget. '' when the baseline is not random, or either
    number is not measured, or the strategy saves nothing."""
    if baseline != stats.BASELINE or not _ok(full_value) or not _ok(r.get("target")):
        return ""
    needs, below, above = stats.variance_labels_to_reach(df, full_value, share, metric)
    if not (_ok(needs) and _ok(below)):
        return ""  # not reached, or at the smallest subset: nothing measured to compare
    name, n_seeds = str(r["strategy"]), int(r["n_seeds"])
    if _ok(r.get("labels")):
        labels, how = float(r["labels"]), f"mean over its {n_seeds} seeds"
    else:
        curve = stats.mean_curve_labels_to_reach(df, full_value, share, metric)
        curve = curve.set_index("strategy")["labels"]
        if not _ok(curve.get(name)):
            return ""
        labels = float(curve[name])
        k = int(r["n_reached"]) if _ok(r.get("n_reached")) else 0
        how = (f"its mean learning curve over {n_seeds} seeds; {k} of them reached it on "
               "their own")  # fmt: skip
    if labels >= needs:
        return ""
    # the trainings behind the two sizes the crossing lies between, not every size's
    sizes = stats.variance_summary(df, metric)
    at = sizes["n_labelled"]
    runs = sizes.loc[(at - below).abs().lt(0.5) | (at - above).abs().lt(0.5), "n_runs"]
    each = f"{runs.min()}" if runs.min() == runs.max() else f"{runs.min()}-{runs.max()}"
    # a learning curve bends (each label adds less), so a straight line across a wide step
    # reaches the target late: say so rather than give the rough figure as a measurement
    rough = (
        "; sizes this far apart make it rough (a bending curve gets there sooner than a "
        "straight line): add `[variance] fractions` between them to pin it down"
        if above > WIDE_STEP * below
        else ""
    )
    return (
        f"Worth knowing: on data like this, {name} reached {share:.0%} of the full-data "
        f"{metric_name(metric)} ({r['target']:.3f}) at {labels:,.0f} labelled frames ({how}); "
        f"random subsets of the pool needed about {needs:,.0f} (the variance study's median, "
        f"linear between its {below:,.0f}- and {above:,.0f}-frame subsets; {each} trainings "
        f"a size{rough}): {1 - labels / needs:.0%} fewer labels (random needs "
        f"{needs / labels:.2f}x)."
    )


def _few_seeds(r: pd.Series) -> str:
    """' It has 4 seeds, fewer than the 8 a claim needs: ...' for a winner short of
    ``stats.MIN_SEEDS`` paired seeds (issue 16: claims use at least 8); '' otherwise."""
    n = int(r["n_pairs"])
    if n >= stats.MIN_SEEDS:
        return ""
    return (
        f" It has {n} seeds, fewer than the {stats.MIN_SEEDS} a claim needs: a lead to "
        "confirm (raise `seeds` in the experiment's table and run it again)."
    )


def _match(df: pd.DataFrame, strategy: str, baseline: str, metric: str) -> str:
    """'Worth knowing: ... reached the mAP@0.5 random had at 600 labelled frames (0.217,
    mean over 8 seeds) with 430 (mean over the same seeds): about 28% fewer labels ...':
    the saving at the accuracy the baseline did reach, when the full-data target is out of
    reach. Each seed is matched with its own baseline run; '' unless every seed got there
    (a mean over the seeds that did would be optimistic)."""
    match = stats.labels_to_match(df, baseline, metric)
    runs = match.per_seed.loc[match.per_seed["strategy"] == strategy]
    by = match.by_strategy.set_index("strategy")
    if runs.empty or not _ok(by.loc[strategy, "mean"]) or runs["budget"].nunique() != 1:
        return ""  # the mean is defined only when every seed got there
    budget, labels = float(runs["budget"].iloc[0]), float(by.loc[strategy, "mean"])
    saved = 1 - labels / budget
    if saved <= 0:
        return ""
    return (
        f"Worth knowing: on data like this, {strategy} reached the {metric_name(metric)} "
        f"{baseline} picks had at {budget:,.0f} labelled frames ({runs['target'].mean():.3f}, "
        f"mean over {len(runs)} seeds) with {labels:,.0f} labelled frames (mean over the same "
        f"seeds, each against its own {baseline} run): about {saved:.0%} fewer labels for "
        "that accuracy."
    )


def _rare_slice(df: pd.DataFrame, strategy: str, baseline: str) -> str:
    """'On the rarest class with at least 100 test objects (truck, 197), ...'s AP@0.5 at
    400 labelled frames was 1.12x random's (...)': where selection should pay most, at
    the largest shared budget. A rarer slice neither strategy learned there (a class the
    pool lacks) is named as left out, not compared. '' when no slice has enough test data."""
    gains = stats.slice_gains(df, strategy, baseline)
    gains = gains.loc[gains["enough"]]
    # each slice at its largest shared budget
    gains = gains.loc[gains["n_labelled"] == gains.groupby(["kind", "name"])["n_labelled"]
                      .transform("max")]  # fmt: skip
    compared = gains.loc[gains["learned"] & gains["ratio"].notna()]
    if compared.empty:
        return ""
    # rare where selection looks: in the pool (an evaluation world oversamples rare
    # contexts, so its counts say how well a slice is measured, not how rare it is)
    rarity = "pool_count" if (gains["pool_count"] >= 0).all() else "count"
    last = compared.loc[compared[rarity] == compared[rarity].min()].iloc[0]
    unit = "test objects" if last["kind"] == "class" else "positive test frames"
    what = "AP@0.5" if last["kind"] == "class" else "mAP@0.5 on its frames"
    if rarity == "pool_count":
        which = (f"On the {last['kind']} rarest in the pool among those with at least "
                 f"{stats.MIN_EVAL_COUNT} {unit} ({last['name']}: "
                 f"{int(last['pool_count'])} {unit.split()[-1]} in the pool, "
                 f"{int(last['count'])} in the test split)")  # fmt: skip
    else:
        which = (f"On the rarest {last['kind']} with at least {stats.MIN_EVAL_COUNT} {unit} "
                 f"({last['name']}, {int(last['count'])})")  # fmt: skip
    text = (
        f"{which}, {strategy}'s {what} at "
        f"{last['n_labelled']:,.0f} labelled frames was {last['ratio']:.2f}x {baseline}'s "
        f"({last['strategy_mean']:.3f} vs {last['baseline_mean']:.3f}, mean over "
        f"{int(last['n_pairs'])} seeds)."
    )
    unlearned = gains.loc[~gains["learned"] & (gains[rarity] < last[rarity])]
    if len(unlearned):
        names = ", ".join(f"{r['name']} ({int(r[rarity])})" for _, r in unlearned.iterrows())
        text += (
            f" Rarer, but learned by neither (AP@0.5 below {stats.LEARNED} at that budget, "
            f"so a ratio would measure noise): {names}."
        )
    return text


def _reach(r: pd.Series, base: pd.Series, share: float, top: float) -> str:
    """' Target, 95% of the full-data mAP@0.5 (0.703): least_confidence needed 420
    labelled frames, random 510 (means over seeds).' or who did not reach it."""
    target = r.get("target")
    if not _ok(target):
        return ""
    within = f" within {top:,.0f} labelled frames" if _ok(top) else ""

    def how(row: pd.Series) -> str:
        if _ok(row.get("labels")):
            return f"needed {row['labels']:,.0f} labelled frames (mean over seeds)"
        n = int(row["n_seeds"])
        k = int(row["n_reached"]) if _ok(row.get("n_reached")) else 0
        return f"did not reach it{within}" if k == 0 else f"reached it on {k} of {n} seeds only"

    head = f" Target, {share:.0%} of the full-data mAP@0.5 ({target:.3f}):"
    if not _ok(r.get("labels")) and how(r) == how(base):  # named: several are compared
        if how(r).startswith("did not reach"):
            both = f"neither {r['strategy']} nor {base['strategy']} reached"
            return f"{head} {how(r).replace('did not reach', both)}."
        return f"{head} {r['strategy']} and {base['strategy']} each {how(r)}."
    return f"{head} {r['strategy']} {how(r)}; {base['strategy']} {how(base)}."


def variance_text(results: pd.DataFrame, metric: str = "map50") -> TextTable:
    v = stats.variance_summary(results, metric)
    columns = ["training share", "labelled frames", "trainings", "min", "median", "max",
               "mean", "std", "max - min"]  # fmt: skip
    rows = [
        [f"{r['fraction']:.0%}", f"{r['n_labelled']:,.0f}", str(int(r["n_runs"])),
         f"{r['min']:.3f}", f"{r['median']:.3f}", f"{r['max']:.3f}", f"{r['mean']:.3f}",
         "-" if not _ok(r["std"]) else f"{r['std']:.3f}", f"{r['spread']:.3f}"]
        for _, r in v.iterrows()
    ]  # fmt: skip
    caption = (
        "mAP@0.5 on the test split of models trained on random subsets of the pool; each "
        "training draws its own subset. A wide min-max range at one size means which frames "
        "are labelled matters as much as how many."
    )
    return TextTable(columns, rows, caption, numeric=set(range(1, 9)))


def tagger_study_text(
    results: pd.DataFrame,
    labels: list[str] | None = None,
    n_labels: int = 3,
    baseline: str = stats.BASELINE,
) -> TextTable:
    """The tagger study per strategy: AULC of the mean ROC-AUC over labels and of the
    ROC-AUC of the hardest labels, each with its paired difference to ``baseline``.

    ``labels``: default the ``n_labels`` labels the baseline's first tagger ranked worst
    (mean over seeds): the situations the initial random set taught it least, where
    choosing what to label can matter."""
    df = results
    auc = stats.subset(df, "auc", ALL, None, "tagger")
    auc = auc.loc[auc["situation"] != ALL]
    if labels is None:
        first = auc.loc[auc["n_labelled"] == auc["n_labelled"].min()]
        pool = (
            first.loc[first["strategy"] == baseline]
            if baseline in set(first["strategy"])
            else first
        )
        worst = pool.groupby("situation")["value"].mean().sort_values()
        labels = list(worst.index[:n_labels])
    measures = [("auc_mean", ALL, "mean ROC-AUC")] + [("auc", s, s) for s in labels]
    columns = ["strategy", "seeds"]
    for _, _, title in measures:
        columns += [f"AULC {title}", f"- {baseline}"]
    strategies = sorted(set(auc["strategy"]), key=lambda s: (s != baseline, s))
    aulc = {  # one per measure, every strategy's row at once
        (metric, situation): stats.area_under_curve(
            df, metric, situation=situation, study="tagger"
        ).by_strategy.set_index("strategy")
        for metric, situation, _ in measures
    }
    rows = []
    for strategy in strategies:
        row = [strategy, ""]
        for metric, situation, _ in measures:
            by = aulc[metric, situation]
            if strategy not in by.index:
                row += ["-", "-"]
                continue
            r = by.loc[strategy]
            row[1] = str(int(r["n_seeds"]))
            row.append(fmt_ci(r["mean"], r["ci_low"], r["ci_high"]))
            if strategy == baseline:
                row.append("baseline")
                continue
            t = stats.paired_test(df, strategy, baseline, metric, situation=situation,
                                  study="tagger")  # fmt: skip
            row.append(f"{fmt_ci(t.mean_diff, t.ci_low, t.ci_high, sign=True)} "
                       f"(p {fmt_p(t.t_pvalue)})")  # fmt: skip
        rows.append(row)
    span = auc["n_labelled"]
    caption = (
        f"Situation tagger campaigns: area under the test ROC-AUC learning curve over "
        f"{span.min():,.0f}-{span.max():,.0f} labelled frames, divided by its width; mean "
        f"[95% t-interval across seeds], the difference paired by seed (same initial set) "
        f"with its paired t-test p-value. Labels: {', '.join(labels)} (those the first "
        f"tagger ranked worst), and the mean over every label defined on the test split."
    )
    return TextTable(columns, rows, caption, numeric=set(range(1, len(columns))))


def report_summary_table(
    results: pd.DataFrame | str | Path,
    full_map50: float | None = None,
    share: float = 0.95,
    baseline: str = stats.BASELINE,
) -> Table:
    """The report's key numbers for the terminal: labels to reach ``share`` of the
    full-data mAP@0.5, AULC and the paired test against ``baseline``, per strategy."""
    df = as_frame(results)
    if df is None or stats.subset(df, "map50").empty:
        table = Table(title="Strategies", caption="no strategy-study rows in the results")
        table.add_column("strategy")
        return table
    text = summary_text(df, full_map50, share, baseline)
    return rich_table(text, "Active learning strategies vs " + baseline, baseline)


def rich_table(text: TextTable, title: str, baseline: str | None = stats.BASELINE) -> Table:
    """A ``TextTable`` for the terminal (the baseline's row dimmed)."""
    table = Table(title=title, caption=text.caption)
    for j, col in enumerate(text.columns):
        table.add_column(col, justify="right" if j in text.numeric else "left")
    for row in text.rows:
        table.add_row(*map(escape, row), style="dim" if row[0] == baseline else None)
    return table


def experiment_tables(results: pd.DataFrame | str | Path) -> list[Table]:
    """Every study's headline table that the results have rows for."""
    df = as_frame(results)
    out: list[Table] = []
    if df is None or df.empty:
        return out
    if not stats.variance_summary(df).empty:
        out.append(rich_table(variance_text(df), "Variance of random subsets", None))
    if not stats.subset(df, "map50").empty:
        out.append(report_summary_table(df))
    if not stats.subset(df, "auc_mean", study="tagger").empty:
        out.append(rich_table(tagger_study_text(df), "Situation tagger: strategies vs random"))
    return out
