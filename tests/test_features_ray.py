"""The Ray Data engine of the feature cache, on a local Ray cluster started here: the same
features and tagger scores as the in-process engine, through the same cache."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from scenesift import ui
from scenesift.cli import app
from scenesift.features import embed
from scenesift.features.local import LocalEngine
from scenesift.models import ImageLoadError, get_backbone
from scenesift.models.backbones import Preprocessing
from scenesift.models.tagger import TaggerConfig
from scenesift.pipelines import tagger as pipe
from scenesift.records import ImportBatch, ImportReport
from scenesift.store import Store
from test_features import write_frames

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module (starting one costs seconds); engine calls reuse it."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def new_project(root, n=10) -> Store:
    frames = write_frames(root / "images", n)
    store = Store.init(root / "proj")
    store.ingest(ImportBatch(frames, root / "images", ImportReport("test", len(frames))))
    return store


def no_local_compute(monkeypatch):
    """Fail if the in-process engine computes anything: every frame must come from Ray."""

    def refuse(*args, **kwargs):
        raise AssertionError("the local engine ran")

    monkeypatch.setattr(LocalEngine, "compute", refuse)


@pytest.mark.parametrize(("layer", "runtime"), [("pooled", "torch"), ("map", "torch"),
                                               ("pooled", "onnx")])  # fmt: skip
def test_ray_features_equal_the_local_engine_and_are_cached(tmp_path, monkeypatch, layer, runtime):
    if runtime == "onnx":
        pytest.importorskip("onnxruntime")
    backbone = get_backbone("tiny")
    local_store = new_project(tmp_path / "local")
    local = embed(local_store, backbone, layer=layer, batch_size=4, progress=False)
    ray_store = new_project(tmp_path / "ray")
    with monkeypatch.context() as m:
        no_local_compute(m)
        got = embed(ray_store, backbone, layer=layer, batch_size=4, progress=False,
                    engine="ray", ray_workers=2, runtime=runtime)  # fmt: skip
    assert (got.computed, got.cached) == (10, 0)
    assert got.names == local.names and got.fingerprint == local.fingerprint
    assert got.array.shape == local.array.shape and got.array.dtype == local.array.dtype
    tol = 1e-5 if runtime == "torch" else 1e-4
    np.testing.assert_allclose(got.array.astype(np.float32), local.array.astype(np.float32),
                               rtol=tol, atol=tol)  # fmt: skip

    again = embed(ray_store, backbone, layer=layer, progress=False, engine="ray")
    assert (again.computed, again.cached) == (0, 10)  # nothing computed: Ray not even used
    np.testing.assert_array_equal(again.array, got.array)
    assert not list((ray_store.root / "tmp").iterdir())  # staging shards removed
    local_store.close()
    ray_store.close()


def test_an_unreadable_image_is_named_and_the_others_are_cached(tmp_path):
    store = new_project(tmp_path, n=6)
    victim = store.records()[2]
    victim.path.write_bytes(b"garbage")
    backbone = get_backbone("tiny")
    with pytest.raises(ImageLoadError, match=victim.name) as info:
        embed(store, backbone, progress=False, engine="ray", ray_workers=1)
    assert info.value.path == str(victim.path)
    assert store.conn.execute("SELECT count(*) FROM features").fetchone()[0] == 5
    with pytest.raises(ValueError, match="engine"):
        embed(store, backbone, progress=False, engine="spark")
    store.close()


SMALL = Preprocessing(size=(64, 64))


def tagger_project(root) -> Store:
    """24 drives of 3 frames, dark drives labelled night, the others day."""
    frames = write_frames(root / "images", 72)
    for i, f in enumerate(frames):
        f.drive = f"d{i // 3:02d}"
        f.situations = {"night": i // 3 % 2 == 0, "day": i // 3 % 2 == 1}
    store = Store.init(root / "proj", split_fractions=(0.5, 0.25, 0.25))
    store.ingest(ImportBatch(frames, root / "images", ImportReport("test", len(frames))))
    return store


def test_cli_scores_via_ray_equal_the_in_process_scores(tmp_path, monkeypatch):
    store = tagger_project(tmp_path)
    cfg = TaggerConfig(backbone="tiny", schedule="frozen", epochs=2, workers=0)
    tagger, path = pipe.train(store, cfg, backbone=get_backbone("tiny", preprocessing=SMALL),
                              progress=False)  # fmt: skip
    source = f"model:{tagger.fingerprint}"
    pipe.prelabel(store, tagger, path, progress=False)
    local = scores(store, source)

    store.conn.execute("DELETE FROM features")  # nothing cached: Ray computes every frame
    store.conn.execute("DELETE FROM situation_labels WHERE source = ?", (source,))
    store.conn.commit()
    ui.console.width = 200
    with monkeypatch.context() as m:
        no_local_compute(m)
        result = CliRunner().invoke(
            app, ["tagger", "predict", "-p", str(store.root), "--engine", "ray",
                  "--ray-workers", "2"],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Pre-labels written" in result.output
    assert store.conn.execute("SELECT count(*) FROM features").fetchone()[0] == 72
    via_ray = scores(store, source)
    assert via_ray.keys() == local.keys() and len(local) == 72 * len(tagger.trained)
    np.testing.assert_allclose([via_ray[k] for k in local], list(local.values()), atol=1e-5)
    store.close()


def scores(store: Store, source: str) -> dict[tuple[int, str], float]:
    rows = store.conn.execute(
        "SELECT frame_id, situation, confidence FROM situation_labels WHERE source = ?",
        (source,),
    )
    return {(fid, sit): conf for fid, sit, conf in rows}


def test_cli_embed_with_ray(tmp_path):
    store = new_project(tmp_path, n=4)
    ui.console.width = 200
    args = ["embed", "-p", str(store.root), "--backbone", "tiny", "--engine", "ray",
            "--ray-workers", "1"]  # fmt: skip
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "4 computed, 0 from the cache" in first.output
    assert "0 computed, 4 from the cache" in CliRunner().invoke(app, args).output
    bad = CliRunner().invoke(app, [*args[:-2], "--ray-workers", "0"])
    assert bad.exit_code == 2
    store.close()
