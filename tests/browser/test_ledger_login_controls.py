"""The camera ledger's login controls: an editor clears a camera's stored login from
its details (asked once more on the same button), and the camera's history says
when a login was cleared or dropped because a stream address moved elsewhere."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from tests.integration.test_cameras import grid_interior_point, new_camera

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.lgReady === '1'"
SEND = """async ([method, url, body]) => {
  const r = await fetch(url, {method, headers: {'Content-Type': 'application/json',
                                                Accept: 'application/json'},
                              body: JSON.stringify(body)});
  return {status: r.status, data: await r.json()};
}"""


def _has_credentials(engine, gb_id: str) -> tuple[bool, int]:
    with engine.connect() as conn:
        flag = conn.execute(text("SELECT has_credentials FROM cameras WHERE gb_id = :g"),
                            {"g": gb_id}).scalar_one()
        kept = conn.execute(text(
            "SELECT count(*) FROM camera_credentials k JOIN cameras c ON c.id = k.camera_id "
            "WHERE c.gb_id = :g"), {"g": gb_id}).scalar_one()
    return flag, kept


def _open_camera(page, live_server: str, gb_id: str, lang: str = "") -> None:
    page.goto(f"{live_server}/cameras?q={gb_id}" + (f"&lang={lang}" if lang else ""))
    page.wait_for_function(READY)
    page.click(f'#lg-rows button.lg-open[data-gb="{gb_id}"]')
    page.wait_for_function(f"() => document.querySelector('#lg-detail .lg-id')?.textContent === '{gb_id}'")
    page.wait_for_selector("#lg-history li")


@pytest.fixture
def locked_camera(signed_in_page, live_server, engine, demo_loaded):
    """Register a camera with a stream login through the API (as the district operator);
    yield (its GB ID, the operator's page); delete it afterwards."""
    from gridmap.db import session_factory

    with session_factory(engine)() as s:
        _, lon, lat = grid_interior_point(s, 29)
    # A GB ID of its own each run: the audit trail (its history) outlives the camera.
    serial = random.randint(900000, 999999)
    body = new_camera(lon, lat, serial, name="登录控制测试",
                      main_url="rtsp://admin:Pw123456@10.0.0.5:554/Streaming/Channels/101")
    page = signed_in_page("district-operator")
    page.goto(live_server + "/cameras")
    page.wait_for_function(READY)
    answer = page.evaluate(SEND, ["POST", "/api/cameras", body])
    assert answer["status"] == 201, answer
    assert answer["data"]["has_credentials"] is True
    try:
        yield body["gb_id"], page
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM cameras WHERE gb_id = :g"), {"g": body["gb_id"]})


def test_an_editor_clears_the_stored_login_after_confirming(locked_camera, live_server, engine):
    gb_id, page = locked_camera
    _open_camera(page, live_server, gb_id)
    button = page.locator("#lg-clear-login")
    assert button.is_visible()
    assert button.inner_text() == "清除登录"

    # The first click only asks; nothing is sent.
    button.click()
    assert button.inner_text() == "确认清除？"
    assert _has_credentials(engine, gb_id) == (True, 1)

    # The second click clears it: the server's warning, in the page's language.
    button.click()
    page.wait_for_function("() => document.getElementById('lg-edit-status').textContent === '已保存的登录已清除'")
    assert _has_credentials(engine, gb_id) == (False, 0)
    assert page.evaluate(f"() => fetch('/api/cameras/{gb_id}').then(r => r.json())"
                         ".then(c => c.has_credentials)") is False
    assert page.is_hidden("#lg-clear-login")
    assert "无" in page.inner_text("#lg-detail-body .lg-facts")
    assert page.get_attribute(f'#lg-rows tr[data-gb="{gb_id}"] .lg-cred', "title") == ""

    # The history names the cleared login (newest first).
    page.wait_for_function("() => document.querySelector('#lg-history li .lg-history-note')")
    assert "登录已清除" in page.inner_text("#lg-history li:first-child")
    assert "地址改变" not in page.inner_text("#lg-history li:first-child")

    # Opened again: still no control (nothing left to clear).
    _open_camera(page, live_server, gb_id)
    assert page.is_hidden("#lg-clear-login")
    assert page.watch.console_errors == []


def test_leaving_the_button_takes_the_question_back(locked_camera, live_server, engine):
    gb_id, page = locked_camera
    _open_camera(page, live_server, gb_id)
    page.click("#lg-clear-login")
    assert page.inner_text("#lg-clear-login") == "确认清除？"
    page.focus("#lg-edit [name=name]")
    assert page.inner_text("#lg-clear-login") == "清除登录"
    page.click("#lg-clear-login")  # asks again, does not clear
    assert _has_credentials(engine, gb_id) == (True, 1)


def test_a_viewer_sees_the_note_but_no_control(locked_camera, signed_in_page, live_server):
    gb_id, operator = locked_camera
    answer = operator.evaluate(SEND, ["PATCH", f"/api/cameras/{gb_id}", {"clear_login": True}])
    assert answer["status"] == 200, answer
    assert [w["code"] for w in answer["data"]["warnings"]] == ["login_cleared"]

    viewer = signed_in_page("district-viewer")
    _open_camera(viewer, live_server, gb_id)
    assert viewer.query_selector("#lg-clear-login") is None
    assert "登录已清除" in viewer.inner_text("#lg-history li:first-child")
    assert viewer.watch.console_errors == []


def test_a_login_dropped_by_a_moved_address_is_noted_in_english(locked_camera, live_server):
    gb_id, page = locked_camera
    _open_camera(page, live_server, gb_id, lang="en")
    assert page.inner_text("#lg-clear-login") == "Clear login"

    answer = page.evaluate(SEND, ["PATCH", f"/api/cameras/{gb_id}",
                                  {"main_url": "rtsp://10.0.0.6:554/Streaming/Channels/101"}])
    assert answer["status"] == 200, answer
    assert [w["code"] for w in answer["data"]["warnings"]] == ["login_dropped"]

    _open_camera(page, live_server, gb_id, lang="en")
    assert page.is_hidden("#lg-clear-login")
    newest = page.inner_text("#lg-history li:first-child")
    assert "login removed (address changed)" in newest
    assert page.watch.console_errors == []
