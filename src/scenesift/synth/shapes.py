"""What each object and roadside prop looks like, as flat primitives in pixel space.

Shapes are described relative to the object's projected box (0..1 in x and y), so one
description serves every distance. Each primitive says whether it belongs to the object's
silhouette (drawn into the id and depth buffers, and so able to occlude and be occluded) and
whether it emits light (tail lights, lamps), which only matters at night, dusk and in tunnels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Color = tuple[int, int, int]

#: Below this projected height (px) an object is a plain block: details would be sub-pixel.
DETAIL_MIN_PX = 9.0
GLASS: Color = (38, 46, 56)
GLASS_FRONT: Color = (70, 84, 98)
TYRE: Color = (18, 18, 20)
TAIL: Color = (190, 22, 20)
TAIL_GLOW: Color = (255, 45, 30)
HEAD: Color = (225, 225, 205)
HEAD_GLOW: Color = (255, 248, 220)
LAMP_GLOW: Color = (255, 205, 140)
SKIN: tuple[Color, ...] = ((235, 200, 170), (200, 150, 110), (150, 100, 70), (95, 65, 45))
HAIR: tuple[Color, ...] = ((30, 25, 20), (80, 55, 35), (150, 120, 70), (110, 110, 110))
PANTS: tuple[Color, ...] = ((40, 55, 90), (30, 30, 32), (90, 90, 95), (150, 130, 95), (60, 70, 60))


@dataclass(frozen=True)
class Prim:
    """A flat shape: kind in rect | ellipse | ring | poly | line | shadow."""

    kind: str
    coords: tuple[float, ...]
    fill: Color
    sil: bool = False
    emit: Color | None = None
    width: int = 1


class _Frame:
    """Maps box-relative coordinates (0..1) to pixels, optionally mirrored."""

    def __init__(self, box: tuple[float, float, float, float], mirror: bool = False) -> None:
        self.l, self.t, self.r, self.b = box
        self.w, self.h = self.r - self.l, self.b - self.t
        self.mirror = mirror

    def x(self, a: float) -> float:
        return self.l + (1.0 - a if self.mirror else a) * self.w

    def y(self, a: float) -> float:
        return self.t + a * self.h

    def rect(self, x0, y0, x1, y1) -> tuple[float, ...]:
        xa, xb = sorted((self.x(x0), self.x(x1)))
        return (xa, self.y(y0), xb, self.y(y1))

    def pts(self, *xy: float) -> tuple[float, ...]:
        out: list[float] = []
        for i in range(0, len(xy), 2):
            out += [self.x(xy[i]), self.y(xy[i + 1])]
        return tuple(out)

    def lw(self, frac: float) -> int:
        return max(1, round(frac * self.w))


def _shade(c: Color, k: float) -> Color:
    return (min(255, int(c[0] * k)), min(255, int(c[1] * k)), min(255, int(c[2] * k)))


def _pick(options: tuple[Color, ...], variant: int, salt: int) -> Color:
    return options[(variant >> salt) % len(options)]


def object_prims(
    category: str,
    box: tuple[float, float, float, float],
    color: Color,
    facing: str,
    variant: int,
    phase: float,
    lit: bool,
) -> list[Prim]:
    """Primitives of one labelled object, far to near within the object."""
    f = _Frame(box, mirror=facing == "front" and category == "cyclist")
    if f.h < DETAIL_MIN_PX:
        return _block(category, f, color, facing, lit)
    painter = {
        "car": _car,
        "truck": _truck,
        "pedestrian": _pedestrian,
        "cyclist": _cyclist,
        "golf_cart": _golf_cart,
        "traffic_cone": _cone,
    }[category]
    return painter(f, color, facing, variant, phase, lit)


def _block(category: str, f: _Frame, color: Color, facing: str, lit: bool) -> list[Prim]:
    """A distant object: its silhouette colour plus its lights, which carry far at night."""
    if category in ("pedestrian", "cyclist"):
        return [
            Prim("rect", f.rect(0.2, 0.0, 0.8, 0.55), color, sil=True),
            Prim("rect", f.rect(0.25, 0.5, 0.75, 1.0), PANTS[0], sil=True),
        ]
    if category == "traffic_cone":
        return [Prim("poly", f.pts(0.3, 0, 0.7, 0, 1, 1, 0, 1), color, sil=True)]
    out = [Prim("rect", f.rect(0, 0.0, 1, 1), color, sil=True)]
    if category == "car":
        out.append(Prim("rect", f.rect(0.15, 0.05, 0.85, 0.38), GLASS))
    light, glow = (TAIL, TAIL_GLOW) if facing == "back" else (HEAD, HEAD_GLOW)
    y0, y1 = (0.45, 0.62) if category != "truck" else (0.78, 0.88)
    for x0 in (0.0, 0.78):
        out.append(Prim("rect", f.rect(x0, y0, x0 + 0.22, y1), light, emit=glow if lit else None))
    return out


def _shadow(f: _Frame, spread: float = 0.06) -> Prim:
    return Prim("shadow", f.rect(-spread, 0.93, 1 + spread, 1.05), (0, 0, 0))


def _car(f: _Frame, color: Color, facing: str, variant: int, phase: float, lit: bool):
    dark = _shade(color, 0.55)
    hatch = variant % 3 == 0
    top = 0.04 if hatch else 0.02
    out = [
        _shadow(f),
        Prim("rect", f.rect(0.06, 0.72, 0.25, 1.0), TYRE, sil=True),
        Prim("rect", f.rect(0.75, 0.72, 0.94, 1.0), TYRE, sil=True),
        Prim("poly", f.pts(0.12, 0.43, 0.21, top, 0.79, top, 0.88, 0.43), color, sil=True),
        Prim("rect", f.rect(0.0, 0.4, 1.0, 0.86), color, sil=True),
    ]
    if facing == "back":
        glass = f.pts(0.17, 0.39, 0.25, top + 0.06, 0.75, top + 0.06, 0.83, 0.39)
        out += [
            Prim("poly", glass, GLASS),
            Prim("rect", f.rect(0.02, 0.73, 0.98, 0.86), dark),
            Prim("rect", f.rect(0.03, 0.47, 0.21, 0.59), TAIL, emit=TAIL_GLOW if lit else None),
            Prim("rect", f.rect(0.79, 0.47, 0.97, 0.59), TAIL, emit=TAIL_GLOW if lit else None),
            Prim("rect", f.rect(0.4, 0.6, 0.6, 0.7), (225, 225, 215)),
        ]
    else:
        glass = f.pts(0.15, 0.41, 0.24, top + 0.05, 0.76, top + 0.05, 0.85, 0.41)
        out += [
            Prim("poly", glass, GLASS_FRONT),
            Prim("rect", f.rect(0.3, 0.52, 0.7, 0.66), (35, 35, 38)),
            Prim("rect", f.rect(0.02, 0.75, 0.98, 0.86), dark),
            Prim("rect", f.rect(0.04, 0.5, 0.24, 0.6), HEAD, emit=HEAD_GLOW if lit else None),
            Prim("rect", f.rect(0.76, 0.5, 0.96, 0.6), HEAD, emit=HEAD_GLOW if lit else None),
        ]
    if f.h > 24:  # side mirrors and a roof line, only where they are resolvable
        out += [
            Prim("rect", f.rect(-0.04, 0.37, 0.04, 0.45), dark),
            Prim("rect", f.rect(0.96, 0.37, 1.04, 0.45), dark),
            Prim("line", f.pts(0.22, top + 0.01, 0.78, top + 0.01), _shade(color, 1.25)),
        ]
    return out


def _truck(f: _Frame, color: Color, facing: str, variant: int, phase: float, lit: bool):
    dark = _shade(color, 0.6)
    out = [
        _shadow(f, 0.03),
        Prim("rect", f.rect(0.05, 0.76, 0.32, 1.0), TYRE, sil=True),
        Prim("rect", f.rect(0.68, 0.76, 0.95, 1.0), TYRE, sil=True),
    ]
    if facing == "back":
        out += [
            Prim("rect", f.rect(0.0, 0.0, 1.0, 0.8), color, sil=True),
            Prim("rect", f.rect(0.02, 0.02, 0.98, 0.05), dark),
            Prim("line", f.pts(0.5, 0.04, 0.5, 0.78), dark, width=f.lw(0.015)),
            Prim("rect", f.rect(0.08, 0.82, 0.92, 0.87), (30, 30, 30), sil=True),
            Prim("rect", f.rect(0.02, 0.79, 0.15, 0.86), TAIL, emit=TAIL_GLOW if lit else None),
            Prim("rect", f.rect(0.85, 0.79, 0.98, 0.86), TAIL, emit=TAIL_GLOW if lit else None),
        ]
        if f.h > 30:
            out += [Prim("rect", f.rect(0.2, 0.3, 0.45, 0.33), dark)]
    else:
        trailer = (205, 205, 200) if variant % 2 else color
        out += [
            Prim("rect", f.rect(0.0, 0.0, 1.0, 0.22), trailer, sil=True),
            Prim("rect", f.rect(0.02, 0.18, 0.98, 0.84), color, sil=True),
            Prim("rect", f.rect(0.08, 0.24, 0.92, 0.46), GLASS_FRONT),
            Prim("rect", f.rect(0.28, 0.54, 0.72, 0.74), (40, 40, 42)),
            Prim("rect", f.rect(0.0, 0.78, 1.0, 0.86), dark),
            Prim("rect", f.rect(0.05, 0.64, 0.22, 0.72), HEAD, emit=HEAD_GLOW if lit else None),
            Prim("rect", f.rect(0.78, 0.64, 0.95, 0.72), HEAD, emit=HEAD_GLOW if lit else None),
        ]
    return out


def _pedestrian(f: _Frame, shirt: Color, facing: str, variant: int, phase: float, lit: bool):
    skin = _pick(SKIN, variant, 0)
    hair = _pick(HAIR, variant, 3)
    pants = _pick(PANTS, variant, 6)
    swing = 0.0 if phase < 0 else math.sin(phase)
    s = 0.07 * swing
    legs = [
        Prim("poly", f.pts(0.27, 0.5, 0.49, 0.5, 0.46 + s, 0.97, 0.3 + s, 0.97), pants, sil=True),
        Prim("poly", f.pts(0.51, 0.5, 0.73, 0.5, 0.7 - s, 0.97, 0.54 - s, 0.97), pants, sil=True),
        Prim("rect", f.rect(0.28 + s, 0.95, 0.47 + s, 1.0), (25, 25, 25), sil=True),
        Prim("rect", f.rect(0.53 - s, 0.95, 0.72 - s, 1.0), (25, 25, 25), sil=True),
    ]
    if (variant >> 9) % 5 == 0:  # a skirt or coat instead of trousers
        legs[:2] = [
            Prim("rect", f.rect(0.32, 0.5, 0.45, 0.97), skin, sil=True),
            Prim("rect", f.rect(0.55, 0.5, 0.68, 0.97), skin, sil=True),
        ]
        legs.append(
            Prim("poly", f.pts(0.22, 0.45, 0.78, 0.45, 0.88, 0.72, 0.12, 0.72), pants, sil=True)
        )
    arm = _shade(shirt, 0.8)
    out = [
        *legs,
        Prim("rect", f.rect(0.03, 0.16, 0.2, 0.5 + 0.02 * swing), arm, sil=True),
        Prim("rect", f.rect(0.8, 0.16, 0.97, 0.5 - 0.02 * swing), arm, sil=True),
        Prim("rect", f.rect(0.05, 0.48, 0.18, 0.55), skin, sil=True),
        Prim("rect", f.rect(0.82, 0.48, 0.95, 0.55), skin, sil=True),
        Prim("poly", f.pts(0.2, 0.15, 0.8, 0.15, 0.78, 0.52, 0.22, 0.52), shirt, sil=True),
        Prim("ellipse", f.rect(0.3, 0.0, 0.7, 0.15), skin if facing == "front" else hair, sil=True),
    ]
    if facing == "front":
        out.append(Prim("rect", f.rect(0.32, 0.0, 0.68, 0.04), hair))
    elif (variant >> 12) % 3 == 0:  # backpack
        out.append(Prim("rect", f.rect(0.28, 0.2, 0.72, 0.42), _pick(PANTS, variant, 2)))
    return out


def _cyclist(f: _Frame, shirt: Color, facing: str, variant: int, phase: float, lit: bool):
    pants = _pick(PANTS, variant, 6)
    helmet = _pick(((230, 230, 230), (200, 40, 40), (30, 30, 30), (40, 90, 180)), variant, 4)
    frame_c = _pick(((180, 30, 30), (30, 30, 30), (40, 90, 180), (200, 200, 200)), variant, 7)
    lw = f.lw(0.07)
    c, s = math.cos(phase), math.sin(phase)
    pedal = (0.47 + 0.1 * c, 0.82 + 0.06 * s)
    out = [
        Prim("ring", f.rect(0.0, 0.6, 0.44, 1.0), TYRE, sil=True, width=lw),
        Prim("ring", f.rect(0.56, 0.58, 1.0, 0.98), TYRE, sil=True, width=lw),
        Prim("line", f.pts(0.22, 0.8, 0.47, 0.82, 0.78, 0.78), frame_c, sil=True, width=lw),
        Prim("line", f.pts(0.22, 0.8, 0.38, 0.56, 0.47, 0.82), frame_c, width=lw),
        Prim("line", f.pts(0.38, 0.56, 0.72, 0.54, 0.78, 0.78), frame_c, sil=True, width=lw),
        Prim(
            "line", f.pts(0.4, 0.52, 0.55 + 0.05 * s, 0.68, *pedal), pants, sil=True, width=lw + 1
        ),
        Prim("poly", f.pts(0.32, 0.56, 0.5, 0.56, 0.66, 0.2, 0.48, 0.18), shirt, sil=True),
        Prim("line", f.pts(0.62, 0.24, 0.74, 0.52), _shade(shirt, 0.8), sil=True, width=lw),
        Prim("ellipse", f.rect(0.5, 0.0, 0.76, 0.19), helmet, sil=True),
    ]
    if lit:
        out.append(Prim("rect", f.rect(0.02, 0.62, 0.1, 0.68), TAIL, emit=TAIL_GLOW))
    return out


def _golf_cart(f: _Frame, color: Color, facing: str, variant: int, phase: float, lit: bool):
    roof = (245, 245, 240) if variant % 4 else (40, 100, 60)
    seat = _pick(((40, 40, 40), (225, 215, 190), (120, 80, 50)), variant, 2)
    out = [
        _shadow(f, 0.03),
        Prim("rect", f.rect(0.06, 0.82, 0.24, 1.0), TYRE, sil=True),
        Prim("rect", f.rect(0.76, 0.82, 0.94, 1.0), TYRE, sil=True),
        Prim("rect", f.rect(0.06, 0.08, 0.12, 0.58), (60, 60, 62), sil=True),
        Prim("rect", f.rect(0.88, 0.08, 0.94, 0.58), (60, 60, 62), sil=True),
        Prim("rect", f.rect(-0.03, 0.0, 1.03, 0.09), roof, sil=True),
        Prim("rect", f.rect(0.14, 0.42, 0.86, 0.6), seat, sil=True),
    ]
    if facing == "back" and variant % 3:  # golf bag on the rear rack
        out.append(Prim("rect", f.rect(0.38, 0.28, 0.58, 0.64), (150, 40, 40), sil=True))
    out += [
        Prim("rect", f.rect(0.0, 0.58, 1.0, 0.86), color, sil=True),
        Prim("rect", f.rect(0.05, 0.66, 0.17, 0.72), TAIL if facing == "back" else HEAD,
             emit=(TAIL_GLOW if facing == "back" else HEAD_GLOW) if lit else None),
        Prim("rect", f.rect(0.83, 0.66, 0.95, 0.72), TAIL if facing == "back" else HEAD,
             emit=(TAIL_GLOW if facing == "back" else HEAD_GLOW) if lit else None),
    ]  # fmt: skip
    return out


def _cone(f: _Frame, color: Color, facing: str, variant: int, phase: float, lit: bool):
    return [
        Prim("poly", f.pts(0.38, 0.0, 0.62, 0.0, 0.9, 0.9, 0.1, 0.9), color, sil=True),
        Prim("poly", f.pts(0.26, 0.35, 0.74, 0.35, 0.8, 0.55, 0.2, 0.55), (245, 245, 240)),
        Prim("rect", f.rect(0.0, 0.88, 1.0, 1.0), (40, 40, 40), sil=True),
    ]


# ------------------------------------------------------------------------- props
def prop_prims(
    kind: str, box: tuple[float, float, float, float], color: Color, variant: int, right: bool
) -> list[Prim]:
    """Primitives of an unlabelled prop; all silhouette prims occlude objects behind them."""
    f = _Frame(box, mirror=not right)
    painter = {
        "tree": _tree,
        "lamp": _lamp,
        "pole": _pole,
        "sign": _sign,
        "bush": _bush,
        "barrier": _barrier,
        "works_sign": _works_sign,
        "gantry": _gantry,
    }[kind]
    return painter(f, color, variant)


def _tree(f: _Frame, color: Color, variant: int) -> list[Prim]:
    light = _shade(color, 1.25)
    return [
        Prim("rect", f.rect(0.45, 0.5, 0.55, 1.0), (80, 60, 40), sil=True),
        Prim("ellipse", f.rect(0.0, 0.0, 1.0, 0.68), color, sil=True),
        Prim("ellipse", f.rect(0.18, 0.06, 0.62, 0.4), light),
        Prim("ellipse", f.rect(0.5, 0.3, 0.9, 0.6), _shade(color, 0.8)),
    ]


def _bush(f: _Frame, color: Color, variant: int) -> list[Prim]:
    return [
        Prim("ellipse", f.rect(0.0, 0.0, 1.0, 1.15), color, sil=True),
        Prim("ellipse", f.rect(0.2, 0.1, 0.6, 0.6), _shade(color, 1.2)),
    ]


def _lamp(f: _Frame, color: Color, variant: int) -> list[Prim]:
    lw = f.lw(0.1)
    return [
        Prim("line", f.pts(0.92, 0.02, 0.92, 1.0), color, sil=True, width=lw),
        Prim("line", f.pts(0.92, 0.03, 0.1, 0.03), color, sil=True, width=max(1, lw - 1)),
        Prim("rect", f.rect(0.02, 0.02, 0.3, 0.06), (200, 200, 190), emit=LAMP_GLOW),
    ]


def _pole(f: _Frame, color: Color, variant: int) -> list[Prim]:
    lw = f.lw(0.12)
    return [
        Prim("line", f.pts(0.5, 0.02, 0.5, 1.0), color, sil=True, width=lw),
        Prim("line", f.pts(0.0, 0.03, 1.0, 0.03), color, sil=True, width=max(1, lw - 1)),
        Prim("rect", f.rect(-0.1, 0.02, 0.15, 0.06), (200, 200, 190), emit=LAMP_GLOW),
        Prim("rect", f.rect(0.85, 0.02, 1.1, 0.06), (200, 200, 190), emit=LAMP_GLOW),
    ]


def _sign(f: _Frame, color: Color, variant: int) -> list[Prim]:
    out = [Prim("line", f.pts(0.5, 0.3, 0.5, 1.0), (120, 120, 125), sil=True, width=f.lw(0.08))]
    kind = variant % 3
    if kind == 0:  # speed limit
        out += [
            Prim("ellipse", f.rect(0.0, 0.0, 1.0, 0.33), (200, 30, 30), sil=True),
            Prim("ellipse", f.rect(0.15, 0.05, 0.85, 0.28), (240, 240, 240)),
        ]
    elif kind == 1:  # information board
        out += [Prim("rect", f.rect(0.0, 0.0, 1.0, 0.3), (30, 70, 160), sil=True)]
    else:  # warning triangle
        out += [
            Prim("poly", f.pts(0.5, 0.0, 1.0, 0.34, 0.0, 0.34), (200, 30, 30), sil=True),
            Prim("poly", f.pts(0.5, 0.08, 0.82, 0.3, 0.18, 0.3), (240, 240, 240)),
        ]
    return out


def _barrier(f: _Frame, color: Color, variant: int) -> list[Prim]:
    out = [
        Prim("rect", f.rect(0.05, 0.2, 0.1, 1.0), (60, 60, 60), sil=True),
        Prim("rect", f.rect(0.9, 0.2, 0.95, 1.0), (60, 60, 60), sil=True),
        Prim("rect", f.rect(0.0, 0.2, 1.0, 0.55), (240, 240, 240), sil=True),
    ]
    for k in range(4):
        a = 0.25 * k
        out.append(
            Prim("poly", f.pts(a, 0.55, a + 0.12, 0.2, a + 0.22, 0.2, a + 0.1, 0.55), (210, 30, 30))
        )
    out.append(Prim("ellipse", f.rect(0.45, 0.0, 0.58, 0.18), (240, 180, 30), emit=(255, 190, 60)))
    return out


def _works_sign(f: _Frame, color: Color, variant: int) -> list[Prim]:
    return [
        Prim("line", f.pts(0.5, 0.4, 0.5, 1.0), (120, 120, 125), sil=True, width=f.lw(0.08)),
        Prim("poly", f.pts(0.5, 0.0, 1.0, 0.45, 0.0, 0.45), (210, 30, 30), sil=True),
        Prim("poly", f.pts(0.5, 0.07, 0.85, 0.4, 0.15, 0.4), (245, 215, 60)),
        Prim("poly", f.pts(0.45, 0.2, 0.55, 0.2, 0.62, 0.37, 0.38, 0.37), (20, 20, 20)),
    ]


def _gantry(f: _Frame, color: Color, variant: int) -> list[Prim]:
    lw = f.lw(0.012)
    return [
        Prim("line", f.pts(0.02, 0.0, 0.02, 1.0), (110, 110, 115), sil=True, width=lw),
        Prim("line", f.pts(0.98, 0.0, 0.98, 1.0), (110, 110, 115), sil=True, width=lw),
        Prim("rect", f.rect(0.0, 0.08, 1.0, 0.12), (110, 110, 115), sil=True),
        Prim("rect", f.rect(0.18, 0.0, 0.48, 0.3), (20, 110, 60), sil=True),
        Prim("rect", f.rect(0.52, 0.0, 0.82, 0.3), (30, 70, 160), sil=True),
        Prim("rect", f.rect(0.22, 0.08, 0.44, 0.1), (235, 235, 235)),
        Prim("rect", f.rect(0.56, 0.16, 0.78, 0.18), (235, 235, 235)),
    ]
