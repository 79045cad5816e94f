"""The situation tagger as an estimator: ``fit`` on labelled frames, ``predict_scores`` on any.

Configuration lives in :class:`TaggerConfig` (scikit-learn style: no hidden global state).
Training follows seed 000: all situations at once, masked binary cross-entropy, the new
layer alone for the first epoch, then one more block group of the backbone per epoch.
While the backbone is frozen, the head trains on cached pooled features (exactly
equivalent, see ``TaggerNet.head_on_pooled``), so that epoch costs seconds, not minutes.
The fine-tuning epochs of a gradual schedule never train more than its top K groups, so
with a store they train on the cached output of the frozen groups below (the ``trunk:K``
layer): the same computation, with the bottom of the backbone run once instead of once
per epoch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from scenesift.devices import autocast, check_device, pin_memory, resolve_device, to_device
from scenesift.features import embed, row_shape, trunk_layer
from scenesift.models.backbones import DEFAULT_BACKBONE, Backbone, at_input_size, get_backbone
from scenesift.models.images import make_loader
from scenesift.models.tagger_net import (
    SCHEDULES,
    TaggerNet,
    auto_pos_weight,
    masked_bce,
    set_train_mode,
    set_trainable,
    trainable_groups,
)
from scenesift.models.weights import load_state, save_state, tensor_digest, trained_backbone
from scenesift.records import FrameRecord
from scenesift.store import Store, fingerprint
from scenesift.ui import steps


@dataclass(frozen=True)
class TaggerConfig:
    backbone: str = DEFAULT_BACKBONE
    #: (H, W) network input; None: the backbone's default (192, 320). Larger inputs keep
    #: far, small objects visible in the stride-32 map at ~(H*W) cost.
    input_size: tuple[int, int] | None = None
    schedule: str = "gradual"  # gradual | frozen | full
    epochs: int = 5
    head_lr: float = 3e-3  # head-only epochs (on cached features)
    finetune_head_lr: float = 3e-4  # the head while backbone groups train with it
    backbone_lr: float = 1e-4  # top group; each lower group gets lr_decay times less
    lr_decay: float = 0.5
    weight_decay: float = 1e-4
    batch_size: int = 32
    pos_weight: bool = True
    patience: int = 2  # epochs without validation-loss improvement before stopping
    seed: int = 0
    workers: int = 1
    head_passes: int = 20  # passes over cached features in a head-only epoch (cheap)
    #: Frames drawn (afresh, at random) for each epoch that runs the backbone; None: all.
    #: Neighbouring frames of a drive are near-duplicates, so a subset loses little and a
    #: fine-tuning epoch on 2 CPU cores drops from minutes to seconds.
    samples_per_epoch: int | None = None
    #: Fine-tune on the cached trunk (see the module docstring) when a store is given and
    #: the train and validation trunks fit in ``trunk_memory_gb``; else on the images.
    cache_trunk: bool = True
    trunk_memory_gb: float = 4.0
    #: auto | cpu | cuda | mps (see :mod:`scenesift.devices`); not part of the fingerprint.
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.epochs < 1:
            raise ValueError("epochs must be >= 1")
        check_device(self.device)


def label_matrix(
    records: Sequence[FrameRecord], situations: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Targets (N, S) and mask (N, S): mask is 1 where the situation is labelled."""
    y = np.zeros((len(records), len(situations)), dtype=np.float32)
    m = np.zeros_like(y)
    col = {s: j for j, s in enumerate(situations)}
    for i, rec in enumerate(records):
        for name, value in rec.situations.items():
            j = col.get(name)
            if j is not None:
                y[i, j] = float(value)
                m[i, j] = 1.0
    return y, m


@dataclass
class EpochLog:
    epoch: int
    trainable_groups: int
    train_loss: float
    val_loss: float
    seconds: float


@dataclass
class SituationTagger:
    """Multi-label situation tagger (backbone -> 1x1 conv per pixel -> GAP)."""

    situations: list[str]
    config: TaggerConfig = field(default_factory=TaggerConfig)
    history: list[EpochLog] = field(default_factory=list, init=False)
    net: TaggerNet | None = field(default=None, init=False, repr=False)
    data_fingerprint: str | None = field(default=None, init=False)
    #: How many backbone groups were ever trained: 0 means the backbone is the pretrained
    #: one, so its cached features stay valid for prediction.
    groups_trained: int = field(default=0, init=False)
    #: The situations the training labels held both positives and negatives of: only
    #: these can be predicted. For the others the head learned nothing (or only "never"),
    #: so their scores are noise and they are *not predicted*: never written, never
    #: evaluated, listed by :attr:`cannot_say`.
    trained: list[str] = field(default_factory=list, init=False)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        train: Sequence[FrameRecord],
        val: Sequence[FrameRecord],
        store: Store | None = None,
        backbone: Backbone | None = None,
        progress: bool = True,
    ) -> SituationTagger:
        """Train on ``train``, early-stop on the loss over ``val``. With a ``store``,
        frozen-backbone features come from (and go to) its fingerprinted cache."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        backbone = at_input_size(backbone or get_backbone(cfg.backbone), cfg.input_size)
        device = self.device
        self.net = TaggerNet(backbone, len(self.situations)).to(memory_format=torch.channels_last)
        self.net.to(device)
        self.history = []
        self.groups_trained = 0
        y_tr, m_tr = (torch.from_numpy(a) for a in label_matrix(train, self.situations))
        y_va, m_va = (torch.from_numpy(a) for a in label_matrix(val, self.situations))
        positives, negatives = (y_tr * m_tr).sum(0), ((1 - y_tr) * m_tr).sum(0)
        self.trained = [
            s for j, s in enumerate(self.situations) if positives[j] > 0 and negatives[j] > 0
        ]
        self.data_fingerprint = fingerprint(
            {
                "train": [(r.name, sorted(r.situations.items())) for r in train],
                "val": [r.name for r in val],
            }
        )
        pos_weight = auto_pos_weight(y_tr, m_tr).to(device) if cfg.pos_weight else None
        y_tr, m_tr, y_va, m_va = (t.to(device) for t in (y_tr, m_tr, y_va, m_va))
        pooled_cache: dict[str, torch.Tensor] = {}

        def pooled(records: Sequence[FrameRecord], key: str) -> torch.Tensor:
            if key not in pooled_cache:
                pooled_cache[key] = self._pooled(records, store, backbone, progress)
            return pooled_cache[key]

        groups = backbone.block_groups()
        cut = self._trunk_cut(backbone, len(train) + len(val), store)
        trunks: dict[str, torch.Tensor] = {}

        def trunk(records: Sequence[FrameRecord], key: str) -> torch.Tensor | None:
            if not cut:
                return None
            if key not in trunks:
                trunks[key] = self._trunk(records, store, backbone, cut, progress)
            return trunks[key]

        best, best_loss, stale = None, float("inf"), 0
        for epoch in range(cfg.epochs):
            started = time.perf_counter()
            n_groups = trainable_groups(groups, cfg.schedule, epoch)
            head_only = n_groups == 0 and self.groups_trained == 0
            if head_only:
                train_loss = self._fit_head(pooled(train, "train"), y_tr, m_tr, pos_weight, rng)
            else:
                train_loss = self._fit_epoch(
                    train, y_tr, m_tr, n_groups, pos_weight, rng, progress,
                    trunk(train, "train"), cut,
                )  # fmt: skip
                self.groups_trained = max(self.groups_trained, n_groups)
            if not len(val):  # nothing to early-stop on: keep training, keep the last epoch
                self.history.append(EpochLog(epoch, n_groups, train_loss, float("nan"),
                                             time.perf_counter() - started))  # fmt: skip
                continue
            with torch.inference_mode():
                if head_only:
                    logits = self.net.head_on_pooled(pooled(val, "val").to(device))
                elif cut:
                    logits = self._logits_from_trunk(trunk(val, "val"), cut)
                else:
                    logits = torch.from_numpy(self._logits(val, progress, "validating"))
                    logits = logits.to(device)
                # Unweighted: pos_weight helps rare labels train, but with a handful of
                # validation positives it would make the stopping signal jump around.
                val_loss = float(masked_bce(logits.float(), y_va, m_va))
            self.history.append(
                EpochLog(epoch, n_groups, train_loss, val_loss, time.perf_counter() - started)
            )
            if val_loss < best_loss - 1e-4:
                best_loss, stale = val_loss, 0
                best = (copy.deepcopy(self.net.state_dict()), self.groups_trained)
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
        if best is not None:
            self.net.load_state_dict(best[0])
            self.groups_trained = best[1]
        self.net.eval()
        return self

    def _fit_head(self, feats, y, m, pos_weight, rng) -> float:
        """One head-only epoch on pooled features (several cheap passes, minibatched)."""
        cfg = self.config
        net = self.net
        feats = feats.to(self.device)
        set_trainable(net, 0)
        opt = torch.optim.AdamW(
            net.head.parameters(), lr=cfg.head_lr, weight_decay=cfg.weight_decay
        )
        losses = []
        for _ in range(cfg.head_passes):
            order = torch.from_numpy(rng.permutation(len(feats)))
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i : i + cfg.batch_size].to(self.device)
                loss = masked_bce(net.head_on_pooled(feats[idx]), y[idx], m[idx], pos_weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        return float(np.mean(losses[-max(1, len(losses) // cfg.head_passes) :]))

    def _fit_epoch(
        self, train, y, m, n_groups, pos_weight, rng, progress, trunk=None, cut=0
    ) -> float:
        """One epoch over the images (or their cached ``trunk`` below the top ``cut``
        groups), the head and the top ``n_groups`` groups training."""
        cfg = self.config
        net = self.net
        groups = set_trainable(net, n_groups)
        param_groups = [{"params": list(net.head.parameters()), "lr": cfg.finetune_head_lr}]
        for i, params in enumerate(groups):
            param_groups.append({"params": params, "lr": cfg.backbone_lr * cfg.lr_decay**i})
        opt = torch.optim.AdamW(param_groups, weight_decay=cfg.weight_decay)
        set_train_mode(net, n_groups)
        order = rng.permutation(len(train))[: cfg.samples_per_epoch or len(train)]
        device = self.device
        if trunk is None:
            batches = (
                (torch.from_numpy(order[b.index.numpy()]), to_device(b.images, device))
                for b in self._loader([train[i].path for i in order], net.backbone)
            )
        else:
            batches = (
                (idx, _on(trunk[idx], device).float().contiguous(memory_format=torch.channels_last))
                for idx in torch.from_numpy(order).split(cfg.batch_size)
            )
        losses = []
        with steps(
            f"epoch: {n_groups} group(s) + head", len(order), progress, transient=True
        ) as advance:
            for idx, x in batches:
                with autocast(device):
                    logits = net(x) if trunk is None else net.forward_from_trunk(x, cut)
                i = idx.to(device)
                loss = masked_bce(logits.float(), y[i], m[i], pos_weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                advance(len(idx))
        net.eval()
        return float(np.mean(losses)) if losses else 0.0

    def _trunk_cut(self, backbone: Backbone, n_frames: int, store: Store | None) -> int:
        """K when fine-tuning can run on the cached ``trunk:K`` (0: on the images): only
        gradual schedules keep the groups below their top K frozen throughout."""
        cfg = self.config
        n = len(backbone.block_groups())
        k = min(cfg.epochs - 1, n)
        if store is None or not cfg.cache_trunk or cfg.schedule != "gradual" or not 0 < k < n:
            return 0
        frame_bytes = 2 * int(np.prod(row_shape(backbone, trunk_layer(k))))  # float16
        return k if n_frames * frame_bytes <= cfg.trunk_memory_gb * 2**30 else 0

    def _trunk(self, records, store, backbone, cut, progress) -> torch.Tensor:
        """``backbone.trunk(x, cut)`` of ``records`` (float16), through the feature cache."""
        feats = embed(
            store, backbone, [r.name for r in records], layer=trunk_layer(cut),
            batch_size=self.config.batch_size, workers=self.config.workers, progress=progress,
            device=self.config.device,
        )  # fmt: skip
        return torch.from_numpy(np.ascontiguousarray(feats.array))

    def _logits_from_trunk(self, trunk: torch.Tensor, cut: int) -> torch.Tensor:
        net, device = self._check_fitted().eval(), self.device
        out = []
        for h in trunk.split(self.config.batch_size):
            x = _on(h, device).float().contiguous(memory_format=torch.channels_last)
            with autocast(device):
                out.append(net.forward_from_trunk(x, cut).float())
        return torch.cat(out) if out else torch.zeros((0, len(self.situations)), device=device)

    def _pooled(self, records, store, backbone, progress) -> torch.Tensor:
        """Pooled features of the (frozen, pretrained) backbone, from the cache if any."""
        if not records:
            return torch.zeros((0, backbone.out_channels))
        if store is not None:
            feats = embed(
                store, backbone, [r.name for r in records], layer="pooled",
                batch_size=self.config.batch_size, workers=self.config.workers,
                progress=progress, device=self.config.device,
            )  # fmt: skip
            return torch.from_numpy(np.asarray(feats.array, dtype=np.float32))
        out = []
        device = self.device
        fast = backbone.for_inference().to(device)
        with (
            torch.inference_mode(),
            steps("features", len(records), progress, transient=True) as advance,
        ):
            for batch in self._loader([r.path for r in records], backbone):
                with autocast(device):
                    out.append(fast(to_device(batch.images, device)).float().mean(dim=(2, 3)))
                advance(len(batch.index))
        return torch.cat(out).cpu()

    # ------------------------------------------------------------------ inference
    @property
    def cannot_say(self) -> list[str]:
        """Situations without training positives and negatives: not predicted."""
        return [s for s in self.situations if s not in self.trained]

    def _check_fitted(self) -> TaggerNet:
        if self.net is None:
            raise RuntimeError("the tagger is not fitted: call fit() or load() first")
        return self.net

    def _logits(self, records, progress: bool, description: str = "predicting") -> np.ndarray:
        net = self._check_fitted()
        device = self.device
        fast = copy.deepcopy(net).eval()
        fast.backbone = fast.backbone.for_inference()
        fast.to(device)
        out = np.zeros((len(records), len(self.situations)), dtype=np.float32)
        with (
            torch.inference_mode(),
            steps(description, len(records), progress, transient=True) as advance,
        ):
            for batch in self._loader([r.path for r in records], net.backbone):
                with autocast(device):
                    logits = fast(to_device(batch.images, device))
                out[batch.index.numpy()] = logits.float().cpu().numpy()
                advance(len(batch.index))
        return out

    def _loader(self, paths, backbone: Backbone):
        cfg = self.config
        return make_loader(
            paths,
            backbone.preprocessing,
            cfg.batch_size,
            cfg.workers,
            pin_memory=pin_memory(self.device),
        )

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    def predict_scores(
        self, records: Sequence[FrameRecord], store: Store | None = None, progress: bool = True
    ) -> np.ndarray:
        """Probability (N, S) per situation. With a store and a backbone that was never
        fine-tuned, pooled features come from the cache."""
        net = self._check_fitted()
        if store is not None and self.groups_trained == 0:
            feats = self._pooled(records, store, net.backbone, progress)
            net.to(self.device)
            with torch.inference_mode():
                logits = net.head_on_pooled(feats.to(self.device))
                return torch.sigmoid(logits.float()).cpu().numpy()
        return 1.0 / (1.0 + np.exp(-self._logits(records, progress)))

    def cam(self, images: torch.Tensor) -> np.ndarray:
        """Class activation maps: per-pixel logits (N, S, h, w) before pooling."""
        net = self._check_fitted()
        device = self.device
        net.to(device)
        with torch.inference_mode(), autocast(device):
            x = to_device(images, device).contiguous(memory_format=torch.channels_last)
            return net.cam(x).float().cpu().numpy()

    # ------------------------------------------------------------------ identity & disk
    @property
    def fingerprint(self) -> str:
        """What made this model: config, situations, backbone weights and training data."""
        net = self._check_fitted()
        return fingerprint(
            {
                "config": {k: v for k, v in asdict(self.config).items() if k != "device"},
                "situations": self.situations,
                "backbone": net.backbone.spec(),
                "head": tensor_digest(net.head.state_dict()),
                "data": self.data_fingerprint,
            }
        )

    def save(self, path: Path) -> Path:
        """Write-then-rename, so a crash never leaves a half-written checkpoint."""
        net = self._check_fitted()
        state = {
            "situations": self.situations,
            "config": asdict(self.config),
            "history": [asdict(h) for h in self.history],
            "data_fingerprint": self.data_fingerprint,
            "groups_trained": self.groups_trained,
            "trained": self.trained,
            "fingerprint": self.fingerprint,
        }
        return save_state(path, state, net)

    @classmethod
    def load(cls, path: Path, backbone: Backbone | None = None) -> SituationTagger:
        state = load_state(path)
        config = TaggerConfig(**state["config"])
        tagger = cls(list(state["situations"]), config)
        backbone = trained_backbone(path, state, config.backbone, backbone)
        tagger.net = TaggerNet(backbone, len(tagger.situations))
        tagger.net.load_state_dict(state["net"])
        tagger.net = tagger.net.to(memory_format=torch.channels_last).eval()
        tagger.history = [EpochLog(**h) for h in state["history"]]
        tagger.data_fingerprint = state["data_fingerprint"]
        tagger.groups_trained = state["groups_trained"]
        # a checkpoint from before this was recorded: every situation, as it was used then
        tagger.trained = list(state.get("trained", tagger.situations))
        return tagger


def _on(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A cached CPU tensor on ``device``: pinned first when it goes to a CUDA GPU."""
    if pin_memory(device) and not x.is_pinned():
        x = x.pin_memory()
    return to_device(x, device)
