"""Issue 8: 50 labellers saving at once against uvicorn on loopback: no 5xx, no lost update."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import DRIVES, PER_DRIVE, LiveServer, frame_id, frame_name
from scenesift.store import Store
from scenesift.web import create_app

WORKERS = 50
SAVES = 10


@pytest.mark.slow
def test_fifty_concurrent_labellers_lose_no_update(project):
    names = [frame_name(d, i) for d in DRIVES for i in range(PER_DRIVE)][:6]  # contention
    ids = [frame_id(project, n) for n in names]
    start = threading.Barrier(WORKERS)

    def labeller(k: int) -> tuple[Counter, Counter]:
        rng = random.Random(k)
        won: Counter = Counter()
        codes: Counter = Counter()
        with httpx.Client(base_url=server.url, timeout=60) as http:
            start.wait()
            for _ in range(SAVES):
                fid = rng.choice(ids)
                version = http.get(f"/api/frames/{fid}").json()["label_version"]
                body = {
                    "label_version": version,
                    "labeller": f"labeller-{k}",
                    "situations": {"night": rng.random() < 0.5, "rain": rng.random() < 0.5},
                }
                r = http.post(f"/api/frames/{fid}/labels", json=body)
                codes[r.status_code] += 1
                if r.status_code == 200:
                    assert r.json()["label_version"] == version + 1
                    won[fid] += 1
                elif r.status_code == 409:
                    assert "NOT saved" in r.json()["detail"]
        return won, codes

    t0 = time.monotonic()
    with LiveServer(create_app(project)) as server, ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(labeller, range(WORKERS)))
    seconds = time.monotonic() - t0
    won = sum((w for w, _ in results), Counter())
    codes = sum((c for _, c in results), Counter())
    assert set(codes) <= {200, 409}, codes  # no 5xx, nothing else
    assert codes.total() == WORKERS * SAVES
    assert codes[200] >= len(ids)  # each frame was saved at least once
    with Store.open(project) as store:
        for fid in ids:
            version = store.conn.execute(
                "SELECT label_version FROM frames WHERE id = ?", (fid,)
            ).fetchone()[0]
            saves = store.conn.execute(
                "SELECT count(*), max(label_version) FROM label_saves WHERE frame_id = ?", (fid,)
            ).fetchone()
            # every successful save is one version and one provenance row: none lost
            assert version == won[fid] == saves[0] == (saves[1] or 0), fid
    print(f"\n{codes.total()} saves by {WORKERS} labellers in {seconds:.1f} s: {dict(codes)}")
