"""The experiment TOML documented in ``experiments.config`` is a working example."""

import re
import tomllib

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
