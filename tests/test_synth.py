"""The synthetic world: deterministic, well-formed, and its labels agree with its pixels."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from scenesift.synth import (
    PARTICIPANTS,
    FrameState,
    Label,
    ObjectState,
    WorldConfig,
    contact_sheet,
    default_world_config,
    frame_attributes,
    generate,
    plan_drive,
    read_generation,
    render_frame,
)
from scenesift.synth.world import Ribbon
from scenesift.taxonomy import default_taxonomy

SMALL = WorldConfig(min_frames=8, max_frames=16)


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _car(track: int, x: float, z: float, color=(200, 30, 30)) -> ObjectState:
    return ObjectState(track=track, category="car", x=x, z=z, width=1.8, height=1.5, color=color)


def _box(labels, track: int):
    found = [lb for lb in labels if lb.track == track]
    return found[0] if found else None


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("world")
    generate(out, 120, seed=3, config=SMALL, progress=False)
    return out, json.loads((out / "labels.json").read_text())


# ------------------------------------------------------------------ determinism
def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, 40, seed=1, config=SMALL, progress=False)
    generate(b, 40, seed=1, config=SMALL, progress=False)
    generate(c, 40, seed=2, config=SMALL, progress=False)
    assert (a / "labels.json").read_bytes() == (b / "labels.json").read_bytes()
    assert _files(a) == _files(b)
    assert (a / "labels.json").read_bytes() != (c / "labels.json").read_bytes()
    assert _files(a) != _files(c)


def test_a_drive_prefix_renames_drives_and_changes_nothing_else(tmp_path: Path) -> None:
    plain, prefixed = tmp_path / "plain", tmp_path / "prefixed"
    generate(plain, 20, seed=1, config=SMALL, progress=False)
    generate(prefixed, 20, seed=1, config=SMALL, progress=False, drive_prefix="eval_")
    a = json.loads((plain / "labels.json").read_text())
    b = json.loads((prefixed / "labels.json").read_text())
    assert all(f["videoName"].startswith("eval_drive_") for f in b)
    unprefixed = json.loads(json.dumps(b).replace("eval_drive_", "drive_"))
    assert unprefixed == a
    assert {k.replace("eval_", ""): v for k, v in _files(prefixed).items()} == _files(plain)
    assert 'drive_prefix = "eval_"' in (prefixed / "world.toml").read_text()
    with pytest.raises(ValueError, match="drive_prefix"):
        generate(tmp_path / "bad", 5, config=SMALL, progress=False, drive_prefix="a/b")


def test_workers_do_not_change_output(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    s1 = generate(one, 50, seed=5, config=SMALL, workers=1, progress=False)
    s2 = generate(two, 50, seed=5, config=SMALL, workers=2, progress=False)
    assert s1.n_drives >= 3
    assert (one / "labels.json").read_bytes() == (two / "labels.json").read_bytes()
    assert _files(one) == _files(two)
    assert s1.situations == s2.situations and s1.classes == s2.classes


def test_world_toml_remakes_the_world(world) -> None:
    out, _ = world
    cfg, seed, n = read_generation(out / "world.toml")
    assert (cfg, seed, n) == (SMALL, 3, 120)


# ------------------------------------------------------------------ format
def test_frames_follow_the_scalabel_contract(world) -> None:
    out, frames = world
    assert len(frames) == 120
    tax = default_taxonomy()
    for f in frames:
        drive, file = f["name"].split("/")
        assert drive == f["videoName"] and file == f"{f['frameIndex']:06d}.jpg"
        assert (out / "images" / f["name"]).is_file()
        assert f["timestamp"] == f["frameIndex"] * SMALL.frame_interval_ms
        a = f["attributes"]
        assert a["timeofday"] in ("daytime", "dawn/dusk", "night")
        assert a["weather"] in ("clear", "rainy", "foggy", "snowy")
        assert a["scene"] in ("city street", "highway", "residential", "tunnel")
        for key in ("roadworks", "close_participant", "far_participant", "crowded"):
            assert key in tax and isinstance(a[key], bool)
        for lb in f["labels"]:
            assert lb["category"] in tax.classes
            assert lb["id"].startswith(drive + "/")
            b = lb["box2d"]
            assert 0 <= b["x1"] < b["x2"] <= SMALL.width
            assert 0 <= b["y1"] < b["y2"] <= SMALL.height
            att = lb["attributes"]
            assert 0 <= att["occlusion"] <= 1 and 0 <= att["truncation"] <= 1
            assert att["occluded"] == (att["occlusion"] > SMALL.flag_threshold)
            assert att["distance"] > 0


def test_drives_have_configured_lengths_and_shared_conditions(world) -> None:
    _, frames = world
    drives: dict[str, list[dict]] = {}
    for f in frames:
        drives.setdefault(f["videoName"], []).append(f)
    names = sorted(drives)
    pairs: list[tuple[set, set]] = []
    for i, name in enumerate(names):
        fs = drives[name]
        assert [f["frameIndex"] for f in fs] == list(range(len(fs)))
        if i < len(names) - 1:  # the last drive is cut to the frame budget
            assert SMALL.min_frames <= len(fs) <= SMALL.max_frames
        for key in ("timeofday", "weather"):
            assert len({f["attributes"][key] for f in fs}) == 1
        ids = [{lb["id"] for lb in f["labels"]} for f in fs]
        pairs += [(a, b) for a, b in itertools.pairwise(ids) if a and b]
    # neighbouring frames are near-duplicates: most objects are still there one frame later
    assert sum(bool(a & b) for a, b in pairs) >= 0.9 * len(pairs)


def test_situation_flags_agree_with_labels(world) -> None:
    _, frames = world
    for f in frames:
        parts = [lb for lb in f["labels"] if lb["category"] in PARTICIPANTS]
        a = f["attributes"]
        dist = [lb["attributes"]["distance"] for lb in parts]
        assert a["pedestrian_present"] == any(lb["category"] == "pedestrian" for lb in parts)
        seen = [lb for lb in parts if lb["attributes"]["occlusion"] <= SMALL.crowded_max_occlusion]
        assert a["crowded"] == (len(seen) >= SMALL.crowded_min)
        assert a["close_participant"] == any(d <= SMALL.close_m for d in dist)
        assert a["far_participant"] == any(d > SMALL.far_m for d in dist)


def test_crowded_counts_only_participants_that_are_mostly_visible() -> None:
    def car(i: int, occlusion: float) -> Label:
        return Label(i, "car", (0.0, 0.0, 10.0, 10.0), occlusion, 0.0, 20.0)

    state = FrameState()
    cut = state.settings.crowded_max_occlusion
    n = state.settings.crowded_min
    half_hidden = [car(i, cut) for i in range(n)]
    assert frame_attributes(state, half_hidden)["crowded"]
    # a queue of cars mostly hidden behind the first one is boxed, but does not look crowded
    queue = [car(0, 0.0)] + [car(i, min(1.0, cut + 0.2)) for i in range(1, n + 4)]
    assert not frame_attributes(state, queue)["crowded"]


# ------------------------------------------------------------------ geometry
def test_nearer_object_occludes_farther_one() -> None:
    far, near = _car(1, 0.0, 20.0), _car(2, 0.8, 12.0, color=(30, 60, 160))
    _, alone = render_frame(FrameState(objects=(far,)), _rng())
    _, both = render_frame(FrameState(objects=(far, near)), _rng())
    a, b = _box(alone, 1), _box(both, 1)
    assert a.occlusion == 0.0 and b.occlusion > 0.1
    area = lambda lb: (lb.box[2] - lb.box[0]) * (lb.box[3] - lb.box[1])  # noqa: E731
    assert area(b) < area(a)
    assert _box(both, 2).occlusion == 0.0


def test_truncation_at_the_image_border() -> None:
    _, labels = render_frame(FrameState(objects=(_car(1, -3.2, 5.0),)), _rng())
    lb = _box(labels, 1)
    assert lb.box[0] == 0 and lb.truncation > 0.1
    _, labels = render_frame(FrameState(objects=(_car(1, 0.0, 15.0),)), _rng())
    assert _box(labels, 1).truncation == 0.0


def test_perspective_farther_is_smaller() -> None:
    heights = []
    for z in (10.0, 20.0, 40.0):
        _, labels = render_frame(FrameState(objects=(_car(1, 0.0, z),)), _rng())
        b = _box(labels, 1).box
        heights.append(b[3] - b[1])
    assert heights[0] > heights[1] > heights[2]
    assert heights[0] / heights[1] == pytest.approx(2.0, rel=0.15)


def test_nearly_hidden_objects_are_not_labelled() -> None:
    tiny = ObjectState(track=1, category="pedestrian", x=0.5, z=105.0, width=0.5, height=1.5)
    wall = _car(2, 0.0, 8.0)
    behind = _car(3, 0.0, 16.0)
    _, labels = render_frame(FrameState(objects=(tiny, behind, wall)), _rng())
    assert {lb.track for lb in labels} == {2}


# ------------------------------------------------------------------ appearance
def _street(**kw) -> FrameState:
    objects = tuple(_car(i, x, z) for i, (x, z) in enumerate([(0, 15), (3.3, 30), (-3.3, 60)]))
    ribbons = (
        Ribbon("building", 8.0, 8.0, 0.0, 14.0, 2.0, 150.0, (170, 150, 130), 1),
        Ribbon("building", -9.0, -9.0, 0.0, 20.0, 2.0, 150.0, (120, 120, 125), 2),
    )
    return FrameState(objects=objects, ribbons=ribbons, road=((-5.0, 5.0),), **kw)


def test_night_is_darker_than_day() -> None:
    day, _ = render_frame(_street(timeofday="day"), _rng())
    dusk, _ = render_frame(_street(timeofday="dusk"), _rng())
    night, _ = render_frame(_street(timeofday="night"), _rng())
    assert day.mean() > dusk.mean() > night.mean()
    assert day.mean() > 1.8 * night.mean()


def test_fog_reduces_far_contrast() -> None:
    clear, _ = render_frame(_street(weather="clear"), _rng())
    fog, _ = render_frame(_street(weather="fog", fog_visibility_m=30.0), _rng())
    far = (slice(62, 77), slice(120, 200))  # around the vanishing point: far away
    near = (slice(150, 192), slice(0, 320))  # the road just ahead
    assert fog[far].std() < 0.5 * clear[far].std()
    assert fog[near].std() > 0.5 * clear[near].std()


# ------------------------------------------------------------------ config
def test_config_round_trips_through_toml(tmp_path: Path) -> None:
    cfg = replace(WorldConfig(), width=160, weather={"clear": 1, "rain": 0, "fog": 0, "snow": 0})
    path = tmp_path / "w.toml"
    path.write_text(cfg.to_toml())
    assert WorldConfig.from_toml(path) == cfg
    assert default_world_config() == WorldConfig()


def test_unknown_config_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[drive]\nmin_frames = 5\nmax_framez = 9\n")
    with pytest.raises(ValueError, match=r"max_framez.*|bad\.toml") as err:
        WorldConfig.from_toml(path)
    assert "max_framez" in str(err.value) and "bad.toml" in str(err.value)
    path.write_text("[density.mars]\nlead = 1.0\n")
    with pytest.raises(ValueError, match="mars"):
        WorldConfig.from_toml(path)


def test_partial_config_keeps_defaults(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[weather]\nfog = 0.5\n")
    cfg = WorldConfig.from_toml(path)
    assert cfg.weather["fog"] == 0.5 and cfg.weather["clear"] == WorldConfig().weather["clear"]
    assert cfg.width == WorldConfig().width


def test_rare_priors_stay_rare_but_present() -> None:
    """Stratified per-drive draws: about p * n drives of a rare weather, not zero or many."""
    cfg = WorldConfig()
    plans = [plan_drive(cfg, 0, i, 40) for i in range(400)]
    fog = sum(p.weather == "fog" for p in plans)
    assert 3 <= fog <= 7  # 400 * 0.012 = 4.8
    assert sum(p.tunnel for p in plans) == pytest.approx(400 * cfg.tunnel_prob, abs=3)


def test_contact_sheet(world, tmp_path: Path) -> None:
    out, _ = world
    path = contact_sheet(out, tmp_path / "sheet.png", cols=2, rows=2)
    from PIL import Image

    assert Image.open(path).size == (2 * SMALL.width, 2 * SMALL.height)
