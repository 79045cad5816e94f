"""The CenterNet-style detector's network, targets, loss and decoding.

Anchor-free (Zhou et al., "Objects as Points"): every object is the peak of a per-class
heat map at its box centre on a stride-8 grid (or stride 4: ``head_stride``), plus a (log)
size and a sub-pixel offset read at that peak. The neck is a light FPN over the backbone's
stride 8/16/32 maps (and its stride-4 map for a stride-4 head), so the
same head runs on live backbone features (fine-tuning) or on cached ones (frozen).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Output stride of the heat map (the FPN's finest level) by default.
STRIDE = 8
#: The heat-map target inside an ignore region (COCO ``iscrowd``, KITTI ``DontCare``, a
#: pseudo-label too doubtful to be a box): not a peak (peaks are exactly 1), and its
#: negative penalty in ``focal_loss``, (1 - t)^4, is 1e-12 of a background pixel's, so
#: whatever the model predicts there costs nothing. A value rather than a mask, so it
#: follows every flip and crop of the heat map at no cost.
IGNORE = 0.999
#: The heat-map strides a head can run at: 8, or 4 on the backbone's extra stride-4 map
#: (small objects: most of the demo world's are under 32x32 pixels).
HEAD_STRIDES = (4, 8)
#: Size and offset from a 3x3 block each ("split"), or from one shared block ("shared").
BOX_HEADS = ("split", "shared")
#: Initial heat-map bias: sigmoid(-2.19) = 0.1, CenterNet's prior, so the first steps are
#: not swamped by the loss of ~all-negative pixels.
HEAT_PRIOR_BIAS = -2.19


class DetectorHead(nn.Module):
    """Light FPN (1x1 laterals, top-down nearest-upsample + add, separable 3x3 smoothing)
    and the three CenterNet heads at its finest map's stride: heat map (K), log size (2),
    offset (2). ``stage_channels`` lists the maps it receives, finest first: three for
    stride 8, four (the stride-4 map first) for stride 4. ``box_head`` "shared": size and
    offset come from one 3x3 block (4 outputs) instead of one each, a quarter less of the
    head's cost, which is the training time in frozen mode."""

    def __init__(
        self,
        stage_channels: Sequence[int],
        n_classes: int,
        width: int = 64,
        box_head: str = "split",
    ) -> None:
        super().__init__()
        if box_head not in BOX_HEADS:
            raise ValueError(f"box_head must be one of {BOX_HEADS}, got {box_head!r}")
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in stage_channels)
        self.smooth = nn.Sequential(*_separable(width), nn.ReLU(inplace=True))
        self.heat = _head(width, n_classes)
        if box_head == "shared":
            self.box = _head(width, 4)
        else:
            self.size = _head(width, 2)
            self.offset = _head(width, 2)
        nn.init.constant_(self.heat[-1].bias, HEAT_PRIOR_BIAS)

    def forward(self, maps: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.neck(maps)
        if hasattr(self, "box"):
            box = self.box(x)
            return {"heat": self.heat(x), "size": box[:, :2], "offset": box[:, 2:]}
        return {"heat": self.heat(x), "size": self.size(x), "offset": self.offset(x)}

    def neck(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """The smoothed finest FPN map, which the three heads read."""
        x = self.laterals[-1](maps[-1])
        for lateral, fmap in zip(self.laterals[-2::-1], maps[-2::-1], strict=True):
            x = lateral(fmap) + F.interpolate(x, size=fmap.shape[-2:], mode="nearest")
        return self.smooth(x)


def _separable(width: int) -> list[nn.Module]:
    """3x3 depthwise + 1x1 pointwise: the 3x3 context at ~1/8 of a full conv's cost, which
    is most of the training time in frozen mode."""
    return [nn.Conv2d(width, width, 3, padding=1, groups=width), nn.Conv2d(width, width, 1)]


def _head(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(*_separable(width), nn.ReLU(inplace=True), nn.Conv2d(width, out, 1))


class DetectorNet(nn.Module):
    """Backbone + :class:`DetectorHead`; ``head`` alone runs on cached pyramid features."""

    def __init__(
        self,
        backbone: nn.Module,
        n_classes: int,
        width: int = 64,
        head_stride: int = STRIDE,
        box_head: str = "split",
    ) -> None:
        super().__init__()
        if head_stride not in HEAD_STRIDES:
            raise ValueError(f"head_stride must be one of {HEAD_STRIDES}, got {head_stride!r}")
        self.backbone = backbone
        self.fine = head_stride == 4
        channels = list(backbone.stage_channels)
        if self.fine:
            channels = [backbone.fine_channels, *channels]
        self.head = DetectorHead(channels, n_classes, width, box_head)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.backbone.features(x, fine=self.fine))


# --------------------------------------------------------------------------- targets
@dataclass
class Targets:
    """Training targets of a set of frames on an (h, w) stride-8 grid, padded to
    ``max_objects``: heat (N, K, h, w), and per object its flat pixel index, log size
    (in grid cells), sub-pixel offset and a mask."""

    heat: torch.Tensor
    index: torch.Tensor  # (N, M) long
    size: torch.Tensor  # (N, M, 2)
    offset: torch.Tensor  # (N, M, 2)
    mask: torch.Tensor  # (N, M) float

    def __getitem__(self, idx: torch.Tensor) -> Targets:
        return Targets(
            *(t[idx] for t in (self.heat, self.index, self.size, self.offset, self.mask))
        )


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CornerNet's radius: the largest centre shift that keeps IoU >= ``min_overlap`` with
    the box in the worst of three cases (as in CenterNet's reference code)."""
    a1, b1 = 1.0, height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def draw_gaussian(heat: np.ndarray, cx: int, cy: int, radius: int) -> None:
    """Max-splat a Gaussian (sigma = diameter / 6) of ``radius`` at (cx, cy) into ``heat``."""
    sigma = (2 * radius + 1) / 6
    ys, xs = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    h, w = heat.shape
    left, right = min(cx, radius), min(w - cx, radius + 1)
    top, bottom = min(cy, radius), min(h - cy, radius + 1)
    region = heat[cy - top : cy + bottom, cx - left : cx + right]
    patch = g[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(region, patch, out=region)


def build_targets(
    boxes: Sequence[np.ndarray],
    n_classes: int,
    grid: tuple[int, int],
    stride: int = STRIDE,
    max_objects: int = 128,
    min_radius: int = 0,
    ignore: Sequence[np.ndarray] | None = None,
) -> Targets:
    """Targets from boxes already in network-input pixels: per frame an (n, 5) array of
    (class index, x1, y1, x2, y2). Objects beyond ``max_objects`` per frame are dropped
    from the size/offset losses (their heat-map peaks stay). ``ignore``: per frame an
    (m, 5) array of regions of unlabelled objects of that class (``IGNORE`` over the cells
    the box covers): the loss neither rewards nor punishes a detection there, where
    training them as background would teach the model to miss what nobody labelled."""
    h, w = grid
    n = len(boxes)
    heat = np.zeros((n, n_classes, h, w), dtype=np.float32)
    for i, regions in enumerate(ignore or ()):
        for cls, x1, y1, x2, y2 in np.asarray(regions, dtype=np.float64).reshape(-1, 5):
            c0, c1 = max(0, math.floor(x1 / stride)), min(w, math.ceil(x2 / stride))
            r0, r1 = max(0, math.floor(y1 / stride)), min(h, math.ceil(y2 / stride))
            heat[i, int(cls), r0:r1, c0:c1] = IGNORE  # before the objects: their peaks win
    index = np.zeros((n, max_objects), dtype=np.int64)
    size = np.zeros((n, max_objects, 2), dtype=np.float32)
    offset = np.zeros((n, max_objects, 2), dtype=np.float32)
    mask = np.zeros((n, max_objects), dtype=np.float32)
    for i, frame in enumerate(boxes):
        j = 0
        for cls, x1, y1, x2, y2 in np.asarray(frame, dtype=np.float64).reshape(-1, 5):
            bw, bh = (x2 - x1) / stride, (y2 - y1) / stride
            if bw <= 0 or bh <= 0:
                continue
            cx = min(max((x1 + x2) / 2 / stride, 0.0), w - 1e-3)
            cy = min(max((y1 + y2) / 2 / stride, 0.0), h - 1e-3)
            ix, iy = int(cx), int(cy)
            radius = max(min_radius, int(gaussian_radius(math.ceil(bh), math.ceil(bw))))
            draw_gaussian(heat[i, int(cls)], ix, iy, radius)
            if j < max_objects:
                index[i, j] = iy * w + ix
                size[i, j] = (math.log(bw), math.log(bh))
                offset[i, j] = (cx - ix, cy - iy)
                mask[i, j] = 1.0
                j += 1
    return Targets(*(torch.from_numpy(a) for a in (heat, index, size, offset, mask)))


def class_balance_weights(
    boxes: Sequence[np.ndarray], n_classes: int, power: float = 0.5, cap: float = 4.0
) -> torch.Tensor:
    """Per-class heat-map weights (mean count / class count) ** ``power``, within
    [1/cap, cap] and 1 on average over the classes present: a class with 10x fewer objects
    gets ~3x the weight at power 0.5. Classes absent from training get 1."""
    counts = np.zeros(n_classes)
    for frame in boxes:
        for c in np.asarray(frame).reshape(-1, 5)[:, 0].astype(int):
            counts[c] += 1
    present = counts > 0
    w = np.ones(n_classes)
    if power and present.any():
        w[present] = np.clip((counts[present].mean() / counts[present]) ** power, 1 / cap, cap)
        w[present] /= w[present].mean()
    return torch.tensor(w, dtype=torch.float32)


def flip_boxes(boxes: np.ndarray, width: float) -> np.ndarray:
    """(n, 5) class + xyxy boxes mirrored left-right in an image ``width`` wide."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 5)
    out[:, [1, 3]] = width - out[:, [3, 1]]
    return out


# --------------------------------------------------------------------------- loss
def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """CornerNet/CenterNet penalty-reduced pixel-wise focal loss (alpha 2, beta 4), summed
    and divided by the number of objects (peaks equal to 1). Computed from logits with
    log-sigmoid, so it stays finite where a sigmoid would saturate. ``class_weights`` (K,)
    scale each class's heat map (class-balanced loss: rare classes count more)."""
    logits = logits.float()
    log_p = F.logsigmoid(logits)
    log_not_p = log_p - logits  # log(1 - sigmoid(x)) = log sigmoid(x) - x: one pass less
    p = log_p.exp()
    pos = target.eq(1).float()
    neg_weight = (1 - target).square().square()
    per_pixel = pos * (1 - p).square() * log_p + (1 - pos) * neg_weight * p.square() * log_not_p
    if class_weights is not None:
        per_pixel = per_pixel * class_weights.to(per_pixel).reshape(1, -1, 1, 1)
    return -per_pixel.sum() / pos.sum().clamp(min=1.0)


def _gather(fmap: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) at flat pixel ``index`` (N, M) -> (N, M, C)."""
    n, c = fmap.shape[:2]
    flat = fmap.reshape(n, c, -1)
    return flat.gather(2, index.unsqueeze(1).expand(n, c, index.shape[1])).transpose(1, 2)


def detection_loss(
    out: dict[str, torch.Tensor],
    t: Targets,
    size_weight: float = 1.0,
    offset_weight: float = 1.0,
    class_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Focal heat-map loss + masked L1 on log size and offset at the object centres."""
    heat = focal_loss(out["heat"], t.heat, class_weights)
    m = t.mask.unsqueeze(-1)
    denom = m.sum().clamp(min=1.0) * 2
    size = (F.l1_loss(_gather(out["size"], t.index), t.size, reduction="none") * m).sum() / denom
    offset = (
        F.l1_loss(_gather(out["offset"], t.index), t.offset, reduction="none") * m
    ).sum() / denom
    total = heat + size_weight * size + offset_weight * offset
    parts = {
        "heat": float(heat.detach()),
        "size": float(size.detach()),
        "offset": float(offset.detach()),
    }
    return total, parts


# --------------------------------------------------------------------------- decoding
@dataclass
class Decoded:
    """Detections of one frame in network-input pixels: boxes (n, 4) xyxy, the class index
    and score of each peak, and the heat-map values of every class there (n, K)."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    class_values: np.ndarray


def decode(
    out: dict[str, torch.Tensor],
    top_k: int = 100,
    score_threshold: float = 0.01,
    stride: int = STRIDE,
    flipped: dict[str, torch.Tensor] | None = None,
) -> list[Decoded]:
    """Peaks of the heat maps (3x3 max-pool non-maximum suppression), the ``top_k`` best
    over all classes, above ``score_threshold``, as boxes in input pixels. ``flipped``:
    the head's outputs on the mirrored input, averaged in (see ``_flip_mean``)."""
    heat = torch.sigmoid(out["heat"].float())
    if flipped is not None:
        heat = (heat + torch.sigmoid(flipped["heat"].float()).flip(-1)) / 2
    scores, cls, pix, values = _peaks(heat, top_k)
    size, offset = (_gather(out[k].float(), pix) for k in ("size", "offset"))
    if flipped is not None:
        mirrored = _mirrored(pix, heat.shape[-1])
        size_f, offset_f = (_gather(flipped[k].float(), mirrored) for k in ("size", "offset"))
        size, offset = _flip_mean(size, offset, size_f, offset_f)
    return _decoded(scores, cls, pix, values, size, offset, heat.shape[-1], stride,
                    score_threshold)  # fmt: skip


def decode_head(
    head: DetectorHead,
    maps: Sequence[torch.Tensor],
    top_k: int = 100,
    score_threshold: float = 0.01,
    stride: int = STRIDE,
    flipped: Sequence[torch.Tensor] | None = None,
) -> list[Decoded]:
    """``decode(head(maps), flipped=head(flipped))``, up to float rounding, with the
    per-pixel layers of the size and offset heads (or the shared box head; all but their
    first, a 3x3 depthwise convolution) run only at the ``top_k`` peaks rather than at
    every cell: at 384x640 the split heads were a fifth of inference on cached maps."""
    x = head.neck(maps)
    heat = torch.sigmoid(head.heat(x).float())
    if flipped is not None:
        xf = head.neck(flipped)
        heat = (heat + torch.sigmoid(head.heat(xf).float()).flip(-1)) / 2
    scores, cls, pix, values = _peaks(heat, top_k)
    size, offset = _box_at(head, x, pix)
    if flipped is not None:
        size, offset = _flip_mean(size, offset, *_box_at(head, xf, _mirrored(pix, heat.shape[-1])))
    return _decoded(scores, cls, pix, values, size, offset, heat.shape[-1], stride,
                    score_threshold)  # fmt: skip


def _box_at(head: DetectorHead, x: torch.Tensor, pix: torch.Tensor):
    """(log size, offset) of the neck map ``x`` at flat pixels ``pix``, each (N, M, 2)."""
    if hasattr(head, "box"):  # box_head "shared": size and offset from one block
        box = _branch_at(head.box, x, pix).float()
        return box[..., :2], box[..., 2:]
    return tuple(_branch_at(b, x, pix).float() for b in (head.size, head.offset))


def _mirrored(pix: torch.Tensor, w: int) -> torch.Tensor:
    """Flat pixels of a (h, w) map -> the same cells of the map mirrored along w."""
    col = pix % w
    return pix - col + (w - 1 - col)


def _flip_mean(size, offset, size_f, offset_f):
    """Flip test-time augmentation: the mean of a peak's log size and offset with those
    the mirrored pass gives at the mirrored cell. A centre at ``(col + dx)`` cells of a
    map ``w`` wide is at ``w - col - dx = (w - 1 - col) + (1 - dx)`` in its mirror, so the
    mirror's x offset reads back as ``1 - dx``; the y offset is unchanged."""
    dx = (offset[..., 0] + 1 - offset_f[..., 0]) / 2
    dy = (offset[..., 1] + offset_f[..., 1]) / 2
    return (size + size_f) / 2, torch.stack([dx, dy], dim=-1)


def _peaks(heat: torch.Tensor, top_k: int):
    """(scores, class, flat pixel, every class's heat there) of the ``top_k`` peaks."""
    n, k, h, w = heat.shape
    peaks = heat * (_max3x3(heat) == heat)
    scores, flat = peaks.reshape(n, -1).topk(min(top_k, k * h * w))
    pix = flat % (h * w)
    return scores, flat // (h * w), pix, _gather(heat, pix)


def _decoded(scores, cls, pix, values, size, offset, w: int, stride: int, threshold: float):
    """Boxes in input pixels from the peaks' log sizes and offsets, per frame."""
    size = size.exp() * stride
    cx = ((pix % w).float() + offset[..., 0]) * stride
    cy = ((pix // w).float() + offset[..., 1]) * stride
    boxes = torch.stack(
        [
            cx - size[..., 0] / 2,
            cy - size[..., 1] / 2,
            cx + size[..., 0] / 2,
            cy + size[..., 1] / 2,
        ],
        dim=-1,
    )
    keep = (scores >= threshold).cpu().numpy()
    boxes, cls, scores, values = (t.cpu().numpy() for t in (boxes, cls, scores, values))
    return [
        Decoded(
            boxes=boxes[i][m], classes=cls[i][m], scores=scores[i][m], class_values=values[i][m]
        )
        for i, m in enumerate(keep)
    ]


#: Layers that act on each pixel alone.
_PER_PIXEL = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Identity, nn.BatchNorm2d)


def _per_pixel(layer: nn.Module) -> bool:
    return isinstance(layer, _PER_PIXEL) or (
        isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.stride == (1, 1)
    )


def _branch_at(branch: nn.Module, x: torch.Tensor, pix: torch.Tensor) -> torch.Tensor:
    """``_gather(branch(x), pix)`` (N, M, out): the branch's layers up to its last spatial
    one run on the whole map, the per-pixel rest (1x1 convolutions, activations) only at
    ``pix``. The same arithmetic as the whole branch, on fewer pixels."""
    layers = list(branch) if isinstance(branch, nn.Sequential) else [branch]
    tail = len(layers)
    while tail > 0 and _per_pixel(layers[tail - 1]):
        tail -= 1
    for layer in layers[:tail]:
        x = layer(x)
    n, c = x.shape[:2]
    m = pix.shape[1]
    pixels = x.permute(0, 2, 3, 1).reshape(n, -1, c)  # a view of a channels_last map
    y = pixels.gather(1, pix[..., None].expand(n, m, c)).reshape(n * m, c, 1, 1)
    for layer in layers[tail:]:
        y = layer(y)
    return y.reshape(n, m, -1)


def _max3x3(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 3, stride=1, padding=1)``, bitwise. On a CPU as running maxima
    over rows, then columns, in NumPy: ~10x faster than pooling for a heat map's few
    channels, and on one thread, so it does not stall when other processes hold the cores
    (torch's threads then wait for each other at every op: pooling cost ~10x more)."""
    if x.device.type != "cpu":
        return F.max_pool2d(x, 3, stride=1, padding=1)
    a = x.detach().numpy()
    rows = a.copy()
    np.maximum(rows[..., 1:], a[..., :-1], out=rows[..., 1:])
    np.maximum(rows[..., :-1], a[..., 1:], out=rows[..., :-1])
    out = rows.copy()
    np.maximum(out[..., 1:, :], rows[..., :-1, :], out=out[..., 1:, :])
    np.maximum(out[..., :-1, :], rows[..., 1:, :], out=out[..., :-1, :])
    return torch.from_numpy(out)
