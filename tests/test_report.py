"""The HTML report: self-contained, every section or its empty state, all text escaped."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from rich.console import Console

from report_fixtures import synthetic_results
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.report import SECTIONS, build_report, report_summary_table
from scenesift.report.build import TITLES
from scenesift.report.gallery import campaign_gallery, tagger_cams
from scenesift.report.summary import summary_text
from scenesift.store import Store, StoreError
from scenesift.store.project import now

EVIL = "<img src=x onerror=alert(1)>"


def make_frames(root, n=24):
    """``n`` small frames in n/2 drives with one box each; odd drives at night."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        pixels = np.full((64, 96, 3), 40 if (i // 2) % 2 else 160, dtype=np.uint8)
        x, y = int(rng.integers(0, 70)), int(rng.integers(0, 40))
        pixels[y : y + 20, x : x + 20] = 235
        name = f"d{i // 2:02d}/{i % 2}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / name)
        frames.append(FrameRecord(name, root / name, f"d{i // 2:02d}", 96, 64,
                                  timestamp=float(i % 2),
                                  situations={"night": (i // 2) % 2 == 1, "rain": i % 3 == 0},
                                  boxes=[Box("car", x, y, x + 20, y + 20)]))  # fmt: skip
    return frames


def add_campaign(store: Store, name: str, rounds: int = 3, batch: int = 3) -> None:
    """A campaign written straight into the catalog: picks per round, and the round
    models' predictions stored for rounds >= 1 (as a human campaign stores them)."""
    c = store.conn
    ids = dict(c.execute("SELECT name, id FROM frames").fetchall())
    pool = store.records(split="train")
    with store.transaction():
        config = json.dumps({"strategy": {"name": "margin"}, "labeler": "labelstudio",
                             "initial": batch, "batch": batch})  # fmt: skip
        cid = c.execute(
            "INSERT INTO campaigns (name, config, status, created_at) VALUES (?, ?, 'running', ?)",
            (name, config, now()),
        ).lastrowid
        for r in range(rounds):
            fp = f"round{r}model" if r else None
            metrics = json.dumps({"n_labelled": batch * r, "map50": 0.5} if r else {})
            rid = c.execute(
                "INSERT INTO rounds (campaign_id, idx, status, model_fingerprint, metrics, "
                "created_at) VALUES (?, ?, 'labelled', ?, ?, ?)",
                (cid, r, fp, metrics, now()),
            ).lastrowid
            picks = pool[r * batch : (r + 1) * batch]
            c.executemany(
                "INSERT INTO picks (round_id, frame_id, rank, score, strategy) "
                "VALUES (?, ?, ?, ?, ?)",
                [(rid, ids[p.name], k, 0.9 - 0.1 * k, "margin") for k, p in enumerate(picks)],
            )
            if fp:
                store.write_box_predictions(
                    f"model:{fp}", {p.name: [Box("car", 1, 1, 30, 30, score=0.9)] for p in picks}
                )


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = Store.init(root / "proj", split_fractions=(0.5, 0.2, 0.3))
    frames = make_frames(root / "data")
    store.ingest(ImportBatch(frames, root / "data", ImportReport("t")), label_source="import")
    yield store
    store.close()


@pytest.fixture(scope="module")
def results():
    return synthetic_results(seeds=2, rounds=4, variance_runs=4)


@pytest.fixture(scope="module")
def full_report(project, results, tmp_path_factory):
    """Everything there but models: results, a campaign, stored tagger scores."""
    add_campaign(project, "active-1")
    rng = np.random.default_rng(0)
    records = project.records()
    truth = np.array([[r.situations.get("night", False), r.situations.get("rain", False)]
                      for r in records], float)  # fmt: skip
    scores = np.clip(0.6 * truth + rng.uniform(0, 0.5, truth.shape), 0, 1)
    project.write_situation_scores("model:tagger1", [r.name for r in records],
                                   ["night", "rain"], scores)  # fmt: skip
    out = tmp_path_factory.mktemp("out") / "report.html"
    return build_report(project, out, results, full_map50=0.74).read_text(encoding="utf-8")


def assert_self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "<script" not in html.lower()
    assert all(src.startswith("data:image/") for src in re.findall(r'src="([^"]*)"', html))


def test_the_report_is_self_contained_and_has_every_section(full_report):
    html = full_report
    assert_self_contained(html)
    for key in SECTIONS:
        assert f'<section id="{key}">' in html and TITLES[key] in html
    assert html.count("data:image/png;base64,") >= 7  # the experiment figures + tagger plot
    assert html.count("data:image/jpeg;base64,") == 9  # 3 rounds x 3 picks
    assert "least_confidence" in html and "labels to reach 95%" in html
    assert "Per-label quality of the latest tagger" in html
    assert "stored scores of model:tagger1" in html
    assert "predictions in orange" in html and "no model (random initial set)" in html
    assert "No trained detector in this project" in html  # the one missing input


def test_each_missing_input_gets_a_helpful_sentence(tmp_path):
    store = Store.init(tmp_path / "empty")
    with store:
        html = build_report(store, tmp_path / "r.html").read_text(encoding="utf-8")
    assert_self_contained(html)
    assert "data:image" not in html
    assert html.count("No experiment results were given to the report") == 1  # said once
    assert '<section id="experiments">' in html and 'id="curves"' not in html
    assert "No trained tagger in this project: run <code>scenesift tagger train</code>" in html
    assert "No trained detector in this project" in html
    assert "No campaign in this project: start one with <code>scenesift al start</code>" in html


def test_sections_without_rows_say_which_study_makes_them(project, results, tmp_path):
    only_variance = results.loc[results["study"] == "variance"]
    path = build_report(project, tmp_path / "r.html", only_variance,
                        sections=("summary", "curves", "variance", "tagger"))  # fmt: skip
    html = path.read_text(encoding="utf-8")
    assert "no strategy-study rows" in html and "no tagger-study rows" in html
    assert html.count("data:image/png") >= 1 and "trainings" in html  # the violin and its table
    assert 'id="gallery"' not in html and 'id="gaps"' not in html


def test_names_from_data_are_escaped(project, results, tmp_path):
    add_campaign(project, EVIL, rounds=1)
    evil = results.copy()
    evil["situation"] = evil["situation"].replace("fog", "<script>alert('x')</script>")
    evil["strategy"] = evil["strategy"].replace("least_confidence", "<b>bold</b>")
    path = build_report(project, tmp_path / "r.html", evil, campaign=EVIL,
                        sections=("summary", "situations", "gallery"))  # fmt: skip
    html = path.read_text(encoding="utf-8")
    assert_self_contained(html)
    assert EVIL not in html and "<b>bold</b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_unknown_sections_and_campaigns_are_refused_clearly(project, tmp_path):
    with pytest.raises(ValueError, match="unknown report section"):
        build_report(project, tmp_path / "r.html", sections=("summary", "nope"))
    html = build_report(project, tmp_path / "r.html", campaign="nope",
                        sections=("gallery",)).read_text(encoding="utf-8")  # fmt: skip
    assert "no campaign named &#39;nope&#39;" in html
    with pytest.raises(StoreError, match="no campaign named 'nope'"):
        campaign_gallery(project, "nope")


def test_results_can_be_a_results_directory(project, results, tmp_path):
    from scenesift.experiments.results import append_run

    for run, rows in results.groupby("run"):
        append_run(tmp_path / "results", str(run), rows.to_dict("records"))
    html = build_report(project, tmp_path / "r.html", tmp_path / "results",
                        sections=("summary",)).read_text(encoding="utf-8")  # fmt: skip
    assert "least_confidence" in html and "median of the variance study" in html


def test_terminal_summary_table_has_the_key_numbers(results):
    table = report_summary_table(results, full_map50=0.74)
    assert table.row_count == 2
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "least_confidence" in text and "AULC" in text and "baseline" in text
    assert "0.703" in text  # 95% of 0.74
    empty = report_summary_table(results.loc[results["study"] == "variance"])
    assert empty.row_count == 0


def test_the_summary_says_when_runs_come_from_different_code(results):
    one = summary_text(results, full_map50=0.74).caption
    assert "code version" not in one
    mixed = results.copy()
    later = mixed["seed"] >= 1
    mixed["code"] = "0.1.0+gaaaa"
    mixed.loc[later, "code"] = "0.1.0+gbbbb"
    caption = summary_text(mixed, full_map50=0.74).caption
    runs = mixed.drop_duplicates("run")
    n_a, n_b = (runs["code"] == "0.1.0+gaaaa").sum(), (runs["code"] == "0.1.0+gbbbb").sum()
    assert f"Runs from 2 code versions (0.1.0+gaaaa: {n_a}; 0.1.0+gbbbb: {n_b})." in caption


def _strategy_rows(results, shift: float):
    """The synthetic table with least_confidence's mAP@0.5 set to random's plus ``shift``
    (and a little noise per seed and round), so the verdict's case is known in advance."""
    df = results.loc[(results["metric"] == "map50") & (results["class"] == "all")
                     & (results["situation"] == "all")].copy()  # fmt: skip
    lc = (df["strategy"] == "least_confidence") & (df["study"] == "strategies")
    rnd = (df["strategy"] == "random") & (df["study"] == "strategies")
    noise = np.random.default_rng(0).normal(0, 0.01, lc.sum())
    df.loc[lc, "value"] = df.loc[rnd, "value"].to_numpy() + shift + noise
    return df


def _header(html: str) -> str:
    return html[html.index("<header>") : html.index("</header>")]


@pytest.mark.parametrize("shift", [0.08, 0.0])
def test_the_header_says_in_plain_words_what_the_comparison_found(project, results, tmp_path,
                                                                  shift):  # fmt: skip
    from scenesift.experiments import stats

    df = _strategy_rows(results, shift)
    html = build_report(project, tmp_path / "r.html", df, full_map50=0.74,
                        sections=("summary",)).read_text(encoding="utf-8")  # fmt: skip
    header = _header(html)
    row = stats.strategy_summary(df, 0.74).set_index("strategy").loc["least_confidence"]
    interval = f"95% CI {row['diff_low']:+.3f} to {row['diff_high']:+.3f}"
    assert "Verdict." in header and interval in header  # computed, not written in advance
    assert "averaged over 100-400 labelled frames" in header and "Worth knowing" in header
    if shift:
        assert row["diff_low"] > 0
        assert "least_confidence beat random" in header and f"{row['diff']:.3f} higher" in header
    else:
        assert row["diff_low"] < 0 < row["diff_high"]
        assert "No strategy beat random here" in header and "beat random:" not in header


def _campaigns(lift: float = 0.05, pool: bool = False):
    """Three seeds of random and of least_confidence (``lift`` above random everywhere):
    mAP@0.5 0.35 + seed / 1000 at 100 labelled frames for random, + 0.05 per 100 more.
    ``pool``: the runs also counted the pool, where trucks are the rarest class."""
    from scenesift.experiments import stats
    from scenesift.experiments.results import frame

    def run(strategy: str, seed: int, lift: float) -> list[dict]:
        """(metric, value, round, labelled frames, class) rows of one campaign."""
        rows = [(stats.EVAL_OBJECTS, 150, 0, 0, "traffic_cone"),
                (stats.EVAL_OBJECTS, 400, 0, 0, "truck"),
                (stats.EVAL_OBJECTS, 120, 0, 0, "golf_cart"),  # not in the pool: unlearned
                (stats.EVAL_OBJECTS, 40, 0, 0, "cyclist")]  # too few to report  # fmt: skip
        if pool:
            counts = {"traffic_cone": 90, "truck": 12, "golf_cart": 0, "cyclist": 30}
            rows += [(stats.POOL_OBJECTS, k, 0, 0, c) for c, k in counts.items()]
        for rnd, n in enumerate((100, 200, 300), start=1):
            rows += [("map50", 0.3 + n / 2000 + lift + seed / 1000, rnd, n, "all"),
                     ("ap50", 0.2 + lift, rnd, n, "traffic_cone"),
                     ("ap50", 0.3 + 2 * lift, rnd, n, "truck"),
                     ("ap50", 0.0005 + lift / 100, rnd, n, "golf_cart"),  # "1.99x" of noise
                     ("ap50", 0.01, rnd, n, "cyclist")]  # fmt: skip
        return [{"experiment": "t", "study": "strategies", "run": f"{strategy}-{seed}",
                 "strategy": strategy, "seed": seed, "round": r, "n_labelled": n,
                 "metric": m, "value": v, "class": c, "situation": "all"}
                for m, v, r, n, c in rows]  # fmt: skip

    runs = [run(s, seed, lift) for s, lift in (("random", 0.0), ("least_confidence", lift))
            for seed in range(3)]  # fmt: skip
    return frame([row for rows in runs for row in rows])


def test_when_random_never_reaches_the_target_the_saving_is_a_lower_bound():
    from scenesift.report.summary import verdict

    # target 0.95 * 0.49 = 0.4655: least_confidence crosses it between 200 (0.45 + s/1000)
    # and 300 labelled frames (linear: 231, 229, 227 -> mean 229); random peaks at 0.452
    text = verdict(_campaigns(), full_map50=0.49)
    assert "least_confidence needed 229 labelled frames" in text
    assert "random did not reach it within 300 labelled frames" in text
    assert (
        "gets the same accuracy for at least 24% fewer labels than random picks (random had "
        "not reached it at 300 labelled frames, where the study stopped)." in text
    )  # 1 - 229 / 300


def test_the_best_of_many_strategies_is_not_declared_a_winner_on_luck():
    """A lift with paired p = 0.021 beats random when it is the only strategy tried; beside
    two strategies that do nothing, Holm's adjustment (x3 = 0.062) makes it a tie."""
    from scenesift.report.summary import verdict
    from test_experiment_stats import LUCKY, NULL, _family

    alone = verdict(_family({"a": LUCKY}))
    assert alone.startswith("On this pool, a beat random:") and "Holm" not in alone
    three = verdict(_family({"a": LUCKY, **NULL}), full_map50=1.0)
    assert three.startswith("No strategy beat random here:") and "beat random:" not in three
    assert "paired t-test p = 0.021; Holm-adjusted for 3 strategies, p = 0.062, 5 seeds" in three
    # the target sentence names the two it is about, not "neither strategy" of four
    assert "(0.950): neither a nor random reached it within 500 labelled frames." in three
    assert " Averaged over 100-500 labelled frames, b's mAP@0.5 differed" in three  # a sentence


def test_several_winners_are_named_best_first_and_the_rest_said_briefly():
    """Three strategies that all beat random: the verdict opens with the largest gain (the
    one its 'worth knowing' is about), whatever the strategies' names sort as."""
    from scenesift.report.summary import verdict
    from test_experiment_stats import _family

    lifts = {"a": [0.010, 0.012, 0.011, 0.009, 0.010], "b": [0.030, 0.028, 0.031, 0.029, 0.030],
             "c": [0.050, 0.052, 0.049, 0.051, 0.050]}  # fmt: skip
    text = verdict(_family(lifts), full_map50=1.0)
    assert text.startswith("On this pool, c beat random: averaged over 100-500 labelled frames,")
    assert text.index("b beat random too: its mAP@0.5 was 0.030 higher") < text.index(
        "a beat random too: its mAP@0.5 was 0.010 higher"
    )
    assert text.count("On this pool") == 1 and text.count("averaged over") == 1
    # no run reaches 95% of 1.0: the saving is said at the accuracy random did reach, each
    # seed against its own random run: 0.1 s + 0.05 + 0.001 x crosses random's 0.1 s + 0.5
    # at x = 500 - 1000 x lift = 450, 448, 451, 449, 450 (mean 449.6, 10% fewer than 500)
    assert (
        "Worth knowing: on data like this, c reached the mAP@0.5 random picks had at 500 "
        "labelled frames (0.700, mean over 5 seeds) with 450 labelled frames (mean over the "
        "same seeds, each against its own random run): about 10% fewer labels for that "
        "accuracy." in text
    )


def test_a_winner_on_fewer_seeds_than_a_claim_needs_is_named_after_those_with_enough(
    monkeypatch,
):
    """An experiment extended one strategy at a time: 'b' gains 0.030 on its 4 seeds, 'a'
    0.010 on all 8. The verdict's claim (its 'worth knowing' and its rare slice) is about
    'a'; 'b' follows, marked as a lead to confirm."""
    from scenesift.report import summary
    from scenesift.report.summary import verdict

    rare = []
    monkeypatch.setattr(summary, "_rare_slice", lambda df, name, base: rare.append(name) or "")
    from test_experiment_stats import curves, linear

    a = [0.010, 0.012, 0.008, 0.011, 0.009, 0.010, 0.012, 0.009]
    b = [0.030, 0.028, 0.031, 0.029]
    spec = {("random", s): linear(offset=0.1 * s) for s in range(8)}
    spec |= {("a", s): linear(offset=0.1 * s + d) for s, d in enumerate(a)}
    spec |= {("b", s): linear(offset=0.1 * s + d) for s, d in enumerate(b)}
    text = verdict(curves(spec), full_map50=1.0)
    assert text.startswith("On this pool, a beat random:")
    assert "b beat random too: its mAP@0.5 was 0.030 higher" in text
    assert text.count("fewer than the 8 a claim needs") == 1
    assert "4 seeds) It has 4 seeds, fewer than the 8 a claim needs" not in text
    assert "4 seeds). It has 4 seeds, fewer than the 8 a claim needs: a lead to confirm" in text
    assert "Worth knowing: on data like this, a reached" in text and rare == ["a"]


def test_the_equal_accuracy_saving_is_said_only_when_every_seed_got_there():
    """Seed 0 of 'a' ends 0.002 below its random run: a mean over the other seeds would be
    optimistic, so the verdict falls back to saying a budget goes further."""
    from scenesift.report.summary import verdict
    from test_experiment_stats import _family

    text = verdict(_family({"a": [-0.002, 0.05, 0.051, 0.049, 0.05]}), full_map50=1.0)
    assert text.startswith("On this pool, a beat random:") and "fewer labels" not in text
    assert "frames chosen by a give more accuracy per label than random picks" in text
    lifted = verdict(_family({"a": [0.02, 0.03, 0.031, 0.029, 0.030]}), full_map50=1.0)
    assert "a beat random:" in lifted and "about 6% fewer labels for that accuracy" in lifted


def test_the_rare_slice_sentence_is_about_the_winner_not_a_luckier_tie():
    """'lucky' has the larger mean lift (+0.125) but, on 2 seeds, an interval that includes 0;
    the sentence on the rarest slice follows the strategy the verdict named."""
    from scenesift.report.summary import verdict

    df = _campaigns()
    lucky = df.loc[df["strategy"] == "least_confidence"].copy()
    lucky["strategy"] = "lucky"
    lucky = lucky.loc[lucky["seed"] < 2]  # +0.25 and 0.00 over random: a wide interval
    lucky.loc[(lucky["metric"] == "map50") & (lucky["seed"] == 0), "value"] += 0.2
    lucky.loc[(lucky["metric"] == "map50") & (lucky["seed"] == 1), "value"] -= 0.05
    text = verdict(pd.concat([df, lucky], ignore_index=True))
    assert "least_confidence beat random" in text
    assert "least_confidence's AP@0.5 at 300 labelled frames" in text and "lucky's" not in text


def test_the_verdict_names_the_rarest_well_measured_slice_and_its_gain():
    from scenesift.report.summary import verdict

    text = verdict(_campaigns())
    assert "least_confidence beat random" in text
    assert (
        "On the rarest class with at least 100 test objects (traffic_cone, 150), "
        "least_confidence's AP@0.5 at 300 labelled frames was 1.25x random's "
        "(0.250 vs 0.200, mean over 3 seeds). Rarer, but learned by neither (AP@0.5 below "
        "0.01 at that budget, so a ratio would measure noise): golf_cart (120)." in text
    )


def test_rarity_is_counted_in_the_pool_where_selection_looks():
    """An evaluation world oversamples rare contexts: trucks have more test objects than
    cones (400 vs 150) but are the rarest class in the pool (12), so the verdict names them."""
    from scenesift.report.summary import verdict

    text = verdict(_campaigns(pool=True))
    assert (
        "On the class rarest in the pool among those with at least 100 test objects (truck: "
        "12 objects in the pool, 400 in the test split), least_confidence's AP@0.5 at 300 "
        "labelled frames was 1.33x random's (0.400 vs 0.300, mean over 3 seeds). Rarer, but "
        "learned by neither (AP@0.5 below 0.01 at that budget, so a ratio would measure "
        "noise): golf_cart (0)." in text
    )


def test_the_header_names_the_project_once_and_where_it_is(tmp_path):
    store = Store.init(tmp_path / "project")
    with store:
        html = build_report(store, tmp_path / "r.html").read_text(encoding="utf-8")
    header = _header(html)
    assert "<h1>scenesift report: project</h1>" in header
    assert "<b>project</b> project" not in header  # the name, not the word, once
    assert str((tmp_path / "project").resolve()) in header


def test_classes_without_a_value_are_named_with_the_reason(project, results, tmp_path):
    df = results.copy()
    df.loc[(df["metric"] == "ap50") & (df["class"] == "traffic_cone"), "value"] = float("nan")
    df = df.loc[df["class"] != "golf_cart"]  # never recorded at all
    html = build_report(project, tmp_path / "r.html", df,
                        sections=("classes",)).read_text(encoding="utf-8")  # fmt: skip
    assert "Left out: traffic_cone (AP@0.5 undefined in every round: no traffic_cone " in html
    assert "golf_cart (no per-class rows in the results)" in html


def test_the_tagger_section_says_how_to_run_the_tagger_study(project, results, tmp_path):
    only_strategies = results.loc[results["study"] != "tagger"]
    html = build_report(project, tmp_path / "r.html", only_strategies,
                        sections=("tagger",)).read_text(encoding="utf-8")  # fmt: skip
    assert "no tagger-study rows" in html
    assert "add <code>&#34;tagger&#34;</code> to <code>studies</code>" in html
    assert "<code>scenesift experiment run EXPERIMENT.toml -p PROJECT</code>" in html


def _detector_with_stored_detections(store: Store) -> None:
    """A 'latest' detector pointer and its detections stored on every frame (the truth,
    shifted a little, with falling scores), as `scenesift detector predict` leaves them."""
    folder = store.root / "models" / "detector"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest").write_text("fakedetector.pt\n")
    rng = np.random.default_rng(0)
    predictions = {}
    for r in store.records():
        shifted = [Box(b.category, b.x1 + rng.uniform(-3, 3), b.y1, b.x2, b.y2, score=0.9)
                   for b in r.boxes or ()]  # fmt: skip
        predictions[r.name] = [*shifted, Box("car", 0, 0, 20, 20, score=0.3)]
    store.write_box_predictions("model:fakedetector", predictions)


@pytest.mark.parametrize("gap_boot", [None, 0])  # None: the default
def test_the_gap_report_shows_the_intervals_it_claims(tmp_path, gap_boot):
    store = Store.init(tmp_path / "proj", split_fractions=(0.3, 0.1, 0.6))
    frames = make_frames(tmp_path / "data", n=40)
    with store:
        store.ingest(ImportBatch(frames, tmp_path / "data", ImportReport("t")))
        _detector_with_stored_detections(store)
        kwargs = {} if gap_boot is None else {"gap_boot": gap_boot}
        html = build_report(store, tmp_path / "r.html", sections=("gaps",), **kwargs)
        html = html.read_text(encoding="utf-8")
    gaps = html[html.index('<section id="gaps">') :]
    assert "stored detections" in gaps and "<table>" in gaps
    cells = re.findall(r'<td class="num">(\d\.\d{3}-\d\.\d{3})</td>', gaps)
    if gap_boot is None:  # by default the column is filled: situations with test positives
        # from >= 2 drives and enough test images get an interval, the rest none (too few)
        assert '<th class="num">95% CI</th>' in gaps and "bootstrap interval" in gaps
        defined = len(re.findall(r'<td class="num">\d\.\d{3}</td>', gaps))
        assert defined and 1 <= len(cells) <= defined
    else:
        assert "95% CI" not in gaps and "bootstrap interval" not in gaps and not cells


def test_the_gallery_counts_the_rounds_it_shows(tmp_path):
    store = Store.init(tmp_path / "proj", split_fractions=(0.5, 0.2, 0.3))
    frames = make_frames(tmp_path / "data")
    with store:
        store.ingest(ImportBatch(frames, tmp_path / "data", ImportReport("t")))
        add_campaign(store, "finished", rounds=3)
        cid = store.conn.execute("SELECT id FROM campaigns").fetchone()[0]
        with store.transaction():  # the final round trains and evaluates, it picks nothing
            store.conn.execute(
                "INSERT INTO rounds (campaign_id, idx, status, model_fingerprint, metrics, "
                "created_at) VALUES (?, 3, 'final', 'finalmodel', '{}', ?)",
                (cid, now()),
            )
        html = build_report(store, tmp_path / "r.html",
                            sections=("gallery",)).read_text(encoding="utf-8")  # fmt: skip
    assert "4 round(s)" not in html
    assert "rounds 0-2 picked 9 frames; round 3 trained and evaluated the final model" in html
    assert [f"Round {i}:" in html for i in range(4)] == [True, True, True, False]


def test_gallery_tags_are_the_taggers_decisions_on_trained_situations(tmp_path):
    """Tags of frames without labels come from the latest tagger as it decided them: one
    member per exclusive group, and nothing for a situation it was not trained on."""
    store = Store.init(tmp_path / "proj", split_fractions=(0.5, 0.2, 0.3))
    frames = [replace(f, situations={}) for f in make_frames(tmp_path / "data")]
    with store:
        store.ingest(ImportBatch(frames, tmp_path / "data", ImportReport("t")))
        add_campaign(store, "c", rounds=1, batch=4)
        names = [f.name for f in frames]
        day = [i % 2 == 0 for i in range(len(names))]
        # even frames: day 0.9 (its lowest positive), night 0.8; odd: night 0.7, day 0.2
        scores = [[0.9, 0.8, 0.95] if d else [0.2, 0.7, 0.95] for d in day]
        values = [[d, not d, True] for d in day]
        store.write_situation_scores("model:fp1", names, ["day", "night", "rain"], scores,
                                     values=values)  # fmt: skip
        sidecar = tmp_path / "proj" / "models" / "tagger" / "fp1.json"
        sidecar.parent.mkdir(parents=True)
        sidecar.write_text(json.dumps({"not_predicted": ["rain"]}))  # an earlier prelabel's
        gallery = campaign_gallery(store, "c")
    thumbs = [t for r in gallery.rounds for t in r.thumbs]
    assert thumbs and all(t.tags_from == "tagger" for t in thumbs)
    for t in thumbs:
        assert t.tags == (["day"] if day[names.index(t.name)] else ["night"]), t.name


def test_class_activation_maps_show_only_situations_the_tagger_was_trained_on(tmp_path):
    """This world labels night and rain only; frames with neither fall back to the tagger's
    own calls, which must not be an untrained head's (noise around 0.5)."""
    from scenesift.models.tagger import TaggerConfig
    from scenesift.pipelines import tagger as pipe

    store = Store.init(tmp_path / "proj", split_fractions=(0.5, 0.2, 0.3))
    frames = make_frames(tmp_path / "data")
    with store:
        store.ingest(ImportBatch(frames, tmp_path / "data", ImportReport("t")))
        config = TaggerConfig(backbone="tiny", input_size=(64, 96), batch_size=8, epochs=2,
                              head_passes=5)  # fmt: skip
        tagger, _ = pipe.train(store, config, progress=False)
        assert sorted(tagger.trained) == ["night", "rain"]
        plain = [f.name for f in frames if not any(f.situations.values())]
        thumbs, note = tagger_cams(store, plain, k=4)
    assert len(thumbs) == 4, note
    for t in thumbs:
        assert t.caption.split(" ")[0] in {"night", "rain"}, t.caption


def test_no_verdict_when_the_detector_learned_nothing(project, results, tmp_path):
    df = _strategy_rows(results, 0.05)
    df["value"] = 0.0  # a detector too short-trained to find anything, in every run
    html = build_report(project, tmp_path / "r.html", df, full_map50=0.0,
                        sections=("summary",)).read_text(encoding="utf-8")  # fmt: skip
    header = _header(html)
    assert "No verdict: the detector&#39;s mAP@0.5 stayed below 0.005" in header
    assert "beat random" not in header and "Train it longer" in header


@pytest.mark.parametrize("with_ci", [True, False])
def test_the_gap_figure_spans_the_data_and_claims_intervals_only_when_drawn(
    tmp_path, monkeypatch, with_ci
):
    from matplotlib.figure import Figure

    from scenesift.pipelines.gaps import SituationGap, plot_gaps

    drawn = []
    save = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda fig, *a, **k: (drawn.append(fig), save(fig, *a, **k))
    )
    rows = [
        SituationGap(situation="night", labelled=10, unlabelled_predicted=None, test_images=20,
                     map50=0.2, ci=(0.15, 0.24) if with_ci else None, need=0.2),
        SituationGap(situation="day", labelled=30, unlabelled_predicted=5, test_images=40,
                     map50=0.1, ci=(0.08, 0.12) if with_ci else None, need=0.16),
    ]  # fmt: skip
    plot_gaps(rows, tmp_path / "gaps.png")
    ax = drawn[0].axes[0]
    assert ax.get_xlim() == pytest.approx((0, 1.15 * (0.24 if with_ci else 0.2)))
    assert ("95% bootstrap interval" in ax.get_xlabel()) == with_ci


def test_random_subsets_say_how_many_labels_random_needs_past_the_budget():
    """Random's campaigns stop at 500 labelled frames short of 95% of full data (0.855); the
    variance runs (medians 0.6, 0.8, 0.9 at 500, 800, 1,000 frames) cross it at 800 +
    200 x 0.055 / 0.1 = 910. 'a' reaches it on 3 of 5 seeds, and its mean curve
    (0.45 + 0.001 x) at 405: the verdict says both, and the saving, 1 - 405 / 910 = 55%."""
    from scenesift.experiments.results import frame
    from scenesift.report.summary import verdict
    from test_experiment_stats import _family

    campaigns = _family({"a": [0.2, 0.25, 0.3, 0.22, 0.28]})
    medians = {0.5: [0.55, 0.6, 0.7], 0.8: [0.8, 0.75, 0.85], 1.0: [0.9, 0.9, 0.9]}
    variance = frame([
        {"experiment": "t", "study": "variance", "run": f"v{f}-{i}", "strategy": "random",
         "seed": i, "fraction": f, "n_labelled": round(f * 1000), "metric": "map50", "value": v}
        for f, values in medians.items() for i, v in enumerate(values)
    ])  # fmt: skip
    text = verdict(pd.concat([campaigns, variance], ignore_index=True), full_map50=0.9)
    assert text.startswith("On this pool, a beat random:")
    assert (
        "Worth knowing: on data like this, a reached 95% of the full-data mAP@0.5 (0.855) at "
        "405 labelled frames (its mean learning curve over 5 seeds; 3 of them reached it on "
        "their own); random subsets of the pool needed about 910 (the variance study's "
        "median, linear between its 800- and 1,000-frame subsets; 3 trainings a size): 55% "
        "fewer labels (random needs 2.25x)." in text
    )
    assert "rough" not in text  # 800 to 1,000 is a small step
    assert "random subsets" not in verdict(campaigns, full_map50=0.9)  # no variance runs
    # without the 800-frame subsets the line from 500 (0.6) to 1,000 (0.9) crosses at 925,
    # and a curve bending between them would get there sooner: the verdict says it is rough
    coarse = variance.loc[variance["fraction"] != 0.8]
    text = verdict(pd.concat([campaigns, coarse], ignore_index=True), full_map50=0.9)
    assert (
        "needed about 925 (the variance study's median, linear between its 500- and "
        "1,000-frame subsets; 3 trainings a size; sizes this far apart make it rough (a "
        "bending curve gets there sooner than a straight line): add `[variance] fractions` "
        "between them to pin it down): 56% fewer labels (random needs 2.28x)." in text
    )


def test_a_strategy_and_random_reaching_the_target_on_as_many_seeds_are_both_named():
    """Only seed 4 of each reaches 95% of 0.9 (0.855) within 500 labelled frames: the
    target sentence says so of both, by name (it once dropped its subject)."""
    from scenesift.report.summary import verdict
    from test_experiment_stats import _family

    text = verdict(_family({"a": [0.01, 0.012, 0.008, 0.011, 0.009]}), full_map50=0.9)
    assert text.startswith("On this pool, a beat random:")
    assert (
        "Target, 95% of the full-data mAP@0.5 (0.855): a and random each reached it on 1 of 5 "
        "seeds only." in text
    )
