"""The situation tagger as a campaign's model: seed 000's tagger in the active-learning loop,
BALD on an ensemble of heads, and the experiment study of rare labels' AUC vs labels spent."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from al_fixtures import (
    LEARNER,
    TAGGER_LEARNER,
    campaign_config,
    filled_fields,
    opened_oracle_project,
)
from scenesift.al.campaign import Campaign, CampaignConfig
from scenesift.al.learners import DetectorLearner, TaggerLearner, make_learner
from scenesift.experiments.config import ExperimentConfig
from scenesift.experiments.plots import plot_tagger_curves
from scenesift.experiments.results import read_results
from scenesift.experiments.runners import run_experiment
from scenesift.report.summary import experiment_tables, tagger_study_text

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def project(tmp_path):
    with opened_oracle_project(tmp_path) as store:
        yield store


def config(**kw) -> CampaignConfig:
    return campaign_config(**{"learner": TAGGER_LEARNER, **kw})


def test_learner_kind_picks_the_model_and_names_bad_keys():
    assert isinstance(make_learner({}), DetectorLearner)
    assert isinstance(make_learner(TAGGER_LEARNER), TaggerLearner)
    assert make_learner(TAGGER_LEARNER).config.schedule == "frozen"  # head on cached features
    with pytest.raises(ValueError, match="kind"):
        make_learner({"kind": "segmenter"})
    with pytest.raises(ValueError, match="detector"):
        make_learner({"kind": "tagger", "detector": {}})
    with pytest.raises(ValueError, match="unknown"):
        CampaignConfig(learner={"kind": "tagger", "epochs": 3})


def test_a_tagger_campaign_records_auc_per_situation_each_round(project):
    campaign = Campaign.create(project, "tag", config())
    result = campaign.run()
    assert campaign.metric == "auc_mean"
    trained = [r for r in result.rounds if "auc_mean" in r.metrics]
    assert [r.n_labelled for r in trained] == [6, 10, 14]
    for r in trained:
        night = r.metrics["auc_per_situation"]["night"]
        assert 0.0 <= night["value"] <= 1.0 and night["n_positives"] > 0
        # only "night" is labelled in this world: other situations are undefined, not 0 or 1
        assert set(r.metrics["auc_per_situation"]) == {"night"}
    assert [x for x, _ in campaign.curve()] == [6, 10, 14]


def test_only_trained_situations_are_evaluated_and_the_rest_are_listed(project):
    """This world labels only "night": a test set that also labels rain must not score the
    head's untrained rain output (noise) into the mean."""
    learner = TaggerLearner(**{k: v for k, v in TAGGER_LEARNER.items() if k != "kind"})
    frames = project.records(split="train")
    (model,) = learner.fit(project, frames[:12], [])
    assert model.trained == ["night"]
    test = [replace(r, situations={**r.situations, "rain": i % 2 == 0})
            for i, r in enumerate(frames[12:])]  # fmt: skip
    metrics = learner.evaluate(model, project, test)
    assert set(metrics["auc_per_situation"]) == {"night"}
    assert metrics["auc_mean"] == pytest.approx(metrics["auc_per_situation"]["night"]["value"])
    assert "rain" in metrics["not_predicted"] and "night" not in metrics["not_predicted"]
    assert len(metrics["not_predicted"]) == len(project.taxonomy.names) - 1


def test_ensemble_members_differ_and_feed_bald(project):
    learner = TaggerLearner(**{k: v for k, v in TAGGER_LEARNER.items() if k != "kind"},
                            ensemble=3)  # fmt: skip
    frames = [r for r in project.records(split="train")]
    members = learner.fit(project, frames[:12], [])
    out = learner.pool_outputs(members, project, frames[12:])
    s = len(project.taxonomy.names)
    assert out.situation_scores.shape == (len(frames) - 12, s)
    assert out.situation_mc_scores.shape == (3, len(frames) - 12, s)
    np.testing.assert_allclose(out.situation_mc_scores[0], out.situation_scores)
    assert not np.allclose(out.situation_mc_scores[1], out.situation_mc_scores[0])
    # the contract: what the outputs fill is what the learner says it provides
    assert filled_fields(out) == set(learner.provides()) - {"embeddings"}
    single = TaggerLearner(tagger=learner.tagger)
    alone = single.pool_outputs(single.fit(project, frames[:12], []), project, frames[12:])
    assert filled_fields(alone) == set(single.provides()) - {"embeddings"} == {"situation_scores"}

    with pytest.raises(ValueError, match="ensemble"):
        Campaign.create(project, "lonely", config(strategy={"name": "bald"}))
    with pytest.raises(ValueError, match="tagger"):  # BALD reads tagger samples
        Campaign.create(project, "wrong", config(strategy={"name": "bald"},
                                                 learner={**LEARNER, "ensemble": 2}))  # fmt: skip
    cfg = config(strategy={"name": "bald"}, learner={**TAGGER_LEARNER, "ensemble": 3},
                 stopping={"max_rounds": 2})  # fmt: skip
    rounds = Campaign.create(project, "bald", cfg).run().rounds
    assert rounds[1].strategy.startswith("bald") and rounds[1].n_picks == 4


def test_situation_balancing_reads_the_rounds_own_tagger(project):
    cfg = config(strategy={"name": "balance_situations"}, situations_from=None)
    rounds = Campaign.create(project, "balance", cfg).run().rounds
    assert rounds[1].strategy.startswith("balance_situations") and rounds[1].n_picks == 4


def test_the_tagger_study_gives_auc_rows_per_label_and_its_plot(project, tmp_path):
    cfg = ExperimentConfig.from_dict({
        "name": "tag",
        "studies": ["tagger"],
        "tagger": {"strategies": ["random", "balance_situations"], "seeds": 2, "initial": 6,
                   "batch": 4, "rounds": 2,
                   "learner": {k: v for k, v in TAGGER_LEARNER.items() if k != "kind"}},
        "learner": LEARNER,
        "runner": {"workers": 1},
    })  # fmt: skip
    df = read_results(run_experiment(project.root, cfg, prepare_features=False))
    auc = df[(df.study == "tagger") & (df.metric == "auc")]
    assert set(auc["situation"]) == {"night"}
    assert set(auc["strategy"]) == {"random", "balance_situations"}
    assert sorted(auc["n_labelled"].unique()) == [6, 10]
    assert auc["value"].between(0, 1).all()
    # the same seed gives both strategies the same initial set, so the same first tagger
    first = auc[auc["round"] == 1].groupby("seed")["value"].nunique()
    assert (first == 1).all()
    assert plot_tagger_curves(df, tmp_path / "tagger.png").stat().st_size > 0
    # the headline table: one row per strategy, the baseline first, paired differences
    text = tagger_study_text(df)
    assert [r[0] for r in text.rows] == ["random", "balance_situations"]
    assert text.columns[2:6] == ["AULC mean ROC-AUC", "- random", "AULC night", "- random"]
    assert text.rows[0][3] == "baseline" and "(p " in text.rows[1][3]
    assert [t.title for t in experiment_tables(df)] == ["Situation tagger: strategies vs random"]


def test_the_detector_learners_backbone_is_at_the_size_its_training_takes():
    """Features cached ahead of the runs (experiment prepare, diversity embeddings) must be
    the ones training reads: the frames' aspect ratio at input_pixels, as fit() chooses."""
    from pathlib import Path

    from scenesift.models.detector import DetectorConfig, aspect_input_size
    from scenesift.records import FrameRecord

    wide = [FrameRecord(f"f{i}.png", Path(f"f{i}.png"), "d0", 1242, 375) for i in range(3)]
    learner = DetectorLearner(detector={"backbone": "tiny"})
    want = aspect_input_size([(1242, 375)], DetectorConfig().input_pixels)
    assert learner.backbone(wide).preprocessing.size == want == (288, 896)
    fixed = DetectorLearner(detector={"backbone": "tiny", "input_size": (64, 96)})
    assert fixed.backbone(wide).preprocessing.size == (64, 96)
