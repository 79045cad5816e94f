"""Every prior and knob of the synthetic world, in one dataclass that round-trips to TOML.

A world is re-made from ``(config, seed, n_frames)`` alone, so the config written next to
the images must hold everything: nothing in the generator reads a constant that a user
might want to change for an experiment (rarer fog, more golf carts, a bigger image).
"""

from __future__ import annotations

import copy
import json
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

#: Categorical per-drive priors and the values they may take (taxonomy names).
TIMES_OF_DAY = ("day", "dusk", "night")
WEATHERS = ("clear", "rain", "fog", "snow")
BASE_SCENES = ("city", "residential", "highway")
#: Traffic roles whose density (objects per 100 m, per lane or per roadside) is configurable.
ROLES = ("lead", "oncoming", "parked", "pedestrian", "cyclist")
#: Vehicle classes that may replace a car in a lane or a parking spot.
VEHICLE_MIX_CLASSES = ("truck", "golf_cart")

#: Table in the TOML file for the run parameters; ignored when reading a config.
GENERATION_TABLE = "generation"
DEFAULT_CONFIG_RESOURCE = "data/world.toml"


def _sec(section: str) -> dict[str, str]:
    return {"section": section}


@dataclass
class WorldConfig:
    """Priors of the world. Probabilities are per drive unless the name says otherwise."""

    # [image]
    width: int = field(default=320, metadata=_sec("image"))
    height: int = field(default=192, metadata=_sec("image"))
    jpeg_quality: int = field(default=88, metadata=_sec("image"))
    # [camera]  focal length in pixels = focal_scale * width
    focal_scale: float = field(default=1.0, metadata=_sec("camera"))
    camera_height_m: float = field(default=1.4, metadata=_sec("camera"))
    horizon_frac: float = field(default=0.42, metadata=_sec("camera"))
    pitch_jitter_px: float = field(default=0.8, metadata=_sec("camera"))
    # [drive]
    min_frames: int = field(default=20, metadata=_sec("drive"))
    max_frames: int = field(default=60, metadata=_sec("drive"))
    frame_interval_ms: int = field(default=250, metadata=_sec("drive"))
    speed_jitter: float = field(default=0.15, metadata=_sec("drive"))
    stop_prob: float = field(default=0.25, metadata=_sec("drive"))
    max_curvature: float = field(default=0.0012, metadata=_sec("drive"))
    tunnel_prob: float = field(default=0.05, metadata=_sec("drive"))
    tunnel_frames: list[int] = field(default_factory=lambda: [8, 16], metadata=_sec("drive"))
    roadworks_prob: float = field(default=0.04, metadata=_sec("drive"))
    roadworks_length_m: list[float] = field(
        default_factory=lambda: [12.0, 40.0], metadata=_sec("drive")
    )
    roadworks_ahead_m: float = field(default=35.0, metadata=_sec("drive"))
    # [traffic]
    traffic_sigma: float = field(default=0.6, metadata=_sec("traffic"))
    quiet_prob: float = field(default=0.2, metadata=_sec("traffic"))
    quiet_factor: float = field(default=0.12, metadata=_sec("traffic"))
    night_traffic: float = field(default=0.6, metadata=_sec("traffic"))
    view_far_m: float = field(default=110.0, metadata=_sec("traffic"))
    cone_spacing_m: float = field(default=4.0, metadata=_sec("traffic"))
    walk_speed_mps: float = field(default=1.4, metadata=_sec("traffic"))
    cyclist_speed_mps: float = field(default=5.0, metadata=_sec("traffic"))
    # [labels]
    min_box_px: float = field(default=5.0, metadata=_sec("labels"))
    max_occlusion: float = field(default=0.9, metadata=_sec("labels"))
    flag_threshold: float = field(default=0.1, metadata=_sec("labels"))
    min_visibility: float = field(default=0.12, metadata=_sec("labels"))
    close_m: float = field(default=10.0, metadata=_sec("labels"))
    far_m: float = field(default=40.0, metadata=_sec("labels"))
    crowded_min: int = field(default=8, metadata=_sec("labels"))
    #: A participant counts towards "crowded" (many participants *visible*) only when at
    #: most this share of it is hidden: a labeller judging a scene cannot count a car that
    #: shows one tenth of itself, though it is still boxed for detection (max_occlusion).
    crowded_max_occlusion: float = field(default=0.5, metadata=_sec("labels"))
    # [render]
    noise_sigma: float = field(default=2.5, metadata=_sec("render"))
    night_noise_sigma: float = field(default=7.0, metadata=_sec("render"))
    night_ambient: float = field(default=0.1, metadata=_sec("render"))
    dusk_ambient: float = field(default=0.62, metadata=_sec("render"))
    headlight_range_m: float = field(default=28.0, metadata=_sec("render"))
    fog_visibility_m: list[float] = field(
        default_factory=lambda: [22.0, 55.0], metadata=_sec("render")
    )
    precipitation_visibility_m: float = field(default=160.0, metadata=_sec("render"))
    rain_streaks: int = field(default=140, metadata=_sec("render"))
    snow_flakes: int = field(default=260, metadata=_sec("render"))
    # per-drive categorical priors (normalised when sampled)
    time_of_day: dict[str, float] = field(
        default_factory=lambda: {"day": 0.6, "dusk": 0.14, "night": 0.26}
    )
    weather: dict[str, float] = field(
        default_factory=lambda: {"clear": 0.796, "rain": 0.18, "fog": 0.012, "snow": 0.012}
    )
    scene: dict[str, float] = field(
        default_factory=lambda: {"city": 0.45, "residential": 0.27, "highway": 0.28}
    )
    ego_speed_mps: dict[str, float] = field(
        default_factory=lambda: {"city": 10.0, "residential": 7.0, "highway": 26.0}
    )
    # objects per 100 m, per lane (lead, oncoming) or per roadside (parked, pedestrian, cyclist)
    density: dict[str, dict[str, float]] = field(
        default_factory=lambda: {
            "city": {
                "lead": 1.0,
                "oncoming": 0.9,
                "parked": 1.4,
                "pedestrian": 1.5,
                "cyclist": 0.3,
            },
            "residential": {
                "lead": 0.4,
                "oncoming": 0.45,
                "parked": 1.4,
                "pedestrian": 0.8,
                "cyclist": 0.3,
            },
            "highway": {
                "lead": 1.0,
                "oncoming": 0.8,
                "parked": 0.0,
                "pedestrian": 0.0,
                "cyclist": 0.0,
            },
        }
    )
    # probability that a vehicle is a truck / golf cart instead of a car
    vehicle_mix: dict[str, dict[str, float]] = field(
        default_factory=lambda: {
            "city": {"truck": 0.07, "golf_cart": 0.003},
            "residential": {"truck": 0.03, "golf_cart": 0.05},
            "highway": {"truck": 0.22, "golf_cart": 0.0},
        }
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, origin: str = "<config>") -> None:
        """Fail early with the offending key: a bad prior otherwise shows up as odd data."""

        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{origin}: {key}: {why}")

        if self.width < 32 or self.height < 32:
            raise bad("image.width/height", "must be at least 32 pixels")
        if not 0.0 <= self.crowded_max_occlusion <= 1.0:
            raise bad("labels.crowded_max_occlusion", "must be in 0..1")
        if not 1 <= self.jpeg_quality <= 100:
            raise bad("image.jpeg_quality", "must be in 1..100")
        if not 1 <= self.min_frames <= self.max_frames:
            raise bad("drive.min_frames", "need 1 <= min_frames <= max_frames")
        for name, keys in (
            ("time_of_day", TIMES_OF_DAY),
            ("weather", WEATHERS),
            ("scene", BASE_SCENES),
        ):
            table = getattr(self, name)
            _check_keys(table, keys, name, origin)
            if any(v < 0 for v in table.values()) or sum(table.values()) <= 0:
                raise bad(name, "probabilities must be >= 0 with a positive sum")
        _check_keys(self.ego_speed_mps, BASE_SCENES, "ego_speed_mps", origin)
        for name, inner in (("density", ROLES), ("vehicle_mix", VEHICLE_MIX_CLASSES)):
            table = getattr(self, name)
            _check_keys(table, BASE_SCENES, name, origin)
            for scene, sub in table.items():
                _check_keys(sub, inner, f"{name}.{scene}", origin)
        for key in ("tunnel_frames", "roadworks_length_m", "fog_visibility_m"):
            lo_hi = getattr(self, key)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1] or lo_hi[0] <= 0:
                raise bad(key, "must be [low, high] with 0 < low <= high")

    # ---------------------------------------------------------------- TOML
    def to_dict(self) -> dict[str, Any]:
        """Nested tables, as written to TOML."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = copy.deepcopy(getattr(self, f.name))
            section = f.metadata.get("section")
            if section:
                out.setdefault(section, {})[f.name] = value
            else:
                out[f.name] = value
        return out

    def to_toml(self, generation: dict[str, Any] | None = None) -> str:
        """TOML text; ``generation`` (seed, n_frames) is added so a world can be re-made."""
        data = self.to_dict()
        if generation:
            data = {GENERATION_TABLE: dict(generation), **data}
        return _dump_toml(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "<config>") -> WorldConfig:
        """Defaults overridden by ``data``; unknown keys are errors, not silent no-ops."""
        by_section: dict[str, set[str]] = {}
        nested = {}
        for f in fields(cls):
            section = f.metadata.get("section")
            if section:
                by_section.setdefault(section, set()).add(f.name)
            else:
                nested[f.name] = f
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == GENERATION_TABLE:
                continue
            if key in by_section:
                if not isinstance(value, dict):
                    raise ValueError(f"{origin}: [{key}] must be a table")
                for sub, v in value.items():
                    if sub not in by_section[key]:
                        raise ValueError(f"{origin}: unknown key {key}.{sub!r}")
                    kwargs[sub] = v
            elif key in nested:
                if not isinstance(value, dict):
                    raise ValueError(f"{origin}: [{key}] must be a table")
                merged = copy.deepcopy(getattr(cls(), key))
                for sub, v in value.items():
                    if isinstance(v, dict):
                        if sub not in merged:
                            raise ValueError(f"{origin}: unknown key {key}.{sub!r}")
                        merged[sub] = {**merged[sub], **v}
                    else:
                        merged[sub] = v
                kwargs[key] = merged
            else:
                raise ValueError(f"{origin}: unknown key {key!r}")
        cfg = cls.__new__(cls)
        defaults = cls()
        for f in fields(cls):
            setattr(cfg, f.name, kwargs.get(f.name, copy.deepcopy(getattr(defaults, f.name))))
        cfg.validate(origin)
        return cfg

    @classmethod
    def from_toml(cls, path: Path | str) -> WorldConfig:
        """Read a (possibly partial) config; missing keys keep their defaults."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
        return cls.from_dict(data, origin=str(path))


def read_generation(path: Path | str) -> tuple[WorldConfig, int, int]:
    """(config, seed, n_frames) of a generated world's ``world.toml``, to re-make it."""
    path = Path(path)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    gen = data.get(GENERATION_TABLE, {})
    if "seed" not in gen or "n_frames" not in gen:
        raise ValueError(f"{path}: missing [{GENERATION_TABLE}] seed and n_frames")
    return WorldConfig.from_dict(data, origin=str(path)), int(gen["seed"]), int(gen["n_frames"])


def default_world_config() -> WorldConfig:
    """The shipped default world (``scenesift/data/world.toml``)."""
    text = resources.files("scenesift").joinpath(DEFAULT_CONFIG_RESOURCE).read_text("utf-8")
    return WorldConfig.from_dict(tomllib.loads(text), origin=f"scenesift/{DEFAULT_CONFIG_RESOURCE}")


def _check_keys(table: dict, allowed: tuple[str, ...], name: str, origin: str) -> None:
    if not isinstance(table, dict):
        raise ValueError(f"{origin}: {name} must be a table")
    for key in table:
        if key not in allowed:
            raise ValueError(f"{origin}: unknown key {name}.{key!r} (expected one of {allowed})")
    missing = [k for k in allowed if k not in table]
    if missing:
        raise ValueError(f"{origin}: {name} is missing {missing}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Tables of ``key = value`` (nested dicts become dotted tables); enough for configs."""
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if scalars and prefix:
        lines.append(f"[{prefix}]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for key, sub in tables.items():
        if lines:
            lines.append("")
        lines.append(_dump_toml(sub, f"{prefix}.{key}" if prefix else key).rstrip("\n"))
    return "\n".join(lines) + "\n"
