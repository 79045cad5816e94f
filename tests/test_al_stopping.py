"""Stopping rules: budget, rounds, target and a plateau that needs evidence."""

from __future__ import annotations

import numpy as np
import pytest

from scenesift.al.stopping import Plateau, StoppingRule, slope_per_1000


def test_nothing_set_never_stops_until_the_pool_is_empty():
    rule = StoppingRule()
    assert not rule.check([(100, 0.3), (200, 0.4)], next_batch=100).stop
    assert rule.check([(100, 0.3)], next_batch=0).reason == "the pool is exhausted"


def test_target_budget_and_rounds():
    curve = [(100, 0.30), (200, 0.41)]
    assert StoppingRule(target=0.4).check(curve, 100).stop
    assert not StoppingRule(target=0.42).check(curve, 100).stop
    assert StoppingRule(budget=250).check(curve, 100).stop  # 200 + 100 > 250
    assert not StoppingRule(budget=300).check(curve, 100).stop
    assert StoppingRule(max_rounds=2).check(curve, 100).stop
    assert "target" in StoppingRule(target=0.4, max_rounds=2).check(curve, 100).reason


def test_slope_is_per_thousand_labels_with_an_upper_bound():
    est = slope_per_1000([(1000, 0.1), (2000, 0.2), (3000, 0.3)], confidence=0.9)
    assert est.slope == pytest.approx(0.1) and est.upper == pytest.approx(0.1)
    noisy = slope_per_1000([(1000, 0.1), (2000, 0.25), (3000, 0.28)], confidence=0.9)
    assert noisy.upper > noisy.slope
    with pytest.raises(ValueError, match=">= 3 points"):
        slope_per_1000([(1000, 0.1), (2000, 0.2)], 0.9)


def test_plateau_stops_a_flat_curve_but_not_a_rising_or_noisy_one():
    rule = StoppingRule(plateau=Plateau(window=4, min_gain=0.02, confidence=0.9))
    flat = [(n, 0.5 + 0.001 * i) for i, n in enumerate(range(100, 900, 100))]
    rising = [(n, 0.1 + 0.0005 * n) for n in range(100, 900, 100)]  # +0.5 per 1,000
    rng = np.random.default_rng(0)
    noisy = [(n, 0.5 + rng.normal(0, 0.05)) for n in range(100, 500, 100)]
    decision = rule.check(flat, 100)
    assert decision.stop and decision.reason.startswith("plateau")
    assert not rule.check(rising, 100).stop
    assert not rule.check(noisy, 100).stop  # flat on average, but no evidence yet
    assert not rule.check(flat[:3], 100).stop  # fewer points than the window


def test_bad_plateau_settings_are_refused():
    with pytest.raises(ValueError, match="window"):
        Plateau(window=2)
    with pytest.raises(ValueError, match="confidence"):
        Plateau(confidence=1.0)
