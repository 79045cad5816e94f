"""The world as pure data: drives, their situations, and where every object is in each frame.

A drive is planned from ``(seed, drive index)`` alone, so drives can be simulated in any
order or process and still give the same bytes. Everything that moves is a trajectory laid
out once per drive (lane traffic moves as a rigid train, so cars in a lane never overlap);
a frame is the world seen from the ego position at that time. Rendering lives elsewhere.

Coordinates: ``x`` lateral metres (right positive) from the ego lane centre, ``s`` metres
along the road, ``z = s - ego_s`` depth ahead of the camera, ``y`` metres up from the road.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from scenesift.derive import PARTICIPANTS  # noqa: F401 (re-exported; one definition)
from scenesift.synth.config import BASE_SCENES, TIMES_OF_DAY, WEATHERS, WorldConfig

Color = tuple[int, int, int]

CLASSES = ("car", "truck", "pedestrian", "cyclist", "golf_cart", "traffic_cone")
#: BDD vocabulary of the per-drive attributes, keyed by taxonomy name.
BDD_TIMEOFDAY = {"day": "daytime", "dusk": "dawn/dusk", "night": "night"}
BDD_WEATHER = {"clear": "clear", "rain": "rainy", "fog": "foggy", "snow": "snowy"}
BDD_SCENE = {
    "city": "city street",
    "highway": "highway",
    "residential": "residential",
    "tunnel": "tunnel",
}

#: Objects are kept this far behind the camera so that overtakers enter the view naturally.
BEHIND_M = 40.0
NEAR_M = 1.0
#: Random streams of one drive: independent generators keyed by purpose, so adding a draw
#: to one stream never shifts another (lengths must be computable without simulating).
_STREAM_LENGTH, _STREAM_WORLD, _STREAM_PLAN = 0, 1, 2
#: Weyl-sequence steps (fractional parts of square roots of primes): per-drive categorical
#: draws are stratified across drives, so a rare prior gives close to its expected number of
#: drives even in a small world instead of zero or double.
_WEYL = {
    "time_of_day": math.sqrt(2) % 1,
    "weather": math.sqrt(3) % 1,
    "scene": math.sqrt(5) % 1,
    "tunnel": math.sqrt(7) % 1,
    "roadworks": math.sqrt(11) % 1,
    "stop": math.sqrt(13) % 1,
}

CAR_COLORS: tuple[Color, ...] = (
    (235, 235, 232), (236, 236, 236), (25, 25, 28), (30, 30, 34), (160, 163, 168),
    (110, 112, 118), (150, 25, 25), (30, 55, 120), (60, 90, 140), (40, 70, 50),
    (200, 190, 160), (120, 30, 40), (210, 120, 30),
)  # fmt: skip
TRUCK_COLORS: tuple[Color, ...] = (
    (230, 230, 225), (200, 200, 196), (40, 80, 150), (170, 30, 30), (230, 180, 40),
    (90, 110, 90),
)  # fmt: skip
CART_COLORS: tuple[Color, ...] = ((235, 235, 225), (40, 110, 60), (225, 215, 180), (170, 30, 30))
SHIRT_COLORS: tuple[Color, ...] = (
    (200, 40, 40), (40, 60, 160), (240, 240, 235), (30, 30, 30), (60, 140, 70),
    (230, 180, 40), (120, 120, 125), (150, 90, 160), (240, 120, 40),
)  # fmt: skip
BUILDING_COLORS: tuple[Color, ...] = (
    (170, 150, 130), (140, 120, 110), (190, 180, 160), (120, 120, 125), (160, 100, 80),
    (200, 195, 185), (110, 100, 95), (150, 160, 170),
)  # fmt: skip
HOUSE_COLORS: tuple[Color, ...] = (
    (225, 215, 190), (200, 170, 140), (240, 240, 235), (170, 120, 90), (180, 190, 200),
    (220, 200, 150),
)  # fmt: skip


@dataclass(frozen=True)
class Layout:
    """Cross-section of a road type: lanes (x centre, direction), marks, roadsides."""

    lanes: tuple[tuple[float, int], ...]
    road: tuple[float, float]
    lines: tuple[tuple[float, str], ...]
    parking: tuple[float, ...] = ()
    sidewalks: tuple[tuple[float, float], ...] = ()
    cyclist_lanes: tuple[tuple[float, int], ...] = ()
    works_line: float = 1.7
    tunnel_walls: tuple[float, float] = (-5.5, 5.5)


LAYOUTS: dict[str, Layout] = {
    "city": Layout(
        lanes=((0.0, 1), (3.3, 1), (-3.3, -1), (-6.6, -1)),
        road=(-8.25, 4.95),
        lines=(
            (-1.65, "center"),
            (1.65, "dash"),
            (-4.95, "dash"),
            (4.95, "solid"),
            (-8.25, "solid"),
        ),
        parking=(6.1, -9.4),
        sidewalks=((7.2, 10.4), (-13.6, -10.5)),
        cyclist_lanes=((4.4, 1), (-7.7, -1)),
        works_line=4.95,
        tunnel_walls=(-9.0, 5.9),
    ),
    "residential": Layout(
        lanes=((0.0, 1), (-3.0, -1)),
        road=(-5.5, 2.6),
        lines=((-1.5, "dash"),),
        parking=(2.1, -5.0),
        sidewalks=((2.9, 4.9), (-7.8, -5.8)),
        cyclist_lanes=((1.3, 1), (-4.3, -1)),
        works_line=1.5,
    ),
    "highway": Layout(
        lanes=((-3.6, 1), (0.0, 1), (3.6, 1), (-10.0, -1), (-13.6, -1), (-17.2, -1)),
        road=(-5.5, 7.2),
        lines=((-1.8, "dash"), (1.8, "dash"), (5.4, "solid"), (-5.4, "solid")),
        works_line=5.4,
        tunnel_walls=(-6.6, 8.0),
    ),
}
HIGHWAY_ONCOMING_ROAD = (-19.2, -8.2)
HIGHWAY_ONCOMING_LINES = ((-11.8, "dash"), (-15.4, "dash"), (-8.3, "solid"), (-19.1, "solid"))


# ------------------------------------------------------------------------- frame state
@dataclass(frozen=True)
class RenderSettings:
    """Camera and labelling knobs the renderer needs, copied from the world config."""

    width: int = 320
    height: int = 192
    focal_px: float = 320.0
    camera_height_m: float = 1.4
    horizon_y: float = 80.64
    view_far_m: float = 110.0
    min_box_px: float = 5.0
    max_occlusion: float = 0.9
    flag_threshold: float = 0.1
    min_visibility: float = 0.12
    close_m: float = 10.0
    far_m: float = 40.0
    crowded_min: int = 8
    crowded_max_occlusion: float = 0.5
    noise_sigma: float = 2.5
    night_noise_sigma: float = 7.0
    night_ambient: float = 0.1
    dusk_ambient: float = 0.62
    headlight_range_m: float = 28.0
    precipitation_visibility_m: float = 160.0
    rain_streaks: int = 140
    snow_flakes: int = 260

    @classmethod
    def from_config(cls, cfg: WorldConfig) -> RenderSettings:
        return cls(
            width=cfg.width,
            height=cfg.height,
            focal_px=cfg.focal_scale * cfg.width,
            camera_height_m=cfg.camera_height_m,
            horizon_y=cfg.horizon_frac * cfg.height,
            view_far_m=cfg.view_far_m,
            min_box_px=cfg.min_box_px,
            max_occlusion=cfg.max_occlusion,
            flag_threshold=cfg.flag_threshold,
            min_visibility=cfg.min_visibility,
            close_m=cfg.close_m,
            far_m=cfg.far_m,
            crowded_min=cfg.crowded_min,
            crowded_max_occlusion=cfg.crowded_max_occlusion,
            noise_sigma=cfg.noise_sigma,
            night_noise_sigma=cfg.night_noise_sigma,
            night_ambient=cfg.night_ambient,
            dusk_ambient=cfg.dusk_ambient,
            headlight_range_m=cfg.headlight_range_m,
            precipitation_visibility_m=cfg.precipitation_visibility_m,
            rain_streaks=cfg.rain_streaks,
            snow_flakes=cfg.snow_flakes,
        )


@dataclass(frozen=True)
class ObjectState:
    """A labelled object in camera coordinates (``x`` lateral, ``z`` depth, metres)."""

    track: int
    category: str
    x: float
    z: float
    width: float
    height: float
    color: Color = (160, 163, 168)
    facing: str = "back"  # back | front
    variant: int = 0
    phase: float = 0.0  # walking / pedalling phase, radians
    lit: bool = False

    @property
    def distance(self) -> float:
        return math.hypot(self.x, self.z)


@dataclass(frozen=True)
class PropState:
    """An unlabelled roadside thing that can occlude objects (tree, lamp, sign, barrier)."""

    kind: str
    x: float
    z: float
    width: float
    height: float
    color: Color = (90, 90, 90)
    variant: int = 0


@dataclass(frozen=True)
class Ribbon:
    """A quad along the road: a vertical wall (x0 == x1), or a ground/ceiling strip."""

    kind: str
    x0: float
    x1: float
    y0: float
    y1: float
    z0: float
    z1: float
    color: Color = (128, 128, 128)
    variant: int = 0


@dataclass(frozen=True)
class TunnelState:
    z0: float  # entry depth (negative once inside)
    z1: float  # exit depth
    x_left: float
    x_right: float
    height: float = 5.6


@dataclass(frozen=True)
class DriveLook:
    """Per-drive colours, so that drives of the same situation still differ."""

    road: Color = (92, 92, 96)
    ground: Color = (95, 120, 70)
    sidewalk: Color = (150, 148, 142)
    marking: Color = (225, 225, 215)
    hills: Color = (90, 110, 95)
    sky_shift: float = 0.0
    exposure: float = 1.0


@dataclass(frozen=True)
class FrameState:
    """Everything needed to render one frame; no randomness left but sensor noise."""

    settings: RenderSettings = field(default_factory=RenderSettings)
    drive: str = "drive_0000"
    frame_index: int = 0
    timestamp_ms: int = 0
    timeofday: str = "day"
    weather: str = "clear"
    scene: str = "city"
    base_scene: str = "city"
    roadworks: bool = False
    ego_s: float = 0.0
    curvature: float = 0.0
    pitch_px: float = 0.0
    fog_visibility_m: float = 40.0
    objects: tuple[ObjectState, ...] = ()
    props: tuple[PropState, ...] = ()
    ribbons: tuple[Ribbon, ...] = ()
    lines: tuple[tuple[float, str], ...] = ()
    road: tuple[tuple[float, float], ...] = ((-5.0, 2.0),)
    tunnel: TunnelState | None = None
    look: DriveLook = field(default_factory=DriveLook)


# ------------------------------------------------------------------------- drive plan
@dataclass(frozen=True)
class DrivePlan:
    index: int
    n_frames: int
    timeofday: str
    weather: str
    scene: str
    tunnel: bool
    roadworks: bool
    stop: bool

    @property
    def name(self) -> str:
        return drive_name(self.index)


def drive_name(index: int) -> str:
    return f"drive_{index:04d}"


def drive_length(cfg: WorldConfig, seed: int, index: int) -> int:
    """Frames in drive ``index``; cheap, so the number of drives is known up front."""
    rng = np.random.default_rng([seed, index, _STREAM_LENGTH])
    return int(rng.integers(cfg.min_frames, cfg.max_frames + 1))


def plan_drive(cfg: WorldConfig, seed: int, index: int, n_frames: int | None = None) -> DrivePlan:
    """Per-drive situations: stratified draws (see ``_WEYL``) from the config's priors."""
    offsets = np.random.default_rng([seed, _STREAM_PLAN]).random(len(_WEYL))
    u = {
        k: (off + index * step) % 1.0 for (k, step), off in zip(_WEYL.items(), offsets, strict=True)
    }
    scene = _pick(cfg.scene, BASE_SCENES, u["scene"])
    tunnel_share = sum(cfg.scene[s] for s in ("city", "highway")) / sum(cfg.scene.values())
    tunnel = scene in ("city", "highway") and u["tunnel"] < cfg.tunnel_prob / max(
        tunnel_share, 1e-9
    )
    stop = scene != "highway" and not tunnel and u["stop"] < cfg.stop_prob
    return DrivePlan(
        index=index,
        n_frames=drive_length(cfg, seed, index) if n_frames is None else n_frames,
        timeofday=_pick(cfg.time_of_day, TIMES_OF_DAY, u["time_of_day"]),
        weather=_pick(cfg.weather, WEATHERS, u["weather"]),
        scene=scene,
        tunnel=tunnel,
        roadworks=u["roadworks"] < cfg.roadworks_prob,
        stop=stop,
    )


def _pick(probs: dict[str, float], order: tuple[str, ...], u: float) -> str:
    p = np.array([probs[k] for k in order], dtype=float)
    cdf = np.cumsum(p / p.sum())
    return order[min(int(np.searchsorted(cdf, u, side="right")), len(order) - 1)]


# ------------------------------------------------------------------------- world layout
@dataclass
class _Track:
    """One moving or static thing: ``s(t) = s0 + offset[t]`` where offset is shared by
    all members of a lane (a rigid train) or ``v * t`` for a pedestrian."""

    obj: ObjectState
    s0: float
    lane: int  # index into the drive's displacement table
    vx: float = 0.0


@dataclass
class _StaticProp:
    prop: PropState
    s: float


@dataclass
class _DriveWorld:
    plan: DrivePlan
    layout: Layout
    ego_s: np.ndarray
    curvature: np.ndarray
    pitch: np.ndarray
    displacement: list[np.ndarray]
    tracks: list[_Track]
    props: list[_StaticProp]
    ribbons: list[Ribbon]  # z fields hold s (world) positions
    tunnel: tuple[float, float] | None
    works: tuple[float, float] | None
    fog_visibility: float
    look: DriveLook
    settings: RenderSettings
    lit_share: float


def simulate_drive(
    cfg: WorldConfig, seed: int, index: int, n_frames: int | None = None
) -> list[FrameState]:
    """All frames of one drive, as pure data (no pixels)."""
    plan = plan_drive(cfg, seed, index, n_frames)
    world = _build_world(cfg, plan, np.random.default_rng([seed, index, _STREAM_WORLD]))
    return [_frame_state(world, cfg, i) for i in range(plan.n_frames)]


def _build_world(cfg: WorldConfig, plan: DrivePlan, rng: np.random.Generator) -> _DriveWorld:
    layout = LAYOUTS[plan.scene]
    n = plan.n_frames
    dt = cfg.frame_interval_ms / 1000.0
    speed = _ego_speed(cfg, plan, rng)
    ego_s = np.concatenate([[0.0], np.cumsum(speed[:-1] * dt)])
    t = np.arange(n) * dt
    k0 = rng.uniform(-1, 1) * cfg.max_curvature
    k1 = rng.uniform(-0.5, 0.5) * cfg.max_curvature
    curvature = np.clip(k0 + k1 * np.sin(t / rng.uniform(4, 12) + rng.uniform(0, 6.3)), -1, 1)
    pitch = rng.normal(0, cfg.pitch_jitter_px, n)

    tunnel = _plan_tunnel(cfg, plan, ego_s, rng) if plan.tunnel else None
    works = _plan_works(cfg, plan, ego_s, rng) if plan.roadworks else None
    traffic = float(rng.lognormal(0.0, cfg.traffic_sigma))
    if rng.random() < cfg.quiet_prob:  # empty roads exist: without them "far" is always true
        traffic *= cfg.quiet_factor
    if plan.timeofday == "night":
        traffic *= cfg.night_traffic
    lit_share = {"day": 0.0, "dusk": 0.6, "night": 1.0}[plan.timeofday]

    # lane displacement tables: each lane moves as one train
    lanes = list(layout.lanes)
    if plan.scene == "highway":
        factors = [rng.uniform(1.05, 1.25), 1.0, rng.uniform(0.8, 0.95)] + [
            rng.uniform(0.85, 1.15) for _ in lanes[3:]
        ]
    else:
        factors = [rng.uniform(1.0, 1.05) if x == 0 else rng.uniform(0.8, 1.2) for x, _ in lanes]
    base = cfg.ego_speed_mps[plan.scene]
    displacement = []
    for (_x, direction), f in zip(lanes, factors, strict=True):
        v = speed * f if direction > 0 else np.full(n, -base * f)
        displacement.append(np.concatenate([[0.0], np.cumsum(v[:-1] * dt)]))
    displacement.append(np.zeros(n))  # static things
    static_lane = len(displacement) - 1

    s_lo, s_hi = ego_s[0] - BEHIND_M, ego_s[-1] + cfg.view_far_m
    look = _look(plan, rng)
    world = _DriveWorld(
        plan=plan,
        layout=layout,
        ego_s=ego_s,
        curvature=curvature,
        pitch=pitch,
        displacement=displacement,
        tracks=[],
        props=[],
        ribbons=[],
        tunnel=tunnel,
        works=works,
        fog_visibility=float(rng.uniform(*cfg.fog_visibility_m)),
        look=look,
        settings=RenderSettings.from_config(cfg),
        lit_share=lit_share,
    )
    ids = _Ids()
    density = cfg.density[plan.scene]
    mix = cfg.vehicle_mix[plan.scene]
    for li, ((x, direction), _f) in enumerate(zip(lanes, factors, strict=True)):
        role = "lead" if direction > 0 else "oncoming"
        rate = density[role] * traffic / 100.0
        d = displacement[li]
        lo = float(np.min(ego_s - d)) - BEHIND_M
        hi = float(np.max(ego_s - d)) + cfg.view_far_m
        if x == 0.0:
            lo = max(lo, ego_s[0] - d[0] + 9.0)  # never spawn behind or inside the ego car
        for s0 in _renewal(rng, lo, hi, rate, min_gap=9.0):
            cat = _vehicle_class(rng, mix, lane_x=x, scene=plan.scene)
            obj = _vehicle(rng, ids.next(), cat, x + rng.uniform(-0.25, 0.25), direction)
            obj = replace(obj, lit=bool(rng.random() < lit_share))
            world.tracks.append(_Track(obj, s0, li))
    for side_x in layout.parking:
        for s0 in _renewal(rng, s_lo, s_hi, density["parked"] * traffic / 100.0, min_gap=5.8):
            if _inside(s0, works, 6.0) or _inside(s0, tunnel, 40.0):
                continue
            cat = _vehicle_class(rng, mix, lane_x=None, scene=plan.scene)
            if cat == "truck" and rng.random() < 0.7:
                cat = "car"
            facing = 1 if side_x > 0 else -1
            obj = _vehicle(rng, ids.next(), cat, side_x + rng.uniform(-0.15, 0.15), facing)
            world.tracks.append(_Track(obj, s0, static_lane))
    _add_pedestrians(world, cfg, rng, ids, density["pedestrian"] * traffic / 100.0)
    _add_cyclists(world, cfg, rng, ids, density["cyclist"] * traffic / 100.0)
    if works:
        _add_works(world, cfg, rng, ids)
    _add_scenery(world, rng, s_lo - 20, s_hi + 40)
    return world


class _Ids:
    """Track ids of one drive, in creation order (deterministic)."""

    def __init__(self) -> None:
        self._n = 0

    def next(self) -> int:
        self._n += 1
        return self._n


def _ego_speed(cfg: WorldConfig, plan: DrivePlan, rng: np.random.Generator) -> np.ndarray:
    n = plan.n_frames
    base = cfg.ego_speed_mps[plan.scene] * rng.uniform(1 - cfg.speed_jitter, 1 + cfg.speed_jitter)
    t = np.arange(n)
    m = 1.0 + 0.08 * np.sin(t / rng.uniform(5, 15) + rng.uniform(0, 6.3))
    if plan.stop and n >= 8:
        a = int(rng.integers(0, max(1, n - 6)))
        b = a + int(rng.integers(4, max(5, n // 2)))
        ramp = np.clip(np.minimum(t - a, b - t) / 4.0, 0.0, 1.0)
        m = m * (1.0 - ramp)
    return base * m


def _plan_tunnel(cfg: WorldConfig, plan: DrivePlan, ego_s: np.ndarray, rng) -> tuple[float, float]:
    n = plan.n_frames
    length = int(rng.integers(cfg.tunnel_frames[0], cfg.tunnel_frames[1] + 1))
    a = int(rng.integers(0, max(1, n - 4)))
    step = ego_s[1] - ego_s[0] if n > 1 else 5.0
    s0 = ego_s[a] + rng.uniform(0.2, 0.8) * step
    return float(s0), float(s0 + length * step)


def _plan_works(cfg: WorldConfig, plan: DrivePlan, ego_s: np.ndarray, rng) -> tuple[float, float]:
    a = int(rng.integers(0, max(1, plan.n_frames - 4)))
    s0 = float(ego_s[a] + cfg.roadworks_ahead_m)
    return s0, s0 + float(rng.uniform(*cfg.roadworks_length_m))


def _inside(s: float, span: tuple[float, float] | None, margin: float) -> bool:
    return span is not None and span[0] - margin <= s <= span[1] + margin


def _renewal(
    rng: np.random.Generator, lo: float, hi: float, rate: float, min_gap: float
) -> list[float]:
    """Positions with mean density ``rate`` per metre and at least ``min_gap`` apart."""
    if rate <= 0 or hi <= lo:
        return []
    mean_gap = max(1.0 / rate, min_gap * 1.15)
    out, s = [], lo + rng.uniform(0, mean_gap)
    while s < hi:
        out.append(float(s))
        s += min_gap + rng.exponential(mean_gap - min_gap)
    return out


def _vehicle_class(
    rng: np.random.Generator, mix: dict[str, float], lane_x: float | None, scene: str
) -> str:
    p_truck = mix["truck"]
    if scene == "highway" and lane_x is not None:
        p_truck *= {3.6: 2.0, -3.6: 0.2}.get(lane_x, 1.0)  # trucks keep right
    u = rng.random()
    if u < mix["golf_cart"]:
        return "golf_cart"
    return "truck" if u < mix["golf_cart"] + p_truck else "car"


def _vehicle(rng: np.random.Generator, track: int, cat: str, x: float, direction: int):
    facing = "back" if direction > 0 else "front"
    if cat == "truck":
        w, h = rng.uniform(2.35, 2.55), rng.uniform(2.9, 3.9)
        color = TRUCK_COLORS[rng.integers(len(TRUCK_COLORS))]
    elif cat == "golf_cart":
        w, h = rng.uniform(1.15, 1.3), rng.uniform(1.75, 1.9)
        color = CART_COLORS[rng.integers(len(CART_COLORS))]
    else:
        suv = rng.random() < 0.3
        w = rng.uniform(1.75, 1.98) if suv else rng.uniform(1.65, 1.85)
        h = rng.uniform(1.62, 1.8) if suv else rng.uniform(1.38, 1.55)
        color = CAR_COLORS[rng.integers(len(CAR_COLORS))]
    return ObjectState(
        track=track,
        category=cat,
        x=float(x),
        z=0.0,
        width=float(w),
        height=float(h),
        color=_jitter(rng, color, 12),
        facing=facing,
        variant=int(rng.integers(0, 1 << 16)),
    )


def _jitter(rng: np.random.Generator, color: Color, amount: int) -> Color:
    c = np.clip(np.asarray(color) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return (int(c[0]), int(c[1]), int(c[2]))


def _person(rng: np.random.Generator, track: int, cat: str, x: float, facing: str):
    h = rng.uniform(1.55, 1.92) if rng.random() > 0.08 else rng.uniform(1.05, 1.35)
    w = 0.32 * h if cat == "pedestrian" else 0.55 * h
    if cat == "cyclist":
        h = rng.uniform(1.65, 1.85)
        w = rng.uniform(0.75, 0.95)
    return ObjectState(
        track=track,
        category=cat,
        x=float(x),
        z=0.0,
        width=float(w),
        height=float(h),
        color=SHIRT_COLORS[rng.integers(len(SHIRT_COLORS))],
        facing=facing,
        variant=int(rng.integers(0, 1 << 16)),
        phase=float(rng.uniform(0, 2 * math.pi)),
    )


def _add_pedestrians(world: _DriveWorld, cfg: WorldConfig, rng, ids: _Ids, rate: float) -> None:
    if rate <= 0:
        return
    n = world.plan.n_frames
    dt = cfg.frame_interval_ms / 1000.0
    duration = n * dt
    for lo_x, hi_x in world.layout.sidewalks:
        span_lo = world.ego_s[0] - BEHIND_M - cfg.walk_speed_mps * 1.5 * duration
        span_hi = world.ego_s[-1] + cfg.view_far_m + cfg.walk_speed_mps * 1.5 * duration
        count = rng.poisson(rate * (span_hi - span_lo))
        for s0 in np.sort(rng.uniform(span_lo, span_hi, count)):
            if _inside(s0, world.tunnel, 30.0):
                continue
            standing = rng.random() < 0.3
            v = (
                0.0
                if standing
                else rng.choice([-1, 1]) * cfg.walk_speed_mps * rng.uniform(0.7, 1.3)
            )
            lane = len(world.displacement)
            world.displacement.append(np.arange(n) * dt * v)
            facing = "back" if v >= 0 else "front"
            obj = _person(
                rng, ids.next(), "pedestrian", rng.uniform(lo_x + 0.4, hi_x - 0.4), facing
            )
            if standing:
                obj = replace(obj, phase=-1.0)
            world.tracks.append(_Track(obj, float(s0), lane))


def _add_cyclists(world: _DriveWorld, cfg: WorldConfig, rng, ids: _Ids, rate: float) -> None:
    if rate <= 0:
        return
    n = world.plan.n_frames
    dt = cfg.frame_interval_ms / 1000.0
    for x, direction in world.layout.cyclist_lanes:
        v = direction * cfg.cyclist_speed_mps * rng.uniform(0.8, 1.2)
        d = np.arange(n) * dt * v
        lane = len(world.displacement)
        world.displacement.append(d)
        lo = float(np.min(world.ego_s - d)) - BEHIND_M
        hi = float(np.max(world.ego_s - d)) + cfg.view_far_m
        for s0 in _renewal(rng, lo, hi, rate, min_gap=6.0):
            if _inside(s0 + d[0], world.tunnel, 60.0):
                continue
            facing = "back" if direction > 0 else "front"
            obj = _person(rng, ids.next(), "cyclist", x + rng.uniform(-0.3, 0.3), facing)
            obj = replace(obj, lit=bool(rng.random() < world.lit_share * 0.5))
            world.tracks.append(_Track(obj, s0, lane))


def _add_works(world: _DriveWorld, cfg: WorldConfig, rng, ids: _Ids) -> None:
    """Cones along the outer lane line, a striped barrier and a warning sign before it."""
    s0, s1 = world.works
    x = world.layout.works_line
    static_lane = _static_lane(world)
    for s in np.arange(s0, s1, cfg.cone_spacing_m):
        h = rng.uniform(0.5, 0.75)
        cone = ObjectState(
            track=ids.next(),
            category="traffic_cone",
            x=float(x + rng.uniform(-0.15, 0.15)),
            z=0.0,
            width=0.45 * h,
            height=float(h),
            color=(240, int(rng.integers(85, 120)), 20),
            variant=int(rng.integers(0, 1 << 16)),
        )
        world.tracks.append(_Track(cone, float(s), static_lane))
    world.props.append(_StaticProp(PropState("barrier", x + 1.3, 0, 2.0, 1.1), s0 + 1.5))
    world.props.append(_StaticProp(PropState("works_sign", x + 2.2, 0, 0.9, 2.1), s0 - 25.0))
    world.ribbons.append(
        Ribbon("ground", x + 0.2, x + 2.6, 0, 0, s0, s1, (120, 105, 85), variant=1)
    )


def _static_lane(world: _DriveWorld) -> int:
    return len(world.layout.lanes)


def _look(plan: DrivePlan, rng: np.random.Generator) -> DriveLook:
    snow = plan.weather == "snow"
    road = int(rng.integers(78, 108))
    if plan.weather == "rain":
        road -= 22
    grass = _jitter(rng, (95, 120, 70), 18)
    if snow:
        grass = _jitter(rng, (222, 226, 232), 6)
    return DriveLook(
        road=(road, road, road + 4) if not snow else (150, 152, 158),
        ground=grass,
        sidewalk=_jitter(rng, (150, 148, 142), 12) if not snow else (225, 228, 233),
        marking=(225, 225, 215) if not snow else (200, 200, 200),
        hills=_jitter(rng, (90, 110, 95), 15) if not snow else (205, 210, 220),
        sky_shift=float(rng.uniform(-1, 1)),
        exposure=float(rng.uniform(0.92, 1.08)),
    )


# ------------------------------------------------------------------------- scenery
def _add_scenery(world: _DriveWorld, rng: np.random.Generator, lo: float, hi: float) -> None:
    scene = world.plan.scene
    if scene == "city":
        _buildings(world, rng, lo, hi, x_right=10.6, x_left=-13.8)
        _point_props(world, rng, "lamp", (7.6, -10.9), lo, hi, spacing=(26, 34))
        _point_props(world, rng, "tree", (8.4, -11.6), lo, hi, spacing=(15, 45), p=0.45)
        _point_props(world, rng, "sign", (7.5, -10.8), lo, hi, spacing=(30, 80), p=0.6)
    elif scene == "residential":
        _houses(world, rng, lo, hi)
        _point_props(world, rng, "tree", (6.5, -9.5), lo, hi, spacing=(8, 20), p=0.8)
        _point_props(world, rng, "lamp", (3.2, -6.0), lo, hi, spacing=(35, 50), p=0.8)
        _point_props(world, rng, "bush", (5.6, -8.6), lo, hi, spacing=(5, 15), p=0.5)
    else:
        for x in (7.8, -6.9, -19.8):
            world.ribbons.append(Ribbon("rail", x, x, 0.45, 0.8, lo, hi, (170, 172, 175)))
        _point_props(world, rng, "pole", (-7.4,), lo, hi, spacing=(45, 55))
        _point_props(world, rng, "tree", (14.0, -26.0), lo, hi, spacing=(6, 25), p=0.8, spread=9)
        _point_props(world, rng, "bush", (10.0, -22.5), lo, hi, spacing=(6, 20), p=0.6, spread=2)
        _point_props(world, rng, "gantry", (0.0,), lo, hi, spacing=(250, 500), p=0.8)


def _spaced(rng, lo: float, hi: float, spacing: tuple[float, float]) -> list[float]:
    out, s = [], lo + rng.uniform(0, spacing[1])
    while s < hi:
        out.append(float(s))
        s += rng.uniform(*spacing)
    return out


def _point_props(world, rng, kind, xs, lo, hi, spacing, p=1.0, spread=0.0) -> None:
    sizes = {
        "lamp": (1.6, (7.0, 8.5)),
        "tree": (3.5, (5.0, 10.0)),
        "sign": (0.8, (2.4, 3.0)),
        "bush": (2.0, (0.8, 1.6)),
        "pole": (1.2, (9.0, 11.0)),
        "gantry": (18.0, (6.5, 7.5)),
    }
    width, (hlo, hhi) = sizes[kind]
    for x in xs:
        for s in _spaced(rng, lo, hi, spacing):
            if rng.random() > p or _inside(s, world.tunnel, 15.0):
                continue
            h = rng.uniform(hlo, hhi)
            w = width * (h / hhi) if kind == "tree" else width
            side = 1.0 if x >= 0 else -1.0
            xx = x + side * rng.uniform(0, spread)
            color = _jitter(rng, (60, 100, 45), 20) if kind in ("tree", "bush") else (70, 72, 76)
            if kind == "tree" and world.plan.weather == "snow":
                color = _jitter(rng, (150, 160, 150), 15)
            prop = PropState(
                kind, float(xx), 0.0, float(w), float(h), color, int(rng.integers(0, 1 << 16))
            )
            world.props.append(_StaticProp(prop, s))


def _buildings(world, rng, lo: float, hi: float, x_right: float, x_left: float) -> None:
    for x in (x_right, x_left):
        s = lo
        while s < hi:
            length = rng.uniform(8, 30)
            color = _jitter(rng, BUILDING_COLORS[rng.integers(len(BUILDING_COLORS))], 10)
            h = rng.uniform(7, 26)
            xx = x + rng.uniform(0, 1.2) * (1 if x > 0 else -1)
            if not _inside(s, world.tunnel, 10.0) and not _inside(s + length, world.tunnel, 10.0):
                world.ribbons.append(
                    Ribbon(
                        "building", xx, xx, 0, h, s, s + length, color, int(rng.integers(1 << 16))
                    )
                )
            s += length


def _houses(world, rng, lo: float, hi: float) -> None:
    for side in (1, -1):
        s = lo + rng.uniform(0, 10)
        base = 11.0 if side > 0 else 14.5
        while s < hi:
            length = rng.uniform(8, 13)
            x = side * (base + rng.uniform(0, 3))
            h = rng.uniform(2.8, 6.0)
            color = _jitter(rng, HOUSE_COLORS[rng.integers(len(HOUSE_COLORS))], 10)
            world.ribbons.append(
                Ribbon(
                    "house",
                    x,
                    x + side * 8.0,
                    0,
                    h,
                    s,
                    s + length,
                    color,
                    int(rng.integers(1 << 16)),
                )
            )
            fence_color = (110, 80, 55) if rng.random() < 0.5 else (60, 95, 50)
            fx = side * (base - 3.5)
            world.ribbons.append(
                Ribbon("fence", fx, fx, 0, 1.0, s - 2, s + length + 2, fence_color)
            )
            s += length + rng.uniform(4, 12)


# ------------------------------------------------------------------------- frames
def _frame_state(world: _DriveWorld, cfg: WorldConfig, i: int) -> FrameState:
    plan, layout = world.plan, world.layout
    ego = float(world.ego_s[i])
    far = cfg.view_far_m
    tunnel = None
    scene = plan.scene
    if world.tunnel is not None:
        z0, z1 = world.tunnel[0] - ego, world.tunnel[1] - ego
        if z1 > NEAR_M and z0 < far + 40:
            tunnel = TunnelState(z0, z1, *layout.tunnel_walls)
        if z0 <= 0 and z1 > NEAR_M:  # inside, as drawn
            scene = "tunnel"

    objects = []
    for tr in world.tracks:
        z = tr.s0 + float(world.displacement[tr.lane][i]) - ego
        if not NEAR_M < z < far or (tunnel is not None and _hidden_by_tunnel(tr.obj.x, z, tunnel)):
            continue
        phase = tr.obj.phase
        if phase >= 0 and tr.obj.category in ("pedestrian", "cyclist"):
            phase = (phase + i * 2.2) % (2 * math.pi)
        objects.append(replace(tr.obj, z=float(z), phase=phase))
    props = []
    for p in world.props:
        z = p.s - ego
        if NEAR_M * 0.5 < z < far + 60 and not (tunnel and _hidden_by_tunnel(p.prop.x, z, tunnel)):
            props.append(replace(p.prop, z=float(z)))
    ribbons = []
    for r in world.ribbons:
        z0, z1 = r.z0 - ego, r.z1 - ego
        if z1 > NEAR_M and z0 < far + 60:
            ribbons.append(replace(r, z0=float(z0), z1=float(z1)))
    ribbons += _ground_strips(world)
    road = [layout.road]
    lines = list(layout.lines)
    if plan.scene == "highway":
        road.append(HIGHWAY_ONCOMING_ROAD)
        lines += HIGHWAY_ONCOMING_LINES
    works = world.works is not None and (
        world.works[0] - ego < cfg.roadworks_ahead_m and world.works[1] - ego > 0
    )
    return FrameState(
        settings=world.settings,
        drive=plan.name,
        frame_index=i,
        timestamp_ms=i * cfg.frame_interval_ms,
        timeofday=plan.timeofday,
        weather=plan.weather,
        scene=scene,
        base_scene=plan.scene,
        roadworks=bool(works),
        ego_s=ego,
        curvature=float(world.curvature[i]),
        pitch_px=float(world.pitch[i]),
        fog_visibility_m=world.fog_visibility,
        objects=tuple(objects),
        props=tuple(props),
        ribbons=tuple(ribbons),
        lines=tuple(lines),
        road=tuple(road),
        tunnel=tunnel,
        look=world.look,
    )


def _hidden_by_tunnel(x: float, z: float, tunnel: TunnelState) -> bool:
    """Inside the tunnel span only what lies between its walls can be seen; beyond the exit
    everything is hidden by the glare of daylight (or darkness) at the mouth."""
    if z > tunnel.z1:
        return tunnel.z0 < 0  # seen from inside, the exit hides what is beyond
    if z > tunnel.z0 - 2:
        return not tunnel.x_left + 0.3 < x < tunnel.x_right - 0.3
    return False


def _ground_strips(world: _DriveWorld) -> list[Ribbon]:
    look = world.look
    out = []
    for lo, hi in world.layout.sidewalks:
        out.append(Ribbon("ground", lo, hi, 0, 0, NEAR_M, 400.0, look.sidewalk))
    return out
