"""The first map page in a real browser: offline, grids drawn, hover and click work."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def _rgb(hex_color: str) -> str:
    """Return a #rrggbb colour as the browser computes it."""
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_map_page_is_offline_and_draws_all_grids(page, live_server, engine):
    from sqlalchemy import text

    page.goto(live_server + "/")
    page.wait_for_function("() => document.documentElement.dataset.loadedGrids !== undefined")
    assert page.evaluate("document.documentElement.dataset.loadedGrids") == "930"
    assert page.locator("path.gm-grids").count() == 930
    # The legend names each kind of grid in the colour it is drawn, with its count.
    with engine.connect() as conn:
        kinds = dict(conn.execute(text("SELECT kind, count(*) FROM grids GROUP BY kind")).all())
    legend = page.locator("#gm-legend")
    assert legend.get_attribute("open") is not None
    for kind, label in (("urban", "城市网格"), ("rural", "农村网格"), ("special", "专属网格")):
        if not kinds.get(kind):
            assert legend.locator(f'[data-kind="{kind}"]').count() == 0
            continue
        row = legend.locator(f'[data-kind="{kind}"]')
        assert row.inner_text() == f"{label} {kinds[kind]:,}"
        swatch = row.locator(".gm-legend-swatch").evaluate("e => getComputedStyle(e).backgroundColor")
        drawn = page.locator('path.gm-grids[data-code]').evaluate_all(
            "(els, kind) => els.filter(e => e.getAttribute('data-kind') === kind)"
            ".map(e => e.getAttribute('fill'))", kind)
        assert drawn and swatch == _rgb(drawn[0])
    assert page.watch.remote_requests() == []
    assert page.watch.console_errors == []


def test_the_grids_are_not_930_tab_stops(page, live_server):
    page.goto(live_server + "/")
    page.wait_for_function("() => document.documentElement.dataset.loadedGrids !== undefined")
    # Ten Tabs from the top stay among the page's controls, never on a grid's outline.
    page.locator("body").focus()
    for _ in range(10):
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.tagName.toLowerCase()") != "path"
    assert page.locator('path.gm-grids:not([tabindex="-1"])').count() == 0


def test_hover_shows_name_and_code_and_click_shows_counts(page, live_server, engine):
    from sqlalchemy import text

    with engine.connect() as conn:
        code, name, houses = conn.execute(
            text("SELECT code, name, houses FROM grids WHERE kind = 'rural' ORDER BY houses DESC LIMIT 1")
        ).one()
    page.goto(live_server + "/")
    page.wait_for_function("() => document.documentElement.dataset.loadedGrids === '930'")
    grid = page.locator(f'path.gm-grids[data-code="{code}"]')
    grid.hover(force=True)
    # The pointer crosses other grids on its way, so find the tooltip of this one.
    tip = page.locator(".leaflet-tooltip", has_text=code)
    tip.wait_for()
    assert name in tip.inner_text()
    grid.click(force=True)
    popup = page.locator(".gm-popup")
    popup.wait_for()
    houses_cell = popup.locator('tr[data-key="houses"] td').inner_text()
    assert int(re.sub(r"\D", "", houses_cell)) == houses


def test_english_switch(page, live_server):
    page.goto(live_server + "/?lang=en")
    page.wait_for_function("() => document.documentElement.dataset.loadedGrids === '930'")
    assert "Yanzhou" in page.locator(".gm-title").inner_text()
    assert page.locator(".leaflet-control-layers").inner_text().count("Grids") == 1


def test_times_read_on_yanzhous_clock_whatever_the_browsers_zone(signed_in_page, live_server):
    # A kiosk PC that runs on New York's zone: 2026-11-26T17:30Z is still the 26th
    # there, but 01:30 on the 27th in Yanzhou, and that is what the pages show.
    page = signed_in_page("district-operator", timezone_id="America/New_York")
    page.goto(live_server + "/")
    page.wait_for_function("() => document.documentElement.dataset.loadedGrids !== undefined")
    day_and_time = "{month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit'}"
    assert page.evaluate(f"gridmap.dateTime('2026-11-26T17:30:00Z', {day_and_time})") == "11/27 01:30"
    assert page.evaluate(
        f"gridmap.dateTime('2026-11-26T17:30:00Z', {day_and_time}, 'en')") == "27/11, 01:30"
    # A time of day gets its date only when it is not today's, today on Yanzhou's clock.
    assert re.fullmatch(r"\d\d:\d\d", page.evaluate("gridmap.timeOfDay(new Date())"))
    assert page.evaluate("gridmap.timeOfDay('2026-11-26T17:30:00Z')") == "11/27 01:30"
    assert page.evaluate("gridmap.dateTime('not a time', {})") == "not a time"
