"""Frames to network inputs: decode (PIL), resize, normalise, batch: in DataLoader workers.

Decoding overlaps with the forward pass when workers > 0. Batches come out
``channels_last`` without a copy (the pixels are HWC already), and are normalised in one
vectorised pass per batch, written straight into shared memory when built in a worker, so
handing a batch to the main process copies nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, get_worker_info

from scenesift.errors import ScenesiftError
from scenesift.io.common import MAX_IMAGE_PIXELS
from scenesift.models.backbones import Preprocessing


class ImageLoadError(ScenesiftError, RuntimeError):
    """An image is missing or cannot be decoded; the message names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {path}: {reason}")

    def __reduce__(self):  # picklable although __init__ takes two arguments
        return (type(self), (self.path, self.reason))


def load_pixels(path: str | Path, pre: Preprocessing) -> np.ndarray:
    """Decode ``path`` to RGB uint8 (H, W, 3) at ``pre.size``; ImageLoadError on failure.

    Whatever decodes is converted: grey, palette, CMYK, alpha (dropped), 16-bit (scaled,
    not clipped). An image of more than ``MAX_IMAGE_PIXELS`` pixels is refused before it
    is decoded, whatever its header claims.
    """
    height, width = pre.size
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ImageLoadError(path, f"absurd dimensions {im.width}x{im.height}")
            target = _cover_size(im.size, (width, height), pre.resize)
            if im.format == "JPEG":
                im.draft("RGB", target)  # DCT-domain downscale: decodes 1/2..1/8 the pixels
            im = to_rgb8(im)
            if im.size != target:
                im = im.resize(target, Image.Resampling.BILINEAR, reducing_gap=3.0)
            if target != (width, height):  # center_crop
                left, top = (target[0] - width) // 2, (target[1] - height) // 2
                im = im.crop((left, top, left + width, top + height))
            return np.asarray(im, dtype=np.uint8)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(path, "no such file") from None
    except Image.DecompressionBombError as e:  # the header claims billions of pixels
        raise ImageLoadError(path, f"absurd dimensions ({e})") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ... on bad data
        raise ImageLoadError(path, f"{type(e).__name__}: {e}") from e


def to_rgb8(im: Image.Image) -> Image.Image:
    """Any decodable image as 8-bit RGB. 16-bit grey (``I;16*``, and ``I`` as PNG decodes
    it) keeps its high byte, where PIL's own conversion would clip everything above 255 to
    white; float grey is clipped to 0..255; the rest (grey, palette, CMYK, YCbCr, alpha,
    which is dropped) goes through PIL's conversion."""
    if im.mode.startswith("I;16"):
        high = np.asarray(im).astype(np.uint16) >> 8  # astype: big-endian I;16B to native
        im = Image.fromarray(high.astype(np.uint8), "L")
    elif im.mode == "I":
        high = np.clip(np.asarray(im), 0, 65535) >> 8
        im = Image.fromarray(high.astype(np.uint8), "L")
    elif im.mode == "F":
        im = Image.fromarray(np.clip(np.asarray(im), 0, 255).astype(np.uint8), "L")
    return im.convert("RGB")


def _cover_size(size: tuple[int, int], want: tuple[int, int], mode: str) -> tuple[int, int]:
    """(W, H) to resize to: exactly ``want`` (stretch) or the smallest cover (center_crop)."""
    if mode == "stretch":
        return want
    scale = max(want[0] / size[0], want[1] / size[1])
    return (max(want[0], round(size[0] * scale)), max(want[1], round(size[1] * scale)))


def normalise(pixels: np.ndarray, pre: Preprocessing, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (..., H, W, 3) -> float32 ``(x / 255 - mean) / std``, in two vectorised passes."""
    scale = (1.0 / (255.0 * np.asarray(pre.std, dtype=np.float64))).astype(np.float32)
    bias = (-np.asarray(pre.mean, dtype=np.float64) / np.asarray(pre.std)).astype(np.float32)
    out = np.multiply(pixels, scale, out=out, dtype=np.float32)
    out += bias
    return out


class FrameImages(Dataset):
    """Images at ``paths`` as normalised float32 tensors (3, H, W) of ``preprocessing``."""

    def __init__(self, paths: Sequence[str | Path], preprocessing: Preprocessing) -> None:
        self.paths = [str(p) for p in paths]
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        pixels = load_pixels(self.paths[i], self.preprocessing)
        return torch.from_numpy(normalise(pixels, self.preprocessing)).permute(2, 0, 1)


@dataclass
class ImageBatch:
    """Positions (into the path list) and images (N, 3, H, W); unreadable ones in ``errors``."""

    index: torch.Tensor
    images: torch.Tensor
    errors: list[tuple[int, str]] = field(default_factory=list)

    def pin_memory(self) -> ImageBatch:
        """Called by the DataLoader's pinning thread (``pin_memory=True``)."""
        return ImageBatch(self.index.pin_memory(), self.images.pin_memory(), self.errors)


class _Pixels(Dataset):
    """Raw pixels or the error message: errors travel as text and are raised in the main
    process with the file name, not wrapped in a worker traceback."""

    def __init__(self, frames: FrameImages) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, load_pixels(self.frames.paths[i], self.frames.preprocessing), None
        except ImageLoadError as e:
            return i, None, e.reason


def _collate(
    items: list[tuple[int, np.ndarray | None, str | None]],
    pre: Preprocessing,
    channels_last: bool,
) -> ImageBatch:
    good = [(i, px) for i, px, err in items if px is not None]
    errors = [(i, err or "unreadable") for i, px, err in items if px is None]
    h, w = pre.size
    images = torch.empty((len(good), h, w, 3), dtype=torch.float32)
    if get_worker_info() is not None:  # the main process then receives it without a copy
        images.share_memory_()
    if good:
        normalise(np.stack([px for _, px in good]), pre, out=images.numpy())
    images = images.permute(0, 3, 1, 2)  # NHWC memory seen as NCHW: channels_last
    if not channels_last:
        images = images.contiguous()
    index = torch.tensor([i for i, _ in good], dtype=torch.long)
    return ImageBatch(index, images, errors)


class FrameLoader(DataLoader):
    """A DataLoader of :class:`ImageBatch` that raises :class:`ImageLoadError` naming the
    first unreadable file."""

    def __iter__(self):
        paths = self.dataset.frames.paths
        for batch in super().__iter__():
            if batch.errors:
                i, reason = batch.errors[0]
                raise ImageLoadError(paths[i], reason)
            yield batch


def make_loader(
    paths: Sequence[str | Path],
    preprocessing: Preprocessing,
    batch_size: int = 32,
    workers: int = 0,
    channels_last: bool = True,
    pin_memory: bool = False,
) -> FrameLoader:
    """Batches of the images at ``paths`` in order, decoded by ``workers`` processes
    (0: in this process); ``pin_memory`` for copies to a CUDA GPU."""
    if batch_size < 1 or workers < 0:
        raise ValueError("batch_size must be >= 1 and workers >= 0")
    return FrameLoader(
        _Pixels(FrameImages(paths, preprocessing)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=partial(_collate, pre=preprocessing, channels_last=channels_last),
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )
