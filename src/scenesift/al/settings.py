"""A campaign's settings from a TOML file and command-line overrides, checked before any
work starts (``scenesift al start``)."""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from scenesift.al.campaign import LABELERS, CampaignConfig
from scenesift.errors import ConfigError, FormatError, check_choice


def defaults() -> dict[str, Any]:
    """``CampaignConfig``'s default settings (for help texts; building a config would load
    the learner, and with it torch)."""
    return {
        f.name: f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        for f in fields(CampaignConfig)
    }


def campaign_config(
    config: Path | None = None,
    *,
    strategy: str | None = None,
    initial: int | None = None,
    batch: int | None = None,
    seed: int | None = None,
    labeler: str | None = None,
    rounds: int | None = None,
    budget: int | None = None,
    target: float | None = None,
    plateau: bool = False,
    epochs: int | None = None,
    device: str | None = None,
    input_size: tuple[int, int] | None = None,
) -> CampaignConfig:
    """``config``'s keys (``CampaignConfig`` fields), each given flag replacing its key:
    ``rounds``/``budget``/``target``/``plateau`` go to ``stopping``, ``epochs`` and
    ``input_size`` to the detector learner, ``device`` to the learner.
    Invalid settings raise ``ConfigError`` (a misspelled strategy or labeler gets a
    "did you mean") before anything is trained."""
    from scenesift.al.strategies import make_strategy

    data: dict[str, Any] = {}
    if config is not None:
        try:
            data = tomllib.loads(Path(config).read_text())
        except tomllib.TOMLDecodeError as e:
            raise FormatError(config, str(e), "a valid TOML campaign config") from None
    if strategy is not None:
        data["strategy"] = {"name": strategy}
    if labeler is not None:
        check_choice("--labeler", labeler, LABELERS)
        data["labeler"] = labeler
    data.update({k: v for k, v in [("initial", initial), ("batch", batch), ("seed", seed)]
                 if v is not None})  # fmt: skip
    stopping = dict(data.get("stopping", defaults()["stopping"]))
    stopping.update({k: v for k, v in [("max_rounds", rounds), ("budget", budget),
                                       ("target", target)] if v is not None})  # fmt: skip
    if plateau:
        stopping["plateau"] = True
    data["stopping"] = stopping
    learner = dict(data.get("learner", {}))
    detector = {k: v for k, v in [("epochs", epochs), ("input_size", input_size)]
                if v is not None}  # fmt: skip
    if detector:
        learner["detector"] = {**learner.get("detector", {}), **detector}
    if device is not None:
        learner["device"] = device
    if learner:
        data["learner"] = learner
    try:
        cfg = CampaignConfig.from_dict(data, where=str(config or "campaign settings"))
        make_strategy(cfg.strategy)  # a typo fails now, not after round 0's training
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return cfg
