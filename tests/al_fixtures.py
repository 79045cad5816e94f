"""A tiny world for active-learning tests: one bright square (a "car") per frame."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store

#: A detector that trains in well under a second on these frames.
LEARNER = {
    "detector": dict(
        backbone="tiny", input_size=(64, 96), batch_size=8, width=16, epochs=2, lr=1e-2
    ),
    "min_score": 0.0,
}

#: The situation tagger on the same frames: a head on the tiny backbone's pooled features.
TAGGER_LEARNER = {
    "kind": "tagger",
    "tagger": dict(backbone="tiny", input_size=(64, 96), batch_size=8, epochs=2, head_passes=5),
}


def make_frames(root, n=48):
    """``n`` frames in n/2 drives, one bright square (a "car") each; odd drives at night."""
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        pixels = np.full((64, 96, 3), 20, dtype=np.uint8)
        s = int(rng.integers(14, 26))
        x, y = int(rng.integers(0, 96 - s)), int(rng.integers(0, 64 - s))
        pixels[y : y + s, x : x + s] = 235
        name = f"d{i // 2:02d}/{i % 2}.png"
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        frames.append(FrameRecord(name, path, f"d{i // 2:02d}", 96, 64, timestamp=float(i % 2),
                                  situations={"night": (i // 2) % 2 == 1},
                                  boxes=[Box("car", x, y, x + s, y + s)]))  # fmt: skip
    return frames


def oracle_project(tmp_path: Path) -> Store:
    """The whole truth imported as oracle: nothing is labelled until a campaign says so."""
    store = Store.init(tmp_path / "proj", split_fractions=(0.6, 0.15, 0.25))
    batch = ImportBatch(make_frames(tmp_path / "data"), tmp_path / "data", ImportReport("t"))
    store.ingest(batch, label_source="oracle")
    return store


def campaign_config(learner=LEARNER, **kw):
    """A small simulated campaign: 6 random frames, then rounds of 4."""
    from scenesift.al.campaign import CampaignConfig

    base = {"strategy": {"name": "random"}, "initial": 6, "batch": 4,
            "stopping": {"max_rounds": 3}, "learner": learner}  # fmt: skip
    return CampaignConfig(**{**base, **kw})


@contextmanager
def opened_oracle_project(tmp_path: Path) -> Iterator[Store]:
    store = oracle_project(tmp_path)
    try:
        yield store
    finally:
        store.close()


def filled_fields(outputs) -> set[str]:
    """The Pool fields a learner's ``PoolOutputs`` filled, named as ``provides()`` names
    them (``embeddings`` come from the learner's backbone, not from its outputs)."""
    names = {"detections", "situation_scores", "situation_mc_scores", "flip_detections"}
    out = {n for n in names if getattr(outputs, n) is not None}
    if outputs.detections is not None and outputs.detections.member is not None:
        out.add("detections.member")
    return out


def waiting_human_campaign(tmp_path: Path, name: str = "people") -> Store:
    """The tiny world with 6 train frames labelled and a human (Label Studio) campaign on it,
    waiting for its first batch of 4 frames; stops after 2 trainings."""
    from scenesift.al.campaign import Campaign

    store = oracle_project(tmp_path)
    names = [r.name for r in store.records(split="train")][:6]
    store.conn.execute(
        f"UPDATE frames SET state = 'labelled' WHERE name IN ({','.join('?' * len(names))})",
        names,
    )
    seed = [r for r in make_frames(tmp_path / "data") if r.name in names]
    store.ingest(ImportBatch(seed, tmp_path / "data", ImportReport("seed")), label_source="import")
    cfg = campaign_config(labeler="labelstudio", stopping={"max_rounds": 2})
    assert Campaign.create(store, name, cfg).run().status == "waiting"
    return store
