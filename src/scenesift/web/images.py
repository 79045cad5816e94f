"""Frame images for the browser: the original (only from a registered image root),
thumbnails and class activation map overlays, cached under ``<project>/cache/``.

Cached files are written atomically (temporary file, then rename), so two requests for the
same thumbnail at once both get a whole file. A cache entry is named by the frame and the
image's path and modification time, so a re-imported or edited image gets a fresh one.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from scenesift.files import atomic_write
from scenesift.store.browse import FrameInfo
from scenesift.web.security import resolve_under

CACHE = "cache"
THUMB_WIDTH = 320
#: Only these are ever sent as images (an SVG could carry a script, so it is not one).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/bmp", "image/webp", "image/gif"})


class ImageUnavailable(Exception):
    """The frame's image cannot be served (outside the roots, missing or unreadable)."""


def frame_image(info: FrameInfo, roots: list[str]) -> Path:
    """The real path of a frame's image; only inside its own root, or (through a symlink)
    inside another registered image root."""
    allowed = [os.path.realpath(r) for r in roots]
    if os.path.realpath(info.root) not in allowed:
        raise ImageUnavailable(f"frame {info.id}: its image root is not registered")
    path = resolve_under(info.root, info.path, allowed)
    if path is None:
        raise ImageUnavailable(f"frame {info.id}: image not found under its image root")
    if media_type(path) is None:
        raise ImageUnavailable(f"frame {info.id}: not an image file")
    return path


def media_type(path: Path) -> str | None:
    kind = mimetypes.guess_type(path.name)[0]
    return kind if kind in IMAGE_TYPES else None


def _cache_name(frame_id: int, path: Path, extra: str = "") -> str:
    st = path.stat()
    digest = hashlib.sha256(f"{path}|{st.st_mtime_ns}|{st.st_size}|{extra}".encode()).hexdigest()
    return f"{frame_id}-{digest[:12]}"


def thumbnail(project: Path, frame_id: int, path: Path, width: int = THUMB_WIDTH) -> Path:
    """A JPEG at most ``width`` pixels wide, made on first request and cached."""
    out = Path(project) / CACHE / "thumbs" / f"{_cache_name(frame_id, path, str(width))}.jpg"
    if out.exists():
        return out
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (width, width))  # decode at 1/2..1/8 scale when possible
            im = im.convert("RGB")  # no EXIF rotation: boxes are in stored pixels
            im.thumbnail((width, width * 4), Image.Resampling.BILINEAR)
            with atomic_write(out, "wb") as f:
                im.save(f, "JPEG", quality=82)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageUnavailable(f"frame {frame_id}: cannot read its image ({e})") from None
    return out


# ------------------------------------------------------------------------------ CAMs
_TAGGER_LOCK = threading.Lock()
_TAGGERS: dict[tuple[str, int], object] = {}


def tagger_checkpoint(project: Path) -> Path | None:
    """The project's latest tagger checkpoint, or None (no torch import needed)."""
    pointer = Path(project) / "models" / "tagger" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    return path if path.is_file() else None


def _load_tagger(store, checkpoint: Path):
    key = (str(checkpoint), checkpoint.stat().st_mtime_ns)
    with _TAGGER_LOCK:
        if key not in _TAGGERS:
            from scenesift.pipelines import tagger as pipe  # lazy: imports torch

            _TAGGERS.clear()
            _TAGGERS[key] = pipe.load(store, checkpoint)[0]
        return _TAGGERS[key]


def cam_overlay(store, frame_id: int, image: Path, situation: str) -> Path:
    """A transparent PNG the size of the image: where the latest tagger sees
    ``situation`` (sigmoid of the per-pixel logits, inferno colours). Cached per tagger."""
    checkpoint = tagger_checkpoint(store.root)
    if checkpoint is None:
        raise ImageUnavailable("no tagger checkpoint in this project")
    name = _cache_name(frame_id, image, f"{checkpoint.name}|{situation}")
    out = store.root / CACHE / "cam" / f"{name}.png"
    if out.exists():
        return out
    tagger = _load_tagger(store, checkpoint)
    if situation not in tagger.situations:
        raise ImageUnavailable(f"the tagger does not predict {situation!r}")
    with _TAGGER_LOCK:  # one forward pass at a time: two cores are shared with the server
        rgba = _cam_rgba(tagger, image, tagger.situations.index(situation))
    with atomic_write(out, "wb") as f:
        Image.fromarray(rgba, "RGBA").save(f, "PNG", optimize=True)
    return out


def _cam_rgba(tagger, image: Path, channel: int) -> np.ndarray:
    import torch
    from matplotlib import colormaps

    from scenesift.models.images import ImageLoadError, make_loader

    pre = tagger.net.backbone.preprocessing
    try:
        with Image.open(image) as im:
            size = im.size  # (W, H)
        [batch] = list(make_loader([image], pre, batch_size=1))
    except (OSError, SyntaxError, ValueError, ImageLoadError) as e:
        raise ImageUnavailable(f"cannot read {image.name} ({e})") from None
    logits = tagger.cam(batch.images)[0, channel]  # (h, w)
    # Where the network input sits in the original image (stretch: all of it).
    box = (0, 0, size[0], size[1])
    if pre.resize == "center_crop":
        h, w = pre.size
        scale = max(w / size[0], h / size[1])
        cw, ch = w / scale, h / scale
        left, top = (size[0] - cw) / 2, (size[1] - ch) / 2
        box = (round(left), round(top), round(left + cw), round(top + ch))
    heat = torch.sigmoid(torch.from_numpy(np.ascontiguousarray(logits)))[None, None]
    heat = torch.nn.functional.interpolate(
        heat.float(), size=(box[3] - box[1], box[2] - box[0]), mode="bilinear"
    )[0, 0].numpy()
    colours = (colormaps["inferno"](heat)[..., :3] * 255).astype(np.uint8)
    alpha = (255 * (0.15 + 0.6 * heat)).astype(np.uint8)
    out = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    out[box[1] : box[3], box[0] : box[2], :3] = colours
    out[box[1] : box[3], box[0] : box[2], 3] = alpha
    return out
