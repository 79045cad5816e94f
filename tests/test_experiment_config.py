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


def test_the_learner_table_sets_where_every_run_trains():
    from scenesift.al.learners import make_learner

    data = documented_toml()
    data["learner"] = {**data.get("learner", {}), "device": "cpu"}
    config = ExperimentConfig.from_dict(data)
    assert make_learner(config.learner).config.device == "cpu"
    data["learner"]["device"] = "tpu"
    with pytest.raises(ValueError, match="device must be one of"):
        make_learner(ExperimentConfig.from_dict(data).learner)
