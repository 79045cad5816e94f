"""Experiments: planned runs, resumable tidy results, the same numbers on any engine."""

from __future__ import annotations

import pytest

from al_fixtures import LEARNER, oracle_project
from scenesift.experiments.config import ExperimentConfig
from scenesift.experiments.results import read_results, run_file
from scenesift.experiments.runners import (
    prepare,
    remove_experiment,
    results_dir,
    run_experiment,
)
from scenesift.experiments.stats import (
    EVAL_FRAMES,
    EVAL_OBJECTS,
    POOL_OBJECTS,
    evaluation_power,
)
from scenesift.experiments.studies import plan, strategy_label
from scenesift.store import Store

pytestmark = pytest.mark.usefixtures("one_thread")


def experiment(name="tiny", engine="local", workers=1, **kw) -> ExperimentConfig:
    data = {
        "name": name,
        "studies": ["variance", "strategies"],
        "variance": {"fractions": [0.5, 1.0], "repeats": 2},
        "strategies": {
            "strategies": ["random", {"name": "least_confidence", "agg": "mean"}],
            "seeds": 2,
            "initial": 6,
            "batch": 4,
            "rounds": 2,
        },
        "learner": LEARNER,
        "runner": {"engine": engine, "workers": workers},
        **kw,
    }
    return ExperimentConfig.from_dict(data)


@pytest.fixture
def project(tmp_path):
    store = oracle_project(tmp_path)
    store.close()
    return store.root


def test_plan_lists_every_run_once():
    runs = plan(experiment())
    assert len(runs) == 2 * 2 + 2 * 2
    assert len({r.run for r in runs}) == len(runs)
    assert {r.strategy for r in runs if r.study == "strategies"} == {
        "random",
        "least_confidence(agg=mean)",
    }


def test_a_nested_strategy_spec_is_labelled_like_the_strategies_it_names():
    nested = {"name": "cluster_uncertainty", "candidates": 5,
              "uncertainty": {"name": "least_confidence", "agg": "sum"}}  # fmt: skip
    assert strategy_label(nested) == (
        "cluster_uncertainty(candidates=5,uncertainty=least_confidence(agg=sum))"
    )
    fusion = {"name": "fusion", "parts": [{"name": "random"}, {"name": "margin", "k": 2}]}
    assert strategy_label(fusion) == "fusion(parts=[random,margin(k=2)])"


def _fusion(last_weight: float) -> dict:
    """Three fused strategies: a label longer than a campaign name may be."""
    return {"name": "fusion", "method": "rank", "parts": [
        {"name": "least_confidence", "agg": "sum", "weight": 0.5},
        {"name": "balance_situations", "weight": 0.3},
        {"name": "class_aware", "agg": "sum", "weight": last_weight}]}  # fmt: skip


def test_every_run_of_a_long_strategy_label_gets_its_own_campaign_and_file(tmp_path):
    from scenesift.al.campaign import NAME_CHARS
    from scenesift.experiments.studies import campaign_name

    cfg = experiment(name="fleet-power-study", strategies={
        "strategies": ["random", _fusion(0.2), _fusion(0.25)],
        "seeds": 2, "initial": 6, "batch": 4, "rounds": 2})  # fmt: skip
    runs = [r for r in plan(cfg) if r.study == "strategies"]
    names = [campaign_name(cfg, r) for r in runs]
    files = [run_file(tmp_path, r.run).name for r in runs]
    assert all(len(n) <= NAME_CHARS for n in names) and len(set(names)) == len(runs)
    assert all(len(f) <= 255 for f in files) and len(set(files)) == len(runs)
    # the seed stays readable; a label that fits keeps the name campaigns always had
    assert [n.rsplit(":", 1)[1] for n in names] == ["s0", "s1"] * 3
    assert names[:2] == ["fleet-power-study:random:s0", "fleet-power-study:random:s1"]
    assert all(len(r.strategy) > NAME_CHARS for r in runs[2:])  # they did not fit


def test_results_are_tidy_and_an_interrupted_experiment_only_runs_what_is_missing(project):
    cfg = experiment()
    order = []
    out = run_experiment(project, cfg, on_progress=order.append, prepare_features=False)
    # the full-data reference first (every labels-to-95% needs it), then the campaigns seed
    # by seed (stopped early, the comparisons stay paired), then the smaller random subsets
    lc = "least_confidence(agg=mean)"
    assert [c.run for c in order if c.run] == [
        "variance/f1.00/r00", "variance/f1.00/r01",
        "strategies/random/s0", f"strategies/{lc}/s0",
        "strategies/random/s1", f"strategies/{lc}/s1",
        "variance/f0.50/r00", "variance/f0.50/r01",
    ]  # fmt: skip
    df = read_results(out)
    assert set(df["run"]) == {r.run for r in plan(cfg)}
    var = df[(df.study == "variance") & (df.metric == "map50") & (df.situation == "all")]
    assert sorted(var.groupby("fraction").size().to_dict().items()) == [(0.5, 2), (1.0, 2)]
    assert var["value"].between(0, 1).all()
    strat = df[(df.study == "strategies") & (df.metric == "map50") & (df.situation == "all")]
    assert sorted(strat["round"].unique()) == [1, 2]
    assert sorted(strat["n_labelled"].unique()) == [6, 10]
    assert {"ap50", "map"} <= set(df["metric"])
    ap = df[df.metric == "ap50"]
    assert ap[ap["class"] == "car"]["value"].notna().all()
    assert ap[ap["class"] != "car"]["value"].isna().all()  # no instances: undefined, not 0
    # the same seed gives every strategy the same initial set, so the same first model
    first = strat[strat["round"] == 1].groupby("seed")["value"].nunique()
    assert (first == 1).all()
    # every run counts the evaluation split's truth, so tables can flag thin classes
    with Store.open(project) as store:
        test = [r for r in store.records(split="test") if r.boxes is not None]
    objects = df[df.metric == EVAL_OBJECTS]
    assert set(objects["run"]) == set(df["run"])
    cars = sum(b.category == "car" for r in test for b in r.boxes)
    assert set(objects.loc[objects["class"] == "car", "value"]) == {cars}
    # and the pool's, where selection looks: how rare each slice is there
    with Store.open(project) as store:
        pool = [r for r in store.records(split="train") if r.boxes is not None]
    pool_cars = df.loc[(df.metric == POOL_OBJECTS) & (df["class"] == "car"), "value"]
    assert set(pool_cars) == {sum(b.category == "car" for r in pool for b in r.boxes)}
    assert set(df.loc[df.metric == POOL_OBJECTS, "run"]) == set(df["run"])
    days = sum(bool(r.situations.get("day")) for r in test)
    frames = df[df.metric == EVAL_FRAMES]
    assert set(frames.loc[frames["situation"] == "day", "value"]) == {days}
    power = evaluation_power(df).set_index("name")
    assert power.loc["car", "count"] == cars and not power.loc["car", "enough"]  # tiny world

    # interrupt: one finished run's file is lost, another campaign was left half-way
    victim = run_file(out, "variance/f0.50/r01")
    victim.unlink()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    calls = []
    run_experiment(project, cfg, on_progress=calls.append, prepare_features=False)
    assert victim.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # nothing re-run
    assert [c.run for c in calls if c.run] == ["variance/f0.50/r01"]
    assert read_results(out).drop(columns="seconds").equals(df.drop(columns="seconds"))


def test_one_name_one_config_and_remove(project):
    cfg = experiment(studies=["strategies"])
    run_experiment(project, cfg, prepare_features=False)
    with pytest.raises(ValueError, match="other settings"):
        run_experiment(project, experiment(studies=["variance"]), prepare_features=False)
    same_elsewhere = experiment(studies=["strategies"], runner={"engine": "local", "workers": 2})
    run_experiment(project, same_elsewhere, prepare_features=False)  # nothing to do
    assert remove_experiment(project, "tiny") == 4
    assert not (project / "experiments" / "tiny").exists()
    run_experiment(project, experiment(studies=["variance"]), prepare_features=False)


def test_more_seeds_extend_an_experiment_other_changes_do_not(project):
    def strategies(learner=LEARNER, **kw):
        table = {"strategies": ["random"], "seeds": 1, "initial": 6, "batch": 4, "rounds": 1}
        return experiment(studies=["strategies"], strategies={**table, **kw}, learner=learner)

    run_experiment(project, strategies(), prepare_features=False)
    calls = []
    grown = strategies(seeds=2, strategies=["random", {"name": "least_confidence"}])
    run_experiment(project, grown, on_progress=calls.append, prepare_features=False)
    # seed by seed: stopped at any point, every strategy has run on the same seeds
    assert [c.run for c in calls if c.run] == [
        "strategies/least_confidence/s0", "strategies/random/s1", "strategies/least_confidence/s1"
    ]  # fmt: skip
    for changed in (strategies(seeds=1), strategies(seeds=2, rounds=2)):  # fewer, or different
        with pytest.raises(ValueError, match="only more seeds"):
            run_experiment(project, changed, prepare_features=False)
    # an ensemble only box disagreement reads: its runs are added, the others stay as they were
    kept = {p: p.stat().st_mtime_ns for p in results_dir(project, grown).glob("*.parquet")}
    members = {**LEARNER, "ensemble": 2}
    both = ["random", {"name": "least_confidence"}, {"name": "box_disagreement"}]
    calls = []
    run_experiment(project, strategies(seeds=2, strategies=both, learner=members),
                   on_progress=calls.append, prepare_features=False)  # fmt: skip
    assert [c.run for c in calls if c.run] == [
        "strategies/box_disagreement/s0", "strategies/box_disagreement/s1"
    ]  # fmt: skip
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    # once a strategy that reads the members has run, their number is part of its runs
    with pytest.raises(ValueError, match="only more seeds"):
        run_experiment(project, strategies(seeds=2, strategies=both, learner={**LEARNER,
                       "ensemble": 3}), prepare_features=False)  # fmt: skip
    # and a learner change every run would feel is refused as before
    with pytest.raises(ValueError, match="only more seeds"):
        run_experiment(project, strategies(seeds=2, strategies=both, learner={**members,
                       "min_score": 0.5}), prepare_features=False)  # fmt: skip


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"\[variance\].*repeat"):
        ExperimentConfig.from_dict({"variance": {"repeat": 3}})
    with pytest.raises(ValueError, match="engine"):
        ExperimentConfig.from_dict({"runner": {"engine": "slurm"}})
    with pytest.raises(ValueError, match="studies"):
        ExperimentConfig.from_dict({"studies": ["violins"]})


@pytest.mark.slow
def test_ray_and_local_process_pool_give_the_same_table(project):
    local = read_results(run_experiment(project, experiment("pool", workers=2)))
    ray_df = read_results(run_experiment(project, experiment("viaray", engine="ray", workers=2)))
    cols = [c for c in local.columns if c not in ("seconds", "experiment")]
    key = ["run", "round", "metric", "class", "situation"]
    a = local[cols].sort_values(key).reset_index(drop=True)
    b = ray_df[cols].sort_values(key).reset_index(drop=True)
    assert len(a) > 0
    assert a.equals(b)


def test_workers_die_with_the_experiment_process(project, tmp_path):
    """kill -9 of `experiment run` must not leave its worker processes training orphans."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tmp_path / "exp.toml"
    cfg.write_text(
        'name = "orphans"\nstudies = ["variance"]\n[variance]\nfractions = [1.0]\n'
        'repeats = 50\n[learner]\nmin_score = 0.0\n[learner.detector]\nbackbone = "tiny"\n'
        "input_size = [64, 96]\nbatch_size = 8\nwidth = 16\nepochs = 30\n"
        '[runner]\nengine = "local"\nworkers = 2\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenesift", "experiment", "run", str(cfg), "-p", str(project)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def children() -> set[int]:
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        return {int(x) for x in out.stdout.split()}

    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while time.monotonic() < deadline and len(workers) < 2:
        workers = {pid for pid in children() if _is_worker(pid)}
        time.sleep(0.2)
    assert len(workers) == 2, "the experiment never started its 2 workers"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"spawn_main" in f.read()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_one_process_runs_an_experiment_and_show_watches_it(project):
    from filelock import FileLock
    from typer.testing import CliRunner

    from scenesift.cli import app
    from scenesift.errors import StoreError

    cfg = experiment(studies=["variance"], variance={"fractions": [1.0], "repeats": 2})
    show = CliRunner().invoke(app, ["experiment", "show", "tiny", "-p", str(project)])
    assert show.exit_code == 2 and "no experiment 'tiny'" in show.output, show.output
    out = run_experiment(project, cfg, prepare_features=False)
    run_file(out, "variance/f1.00/r01").unlink()  # as if the second run were still going

    # another process is running it: a second `experiment run` is refused, naming `show`
    lock = FileLock(project / "experiments" / ".tiny.lock")
    with lock, pytest.raises(StoreError, match=r"already running.*experiment show tiny"):
        run_experiment(project, cfg, prepare_features=False)
    show = CliRunner().invoke(app, ["experiment", "show", "tiny", "-p", str(project)])
    text = " ".join(show.output.split())
    assert show.exit_code == 0, show.output
    assert "Experiment 'tiny': 1 of 2 runs finished." in text and "Results:" in text
    assert not run_file(out, "variance/f1.00/r01").exists()  # show ran nothing

    run_experiment(project, cfg, prepare_features=False)  # the lock was released
    assert run_file(out, "variance/f1.00/r01").exists()


def test_show_estimates_the_rest_from_each_studys_finished_runs():
    from scenesift.experiments.results import frame
    from scenesift.experiments.runners import _seconds_left
    from scenesift.experiments.studies import RunSpec

    def head(run, study, rnd, seconds, **kw):
        return {"experiment": "e", "study": study, "run": run, "strategy": "random", "seed": 0,
                "round": rnd, "n_labelled": 10 * rnd, "metric": "map50", "value": 0.3,
                "seconds": seconds, **kw}  # fmt: skip

    car = {"metric": "ap50", "class": "car"}  # a second row of the same round
    done = frame(
        [
            head("v0", "variance", 0, 100.0),
            head("c0", "strategies", 1, 60.0),
            head("c0", "strategies", 2, 90.0),
            head("c0", "strategies", 2, 90.0, **car),
        ]
    )
    todo = [RunSpec("v1", "variance", "random", 1, 0.5), RunSpec("v2", "variance", "random", 2),
            RunSpec("c1", "strategies", "random", 1)]  # fmt: skip
    assert _seconds_left(done, todo) == pytest.approx(2 * 100 + (60 + 90))  # not the ap50 row
    assert _seconds_left(done, [*todo, RunSpec("t0", "tagger", "random", 0)]) is None


def test_prepare_embeds_pooled_features_only_when_a_strategy_reads_them(project, monkeypatch):
    import scenesift.features

    cached = []

    def embed(store, backbone, split, layer, progress):
        cached.append((layer, split))

    monkeypatch.setattr(scenesift.features, "embed", embed)
    prepare(project, experiment(), progress=False)  # random and least confidence
    assert cached and {layer for layer, _ in cached} == {"pyramid"}
    cached.clear()
    diverse = experiment(strategies={"strategies": ["random", "coreset"], "seeds": 1,
                                     "initial": 6, "batch": 4, "rounds": 1})  # fmt: skip
    prepare(project, diverse, progress=False)
    assert {split for layer, split in cached if layer == "pooled"} == {"train"}
    # the round's situation tagger trains on the pool's features and stops early on val's
    cached.clear()
    balance = experiment(strategies={"strategies": ["random", "balance_situations"], "seeds": 1,
                                     "initial": 6, "batch": 4, "rounds": 1})  # fmt: skip
    prepare(project, balance, progress=False)
    assert {split for layer, split in cached if layer == "pooled"} == {"train", "val"}


def test_one_study_compares_strategies_that_read_different_outputs_of_one_model(project):
    from scenesift.al.campaign import Campaign
    from scenesift.store import campaigns as catalog

    stability = "localization_stability"  # the label shows only parameters set
    cfg = experiment(
        "reads",
        studies=["strategies"],
        strategies={"strategies": ["random", "localization_stability", "balance_situations"],
                    "seeds": 1, "initial": 6, "batch": 4, "rounds": 2},
    )  # fmt: skip
    df = read_results(run_experiment(project, cfg, prepare_features=False))
    curves = df[(df.metric == "map50") & (df.situation == "all")]
    assert set(curves["strategy"]) == {"random", stability, "balance_situations"}
    assert sorted(curves["n_labelled"].unique()) == [6, 10]
    # only the campaign that reads the flipped pass pays for it, and only the one that
    # balances situations trains the round's tagger ...
    with Store.open(project) as store:
        learners = {n: Campaign.open(store, n).config.learner for n in catalog.names(store)}
    tta = {n: learner.get("tta") for n, learner in learners.items()}
    assert tta == {"reads:random:s0": None, f"reads:{stability}:s0": "flip",
                   "reads:balance_situations:s0": None}  # fmt: skip
    tagged = {n for n, learner in learners.items() if learner.get("situations")}
    assert tagged == {"reads:balance_situations:s0"}
    # ... and neither changes the round's model: the same first model for all
    first = curves[curves["round"] == 1]["value"]
    assert first.max() - first.min() == pytest.approx(0.0, abs=1e-9)


def test_a_variance_run_trains_like_a_campaign_at_its_budget(project, monkeypatch):
    """Its random subset is the labelled set and the rest of the pool is unlabelled (what a
    self-training learner also reads), and it trains one detector however the study's
    learner is set for campaigns (the round's tagger and the flipped pass are theirs)."""
    from scenesift.al.learners import DetectorLearner

    seen = []
    fit = DetectorLearner.fit

    def spy(self, store, train, val, unlabelled=()):
        seen.append((self.situations, self.tta, {r.name for r in train},
                     {r.name for r in unlabelled}))  # fmt: skip
        return fit(self, store, train, val, unlabelled)

    monkeypatch.setattr(DetectorLearner, "fit", spy)
    cfg = experiment(studies=["variance"], variance={"fractions": [0.5, 1.0], "repeats": 1},
                     learner={**LEARNER, "situations": True, "tta": "flip"})  # fmt: skip
    run_experiment(project, cfg, prepare_features=False)
    with Store.open(project) as store:
        pool = {r.name for r in store.records(split="train")}
    assert sorted(len(train) for *_, train, _ in seen) == [len(pool) // 2, len(pool)]
    for situations, tta, train, unlabelled in seen:
        assert (situations, tta) == (False, "none")
        assert unlabelled == pool - train


def test_first_runs_the_named_strategy_or_study_before_the_others(project, monkeypatch):
    from scenesift.errors import ConfigError
    from scenesift.experiments import runners

    order: list[str] = []

    def engine(project, config, todo):
        order.extend(r.run for r in todo)
        return iter(())

    monkeypatch.setattr(runners, "_local", engine)
    cfg = experiment()
    run_experiment(project, cfg, prepare_features=False)
    assert order[:2] == ["variance/f1.00/r00", "variance/f1.00/r01"]  # the default order
    order.clear()
    run_experiment(project, cfg, prepare_features=False, first=["least_confidence"])
    assert order == [
        "strategies/least_confidence(agg=mean)/s0", "strategies/least_confidence(agg=mean)/s1",
        "variance/f1.00/r00", "variance/f1.00/r01",
        "strategies/random/s0", "strategies/random/s1",
        "variance/f0.50/r00", "variance/f0.50/r01",
    ]  # fmt: skip
    # a study: the violins before the campaigns (largest subsets first, as by default)
    order.clear()
    run_experiment(project, cfg, prepare_features=False, first=["variance"])
    assert order == [
        "variance/f1.00/r00", "variance/f1.00/r01", "variance/f0.50/r00", "variance/f0.50/r01",
        "strategies/random/s0", "strategies/least_confidence(agg=mean)/s0",
        "strategies/random/s1", "strategies/least_confidence(agg=mean)/s1",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match=r"--first 'badge' names no study or strategy.*"
                       r"studies: strategies, variance; its strategies: .*random"):  # fmt: skip
        run_experiment(project, cfg, prepare_features=False, first=["badge"])


def test_evaluation_power_counts_objects_not_ignore_regions():
    """A crowd region is an area nobody labelled: counting it would flag a class as measured
    on enough objects when it is not."""
    from scenesift.experiments.studies import truth_count_rows
    from scenesift.records import Box, FrameRecord
    from scenesift.taxonomy import default_taxonomy

    boxes = [Box("car", 0, 0, 10, 10), Box("car", 20, 0, 60, 30, attributes={"iscrowd": True})]
    test = [FrameRecord("a.png", "a.png", "d", 64, 64, boxes=boxes, situations={"day": True})]
    rows = truth_count_rows({"run": "r"}, test, [], default_taxonomy())
    count = {(r["metric"], r.get("class", r.get("situation"))): r["value"] for r in rows}
    assert count[(EVAL_OBJECTS, "car")] == 1
    assert count[(EVAL_FRAMES, "day")] == 1
    assert count[(POOL_OBJECTS, "car")] == 0
