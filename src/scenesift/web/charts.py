"""A learning curve as a small inline SVG: no plotting library on the request path."""

from __future__ import annotations

import math
from html import escape

from scenesift.store.campaign_views import CURVE_METRICS, CurvePoint

COLOURS = {"map50": "#2563eb", "map": "#f97316", "auc_mean": "#16a34a"}


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _label(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2f}"


def learning_curve_svg(points: list[CurvePoint], width: int = 560, height: int = 260) -> str:
    """Each round metric present (mAP@0.5, mAP, mean ROC-AUC) against labelled frames."""
    series = [
        (label, COLOURS[key], [(p.n_labelled, p.values[key]) for p in points if key in p.values])
        for key, label in CURVE_METRICS.items()
    ]
    series = [s for s in series if s[2]]
    left, right, top, bottom = 48, 16, 16, 40
    xs = [x for _, _, pts in series for x, _ in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = 0.0, max(1e-9, max((y for _, _, pts in series for _, y in pts), default=1.0))
    y1 = min(1.0, max(0.1, math.ceil(y1 * 10 + 0.5) / 10))

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'role="img" aria-label="learning curve" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" '
        f'height="{height - top - bottom}" fill="#fff" stroke="#d4d4d8"/>',
    ]
    for t in _ticks(x0, x1):
        if x0 <= t <= x1:
            parts.append(
                f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" y2="{height - bottom}" '
                f'stroke="#f1f1f4"/><text x="{sx(t):.1f}" y="{height - bottom + 16}" '
                f'text-anchor="middle">{_label(t)}</text>'
            )
    for t in _ticks(y0, y1):
        if y0 <= t <= y1:
            parts.append(
                f'<line x1="{left}" x2="{width - right}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" '
                f'stroke="#f1f1f4"/><text x="{left - 6}" y="{sy(t) + 4:.1f}" '
                f'text-anchor="end">{t:.1f}</text>'
            )
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 6}" text-anchor="middle">'
        "labelled frames</text>"
    )
    for k, (name, colour, pts) in enumerate(series):
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in pts:
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(name)} {y:.3f} at {x:,.0f} labelled frames</title></circle>"
            )
        parts.append(
            f'<rect x="{left + 10}" y="{top + 8 + 16 * k}" width="10" height="10" '
            f'fill="{colour}"/><text x="{left + 26}" y="{top + 17 + 16 * k}">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
