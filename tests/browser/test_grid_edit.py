"""The grid editing page in a real browser: offline, an edit bumps the version, a stale
save offers a reload, a refused edit shows its problem on the map, history compares."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import shapely
from shapely.geometry import mapping
from sqlalchemy import text

from tests.integration.test_grid_edits import GRID, CommittedGuard, geom_of

pytestmark = pytest.mark.browser


@pytest.fixture
def committed(engine, demo_loaded):
    """The live server commits: put the rows around GRID back afterwards."""
    guard = CommittedGuard(engine, GRID)
    try:
        yield guard
    finally:
        guard.restore()


def _geometries(engine) -> tuple[dict, dict, str]:
    """Return (grown, shrunk) boundaries of GRID and the neighbour they trade with."""
    from gridmap import grid_edits
    from gridmap.db import session_factory

    with session_factory(engine)() as s:
        other = next(g["code"] for g in grid_edits.adjacent(s, GRID)["grids"] if g["same_community"])
        g, n = geom_of(s, GRID), geom_of(s, other)
    grown = shapely.union(g, shapely.intersection(n, g.buffer(0.0005)))
    shrunk = shapely.difference(g, shapely.intersection(g, n.buffer(0.0005)))
    return mapping(grown), mapping(shrunk), other


def _open(page, live_server) -> None:
    page.goto(live_server + "/grids/edit")
    page.wait_for_function("() => document.documentElement.dataset.geReady === '1'")


def test_edit_page_is_offline_and_an_edit_bumps_the_version(page, live_server, engine, committed):
    grown, _shrunk, _other = _geometries(engine)
    _open(page, live_server)
    assert page.evaluate("document.documentElement.dataset.geGrids") == "930"
    assert page.locator("path.ge-grid").count() == 930
    page.locator(f'path.ge-grid[data-code="{GRID}"]').click(force=True)
    page.wait_for_selector('#ge-selected[data-version="1"]')
    assert GRID in page.locator("#ge-selected").inner_text()

    # The panel's Edit button puts Geoman's vertex handles on the grid.
    page.locator("#ge-edit").click()
    page.wait_for_selector(".marker-icon")
    assert page.locator(".marker-icon").count() > 3
    page.locator("#ge-reason").fill("浏览器测试：沿新修道路调整")
    # Save goes through the same call the Save button makes, with the drawn geometry.
    result = page.evaluate(
        "([code, g]) => gridEdit.saveGeometry(code, g).then(r => r.status)", [GRID, grown]
    )
    assert result == 200
    page.wait_for_selector('#ge-selected[data-version="2"]')
    page.wait_for_function("() => document.documentElement.dataset.geHistory === '2'")
    assert page.locator(".ge-version").count() == 2
    assert page.locator("#ge-message").inner_text().endswith("2")
    # When, on Yanzhou's clock whatever the browser's zone (here the machine's, UTC).
    versions = page.evaluate(
        "code => fetch('/api/grids/' + code + '/versions').then(r => r.json())", GRID)["versions"]
    saved = next(v for v in versions if v["version"] == 2)["valid_from"]
    beijing = datetime.fromisoformat(saved).astimezone(ZoneInfo("Asia/Shanghai"))
    meta = page.locator('.ge-version[data-version="2"] .ge-version-meta').inner_text()
    assert beijing.strftime("%Y/%m/%d %H:%M:%S") in meta, (meta, saved)
    assert page.watch.remote_requests() == []
    assert page.watch.console_errors == []

    # Compare the old version with the current one on the map.
    page.locator('.ge-version[data-version="1"] .ge-compare').click()
    page.wait_for_function("() => document.documentElement.dataset.geCompare === '1-2'")
    assert page.locator("path.ge-gained").count() >= 1


def test_stale_save_shows_reload_prompt_and_problem_geometry(page, live_server, engine, committed):
    grown, shrunk, _other = _geometries(engine)
    _open(page, live_server)
    page.locator(f'path.ge-grid[data-code="{GRID}"]').click(force=True)
    page.wait_for_selector('#ge-selected[data-version="1"]')
    page.locator("#ge-reason").fill("browser test")
    assert page.evaluate("([c, g]) => gridEdit.saveGeometry(c, g).then(r => r.status)", [GRID, grown]) == 200
    page.wait_for_selector('#ge-selected[data-version="2"]')

    page.watch.expect_errors = True  # the next answers are 409 and 400 on purpose
    status = page.evaluate(
        "([c, g]) => gridEdit.saveGeometry(c, g, {version: 1}).then(r => r.status)", [GRID, shrunk]
    )
    assert status == 409
    conflict = page.locator("#ge-conflict")
    conflict.wait_for(state="visible")
    assert "重新加载" in conflict.inner_text()
    page.locator("#ge-reload").click()
    conflict.wait_for(state="hidden")
    page.wait_for_function("() => document.documentElement.dataset.geLoading === '0'")
    assert page.locator("#ge-selected").get_attribute("data-version") == "2"

    # Freeing area without a receiving grid is refused: the freed area is drawn.
    status = page.evaluate(
        "([c, g]) => gridEdit.saveGeometry(c, g, {neighbour: ''}).then(r => r.status)",
        [GRID, shrunk],
    )
    assert status == 400
    page.wait_for_selector("path.ge-problem")
    assert "请选择接收该区域的相邻网格" in page.locator("#ge-message").inner_text()  # the reason, in Chinese
    assert page.watch.remote_requests() == []
    assert [e for e in page.watch.console_errors if not e.startswith("HTTP ")] == []


def test_grid_team_panel_adds_removes_and_fills_posts(page, live_server, engine, committed_team):
    def state() -> str:
        return page.evaluate("document.documentElement.dataset.geTeam || ''")

    _open(page, live_server)
    page.locator(f'path.ge-grid[data-code="{GRID}"]').click(force=True)
    page.wait_for_function(f"() => (document.documentElement.dataset.geTeam || '').startsWith('{GRID}:')")
    size = int(state().split(":")[1])
    assert page.locator(".ge-team-ok").inner_text() == "1+1 已配齐"
    assert page.locator(".ge-team-member").count() == size

    # Add a volunteer through the form: the list grows, the phone comes back as digits.
    page.locator("#ge-team-new-name").fill("浏览器志愿者")
    page.locator("#ge-team-new-phone").fill("138 0000 5678")
    page.locator("#ge-team-add-btn").click()
    page.wait_for_function(f"() => document.documentElement.dataset.geTeam === '{GRID}:{size + 1}:'")
    added = page.locator(".ge-team-member", has_text="浏览器志愿者")
    assert added.locator(".ge-team-phone").inner_text() == "13800005678"
    assert added.get_attribute("data-role") == "volunteer"

    # Removing the leader takes two clicks; the gap shows on the team and in the gaps list.
    remove = page.locator('.ge-team-member[data-role="leader"] .ge-team-remove')
    remove.click()
    assert remove.inner_text() == "确认移出？"
    assert page.evaluate("document.documentElement.dataset.geTeam") == f"{GRID}:{size + 1}:"
    remove.click()
    page.wait_for_function(f"() => document.documentElement.dataset.geTeam === '{GRID}:{size}:no_leader'")
    assert page.locator(".ge-team-problem").inner_text() == "缺网格长"
    page.wait_for_selector(f'.ge-gap[data-code="{GRID}"]')

    # The new volunteer becomes the leader: complete again, and off the gaps list.
    added.locator(".ge-team-role").select_option("leader")
    page.wait_for_function(f"() => document.documentElement.dataset.geTeam === '{GRID}:{size}:'")
    page.wait_for_selector(f'.ge-gap[data-code="{GRID}"]', state="detached")
    assert page.watch.remote_requests() == []
    assert page.watch.console_errors == []

    # A second leader is refused in words, and the select goes back to what is stored.
    page.watch.expect_errors = True
    volunteer = page.locator('.ge-team-member[data-role="volunteer"]').first
    volunteer.locator(".ge-team-role").select_option("leader")
    page.wait_for_function("() => document.documentElement.dataset.geError === '409'")
    assert "该网格已有网格长" in page.locator("#ge-message").inner_text()
    page.wait_for_function("() => [...document.querySelectorAll('.ge-team-member')]"
                           ".filter(e => e.querySelector('.ge-team-role').value === 'leader').length === 1")

    # Someone else changes a member meanwhile: the stale change is refused and reloaded.
    with engine.begin() as conn:
        conn.execute(text("UPDATE grid_workers SET name = '别人改的', version = version + 1 "
                          "WHERE name = '浏览器志愿者'"))
    page.watch.expect_errors = True
    page.locator(".ge-team-member", has_text="浏览器志愿者").locator(".ge-team-role").select_option("part_time")
    page.wait_for_selector(".ge-team-member >> text=别人改的")
    assert "其他人已修改该成员" in page.locator("#ge-message").inner_text()
    assert page.locator(".ge-team-member", has_text="别人改的").get_attribute("data-role") == "leader"


def test_the_roster_downloads_from_the_editing_page(page, live_server):
    _open(page, live_server)
    link = page.locator("#ge-roster")
    assert link.inner_text() == "导出网格力量花名册（CSV）"
    with page.expect_download() as info:
        link.click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "网格长".encode() in data
    assert page.watch.console_errors == []


def test_a_roster_goes_out_to_excel_and_back(signed_in_page, live_server, committed_team, tmp_path):
    page = signed_in_page("community-gridadmin")
    _open(page, live_server)
    with page.expect_download() as info:
        page.locator("#ge-roster").click()
    lines = Path(info.value.path()).read_text(encoding="utf-8-sig").splitlines()
    header, rows = lines[0], lines[1:]
    assert all(r.split(",")[4].startswith(GRID[:12]) for r in rows)  # the community's only
    # The leader of GRID leaves the sheet; the import takes them off, the gap is listed.
    kept = [r for r in rows if not (r.split(",")[4] == GRID and r.split(",")[6] == "网格长")]
    assert len(kept) == len(rows) - 1
    edited = tmp_path / "roster.csv"
    edited.write_text("\n".join([header, *kept]) + "\n", encoding="utf-8-sig")
    page.locator("#ge-roster-file").set_input_files(str(edited))
    page.wait_for_function("() => document.querySelector('#ge-message').textContent.includes('花名册已导入')")
    assert "移出 1" in page.locator("#ge-message").inner_text()
    page.wait_for_selector(f'.ge-gap[data-code="{GRID}"]')

    # A bad sheet names its rows and changes nothing.
    page.watch.expect_errors = True
    bad = tmp_path / "bad.csv"
    fields = kept[0].split(",")
    fields[header.split(",").index("phone")] = "123"
    bad.write_text(header + "\n" + ",".join(fields) + "\n", encoding="utf-8-sig")
    page.locator("#ge-roster-file").set_input_files(str(bad))
    page.wait_for_function("() => document.documentElement.dataset.geError === '400'")
    assert "第 1 行 电话" in page.locator("#ge-message").inner_text()


def test_a_member_moves_to_any_grid_of_the_community(page, live_server, engine, committed_team):
    with engine.connect() as conn:
        community = conn.execute(text(
            "SELECT code FROM grids WHERE code LIKE :c AND code <> :g ORDER BY code"),
            {"c": GRID[:12] + "%", "g": GRID}).scalars().all()
    _open(page, live_server)
    page.evaluate("code => gridEdit.select(code)", GRID)
    page.wait_for_function(f"() => (document.documentElement.dataset.geTeam || '').startsWith('{GRID}:')")
    volunteer = page.locator('.ge-team-member[data-role="volunteer"]').first
    options = volunteer.locator(".ge-team-move option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["", *community]
    target = community[-1]
    name = volunteer.locator(".ge-team-name").inner_text()
    volunteer.locator(".ge-team-move").select_option(target)
    page.wait_for_function("name => ![...document.querySelectorAll('.ge-team-name')]"
                           ".some(e => e.textContent === name)", arg=name)
    with engine.connect() as conn:
        moved_to = conn.execute(text(
            "SELECT g.code FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
            "WHERE w.name = :n AND w.left_at IS NULL"), {"n": name}).scalars().all()
    assert target in moved_to
    assert page.watch.console_errors == []


def test_boundaries_download_for_qgis_now_or_as_of_a_day(page, live_server, engine):
    import json

    with engine.connect() as conn:
        communities = conn.execute(text("SELECT count(*) FROM communities")).scalar()
    _open(page, live_server)
    links = page.locator("a.ge-export")
    assert links.count() == 6
    day = page.locator("#ge-as-of").get_attribute("min")  # the day the records begin
    page.locator("#ge-as-of").fill(day)
    page.locator("#ge-as-of").dispatch_event("change")
    link = page.locator('a.ge-export[data-level="community"][data-format="geojson"]')
    assert f"as_of={day}T23%3A59%3A59%2B08%3A00" in link.get_attribute("href")
    page.locator("#ge-as-of").fill("")
    page.locator("#ge-as-of").dispatch_event("change")
    with page.expect_download() as info:
        page.locator('a.ge-export[data-level="community"][data-format="geojson"]').click()
    assert info.value.suggested_filename.startswith("communities-current")
    data = json.loads(Path(info.value.path()).read_text(encoding="utf-8"))
    assert len(data["features"]) == communities
    assert {"code", "name", "grids"} <= set(data["features"][0]["properties"])
    assert page.watch.console_errors == []
