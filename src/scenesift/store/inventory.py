"""What a project holds besides frames and labels: feature caches and model predictions.

Pure SQL over the catalog (no torch import), so `scenesift info` starts fast.
"""

from __future__ import annotations

import json
from typing import Any

from scenesift.store.project import Store


def feature_caches(store: Store) -> list[dict[str, Any]]:
    """One entry per cache spec in the project: what made it and how many frames it has."""
    out = []
    for fp, n, shards in store.conn.execute(
        "SELECT spec, count(*), count(DISTINCT shard) FROM features GROUP BY spec ORDER BY spec"
    ).fetchall():
        row = store.conn.execute(
            "SELECT a.meta FROM arrays a JOIN features f ON f.shard = a.fingerprint "
            "WHERE f.spec = ? LIMIT 1",
            (fp,),
        ).fetchone()
        spec = json.loads(row[0])["spec"]["cache"] if row else {}
        out.append({"fingerprint": fp, "frames": n, "shards": shards, **spec})
    return out


def model_predictions(store: Store) -> list[dict[str, Any]]:
    """Per model source: frames with situation scores, frames with detections, last write
    (from the running counts of schema V5, not a scan of every prediction)."""
    rows = store.conn.execute(
        "SELECT source, sum(CASE kind WHEN 'situations' THEN frames END), "
        "sum(CASE kind WHEN 'boxes' THEN frames END), max(last) FROM model_writes "
        "WHERE frames > 0 GROUP BY source ORDER BY max(last) DESC, source"
    ).fetchall()
    return [
        {"source": s, "scored_frames": a or 0, "detected_frames": b or 0, "written": t}
        for s, a, b, t in rows
    ]
