"""The image pipeline and the fingerprint-keyed feature cache (tiny backbone: fast)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from scenesift import ui
from scenesift.cli import app
from scenesift.features import embed, feature_caches
from scenesift.models import (
    FrameImages,
    ImageLoadError,
    Preprocessing,
    get_backbone,
    make_loader,
)
from scenesift.models.images import load_pixels
from scenesift.records import FrameRecord, ImportBatch, ImportReport
from scenesift.store import ArrayStore, Store, StoreError

SMALL = Preprocessing(size=(64, 96))


def write_frames(root: Path, n: int, size=(64, 48)) -> list[FrameRecord]:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        drive = f"drive{i % 3}"
        name = f"{drive}/{i:04d}.jpg"
        (root / drive).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / name, quality=90)
        frames.append(
            FrameRecord(name=name, path=root / name, drive=drive, width=size[0],
                        height=size[1], timestamp=float(i))
        )  # fmt: skip
    return frames


@pytest.fixture
def project(tmp_path):
    frames = write_frames(tmp_path / "images", 7)
    store = Store.init(tmp_path / "proj")
    store.ingest(ImportBatch(frames, tmp_path / "images", ImportReport("test", len(frames))))
    yield store
    store.close()


def counting(backbone):
    """Count the frames that go through the backbone (the hook survives the inference copy)."""
    seen = []
    backbone.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[0]))
    return seen


def names(store: Store) -> list[str]:
    return [r.name for r in store.records()]


def feature_rows(store: Store) -> int:
    return store.conn.execute("SELECT count(*) FROM features").fetchone()[0]


# --------------------------------------------------------------------------- images
def test_images_are_resized_and_normalised_to_float_chw(tmp_path):
    Image.new("RGB", (50, 40), (255, 0, 128)).save(tmp_path / "a.png")
    pre = Preprocessing(size=(64, 96), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    x = FrameImages([tmp_path / "a.png"], pre)[0]
    assert x.shape == (3, 64, 96) and x.dtype == torch.float32
    expected = torch.tensor([(1 - 0.5) / 0.25, (0 - 0.5) / 0.5, (128 / 255 - 0.5) / 1.0])
    assert torch.allclose(x.mean(dim=(1, 2)), expected, atol=1e-5)


def test_large_jpegs_are_decoded_reduced_and_center_crop_keeps_the_aspect(tmp_path):
    Image.new("RGB", (1280, 640), (10, 200, 30)).save(tmp_path / "big.jpg")
    assert load_pixels(tmp_path / "big.jpg", SMALL).shape == (64, 96, 3)
    crop = Preprocessing(size=(64, 64), resize="center_crop")
    assert load_pixels(tmp_path / "big.jpg", crop).shape == (64, 64, 3)


def test_channels_last_batches_hold_the_same_values_as_contiguous_ones(project):
    paths = [r.path for r in project.records()]
    last = next(iter(make_loader(paths, SMALL, batch_size=4, workers=0)))
    dense = next(iter(make_loader(paths, SMALL, batch_size=4, workers=0, channels_last=False)))
    assert last.images.shape == dense.images.shape == (4, 3, 64, 96)
    assert last.images.is_contiguous(memory_format=torch.channels_last)
    assert dense.images.is_contiguous()
    assert torch.equal(last.images, dense.images)
    assert last.index.tolist() == [0, 1, 2, 3]
    single = FrameImages(paths, SMALL)[2]
    assert torch.equal(single, last.images[2])


def test_worker_processes_give_the_same_batches(project):
    paths = [r.path for r in project.records()]
    here = torch.cat([b.images for b in make_loader(paths, SMALL, batch_size=3, workers=0)])
    there = torch.cat([b.images for b in make_loader(paths, SMALL, batch_size=3, workers=1)])
    torch.testing.assert_close(here, there, rtol=0, atol=1e-6)  # another process, thread count


def test_a_corrupt_image_in_a_worker_is_one_clear_error_naming_the_file(tmp_path):
    good = tmp_path / "good.jpg"
    Image.new("RGB", (32, 32)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageLoadError, match=r"bad\.jpg") as info:
        list(make_loader([good, bad], SMALL, batch_size=2, workers=1))
    assert info.value.path == str(bad)
    with pytest.raises(ImageLoadError, match="no such file"):
        FrameImages([tmp_path / "missing.jpg"], SMALL)[0]


# --------------------------------------------------------------------------- cache
def test_embedding_twice_computes_once_and_equals_a_direct_forward(project):
    backbone = get_backbone("tiny")
    seen = counting(backbone)
    first = embed(project, backbone, progress=False, workers=0, batch_size=4)
    assert (first.computed, first.cached, sum(seen)) == (7, 0, 7)
    second = embed(project, backbone, progress=False, workers=0)
    assert (second.computed, second.cached, sum(seen)) == (0, 7, 7)
    assert second.names == first.names == names(project)
    assert np.array_equal(second.array, first.array)
    assert first.array.shape == (7, backbone.out_channels) and first.array.dtype == np.float32

    dataset = FrameImages([r.path for r in project.records()], backbone.preprocessing)
    images = torch.stack([dataset[i] for i in range(7)])
    with torch.inference_mode():
        direct = backbone(images).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(first.array, direct, atol=1e-5)


def test_a_superset_computes_only_the_new_frames_in_the_order_asked(project):
    backbone = get_backbone("tiny")
    seen = counting(backbone)
    all_names = names(project)
    part = embed(project, backbone, names=all_names[:3], progress=False, workers=0)
    assert part.computed == 3
    wanted = list(reversed(all_names))
    full = embed(project, backbone, names=wanted, progress=False, workers=0)
    assert (full.computed, full.cached, sum(seen)) == (4, 3, 7)
    assert full.names == wanted
    np.testing.assert_array_equal(full.array[-3:], part.array[::-1])
    assert project.conn.execute("SELECT count(DISTINCT shard) FROM features").fetchone()[0] == 2


def test_anything_that_changes_the_features_misses_the_cache(project):
    base = get_backbone("tiny")
    first = embed(project, base, progress=False, workers=0)
    resized = get_backbone("tiny", preprocessing=base.preprocessing.with_size(96, 160))
    again = embed(project, resized, progress=False, workers=0)
    assert again.computed == 7 and again.fingerprint != first.fingerprint
    reseeded = embed(project, get_backbone("tiny", seed=3), progress=False, workers=0)
    assert reseeded.computed == 7
    fmap = embed(project, base, layer="map", progress=False, workers=0)
    assert fmap.computed == 7 and fmap.array.shape == (7, base.out_channels, 6, 10)
    assert fmap.array.dtype == np.float16
    np.testing.assert_allclose(fmap.array.astype(np.float32).mean(axis=(2, 3)), first.array,
                               rtol=1e-2, atol=1e-2)  # fmt: skip
    listed = {c["fingerprint"]: c for c in feature_caches(project)}
    assert len(listed) == 4 and listed[fmap.fingerprint]["layer"] == "map"
    assert listed[again.fingerprint]["preprocessing"]["size"] == [96, 160]
    assert all(c["frames"] == 7 for c in listed.values())


def test_a_corrupt_image_names_the_file_and_writes_no_index_rows(project):
    victim = project.records()[4]
    victim.path.write_bytes(b"garbage")
    with pytest.raises(ImageLoadError, match=victim.name):
        embed(project, get_backbone("tiny"), progress=False, workers=0)
    assert feature_rows(project) == 0
    assert project.conn.execute("SELECT count(*) FROM arrays").fetchone()[0] == 0


def test_a_crash_while_registering_a_shard_leaves_no_rows_pointing_at_nothing(project, monkeypatch):
    real_put = ArrayStore.put

    def put_then_die(self, *args, **kwargs):
        real_put(self, *args, **kwargs)
        raise KeyboardInterrupt  # killed after the file and its row, before the index rows

    monkeypatch.setattr(ArrayStore, "put", put_then_die)
    with pytest.raises(KeyboardInterrupt):
        embed(project, get_backbone("tiny"), progress=False, workers=0)
    assert feature_rows(project) == 0
    assert project.conn.execute("SELECT count(*) FROM arrays").fetchone()[0] == 0
    monkeypatch.undo()
    assert embed(project, get_backbone("tiny"), progress=False, workers=0).computed == 7


def test_a_lost_shard_file_is_recomputed_not_served(project):
    backbone = get_backbone("tiny")
    first = embed(project, backbone, progress=False, workers=0)
    for shard in project.root.glob("arrays/*/*.npy"):
        shard.unlink()
    again = embed(project, backbone, progress=False, workers=0)
    assert again.computed == 7
    np.testing.assert_array_equal(again.array, first.array)


def test_an_image_replaced_at_the_same_path_is_recomputed_not_served(project, tmp_path):
    backbone = get_backbone("tiny")
    first = embed(project, backbone, progress=False, workers=0)
    replaced = project.records()[2]
    pixels = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(replaced.path, quality=90)
    stat = replaced.path.stat()  # a new mtime even on filesystems with coarse timestamps
    os.utime(replaced.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    seen = counting(backbone)
    again = embed(project, backbone, progress=False, workers=0)
    assert (again.computed, again.cached, sum(seen)) == (1, 6, 1)
    row = again.names.index(replaced.name)
    assert not np.array_equal(again.array[row], first.array[row])
    others = [i for i in range(len(again)) if i != row]
    np.testing.assert_array_equal(again.array[others], first.array[others])
    fresh = Store.init(tmp_path / "fresh")  # the same frames, never cached
    frames = project.records()
    fresh.ingest(ImportBatch(frames, tmp_path / "images", ImportReport("test", len(frames))))
    # computed in a batch of 7 here and a batch of 1 above: equal up to float rounding only
    np.testing.assert_allclose(
        embed(fresh, backbone, progress=False, workers=0).array[row], again.array[row],
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    assert embed(project, backbone, progress=False, workers=0).computed == 0


def test_rows_cached_before_image_signatures_existed_are_still_served(project):
    backbone = get_backbone("tiny")
    embed(project, backbone, progress=False, workers=0)
    with project.transaction() as c:
        c.execute("UPDATE features SET image_sig = NULL")
    assert embed(project, backbone, progress=False, workers=0).computed == 0


def test_frames_by_split_and_unknown_names(project):
    backbone = get_backbone("tiny")
    test_names = [r.name for r in project.records(split="test")]
    got = embed(project, backbone, split="test", progress=False, workers=0)
    assert got.names == test_names
    with pytest.raises(StoreError, match="not in the project"):
        embed(project, backbone, names=["drive0/nope.jpg"], progress=False, workers=0)
    empty = embed(project, backbone, names=[], progress=False, workers=0)
    assert empty.array.shape == (0, backbone.out_channels)


def test_cli_embed_reports_computed_cached_throughput_and_the_cache_key(project):
    ui.console.width = 200
    args = ["embed", "-p", str(project.root), "--backbone", "tiny", "--workers", "0"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "7 computed, 0 from the cache" in first.output and "frames/s" in first.output
    again = CliRunner().invoke(app, args)
    assert "0 computed, 7 from the cache" in again.output
    key = embed(project, get_backbone("tiny"), progress=False, workers=0).fingerprint
    assert key in again.output
    bad = CliRunner().invoke(app, ["embed", "-p", str(project.root), "--backbone", "nope"])
    assert bad.exit_code == 2 and "available: efficientnet_lite0" in bad.output


def test_embed_on_the_cpu_device_gives_the_default_features_and_shares_their_cache(project):
    plain = embed(project, get_backbone("tiny"), progress=False, workers=0)
    args = ["embed", "-p", str(project.root), "--backbone", "tiny", "--device", "cpu"]
    on_cpu = CliRunner().invoke(app, args)
    assert on_cpu.exit_code == 0, on_cpu.output
    assert "0 computed, 7 from the cache" in on_cpu.output  # the device is not in the key
    other = Store.init(project.root.parent / "other")  # a fresh cache, computed on the cpu
    other.ingest(ImportBatch(list(project.records()), project.root.parent / "images",
                             ImportReport("test", 7)))  # fmt: skip
    again = embed(other, get_backbone("tiny"), progress=False, device="cpu")
    np.testing.assert_allclose(again.array, plain.array, atol=1e-5)
    assert again.fingerprint == plain.fingerprint
    other.close()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error seen without a GPU")
def test_embed_on_a_missing_gpu_is_one_line_and_exit_2(project):
    args = ["embed", "-p", str(project.root), "--backbone", "tiny", "--device", "cuda"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "torch sees no CUDA GPU" in result.output
    assert "Traceback" not in result.output and feature_rows(project) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_embed_on_cuda_matches_the_cpu_features_within_mixed_precision(project):
    cpu = embed(project, get_backbone("tiny"), progress=False, device="cpu", layer="pooled")
    project.conn.execute("DELETE FROM features")
    gpu = embed(project, get_backbone("tiny"), progress=False, device="cuda", layer="pooled")
    assert gpu.computed == 7 and gpu.array.dtype == np.float32
    np.testing.assert_allclose(gpu.array, cpu.array, atol=5e-2, rtol=5e-2)
