"""A trained network's weights file, shared by the tagger and the detector: atomic save, load
with the trained preprocessing, and the digest of trained weights that goes into a model's
fingerprint. (Where a project keeps its models, and which is the latest, is
:mod:`scenesift.pipelines.checkpoints`.)"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from scenesift.files import atomic_write
from scenesift.models.backbones import Backbone, Preprocessing, get_backbone
from scenesift.store import fingerprint


def tensor_digest(state: dict[str, Any]) -> str:
    """A short hash of a state dict's tensors (names and bytes)."""
    buf = io.BytesIO()
    for k in sorted(state):
        buf.write(k.encode())
        buf.write(state[k].detach().cpu().contiguous().numpy().tobytes())
    return fingerprint(buf.getvalue())


def save_state(path: Path, state: dict[str, Any], net: torch.nn.Module) -> Path:
    """Write ``state`` plus the network's weights and preprocessing, write-then-rename."""
    state = {**state, "net": net.state_dict(), "preprocessing": net.backbone.preprocessing.spec()}
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    return path


def load_state(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    config = dict(state["config"])
    if config.get("input_size") is not None:  # JSON-ish round trip turned it into a list
        config["input_size"] = tuple(config["input_size"])
    state["config"] = config
    return state


def trained_backbone(
    path: Path, state: dict[str, Any], name: str, backbone: Backbone | None
) -> Backbone:
    """The backbone to load weights into, with the preprocessing the model was trained with
    (the state dict holds every weight, so no pretrained file is read)."""
    pre = Preprocessing.from_spec(state["preprocessing"])
    backbone = backbone or get_backbone(name, pretrained=False, preprocessing=pre)
    # compared as stored: the spec rounds mean and std (EfficientNet-Lite's 127/255 is not
    # equal to its rounding, so a backbone built afresh never compared equal)
    if backbone.preprocessing.spec() != pre.spec():
        raise ValueError(
            f"{path}: trained with preprocessing {pre}, given a backbone with "
            f"{backbone.preprocessing}"
        )
    return backbone
