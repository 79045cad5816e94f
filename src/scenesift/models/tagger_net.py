"""The situation tagger network, loss and unfreezing schedules, exactly as seed 000 describes.

backbone feature map -> 1x1 convolution with one output per situation (a logit per class
per pixel) -> global average pooling -> one logit per situation per image. All situations
are trained at once with binary cross-entropy per label; missing labels are masked out.

Because pooling is linear, the pooled logits equal the 1x1 conv applied to the *pooled*
features: with the backbone frozen the head can be trained on cached pooled features, and
the per-pixel logits before pooling are class activation maps for free.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

SCHEDULES = ("gradual", "frozen", "full")


class TaggerNet(nn.Module):
    def __init__(self, backbone: nn.Module, n_situations: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Conv2d(backbone.out_channels, n_situations, kernel_size=1)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel logits (N, S, h, w): where in the image each situation is seen."""
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam(x).mean(dim=(2, 3))

    def forward_from_trunk(self, trunk: torch.Tensor, k: int) -> torch.Tensor:
        """Logits from ``backbone.trunk(x, k)``: identical to forward(x)."""
        return self.head(self.backbone.top(trunk, k)).mean(dim=(2, 3))

    def head_on_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features (N, C): identical to forward() by linearity."""
        w = self.head.weight.flatten(1)  # (S, C)
        return F.linear(pooled, w, self.head.bias)


def masked_bce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    pos_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean binary cross-entropy over the *known* labels only.

    Partial labelling is normal (a CSV with only weather, a labeller who skipped a
    situation): a missing label contributes no gradient, instead of being taken as negative.
    """
    per = F.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=pos_weight, reduction="none"
    )
    known = mask.sum()
    return (per * mask).sum() / known.clamp(min=1.0)


def auto_pos_weight(targets: torch.Tensor, mask: torch.Tensor, cap: float = 50.0) -> torch.Tensor:
    """negatives / positives per situation over the known labels, capped, for rare labels."""
    pos = (targets * mask).sum(0)
    neg = ((1 - targets) * mask).sum(0)
    return (neg / pos.clamp(min=1.0)).clamp(min=1.0, max=cap)


def trainable_groups(groups: Sequence[Sequence[nn.Module]], schedule: str, epoch: int) -> int:
    """How many backbone block groups (counted from the top) train in ``epoch`` (0-based).

    gradual: epoch 0 trains the new head alone, each later epoch unfreezes one more group
    from the top down (seed 000: "first train the final layer for one epoch and then
    optimize more lower layers per epoch"); frozen: never; full: all from the start.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
    if schedule == "frozen":
        return 0
    if schedule == "full":
        return len(groups)
    return min(epoch, len(groups))


def set_trainable(net: TaggerNet, n_groups: int) -> list[list[nn.Parameter]]:
    """Freeze the backbone except its top ``n_groups`` groups; return their parameters,
    top group first (for discriminative learning rates). Frozen BatchNorm layers keep
    their running statistics (eval mode), so small CPU batches cannot corrupt them."""
    groups = net.backbone.block_groups()
    for p in net.backbone.parameters():
        p.requires_grad_(False)
    trainable: list[list[nn.Parameter]] = []
    for group in groups[:n_groups]:
        params = [p for m in group for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        trainable.append(params)
    for p in net.head.parameters():
        p.requires_grad_(True)
    return trainable


def set_train_mode(net: TaggerNet, n_groups: int) -> None:
    """train() for the head and the unfrozen groups, eval() for everything frozen.

    BatchNorm stays in eval mode everywhere (its affine weights still train): batches of
    32 on a CPU give noisy statistics, and the head was fitted on features normalised with
    the pretrained running statistics, so switching to batch statistics would pull the
    features out from under it (the "frozen BN" of detection fine-tuning)."""
    net.eval()
    net.head.train()
    for group in net.backbone.block_groups()[:n_groups]:
        for m in group:
            m.train()
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
