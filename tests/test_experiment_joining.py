"""Joining another experiment's random subsets: sizes added later pin down how many labels
random needs, and nothing that would not compare is pooled."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from scenesift.cli import app
from scenesift.errors import StoreError
from scenesift.experiments.joining import join_variance
from scenesift.experiments.results import append_run, frame, read_results
from scenesift.report.summary import verdict
from scenesift.store import Store
from test_experiment_stats import _family

LEARNER = {"min_score": 0.2, "ensemble": 1, "tta": "none"}


def _variance(name: str, medians: dict[int, list[float]], cars: int = 58) -> list[pd.DataFrame]:
    """One variance run per value: mAP@0.5 at each size, and the pool's truth count."""
    runs = []
    for size, values in medians.items():
        for i, v in enumerate(values):
            f = size / 1000
            base = {"experiment": name, "study": "variance", "strategy": "random", "seed": i,
                    "run": f"variance/f{f:.2f}/r{i:02d}", "fraction": f}  # fmt: skip
            runs.append(frame([
                {**base, "n_labelled": size, "metric": "map50", "value": v},
                {**base, "n_labelled": 0, "metric": "pool_objects", "class": "car", "value": cars},
            ]))  # fmt: skip
    return runs


def _experiment(root, name: str, runs: list[pd.DataFrame], learner=LEARNER, **plan) -> None:
    folder = root / "experiments" / name
    folder.mkdir(parents=True)
    config = {"name": name, "learner": learner, "pool_split": "train", "eval_split": "test",
              **plan}  # fmt: skip
    (folder / "experiment.json").write_text(json.dumps(config))
    for run in runs:
        append_run(folder / "results", str(run["run"].iloc[0]), run.to_dict("records"))


@pytest.fixture
def project(tmp_path):
    """'main': campaigns of random and 'a' (5 seeds, to 500 labels) and random subsets of
    500 and 1,000 frames (5 and 3 trainings, medians 0.6 and 0.9); 'more': subsets of 800
    (median 0.8) and a campaign of its own."""
    campaigns = _family({"a": [0.2, 0.25, 0.3, 0.22, 0.28]}).assign(experiment="main")
    runs = [g for _, g in campaigns.groupby("run")]
    runs += _variance("main", {500: [0.55, 0.6, 0.7, 0.5, 0.65], 1000: [0.9, 0.9, 0.9]})
    plan = {"studies": ["variance"], "variance": {"fractions": [0.5, 1.0], "repeats": 5}}
    _experiment(tmp_path, "main", runs, **plan)
    other = _family({"b": [0.5] * 5}).assign(experiment="more")
    more = [*_variance("more", {800: [0.8, 0.75, 0.85]}), other.loc[other["strategy"] == "b"]]
    # an ensemble or test-time augmentation is only for campaigns: subsets train one model
    _experiment(tmp_path, "more", more, learner={**LEARNER, "ensemble": 5, "tta": "flip"})
    return tmp_path


def test_sizes_joined_from_another_experiment_pin_down_randoms_labels(project):
    """Alone, main's 500- and 1,000-frame subsets cross 95% of 0.9 (0.855) at about 925,
    and the verdict calls that rough; with 'more's 800-frame subsets (0.8) joined, random
    needs 800 + 200 x 0.055 / 0.1 = 910, and the step is small."""
    main = read_results(project / "experiments" / "main" / "results")
    alone = verdict(main, full_map50=0.9)
    assert "needed about 925" in alone and "3-5 trainings a size" in alone and "rough" in alone
    joined = join_variance(project / "experiments", main, ["more"])
    text = verdict(joined, full_map50=0.9)
    assert (
        "needed about 910 (the variance study's median, linear between its 800- and "
        "1,000-frame subsets; 3 trainings a size)" in text  # the 500-frame runs are not read
    )
    assert "rough" not in text
    # only the other experiment's random subsets join, not its campaigns
    assert set(joined.loc[joined["experiment"] == "more", "study"]) == {"variance"}
    assert len(joined) == len(main) + 2 * 3  # 3 runs: a map50 row and a truth row each


def test_subsets_trained_by_another_detector_are_refused(project):
    main = read_results(project / "experiments" / "main" / "results")
    _experiment(project, "stricter", _variance("stricter", {800: [0.8]}),
                learner={**LEARNER, "min_score": 0.3})  # fmt: skip
    with pytest.raises(StoreError, match=r"'stricter' trained its random subsets with other "
                       r"settings than 'main' \(learner: .*min_score.: 0\.3"):  # fmt: skip
        join_variance(project / "experiments", main, ["stricter"])


def test_subsets_of_another_pool_are_refused(project):
    main = read_results(project / "experiments" / "main" / "results")
    _experiment(project, "bigger", _variance("bigger", {800: [0.8]}, cars=70))
    with pytest.raises(StoreError, match=r"counted other truth than 'main' \(pool_objects "
                       r"car: 70.0 there, 58.0 here\)"):  # fmt: skip
        join_variance(project / "experiments", main, ["bigger"])


def test_a_subset_size_both_ran_is_refused_not_counted_twice(project):
    main = read_results(project / "experiments" / "main" / "results")
    _experiment(project, "again", _variance("again", {1000: [0.9]}))
    with pytest.raises(StoreError, match="random subsets of 1000 frames, which 'main'"):
        join_variance(project / "experiments", main, ["again"])
    # nor twice through two joined experiments
    with pytest.raises(StoreError, match=r"random subsets of 800 frames, which 'main' \(or an"):
        join_variance(project / "experiments", main, ["more", "more"])


def test_unknown_or_empty_experiments_are_named(project):
    main = read_results(project / "experiments" / "main" / "results")
    with pytest.raises(StoreError, match=r"no experiment 'nope' \(found: main, more\)"):
        join_variance(project / "experiments", main, ["nope"])
    _experiment(project, "campaigns-only", [_family({}).assign(experiment="campaigns-only")])
    with pytest.raises(StoreError, match="'campaigns-only' has no finished variance runs"):
        join_variance(project / "experiments", main, ["campaigns-only"])


def test_the_report_command_joins_the_named_experiments(project, tmp_path):
    Store.init(project / "p").close()
    (project / "experiments").rename(project / "p" / "experiments")
    out = tmp_path / "r.html"
    args = ["report", "-p", str(project / "p"), "--experiment", "main", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--more-variance", "more"])
    assert result.exit_code == 0, result.output
    assert "needed about 910" in out.read_text(encoding="utf-8")
    result = CliRunner().invoke(app, [*args, "--more-variance", "nope"])
    assert result.exit_code != 0 and "no experiment 'nope'" in result.output


def test_experiment_show_joins_them_too(project):
    Store.init(project / "p").close()
    (project / "experiments").rename(project / "p" / "experiments")
    args = ["experiment", "show", "main", "-p", str(project / "p")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "needed about 925" in " ".join(result.output.split())
    result = CliRunner().invoke(app, [*args, "--more-variance", "more"])
    assert result.exit_code == 0, result.output
    assert "needed about 910" in " ".join(result.output.split())


def test_experiment_show_names_a_wrong_join_before_any_run_has_finished(project):
    """While an experiment is still running there is nothing to join yet, but a mistyped
    or incomparable experiment is refused then rather than once results exist."""
    plan = {"studies": ["variance"], "variance": {"fractions": [0.5], "repeats": 2}}
    _experiment(project, "running", [], **plan)
    Store.init(project / "p").close()
    (project / "experiments").rename(project / "p" / "experiments")
    args = ["experiment", "show", "running", "-p", str(project / "p")]
    assert CliRunner().invoke(app, args).exit_code == 0
    result = CliRunner().invoke(app, [*args, "--more-variance", "nope"])
    assert result.exit_code != 0 and "no experiment 'nope'" in result.output
    result = CliRunner().invoke(app, [*args, "--more-variance", "more"])  # ensemble of 5 alone
    assert result.exit_code == 0, result.output
