"""The map wall marks a layer whose refresh failed instead of showing its old data as
live: a role=status notice with the time of its last good load, the layer faded and
flagged in the layer list; the next good refresh clears all of it. Timers are driven
by Playwright's clock, the failures by ``page.route``."""

from __future__ import annotations

import datetime as dt
import json

import pytest

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.wallReady === '1'"
STALE_FLAG = "keys => (document.documentElement.dataset.wallStale || '') === keys"
# 10:42 on Yanzhou's clock (UTC+8): the wall's "last updated" reads this.
START = dt.datetime(2026, 3, 2, 2, 42, 0, tzinfo=dt.UTC)
OVERDUE = "matters_overdue"  # on by default, refreshed every 30 s
OVERDUE_URL = "**/api/matters.geojson?overdue=1"
HEAT_URL = "**/api/crowd/heat.geojson*"
# A few crowd readings in the old town (lon, lat, weight).
HEAT = [[116.826 + i * 0.002, 35.553 + (i % 3) * 0.002, 0.8] for i in range(12)]


def open_wall(page, live_server, query: str = "") -> None:
    """Load the wall on a clock Playwright drives (it starts at START) until it is ready."""
    page.clock.install(time=START)
    page.goto(live_server + "/wall" + query)
    page.wait_for_function(READY, timeout=20_000)


def tick(page, ms: int) -> None:
    """Move the page's clock on (each due timer fires once) and let the fetches settle."""
    page.clock.fast_forward(ms)
    page.wait_for_timeout(600)


def fail(how: str):
    """Return a route handler that fails the way ``how`` says (abort, 503, 401)."""
    if how == "abort":
        return lambda route: route.abort("internetdisconnected")
    status = int(how)
    body = {"reason": "unauthenticated" if status == 401 else "unavailable"}
    return lambda route: route.fulfill(status=status, content_type="application/json",
                                       body=json.dumps(body))


def stale_notice(page) -> dict:
    """Return the notice's role, live setting and lines as shown."""
    return page.evaluate("""() => {
      const box = document.getElementById('wall-stale');
      return {role: box.getAttribute('role'), live: box.getAttribute('aria-live'),
              lines: [...box.querySelectorAll('.wall-stale-item')].map(e => e.innerText.trim()),
              visible: [...box.querySelectorAll('.wall-stale-item')].every(e => e.getClientRects().length > 0)};
    }""")


def overdue_paths(page) -> dict:
    """Return how many overdue-matter dots are drawn and their stroke opacities."""
    return page.evaluate("""() => {
      const paths = [...document.querySelectorAll('path.wall-matters_overdue')];
      return {n: paths.length, layer: gridmapWall.state.layers.matters_overdue.getLayers().length,
              opacity: [...new Set(paths.map(p => p.getAttribute('stroke-opacity')))]};
    }""")


def layer_flagged(page, key: str) -> bool:
    return page.evaluate(
        "key => document.querySelector(`.wall-layers input[data-layer='${key}']`)"
        ".parentNode.classList.contains('wall-layer-stale')", key)


@pytest.mark.parametrize("how", ["abort", "503", "401"])
def test_a_failed_refresh_keeps_the_layer_marked_with_its_last_update(page, live_server, how):
    open_wall(page, live_server)
    page.wait_for_function("() => Number(document.documentElement.dataset.wallMatters_overdue) > 0")
    before = overdue_paths(page)
    assert before["n"] == before["layer"] > 0 and before["opacity"] == ["1"]
    assert stale_notice(page)["lines"] == []

    page.watch.expect_errors = True
    page.route(OVERDUE_URL, fail(how))
    tick(page, 31_000)  # the layer's 30-second refresh
    page.wait_for_function(STALE_FLAG, arg=OVERDUE)
    notice = stale_notice(page)
    assert notice["role"] == "status" and notice["live"] == "polite"
    # The time of the load that worked, on Yanzhou's clock, not "now" or the browser's zone.
    assert notice["lines"] == ["超期事项数据未更新 · 最后更新 10:42"] and notice["visible"]
    during = overdue_paths(page)
    assert during["n"] == before["n"] and during["layer"] == before["layer"]  # the old data stays
    assert during["opacity"] == ["0.35"]  # drawn faded
    assert layer_flagged(page, OVERDUE)
    freshness = page.evaluate("() => gridmapWall.api.freshness('matters_overdue')")
    assert freshness["failed"] and freshness["stale"]
    last_good = freshness["at"]

    # Failing again changes nothing (a screen reader is not told again).
    page.evaluate("""() => { const box = document.getElementById('wall-stale');
      window.staleWrites = 0;
      new MutationObserver(r => { window.staleWrites += r.length; })
        .observe(box, {childList: true, subtree: true, characterData: true}); }""")
    tick(page, 31_000)
    assert page.evaluate("() => window.staleWrites") == 0
    assert page.evaluate("() => gridmapWall.api.freshness('matters_overdue').at") == last_good

    # The next refresh that works clears the mark by itself.
    page.unroute(OVERDUE_URL)
    tick(page, 31_000)
    page.wait_for_function(STALE_FLAG, arg="")
    assert stale_notice(page)["lines"] == []
    after = overdue_paths(page)
    assert after["n"] == before["n"] and after["opacity"] == ["1"]
    assert not layer_flagged(page, OVERDUE)
    assert page.evaluate("() => gridmapWall.api.freshness('matters_overdue').at") > last_good
    errors = [e for e in page.watch.console_errors if not e.startswith(("HTTP 503", "HTTP 401"))]
    assert errors == []


def heat_pixels(page) -> int:
    """Return how many pixels of the crowd heat's canvas are painted."""
    return page.evaluate("""() => {
      const c = gridmapWall.state.layers.crowd_heat._canvas;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) { n++; } }
      return n;
    }""")


def test_stale_crowd_heat_is_faded_and_said_in_english(page, live_server):
    answers = {"fail": False}

    def heat(route):
        if answers["fail"]:
            route.fulfill(status=503, content_type="application/json", body="{}")
        else:
            route.fulfill(status=200, content_type="application/json",
                          body=json.dumps({"points": HEAT}))

    page.route(HEAT_URL, heat)
    open_wall(page, live_server, "?lang=en")
    page.evaluate("() => gridmapWall.api.setView(116.837, 35.555, 14)")
    page.locator('.wall-layers input[data-layer="crowd_heat"]').check()
    page.wait_for_function("() => gridmapWall.state.layers.crowd_heat._latlngs.length === 12")
    page.wait_for_timeout(300)
    painted = heat_pixels(page)
    assert painted > 0

    page.watch.expect_errors = True
    answers["fail"] = True
    tick(page, 31_000)  # the heat's 30-second refresh
    page.wait_for_function(STALE_FLAG, arg="crowd_heat")
    assert stale_notice(page)["lines"] == ["Crowd heat not updated · last updated 10:42"]
    # Still drawn, from the last readings, but faded and flagged.
    assert page.evaluate("() => gridmapWall.state.layers.crowd_heat._latlngs.length") == 12
    assert heat_pixels(page) == painted
    canvas = page.locator("canvas.leaflet-heatmap-layer")
    assert "wall-stale-layer" in canvas.get_attribute("class")
    assert float(canvas.evaluate("c => getComputedStyle(c).opacity")) < 0.5
    assert layer_flagged(page, "crowd_heat")

    # Switched off, the layer is not reported; switched on again (and still failing), it is.
    page.locator('.wall-layers input[data-layer="crowd_heat"]').uncheck()
    page.wait_for_function(STALE_FLAG, arg="")
    assert stale_notice(page)["lines"] == []
    page.locator('.wall-layers input[data-layer="crowd_heat"]').check()
    page.wait_for_function(STALE_FLAG, arg="crowd_heat")

    answers["fail"] = False
    tick(page, 31_000)
    page.wait_for_function(STALE_FLAG, arg="")
    assert stale_notice(page)["lines"] == []
    assert "wall-stale-layer" not in canvas.get_attribute("class")
    assert not layer_flagged(page, "crowd_heat")
    assert [e for e in page.watch.console_errors if not e.startswith("HTTP 503")] == []


def test_a_layer_that_never_loaded_says_so(page, live_server):
    page.watch.expect_errors = True
    page.route("**/api/crowd/grids.json*", fail("503"))
    open_wall(page, live_server)
    page.locator('.wall-layers input[data-layer="crowding"]').check()
    page.wait_for_function(STALE_FLAG, arg="crowding")
    # No last-updated time to give: it never loaded.
    assert stale_notice(page)["lines"] == ["网格人员密集度未能加载"]
    assert page.evaluate("() => gridmapWall.api.freshness('crowding')")["at"] is None

    page.unroute("**/api/crowd/grids.json*")
    tick(page, 61_000)  # the layer's 60-second refresh
    page.wait_for_function(STALE_FLAG, arg="")
    assert stale_notice(page)["lines"] == []
    assert page.evaluate("() => gridmapWall.api.freshness('crowding')")["at"] is not None
    assert [e for e in page.watch.console_errors if not e.startswith("HTTP 503")] == []
