"""Open matters and dispatch orders on the map wall (real Chromium, demo data)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.browser.test_map_wall import PANEL_IS, grid_click_point, open_wall, zoom_to

pytestmark = pytest.mark.browser

OVERDUE_RED = "#e31a1c"


@pytest.fixture
def overdue_matter(engine):
    """Commit an overdue routine matter inside a grid; delete it (and its steps) afterwards."""
    from gridmap import accounts, matters

    grid = grid_click_point(engine)
    with engine.connect() as conn:
        lon, lat = conn.execute(text(
            "SELECT ST_X(p.geom), ST_Y(p.geom) FROM grids g, "
            "ST_Dump(ST_GeneratePoints(g.geom, 1, 5)) p WHERE g.code = :c"),
            {"c": grid["code"]}).one()
    title = f"墙面测试<b>{uuid.uuid4().hex[:6]}</b>"
    with Session(engine) as s:
        user = s.scalar(select(accounts.User).where(accounts.User.username == "district-operator"))
        m = matters.intake(s, accounts.actor_for(s, user), {
            "source": "grid_worker", "category": "SJ.04", "lon": lon, "lat": lat,
            "title": title, "urgency": "routine",
            # Reported five days ago and never accepted: every 1-2-3 clock has run out.
            "reported_at": (datetime.now(UTC) - timedelta(days=5)).isoformat(),
        })
        s.commit()
    try:
        yield {**m, "grid": grid}
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM matters WHERE id = :i"), {"i": m["id"]})


def test_overdue_matters_are_drawn_and_listed_in_the_grid_panel(page, live_server, overdue_matter):
    m = overdue_matter
    assert m["state"] == "transferred"
    open_wall(page, live_server)
    layer = page.evaluate("() => fetch('/api/matters.geojson?overdue=1').then(r => r.json())")
    ours = [f for f in layer["features"] if f["properties"]["id"] == m["id"]]
    assert len(ours) == 1 and ours[0]["properties"]["overdue"]
    # The default-on overdue layer drew every feature the API returned, ours in red.
    page.wait_for_function(
        "n => document.documentElement.dataset.wallMatters_overdue === String(n)",
        arg=len(layer["features"]))
    drawn = page.evaluate(
        "id => { let c = null; gridmapWall.state.layers.matters_overdue.eachLayer(l => {"
        " if (l.feature.properties.id === id) c = l.options.fillColor; }); return c; }", m["id"])
    assert drawn == OVERDUE_RED
    # The grid's panel lists the open matter, its markup shown as text.
    grid = m["grid"]
    zoom_to(page, grid["lon"], grid["lat"], 16)
    point = page.evaluate("([lon, lat]) => gridmapWall.api.toScreen(lon, lat)",
                          [grid["lon"], grid["lat"]])
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(PANEL_IS, arg=f"grid:{grid['code']}")
    section = page.locator('.wall-section-extra[data-section="matters"]')
    section.locator(".wall-extra-title", has_text=m["title"]).wait_for()
    assert section.locator("b").count() == 0
    assert page.watch.console_errors == []
    assert page.watch.remote_requests() == []
