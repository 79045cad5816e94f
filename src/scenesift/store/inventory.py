"""What a project holds besides frames and labels: feature caches and model predictions.

Pure SQL over the catalog (no torch import), so `scenesift info` starts fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from scenesift.records import Box
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


def frames_per_state(store: Store) -> dict[str, int]:
    """Frames per label state (unlabelled / selected / labelled)."""
    return dict(store.conn.execute("SELECT state, count(*) FROM frames GROUP BY state").fetchall())


def frame_ids(store: Store) -> dict[str, int]:
    """Frame name -> catalog id, for callers that hold records and need ids."""
    return dict(store.conn.execute("SELECT name, id FROM frames").fetchall())


def situation_label_count(store: Store, source: str) -> int:
    """How many situation labels ``source`` wrote: 0 means a model never stored scores."""
    return store.conn.execute(
        "SELECT count(*) FROM situation_labels WHERE source = ?", (source,)
    ).fetchone()[0]


def model_boxes(
    store: Store,
    source: str,
    frame_ids: Sequence[int],
    min_score: float = 0.0,
    cap: int | None = None,
) -> dict[int, list[Box]] | None:
    """A model's stored boxes per frame id (best first; ``min_score`` and at most ``cap``
    per frame), or None when it stored none for these frames. Reads the given frames only:
    ``Store.records(predictions=...)`` reads the model's boxes on every frame."""
    ids = ",".join(str(int(i)) for i in frame_ids) or "NULL"
    have = {
        r[0]
        for r in store.conn.execute(
            f"SELECT frame_id FROM box_sets WHERE source = ? AND frame_id IN ({ids})", (source,)
        )
    }
    if not have:
        return None
    out: dict[int, list[Box]] = {i: [] for i in have}
    for fid, cat, x1, y1, x2, y2, score in store.conn.execute(
        f"SELECT frame_id, category, x1, y1, x2, y2, score FROM boxes "
        f"WHERE source = ? AND frame_id IN ({ids}) ORDER BY score DESC",
        (source,),
    ):
        if (score or 0.0) >= min_score and (cap is None or len(out[fid]) < cap):
            out[fid].append(Box(cat, x1, y1, x2, y2, score=score))
    return out
