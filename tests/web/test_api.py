"""The web app's pages and JSON API on a tiny generated project (FastAPI TestClient)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from conftest import MODEL, TestClient, frame_id
from scenesift.records import Box, FrameRecord, ImportBatch, ImportReport
from scenesift.store import Store
from scenesift.web import create_app

HTML = {"accept": "text/html"}


def names(client: TestClient, **params) -> list[str]:
    r = client.get("/api/frames", params=params)
    assert r.status_code == 200, r.text
    return [f["name"] for f in r.json()["frames"]]


def save(client: TestClient, fid: int, situations: dict, version: int = 0, who: str = "ana"):
    body = {"label_version": version, "labeller": who, "situations": situations}
    return client.post(f"/api/frames/{fid}/labels", json=body)


# ------------------------------------------------------------------------------ pages
def test_every_page_renders(client, project):
    fid = frame_id(project, "d0/000.jpg")
    for url in ["/", "/browse", f"/frames/{fid}", "/review", f"/label/{fid}"]:
        r = client.get(url, headers=HTML)
        assert r.status_code == 200, (url, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert "scenesift" in r.text


def test_dashboard_shows_coverage_learning_curve_and_reports(client):
    html = client.get("/").text
    assert "Situation coverage" in html and "Class coverage" in html
    assert "drives train / val / test" in html and 'class="few"' in html  # few drives flagged
    assert "demo-campaign" in html and "<svg" in html and "<polyline" in html
    assert "0.470" in html  # mAP@0.5 of the last round, in the table under the curve
    assert 'href="/reports/campaign/summary.html"' in html
    r = client.get("/reports/campaign/summary.html")
    assert r.status_code == 200 and "Campaign summary" in r.text


def test_a_tagger_campaign_plots_its_mean_roc_auc(tmp_path):
    store = Store.init(tmp_path / "p")
    with store.transaction() as c:
        c.execute("INSERT INTO campaigns (name, created_at) VALUES ('tagging', '2024-01-01')")
        for idx, auc in enumerate((0.81, 0.93)):
            c.execute(
                "INSERT INTO rounds (campaign_id, idx, status, metrics, created_at) "
                "VALUES (1, ?, 'done', ?, '2024-01-02')",
                (idx, json.dumps({"n_labelled": 50 * (idx + 1), "auc_mean": auc})),
            )
    store.close()
    with TestClient(create_app(tmp_path / "p"), base_url="http://127.0.0.1") as c:
        html = c.get("/").text
    assert "<polyline" in html and "mean ROC-AUC" in html and "0.930" in html
    assert "mAP" not in html.split("Learning curve", 1)[1].split("</section>", 1)[0]


def test_dashboard_empty_state_without_a_campaign(tmp_path):
    Store.init(tmp_path / "empty").close()
    with TestClient(create_app(tmp_path / "empty"), base_url="http://127.0.0.1") as c:
        html = c.get("/").text
        assert "No campaign yet" in html and "No HTML reports" in html
        assert "No active-learning round yet" in c.get("/review").text
        assert c.get("/api/frames").json()["frames"] == []
        r = c.get("/label", headers=HTML, follow_redirects=False)
        assert r.status_code == 200 and "nothing to label" in r.text


# ------------------------------------------------------------------------------ browser
def test_browser_filters(client):
    # truth: imported labels for d0, held-back oracle labels for d1 and d2
    day = [f"d{d}/{i:03d}.jpg" for d in (0, 1) for i in range(4)]
    assert names(client, situation="day", value="1") == day
    # d1/d2 have oracle truth for time of day; nobody labelled roadworks there.
    assert names(client, situation="roadworks", value="1") == ["d0/000.jpg"]
    assert len(names(client, situation="roadworks", value="0")) == 3
    assert len(names(client, situation="roadworks", value="missing")) == 8
    assert names(client, predicted="night", min_score=0.5) == [f"d2/{i:03d}.jpg" for i in range(4)]
    assert names(client, state="selected") == [f"d1/{i:03d}.jpg" for i in range(4)]
    assert names(client, round=2, score_min=0.75) == ["d1/000.jpg", "d1/001.jpg"]
    assert names(client, score_max=0.65) == ["d1/003.jpg"]  # the latest round by default
    assert names(client, drive="d2", state="unlabelled") == [f"d2/{i:03d}.jpg" for i in range(4)]
    assert names(client, round=1) == []  # the first round picked nothing
    r = client.get("/api/frames", params={"state": "selected"})
    assert r.json()["total"] == 4


def test_browser_sorts(client):
    assert names(client, sort="score")[:2] == ["d1/000.jpg", "d1/001.jpg"]
    assert names(client, sort="score", round=2) == [f"d1/{i:03d}.jpg" for i in range(4)]
    rows = client.get("/api/frames", params={"sort": "rank"}).json()["frames"]
    assert [r["rank"] for r in rows] == [0, 1, 2, 3] and rows[0]["score"] == pytest.approx(0.9)
    by_time = names(client, sort="timestamp")
    assert by_time == sorted(by_time, key=lambda n: (n[:2], n))


@pytest.mark.parametrize("sort", ["name", "timestamp", "score", "rank"])
def test_keyset_pages_walk_forward_and_back_without_gaps(client, sort):
    everything = names(client, sort=sort, limit=200)
    seen, pages, after = [], [], None
    while True:
        params = {"sort": sort, "limit": 3, **({"after": after} if after else {})}
        body = client.get("/api/frames", params=params).json()
        pages.append(body)
        seen += [f["name"] for f in body["frames"]]
        after = body["next"]
        if after is None:
            break
    assert seen == everything and len(set(seen)) == len(seen)
    # "previous" from the last page gives back the page before it
    back = client.get("/api/frames", params={"sort": sort, "limit": 3, "before": pages[-1]["prev"]})
    if len(pages) > 1:
        assert back.json()["frames"] == pages[-2]["frames"]


def test_timestamp_order_puts_frames_without_a_time_first_and_pages_through_them(project):
    with Store.open(project) as store, store.transaction() as c:
        c.execute("UPDATE frames SET timestamp = NULL WHERE name IN ('d1/001.jpg', 'd1/003.jpg')")
    with TestClient(create_app(project), base_url="http://127.0.0.1") as client:
        everything = names(client, sort="timestamp", drive="d1", limit=200)
        assert everything[:2] == ["d1/001.jpg", "d1/003.jpg"]
        seen, after = [], None
        for _ in range(10):
            params = {"sort": "timestamp", "drive": "d1", "limit": 1}
            body = client.get(
                "/api/frames", params={**params, **({"after": after} if after else {})}
            )
            seen += [f["name"] for f in body.json()["frames"]]
            after = body.json()["next"]
            if after is None:
                break
        assert seen == everything
        prev = body.json()["prev"]
        back = client.get("/api/frames", params={**params, "before": prev}).json()
        assert [f["name"] for f in back["frames"]] == everything[-2:-1]


def test_browser_rejects_bad_filters_clearly(client):
    r = client.get("/api/frames", params={"situation": "volcano"})
    assert r.status_code == 422 and "volcano" in r.json()["detail"]
    r = client.get("/browse", params={"predicted": "volcano"}, headers=HTML)
    assert r.status_code == 422 and "unknown situation" in r.text and "volcano" in r.text
    for bad in [{"min_score": "2"}, {"min_score": "nan"}, {"round": "x"}, {"limit": "0"},
                {"limit": "100000"}, {"sort": "random"}, {"score_min": "inf"}]:  # fmt: skip
        assert client.get("/api/frames", params=bad).status_code == 422, bad
    r = client.get("/api/frames", params={"after": "garbage!!"})
    assert r.status_code == 400 and "cursor" in r.json()["detail"]
    cursor = client.get("/api/frames", params={"limit": 2}).json()["next"]
    r = client.get("/api/frames", params={"sort": "score", "after": cursor})
    assert r.status_code == 400  # a cursor of another sort order


def test_blank_form_fields_mean_any(client):
    assert len(names(client, situation="", state="", round="", score_min="", drive="")) == 12


# ------------------------------------------------------------------------------ one frame
def test_frame_view_shows_boxes_labels_scores_and_drive_neighbours(client, project):
    fid = frame_id(project, "d0/001.jpg")
    html = client.get(f"/frames/{fid}").text
    assert html.count('class="box truth"') == 1 and html.count('class="box pred"') == 1
    assert 'id="toggle-truth"' in html and 'id="toggle-pred"' in html
    assert f'href="/frames/{frame_id(project, "d0/000.jpg")}"' in html  # previous in drive
    assert f'href="/frames/{frame_id(project, "d0/002.jpg")}"' in html  # next in drive
    assert "No tagger checkpoint" in html and MODEL in html
    data = client.get(f"/api/frames/{fid}").json()
    assert data["situations"]["day"] == {
        "truth": True,
        "source": "import",
        "score": pytest.approx(data["situations"]["day"]["score"]),
    }
    assert data["situations"]["rain"]["truth"] is False
    assert data["situations"]["crowded"]["truth"] is None
    first = client.get(f"/frames/{frame_id(project, 'd0/000.jpg')}").text
    assert "previous in drive" not in first and "next in drive" in first


def test_ignore_regions_are_drawn_once_per_area_as_ignore_not_as_objects(tmp_path):
    """KITTI's DontCare is stored as one iscrowd box per class over the same area."""
    crowd = {"iscrowd": True}
    boxes = [Box("car", 10, 10, 50, 40),
             *(Box(c, 100, 20, 180, 60, attributes=crowd) for c in ("car", "truck"))]  # fmt: skip
    frame = FrameRecord("d/0.jpg", tmp_path / "d/0.jpg", "d", 256, 160, boxes=boxes)
    with Store.init(tmp_path / "p") as store:
        store.ingest(ImportBatch([frame], tmp_path, ImportReport("t")))
    with TestClient(create_app(tmp_path / "p"), base_url="http://127.0.0.1") as c:
        html = c.get("/frames/1").text
    assert html.count('class="box truth"') == 1 and html.count('class="box ignore"') == 1
    assert ">ignore</text>" in html and "truck</text>" not in html
    assert "ground truth (1, import)" in html and 'id="toggle-ignore"' in html
    assert "ignore regions (1, not objects)" in html


def test_unknown_frames_are_404_everywhere(client):
    for url in ["/frames/999", "/api/frames/999", "/frames/999/image", "/frames/999/thumb",
                "/label/999", "/frames/999/cam?situation=day"]:  # fmt: skip
        r = client.get(url)
        assert r.status_code == 404, url
    r = client.get("/frames/999", headers=HTML)
    assert r.status_code == 404 and "no frame with id 999" in r.text


def test_images_and_cached_thumbnails(client, project):
    fid = frame_id(project, "d0/000.jpg")
    r = client.get(f"/frames/{fid}/image")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == (project.parent / "data" / "d0" / "000.jpg").read_bytes()
    t1 = client.get(f"/frames/{fid}/thumb")
    assert t1.status_code == 200 and t1.headers["content-type"] == "image/jpeg"
    cached = list((project / "cache" / "thumbs").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith(f"{fid}-")
    assert client.get(f"/frames/{fid}/thumb").content == t1.content
    assert len(list((project / "cache" / "thumbs").iterdir())) == 1  # no temporary left over


def test_unreadable_image_is_404_not_500(client, project):
    fid = frame_id(project, "d2/000.jpg")
    (project.parent / "data" / "d2" / "000.jpg").write_bytes(b"not a jpeg")
    assert client.get(f"/frames/{fid}/thumb").status_code == 404
    (project.parent / "data" / "d2" / "000.jpg").unlink()
    assert client.get(f"/frames/{fid}/image").status_code == 404


# ------------------------------------------------------------------------------ labels
def test_save_writes_human_labels_state_and_version_in_one_go(client, project):
    fid = frame_id(project, "d2/001.jpg")
    r = save(client, fid, {"night": True, "rain": False, "tunnel": True, "crowded": False})
    assert r.status_code == 200, r.text
    assert r.json()["label_version"] == 1 and r.json()["labeller"] == "ana"
    with Store.open(project) as store:
        state, version = store.conn.execute(
            "SELECT state, label_version FROM frames WHERE id = ?", (fid,)
        ).fetchone()
        assert (state, version) == ("labelled", 1)
        human = dict(
            store.conn.execute(
                "SELECT situation, value FROM situation_labels WHERE frame_id = ? AND "
                "source = 'human'",
                (fid,),
            ).fetchall()
        )
        # the group positive implies its siblings negative (night => not day, not dusk)
        assert human == {"night": 1, "day": 0, "dusk": 0, "rain": 0, "tunnel": 1, "city": 0,
                         "highway": 0, "residential": 0, "crowded": 0}  # fmt: skip
        # Truth (human beats the oracle) as `scenesift tagger train` reads it: labelled
        # frames' records with situation labels.
        [rec] = [r for r in store.records(state="labelled") if r.name == "d2/001.jpg"]
        assert rec.situations == {k: bool(v) for k, v in human.items()}
        from scenesift.pipelines.tagger import with_truth  # what `tagger train` fits on

        assert rec in with_truth(store, rec.split)
        saves = store.conn.execute(
            "SELECT labeller, label_version, situations FROM label_saves WHERE frame_id = ?",
            (fid,),
        ).fetchall()
        assert [(w, v) for w, v, _ in saves] == [("ana", 1)]
        assert json.loads(saves[0][2])["night"] is True


def test_a_second_save_replaces_the_first_and_the_page_shows_who_saved(client, project):
    fid = frame_id(project, "d2/002.jpg")
    assert save(client, fid, {"night": True, "tunnel": True}).status_code == 200
    r = save(client, fid, {"dusk": True}, version=1, who="  Bo  Chen ")
    assert r.status_code == 200 and r.json()["labeller"] == "Bo Chen"
    data = client.get(f"/api/frames/{fid}").json()
    assert data["label_version"] == 2 and data["last_save"]["labeller"] == "Bo Chen"
    assert data["situations"]["dusk"]["truth"] is True
    assert data["situations"]["dusk"]["source"] == "human"
    assert data["situations"]["tunnel"]["source"] is None  # no longer labelled by anyone
    html = client.get(f"/label/{fid}").text
    assert "Bo Chen" in html and 'data-version="2"' in html
    client.cookies.set("scenesift_labeller", "Bo%20Chen%20%3Cb%3E")  # as label.js writes it
    html = client.get(f"/label/{fid}").text
    assert 'value="Bo Chen &lt;b&gt;"' in html


def test_stale_version_is_409_and_names_who_saved(client, project):
    fid = frame_id(project, "d1/000.jpg")
    assert save(client, fid, {"rain": True}, who="ana").status_code == 200
    r = save(client, fid, {"rain": False}, version=0, who="bo")
    assert r.status_code == 409
    body = r.json()
    assert "ana" in body["detail"] and "NOT saved" in body["detail"]
    assert body["label_version"] == 1 and body["last_save"]["labeller"] == "ana"
    with Store.open(project) as store:
        value = store.conn.execute(
            "SELECT value FROM situation_labels WHERE frame_id = ? AND situation = 'rain' "
            "AND source = 'human'",
            (fid,),
        ).fetchone()[0]
        assert value == 1  # the stale save changed nothing


def test_two_labellers_saving_at_once_one_wins(client, project):
    fid = frame_id(project, "d1/002.jpg")
    barrier = threading.Barrier(2)
    results = []

    def labeller(who: str) -> None:
        barrier.wait()
        results.append(save(client, fid, {"fog": who == "ana"}, version=0, who=who).status_code)

    threads = [threading.Thread(target=labeller, args=(w,)) for w in ("ana", "bo")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409]
    assert client.get(f"/api/frames/{fid}").json()["label_version"] == 1


@pytest.mark.parametrize(
    ("situations", "message"),
    [
        ({"volcano": True}, "volcano"),
        ({"day": True, "night": True}, "exclusive"),
        ({}, "at least one"),
    ],
)
def test_bad_labels_are_422_with_a_clear_message(client, project, situations, message):
    fid = frame_id(project, "d2/003.jpg")
    r = save(client, fid, situations)
    assert r.status_code == 422 and message in json.dumps(r.json())
    assert client.get(f"/api/frames/{fid}").json()["label_version"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"label_version": 0, "labeller": "", "situations": {"day": True}},
        {"label_version": 0, "labeller": "   ", "situations": {"day": True}},
        {"label_version": -1, "labeller": "a", "situations": {"day": True}},
        {"label_version": 0, "labeller": "a", "situations": {"day": "maybe"}},
        {"label_version": 0, "labeller": "a", "situations": ["day"]},
        {"label_version": 0, "labeller": "a"},
        {"label_version": 0, "labeller": "a", "situations": {}, "extra": 1},
    ],
)
def test_malformed_saves_are_422(client, project, body):
    r = client.post(f"/api/frames/{frame_id(project, 'd2/003.jpg')}/labels", json=body)
    assert r.status_code == 422


def test_saving_an_unknown_frame_is_404(client):
    assert save(client, 999, {"day": True}).status_code == 404


def test_label_page_prefills_one_member_per_group_and_shows_keys(client, project):
    html = client.get(f"/label/{frame_id(project, 'd1/000.jpg')}").text
    assert "<kbd>1</kbd>" in html and "<kbd>s</kbd>" in html
    assert "the latest model" in html  # nothing labelled: the predictions start it
    for group in ("time_of_day", "weather", "scene"):
        block = html.split(f'data-group="{group}">', 1)[1].split("</fieldset>", 1)[0]
        assert block.count("checked") <= 1, group


# ------------------------------------------------------------------------------ review
def test_review_accept_reject_and_the_labelling_queue(client, project):
    ids = [frame_id(project, f"d1/{i:03d}.jpg") for i in range(4)]
    html = client.get("/review").text
    assert "demo-campaign · round 1" in html and html.count("least_confidence") == 4
    r = client.post(f"/api/rounds/2/picks/{ids[1]}", json={"review": "rejected"})
    assert r.status_code == 200
    r = client.post(
        f"/review/2/{ids[0]}",
        content="review=accepted",
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/review?round=2")
    with Store.open(project) as store:
        reviews = dict(store.conn.execute("SELECT frame_id, review FROM picks WHERE round_id = 2"))
    assert reviews == {ids[0]: "accepted", ids[1]: "rejected", ids[2]: "pending", ids[3]: "pending"}
    # /label starts the current round's open picks, by rank; the rejected one is skipped
    r = client.get("/label", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"/label/{ids[0]}?")
    html = client.get(r.headers["location"]).text
    assert f'href="/label/{ids[2]}?round=2&amp;review=open&amp;sort=rank"' in html
    assert "start of queue" in html


def test_review_rejects_bad_verdicts_and_non_picks(client, project):
    fid = frame_id(project, "d1/000.jpg")
    assert client.post(f"/api/rounds/2/picks/{fid}", json={"review": "maybe"}).status_code == 422
    other = frame_id(project, "d0/000.jpg")
    assert (
        client.post(f"/api/rounds/2/picks/{other}", json={"review": "accepted"}).status_code == 404
    )
    assert (
        client.post(f"/api/rounds/99/picks/{fid}", json={"review": "accepted"}).status_code == 404
    )
    assert client.get("/review", params={"round": 99}).status_code == 404


# ------------------------------------------------------------------------------ issue 18
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            b'{"label_version": 1e400, "labeller": "a", "situations": {"day": true}}',
            "label_version",
        ),
        (
            b'{"label_version": -1e400, "labeller": "a", "situations": {"day": true}}',
            "label_version",
        ),
        (b'{"label_version": NaN, "labeller": "a", "situations": {"day": true}}', "label_version"),
        (b'{"label_version": 0, "labeller": 1e400, "situations": {"day": true}}', "labeller"),
        (b'{"label_version": 0, "labeller": "a", "situations": {"day": NaN}}', "situations.day"),
    ],
)
def test_non_finite_numbers_in_a_save_are_422_naming_the_field(client, project, body, field):
    fid = frame_id(project, "d2/003.jpg")
    r = client.post(
        f"/api/frames/{fid}/labels", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert ".".join(map(str, error["loc"][1:])) == field and error["msg"]
    html = client.post(
        f"/api/frames/{fid}/labels",
        content=body,
        headers={"content-type": "application/json", "accept": "text/html"},
    )
    assert html.status_code == 422
    assert client.get(f"/api/frames/{fid}").json()["label_version"] == 0


@pytest.mark.parametrize("value", [b"1e400", b"-1e400", b"NaN", b"Infinity"])
def test_a_non_finite_review_is_422(client, project, value):
    fid = frame_id(project, "d1/000.jpg")
    r = client.post(
        f"/api/rounds/2/picks/{fid}",
        content=b'{"review": ' + value + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert "review" in json.dumps(r.json())


def test_a_save_while_another_process_writes_is_a_quick_503_with_retry_after(client, project):
    fid = frame_id(project, "d2/003.jpg")
    other = sqlite3.connect(project / "catalog.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # an import holding the write lock
    try:
        start = time.monotonic()
        r = save(client, fid, {"night": True})
        waited = time.monotonic() - start
        assert r.status_code == 503, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 30
        assert "busy" in r.json()["detail"] and "try again" in r.json()["detail"]
        assert waited < 10
        review = client.post(f"/api/rounds/2/picks/{frame_id(project, 'd1/000.jpg')}",
                             json={"review": "accepted"})  # fmt: skip
        assert review.status_code == 503 and "retry-after" in review.headers
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert save(client, fid, {"night": True}).status_code == 200  # the retry goes through


def test_saves_of_this_app_queue_in_turn_but_not_forever(project):
    with TestClient(create_app(project, write_wait=0.5), base_url="http://127.0.0.1") as c:
        fid = frame_id(project, "d2/003.jpg")
        with c.app.state.project.writing():  # another save of this app, stuck
            r = save(c, fid, {"night": True})
        assert r.status_code == 503 and r.headers["retry-after"]
        assert "queued" in r.json()["detail"]
        assert save(c, fid, {"night": True}).status_code == 200


def test_a_client_version_ahead_of_the_server_gets_a_409_that_says_so(client, project):
    fid = frame_id(project, "d2/003.jpg")
    r = save(client, fid, {"night": True}, version=5)
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "it is now version 0" not in detail and "after you opened it" not in detail
    assert "version 5" in detail and "version 0" in detail and "NOT saved" in detail
    assert r.json()["label_version"] == 0


def _finish_campaign_without_picks(project) -> None:
    """What the demo leaves: every frame labelled, a final round with no picks."""
    with Store.open(project) as store, store.transaction() as c:
        c.execute("UPDATE frames SET state = 'labelled'")
        c.execute(
            "INSERT INTO rounds (campaign_id, idx, status, metrics, created_at) "
            "VALUES (1, 2, 'final', '{}', '2024-01-05T00:00:00')"
        )


def test_label_link_falls_back_to_open_picks_of_an_earlier_round(client, project):
    _finish_campaign_without_picks(project)
    r = client.get("/label", headers=HTML)
    assert r.status_code == 200, r.text[:300]
    first = frame_id(project, "d1/000.jpg")
    assert str(r.url).endswith(f"/label/{first}?round=2&review=open&sort=rank")


def test_label_link_with_nothing_to_label_explains_instead_of_404(client, project):
    _finish_campaign_without_picks(project)
    with Store.open(project) as store, store.transaction() as c:
        c.execute("UPDATE picks SET review = 'rejected'")
    r = client.get("/label", headers=HTML)
    assert r.status_code == 200
    assert "nothing to label" in r.text and 'href="/browse"' in r.text


def test_review_defaults_to_the_latest_round_with_picks_and_offers_the_others(client, project):
    _finish_campaign_without_picks(project)
    html = client.get("/review", headers=HTML).text
    assert "Review demo-campaign · round 1" in html and html.count("least_confidence") == 4
    chooser = html.split('id="round-select"', 1)[1].split("</select>", 1)[0]
    assert "round 2" in chooser and "round 1" in chooser and "round 0" in chooser
    href = html.split('id="label-round" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    r = client.get(href, headers=HTML)
    assert r.status_code == 200 and "open picks" in r.text
    final = client.get("/review", params={"round": 3}, headers=HTML).text
    assert "no picks" in final and 'id="label-round" href=' not in final


def test_a_prediction_with_a_tiny_score_reads_as_its_score_and_is_marked_predicted(client, project):
    fid = frame_id(project, "d0/002.jpg")
    with Store.open(project) as store:
        # a threshold chosen on validation data can be tiny: 0.003 >= 0.002 is predicted
        store.write_situation_scores(
            MODEL, ["d0/002.jpg"], ["tunnel", "fog"], [[0.003, 0.0]], {"tunnel": 0.002}
        )
    html = client.get(f"/frames/{fid}", headers=HTML).text
    row = {
        name: html.split(f">{name}</td>", 1)[1].split("</tr>", 1)[0] for name in ("tunnel", "fog")
    }
    assert "0.003" in row["tunnel"] and 'class="score on"' in row["tunnel"]
    assert "0.00<" not in row["tunnel"]
    assert 'class="score on"' not in row["fog"] and "0.00" in row["fog"]
