"""Situation taxonomy and object classes of a project.

A taxonomy is declared once (TOML) and stored in the project; every importer validates
against it, so a typo in a CSV header is an error, not a silent new situation.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from scenesift.errors import FormatError


@dataclass(frozen=True)
class Situation:
    name: str
    group: str | None = None
    description: str = ""


@dataclass
class Taxonomy:
    situations: list[Situation]
    classes: list[str]
    _by_name: dict[str, Situation] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = {}
        for s in self.situations:
            if s.name in self._by_name:
                raise ValueError(f"situation {s.name!r} declared twice")
            self._by_name[s.name] = s
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"duplicate class names in {self.classes}")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.situations]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Situation:
        return self._by_name[name]

    def groups(self) -> dict[str, list[str]]:
        """Mutually exclusive groups, in declaration order."""
        out: dict[str, list[str]] = {}
        for s in self.situations:
            if s.group:
                out.setdefault(s.group, []).append(s.name)
        return out

    def group_members(self, name: str) -> list[str]:
        """The other situations that exclude ``name`` (empty when it has no group)."""
        group = self._by_name[name].group
        if group is None:
            return []
        return [s.name for s in self.situations if s.group == group and s.name != name]

    def complete_groups(self, values: dict[str, bool]) -> dict[str, bool]:
        """Add the negatives implied by a positive group member (night => not day, not dusk)."""
        out = dict(values)
        for name, value in values.items():
            if value and name in self._by_name:
                for other in self.group_members(name):
                    out.setdefault(other, False)
        return out

    def decide(
        self,
        scores: np.ndarray,
        situations: Sequence[str],
        thresholds: Mapping[str, float],
        default: float = 0.5,
    ) -> np.ndarray:
        """Positive values (N, S) from scores (N, S) over ``situations``: a situation is
        positive when its score reaches its threshold, except that of an exclusive group
        only the member with the highest score among ``situations`` may be: a frame is not
        day and night at once. A group whose best member misses its threshold gets none."""
        scores = np.atleast_2d(np.asarray(scores, dtype=float))
        limits = np.array([thresholds.get(s, default) for s in situations], dtype=float)
        values = scores >= limits
        col = {s: j for j, s in enumerate(situations)}
        for members in self.groups().values():
            cols = [col[m] for m in members if m in col]
            if len(cols) < 2:
                continue
            best = np.array(cols)[np.argmax(scores[:, cols], axis=1)]
            rows = np.arange(len(scores))
            chosen = values[rows, best]
            values[:, cols] = False
            values[rows, best] = chosen
        return values

    @classmethod
    def from_toml(cls, path: Path) -> Taxonomy:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise FormatError(path, str(e), "a valid TOML taxonomy") from None
        return cls.from_dict(data, origin=path)

    @classmethod
    def from_dict(cls, data: dict, origin: Path | str = "<taxonomy>") -> Taxonomy:
        situations = []
        for i, item in enumerate(data.get("situations", [])):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise FormatError(origin, f"situations[{i}]", "a table with a string 'name'")
            situations.append(
                Situation(item["name"], item.get("group"), item.get("description", ""))
            )
        classes = data.get("classes", [])
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise FormatError(origin, "classes", "a list of class names")
        return cls(situations=situations, classes=list(classes))

    def to_dict(self) -> dict:
        return {
            "classes": list(self.classes),
            "situations": [
                {"name": s.name, "group": s.group, "description": s.description}
                for s in self.situations
            ],
        }


def default_taxonomy() -> Taxonomy:
    """The driving taxonomy of the synthetic world and of BDD100K-like data."""
    text = resources.files("scenesift").joinpath("data/taxonomy.toml").read_text("utf-8")
    return Taxonomy.from_dict(tomllib.loads(text), origin="scenesift/data/taxonomy.toml")
