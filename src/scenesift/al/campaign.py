"""Campaigns: persisted rounds of train -> score the pool -> pick a batch -> label.

A campaign lives in the catalog (tables ``campaigns``, ``rounds``, ``picks``) and moves one
round at a time through a small state machine; every transition is one transaction, and
the work between two transitions is a deterministic function of the catalog and the seed:

    round r:  created --(train on labelled, evaluate, check stopping, select)--> selected
                      \\--(a stopping rule fires)--------------------------------> final
              selected --(labeler: oracle reveals / human export comes back)--> labelled
              labelled --> round r+1 created

So a process killed at any moment (``kill -9`` included) resumes with ``Campaign.run``:
an interrupted round is recomputed from the same inputs and the same random stream, and no
pick or label is lost or counted twice.

*The labelled set* of a campaign is the frames picked by its labelled rounds (plus, with
``use_existing_labels``, the frames already labelled in the pool split). The simulated
oracle only reveals the held-back truth to this campaign: it does not touch
``frames.state``, so many simulated campaigns (strategies x seeds) can share one project.
A human campaign marks its picks ``selected`` and, once the Label Studio export comes back,
``labelled``, like any other labelling.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from scenesift.al.learners import check_provided, make_learner
from scenesift.al.pool import Selection
from scenesift.al.sources import build_pool, confident, situation_scores
from scenesift.al.stopping import Plateau, StopDecision, StoppingRule
from scenesift.errors import ConfigError
from scenesift.records import FrameRecord
from scenesift.store import Store, StoreError
from scenesift.store import campaigns as catalog
from scenesift.store.campaigns import NewPick, RoundInfo

LABELERS = ("oracle", "labelstudio")
CAMPAIGNS_DIR = Path("campaigns")
NAME_CHARS = 100  # a campaign name's limit (it names a folder)
INITIAL_STRATEGY = "random"


@dataclass(frozen=True)
class CampaignConfig:
    """Everything that determines a campaign; stored with it, so ``resume`` needs nothing."""

    strategy: dict[str, Any] = field(default_factory=lambda: {"name": "least_confidence"})
    initial: int = 100  # frames in the random seed set (round 0)
    batch: int = 100  # frames picked per round
    seed: int = 0
    labeler: str = "oracle"
    pool_split: str = "train"
    eval_split: str = "test"
    #: The learning curve's y and what stopping rules read; None: the learner's
    #: (``map50`` for the detector, ``auc_mean`` for the tagger).
    metric: str | None = None
    stopping: dict[str, Any] = field(default_factory=lambda: {"max_rounds": 5})
    #: ``kind`` (``detector``, the default, or ``tagger``) and that learner's arguments
    learner: dict[str, Any] = field(default_factory=dict)
    situations_from: str | None = "latest"  # tagger predictions for situation strategies
    use_existing_labels: bool | None = None  # default: True for human campaigns

    def __post_init__(self) -> None:
        if self.labeler not in LABELERS:
            raise ValueError(f"labeler must be one of {LABELERS}, got {self.labeler!r}")
        if self.initial < 1 or self.batch < 1:
            raise ValueError("initial and batch must be >= 1 frames")
        for split in (self.pool_split, self.eval_split):
            if split not in ("train", "val", "test"):
                raise ValueError(f"splits are train, val or test, got {split!r}")
        if self.pool_split == self.eval_split:
            raise ValueError("the pool and the evaluation split must differ")
        if not isinstance(self.strategy, dict) or "name" not in self.strategy:
            raise ValueError("strategy must be a table with a 'name', e.g. {name = 'margin'}")
        self.stopping_rule()  # validate now, not rounds later
        make_learner(self.learner)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "campaign config") -> CampaignConfig:
        check_keys(data, {f.name for f in fields(cls)}, where)
        try:
            return cls(**data)
        except TypeError as e:
            raise ValueError(f"{where}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def simulated(self) -> bool:
        return self.labeler == "oracle"

    @property
    def existing_labels(self) -> bool:
        if self.use_existing_labels is None:
            return not self.simulated
        return self.use_existing_labels

    def stopping_rule(self) -> StoppingRule:
        check_keys(self.stopping, {"budget", "max_rounds", "target", "plateau"}, "stopping")
        args = dict(self.stopping)
        plateau = args.pop("plateau", None)
        if plateau is not None:
            args["plateau"] = Plateau(**({} if plateau is True else plateau))
        return StoppingRule(**args)


@dataclass
class RunResult:
    """Where ``run`` left the campaign: ``finished``, ``waiting`` for labels, or ``paused``."""

    status: str
    reason: str
    rounds: list[RoundInfo]


class Campaign:
    """One campaign in a project. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, store: Store, id: int, name: str, config: CampaignConfig) -> None:
        self.store, self.id, self.name, self.config = store, id, name, config
        self.learner = make_learner(config.learner)
        self.metric = config.metric or self.learner.metric
        self._frames: dict[str, Any] | None = None
        self._slices: dict[str, list[str]] | None = None
        self._backbone = None  # built once, when the strategy reads embeddings

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(cls, store: Store, name: str, config: CampaignConfig) -> Campaign:
        if not name or len(name) > NAME_CHARS or any(c in name for c in "/\\\0"):
            raise ConfigError(f"campaign name {name!r}: 1-{NAME_CHARS} characters, no slashes")
        from scenesift.al.strategies import make_strategy

        strategy = make_strategy(config.strategy)  # a bad spec fails now, not rounds later
        # the Pool holds the learner's fields, plus the stored tagger's scores if it reads them
        stored = ("situation_scores",) if config.situations_from else ()
        check_provided(strategy, make_learner(config.learner), stored)
        return cls(store, catalog.create(store, name, config.to_dict()), name, config)

    @classmethod
    def open(cls, store: Store, name: str) -> Campaign:
        row = catalog.get(store, name)
        config = CampaignConfig.from_dict(row.config, where=f"campaign {name!r}")
        return cls(store, row.id, name, config)

    @property
    def status(self) -> str:
        return catalog.status(self.store, self.id)

    @property
    def folder(self) -> Path:
        return self.store.root / CAMPAIGNS_DIR / self.name

    # ----------------------------------------------------------------- reading
    def rounds(self) -> list[RoundInfo]:
        return catalog.rounds(self.store, self.id)

    def labelled_ids(self) -> set[int]:
        """Frame ids this campaign may train on now (see the module docstring)."""
        ids = catalog.labelled_picks(self.store, self.id)
        if self.config.existing_labels:
            ids |= catalog.labelled_in_split(self.store, self.config.pool_split)
        return ids

    def picked_ids(self) -> set[int]:
        return catalog.picked(self.store, self.id)

    def curve(self) -> list[tuple[int, float]]:
        """The learning curve: (labelled frames, metric) for every evaluated round."""
        out = []
        for r in self.rounds():
            value = r.metrics.get(self.metric)
            if value is not None and r.n_labelled:
                out.append((int(r.n_labelled), float(value)))
        return out

    # ----------------------------------------------------------------- running
    def run(
        self,
        max_rounds: int | None = None,
        on_round: Callable[[RoundInfo], None] | None = None,
    ) -> RunResult:
        """Advance until the campaign finishes or waits for human labels (or, with
        ``max_rounds``, after that many rounds were played in this call)."""
        played = 0
        while True:
            last = self._last_round()
            if last is None:
                self._new_round(0)
            elif last.status == "created":
                if max_rounds is not None and played >= max_rounds:
                    return RunResult("paused", f"played {played} round(s)", self.rounds())
                self._play(last)
                played += 1
                if on_round is not None:
                    on_round(self._round(last.idx))
            elif last.status == "selected":
                if not self.config.simulated:
                    self._export_batch(last)
                    self._set_status("waiting")
                    return RunResult("waiting", self._waiting_message(last), self.rounds())
                self._reveal(last)
            elif last.status == "labelled":
                self._new_round(last.idx + 1)
            elif last.status == "final":
                self._set_status("finished")
                return RunResult("finished", last.metrics.get("stop_reason", ""), self.rounds())
            else:  # pragma: no cover - the CHECK-free status column is only written here
                raise StoreError(f"round {last.idx} has unknown status {last.status!r}")

    def _last_round(self) -> RoundInfo | None:
        rounds = self.rounds()
        return rounds[-1] if rounds else None

    def _round(self, idx: int) -> RoundInfo:
        return next(r for r in self.rounds() if r.idx == idx)

    def _new_round(self, idx: int) -> None:
        catalog.add_round(self.store, self.id, idx)

    def _set_status(self, status: str) -> None:
        catalog.set_status(self.store, self.id, status)

    def _play(self, rnd: RoundInfo) -> None:
        """Train, evaluate, decide, select: everything a round computes before labelling."""
        cfg = self.config
        started = time.perf_counter()
        frames = self._frame_table()
        labelled = self.labelled_ids()
        taken = labelled | self.picked_ids()
        candidates = [i for i in frames["pool"] if i not in taken]
        rng = np.random.default_rng([cfg.seed, rnd.idx])
        metrics: dict[str, Any] = {"n_labelled": len(labelled)}
        model, fp = None, None
        if not labelled:
            budget = min(cfg.initial, len(candidates))
            selection = _random_selection(len(candidates), budget, rng, "random (initial set)")
            predictions: dict = {}
        else:
            train = [frames["record"][i] for i in sorted(labelled)]
            records = [frames["record"][i] for i in candidates]
            members = self.learner.fit(self.store, train, self._reference("val"), records)
            model = members[0]
            fp = model.fingerprint
            evaluation = self._reference(cfg.eval_split)
            metrics.update(self.learner.evaluate(model, self.store, evaluation, self._slice_map()))
            history = [*self.curve(), (len(labelled), metrics.get(self.metric) or 0.0)]
            budget = min(cfg.batch, len(candidates))
            decision: StopDecision = cfg.stopping_rule().check(history, budget)
            if decision.stop:
                metrics["stop_reason"] = decision.reason
                metrics["seconds"] = round(time.perf_counter() - started, 2)
                self._finish_round(rnd, "final", fp, metrics, None, [])
                return
            outputs = self.learner.pool_outputs(members, self.store, records)
            predictions = outputs.shown
            strategy = self._strategy()
            if "embeddings" in strategy.required_fields() and self._backbone is None:
                self._backbone = self.learner.backbone(records)
            pool = build_pool(
                self.store,
                candidates,
                records,
                outputs.detections,
                train,
                # a tagger learner's own probabilities replace the stored tagger's scores
                {}
                if outputs.situation_scores is not None
                else situation_scores(self.store, self._tagger_source()),
                embed_with=self._backbone if "embeddings" in strategy.required_fields() else None,
                embed_device=self.learner.embed_device(),
                situation_scores=outputs.situation_scores,
                situation_mc_scores=outputs.situation_mc_scores,
            )
            if outputs.flip_detections is not None:  # the learner's flipped pass (tta)
                pool = replace(pool, flip_detections=outputs.flip_detections)
            selection = strategy.select(pool, budget, rng)
        picks = [candidates[int(i)] for i in selection.indices]
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        metrics["n_pool"] = len(candidates)
        # what human labellers will see as pre-annotations: this round's model on its picks
        shown = {frames["name"][i]: predictions.get(frames["name"][i], []) for i in picks}
        self._finish_round(rnd, "selected", fp, metrics, selection, picks, shown)

    def _finish_round(
        self,
        rnd: RoundInfo,
        status: str,
        fp: str | None,
        metrics: dict[str, Any],
        selection: Selection | None,
        picks: Sequence[int],
        shown: dict | None = None,
    ) -> None:
        rows = (
            []
            if selection is None
            else [
                NewPick(fid, _finite(score), selection.strategy)
                for fid, score in zip(picks, selection.scores.tolist(), strict=True)
            ]
        )
        # another process may have finished this round first: then nothing is written
        catalog.finish_round(
            self.store, rnd.id, status, fp, metrics, rows,
            mark_selected=not self.config.simulated, shown=shown,
        )  # fmt: skip

    def _reveal(self, rnd: RoundInfo) -> None:
        """The simulated oracle: the picks' held-back truth becomes this campaign's."""
        catalog.reveal(self.store, rnd.id)

    # ----------------------------------------------------------------- human labels
    def _export_batch(self, rnd: RoundInfo) -> Path:
        """Label Studio tasks for the round's picks with pre-annotations (idempotent)."""
        from scenesift.io.labelstudio import write_labelstudio_config, write_labelstudio_tasks

        out = self.folder / f"round-{rnd.idx:03d}"
        if (out / "tasks.json").exists():
            return out
        ids = self._pick_ids(rnd, include_rejected=False)
        names = {self._frame_table()["name"][i] for i in ids}
        records, thresholds, source = self.shown_records(rnd, names)
        write_labelstudio_tasks(
            records, self.store.taxonomy, out, thresholds=thresholds,
            model_version=source or "scenesift",
        )  # fmt: skip
        write_labelstudio_config(self.store.taxonomy, out / "labeling_config.xml")
        return out

    def shown_records(
        self, rnd: RoundInfo, names: Collection[str]
    ) -> tuple[list[FrameRecord], dict[str, float], str | None]:
        """Frames as a labeller sees them in round ``rnd``: the round model's confident boxes
        and the tagger's situation scores. Returns (records, the tagger's decision
        thresholds, the model source); for the batch export and the ML backend."""
        source = f"model:{rnd.model_fingerprint}" if rnd.model_fingerprint else None
        records = self.store.records(names=names, predictions=source)
        thresholds: dict[str, float] = {}
        tagger = self._tagger_source()
        if tagger is not None:
            scores = situation_scores(self.store, tagger)
            thresholds = self.store.decision_thresholds(tagger)
            records = [replace(r, situation_scores=scores.get(r.name, {})) for r in records]
        min_score = self.learner.min_score
        records = [
            replace(r, predicted_boxes=confident(r.predicted_boxes, min_score)) for r in records
        ]
        return records, thresholds, source

    def pick_ranks(self, rnd: RoundInfo) -> dict[str, int]:
        """The round's picks not rejected in review, by frame name: rank 0 is wanted first."""
        return catalog.pick_ranks(self.store, rnd.id)

    def _waiting_message(self, rnd: RoundInfo) -> str:
        out = self.folder / f"round-{rnd.idx:03d}"
        return (
            f"round {rnd.idx}: {rnd.n_picks} frames to label in {out / 'tasks.json'} "
            f"(Label Studio config: {out / 'labeling_config.xml'}); then run "
            f"`scenesift al import-labels {self.name} EXPORT.json`"
        )

    def import_labels(self, path: Path) -> tuple[int, int]:
        """Bring a finished Label Studio export back: human labels for the waiting round's
        picks, in one transaction with the round's progress. Returns (labelled, remaining)."""
        from scenesift.io.formats import read_dataset

        last = self._last_round()
        if last is None or last.status != "selected" or self.config.simulated:
            raise StoreError(f"campaign {self.name!r} is not waiting for labels")
        batch = read_dataset("labelstudio", Path(path), self.store.taxonomy, verify=False)
        wanted = self._pick_ids(last, include_rejected=False)
        id_of = {name: fid for fid, name in self._frame_table()["name"].items()}
        got = {id_of[r.name] for r in batch.frames if r.name in id_of} & wanted
        if not got:
            raise StoreError(
                f"{path}: none of its frames is among round {last.idx}'s {len(wanted)} picks"
            )
        with self.store.transaction():  # the labels and the round's progress, together
            before = catalog.human_labels(self.store, got)
            self.store.ingest(batch, label_source="human", labels_only=True)
            after = catalog.human_labels(self.store, got)
            changed = {fid for fid in got if after.get(fid) != before.get(fid)}
            remaining = catalog.record_labels(self.store, self.id, last.id, got, changed)
        self._frames = None  # labels changed
        return len(got), remaining

    def _pick_ids(self, rnd: RoundInfo, include_rejected: bool) -> set[int]:
        return catalog.round_picks(self.store, rnd.id, include_rejected)

    # ----------------------------------------------------------------- inputs
    def _frame_table(self) -> dict[str, Any]:
        """Frame ids, names and truth records (read once per process; truth of picks comes
        from here, so the simulated oracle needs no copy of the labels)."""
        if self._frames is None:
            ids = catalog.frame_ids(self.store)
            records = self.store.records(split=self.config.pool_split)
            self._frames = {
                "record": {ids[r.name]: r for r in records},
                "name": {ids[r.name]: r.name for r in records},
                # the oracle can only reveal frames whose truth was imported
                "pool": sorted(
                    ids[r.name]
                    for r in records
                    if self.learner.has_truth(r) or not self.config.simulated
                ),
            }
        return self._frames

    def _reference(self, split: str) -> list[FrameRecord]:
        """Fixed frames with the learner's kind of truth (boxes, or situation labels): the
        held-back truth in a simulation, else only what people labelled."""
        state = None if self.config.simulated else "labelled"
        records = self.store.records(split=split, state=state)
        return [r for r in records if self.learner.has_truth(r)]

    def _slice_map(self) -> dict[str, list[str]] | None:
        if not self.learner.slices:
            return None
        if self._slices is None:
            from scenesift.pipelines.detector import situation_slices

            frames = self._reference(self.config.eval_split)
            self._slices = situation_slices(self.store, frames, self._tagger_source())
        return self._slices

    def _tagger_source(self) -> str | None:
        src = self.config.situations_from
        if src == "latest":
            return self.store.latest_model_source()
        return src

    def _strategy(self):
        from scenesift.al.strategies import make_strategy

        return make_strategy(self.config.strategy)


def check_keys(data: dict[str, Any], known: set[str], where: str) -> None:
    """A settings table with a key nobody reads is a typo: name it and what is allowed."""
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected one of "
            f"{', '.join(sorted(known))}"
        )


def _random_selection(n: int, k: int, rng: np.random.Generator, name: str) -> Selection:
    idx = rng.choice(n, size=k, replace=False) if k else np.zeros(0, np.int64)
    return Selection(np.asarray(idx, np.int64), np.zeros(k), name)


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None
