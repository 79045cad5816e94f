"""Where torch runs: one ``--device auto|cpu|cuda|mps`` for every training and inference step.

``auto`` is CUDA when present, else CPU (MPS only when asked for: some of the ops the
detector and tagger use fall back to the CPU there, so it is not a safe default). On CUDA the
forward passes run under mixed precision (bfloat16 where supported, else float16 with a
gradient scaler) and loaders pin host memory so copies to the GPU overlap compute; on the
CPU all of that is off and results are exactly the float32 ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from scenesift.errors import ScenesiftError

DEVICES = ("auto", "cpu", "cuda", "mps")


class DeviceError(ScenesiftError, ValueError):
    """A ``--device`` that is not a device name or not available here (one line, exit 2)."""


def check_device(name: str) -> str:
    """``name`` if it is a ``--device`` value (``cuda:1`` included), else a clear error;
    configs check this when built, availability is checked when they run."""
    if str(name).split(":")[0] not in DEVICES:
        raise DeviceError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    return name


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a ``--device`` value; a clear error when it is not available."""
    if isinstance(name, torch.device):
        return name
    kind = check_device(str(name)).split(":")[0]
    if kind == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' asked for, but torch sees no CUDA GPU (use auto or cpu)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("device 'mps' asked for, but this torch has no MPS backend")
    return torch.device(str(name))


def pin_memory(device: torch.device) -> bool:
    """Whether host batches should be pinned: only for copies to a CUDA GPU."""
    return device.type == "cuda"


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype on ``device``; None: full float32 (CPU, MPS)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """Mixed precision on CUDA, nothing elsewhere. Losses are computed in float32 by the
    callers (they cast logits with ``.float()``)."""
    dtype = amp_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for float16 autocast (bfloat16 needs none)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; pinned CPU tensors copy asynchronously."""
    if x.device == device:
        return x
    return x.to(device, non_blocking=x.is_pinned())
