"""Render a report from a tiny generated project and a made-up results table
(``tests/report_fixtures.py``), and screenshot it in headless Chromium (full page, and one
PNG per section), to look at it.

    .venv/bin/python scripts/screenshot_report.py [OUT] [--frames 120] [--models]

``--models`` also trains a tiny tagger and detector (``tiny`` backbone, seconds) and stores
their predictions, so the tagger table, the gap report and the class activation maps fill.
The campaign is written straight into the catalog (no training): rounds of picks, and for
its rounds' "models" the truth boxes jittered as stored predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from scenesift.io.bdd import read_bdd
from scenesift.records import Box
from scenesift.report import build_report
from scenesift.store import Store
from scenesift.store.project import now
from scenesift.synth import generate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from report_fixtures import synthetic_results


def make_project(out: Path, frames: int) -> Store:
    world, project = out / "world", out / "project"
    if not (world / "labels.json").exists():
        generate(world, frames, seed=0, workers=1, progress=False)
    if (project / "catalog.sqlite").exists():
        return Store.open(project)
    store = Store.init(project)
    store.ingest(read_bdd(world / "labels.json", store.taxonomy))
    return store


def fake_campaign(store: Store, name: str, rounds: int = 4, batch: int = 8) -> None:
    """A campaign in the catalog: round 0 random, later rounds with a 'model' whose
    predictions (the truth, jittered) are stored, like a human campaign's pre-annotations."""
    c = store.conn
    if c.execute("SELECT 1 FROM campaigns WHERE name = ?", (name,)).fetchone():
        return
    rng = np.random.default_rng(0)
    pool = [r for r in store.records(split="train") if r.boxes is not None]
    ids = dict(c.execute("SELECT name, id FROM frames").fetchall())
    order = rng.permutation(len(pool))
    config = {"strategy": {"name": "least_confidence"}, "labeler": "labelstudio",
              "initial": batch, "batch": batch}  # fmt: skip
    with store.transaction():
        cid = c.execute(
            "INSERT INTO campaigns (name, config, status, created_at) VALUES (?, ?, ?, ?)",
            (name, json.dumps(config), "running", now()),
        ).lastrowid
    for r in range(rounds):
        fp = None if r == 0 else f"fake{r:02d}" + "0" * 20
        metrics = {} if r == 0 else {"n_labelled": batch * r, "map50": 0.3 + 0.08 * r}
        picks = [pool[i] for i in order[r * batch : (r + 1) * batch]]
        with store.transaction():
            rid = c.execute(
                "INSERT INTO rounds (campaign_id, idx, status, model_fingerprint, metrics, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (cid, r, "labelled", fp, json.dumps(metrics), now()),
            ).lastrowid
            c.executemany(
                "INSERT INTO picks (round_id, frame_id, rank, score, strategy) "
                "VALUES (?, ?, ?, ?, ?)",
                [(rid, ids[p.name], k, float(1 - 0.05 * k),
                  "random (initial set)" if r == 0 else "least_confidence")
                 for k, p in enumerate(picks)],
            )  # fmt: skip
        if fp is not None:
            jitter = {p.name: [_jittered(b, rng) for b in p.boxes or ()] for p in picks}
            store.write_box_predictions(f"model:{fp}", jitter)


def _jittered(b: Box, rng: np.random.Generator) -> Box:
    x1, y1 = b.x1 + rng.normal(0, 4), b.y1 + rng.normal(0, 4)
    x2 = max(b.x2 + rng.normal(0, 4), x1 + 2)
    y2 = max(b.y2 + rng.normal(0, 4), y1 + 2)
    return Box(b.category, x1, y1, x2, y2, score=0.8)


def train_models(store: Store) -> None:
    from scenesift.models.detector import DetectorConfig
    from scenesift.models.tagger import TaggerConfig
    from scenesift.pipelines import detector, tagger

    size = (96, 160)
    if not (store.root / "models" / "tagger" / "latest").exists():
        t, path = tagger.train(
            store,
            TaggerConfig(backbone="tiny", input_size=size, schedule="frozen", epochs=2),
            progress=False,
        )
        tagger.prelabel(store, t, path, progress=False)
    if not (store.root / "models" / "detector" / "latest").exists():
        d, _ = detector.train(
            store,
            DetectorConfig(backbone="tiny", input_size=size, epochs=12, width=16),
            progress=False,
        )
        detector.predict(store, d, progress=False)


def screenshot(html: Path, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(html.resolve().as_uri())
        page.wait_for_load_state("networkidle")
        full = out / "report_full.png"
        page.screenshot(path=str(full), full_page=True)
        shots.append(full)
        head = out / "section_00_header.png"
        page.locator("header").screenshot(path=str(head))
        shots.append(head)
        for k, section in enumerate(page.locator("section").all(), 1):
            sid = section.get_attribute("id")
            path = out / f"section_{k:02d}_{sid}.png"
            section.screenshot(path=str(path))
            shots.append(path)
        browser.close()
    external = [u for u in requests if not u.startswith(("file:", "data:"))]
    print("external requests:", external or "none")
    return shots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default="/tmp/scenesift-report-preview", type=Path)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--models", action="store_true", help="train a tiny tagger and detector")
    ap.add_argument("--no-results", action="store_true", help="empty states of the results")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    store = make_project(args.out, args.frames)
    with store:
        fake_campaign(store, "preview <least_confidence> & co")
        if args.models:
            started = time.perf_counter()
            train_models(store)
            print(f"models: {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        results = None if args.no_results else synthetic_results()
        html = build_report(store, args.out / "report.html", results)
        print(f"report: {html} ({html.stat().st_size / 1e6:.2f} MB) in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    for path in screenshot(html, args.out):
        print(path)


if __name__ == "__main__":
    main()
