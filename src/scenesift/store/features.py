"""The feature cache's index (table ``features``): which shard row holds a frame's features
under a cache spec, and the image signature they were computed from.

Only SQL lives here; what a spec is, when a row is stale and how shards are filled is
:mod:`scenesift.features.cache`'s business.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from scenesift.store.errors import StoreError
from scenesift.store.project import Store

#: (frame id, name, absolute image path): a frame as the feature engines see it.
FramePath = tuple[int, str, str]
#: (shard fingerprint, row in the shard, image signature or None): one index row.
IndexRow = tuple[str, int, str | None]
#: SQLite binds at most 999 parameters; below this many ids one query binds them all.
_BOUND_IDS = 900


def frame_paths(store: Store, names: Sequence[str] | None, split: str | None) -> list[FramePath]:
    """The frames of ``names`` in that order (default: every frame, or one ``split``'s, in
    catalog order); a StoreError lists names the project does not have."""
    sql = (
        "SELECT f.id, f.name, r.path, f.path FROM frames f JOIN drives d ON d.name = f.drive "
        "JOIN image_roots r ON r.id = f.root_id"
    )
    args: list[str] = []
    if split:
        sql += " WHERE d.split = ?"
        args.append(split)
    sql += " ORDER BY f.drive, f.timestamp, f.name"
    rows = [(fid, name, os.path.join(root, rel)) for fid, name, root, rel in
            store.conn.execute(sql, args)]  # fmt: skip
    if names is None:
        return rows
    by_name = {r[1]: r for r in rows}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        where = f" in split {split!r}" if split else ""
        raise StoreError(f"{len(unknown)} frame(s) are not in the project{where}: {shown}{more}")
    return [by_name[n] for n in names]


def index_rows(store: Store, spec_fp: str, ids: Sequence[int]) -> dict[int, IndexRow]:
    """frame id -> its index row under the cache spec ``spec_fp``, for the ``ids`` that
    have one (whether the shard file still exists is not checked here)."""
    wanted = set(ids)
    rows: dict[int, IndexRow] = {}
    if len(wanted) <= _BOUND_IDS:  # one query with the ids bound
        chunk = sorted(wanted)
        if chunk:
            q = (
                "SELECT frame_id, shard, row, image_sig FROM features WHERE spec = ? "
                f"AND frame_id IN ({','.join('?' * len(chunk))})"
            )
            rows.update(
                (fid, (s, r, sig)) for fid, s, r, sig in store.conn.execute(q, (spec_fp, *chunk))
            )
    else:
        for fid, s, r, sig in store.conn.execute(
            "SELECT frame_id, shard, row, image_sig FROM features WHERE spec = ?", (spec_fp,)
        ):
            if fid in wanted:
                rows[fid] = (s, r, sig)
    return rows


def write_shard(
    store: Store,
    spec_fp: str,
    shard_spec: Mapping[str, Any],
    array: np.ndarray,
    ids: Sequence[int],
    sigs: Sequence[str | None],
    kind: str,
) -> str:
    """Store ``array`` (row i: frame ``ids[i]``) as a shard and index its rows under
    ``spec_fp`` in one transaction; returns the shard's fingerprint. The file is written
    first, so a crash leaves at most an unregistered file, never rows pointing at nothing."""
    with store.transaction() as c:
        shard = store.arrays.put(shard_spec, array, kind=kind)  # joins this transaction
        c.executemany(
            "INSERT OR REPLACE INTO features (spec, frame_id, shard, row, image_sig) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (spec_fp, fid, shard, row, sig)
                for row, (fid, sig) in enumerate(zip(ids, sigs, strict=True))
            ],
        )
    return shard
