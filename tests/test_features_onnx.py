"""The ONNX Runtime option of the feature cache: the same features as eager PyTorch."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scenesift import ui
from scenesift.cli import app
from scenesift.features import embed
from scenesift.features.onnx import OnnxForward, OnnxUnavailable
from scenesift.models import get_backbone
from scenesift.records import ImportBatch, ImportReport
from scenesift.store import Store
from test_features import write_frames

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

pytestmark = pytest.mark.usefixtures("one_thread")


def new_project(root, n=6) -> Store:
    frames = write_frames(root / "images", n)
    store = Store.init(root / "proj")
    store.ingest(ImportBatch(frames, root / "images", ImportReport("test", len(frames))))
    return store


@pytest.mark.parametrize("layer", ["pooled", "map", "pyramid", "pyramid4"])
def test_onnx_features_equal_torch_features_under_the_same_cache_key(tmp_path, layer):
    backbone = get_backbone("tiny")
    eager_store, onnx_store = new_project(tmp_path / "a"), new_project(tmp_path / "b")
    eager = embed(eager_store, backbone, layer=layer, batch_size=4, progress=False)
    got = embed(onnx_store, backbone, layer=layer, batch_size=4, progress=False, runtime="onnx")
    assert got.computed == 6 and got.fingerprint == eager.fingerprint
    assert got.array.shape == eager.array.shape and got.array.dtype == eager.array.dtype
    np.testing.assert_allclose(got.array.astype(np.float32), eager.array.astype(np.float32),
                               rtol=1e-3, atol=1e-4)  # fmt: skip
    assert embed(onnx_store, backbone, layer=layer, progress=False).computed == 0
    eager_store.close()
    onnx_store.close()


def test_an_export_pickles_without_its_session_and_runs_anywhere():
    model = get_backbone("tiny").for_inference()
    forward = OnnxForward.export(model, "pooled")
    images = torch.rand(3, 3, 192, 320).contiguous(memory_format=torch.channels_last)
    first = forward(images)
    again = pickle.loads(pickle.dumps(forward))  # what the Ray engine ships to its actors
    assert again._session is None
    np.testing.assert_allclose(again(images), first, rtol=1e-5, atol=1e-6)  # a new session
    with torch.inference_mode():
        np.testing.assert_allclose(first, model(images).mean(dim=(2, 3)).numpy(), atol=1e-5)


def test_without_onnxruntime_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    store = new_project(tmp_path, n=2)
    with pytest.raises(OnnxUnavailable, match=r"scenesift\[onnx\]"):
        embed(store, get_backbone("tiny"), progress=False, runtime="onnx")
    with pytest.raises(ValueError, match="runtime"):
        embed(store, get_backbone("tiny"), progress=False, runtime="tensorrt")
    ui.console.width = 200
    args = ["embed", "-p", str(store.root), "--backbone", "tiny", "--runtime", "onnx"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "scenesift[onnx]" in result.output
    monkeypatch.undo()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "2 computed, 0 from the cache" in result.output
    store.close()


def test_onnx_runs_on_cuda_through_its_provider_and_says_when_it_cannot(monkeypatch):
    import onnxruntime

    from scenesift.features.onnx import providers

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert providers(cpu) == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(OnnxUnavailable, match="onnxruntime-gpu"):
        providers(cuda)
    assert providers(cuda, explicit=False) == ["CPUExecutionProvider"]  # auto: fall back
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert providers(cuda) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    forward = OnnxForward(b"graph", "pooled", providers(cuda))
    assert pickle.loads(pickle.dumps(forward)).providers == forward.providers  # Ray actors
