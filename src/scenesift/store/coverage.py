"""Coverage: how many frames we have, labelled and not, for every situation and class.

This is the data lead's first question ("which situations are we short of?"), so it is
answered by SQL over the catalog, not by loading frames into Python.
"""

from __future__ import annotations

from dataclasses import dataclass

from scenesift.store.project import Store

_TRUTH_RANK = "CASE {col} WHEN 'human' THEN 0 WHEN 'import' THEN 1 ELSE 2 END"


@dataclass(frozen=True)
class CoverageRow:
    """One situation or class. ``labelled`` counts labelled frames where it is present;
    ``known`` counts labelled frames where it was labelled at all (present or absent);
    ``hidden`` counts unlabelled frames whose held-back (oracle) truth has it;
    ``predicted`` counts unlabelled frames where the latest model predicts it (None: no
    model has predicted yet); ``boxes`` counts boxes in labelled frames (classes only)."""

    kind: str  # "situation" or "class"
    name: str
    group: str | None
    labelled: int
    known: int
    hidden: int
    predicted: int | None
    boxes: int | None = None


@dataclass(frozen=True)
class Coverage:
    frames: int
    labelled_frames: int
    unlabelled_frames: int
    model_source: str | None
    rows: list[CoverageRow]


def latest_model_source(store: Store) -> str | None:
    row = store.conn.execute(
        "SELECT source FROM situation_labels WHERE source LIKE 'model:%' "
        "ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def coverage(store: Store) -> Coverage:
    c = store.conn
    tax = store.taxonomy
    states = dict(c.execute("SELECT state, count(*) FROM frames GROUP BY state").fetchall())
    n = sum(states.values())
    labelled_n = states.get("labelled", 0)

    truth = c.execute(
        f"""
        WITH best AS (
            SELECT sl.situation, sl.value, row_number() OVER (
                PARTITION BY sl.frame_id, sl.situation
                ORDER BY {_TRUTH_RANK.format(col="sl.source")}) AS rn
            FROM situation_labels sl JOIN frames f ON f.id = sl.frame_id
            WHERE f.state = 'labelled' AND sl.source IN ('human', 'import', 'oracle'))
        SELECT situation, sum(value), count(*) FROM best WHERE rn = 1 GROUP BY situation
        """
    ).fetchall()
    truth_pos = {s: (p, k) for s, p, k in truth}
    hidden = dict(
        c.execute(
            "SELECT sl.situation, sum(sl.value) FROM situation_labels sl "
            "JOIN frames f ON f.id = sl.frame_id "
            "WHERE f.state != 'labelled' AND sl.source = 'oracle' GROUP BY sl.situation"
        ).fetchall()
    )
    model = latest_model_source(store)
    predicted: dict[str, int] = {}
    if model:
        predicted = dict(
            c.execute(
                "SELECT sl.situation, sum(sl.value) FROM situation_labels sl "
                "JOIN frames f ON f.id = sl.frame_id "
                "WHERE f.state != 'labelled' AND sl.source = ? GROUP BY sl.situation",
                (model,),
            ).fetchall()
        )
    rows = [
        CoverageRow(
            "situation",
            s.name,
            s.group,
            labelled=truth_pos.get(s.name, (0, 0))[0],
            known=truth_pos.get(s.name, (0, 0))[1],
            hidden=hidden.get(s.name, 0) or 0,
            predicted=(predicted.get(s.name, 0) or 0) if model else None,
        )
        for s in tax.situations
    ]
    rows.extend(_class_rows(store, tax.classes))
    return Coverage(n, labelled_n, n - labelled_n, model, rows)


def _class_rows(store: Store, classes: list[str]) -> list[CoverageRow]:
    c = store.conn
    best_sets = f"""
        SELECT bs.frame_id, bs.source, f.state, row_number() OVER (
            PARTITION BY bs.frame_id ORDER BY {_TRUTH_RANK.format(col="bs.source")}) AS rn
        FROM box_sets bs JOIN frames f ON f.id = bs.frame_id
        WHERE bs.source IN ('human', 'import', 'oracle')
    """
    known = c.execute(
        f"SELECT count(*) FROM ({best_sets}) WHERE rn = 1 AND state = 'labelled'"
    ).fetchone()[0]
    labelled = {
        cat: (frames, boxes)
        for cat, frames, boxes in c.execute(
            f"""
            SELECT b.category, count(DISTINCT b.frame_id), count(*)
            FROM ({best_sets}) s JOIN boxes b ON b.frame_id = s.frame_id AND b.source = s.source
            WHERE s.rn = 1 AND s.state = 'labelled' GROUP BY b.category
            """
        )
    }
    hidden = dict(
        c.execute(
            "SELECT b.category, count(DISTINCT b.frame_id) FROM boxes b "
            "JOIN frames f ON f.id = b.frame_id "
            "WHERE b.source = 'oracle' AND f.state != 'labelled' GROUP BY b.category"
        ).fetchall()
    )
    model = c.execute(
        "SELECT source FROM box_sets WHERE source LIKE 'model:%' ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    predicted: dict[str, int] = {}
    if model:
        predicted = dict(
            c.execute(
                "SELECT b.category, count(DISTINCT b.frame_id) FROM boxes b "
                "JOIN frames f ON f.id = b.frame_id "
                "WHERE b.source = ? AND f.state != 'labelled' GROUP BY b.category",
                (model[0],),
            ).fetchall()
        )
    return [
        CoverageRow(
            "class",
            cat,
            None,
            labelled=labelled.get(cat, (0, 0))[0],
            known=known,
            hidden=hidden.get(cat, 0),
            predicted=predicted.get(cat, 0) if model else None,
            boxes=labelled.get(cat, (0, 0))[1],
        )
        for cat in classes
    ]
