"""What a campaign trains each round, and what it reads back from the model.

A learner (the ``al.pool.Learner`` protocol) wraps an estimator for the loop: ``fit`` an
ensemble on the labelled frames, ``evaluate`` on the fixed evaluation split (the learning
curve's y), ``pool_outputs`` on the pool (what strategies score), and ``provides()`` the
Pool fields those outputs fill, which ``check_provided`` holds against a strategy's
``required_fields()`` before a campaign starts.

Two learners: the detector (seed 002's loop, mAP), trained in ``frozen`` mode on the cached
backbone pyramid so a round costs seconds to a minute on 2 CPU cores; and the situation
tagger (seed 000's model in the loop, ROC-AUC per situation), whose head trains on cached
pooled features in about a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from scenesift.al.pool import Detections, Learner, PoolOutputs, Strategy
from scenesift.errors import ConfigError
from scenesift.records import Box, FrameRecord, object_counts
from scenesift.store import Store

if TYPE_CHECKING:
    from scenesift.models.detector import DetectionArrays
    from scenesift.models.tagger import SituationTagger

#: Test-time augmentations a detector learner can add to its pool outputs.
TTA: tuple[str, ...] = ("none", "flip")

__all__ = [
    "LEARNERS",
    "DetectorLearner",
    "PoolOutputs",
    "TaggerLearner",
    "check_provided",
    "learner_for",
    "make_learner",
]


@dataclass
class DetectorLearner:
    """The CenterNet-style detector as a campaign's model.

    ``min_score``: detections below it are not scored for uncertainty (the detector keeps a
    long low-score tail for mAP; scoring it would make every frame look uncertain).
    ``ensemble``: members trained per round (seeds ``seed + k``) for disagreement
    strategies: member 0 is the round's model (evaluated, shown), all members' detections
    go to the pool with ``Detections.member``. Frozen mode makes a member cost one
    neck-and-head training on cached features.
    ``slices``: also evaluate mAP per situation each round (per-situation learning curves):
    ``True`` for every situation, or a list of situations (each slice is one more COCOeval,
    ~0.5 s per 500 frames on 2 cores).
    ``situations``: also train the situation tagger (seed 000's head, frozen: a 1x1 conv
    on this backbone's cached pooled features, the embeddings: 1-2 s a round on 2 CPU
    cores, against ~105 s of detector training on the fleet world) on the
    round's labelled frames, whose situation labels come with their boxes, and give its
    probabilities on the pool (``Pool.situation_scores``): situation-targeted selection in
    a detector campaign, from the campaign's own labels, without a tagger trained and
    stored beforehand (``situations_from``; the round's tagger takes its place). A
    situation the labelled frames hold no positive or no negative of is NaN: the tagger
    cannot say (``SituationTagger.cannot_say``), and balancing counts NaN as 0.
    ``pseudo_labels``: self-training. A score in (0, 1] switches it on: each round first
    trains a teacher on the labelled frames, then trains the round's models on those plus
    the unlabelled pool frames (``fit``'s ``unlabelled``) with the teacher's detections
    scoring at least ``pseudo_labels`` as their boxes. The pool's frames cost no labels,
    so a budget's model sees the whole pool; a second training each round is the price.
    On the fleet pool at 600 random labels, 0.5 lifted mAP@0.5 by 0.005 and 0.009 (seeds
    0 and 1; truck and pedestrian gained most), 0.3 lost 0.006 (seed 0): too many wrong
    boxes (``benchmarks/explore_pseudo_labels.py``, BENCHMARKS). 0: off.
    ``pseudo_ignore``: detections scoring at least this, but below ``pseudo_labels``,
    become ignore regions of their class (``iscrowd``, as KITTI's ``DontCare``): too
    doubtful to train as objects, too likely to be one to train as background. None: off
    (they are background, as anything the teacher did not find).
    ``pseudo_min_boxes``: a class with fewer labelled boxes than this learns nothing from
    the unlabelled frames: no pseudo-label of it, and each such frame is one ignore region
    of it, not background. The teacher finds few of a rare class, so the pool's other
    objects of it would train as background: on the fleet pool, self-training with ignore
    regions halved cyclists' and cones' AP@0.5 at 600 labels under cluster uncertainty
    while trucks gained (BENCHMARKS, session 14). None: off.
    ``pseudo_repeat``: the labelled frames appear this many times in what the round's
    model reads beside the pseudo-labelled ones; ``"auto"``: the fewest that give them at
    least the passes the teacher gave them. The schedule is sized by the frames read
    (``DetectorConfig.schedule``: 800 steps, at least 6 passes), so 600 labelled frames
    alone get ~16 passes and, beside 1,040 pseudo-labelled ones, ~6: the only frames with
    a rare class's objects are seen ~2.7x less (BENCHMARKS, session 14). 1: off.
    ``pseudo_frames``: at most this many unlabelled frames a round (a random sample, seeded
    by the detector's seed and the labelled count); None: all. The second training takes
    at least ``min_epochs`` passes over what it reads, so on a pool far larger than the
    labelled set a cap keeps a round's cost bounded.
    ``tta``: ``"flip"`` adds a pass of the round's model on the horizontally flipped pool
    (``Pool.flip_detections``, boxes flipped back), which localisation stability compares
    with the plain pass. It mirrors the cached backbone maps along W rather than the
    images (an approximation, the one frozen training already makes: features of a
    flipped image are close to, not exactly, flipped features), so it needs
    ``detector.mode = "frozen"``; it costs one more neck-and-head pass, no backbone.
    """

    detector: Mapping[str, Any] = field(default_factory=dict)  # DetectorConfig overrides
    min_score: float = 0.2
    ensemble: int = 1
    slices: bool | list[str] = True
    tta: str = "none"
    situations: bool = False
    pseudo_labels: float = 0.0
    pseudo_ignore: float | None = None
    pseudo_min_boxes: int | None = None
    pseudo_repeat: int | str = 1
    pseudo_frames: int | None = None
    progress: bool = False
    device: str | None = None  # auto|cpu|cuda|mps for every round's training; None: detector's

    kind: ClassVar[str] = "detector"
    metric: ClassVar[str] = "map50"  # the learning curve's default y
    #: ``pseudo_repeat = "auto"``'s ceiling: beyond it the labelled frames outnumber the
    #: pseudo-labelled ones so far that self-training has next to nothing left to add.
    MAX_REPEAT: ClassVar[int] = 32

    def __post_init__(self) -> None:
        from scenesift.models.detector import DetectorConfig

        if self.ensemble < 1:
            raise ValueError("learner.ensemble must be >= 1")
        if not 0.0 <= self.pseudo_labels <= 1.0:
            raise ValueError(
                "learner.pseudo_labels is the detection score kept as a pseudo-label, in "
                f"(0, 1] (0: off); got {self.pseudo_labels!r}"
            )
        if self.pseudo_ignore is not None and not 0.0 <= self.pseudo_ignore < self.pseudo_labels:
            raise ValueError(
                "learner.pseudo_ignore is the lowest detection score kept as an ignore "
                f"region, in [0, pseudo_labels = {self.pseudo_labels!r}); got "
                f"{self.pseudo_ignore!r}"
            )
        if self.pseudo_min_boxes is not None and self.pseudo_min_boxes < 1:
            raise ValueError(
                f"learner.pseudo_min_boxes must be >= 1; got {self.pseudo_min_boxes!r}"
            )
        if self.pseudo_repeat != "auto" and not (
            type(self.pseudo_repeat) is int and self.pseudo_repeat >= 1
        ):
            raise ValueError(
                'learner.pseudo_repeat must be an integer >= 1 or "auto"; got '
                f"{self.pseudo_repeat!r}"
            )
        if self.pseudo_repeat != 1 and not self.pseudo_labels:
            raise ValueError(
                "learner.pseudo_repeat sets how often a self-trained model reads the labelled "
                "frames: it needs learner.pseudo_labels > 0 (self-training is off)"
            )
        if self.pseudo_frames is not None and self.pseudo_frames < 1:
            raise ValueError(f"learner.pseudo_frames must be >= 1; got {self.pseudo_frames!r}")
        if self.tta not in TTA:
            raise ValueError(f"learner.tta must be one of {', '.join(TTA)}; got {self.tta!r}")
        overrides = dict(self.detector)
        if isinstance(overrides.get("input_size"), list):  # TOML/JSON have no tuples
            overrides["input_size"] = tuple(overrides["input_size"])
        if self.device is not None:
            overrides["device"] = self.device
        self.config = DetectorConfig(**overrides)
        if self.tta == "flip" and self.config.mode != "frozen":
            raise ValueError(
                'learner.tta = "flip" mirrors the cached backbone maps: it needs '
                f'detector.mode = "frozen"; got {self.config.mode!r}'
            )

    @staticmethod
    def fields_for(ensemble: int) -> tuple[str, ...]:
        """Pool fields a detector of ``ensemble`` members fills."""
        return ("detections", "embeddings") + (("detections.member",) if ensemble > 1 else ())

    def provides(self) -> tuple[str, ...]:
        return (
            self.fields_for(self.ensemble)
            + (("flip_detections",) if self.tta == "flip" else ())
            + (("situation_scores",) if self.situations else ())
        )

    @staticmethod
    def has_truth(record: FrameRecord) -> bool:
        """Whether a frame's truth can train and evaluate this model (its boxes)."""
        return record.boxes is not None

    def backbone(self, records: Sequence[FrameRecord] = ()):
        """The backbone every member trains on, at the input size ``fit`` will choose: the
        configured one, else ``records``' aspect ratio at ``input_pixels`` (so features
        cached ahead of the runs are the ones training reads). Its pooled features are the
        embeddings diversity strategies read."""
        from scenesift.models.backbones import at_input_size, get_backbone

        size = self.config.input_size_for(records)
        return at_input_size(get_backbone(self.config.backbone), size)

    def embed_device(self) -> str:
        return self.config.device

    def fit(
        self,
        store: Store,
        train: Sequence[FrameRecord],
        val: Sequence[FrameRecord],
        unlabelled: Sequence[FrameRecord] = (),
    ) -> list:
        """``ensemble`` models differing only in their seed (``seed + k``), with
        ``pseudo_labels`` trained on ``train`` plus ``unlabelled`` pseudo-labelled by a
        teacher; then, with ``situations``, the round's situation tagger (last: it learns
        from the labelled frames only)."""
        from scenesift.models.detector import ObjectDetector

        def detector(cfg, frames: Sequence[FrameRecord]):
            model = ObjectDetector(store.taxonomy.classes, cfg)
            return model.fit(frames, val or None, store=store, progress=self.progress)

        frames, teacher = list(train), None
        if self.pseudo_labels > 0 and unlabelled:
            unlabelled = list(unlabelled)
            if self.pseudo_frames is not None and len(unlabelled) > self.pseudo_frames:
                rng = np.random.default_rng([self.config.seed, len(train)])
                keep = rng.choice(len(unlabelled), self.pseudo_frames, replace=False)
                unlabelled = [unlabelled[i] for i in sorted(keep)]
            teacher = detector(self.config, train)
            pseudo = self.pseudo_labelled(teacher, store, unlabelled, self.rare(store, train))
            frames = frames * self.repeats(len(frames), len(pseudo)) + pseudo
        members = []
        for k in range(self.ensemble):
            cfg = replace(self.config, seed=self.config.seed + k) if k else self.config
            members.append(detector(cfg, frames))
        if teacher is not None:
            members[0].teacher = teacher
        if self.situations:
            members.append(self.fit_tagger(store, train, val))
        return members

    def repeats(self, labelled: int, pseudo: int) -> int:
        """How many times the round's model reads each of ``labelled`` frames beside
        ``pseudo`` pseudo-labelled ones (``pseudo_repeat``)."""
        if self.pseudo_repeat != "auto":
            return int(self.pseudo_repeat)
        if not labelled:
            return 1
        batch = self.config.batch_size

        def passes(copies: int, others: int) -> float:  # over each labelled frame
            read = copies * labelled + others
            return copies * self.config.schedule(math.ceil(read / batch))[1] * batch / read

        wanted, r = passes(1, 0), 1  # the teacher's: the labelled frames alone
        while r < self.MAX_REPEAT and passes(r, pseudo) < wanted:
            r += 1
        return r

    def rare(self, store: Store, train: Sequence[FrameRecord]) -> list[str]:
        """The classes with fewer than ``pseudo_min_boxes`` labelled boxes in ``train``."""
        if self.pseudo_min_boxes is None:
            return []
        counts = object_counts(train, store.taxonomy.classes)
        return [c for c, n in counts.items() if n < self.pseudo_min_boxes]

    def pseudo_labelled(
        self, teacher, store: Store, records: Sequence[FrameRecord], rare: Sequence[str] = ()
    ) -> list[FrameRecord]:
        """``records`` with ``teacher``'s detections scoring at least ``pseudo_labels`` as
        their boxes, and those from ``pseudo_ignore`` up as ignore regions; the ``rare``
        classes get no box, and the whole frame as an ignore region (whatever truth the
        records carry is never read: a simulated campaign's pool holds the oracle's)."""
        predicted = teacher.predict(records, store=store, progress=self.progress)
        low = self.pseudo_labels if self.pseudo_ignore is None else self.pseudo_ignore
        rare = set(rare)

        def boxed(b: Box) -> Box:
            doubtful = {"iscrowd": True} if b.score < self.pseudo_labels else {}
            return replace(b, score=None, class_probs=None, attributes=doubtful)

        def unseen(r: FrameRecord) -> list[Box]:
            if not rare:
                return []
            from scenesift.models.detector import _image_size

            w, h = _image_size(r)
            return [Box(c, 0, 0, w, h, attributes={"iscrowd": True}) for c in sorted(rare)]

        return [
            replace(r, boxes=[boxed(b) for b in predicted.get(r.name, [])
                              if b.score is not None and b.score >= low
                              and b.category not in rare] + unseen(r))
            for r in records
        ]  # fmt: skip

    def fit_tagger(
        self, store: Store, train: Sequence[FrameRecord], val: Sequence[FrameRecord]
    ) -> SituationTagger:
        """The frozen tagger head on the detector backbone's pooled features (the
        embeddings): cached once per project (an experiment's ``prepare`` does it for the
        pool and val splits; else the first round does), then a head-only fit."""
        from scenesift.models.tagger import SituationTagger, TaggerConfig

        backbone = self.backbone(train)
        cfg = TaggerConfig(
            backbone=self.config.backbone,
            input_size=backbone.preprocessing.size,
            schedule="frozen",
            seed=self.config.seed,
            device=self.config.device,
        )
        tagger = SituationTagger(list(store.taxonomy.names), cfg)
        return tagger.fit(train, val, store=store, backbone=backbone, progress=self.progress)

    @staticmethod
    def member_detections(parts: Sequence[Detections]) -> Detections:
        """Every member's detections in one ``Detections`` with ``member`` set (part k is
        member k's)."""
        return Detections(
            frame=np.concatenate([d.frame for d in parts]),
            scores=np.concatenate([d.scores for d in parts]),
            class_probs=np.concatenate([d.class_probs for d in parts]),
            boxes=np.concatenate([d.boxes for d in parts]),
            member=np.concatenate([np.full(len(d.frame), k) for k, d in enumerate(parts)]),
        )

    def _predict(self, model, store: Store, records: Sequence[FrameRecord]) -> dict[str, list[Box]]:
        return model.predict(records, store=store, progress=self.progress)

    def pool_outputs(
        self, members: Sequence[Any], store: Store, records: Sequence[FrameRecord]
    ) -> PoolOutputs:
        """Every member's detections on the pool; member 0's are shown to labellers. Read
        as arrays (``predict_arrays``): only the boxes shown, the picks', become ``Box``es."""
        names = [r.name for r in records]
        situation_scores = None
        if self.situations:
            *members, tagger = members
            situation_scores = self.situation_scores(tagger, store, records)
        per_member = [m.predict_arrays(records, store, self.progress) for m in members]
        parts = [self.pool_detections(a) for a in per_member]
        detections = self.member_detections(parts) if len(parts) > 1 else parts[0]
        flipped = None
        if self.tta == "flip":
            flipped = self.pool_detections(self._predict_flipped(members[0], store, records))
        shown = per_member[0].by_name(names, members[0].classes)
        return PoolOutputs(
            detections=detections,
            flip_detections=flipped,
            situation_scores=situation_scores,
            shown=shown,
        )

    def situation_scores(
        self, tagger: SituationTagger, store: Store, records: Sequence[FrameRecord]
    ) -> np.ndarray:
        """(n, S) the round's tagger probabilities, NaN where it cannot say."""
        probs = tagger.predict_scores(records, store=store, progress=self.progress)
        probs = np.asarray(probs, np.float32)
        probs[:, [tagger.situations.index(s) for s in tagger.cannot_say]] = np.nan
        return probs

    def _predict_flipped(
        self, model, store: Store, records: Sequence[FrameRecord]
    ) -> DetectionArrays:
        """The model on the horizontally flipped frames (``DetectionArrays``), boxes
        mirrored back into the original image: the cached maps are read mirrored along W
        (``_Mirrored``), so no image is decoded and no backbone runs. This pass is plain
        (no ``test_flip``): averaged with its own mirror it would agree with itself."""
        from scenesift.models.detector import DetectionArrays, _image_size

        if model.backbone_trained:
            raise ConfigError('learner.tta = "flip" needs a frozen backbone (cached maps)')
        records = list(records)
        if not records:
            return DetectionArrays.empty(0, len(model.classes))
        decoded = model._decode_cached(
            records, store, self.progress, view=_Mirrored, test_flip=False
        )
        return model._arrays(records, decoded).mirrored([_image_size(r)[0] for r in records])

    def pool_detections(self, arrays: DetectionArrays) -> Detections:
        """A ``DetectionArrays``' rows scoring at least ``min_score``, as the pool's
        ``Detections`` (rows follow the predicted records)."""
        keep = arrays.scores.astype(np.float64) >= self.min_score
        return Detections(
            frame=arrays.frame[keep].astype(np.int64),
            scores=arrays.scores[keep].astype(np.float32),
            class_probs=arrays.class_probs[keep].astype(np.float32),
            boxes=arrays.boxes[keep].astype(np.float32).reshape(-1, 4),
        )

    def evaluate(
        self,
        model,
        store: Store,
        frames: Sequence[FrameRecord],
        slices: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        """mAP@0.5, mAP@[.5:.95], per-class AP@0.5 and (optionally) AP@0.5 per situation;
        for a self-trained model, its teacher's mAPs and per-class AP@0.5 under ``teacher``
        (one more pass over ``frames``): what self-training added on the same labels."""
        from scenesift.metrics.detection import evaluate_detection, evaluate_slices

        classes = store.taxonomy.classes

        def scored(m) -> tuple[Any, dict[str, Any]]:
            predictions = self._predict(m, store, frames)
            r = evaluate_detection(frames, predictions, classes)
            return predictions, {
                "map50": r.map50,
                "map": r.map,
                "ap50_per_class": r.per_class("AP50"),
            }

        predictions, out = scored(model)
        teacher = getattr(model, "teacher", None)
        if teacher is not None:  # the same labelled frames without self-training: its gain
            out["teacher"] = scored(teacher)[1]
        if self.slices and slices:
            if not isinstance(self.slices, bool):
                unknown = sorted(set(self.slices) - set(store.taxonomy.names))
                if unknown:
                    raise ValueError(f"learner slices: unknown situation(s) {unknown}")
                slices = {k: v for k, v in slices.items() if k in self.slices}
            by = evaluate_slices(frames, predictions, classes, dict(slices), include_all=False)
            out["map50_per_situation"] = {
                name: {"value": r.map50, "n_frames": r.n_images} for name, r in by.slices.items()
            }
        return out

    def detections(
        self, predictions: Mapping[str, Sequence[Box]], names: Sequence[str], n_classes: int
    ) -> Detections:
        """Flatten per-frame boxes into the pool's ``Detections`` (rows follow ``names``):
        ``pool_detections`` for Boxes (``predict``'s, or another model's)."""
        frame, scores, probs, boxes = [], [], [], []
        for row, name in enumerate(names):
            for b in predictions.get(name, ()):
                if b.score is None or b.score < self.min_score:
                    continue
                frame.append(row)
                scores.append(b.score)
                p = b.class_probs
                probs.append(np.asarray(p, np.float32) if p is not None else _one_hot(n_classes))
                boxes.append((b.x1, b.y1, b.x2, b.y2))
        return Detections(
            frame=np.asarray(frame, np.int64),
            scores=np.asarray(scores, np.float32),
            class_probs=(
                np.stack(probs).astype(np.float32)
                if probs
                else np.zeros((0, n_classes), np.float32)
            ),
            boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        )


@dataclass
class TaggerLearner:
    """The situation tagger as a campaign's model: what situation-aware selection buys the
    tagger itself (rare labels' ROC-AUC vs labels spent).

    The schedule defaults to ``frozen``: the head trains on cached pooled features, so a
    round costs about a second after the pool's features are cached once.
    ``ensemble``: heads per round, member k > 0 trained with seed ``seed + k`` on a
    bootstrap resample of the labelled frames; their probabilities are the samples BALD
    reads (``Pool.situation_mc_scores``). Member 0, trained on all labelled frames, is the
    round's model (evaluated; its probabilities are ``Pool.situation_scores``).
    """

    tagger: Mapping[str, Any] = field(default_factory=dict)  # TaggerConfig overrides
    ensemble: int = 1
    progress: bool = False
    device: str | None = None  # auto|cpu|cuda|mps for every round's training; None: tagger's

    kind: ClassVar[str] = "tagger"
    metric: ClassVar[str] = "auc_mean"
    slices: ClassVar[bool] = False  # a tagger campaign's slices are its labels
    min_score: ClassVar[float] = 0.0

    def __post_init__(self) -> None:
        from scenesift.models.tagger import TaggerConfig

        if self.ensemble < 1:
            raise ValueError("learner.ensemble must be >= 1")
        overrides = dict(self.tagger)
        if isinstance(overrides.get("input_size"), list):
            overrides["input_size"] = tuple(overrides["input_size"])
        if self.device is not None:
            overrides["device"] = self.device
        self.config = TaggerConfig(**{"schedule": "frozen", **overrides})

    @staticmethod
    def fields_for(ensemble: int) -> tuple[str, ...]:
        """Pool fields a tagger of ``ensemble`` heads fills (its members are BALD's samples)."""
        return ("situation_scores", "embeddings") + (
            ("situation_mc_scores",) if ensemble > 1 else ()
        )

    def provides(self) -> tuple[str, ...]:
        return self.fields_for(self.ensemble)

    @staticmethod
    def has_truth(record: FrameRecord) -> bool:
        """Whether a frame's truth can train and evaluate this model (any situation label)."""
        return bool(record.situations)

    def backbone(self, records: Sequence[FrameRecord] = ()):
        """The backbone the head reads (its pooled features are the embeddings too), at the
        configured input size (``records`` are not needed: the tagger's size is fixed)."""
        return _configured_backbone(self.config)

    def embed_device(self) -> str:
        return self.config.device

    def _fit(self, store: Store, config, train, val):
        from scenesift.models.tagger import SituationTagger

        model = SituationTagger(list(store.taxonomy.names), config)
        return model.fit(train, val, store=store, progress=self.progress)

    def fit(
        self,
        store: Store,
        train: Sequence[FrameRecord],
        val: Sequence[FrameRecord],
        unlabelled: Sequence[FrameRecord] = (),
    ) -> list:
        """``ensemble`` heads: the first on all of ``train``, the others on bootstrap
        resamples of it with seeds ``seed + k`` (``unlabelled`` is not read)."""
        members = [self._fit(store, self.config, train, val)]
        for k in range(1, self.ensemble):
            rng = np.random.default_rng([self.config.seed, k])
            resample = [train[i] for i in rng.integers(0, len(train), len(train))]
            cfg = replace(self.config, seed=self.config.seed + k)
            members.append(self._fit(store, cfg, resample, val))
        return members

    def _predict(self, model, store: Store, records: Sequence[FrameRecord]) -> np.ndarray:
        return model.predict_scores(records, store=store, progress=self.progress)

    def evaluate(
        self,
        model,
        store: Store,
        frames: Sequence[FrameRecord],
        slices: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        """Mean ROC-AUC over the defined labels, and ROC-AUC per situation with its number
        of positives (undefined labels are left out, never counted as 0 or 1). Only the
        situations the model was trained on are evaluated: the others (no training positives
        and negatives) are not predicted, listed under ``not_predicted``, as `tagger eval`
        does; their scores are the untrained head's noise."""
        from scenesift.metrics.tagging import evaluate_tagging
        from scenesift.models.tagger import label_matrix

        trained = list(model.trained)
        y, mask = label_matrix(frames, trained)
        columns = [model.situations.index(s) for s in trained]
        scores = self._predict(model, store, frames)[:, columns]
        results = evaluate_tagging(y, scores, mask.astype(bool), trained)
        worst = results.min_auc_with() if trained else None
        return {
            "auc_mean": results.mean_auc if trained else None,
            "auc_min30": None if worst is None else worst[0],
            "auc_per_situation": {
                r.situation: {"value": r.roc_auc, "n_positives": r.positives}
                for r in results.labels
                if r.roc_auc is not None
            },
            "not_predicted": list(model.cannot_say),
        }

    def pool_outputs(
        self, members: Sequence[Any], store: Store, records: Sequence[FrameRecord]
    ) -> PoolOutputs:
        """The round's tagger probabilities on the pool, and every member's as samples."""
        probs = [self._predict(m, store, records).astype(np.float32) for m in members]
        return PoolOutputs(
            situation_scores=probs[0],
            situation_mc_scores=np.stack(probs) if len(probs) > 1 else None,
        )


class _Mirrored:
    """A cached pyramid level whose batches read mirrored along W (the last axis): the
    flipped pass without copying the pool's maps."""

    def __init__(self, level: np.ndarray) -> None:
        self.level = level

    def __getitem__(self, idx: Any) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(self.level[idx])[..., ::-1])

    def __len__(self) -> int:
        return len(self.level)


LEARNERS = {"detector": DetectorLearner, "tagger": TaggerLearner}


def make_learner(spec: Mapping[str, Any]) -> Learner:
    """A learner from a campaign's ``learner`` table: ``kind`` (detector by default) and
    that learner's arguments; an unknown kind or key is named in the error."""
    args = dict(spec)
    kind = args.pop("kind", "detector")
    if kind not in LEARNERS:
        raise ValueError(f"learner.kind must be one of {sorted(LEARNERS)}, got {kind!r}")
    cls = LEARNERS[kind]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ValueError(
            f"learner: unknown key(s) {', '.join(unknown)} for kind {kind!r}; expected one of "
            f"{', '.join(sorted(known))}"
        )
    return cls(**args)


def learner_for(strategy: Strategy, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A study's shared detector settings (``spec``) as one campaign of ``strategy`` needs
    them, so one study can compare strategies that read different pool outputs of the same
    round's model, each paying only for what it reads.

    The settings that add pool outputs without changing the round's model follow the
    strategy: the flipped pass (``tta = "flip"``: one more head pass on the cached maps,
    nothing to choose) is switched on for a strategy that reads ``flip_detections`` and
    off for one that does not; so is the round's situation tagger (``situations``: a head
    on the cached embeddings, trained on the campaign's own labelled frames, so every
    strategy of the study learns from the same labels and no stored tagger is needed) for
    one that reads ``situation_scores``; ensemble members beyond the first are dropped for a
    strategy that does not read them (member 0 is the round's model, so each would cost a
    training and change nothing). ``ensemble`` itself is never raised: its size is the
    user's trade of cost for a better disagreement estimate. A tagger's ensemble is its
    prediction (members are averaged), so tagger settings are returned unchanged."""
    args = dict(spec)
    if args.get("kind", "detector") != "detector":
        return args
    reads = set(strategy.required_fields())
    if "detections.member" not in reads:
        args.pop("ensemble", None)
    from scenesift.models.detector import DetectorConfig

    frozen = dict(args.get("detector", {})).get("mode", DetectorConfig.mode) == "frozen"
    if "flip_detections" in reads and frozen:
        args["tta"] = "flip"
    else:
        args.pop("tta", None)
    if "situation_scores" in reads:
        args["situations"] = True
    else:
        args.pop("situations", None)
    return args


def check_provided(strategy: Strategy, learner: Learner, extra: Iterable[str] = ()) -> None:
    """Refuse a strategy that reads a Pool field the campaign never fills, naming the
    strategy, the field and what would fill it. ``extra``: fields the campaign fills
    besides the learner's (stored tagger scores: ``situation_scores``)."""
    provided = {*learner.provides(), *extra}
    missing = [f for f in strategy.required_fields() if f not in provided]
    if not missing:
        return
    needs = []
    for f in missing:
        who = ", ".join(repr(s.name) for s in _needing(strategy, f)) or repr(strategy.name)
        needs.append(f"strategy {who} needs Pool.{f}, which comes from {_providers(f)}")
    raise ConfigError(
        f"{'; '.join(needs)}; this campaign's learner is {learner.kind!r} with "
        f"ensemble = {learner.ensemble}, which provides {', '.join(learner.provides())}"
    )


def _providers(name: str) -> str:
    """What fills a Pool field: the learner kinds (and ensemble sizes) that provide it."""
    out = []
    for kind, cls in LEARNERS.items():
        if name in cls.fields_for(1):
            out.append(f"learner.kind = {kind!r}")
        elif name in cls.fields_for(2):
            out.append(f"learner.kind = {kind!r} with learner.ensemble >= 2")
    if name == "flip_detections":
        out.append("learner.kind = 'detector' with learner.tta = \"flip\"")
    if name == "situation_scores":
        out.append("learner.kind = 'detector' with learner.situations = true")
        out.append("stored tagger predictions (situations_from)")
    return " or ".join(out) or "no learner"


def _needing(strategy: Any, name: str) -> list[Any]:
    """The innermost strategies of a (wrapped, fused) strategy that read field ``name``."""
    parts = [getattr(strategy, "strategy", None), getattr(strategy, "uncertainty", None)]
    parts += [p for p, _ in getattr(strategy, "parts", ())]
    inner = [s for p in parts if hasattr(p, "required_fields") for s in _needing(p, name)]
    if inner:
        return inner
    return [strategy] if name in strategy.required_fields() else []


def _configured_backbone(config):
    """The backbone a Detector/TaggerConfig names, at its input size."""
    from scenesift.models.backbones import at_input_size, get_backbone

    return at_input_size(get_backbone(config.backbone), config.input_size)


def _one_hot(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n, np.float32)
