"""Per-label tagger evaluation: the numbers agree with sklearn on known labels only, undefined
labels stay undefined, intervals behave, thresholds hit their target, and the plots exist."""

from __future__ import annotations

import time

import numpy as np
import pytest
from rich.console import Console
from sklearn.metrics import average_precision_score, precision_score, roc_auc_score

from scenesift.metrics import evaluate_tagging, thresholds_for_precision
from scenesift.metrics.tagging import _weighted_ap, _weighted_auc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic(n: int, rates, separation, seed: int = 0, known: float = 1.0):
    """Scores = noisy logits shifted by the label; larger separation = better tagger."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(rates))) < np.asarray(rates)).astype(int)
    logit = (2 * y - 1) * np.asarray(separation) / 2 + rng.normal(size=y.shape)
    mask = rng.random(y.shape) < known
    return y, 1 / (1 + np.exp(-logit)), mask


def one_label(y, s, mask=None, name="night"):
    y, s = np.asarray(y)[:, None], np.asarray(s, dtype=float)[:, None]
    mask = np.ones_like(y, dtype=bool) if mask is None else np.asarray(mask)[:, None]
    return evaluate_tagging(y, s, mask, [name])[name]


def test_perfect_ranker_scores_one_and_reversed_scores_zero():
    y = [0, 0, 1, 0, 1, 1]
    s = [0.1, 0.2, 0.7, 0.3, 0.8, 0.9]
    perfect = one_label(y, s)
    assert perfect.roc_auc == 1.0
    assert perfect.average_precision == 1.0
    assert perfect.base_rate == 0.5
    assert one_label(y, 1 - np.asarray(s)).roc_auc == 0.0


def test_agrees_with_sklearn_on_the_known_subset_only():
    y, s, mask = synthetic(400, [0.3, 0.1, 0.5], [1.5, 1.0, 2.0], seed=3, known=0.7)
    res = evaluate_tagging(y, s, mask, ["a", "b", "c"])
    for j, r in enumerate(res.labels):
        k = mask[:, j]
        assert r.n == k.sum() and r.positives == y[k, j].sum()
        assert r.roc_auc == pytest.approx(roc_auc_score(y[k, j], s[k, j]))
        assert r.average_precision == pytest.approx(average_precision_score(y[k, j], s[k, j]))


def test_missing_labels_are_not_negatives():
    # frames 4-7: label missing (their y would be 0 if filled), yet the tagger scores them high
    y = np.array([0, 0, 1, 1, 0, 0, 0, 0])
    s = np.array([0.1, 0.2, 0.8, 0.9, 0.95, 0.97, 0.99, 0.96])
    mask = np.array([True] * 4 + [False] * 4)
    r = one_label(y, s, mask)
    assert (r.n, r.positives, r.negatives) == (4, 2, 2)
    assert r.roc_auc == 1.0 and r.average_precision == 1.0
    assert roc_auc_score(y, s) < 0.5  # what counting missing as negative would have said
    # values under a False mask are ignored entirely, even when they are not 0/1 or finite
    y_bad, s_bad = y.astype(float), s.copy()
    y_bad[~mask], s_bad[~mask] = -1, np.nan
    assert one_label(y_bad, s_bad, mask) == r


def test_label_without_positives_is_undefined_and_left_out_of_the_mean():
    y, s, mask = synthetic(300, [0.3, 0.0, 0.2], [3.0, 1.0, 3.0], seed=1)
    y[:, 2] = 1  # every known frame positive: no negatives
    res = evaluate_tagging(y, s, mask, ["night", "fog", "tunnel"], groups={"fog": "weather"})
    fog, tunnel = res["fog"], res["tunnel"]
    assert fog.roc_auc is None and fog.average_precision is None
    assert fog.reason == "no positives in the test split"
    assert tunnel.roc_auc is None and tunnel.reason == "no negatives in the test split"
    assert fog.group == "weather" and fog.base_rate == 0.0
    assert res.n_undefined == 2
    assert np.isnan(res.roc_auc[1:]).all() and np.isnan(res.average_precision[1:]).all()
    assert res.mean_auc == pytest.approx(res["night"].roc_auc)
    assert res.metrics()["undefined"] == 2

    console = Console(width=200, record=True)
    console.print(res.to_table())
    text = console.export_text()
    assert "undefined (no positives)" in text and "undefined (no negatives)" in text
    assert "mean (1 of 3 defined)" in text
    assert text.index("night") < text.index("fog") < text.index("tunnel")  # taxonomy order


def test_label_with_no_known_frames_is_undefined():
    r = one_label([0, 1], [0.2, 0.8], mask=[False, False])
    assert r.n == 0 and r.roc_auc is None and r.base_rate is None
    assert r.reason == "no known labels in the test split"


def test_min_auc_with_only_counts_labels_with_enough_positives():
    y, s, mask = synthetic(1000, [0.3, 0.1, 0.01], [3.0, 1.0, 0.0], seed=2)
    res = evaluate_tagging(y, s, mask, ["night", "fog", "rare"])
    assert res["rare"].positives < 30
    assert res.min_auc_with(30) == (res["fog"].roc_auc, "fog")
    assert res.min_auc_with(10_000) is None


def test_rows_round_trip():
    y, s, mask = synthetic(200, [0.3, 0.0, 0.2, 0.5], [2.0, 1.0, 1.0, 0.5], seed=4, known=0.8)
    names = ["day", "fog", "rain", "city"]
    res = evaluate_tagging(y, s, mask, names)
    rows = res.rows()
    assert len(rows) == 3 * len(names)
    assert {tuple(sorted(r)) for r in rows} == {
        ("drives_neg", "drives_pos", "metric", "n", "positives", "situation", "value")
    }
    for r in rows:
        label = res[r["situation"]]
        assert r["value"] == getattr(label, r["metric"])
        assert (r["n"], r["positives"]) == (label.n, label.positives)
    assert [r["value"] for r in rows if r["situation"] == "fog"][:2] == [None, None]


@pytest.mark.parametrize(
    "weighted, metric", [(_weighted_auc, roc_auc_score), (_weighted_ap, average_precision_score)]
)
def test_vectorised_bootstrap_metrics_match_sklearn_with_sample_weights(weighted, metric):
    rng = np.random.default_rng(5)
    y = (rng.random(120) < 0.3).astype(int)
    s = np.round(rng.random(120) * 0.5 + 0.3 * y, 1)  # coarse scores: many ties
    w = rng.integers(0, 4, size=(6, 120)).astype(float)
    got = weighted(s, y, w)
    want = [metric(y, s, sample_weight=row) for row in w]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert np.isnan(weighted(s, y, np.where(y == 1, 0.0, 1.0)[None]))[0]  # no positive weight


def test_bootstrap_ci_contains_the_estimate_and_narrows_with_more_data():
    widths = []
    for n in (200, 3000):
        y, s, mask = synthetic(n, [0.3, 0.2], [1.5, 1.0], seed=6)
        res = evaluate_tagging(y, s, mask, ["night", "rain"])
        ci = res.ci(n_boot=200, seed=0)
        for name in ("night", "rain"):
            c = ci[name]
            assert c.low <= res[name].roc_auc <= c.high
            assert c.n_used == c.n_boot == 200 and c.level == 0.95
        widths.append(ci["rain"].high - ci["rain"].low)
    assert widths[1] < widths[0] / 2
    assert ci == res.ci(n_boot=200, seed=0)  # seeded: reproducible
    ap = res.ci(metric="average_precision")["night"]
    assert ap.low <= res["night"].average_precision <= ap.high


def test_bootstrap_skips_resamples_where_the_label_is_undefined():
    y = np.zeros((60, 2), dtype=int)
    y[0, 0] = 1  # one positive: about a third of resamples miss it
    s = np.linspace(0, 1, 60)[:, None].repeat(2, axis=1)
    res = evaluate_tagging(y, s, np.ones_like(y, bool), ["one_positive", "none"])
    ci = res.ci(n_boot=300)
    assert 150 < ci["one_positive"].n_used < 250
    assert ci["none"].n_used == 0 and ci["none"].low is None


def test_bootstrap_is_fast_enough_for_a_test_split():
    y, s, mask = synthetic(1000, [0.2] * 16, [1.5] * 16, seed=7, known=0.9)
    res = evaluate_tagging(y, s, mask, [f"s{j}" for j in range(16)])
    start = time.perf_counter()
    res.ci(n_boot=200)
    assert time.perf_counter() - start < 2.0


def test_thresholds_reach_the_target_precision_or_fall_back_to_max_f1():
    y, s, mask = synthetic(2000, [0.3, 0.1, 0.0], [4.0, 0.3, 1.0], seed=8)
    # fog: descending scores go negative, positive, negative, ...: precision never above 0.5
    y[:, 1], s[:, 1] = np.arange(2000) % 2, 1 - np.arange(2000) / 2000
    names = ["night", "fog", "snow"]
    thr, how = thresholds_for_precision(y, s, mask, names, target_precision=0.9)
    assert how == {
        "night": "precision 0.9 reached",
        "fog": "max F1 (precision 0.9 not reachable)",
        "snow": "undefined (no positives)",
    }
    assert precision_score(y[:, 0], s[:, 0] >= thr["night"]) >= 0.9
    # the lowest such threshold: one step lower misses the target
    lower = s[:, 0][s[:, 0] < thr["night"]].max()
    assert precision_score(y[:, 0], s[:, 0] >= lower) < 0.9
    assert thr["snow"] == 0.5

    f1 = [
        2 * ((s[:, 1] >= t) & (y[:, 1] == 1)).sum() / ((s[:, 1] >= t).sum() + y[:, 1].sum())
        for t in np.unique(s[:, 1])
    ]
    at = (
        ((s[:, 1] >= thr["fog"]) & (y[:, 1] == 1)).sum()
        * 2
        / ((s[:, 1] >= thr["fog"]).sum() + y[:, 1].sum())
    )
    assert at == pytest.approx(max(f1))


def test_plot_curves_writes_one_png_per_label_including_annotated_undefined(tmp_path):
    y, s, mask = synthetic(300, [0.3, 0.1, 0.0, 0.2], [3.0, 1.0, 1.0, 0.5], seed=9)
    names = ["night", "fog", "close participant", "roadworks"]
    res = evaluate_tagging(y, s, mask, names)
    paths = res.plot_curves(tmp_path / "curves")
    assert [p.name for p in paths] == [
        "00_night.png",
        "01_fog.png",
        "02_close_participant.png",
        "03_roadworks.png",
    ]
    for p in paths:  # the undefined label gets a file too: empty panels saying why
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 5000
    subset = res.plot_curves(tmp_path / "subset", labels=["roadworks", "night"])
    assert [p.name for p in subset] == ["00_night.png", "03_roadworks.png"]
    with pytest.raises(KeyError, match="unknown situation"):
        res.plot_curves(tmp_path, labels=["nope"])
    summary = res.plot_summary(tmp_path / "summary" / "auc.png")
    assert summary.read_bytes()[:8] == PNG_MAGIC


def test_bad_inputs_are_rejected_with_a_clear_message():
    y, s = np.array([[0, 1]]), np.array([[0.1, 0.9]])
    ok = np.ones_like(y, dtype=bool)
    with pytest.raises(ValueError, match="situation names"):
        evaluate_tagging(y, s, ok, ["a"])
    with pytest.raises(ValueError, match=r"\(N, S\)"):
        evaluate_tagging(y, s[:, :1], ok, ["a", "b"])
    with pytest.raises(ValueError, match="0 or 1"):
        evaluate_tagging(np.array([[0, 2]]), s, ok, ["a", "b"])
    with pytest.raises(ValueError, match="finite"):
        evaluate_tagging(y, np.array([[0.1, np.nan]]), ok, ["a", "b"])


def test_a_common_situation_is_not_called_positive_everywhere():
    # "clear" in 95% of frames: every threshold reaches 90% precision, so "the lowest such
    # threshold" would call every frame clear; the separating threshold is taken instead
    rng = np.random.default_rng(3)
    y = (rng.random(2000) < 0.95).astype(int)
    s = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.1, 2000), 0, 1)
    thr, how = thresholds_for_precision(y[:, None], s[:, None], np.ones((2000, 1), bool),
                                        ["clear"], target_precision=0.9)  # fmt: skip
    assert how["clear"].startswith("Youden J")
    called = s >= thr["clear"]
    assert precision_score(y, called) > 0.99 and called.mean() < 0.99
    assert (~called & (y == 0)).sum() > 0.8 * (y == 0).sum()  # most negatives stay negative


def test_schedule_table_names_the_weakest_situation_with_enough_positives() -> None:
    from scenesift.tables import schedule_table

    # "rare" has 5 positives and the worst ranking, "common" ~100 and a mediocre one
    y, s, mask = synthetic(400, [0.25, 0.25, 0.0125], [4.0, 1.0, 0.0], seed=3)
    names = ["easy", "common", "rare"]
    weak = evaluate_tagging(y, s, mask, names)
    strong = evaluate_tagging(y, y * 0.8 + s * 0.2, mask, names)
    assert weak["rare"].positives < 30 and weak["rare"].roc_auc < weak["common"].roc_auc
    console = Console(width=200, record=True)
    console.print(schedule_table({"frozen": weak, "gradual": strong}, min_positives=30))
    row = next(line for line in console.export_text().splitlines() if "lowest" in line)
    assert f"{weak['common'].roc_auc:.3f} common" in row  # not "rare": too few positives
    assert "1.000 " in row  # the perfect ranker's weakest label


def test_drives_of_identical_frames_get_the_interval_of_one_frame_per_drive():
    """130 fog frames from one drive are one observation: with every drive made of 20 copies
    of one frame, the drive bootstrap is exactly the bootstrap of one frame per drive, and
    the frame bootstrap (which believes in 20x the evidence) is much narrower."""
    y, s, mask = synthetic(16, [0.4], [1.0], seed=11)
    y[:2, 0], y[2:4, 0] = 1, 0  # both sides present
    one = evaluate_tagging(y, s, mask, ["fog"]).ci(n_boot=400, seed=2)["fog"]
    copies = np.repeat(np.arange(16), 20)
    drives = [f"drive{i}" for i in copies]
    res = evaluate_tagging(y[copies], s[copies], mask[copies], ["fog"], drives=drives)
    by_drive = res.ci(n_boot=400, seed=2)["fog"]
    frames = evaluate_tagging(y[copies], s[copies], mask[copies], ["fog"]).ci(n_boot=400)["fog"]
    assert (by_drive.low, by_drive.high) == (pytest.approx(one.low), pytest.approx(one.high))
    assert by_drive.unit == "drive" and frames.unit == "frame"
    assert frames.high - frames.low < (by_drive.high - by_drive.low) / 3


def test_labels_resting_on_fewer_than_three_drives_are_flagged():
    y = np.zeros((40, 2), dtype=int)
    y[:8, 0] = 1  # fog: positives in drives 0 and 1 only
    y[::2, 1] = 1  # day: half of every drive
    s = np.linspace(0, 1, 40)[:, None].repeat(2, axis=1)
    drives = [f"d{i // 4}" for i in range(40)]  # 10 drives of 4 frames
    res = evaluate_tagging(y, s, np.ones_like(y, bool), ["fog", "day"], drives=drives)
    assert (res["fog"].drives_pos, res["fog"].drives_neg, res["fog"].drives) == (2, 8, 2)
    assert res["fog"].few_drives and not res["day"].few_drives
    assert res["day"].drives == 10
    console = Console(width=200, record=True)
    console.print(res.to_table(ci=res.ci(n_boot=50)))
    text = console.export_text()
    assert "2/8 (few)" in text and "10/10" in text and "bootstrap over drives" in text
    assert evaluate_tagging(y, s, np.ones_like(y, bool), ["fog", "day"])["fog"].drives is None
    y[4:, 0] = 0  # fog now in drive d0 alone: no interval rather than a collapsed one
    one = evaluate_tagging(y, s, np.ones_like(y, bool), ["fog", "day"], drives=drives)
    assert one["fog"].drives == 1 and one.ci(n_boot=50)["fog"].low is None
    assert one["fog"].roc_auc is not None


def test_a_drive_resample_draws_whole_drives_as_many_as_there_are():
    from scenesift.metrics.bootstrap import cluster_ids, resample_counts, resample_indices

    clusters, unit = cluster_ids(["a", "a", "b", "c", "c", "c", None], 7)
    assert unit == "drive" and list(clusters) == [0, 0, 1, 2, 2, 2, 3]  # no drive: its own
    counts = resample_counts(clusters, 500, seed=4)
    assert (counts[:, 0] == counts[:, 1]).all() and (counts[:, 3] == counts[:, 5]).all()
    per_drive = counts[:, [0, 2, 3, 6]]
    assert (per_drive.sum(axis=1) == 4).all()  # 4 drives drawn each time
    assert 0.9 < per_drive.mean() < 1.1  # each drive drawn once on average
    assert list(resample_indices(np.array([2, 0, 1]))) == [0, 0, 2]
    assert cluster_ids(None, 3)[1] == "frame" and list(cluster_ids([None] * 3, 3)[0]) == [0, 1, 2]
