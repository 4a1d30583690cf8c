"""The grid editing page's audit findings, in a real browser: a network failure does
not hang the editor, Escape and Cancel end a drawing, the keyboard can pick a grid
without tabbing through 930 outlines, read-only roles are offered no editing, and the
panel's label speaks the page's language."""

from __future__ import annotations

import pytest

from tests.browser.test_grid_edit import _open, committed  # noqa: F401 (a fixture)
from tests.integration.test_grid_edits import GRID

pytestmark = pytest.mark.browser

OTHER_COMMUNITY_GRID = "370812002010003"  # 北和平社区第三网格: another town's grid
STATE = "document.documentElement.dataset"


def _select(page, code: str) -> None:
    page.locator(f'path.ge-grid[data-code="{code}"]').click(force=True)
    page.wait_for_selector(f'#ge-selected[data-code="{code}"][data-version]:not([data-version=""])')


def _drag_a_vertex(page) -> None:
    """Move one of Geoman's vertex handles a few pixels, as a user would."""
    box = page.locator(".marker-icon:not(.marker-icon-middle)").first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 4, y + 3, steps=4)
    page.mouse.up()


def _drag_with_reason(page, reason: str) -> None:
    """Select GRID, start editing its vertices, move one and give the reason: an unsaved edit."""
    _select(page, GRID)
    page.locator("#ge-edit").click()
    page.wait_for_selector(".marker-icon")
    _drag_a_vertex(page)
    page.locator("#ge-reason").fill(reason)


def _map_point(page, code: str) -> dict:
    """A screen point inside a grid (its polygon's centre of mass is inside these grids)."""
    return page.evaluate(
        """code => { const layer = gridEdit.state.byCode[code];
                     const p = gridEdit.state.map.latLngToContainerPoint(layer.getBounds().getCenter());
                     const r = gridEdit.state.map.getContainer().getBoundingClientRect();
                     return {x: r.left + p.x, y: r.top + p.y}; }""",
        code,
    )


# ---------------------------------------------------------------- 1. network failure

def test_a_network_failure_on_save_keeps_the_edit_for_a_retry(signed_in_page, live_server, committed):  # noqa: F811
    page = signed_in_page("district-gridadmin")
    _open(page, live_server)
    _drag_with_reason(page, "浏览器测试：网络中断后重试")

    sent = []

    def offline(route):
        sent.append(route.request.post_data_json)
        route.abort()

    page.route("**/api/grids/*/geometry", offline)
    page.locator("#ge-save").click()
    page.wait_for_function(f"() => {STATE}.geError === '0'", timeout=5000)
    assert page.evaluate(f"{STATE}.geBusy") == "0"
    assert page.locator("#ge-message").inner_text() == "网络连接失败，未保存，请重试"
    # The dragged boundary is still there, and Save is offered again.
    assert page.evaluate(f"{STATE}.geEditing") == "1"
    assert page.locator(".marker-icon").count() > 3
    assert page.locator("#ge-save").is_enabled()
    assert page.locator("#ge-reason").input_value() == "浏览器测试：网络中断后重试"
    assert page.watch.console_errors == []

    # Back online, Save sends the same drag again and the server answers it (whether it
    # takes this particular drag is the coverage rules' business, not this test's).
    page.unroute("**/api/grids/*/geometry")
    page.watch.expect_errors = True
    with page.expect_request("**/api/grids/*/geometry") as retry:
        page.locator("#ge-save").click()
    assert retry.value.post_data_json == sent[0]
    assert sent[0]["reason"] == "浏览器测试：网络中断后重试"
    page.wait_for_function(f"() => {STATE}.geBusy === '0'")
    assert "网络连接失败" not in page.locator("#ge-message").inner_text()
    assert page.watch.console_errors == []


def test_a_signed_out_save_shows_why_and_keeps_the_edit(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    _open(page, live_server)
    _drag_with_reason(page, "浏览器测试")
    page.watch.expect_errors = True
    page.route("**/api/grids/*/geometry", lambda route: route.fulfill(
        status=401, content_type="application/json",
        body='{"reason": "sign in first", "message": "请先登录"}'))
    page.locator("#ge-save").click()
    page.wait_for_function(f"() => {STATE}.geError === '401'", timeout=5000)
    assert page.locator("#ge-message").inner_text() == "请先登录"
    assert page.evaluate(f"{STATE}.geBusy") == "0"
    assert page.evaluate(f"{STATE}.geEditing") == "1"
    assert page.locator("#ge-save").is_enabled()
    assert page.url.endswith("/grids/edit")


def test_every_edit_call_settles_when_the_network_fails(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    _open(page, live_server)
    _select(page, GRID)
    page.wait_for_function(f"() => ({STATE}.geTeam || '').startsWith('{GRID}:')")
    page.route("**/api/**", lambda route: route.abort())
    line = {"type": "LineString", "coordinates": [[116.8, 35.5], [116.81, 35.51]]}
    calls = {
        "split": "gridEdit.split(code, line, {reason: 'x'})",
        "merge": "gridEdit.merge([code, code], {reason: 'x'})",
        "moveEdge": "gridEdit.moveEdge(code, code, line, {reason: 'x'})",
        "reassign": "gridEdit.reassign(code, '370812001002', {reason: 'x'})",
        "revert": "gridEdit.revert(code, 1, {reason: 'x'})",
        "addMember": "gridEdit.addMember({role: 'volunteer', name: 'x', phone: '13800000000'})",
        "changeMember": "gridEdit.changeMember(gridEdit.state.team.members[0], {role: 'volunteer'})",
        "removeMember": "gridEdit.removeMember(gridEdit.state.team.members[0])",
        "moveMember": "gridEdit.moveMember(gridEdit.state.team.members[0], code)",
        "importRoster": "gridEdit.importRoster(new File(['a'], 'r.csv'))",
    }
    for name, call in calls.items():
        got = page.evaluate(
            f"([code, line]) => {call}.then(r => [r.status, {STATE}.geBusy,"
            " document.querySelector('#ge-message').textContent])",
            [GRID, line],
        )
        assert got == [0, "0", "网络连接失败，未保存，请重试"], name
    assert page.watch.console_errors == []


# ---------------------------------------------------------------- 2. cancel a drawing

def _draw_state(page) -> dict:
    return page.evaluate(
        "() => ({mode: gridEdit.state.drawMode, draw: gridEdit.state.map.pm.globalDrawModeEnabled(),"
        " handles: document.querySelectorAll('.leaflet-pane .marker-icon').length})"
    )


@pytest.mark.parametrize("how", ["Escape", "cancel"])
def test_a_split_line_can_be_abandoned(signed_in_page, live_server, how):
    page = signed_in_page("district-gridadmin")
    _open(page, live_server)
    _select(page, GRID)
    page.locator("#ge-reason").fill("浏览器测试")
    page.locator("#ge-split").click()
    assert page.locator("#ge-cancel").is_enabled()
    point = _map_point(page, GRID)
    page.mouse.click(point["x"], point["y"])
    assert _draw_state(page)["mode"] == "split"
    if how == "Escape":
        page.keyboard.press("Escape")
    else:
        page.locator("#ge-cancel").click()
    # A line with a point is not dropped unasked: the panel asks, and "discard" ends it.
    assert page.locator("#ge-confirm").is_visible()
    assert _draw_state(page)["mode"] == "split"
    page.locator("#ge-confirm-discard").click()
    assert _draw_state(page) == {"mode": None, "draw": False, "handles": 0}
    assert page.locator("#ge-cancel").is_disabled()
    assert page.locator("#ge-message").inner_text() == ""
    # Selection works again, and no stray line reaches the server.
    other = page.evaluate("() => gridEdit.state.adjacent.grids[0].code")
    _select(page, other)
    assert page.watch.console_errors == []


def test_an_edge_line_can_be_abandoned_and_editing_escaped(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    _open(page, live_server)
    _select(page, GRID)
    page.locator("#ge-reason").fill("浏览器测试")
    other = page.evaluate("() => gridEdit.state.adjacent.grids.filter(g => g.same_community)[0].code")
    page.locator("#ge-edge-with").select_option(other)
    page.locator("#ge-edge").click()
    point = _map_point(page, GRID)
    page.mouse.click(point["x"], point["y"])
    page.mouse.click(point["x"] + 30, point["y"] + 10)
    page.locator("#ge-cancel").click()
    page.locator("#ge-confirm-discard").click()  # the line has points: asked first
    assert _draw_state(page) == {"mode": None, "draw": False, "handles": 0}
    # While vertices are edited, another grid is not chosen (the edit would go to it).
    page.locator("#ge-edit").click()
    page.wait_for_selector(".marker-icon")
    page.locator("#ge-find").fill(other)
    page.locator("#ge-find").press("Enter")
    assert page.locator("#ge-message").inner_text() == "请先保存或取消当前编辑"
    assert page.locator("#ge-selected").get_attribute("data-code") == GRID
    # Escape also leaves vertex editing.
    page.keyboard.press("Escape")
    assert page.evaluate(f"{STATE}.geEditing") == "0"
    assert page.locator(".marker-icon").count() == 0
    assert page.watch.console_errors == []


# ---------------------------------------------------------------- 3. keyboard

def test_grids_are_no_tab_stops_and_a_code_picks_a_grid(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    _open(page, live_server)
    assert page.locator('path.ge-grid:not([tabindex="-1"])').count() == 0
    # The grid finder is among the first Tab stops.
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "ge-find":
            break
    else:
        pytest.fail("Tab does not reach the grid finder within 15 presses")
    page.keyboard.type(GRID)
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#ge-selected[data-code="{GRID}"][data-version="1"]')
    # Tab goes on to the editing controls.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") in {"ge-reason", "ge-find-go"}

    # A name picks its grid too; bad input is explained.
    finder = page.locator("#ge-find")
    finder.fill("东永安社区第三网格")
    finder.press("Enter")
    page.wait_for_selector('#ge-selected[data-code="370812001001003"]')
    finder.fill("12345")
    finder.press("Enter")
    assert page.locator("#ge-message").inner_text() == "请输入 15 位网格编码或网格名称"
    assert page.locator("#ge-selected").get_attribute("data-code") == "370812001001003"
    finder.fill("370812999999999")
    finder.press("Enter")
    assert page.locator("#ge-message").inner_text() == "您的辖区内没有网格 370812999999999"
    assert page.watch.console_errors == []


def test_the_finder_keeps_to_the_users_area(signed_in_page, live_server):
    page = signed_in_page("community-gridadmin")
    _open(page, live_server)
    finder = page.locator("#ge-find")
    finder.fill(OTHER_COMMUNITY_GRID)
    finder.press("Enter")
    assert page.locator("#ge-message").inner_text() == f"您的辖区内没有网格 {OTHER_COMMUNITY_GRID}"
    assert page.locator("#ge-selected").get_attribute("data-code") == ""
    assert page.watch.console_errors == []


# ---------------------------------------------------------------- 4. read-only roles

# Not gulou-viewer: its open sign-in sessions are counted by tests/integration/test_auth.py.
@pytest.mark.parametrize("user", ["community-viewer", "community-patrol"])
def test_read_only_roles_see_grids_and_history_but_no_editing(signed_in_page, live_server, user):
    page = signed_in_page(user)
    _open(page, live_server)
    note = page.locator("#ge-read-only")
    assert note.is_visible()
    assert note.inner_text() == "您的角色只能查看网格及其历史版本"
    for control in ["#ge-reason", "#ge-edit", "#ge-save", "#ge-cancel", "#ge-split", "#ge-merge",
                    "#ge-edge", "#ge-reassign", "#ge-neighbour", "#ge-roster-file"]:
        assert not page.locator(control).is_visible(), control
    _select(page, GRID)
    page.wait_for_function(f"() => Number({STATE}.geHistory) >= 1")
    page.wait_for_function(f"() => ({STATE}.geTeam || '').startsWith('{GRID}:')")
    assert page.locator(".ge-revert").count() == 0
    assert not page.locator("#ge-team-add").is_visible()
    assert page.locator(".ge-team-actions select:enabled, .ge-team-remove").count() == 0
    # The glue refuses too: no vertex handles to drag.
    page.evaluate("() => gridEdit.startEditing()")
    assert page.locator(".marker-icon").count() == 0
    assert page.locator(".ge-export").count() == 6  # downloads stay
    assert page.watch.console_errors == []


def test_an_editor_sees_no_read_only_note(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    _open(page, live_server)
    assert not page.locator("#ge-read-only").is_visible()
    assert page.locator("#ge-edit").is_visible()


# ---------------------------------------------------------------- 5. language

@pytest.mark.parametrize(("lang", "label"), [("zh", "网格边界编辑"), ("en", "Grid boundary editing")])
def test_the_panel_label_speaks_the_pages_language(page, live_server, lang, label):
    page.goto(f"{live_server}/grids/edit?lang={lang}")
    page.wait_for_function(f"() => {STATE}.geReady === '1'")
    assert page.locator("#ge-panel").get_attribute("aria-label") == label


# ---------------------------------------------------------------- export as of a day

def test_the_export_date_cannot_reach_before_the_grid_records(signed_in_page, live_server, engine):
    from gridmap import grid_edits
    from web.blueprints.grid_edit import _local_day

    with engine.connect() as conn:
        from sqlalchemy.orm import Session

        first_day = _local_day(grid_edits.records_begin(Session(bind=conn)))
    page = signed_in_page("district-gridadmin")
    _open(page, live_server)
    field = page.locator("#ge-as-of")
    assert field.get_attribute("min") == first_day
    field.fill("2001-01-01")
    field.dispatch_event("change")
    note = page.locator("#ge-export-links .ge-export-note")
    assert first_day in note.inner_text()
    assert page.locator("#ge-export-links a.ge-export").count() == 0
    field.fill(first_day)
    field.dispatch_event("change")
    links = page.locator("#ge-export-links a.ge-export")
    assert links.count() == 6
    href = links.first.get_attribute("href")
    assert "as_of=" + first_day in href.replace("%3A", ":")
    assert page.request.get(live_server + href).status == 200
