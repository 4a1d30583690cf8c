"""The map wall (/wall) in real headless Chromium against the demo data."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from geodata.coords import gcj02_to_wgs84, haversine_m, wgs84_to_gcj02

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.wallReady === '1'"
PANEL_IS = "code => document.documentElement.dataset.wallPanel === code"


def open_wall(page, live_server, query: str = "") -> None:
    """Load the wall and wait until every default layer is drawn."""
    page.goto(live_server + "/wall" + query)
    page.wait_for_function(READY, timeout=20_000)


def digits(value: str) -> int:
    """Return the integer in a formatted number such as '1,234'."""
    return int(re.sub(r"\D", "", value))


def isolated_camera(engine, with_sector: bool | None = None) -> dict:
    """Return a camera with no other camera within ~35 m (so its dot is clickable alone)."""
    sector = ""
    if with_sector is False:
        sector = "AND c.heading IS NULL"  # no view sector: a status flip marks no grid dirty
    with engine.connect() as conn:
        row = (
            conn.execute(
                text(
                    f"""
                SELECT c.gb_id, c.name, c.source, c.department, c.status, c.status_since,
                       c.snapshot_at,
                       ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.grid_code
                FROM cameras c
                WHERE NOT EXISTS (SELECT 1 FROM cameras o WHERE o.id <> c.id
                                  AND ST_DWithin(o.geom, c.geom, 0.0004))
                  {sector}
                ORDER BY c.gb_id LIMIT 1
                """
                )
            )
            .mappings()
            .one()
        )
    return dict(row)


def zoom_to(page, lon: float, lat: float, zoom: float) -> None:
    """Centre the wall on a WGS-84 point and wait for the redraw after moveend."""
    page.evaluate("([lon, lat, z]) => gridmapWall.api.setView(lon, lat, z)", [lon, lat, zoom])
    page.wait_for_timeout(300)


def pixel(page, x: float, y: float) -> list[int]:
    """Return the RGBA of the camera canvas at a container point."""
    return page.evaluate("([x, y]) => gridmapWall.api.pixelAt(x, y)", [x, y])


@contextmanager
def committed(engine, apply: str | list[str], restore: str | list[str], params: dict):
    """Commit a change for the live server to see, and always restore it afterwards."""
    with engine.begin() as conn:
        for sql in [apply] if isinstance(apply, str) else apply:
            conn.execute(text(sql), params)
    try:
        yield
    finally:
        with engine.begin() as conn:
            for sql in [restore] if isinstance(restore, str) else restore:
                conn.execute(text(sql), params)


# --------------------------------------------------------------------------- page HTML


def wall_config(html: str) -> dict:
    """Return the page's ``window.GRIDMAP`` object."""
    import json

    start = html.index("window.GRIDMAP = ") + len("window.GRIDMAP = ")
    return json.JSONDecoder().raw_decode(html[start:])[0]


def test_wall_html_is_offline_and_offers_only_routed_layers(client, app):
    from web import wall

    saved = list(wall.LAYERS)
    wall.register_layer(
        wall.WallLayer(
            "future",
            "wall_layer_alerts",
            "geojson",
            "/api/not-yet.geojson",
            requires="/api/not-yet.geojson",
        )
    )
    try:
        html = client.get("/wall?mode=wall&dwell=7&poll=abc").get_data(as_text=True)
    finally:
        wall.LAYERS[:] = saved
    config = wall_config(html)["wall"]
    keys = [layer["key"] for layer in config["layers"]]
    assert {"towns", "communities", "grids", "cameras", "coverage"} <= set(keys)
    assert "future" not in keys  # its API is not routed: no empty placeholder layer
    assert (config["mode"], config["dwell_s"], config["poll_s"]) == ("wall", 7, 5)
    assert config["features"]["status_feed"] is True
    assert config["datum"] == "wgs84" and "road" in config["tags"]
    assert "/vendor/npm/supercluster/dist/supercluster.min.js" in html
    assert '<link rel="preload" href="/api/grids.geojson" as="fetch"' in html
    assert "https://" not in html and "http://" not in html
    assert wall.is_routed(app, "/api/cameras/status.json")
    assert not wall.is_routed(app, "/api/cameras/status.jsonx")


# --------------------------------------------------------------------------- loading


def grid_pixel(page, lon: float, lat: float) -> list[int]:
    """Return the RGBA the grid canvas painted at a WGS-84 point."""
    return page.evaluate("([lon, lat]) => gridmapWall.api.gridPixel(lon, lat)", [lon, lat])


def test_wall_is_offline_and_draws_grids_and_cameras(page, live_server, engine):
    with engine.connect() as conn:
        grids = conn.execute(text("SELECT count(*) FROM grids")).scalar_one()
        cameras = conn.execute(text("SELECT count(*) FROM cameras")).scalar_one()
    inside = grid_click_point(engine)
    open_wall(page, live_server)
    page.wait_for_function("() => Number(document.documentElement.dataset.wallPolls || 0) >= 1")
    data = page.evaluate("Object.assign({}, document.documentElement.dataset)")
    assert int(data["wallGrids"]) == grids
    assert int(data["wallCameras"]) == cameras == 8600
    assert page.evaluate("gridmapWall.api.gridsDrawn()") == grids
    assert grid_pixel(page, inside["lon"], inside["lat"])[3] > 0  # the grid's fill is painted
    assert page.locator("canvas.wall-camera-canvas").count() == 1
    assert 0 < page.evaluate("gridmapWall.api.drawnCameras()") < 1000  # clusters, not 8,600 dots
    assert page.locator(".leaflet-control-scale").count() == 1
    assert page.locator("#wall-legend").inner_text().startswith("图例")
    assert page.locator(".wall-layers input[data-layer]").count() >= 5
    assert page.watch.remote_requests() == []
    assert page.watch.console_errors == []


def test_a_town_operator_sees_only_their_town_and_a_department_its_cameras(
    signed_in_page, live_server, engine
):
    with engine.connect() as conn:
        grids = conn.execute(
            text("SELECT count(*) FROM grids WHERE code LIKE '370812001%'")
        ).scalar_one()
        police = conn.execute(
            text("SELECT count(*) FROM cameras WHERE department = '兖州区公安分局'")
        ).scalar_one()
    town = signed_in_page("gulou-operator")
    open_wall(town, live_server, "?mode=wall")
    data = town.evaluate("Object.assign({}, document.documentElement.dataset)")
    assert (data["wallTowns"], int(data["wallGrids"])) == ("1", grids)
    assert town.locator("#wall-caption").inner_text() == "辖区全域"
    assert town.watch.console_errors == []
    department = signed_in_page("police-operator")
    open_wall(department, live_server, "?mode=wall")
    data = department.evaluate("Object.assign({}, document.documentElement.dataset)")
    assert (data["wallTowns"], data["wallGrids"]) == ("0", "0")
    assert int(data["wallCameras"]) == police
    assert department.watch.console_errors == []


def test_english_switch_and_chinese_dates(page, live_server):
    open_wall(page, live_server)
    stamp = "2026-11-26T07:30:00Z"  # 15:30 in Beijing
    assert page.evaluate("s => gridmapWall.api.fmtDateTime(s)", stamp) == "2026年11月26日 15:30"
    assert page.evaluate("gridmapWall.api.fmtAge(190)") == "3分钟"
    assert "图层" in page.locator(".wall-layers").inner_text()
    open_wall(page, live_server, "?lang=en")
    assert page.evaluate("s => gridmapWall.api.fmtDateTime(s)", stamp) == "26 Nov 2026 15:30"
    assert "Layers" in page.locator(".wall-layers").inner_text()
    assert "Grids" in page.locator(".wall-layers").inner_text()
    assert page.watch.console_errors == []



def test_the_layer_list_is_folded_on_a_phone_and_unfolds_on_a_tap(signed_in_page, live_server):
    phone = signed_in_page("district-operator", viewport={"width": 390, "height": 844},
                           has_touch=True, is_mobile=True)
    open_wall(phone, live_server)
    head = phone.locator(".wall-layers .wall-control-head")
    grids = phone.locator('.wall-layers input[data-layer="grids"]')
    assert head.get_attribute("aria-expanded") == "false"
    assert not grids.is_visible()
    head.tap()
    assert head.get_attribute("aria-expanded") == "true"
    assert grids.is_visible()
    grids.uncheck()  # the unfolded list works as on a desk
    assert phone.evaluate("gridmapWall.api.gridsDrawn()") == 0
    # The legend, too, is folded to its title until tapped.
    legend = phone.locator("#wall-legend .wall-legend-title")
    assert legend.get_attribute("aria-expanded") == "false"
    assert not phone.locator("#wall-legend .wall-legend-row").first.is_visible()
    legend.tap()
    assert phone.locator("#wall-legend .wall-legend-row").first.is_visible()
    assert phone.locator("#wall-legend .wall-legend-title").get_attribute("aria-expanded") == "true"
    assert phone.watch.console_errors == []


# --------------------------------------------------------------------------- search


def test_search_finds_grid_by_code_and_highlights_it(page, live_server, engine):
    with engine.connect() as conn:
        code, name, lon, lat = conn.execute(
            text(
                "SELECT code, name, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
                "FROM grids WHERE kind = 'urban' ORDER BY code DESC LIMIT 1"
            )
        ).one()
    open_wall(page, live_server)
    page.fill("#wall-search", code)
    result = page.locator(f'.wall-result[data-type="grid"][data-id="{code}"]')
    result.wait_for()
    assert name in result.inner_text()
    result.click()
    page.wait_for_function(PANEL_IS, arg=f"grid:{code}")
    assert page.locator(".wall-panel-title").inner_text() == name
    assert page.evaluate("document.documentElement.dataset.wallSelectedGrid") == code
    assert page.evaluate("c => gridmapWall.api.gridStyle(c).color", code) == "#ffb000"
    # The view moved to the grid: a point inside it is on screen and painted highlighted.
    page.wait_for_timeout(400)
    point = page.evaluate("([lon, lat]) => gridmapWall.api.toScreen(lon, lat)", [lon, lat])
    assert 0 < point["x"] < 1600 and 0 < point["y"] < 900
    red, green, blue, alpha = grid_pixel(page, lon, lat)
    assert alpha > 0 and red > blue  # the amber highlight fill, not the blue urban fill
    assert page.watch.console_errors == []


def test_search_refuses_odd_input_without_asking_the_server(page, live_server):
    open_wall(page, live_server)
    page.fill("#wall-search", "a%b<")
    page.wait_for_timeout(400)
    assert page.locator("#wall-search-hint").inner_text() != ""
    assert not [u for u in page.watch.requests if "/api/search" in u]
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- panels


def grid_click_point(engine) -> dict:
    """Return a grid and a point well inside it, at least 40 m from any camera."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                text(
                    """
                WITH candidates AS (
                  SELECT * FROM grids WHERE kind = 'urban' ORDER BY houses DESC, code LIMIT 30
                )
                SELECT g.code, g.name, g.houses, g.residents, g.key_persons, g.key_places,
                       g.components, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat
                FROM candidates g
                CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(g.geom, 40, 7)) AS p
                -- 0.0005° is 45-55 m here: planar tests keep the GiST index usable.
                WHERE NOT ST_DWithin(ST_Boundary(g.geom), p.geom, 0.0005)
                  AND NOT EXISTS (SELECT 1 FROM cameras c WHERE ST_DWithin(c.geom, p.geom, 0.0005))
                ORDER BY g.houses DESC, g.code, p.path LIMIT 1
                """
                )
            )
            .mappings()
            .one()
        )
        grid = dict(row)
        grid["workers"] = conn.execute(
            text(
                "SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
                "WHERE g.code = :c AND w.left_at IS NULL"
            ),
            {"c": grid["code"]},
        ).scalar_one()
        grid["cameras"] = conn.execute(
            text("SELECT count(*) FROM cameras WHERE grid_code = :c"), {"c": grid["code"]}
        ).scalar_one()
    return grid


def test_clicking_a_grid_opens_its_panel_with_the_database_counts(page, live_server, engine):
    grid = grid_click_point(engine)
    open_wall(page, live_server)
    zoom_to(page, grid["lon"], grid["lat"], 16)
    point = page.evaluate(
        "([lon, lat]) => gridmapWall.api.toScreen(lon, lat)", [grid["lon"], grid["lat"]]
    )
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(PANEL_IS, arg=f"grid:{grid['code']}")
    panel = page.locator("#wall-panel")
    assert panel.locator(".wall-panel-title").inner_text() == grid["name"]
    for key in ("houses", "residents", "key_persons", "key_places", "components"):
        cell = panel.locator(f'.wall-counts tr[data-key="{key}"] td').inner_text()
        assert digits(cell) == grid[key], key
    assert panel.locator(".wall-team li").count() == grid["workers"]
    assert panel.locator(".wall-team-phone").count() == grid["workers"]
    assert panel.locator(".wall-team-problem").count() == 0  # the demo teams are all "1+1"
    cams = panel.locator('.wall-grid-cameras tr[data-key="cameras"] td').inner_text()
    assert digits(cams) == grid["cameras"]
    # "Show cameras" rings exactly the grid's cameras.
    panel.locator('[data-action="show-cameras"]').click()
    page.wait_for_function(
        "n => document.documentElement.dataset.wallHighlighted === String(n)", arg=grid["cameras"]
    )
    assert page.watch.console_errors == []


def test_clicking_a_camera_shows_its_snapshot_source_and_owner(page, live_server, engine,
                                                                snapshot_file):
    cam = isolated_camera(engine)
    source_zh = {"skynet": "天网", "sharp_eyes": "雪亮", "traffic": "交通"}.get(cam["source"])
    with (
        snapshot_file(cam["gb_id"]),
        committed(
            engine,
            "UPDATE cameras SET snapshot_at = now() WHERE gb_id = :g",
            "UPDATE cameras SET snapshot_at = :old WHERE gb_id = :g",
            {"g": cam["gb_id"], "old": cam["snapshot_at"]},
        ),
    ):
        open_wall(page, live_server)
        zoom_to(page, cam["lon"], cam["lat"], 18)
        point = page.evaluate("g => gridmapWall.api.cameraPoint(g)", cam["gb_id"])
        page.mouse.click(point["x"], point["y"])
        page.wait_for_function(PANEL_IS, arg=f"camera:{cam['gb_id']}")
        panel = page.locator("#wall-panel")
        assert panel.locator(".wall-panel-title").inner_text() == cam["name"]
        assert panel.locator(".wall-panel-code").inner_text() == cam["gb_id"]
        if source_zh:
            assert panel.locator('tr[data-key="source"] td').inner_text() == source_zh
        assert panel.locator('tr[data-key="owner"] td').inner_text() == cam["department"]
        # The snapshot is drawn and its age is given in Chinese.
        img = panel.locator("img.wall-snapshot-img")
        img.wait_for()
        page.wait_for_function(
            "() => document.querySelector('img.wall-snapshot-img').naturalWidth === 320"
        )
        assert "前截取" in panel.locator(".wall-snapshot-age").inner_text()
        assert panel.locator('[data-action="live"]').count() == 1
        panel.locator('[data-action="nearby"]').click()
        panel.locator(".wall-section-nearby").wait_for()
    assert page.watch.console_errors == []


def test_cameras_that_see_a_spot_come_first_and_go_to_the_video_wall(page, live_server, engine):
    from pyproj import Geod

    with engine.connect() as conn:
        cam = conn.execute(text(
            "SELECT gb_id, ST_X(geom) AS lon, ST_Y(geom) AS lat, heading FROM cameras "
            "WHERE heading IS NOT NULL AND fov >= 30 AND range_m >= 60 ORDER BY gb_id LIMIT 1")
        ).mappings().one()
    # A spot 15 m in front of the camera: inside its view sector.
    lon, lat, _ = Geod(ellps="WGS84").fwd(cam["lon"], cam["lat"], cam["heading"], 15.0)
    open_wall(page, live_server)
    zoom_to(page, lon, lat, 18)
    centre = page.evaluate("() => { const m = gridmapWall.state.map; "
                           "const r = m.getContainer().getBoundingClientRect(); const s = m.getSize(); "
                           "return {x: r.left + s.x / 2, y: r.top + s.y / 2}; }")
    page.mouse.click(centre["x"], centre["y"], button="right")
    page.wait_for_function(PANEL_IS, arg="nearby")
    section = page.locator("#wall-panel .wall-section-nearby")
    section.wait_for()
    links = section.locator(".wall-camlink")
    seeing = [links.nth(i).get_attribute("data-gb-id") for i in range(links.count())
              if links.nth(i).locator(".wall-sees").count()]
    assert cam["gb_id"] in seeing
    # Every camera that sees the spot is listed before every one that does not.
    order = [links.nth(i).locator(".wall-sees").count() for i in range(links.count())]
    assert order == sorted(order, reverse=True) and "可视此处" in section.inner_text()
    listed = [links.nth(i).get_attribute("data-gb-id") for i in range(links.count())]
    to_wall = section.locator('[data-action="videowall"]')
    assert to_wall.get_attribute("href") == "/videowall?cameras=" + ",".join(listed[:16])
    with page.context.expect_page() as opened:
        to_wall.click()
    wall = opened.value
    wall.wait_for_function("() => document.documentElement.dataset.videowall === 'ready'")
    tiles = wall.locator(".vw-tile[data-gb-id]").evaluate_all("els => els.map(e => e.dataset.gbId)")
    assert tiles[0] == listed[0] and cam["gb_id"] in listed
    wall.close()
    assert page.watch.console_errors == []


def test_camera_without_samples_says_no_snapshot_without_a_404(page, live_server, engine):
    cam = isolated_camera(engine, with_sector=False)
    open_wall(page, live_server)
    page.fill("#wall-search", cam["gb_id"])
    page.locator(f'.wall-result[data-id="{cam["gb_id"]}"]').click()
    page.wait_for_function(PANEL_IS, arg=f"camera:{cam['gb_id']}")
    assert page.locator(".wall-nosnap").inner_text() == "暂无截图"
    assert page.evaluate("g => gridmapWall.api.cameraStatus(g)", cam["gb_id"]) == cam["status"]
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- layers


def test_layer_toggles_hide_and_show_their_layers(page, live_server, engine):
    inside = grid_click_point(engine)
    open_wall(page, live_server)
    assert page.evaluate("gridmapWall.api.gridsDrawn()") == 930
    assert grid_pixel(page, inside["lon"], inside["lat"])[3] > 0
    page.locator('input[data-layer="grids"]').uncheck()
    assert page.evaluate("gridmapWall.api.gridsDrawn()") == 0
    assert grid_pixel(page, inside["lon"], inside["lat"])[3] == 0
    page.locator('input[data-layer="cameras"]').uncheck()
    assert page.locator("canvas.wall-camera-canvas").count() == 0
    page.locator('input[data-layer="grids"]').check()
    assert page.evaluate("gridmapWall.api.gridsDrawn()") == 930
    page.wait_for_timeout(100)
    assert grid_pixel(page, inside["lon"], inside["lat"])[3] > 0
    page.locator('input[data-layer="cameras"]').check()
    assert page.locator("canvas.wall-camera-canvas").count() == 1
    # A camera filter re-clusters in place: only Skynet cameras remain.
    page.locator(".wall-filters details").nth(1).locator("summary").click()
    for box in page.locator('input[data-filter="source"]').all():
        if box.get_attribute("value") != "skynet":
            box.uncheck()
    page.wait_for_function("() => document.documentElement.dataset.wallCamerasShown === '3010'")
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- live


def test_live_update_recolours_a_camera_without_reloading(page, live_server, engine):
    cam = isolated_camera(engine, with_sector=False)
    open_wall(page, live_server, "?poll=1")
    page.wait_for_function("() => Number(document.documentElement.dataset.wallPolls || 0) >= 1")
    zoom_to(page, cam["lon"], cam["lat"], 18)
    page.evaluate("window.__sameDocument = true")
    centre = page.evaluate("gridmapWall.state.map.getCenter()")
    point = page.evaluate("g => gridmapWall.api.cameraPoint(g)", cam["gb_id"])
    before = pixel(page, point["x"], point["y"])
    new_status = "offline" if cam["status"] != "offline" else "online"
    expected = {"offline": (0xD7, 0x30, 0x27), "online": (0x1A, 0x98, 0x50)}[new_status]
    with committed(
        engine,
        "UPDATE cameras SET status = :s, status_since = now() WHERE gb_id = :g",
        "UPDATE cameras SET status = :old, status_since = :since WHERE gb_id = :g",
        {"g": cam["gb_id"], "s": new_status, "old": cam["status"], "since": cam["status_since"]},
    ):
        page.wait_for_function(
            "([g, s]) => gridmapWall.api.cameraStatus(g) === s",
            arg=[cam["gb_id"], new_status],
            timeout=15_000,
        )
        page.wait_for_function(
            "([x, y, r, g, b]) => { const p = gridmapWall.api.pixelAt(x, y);"
            " return Math.abs(p[0] - r) < 4 && Math.abs(p[1] - g) < 4 && Math.abs(p[2] - b) < 4; }",
            arg=[point["x"], point["y"], *expected],
        )
    after = pixel(page, point["x"], point["y"])
    assert after[:3] != before[:3]
    assert page.evaluate("window.__sameDocument") is True
    assert page.evaluate("gridmapWall.state.map.getCenter()") == centre
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- markup


def test_markup_in_names_is_shown_as_text_never_run(page, live_server, engine):
    grid = grid_click_point(engine)
    cam = isolated_camera(engine, with_sector=False)
    grid_name = '<img src=x onerror="window.__xss=1;alert(1)">网格'
    cam_name = "<script>window.__xss=2;alert(2)</script>摄像头"
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with engine.connect() as conn:
        old_grid = conn.execute(
            text("SELECT name FROM grids WHERE code = :c"), {"c": grid["code"]}
        ).scalar_one()
    with committed(
        engine,
        [
            "UPDATE grids SET name = :gn WHERE code = :c",
            "UPDATE cameras SET name = :cn WHERE gb_id = :g",
        ],
        [
            "UPDATE grids SET name = :old_g WHERE code = :c",
            "UPDATE cameras SET name = :old_c WHERE gb_id = :g",
        ],
        {
            "c": grid["code"],
            "gn": grid_name,
            "old_g": old_grid,
            "g": cam["gb_id"],
            "cn": cam_name,
            "old_c": cam["name"],
        },
    ):
        open_wall(page, live_server)
        # Grid: search result, label at zoom 16, panel title.
        page.fill("#wall-search", grid["code"])
        result = page.locator(f'.wall-result[data-id="{grid["code"]}"]')
        result.wait_for()
        assert grid_name in result.inner_text()
        result.click()
        page.wait_for_function(PANEL_IS, arg=f"grid:{grid['code']}")
        assert page.locator(".wall-panel-title").inner_text() == grid_name
        zoom_to(page, grid["lon"], grid["lat"], 16)
        assert grid_name in page.evaluate("gridmapWall.api.labels()")  # drawn as canvas text
        # Camera: search result and panel title.
        page.fill("#wall-search", cam["gb_id"])
        result = page.locator(f'.wall-result[data-id="{cam["gb_id"]}"]')
        result.wait_for()
        assert cam_name in result.inner_text()
        result.click()
        page.wait_for_function(PANEL_IS, arg=f"camera:{cam['gb_id']}")
        assert page.locator(".wall-panel-title").inner_text() == cam_name
        page.wait_for_timeout(300)
        assert page.evaluate("window.__xss") is None
        assert dialogs == []
        assert page.locator("img[src='x']").count() == 0
        assert page.locator("#wall-panel script, .wall-search script").count() == 0
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- wall mode


def test_wall_mode_is_dark_has_fullscreen_and_tours_the_towns(page, live_server, engine):
    with engine.connect() as conn:
        first_town = conn.execute(text("SELECT name FROM towns ORDER BY code LIMIT 1")).scalar_one()
    open_wall(page, live_server, "?mode=wall&dwell=5")
    assert "wall-dark" in page.evaluate("document.body.className")
    assert page.locator(".leaflet-control-zoom-fullscreen").count() == 1
    assert page.locator("#wall-caption").inner_text() == "兖州区全域"
    page.wait_for_function("() => document.documentElement.dataset.wallTourView === '1'", timeout=12_000)
    assert page.locator("#wall-caption").inner_text() == first_town
    # The toggle goes back to the desk theme and stops the tour.
    page.click("#wall-mode")
    assert "wall-dark" not in page.evaluate("document.body.className")
    assert page.locator("#wall-tour").inner_text() == "开始轮播"
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- GCJ-02


SAMPLE_POINTS = [
    (116.78, 35.553),  # Yanzhou
    (116.55, 35.35),
    (116.95, 35.77),
    (116.397, 39.909),  # Beijing
    (121.4737, 31.2304),  # Shanghai
    (87.6168, 43.8256),  # Urumqi
    (113.2644, 23.1291),  # Guangzhou
]


def test_js_gcj02_transform_matches_python_within_half_a_metre(page, live_server):
    open_wall(page, live_server)
    out = page.evaluate(
        "pts => pts.map(p => [gridmapWall.datum.wgs84ToGcj02(p[0], p[1]),"
        " gridmapWall.datum.gcj02ToWgs84(...gridmapWall.datum.wgs84ToGcj02(p[0], p[1]))])",
        [list(p) for p in SAMPLE_POINTS],
    )
    for (lon, lat), (forward, back) in zip(SAMPLE_POINTS, out, strict=True):
        expected = wgs84_to_gcj02(lon, lat)
        assert haversine_m(*forward, *expected) < 0.5
        assert haversine_m(*back, lon, lat) < 0.5
        assert haversine_m(*back, *gcj02_to_wgs84(*expected)) < 0.5


@pytest.fixture(scope="module")
def gcj_server(database_url, demo_loaded):
    """A second live server whose (hypothetical) base tiles are GCJ-02."""
    from tests.browser.conftest import serving
    from web import create_app

    app = create_app({"DATABASE_URL": database_url, "TESTING": True, "TILE_DATUM": "gcj02"})
    with serving(app) as url:
        yield url


def test_gcj02_tiles_shift_overlays_and_unshift_clicks(page, gcj_server, engine):
    grid = grid_click_point(engine)
    with engine.connect() as conn:
        lon0, lat0 = conn.execute(
            text(
                "SELECT ST_X(ST_PointN(ST_ExteriorRing(ST_GeometryN(geom, 1)), 1)), "
                "ST_Y(ST_PointN(ST_ExteriorRing(ST_GeometryN(geom, 1)), 1)) "
                "FROM grids WHERE code = :c"
            ),
            {"c": grid["code"]},
        ).one()
    open_wall(page, gcj_server)
    drawn = page.evaluate(
        "c => { const ll = gridmapWall.state.grid.byCode[c].getLatLngs().flat(3)[0];"
        " return [ll.lng, ll.lat]; }",
        grid["code"],
    )
    # Drawn vertex = the stored WGS-84 vertex shifted to GCJ-02 (6-decimal GeoJSON).
    assert haversine_m(*drawn, *wgs84_to_gcj02(lon0, lat0)) < 0.5
    assert haversine_m(*drawn, lon0, lat0) > 100  # the shift is real (hundreds of metres)
    # A click at the grid's interior point on screen maps back to the WGS-84 point.
    zoom_to(page, grid["lon"], grid["lat"], 17)
    point = page.evaluate(
        "([lon, lat]) => gridmapWall.api.toScreen(lon, lat)", [grid["lon"], grid["lat"]]
    )
    back = page.evaluate("([x, y]) => gridmapWall.api.fromScreen(x, y)", [point["x"], point["y"]])
    assert haversine_m(back["lon"], back["lat"], grid["lon"], grid["lat"]) < 0.5
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function(PANEL_IS, arg=f"grid:{grid['code']}")
    assert page.watch.console_errors == []


def test_a_grid_without_its_leader_is_flagged_in_its_panel(page, live_server, engine, committed_team):
    from tests.integration.test_teams import GRID

    with engine.begin() as conn:
        conn.execute(text("UPDATE grid_workers SET left_at = now() WHERE role = 'leader' AND grid_id = "
                          "(SELECT id FROM grids WHERE code = :c)"), {"c": GRID})
    open_wall(page, live_server)
    page.evaluate("code => gridmapWall.api.openGrid(code)", GRID)
    page.wait_for_function(PANEL_IS, arg=f"grid:{GRID}")
    panel = page.locator("#wall-panel")
    assert panel.locator(".wall-team-problem").inner_text() == "缺网格长"
    assert panel.locator('.wall-team li[data-role="leader"]').count() == 0
    assert page.watch.console_errors == []


def test_the_team_gaps_layer_marks_grids_without_their_1_plus_1(page, live_server, engine,
                                                              committed_team):
    from tests.integration.test_teams import GRID

    with engine.begin() as conn:
        conn.execute(text("UPDATE grid_workers SET left_at = now() WHERE role = 'full_time' AND grid_id = "
                          "(SELECT id FROM grids WHERE code = :c)"), {"c": GRID})
    open_wall(page, live_server)
    toggle = page.locator('input[data-layer="team_gaps"]')
    assert toggle.count() == 1 and not toggle.is_checked()
    toggle.check()
    page.wait_for_function("() => document.documentElement.dataset.wallLayerTeam_gaps === 'on'")
    opacity = """code => {
      var lyr = gridmapWall.state.layers.team_gaps;
      var hit = lyr.getLayers().filter(l => l.feature.properties.code === code)[0];
      return hit ? hit.options.fillOpacity : null;
    }"""
    page.wait_for_function(f"() => ({opacity})('{GRID}') > 0")
    others = page.evaluate("""() => gridmapWall.state.layers.team_gaps.getLayers()
        .filter(l => l.options.fillOpacity > 0).length""")
    assert others == 1  # every other demo grid has its 1+1
    assert "缺网格长或专职网格员" in page.locator("#wall-legend").inner_text()
    assert page.watch.console_errors == []


def test_the_wall_opens_on_a_camera_named_in_its_address(page, live_server, engine):
    cam = isolated_camera(engine)
    open_wall(page, live_server, f"?camera={cam['gb_id']}")
    page.wait_for_function(PANEL_IS, arg=f"camera:{cam['gb_id']}")
    assert page.locator("#wall-panel .wall-panel-title").inner_text() == cam["name"]
    # The view is the camera's close-up, not the district: the dot sits in the middle
    # of the map the panel leaves free (left of it, below the top bar).
    dot = page.evaluate("g => gridmapWall.api.cameraPoint(g)", cam["gb_id"])
    free = page.evaluate("() => ({right: document.getElementById('wall-panel').getBoundingClientRect().left,"
                         " top: document.getElementById('wall-bar').getBoundingClientRect().bottom})")
    assert abs(dot["x"] - free["right"] / 2) < 5 and abs(dot["y"] - (free["top"] + 900) / 2) < 5, \
        (dot, free)
    assert page.evaluate("() => gridmapWall.state.map.getZoom()") >= 18
    # A malformed value is ignored: the wall opens as usual, with no panel.
    open_wall(page, live_server, "?camera=12345")
    assert page.evaluate("() => document.documentElement.dataset.wallPanel || ''") == ""
    assert page.watch.console_errors == []
