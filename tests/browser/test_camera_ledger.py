"""The camera ledger page in a real browser: it lists, filters and pages what the
database holds in the caller's scope, corrects a camera, imports a ledger with its
bad-row report (storing nothing), and never shows a stream's credentials."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from pyproj import Geod
from sqlalchemy import text

from geodata.coords import wgs84_to_gcj02
from tests.browser.conftest import restore_camera_row
from tests.integration.test_cameras import all_text_forms, grid_interior_point

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.lgReady === '1'"
PAGE_SIZE = 50
SECRET = "Ledger#p@ss:9/x"
GEOD = Geod(ellps="WGS84")


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(READY)


def _reload_done(page, action) -> None:
    """Run ``action`` and wait for the table it triggers to be drawn again."""
    page.evaluate("() => { delete document.documentElement.dataset.lgReady; }")
    action()
    page.wait_for_function(READY)


def _count(engine, where: str = "TRUE", **params) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM cameras c WHERE {where}"), params).scalar()


def _ids(page) -> list[str]:
    return page.eval_on_selector_all("#lg-rows tr[data-gb]", "rows => rows.map(r => r.dataset.gb)")


@pytest.fixture
def restored_camera(engine, demo_loaded):
    """Yield a demo camera's GB ID; put its row back exactly as it was afterwards."""
    with engine.connect() as conn:
        gb_id, saved = conn.execute(text(
            "SELECT gb_id, to_jsonb(c) FROM cameras c WHERE heading IS NOT NULL "
            "AND NOT has_credentials ORDER BY gb_id OFFSET 7 LIMIT 1")).one()
    try:
        yield gb_id
    finally:
        restore_camera_row(engine, saved)


@pytest.fixture
def imported_ids(engine, demo_loaded):
    """Collect GB IDs a test imports through the live server; delete them afterwards."""
    ids: list[str] = []
    yield ids
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM cameras WHERE gb_id = ANY(:ids)"), {"ids": ids})


def test_the_ledger_lists_filters_and_pages_what_the_database_holds(page, live_server, engine):
    _open(page, live_server + "/cameras")
    total = _count(engine)
    assert page.inner_text("#lg-total") == f"共 {total:,} 个摄像机"
    with engine.connect() as conn:
        first = conn.execute(text("SELECT gb_id FROM cameras ORDER BY gb_id LIMIT :n OFFSET :o"),
                             {"n": PAGE_SIZE, "o": 0}).scalars().all()
        second = conn.execute(text("SELECT gb_id FROM cameras ORDER BY gb_id LIMIT :n OFFSET :o"),
                              {"n": PAGE_SIZE, "o": PAGE_SIZE}).scalars().all()
    assert _ids(page) == first
    assert page.is_disabled("#lg-prev")

    _reload_done(page, lambda: page.click("#lg-next"))
    assert _ids(page) == second
    pages = -(-total // PAGE_SIZE)
    assert page.inner_text("#lg-page") == f"第 2 / {pages} 页"
    assert "offset=50" in page.url

    # A source and a town narrow the list; the URL keeps them through a reload.
    with engine.connect() as conn:
        town_code, town_name = conn.execute(text(
            "SELECT t.code, t.name FROM towns t ORDER BY (SELECT count(*) FROM cameras c "
            "WHERE c.source = 'water' AND c.grid_code LIKE t.code || '%') DESC, t.code LIMIT 1")).one()
    _reload_done(page, lambda: page.select_option("#lg-source", "water"))
    _reload_done(page, lambda: page.select_option("#lg-town", town_code))
    water_here = _count(engine, "source = 'water' AND grid_code LIKE :p", p=town_code + "%")
    assert water_here > 0
    assert page.inner_text("#lg-total") == f"共 {water_here:,} 个摄像机"
    assert set(page.eval_on_selector_all(
        "#lg-rows tr td:nth-child(3)", "cells => cells.map(c => c.textContent)")) == {"水利"}
    assert all(cell.startswith(town_name) for cell in page.eval_on_selector_all(
        "#lg-rows tr td:nth-child(6)", "cells => cells.map(c => c.textContent)"))
    assert "source=water" in page.url and f"area={town_code}" in page.url and "offset" not in page.url
    _open(page, page.url)
    assert page.input_value("#lg-source") == "water" and page.input_value("#lg-town") == town_code
    assert page.inner_text("#lg-total") == f"共 {water_here:,} 个摄像机"

    # The export link carries the same filters, and the file holds the same cameras.
    page.select_option("#lg-export-datum", "gcj02")
    href = page.get_attribute("#lg-export-csv", "href")
    assert "source=water" in href and f"area={town_code}" in href and "datum=gcj02" in href
    body = page.request.get(live_server + href).text()
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert len(rows) == water_here and {r["source"] for r in rows} == {"water"}
    href = page.get_attribute("#lg-export-csv-zh", "href")
    assert "headers=zh" in href and "source=water" in href and "datum=gcj02" in href
    rows = list(csv.DictReader(io.StringIO(page.request.get(live_server + href).text().lstrip("\ufeff"))))
    assert len(rows) == water_here and {r["来源"] for r in rows} == {"水利"}

    # A search by name finds the camera; one that matches nothing says so.
    with engine.connect() as conn:
        gb_id, name = conn.execute(text(
            "SELECT gb_id, name FROM cameras WHERE source = 'water' AND grid_code LIKE :p "
            "ORDER BY gb_id LIMIT 1"), {"p": town_code + "%"}).one()
    page.fill("#lg-q", name)
    _reload_done(page, lambda: page.click("#lg-filter button[type=submit]"))
    assert gb_id in _ids(page)
    page.fill("#lg-q", "没有这样的摄像机")
    _reload_done(page, lambda: page.click("#lg-filter button[type=submit]"))
    assert _ids(page) == [] and page.inner_text("#lg-rows") == "没有符合条件的摄像机"
    # Cameras whose heading or field of view is missing, for the ledger keeper to fill in.
    page.fill("#lg-q", "")
    _reload_done(page, lambda: page.click("#lg-reset"))
    _reload_done(page, lambda: page.select_option("#lg-sector", "unknown"))
    missing = _count(engine, "heading IS NULL OR fov IS NULL")
    assert page.inner_text("#lg-total") == f"共 {missing:,} 个摄像机"
    assert set(page.eval_on_selector_all(
        "#lg-rows tr td:nth-child(9)", "cells => cells.map(c => c.textContent)")) == {"未登记"}
    assert "sector=unknown" in page.get_attribute("#lg-export-csv", "href")
    _reload_done(page, lambda: page.select_option("#lg-sort", "name"))
    with engine.connect() as conn:
        by_name = conn.execute(text(
            "SELECT gb_id FROM cameras WHERE heading IS NULL OR fov IS NULL ORDER BY name, gb_id "
            "LIMIT :n"), {"n": PAGE_SIZE}).scalars().all()
    assert _ids(page) == by_name
    assert "sort=name" in page.url and "sort" not in page.get_attribute("#lg-export-csv", "href")
    assert page.watch.console_errors == []
    assert page.watch.remote_requests() == []


def test_the_ledger_speaks_english_on_request(page, live_server, engine):
    _open(page, live_server + "/cameras?lang=en")
    assert page.inner_text("h1") == "Camera ledger"
    assert page.inner_text("#lg-table thead th:first-child") == "GB ID"
    assert page.inner_text("#lg-total").endswith(" cameras")
    with engine.connect() as conn:
        gb_id = conn.execute(text("SELECT gb_id FROM cameras WHERE cardinality(tags) > 1 "
                                  "ORDER BY gb_id LIMIT 1")).scalar()
    _open(page, f"{live_server}/cameras?lang=en&q={gb_id}")
    page.click(f'#lg-rows tr[data-gb="{gb_id}"] .lg-open')
    page.wait_for_selector("#lg-history")
    details = page.inner_text("#lg-detail-body")
    assert "、" not in details and "：" not in details  # no Chinese punctuation in English
    assert "Road" in details or "Village" in details or "Intersection" in details


def test_a_camera_is_corrected_from_its_details(page, live_server, engine, restored_camera):
    gb_id = restored_camera
    _open(page, f"{live_server}/cameras?q={gb_id}")
    page.click(f'#lg-rows tr[data-gb="{gb_id}"] .lg-open')
    page.wait_for_function(f"() => document.querySelector('#lg-detail .lg-id')?.textContent === '{gb_id}'")
    assert page.input_value("#lg-edit input[name=name]") == page.inner_text("#lg-detail-title")
    links = page.eval_on_selector_all(".lg-actions a", "a => a.map(x => x.getAttribute('href'))")
    assert links == [f"/cameras/{gb_id}/live", f"/videowall?layout=1&cameras={gb_id}",
                     f"/wall?camera={gb_id}"]

    # A field of view over 360° is refused with its reason, and nothing changes.
    with engine.connect() as conn:
        before = conn.execute(text("SELECT heading, fov, tags FROM cameras WHERE gb_id = :g"),
                              {"g": gb_id}).one()
    page.fill("#lg-edit input[name=fov]", "400")
    page.click("#lg-edit button[type=submit]")
    page.wait_for_function("() => document.getElementById('lg-edit-status').textContent.startsWith('未保存')")
    assert page.inner_text("#lg-edit-status") == "未保存：视场角应大于0°且不超过360°"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT heading, fov, tags FROM cameras WHERE gb_id = :g"),
                            {"g": gb_id}).one() == before

    # A new heading and an added tag are stored, and the sector follows the heading.
    page.fill("#lg-edit input[name=fov]", str(before.fov))
    heading = (before.heading + 90) % 360
    page.fill("#lg-edit input[name=heading]", str(heading))
    page.fill("#lg-edit input[name=tags]", ", ".join([*before.tags, "crowd"]))
    page.click("#lg-edit button[type=submit]")
    page.wait_for_function("() => document.getElementById('lg-edit-status').textContent === '已保存'")
    with engine.connect() as conn:
        after = conn.execute(text(
            "SELECT heading, fov, tags, degrees(ST_Azimuth(geom, ST_Centroid(view_sector))) AS aim "
            "FROM cameras WHERE gb_id = :g"), {"g": gb_id}).one()
    assert after.heading == pytest.approx(heading) and after.fov == pytest.approx(before.fov)
    assert "crowd" in after.tags and set(before.tags) <= set(after.tags)
    assert abs((after.aim - heading + 180) % 360 - 180) < 5
    assert "人流监测" in page.inner_text("#lg-detail-body")
    # The change is in the camera's history: who, and which fields (never their values).
    page.wait_for_selector("#lg-history li time")
    assert page.inner_text("#lg-history li:first-child").endswith("district-operator 修改：朝向、标签")
    # When, on Yanzhou's clock whatever the browser's zone (here the machine's, UTC).
    with engine.connect() as conn:
        at = conn.execute(text("SELECT max(at) FROM audit_log WHERE target = :t "
                               "AND action = 'camera.changed'"), {"t": f"camera:{gb_id}"}).scalar()
    shown = page.inner_text("#lg-history li:first-child time")
    assert shown == at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y/%m/%d %H:%M"), (shown, at)


def test_a_bad_ledger_is_reported_row_by_row_and_a_good_one_imported(
        page, live_server, engine, imported_ids, tmp_path):
    from gridmap.db import session_factory

    with session_factory(engine)() as s:
        _, lon, lat = grid_interior_point(s, 21)
    before = _count(engine)
    header = "gb_id,name,lon,lat,source,department,main_url,tags\n"
    secret_url = f"rtsp://admin:{quote(SECRET, safe='')}@192.0.2.44/live"
    bad = header + (
        f"37081200001310000601,好的一行,{lon},{lat},skynet,公安局,rtsp://192.0.2.1/a,\n"
        f"12345,坏编号,{lon},{lat},skynet,公安局,rtsp://192.0.2.1/a,\n"
        f"37081200001310000603,坏地址,{lon},{lat},skynet,公安局,exec:reboot,\n"
        f"37081200001310000604,域外,121.47,31.23,skynet,公安局,rtsp://192.0.2.1/a,\n"
    )
    _open(page, live_server + "/cameras")
    page.click("#lg-help summary")
    assert "天网、雪亮、环保" in page.inner_text("#lg-help")
    with page.expect_download() as download:
        page.click("#lg-template")
    template = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    assert template.startswith("国标编码,名称,经度,纬度,来源,权属单位,主码流")
    page.set_input_files("#lg-file", {"name": "台账.csv", "mimeType": "text/csv",
                                      "buffer": bad.encode()})
    page.watch.expect_errors = True  # the 400 is the answer under test
    page.click("#lg-import-go")
    page.wait_for_selector("#lg-import-result .lg-report")
    assert page.inner_text("#lg-import-result .lg-summary").startswith("文件未导入，没有任何数据被修改")
    rows = page.eval_on_selector_all("#lg-import-result tbody tr",
                                     "rows => rows.map(r => r.cells[0].textContent)")
    assert rows == ["2", "3", "4"]  # records, counted without the header (the caption says so)
    assert "不含表头" in page.inner_text("#lg-import-result caption")
    fields = page.eval_on_selector_all("#lg-import-result tbody tr",
                                       "rows => rows.map(r => r.cells[1].textContent)")
    assert fields[:2] == ["国标编码", "主码流"]  # named as the page names them
    problems = page.inner_text("#lg-import-result tbody")
    assert "不在本区范围内" in problems or "区界之外" in problems  # the point in Shanghai
    assert _count(engine) == before

    # The same ledger recorded in GCJ-02, bad rows mended: imported, points moved back.
    glon, glat = wgs84_to_gcj02(lon, lat)
    good = header + (
        f"37081200001310000601,台账导入一,{glon},{glat},skynet,公安局,{secret_url},crowd\n"
        f"37081200001310000602,台账导入二,{glon + 0.001},{glat},water,水务局,rtsp://192.0.2.2/a,\n"
    )
    imported_ids.extend(["37081200001310000601", "37081200001310000602"])
    page.watch.expect_errors = False
    page.select_option("#lg-datum", "gcj02")
    page.set_input_files("#lg-file", {"name": "台账.csv", "mimeType": "text/csv",
                                      "buffer": good.encode()})
    page.click("#lg-import-go")
    page.wait_for_selector("#lg-import-result.lg-good")
    assert page.inner_text("#lg-import-result .lg-summary") == "已导入：新增 2 个，更新 0 个"
    assert _count(engine) == before + 2
    with engine.connect() as conn:
        x, y, has_credentials = conn.execute(text(
            "SELECT ST_X(geom), ST_Y(geom), has_credentials FROM cameras WHERE gb_id = :g"),
            {"g": "37081200001310000601"}).one()
    assert GEOD.inv(lon, lat, x, y)[2] < 1.0 and has_credentials

    # The imported camera is in the ledger with its login kept apart and never shown.
    page.fill("#lg-q", "台账导入")
    _reload_done(page, lambda: page.click("#lg-filter button[type=submit]"))
    assert _ids(page) == ["37081200001310000601", "37081200001310000602"]
    page.click('#lg-rows tr[data-gb="37081200001310000601"] .lg-open')
    page.wait_for_function("() => document.getElementById('lg-detail-body').textContent.includes('已另行加密保存')")
    assert page.inner_text('#lg-detail-body dd[data-field="main_url"]') == "rtsp://192.0.2.44/live"
    seen = [page.content(),
            page.request.get(live_server + "/api/cameras?q=台账导入").text(),
            page.request.get(live_server + "/api/cameras/export.csv?q=台账导入").text()]
    for form in all_text_forms(SECRET):
        assert not any(form in body for body in seen), form
    assert page.watch.console_errors == []


@pytest.mark.parametrize("username, import_form, edit_form", [
    ("gulou-operator", False, True),     # a town may correct its cameras, not import ledgers
    ("district-viewer", False, False),   # a viewer reads
    ("district-gridadmin", True, True),
])
def test_the_ledger_offers_only_what_the_role_may_do(signed_in_page, live_server, engine,
                                                     username, import_form, edit_form):
    page = signed_in_page(username)
    _open(page, live_server + "/cameras")
    assert (page.query_selector("#lg-import") is not None) is import_form
    assert (page.query_selector("#lg-import-district") is not None) is (not import_form)
    page.click("#lg-rows tr:first-child .lg-open")
    page.wait_for_selector("#lg-detail:not([hidden])")
    assert (page.query_selector("#lg-edit") is not None) is edit_form
    if username.startswith("gulou"):
        in_town = _count(engine, "grid_code LIKE '370812001%'")
        assert page.inner_text("#lg-total") == f"共 {in_town:,} 个摄像机"
        assert page.eval_on_selector_all("#lg-town option[value]:not([value=''])",
                                         "o => o.map(x => x.value)") == ["370812001"]


def _stored_login(engine, gb_id: str) -> tuple[str, str]:
    from video.credentials import decrypt

    with engine.connect() as conn:
        user, password = conn.execute(text(
            "SELECT k.username_enc, k.password_enc FROM camera_credentials k "
            "JOIN cameras c ON c.id = k.camera_id WHERE c.gb_id = :g"), {"g": gb_id}).one()
    return decrypt(user), decrypt(password)


def test_a_camera_is_registered_with_its_login_kept_apart(page, live_server, engine, imported_ids):
    from gridmap.db import session_factory

    with session_factory(engine)() as s:
        _, lon, lat = grid_interior_point(s, 23)
    gb_id = "37081200001310000701"
    imported_ids.append(gb_id)
    password = "Pa:ss/w@rd#%1 中"
    _open(page, live_server + "/cameras")
    page.click("#lg-new-box summary")
    form = page.locator("#lg-new")
    for name, value in {"gb_id": gb_id, "name": "登记测试一", "department": "兖州区公安分局",
                        "lon": str(lon), "lat": str(lat), "heading": "45", "fov": "60",
                        "tags": "crowd, road", "main_url": "rtsp://192.0.2.55:554/ch1",
                        "login_user": "admin", "login_password": password}.items():
        form.locator(f"[name={name}]").fill(value)
    form.locator("[name=source]").select_option("skynet")
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.getElementById('lg-new-status').textContent === '已登记：登记测试一'")
    page.wait_for_function(f"() => document.querySelector('#lg-detail .lg-id')?.textContent === '{gb_id}'")
    assert page.inner_text('#lg-detail-body dd[data-field="main_url"]') == "rtsp://192.0.2.55:554/ch1"
    assert "已另行加密保存" in page.inner_text("#lg-detail-body")
    assert page.input_value("#lg-new [name=login_password]") == ""  # the form forgets it
    assert _stored_login(engine, gb_id) == ("admin", password)
    with engine.connect() as conn:
        heading, tags, grid_code = conn.execute(text(
            "SELECT heading, tags, grid_code FROM cameras WHERE gb_id = :g"), {"g": gb_id}).one()
    assert heading == 45 and sorted(tags) == ["crowd", "road"] and grid_code

    # A new password through the details' form replaces the stored one; the address stays.
    page.fill("#lg-edit [name=login_user]", "operator")
    page.fill("#lg-edit [name=login_password]", "N3w/P@ss")
    page.click("#lg-edit button[type=submit]")
    page.wait_for_function("() => document.getElementById('lg-edit-status').textContent === '已保存'")
    assert _stored_login(engine, gb_id) == ("operator", "N3w/P@ss")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT main_url FROM cameras WHERE gb_id = :g"),
                            {"g": gb_id}).scalar() == "rtsp://192.0.2.55:554/ch1"

    seen = [page.content(), page.request.get(f"{live_server}/api/cameras/{gb_id}").text(),
            page.request.get(f"{live_server}/api/cameras/export.geojson?q={gb_id}").text()]
    for secret in (password, "N3w/P@ss"):
        for form_ in all_text_forms(secret):
            assert not any(form_ in body for body in seen), form_
    assert page.watch.console_errors == []


def test_a_town_cannot_register_a_camera_in_another_town(signed_in_page, live_server, engine):
    from gridmap.db import session_factory

    with session_factory(engine)() as s:
        lon, lat = s.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grids "
            "WHERE code LIKE '370812002%' ORDER BY code LIMIT 1) x")).one()
    page = signed_in_page("gulou-operator")
    page.watch.expect_errors = True  # the 403 is the answer under test
    before = _count(engine)
    _open(page, live_server + "/cameras")
    page.click("#lg-new-box summary")
    form = page.locator("#lg-new")
    for name, value in {"gb_id": "37081200001310000702", "name": "越界登记", "department": "鼓楼街道",
                        "lon": str(lon), "lat": str(lat), "main_url": "rtsp://192.0.2.56/a"}.items():
        form.locator(f"[name={name}]").fill(value)
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.getElementById('lg-new-status').textContent.startsWith('未登记')")
    assert page.inner_text("#lg-new-status") == "未登记：摄像头将位于您的管辖范围之外"
    assert _count(engine) == before


@pytest.fixture(scope="module")
def demo_streams(tmp_path_factory):
    """Real local demo stream servers, the private ones behind a password."""
    from video.streams import serve_demo_streams

    with serve_demo_streams(tmp_path_factory.mktemp("ledger-streams"), 0, password="Ledger-Stream-7",
                            seconds=3.0, include_uhd=False) as running:
        yield running


@pytest.fixture
def snapshots_removed():
    """Collect GB IDs whose sampled pictures a test leaves under var/; remove them after."""
    import shutil

    from video.sampler import SamplerConfig, snapshot_paths

    ids: list[str] = []
    yield ids
    for gb_id in ids:
        latest, _ = snapshot_paths(SamplerConfig().snapshots(), gb_id)
        shutil.rmtree(latest.parent, ignore_errors=True)


def test_a_fixed_login_is_checked_at_once_against_the_real_stream(
        page, live_server, engine, imported_ids, snapshots_removed, demo_streams):
    from gridmap.db import session_factory

    slot = next(s for s in demo_streams.manifest()
                if s.kind == "mjpeg" and s.expected == "online" and s.username)
    with session_factory(engine)() as s:
        _, lon, lat = grid_interior_point(s, 25)
    gb_id = "37081200001310000703"
    imported_ids.append(gb_id)
    snapshots_removed.append(gb_id)
    _open(page, live_server + "/cameras")
    page.click("#lg-new-box summary")
    form = page.locator("#lg-new")
    for name, value in {"gb_id": gb_id, "name": "检测测试", "department": "兖州区公安分局",
                        "lon": str(lon), "lat": str(lat), "main_url": slot.url,
                        "login_user": slot.username, "login_password": "wrong-one"}.items():
        form.locator(f"[name={name}]").fill(value)
    form.locator("button[type=submit]").click()
    page.wait_for_function(f"() => document.querySelector('#lg-detail .lg-id')?.textContent === '{gb_id}'")

    # The wrong password: the check says the login was refused.
    page.click("#lg-sample")
    page.wait_for_function("() => /登录失败/.test(document.getElementById('lg-sample-result')?.textContent)",
                           timeout=30_000)
    assert page.inner_text("#lg-sample-result").startswith("离线")

    # The right one, through the details' form; the check now finds a picture.
    page.fill("#lg-edit [name=login_user]", slot.username)
    page.fill("#lg-edit [name=login_password]", "Ledger-Stream-7")
    page.click("#lg-edit button[type=submit]")
    page.wait_for_function("() => document.getElementById('lg-edit-status').textContent === '已保存'")
    page.click("#lg-sample")
    page.wait_for_function("() => /^在线/.test(document.getElementById('lg-sample-result')?.textContent)",
                           timeout=30_000)
    result = page.inner_text("#lg-sample-result")
    assert f"{slot.nominal_width}×{slot.nominal_height}" in result and "毫秒" in result
    page.wait_for_function("() => document.querySelector('#lg-detail img.lg-thumb')?.naturalWidth > 0")
    with engine.connect() as conn:
        status, snapshot_at = conn.execute(text(
            "SELECT status, snapshot_at FROM cameras WHERE gb_id = :g"), {"g": gb_id}).one()
    assert status == "online" and snapshot_at is not None
    # Its row (first: its ID sorts before the demo's) shows the new status too.
    assert page.inner_text(f'#lg-rows tr[data-gb="{gb_id}"] td:nth-child(5)') == "在线"
    assert "Ledger-Stream-7" not in page.content()
