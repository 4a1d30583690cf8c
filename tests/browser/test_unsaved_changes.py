"""Unsaved work is not dropped silently, in a real browser: on the camera ledger and in
the grid boundary editor, Escape, Close, another row and Cancel ask inside the panel
("放弃未保存的修改？") before an unsaved edit goes, the safe answer keeps it, and the
browser is asked to warn before the tab is closed or left only while something is
unsaved."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.browser.conftest import restore_camera_row
from tests.browser.test_accessibility import AXE, findings
from tests.browser.test_grid_edit import _open as _open_editor
from tests.browser.test_grid_edit_ui import _drag_a_vertex, _drag_with_reason, _map_point, _select
from tests.integration.test_grid_edits import GRID

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.lgReady === '1'"
STATE = "document.documentElement.dataset"
# A cancelable beforeunload, as the browser sends when the tab is closed or left: the
# page asks for the warning by cancelling it.
LEAVE = """() => { const e = new Event('beforeunload', {cancelable: true});
                   window.dispatchEvent(e); return e.defaultPrevented; }"""
PANEL_AXE = """sel => axe.run(document.querySelector(sel),
    {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}, resultTypes: ['violations']})
  .then(r => r.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))"""
ACTIVE_ID = "() => document.activeElement && document.activeElement.id"
NAME = "#lg-edit input[name=name]"


# ---------------------------------------------------------------- camera ledger

def _stored(engine, gb_id: str) -> tuple:
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT name, heading, fov, tags, main_url, sub_url, updated_at FROM cameras WHERE gb_id = :g"),
            {"g": gb_id}).one())


def _open_ledger(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(READY)


def _details_of(page, gb_id: str) -> None:
    page.wait_for_function(f"() => document.querySelector('#lg-detail .lg-id')?.textContent === '{gb_id}'")
    page.wait_for_selector("#lg-history li")  # every answer of the opening is in


def _open_camera(page, live_server, gb_id: str, query: str = "") -> None:
    _open_ledger(page, f"{live_server}/cameras{query}")
    page.click(f'#lg-rows tr[data-gb="{gb_id}"] .lg-open')
    _details_of(page, gb_id)


@pytest.fixture
def two_cameras(engine, demo_loaded):
    """Two demo cameras next to each other on the ledger's first page; their rows are put
    back exactly as they were afterwards (a test may save through the page)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT gb_id, to_jsonb(c) FROM cameras c ORDER BY gb_id OFFSET 5 LIMIT 2")).all()
    try:
        yield [gb_id for gb_id, _ in rows]
    finally:
        for _, saved in rows:
            restore_camera_row(engine, saved)


def test_escape_with_an_unsaved_edit_asks_and_keep_editing_keeps_it(page, live_server, engine, two_cameras):
    gb_id = two_cameras[0]
    _open_camera(page, live_server, gb_id, f"?q={gb_id}")
    stored_name = page.input_value(NAME)
    confirm = page.locator("#lg-confirm")
    assert confirm.is_hidden()
    assert page.evaluate(LEAVE) is False  # nothing typed yet: no warning

    page.fill(NAME, "未保存的名称")
    page.keyboard.press("Escape")
    # Asked inside the panel; the details and what was typed are still there.
    assert confirm.is_visible()
    assert confirm.get_attribute("role") == "alertdialog"
    label = page.locator("#" + confirm.get_attribute("aria-labelledby"))
    assert label.inner_text() == "放弃未保存的修改？"
    assert page.inner_text("#lg-confirm-discard") == "放弃修改"
    assert page.inner_text("#lg-confirm-keep") == "继续编辑"
    assert page.evaluate("() => document.querySelector('#lg-confirm-keep').tagName") == "BUTTON"
    assert page.is_visible("#lg-detail")
    assert page.input_value(NAME) == "未保存的名称"
    # Focus is on the safe answer; the page passes axe with the question shown.
    assert page.evaluate(ACTIVE_ID) == "lg-confirm-keep"
    assert findings(page) == []

    # Enter on "keep editing": the question goes, the field keeps the text and the focus.
    page.keyboard.press("Enter")
    assert confirm.is_hidden()
    assert page.is_visible("#lg-detail")
    assert page.input_value(NAME) == "未保存的名称"
    assert page.evaluate("() => document.activeElement.getAttribute('name')") == "name"

    # Escape on the question keeps editing too.
    page.keyboard.press("Escape")
    assert confirm.is_visible()
    page.keyboard.press("Escape")
    assert confirm.is_hidden() and page.is_visible("#lg-detail")
    assert page.input_value(NAME) == "未保存的名称"

    # Asked again, "discard": the details close, back on the row, and nothing is stored.
    page.keyboard.press("Escape")
    page.click("#lg-confirm-discard")
    assert page.is_hidden("#lg-detail")
    assert page.evaluate("() => document.activeElement.dataset.gb") == gb_id
    assert page.evaluate(LEAVE) is False
    api = page.request.get(f"{live_server}/api/cameras/{gb_id}").json()
    assert api["name"] == stored_name
    assert _stored(engine, gb_id)[0] == stored_name

    # Opened again, the form shows the camera as stored, not the dropped text.
    page.click(f'#lg-rows tr[data-gb="{gb_id}"] .lg-open')
    _details_of(page, gb_id)
    assert page.input_value(NAME) == stored_name
    assert page.watch.console_errors == []


def test_without_changes_escape_and_close_act_at_once(page, live_server, two_cameras):
    gb_id = two_cameras[0]
    _open_camera(page, live_server, gb_id, f"?q={gb_id}")
    # Typed and typed back: the form holds what was loaded, so nothing is asked.
    stored = page.input_value(NAME)
    page.fill(NAME, stored + "x")
    page.fill(NAME, stored)
    page.keyboard.press("Escape")
    assert page.is_hidden("#lg-detail")
    assert page.is_hidden("#lg-confirm")
    page.click(f'#lg-rows tr[data-gb="{gb_id}"] .lg-open')
    _details_of(page, gb_id)
    page.click("#lg-detail-close")
    assert page.is_hidden("#lg-detail")
    assert page.is_hidden("#lg-confirm")
    # The same close with a change made: asked, and the details stay until answered.
    page.click(f'#lg-rows tr[data-gb="{gb_id}"] .lg-open')
    _details_of(page, gb_id)
    page.fill(NAME, stored + "x")
    page.click("#lg-detail-close")
    assert page.is_visible("#lg-confirm") and page.is_visible("#lg-detail")
    page.click("#lg-confirm-discard")
    assert page.is_hidden("#lg-detail")
    assert page.watch.console_errors == []


def test_close_and_another_row_ask_first_when_the_form_has_changes(page, live_server, engine, two_cameras):
    first, second = two_cameras
    before = _stored(engine, first)
    _open_camera(page, live_server, first)
    assert page.locator(f'#lg-rows tr[data-gb="{second}"]').count() == 1
    page.fill("#lg-edit input[name=heading]", "17")

    # The close button asks; "keep editing" keeps the panel and the value.
    page.click("#lg-detail-close")
    assert page.is_visible("#lg-confirm")
    assert page.evaluate(ACTIVE_ID) == "lg-confirm-keep"
    page.click("#lg-confirm-keep")
    assert page.is_visible("#lg-detail") and page.is_hidden("#lg-confirm")
    assert page.input_value("#lg-edit input[name=heading]") == "17"

    # Another camera's row asks too, and the first camera stays open meanwhile.
    page.click(f'#lg-rows tr[data-gb="{second}"] .lg-open')
    assert page.is_visible("#lg-confirm")
    assert page.inner_text("#lg-detail .lg-id") == first
    assert page.input_value("#lg-edit input[name=heading]") == "17"
    assert "lg-selected" in page.get_attribute(f'#lg-rows tr[data-gb="{first}"]', "class")
    page.keyboard.press("Escape")
    assert page.is_hidden("#lg-confirm")
    assert page.inner_text("#lg-detail .lg-id") == first
    assert page.input_value("#lg-edit input[name=heading]") == "17"

    # Asked again and discarded: the other camera opens with its own values.
    page.click(f'#lg-rows tr[data-gb="{second}"] .lg-open')
    page.focus("#lg-confirm-discard")
    page.keyboard.press("Enter")
    _details_of(page, second)
    assert page.is_hidden("#lg-confirm")
    heading = _stored(engine, second)[1]
    assert page.input_value("#lg-edit input[name=heading]") == (str(heading) if heading is not None else "")
    assert _stored(engine, first) == before  # the dropped edit was never sent
    # Back to the first camera: the form shows it as stored.
    page.click(f'#lg-rows tr[data-gb="{first}"] .lg-open')
    _details_of(page, first)
    assert page.input_value("#lg-edit input[name=heading]") != "17"
    assert page.watch.console_errors == []


def test_the_ledger_asks_the_browser_to_warn_only_while_something_is_unsaved(
        page, live_server, engine, two_cameras):
    gb_id = two_cameras[0]
    _open_camera(page, live_server, gb_id, f"?q={gb_id}")
    assert page.evaluate(LEAVE) is False
    fov = page.input_value("#lg-edit input[name=fov]")
    page.fill("#lg-edit input[name=fov]", "61" if fov != "61" else "62")
    assert page.evaluate(LEAVE) is True
    page.fill("#lg-edit input[name=fov]", fov)
    assert page.evaluate(LEAVE) is False  # typed back to what was loaded
    page.fill("#lg-edit input[name=login_password]", "secret")  # a typed login is a change too
    assert page.evaluate(LEAVE) is True
    page.fill("#lg-edit input[name=login_password]", "")
    assert page.evaluate(LEAVE) is False

    # Saved, nothing is unsaved any more, and closing does not ask.
    stored = _stored(engine, gb_id)
    page.fill(NAME, stored[0] + "（已核）")
    assert page.evaluate(LEAVE) is True
    page.click("#lg-edit button[type=submit]")
    page.wait_for_function("() => document.getElementById('lg-edit-status').textContent === '已保存'")
    assert _stored(engine, gb_id)[0] == stored[0] + "（已核）"
    assert page.evaluate(LEAVE) is False
    page.focus(NAME)
    page.keyboard.press("Escape")
    assert page.is_hidden("#lg-detail") and page.is_hidden("#lg-confirm")

    # The new-camera form: something typed in it is unsaved until registered.
    page.click("#lg-new-box summary")
    page.fill("#lg-new [name=name]", "尚未登记的摄像机")
    assert page.evaluate(LEAVE) is True
    page.fill("#lg-new [name=name]", "")
    assert page.evaluate(LEAVE) is False
    assert page.watch.console_errors == []


def test_the_question_speaks_english_on_request(page, live_server, two_cameras):
    gb_id = two_cameras[0]
    _open_camera(page, live_server, gb_id, f"?q={gb_id}&lang=en")
    page.fill("#lg-edit input[name=range_m]", "77")
    page.keyboard.press("Escape")
    assert page.inner_text("#lg-confirm-text") == "Discard unsaved changes?"
    assert page.inner_text("#lg-confirm-discard") == "Discard changes"
    assert page.inner_text("#lg-confirm-keep") == "Keep editing"
    page.click("#lg-confirm-discard")
    assert page.is_hidden("#lg-detail")
    assert page.watch.console_errors == []


# ---------------------------------------------------------------- grid editor

def _panel_findings(page) -> list[str]:
    """axe's WCAG 2 A/AA findings in the editing panel (Geoman's vertex handles on the
    map are not this page's markup)."""
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
    return page.evaluate(PANEL_AXE, "#ge-panel")


GEOMETRY = """() => { const layers = [];
  gridEdit.state.editLayer.eachLayer(l => layers.push(l.toGeoJSON(false).geometry.coordinates));
  return JSON.stringify(layers); }"""


def _version(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version FROM grids WHERE code = :c"), {"c": GRID}).scalar_one()


def _editing(page):
    _select(page, GRID)
    page.locator("#ge-edit").click()
    page.wait_for_selector(".marker-icon")
    return page.evaluate(GEOMETRY)


def test_a_dragged_vertex_is_not_dropped_without_asking(signed_in_page, live_server, engine):
    page = signed_in_page("district-gridadmin")
    version = _version(engine)
    _open_editor(page, live_server)
    original = _editing(page)
    assert page.evaluate(LEAVE) is False  # editing, nothing moved yet
    _drag_a_vertex(page)
    moved = page.evaluate(GEOMETRY)
    assert moved != original
    assert page.evaluate(LEAVE) is True

    # Escape asks in the panel, focus on "keep editing"; the edit stays meanwhile.
    page.keyboard.press("Escape")
    confirm = page.locator("#ge-confirm")
    assert confirm.is_visible()
    assert confirm.get_attribute("role") == "alertdialog"
    assert page.locator("#" + confirm.get_attribute("aria-labelledby")).inner_text() == "放弃未保存的修改？"
    assert page.inner_text("#ge-confirm-discard") == "放弃修改"
    assert page.inner_text("#ge-confirm-keep") == "继续编辑"
    assert page.evaluate(ACTIVE_ID) == "ge-confirm-keep"
    assert page.evaluate(f"{STATE}.geEditing") == "1"
    assert _panel_findings(page) == []

    # "Keep editing" (by Enter): the moved vertex is still there, Save still offered.
    page.keyboard.press("Enter")
    assert confirm.is_hidden()
    assert page.evaluate(f"{STATE}.geEditing") == "1"
    assert page.evaluate(GEOMETRY) == moved
    assert page.locator("#ge-save").is_enabled()
    # Escape on the question keeps editing as well.
    page.keyboard.press("Escape")
    assert confirm.is_visible()
    page.keyboard.press("Escape")
    assert confirm.is_hidden() and page.evaluate(GEOMETRY) == moved

    # Cancel asks too; "discard" drops the drag: the boundary is the stored one again.
    page.locator("#ge-cancel").click()
    assert confirm.is_visible()
    page.locator("#ge-confirm-discard").click()
    assert confirm.is_hidden()
    assert page.evaluate(f"{STATE}.geEditing") == "0"
    assert page.locator(".marker-icon").count() == 0
    assert page.evaluate(LEAVE) is False
    page.locator("#ge-edit").click()
    page.wait_for_selector(".marker-icon")
    assert page.evaluate(GEOMETRY) == original
    assert _version(engine) == version  # nothing was sent
    assert page.watch.console_errors == []


def test_editing_without_a_change_ends_at_once(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    _open_editor(page, live_server)
    _editing(page)
    page.keyboard.press("Escape")
    assert page.evaluate(f"{STATE}.geEditing") == "0"
    assert page.locator("#ge-confirm").is_hidden()
    assert page.evaluate(LEAVE) is False
    page.locator("#ge-edit").click()
    page.wait_for_selector(".marker-icon")
    page.locator("#ge-cancel").click()
    assert page.evaluate(f"{STATE}.geEditing") == "0"
    assert page.locator("#ge-confirm").is_hidden()
    # The same Cancel after a drag: asked, and the edit stays until answered.
    page.locator("#ge-edit").click()
    page.wait_for_selector(".marker-icon")
    _drag_a_vertex(page)
    page.locator("#ge-cancel").click()
    assert page.locator("#ge-confirm").is_visible()
    assert page.evaluate(f"{STATE}.geEditing") == "1"
    page.locator("#ge-confirm-discard").click()
    assert page.evaluate(f"{STATE}.geEditing") == "0"
    assert page.watch.console_errors == []


def test_a_line_being_drawn_is_not_dropped_without_asking(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    _open_editor(page, live_server)
    _select(page, GRID)
    page.locator("#ge-reason").fill("浏览器测试")
    page.locator("#ge-split").click()
    assert page.evaluate(LEAVE) is False  # drawing, no point yet
    point = _map_point(page, GRID)
    page.mouse.click(point["x"], point["y"])
    assert page.evaluate(LEAVE) is True

    page.keyboard.press("Escape")
    assert page.locator("#ge-confirm").is_visible()
    assert page.evaluate("() => gridEdit.state.drawMode") == "split"
    page.keyboard.press("Escape")  # keep drawing
    assert page.locator("#ge-confirm").is_hidden()
    assert page.evaluate("() => gridEdit.state.map.pm.globalDrawModeEnabled()") is True

    page.locator("#ge-cancel").click()
    page.locator("#ge-confirm-discard").click()
    assert page.evaluate("() => gridEdit.state.drawMode") is None
    assert page.evaluate("() => gridEdit.state.map.pm.globalDrawModeEnabled()") is False
    assert page.locator("#ge-cancel").is_disabled()
    assert page.evaluate(LEAVE) is False
    assert page.watch.console_errors == []


def test_another_tool_asks_before_it_drops_a_drag(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    _open_editor(page, live_server)
    _drag_with_reason(page, "浏览器测试")
    moved = page.evaluate(GEOMETRY)
    page.locator("#ge-split").click()
    assert page.locator("#ge-confirm").is_visible()
    assert page.evaluate("() => gridEdit.state.drawMode") is None
    page.locator("#ge-confirm-keep").click()
    assert page.evaluate(GEOMETRY) == moved
    # Dropped on purpose: the split's line drawing starts.
    page.locator("#ge-split").click()
    page.locator("#ge-confirm-discard").click()
    assert page.evaluate("() => gridEdit.state.drawMode") == "split"
    assert page.evaluate(f"{STATE}.geEditing") == "0"
    page.keyboard.press("Escape")  # no point drawn yet: ends at once
    assert page.evaluate("() => gridEdit.state.drawMode") is None
    assert page.watch.console_errors == []


def test_the_editors_question_speaks_english(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    page.goto(f"{live_server}/grids/edit?lang=en")
    page.wait_for_function(f"() => {STATE}.geReady === '1'")
    _editing(page)
    _drag_a_vertex(page)
    page.locator("#ge-cancel").click()
    assert page.inner_text("#ge-confirm-text") == "Discard unsaved changes?"
    assert page.inner_text("#ge-confirm-discard") == "Discard changes"
    assert page.inner_text("#ge-confirm-keep") == "Keep editing"
    page.locator("#ge-confirm-discard").click()
    assert page.watch.console_errors == []
