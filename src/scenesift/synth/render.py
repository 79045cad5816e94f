"""Pixels and boxes of one frame: a pinhole camera, painter's algorithm, light and weather.

Every opaque shape is drawn three times, into the colour image, an object-id image and a
depth image, far to near. The id image makes the labels honest: a box is the extent of the
pixels an object still owns after nearer things were drawn over it, so occlusion and
truncation come from the picture, not from geometry guesses. The depth image drives fog and
headlight fall-off, which is what makes far objects at night or in fog genuinely hard.
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from scenesift.synth.shapes import Prim, object_prims, prop_prims
from scenesift.synth.world import (
    BDD_SCENE,
    BDD_TIMEOFDAY,
    BDD_WEATHER,
    NEAR_M,
    PARTICIPANTS,
    FrameState,
    ObjectState,
    PropState,
    Ribbon,
)

SKY_DEPTH = 1.0e4
HORIZON_DEPTH = 600.0
FAR_DRAW_M = 220.0
#: Vertical ribbons are cut into pieces whose far end is this factor farther than the near
#: end: enough to follow road curvature and give fog a per-piece depth.
CHUNK_RATIO = 1.5
MAX_IDS = 254
SHADOW_ALPHA = {"day": 110, "dusk": 70}
DASH = {"city": (3.0, 9.0), "residential": (2.5, 7.5), "highway": (6.0, 18.0)}
LINE_WIDTH_M = 0.13
TUNNEL_LAMP_SPACING_M = 6.0
#: Per-channel light colours.
SODIUM = np.array([1.0, 0.8, 0.52], np.float32)
DUSK_TINT = np.array([1.0, 0.84, 0.7], np.float32)


@dataclass(frozen=True)
class Label:
    """One visible object: ``box`` is the pixel extent it owns (x1, y1, x2, y2; x2 exclusive)."""

    track: int
    category: str
    box: tuple[float, float, float, float]
    occlusion: float
    truncation: float
    distance: float


# ------------------------------------------------------------------------- canvas
class _Canvas:
    """The three (four at night) buffers and the camera that projects into them."""

    def __init__(self, state: FrameState, emissive: bool) -> None:
        s = state.settings
        self.w, self.h = s.width, s.height
        self.f = s.focal_px
        self.cx = s.width / 2.0
        self.yh = s.horizon_y + state.pitch_px
        self.hc = s.camera_height_m
        self.k = state.curvature
        self.rgb = Image.fromarray(_background(state, self.yh))
        self.draw = ImageDraw.Draw(self.rgb)
        self.shade = ImageDraw.Draw(self.rgb, "RGBA")
        self.ids = Image.new("L", (self.w, self.h), 0)
        self.draw_ids = ImageDraw.Draw(self.ids)
        self.depth = Image.fromarray(_ground_depth(self.w, self.h, self.yh, self.f, self.hc))
        self.draw_depth = ImageDraw.Draw(self.depth)
        self.emi = Image.new("RGB", (self.w, self.h)) if emissive else None
        self.draw_emi = ImageDraw.Draw(self.emi) if self.emi is not None else None
        # Depth only matters for fog, haze and light fall-off; ids only once an object is in.
        self.need_depth = emissive or state.weather != "clear"
        self.ids_dirty = False
        self.shadow_alpha = SHADOW_ALPHA.get(state.timeofday, 0) if state.scene != "tunnel" else 0
        if state.weather in ("fog", "rain", "snow"):
            self.shadow_alpha //= 3

    def pt(self, x: float, y: float, z: float) -> tuple[float, float]:
        """Scalar projection: shapes have few vertices, where numpy's overhead dominates."""
        z = max(z, 1e-3)
        return (
            self.cx + self.f * (x + 0.5 * self.k * z * z) / z,
            self.yh + self.f * (self.hc - y) / z,
        )

    def box_of(self, x: float, z: float, width: float, height: float) -> tuple[float, ...]:
        """Full (unclipped) pixel box of something standing on the road at (x, z)."""
        u, vb = self.pt(x, 0.0, z)
        half = 0.5 * self.f * width / z
        return (u - half, vb - self.f * height / z, u + half, vb)

    # one opaque shape into every buffer
    def surface(self, pts: list[float], color, depth: float, emit=None) -> None:
        if len(pts) < 6:
            return
        self.draw.polygon(pts, fill=color)
        if self.ids_dirty:
            self.draw_ids.polygon(pts, fill=0)
        if self.need_depth:
            self.draw_depth.polygon(pts, fill=float(depth))
        if self.draw_emi is not None:
            self.draw_emi.polygon(pts, fill=emit or (0, 0, 0))

    def paint(self, prims: list[Prim], depth: float, obj_id: int = 0) -> None:
        for p in prims:
            if p.kind == "shadow":
                if self.shadow_alpha:
                    self.shade.ellipse(p.coords, fill=(0, 0, 0, self.shadow_alpha))
                continue
            _shape(self.draw, p, p.fill, solid=False)
            if p.sil:
                if obj_id or self.ids_dirty:
                    _shape(self.draw_ids, p, obj_id, solid=True)
                if self.need_depth:
                    _shape(self.draw_depth, p, float(depth), solid=True)
                if self.draw_emi is not None:
                    _shape(self.draw_emi, p, (0, 0, 0), solid=True)
            if p.emit is not None and self.draw_emi is not None:
                _shape(self.draw_emi, p, p.emit, solid=True)


def _shape(draw: ImageDraw.ImageDraw, p: Prim, fill, solid: bool) -> None:
    kind = p.kind
    if kind == "rect":
        draw.rectangle(p.coords, fill=fill)
    elif kind == "poly":
        draw.polygon(p.coords, fill=fill)
    elif kind == "ellipse" or (kind == "ring" and solid):
        draw.ellipse(p.coords, fill=fill)
    elif kind == "ring":
        draw.ellipse(p.coords, outline=fill, width=p.width)
    elif kind == "line":
        draw.line(p.coords, fill=fill, width=p.width)


# ------------------------------------------------------------------------- background
def _sky_colors(state: FrameState) -> tuple[np.ndarray, np.ndarray]:
    tod, weather = state.timeofday, state.weather
    if tod == "night":
        top, hor = (4, 6, 16), (22, 22, 34) if state.base_scene != "city" else (45, 38, 40)
    elif tod == "dusk":
        top, hor = (55, 60, 110), (245, 150, 80)
    elif weather in ("rain", "snow"):
        top, hor = (120, 124, 130), (175, 178, 182)
    else:
        top, hor = (70, 125, 200), (185, 205, 230)
    if weather == "fog":
        g = 185 if tod == "day" else 120 if tod == "dusk" else 28
        top = hor = (g, g, g + 4)
    shift = 1.0 + 0.06 * state.look.sky_shift
    return np.array(top, np.float32) * shift, np.array(hor, np.float32) * shift


def _background(state: FrameState, yh: float) -> np.ndarray:
    """Sky gradient above the horizon, the ground colour below it."""
    h, w = state.settings.height, state.settings.width
    top, hor = _sky_colors(state)
    rows = np.arange(h, dtype=np.float32)[:, None]
    t = np.clip(rows / max(yh, 1.0), 0, 1) ** 1.5
    sky = top * (1 - t) + hor * t
    ground = np.array(state.look.ground, np.float32)
    col = np.where(rows < yh, sky, ground)
    return np.clip(np.broadcast_to(col[:, None, :], (h, w, 3)), 0, 255).astype(np.uint8)


def _ground_depth(w: int, h: int, yh: float, f: float, hc: float) -> np.ndarray:
    rows = np.arange(h, dtype=np.float32) + 0.5
    below = rows - yh
    d = np.where(below > 0.5, f * hc / np.maximum(below, 1e-3), SKY_DEPTH)
    return np.ascontiguousarray(np.broadcast_to(d[:, None], (h, w)), dtype=np.float32)


def _z_samples(z0: float, z1: float) -> list[float]:
    z0, z1 = max(z0, NEAR_M), min(z1, FAR_DRAW_M)
    if z1 <= z0:
        return []
    n = max(1, math.ceil(math.log(z1 / z0) / _LOG_CHUNK))
    r = (z1 / z0) ** (1.0 / n)
    return [z0 * r**i for i in range(n + 1)]


_LOG_CHUNK = math.log(CHUNK_RATIO)


def _ground_strip(cv: _Canvas, x0: float, x1: float, z0: float, z1: float) -> list[float]:
    zs = _z_samples(z0, z1)
    if len(zs) < 2:
        return []
    return _strip(cv, [(x0, 0.0, z) for z in zs], [(x1, 0.0, z) for z in zs])


def _strip(cv: _Canvas, side_a: list, side_b: list) -> list[float]:
    """Polygon along side_a forward then side_b backward (3-D points)."""
    out: list[float] = []
    for x, y, z in side_a + side_b[::-1]:
        out.extend(cv.pt(x, y, z))
    return out


def _draw_horizon(cv: _Canvas, state: FrameState) -> None:
    """Distant skyline or hills: a fixed silhouette per drive, hidden by fog and dark at night."""
    rng = np.random.default_rng(zlib.crc32(state.drive.encode()))
    w = cv.w
    if state.base_scene == "city":
        pts = [0.0, cv.yh]
        x = -5.0
        color = (120, 125, 135)
        while x < w + 5:
            bw, bh = rng.uniform(8, 30) * w / 320, rng.uniform(3, 22) * cv.h / 192
            pts += [x, cv.yh - bh, x + bw, cv.yh - bh]
            x += bw
        pts += [float(w), cv.yh]
    else:
        xs = np.linspace(-2, w + 2, 24)
        hs = (4 + 6 * np.sin(xs / w * rng.uniform(3, 8) + rng.uniform(0, 6)) ** 2) * cv.h / 192
        hs += rng.uniform(0, 2, xs.size)
        pts = [float(xs[0]), cv.yh]
        for x, hh in zip(xs, hs, strict=True):
            pts += [float(x), float(cv.yh - hh)]
        pts += [float(xs[-1]), cv.yh]
        color = state.look.hills
    if state.weather in ("rain", "snow"):
        color = tuple(int(0.5 * c + 0.5 * 160) for c in color)
    cv.surface(pts, color, HORIZON_DEPTH)


def _draw_road(cv: _Canvas, state: FrameState) -> None:
    look = state.look
    for r in state.ribbons:
        if r.kind == "ground" and r.variant == 0:
            cv.draw.polygon(_ground_strip(cv, r.x0, r.x1, r.z0, r.z1), fill=r.color)
    for x0, x1 in state.road:
        pts = _ground_strip(cv, x0, x1, NEAR_M, FAR_DRAW_M)
        if pts:
            cv.draw.polygon(pts, fill=look.road)
    for r in state.ribbons:
        if r.kind == "ground" and r.variant == 1:
            cv.draw.polygon(_ground_strip(cv, r.x0, r.x1, r.z0, r.z1), fill=r.color)
    dash, period = DASH.get(state.base_scene, DASH["city"])
    hw = LINE_WIDTH_M / 2
    for x, style in state.lines:
        color = look.marking
        if style == "dash":
            first = math.floor((state.ego_s + NEAR_M) / period) * period
            for s in np.arange(first, state.ego_s + 90.0, period):
                z0, z1 = s - state.ego_s, s - state.ego_s + dash
                if z1 > NEAR_M:
                    pts = _ground_strip(cv, x - hw, x + hw, max(z0, NEAR_M), z1)
                    if pts:
                        cv.draw.polygon(pts, fill=color)
        else:
            offsets = (-0.12, 0.12) if style == "center" else (0.0,)
            for off in offsets:
                pts = _ground_strip(cv, x + off - hw, x + off + hw, NEAR_M, 120.0)
                if pts:
                    cv.draw.polygon(pts, fill=color)


def _draw_tunnel_mouths(cv: _Canvas, state: FrameState) -> None:
    t = state.tunnel
    if t is None:
        return
    if t.z0 > NEAR_M:  # approaching: hillside, portal face and the dark opening
        z = t.z0
        hill = _quad(cv, [(t.x_left - 70, 0), (t.x_left - 25, t.height + 18),
                          (t.x_right + 25, t.height + 18), (t.x_right + 70, 0)], z + 4)  # fmt: skip
        cv.surface(hill, (70, 85, 60) if state.weather != "snow" else (215, 220, 228), z + 4)
        face = _quad(cv, [(t.x_left - 3, 0), (t.x_left - 3, t.height + 3),
                          (t.x_right + 3, t.height + 3), (t.x_right + 3, 0)], z)  # fmt: skip
        cv.surface(face, (150, 146, 138), z)
        opening = _quad(cv, [(t.x_left, 0), (t.x_left, t.height), (t.x_right, t.height),
                             (t.x_right, 0)], z + 0.5)  # fmt: skip
        cv.surface(opening, (40, 34, 26), z + 30)
    if t.z1 < FAR_DRAW_M and t.z1 > NEAR_M:  # the exit, blown out by daylight
        bright = (250, 250, 246) if state.timeofday == "day" else (
            (235, 190, 150) if state.timeofday == "dusk" else (18, 18, 26))  # fmt: skip
        exit_ = _quad(cv, [(t.x_left, 0), (t.x_left, t.height), (t.x_right, t.height),
                           (t.x_right, 0)], t.z1)  # fmt: skip
        cv.surface(exit_, bright, SKY_DEPTH)


def _quad(cv: _Canvas, xy: list[tuple[float, float]], z: float) -> list[float]:
    out: list[float] = []
    for x, y in xy:
        out.extend(cv.pt(x, y, z))
    return out


# ------------------------------------------------------------------------- ribbons
def _wall_pts(cv: _Canvas, x: float, y0: float, y1: float, zs: list[float]) -> list[float]:
    return _strip(cv, [(x, y1, z) for z in zs], [(x, y0, z) for z in zs])


def _wall(cv: _Canvas, x: float, y0: float, y1: float, zs: list[float], color) -> None:
    """A vertical strip: one colour polygon, per-piece depth for fog."""
    cv.draw.polygon(_wall_pts(cv, x, y0, y1, zs), fill=color)
    if not (cv.need_depth or cv.ids_dirty or cv.draw_emi is not None):
        return
    for a, b in itertools.pairwise(zs):
        pts = _wall_pts(cv, x, y0, y1, [a, b])
        if cv.ids_dirty:
            cv.draw_ids.polygon(pts, fill=0)
        if cv.need_depth:
            cv.draw_depth.polygon(pts, fill=float(0.5 * (a + b)))
        if cv.draw_emi is not None:
            cv.draw_emi.polygon(pts, fill=(0, 0, 0))


def _paint_ribbon(cv: _Canvas, r: Ribbon, state: FrameState, z_clip: float) -> None:
    zs = _z_samples(r.z0, min(r.z1, z_clip))
    if len(zs) < 2:
        return
    if r.kind == "building":
        _building(cv, r, zs, state)
    elif r.kind == "house":
        _house(cv, r, zs, state)
    elif r.kind == "rail":
        _wall(cv, r.x0, r.y0, r.y1, zs, r.color)
        dark = (95, 95, 100)
        for z in np.arange(math.ceil((state.ego_s + zs[0]) / 4.0) * 4.0 - state.ego_s, 35.0, 4.0):
            pts = [*cv.pt(r.x0, 0.0, z), *cv.pt(r.x0, r.y1, z)]
            cv.draw.line(pts, fill=dark, width=max(1, int(cv.f * 0.12 / z)))
    elif r.kind == "twall":
        _wall(cv, r.x0, r.y0, r.y1, zs, r.color)
        cv.draw.polygon(_wall_pts(cv, r.x0, 0.0, 1.0, zs), fill=(80, 80, 84))
        cv.draw.polygon(_wall_pts(cv, r.x0, 2.6, 2.9, zs), fill=(60, 110, 150))
    else:  # fence, hedge
        _wall(cv, r.x0, r.y0, r.y1, zs, r.color)


def _building(cv: _Canvas, r: Ribbon, zs: list[float], state: FrameState) -> None:
    _wall(cv, r.x0, 0.0, r.y1, zs, r.color)
    glass = tuple(int(0.35 * c + 30) for c in r.color)
    night = state.timeofday != "day"
    cv.draw.polygon(_wall_pts(cv, r.x0, 0.3, 2.8, zs), fill=(70, 80, 90))  # shop fronts
    floor = 3.2
    y = 4.0
    while y + 1.4 < r.y1 - 0.6:
        cv.draw.polygon(_wall_pts(cv, r.x0, y, y + 1.4, zs), fill=glass)
        y += floor
    near_end = min(zs[-1], 45.0)
    rng = np.random.default_rng(r.variant)
    z = zs[0] + 1.2
    mullion = tuple(int(c * 0.85) for c in r.color)
    while z < near_end:
        pts = [*cv.pt(r.x0, 3.6, z), *cv.pt(r.x0, r.y1 - 0.5, z)]
        cv.draw.line(pts, fill=mullion, width=max(1, int(cv.f * 0.5 / z)))
        z += 2.4
    if night and cv.draw_emi is not None:
        z = zs[0]
        while z + 2 < min(zs[-1], 70.0):
            y = 4.0
            while y + 1.4 < r.y1 - 0.6:
                if rng.random() < 0.22:
                    pts = _wall_pts(cv, r.x0, y + 0.2, y + 1.2, [z + 0.4, z + 1.8])
                    cv.draw.polygon(pts, fill=(230, 200, 130))
                    cv.draw_emi.polygon(pts, fill=(170, 140, 80))
                y += floor
            z += 2.4
    top = _wall_pts(cv, r.x0, r.y1 - 0.5, r.y1, zs)
    cv.draw.polygon(top, fill=tuple(int(c * 0.7) for c in r.color))


def _house(cv: _Canvas, r: Ribbon, zs: list[float], state: FrameState) -> None:
    h = r.y1
    depth = r.x1 - r.x0
    roof_h = 2.2
    roof = ((120, 50, 40), (70, 70, 75), (110, 85, 60))[r.variant % 3]
    if state.weather == "snow":
        roof = (228, 230, 235)
    _wall(cv, r.x0, 0.0, h, zs, r.color)
    # roof slope facing the road, from the eaves to the ridge
    pts = _strip(cv, [(r.x0, h, z) for z in zs], [(r.x0 + depth / 2, h + roof_h, z) for z in zs])
    cv.surface(pts, roof, sum(zs) / len(zs))
    length = r.z1 - r.z0
    for a, y0, y1, color in (
        (0.15, 1.0, 2.2, (60, 75, 90)),
        (0.7, 1.0, 2.2, (60, 75, 90)),
        (0.45, 0.0, 2.1, (90, 60, 40)),
    ):
        z0 = r.z0 + a * length
        if z0 > NEAR_M:
            cv.draw.polygon(_wall_pts(cv, r.x0, y0, y1, [z0, z0 + 1.2]), fill=color)
    if r.z0 > NEAR_M:  # gable end facing the camera
        gable = _quad(cv, [(r.x0, 0), (r.x0, h), (r.x0 + depth / 2, h + roof_h),
                           (r.x1, h), (r.x1, 0)], r.z0)  # fmt: skip
        cv.surface(gable, tuple(int(c * 0.88) for c in r.color), r.z0)
        win = _quad(cv, [(r.x0 + depth * 0.35, 1.0), (r.x0 + depth * 0.35, 2.1),
                         (r.x0 + depth * 0.65, 2.1), (r.x0 + depth * 0.65, 1.0)], r.z0)  # fmt: skip
        lit = state.timeofday == "night" and r.variant % 3 == 0
        cv.draw.polygon(win, fill=(230, 200, 130) if lit else (60, 75, 90))
        if lit and cv.draw_emi is not None:
            cv.draw_emi.polygon(win, fill=(170, 140, 80))


def _tunnel_ribbons(state: FrameState) -> list[Ribbon]:
    t = state.tunnel
    if t is None:
        return []
    wall = (185, 178, 158)
    return [
        Ribbon("twall", t.x_left, t.x_left, 0, t.height, t.z0, t.z1, wall),
        Ribbon("twall", t.x_right, t.x_right, 0, t.height, t.z0, t.z1, wall),
    ]


def _draw_ceiling(cv: _Canvas, state: FrameState) -> None:
    t = state.tunnel
    if t is None:
        return
    zs = _z_samples(t.z0, t.z1)
    if len(zs) < 2:
        return
    for a, b in itertools.pairwise(zs):
        pts = _quad(cv, [(t.x_left, t.height), (t.x_right, t.height)], a) + _quad(
            cv, [(t.x_right, t.height), (t.x_left, t.height)], b
        )
        cv.surface(pts, (62, 60, 57), 0.5 * (a + b))
    first = math.ceil((state.ego_s + zs[0]) / TUNNEL_LAMP_SPACING_M) * TUNNEL_LAMP_SPACING_M
    x = 0.25 * t.x_right
    for s in np.arange(first, state.ego_s + zs[-1] - 1.5, TUNNEL_LAMP_SPACING_M):
        z = s - state.ego_s
        pts = _quad(cv, [(x - 0.3, t.height), (x + 0.3, t.height)], z) + _quad(
            cv, [(x + 0.3, t.height), (x - 0.3, t.height)], z + 1.6
        )
        cv.surface(pts, (255, 235, 190), z, emit=(255, 200, 120))


# ------------------------------------------------------------------------- items
def _paint_items(cv: _Canvas, state: FrameState) -> list[tuple]:
    """Ribbons and items far to near, shell by shell (see module doc); returns the drawn
    objects with their id and full box."""
    tunnel = state.tunnel
    z_clip = FAR_DRAW_M
    if tunnel is not None:
        z_clip = tunnel.z0 if tunnel.z0 > NEAR_M else tunnel.z1
    walls = [r for r in state.ribbons if r.kind != "ground" and r.z0 < z_clip]
    walls += _tunnel_ribbons(state)
    thresholds = sorted({abs(r.x0) for r in walls}, reverse=True)
    items: list[tuple[float, float, object]] = []
    for o in state.objects:
        items.append((abs(o.x), o.z, o))
    for p in state.props:
        if p.z > NEAR_M and (tunnel is None or p.z < z_clip or tunnel.z0 <= NEAR_M):
            items.append((abs(p.x), p.z, p))
    buckets: list[list] = [[] for _ in range(len(thresholds) + 1)]
    for ax, z, item in items:
        b = sum(1 for t in thresholds if t > ax)  # ribbons beyond the item
        buckets[b].append((z, item))
    drawn: list[tuple] = []
    for b, bucket in enumerate(buckets):
        bucket.sort(key=lambda zi: -zi[0])
        for _z, item in bucket:
            if isinstance(item, ObjectState):
                drawn.append(_paint_object(cv, item, len(drawn) + 1, state))
            else:
                _paint_prop(cv, item)
        if b < len(thresholds):
            ring = [r for r in walls if abs(r.x0) == thresholds[b]]
            for r in sorted(ring, key=lambda r: -r.z0):
                _paint_ribbon(cv, r, state, z_clip if r.kind != "twall" else FAR_DRAW_M)
    return drawn


def _paint_object(cv: _Canvas, o: ObjectState, idx: int, state: FrameState):
    box = cv.box_of(o.x, o.z, o.width, o.height)
    prims = object_prims(o.category, box, o.color, o.facing, o.variant, o.phase, o.lit)
    obj_id = idx if idx <= MAX_IDS else MAX_IDS + 1
    cv.paint(prims, o.z, obj_id)
    cv.ids_dirty = True
    return obj_id, o, box, prims


def _paint_prop(cv: _Canvas, p: PropState) -> None:
    box = cv.box_of(p.x, p.z, p.width, p.height)
    if box[3] - box[1] < 1.0:
        return
    cv.paint(prop_prims(p.kind, box, p.color, p.variant, right=p.x >= 0), p.z)


# ------------------------------------------------------------------------- light
def _illumination(cv: _Canvas, state: FrameState, depth: np.ndarray) -> np.ndarray | None:
    """Per-pixel light multiplier (H, W, 3) for non-sky pixels, or None in plain daylight."""
    s = state.settings
    sky = depth >= SKY_DEPTH * 0.5
    tod = state.timeofday
    if state.scene == "tunnel":
        level = np.full(depth.shape, 0.5, np.float32) + 0.25 * _headlights(cv, depth, s)
        light = level[..., None] * SODIUM
    elif tod == "night":
        level = s.night_ambient + _headlights(cv, depth, s) + _lamp_pools(cv, state, depth)
        light = np.repeat(level[..., None], 3, axis=2)
        light *= np.array([1.0, 0.95, 0.85], np.float32)
    elif tod == "dusk":
        light = np.broadcast_to(s.dusk_ambient * DUSK_TINT, (*depth.shape, 3)).copy()
    else:
        return None
    light[sky] = 1.0
    return light


def _headlights(cv: _Canvas, depth: np.ndarray, s) -> np.ndarray:
    cols = (np.arange(cv.w, dtype=np.float32) - cv.cx) / (0.42 * cv.w)
    rows = np.arange(cv.h, dtype=np.float32) - cv.yh
    beam = np.exp(-(cols**2))[None, :] * np.exp(np.minimum(rows, 0) / (0.12 * cv.h))[:, None]
    return (1.3 * np.exp(-depth / s.headlight_range_m) * beam).astype(np.float32)


def _lamp_pools(cv: _Canvas, state: FrameState, depth: np.ndarray) -> np.ndarray:
    out = np.zeros(depth.shape, np.float32)
    lamps = [p for p in state.props if p.kind in ("lamp", "pole") and 0 < p.z < 80]
    if not lamps:
        return out
    d = np.minimum(depth, 200.0)
    cols = np.arange(cv.w, dtype=np.float32) - cv.cx
    wx = cols[None, :] * d / cv.f - 0.5 * cv.k * d * d
    for p in lamps:
        head = p.x - np.sign(p.x) * 0.75 * p.width
        r2 = (wx - head) ** 2 + (d - p.z) ** 2
        out += 0.85 * np.exp(-r2 / (2 * 5.5**2))
    return out


def _object_visibility(state: FrameState, o: ObjectState, cv: _Canvas) -> float:
    """How much light reaches the camera from the object, for dropping invisible labels."""
    s = state.settings
    light = 1.0
    if o.lit:
        light = 1.0
    elif state.scene == "tunnel":
        light = 0.6
    elif state.timeofday == "night":
        u, _ = cv.pt(o.x, o.height / 2, o.z)
        beam = math.exp(-(((u - cv.cx) / (0.42 * cv.w)) ** 2))
        light = s.night_ambient + 1.3 * math.exp(-o.z / s.headlight_range_m) * beam
        for p in state.props:
            if p.kind in ("lamp", "pole") and 0 < p.z < 80:
                head = p.x - math.copysign(0.75 * p.width, p.x)
                light += 0.85 * math.exp(-((o.x - head) ** 2 + (o.z - p.z) ** 2) / (2 * 5.5**2))
    elif state.timeofday == "dusk":
        light = s.dusk_ambient
    return min(1.0, light) * (1.0 - _fog_alpha(state, o.z))


def _fog_alpha(state: FrameState, depth):
    vis = _visibility(state)
    if vis is None:
        return 0.0 if np.isscalar(depth) else np.zeros_like(depth)
    return 1.0 - np.exp(-np.asarray(depth, np.float32) / vis)


def _visibility(state: FrameState) -> float | None:
    if state.weather == "fog":
        return state.fog_visibility_m
    if state.weather in ("rain", "snow"):
        return state.settings.precipitation_visibility_m * (0.75 if state.weather == "snow" else 1)
    return None


# ------------------------------------------------------------------------- compose
def _compose(cv: _Canvas, state: FrameState, rng: np.random.Generator) -> np.ndarray:
    img = np.asarray(cv.rgb, dtype=np.float32)
    depth = np.asarray(cv.depth) if cv.need_depth else None
    light = _illumination(cv, state, depth) if depth is not None else None
    if light is not None:
        img = img * light
    emi = None
    if cv.emi is not None:
        emi = np.asarray(cv.emi, dtype=np.float32)
        radius = 2.5 if state.weather != "fog" else 5.0
        small = cv.emi.resize((cv.w // 2, cv.h // 2), Image.BILINEAR)
        glow = small.filter(ImageFilter.GaussianBlur(radius / 2)).resize((cv.w, cv.h))
        gain = 2.2 if state.timeofday == "night" or state.scene == "tunnel" else 1.0
        emi = emi * 0.8 + np.asarray(glow, dtype=np.float32) * gain
    vis = _visibility(state)
    if vis is not None and depth is not None:
        a = (1.0 - np.exp(-depth / vis))[..., None]
        img = img * (1 - a) + _fog_color(state) * a
        if emi is not None:
            emi = emi * (1 - 0.6 * a)
    if state.weather == "rain":
        img = img * 0.82 + 0.08 * img.mean()
    if emi is not None:
        img = img + emi
    img = _precipitation(img, state, rng)
    img = img * (state.look.exposure * _vignette(cv.w, cv.h))[..., None]
    sigma = state.settings.noise_sigma
    if state.timeofday == "night" or state.scene == "tunnel":
        sigma = state.settings.night_noise_sigma
    elif state.timeofday == "dusk":
        sigma = 0.5 * (state.settings.noise_sigma + state.settings.night_noise_sigma)
    img += np.take(_noise_lut(), rng.integers(0, 256, img.shape, dtype=np.uint8)) * sigma
    return np.clip(img, 0, 255).astype(np.uint8)


def _fog_color(state: FrameState) -> np.ndarray:
    if state.weather != "fog":
        g = 150.0 if state.timeofday == "day" else 70.0 if state.timeofday == "dusk" else 12.0
        return np.array([g, g, g + 3], np.float32)
    g = 190.0 if state.timeofday == "day" else 120.0 if state.timeofday == "dusk" else 26.0
    if state.scene == "tunnel":
        g = 110.0
    return np.array([g, g, g + 4], np.float32)


def _precipitation(img: np.ndarray, state: FrameState, rng: np.random.Generator) -> np.ndarray:
    s = state.settings
    if state.weather not in ("rain", "snow") or state.scene == "tunnel":
        return img
    layer = Image.new("L", (s.width, s.height), 0)
    draw = ImageDraw.Draw(layer)
    scale = s.width / 320.0
    if state.weather == "rain":
        n = s.rain_streaks
        xy = rng.random((n, 2)) * [s.width, s.height]
        length = rng.uniform(6, 16, n) * scale
        for (x, y), ln in zip(xy, length, strict=True):
            draw.line([x, y, x - 0.15 * ln, y + ln], fill=int(rng.integers(60, 140)))
        strength = 0.55 if state.timeofday != "night" else 0.3
    else:
        n = s.snow_flakes
        xy = rng.random((n, 2)) * [s.width, s.height]
        size = (0.4 + 0.5 * rng.pareto(3.0, n)) * scale
        for (x, y), r in zip(xy, np.minimum(size, 2.2 * scale), strict=True):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(150, 255)))
        strength = 0.9 if state.timeofday != "night" else 0.5
    a = np.asarray(layer, dtype=np.float32)[..., None] / 255.0 * strength
    return img * (1 - a) + 235.0 * a


@lru_cache(maxsize=8)
def _vignette(w: int, h: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2
    v = (1.0 - 0.12 * r2).astype(np.float32)
    v.flags.writeable = False
    return v


@lru_cache(maxsize=1)
def _noise_lut() -> np.ndarray:
    """Standard-normal quantiles of 256 equiprobable bins: Gaussian noise from random bytes,
    several times faster than drawing normals."""
    from statistics import NormalDist

    nd = NormalDist()
    lut = np.array([nd.inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)
    lut.flags.writeable = False
    return lut


# ------------------------------------------------------------------------- labels
def _labels(cv: _Canvas, state: FrameState, drawn) -> list[Label]:
    s = state.settings
    ids = np.asarray(cv.ids)
    flat = ids.ravel()
    nz = np.flatnonzero(flat)
    vals = flat[nz]
    order = np.argsort(vals, kind="stable")
    vals, nz = vals[order], nz[order]
    rows, cols = nz // cv.w, nz % cv.w
    starts = np.flatnonzero(np.r_[True, vals[1:] != vals[:-1]]) if vals.size else np.empty(0, int)
    stats = {}
    if vals.size:
        ends = np.r_[starts[1:], vals.size]
        for st, en in zip(starts, ends, strict=True):
            stats[int(vals[st])] = (
                en - st,
                int(cols[st:en].min()),
                int(rows[st:en].min()),
                int(cols[st:en].max()) + 1,
                int(rows[st:en].max()) + 1,
            )
    out = []
    for obj_id, o, box, prims in drawn:
        if obj_id > MAX_IDS or obj_id not in stats:
            continue
        count, x1, y1, x2, y2 = stats[obj_id]
        if y2 - y1 < s.min_box_px:
            continue
        full = _silhouette_pixels(prims, cv.w, cv.h)
        occlusion = max(0.0, 1.0 - count / full) if full else 1.0
        if occlusion > s.max_occlusion:
            continue
        if _object_visibility(state, o, cv) < s.min_visibility:
            continue
        out.append(
            Label(
                track=o.track,
                category=o.category,
                box=(float(x1), float(y1), float(x2), float(y2)),
                occlusion=round(float(occlusion), 3),
                truncation=round(_truncation(box, cv.w, cv.h), 3),
                distance=round(o.distance, 2),
            )
        )
    return out


def _silhouette_pixels(prims: list[Prim], w: int, h: int) -> int:
    """Pixels the object would own in the image if nothing were in front of it."""
    sil = [p for p in prims if p.sil]
    xs = [c for p in sil for c in p.coords[0::2]]
    ys = [c for p in sil for c in p.coords[1::2]]
    pad = max((p.width for p in sil), default=1) + 1
    x0, y0 = max(0, int(min(xs)) - pad), max(0, int(min(ys)) - pad)
    x1, y1 = min(w, int(max(xs)) + pad + 1), min(h, int(max(ys)) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return 0
    scratch = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(scratch)
    for p in sil:
        c = list(p.coords)
        c[0::2] = [v - x0 for v in c[0::2]]
        c[1::2] = [v - y0 for v in c[1::2]]
        _shape(draw, Prim(p.kind, tuple(c), p.fill, True, None, p.width), 1, solid=True)
    return scratch.histogram()[1]


def _truncation(box: tuple[float, ...], w: int, h: int) -> float:
    x0, t, r, b = box
    area = max(r - x0, 1e-6) * max(b - t, 1e-6)
    cw = max(0.0, min(r, w) - max(x0, 0.0))
    ch = max(0.0, min(b, h) - max(t, 0.0))
    return float(min(1.0, max(0.0, 1.0 - cw * ch / area)))


# ------------------------------------------------------------------------- public
def render_frame(state: FrameState, rng: np.random.Generator) -> tuple[np.ndarray, list[Label]]:
    """Pixels (H x W x 3 uint8) and visible-object labels of one frame; ``rng`` only drives
    sensor noise and precipitation, so labels depend on the state alone."""
    emissive = state.timeofday != "day" or state.tunnel is not None
    cv = _Canvas(state, emissive)
    _draw_horizon(cv, state)
    _draw_road(cv, state)
    _draw_tunnel_mouths(cv, state)
    _draw_ceiling(cv, state)
    drawn = _paint_items(cv, state)
    labels = _labels(cv, state, drawn)
    return _compose(cv, state, rng), labels


def frame_attributes(state: FrameState, labels: list[Label]) -> dict[str, object]:
    """BDD attributes plus the boolean situations, derived from what is actually visible."""
    s = state.settings
    parts = [lb for lb in labels if lb.category in PARTICIPANTS]
    seen = sum(lb.occlusion <= s.crowded_max_occlusion for lb in parts)
    return {
        "timeofday": BDD_TIMEOFDAY[state.timeofday],
        "weather": BDD_WEATHER[state.weather],
        "scene": BDD_SCENE[state.scene],
        "roadworks": bool(state.roadworks),
        "close_participant": any(lb.distance <= s.close_m for lb in parts),
        "far_participant": any(lb.distance > s.far_m for lb in parts),
        "pedestrian_present": any(lb.category == "pedestrian" for lb in parts),
        "crowded": seen >= s.crowded_min,
    }


def situations_of(state: FrameState, labels: list[Label]) -> dict[str, bool]:
    """Taxonomy situation values of a frame (day/dusk/night, ..., crowded)."""
    attrs = frame_attributes(state, labels)
    out = {tod: state.timeofday == tod for tod in BDD_TIMEOFDAY}
    out |= {w: state.weather == w for w in BDD_WEATHER}
    out |= {sc: state.scene == sc for sc in BDD_SCENE}
    for key in ("roadworks", "close_participant", "far_participant", "pedestrian_present"):
        out[key] = bool(attrs[key])
    out["crowded"] = bool(attrs["crowded"])
    return out
