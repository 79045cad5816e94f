"""Strategies: which rows of a ``Pool`` to label next, built from a spec.

Every strategy is a small class configured in ``__init__`` (scikit-learn style: the
parameters are attributes, ``get_params()`` returns them, no global state) with
``select(pool, budget, rng) -> Selection``. Two kinds:

* score strategies (``ScoreStrategy``) give every pool row a score and take the top ``k``
  (ties to the lower row): random, least_confidence, margin, entropy, uncertain_boxes,
  class_aware, localization_stability, bald, box_disagreement. Wrappers can rank the
  whole pool through their ``score``.
* batch strategies choose picks that depend on each other: coreset, cluster_uncertainty,
  badge, balance_situations, balance_classes.

``Dedup`` and ``Fusion`` compose any of them; ``make_strategy`` builds all of them from a
dict / TOML table::

    {"name": "fusion", "method": "rank",
     "parts": [{"name": "least_confidence", "target": "detections", "weight": 0.7},
               {"name": "balance_situations", "weight": 0.3}],
     "dedup": {"per_drive": 2, "window": 10.0}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from scenesift.al import balance, diversity, heuristics
from scenesift.al.dedup import dedup_ranked
from scenesift.al.heuristics import check_choice, check_empty, top_k
from scenesift.al.pool import Pool, Selection, field_value
from scenesift.errors import ConfigError, did_you_mean

TARGETS: tuple[str, ...] = ("detections", "situations")

#: Each optional Pool field in words, and what provides it: named when it is missing.
INPUTS: dict[str, tuple[str, str]] = {
    "situation_scores": (
        "the tagger's situation scores",
        "`scenesift tagger train`, then `scenesift tagger predict` (or, in a detector "
        "campaign, set learner.situations = true: a tagger each round trains on its labels)",
    ),
    "situation_mc_scores": (
        "situation samples of a tagger ensemble",
        "a tagger campaign with `ensemble` > 1 (`scenesift al start`)",
    ),
    "detections": (
        "detections",
        "`--predictions` (your model's file) or `scenesift detector predict`",
    ),
    "embeddings": ("frame embeddings", "`scenesift embed`"),
    "flip_detections": (
        "detections on the flipped frames",
        'a detector campaign with learner.tta = "flip" (`scenesift al start`)',
    ),
}


def missing_input(strategy: str, field: str) -> str:
    """The sentence for a strategy whose input is missing: what it needs and which command
    provides it."""
    what, command = INPUTS.get(field, (f"Pool.{field}", "the model that fills it"))
    return f"strategy {strategy!r} needs {what} (Pool.{field}), which is missing: run {command}"


_SITUATION_FUNCS = {
    "least_confidence": heuristics.situation_least_confidence,
    "margin": heuristics.situation_margin,
    "entropy": heuristics.situation_entropy,
}


# ---------------------------------------------------------------- validation helpers


def _check_int(param: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{param} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _check_number(param: str, value: Any, lo: float, hi: float, hi_open: bool = False) -> float:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    if not ok or not (lo <= value < hi if hi_open else lo <= value <= hi):
        bracket = ")" if hi_open else "]"
        raise ValueError(f"{param} must be a number in [{lo}, {hi}{bracket}; got {value!r}")
    return float(value)


def _fmt(value: Any) -> str:
    if isinstance(value, BaseStrategy):
        return value.label
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _set_box_aggregation(
    strategy: BaseStrategy, agg: str, k: int, empty: float | str, min_score: float
) -> None:
    """Check and set how a box strategy turns box scores into a frame score (``agg``, ``k``,
    ``empty``, ``min_score``: see ``heuristics.aggregate_boxes``)."""
    check_choice("agg", agg, heuristics.BOX_AGGREGATIONS)
    check_empty(empty)
    strategy.agg = agg
    strategy.k = _check_int("k", k, 1)
    strategy.empty = empty
    strategy.min_score = _check_number("min_score", min_score, 0.0, 1.0)


def _box_params(params: dict[str, Any]) -> dict[str, Any]:
    """A box strategy's label parameters: ``k`` only for topk_mean, ``min_score`` when set."""
    shown = dict(params)
    if shown.get("agg") != "topk_mean":
        shown.pop("k", None)
    if not shown.get("min_score"):
        shown.pop("min_score", None)
    return shown


# ---------------------------------------------------------------- bases


class BaseStrategy:
    """Shared plumbing: budget and pool checks, the readable label, ``get_params``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    _param_names: ClassVar[tuple[str, ...]] = ()

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, as given (scikit-learn convention)."""
        return {p: getattr(self, p) for p in self._param_names}

    def _shown_params(self) -> dict[str, Any]:
        return self.get_params()

    @property
    def label(self) -> str:
        """Name with parameters, stored with every pick: ``entropy(target=situations, agg=max)``."""
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in self._shown_params().items())
        return f"{self.name}({params})"

    def __repr__(self) -> str:
        return self.label

    def required_fields(self) -> tuple[str, ...]:
        """Pool fields this strategy reads that may be None."""
        return ()

    def check(self, pool: Pool) -> None:
        """Raise a ValueError naming any missing or misaligned Pool field."""
        n = len(pool)
        for f in self.required_fields():
            value = field_value(pool, f)
            if value is None:
                raise ConfigError(missing_input(self.name, f))
            if f == "situation_mc_scores":
                rows = np.shape(value)[1] if np.ndim(value) == 3 else -1
            elif f.startswith(("detections", "flip_detections")):
                continue
            else:
                rows = len(value)
            if rows != n:
                raise ValueError(f"Pool.{f} has {rows} frames, the pool {n}")

    def rank(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` distinct pool rows, best first, and their scores."""
        raise NotImplementedError

    def pool_scores(self, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray | None:
        """A score for every row when this strategy has one (its batch of ``k`` = the top
        ``k``), so wrappers can rank the whole pool without asking for more picks."""
        return None

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection:
        """Pick ``min(budget, len(pool))`` distinct rows (fewer only under ``Dedup``)."""
        budget = _check_int("budget", budget, 0)
        k = min(budget, len(pool))
        if k == 0:
            return Selection(np.zeros(0, np.int64), np.zeros(0), self.label)
        self.check(pool)
        rows, scores = self.rank(pool, k, rng)
        rows = np.asarray(rows, np.int64)[:k]
        if len(np.unique(rows)) != len(rows):  # a bug, never a user error
            raise RuntimeError(f"{self.label} picked a row twice")
        return Selection(rows, np.asarray(scores, np.float64)[: len(rows)], self.label)


class ScoreStrategy(BaseStrategy):
    """A strategy that scores every row independently; picks are the top ``k``."""

    def score(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        """(n,) float64 informativeness, higher = pick first; NaN ranks last."""
        raise NotImplementedError

    def rank(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        s = self.score(pool, rng)
        rows = top_k(s, k)
        return rows, s[rows]

    def pool_scores(self, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray | None:
        return self.score(pool, rng)


# ---------------------------------------------------------------- score strategies


class RandomStrategy(ScoreStrategy):
    """Uniform random sample: the baseline every learning curve is compared with."""

    name = "random"
    description = "uniform random frames (the baseline)"

    def score(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        return rng.random(len(pool))


class _Uncertainty(ScoreStrategy):
    """Uncertainty of the tagger (``target="situations"``) or the detector (``"detections"``).

    ``agg``: over situations "mean" (default), "max" or "sum"; over boxes "max" (default),
    "mean", "sum" or "topk_mean" (with ``k``). ``empty`` and ``min_score`` apply to
    detections: see ``heuristics.aggregate_boxes`` / ``detection_uncertainty``.
    """

    _param_names = ("target", "agg", "k", "empty", "min_score")

    def __init__(
        self,
        target: str = "detections",
        agg: str | None = None,
        k: int = 3,
        empty: float | str = "median",
        min_score: float = 0.0,
    ) -> None:
        check_choice("target", target, TARGETS)
        self.target = target
        if target == "situations":
            agg = "mean" if agg is None else agg
            check_choice("agg", agg, heuristics.LABEL_AGGREGATIONS)
            check_empty(empty)
            self.agg = agg
            self.k = _check_int("k", k, 1)
            self.empty = empty
            self.min_score = _check_number("min_score", min_score, 0.0, 1.0)
        else:
            _set_box_aggregation(self, "max" if agg is None else agg, k, empty, min_score)

    def _shown_params(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"target": self.target, "agg": self.agg}
        if self.target == "detections":
            if self.agg == "topk_mean":
                shown["k"] = self.k
            shown["empty"] = self.empty
            if self.min_score:
                shown["min_score"] = self.min_score
        return shown

    def required_fields(self) -> tuple[str, ...]:
        return ("situation_scores",) if self.target == "situations" else ("detections",)

    def score(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        if self.target == "situations":
            return _SITUATION_FUNCS[self.name](pool.situation_scores, self.agg)
        assert pool.detections is not None
        return heuristics.detection_uncertainty(
            pool.detections,
            len(pool),
            heuristic=self.name,
            agg=self.agg,
            k=self.k,
            empty=self.empty,
            min_score=self.min_score,
        )


class LeastConfidence(_Uncertainty):
    name = "least_confidence"
    description = "least confident frames (seed 002): 1 - top probability, per box or label"


class Margin(_Uncertainty):
    name = "margin"
    description = "smallest margin between the two best classes (per box) or p and 1-p"


class Entropy(_Uncertainty):
    name = "entropy"
    description = "highest entropy of class probabilities (per box) or situation sigmoids"


class UncertainBoxes(ScoreStrategy):
    """The count and size of uncertain boxes (``heuristics.uncertain_boxes``): for files of
    scores only it ranks crowded, doubtful frames above a frame with one doubtful box."""

    name = "uncertain_boxes"
    description = "sum of box uncertainty (class vector, else score), small boxes weighted up"
    _param_names = ("heuristic", "small", "min_score")

    def __init__(
        self, heuristic: str = "margin", small: float = 2.0, min_score: float = 0.0
    ) -> None:
        check_choice("heuristic", heuristic, heuristics.BOX_HEURISTICS)
        self.heuristic = heuristic
        self.small = _check_number("small", small, 0.0, math.inf)
        self.min_score = _check_number("min_score", min_score, 0.0, 1.0)

    def required_fields(self) -> tuple[str, ...]:
        return ("detections",)

    def score(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        assert pool.detections is not None
        return heuristics.uncertain_boxes(
            pool.detections, len(pool), self.heuristic, self.small, self.min_score
        )


class ClassAware(ScoreStrategy):
    """Detector uncertainty weighted by the rarity of each box's class in the labelled set
    (``heuristics.class_rarity_weights`` of ``Pool.labelled_class_counts``): the plain
    heuristics spend the budget on the common classes the detector sees most of, where a
    doubtful rare object is worth more labels."""

    name = "class_aware"
    description = "box uncertainty x rarity of its class among labelled boxes (rare weigh more)"
    _param_names = ("heuristic", "agg", "k", "empty", "min_score")

    def __init__(
        self,
        heuristic: str = "least_confidence",
        agg: str = "max",
        k: int = 3,
        empty: float | str = "median",
        min_score: float = 0.0,
    ) -> None:
        check_choice("heuristic", heuristic, heuristics.BOX_HEURISTICS)
        self.heuristic = heuristic
        _set_box_aggregation(self, agg, k, empty, min_score)

    def _shown_params(self) -> dict[str, Any]:
        return _box_params(self.get_params())

    def required_fields(self) -> tuple[str, ...]:
        return ("detections",)

    def score(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        assert pool.detections is not None
        n_classes = np.shape(pool.detections.class_probs)[1]
        if len(pool.classes) != n_classes:
            raise ValueError(
                f"class_aware needs Pool.classes for the {n_classes} columns of "
                f"detections.class_probs; got {len(pool.classes)} classes"
            )
        weights = heuristics.class_rarity_weights(pool.classes, pool.labelled_class_counts)
        return heuristics.detection_uncertainty(
            pool.detections,
            len(pool),
            heuristic=self.heuristic,
            agg=self.agg,
            k=self.k,
            empty=self.empty,
            min_score=self.min_score,
            class_weights=weights,
        )


class LocalizationStability(ScoreStrategy):
    """Kao et al. 2018's localisation stability (``heuristics.localization_stability``):
    1 - IoU of each box with its best match on the flipped frame, max over the frame by
    default. Reads ``Pool.flip_detections``, which a detector campaign fills with
    ``learner.tta = "flip"``: one more head pass instead of an ensemble."""

    name = "localization_stability"
    description = "1 - IoU of each box with its match on the flipped frame (needs tta = flip)"
    _param_names = ("agg", "k", "empty", "min_score")

    def __init__(
        self, agg: str = "max", k: int = 3, empty: float | str = "median", min_score: float = 0.0
    ) -> None:
        _set_box_aggregation(self, agg, k, empty, min_score)

    def _shown_params(self) -> dict[str, Any]:
        return _box_params(self.get_params())

    def required_fields(self) -> tuple[str, ...]:
        return ("detections", "flip_detections")

    def score(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        assert pool.detections is not None and pool.flip_detections is not None
        return heuristics.localization_stability(
            pool.detections,
            pool.flip_detections,
            len(pool),
            agg=self.agg,
            k=self.k,
            empty=self.empty,
            min_score=self.min_score,
        )


class Bald(ScoreStrategy):
    """BALD on the tagger's MC-dropout / ensemble samples (``Pool.situation_mc_scores``)."""

    name = "bald"
    description = "mutual information of situation MC-dropout / ensemble samples (BALD)"
    _param_names = ("agg",)

    def __init__(self, agg: str = "mean") -> None:
        check_choice("agg", agg, heuristics.LABEL_AGGREGATIONS)
        self.agg = agg

    def required_fields(self) -> tuple[str, ...]:
        return ("situation_mc_scores",)

    def score(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        return heuristics.bald(pool.situation_mc_scores, self.agg)


class BoxDisagreement(ScoreStrategy):
    """Disagreement of detector ensemble members / MC passes (``Detections.member``)."""

    name = "box_disagreement"
    description = "ensemble / MC disagreement on boxes: coordinate spread + unmatched share"
    _param_names = ("iou", "agg", "k", "reference")

    def __init__(self, iou: float = 0.5, agg: str = "max", k: int = 3, reference: int = 0):
        check_choice("agg", agg, heuristics.BOX_AGGREGATIONS)
        self.iou = _check_number("iou", iou, 0.0, 1.0)
        self.agg = agg
        self.k = _check_int("k", k, 1)
        self.reference = _check_int("reference", reference, 0)

    def _shown_params(self) -> dict[str, Any]:
        shown = self.get_params()
        if self.agg != "topk_mean":
            del shown["k"]
        return shown

    def required_fields(self) -> tuple[str, ...]:
        return ("detections", "detections.member")

    def score(self, pool: Pool, rng: np.random.Generator) -> np.ndarray:
        assert pool.detections is not None
        return heuristics.box_disagreement(
            pool.detections, len(pool), self.iou, self.agg, self.k, self.reference
        )


# ---------------------------------------------------------------- batch strategies


class CoreSet(BaseStrategy):
    """k-center greedy on ``Pool.embeddings``, labelled frames as initial centres.

    ``method``: "exact" (``diversity.kcenter_greedy``), "approx" (``kcenter_approx`` with
    ``dims``, ``batch``, ``tolerance``) or "auto" (exact while pool x budget <= 1e8).
    """

    name = "coreset"
    description = "core-set k-center greedy on embeddings: cover the pool, labelled included"
    _param_names = ("method", "dims", "batch", "tolerance", "use_labelled")

    def __init__(
        self,
        method: str = "auto",
        dims: int | None = 128,
        batch: int = 256,
        tolerance: float = 0.05,
        use_labelled: bool = True,
    ) -> None:
        check_choice("method", method, ("auto", "exact", "approx"))
        self.method = method
        self.dims = None if dims is None else _check_int("dims", dims, 1)
        self.batch = _check_int("batch", batch, 1)
        self.tolerance = _check_number("tolerance", tolerance, 0.0, 1.0, hi_open=True)
        if not isinstance(use_labelled, bool):
            raise ValueError(f"use_labelled must be true or false; got {use_labelled!r}")
        self.use_labelled = use_labelled

    def _shown_params(self) -> dict[str, Any]:
        shown = self.get_params()
        if self.method == "exact":
            for p in ("dims", "batch", "tolerance"):
                del shown[p]
        return shown

    def required_fields(self) -> tuple[str, ...]:
        return ("embeddings",)

    def rank(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        labelled = pool.labelled_embeddings if self.use_labelled else None
        exact = self.method == "exact" or (self.method == "auto" and len(pool) * k <= 1e8)
        if exact:
            return diversity.kcenter_greedy(pool.embeddings, k, labelled, rng)
        return diversity.kcenter_approx(
            pool.embeddings, k, labelled, rng, self.dims, self.batch, self.tolerance
        )


def _uncertainty_part(spec: Any) -> ScoreStrategy:
    if spec is None:
        return LeastConfidence()
    part = make_strategy(spec) if isinstance(spec, Mapping | str) else spec
    if not isinstance(part, ScoreStrategy):
        allowed = ", ".join(n for n, c in _REGISTRY.items() if issubclass(c, ScoreStrategy))
        raise ValueError(
            f"uncertainty must be a per-frame score strategy ({allowed}); got {part!r}"
        )
    return part


class _UncertainDiverse(BaseStrategy):
    _param_names = ("uncertainty", "candidates")

    def __init__(self, uncertainty: Any = None, candidates: float | None = None) -> None:
        try:
            self.uncertainty = _uncertainty_part(uncertainty)
        except ValueError as e:
            raise ValueError(f"uncertainty: {e}") from None
        if candidates is not None:
            candidates = _check_number("candidates", candidates, 1.0, math.inf)
        self.candidates = candidates

    def required_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(("embeddings", *self.uncertainty.required_fields())))

    def check(self, pool: Pool) -> None:
        super().check(pool)
        self.uncertainty.check(pool)


class ClusterUncertainty(_UncertainDiverse):
    """k-means over the ``candidates x budget`` most uncertain frames, the most uncertain
    frame per cluster (``diversity.cluster_then_uncertainty``)."""

    name = "cluster_uncertainty"
    description = "k-means over the most uncertain frames, the most uncertain per cluster"

    def __init__(self, uncertainty: Any = None, candidates: float = 10.0) -> None:
        super().__init__(uncertainty, candidates)

    def rank(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        scores = self.uncertainty.score(pool, rng)
        return diversity.cluster_then_uncertainty(
            pool.embeddings, scores, k, rng, self.candidates or 10.0
        )


class Badge(_UncertainDiverse):
    """k-means++ seeding weighted by uncertainty (``diversity.badge_select``)."""

    name = "badge"
    description = "BADGE-style k-means++ seeding on embeddings, weighted by uncertainty"

    def rank(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        scores = self.uncertainty.score(pool, rng)
        return diversity.badge_select(pool.embeddings, scores, k, rng, self.candidates)


def _check_targets(targets: Any) -> Any:
    if targets is None or isinstance(targets, Mapping):
        return targets
    return _check_number("targets", targets, 0.0, 1.0)


class BalanceSituations(BaseStrategy):
    """Fill situations short of labels (``balance.balance_situations``). ``targets``: None
    = uniform share over situations, a number = at least that share for each, or a table
    situation -> share."""

    name = "balance_situations"
    description = "fill situations short of labels: frames with most expected deficit"
    _param_names = ("targets",)

    def __init__(self, targets: Any = None) -> None:
        self.targets = _check_targets(targets)

    def _shown_params(self) -> dict[str, Any]:
        return {"targets": "uniform" if self.targets is None else self.targets}

    def required_fields(self) -> tuple[str, ...]:
        return ("situation_scores",)

    def check(self, pool: Pool) -> None:
        super().check(pool)
        balance.target_proportions(pool.situations, self.targets, "situations")

    def rank(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return balance.balance_situations(
            pool.situation_scores,
            pool.situations,
            pool.labelled_situation_counts,
            pool.n_labelled,
            k,
            rng,
            self.targets,
        )


class BalanceClasses(BaseStrategy):
    """Fill object classes short of labelled boxes (``balance.balance_classes``)."""

    name = "balance_classes"
    description = "fill object classes short of labelled boxes, from detections' class_probs"
    _param_names = ("targets", "min_score")

    def __init__(self, targets: Any = None, min_score: float = 0.0) -> None:
        self.targets = _check_targets(targets)
        self.min_score = _check_number("min_score", min_score, 0.0, 1.0)

    def _shown_params(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"targets": "uniform" if self.targets is None else self.targets}
        if self.min_score:
            shown["min_score"] = self.min_score
        return shown

    def required_fields(self) -> tuple[str, ...]:
        return ("detections",)

    def check(self, pool: Pool) -> None:
        super().check(pool)
        balance.target_proportions(pool.classes, self.targets, "classes")

    def rank(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        assert pool.detections is not None
        return balance.balance_classes(
            pool.detections,
            pool.classes,
            pool.labelled_class_counts,
            len(pool),
            k,
            rng,
            self.targets,
            self.min_score,
        )


# ---------------------------------------------------------------- composition


class Dedup(BaseStrategy):
    """At most ``per_drive`` frames of a drive within any ``window`` seconds, around any
    strategy (``dedup.dedup_ranked``).

    A strategy with a score for every frame (score strategies, fusion) has its whole
    ranking filtered; a batch strategy is asked for ``oversample x budget`` picks, then 4x
    more while too few survive. Returns fewer than the budget when the pool cannot supply
    that many distinct moments, unless ``fill``, which tops the batch up with the best
    rejected frames.
    """

    name = "dedup"
    description = "wrapper: at most per_drive frames of a drive within window seconds"
    _param_names = ("strategy", "per_drive", "window", "fill", "oversample")

    def __init__(
        self,
        strategy: BaseStrategy,
        per_drive: int = 1,
        window: float = 10.0,
        fill: bool = False,
        oversample: float = 4.0,
    ) -> None:
        if not isinstance(strategy, BaseStrategy):
            raise ValueError(f"strategy must be a strategy; got {strategy!r}")
        self.strategy = strategy
        self.per_drive = _check_int("per_drive", per_drive, 1)
        self.window = _check_number("window", window, 0.0, math.inf)
        if not isinstance(fill, bool):
            raise ValueError(f"fill must be true or false; got {fill!r}")
        self.fill = fill
        self.oversample = _check_number("oversample", oversample, 1.0, math.inf)

    @property
    def label(self) -> str:
        fill = ", fill" if self.fill else ""
        return (
            f"{self.strategy.label} | dedup(per_drive={self.per_drive}, "
            f"window={self.window:g}s{fill})"
        )

    def required_fields(self) -> tuple[str, ...]:
        return self.strategy.required_fields()

    def check(self, pool: Pool) -> None:
        self.strategy.check(pool)

    def rank(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        n = len(pool)

        def kept_of(rows: np.ndarray) -> np.ndarray:
            return dedup_ranked(rows, pool.drives, pool.timestamps, self.per_drive, self.window, k)

        scores = self.strategy.pool_scores(pool, k, rng)
        if scores is not None:
            rows = top_k(scores, n)
            ranked = scores[rows]
            kept = kept_of(rows)
        else:
            want = min(n, math.ceil(k * self.oversample))
            while True:
                rows, ranked = self.strategy.rank(pool, want, rng)
                kept = kept_of(rows)
                if len(kept) >= k or want >= n:
                    break
                want = min(n, want * 4)
        if self.fill and len(kept) < k:
            rejected = np.setdiff1d(np.arange(len(rows)), kept)[: k - len(kept)]
            kept = np.concatenate([kept, rejected])
        return rows[kept], np.asarray(ranked)[kept]


def _rank_values(rows: np.ndarray, n: int) -> np.ndarray:
    """1 - position / n for ranked ``rows``; rows not listed share the mean of the
    positions left (a partial list says nothing about the order of the rest)."""
    listed = len(rows)
    out = np.full(n, 1.0 - (listed + n - 1) / 2 / n)
    out[rows] = 1.0 - np.arange(listed) / n
    return out


class Fusion(BaseStrategy):
    """Weighted fusion of several strategies' opinions about every frame.

    ``method="rank"``: each part's ranking becomes 1 - position / n (weighted Borda);
    ``method="score"``: each score strategy's scores are min-max normalised to [0, 1] over
    the pool. Batch strategies have no score for frames they did not pick, and their picks
    depend on the budget (balance targets, cluster counts), so in both methods they
    contribute by rank over their own batch of ``k``, unlisted frames tied below it. The
    fused value is the weighted mean; the batch is its top ``k``. Fusing a strategy with
    itself reproduces it: every part draws from ``rng`` as the fusion received it.
    """

    name = "fusion"
    description = "weighted rank or normalised-score fusion of several strategies"
    _param_names = ("parts", "method")

    def __init__(
        self,
        parts: Sequence[tuple[BaseStrategy, float] | BaseStrategy],
        method: str = "rank",
    ) -> None:
        check_choice("method", method, ("rank", "score"))
        if not parts:
            raise ValueError("parts must list at least one strategy")
        pairs: list[tuple[BaseStrategy, float]] = []
        for i, p in enumerate(parts):
            s, w = p if isinstance(p, tuple) else (p, 1.0)
            if not isinstance(s, BaseStrategy):
                raise ValueError(f"parts[{i}] must be a strategy; got {s!r}")
            pairs.append((s, _check_number(f"parts[{i}].weight", w, 0.0, math.inf)))
        if sum(w for _, w in pairs) <= 0:
            raise ValueError("parts: the weights must not all be 0")
        self.parts = pairs
        self.method = method

    @property
    def label(self) -> str:
        parts = " + ".join(f"{w:g}*{s.label}" for s, w in self.parts)
        return f"fusion({self.method}: {parts})"

    def required_fields(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f for s, _ in self.parts for f in s.required_fields()))

    def check(self, pool: Pool) -> None:
        for s, _ in self.parts:
            s.check(pool)

    def _values(self, part: BaseStrategy, pool: Pool, k: int, rng: np.random.Generator):
        n = len(pool)
        if isinstance(part, ScoreStrategy):
            s = part.score(pool, rng)
            if self.method == "rank":
                return _rank_values(top_k(s, n), n)
            finite = np.isfinite(s)
            if not finite.any():
                return np.zeros(n)
            lo, hi = s[finite].min(), s[finite].max()
            v = (s - lo) / (hi - lo) if hi > lo else np.zeros(n)
            return np.where(finite, v, 0.0)
        rows, _ = part.rank(pool, k, rng)
        return _rank_values(np.asarray(rows, np.int64), n)

    def pool_scores(self, pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
        fused = np.zeros(len(pool))
        state = rng.bit_generator.state
        for part, w in self.parts:
            # every part draws from the generator as this strategy received it, so a part
            # behaves exactly as it would alone (random tie-breaks included)
            rng.bit_generator.state = state
            fused += w * self._values(part, pool, k, rng)
        return fused / sum(w for _, w in self.parts)

    def rank(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        fused = self.pool_scores(pool, k, rng)
        rows = top_k(fused, k)
        return rows, fused[rows]


# ---------------------------------------------------------------- registry and specs

_REGISTRY: dict[str, type[BaseStrategy]] = {
    c.name: c
    for c in (
        RandomStrategy,
        LeastConfidence,
        Margin,
        Entropy,
        UncertainBoxes,
        ClassAware,
        LocalizationStability,
        Bald,
        BoxDisagreement,
        CoreSet,
        ClusterUncertainty,
        Badge,
        BalanceSituations,
        BalanceClasses,
        Fusion,
    )
}

#: Strategy names with a one-line description (CLI help). Any spec may also carry
#: ``dedup = {per_drive = m, window = s}``.
STRATEGIES: dict[str, str] = {name: cls.description for name, cls in _REGISTRY.items()}
STRATEGIES["dedup"] = "key of any spec: at most per_drive frames of a drive per window seconds"
_DEDUP_KEYS = ("per_drive", "window", "fill", "oversample")


def _unknown_keys(where: str, keys: Sequence[str], allowed: Sequence[str]) -> None:
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(allowed)}")


def make_strategy(spec: Mapping[str, Any] | str) -> BaseStrategy:
    """Build a strategy from a spec: a name, or a table with ``name`` and the strategy's
    parameters, optionally ``dedup = {per_drive, window, fill, oversample}``. ``fusion``
    takes ``parts`` (specs, each with an optional ``weight``, default 1) and ``method``;
    ``cluster_uncertainty`` and ``badge`` take ``uncertainty`` (a score
    strategy spec, default least_confidence). Errors are ValueErrors naming the bad key or
    value and what is allowed."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"a strategy spec is a name or a table with a 'name'; got {spec!r}")
    spec = dict(spec)
    names = ", ".join(_REGISTRY)
    if "name" not in spec:
        raise ValueError(f"strategy spec: missing key 'name' (one of {names})")
    name = spec.pop("name")
    if name == "dedup":
        raise ValueError(
            "strategy spec: 'dedup' is a wrapper, not a name: add it as a key of the strategy "
            "it wraps, e.g. {name = 'entropy', dedup = {per_drive = 2, window = 10.0}}"
        )
    if name not in _REGISTRY:
        raise ValueError(
            f"strategy spec: unknown name {name!r}; allowed names: {names}"
            + did_you_mean(name, _REGISTRY)
        )
    cls = _REGISTRY[name]
    if "weight" in spec:
        raise ValueError(f"{name}: key 'weight' is only allowed in the parts of a fusion")
    dedup = spec.pop("dedup", None)
    _unknown_keys(f"strategy {name!r}", list(spec), ("name", *cls._param_names, "dedup"))
    if cls is Fusion:
        spec["parts"] = _fusion_parts(spec.get("parts"))
    strategy = cls(**spec)
    if dedup is not None:
        if not isinstance(dedup, Mapping):
            raise ValueError(f"{name}: key 'dedup' must be a table of {', '.join(_DEDUP_KEYS)}")
        _unknown_keys(f"strategy {name!r}, dedup", list(dedup), _DEDUP_KEYS)
        strategy = Dedup(strategy, **dedup)
    return strategy


def _fusion_parts(parts: Any) -> list[tuple[BaseStrategy, float]]:
    if not isinstance(parts, Sequence) or isinstance(parts, str) or not parts:
        raise ValueError("fusion: key 'parts' must be a non-empty list of strategy specs")
    out = []
    for i, part in enumerate(parts):
        if isinstance(part, str):
            part = {"name": part}
        if not isinstance(part, Mapping):
            raise ValueError(f"fusion parts[{i}]: a strategy spec is a table; got {part!r}")
        part = dict(part)
        weight = part.pop("weight", 1.0)
        try:
            w = _check_number("weight", weight, 0.0, math.inf)
            out.append((make_strategy(part), w))
        except ValueError as e:
            raise ValueError(f"fusion parts[{i}]: {e}") from None
    return out
