"""When a campaign stops: a labelling budget, a target metric, or a plateau.

The seed stops "as we reach the desired performance (or when no more improvement is
observed as per the learning curve)". The plateau rule makes the second half precise: fit
a line to the last ``window`` points of the learning curve (metric vs labelled frames) and
stop once we are ``confidence`` sure that the slope is below ``min_gain`` metric points per
1,000 more labels, i.e. when the one-sided upper confidence bound of the slope (Student t
on the OLS standard error, from scipy) falls below it. A noisy curve therefore keeps going
until the evidence is there; a flat and quiet one stops early.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Plateau:
    window: int = 4  # learning-curve points the slope is fitted on (>= 3)
    min_gain: float = 0.01  # metric gain per 1,000 labels below which more labels don't pay
    confidence: float = 0.9

    def __post_init__(self) -> None:
        if self.window < 3:
            raise ValueError(f"plateau window must be >= 3 points, got {self.window}")
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"plateau confidence must be in [0.5, 1), got {self.confidence}")


@dataclass(frozen=True)
class SlopeEstimate:
    """Gain per 1,000 labels over the window, with its one-sided upper confidence bound."""

    slope: float
    upper: float
    n_points: int


def slope_per_1000(points: Sequence[tuple[int, float]], confidence: float) -> SlopeEstimate:
    """OLS slope of metric vs labelled frames (per 1,000 labels) and its upper bound."""
    from scipy import stats

    xs = [x / 1000.0 for x, _ in points]
    ys = [y for _, y in points]
    if len(points) < 3 or len(set(xs)) < 2:
        raise ValueError("a slope with a confidence bound needs >= 3 points at >= 2 sizes")
    fit = stats.linregress(xs, ys)
    t = stats.t.ppf(confidence, df=len(points) - 2)
    stderr = 0.0 if math.isnan(fit.stderr) else fit.stderr
    return SlopeEstimate(float(fit.slope), float(fit.slope + t * stderr), len(points))


@dataclass(frozen=True)
class StopDecision:
    stop: bool
    reason: str


@dataclass(frozen=True)
class StoppingRule:
    """Any rule that fires stops the campaign; with none set, it runs ``max_rounds``."""

    budget: int | None = None  # labelled frames (initial set included) not to exceed
    max_rounds: int | None = None  # training rounds
    target: float | None = None  # stop once the metric reaches this
    plateau: Plateau | None = None

    def check(self, curve: Sequence[tuple[int, float]], next_batch: int) -> StopDecision:
        """Decide after a round was trained and evaluated. ``curve`` is the learning curve so
        far, (labelled frames, metric) per round in order; ``next_batch`` what one more
        round would add."""
        if not curve:
            return StopDecision(False, "")
        n, value = curve[-1]
        if self.target is not None and value >= self.target:
            return StopDecision(True, f"target reached: {value:.4f} >= {self.target:.4f}")
        if self.max_rounds is not None and len(curve) >= self.max_rounds:
            return StopDecision(True, f"{len(curve)} rounds done (max_rounds)")
        if self.budget is not None and n + next_batch > self.budget:
            return StopDecision(
                True, f"budget: {n} labelled, one more batch of {next_batch} exceeds {self.budget}"
            )
        if self.plateau is not None and len(curve) >= self.plateau.window:
            est = slope_per_1000(curve[-self.plateau.window :], self.plateau.confidence)
            if est.upper < self.plateau.min_gain:
                return StopDecision(
                    True,
                    f"plateau: gain {est.slope:+.4f} per 1,000 labels over the last "
                    f"{est.n_points} rounds, {self.plateau.confidence:.0%} upper bound "
                    f"{est.upper:+.4f} < {self.plateau.min_gain}",
                )
        if next_batch <= 0:
            return StopDecision(True, "the pool is exhausted")
        return StopDecision(False, "")
