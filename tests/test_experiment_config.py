"""The experiment TOML documented in ``experiments.config`` is a working example."""

import re
import tomllib

import pytest

import scenesift.experiments.config as config_module
from scenesift.al.strategies import make_strategy
from scenesift.experiments.config import ExperimentConfig


def documented_toml() -> dict:
    block = re.search(r"```toml\n(.*?)```", config_module.__doc__, re.S)
    assert block, "experiments.config's docstring shows an example TOML"
    return tomllib.loads(block.group(1))


def test_the_documented_example_loads_and_every_strategy_in_it_can_be_made():
    config = ExperimentConfig.from_dict(documented_toml())
    for spec in (*config.strategies.strategies, *config.tagger.strategies):
        make_strategy(spec)


def test_every_experiment_file_in_benchmarks_loads_and_makes_its_learner_and_strategies():
    """The study files BENCHMARKS runs (those with ``studies``; the others are worlds)."""
    from pathlib import Path

    from scenesift.al.learners import make_learner

    files = sorted((Path(__file__).parents[1] / "benchmarks").glob("*.toml"))
    studies = [f for f in files if "studies" in tomllib.loads(f.read_text())]
    assert len(studies) >= 5
    for path in studies:
        config = ExperimentConfig.load(path)
        make_learner(config.learner)
        for spec in (*config.strategies.strategies, *config.tagger.strategies):
            make_strategy(spec)


def test_the_learner_table_sets_where_every_run_trains():
    from scenesift.al.learners import make_learner

    data = documented_toml()
    data["learner"] = {**data.get("learner", {}), "device": "cpu"}
    config = ExperimentConfig.from_dict(data)
    assert make_learner(config.learner).config.device == "cpu"
    data["learner"]["device"] = "tpu"
    with pytest.raises(ValueError, match="device must be one of"):
        make_learner(ExperimentConfig.from_dict(data).learner)


def test_each_campaign_gets_the_pool_outputs_its_strategy_reads_and_no_others():
    from scenesift.al.learners import learner_for

    shared = {"detector": {"width": 16}, "ensemble": 3, "tta": "flip", "min_score": 0.1}
    # an uncertainty strategy reads member 0's boxes only: no flipped pass, no extra members
    assert learner_for(make_strategy("least_confidence"), shared) == {
        "detector": {"width": 16}, "min_score": 0.1
    }  # fmt: skip
    # localisation stability gets the flipped pass even when the study never asked for it,
    # nested in a diversity strategy too
    plain = {"detector": {"width": 16}}
    assert learner_for(make_strategy("localization_stability"), plain)["tta"] == "flip"
    nested = {"name": "cluster_uncertainty", "uncertainty": {"name": "localization_stability"}}
    assert learner_for(make_strategy(nested), plain)["tta"] == "flip"
    # the ensemble's size is the user's choice: kept for disagreement, never raised
    assert learner_for(make_strategy("box_disagreement"), shared)["ensemble"] == 3
    assert "ensemble" not in learner_for(make_strategy("box_disagreement"), plain)
    # a fine-tuned backbone has no cached maps to mirror: no flip (the campaign refuses)
    finetune = {"detector": {"mode": "finetune"}}
    assert "tta" not in learner_for(make_strategy("localization_stability"), finetune)
    # situation balancing gets the round's own tagger (from the campaign's labels), alone
    # or as a part of a fusion; nothing else pays for it
    fused = {"name": "fusion", "parts": [{"name": "least_confidence", "agg": "sum"},
                                         {"name": "balance_situations"}]}  # fmt: skip
    assert learner_for(make_strategy("balance_situations"), plain)["situations"] is True
    assert learner_for(make_strategy(fused), plain)["situations"] is True
    assert "situations" not in learner_for(make_strategy("least_confidence"), {
        **plain, "situations": True})  # fmt: skip
    # a tagger's ensemble is its prediction: left alone
    tagger = {"kind": "tagger", "ensemble": 5}
    assert learner_for(make_strategy("balance_situations"), tagger) == tagger


@pytest.mark.parametrize(
    ("strategies", "learner", "message"),
    [
        (["random", "box_disagreement"], {},
         "[strategies] strategy 'box_disagreement': strategy 'box_disagreement' needs "
         "Pool.detections.member, which comes from learner.kind = 'detector' with "
         "learner.ensemble >= 2"),
        (["random", {"name": "least_confidence", "agg": "median"}], {},
         "[strategies] strategy 'least_confidence': "),
        (["no_such_strategy"], {}, "[strategies] strategy 'no_such_strategy': "),
        (["localization_stability"], {"detector": {"mode": "finetune"}},
         "needs Pool.flip_detections"),
    ],
)  # fmt: skip
def test_a_strategy_its_campaigns_could_not_run_is_refused_when_the_experiment_loads(
    strategies, learner, message
):
    data = {"studies": ["strategies"], "strategies": {"strategies": strategies},
            "learner": learner}  # fmt: skip
    with pytest.raises(ValueError, match=re.escape(message)):
        ExperimentConfig.from_dict(data)
    # the same strategies run once the learner fills what they read
    if strategies[-1] == "box_disagreement":
        ExperimentConfig.from_dict({**data, "learner": {"ensemble": 2}})


def test_a_detector_study_can_compare_situation_balancing_with_the_others():
    fused = {"name": "fusion", "parts": [{"name": "least_confidence", "agg": "sum"},
                                         {"name": "balance_situations"}]}  # fmt: skip
    data = {"studies": ["strategies"], "learner": {},
            "strategies": {"strategies": ["random", "balance_situations", fused]}}  # fmt: skip
    config = ExperimentConfig.from_dict(data)  # before: refused, no situation scores
    assert len(config.strategies.specs()) == 3
