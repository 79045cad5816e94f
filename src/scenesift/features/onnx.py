"""ONNX Runtime for the feature cache's forward pass (``embed(..., runtime="onnx")``).

Why: on the reference 2-core machine ONNX Runtime runs EfficientNet-Lite0's forward pass
about 1.8x faster than eager PyTorch at one thread (BENCHMARKS.md, "Scale"). The inference
backbone (BatchNorm folded) is exported once per ``embed`` call with the layer's reduction
inside the graph, so a session returns exactly the quantity ``forward_features`` caches.
The features equal PyTorch's up to float rounding (~1e-5, like BN folding), so the runtime
is not part of the cache key: either runtime may fill or read a cache.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from scenesift.errors import ScenesiftError
from scenesift.features.layers import PYRAMIDS, layer_dtype, trunk_cut
from scenesift.models.backbones import Backbone

OPSET = 17


class OnnxUnavailable(ScenesiftError, RuntimeError):
    """onnx / onnxruntime are not installed; says how to install them."""


def require_onnx() -> Any:
    """The ``onnxruntime`` module (``onnx`` is needed to export), or a clear error."""
    try:
        import onnx  # noqa: F401 (torch.onnx.export needs it)
        import onnxruntime
    except ImportError:
        raise OnnxUnavailable(
            "the onnx runtime needs onnx and onnxruntime: pip install 'scenesift[onnx]'"
        ) from None
    return onnxruntime


def providers(device: torch.device, explicit: bool = True) -> list[str]:
    """ONNX Runtime execution providers for ``device``: CUDA's (then the CPU's) on a CUDA
    device when this onnxruntime build has it (the ``onnxruntime-gpu`` package); a device
    chosen by ``auto`` (``explicit`` False) falls back to the CPU instead of failing."""
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    available = require_onnx().get_available_providers()
    if device.type == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if explicit:
        raise OnnxUnavailable(
            f"--runtime onnx on {device.type}: this onnxruntime has only {available}; "
            "install onnxruntime-gpu for CUDA, or use --runtime torch (any device)"
        )
    return ["CPUExecutionProvider"]


class _LayerOutput(nn.Module):
    """The backbone plus the cached layer's reduction, as one graph (float32 out)."""

    def __init__(self, model: Backbone, layer: str) -> None:
        super().__init__()
        self.model, self.layer = model, layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer in PYRAMIDS:
            maps = self.model.features(x, fine=self.layer == "pyramid4")
            return torch.cat([m.reshape(m.shape[0], -1) for m in maps], 1)
        k = trunk_cut(self.layer)
        if k is not None:
            return self.model.trunk(x, k)
        fmap = self.model(x)
        return fmap.mean(dim=(2, 3)) if self.layer == "pooled" else fmap


class OnnxForward:
    """``forward_features`` of one layer, run by ONNX Runtime on its ``providers`` (the
    CPU by default; see :func:`providers`).

    Picklable (it carries the graph's bytes, and builds its session on first use with
    ``torch.get_num_threads()`` threads), so the Ray engine ships one export to every actor.
    """

    def __init__(
        self,
        graph: bytes,
        layer: str,
        providers: list[str] | tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> None:
        self.graph, self.layer, self.providers = graph, layer, list(providers)
        self._session: Any = None

    @classmethod
    def export(
        cls,
        model: Backbone,
        layer: str,
        providers: list[str] | tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> OnnxForward:
        """Export ``model`` (the inference copy: ``Backbone.for_inference()``) for ``layer``
        with a dynamic batch size, to run on ``providers``."""
        require_onnx()
        h, w = model.preprocessing.size
        example = torch.zeros(2, 3, h, w).contiguous(memory_format=torch.channels_last)
        buf = io.BytesIO()
        with warnings.catch_warnings():  # the TorchScript exporter warns it is deprecated
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _LayerOutput(model, layer).eval(), (example,), buf, dynamo=False,
                input_names=["images"], output_names=["features"], opset_version=OPSET,
                dynamic_axes={"images": {0: "n"}, "features": {0: "n"}},
            )  # fmt: skip
        return cls(buf.getvalue(), layer, providers)

    def session(self) -> Any:
        if self._session is None:
            ort = require_onnx()
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(self.graph, opts, providers=self.providers)
        return self._session

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """The cached quantity for a batch: pooled (N, C) float32, else float16."""
        out = self.session().run(None, {"images": images.contiguous().numpy()})[0]
        return out.astype(layer_dtype(self.layer), copy=False)

    def __getstate__(self) -> dict[str, Any]:
        return {"graph": self.graph, "layer": self.layer, "providers": self.providers}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(
            state["graph"], state["layer"], state.get("providers", ["CPUExecutionProvider"])
        )
