"""The object detector as an estimator: ``fit`` on labelled frames, ``predict`` boxes on any.

A compact CenterNet (see :mod:`scenesift.models.detector_net`) because torchvision's
detection models do not run on this CPU build of torch, and because active learning needs
hundreds of trainings: in ``frozen`` mode the backbone's stride 8/16/32 maps come from the
store's fingerprinted feature cache (layer ``pyramid``, float16) and only the FPN neck and
heads train, so a training costs seconds to minutes on 2 cores. ``finetune`` also trains
the backbone's top block groups at a lower learning rate. Horizontal flips are the only
augmentation; in frozen mode the cached maps are flipped with the boxes (an approximation:
features of a flipped image are not exactly flipped features, but close for convnets).

Every detection keeps the heat-map values of all classes at its peak, normalised, as
``Box.class_probs``, so uncertainty sampling can use margin or entropy later.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from scenesift.features import embed, forward_features, split_pyramid
from scenesift.models.backbones import DEFAULT_BACKBONE, Backbone, at_input_size, get_backbone
from scenesift.models.checkpoint import load_state, save_state, tensor_digest, trained_backbone
from scenesift.models.detector_net import (
    STRIDE,
    Decoded,
    DetectorNet,
    Targets,
    build_targets,
    decode,
    detection_loss,
    flip_boxes,
)
from scenesift.models.images import make_loader
from scenesift.models.tagger_net import set_train_mode, set_trainable
from scenesift.records import Box, FrameRecord
from scenesift.store import Store, fingerprint
from scenesift.ui import steps

MODES = ("frozen", "finetune")


@dataclass(frozen=True)
class DetectorConfig:
    backbone: str = DEFAULT_BACKBONE
    #: (H, W) network input; None: the backbone's default (192, 320).
    input_size: tuple[int, int] | None = None
    mode: str = "frozen"  # frozen | finetune
    epochs: int = 12
    lr: float = 2e-3  # neck and heads
    backbone_lr: float = 1e-4  # top backbone group (finetune); lower groups lr_decay times less
    lr_decay: float = 0.5
    finetune_groups: int = 2  # backbone groups trained in finetune mode, from the top
    weight_decay: float = 1e-4
    batch_size: int = 32
    width: int = 64  # FPN / head channels
    flip: bool = True
    size_weight: float = 1.0
    offset_weight: float = 1.0
    max_objects: int = 128  # per frame, for the size/offset losses
    top_k: int = 100  # detections per frame (COCO evaluates at most 100)
    score_threshold: float = 0.01  # low: mAP needs the tail of the ranking
    seed: int = 0
    workers: int = 0
    #: finetune: frames drawn afresh per epoch (None: all), as in the tagger.
    samples_per_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")


@dataclass
class DetectorEpoch:
    epoch: int
    train_loss: float
    val_loss: float
    heat_loss: float
    seconds: float


@dataclass
class _Data:
    """Training frames in network-input terms: (class, xyxy) arrays, and their targets."""

    boxes: list[np.ndarray]
    targets: Targets
    flipped: Targets


@dataclass
class ObjectDetector:
    """CenterNet-style detector over a registered backbone (see the module docstring)."""

    classes: list[str]
    config: DetectorConfig = field(default_factory=DetectorConfig)
    history: list[DetectorEpoch] = field(default_factory=list, init=False)
    net: DetectorNet | None = field(default=None, init=False, repr=False)
    data_fingerprint: str | None = field(default=None, init=False)
    #: Whether the backbone was trained: if not, its cached features stay valid.
    backbone_trained: bool = field(default=False, init=False)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        train: Sequence[FrameRecord],
        val: Sequence[FrameRecord] | None = None,
        store: Store | None = None,
        backbone: Backbone | None = None,
        progress: bool = True,
    ) -> ObjectDetector:
        """Train on the frames of ``train`` whose boxes are labelled; with ``val``, keep the
        epoch with the lowest validation loss. With a ``store``, frozen features come from
        (and go to) its cache; without one they are computed once per fit, in memory."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        backbone = at_input_size(backbone or get_backbone(cfg.backbone), cfg.input_size)
        net = DetectorNet(backbone, len(self.classes), cfg.width)
        self.net = net.to(memory_format=torch.channels_last)
        self.history, self.backbone_trained = [], False
        train = [r for r in train if r.boxes is not None]
        val = [r for r in (val or ()) if r.boxes is not None]
        if not train:
            raise ValueError("no training frame has labelled boxes")
        self.data_fingerprint = _data_fingerprint(train, val, self.classes)
        data_tr, data_va = self._data(train), self._data(val)
        frozen = cfg.mode == "frozen"
        if frozen:
            feats_tr = self._pyramid(train, store, progress)
            feats_va = self._pyramid(val, store, progress) if val else None
        n_groups = 0 if frozen else min(cfg.finetune_groups, len(backbone.block_groups()))
        opt = self._optimizer(n_groups)
        per_epoch = (
            min(len(train), cfg.samples_per_epoch or len(train)) if not frozen else len(train)
        )
        total_steps = cfg.epochs * math.ceil(per_epoch / cfg.batch_size)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(_warmup_cosine, total=total_steps))
        best, best_loss = None, float("inf")
        for epoch in range(cfg.epochs):
            started = time.perf_counter()
            if frozen:
                loss, heat = self._epoch_frozen(feats_tr, data_tr, opt, sched, rng)
            else:
                loss, heat = self._epoch_images(train, data_tr, opt, sched, rng, n_groups, progress)
                self.backbone_trained = True
            val_loss = float("nan")
            if val:
                val_loss = (
                    self._loss_frozen(feats_va, data_va)
                    if frozen
                    else self._loss_images(val, data_va)
                )
                if val_loss < best_loss:
                    best_loss, best = val_loss, copy.deepcopy(self.net.state_dict())
            self.history.append(
                DetectorEpoch(epoch, loss, val_loss, heat, time.perf_counter() - started)
            )
        if best is not None:
            self.net.load_state_dict(best)
        self.net.eval()
        return self

    def _optimizer(self, n_groups: int) -> torch.optim.Optimizer:
        cfg = self.config
        groups = set_trainable(self.net, n_groups)
        params = [{"params": list(self.net.head.parameters()), "lr": cfg.lr}]
        for i, group in enumerate(groups):
            params.append({"params": group, "lr": cfg.backbone_lr * cfg.lr_decay**i})
        return torch.optim.AdamW(params, weight_decay=cfg.weight_decay)

    def _data(self, records: Sequence[FrameRecord]) -> _Data:
        h, w = self._input_size()
        boxes = [_input_boxes(r, self.classes, (h, w)) for r in records]
        grid = (h // STRIDE, w // STRIDE)
        k, m = len(self.classes), self.config.max_objects
        return _Data(
            boxes=boxes,
            targets=build_targets(boxes, k, grid, max_objects=m),
            flipped=build_targets([flip_boxes(b, w) for b in boxes], k, grid, max_objects=m),
        )

    def _batches(self, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
        """Shuffled index batches, each with a random flip decision per frame."""
        order = rng.permutation(n)
        flips = rng.random(n) < 0.5 if self.config.flip else np.zeros(n, dtype=bool)
        bs = self.config.batch_size
        return [(order[i : i + bs], flips[i : i + bs]) for i in range(0, n, bs)]

    def _epoch_frozen(self, feats, data: _Data, opt, sched, rng) -> tuple[float, float]:
        """One pass of the neck and heads over cached pyramid features."""
        head = self.net.head
        head.train()
        losses, heats = [], []
        for idx, flip in self._batches(len(data.boxes), rng):
            maps = _maps(feats, idx, flip)
            loss, parts = detection_loss(
                head(maps),
                _targets(data, idx, flip),
                self.config.size_weight,
                self.config.offset_weight,
            )
            _step(opt, sched, loss)
            losses.append(float(loss.detach()))
            heats.append(parts["heat"])
        head.eval()
        return float(np.mean(losses)), float(np.mean(heats))

    def _epoch_images(self, records, data: _Data, opt, sched, rng, n_groups, progress):
        """One pass over decoded images with the top ``n_groups`` backbone groups training."""
        cfg = self.config
        set_train_mode(self.net, n_groups)
        n = min(len(records), cfg.samples_per_epoch or len(records))
        order = rng.permutation(len(records))[:n]
        flips = rng.random(n) < 0.5 if cfg.flip else np.zeros(n, dtype=bool)
        loader = make_loader(
            [records[i].path for i in order],
            self.net.backbone.preprocessing,
            cfg.batch_size,
            cfg.workers,
        )
        losses, heats = [], []
        with steps("detector epoch", n, progress, transient=True) as advance:
            for batch in loader:
                pos = batch.index.numpy()
                flip = flips[pos]
                images = batch.images.clone()
                images[torch.from_numpy(flip)] = images[torch.from_numpy(flip)].flip(-1)
                loss, parts = detection_loss(
                    self.net(images),
                    _targets(data, order[pos], flip),
                    cfg.size_weight,
                    cfg.offset_weight,
                )
                _step(opt, sched, loss)
                losses.append(float(loss.detach()))
                heats.append(parts["heat"])
                advance(len(pos))
        self.net.eval()
        return float(np.mean(losses)), float(np.mean(heats))

    @torch.inference_mode()
    def _loss_frozen(self, feats, data: _Data) -> float:
        total, n = 0.0, len(data.boxes)
        bs = self.config.batch_size
        for i in range(0, n, bs):
            idx = np.arange(i, min(i + bs, n))
            no_flip = np.zeros(len(idx), dtype=bool)
            loss, _ = detection_loss(
                self.net.head(_maps(feats, idx, no_flip)), _targets(data, idx, no_flip)
            )
            total += float(loss) * len(idx)
        return total / max(n, 1)

    @torch.inference_mode()
    def _loss_images(self, records, data: _Data) -> float:
        total = 0.0
        cfg = self.config
        loader = make_loader(
            [r.path for r in records], self.net.backbone.preprocessing, cfg.batch_size, cfg.workers
        )
        for batch in loader:
            pos = batch.index.numpy()
            no_flip = np.zeros(len(pos), dtype=bool)
            loss, _ = detection_loss(self.net(batch.images), _targets(data, pos, no_flip))
            total += float(loss) * len(pos)
        return total / max(len(records), 1)

    def _pyramid(
        self, records: Sequence[FrameRecord], store: Store | None, progress: bool
    ) -> list[np.ndarray]:
        """Frozen backbone maps (N, C, h, w) float16 per stride, from the cache if any."""
        backbone = self._check_fitted().backbone
        cfg = self.config
        if store is not None:
            feats = embed(
                store,
                backbone,
                [r.name for r in records],
                layer="pyramid",
                batch_size=cfg.batch_size,
                workers=cfg.workers,
                progress=progress,
            )
            return split_pyramid(feats.array, backbone)
        fast = backbone.for_inference()
        loader = make_loader(
            [r.path for r in records], backbone.preprocessing, cfg.batch_size, cfg.workers
        )
        chunks = []
        with steps("features", len(records), progress, transient=True) as advance:
            for batch in loader:
                chunks.append(forward_features(fast, batch.images, "pyramid"))
                advance(len(batch.index))
        return split_pyramid(np.concatenate(chunks), backbone)

    def _input_size(self) -> tuple[int, int]:
        return self._check_fitted().backbone.preprocessing.size

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> DetectorNet:
        if self.net is None:
            raise RuntimeError("the detector is not fitted: call fit() or load() first")
        return self.net

    def predict(
        self, records: Sequence[FrameRecord], store: Store | None = None, progress: bool = False
    ) -> dict[str, list[Box]]:
        """Detections per frame name, in original image pixels, best first. With a store
        and a backbone that was never trained, backbone maps come from the cache."""
        self._check_fitted()
        records = list(records)
        if not records:
            return {}
        if store is not None and not self.backbone_trained:
            decoded = self._decode_cached(records, store, progress)
        else:
            decoded = self._decode_images(records, progress)
        return {r.name: self._to_boxes(r, d) for r, d in zip(records, decoded, strict=True)}

    def _decode_cached(self, records, store, progress) -> list[Decoded]:
        feats = self._pyramid(records, store, progress)
        cfg = self.config
        out: list[Decoded] = []
        with torch.inference_mode():
            for i in range(0, len(records), cfg.batch_size):
                idx = np.arange(i, min(i + cfg.batch_size, len(records)))
                heads = self.net.head(_maps(feats, idx, np.zeros(len(idx), dtype=bool)))
                out += decode(heads, cfg.top_k, cfg.score_threshold)
        return out

    def _decode_images(self, records, progress) -> list[Decoded]:
        net = self._check_fitted()
        cfg = self.config
        fast = copy.deepcopy(net).eval()
        fast.backbone = fast.backbone.for_inference()
        loader = make_loader(
            [r.path for r in records], net.backbone.preprocessing, cfg.batch_size, cfg.workers
        )
        out: list[Decoded | None] = [None] * len(records)
        with (
            torch.inference_mode(),
            steps("detecting", len(records), progress, transient=True) as advance,
        ):
            for batch in loader:
                for pos, d in zip(
                    batch.index.tolist(),
                    decode(fast(batch.images), cfg.top_k, cfg.score_threshold),
                    strict=True,
                ):
                    out[pos] = d
                advance(len(batch.index))
        return out  # type: ignore[return-value]

    def _to_boxes(self, record: FrameRecord, d: Decoded) -> list[Box]:
        return decoded_to_boxes(d, self.classes, self._input_size(), _image_size(record))

    # ------------------------------------------------------------------ identity & disk
    @property
    def fingerprint(self) -> str:
        """What made this model: config, classes, backbone weights, head and training data."""
        net = self._check_fitted()
        return fingerprint(
            {
                "config": asdict(self.config),
                "classes": self.classes,
                "backbone": net.backbone.spec(),
                "head": tensor_digest(net.head.state_dict()),
                "data": self.data_fingerprint,
            }
        )

    def save(self, path: Path) -> Path:
        """Write-then-rename, so a crash never leaves a half-written checkpoint."""
        net = self._check_fitted()
        state = {
            "classes": self.classes,
            "config": asdict(self.config),
            "history": [asdict(h) for h in self.history],
            "data_fingerprint": self.data_fingerprint,
            "backbone_trained": self.backbone_trained,
            "fingerprint": self.fingerprint,
        }
        return save_state(path, state, net)

    @classmethod
    def load(cls, path: Path, backbone: Backbone | None = None) -> ObjectDetector:
        state = load_state(path)
        config = DetectorConfig(**state["config"])
        detector = cls(list(state["classes"]), config)
        backbone = trained_backbone(path, state, config.backbone, backbone)
        net = DetectorNet(backbone, len(detector.classes), config.width)
        net.load_state_dict(state["net"])
        detector.net = net.to(memory_format=torch.channels_last).eval()
        detector.history = [DetectorEpoch(**h) for h in state["history"]]
        detector.data_fingerprint = state["data_fingerprint"]
        detector.backbone_trained = state["backbone_trained"]
        return detector


# --------------------------------------------------------------------------- helpers
def decoded_to_boxes(
    d: Decoded,
    classes: Sequence[str],
    input_size: tuple[int, int],
    image_size: tuple[int, int],
) -> list[Box]:
    """Boxes in original image pixels (``image_size`` = (W, H)) from detections in network
    input pixels (``input_size`` = (H, W), a stretch resize), clipped to the image, with
    ``class_probs`` = the heat-map values of all classes at the peak, normalised."""
    (in_h, in_w), (width, height) = input_size, image_size
    sx, sy = width / in_w, height / in_h
    out = []
    for (x1, y1, x2, y2), c, s, v in zip(d.boxes, d.classes, d.scores, d.class_values, strict=True):
        probs = np.asarray(v, dtype=np.float64)
        probs = probs / probs.sum() if probs.sum() > 0 else np.full(len(probs), 1 / len(probs))
        box = (
            min(max(float(x1) * sx, 0.0), width),
            min(max(float(y1) * sy, 0.0), height),
            min(max(float(x2) * sx, 0.0), width),
            min(max(float(y2) * sy, 0.0), height),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        out.append(
            Box(classes[int(c)], *box, score=float(s), class_probs=tuple(float(p) for p in probs))
        )
    return out


def _image_size(record: FrameRecord) -> tuple[int, int]:
    """(W, H) of the original image: the record's, else read from the file header."""
    if record.width and record.height:
        return record.width, record.height
    with Image.open(record.path) as im:
        return im.size


def _input_boxes(record: FrameRecord, classes: Sequence[str], size: tuple[int, int]) -> np.ndarray:
    """(n, 5) class index + xyxy in network-input pixels; boxes of other classes dropped."""
    h, w = size
    width, height = _image_size(record)
    col = {c: i for i, c in enumerate(classes)}
    rows = [
        (col[b.category], b.x1 * w / width, b.y1 * h / height, b.x2 * w / width, b.y2 * h / height)
        for b in record.boxes or ()
        if b.category in col and not b.attributes.get("iscrowd")
    ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def _maps(feats: list[np.ndarray], idx: np.ndarray, flip: np.ndarray) -> list[torch.Tensor]:
    """float32 channels_last batch of cached maps, mirrored where ``flip``."""
    out = []
    f = torch.from_numpy(np.asarray(flip, dtype=bool))
    for level in feats:
        x = torch.from_numpy(np.ascontiguousarray(level[idx])).float()
        if f.any():
            x[f] = x[f].flip(-1)
        out.append(x.contiguous(memory_format=torch.channels_last))
    return out


def _targets(data: _Data, idx: np.ndarray, flip: np.ndarray) -> Targets:
    i = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    a, b = data.targets[i], data.flipped[i]
    f = torch.from_numpy(np.asarray(flip, dtype=bool))

    def pick(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.where(f.reshape(-1, *([1] * (x.dim() - 1))), y, x)

    return Targets(
        pick(a.heat, b.heat),
        pick(a.index, b.index),
        pick(a.size, b.size),
        pick(a.offset, b.offset),
        pick(a.mask, b.mask),
    )


def _warmup_cosine(step: int, total: int) -> float:
    """LR factor: linear warm-up over the first 5% of steps (at least 1), then cosine to 0."""
    warm = max(1, total // 20)
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def _step(opt: torch.optim.Optimizer, sched: Any, loss: torch.Tensor) -> None:
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def _data_fingerprint(
    train: Sequence[FrameRecord], val: Sequence[FrameRecord], classes: Sequence[str]
) -> str:
    def frame(r: FrameRecord) -> list:
        return [
            r.name,
            [
                (b.category, round(b.x1, 2), round(b.y1, 2), round(b.x2, 2), round(b.y2, 2))
                for b in r.boxes or ()
            ],
        ]

    return fingerprint(
        {"classes": list(classes), "train": [frame(r) for r in train], "val": [r.name for r in val]}
    )
