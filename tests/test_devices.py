"""The --device choice: auto, explicit devices, mixed precision and pinning only on CUDA."""

from __future__ import annotations

import pytest
import torch

from scenesift.devices import (
    amp_dtype,
    autocast,
    grad_scaler,
    pin_memory,
    resolve_device,
    to_device,
)
from scenesift.models.backbones import Preprocessing
from scenesift.models.images import make_loader


def test_auto_is_cuda_when_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_unknown_or_missing_devices_are_clear_errors():
    with pytest.raises(ValueError, match="auto, cpu, cuda, mps"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="MPS"):
            resolve_device("mps")


def test_the_cpu_runs_in_float32_without_pinning_or_scaling():
    cpu = torch.device("cpu")
    assert amp_dtype(cpu) is None and not pin_memory(cpu)
    assert not grad_scaler(cpu).is_enabled()
    with autocast(cpu):
        y = torch.nn.Linear(3, 2)(torch.ones(1, 3))
    assert y.dtype == torch.float32
    x = torch.ones(2)
    assert to_device(x, cpu) is x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_uses_mixed_precision_and_pinned_loaders(tmp_path):
    from PIL import Image

    cuda = resolve_device("cuda")
    assert amp_dtype(cuda) in (torch.bfloat16, torch.float16) and pin_memory(cuda)
    with autocast(cuda):
        y = torch.nn.Linear(3, 2).to(cuda)(torch.ones(1, 3, device=cuda))
    assert y.dtype == amp_dtype(cuda)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    loader = make_loader([tmp_path / "a.png"], Preprocessing(size=(8, 8)), pin_memory=True)
    batch = next(iter(loader))
    assert batch.images.is_pinned()
    assert to_device(batch.images, cuda).device.type == "cuda"
