"""Tiny image and record builders shared by the format tests (plain functions, no fixtures)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from scenesift.records import Box, FrameRecord

WIDTH, HEIGHT = 64, 48


def write_image(path: Path, size: tuple[int, int] = (WIDTH, HEIGHT), seed: int = 0) -> Path:
    """A small noisy image (noise keeps JPEGs big enough to cut in half); format from suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_truncated_jpeg(path: Path) -> Path:
    """A JPEG cut in half: its header is fine, decoding it fails."""
    write_image(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def box(category: str, x1: float, y1: float, x2: float, y2: float, **kw) -> Box:
    return Box(category, float(x1), float(y1), float(x2), float(y2), **kw)


def frame(root: Path, name: str, **kw) -> FrameRecord:
    """A record for an image that exists under ``root`` (written if needed)."""
    path = root / name
    if not path.exists():
        write_image(path, seed=len(name))
    kw.setdefault("drive", name)
    kw.setdefault("width", WIDTH)
    kw.setdefault("height", HEIGHT)
    return FrameRecord(name=name, path=path, **kw)


def same_box(a: Box, b: Box, tol: float = 1e-3) -> bool:
    coords = zip((a.x1, a.y1, a.x2, a.y2), (b.x1, b.y1, b.x2, b.y2), strict=True)
    return a.category == b.category and all(math.isclose(u, v, abs_tol=tol) for u, v in coords)


def same_boxes(a: list[Box] | None, b: list[Box] | None, tol: float = 1e-3) -> bool:
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(same_box(u, v, tol) for u, v in zip(a, b, strict=True))
