"""The fleet-like benchmark world's priors are the published figures its docs table cites,
and a generated world shows them."""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from scenesift.synth import WorldConfig, generate, plan_drive, simulate_drive

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "benchmarks" / "fleet_world.toml"
DOCS = ROOT / "docs" / "world_priors.md"


def documented_priors() -> dict[str, float]:
    """``key -> value`` from the docs table's rows whose first cell is a backticked key."""
    out = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            key = cells[0].strip("`")
            assert key not in out, f"{DOCS.name}: {key} documented twice"
            out[key] = float(cells[1])
    return out


def flatten(table: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@pytest.fixture(scope="module")
def config() -> WorldConfig:
    return WorldConfig.from_toml(WORLD)


def test_every_documented_prior_is_the_generators_value(config):
    documented = documented_priors()
    assert len(documented) >= 20
    actual = flatten(config.to_dict())
    for key, value in documented.items():
        assert key in actual, f"{DOCS.name} documents {key}, which the world config lacks"
        assert actual[key] == pytest.approx(value), f"{key}: docs {value}, config {actual[key]}"


def test_every_prior_the_world_file_sets_is_documented():
    set_in_file = set(flatten(tomllib.loads(WORLD.read_text(encoding="utf-8"))))
    undocumented = sorted(set_in_file - set(documented_priors()))
    assert not undocumented, f"{WORLD.name} sets {undocumented} without a source in {DOCS.name}"


def test_drive_attributes_follow_the_priors(config):
    # the per-drive draws are stratified, so 3,000 drives land close to every prior
    n = 3000
    plans = [plan_drive(config, seed=3, index=i) for i in range(n)]
    for attr, prior in (("timeofday", config.time_of_day), ("weather", config.weather),
                        ("scene", config.scene)):  # fmt: skip
        counts = Counter(getattr(p, attr) for p in plans)
        total = sum(prior.values())
        for value, p in prior.items():
            assert counts[value] / n == pytest.approx(p / total, abs=0.01), (attr, value)
    assert sum(p.tunnel for p in plans) / n == pytest.approx(config.tunnel_prob, abs=0.003)


def test_golf_carts_live_only_in_residential_drives(config):
    # the rare class in a rare context: a residential drive has them, no other does
    plans = [plan_drive(config, seed=0, index=i) for i in range(200)]
    carts = Counter()
    for scene in ("city", "residential", "highway"):
        for p in [p for p in plans if p.scene == scene][:4]:
            for state in simulate_drive(config, 0, p.index, n_frames=20):
                carts[scene] += sum(o.category == "golf_cart" for o in state.objects)
    assert carts["city"] == carts["highway"] == 0
    assert carts["residential"] > 0


def test_a_generated_world_has_20_s_drives_of_keyframes_500_ms_apart(config, tmp_path):
    summary = generate(tmp_path, n_frames=100, seed=0, config=config, progress=False)
    frames = json.loads((tmp_path / "labels.json").read_text())
    by_drive: dict[str, list[int]] = {}
    for f in frames:
        by_drive.setdefault(f["videoName"], []).append(f["timestamp"])
    assert summary.n_drives == 3  # 40 + 40 + the last one cut short at 20
    assert [len(t) for t in by_drive.values()] == [40, 40, 20]
    for stamps in by_drive.values():
        assert {b - a for a, b in itertools.pairwise(stamps)} == {500}
    full = [t for t in by_drive.values() if len(t) == 40]
    assert all(math.isclose((t[-1] - t[0] + 500) / 1000, 20.0) for t in full)


def test_the_evaluation_world_is_the_fleet_world_with_rare_contexts_oversampled(config):
    evaluation = WorldConfig.from_toml(ROOT / "benchmarks" / "fleet_eval_world.toml")
    pool, other = flatten(config.to_dict()), flatten(evaluation.to_dict())
    oversampled = {k for k in pool if pool[k] != other[k]}
    marked = {
        line.split("=")[0].strip()
        for line in (ROOT / "benchmarks" / "fleet_eval_world.toml").read_text().splitlines()
        if "# oversampled" in line and "=" in line
    }
    contexts = {k for k in oversampled if k.split(".")[0] in ("time_of_day", "weather", "scene")}
    assert oversampled - contexts == {f"drive.{k}" for k in marked}  # tunnel_prob, roadworks
    assert {k.split(".")[0] for k in contexts} == {"time_of_day", "weather", "scene"}
    for table in ("time_of_day", "weather", "scene"):  # equal shares: rare contexts get ~100+
        assert len(set(getattr(evaluation, table).values())) == 1
