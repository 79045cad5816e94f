"""An experiment, declared in one TOML file.

```toml
name = "al-vs-random"
studies = ["variance", "strategies"]

[variance]                    # seed 002's Figure 2: mAP over random subsets per size
fractions = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
repeats = 30

[strategies]                  # active vs random learning curves over seeds
strategies = ["random", "least_confidence", { name = "margin", agg = "mean" }]
seeds = 5
initial = 100
batch = 100
rounds = 8

[tagger]                      # seed 000's tagger in the loop: rare labels' AUC vs labels
strategies = ["random", "balance_situations", "bald"]
seeds = 5
initial = 100
batch = 100
rounds = 8
learner = { ensemble = 5 }    # TaggerLearner arguments (heads per round, for BALD)

[learner]                     # the detector every run trains (DetectorLearner arguments)
min_score = 0.2
detector = { epochs = 8 }

[runner]
engine = "local"              # or "ray"
workers = 2
```
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from scenesift.al.campaign import check_keys
from scenesift.errors import ConfigError, FormatError

STUDIES = ("variance", "strategies", "tagger")
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class VarianceStudy:
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    repeats: int = 30

    def __post_init__(self) -> None:
        if not self.fractions or not all(0 < f <= 1 for f in self.fractions):
            raise ValueError(f"variance.fractions must be in (0, 1], got {self.fractions}")
        if self.repeats < 1:
            raise ValueError("variance.repeats must be >= 1")


@dataclass(frozen=True)
class StrategyStudy:
    strategies: tuple[Any, ...] = ("random", "least_confidence")
    seeds: int = 5
    initial: int = 100
    batch: int = 100
    rounds: int = 8

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ValueError("strategies.strategies must name at least one strategy")
        if min(self.seeds, self.initial, self.batch, self.rounds) < 1:
            raise ValueError("strategies: seeds, initial, batch and rounds must be >= 1")

    def specs(self) -> list[dict[str, Any]]:
        """Each strategy as a spec table (a bare name becomes ``{name = ...}``)."""
        out = []
        for s in self.strategies:
            spec = {"name": s} if isinstance(s, str) else dict(s)
            if "name" not in spec:
                raise ValueError(f"strategies: {s!r} has no 'name'")
            out.append(spec)
        return out


@dataclass(frozen=True)
class TaggerStudy(StrategyStudy):
    """Strategies over seeds with the situation tagger as the campaigns' model (seed 000's
    "select data from situations that still lack it", measured by the tagger's own AUC)."""

    strategies: tuple[Any, ...] = ("random", "balance_situations", "bald")
    learner: dict[str, Any] = field(default_factory=lambda: {"ensemble": 5})

    def __post_init__(self) -> None:
        super().__post_init__()
        from scenesift.al.learners import make_learner

        make_learner({**self.learner, "kind": "tagger"})


@dataclass(frozen=True)
class Runner:
    engine: str = "local"
    workers: int = 2
    address: str | None = None  # Ray: an existing cluster ("auto", "ray://host:10001")

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"runner.engine must be one of {ENGINES}, got {self.engine!r}")
        if self.workers < 1:
            raise ValueError("runner.workers must be >= 1")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    studies: tuple[str, ...] = STUDIES
    variance: VarianceStudy = field(default_factory=VarianceStudy)
    strategies: StrategyStudy = field(default_factory=StrategyStudy)
    tagger: TaggerStudy = field(default_factory=TaggerStudy)
    learner: dict[str, Any] = field(default_factory=dict)
    runner: Runner = field(default_factory=Runner)
    pool_split: str = "train"
    eval_split: str = "test"

    def __post_init__(self) -> None:
        bad = [s for s in self.studies if s not in STUDIES]
        if bad:
            raise ValueError(f"studies: unknown {bad}; expected some of {STUDIES}")
        self._check_strategies()

    def _check_strategies(self) -> None:
        """Refuse, before hours of runs, a strategy its campaigns could not run: a bad spec,
        or one reading a pool output its learner never fills (each campaign's learner is
        the study's as ``learner_for`` adapts it to the strategy)."""
        from scenesift.al.learners import check_provided, learner_for, make_learner
        from scenesift.al.strategies import make_strategy

        studies = {
            "strategies": (self.strategies, dict(self.learner)),
            "tagger": (self.tagger, {**self.tagger.learner, "kind": "tagger"}),
        }
        for key, (study, learner) in studies.items():
            if key not in self.studies:
                continue
            for spec in study.specs():
                try:
                    strategy = make_strategy(spec)
                    check_provided(strategy, make_learner(learner_for(strategy, learner)))
                except ValueError as e:
                    raise ValueError(f"[{key}] strategy {spec.get('name')!r}: {e}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "experiment") -> ExperimentConfig:
        data = dict(data)
        check_keys(data, {f.name for f in fields(cls)}, where)
        parts = {
            "variance": VarianceStudy,
            "strategies": StrategyStudy,
            "tagger": TaggerStudy,
            "runner": Runner,
        }
        try:
            for key, kind in parts.items():
                if key in data:
                    table = data[key]
                    if not isinstance(table, dict):
                        raise ValueError(f"{where}: [{key}] must be a table")
                    check_keys(table, {f.name for f in fields(kind)}, f"{where} [{key}]")
                    data[key] = kind(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in table.items()})  # fmt: skip
            if "studies" in data:
                data["studies"] = tuple(data["studies"])
            return cls(**data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None

    @classmethod
    def load(cls, path: Path) -> ExperimentConfig:
        try:
            data = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as e:
            raise FormatError(path, str(e), "a valid TOML experiment") from None
        try:
            return cls.from_dict(data, where=str(path))
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def with_runner(
        self, engine: str | None = None, workers: int | None = None, address: str | None = None
    ) -> ExperimentConfig:
        """This experiment with the given runner settings replaced (where runs execute does
        not change their results, so the flags may override the file)."""
        runner = replace(
            self.runner,
            engine=engine or self.runner.engine,
            workers=workers or self.runner.workers,
            address=address or self.runner.address,
        )
        try:
            return replace(self, runner=runner)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
