"""Frame-level vs drive-level bootstrap intervals on a 10 Hz world with long drives.

    .venv/bin/python benchmarks/bench_drive_intervals.py --frames 800 --out /tmp/drive_iv

Synthesizes a small world whose drives are 30-60 frames at 10 Hz (consecutive frames nearly
the same picture), imports it with its labels, trains the frozen tagger and the frozen
detector briefly, and evaluates both on the test split twice: resampling frames as if they
were independent (what every interval did before) and resampling drives (all frames of each
drawn drive). Prints, per situation and per class, the test drives behind the number, the
point estimate and both 95% interval widths, as markdown for BENCHMARKS.md.

``--reuse`` re-evaluates the project and models an earlier run left in ``--out`` (features
cached), without generating or training again.

The models are deliberately short-trained: the subject is the width of the intervals around
whatever they score, not the scores.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from scenesift.features.memory import keep_freed_memory
from scenesift.io.formats import read_dataset
from scenesift.metrics.bootstrap import drives_text
from scenesift.metrics.detection import evaluate_detection
from scenesift.metrics.tagging import drives_cell, evaluate_tagging
from scenesift.models.detector import DetectorConfig
from scenesift.models.tagger import TaggerConfig, label_matrix
from scenesift.pipelines import detector as det_pipe
from scenesift.pipelines import tagger as tag_pipe
from scenesift.store import Store
from scenesift.synth import WorldConfig, generate

WORLD = """# 10 Hz, long drives: the setting where frame-level intervals mislead
[image]
width = 320
height = 192

[drive]
min_frames = 30
max_frames = 60
frame_interval_ms = 100
"""


def width(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"{high - low:.3f}"


def ratio(a: tuple, b: tuple) -> str:
    if None in a or None in b or a[1] - a[0] <= 0:
        return "-"
    return f"{(b[1] - b[0]) / (a[1] - a[0]):.1f}x"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=800)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_drive_intervals"))
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--detector-epochs", type=int, default=4)
    ap.add_argument("--reuse", action="store_true", help="Re-evaluate an earlier run's models.")
    args = ap.parse_args()
    keep_freed_memory()
    started = time.perf_counter()

    if args.reuse:
        store = Store.open(args.out / "project")
    else:
        if args.out.exists():
            shutil.rmtree(args.out)
        args.out.mkdir(parents=True)
        (args.out / "world.toml").write_text(WORLD)
        generate(
            args.out / "world", args.frames, seed=args.seed,
            config=WorldConfig.from_toml(args.out / "world.toml"), progress=False,
        )  # fmt: skip
        store = Store.init(args.out / "project")
        batch = read_dataset("bdd", args.out / "world" / "labels.json", store.taxonomy)
        store.ingest(batch, label_source="import")
    splits = dict(
        store.conn.execute("SELECT split, count(*) FROM drives GROUP BY split").fetchall()
    )
    n_frames = store.conn.execute("SELECT count(*) FROM frames").fetchone()[0]
    print(
        f"World: {n_frames} frames in {sum(splits.values())} drives at 10 Hz "
        f"(drives per split: {splits}); setup {time.perf_counter() - started:.0f} s"
    )

    # -- tagger --------------------------------------------------------------------------
    t0 = time.perf_counter()
    if args.reuse:
        tagger, _ = tag_pipe.load(store)
    else:
        cfg = TaggerConfig(schedule="frozen", epochs=1)
        tagger, _ = tag_pipe.train(store, cfg, progress=False)
    records = tag_pipe.with_truth(store, "test")
    y, m = label_matrix(records, tagger.situations)
    scores = tag_pipe.scores(store, tagger, records, progress=False)
    drives = [r.drive for r in records]
    by_drive = evaluate_tagging(y, scores, m.astype(bool), tagger.situations, drives=drives)
    by_frame = evaluate_tagging(y, scores, m.astype(bool), tagger.situations)
    ci_d, ci_f = by_drive.ci(n_boot=args.boot), by_frame.ci(n_boot=args.boot)
    print(f"\nTagger (frozen, {time.perf_counter() - t0:.0f} s), test split: "
          f"{len(records)} frames in {len(set(drives))} drives\n")  # fmt: skip
    print("| situation | positive frames | drives +/- | ROC-AUC | 95% width, frames | "
          "95% width, drives | ratio |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in by_drive.labels:
        if not r.defined:
            print(f"| {r.situation} | {r.positives} | {drives_cell(r)} | undefined "
                  f"({r.short_reason}) | | | |")  # fmt: skip
            continue
        f, d = ci_f[r.situation], ci_d[r.situation]
        print(f"| {r.situation} | {r.positives} | {drives_cell(r)} | {r.roc_auc:.3f} | "
              f"{width(f.low, f.high)} | {width(d.low, d.high)} | "
              f"{ratio((f.low, f.high), (d.low, d.high))} |")  # fmt: skip

    # -- detector ------------------------------------------------------------------------
    t0 = time.perf_counter()
    cfg = DetectorConfig(mode="frozen", epochs=args.detector_epochs)
    if args.reuse:
        detector, _ = det_pipe.load(store)
    else:
        detector, _ = det_pipe.train(store, cfg, progress=False)
    gt = det_pipe.with_truth(store, "test")
    predictions = detector.predict(gt, store=store, progress=False)
    classes = store.taxonomy.classes
    d_res = evaluate_detection(gt, predictions, classes, n_boot=args.boot)
    f_res = evaluate_detection(gt, predictions, classes, n_boot=args.boot, unit="frame")
    print(f"\nDetector (frozen, {args.detector_epochs} epochs, "
          f"{time.perf_counter() - t0:.0f} s), test split: {d_res.n_images} images in "
          f"{d_res.n_drives} drives\n")  # fmt: skip
    print("| class | objects | drives | AP@0.5 | 95% width, frames | 95% width, drives | "
          "ratio |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in [*classes, "all"]:
        d, f = d_res.get("AP50", c), f_res.get("AP50", c)
        name = "mean" if c == "all" else c
        if d.value is None:
            print(f"| {name} | {d.n_instances} | {drives_text(d.n_drives)} | undefined | | | |")
            continue
        fw = (None, None) if f.ci is None else f.ci
        dw = (None, None) if d.ci is None else d.ci
        print(f"| {name} | {d.n_instances} | {drives_text(d.n_drives)} | {d.value:.3f} | "
              f"{width(*fw)} | {width(*dw)} | {ratio(fw, dw)} |")  # fmt: skip
    widths = [
        (ci_d[s].high - ci_d[s].low) / (ci_f[s].high - ci_f[s].low)
        for s in tagger.situations
        if ci_d[s].low is not None and ci_f[s].low is not None and ci_f[s].high > ci_f[s].low
    ]
    print(f"\nMedian drive/frame width ratio over defined situations: "
          f"{np.median(widths):.1f}x; total {time.perf_counter() - started:.0f} s")  # fmt: skip
    store.close()


if __name__ == "__main__":
    main()
