"""Coverage: how many frames we have, labelled and not, for every situation and class.

This is the data lead's first question ("which situations are we short of?"), so it is
answered from running counts that catalog triggers keep (schema V5): milliseconds on a
million frames, where counting 16 million labels took a minute.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from scenesift.store.project import TRUTH_PRIORITY as _TRUTH_SOURCES
from scenesift.store.project import Store


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


def frame_counts(store: Store) -> list[tuple[str, str, int, int]]:
    """(split, state, frames, drives) with frames, from the running counts (schema V5)."""
    return store.conn.execute(
        "SELECT split, state, frames, drives FROM count_split_states WHERE frames > 0 "
        "ORDER BY split, state"
    ).fetchall()


def coverage(store: Store) -> Coverage:
    """The coverage table, read from the running counts that triggers keep (schema V5): a
    few hundred rows whatever the project's size."""
    c = store.conn
    tax = store.taxonomy
    states: dict[str, int] = defaultdict(int)
    for _, state, n, _ in frame_counts(store):
        states[state] += n
    n = sum(states.values())
    labelled_n = states.get("labelled", 0)

    labels: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for sit, source, state, value, k in c.execute(
        "SELECT situation, source, state, value, n FROM count_labels WHERE n != 0"
    ):
        key = "labelled" if state == "labelled" else "other"
        labels[(sit, source)][f"{key}:{value}"] += k
    model = store.latest_model_source()

    def count(sit: str, source: str | None, key: str) -> int:
        return labels[(sit, source)][key] if source else 0

    rows = [
        CoverageRow(
            "situation",
            s.name,
            s.group,
            labelled=count(s.name, "truth", "labelled:1"),
            known=count(s.name, "truth", "labelled:1") + count(s.name, "truth", "labelled:0"),
            hidden=count(s.name, "oracle", "other:1"),
            predicted=count(s.name, model, "other:1") if model else None,
        )
        for s in tax.situations
    ]
    rows.extend(_class_rows(store, tax.classes))
    return Coverage(n, labelled_n, n - labelled_n, model, rows)


def _class_rows(store: Store, classes: list[str]) -> list[CoverageRow]:
    c = store.conn
    known = c.execute(
        "SELECT coalesce(sum(n), 0) FROM count_box_sets WHERE source = 'truth' "
        "AND state = 'labelled'"
    ).fetchone()[0]
    boxes: dict[tuple[str, str, bool], tuple[int, int]] = defaultdict(lambda: (0, 0))
    for source, cat, state, frames, n in c.execute(
        "SELECT source, category, state, frames, boxes FROM count_boxes "
        "WHERE source IN ('truth', 'oracle') OR source LIKE 'model:%'"
    ):
        key = (source, cat, state == "labelled")
        boxes[key] = (boxes[key][0] + frames, boxes[key][1] + n)
    model = c.execute(
        "SELECT source FROM model_writes WHERE kind = 'boxes' AND frames > 0 "
        "ORDER BY last DESC, source DESC LIMIT 1"
    ).fetchone()
    return [
        CoverageRow(
            "class",
            cat,
            None,
            labelled=boxes[("truth", cat, True)][0],
            known=known,
            hidden=boxes[("oracle", cat, False)][0],
            predicted=boxes[(model[0], cat, False)][0] if model else None,
            boxes=boxes[("truth", cat, True)][1],
        )
        for cat in classes
    ]


@dataclass(frozen=True)
class DriveSplitRow:
    """Drives holding a positive frame (situation) or an object (class) per split, by the
    project's truth (human, import or held-back oracle labels; never model predictions):
    the effective sample size each split can offer for it."""

    kind: str  # "situation" or "class"
    name: str
    train: int
    val: int
    test: int

    @property
    def total(self) -> int:
        return self.train + self.val + self.test

    @property
    def unsplit(self) -> bool:
        """Present somewhere but missing from train or from test."""
        return self.total > 0 and (self.train == 0 or self.test == 0)


def drives_per_split(store: Store) -> list[DriveSplitRow]:
    """One row per situation and class in taxonomy order (one indexed query per label)."""
    c = store.conn
    truth = tuple(_TRUTH_SOURCES)
    marks = ",".join("?" * len(truth))
    rows = []
    for kind, names, sql in (
        ("situation", store.taxonomy.names,
         "SELECT d.split, count(DISTINCT f.drive) FROM situation_labels l "
         "JOIN frames f ON f.id = l.frame_id JOIN drives d ON d.name = f.drive "
         f"WHERE l.situation = ? AND l.source IN ({marks}) AND l.value = 1 GROUP BY d.split"),
        ("class", store.taxonomy.classes,
         "SELECT d.split, count(DISTINCT f.drive) FROM boxes b "
         "JOIN frames f ON f.id = b.frame_id JOIN drives d ON d.name = f.drive "
         f"WHERE b.category = ? AND b.source IN ({marks}) GROUP BY d.split"),
    ):  # fmt: skip
        for name in names:
            per = dict(c.execute(sql, (name, *truth)).fetchall())
            rows.append(
                DriveSplitRow(kind, name, per.get("train", 0), per.get("val", 0),
                              per.get("test", 0))
            )  # fmt: skip
    return rows
