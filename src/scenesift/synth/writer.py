"""Writing a world to disk: JPEG frames per drive, BDD100K/Scalabel ``labels.json``, and the
``world.toml`` that re-makes it. Drives are independent, so they render in any process and
the output is byte-identical whatever the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from scenesift.errors import ConfigError
from scenesift.files import atomic_write
from scenesift.synth.config import WorldConfig
from scenesift.synth.render import Label, frame_attributes, render_frame, situations_of
from scenesift.synth.world import CLASSES, FrameState, drive_length, drive_name, simulate_drive
from scenesift.ui import steps

#: Random stream of per-frame sensor noise; distinct from the drive's world streams.
_STREAM_RENDER = 7
_PREFIX = re.compile(r"[A-Za-z0-9_-]*")
LABELS_FILE = "labels.json"
CONFIG_FILE = "world.toml"
IMAGES_DIR = "images"


@dataclass
class SynthSummary:
    """What a generated world contains, for logs, docs and benchmarks."""

    out_dir: Path
    n_frames: int
    n_drives: int
    situations: dict[str, int] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def rare_situations(self, below: int = 100) -> list[str]:
        return [k for k, v in self.situations.items() if v < below]


def frame_rng(seed: int, drive_index: int, frame_index: int) -> np.random.Generator:
    """The noise generator of one frame: a pure function of its position in the world."""
    return np.random.default_rng([seed, drive_index, frame_index, _STREAM_RENDER])


def frame_record(state: FrameState, labels: list[Label]) -> dict[str, Any]:
    """One Scalabel frame object (see the module doc of ``scenesift.io.bdd``)."""
    s = state.settings
    return {
        "name": f"{state.drive}/{state.frame_index:06d}.jpg",
        "videoName": state.drive,
        "frameIndex": state.frame_index,
        "timestamp": state.timestamp_ms,
        "attributes": frame_attributes(state, labels),
        "labels": [
            {
                "id": f"{state.drive}/{lb.track}",
                "category": lb.category,
                "attributes": {
                    "occluded": lb.occlusion > s.flag_threshold,
                    "truncated": lb.truncation > s.flag_threshold,
                    "occlusion": lb.occlusion,
                    "truncation": lb.truncation,
                    "distance": lb.distance,
                },
                "box2d": dict(zip(("x1", "y1", "x2", "y2"), lb.box, strict=True)),
            }
            for lb in labels
        ],
    }


def drive_plan_lengths(cfg: WorldConfig, seed: int, n_frames: int) -> list[int]:
    """Frames per drive: drives are added until ``n_frames``; the last one is cut short."""
    lengths: list[int] = []
    total = 0
    while total < n_frames:
        n = min(drive_length(cfg, seed, len(lengths)), n_frames - total)
        lengths.append(n)
        total += n
    return lengths


def _render_drive(
    task: tuple[WorldConfig, int, int, int, str, str],
) -> tuple[list[dict], Counter]:
    cfg, seed, index, n_frames, out, prefix = task
    drive = prefix + drive_name(index)
    folder = Path(out) / IMAGES_DIR / drive
    folder.mkdir(parents=True, exist_ok=True)
    records, counts = [], Counter()
    for state in simulate_drive(cfg, seed, index, n_frames):
        img, labels = render_frame(state, frame_rng(seed, index, state.frame_index))
        state = replace(state, drive=drive)
        Image.fromarray(img).save(folder / f"{state.frame_index:06d}.jpg", quality=cfg.jpeg_quality)
        records.append(frame_record(state, labels))
        counts.update(k for k, v in situations_of(state, labels).items() if v)
        counts.update(f"class:{lb.category}" for lb in labels)
    return records, counts


def generate(
    out_dir: Path | str,
    n_frames: int,
    seed: int = 0,
    config: WorldConfig | None = None,
    workers: int = 1,
    progress: bool = True,
    drive_prefix: str = "",
) -> SynthSummary:
    """Write a world of ``n_frames`` frames to ``out_dir``; existing files are overwritten.

    The same (config, seed, n_frames) gives byte-identical files for any ``workers``.
    ``drive_prefix`` goes before every drive (and so frame) name: a second world, such as
    a separate evaluation world, can then join a project without its names colliding.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if not _PREFIX.fullmatch(drive_prefix):
        raise ConfigError(f"drive_prefix must be letters, digits, '_' or '-', got {drive_prefix!r}")
    cfg = config if config is not None else WorldConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with atomic_write(out / CONFIG_FILE) as f:
        generation = {"seed": seed, "n_frames": n_frames}
        if drive_prefix:
            generation["drive_prefix"] = drive_prefix
        f.write(cfg.to_toml(generation))
    lengths = drive_plan_lengths(cfg, seed, n_frames)
    tasks = [(cfg, seed, i, n, str(out), drive_prefix) for i, n in enumerate(lengths)]
    records: list[dict] = []
    counts: Counter = Counter()
    with steps("synth world", n_frames, progress) as advance:
        for recs, cnt in _map(tasks, workers):
            records += recs
            counts += cnt
            advance(len(recs))
    text = "[\n" + ",\n".join(json.dumps(r, separators=(", ", ": ")) for r in records) + "\n]\n"
    with atomic_write(out / LABELS_FILE) as f:
        f.write(text)
    situations = _situation_names()
    return SynthSummary(
        out_dir=out,
        n_frames=len(records),
        n_drives=len(lengths),
        situations={k: counts.get(k, 0) for k in situations},
        classes={c: counts.get(f"class:{c}", 0) for c in CLASSES},
        seconds=time.perf_counter() - start,
    )


def _situation_names() -> list[str]:
    from scenesift.taxonomy import default_taxonomy

    return default_taxonomy().names


def _map(tasks: list, workers: int):
    if workers <= 1 or len(tasks) <= 1:
        yield from map(_render_drive, tasks)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(tasks))) as pool:
        yield from pool.imap(_render_drive, tasks, chunksize=1)
