"""store/campaigns.py: the one place campaigns, rounds and picks are read and written.

Every write is one transaction (a failure leaves nothing behind) and joins a caller's, so a
campaign can store labels and the round's progress together."""

from __future__ import annotations

import pytest

from al_fixtures import opened_oracle_project
from scenesift.records import Box
from scenesift.store import Store, StoreError
from scenesift.store import campaigns as cat
from scenesift.store.campaigns import NewPick


@pytest.fixture
def project(tmp_path):
    with opened_oracle_project(tmp_path) as store:
        yield store


def frames(store: Store, n: int) -> list[tuple[str, int]]:
    return sorted(cat.frame_ids(store).items())[:n]


def selected_round(store: Store, name: str = "c", n: int = 3) -> tuple[int, int, list[int]]:
    """A campaign whose round 0 picked ``n`` frames (selected, not yet labelled)."""
    cid = cat.create(store, name, {"labeler": "labelstudio"})
    cat.add_round(store, cid, 0)
    rid = cat.rounds(store, cid)[0].id
    ids = [fid for _, fid in frames(store, n)]
    cat.finish_round(store, rid, "selected", None, {"n_labelled": 0},
                     [NewPick(f, None, "random") for f in ids], mark_selected=True)  # fmt: skip
    return cid, rid, ids


def states(store: Store, ids: list[int]) -> list[str]:
    marks = ",".join("?" * len(ids))
    sql = f"SELECT state FROM frames WHERE id IN ({marks}) ORDER BY id"
    return [s for (s,) in store.conn.execute(sql, ids)]


def test_a_campaign_is_found_by_name_and_a_taken_name_is_refused(project):
    assert cat.latest(project) is None and cat.all_campaigns(project) == []
    with pytest.raises(StoreError, match="no campaign named 'a'; there are none yet"):
        cat.get(project, "a")
    first = cat.create(project, "a", {"seed": 1})
    cat.create(project, "b", {})
    cat.add_round(project, first, 0)
    cat.add_round(project, first, 0)  # a second process adding the same round: no-op
    assert cat.get(project, "a").config == {"seed": 1}
    assert cat.latest(project).name == "b"
    assert [(c.name, c.status, c.n_rounds) for c in cat.all_campaigns(project)] == [
        ("a", "running", 1),
        ("b", "running", 0),
    ]
    with pytest.raises(StoreError, match=r"'a' already exists.*al resume a"):
        cat.create(project, "a", {})
    with pytest.raises(StoreError, match="campaigns: a, b"):
        cat.get(project, "c")
    assert cat.count(project) == 2


def test_a_round_is_finished_once_with_its_picks_in_rank_order(project):
    cid, rid, ids = selected_round(project)
    [rnd] = cat.rounds(project, cid)
    assert (rnd.status, rnd.n_picks, rnd.strategy, rnd.n_labelled) == ("selected", 3, "random", 0)
    assert [p.frame_id for p in cat.top_picks(project, rid, 2)] == ids[:2]
    assert states(project, ids) == ["selected"] * 3
    # another process finishing the same round later writes nothing
    assert not cat.finish_round(project, rid, "final", "fp", {}, [NewPick(ids[0], 1.0, "x")])
    assert cat.rounds(project, cid) == [rnd]
    assert cat.picked(project, cid) == set(ids) and cat.labelled_picks(project, cid) == set()


def test_finishing_a_round_is_one_transaction(project, monkeypatch):
    cid = cat.create(project, "c", {})
    cat.add_round(project, cid, 0)
    rid = cat.rounds(project, cid)[0].id
    (name, fid), *_ = frames(project, 1)

    def broken(source, boxes):
        raise OSError("disk full")

    monkeypatch.setattr(project, "write_box_predictions", broken)
    shown = {name: [Box("car", 0, 0, 5, 5, score=0.9)]}
    with pytest.raises(OSError, match="disk full"):
        cat.finish_round(project, rid, "selected", "fp", {}, [NewPick(fid, 0.5, "margin")],
                         mark_selected=True, shown=shown)  # fmt: skip
    [rnd] = cat.rounds(project, cid)
    assert (rnd.status, rnd.n_picks) == ("created", 0)
    assert states(project, [fid]) == ["unlabelled"]


def test_labels_and_the_rounds_progress_commit_together(project):
    cid, rid, ids = selected_round(project)
    cat.set_status(project, cid, "waiting")
    with pytest.raises(RuntimeError), project.transaction():
        assert cat.record_labels(project, cid, rid, ids) == 0
        raise RuntimeError("the label import failed after the round was recorded")
    assert cat.rounds(project, cid)[0].status == "selected"  # rolled back with the caller
    assert states(project, ids) == ["selected"] * 3
    assert cat.record_labels(project, cid, rid, ids[:2]) == 1
    assert cat.rounds(project, cid)[0].status == "selected"
    assert cat.record_labels(project, cid, rid, ids[2:]) == 0
    assert cat.rounds(project, cid)[0].status == "labelled"
    assert cat.get(project, "c").status == "running"
    assert cat.labelled_picks(project, cid) == set(ids)
    assert states(project, ids) == ["labelled"] * 3
    by_split = [cat.labelled_in_split(project, s) for s in ("train", "val", "test")]
    assert set().union(*by_split) == set(ids) and sum(map(len, by_split)) == 3


def test_a_rejected_pick_is_not_trained_on(project):
    cid, rid, ids = selected_round(project)
    cat.reveal(project, rid)
    cat.reveal(project, rid)  # only a selected round turns labelled: idempotent
    project.conn.execute("UPDATE picks SET review = 'rejected' WHERE frame_id = ?", (ids[0],))
    assert cat.labelled_picks(project, cid) == set(ids[1:])
    assert cat.round_picks(project, rid, include_rejected=False) == set(ids[1:])
    assert cat.round_picks(project, rid, include_rejected=True) == set(ids)
    audit = cat.audit_picks(project, cid)
    assert [(a.round_idx, a.frame_id, a.review) for a in audit][:1] == [(0, ids[0], "rejected")]
    assert not any(a.by_person for a in audit)


def test_removing_by_prefix_takes_rounds_along_and_treats_wildcards_literally(project):
    for name in ("exp_1:random:s0", "exp_1:margin:s0", "expX1:random:s0", "exp_1"):
        cat.add_round(project, cat.create(project, name, {}), 0)
    assert cat.remove_prefixed(project, "exp_1:") == 2
    assert cat.names(project) == ["expX1:random:s0", "exp_1"]
    assert project.conn.execute("SELECT count(*) FROM rounds").fetchone()[0] == 2
