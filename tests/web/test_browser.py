"""End to end in real headless Chromium (Playwright, Debian's /usr/bin/chromium): filter the
frame browser, open a frame, label it by clicking and by keyboard, save, check the store.

Set SCENESIFT_SCREENSHOTS=<folder> to keep the screenshots taken along the way.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import LiveServer, frame_id
from scenesift.store import Store
from scenesift.web import create_app

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium; run "
            "`bash scripts/install-browser.sh` (make test does)",
            pytrace=False,
        )

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("SCENESIFT_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return take


def human_labels(project: Path, name: str) -> tuple[dict[str, int], tuple]:
    with Store.open(project) as store:
        fid = frame_id(project, name)
        labels = dict(
            store.conn.execute(
                "SELECT situation, value FROM situation_labels WHERE frame_id = ? "
                "AND source = 'human'",
                (fid,),
            ).fetchall()
        )
        frame = store.conn.execute(
            "SELECT f.state, f.label_version, s.labeller FROM frames f LEFT JOIN label_saves s "
            "ON s.frame_id = f.id AND s.label_version = f.label_version WHERE f.id = ?",
            (fid,),
        ).fetchone()
    return labels, frame


def press_toggles(page, key: str, situation: str) -> bool:
    """Press ``key``; check that it flipped ``situation``; return its new state."""
    before = page.is_checked(f"input[value={situation}]")
    page.keyboard.press(key)
    after = page.is_checked(f"input[value={situation}]")
    assert after is not before, (key, situation)
    return after


def test_filter_open_label_by_click_and_keyboard_save(browser, project, shots):
    errors: list[str] = []
    with LiveServer(create_app(project)) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        # --- the frame browser: filter to the frames the tagger calls night
        page.goto(server.url + "/browse")
        assert page.locator(".tile").count() == 12
        page.select_option("#f-predicted", "night")
        page.fill("#f-min-score", "0.5")
        page.click("#f-apply")
        page.wait_for_url(re.compile(r"predicted=night"))
        assert page.locator(".tile").count() == 4
        assert page.locator(".tile .name").first.inner_text() == "d2/000.jpg"
        shots(page, "1-browser-filtered")

        # --- open a frame: boxes drawn over the image, toggles hide them
        page.locator(".tile").first.click()
        page.wait_for_url(re.compile(r"/frames/\d+$"))
        assert page.locator("svg.boxes .box.pred").first.is_visible()
        page.uncheck("#toggle-pred")
        assert not page.locator("svg.boxes .box.pred").first.is_visible()
        page.check("#toggle-pred")
        assert page.evaluate("document.getElementById('frame-image').naturalWidth") == 256
        shots(page, "2-frame")

        # --- label it: the queue is its drive, by time
        page.click("#label-this")
        page.wait_for_url(re.compile(r"/label/\d+\?drive=d2"))
        page.fill("#labeller", "Ana")
        night = page.locator("label.sit", has_text="night")
        night.click()  # by clicking: one of its group, like a radio button
        assert page.is_checked("input[value=night]")
        assert not page.is_checked("input[value=day]") and not page.is_checked("input[value=dusk]")
        page.locator("body").click(position={"x": 5, "y": 300})  # leave the name field
        page.keyboard.press("q")  # tunnel: a scene ...
        scenes = ["city", "highway", "residential"]
        assert page.is_checked("input[value=tunnel]")
        assert not any(page.is_checked(f"input[value={s}]") for s in scenes)  # ... the only one
        page.keyboard.press("3")  # night again: it stays chosen
        assert page.is_checked("input[value=night]")
        page.keyboard.press("1")  # day: exclusive with night
        assert page.is_checked("input[value=day]") and not page.is_checked("input[value=night]")
        page.keyboard.press("3")
        assert page.is_checked("input[value=night]") and not page.is_checked("input[value=day]")
        roadworks = press_toggles(page, "w", "roadworks")
        assert page.locator("#status").inner_text() == "unsaved changes"
        shots(page, "3-label-before-save")
        page.keyboard.press("s")
        expect(page.locator("#status")).to_have_text(re.compile("^Saved"))
        assert "version 1 by Ana" in page.locator("#status").inner_text()
        shots(page, "4-label-saved")
        labels, (state, version, who) = human_labels(project, "d2/000.jpg")
        assert (state, version, who) == ("labelled", 1, "Ana")
        assert labels["night"] == 1 and labels["day"] == 0 and labels["dusk"] == 0
        assert labels["tunnel"] == 1 and labels["city"] == 0
        assert labels["roadworks"] == int(roadworks)

        # --- keyboard only: next frame, toggle, Enter saves and moves on
        page.keyboard.press("n")
        page.wait_for_url(re.compile(rf"/label/{frame_id(project, 'd2/001.jpg')}\?"))
        assert page.input_value("#labeller") == "Ana"  # remembered
        page.keyboard.press("2")  # dusk
        assert page.is_checked("input[value=dusk]") and not page.is_checked("input[value=night]")
        press_toggles(page, "w", "roadworks")
        page.keyboard.press("p")  # unsaved: the first press only warns
        assert "unsaved" in page.locator("#status").inner_text()
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(rf"/label/{frame_id(project, 'd2/002.jpg')}\?"))
        labels, (state, version, who) = human_labels(project, "d2/001.jpg")
        assert labels["dusk"] == 1 and labels["night"] == 0 and (state, who) == ("labelled", "Ana")
        page.keyboard.press("ArrowLeft")
        page.wait_for_url(re.compile(rf"/label/{frame_id(project, 'd2/001.jpg')}\?"))
        assert page.is_checked("input[value=dusk]")  # the saved labels come back

        # --- a second labeller on the same frame, saving after the first: 409, shown
        other = context.new_page()
        other.goto(page.url)
        press_toggles(page, "r", "far_participant")
        page.keyboard.press("s")
        expect(page.locator("#status")).to_have_text(re.compile("^Saved"))
        other.fill("#labeller", "Bo")
        other.locator("body").click(position={"x": 5, "y": 300})
        press_toggles(other, "t", "pedestrian_present")
        other.keyboard.press("s")
        expect(other.locator("#status")).to_have_class(re.compile("error"))
        message = other.locator("#status").inner_text()
        assert "conflict" in message and "Ana" in message and "NOT saved" in message
        shots(other, "5-label-conflict")
        _, (_, version, who) = human_labels(project, "d2/001.jpg")
        assert (version, who) == (2, "Ana")
        context.close()
    assert errors == []  # no script errors, no Content-Security-Policy violations


def test_review_and_dashboard_in_the_browser(browser, project, shots):
    errors: list[str] = []
    with LiveServer(create_app(project)) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(server.url + "/")
        assert page.locator("svg.chart polyline").count() == 2
        shots(page, "6-dashboard")
        page.click("text=Review")
        page.wait_for_url(re.compile(r"/review$"))
        row = page.locator("#picks tr[data-frame]").nth(1)
        row.locator("button.reject").click()
        expect(row.locator("[data-review]")).to_have_text("rejected")
        assert page.locator("[data-count=rejected]").inner_text() == "1 rejected"
        assert page.locator("[data-count=pending]").inner_text() == "3 pending"
        shots(page, "7-review")
        with Store.open(project) as store:
            assert (
                store.conn.execute(
                    "SELECT count(*) FROM picks WHERE review = 'rejected'"
                ).fetchone()[0]
                == 1
            )
        page.click("#label-round")
        page.wait_for_url(re.compile(r"/label/\d+\?round=2&review=open&sort=rank"))
        assert "open picks" in page.locator(".frame-head").inner_text()
        page.close()
    assert errors == []


def test_exclusive_groups_behave_like_radio_buttons_and_clearing_one_is_explicit(
    browser, project, shots
):
    errors: list[str] = []
    with LiveServer(create_app(project)) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/label/{frame_id(project, 'd0/001.jpg')}")
        page.fill("#labeller", "Ana")
        page.locator("body").click(position={"x": 5, "y": 300})
        assert page.is_checked("input[value=clear]")  # the imported weather label
        key = page.get_attribute("input[value=clear]", "data-key")
        page.keyboard.press(key)  # the key of the ticked choice keeps it ticked
        assert page.is_checked("input[value=clear]")
        page.locator("label.sit", has_text="clear").click()  # and so does a click
        assert page.is_checked("input[value=clear]")
        page.keyboard.press(page.get_attribute("input[value=rain]", "data-key"))
        assert page.is_checked("input[value=rain]") and not page.is_checked("input[value=clear]")
        page.keyboard.press(page.get_attribute("input[value=rain]", "data-key"))
        assert page.is_checked("input[value=rain]")
        page.keyboard.press("s")
        expect(page.locator("#status")).to_have_text(re.compile("^Saved"))
        labels, _ = human_labels(project, "d0/001.jpg")
        assert labels["rain"] == 1 and labels["clear"] == 0

        # clearing the group is its own action, and the page says what a save will do
        page.click("button[data-clear=weather]")
        weather = ["clear", "rain", "fog", "snow"]
        assert not any(page.is_checked(f"input[value={s}]") for s in weather)
        status = page.locator("#status").inner_text()
        assert "weather" in status and "unlabelled" in status
        shots(page, "8-label-group-cleared")
        page.keyboard.press("s")
        expect(page.locator("#status")).to_have_text(re.compile("^Saved"))
        labels, (_, version, _) = human_labels(project, "d0/001.jpg")
        assert version == 2 and not set(weather) & set(labels) and labels["day"] == 1
        page.close()
    assert errors == []


def test_a_save_during_another_process_write_retries_and_says_so(browser, project, shots):
    errors: list[str] = []
    with LiveServer(create_app(project)) as server:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/label/{frame_id(project, 'd2/000.jpg')}")
        page.fill("#labeller", "Ana")
        page.locator("body").click(position={"x": 5, "y": 300})
        page.keyboard.press(page.get_attribute("input[value=night]", "data-key"))
        other = sqlite3.connect(project / "catalog.sqlite", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # a long import holds the write lock
        try:
            page.keyboard.press("s")
            expect(page.locator("#status")).to_have_text(
                re.compile("busy.*retrying"), timeout=20_000
            )
            shots(page, "9-label-busy-retrying")
        finally:
            other.execute("ROLLBACK")
            other.close()
        expect(page.locator("#status")).to_have_text(re.compile("^Saved"), timeout=20_000)
        labels, (state, version, who) = human_labels(project, "d2/000.jpg")
        assert (state, version, who) == ("labelled", 1, "Ana") and labels["night"] == 1
        page.close()
    assert errors == []


def test_frame_view_fits_1400_px_with_long_round_and_strategy_names(browser, project, shots):
    fid = frame_id(project, "d1/000.jpg")
    with Store.open(project) as store, store.transaction() as c:
        c.execute(
            "INSERT INTO campaigns (name, created_at) VALUES "
            "('tagger-fusion-bald-kcenter-seed-0007', '2024-02-01')"
        )
        rid = c.execute(
            "INSERT INTO rounds (campaign_id, idx, status, metrics, created_at) "
            "VALUES (2, 12, 'labelled', '{}', '2024-02-02')"
        ).lastrowid
        c.execute(
            "INSERT INTO picks (round_id, frame_id, rank, score, strategy) VALUES (?, ?, 1234, "
            "0.123456, 'fusion(bald+kcenter_greedy_pca+situation_balance)/dedup(drive, 2.0s)')",
            (rid, fid),
        )
    with LiveServer(create_app(project)) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{server.url}/frames/{fid}")
        card = page.locator("section.card.side")
        table = card.locator("table").last  # "Picked in"
        assert table.locator("tr").count() == 3
        inner = card.evaluate(
            "c => c.getBoundingClientRect().right - parseFloat(getComputedStyle(c).paddingRight)"
        )
        for t in (table, card.locator("table.situations")):  # both inside the padding
            assert t.evaluate("t => t.getBoundingClientRect().right") <= inner + 0.5
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        shots(page, "10-frame-1400px")
        page.close()
