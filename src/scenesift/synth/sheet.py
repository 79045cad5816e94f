"""A contact sheet: one image showing a world's range of situations with its boxes drawn, so a
person can judge at a glance whether the data looks like driving and the labels fit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASS_COLORS = {
    "car": (0, 200, 255),
    "truck": (255, 160, 0),
    "pedestrian": (255, 40, 200),
    "cyclist": (120, 255, 80),
    "golf_cart": (255, 255, 0),
    "traffic_cone": (255, 255, 255),
}
#: What a sheet tries to show, in this order: (caption, predicate on a frame record).
WANTED = (
    ("day", lambda r: r["attributes"]["timeofday"] == "daytime"),
    ("dusk", lambda r: r["attributes"]["timeofday"] == "dawn/dusk"),
    ("night", lambda r: r["attributes"]["timeofday"] == "night"),
    ("night city", lambda r: r["attributes"]["timeofday"] == "night"
     and r["attributes"]["scene"] == "city street"),
    ("rain", lambda r: r["attributes"]["weather"] == "rainy"),
    ("fog", lambda r: r["attributes"]["weather"] == "foggy"),
    ("snow", lambda r: r["attributes"]["weather"] == "snowy"),
    ("tunnel", lambda r: r["attributes"]["scene"] == "tunnel"),
    ("roadworks", lambda r: r["attributes"]["roadworks"]),
    ("crowded", lambda r: r["attributes"]["crowded"]),
    ("golf cart", lambda r: any(lb["category"] == "golf_cart" for lb in r["labels"])),
    ("highway", lambda r: r["attributes"]["scene"] == "highway"),
    ("residential", lambda r: r["attributes"]["scene"] == "residential"),
    ("city", lambda r: r["attributes"]["scene"] == "city street"),
    ("pedestrian", lambda r: r["attributes"]["pedestrian_present"]),
    ("cyclist", lambda r: any(lb["category"] == "cyclist" for lb in r["labels"])),
    ("truck", lambda r: any(lb["category"] == "truck" for lb in r["labels"])),
    ("close", lambda r: r["attributes"]["close_participant"]),
    ("far", lambda r: r["attributes"]["far_participant"]),
)  # fmt: skip

Frame = tuple[np.ndarray | Path | str, dict]


def contact_sheet(
    source: Path | str | Sequence[Frame],
    path: Path | str,
    cols: int = 4,
    rows: int = 6,
    boxes: bool = True,
) -> Path:
    """Write a grid of frames with boxes and captions to ``path`` (PNG).

    ``source`` is a generated world's folder (frames are picked to cover its situations) or
    a sequence of ``(image or image path, Scalabel frame record)``.
    """
    if isinstance(source, str | Path):
        frames = _pick_frames(Path(source), cols * rows)
    else:
        frames = list(source)[: cols * rows]
    if not frames:
        raise ValueError("contact_sheet: no frames to show")
    tiles = [_tile(img, rec, boxes) for img, rec in frames]
    tw, th = tiles[0].size
    sheet = Image.new("RGB", (cols * tw, rows * th), (20, 20, 20))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % cols) * tw, (i // cols) * th))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _pick_frames(folder: Path, n: int) -> list[Frame]:
    records = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    by_drive: dict[str, list[dict]] = {}
    for r in records:
        by_drive.setdefault(r["videoName"], []).append(r)
    used_drives: set[str] = set()
    chosen: list[tuple[str, dict]] = []
    for caption, pred in WANTED:
        best = None
        for drive, recs in by_drive.items():
            if drive in used_drives:
                continue
            hits = [r for r in recs if pred(r)]
            if hits:
                r = max(hits, key=lambda r: (len(r["labels"]), -r["frameIndex"]))
                best = (drive, r)
                break
        if best:
            used_drives.add(best[0])
            chosen.append((caption, best[1]))
        if len(chosen) >= n:
            break
    for drive, recs in by_drive.items():  # fill with further drives, in order
        if len(chosen) >= n:
            break
        if drive not in used_drives:
            used_drives.add(drive)
            chosen.append(("", recs[len(recs) // 2]))
    return [(folder / "images" / r["name"], {**r, "_caption": cap}) for cap, r in chosen]


def _tile(img: np.ndarray | Path | str, rec: dict, boxes: bool) -> Image.Image:
    im = Image.fromarray(img) if isinstance(img, np.ndarray) else Image.open(img).convert("RGB")
    im = im.copy()
    draw = ImageDraw.Draw(im)
    if boxes:
        for lb in rec.get("labels", []):
            b = lb["box2d"]
            color = CLASS_COLORS.get(lb["category"], (255, 255, 255))
            dashed = lb.get("attributes", {}).get("occluded", False)
            draw.rectangle([b["x1"], b["y1"], b["x2"] - 1, b["y2"] - 1], outline=color)
            if dashed:
                draw.point([(b["x1"], b["y1"])], fill=(255, 255, 255))
    a = rec.get("attributes", {})
    flags = [k for k in ("roadworks", "close_participant", "far_participant",
                         "pedestrian_present", "crowded") if a.get(k)]  # fmt: skip
    short = {"close_participant": "close", "far_participant": "far",
             "pedestrian_present": "ped", "roadworks": "works", "crowded": "crowded"}  # fmt: skip
    text = " ".join(
        [
            rec.get("_caption", "") + ":" if rec.get("_caption") else "",
            a.get("timeofday", ""),
            a.get("weather", ""),
            a.get("scene", ""),
            *(short[f] for f in flags),
        ]
    ).strip()
    draw.rectangle([0, 0, im.width, 11], fill=(0, 0, 0))
    draw.text((2, 0), text[:60], fill=(255, 255, 255))
    draw.text((2, im.height - 11), rec.get("name", ""), fill=(255, 255, 255))
    return im
