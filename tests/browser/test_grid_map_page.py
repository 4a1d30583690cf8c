"""The first map page in a real browser: offline, grids drawn, hover and click work."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.browser


def test_map_page_is_offline_and_draws_all_grids(page, live_server):
    page.goto(live_server + "/")
    page.wait_for_function("() => document.documentElement.dataset.loadedGrids !== undefined")
    assert page.evaluate("document.documentElement.dataset.loadedGrids") == "930"
    assert page.locator("path.gm-grids").count() == 930
    assert page.watch.remote_requests() == []
    assert page.watch.console_errors == []


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
