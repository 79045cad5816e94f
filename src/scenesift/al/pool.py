"""The unlabelled pool as plain arrays: the only thing a strategy sees.

Strategies never touch the store or a model (baal's separation of heuristics from the
loop): the campaign, or ``scenesift select`` for a user's own predictions, builds a
``Pool`` once per round, a strategy returns a ``Selection`` of row indices into it.

The two contracts meet in field names: a ``Strategy`` declares the optional Pool fields it
reads (``required_fields()``), a ``Learner`` the ones its models fill (``provides()``), so
a campaign whose strategy reads what its learner never fills is refused when it is created.
A dotted name is a field of a field: ``detections.member`` (an ensemble's detections).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from scenesift.records import Box, FrameRecord
    from scenesift.store import Store


@dataclass(frozen=True)
class Detections:
    """A detector's output for the pool, flattened: one row per detection.

    ``frame`` is the pool row each detection belongs to (frames with no rows had no
    detections); ``class_probs`` is each detection's full class-probability vector
    (rows sum to 1). ``member`` optionally tells which ensemble member / MC-dropout pass
    produced a detection (0..T-1), for disagreement strategies. ``has_class_probs`` marks
    the rows whose vector the model gave (None: all of them); the others (a COCO results
    file of score and category only, as YOLO writes it) hold a one-hot of the detected
    class, and uncertainty reads their ``scores`` instead.
    """

    frame: np.ndarray  # (m,) int64, pool row
    scores: np.ndarray  # (m,) float32, confidence of the top class
    class_probs: np.ndarray  # (m, C) float32
    boxes: np.ndarray  # (m, 4) float32, xyxy pixels
    member: np.ndarray | None = None  # (m,) int, ensemble member / MC pass
    has_class_probs: np.ndarray | None = None  # (m,) bool, None = every row has a vector


@dataclass(frozen=True)
class Pool:
    """Everything known about the candidate frames, row-aligned.

    Optional fields are ``None`` when that kind of prediction is not available; a strategy
    that needs one raises a clear error naming it.
    """

    frame_ids: np.ndarray  # (n,) int64, store frame ids (or row numbers for BYO data)
    drives: np.ndarray  # (n,) str/object, the drive of each frame
    timestamps: np.ndarray  # (n,) float64 seconds within the drive (NaN when unknown)
    situations: tuple[str, ...] = ()
    situation_scores: np.ndarray | None = None  # (n, S) sigmoid scores of the tagger
    situation_mc_scores: np.ndarray | None = None  # (T, n, S) MC-dropout / ensemble samples
    classes: tuple[str, ...] = ()
    detections: Detections | None = None
    #: the round's model on the horizontally flipped frames, boxes flipped back (member 0
    #: only): localisation stability compares them with ``detections``
    flip_detections: Detections | None = None
    embeddings: np.ndarray | None = None  # (n, d) float32, e.g. pooled backbone features
    labelled_embeddings: np.ndarray | None = None  # (k, d) already-labelled frames
    labelled_situation_counts: dict[str, int] = field(default_factory=dict)
    labelled_class_counts: dict[str, int] = field(default_factory=dict)
    n_labelled: int = 0

    def __len__(self) -> int:
        return len(self.frame_ids)


@dataclass(frozen=True)
class Selection:
    """A batch: pool rows in pick order, the score that ranked each, and why."""

    indices: np.ndarray  # (k,) int64 rows into the Pool, in pick order
    scores: np.ndarray  # (k,) float64, the strategy's score for each pick
    strategy: str  # the strategy's name with its parameters, stored with the picks


def field_value(pool: Pool, name: str) -> Any:
    """A Pool field by (dotted) name; None when it, or the field holding it, is None."""
    value: Any = pool
    for part in name.split("."):
        value = None if value is None else getattr(value, part)
    return value


class Strategy(Protocol):
    """Picks ``budget`` rows of a pool; deterministic given ``rng``."""

    name: str

    def required_fields(self) -> tuple[str, ...]:
        """The optional Pool fields it reads (it raises, naming one, when that is None)."""
        ...

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> Selection: ...


@dataclass(frozen=True)
class PoolOutputs:
    """What a round's models say about the pool: the fields of ``Pool`` they fill, and the
    boxes shown to labellers as pre-annotations (per frame name)."""

    detections: Detections | None = None
    situation_scores: np.ndarray | None = None  # (n, S)
    situation_mc_scores: np.ndarray | None = None  # (T, n, S), ensemble members
    flip_detections: Detections | None = None  # the flipped pass (``learner.tta = "flip"``)
    shown: Mapping[str, Sequence[Box]] = field(default_factory=dict)


@runtime_checkable
class Learner(Protocol):
    """What a campaign trains each round (``al.learners``): ``fit`` an ensemble on the
    labelled frames, ``evaluate`` its first member (the learning curve's y, ``metric``),
    and turn the members' predictions on the pool into ``PoolOutputs``."""

    kind: ClassVar[str]
    metric: ClassVar[str]  # the learning curve's default y
    ensemble: int
    min_score: float  # detections below it are neither scored nor shown
    slices: bool | list[str]  # evaluate per situation too

    def provides(self) -> tuple[str, ...]:
        """The Pool fields its rounds fill (``embeddings``: its backbone's pooled features)."""
        ...

    def has_truth(self, record: FrameRecord) -> bool:
        """Whether a frame's truth can train and evaluate this model."""
        ...

    def fit(
        self,
        store: Store,
        train: Sequence[FrameRecord],
        val: Sequence[FrameRecord],
        unlabelled: Sequence[FrameRecord] = (),
    ) -> list[Any]:
        """``ensemble`` models; the first is the round's model. ``unlabelled``: the pool's
        frames without labels, for a learner that trains on them too (self-training)."""
        ...

    def evaluate(
        self,
        model: Any,
        store: Store,
        frames: Sequence[FrameRecord],
        slices: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]: ...

    def pool_outputs(
        self, members: Sequence[Any], store: Store, records: Sequence[FrameRecord]
    ) -> PoolOutputs: ...

    def backbone(self, records: Sequence[FrameRecord] = ()) -> Any:
        """The backbone its models read (pooled features = the Pool's embeddings), at the
        input size its models take for ``records``."""
        ...

    def embed_device(self) -> str:
        """auto|cpu|cuda|mps: where the pool's embeddings are computed (its models' device)."""
        ...
