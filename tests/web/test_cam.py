"""Class activation map overlays on the frame view, computed on demand from the project's
latest tagger checkpoint and cached."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
from PIL import Image

from conftest import H, TestClient, W, frame_id
from scenesift.models.backbones import Preprocessing, get_backbone
from scenesift.models.tagger import SituationTagger, TaggerConfig
from scenesift.pipelines import tagger as pipe
from scenesift.store import Store
from scenesift.web import create_app
from scenesift.web.images import _cam_rgba


def train_tiny_tagger(project) -> None:
    with Store.open(project) as store:
        records = [r for r in store.records(state="labelled") if r.situations]
        config = TaggerConfig(backbone="tiny", schedule="frozen", epochs=1, workers=0)
        tagger = SituationTagger(store.taxonomy.names, config)
        backbone = get_backbone("tiny", preprocessing=Preprocessing(size=(64, 96)))
        tagger.fit(records, records, store=store, backbone=backbone, progress=False)
        pipe.save(store, tagger)


def test_cam_overlay_is_computed_once_and_cached(project, one_thread):
    train_tiny_tagger(project)
    fid = frame_id(project, "d2/000.jpg")
    with TestClient(create_app(project), base_url="http://127.0.0.1") as client:
        html = client.get(f"/frames/{fid}").text
        assert 'id="cam-select"' in html and "No tagger checkpoint" not in html
        r = client.get(f"/frames/{fid}/cam", params={"situation": "night"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        overlay = Image.open(io.BytesIO(r.content))
        assert overlay.mode == "RGBA" and overlay.size == (W, H)
        alpha = np.asarray(overlay)[..., 3]
        assert alpha.min() >= int(255 * 0.15) - 1  # the whole (stretched) input is covered
        [cached] = (project / "cache" / "cam").iterdir()
        assert cached.read_bytes() == r.content
        assert client.get(f"/frames/{fid}/cam?situation=night").content == r.content
        assert len(list((project / "cache" / "cam").iterdir())) == 1
        assert client.get(f"/frames/{fid}/cam?situation=volcano").status_code == 422
        assert client.get(f"/frames/{fid}/cam").status_code == 422


def test_cam_of_a_center_cropped_input_covers_only_the_crop(project):
    pre = Preprocessing(size=(64, 64), resize="center_crop")
    tagger = SimpleNamespace(
        net=SimpleNamespace(backbone=SimpleNamespace(preprocessing=pre)),
        cam=lambda images: np.zeros((len(images), 1, 2, 2), dtype=np.float32),
    )
    rgba = _cam_rgba(tagger, project.parent / "data" / "d0" / "000.jpg", 0)
    assert rgba.shape == (H, W, 4)
    # 256x160 scaled to cover 64x64 is 102x64: the centred 160x160 square of the original
    assert (rgba[:, :48, 3] == 0).all() and (rgba[:, 208:, 3] == 0).all()
    assert (rgba[:, 48:208, 3] > 0).all()
