"""What an engine is: a way to run the forward pass over frames the cache lacks.

The dispatcher (:func:`scenesift.features.embed`) owns the cache: it decides which frames
are missing, takes their image signatures and registers every row an engine yields. An
engine only turns frames into rows, so a new one (another cluster, another accelerator)
needs no catalog code, and every engine fills the same cache.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Protocol

import numpy as np
import torch

from scenesift.models.backbones import Backbone
from scenesift.models.images import ImageLoadError
from scenesift.store.features import FramePath

#: images (N, 3, H, W), normalised -> the cached rows of the layer (N, ...), as numpy.
Forward = Callable[[torch.Tensor], np.ndarray]
#: (frame ids, their rows): one piece of an engine's output, in any order and size.
Batch = tuple[Sequence[int], np.ndarray]


class Engine(Protocol):
    def compute(
        self, frames: Sequence[FramePath], backbone: Backbone, layer: str, forward: Forward
    ) -> Generator[Batch, None, None]:
        """Yield the rows of ``frames`` (``forward`` of their images, preprocessed as
        ``backbone.preprocessing`` says; ``backbone`` and ``layer`` name the work).

        An unreadable image raises :class:`ImageLoadError`: raised mid-way, the rows of the
        shard being filled are dropped; raised as :class:`ImagesSkipped` after every
        readable frame was yielded, those rows are all cached first."""
        ...


class ImagesSkipped(ImageLoadError):
    """Images that could not be read, reported after the engine yielded every other frame
    (so a re-run computes only them); names the first one."""
