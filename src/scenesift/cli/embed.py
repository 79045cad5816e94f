"""``scenesift embed``: backbone features into the feature cache."""

from __future__ import annotations

from pathlib import Path

import typer

from scenesift import tables
from scenesift.cli.app import app
from scenesift.cli.common import (
    BACKBONE,
    DEVICE,
    ENGINE,
    PROJECT,
    RAY_ADDRESS,
    RAY_WORKERS,
    RUNTIME,
    fast_inference,
    parse_size,
)
from scenesift.store import Store
from scenesift.ui import console


@app.command()
def embed(
    project: Path = PROJECT,
    backbone: str | None = BACKBONE,
    layer: str = typer.Option(
        "pooled",
        help="pooled: one vector per frame; map: the stride-32 feature map; pyramid: the "
        "stride-8/16/32 maps; pyramid4: the stride-4/8/16/32 maps; trunk:K: the output "
        "below the top K block groups (float16).",
    ),
    split: str | None = typer.Option(None, help="Only this split (train, val or test)."),
    input_size: str | None = typer.Option(
        None, help="Network input HxW, multiples of 32 (default: the backbone's, 192x320)."
    ),
    batch_size: int = typer.Option(32, min=1, help="Frames per forward pass."),
    workers: int = typer.Option(
        0, min=0, help="Processes decoding images (0: this one; best on 2 cores)."
    ),
    engine: str = ENGINE,
    ray_address: str | None = RAY_ADDRESS,
    ray_workers: int = RAY_WORKERS,
    runtime: str = RUNTIME,
    device: str = DEVICE,
) -> None:
    """Compute backbone features for the project's frames into the feature cache.

    Frames already cached for this backbone, weights, preprocessing and layer are not
    computed again; the cache is keyed by the fingerprint printed at the end. With
    --engine ray they are computed by Ray Data (a local Ray, or --ray-address's cluster)."""
    from scenesift.features import embed as embed_frames
    from scenesift.models.backbones import DEFAULT_BACKBONE, at_input_size, get_backbone

    fast_inference()
    with Store.open(project) as store:
        model = at_input_size(get_backbone(backbone or DEFAULT_BACKBONE), parse_size(input_size))
        result = embed_frames(
            store, model, layer=layer, split=split, batch_size=batch_size, workers=workers,
            engine=engine, ray_address=ray_address, ray_workers=ray_workers, runtime=runtime,
            device=device,
        )  # fmt: skip
    console.print(tables.embedded(result, model, layer))
