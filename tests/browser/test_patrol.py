"""The patrol lead's phone page in real Chromium, with an emulated phone and GPS."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sqlalchemy import text

from video.sampler import SamplerConfig, snapshot_paths

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def phone(browser, request, auth_states):
    """A phone-sized page whose geolocation is a point in the old town (district patrol lead)."""
    from tests.browser.conftest import OUTPUT_DIR, PageWatch

    context = browser.new_context(
        viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True,
        locale="zh-CN", geolocation={"latitude": 35.5530, "longitude": 116.8260},
        permissions=["geolocation"], storage_state=auth_states("district-patrol"),
    )
    page = context.new_page()
    page.watch = PageWatch(page)
    yield page
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUTPUT_DIR / f"{request.node.name}.png"))
    context.close()


def expected_status(engine, lon: float, lat: float, shown: int) -> str:
    """Return the status line for a search that showed ``shown`` cameras.

    The page asks for the nearest 20: a full answer says "the nearest 20", not
    that 20 are all there are in range.
    """
    with engine.connect() as conn:
        in_range = conn.execute(text(
            "SELECT count(*) FROM cameras WHERE ST_DWithin(geom::geography, "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography, 500)"), {"x": lon, "y": lat}).scalar()
    assert shown == min(in_range, 20)
    return f"500 米内最近的 {shown} 个摄像头" if in_range >= 20 else f"500 米内 {shown} 个摄像头"


def test_cameras_near_me_from_geolocation(phone, live_server, engine):
    phone.goto(live_server + "/patrol")
    phone.wait_for_function("() => document.documentElement.dataset.nearbyCount !== undefined")
    count = int(phone.evaluate("document.documentElement.dataset.nearbyCount"))
    with engine.connect() as conn:
        expected = conn.execute(
            text(
                "SELECT gb_id FROM cameras WHERE ST_DWithin(geom::geography, "
                "ST_SetSRID(ST_MakePoint(116.8260, 35.5530), 4326)::geography, 500) "
                "ORDER BY ST_Distance(geom::geography, "
                "ST_SetSRID(ST_MakePoint(116.8260, 35.5530), 4326)::geography) LIMIT 20"
            )
        ).scalars().all()
    assert count == len(expected) > 0
    assert phone.locator("#patrol-status").inner_text() == expected_status(
        engine, 116.8260, 35.5530, count)
    items = phone.locator("button.patrol-item")
    assert items.count() == count
    shown = set(items.evaluate_all("els => els.map(e => e.dataset.gbId)"))
    assert shown == set(expected)
    first_text = items.first.inner_text()
    assert " m" in first_text and "°" in first_text
    # One-handed: every tap target is at least 44 px high and inside the screen.
    boxes = items.evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    assert min(boxes) >= 44
    locate = phone.locator("#patrol-locate").bounding_box()
    assert locate["y"] + locate["height"] <= PHONE["height"] and locate["height"] >= 44
    # Whom to call at the spot: the grid's leader and full-time worker, under the thumb.
    with engine.connect() as conn:
        grid, leader_phone = conn.execute(text(
            "SELECT g.code, w.phone FROM grids g JOIN grid_workers w ON w.grid_id = g.id "
            "WHERE ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(116.8260, 35.5530), 4326)) "
            "AND w.role = 'leader' AND w.left_at IS NULL")).one()
    phone.wait_for_function("code => document.documentElement.dataset.patrolGrid === code", arg=grid)
    call = phone.locator('.patrol-contact[data-role="leader"] a.patrol-call')
    assert call.get_attribute("href") == "tel:" + leader_phone and call.inner_text() == "呼叫"
    box = call.bounding_box()
    assert box["height"] >= 44 and box["y"] + box["height"] <= PHONE["height"]
    assert box["x"] + box["width"] <= PHONE["width"]
    assert phone.locator(".patrol-contact").count() == 2
    assert phone.watch.remote_requests() == []
    assert phone.watch.console_errors == []


def test_tap_on_map_searches_there_and_opens_a_camera(phone, live_server, engine):
    phone.goto(live_server + "/patrol")
    phone.wait_for_function("() => document.documentElement.dataset.nearbyCount !== undefined")
    with engine.connect() as conn:
        gb_id, lon, lat = conn.execute(
            text("SELECT gb_id, ST_X(geom), ST_Y(geom) FROM cameras WHERE source = 'water' "
                 "ORDER BY gb_id LIMIT 1")
        ).one()
        # A neighbour the sampler tried but never got a picture from.
        tried = conn.execute(text(
            "SELECT gb_id FROM cameras WHERE gb_id <> :g ORDER BY geom::geography <-> "
            "ST_SetSRID(ST_MakePoint(:x, :y), 4326)::geography LIMIT 1"),
            {"g": gb_id, "x": lon, "y": lat}).scalar_one()
    # Give the camera a snapshot, as the sampler would: three days ago, before it
    # went offline. The sampler has tried it since (last_sample_at), in vain.
    latest, thumb = snapshot_paths(SamplerConfig().snapshots(), gb_id)
    latest.parent.mkdir(parents=True, exist_ok=True)
    frame = np.full((180, 320, 3), (40, 160, 40), np.uint8)
    latest.write_bytes(cv2.imencode(".jpg", frame)[1].tobytes())
    thumb.write_bytes(cv2.imencode(".jpg", frame[::2, ::2])[1].tobytes())
    with engine.begin() as conn:
        taken = conn.execute(text(
            "UPDATE cameras SET last_sample_at = now(), snapshot_at = now() - interval '3 days' "
            "WHERE gb_id = :g RETURNING snapshot_at"), {"g": gb_id}).scalar_one()
        conn.execute(text("UPDATE cameras SET last_sample_at = now() WHERE gb_id = :g"),
                     {"g": tried})
    try:
        phone.evaluate("([lat, lon]) => gridmapPatrol.search(lat, lon)", [lat, lon])
        phone.wait_for_function(
            "gb => document.querySelector(`button.patrol-item[data-gb-id='${gb}']`)", arg=gb_id
        )
        item = phone.locator(f"button.patrol-item[data-gb-id='{gb_id}']")
        assert "0 m" in item.inner_text()  # the camera stands where we searched
        shown = phone.locator("button.patrol-item").count()
        assert phone.locator("#patrol-status").inner_text() == expected_status(
            engine, lon, lat, shown)
        # Only a camera with a stored picture is asked for a thumbnail.
        assert item.locator("img.patrol-thumb").get_attribute("src")
        assert phone.locator(f"button.patrol-item[data-gb-id='{tried}'] img.patrol-thumb"
                             ).get_attribute("src") is None
        item.click()
        viewer = phone.locator("#patrol-viewer")
        viewer.wait_for(state="visible")
        img = viewer.locator("img.patrol-snapshot")
        img.wait_for()
        phone.wait_for_function("() => document.querySelector('img.patrol-snapshot').naturalWidth > 0")
        assert "水利" in viewer.inner_text()
        # How fresh it is: when the picture was taken (with its day, as it is not
        # today's), not when the sampler last tried the camera.
        taken_label = viewer.locator(".patrol-taken").inner_text()
        day = phone.evaluate(
            "iso => new Date(iso).toLocaleString('zh-CN', {timeZone: 'Asia/Shanghai', month: '2-digit', day: '2-digit'})",
            taken.isoformat())
        assert "截图时间" in taken_label and day in taken_label, (taken_label, day)
        # One-handed: both actions inside the screen, in its lowest fifth.
        for action in (viewer.locator("a.patrol-live"), viewer.locator("button.patrol-back")):
            box = action.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
            assert box["y"] >= PHONE["height"] * 0.8 and box["y"] + box["height"] <= PHONE["height"]
            assert box["height"] >= 44
        viewer.locator("button.patrol-back").tap()
        assert not viewer.is_visible()
        assert item.is_visible()
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE cameras SET last_sample_at = NULL, snapshot_at = NULL "
                              "WHERE gb_id IN (:g, :t)"), {"g": gb_id, "t": tried})
        latest.unlink(missing_ok=True)
        thumb.unlink(missing_ok=True)
    assert phone.watch.remote_requests() == []


def test_the_account_menu_starts_folded_on_a_phone(phone, live_server):
    # Open, the menu covered a third of the small map; folded, it is one tap away.
    phone.goto(live_server + "/patrol")
    phone.wait_for_function("() => document.documentElement.dataset.nearbyCount !== undefined")
    toggle = phone.locator("button.gm-user-name")
    sign_out = phone.locator(".gm-user a[href='/logout']")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert not sign_out.is_visible()
    assert toggle.bounding_box()["height"] >= 44  # one-handed tap target
    toggle.tap()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert sign_out.is_visible() and sign_out.inner_text() == "退出登录"
    assert sign_out.bounding_box()["height"] >= 44
    # Metric scale only, and Leaflet credited in plain text.
    assert "ft" not in phone.inner_text(".leaflet-control-scale")
    assert phone.locator(".leaflet-control-scale-line").count() == 1
    attribution = phone.locator(".leaflet-control-attribution")
    assert attribution.inner_text().strip() == "Leaflet"
    assert attribution.locator("svg, img, a").count() == 0
    assert phone.watch.console_errors == []


def test_the_live_page_keeps_its_actions_under_the_thumb(phone, live_server, engine):
    with engine.connect() as conn:
        gb_id = conn.execute(text("SELECT gb_id FROM cameras ORDER BY gb_id LIMIT 1")).scalar_one()
    phone.goto(f"{live_server}/cameras/{gb_id}/live")
    finding = phone.locator(".vw-tile .vw-finding")
    finding.wait_for()
    box = finding.bounding_box()
    assert box["height"] >= 44
    assert box["y"] >= PHONE["height"] * 0.8 and box["y"] + box["height"] <= PHONE["height"]
    assert box["x"] + box["width"] <= PHONE["width"]
    # The picture area starts right under the page header: the tile's bar moved down.
    header = phone.locator(".vw-bar").bounding_box()
    body = phone.locator(".vw-tile .vw-body").bounding_box()
    assert body["y"] <= header["y"] + header["height"] + 2
    assert phone.watch.remote_requests() == []
