"""The in-process engine: a DataLoader decodes, the forward pass runs in this process."""

from __future__ import annotations

from collections.abc import Generator, Sequence

from scenesift.features.engine import Batch, Forward
from scenesift.models.backbones import Backbone
from scenesift.models.images import make_loader
from scenesift.store.features import FramePath
from scenesift.ui import steps

#: Processes decoding images beside the forward pass. On 2 cores the forward pass already
#: uses both, and decoding in this process (1.2 ms of ~10 ms per frame) beats workers,
#: which only add contention and IPC (bench_embed.py); use more where cores are spare.
DEFAULT_WORKERS = 0


class LocalEngine:
    """Batches of ``batch_size`` decoded by ``workers`` DataLoader processes (0: here);
    stops at the first unreadable image (:class:`ImageLoadError` naming it)."""

    def __init__(
        self,
        batch_size: int = 32,
        workers: int = DEFAULT_WORKERS,
        progress: bool = True,
        pin_memory: bool = False,
    ) -> None:
        self.batch_size, self.workers, self.progress = batch_size, workers, progress
        self.pin_memory = pin_memory  # for copies to a CUDA GPU

    def compute(
        self, frames: Sequence[FramePath], backbone: Backbone, layer: str, forward: Forward
    ) -> Generator[Batch, None, None]:
        paths = [p for _, _, p in frames]
        loader = make_loader(
            paths, backbone.preprocessing, self.batch_size, self.workers, pin_memory=self.pin_memory
        )
        with steps(f"embedding ({backbone.name}, {layer})", len(frames), self.progress) as step:
            for batch in loader:
                out = forward(batch.images)
                yield [frames[i][0] for i in batch.index.tolist()], out
                step(len(out))
