"""The browser's SQL: plans chosen by selectivity give the same rows, deadlines hold,
cursors are validated."""

from __future__ import annotations

import sqlite3

import pytest

from conftest import MODEL
from scenesift.store import Store
from scenesift.store import browse as q

FILTERS = [
    q.Filters(state="unlabelled"),
    q.Filters(state="labelled", sort="timestamp"),
    q.Filters(situation="day", value="1"),
    q.Filters(situation="roadworks", value="0", sort="timestamp"),
    q.Filters(situation="night", value="1", state="unlabelled"),
    q.Filters(situation="day", value="1", round=2, sort="score"),
]


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: repr(f.items()))
def test_index_driven_and_order_driven_plans_agree(project, monkeypatch, f):
    with Store.open(project) as store:

        def walk() -> list[str]:
            out, after = [], None
            while True:
                page = q.browse(store.conn, f, model_source=MODEL, latest_round=2, after=after,
                                limit=2)  # fmt: skip
                out += [r.name for r in page.rows]
                if page.next is None:
                    return out
                after = page.next

        selective = walk()
        monkeypatch.setattr(q, "SELECTIVE", 1)  # every filter now counts as common
        assert walk() == selective and selective


def test_deadline_interrupts_a_long_query():
    conn = sqlite3.connect(":memory:")
    slow = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    with pytest.raises(q.TooSlow), q.deadline(conn, 0.05):
        conn.execute(slow).fetchone()
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the handler is gone afterwards


@pytest.mark.parametrize(
    "cursor",
    ["", "!!!", q.encode_cursor("name", [1]), q.encode_cursor("rank", ["a", 1]),
     q.encode_cursor("rank", [2**70, 1]), q.encode_cursor("score", [1.0, True]),
     q.encode_cursor("timestamp", ["d", "x", 1]), "x" * 3000],
)  # fmt: skip
def test_bad_cursors(cursor):
    for s in ("name", "rank", "score", "timestamp"):
        with pytest.raises(q.BadCursor):
            q.decode_cursor(s, cursor)
