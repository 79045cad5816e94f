"""A made-up results table shaped like a real experiment's, for tests of the figures and the
report (``tests/test_report.py``, ``tests/test_experiment_plots.py``) and for previews
(``scripts/screenshot_report.py``). It lives with the tests, not in the package, so no
installed code can ship it as a result.

The numbers are made up but plausible: saturating learning curves where ``least_confidence``
learns faster than ``random``, seed noise, per-class and per-situation slices, a variance
study over random subsets, and a tagger study. Nothing here is evidence of anything.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from scenesift.experiments.results import frame

CLASSES = ("car", "truck", "pedestrian", "cyclist", "golf_cart", "traffic_cone")
SITUATIONS = ("day", "night", "rain", "fog", "roadworks", "tunnel")
RARE = ("fog", "snow", "tunnel", "roadworks")


def _curve(n: np.ndarray, top: float, speed: float) -> np.ndarray:
    return top * (1.0 - np.exp(-n / speed))


def synthetic_results(
    seeds: int = 4,
    rounds: int = 7,
    initial: int = 100,
    batch: int = 100,
    strategies: Sequence[str] = ("random", "least_confidence"),
    variance_runs: int = 12,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows for the ``strategies``, ``variance`` and ``tagger`` studies."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    n = initial + batch * np.arange(rounds)
    base = {"experiment": "synthetic", "n_frames": 400, "seconds": 1.0}
    for k, strategy in enumerate(strategies):
        speed = 260.0 / (1.0 + 0.6 * k)
        for s in range(seeds):
            run = f"{strategy}-s{s}"
            common = {**base, "study": "strategies", "run": run, "strategy": strategy, "seed": s}
            noise = rng.normal(0, 0.015, rounds)
            overall = np.clip(_curve(n, 0.76, speed) + noise, 0, 1)
            for r in range(rounds):
                rows.append(
                    {
                        **common,
                        "round": r,
                        "n_labelled": int(n[r]),
                        "metric": "map50",
                        "value": float(overall[r]),
                    }
                )
                rows.append(
                    {
                        **common,
                        "round": r,
                        "n_labelled": int(n[r]),
                        "metric": "map",
                        "value": float(overall[r] * 0.55),
                    }
                )
            for j, c in enumerate(CLASSES):
                top, sp = 0.9 - 0.08 * j, speed * (0.6 + 0.25 * j)
                v = np.clip(_curve(n, top, sp) + rng.normal(0, 0.02, rounds), 0, 1)
                for r in range(rounds):
                    value = np.nan if c == "golf_cart" and r == 0 else float(v[r])
                    rows.append(
                        {
                            **common,
                            "round": r,
                            "n_labelled": int(n[r]),
                            "metric": "ap50",
                            "class": c,
                            "value": value,
                        }
                    )
            for j, sit in enumerate(SITUATIONS):
                v = np.clip(
                    _curve(n, 0.8 - 0.06 * j, speed * (1 + 0.2 * j)) + rng.normal(0, 0.02, rounds),
                    0,
                    1,
                )
                for r in range(rounds):
                    rows.append(
                        {
                            **common,
                            "round": r,
                            "n_labelled": int(n[r]),
                            "metric": "map50",
                            "situation": sit,
                            "value": float(v[r]),
                            "n_frames": 40 + 30 * j,
                        }
                    )
    pool = 2000
    for fraction in (0.1, 0.2, 0.4, 0.6, 1.0):
        for s in range(variance_runs if fraction < 1.0 else max(2, variance_runs // 4)):
            spread = 0.12 * (1.0 - fraction) + 0.01
            value = float(
                np.clip(_curve(fraction * pool, 0.74, 380) + rng.normal(0, spread / 2), 0, 1)
            )
            rows.append(
                {
                    **base,
                    "study": "variance",
                    "run": f"var-{fraction}-{s}",
                    "strategy": "random",
                    "seed": s,
                    "round": 0,
                    "fraction": fraction,
                    "n_labelled": int(fraction * pool),
                    "metric": "map50",
                    "value": value,
                }
            )
    for k, strategy in enumerate(("random", "situation_aware")):
        for s in range(seeds):
            for j, label in enumerate(RARE):
                auc = 0.5 + _curve(n, 0.42 - 0.04 * j, 500 / (1 + 1.5 * k))
                auc = np.clip(auc + rng.normal(0, 0.02, rounds), 0, 1)
                for r in range(rounds):
                    rows.append(
                        {
                            **base,
                            "study": "tagger",
                            "run": f"tag-{strategy}-{s}",
                            "strategy": strategy,
                            "seed": s,
                            "round": r,
                            "n_labelled": int(n[r]),
                            "metric": "auc",
                            "situation": label,
                            "value": float(auc[r]),
                        }
                    )
    return frame(rows)
