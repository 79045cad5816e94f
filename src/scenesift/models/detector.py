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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from scenesift.devices import (
    autocast,
    check_device,
    grad_scaler,
    pin_memory,
    resolve_device,
    to_device,
)
from scenesift.features import embed, forward_features, split_pyramid
from scenesift.models.backbones import DEFAULT_BACKBONE, Backbone, at_input_size, get_backbone
from scenesift.models.detector_net import (
    BOX_HEADS,
    HEAD_STRIDES,
    STRIDE,
    Decoded,
    DetectorNet,
    Targets,
    build_targets,
    class_balance_weights,
    decode,
    decode_head,
    detection_loss,
    flip_boxes,
)
from scenesift.models.images import make_loader
from scenesift.models.tagger_net import set_train_mode, set_trainable
from scenesift.models.weights import load_state, save_state, tensor_digest, trained_backbone
from scenesift.records import Box, FrameRecord
from scenesift.store import Store, fingerprint
from scenesift.ui import steps

MODES = ("frozen", "finetune")
#: Heat-map cells per CPU forward pass on cached maps: 16 frames at 384x640, stride 8.
INFERENCE_CELLS = 16 * 48 * 80
#: Frames whose cached maps ``predict`` holds in memory at once (~0.7 GB at 384x640).
PREDICT_CHUNK = 1024


@dataclass(frozen=True)
class DetectorConfig:
    backbone: str = DEFAULT_BACKBONE
    #: (H, W) network input; None: the training frames' own aspect ratio (median) at about
    #: ``input_pixels`` (multiples of 32), so a 1242x375 KITTI frame or a 1280x720 dashcam
    #: frame is not squeezed into the backbone's 5:3; a backbone passed to ``fit`` keeps
    #: its own size.
    input_size: tuple[int, int] | None = None
    input_pixels: int = 384 * 640
    mode: str = "frozen"  # frozen | finetune
    #: Optimiser steps of the schedule (warm-up + cosine), so 70 frames get a full one too.
    #: ``epochs``, when set, replaces it (and ``min_epochs``) by that many passes.
    steps: int = 800
    #: ... but at least this many passes over the frames: 800 steps are 3 epochs of the
    #: 5,000-frame world, which 6 epochs lift from 0.451 to 0.472 mAP@0.5 (BENCHMARKS);
    #: up to ~1,280 frames (batch 12), ``steps`` decides.
    min_epochs: int = 6
    epochs: int | None = None
    #: Validation mAP@0.5 every this many epochs and after the last; the best is kept.
    #: None: about ``evaluations`` of them, spaced over the schedule's last ``eval_span``:
    #: the best weights come late in a cosine schedule (BENCHMARKS), and each evaluation is
    #: a pass over the validation frames, about the cost of 40 training steps.
    eval_every: int | None = None
    evaluations: int = 4
    eval_span: float = 0.5
    lr: float = 5e-3  # neck and heads
    backbone_lr: float = 1e-4  # top backbone group (finetune); lower groups lr_decay times less
    lr_decay: float = 0.5
    finetune_groups: int = 2  # backbone groups trained in finetune mode, from the top
    weight_decay: float = 1e-4
    batch_size: int = 12
    width: int = 64  # FPN / head channels
    #: Heat-map stride: 8, or 4 with the backbone's stride-4 map (cache layer ``pyramid4``)
    #: added to the FPN: small objects get their own peaks, at ~4x the head's cost.
    head_stride: int = STRIDE
    #: "shared": size and offset from one 3x3 block (see DetectorHead), ~1/4 cheaper.
    box_head: str = "shared"
    flip: bool = True
    #: Frozen mode: each training step sees a random window of this fraction of each side
    #: of the cached maps (aligned to the stride-32 grid), so a step costs crop**2 of a
    #: full frame's; validation and prediction run on whole frames. Objects are small and
    #: the cached maps already carry the whole image's context, so windows lose little.
    crop: float = 1.0
    #: finetune: brightness and contrast jitter of each training image, +- this fraction
    #: (frozen mode trains on cached maps of the unaltered images: flips only).
    photometric: float = 0.2
    size_weight: float = 1.0
    offset_weight: float = 1.0
    #: Class-balanced heat-map loss: class weights (mean count / count) ** this (0: off).
    class_balance: float = 0.5
    max_objects: int = 128  # per frame, for the size/offset losses
    #: Smallest heat-map Gaussian radius in cells: CornerNet's radius is 0 for objects of a
    #: few cells (most here), so their neighbours count as full negatives.
    min_radius: int = 0
    #: Exponential moving average of the trained weights (decay per step; 0: off): what is
    #: validated and kept. Small batches make noisy steps; the average of the last ~1/(1 -
    #: decay) steps (~200) is a steadier model, for no extra training: +0.012 mAP@0.5 over
    #: 0.99 on the demo world (BENCHMARKS).
    ema: float = 0.995
    #: Flip test-time augmentation: ``predict`` averages the head's heat maps, sizes and
    #: offsets on each frame and on its mirror, flipped as training flips (frozen: the
    #: backbone maps mirrored, a second pass of the head only; finetune: the image):
    #: +0.013-0.035 mAP@0.5 on the demo world's seeds (BENCHMARKS). Validation's mAP, which
    #: picks the kept weights, is predict's.
    test_flip: bool = True
    top_k: int = 100  # detections per frame (COCO evaluates at most 100)
    score_threshold: float = 0.01  # low: mAP needs the tail of the ranking
    seed: int = 0
    workers: int = 0
    #: finetune: frames drawn afresh per epoch (None: all), as in the tagger.
    samples_per_epoch: int | None = None
    #: auto | cpu | cuda | mps (see :mod:`scenesift.devices`); not part of the fingerprint.
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.steps < 1 or self.batch_size < 1 or (self.epochs is not None and self.epochs < 1):
            raise ValueError("steps, epochs and batch_size must be >= 1")
        if self.min_epochs < 0:
            raise ValueError(f"min_epochs must be >= 0, got {self.min_epochs!r}")
        if (self.eval_every is not None and self.eval_every < 1) or self.evaluations < 1:
            raise ValueError("eval_every and evaluations must be >= 1")
        if not 0 < self.eval_span <= 1:
            raise ValueError(f"eval_span must be in (0, 1], got {self.eval_span!r}")
        if self.box_head not in BOX_HEADS:
            raise ValueError(f"box_head must be one of {BOX_HEADS}, got {self.box_head!r}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema!r}")
        if not 0 < self.crop <= 1:
            raise ValueError(f"crop must be in (0, 1], got {self.crop!r}")
        if self.head_stride not in HEAD_STRIDES:
            raise ValueError(f"head_stride must be one of {HEAD_STRIDES}, got {self.head_stride!r}")
        check_device(self.device)

    def schedule(self, batches_per_epoch: int) -> tuple[int, int, int]:
        """(epochs, optimiser steps, evaluate every this many epochs) for a training set of
        ``batches_per_epoch`` batches."""
        if self.epochs is not None:
            epochs, total = self.epochs, self.epochs * batches_per_epoch
        else:
            total = max(self.steps, self.min_epochs * batches_per_epoch)
            epochs = math.ceil(total / batches_per_epoch)
        every = self.eval_every or max(1, round(epochs * self.eval_span / self.evaluations))
        return epochs, total, every

    def input_size_for(self, records: Sequence[FrameRecord]) -> tuple[int, int] | None:
        """The (H, W) input a fit on ``records`` takes: ``input_size``, else their median
        aspect ratio at ``input_pixels`` (None without records: the backbone's own). Feature
        caches filled ahead of training (experiments, benchmarks) ask it too."""
        if self.input_size is not None or not records:
            return self.input_size
        return aspect_input_size([_image_size(r) for r in records], self.input_pixels)

    def evaluates(self, epoch: int, epochs: int, every: int) -> bool:
        """Whether the 1-based ``epoch`` of ``epochs`` is validated (the last always is)."""
        start = 0 if self.eval_every else epochs - math.floor(epochs * self.eval_span)
        return epoch >= epochs or (epoch > start and (epoch - start) % every == 0)


@dataclass
class DetectorEpoch:
    epoch: int
    train_loss: float
    val_loss: float
    heat_loss: float
    seconds: float
    #: Optimiser steps taken by the end of the epoch.
    steps: int = 0
    #: Validation mAP@0.5 (None: not evaluated at this epoch, or no validation objects).
    val_map50: float | None = None
    #: Whether this epoch's weights became the kept model.
    kept: bool = False


@dataclass
class _Data:
    """Training frames in network-input terms: (class, xyxy) arrays, and their targets."""

    boxes: list[np.ndarray]
    targets: Targets
    flipped: Targets
    class_weights: torch.Tensor | None = None


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
    #: Self-training (``al.learners.DetectorLearner.pseudo_labels``): the model whose
    #: detections boxed this one's unlabelled training frames, trained on the same labelled
    #: frames alone, kept so a round can say what self-training added. Not saved.
    teacher: ObjectDetector | None = field(default=None, init=False, repr=False)

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        train: Sequence[FrameRecord],
        val: Sequence[FrameRecord] | None = None,
        store: Store | None = None,
        backbone: Backbone | None = None,
        progress: bool = True,
        on_eval: Callable[[DetectorEpoch], None] | None = None,
    ) -> ObjectDetector:
        """Train on the frames of ``train`` whose boxes are labelled for the configured
        schedule; with ``val``, keep the weights with the best validation mAP@0.5 (the lowest
        validation loss when ``val`` holds no object), evaluated every ``eval_every`` epochs
        and after the last. ``on_eval`` sees each evaluated epoch (the CLI's live table).
        With a ``store``, frozen features come from (and go to) its cache; without one
        they are computed once per fit, in memory."""
        cfg = self.config
        device = self.device
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        train = [r for r in train if r.boxes is not None]
        size = cfg.input_size if backbone is not None else cfg.input_size_for(train)
        backbone = at_input_size(backbone or get_backbone(cfg.backbone), size)
        net = DetectorNet(backbone, len(self.classes), cfg.width, cfg.head_stride, cfg.box_head)
        self.net = net.to(memory_format=torch.channels_last)
        self.history, self.backbone_trained = [], False
        val = [r for r in (val or ()) if r.boxes is not None]
        if not train:
            raise ValueError("no training frame has labelled boxes")
        self.data_fingerprint = _data_fingerprint(train, val, self.classes)
        data_tr, data_va = self._data(train), self._data(val)
        frozen = cfg.mode == "frozen"
        if frozen:
            feats_tr = self._pyramid(train, store, progress)
            feats_va = self._pyramid(val, store, progress) if val else None
        self.net.to(device)
        n_groups = 0 if frozen else min(cfg.finetune_groups, len(backbone.block_groups()))
        opt = self._optimizer(n_groups)
        per_epoch = (
            min(len(train), cfg.samples_per_epoch or len(train)) if not frozen else len(train)
        )
        epochs, total_steps, every = cfg.schedule(math.ceil(per_epoch / cfg.batch_size))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(_warmup_cosine, total=total_steps))
        scaler = grad_scaler(device)
        by_map = any(len(b) for b in data_va.boxes)
        averaged = self.net.head if frozen else self.net  # what trains
        ema = _ema(averaged, cfg.ema, opt)
        best, best_score, done = None, -float("inf"), 0
        with steps("training", total_steps, progress) as advance:
            for epoch in range(epochs):
                started = time.perf_counter()
                budget = total_steps - done
                if frozen:
                    loss, heat, n = self._epoch_frozen(
                        feats_tr, data_tr, opt, sched, scaler, rng, budget
                    )
                else:
                    loss, heat, n = self._epoch_images(
                        train, data_tr, opt, sched, scaler, rng, n_groups, budget
                    )
                    self.backbone_trained = True
                done += n
                advance(n)
                log = DetectorEpoch(
                    epoch, loss, float("nan"), heat, time.perf_counter() - started, done
                )
                self.history.append(log)
                last = epoch == epochs - 1 or done >= total_steps
                if val and (last or cfg.evaluates(epoch + 1, epochs, every)):
                    with _averaged_weights(averaged, ema):
                        log.val_loss, log.val_map50 = self._validate(
                            val, data_va, feats_va if frozen else None, by_map
                        )
                        score = log.val_map50 if by_map else -log.val_loss
                        if score is not None and score > best_score:
                            best_score, best = score, copy.deepcopy(self.net.state_dict())
                            log.kept = True
                    log.seconds = time.perf_counter() - started
                    if on_eval is not None:
                        on_eval(log)
                if last:
                    break
        if best is not None:
            self.net.load_state_dict(best)
        elif ema is not None:
            averaged.load_state_dict(ema.module.state_dict())
        self.net.eval()
        return self

    def _validate(
        self, val: Sequence[FrameRecord], data: _Data, feats, by_map: bool
    ) -> tuple[float, float | None]:
        """(validation loss, mAP@0.5 or None without ``by_map``) of the current weights,
        from one forward pass per batch: evaluation runs on whole frames, so a second pass
        for the loss would cost as much as the mAP. With ``test_flip``, the mAP is that of
        ``predict`` (plus a pass on the mirrored maps), so the kept weights are the best at
        what they will be used for."""
        from scenesift.metrics.detection import evaluate_detection

        self.net.eval()
        losses: list[float] = []
        decoded: list[Decoded] = []
        cfg = self.config
        for out, flipped, idx in self._val_outputs(val, feats, by_map and cfg.test_flip):
            loss, _ = detection_loss(out, _targets(data, idx, np.zeros(len(idx), dtype=bool)))
            losses.append(float(loss) * len(idx))
            if by_map:
                decoded += decode(out, cfg.top_k, cfg.score_threshold, cfg.head_stride, flipped)
        loss = sum(losses) / max(len(val), 1)
        if not by_map:
            return loss, None
        preds = self._boxes(val, self._arrays(val, decoded))
        return loss, evaluate_detection(val, preds, self.classes).map50

    def _val_outputs(self, val: Sequence[FrameRecord], feats, flip: bool):
        """(head outputs, those on the mirrored maps or None without ``flip``, frame
        positions) per validation batch, outputs on the CPU in float32."""
        device, bs, net = self.device, self.config.batch_size, self.net

        def heads(maps: list[torch.Tensor], mirrored: list[torch.Tensor] | None):
            with autocast(device):
                outs = [net.head(m) for m in (maps, mirrored) if m is not None]
            cpu = [{k: v.float().cpu() for k, v in o.items()} for o in outs]
            return cpu[0], cpu[1] if mirrored is not None else None

        with torch.inference_mode():
            if feats is not None:
                for i in range(0, len(val), bs):
                    idx = np.arange(i, min(i + bs, len(val)))
                    maps = _maps(feats, idx, np.zeros(len(idx), bool), device)
                    yield *heads(maps, [_mirror(m) for m in maps] if flip else None), idx
                return
            for batch in self._loader([r.path for r in val]):
                images = to_device(batch.images, device)
                with autocast(device):
                    maps = net.backbone.features(images, fine=net.fine)
                    mirrored = self._mirrored(net, images, maps) if flip else None
                yield *heads(list(maps), mirrored), batch.index.numpy()

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
        ignore = [_input_boxes(r, self.classes, (h, w), crowd=True) for r in records]
        stride = self.config.head_stride
        grid = (h // stride, w // stride)
        k, m, r = len(self.classes), self.config.max_objects, self.config.min_radius

        def targets(boxes: list[np.ndarray], ignore: list[np.ndarray]) -> Targets:
            return build_targets(boxes, k, grid, stride, m, r, ignore=ignore)

        return _Data(
            boxes=boxes,
            targets=targets(boxes, ignore),
            flipped=targets([flip_boxes(b, w) for b in boxes], [flip_boxes(b, w) for b in ignore]),
            class_weights=class_balance_weights(boxes, k, self.config.class_balance),
        )

    def _batches(self, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
        """Shuffled index batches, each with a random flip decision per frame."""
        order = rng.permutation(n)
        flips = rng.random(n) < 0.5 if self.config.flip else np.zeros(n, dtype=bool)
        bs = self.config.batch_size
        return [(order[i : i + bs], flips[i : i + bs]) for i in range(0, n, bs)]

    def _epoch_frozen(
        self, feats, data: _Data, opt, sched, scaler, rng, budget: int
    ) -> tuple[float, float, int]:
        """One pass (at most ``budget`` steps) of the neck and heads over cached features:
        (mean loss, mean heat-map loss, steps taken)."""
        head, device = self.net.head, self.device
        head.train()
        losses, heats = [], []
        window = _window(self._input_size(), self.config.crop)
        for idx, flip in self._batches(len(data.boxes), rng)[:budget]:
            if window is None:
                maps, targets = _maps(feats, idx, flip, device), _targets(data, idx, flip, device)
            else:
                maps, targets = _windows(feats, data, idx, flip, window, rng, device)
            with autocast(device):
                out = head(maps)
            loss, parts = detection_loss(
                out,
                targets,
                self.config.size_weight,
                self.config.offset_weight,
                data.class_weights,
            )
            _step(opt, sched, scaler, loss)
            losses.append(float(loss.detach()))
            heats.append(parts["heat"])
        head.eval()
        return float(np.mean(losses)), float(np.mean(heats)), len(losses)

    def _epoch_images(
        self, records, data: _Data, opt, sched, scaler, rng, n_groups, budget: int
    ) -> tuple[float, float, int]:
        """One pass (at most ``budget`` steps) over decoded images with the top
        ``n_groups`` backbone groups training."""
        cfg, device = self.config, self.device
        set_train_mode(self.net, n_groups)
        n = min(len(records), cfg.samples_per_epoch or len(records), budget * cfg.batch_size)
        order = rng.permutation(len(records))[:n]
        flips = rng.random(n) < 0.5 if cfg.flip else np.zeros(n, dtype=bool)
        loader = self._loader([records[i].path for i in order])
        losses, heats = [], []
        for batch in loader:
            pos = batch.index.numpy()
            flip = flips[pos]
            images = to_device(batch.images, device)
            f = torch.from_numpy(flip).to(device)
            images = torch.where(f[:, None, None, None], images.flip(-1), images)
            images = _photometric(images, cfg.photometric, rng)
            with autocast(device):
                out = self.net(images)
            loss, parts = detection_loss(
                out,
                _targets(data, order[pos], flip, device),
                cfg.size_weight,
                cfg.offset_weight,
                data.class_weights,
            )
            _step(opt, sched, scaler, loss)
            losses.append(float(loss.detach()))
            heats.append(parts["heat"])
        self.net.eval()
        return float(np.mean(losses)), float(np.mean(heats)), len(losses)

    def _loader(self, paths: Sequence[Path]):
        net = self._check_fitted()
        cfg = self.config
        return make_loader(
            paths,
            net.backbone.preprocessing,
            cfg.batch_size,
            cfg.workers,
            pin_memory=pin_memory(self.device),
        )

    def _pyramid(
        self, records: Sequence[FrameRecord], store: Store | None, progress: bool
    ) -> list[np.ndarray]:
        """Frozen backbone maps (N, C, h, w) float16 per stride, from the cache if any."""
        backbone = self._check_fitted().backbone
        cfg = self.config
        layer = "pyramid4" if cfg.head_stride == 4 else "pyramid"
        if store is not None:
            feats = embed(
                store,
                backbone,
                [r.name for r in records],
                layer=layer,
                batch_size=cfg.batch_size,
                workers=cfg.workers,
                progress=progress,
                device=cfg.device,
            )
            return split_pyramid(feats.array, backbone, layer)
        fast = backbone.for_inference()
        loader = make_loader(
            [r.path for r in records], backbone.preprocessing, cfg.batch_size, cfg.workers
        )
        chunks = []
        with steps("features", len(records), progress, transient=True) as advance:
            for batch in loader:
                chunks.append(forward_features(fast, batch.images, layer))
                advance(len(batch.index))
        return split_pyramid(np.concatenate(chunks), backbone, layer)

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
        records = list(records)
        return self._boxes(records, self.predict_arrays(records, store, progress))

    def predict_arrays(
        self, records: Sequence[FrameRecord], store: Store | None = None, progress: bool = False
    ) -> DetectionArrays:
        """``predict``'s detections as arrays, no ``Box`` built: a campaign reads a whole
        pool's detections and shows labellers only the picks' boxes."""
        self._check_fitted()
        records = list(records)
        if not records:
            return DetectionArrays.empty(0, len(self.classes))
        if store is not None and not self.backbone_trained:
            decoded = self._decode_cached(records, store, progress)
        else:
            decoded = self._decode_images(records, progress)
        return self._arrays(records, decoded)

    def _decode_cached(
        self,
        records,
        store,
        progress,
        view: Callable[[np.ndarray], Any] | None = None,
        test_flip: bool | None = None,
    ) -> list[Decoded]:
        """Detections from the cached maps, read ``PREDICT_CHUNK`` frames at a time (a
        4,400-frame pool's maps at 384x640 are 3 GB); ``view`` wraps each level's array
        (the flipped pass reads them mirrored); ``test_flip`` overrides the config's."""
        out: list[Decoded] = []
        for i in range(0, len(records), PREDICT_CHUNK):
            feats = self._pyramid(records[i : i + PREDICT_CHUNK], store, progress)
            feats = [view(f) for f in feats] if view else feats
            out += self._decode_feats(feats, len(feats[0]), test_flip)
        return out

    def _decode_feats(self, feats, n: int, test_flip: bool | None = None) -> list[Decoded]:
        """Detections from cached pyramid maps, ``_inference_batch()`` frames at a time."""
        cfg, device = self.config, self.device
        flip = cfg.test_flip if test_flip is None else test_flip
        net = self._check_fitted().to(device)
        out: list[Decoded] = []
        bs = self._inference_batch()
        with torch.inference_mode():
            for i in range(0, n, bs):
                idx = np.arange(i, min(i + bs, n))
                maps = _maps(feats, idx, np.zeros(len(idx), dtype=bool), device)
                mirrored = [_mirror(m) for m in maps] if flip else None
                with autocast(device):
                    out += decode_head(net.head, maps, cfg.top_k, cfg.score_threshold,
                                       cfg.head_stride, flipped=mirrored)  # fmt: skip
        return out

    def _inference_batch(self) -> int:
        """Frames per forward pass of the head on cached maps: ``batch_size``, on a CPU at
        most ``INFERENCE_CELLS`` heat-map cells. A batch whose maps outgrow the caches runs
        slower per frame: on 2 idle cores at 384x640, 32 frames cost ~1.5x as much per
        frame as 8 or 16 (at 192x320, 32 as much as 16). Not fewer than 16 there: when
        other processes hold the cores, every op's threads wait for each other, and 8
        frames then cost ~2x as much per frame as 16."""
        if self.device.type != "cpu":
            return self.config.batch_size
        h, w = self._input_size()
        cells = (h // self.config.head_stride) * (w // self.config.head_stride)
        return max(1, min(self.config.batch_size, INFERENCE_CELLS // max(cells, 1)))

    def _decode_images(self, records, progress) -> list[Decoded]:
        net = self._check_fitted()
        cfg, device = self.config, self.device
        fast = copy.deepcopy(net).eval()
        fast.backbone = fast.backbone.for_inference()
        fast.to(device)
        out: list[Decoded | None] = [None] * len(records)
        with (
            torch.inference_mode(),
            steps("detecting", len(records), progress, transient=True) as advance,
        ):
            for batch in self._loader([r.path for r in records]):
                images = to_device(batch.images, device)
                with autocast(device):
                    maps = fast.backbone.features(images, fine=fast.fine)
                    mirrored = self._mirrored(fast, images, maps) if cfg.test_flip else None
                    decoded = decode_head(fast.head, maps, cfg.top_k, cfg.score_threshold,
                                          cfg.head_stride, flipped=mirrored)  # fmt: skip
                for pos, d in zip(batch.index.tolist(), decoded, strict=True):
                    out[pos] = d
                advance(len(batch.index))
        return out  # type: ignore[return-value]

    def _mirrored(self, net: DetectorNet, images: torch.Tensor, maps) -> list[torch.Tensor]:
        """The maps test flip averages with: what the head was trained on, mirrored. A
        frozen backbone's maps mirrored (training flips the cached maps); a trained one's
        maps of the flipped images (finetune flips the images), a second backbone pass."""
        if self.backbone_trained:
            return list(net.backbone.features(_mirror(images), fine=net.fine))
        return [_mirror(m) for m in maps]

    def _boxes(
        self, records: Sequence[FrameRecord], arrays: DetectionArrays
    ) -> dict[str, list[Box]]:
        """Frame name -> Boxes of ``arrays`` (rows follow ``records``)."""
        return dict(arrays.by_name([r.name for r in records], self.classes))

    def _arrays(self, records: Sequence[FrameRecord], decoded: Sequence[Decoded]):
        return decoded_arrays(decoded, self._input_size(), [_image_size(r) for r in records])

    # ------------------------------------------------------------------ identity & disk
    @property
    def fingerprint(self) -> str:
        """What made this model: config, classes, backbone weights, head and training data."""
        net = self._check_fitted()
        return fingerprint(
            {
                "config": {k: v for k, v in asdict(self.config).items() if k != "device"},
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
        # checkpoints older than these options had the "split" box head and no test flip,
        # whatever the defaults now
        config = DetectorConfig(**{"box_head": "split", "test_flip": False, **state["config"]})
        detector = cls(list(state["classes"]), config)
        backbone = trained_backbone(path, state, config.backbone, backbone)
        net = DetectorNet(
            backbone, len(detector.classes), config.width, config.head_stride, config.box_head
        )
        net.load_state_dict(state["net"])
        detector.net = net.to(memory_format=torch.channels_last).eval()
        detector.history = [DetectorEpoch(**h) for h in state["history"]]
        detector.data_fingerprint = state["data_fingerprint"]
        detector.backbone_trained = state["backbone_trained"]
        return detector


# --------------------------------------------------------------------------- helpers
@dataclass(frozen=True, eq=False)
class DetectionArrays:
    """Detections of a list of frames in original image pixels, flattened: one row per
    detection, frame by frame, best first within a frame. What ``predict`` makes ``Box``
    lists of, and what a campaign's pool reads without building any (a ``Box`` per
    detection is most of a cached-feature forward pass's time)."""

    frame: np.ndarray  # (m,) int64, the frame's position in the predicted records
    category: np.ndarray  # (m,) int64, index of the detected class
    boxes: np.ndarray  # (m, 4) float64 xyxy, clipped to the image, none empty
    scores: np.ndarray  # (m,) float32, the peak's heat-map value
    class_probs: np.ndarray  # (m, K) float64: every class's heat at the peak, normalised
    n_frames: int

    @classmethod
    def empty(cls, n_frames: int, n_classes: int) -> DetectionArrays:
        return cls(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)),
            np.zeros(0, np.float32), np.zeros((0, n_classes)), n_frames,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.frame)

    def mirrored(self, widths: Sequence[float]) -> DetectionArrays:
        """Boxes mirrored left-right in images ``widths`` wide (one per frame): detections
        on flipped frames, brought back into the originals."""
        w = np.asarray(widths, np.float64)[self.frame]
        boxes = self.boxes.copy()
        boxes[:, 0], boxes[:, 2] = w - self.boxes[:, 2], w - self.boxes[:, 0]
        return DetectionArrays(
            self.frame, self.category, boxes, self.scores, self.class_probs, self.n_frames
        )

    @cached_property
    def _starts(self) -> np.ndarray:
        return np.searchsorted(self.frame, np.arange(self.n_frames + 1))

    def frame_boxes(self, row: int, classes: Sequence[str]) -> list[Box]:
        """The detections of the frame at ``row`` as Boxes, best first."""
        lo, hi = self._starts[row], self._starts[row + 1]
        return [
            Box(classes[c], *xyxy, score=s, class_probs=tuple(p))
            for c, xyxy, s, p in zip(
                self.category[lo:hi].tolist(), self.boxes[lo:hi].tolist(),
                self.scores[lo:hi].tolist(), self.class_probs[lo:hi].tolist(), strict=True,
            )
        ]  # fmt: skip

    def by_name(self, names: Sequence[str], classes: Sequence[str]) -> Mapping[str, list[Box]]:
        """Frame name -> Boxes, each frame's built when first read."""
        return _LazyBoxes(self, names, classes)


class _LazyBoxes(Mapping[str, list[Box]]):
    """``DetectionArrays`` as frame name -> Boxes, each frame's Boxes built on first read."""

    def __init__(self, arrays: DetectionArrays, names: Sequence[str], classes: Sequence[str]):
        if len(names) != arrays.n_frames:
            raise ValueError(f"{len(names)} names for detections of {arrays.n_frames} frames")
        self.arrays, self.classes = arrays, list(classes)
        self.rows = {name: i for i, name in enumerate(names)}
        self.built: dict[str, list[Box]] = {}

    def __getitem__(self, name: str) -> list[Box]:
        if name not in self.built:
            self.built[name] = self.arrays.frame_boxes(self.rows[name], self.classes)
        return self.built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def decoded_arrays(
    decoded: Sequence[Decoded],
    input_size: tuple[int, int],
    image_sizes: Sequence[tuple[int, int]],
) -> DetectionArrays:
    """Detections of several frames in original image pixels (``image_sizes``: (W, H) per
    frame) from detections in network input pixels (``input_size`` = (H, W), a stretch
    resize), clipped to the image (boxes left empty dropped), with ``class_probs`` = the
    heat-map values of all classes at the peak, normalised (uniform where all are 0)."""
    in_h, in_w = input_size
    if len(decoded) != len(image_sizes):
        raise ValueError(f"{len(image_sizes)} image sizes for {len(decoded)} decoded frames")
    if not decoded:
        return DetectionArrays.empty(0, 0)
    counts = [len(d.scores) for d in decoded]
    frame = np.repeat(np.arange(len(decoded), dtype=np.int64), counts)
    k = decoded[0].class_values.shape[1]
    values = np.concatenate([d.class_values for d in decoded]).astype(np.float64)
    raw = np.concatenate([d.boxes.reshape(-1, 4) for d in decoded]).astype(np.float64)
    size = np.asarray(image_sizes, np.float64).reshape(-1, 2)[frame]  # (m, 2) W, H
    scale = size / np.array([in_w, in_h], np.float64)
    xyxy = raw * np.tile(scale, 2)
    xyxy = np.minimum(np.maximum(xyxy, 0.0), np.tile(size, 2))
    keep = ~((xyxy[:, 2] <= xyxy[:, 0]) | (xyxy[:, 3] <= xyxy[:, 1]))
    total = values.sum(axis=1, keepdims=True)
    probs = np.divide(values, total, out=np.full_like(values, 1 / max(k, 1)), where=total > 0)
    return DetectionArrays(
        frame=frame[keep],
        category=np.concatenate([d.classes.reshape(-1) for d in decoded]).astype(np.int64)[keep],
        boxes=xyxy[keep],
        scores=np.concatenate([d.scores.reshape(-1) for d in decoded]).astype(np.float32)[keep],
        class_probs=probs[keep],
        n_frames=len(decoded),
    )


def decoded_to_boxes(
    d: Decoded,
    classes: Sequence[str],
    input_size: tuple[int, int],
    image_size: tuple[int, int],
) -> list[Box]:
    """One frame's ``decoded_arrays`` as Boxes (``image_size`` = (W, H))."""
    return decoded_arrays([d], input_size, [image_size]).frame_boxes(0, classes)


def aspect_input_size(sizes: Sequence[tuple[int, int]], pixels: int) -> tuple[int, int]:
    """(H, W), multiples of 32, of about ``pixels`` pixels at the median aspect ratio of
    the image ``sizes`` ((W, H) each): 320x192 frames at 192 * 320 pixels give (192, 320),
    KITTI's 1242x375 give (128, 448) (at 384 * 640: (288, 896)), 1280x720 dashcam
    frames (384, 672) at 384 * 640."""
    aspect = float(np.median([w / h for w, h in sizes]))
    h = max(1, round(math.sqrt(pixels / aspect) / 32))
    w = max(1, round(math.sqrt(pixels * aspect) / 32))
    return 32 * h, 32 * w


def _image_size(record: FrameRecord) -> tuple[int, int]:
    """(W, H) of the original image: the record's, else read from the file header."""
    if record.width and record.height:
        return record.width, record.height
    with Image.open(record.path) as im:
        return im.size


def _input_boxes(
    record: FrameRecord, classes: Sequence[str], size: tuple[int, int], crowd: bool = False
) -> np.ndarray:
    """(n, 5) class index + xyxy in network-input pixels; boxes of other classes dropped.
    ``crowd``: the ignore regions (``iscrowd``) instead of the objects."""
    h, w = size
    width, height = _image_size(record)
    col = {c: i for i, c in enumerate(classes)}
    rows = [
        (col[b.category], b.x1 * w / width, b.y1 * h / height, b.x2 * w / width, b.y2 * h / height)
        for b in record.boxes or ()
        if b.category in col and bool(b.attributes.get("iscrowd")) == crowd
    ]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def _maps(
    feats: list[np.ndarray],
    idx: np.ndarray,
    flip: np.ndarray,
    device: torch.device = torch.device("cpu"),
) -> list[torch.Tensor]:
    """float32 channels_last batch of cached maps on ``device``, mirrored where ``flip``
    (float16 crosses to a GPU from pinned memory, then widens there)."""
    out = []
    f = torch.from_numpy(np.asarray(flip, dtype=bool))
    for level in feats:
        x = torch.from_numpy(np.ascontiguousarray(level[idx]))
        if pin_memory(device):
            x = x.pin_memory()
        # one copy widens and reorders (float() then contiguous() made two)
        x = to_device(x, device).to(torch.float32, memory_format=torch.channels_last)
        if f.any():
            x[f.to(device)] = x[f.to(device)].flip(-1)
        out.append(x.contiguous(memory_format=torch.channels_last))
    return out


def _mirror(x: torch.Tensor) -> torch.Tensor:
    """A channels_last batch mirrored along its width."""
    return x.flip(-1).contiguous(memory_format=torch.channels_last)


def _window(size: tuple[int, int], crop: float) -> tuple[int, int] | None:
    """(h, w) training window in input pixels, multiples of 32, or None for whole frames."""
    h, w = size
    if crop >= 1:
        return None
    wh = min(h, max(32, 32 * round(h * crop / 32)))
    ww = min(w, max(32, 32 * round(w * crop / 32)))
    return None if (wh, ww) == (h, w) else (wh, ww)


def _windows(
    feats: list[np.ndarray],
    data: _Data,
    idx: np.ndarray,
    flip: np.ndarray,
    window: tuple[int, int],
    rng: np.random.Generator,
    device: torch.device = torch.device("cpu"),
) -> tuple[list[torch.Tensor], Targets]:
    """A batch of random ``window``-sized crops (one position per frame, on the stride-32
    grid so every pyramid level crops exactly) of cached maps and their targets; objects
    whose centre falls outside a crop leave the size/offset losses, the visible part of
    their heat-map peak stays. Cropping happens before float16 widens: 1/crop**2 less
    copying."""
    n = len(idx)
    full_h, full_w = feats[-1].shape[-2] * 32, feats[-1].shape[-1] * 32  # the stride-32 map
    wh, ww = window
    oy = rng.integers(0, (full_h - wh) // 32 + 1, n)
    ox = rng.integers(0, (full_w - ww) // 32 + 1, n)  # in the (maybe flipped) frame
    maps = []
    for level in feats:
        f = level.shape[-1] * 32 // full_w  # cells per 32 pixels at this level
        ch, cw = wh * f // 32, ww * f // 32
        crops = []
        for i, fl, y, x in zip(idx, flip, oy, ox, strict=True):
            x_src = (full_w - ww) // 32 - x if fl else x  # the mirror window of the original
            c = level[i, :, y * f : y * f + ch, x_src * f : x_src * f + cw]
            crops.append(c[..., ::-1] if fl else c)
        x_t = torch.from_numpy(np.ascontiguousarray(np.stack(crops)))
        if pin_memory(device):
            x_t = x_t.pin_memory()
        maps.append(to_device(x_t, device).float().contiguous(memory_format=torch.channels_last))
    t = _targets(data, idx, flip)
    gw = t.heat.shape[-1]
    f = gw * 32 // full_w
    ch, cw = wh * f // 32, ww * f // 32
    y0 = torch.from_numpy(oy * f)
    x0 = torch.from_numpy(ox * f)
    heat = torch.stack(
        [t.heat[j, :, y : y + ch, x : x + cw] for j, (y, x) in enumerate(zip(y0, x0, strict=True))]
    )
    iy, ix = t.index // gw - y0[:, None], t.index % gw - x0[:, None]
    inside = (iy >= 0) & (iy < ch) & (ix >= 0) & (ix < cw)
    index = torch.where(inside, iy * cw + ix, torch.zeros_like(iy))
    mask = t.mask * inside.float()
    return maps, Targets(*(to_device(x, device) for x in (heat, index, t.size, t.offset, mask)))


def _photometric(images: torch.Tensor, amount: float, rng: np.random.Generator) -> torch.Tensor:
    """Per-image contrast (x in [1 - a, 1 + a]) and brightness (+ [-a, a] standard
    deviations) jitter of normalised images: the camera's exposure varies, the labels not."""
    if amount <= 0:
        return images
    n = len(images)
    gain = torch.from_numpy(rng.uniform(1 - amount, 1 + amount, n).astype(np.float32))
    bias = torch.from_numpy(rng.uniform(-amount, amount, n).astype(np.float32))
    shape = (n, 1, 1, 1)
    return images * gain.to(images).reshape(shape) + bias.to(images).reshape(shape)


def _targets(
    data: _Data, idx: np.ndarray, flip: np.ndarray, device: torch.device = torch.device("cpu")
) -> Targets:
    i = torch.from_numpy(np.asarray(idx, dtype=np.int64))
    a, b = data.targets[i], data.flipped[i]
    f = torch.from_numpy(np.asarray(flip, dtype=bool))

    def pick(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.where(f.reshape(-1, *([1] * (x.dim() - 1))), y, x).to(device)

    return Targets(
        pick(a.heat, b.heat),
        pick(a.index, b.index),
        pick(a.size, b.size),
        pick(a.offset, b.offset),
        pick(a.mask, b.mask),
    )


def _ema(target: torch.nn.Module, decay: float, opt: torch.optim.Optimizer):
    """An exponential moving average of ``target``'s weights, updated after every
    optimiser step (torch's ``AveragedModel``), or None when ``decay`` is 0; see
    ``_ema_decay``."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel

    def average(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = _ema_decay(decay, int(n))
        return avg * d + new * (1 - d)

    ema = AveragedModel(target, avg_fn=average, use_buffers=True)
    opt.register_step_post_hook(lambda *_: ema.update_parameters(target))
    return ema


def _ema_decay(decay: float, n: int) -> float:
    """The weight of the average when the ``n + 1``-th weights arrive: a plain mean of
    the steps so far until that reaches ``decay`` (after 1 / (1 - decay) steps), so the
    initial weights never dominate. TensorFlow's and timm's warm-up, (1 + n) / (10 + n),
    stays below 0.99 for ~900 steps: with 800 steps any decay from 0.99 up was inert."""
    return min(decay, n / (n + 1))


@contextmanager
def _averaged_weights(target: torch.nn.Module, ema) -> Iterator[None]:
    """``ema``'s averaged weights in ``target`` for the block (validation, and the state
    kept from it), the raw ones back after: training goes on from the raw weights."""
    if ema is None:
        yield
        return
    raw = copy.deepcopy(target.state_dict())
    target.load_state_dict(ema.module.state_dict())
    try:
        yield
    finally:
        target.load_state_dict(raw)


def _warmup_cosine(step: int, total: int) -> float:
    """LR factor: linear warm-up over the first 5% of steps (at least 1), then cosine to 0."""
    warm = max(1, total // 20)
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))


def _step(opt: torch.optim.Optimizer, sched: Any, scaler: Any, loss: torch.Tensor) -> None:
    opt.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    sched.step()


def _data_fingerprint(
    train: Sequence[FrameRecord], val: Sequence[FrameRecord], classes: Sequence[str]
) -> str:
    def frame(r: FrameRecord) -> list:
        return [
            r.name,
            [
                (b.category, round(b.x1, 2), round(b.y1, 2), round(b.x2, 2), round(b.y2, 2))
                + (("iscrowd",) if b.attributes.get("iscrowd") else ())  # an ignore region
                for b in r.boxes or ()
            ],
        ]

    return fingerprint(
        {"classes": list(classes), "train": [frame(r) for r in train], "val": [r.name for r in val]}
    )
