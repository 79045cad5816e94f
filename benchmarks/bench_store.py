"""The store at fleet scale: import 10k / 100k / 1M frames, then coverage and `info`.

    .venv/bin/python benchmarks/bench_store.py                         # 10k, 100k, 1M
    .venv/bin/python benchmarks/bench_store.py --sizes 10000,100000    # quick

For each size a synthetic BDD100K/Scalabel JSON is written (drives of 40 frames, ~5 boxes
and 8 frame attributes per frame, which the default mapping turns into all 16 situation
values) and imported into a fresh project by the real command, ``scenesift import bdd``, in
a child process whose peak RSS is its own. Every frame's image exists and is probed and
decoded like any user's (header + JPEG decode at 1/8 scale): the frames are hard links to
one real JPEG, so 1M unique frame names cost directory entries, not 1M image files (the
one image stays in the page cache, so reading is cheaper than a cold dataset's).
Then, per size: ``coverage()`` in process, ``scenesift info`` end to end (a fresh process),
and queries the web app and campaigns run (frames of a situation, unlabelled count, a
drive's frames), each best of ``--repeats``. Growth ratios are taken between sizes of the
same run. Prints markdown tables for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from scenesift.synth import WorldConfig, frame_rng, render_frame, simulate_drive

FRAMES_PER_DRIVE = 40
#: BDD attribute values and how often a drive has them (roughly the synthetic world's mix).
TIME_OF_DAY = (("daytime", 0.60), ("dawn/dusk", 0.13), ("night", 0.27))
WEATHER = (("clear", 0.60), ("overcast", 0.19), ("rainy", 0.18), ("foggy", 0.015),
           ("snowy", 0.015))  # fmt: skip
SCENE = (("city street", 0.46), ("highway", 0.28), ("residential", 0.25), ("tunnel", 0.01))
#: Boolean frame attributes (situation names) and the share of frames where they hold.
FLAGS = (("roadworks", 0.014), ("close_participant", 0.10), ("far_participant", 0.86),
         ("pedestrian_present", 0.46), ("crowded", 0.31))  # fmt: skip
#: BDD categories and boxes per frame (~5 in all; person/rider/bus map to project classes).
CATEGORIES = (("car", 3.3), ("bus", 0.25), ("truck", 0.25), ("person", 0.8), ("rider", 0.3),
              ("golf_cart", 0.03), ("traffic_cone", 0.09))  # fmt: skip
LINKS_PER_FILE = 50_000
#: Every frame is the synthetic world's size (a frame rendered by it, see synth_frame).
WIDTH, HEIGHT = WorldConfig().width, WorldConfig().height


def synth_frame(path: Path, cfg: WorldConfig) -> Path:
    """One frame of the synthetic world (drive 0, frame 0), saved as `scenesift synth` does."""
    state = next(iter(simulate_drive(cfg, 0, 0, 1)))
    pixels, _ = render_frame(state, frame_rng(0, 0, 0))
    Image.fromarray(pixels).save(path, quality=cfg.jpeg_quality)
    return path


def write_dataset(out: Path, n_frames: int, seed: int = 0) -> Path:
    """``out/labels.json`` for ``n_frames`` frames and ``out/images/<drive>/<i>.jpg`` hard
    links to one JPEG; returns the JSON path. Streams the JSON: memory stays flat."""
    rng = np.random.default_rng(seed)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    source = synth_frame(out / "frame.jpg", WorldConfig())

    n_drives = -(-n_frames // FRAMES_PER_DRIVE)
    pick = {
        name: rng.choice(len(values), n_drives, p=[p for _, p in values])
        for name, values in (("timeofday", TIME_OF_DAY), ("weather", WEATHER), ("scene", SCENE))
    }
    flags = rng.random((n_frames, len(FLAGS))) < np.array([p for _, p in FLAGS])
    rates = np.array([r for _, r in CATEGORIES])
    counts = rng.poisson(rates, (n_frames, len(CATEGORIES)))
    n_boxes = int(counts.sum())
    xy = rng.uniform(0, 1, (n_boxes, 2)) * [WIDTH - 8, HEIGHT - 8]
    wh = rng.uniform(0.03, 1, (n_boxes, 2)) * [WIDTH / 4, HEIGHT / 3]
    occluded = rng.random(n_boxes) < 0.3
    box = 0
    labels_json = out / "labels.json"
    with open(labels_json, "w", encoding="utf-8") as f:
        f.write("[\n")
        for i in range(n_frames):
            d, k = divmod(i, FRAMES_PER_DRIVE)
            drive = f"d{d:06d}"
            name = f"{drive}/{k:03d}.jpg"
            if k == 0:
                (images / drive).mkdir(exist_ok=True)
            if i % LINKS_PER_FILE == 0:  # file systems cap links per inode (ext4: 65,000)
                copy = out / f"frame-{i // LINKS_PER_FILE}.jpg"
                shutil.copyfile(source, copy)
            os.link(copy, images / name)
            attributes: dict[str, object] = {
                "timeofday": TIME_OF_DAY[pick["timeofday"][d]][0],
                "weather": WEATHER[pick["weather"][d]][0],
                "scene": SCENE[pick["scene"][d]][0],
            }
            attributes.update((flag, bool(v)) for (flag, _), v in zip(FLAGS, flags[i], strict=True))
            labels = []
            for c, n in enumerate(counts[i].tolist()):
                for _ in range(n):
                    (x, y), (w, h) = xy[box].tolist(), wh[box].tolist()
                    labels.append({
                        "category": CATEGORIES[c][0],
                        "attributes": {"occluded": bool(occluded[box]), "truncated": False},
                        "box2d": {"x1": round(x, 1), "y1": round(y, 1),
                                  "x2": round(min(x + w, WIDTH), 1),
                                  "y2": round(min(y + h, HEIGHT), 1)},
                    })  # fmt: skip
                    box += 1
            frame = {"name": name, "videoName": drive, "timestamp": k * 100,
                     "attributes": attributes, "labels": labels}  # fmt: skip
            f.write(json.dumps(frame, separators=(",", ":")))
            f.write(",\n" if i + 1 < n_frames else "\n")
        f.write("]\n")
    return labels_json


#: The real CLI (``scenesift.cli.main``) with timers around its two import phases, the
#: reader (parse + probe every image) and the store write (one transaction).
_TIMED_CLI = """
import atexit, json, os, sys, time
import scenesift.io.formats as formats
from scenesift.store.project import Store
times = {}
def timed(name, fn):
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times[name] = times.get(name, 0.0) + time.perf_counter() - start
    return run
formats.read_dataset = timed("read", formats.read_dataset)
Store.ingest = timed("write", Store.ingest)
atexit.register(lambda: open(os.environ["BENCH_TIMES"], "w").write(json.dumps(times)))
sys.argv[0] = "scenesift"
from scenesift.cli import main
main()
"""


@dataclass
class Run:
    seconds: float
    peak_gib: float  # of that process alone
    stdout: str
    phases: dict[str, float]


def scenesift(*args: object, work: Path) -> Run:
    """Run the CLI in a fresh process (the timed entry point above)."""
    times = work / "phases.json"
    times.unlink(missing_ok=True)
    env = {**os.environ, "COLUMNS": "160", "BENCH_TIMES": str(times)}
    cmd = [sys.executable, "-c", _TIMED_CLI, *map(str, args)]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"scenesift {' '.join(map(str, args))} failed:\n{stderr[-3000:]}")
    phases = json.loads(times.read_text()) if times.exists() else {}
    return Run(seconds, usage.ru_maxrss / 2**20, stdout, phases)  # ru_maxrss: KiB


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Best wall time of ``repeats`` calls (the least disturbed by other jobs)."""
    return min(timeit.repeat(fn, number=1, repeat=repeats))


def queries(project: Path, repeats: int) -> tuple[dict[str, float], int]:
    """In-process timings (best of ``repeats``) of what `info`, the web app and campaigns
    ask the catalog; and the number of fog frames."""
    from scenesift.store import Store
    from scenesift.store import browse as q
    from scenesift.store.coverage import coverage

    out: dict[str, float] = {}
    with Store.open(project) as store:
        c = store.conn
        drive = c.execute("SELECT drive FROM frames ORDER BY id DESC LIMIT 1").fetchone()[0]

        def page(f: q.Filters) -> Callable[[], object]:
            return lambda: q.browse(c, f, model_source=None, latest_round=None, limit=60)

        out["coverage() (the info table)"] = best_of(repeats, lambda: coverage(store))
        out["count of labelled frames (index on state: all of them)"] = best_of(
            repeats, lambda: c.execute(
                "SELECT count(*) FROM frames WHERE state = 'labelled'").fetchone())  # fmt: skip
        out["count of unlabelled frames (index on state: none here)"] = best_of(
            repeats, lambda: c.execute(
                "SELECT count(*) FROM frames WHERE state = 'unlabelled'").fetchone())  # fmt: skip
        fog = "situation = 'fog' AND source = 'import' AND value = 1"
        n_fog = c.execute(f"SELECT count(*) FROM situation_labels WHERE {fog}").fetchone()[0]
        out["ids of the fog frames (label index)"] = best_of(
            repeats, lambda: c.execute(
                f"SELECT frame_id FROM situation_labels WHERE {fog}").fetchall())  # fmt: skip
        out["web browser: fog frames, first page"] = best_of(repeats, page(q.Filters("fog")))
        out["web browser: day frames, first page"] = best_of(repeats, page(q.Filters("day")))
        out["web browser: one drive by time"] = best_of(
            repeats, page(q.Filters(drive=drive, sort="timestamp")))  # fmt: skip
    return out, n_fog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp one)")
    ap.add_argument("--keep", action="store_true", help="keep the datasets and projects")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_store_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"\n```bash\n.venv/bin/python {' '.join(sys.argv)}\n```\n")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}; load average at the start "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min)\n")  # fmt: skip
    sizes_rows, timings = [], {}
    for n in sizes:
        data, project = work / f"data-{n}", work / f"proj-{n}"
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(project, ignore_errors=True)
        start = time.perf_counter()
        labels = write_dataset(data, n, args.seed)
        generated = time.perf_counter() - start
        scenesift("init", project, work=work)
        imp = scenesift("import", "bdd", labels, "-p", project, work=work)
        from scenesift.store import Store

        with Store.open(project) as store:
            counts = [store.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("drives", "situation_labels", "boxes")]  # fmt: skip
        catalog = (project / "catalog.sqlite").stat().st_size / 2**20
        found, n_fog = queries(project, args.repeats)
        info = min(scenesift("info", "-p", project, work=work).seconds
                   for _ in range(args.repeats))  # fmt: skip
        checked = scenesift("check", "-p", project, work=work)
        timings[n] = {
            "`scenesift info`, end to end (a fresh process)": info,
            **found,
            "`scenesift import bdd`, end to end": imp.seconds,
            "  reading: parse + probe every image": imp.phases.get("read", float("nan")),
            "  writing: one transaction + counts": imp.phases.get("write", float("nan")),
            "`scenesift check` (integrity + recount)": checked.seconds,
        }
        sizes_rows.append(
            f"| {n:,} | {counts[0]:,} | {counts[1]:,} | {counts[2]:,} | {n_fog:,} | "
            f"{labels.stat().st_size / 2**20:,.0f} MiB | {catalog:,.0f} MiB | "
            f"{n / imp.seconds:,.0f} | {imp.peak_gib:.2f} GiB | {generated:.0f} s |"
        )
        print(f"{n:,} frames done: import {imp.seconds:.0f} s, info {info:.2f} s", flush=True)
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)

    print("\n| frames | drives | situation labels | boxes | fog frames | BDD JSON | catalog "
          "| import frames/s | import peak RSS | generating the data |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(sizes_rows))
    head = " | ".join(f"{n:,}" for n in sizes)
    ratios = list(itertools.pairwise(sizes))
    ratio_head = " | ".join(f"{b // 1000:,}k / {a // 1000:,}k" for a, b in ratios)
    print(f"\n| measurement (best of {args.repeats} where repeated) | {head} | {ratio_head} |")
    print("| --- |" + " ---: |" * (len(sizes) + len(ratios)))
    for name in timings[sizes[0]]:
        cells = [_seconds(timings[n][name]) for n in sizes]
        cells += [f"{timings[b][name] / timings[a][name]:.1f}x" for a, b in ratios]
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"\nload average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


def _seconds(t: float) -> str:
    if t < 0.01:
        return f"{t * 1000:.2f} ms"
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:,.1f} s"


if __name__ == "__main__":
    main()
