"""The video wall opened with cameras in its address fits its layout to them: the /wall
"all to the video wall" link passes up to 16 GB IDs and no layout, and every one of them
gets a tile. A layout named in the address still wins; cameras that do not fit are said."""

from __future__ import annotations

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.videowall === 'ready'"


@pytest.fixture(scope="module")
def cameras(engine, demo_loaded) -> list[str]:
    """Twenty GB IDs the district center's operator sees."""
    with engine.connect() as conn:
        ids = list(conn.execute(text("SELECT gb_id FROM cameras ORDER BY gb_id LIMIT 20")).scalars())
    assert len(ids) == 20
    return ids


def open_wall(page, url: str) -> dict:
    """Open the wall (tiles show no video: this is about the layout) and describe it."""
    page.route("**/api/cameras/*/live.json", lambda route: route.fulfill(status=404, body="{}"))
    page.watch.expect_errors = True  # those 404s, on purpose
    page.goto(url)
    page.wait_for_function(READY)
    return page.evaluate("""() => {
      const grid = document.getElementById('vw-grid');
      const more = document.getElementById('vw-not-shown');
      return {layout: grid.dataset.layout, tiles: grid.dataset.tiles,
              ids: [...grid.querySelectorAll('.vw-tile[data-gb-id]')].map(t => t.dataset.gbId),
              free: grid.querySelectorAll('.vw-empty').length,
              active: [...document.querySelectorAll('.vw-layout.active')].map(b => b.dataset.layout),
              more: more && !more.hidden ? more.textContent : null};
    }""")


@pytest.mark.parametrize("count, layout", [(0, 4), (1, 1), (2, 4), (4, 4), (5, 9), (9, 9),
                                           (10, 16), (12, 16), (16, 16)])
def test_the_first_layout_fits_the_cameras_in_the_address(page, live_server, cameras,
                                                          count, layout):
    url = live_server + "/videowall" + (f"?cameras={','.join(cameras[:count])}" if count else "")
    wall = open_wall(page, url)
    assert wall["layout"] == str(layout) and wall["active"] == [str(layout)]
    assert wall["ids"] == cameras[:count]  # every camera passed, in its order
    assert wall["free"] == layout - count and wall["more"] is None
    assert page.watch.console_errors == []


def test_more_than_sixteen_shows_sixteen_and_says_how_many_are_left_out(page, live_server,
                                                                       cameras):
    wall = open_wall(page, live_server + f"/videowall?cameras={','.join(cameras)}")
    assert wall["layout"] == "16" and wall["ids"] == cameras[:16]
    assert wall["more"] == "另有 4 个摄像头未上墙"


def test_a_layout_in_the_address_wins_and_the_rest_is_said(signed_in_page, live_server,
                                                           cameras):
    page = signed_in_page("district-operator")
    wall = open_wall(page, live_server + f"/videowall?layout=4&cameras={','.join(cameras[:12])}"
                     "&lang=en")
    assert wall["layout"] == "4" and wall["ids"] == cameras[:4]
    assert wall["more"] == "8 more cameras not on the wall"
    # Choosing a bigger layout brings them up and the note goes.
    page.click(".vw-layout[data-layout='16']")
    assert page.evaluate("document.querySelectorAll('#vw-grid .vw-tile[data-gb-id]').length") == 12
    assert page.locator("#vw-not-shown").is_hidden()


def test_typed_ids_follow_the_same_rule(page, live_server, cameras):
    open_wall(page, live_server + "/videowall")
    page.fill("#vw-ids", " ".join(cameras))
    page.click("#vw-pick button[type=submit]")
    page.wait_for_function("() => document.getElementById('vw-grid').dataset.layout === '16'")
    assert page.locator("#vw-grid .vw-tile[data-gb-id]").count() == 16
    assert page.inner_text("#vw-not-shown") == "另有 4 个摄像头未上墙"
