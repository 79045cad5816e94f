"""A tiny generated project for the web app tests, and a live uvicorn server on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from PIL import Image, ImageDraw

from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store
from scenesift.web import create_app

with warnings.catch_warnings():  # starlette would like httpx2; httpx works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

W, H = 256, 160
MODEL = "model:" + "ab12" * 4
DRIVES = ("d0", "d1", "d2")
PER_DRIVE = 4


def car_x(seed: int) -> int:
    return int(np.random.default_rng(seed).integers(20, 160))


def write_scene(path: Path, seed: int, night: bool = False) -> None:
    """A recognisable little road scene: sky, road, a car (at x = car_x(seed))."""
    sky = (30, 35, 70) if night else (135, 180, 235)
    im = Image.new("RGB", (W, H), sky)
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 90, W, H), fill=(70, 70, 75) if not night else (30, 30, 35))
    draw.rectangle((0, 80, W, 92), fill=(60, 140, 60))
    x = car_x(seed)
    draw.rectangle((x, 100, x + 60, 135), fill=(200, 30, 30))
    draw.rectangle((x + 8, 92, x + 48, 104), fill=(160, 20, 20))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, quality=90)


def frame_name(drive: str, i: int) -> str:
    return f"{drive}/{i:03d}.jpg"


def build_project(tmp: Path) -> Path:
    """3 drives of 4 frames: d0 imported (labelled, day, a car each), d1 and d2 unlabelled
    with held-back oracle labels, a model's situation scores and boxes for all, one
    campaign with two rounds (metrics) whose last round picked d1's frames, a report."""
    data = tmp / "data"
    frames, oracle = [], []
    for d, drive in enumerate(DRIVES):
        for i in range(PER_DRIVE):
            name = frame_name(drive, i)
            night = drive == "d2"
            write_scene(data / name, seed=10 * d + i, night=night)
            situations, boxes = {}, None
            if drive == "d0":
                situations = {"day": True, "clear": True, "city": True, "roadworks": i == 0}
                x = car_x(10 * d + i)
                boxes = [Box("car", x - 1.0, 91.0, x + 61.0, 136.0)]
            frames.append(
                FrameRecord(name, data / name, drive, W, H, timestamp=i * 0.5,
                            situations=situations, boxes=boxes)
            )  # fmt: skip
            if drive != "d0":
                oracle.append(
                    FrameRecord(name, data / name, drive, W, H, timestamp=i * 0.5,
                                situations={"night": night, "day": not night})
                )  # fmt: skip
    root = tmp / "proj"
    store = Store.init(root)
    try:
        store.ingest(ImportBatch(frames, data, ImportReport("test", len(frames))))
        store.ingest(ImportBatch(oracle, data, ImportReport("oracle")), "oracle", labels_only=True)
        names = [f.name for f in frames]
        sits = store.taxonomy.names
        rng = np.random.default_rng(0)
        scores = rng.uniform(0, 1, (len(names), len(sits)))
        scores[:, sits.index("night")] = [0.9 if n.startswith("d2") else 0.1 for n in names]
        store.write_situation_scores(MODEL, names, sits, scores)
        seeds = {frame_name(dr, i): 10 * d + i for d, dr in enumerate(DRIVES) for i in range(4)}
        store.write_box_predictions(
            MODEL,
            {
                n: [Box("car", car_x(seeds[n]) + 4.0, 95.0, car_x(seeds[n]) + 58.0, 138.0,
                        score=0.8)]
                for n in names
            },
        )  # fmt: skip
        with store.transaction() as c:
            c.execute(
                "INSERT INTO campaigns (name, created_at) VALUES ('demo-campaign', "
                "'2024-01-01T00:00:00')"
            )
            for idx, metrics in enumerate(
                [{"n_labelled": 4, "map50": 0.31, "map": 0.14},
                 {"n_labelled": 8, "map50": 0.47, "map": 0.22}]
            ):  # fmt: skip
                c.execute(
                    "INSERT INTO rounds (campaign_id, idx, status, metrics, created_at) "
                    "VALUES (1, ?, 'done', ?, ?)",
                    (idx, json.dumps(metrics), f"2024-01-0{idx + 2}T00:00:00"),
                )
            ids = dict(c.execute("SELECT name, id FROM frames"))
            for rank, i in enumerate(range(PER_DRIVE)):
                fid = ids[frame_name("d1", i)]
                c.execute(
                    "INSERT INTO picks (round_id, frame_id, rank, score, strategy) "
                    "VALUES (2, ?, ?, ?, 'least_confidence')",
                    (fid, rank, 0.9 - 0.1 * rank),
                )
                c.execute(
                    "UPDATE frames SET state = 'selected', selected_round = 2 WHERE id = ?",
                    (fid,),
                )
    finally:
        store.close()
    (root / "reports" / "campaign").mkdir(parents=True)
    (root / "reports" / "campaign" / "summary.html").write_text(
        "<html><body><h1>Campaign summary</h1></body></html>"
    )
    return root


@pytest.fixture(scope="session")
def project_template(tmp_path_factory) -> Path:
    return build_project(tmp_path_factory.mktemp("template"))


@pytest.fixture
def project(tmp_path, project_template) -> Path:
    """A fresh copy of the template project (images included) for each test."""
    shutil.copytree(project_template.parent / "data", tmp_path / "data")
    shutil.copytree(project_template, tmp_path / "proj")
    with Store.open(tmp_path / "proj") as store, store.transaction() as c:
        c.execute("UPDATE image_roots SET path = ?", (os.path.abspath(tmp_path / "data"),))
    return tmp_path / "proj"


@pytest.fixture
def client(project) -> TestClient:
    with TestClient(create_app(project), base_url="http://127.0.0.1") as c:
        yield c


def frame_id(project: Path, name: str) -> int:
    with Store.open(project) as store:
        return store.conn.execute("SELECT id FROM frames WHERE name = ?", (name,)).fetchone()[0]


class LiveServer:
    """uvicorn serving ``app`` in a thread on a free loopback port."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def live(project):
    with LiveServer(create_app(project)) as server:
        yield server
