"""Three tiers in a real browser: who sees what on the map, dispatch to a town, the video wall.

The live server commits, so everything a test creates (orders, tours, findings) is
deleted again in ``finally``.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

pytestmark = pytest.mark.browser

TOWN = "370812001"
COMMUNITY = "370812001001"
DEPARTMENT = "兖州区公安分局"
OTHER_TOWN = "370812100"
WALL_READY = "() => document.documentElement.dataset.wallReady === '1'"
TIERS = {
    "district-operator": ("TRUE", ""),
    "gulou-operator": (f"grid_code LIKE '{TOWN}%'", TOWN),
    "police-operator": (f"department = '{DEPARTMENT}'", None),
    "community-operator": (f"grid_code LIKE '{COMMUNITY}%'", COMMUNITY),
}


def expected(engine, username: str) -> tuple[set[str], int]:
    camera_where, grid_prefix = TIERS[username]
    with engine.connect() as conn:
        cameras = set(conn.execute(text(f"SELECT gb_id FROM cameras WHERE {camera_where}"))
                      .scalars())
        grids = 0 if grid_prefix is None else conn.execute(
            text("SELECT count(*) FROM grids WHERE code LIKE :p || '%'"), {"p": grid_prefix}
        ).scalar()
    return cameras, grids


def layer_ids(page) -> set[str]:
    """Return the GB IDs of the camera layer as the page's own session gets it."""
    rows = page.evaluate("fetch('/api/cameras/layer.json').then(r => r.json())")["rows"]
    return {r[0] for r in rows}


@pytest.mark.parametrize("username", list(TIERS))
def test_each_tier_sees_its_own_cameras_and_grids_on_the_map_wall(signed_in_page, live_server,
                                                                  engine, username):
    cameras, grids = expected(engine, username)
    page = signed_in_page(username)
    page.goto(live_server + "/wall")
    page.wait_for_function(WALL_READY, timeout=20_000)
    page.wait_for_function("() => document.documentElement.dataset.wallCameras !== undefined")
    data = page.evaluate("Object.assign({}, document.documentElement.dataset)")
    assert int(data["wallCameras"]) == len(cameras)
    assert int(data["wallGrids"]) == grids
    assert layer_ids(page) == cameras
    assert page.watch.remote_requests() == []


@pytest.mark.parametrize("username", ["gulou-operator", "community-operator"])
def test_the_grid_map_page_draws_only_the_jurisdiction(signed_in_page, live_server, engine,
                                                       username):
    _cameras, grids = expected(engine, username)
    page = signed_in_page(username)
    page.goto(live_server + "/")
    page.wait_for_function("() => document.documentElement.dataset.loadedGrids !== undefined")
    assert int(page.evaluate("document.documentElement.dataset.loadedGrids")) == grids
    assert page.locator(".gm-user-name").inner_text().endswith(username)
    assert page.watch.console_errors == []


def test_sign_in_form_and_sign_out(browser, live_server):
    from tests.browser.conftest import sign_in

    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    try:
        page.goto(live_server + "/wall")
        assert "/login" in page.url  # anonymous: sent to the sign-in page
        sign_in(page, live_server, "gulou-viewer", "not-the-right-password")
        assert page.locator("#login-error").inner_text() == "用户名或密码错误"
        page.goto(live_server + "/login?next=/videowall")
        page.fill("#username", "gulou-viewer")
        from gridmap.accounts import DEMO_USERS

        page.fill("#password", next(u.password for u in DEMO_USERS if u.username == "gulou-viewer"))
        with page.expect_navigation():
            page.click("#login-submit")
        assert page.url.endswith("/videowall")
        page.goto(live_server + "/logout")
        with page.expect_navigation():
            page.click("#logout-submit")
        assert "/login" in page.url
        page.goto(live_server + "/videowall")
        assert "/login" in page.url
    finally:
        context.close()


def _camera_elsewhere(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT gb_id FROM cameras WHERE grid_code LIKE :t || '%' AND department <> :d "
            "ORDER BY gb_id LIMIT 1"), {"t": OTHER_TOWN, "d": DEPARTMENT}).scalar()


def _dispatch(engine, gb_id: str) -> int:
    """Commit an order from the district to 鼓楼街道 for one camera."""
    from gridmap import accounts, dispatch

    with Session(engine) as s:
        district = accounts.unit_by_ref(s, accounts.DISTRICT_UNIT)
        town = accounts.unit_by_ref(s, TOWN)
        order_id = dispatch.create_order(
            s, accounts.system_actor(district, "browser-test"),
            {"targets": [town.id], "cameras": {"gb_ids": [gb_id]}, "priority": "urgent",
             "note": "浏览器测试调度"})
        s.commit()
    return order_id


def _delete_order(engine, order_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dispatch_orders WHERE id = :o"), {"o": order_id})


def test_a_dispatched_camera_appears_for_the_target_town(signed_in_page, live_server, engine):
    gb_id = _camera_elsewhere(engine)
    cameras, _grids = expected(engine, "gulou-operator")
    order_id = _dispatch(engine, gb_id)
    try:
        page = signed_in_page("gulou-operator")
        page.watch.expect_errors = True  # no demo streams here: relay 502, snapshot 404
        page.goto(live_server + "/wall")
        page.wait_for_function(WALL_READY, timeout=20_000)
        assert int(page.evaluate("document.documentElement.dataset.wallCameras")) == \
            len(cameras) + 1
        assert gb_id in layer_ids(page)

        page.goto(live_server + "/videowall")
        page.wait_for_function("() => document.documentElement.dataset.inbox === '1'")
        item = page.locator(f"li.vw-order[data-order='{order_id}']")
        assert "浏览器测试调度" in item.inner_text()
        item.locator("button[data-action='ack']").click()
        page.wait_for_selector(f"li.vw-order[data-order='{order_id}'][data-state='acknowledged']")
        item.locator("button[data-action='watch']").click()
        tile = page.locator(f".vw-tile[data-gb-id='{gb_id}']")
        tile.wait_for()
        # The relay cannot reach the (absent) demo stream, so the tile falls back to snapshots.
        page.wait_for_function(
            f"() => document.querySelector(\".vw-tile[data-gb-id='{gb_id}']\").dataset.mode"
            " === 'snapshot'", timeout=20_000)
        # Closing ends the access: the camera leaves the town's layer.
        page.once("dialog", lambda d: d.accept("已处置"))
        page.locator(f"li.vw-order[data-order='{order_id}'] button[data-action='close']").click()
        page.wait_for_selector(f"li.vw-order[data-order='{order_id}'][data-state='closed']")
        assert gb_id not in layer_ids(page)
        with engine.connect() as conn:
            feedback = conn.execute(text("SELECT feedback FROM dispatch_targets "
                                         "WHERE order_id = :o"), {"o": order_id}).scalar()
        assert feedback == "已处置"
        assert page.watch.remote_requests() == []
    finally:
        _delete_order(engine, order_id)


def test_video_wall_layouts_tours_and_findings(signed_in_page, live_server, engine):
    with engine.connect() as conn:
        cams = conn.execute(text("SELECT gb_id FROM cameras WHERE grid_code LIKE :t || '%' "
                                 "ORDER BY gb_id LIMIT 8"), {"t": TOWN}).scalars().all()
    page = signed_in_page("gulou-patrol")
    page.watch.expect_errors = True
    try:
        page.goto(live_server + "/videowall")
        page.wait_for_function("() => document.documentElement.dataset.videowall === 'ready'")
        # No tour yet: the list says so and there is nothing to start; saving an
        # empty wall says what to do first.
        page.wait_for_function("() => document.querySelector('#vw-tours').disabled")
        assert page.locator("#vw-tours option").inner_text() == "暂无巡查线路"
        assert page.locator("#vw-tour-start").is_disabled()
        page.locator("#vw-tour-save").click()
        assert "请先把摄像头上墙" in page.locator("#vw-notice").inner_text()
        page.goto(live_server + f"/videowall?layout=4&cameras={','.join(cams[:4])}")
        page.wait_for_function("() => document.documentElement.dataset.videowall === 'ready'")
        assert page.locator(".vw-tile[data-gb-id]").count() == 4
        page.locator(".vw-layout[data-layout='9']").click()
        assert page.locator(".vw-tile").count() == 9
        assert page.locator(".vw-tile[data-gb-id]").count() == 4
        # The five free tiles say how to fill them.
        hints = page.locator(".vw-empty .vw-empty-hint")
        assert hints.count() == 5 and "摄像头名称或编号" in hints.first.inner_text()
        # The page's fetch() carries the CSRF token from the meta tag (gridmap.js).
        status = page.evaluate(
            "ids => fetch('/api/patrol/tours', {method: 'POST', headers: {'Content-Type': "
            "'application/json'}, body: JSON.stringify({name: '浏览器巡查', gb_ids: ids, "
            "dwell_s: 5, layout: 4})}).then(r => r.status)", list(cams))
        assert status == 201
        page.reload()
        page.wait_for_function("() => document.documentElement.dataset.videowall === 'ready'")
        page.wait_for_function("() => document.querySelectorAll('#vw-tours option').length === 1"
                               " && !document.querySelector('#vw-tours').disabled")
        assert page.locator("#vw-tours option").inner_text() == "浏览器巡查 (8)"
        page.locator("#vw-tour-start").click()
        page.wait_for_function("() => (document.documentElement.dataset.tour || '').endsWith(':0')")
        first = page.locator(".vw-tile[data-gb-id]").evaluate_all(
            "els => els.map(e => e.dataset.gbId)")
        assert first == list(cams[:4])
        # After the dwell time the next page of the tour is on the wall.
        page.wait_for_function("() => (document.documentElement.dataset.tour || '').endsWith(':1')",
                               timeout=15_000)
        second = page.locator(".vw-tile[data-gb-id]").evaluate_all(
            "els => els.map(e => e.dataset.gbId)")
        assert second == list(cams[4:8])
        # Record a finding against the first tile's grid.
        tile = page.locator(".vw-tile[data-gb-id]").first
        page.wait_for_function("() => document.querySelector('.vw-tile[data-gb-id]').dataset.grid")
        page.once("dialog", lambda d: d.accept("占道经营"))
        tile.locator("button[data-action='finding']").click()
        page.wait_for_function("() => document.querySelector('.vw-tile[data-finding]') !== null")
        with engine.connect() as conn:
            note = conn.execute(text("SELECT note FROM patrol_findings ORDER BY id DESC LIMIT 1")
                                ).scalar()
        assert note == "占道经营"
        assert page.watch.remote_requests() == []
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM patrol_findings WHERE note = '占道经营'"))
            conn.execute(text("DELETE FROM patrol_tours WHERE name = '浏览器巡查'"))


def test_the_video_wall_finds_cameras_by_name_in_scope(signed_in_page, live_server, engine):
    with engine.connect() as conn:
        ours = conn.execute(text(
            "SELECT gb_id, name FROM cameras WHERE grid_code LIKE :t || '%' ORDER BY gb_id"),
            {"t": TOWN}).all()
        theirs = conn.execute(text(
            "SELECT name FROM cameras WHERE grid_code LIKE :t || '%' ORDER BY gb_id LIMIT 1"),
            {"t": OTHER_TOWN}).scalar_one()
    in_scope = {gb_id for gb_id, _ in ours}
    target, name = ours[len(ours) // 2]
    words = name.split("-")[1]  # 鼓楼街道-<place>-01: the place, as an operator types it
    page = signed_in_page("gulou-patrol")
    page.goto(live_server + "/videowall")
    page.wait_for_function("() => document.documentElement.dataset.videowall === 'ready'")
    box = page.locator("#vw-ids")
    box.fill(words)
    option = page.locator(f'#vw-suggest [role=option][data-gb-id="{target}"]')
    option.wait_for()
    offered = page.locator("#vw-suggest [role=option]").evaluate_all(
        "els => els.map(e => e.dataset.gbId)")
    assert set(offered) <= in_scope and box.get_attribute("aria-expanded") == "true"
    option.click()
    page.wait_for_selector(f'.vw-tile[data-gb-id="{target}"]')
    assert box.input_value() == "" and page.locator("#vw-suggest").is_hidden()
    # Another town's camera is not offered to this town's patrol lead.
    box.fill(theirs)
    page.wait_for_selector("#vw-suggest .vw-suggest-none")
    assert page.locator("#vw-suggest [role=option]").count() == 0
    # From the keyboard: the first match, then Enter, adds a second tile.
    box.fill(words)
    page.wait_for_selector("#vw-suggest [role=option]")
    first = page.locator("#vw-suggest [role=option]").first.get_attribute("data-gb-id")
    box.press("ArrowDown")
    assert page.locator("#vw-suggest [role=option]").first.get_attribute("aria-selected") == "true"
    box.press("Enter")
    page.wait_for_selector(f'.vw-tile[data-gb-id="{first}"]')
    tiles = page.locator(".vw-tile[data-gb-id]").evaluate_all("els => els.map(e => e.dataset.gbId)")
    assert tiles[-1] == first and target in tiles
    # The start of an ID finds the cameras it begins.
    box.fill(target[:19])
    page.wait_for_selector("#vw-suggest [role=option]")
    offered = page.locator("#vw-suggest [role=option]").evaluate_all(
        "els => els.map(e => e.dataset.gbId)")
    assert offered and all(gb_id.startswith(target[:19]) for gb_id in offered)


def test_a_forged_request_from_the_page_is_refused(signed_in_page, live_server):
    page = signed_in_page("gulou-operator")
    page.watch.expect_errors = True
    page.goto(live_server + "/videowall")
    page.wait_for_function("() => document.documentElement.dataset.videowall === 'ready'")
    status = page.evaluate(
        "fetch('/api/patrol/tours', {method: 'POST', headers: {'Content-Type': "
        "'application/json', 'X-CSRFToken': 'forged'}, body: '{}'}).then(r => r.status)")
    assert status == 400



def test_a_tile_without_live_video_shows_the_picture_and_when_it_was_taken(
        page, live_server, engine, snapshot_file):
    import os
    import time

    from video.sampler import SamplerConfig, snapshot_paths

    # Both streams unreachable (a closed port, whether or not demo streams run): the
    # relay answers 502 and the tiles fall back to snapshots.
    page.watch.expect_errors = True
    with engine.connect() as conn:
        cams = conn.execute(text(
            "SELECT gb_id, main_url, sub_url, status, snapshot_at FROM cameras "
            "ORDER BY gb_id LIMIT 2")).all()
    (pictured, *_), (blank, *_) = cams
    two_days_ago = time.time() - 2 * 86400
    with snapshot_file(pictured):
        latest, _thumb = snapshot_paths(SamplerConfig().snapshots(), pictured)
        os.utime(latest, (two_days_ago, two_days_ago))  # taken before the camera went offline
        with engine.begin() as conn:
            conn.execute(text("UPDATE cameras SET main_url = 'rtsp://127.0.0.1:9/gone', "
                              "sub_url = NULL WHERE gb_id IN (:a, :b)"),
                         {"a": pictured, "b": blank})
            conn.execute(text("UPDATE cameras SET snapshot_at = to_timestamp(:t), "
                              "status = 'offline' WHERE gb_id = :g"),
                         {"g": pictured, "t": two_days_ago})
        try:
            page.goto(live_server + f"/videowall?layout=4&cameras={pictured},{blank}")
            tile = page.locator(f".vw-tile[data-gb-id='{pictured}']")
            page.wait_for_function(
                f"() => document.querySelector(\".vw-tile[data-gb-id='{pictured}']\")"
                "?.dataset.snapshot === 'ok'", timeout=20_000)
            assert tile.locator("img.vw-frame").evaluate("e => e.naturalWidth") == 320
            assert "离线" in tile.locator(".vw-mode").inner_text()
            # When it was taken, with its date (it is not today's).
            day = page.evaluate(
                "t => new Date(t * 1000).toLocaleString('zh-CN', {timeZone: 'Asia/Shanghai', month: '2-digit', day: '2-digit'})",
                two_days_ago)
            taken = tile.locator(".vw-taken").inner_text()
            assert taken.startswith("截图时间") and day in taken, (taken, day)
            # The camera without a picture says so, and is never asked for one.
            other = page.locator(f".vw-tile[data-gb-id='{blank}']")
            page.wait_for_function(
                f"() => document.querySelector(\".vw-tile[data-gb-id='{blank}']\")"
                "?.dataset.mode === 'snapshot'", timeout=20_000)
            assert other.locator(".vw-nosnap").inner_text() == "暂无截图"
            assert other.locator("img").count() == 0
            asked = [u for u in page.watch.requests if "/snapshot.jpg" in u]
            assert asked and all(pictured in u for u in asked)
        finally:
            with engine.begin() as conn:
                for cam in cams:
                    conn.execute(text("UPDATE cameras SET main_url = :main_url, "
                                      "sub_url = :sub_url, status = :status, "
                                      "snapshot_at = :snapshot_at WHERE gb_id = :gb_id"),
                                 cam._asdict())
