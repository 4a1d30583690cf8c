"""The map wall aims its fits and centrings at the part of the map the panel leaves
free: beside the desk panel, above the phone's sheet, below the top bar."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.browser.test_map_wall import PANEL_IS, isolated_camera, open_wall, zoom_to
from tests.browser.test_wall_grid_panel import GRID_NAME, PHONE, tap_grid

pytestmark = pytest.mark.browser

# Where the panel, the top bar and a grid's outline (by its WGS-84 bbox) are on screen.
BOXES = """([w, s, e, n]) => {
  const api = gridmapWall.api, nw = api.toScreen(w, n), se = api.toScreen(e, s);
  const panel = document.getElementById('wall-panel').getBoundingClientRect();
  const bar = document.getElementById('wall-bar').getBoundingClientRect();
  return {grid: {left: nw.x, top: nw.y, right: se.x, bottom: se.y},
          panel: {left: panel.left, top: panel.top}, barBottom: bar.bottom,
          width: innerWidth, height: innerHeight};
}"""


def grid_bbox(engine, where: str, params: dict) -> dict:
    """Return a grid's code and WGS-84 bbox [w, s, e, n]."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT code, ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) "
            f"FROM grids WHERE {where} LIMIT 1"), params).one()
    return {"code": row[0], "bbox": list(row[1:])}


def settled(page) -> None:
    """Wait until the map has stopped moving (a fit animates)."""
    page.wait_for_function("() => !gridmapWall.state.map._animatingZoom"
                           " && !gridmapWall.state.map._panAnim?._inProgress")
    page.wait_for_timeout(400)


def test_zoom_to_on_a_phone_puts_the_grid_above_the_sheet(signed_in_page, live_server, engine):
    phone = signed_in_page("district-operator", **PHONE)
    open_wall(phone, live_server)
    code = tap_grid(phone, engine, GRID_NAME)
    phone.locator(".wall-actions .wall-action:not([data-action])").tap()
    settled(phone)
    b = phone.evaluate(BOXES, grid_bbox(engine, "code = :c", {"c": code})["bbox"])
    grid = b["grid"]
    assert grid["top"] >= b["barBottom"] and grid["bottom"] <= b["panel"]["top"], b
    assert grid["left"] >= 0 and grid["right"] <= b["width"], b
    # Centred in the strip of map between the bar and the sheet.
    middle = (b["barBottom"] + b["panel"]["top"]) / 2
    assert abs((grid["top"] + grid["bottom"]) / 2 - middle) < 20, (b, middle)
    assert phone.watch.console_errors == []


def test_a_grid_found_on_the_desk_is_fitted_beside_the_panel(page, live_server, engine):
    # The widest grid: fitted on the whole map it would reach under the panel.
    grid = grid_bbox(engine, "TRUE ORDER BY (ST_XMax(geom) - ST_XMin(geom)) "
                     "/ (ST_YMax(geom) - ST_YMin(geom)) DESC", {})
    open_wall(page, live_server)
    page.fill("#wall-search", grid["code"])
    page.locator(f'.wall-result[data-type="grid"][data-id="{grid["code"]}"]').click()
    page.wait_for_function(PANEL_IS, arg=f"grid:{grid['code']}")
    settled(page)
    b = page.evaluate(BOXES, grid["bbox"])
    assert b["grid"]["left"] >= 0 and b["grid"]["right"] <= b["panel"]["left"], b
    assert abs((b["grid"]["left"] + b["grid"]["right"]) / 2 - b["panel"]["left"] / 2) < 20, b
    assert page.watch.console_errors == []


def test_a_camera_tapped_low_on_a_phone_is_not_left_under_the_sheet(signed_in_page, live_server,
                                                                    engine):
    cam = isolated_camera(engine)
    phone = signed_in_page("district-operator", **PHONE)
    open_wall(phone, live_server)
    zoom_to(phone, cam["lon"], cam["lat"], 18)
    phone.evaluate("() => { gridmapWall.state.map.panBy([0, -300], {animate: false}); }")
    phone.wait_for_timeout(300)
    point = phone.evaluate("g => gridmapWall.api.cameraPoint(g)", cam["gb_id"])
    assert point["y"] > 844 * 0.6  # where the sheet will be
    phone.touchscreen.tap(point["x"], point["y"])
    phone.wait_for_function(PANEL_IS, arg=f"camera:{cam['gb_id']}")
    settled(phone)
    after = phone.evaluate("g => gridmapWall.api.cameraPoint(g)", cam["gb_id"])
    sheet_top = phone.evaluate("() => document.getElementById('wall-panel')"
                               ".getBoundingClientRect().top")
    bar_bottom = phone.evaluate("() => document.getElementById('wall-bar')"
                                ".getBoundingClientRect().bottom")
    assert bar_bottom < after["y"] < sheet_top, (after, sheet_top, bar_bottom)
    assert phone.watch.console_errors == []
