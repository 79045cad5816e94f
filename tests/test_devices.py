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


class _Embedded(Exception):
    """Raised by a stand-in for ``embed``: the device it was asked for."""


def _record_device(*_args, **kw):
    raise _Embedded(kw.get("device"))


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_cached_feature_passes_run_on_the_models_device(tmp_path, monkeypatch, device):
    """The detector's pyramid, the tagger's pooled features and a campaign's pool
    embeddings are forward passes too: they take the model's device, not the CPU."""
    from PIL import Image

    import scenesift.features as features
    from scenesift.al.learners import DetectorLearner, TaggerLearner
    from scenesift.al.sources import build_pool
    from scenesift.models import detector, tagger
    from scenesift.models.backbones import get_backbone
    from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
    from scenesift.store import Store

    store = Store.init(tmp_path / "proj")
    Image.new("RGB", (64, 64)).save(tmp_path / "a.png")
    rec = FrameRecord("a.png", tmp_path / "a.png", "d0", 64, 64, boxes=[Box("car", 1, 1, 9, 9)],
                      situations={"night": True})  # fmt: skip
    store.ingest(ImportBatch([rec], tmp_path, ImportReport("test")))
    backbone = get_backbone("tiny", preprocessing=Preprocessing(size=(64, 64)))
    for module in (detector, tagger, features):
        monkeypatch.setattr(module, "embed", _record_device)
    cfg = detector.DetectorConfig(backbone="tiny", device=device)
    with pytest.raises(_Embedded, match=device):
        detector.ObjectDetector(["car"], cfg).fit([rec], store=store, backbone=backbone)
    tcfg = tagger.TaggerConfig(backbone="tiny", schedule="frozen", device=device)
    with pytest.raises(_Embedded, match=device):
        tagger.SituationTagger(["night"], tcfg).fit([rec], [rec], store=store, backbone=backbone)
    for learner in (DetectorLearner(device=device), TaggerLearner(device=device)):
        assert learner.embed_device() == device
    with pytest.raises(_Embedded, match=device):
        build_pool(store, [1], [rec], None, [], {}, embed_with=backbone, embed_device=device)
