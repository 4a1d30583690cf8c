"""The crowd page (/crowd) in real headless Chromium against the demo data."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.crowdReady === '1'"
MARK = "browser-test"  # the method of every reading these tests commit

# Pixels of the live heat canvas that are painted (alpha > 0).
PAINTED = """() => {
  const c = window.gridmapCrowd.state.heat._canvas;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) { n++; } }
  return n;
}"""


@contextmanager
def crowd_scene(engine, alert: bool = False):
    """Commit fresh readings (and optionally an alert) for five demo crowd cameras."""
    from video import crowd
    from video.crowd import Reading, Source

    with Session(engine) as session:
        cams = session.execute(text(
            "SELECT c.id, c.gb_id FROM cameras c JOIN crowd_cameras k ON k.camera_id = c.id "
            "WHERE c.grid_code LIKE '370812001%' ORDER BY c.id LIMIT 5"
        )).all()
        assert len(cams) == 5, "the demo loader calibrates the 'crowd' cameras"
        now = datetime.now(UTC)
        alert_ids = []
        for i, cam in enumerate(cams):
            source = Source("camera", cam.id, threshold=1.0)
            readings = [Reading(now - timedelta(minutes=m), 40 + 30 * i, 80.0, MARK)
                        for m in (2, 1)]
            new = crowd.record_readings(session, source, readings)
            if alert and i == 4:
                crowd.advance_alerts(session, source, new)
                alert_ids = list(session.execute(
                    text("SELECT id FROM crowd_alerts WHERE camera_id = :id AND state <> 'closed'"),
                    {"id": cam.id}).scalars())
        session.commit()
    try:
        yield {"cameras": cams, "alerts": alert_ids}
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM crowd_alerts WHERE id = ANY(:ids)"), {"ids": alert_ids})
            conn.execute(text("DELETE FROM crowd_readings WHERE method = :m"), {"m": MARK})
            conn.execute(text(
                "UPDATE crowd_cameras SET alert_active = false, above_run = 0, below_run = 0, "
                "alert_seen_at = NULL WHERE camera_id = ANY(:ids)"),
                {"ids": [c.id for c in cams]})


def open_crowd(page, live_server, query: str = "") -> None:
    page.goto(live_server + "/crowd" + query)
    page.wait_for_function(READY, timeout=20_000)


def test_crowd_page_is_offline_and_draws_the_heat(page, live_server, engine):
    with crowd_scene(engine) as scene:
        open_crowd(page, live_server)
        assert int(page.evaluate("document.documentElement.dataset.crowdHeat")) >= len(
            scene["cameras"])
        page.wait_for_function(f"() => ({PAINTED})() > 0", timeout=10_000)
        assert int(page.evaluate("document.documentElement.dataset.crowdGrids")) >= 1
        # The choropleth draws the grid of those cameras as a filled SVG path.
        assert page.locator(".leaflet-crowdGrids-pane path").count() >= 1
    assert page.watch.remote_requests() == []
    assert page.watch.console_errors == []


def test_heat_refreshes_without_reloading(page, live_server, engine):
    open_crowd(page, live_server)
    before = int(page.evaluate("document.documentElement.dataset.crowdHeat"))
    page.evaluate("window.__marker = 'same page'")
    with crowd_scene(engine) as scene:
        page.evaluate("window.gridmapCrowd.refresh.heat()")
        page.wait_for_function(
            f"() => Number(document.documentElement.dataset.crowdHeat) >= {before + len(scene['cameras'])}",
            timeout=10_000)
    assert page.evaluate("window.__marker") == "same page"
    assert page.watch.console_errors == []


def test_replay_has_a_time_slider_and_replaces_the_live_heat(page, live_server, engine):
    with crowd_scene(engine):
        open_crowd(page, live_server)
        control = page.locator(".leaflet-control-timecontrol").first
        assert not control.is_visible()
        page.get_by_text("24小时回放").click()
        control.wait_for(state="visible")
        # Frames are fetched from /api/crowd/replay when the replay is switched on.
        page.wait_for_function("() => document.documentElement.dataset.crowdReplay === '96'")
        state = page.evaluate("""() => {
          const s = window.gridmapCrowd.state;
          return {replay: s.map.hasLayer(s.replay), heat: s.map.hasLayer(s.heat),
                  frames: s.replay.data.length,
                  // The fresh readings are 1-2 minutes old: in the last step or the one before.
                  recent: s.replay.data.slice(-2).reduce((n, f) => n + f.length, 0)};
        }""")
        assert state["replay"] and not state["heat"]
        assert state["frames"] == 96 and state["recent"] >= 5  # 24 h in 15-minute steps
        page.get_by_text("24小时回放").click()
        control.wait_for(state="hidden")
        assert page.evaluate("window.gridmapCrowd.state.map.hasLayer(window.gridmapCrowd.state.heat)")
    assert page.watch.remote_requests() == []  # the control's icon font stays unloaded
    assert page.watch.console_errors == []


def test_alert_panel_acknowledges_without_reloading(page, live_server, engine):
    with crowd_scene(engine, alert=True) as scene:
        (alert_id,) = scene["alerts"]
        open_crowd(page, live_server, "?lang=en")
        item = page.locator(f"li[data-alert-id='{alert_id}']")
        assert item.get_attribute("data-state") == "open"
        # The title counts the open alerts the panel lists (a folded panel still tells).
        listed = page.locator("#crowd-alerts li[data-alert-id]").count()
        assert page.locator("#crowd-panel-title").inner_text() == f"Crowd alerts ({listed})"
        # However many alerts it lists, the panel stops above the legend.
        lowest, legend_top = page.evaluate("""() => {
            const panel = document.querySelector('.crowd-panel');
            const top = panel.getBoundingClientRect().top;
            return [top + parseFloat(getComputedStyle(panel).maxHeight),
                    document.querySelector('.crowd-legend').getBoundingClientRect().top];
        }""")
        assert lowest <= legend_top
        item.locator("input").fill("patrol sent")
        item.locator("button.crowd-ack").click()
        page.wait_for_selector(f"li[data-alert-id='{alert_id}'][data-state='acknowledged']")
        # Closing needs a note; without one nothing is sent.
        item = page.locator(f"li[data-alert-id='{alert_id}']")
        item.locator("button.crowd-close").click()
        assert "note" in page.locator("#crowd-status").inner_text()
        item.locator("input").fill("crowd dispersed")
        item.locator("button.crowd-close").click()
        page.wait_for_selector(f"li[data-alert-id='{alert_id}']", state="detached")
        with engine.connect() as conn:
            state, notes = conn.execute(text("SELECT state, notes FROM crowd_alerts WHERE id = :id"),
                                        {"id": alert_id}).one()
        assert state == "closed" and [n["note"] for n in notes] == ["patrol sent", "crowd dispersed"]
    assert page.watch.remote_requests() == []
    assert page.watch.console_errors == []


def test_the_layer_list_is_folded_on_a_phone_and_open_on_a_desk(page, signed_in_page, live_server):
    open_crowd(page, live_server)
    desk_item = page.locator(".leaflet-control-layers-overlays label").first
    assert desk_item.is_visible()
    phone = signed_in_page("district-operator", viewport={"width": 390, "height": 844},
                           has_touch=True, is_mobile=True)
    open_crowd(phone, live_server)
    control = phone.locator(".leaflet-control-layers")
    assert not phone.locator(".leaflet-control-layers-overlays label").first.is_visible()
    control.locator(".leaflet-control-layers-toggle").tap()  # a tap unfolds it
    phone.wait_for_function(
        "() => document.querySelector('.leaflet-control-layers')"
        ".classList.contains('leaflet-control-layers-expanded')")
    assert phone.locator(".leaflet-control-layers-overlays label").first.is_visible()
    # The alert panel, too, is folded to its title, and a tap opens it.
    head = phone.locator("#crowd-panel-title")
    assert head.get_attribute("aria-expanded") == "false"
    assert not phone.locator("#crowd-status").is_visible()
    head.tap()
    assert head.get_attribute("aria-expanded") == "true"
    assert phone.locator("#crowd-status").is_visible()
    assert page.locator("#crowd-panel-title").get_attribute("aria-expanded") == "true"  # the desk's
    assert phone.watch.console_errors == []


@pytest.mark.parametrize(("query", "replay", "one", "ten"), [
    ("", "24小时回放", "1帧/秒", "10帧/秒"), ("?lang=en", "24-hour replay", "1 fps", "10 fps")],
    ids=["zh", "en"])
def test_the_replay_speed_is_said_in_the_page_language(page, live_server, query, replay, one, ten):
    open_crowd(page, live_server, query)
    speed = page.locator(".timecontrol-speed .speed").first
    assert speed.inner_text() == one
    # Moved on the slider, the speed is still said in the page's language.
    page.get_by_text(replay).click()
    speed.wait_for(state="visible")
    page.evaluate("""() => window[window.GRIDMAP.crowd.replay_control]._sliderSpeed.setValue(10)""")
    assert speed.inner_text() == ten
    assert speed.evaluate("e => e.scrollWidth <= e.clientWidth")  # the words fit their box
    assert page.watch.console_errors == []


def test_a_failed_refresh_of_the_walls_crowd_alerts_leaves_no_uncaught_error(page, live_server):
    # The map wall refreshes its crowd alert layer every 15 s; a refresh that gets no
    # answer keeps the layer as drawn and is tried again, without an uncaught rejection.
    asked: list[str] = []

    def no_answer(route):
        asked.append(route.request.url)
        route.abort("internetdisconnected")

    page.clock.install()
    page.goto(live_server + "/wall")
    page.wait_for_function("() => document.documentElement.dataset.wallReady === '1'", timeout=20_000)
    page.route("**/api/alerts.geojson*", no_answer)
    for _ in range(2):
        page.clock.fast_forward(16_000)
        page.wait_for_timeout(500)
    assert asked, "the timer asked for the alerts again"
    # Switched off and on again: the same.
    toggle = page.locator('.wall-layers input[data-layer="alerts"]')
    toggle.uncheck()
    toggle.check()
    page.wait_for_timeout(500)
    assert len(asked) >= 3
    assert page.watch.console_errors == []
