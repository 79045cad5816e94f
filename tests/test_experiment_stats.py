"""Statistics on the tidy results table, on small tables whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from scenesift.experiments import stats
from scenesift.experiments.results import frame

N = [100, 200, 300, 400, 500]


def curves(spec: dict[tuple[str, int], list[float]], n=N, metric="map50", **extra) -> pd.DataFrame:
    """One campaign per (strategy, seed) with the given values at ``n`` labelled frames."""
    rows = []
    for (strategy, seed), values in spec.items():
        for r, (x, v) in enumerate(zip(n, values, strict=True)):
            rows.append({"experiment": "t", "study": "strategies", "run": f"{strategy}-{seed}",
                         "strategy": strategy, "seed": seed, "round": r, "n_labelled": x,
                         "metric": metric, "value": v, **extra})  # fmt: skip
    return frame(rows)


def linear(slope=0.001, offset=0.0, n=N) -> list[float]:
    return [offset + slope * x for x in n]


def test_learning_curve_mean_and_t_interval_across_seeds():
    df = curves({("random", 0): [0.4] * 5, ("random", 1): [0.6] * 5})
    lc = stats.learning_curves(df)
    assert list(lc["n_labelled"]) == N
    row = lc.iloc[0]
    assert row["mean"] == pytest.approx(0.5) and row["n_seeds"] == 2
    half = sps.t.ppf(0.975, 1) * np.std([0.4, 0.6], ddof=1) / math.sqrt(2)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.5 - half, 0.5 + half))


def test_a_single_seed_has_no_interval():
    lc = stats.learning_curves(curves({("random", 0): linear()}))
    assert lc["n_seeds"].eq(1).all()
    assert lc["ci_low"].isna().all() and lc["ci_high"].isna().all()
    assert list(lc["mean"]) == pytest.approx(linear())


def test_intervals_shrink_with_more_seeds():
    rng = np.random.default_rng(0)

    def width(seeds: int) -> float:
        spec = {("random", s): list(0.5 + rng.normal(0, 0.05, 5)) for s in range(seeds)}
        lc = stats.learning_curves(curves(spec))
        return float((lc["ci_high"] - lc["ci_low"]).mean())

    assert width(30) < width(8) < width(3)


def test_undefined_values_are_ignored_not_zero():
    nan = float("nan")
    df = curves({("random", 0): [0.5, nan, 0.5, 0.5, 0.5], ("random", 1): [0.7] * 5})
    lc = stats.learning_curves(df).set_index("n_labelled")
    assert lc.loc[200, "mean"] == pytest.approx(0.7) and lc.loc[200, "n_seeds"] == 1
    assert lc.loc[100, "mean"] == pytest.approx(0.6) and lc.loc[100, "n_seeds"] == 2
    # the AULC of seed 0 interpolates over the gap instead of dropping to 0
    auc = stats.area_under_curve(df).per_seed.set_index("seed")
    assert auc.loc[0, "aulc"] == pytest.approx(0.5)


def test_curves_by_round_carry_the_mean_labelled_count():
    df = curves({("random", 0): linear(), ("random", 1): linear()})
    lc = stats.learning_curves(df, x="round")
    assert list(lc["round"]) == [0, 1, 2, 3, 4] and list(lc["n_labelled"]) == N
    with pytest.raises(ValueError, match="x must be"):
        stats.learning_curves(df, x="fraction")


def test_filters_select_class_situation_and_study():
    df = pd.concat(
        [curves({("random", 0): [0.9] * 5}, metric="ap50", **{"class": "car"}),
         curves({("random", 0): [0.1] * 5})], ignore_index=True,
    )  # fmt: skip
    assert stats.learning_curves(df)["mean"].iloc[0] == pytest.approx(0.1)
    assert stats.learning_curves(df, "ap50", cls="car")["mean"].iloc[0] == pytest.approx(0.9)
    assert stats.learning_curves(df, study="variance").empty


def test_area_under_a_linear_curve_is_its_mean_value():
    df = curves({("random", s): linear(offset=0.01 * s) for s in range(3)})
    auc = stats.area_under_curve(df)
    # the mean of 0.001 x over [100, 500] is 0.3 (+ the offset)
    assert list(auc.per_seed["aulc"]) == pytest.approx([0.30, 0.31, 0.32])
    summary = auc.by_strategy.iloc[0]
    assert summary["mean"] == pytest.approx(0.31) and summary["n_seeds"] == 3
    assert summary["ci_low"] < 0.31 < summary["ci_high"]


def test_area_is_compared_over_the_range_every_run_covers():
    short = curves({("b", 0): linear(n=[100, 200, 300])}, n=[100, 200, 300])
    df = pd.concat([curves({("a", 0): linear()}), short], ignore_index=True)
    per_seed = stats.area_under_curve(df).per_seed.set_index("strategy")
    assert per_seed.loc["a", "x_max"] == 300
    assert per_seed.loc["a", "aulc"] == pytest.approx(0.2)  # mean of 0.001 x over [100, 300]
    # an explicit range a run does not cover gives NaN for it, not an extrapolation
    wide = stats.area_under_curve(df, x_range=(100, 500)).per_seed.set_index("strategy")
    assert wide.loc["a", "aulc"] == pytest.approx(0.3) and math.isnan(wide.loc["b", "aulc"])
    # between rounds, the range end is interpolated
    mid = stats.area_under_curve(df, x_range=(150, 250)).per_seed.set_index("strategy")
    assert mid.loc["a", "aulc"] == pytest.approx(0.2)


def test_labels_to_reach_is_interpolated_between_rounds():
    df = curves({("random", 0): linear(), ("random", 1): linear(offset=0.05)})
    reach = stats.labels_to_reach(df, full_value=0.5, share=0.7)  # target 0.35
    per_seed = reach.per_seed.set_index("seed")
    assert per_seed.loc[0, "labels"] == pytest.approx(350)
    assert per_seed.loc[1, "labels"] == pytest.approx(300)
    assert per_seed["target"].iloc[0] == pytest.approx(0.35)
    row = reach.by_strategy.iloc[0]
    assert row["mean"] == pytest.approx(325) and row["n_reached"] == 2
    assert row["ci_low"] < 325 < row["ci_high"]


def test_labels_to_reach_at_the_first_round_and_never():
    df = curves({("random", 0): linear(), ("random", 1): linear(), ("random", 2): [0.0] * 5})
    reach = stats.labels_to_reach(df, full_value=0.1, share=1.0)
    per_seed = reach.per_seed.set_index("seed")
    assert per_seed.loc[0, "labels"] == 100 and per_seed.loc[0, "reached"]
    assert math.isnan(per_seed.loc[2, "labels"]) and not per_seed.loc[2, "reached"]
    row = reach.by_strategy.iloc[0]
    # one seed never got there: a mean over the other two would be optimistic
    assert math.isnan(row["mean"]) and row["n_reached"] == 2 and row["n_seeds"] == 3
    assert row["median"] == 100  # 2 of 3 reached: the median is still defined
    never = stats.labels_to_reach(df, full_value=1.0).by_strategy.iloc[0]
    assert never["n_reached"] == 0 and math.isnan(never["median"])


def test_identical_strategies_are_not_different():
    values = {s: list(0.3 + 0.05 * np.sin(np.arange(5) + s)) for s in range(5)}
    spec = {(name, s): v for name in ("a", "random") for s, v in values.items()}
    test = stats.paired_test(curves(spec), "a", "random")
    assert test.n_pairs == 5 and test.mean_diff == pytest.approx(0.0)
    assert test.t_pvalue == pytest.approx(1.0) and test.wilcoxon_pvalue == pytest.approx(1.0)


def test_a_strategy_better_on_every_seed_is_significant():
    rng = np.random.default_rng(1)
    spec = {}
    for s in range(8):
        base = linear(offset=rng.normal(0, 0.02))
        spec[("random", s)] = base
        spec[("active", s)] = [v + 0.05 + rng.normal(0, 0.01) for v in base]
    test = stats.paired_test(curves(spec), "active", "random", per_round=True)
    assert test.n_pairs == 8 and test.mean_diff == pytest.approx(0.05, abs=0.015)
    assert test.ci_low > 0 and test.t_pvalue < 0.001
    assert test.wilcoxon_pvalue == pytest.approx(2 / 2**8)  # exact: all 8 signs positive
    assert "+0.0" in test.message and "8 seeds" in test.message
    assert list(test.per_round["round"]) == [0, 1, 2, 3, 4]
    assert (test.per_round["mean_diff"] > 0).all() and (test.per_round["n_pairs"] == 8).all()


def test_a_paired_test_needs_two_paired_seeds():
    spec = {("active", 0): linear(), ("random", 0): linear(), ("random", 1): linear()}
    test = stats.paired_test(curves(spec), "active", "random")
    assert test.n_pairs == 1 and not test.ok
    assert "at least 2" in test.message and math.isnan(test.t_pvalue)
    missing = stats.paired_test(curves(spec), "nope", "random")
    assert missing.n_pairs == 0 and "'nope'" in missing.message


def test_variance_summary_per_fraction():
    rows = [
        {"experiment": "t", "study": "variance", "run": f"v{f}-{i}", "strategy": "random",
         "seed": i, "fraction": f, "n_labelled": int(f * 1000), "metric": "map50", "value": v}
        for f, values in ((0.2, [0.45, 0.69, 0.5, 0.6]), (1.0, [0.8, 0.8]))
        for i, v in enumerate(values)
    ]  # fmt: skip
    rows.append({**rows[0], "run": "undefined", "value": float("nan")})
    summary = stats.variance_summary(frame(rows)).set_index("fraction")
    assert summary.loc[0.2, "n_runs"] == 4
    assert (summary.loc[0.2, "min"], summary.loc[0.2, "max"]) == (0.45, 0.69)
    assert summary.loc[0.2, "median"] == pytest.approx(0.55)
    assert summary.loc[0.2, "std"] == pytest.approx(np.std([0.45, 0.69, 0.5, 0.6], ddof=1))
    assert summary.loc[1.0, "spread"] == pytest.approx(0.0)
    assert stats.full_data_value(frame(rows)) == pytest.approx(0.8)
    lucky = [{**rows[0], "fraction": 1.0, "run": f"full{i}", "value": v}
             for i, v in enumerate([0.30, 0.31, 0.32, 0.90])]  # fmt: skip
    assert stats.full_data_value(frame(lucky)) == pytest.approx(0.315)  # not pulled by 0.90
    assert stats.full_data_value(curves({("random", 0): linear()})) is None
    # a class's AP@0.5 on the same runs: the median of its own values
    cars = [{**rows[0], "fraction": 1.0, "run": f"full{i}", "value": v, "metric": "ap50",
             "class": "car"} for i, v in enumerate([0.7, 0.5, 0.6])]  # fmt: skip
    df = frame(lucky + cars)
    assert stats.full_data_value(df, "ap50", "car") == pytest.approx(0.6)
    assert stats.full_data_value(df, "ap50", "truck") is None
    assert stats.full_data_value(df) == pytest.approx(0.315)


def test_learning_speed_of_a_linear_curve_is_its_slope_per_thousand_labels():
    df = pd.concat(
        [curves({("random", s): linear(0.002) for s in range(2)}, metric="ap50",
                **{"class": "car"}),
         curves({("random", s): [0.2, 0.4, 0.5, 0.5, 0.5] for s in range(2)}, metric="ap50",
                **{"class": "golf_cart"}),
         curves({("random", 0): [0.9] * 5})],
        ignore_index=True,
    )  # fmt: skip
    speed = stats.learning_speed(df)
    assert set(speed["class"]) == {"car", "golf_cart"}
    car = speed.loc[speed["class"] == "car"]
    assert list(car["slope"]) == pytest.approx([2.0] * 5)
    golf = speed.loc[speed["class"] == "golf_cart", "slope"].to_numpy()
    assert golf[0] == pytest.approx(2.0) and golf[-1] == pytest.approx(0.0)
    assert set(stats.learning_speed(df, "golf_cart")["class"]) == {"golf_cart"}


def test_strategy_summary_puts_the_baseline_first_and_compares_to_it():
    spec = {("random", s): linear() for s in range(3)}
    spec |= {("active", s): linear(offset=0.05 + 0.01 * s) for s in range(3)}
    summary = stats.strategy_summary(curves(spec), full_value=0.5, share=0.7).set_index("strategy")
    assert list(summary.index) == ["random", "active"]
    assert summary.loc["random", "labels"] == pytest.approx(350)
    assert summary.loc["active", "labels"] == pytest.approx(290)
    assert summary.loc["active", "diff"] == pytest.approx(0.06)
    assert math.isnan(summary.loc["random", "diff"])
    no_target = stats.strategy_summary(curves(spec))
    assert no_target["labels"].isna().all() and no_target["aulc"].notna().all()


def test_holm_scales_the_i_th_smallest_p_by_the_tests_left_and_keeps_the_order():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    adjusted = stats.holm([0.01, 0.04, 0.03, float("nan")])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])
    assert stats.holm([0.02]) == pytest.approx([0.02])  # one test: nothing to adjust
    assert stats.holm([0.6, 0.5]) == pytest.approx([1.0, 1.0])  # capped at 1


def _family(extra: dict[str, list[float]]) -> pd.DataFrame:
    """Random on 5 seeds and strategies at random + a per-seed lift, every round."""
    base = [0.1 * s for s in range(5)]
    spec = {("random", s): linear(offset=b) for s, b in enumerate(base)}
    for name, lifts in extra.items():
        pairs = enumerate(zip(base, lifts, strict=True))
        spec |= {(name, s): linear(offset=b + d) for s, (b, d) in pairs}
    return curves(spec)


LUCKY = [0.012, 0.020, 0.008, 0.016, 0.002]  # paired t p = 0.021 alone
NULL = {"b": [0.01, -0.01, 0.005, -0.004, 0.001], "c": [-0.01, 0.012, -0.003, 0.002, 0.0]}


def test_labels_to_match_pairs_each_seed_with_its_own_baseline_run():
    # random seed s: 0.1 s + 0.001 x, 500 at most; "a" seed s: 0.1 s + lift + 0.001 x
    # reaches random's 0.1 s + 0.5 at x = 500 - 1000 lift (seed 2 never: a loss)
    df = _family({"a": [0.1, 0.05, -0.02, 0.2, 0.3]})
    m = stats.labels_to_match(df).per_seed.set_index("seed")
    assert list(m["strategy"].unique()) == ["a"] and (m["budget"] == 500).all()
    assert list(m["target"]) == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    assert list(m["labels"].drop(2)) == pytest.approx([400, 450, 300, 200])
    assert math.isnan(m.loc[2, "labels"])
    # a run shorter than its baseline is matched at the largest budget both ran
    short = df.loc[~((df["strategy"] == "a") & (df["n_labelled"] == 500))]
    assert (stats.labels_to_match(short).per_seed["budget"] == 400).all()


def test_strategy_summary_adjusts_the_paired_p_for_the_strategies_compared():
    alone = stats.strategy_summary(_family({"a": LUCKY})).set_index("strategy").loc["a"]
    assert alone["t_pvalue"] == pytest.approx(sps.ttest_1samp(LUCKY, 0).pvalue)
    assert alone["t_pvalue_holm"] == pytest.approx(alone["t_pvalue"]) and alone["n_compared"] == 1
    three = stats.strategy_summary(_family({"a": LUCKY, **NULL})).set_index("strategy")
    assert three.loc["a", "t_pvalue"] == pytest.approx(alone["t_pvalue"])
    assert three.loc["a", "t_pvalue_holm"] == pytest.approx(3 * alone["t_pvalue"])
    assert (three["n_compared"] == 3).all() and math.isnan(three.loc["random", "t_pvalue_holm"])


def test_evaluation_power_flags_classes_situations_and_studies_below_the_floor():
    measured = [(stats.EVAL_OBJECTS, "class", "car", 2500),
                (stats.EVAL_OBJECTS, "class", "golf_cart", 12),
                (stats.EVAL_FRAMES, "situation", "night", 400),
                (stats.EVAL_FRAMES, "situation", "fog", 99)]  # fmt: skip
    counts = [{"experiment": "t", "study": "strategies", "run": f"random-{s}", "strategy": "random",
               "seed": s, "round": 0, "n_labelled": 0, "metric": metric, key: name, "value": v}
              for s in (0, 1) for metric, key, name, v in measured]  # fmt: skip
    df = pd.concat([frame(counts), curves({("random", s): [0.5] * 5 for s in range(3)})])
    power = stats.evaluation_power(df).set_index("name")
    assert power.loc["car", "count"] == 2500 and power.loc["car", "enough"]
    assert power.loc["golf_cart", "count"] == 12 and not power.loc["golf_cart", "enough"]
    assert power.loc["night", "enough"] and not power.loc["fog", "enough"]  # 99 < 100
    assert power.loc["strategies", "count"] == 3 and not power.loc["strategies", "enough"]
    assert stats.evaluation_power(df, minimum=10)["enough"].sum() == 4


def test_evaluation_power_without_counts_still_checks_seeds():
    df = curves({("random", s): [0.5] * 5 for s in range(8)})
    power = stats.evaluation_power(df)
    assert list(power["kind"]) == ["seeds"] and power["enough"].all()


def test_slice_gains_compare_each_class_and_situation_rarest_first():
    """Per seed: cones 0.2 (random) vs 0.3 (strategy) at every budget -> 1.5x; night
    frames 0.4 vs 0.4 -> 1.0x; a seed only one strategy ran is not paired in."""
    counts = [{"experiment": "t", "study": "strategies", "run": f"{st}-0", "strategy": st,
               "seed": 0, "round": 0, "n_labelled": 0, "metric": metric, key: name, "value": v}
              for st in ("random", "lc") for metric, key, name, v in (
                  (stats.EVAL_OBJECTS, "class", "traffic_cone", 120),
                  (stats.EVAL_OBJECTS, "class", "car", 3000),
                  (stats.EVAL_FRAMES, "situation", "night", 150))]  # fmt: skip
    per_seed = {("random", s): 0.2 for s in range(3)} | {("lc", s): 0.3 for s in range(3)}
    per_seed[("lc", 3)] = 0.9  # unpaired: random has no seed 3
    cones = curves({k: [v] * 5 for k, v in per_seed.items()}, metric="ap50",
                   **{"class": "traffic_cone", "situation": "all"})  # fmt: skip
    cars = curves({k: [0.8] * 5 for k in per_seed}, metric="ap50", **{"class": "car"})
    night = curves({k: [0.4] * 5 for k in per_seed}, situation="night", **{"class": "all"})
    df = pd.concat([frame(counts), cones, cars, night], ignore_index=True)
    gains = stats.slice_gains(df, "lc")
    assert list(dict.fromkeys(gains["name"])) == ["traffic_cone", "night", "car"]
    cone = gains.loc[gains["name"] == "traffic_cone"]
    assert list(cone["n_labelled"]) == N[1:]  # round 0 holds the counts, not a model
    assert cone["ratio"].to_numpy() == pytest.approx([1.5] * 4)
    assert (cone["n_pairs"] == 3).all() and (cone["count"] == 120).all() and cone["enough"].all()
    assert gains["learned"].all()  # every mean here is well above stats.LEARNED
    assert gains.loc[gains["name"] == "night", "ratio"].to_numpy() == pytest.approx([1.0] * 4)
    strict = stats.slice_gains(df, "lc", minimum=200)
    assert not strict.loc[strict["name"] == "traffic_cone", "enough"].any()


def test_random_subsets_reach_a_target_past_the_campaigns_budget():
    """Random needs more labels than a campaign's budget: the variance runs' median curve,
    interpolated between the subset sizes it lies between, says how many."""
    runs = {0.1: [0.10, 0.20, 0.30], 0.5: [0.40, 0.50, 0.90], 0.7: [0.66, 0.70, 0.71],
            1.0: [0.80, 0.80, 0.80]}  # fmt: skip
    rows = [
        {"experiment": "t", "study": "variance", "run": f"v{f}-{i}", "strategy": "random",
         "seed": i, "fraction": f, "n_labelled": round(f * 1000), "metric": "map50", "value": v}
        for f, values in runs.items() for i, v in enumerate(values)
    ]  # fmt: skip
    df = frame(rows)
    # 95% of 0.8 = 0.76: medians 0.50 at 500, 0.70 at 700, 0.80 at 1000 (not the 0.90 run)
    labels, below, above = stats.variance_labels_to_reach(df, 0.8)
    assert labels == pytest.approx(700 + 300 * 0.06 / 0.10)
    assert (below, above) == (700, 1000)
    # reached at the smallest size: nothing smaller to interpolate from
    first, before, at = stats.variance_labels_to_reach(df, 0.8, share=0.1)
    assert first == 100 and math.isnan(before) and at == 100
    never, largest, _ = stats.variance_labels_to_reach(df, 1.0)
    assert math.isnan(never) and largest == 1000


def test_the_mean_curve_reaches_a_target_some_seeds_miss():
    """Seed 0 reaches 0.6 at 300 labelled frames, seed 1 never does: no per-seed mean, but
    the mean curve (0.35, 0.45, 0.55, 0.65 at 100-400) crosses 0.6 halfway from 300 to 400."""
    df = curves({("a", 0): [0.4, 0.5, 0.6, 0.7, 0.8], ("a", 1): [0.3, 0.4, 0.5, 0.6 - 1e-9, 0.55],
                 ("random", 0): linear()})  # fmt: skip
    reach = stats.labels_to_reach(df, 1.0, share=0.6).by_strategy.set_index("strategy")
    assert reach.loc["a", "n_reached"] == 1 and math.isnan(reach.loc["a", "mean"])
    mean = stats.mean_curve_labels_to_reach(df, 1.0, share=0.6).set_index("strategy")
    assert mean.loc["a", "labels"] == pytest.approx(350) and mean.loc["a", "n_seeds"] == 2
    assert math.isnan(mean.loc["random", "labels"])  # 0.001 x reaches 0.6 past 500


def test_a_seed_still_running_does_not_bend_the_mean_curve():
    """Seed 2 has run two rounds, low (0.1): over all three seeds the curve is 0.27 and 0.33
    at 100 and 200 and stops there, short of 0.6. Averaging the other two seeds alone at
    300-500 would claim the crossing at 350 that seed 2 has not shown."""
    df = curves({("a", 0): [0.4, 0.5, 0.6, 0.7, 0.8], ("a", 1): [0.3, 0.4, 0.5, 0.6 - 1e-9, 0.55],
                 ("a", 2): [0.1] * 5})  # fmt: skip
    df = df.loc[(df["seed"] < 2) | (df["n_labelled"] <= 200)]
    mean = stats.mean_curve_labels_to_reach(df, 1.0, share=0.6).set_index("strategy")
    assert math.isnan(mean.loc["a", "labels"]) and mean.loc["a", "n_seeds"] == 3
