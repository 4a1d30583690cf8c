"""The matters pages (/matters, /matters/<id>) in real headless Chromium.

Each test commits the matters it needs through the domain (``gridmap.matters.intake``)
or through the page itself, marks them in the title, and deletes them afterwards.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

pytestmark = pytest.mark.browser

MARK = "[bt-matters]"
READY = "() => document.documentElement.dataset.mtReady === '1'"
STATE_IS = "s => document.documentElement.dataset.mtState === s"
TOWN = "370812001"  # 鼓楼街道 (gulou-* users)
OTHER_TOWN = "370812100"  # 大安镇 (daan-operator)


@pytest.fixture(scope="module")
def categories(engine, demo_loaded):
    """Seed the category tree and routing rules (idempotent, as the demo loader does)."""
    from gridmap import matters

    with Session(engine) as s:
        matters.ensure_categories(s)
        matters.ensure_routing_rules(s)
        s.commit()


@pytest.fixture
def filed(engine, categories):
    """Return ``file(username, **payload)`` committing a matter; delete them all afterwards."""
    from gridmap import accounts, matters

    def file(username: str, **payload) -> dict:
        payload["title"] = f"{MARK} {payload.get('title', '')}".strip()
        with Session(engine) as s:
            user = s.scalars(select(accounts.User).where(accounts.User.username == username)).one()
            detail = matters.intake(s, accounts.actor_for(s, user), payload)
            s.commit()
        return detail

    yield file
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM matters WHERE title LIKE :m"), {"m": f"%{MARK}%"})


def spot(engine, town: str, nth: int = 0) -> dict:
    """Return a point inside one of a town's grids (a different grid per ``nth``)."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT code, ST_X(p) AS lon, ST_Y(p) AS lat FROM "
            "(SELECT code, ST_PointOnSurface(geom) AS p FROM grids WHERE code LIKE :t "
            "ORDER BY code OFFSET :n LIMIT 1) g"), {"t": town + "%", "n": nth}).one()
    return {"grid": row.code, "lon": round(row.lon, 6), "lat": round(row.lat, 6)}


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(READY, timeout=20_000)


def png_bytes() -> bytes:
    import cv2
    import numpy as np

    img = np.zeros((60, 80, 3), np.uint8)
    img[:, :, 2] = 200
    ok, data = cv2.imencode(".png", img)
    assert ok
    return data.tobytes()


def click_map_at(page, lon: float, lat: float) -> dict:
    """Centre the map near a point and click it with the real mouse; return the spot clicked.

    The click lands 20 px (about 20 m at zoom 17) east of the point, so it hits the
    map rather than a matter already marked there.
    """
    page.evaluate("p => gridmapMatters.state.map.setView([p.lat, p.lon], 17, {animate: false})",
                  {"lon": lon, "lat": lat})
    xy = page.evaluate("""p => {
        const m = gridmapMatters.state.map;
        const pt = m.latLngToContainerPoint([p.lat, p.lon]);
        const box = m.getContainer().getBoundingClientRect();
        return {x: box.left + pt.x, y: box.top + pt.y};
    }""", {"lon": lon, "lat": lat})
    page.mouse.click(xy["x"] + 20, xy["y"])
    return page.evaluate("""p => {
        const m = gridmapMatters.state.map;
        const box = m.getContainer().getBoundingClientRect();
        const ll = m.containerPointToLatLng([p.x - box.left, p.y - box.top]);
        return {lon: ll.lng, lat: ll.lat};
    }""", {"x": xy["x"] + 20, "y": xy["y"]})


# --------------------------------------------------------------------------- workbench


def test_workbench_is_offline_and_files_a_matter_through_the_form(page, live_server, engine,
                                                                 filed):
    here = spot(engine, TOWN, 3)
    earlier = filed("district-operator", category="BJ.01", lon=here["lon"], lat=here["lat"],
                    title="井盖缺失", address="建设路")
    open_page(page, live_server + "/matters")
    assert page.watch.remote_requests() == []
    # The open matters layer and the list come from the JSON API.
    assert int(page.evaluate("document.documentElement.dataset.mtLayer")) >= 1
    assert page.evaluate("id => !!gridmapMatters.state.byId[id]", earlier["id"])
    # The legend explains the dots: the two flags, then the open states (closed
    # matters are not drawn), in the colours the layer draws with.
    legend = page.locator("#mt-legend")
    assert legend.get_attribute("open") is not None  # unfolded on a desk screen
    labels = legend.locator(".mt-legend-row").all_inner_texts()
    assert labels[:2] == ["超期", "即将到期"] and "待受理" in labels and "已结案" not in labels
    swatches = legend.locator(".mt-legend-dot").evaluate_all(
        "els => els.map(e => getComputedStyle(e).backgroundColor)")
    drawn = page.evaluate(
        "id => { const probe = document.createElement('span');"
        " probe.style.background = gridmapMatters.state.byId[id].options.fillColor;"
        " document.body.appendChild(probe); const c = getComputedStyle(probe).backgroundColor;"
        " probe.remove(); return c; }", earlier["id"])
    assert drawn in swatches
    page.fill("#mt-f-q", "bt-matters")
    item = page.locator(f"#mt-list li[data-id='{earlier['id']}']")
    item.wait_for()
    assert item.get_attribute("data-state") == "transferred"
    assert "待受理" in item.inner_text()

    # The intake form: category, a click on the map, duplicates suggested before submitting.
    page.click("#mt-tab-new")
    page.select_option("#mt-category", "BJ.01")
    clicked = click_map_at(page, here["lon"], here["lat"])
    assert float(page.input_value("#mt-lon")) == pytest.approx(clicked["lon"], abs=2e-6)
    assert float(page.input_value("#mt-lat")) == pytest.approx(clicked["lat"], abs=2e-6)
    page.locator(f"#mt-dups li[data-id='{earlier['id']}']").wait_for()
    assert "疑似重复" in page.inner_text("#mt-dups")
    # A grid worker's report names the worker, from the team of the grid at the spot.
    with engine.connect() as conn:
        team = conn.execute(text(
            "SELECT w.id, w.role, w.name FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
            "WHERE ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4326)) "
            "AND w.left_at IS NULL ORDER BY w.id"), {"x": clicked["lon"], "y": clicked["lat"]}).all()
    page.wait_for_function("n => document.documentElement.dataset.mtWorkers === String(n)",
                           arg=len(team))
    assert page.input_value("#mt-source") == "grid_worker"
    worker = next(w for w in team if w.role == "full_time")
    page.select_option("#mt-worker", str(worker.id))
    page.fill("#mt-title-input", f"{MARK} 路灯不亮")
    page.fill("#mt-address", "建设路 12 号")
    page.fill("#mt-reporter-name", "张三")
    page.fill("#mt-reporter-phone", "13800000000")
    page.set_input_files("#mt-photos", files=[
        {"name": "scene.png", "mimeType": "image/png", "buffer": png_bytes()}])
    page.click("#mt-submit")
    page.wait_for_function("() => (document.documentElement.dataset.mtFiled || '').startsWith('SX')")
    ref = page.evaluate("document.documentElement.dataset.mtFiled")
    assert ref in page.inner_text("#mt-form-msg")
    page.click("#mt-tab-list")
    new_item = page.locator(f"#mt-list li[data-ref='{ref}']")
    new_item.wait_for()
    assert new_item.locator(".mt-item-title").inner_text() == f"{MARK} 路灯不亮"
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT m.category_code, m.grid_code, m.reporter_phone, count(a.id) AS photos "
            "FROM matters m LEFT JOIN matter_attachments a ON a.matter_id = m.id "
            "WHERE m.ref = :r GROUP BY m.id"), {"r": ref}).one()
    assert row.category_code == "BJ.01" and row.grid_code.startswith(TOWN)
    assert row.reporter_phone == "13800000000" and row.photos == 1
    page.goto(live_server + f"/matters/{new_item.get_attribute('data-id')}")
    page.wait_for_function("() => document.documentElement.dataset.mtLoaded === '1'")
    assert page.inner_text("dd[data-key='mt_worker']") == f"专职网格员 {worker.name}"
    assert page.watch.remote_requests() == []
    assert page.watch.console_errors == []


def test_filters_narrow_the_list(page, live_server, engine, filed):
    here = spot(engine, TOWN, 4)
    routine = filed("district-operator", category="CS.01", lon=here["lon"], lat=here["lat"],
                    title="垃圾堆放")
    urgent = filed("district-operator", category="BJ.02", lon=here["lon"], lat=here["lat"],
                   title="护栏倒塌", urgency="urgent")
    open_page(page, live_server + "/matters")
    page.fill("#mt-f-q", "bt-matters")
    page.locator(f"#mt-list li[data-id='{urgent['id']}']").wait_for()
    assert page.locator(f"#mt-list li[data-id='{urgent['id']}'] .mt-badge-urgent").count() == 1
    page.select_option("#mt-f-state", "reported")  # urgent: waits at the district for triage
    page.wait_for_function(
        "id => !document.querySelector(`#mt-list li[data-id='${id}']`)", arg=routine["id"])
    assert page.locator(f"#mt-list li[data-id='{urgent['id']}']").count() == 1
    page.select_option("#mt-f-state", "")
    page.select_option("#mt-f-category", "CS")  # a whole branch of the tree
    page.wait_for_function(
        "id => !document.querySelector(`#mt-list li[data-id='${id}']`)", arg=urgent["id"])
    assert page.locator(f"#mt-list li[data-id='{routine['id']}']").count() == 1
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- detail


def strip(page) -> dict:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#mt-steps li')]
        .map(li => [li.dataset.step, li.classList.contains('mt-step-done') ? 'done'
                    : li.classList.contains('mt-step-current') ? 'current' : 'todo']))""")


def act(page, action: str, note: str | None = None) -> None:
    page.click(f"#mt-actions button[data-action='{action}']")
    if note is not None:
        page.fill("#mt-action-form textarea", note)
    page.click("#mt-action-confirm")


def test_steps_through_the_buttons_move_the_strip(signed_in_page, live_server, engine, filed):
    here = spot(engine, TOWN, 5)
    m = filed("district-operator", category="BJ.02", lon=here["lon"], lat=here["lat"],
              title="路灯不亮", reporter_name="李四", reporter_phone="13900000000")
    assert m["state"] == "transferred"
    # The town's patrol lead works it on a phone.
    phone = signed_in_page("gulou-patrol", viewport={"width": 390, "height": 844},
                           is_mobile=True, has_touch=True)
    open_page(phone, f"{live_server}/matters/{m['id']}")
    assert strip(phone) == {"report": "done", "transfer": "done", "handle": "todo",
                            "verify": "todo", "close": "todo"}
    assert phone.inner_text("#mt-ref") == m["ref"]
    # Phone layout: the map on top, the panel below it, nothing wider than the screen.
    boxes = phone.evaluate("""() => ({map: document.querySelector('.folium-map').getBoundingClientRect().bottom,
        panel: document.getElementById('mt-panel').getBoundingClientRect().top,
        width: document.documentElement.scrollWidth})""")
    assert boxes["panel"] >= boxes["map"] - 1 and boxes["width"] <= 390
    buttons = phone.locator("#mt-actions button").evaluate_all("bs => bs.map(b => b.dataset.action)")
    assert "accept" in buttons and "verify" not in buttons
    act(phone, "accept")
    phone.wait_for_function(STATE_IS, arg="handling")
    assert strip(phone)["handle"] == "current"
    # Handling needs a note: without one nothing is sent.
    phone.click("#mt-actions button[data-action='handle']")
    phone.click("#mt-action-confirm")
    assert phone.inner_text("#mt-msg") == "请填写办理意见"
    assert phone.evaluate("document.documentElement.dataset.mtState") == "handling"
    phone.fill("#mt-action-form textarea", "已更换灯泡")
    phone.click("#mt-action-confirm")
    phone.wait_for_function(STATE_IS, arg="handled")
    assert strip(phone)["handle"] == "done" and strip(phone)["verify"] == "todo"
    assert phone.locator("#mt-actions button[data-action='verify']").count() == 0
    # The patrol lead's town handles it: the reporter's contact is shown to it.
    assert phone.inner_text("#mt-contact") == "李四 13900000000"

    # The district center verifies and closes it.
    desk = signed_in_page("district-operator")
    open_page(desk, f"{live_server}/matters/{m['id']}")
    act(desk, "verify", "现场核实已修复")
    desk.wait_for_function(STATE_IS, arg="verified")
    act(desk, "close")
    desk.wait_for_function(STATE_IS, arg="closed")
    assert set(strip(desk).values()) == {"done"}
    timeline = desk.locator("#mt-timeline li").evaluate_all("ls => ls.map(l => l.dataset.action)")
    assert timeline[:4] == ["close", "verify", "handle", "accept"]
    assert "已更换灯泡" in desk.inner_text("#mt-timeline")
    # Dates follow Chinese conventions.
    assert "月" in desk.inner_text("#mt-facts dd[data-key='mt_reported_at']")
    for pg in (phone, desk):
        assert pg.watch.remote_requests() == []
        assert pg.watch.console_errors == []


def test_a_stale_version_offers_a_reload(signed_in_page, live_server, engine, filed):
    from gridmap import accounts, matters

    here = spot(engine, TOWN, 6)
    m = filed("district-operator", category="CS.05", lon=here["lon"], lat=here["lat"],
              title="占道经营")
    page = signed_in_page("gulou-operator")
    open_page(page, f"{live_server}/matters/{m['id']}")
    with Session(engine) as s:  # someone else writes a comment meanwhile
        user = s.scalars(select(accounts.User).where(
            accounts.User.username == "district-operator")).one()
        matters.apply_action(s, accounts.actor_for(s, user), m["id"], "comment",
                             {"note": "请尽快处理"})
        s.commit()
    page.watch.expect_errors = True  # the next answer is 409 on purpose
    act(page, "accept")
    page.locator("#mt-conflict").wait_for(state="visible")
    assert page.evaluate("document.documentElement.dataset.mtState") == "transferred"
    page.watch.expect_errors = False
    page.click("#mt-reload")
    page.locator("#mt-conflict").wait_for(state="hidden")
    assert "请尽快处理" in page.inner_text("#mt-timeline")
    act(page, "accept")
    page.wait_for_function(STATE_IS, arg="handling")
    assert page.watch.console_errors == []


def test_html_in_a_matter_is_shown_as_text(signed_in_page, live_server, engine, filed):
    here = spot(engine, TOWN, 7)
    title = '<img src=x onerror="window.__pwned=1">'
    description = "<script>window.__pwned=2</script><b>粗体</b>"
    m = filed("district-operator", category="CS.01", lon=here["lon"], lat=here["lat"],
              title=title, description=description, address="<i>地址</i>")
    page = signed_in_page("district-operator")
    open_page(page, live_server + "/matters")
    page.fill("#mt-f-q", "bt-matters")
    item = page.locator(f"#mt-list li[data-id='{m['id']}']")
    item.wait_for()
    assert item.locator(".mt-item-title").inner_text() == m["title"]
    assert "<i>地址</i>" in item.inner_text()
    page.evaluate("id => gridmapMatters.state.byId[id].openPopup()", m["id"])
    assert page.locator(".mt-pop-title").inner_text() == m["title"]
    open_page(page, f"{live_server}/matters/{m['id']}")
    assert page.inner_text("#mt-matter-title") == m["title"]
    assert page.inner_text("#mt-description-text") == description
    assert page.locator("#mt-panel img[src='x'], #mt-panel script, #mt-panel b, #mt-panel i").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert page.watch.console_errors == []  # an <img src=x> would have asked for /matters/x


def test_a_town_user_does_not_see_another_towns_matter(signed_in_page, live_server, engine,
                                                       filed):
    ours = spot(engine, TOWN, 8)
    theirs = spot(engine, OTHER_TOWN, 0)
    mine = filed("district-operator", category="CS.01", lon=ours["lon"], lat=ours["lat"],
                 title="鼓楼的事项")
    other = filed("district-operator", category="CS.01", lon=theirs["lon"], lat=theirs["lat"],
                  title="大安的事项")
    page = signed_in_page("gulou-operator")
    open_page(page, live_server + "/matters")
    page.fill("#mt-f-q", "bt-matters")
    page.locator(f"#mt-list li[data-id='{mine['id']}']").wait_for()
    assert page.locator(f"#mt-list li[data-id='{other['id']}']").count() == 0
    assert page.evaluate("id => !!gridmapMatters.state.byId[id]", mine["id"])
    assert not page.evaluate("id => !!gridmapMatters.state.byId[id]", other["id"])
    page.watch.expect_errors = True  # the next page is a 404 on purpose
    response = page.goto(f"{live_server}/matters/{other['id']}")
    assert response.status == 404
    assert page.inner_text("#mt-not-found") == "事项不存在或不在您的管辖范围内"
    assert "大安的事项" not in page.content()
    # The other town's operator does see it.
    theirs_page = signed_in_page("daan-operator")
    open_page(theirs_page, f"{live_server}/matters/{other['id']}")
    assert theirs_page.inner_text("#mt-matter-title") == other["title"]
    assert theirs_page.watch.console_errors == []


def test_english_switch(signed_in_page, live_server, categories):
    page = signed_in_page("district-operator")
    open_page(page, live_server + "/matters?lang=en")
    assert page.inner_text("#mt-title") == "Matters workbench"
    assert page.inner_text("#mt-tab-new") == "Report a matter"
    assert page.locator("#mt-legend summary").inner_text() == "Legend"
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.watch.console_errors == []


@pytest.mark.parametrize("lang,expected", [
    ("en", "Please fill in: Category, Location, Title"),
    ("zh", "请填写：事项类别、位置、标题"),
])
def test_an_empty_report_lists_the_missing_fields_in_the_pages_language(
        signed_in_page, live_server, categories, lang, expected):
    page = signed_in_page("district-operator")
    open_page(page, f"{live_server}/matters?lang={lang}")
    page.click("#mt-tab-new")
    page.click("#mt-submit")
    assert page.inner_text("#mt-form-msg") == expected
    assert page.watch.console_errors == []


@pytest.mark.parametrize("lang,note", [("en", "Routed automatically"), ("zh", "智能流转")])
def test_the_automatic_routing_note_reads_in_the_pages_language(
        signed_in_page, live_server, engine, filed, lang, note):
    here = spot(engine, TOWN, 6)
    fresh = filed("district-operator", category="BJ.02", lon=here["lon"], lat=here["lat"],
                  title="路灯不亮")
    assert fresh["state"] == "transferred"
    # A matter routed before the note had a code (the demo data's): stored as "智能流转".
    with engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT matter_id FROM matter_events WHERE action = 'transfer' AND note = '智能流转' "
            "AND user_id IS NULL ORDER BY id LIMIT 1")).scalar()
    page = signed_in_page("district-operator")
    for matter_id in (fresh["id"], stored):
        open_page(page, f"{live_server}/matters/{matter_id}?lang={lang}")
        page.wait_for_function("() => document.documentElement.dataset.mtLoaded === '1'")
        notes = page.locator("#mt-timeline .mt-event[data-action='transfer'] .mt-event-note")
        texts = notes.all_inner_texts()
        assert note in texts
        assert lang == "zh" or not any("智能流转" in t for t in texts), texts
    assert page.watch.console_errors == []


@pytest.fixture
def seen_camera(engine, snapshot_file):
    """A camera of the town whose view covers a spot, with a sampled snapshot (restored after)."""
    with engine.connect() as conn:
        cam = conn.execute(text(
            "SELECT gb_id, name, snapshot_at, ST_X(ST_PointOnSurface(view_sector)) AS lon, "
            "ST_Y(ST_PointOnSurface(view_sector)) AS lat FROM cameras "
            "WHERE grid_code LIKE :t AND view_sector IS NOT NULL "
            "ORDER BY gb_id LIMIT 1"), {"t": TOWN + "%"}).mappings().one()
    with snapshot_file(cam["gb_id"], channel=0):
        with engine.begin() as conn:
            conn.execute(text("UPDATE cameras SET snapshot_at = now() WHERE gb_id = :g"),
                         {"g": cam["gb_id"]})
        try:
            yield dict(cam)
        finally:
            with engine.begin() as conn:
                conn.execute(text("UPDATE cameras SET snapshot_at = :t WHERE gb_id = :g"),
                             {"g": cam["gb_id"], "t": cam["snapshot_at"]})


def test_cameras_snapshot_evidence_and_video_dispatch(page, live_server, engine, filed,
                                                      seen_camera):
    m = filed("district-operator", category="CS.05", lon=seen_camera["lon"],
              lat=seen_camera["lat"], title="夜市占道")
    try:
        open_page(page, f"{live_server}/matters/{m['id']}")
        cam = page.locator(f"#mt-cameras li[data-gb='{seen_camera['gb_id']}']")
        cam.wait_for()
        assert seen_camera["name"] in cam.inner_text()
        page.wait_for_function(
            "g => { const i = document.querySelector(`li[data-gb='${g}'] img.mt-cam-snap`);"
            " return i && i.naturalWidth === 320; }", arg=seen_camera["gb_id"])
        # The camera is on the small map beside the matter.
        assert page.evaluate("gridmapMatters.state.camLayer.getLayers().length") >= 1
        cam.locator("button.mt-attach-snap").click()
        page.wait_for_function("() => document.documentElement.dataset.mtAttachments === '1'")
        thumb = page.locator("#mt-attachments a[data-kind='snapshot'] img.mt-thumb")
        thumb.wait_for()
        page.wait_for_function(
            "() => document.querySelector('#mt-attachments img.mt-thumb').naturalWidth === 320")
        # One click sends the video to the handling unit (preselected).
        assert page.locator("#mt-dispatch-unit option:checked").inner_text() == "鼓楼街道"
        page.click("#mt-dispatch")
        page.wait_for_function("() => Number(document.documentElement.dataset.mtDispatched) > 0")
        order = int(page.evaluate("document.documentElement.dataset.mtDispatched"))
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT o.incident_ref, array_agg(u.name) AS units FROM dispatch_orders o "
                "JOIN dispatch_targets t ON t.order_id = o.id JOIN units u ON u.id = t.unit_id "
                "WHERE o.id = :o GROUP BY o.id"), {"o": order}).one()
        assert row.incident_ref == m["ref"] and row.units == ["鼓楼街道"]
        assert page.watch.remote_requests() == []
        assert page.watch.console_errors == []
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dispatch_orders WHERE incident_ref = :r"),
                         {"r": m["ref"]})


def test_a_supervisions_respond_by_is_typed_and_shown_on_yanzhous_clock(
        signed_in_page, live_server, engine, filed):
    here = spot(engine, TOWN, 6)
    m = filed("district-operator", category="BJ.02", lon=here["lon"], lat=here["lat"], title="督办时限")
    # The operator's PC runs on another zone; the deadline typed is Yanzhou's 18:00.
    desk = signed_in_page("district-operator", timezone_id="America/New_York")
    open_page(desk, f"{live_server}/matters/{m['id']}")
    day = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=3)).date()
    desk.click("#mt-actions button[data-action='supervise']")
    desk.fill("#mt-action-form input[name=respond_by]", f"{day.isoformat()}T18:00")
    desk.fill("#mt-action-form textarea", "限期答复")
    desk.click("#mt-action-confirm")
    desk.wait_for_selector("#mt-supervisions li")
    with engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT respond_by FROM matter_supervisions WHERE matter_id = :m"), {"m": m["id"]}).scalar_one()
    assert stored == datetime(day.year, day.month, day.day, 10, 0, tzinfo=UTC)  # 18:00 at UTC+8
    shown = desk.inner_text("#mt-supervisions li .mt-meta")
    assert f"{day.month}月{day.day}日 18:00" in shown, shown
    assert desk.watch.console_errors == []
