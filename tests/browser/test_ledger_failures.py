"""The camera ledger when a write gets no answer (the network) or a 401 (signed out):
each action says what did not happen, keeps what the user typed, and leaves no
uncaught error behind."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.lgReady === '1'"
NETWORK_ZH = "网络连接失败，请重试"


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function(READY)


def _camera(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT gb_id FROM cameras WHERE heading IS NOT NULL AND NOT has_credentials "
            "ORDER BY gb_id OFFSET 11 LIMIT 1")).scalar_one()


def _open_details(page, live_server, gb_id: str, lang: str = "") -> None:
    _open(page, f"{live_server}/cameras?q={gb_id}{lang}")
    page.click(f'#lg-rows tr[data-gb="{gb_id}"] .lg-open')
    page.wait_for_function(f"() => document.querySelector('#lg-detail .lg-id')?.textContent === '{gb_id}'")
    page.wait_for_selector("#lg-history li")  # every answer of the opening is in


def _abort(method: str):
    """A route handler: requests of ``method`` get no answer, the others go through."""
    def handle(route):
        if route.request.method == method:
            route.abort("internetdisconnected")
        else:
            route.continue_()
    return handle


def _status(page, selector: str, prefix: str) -> str:
    page.wait_for_function(
        "([sel, p]) => (document.querySelector(sel)?.textContent || '').startsWith(p)",
        arg=[selector, prefix])
    return page.inner_text(selector)


def test_a_save_without_an_answer_says_not_saved_and_keeps_the_form(page, live_server, engine):
    gb_id = _camera(engine)
    _open_details(page, live_server, gb_id)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT name, heading FROM cameras WHERE gb_id = :g"),
                              {"g": gb_id}).one()
    page.route(f"**/api/cameras/{gb_id}", _abort("PATCH"))
    page.fill("#lg-edit input[name=name]", "断网时改的名称")
    page.fill("#lg-edit input[name=heading]", "123")
    page.click("#lg-edit button[type=submit]")
    assert _status(page, "#lg-edit-status", "未保存") == "未保存：" + NETWORK_ZH
    assert "lg-bad" in page.get_attribute("#lg-edit-status", "class")
    # The form keeps what was typed, ready to be sent again, and the button works again.
    assert page.input_value("#lg-edit input[name=name]") == "断网时改的名称"
    assert page.input_value("#lg-edit input[name=heading]") == "123"
    assert page.is_enabled("#lg-edit button[type=submit]")
    assert page.is_visible("#lg-detail")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name, heading FROM cameras WHERE gb_id = :g"),
                            {"g": gb_id}).one() == before
    assert page.watch.console_errors == []


def test_a_save_without_an_answer_says_so_in_english(page, live_server, engine):
    gb_id = _camera(engine)
    _open_details(page, live_server, gb_id, "&lang=en")
    page.route(f"**/api/cameras/{gb_id}", _abort("PATCH"))
    page.fill("#lg-edit input[name=heading]", "124")
    page.click("#lg-edit button[type=submit]")
    assert _status(page, "#lg-edit-status", "Not saved") == (
        "Not saved: the network connection failed, please try again")
    assert page.watch.console_errors == []


def test_a_save_answered_401_shows_the_message_and_keeps_the_form(page, live_server, engine):
    gb_id = _camera(engine)
    _open_details(page, live_server, gb_id)
    url = page.url

    def signed_out(route):
        if route.request.method == "PATCH":
            route.fulfill(status=401, content_type="application/json",
                          body=json.dumps({"reason": "unauthenticated", "message": "请先登录"}))
        else:
            route.continue_()

    page.watch.expect_errors = True
    page.route(f"**/api/cameras/{gb_id}", signed_out)
    page.fill("#lg-edit input[name=name]", "登录过期时改的名称")
    page.click("#lg-edit button[type=submit]")
    assert _status(page, "#lg-edit-status", "未保存") == "未保存：请先登录"
    page.wait_for_timeout(300)  # a redirect, were there one, would have started
    assert page.url == url
    assert page.input_value("#lg-edit input[name=name]") == "登录过期时改的名称"
    assert page.is_visible("#lg-detail")
    assert [e for e in page.watch.console_errors if not e.startswith("HTTP 401")] == []


def test_a_registration_without_an_answer_says_not_registered_and_keeps_the_form(page, live_server):
    _open(page, live_server + "/cameras")
    page.route("**/api/cameras", _abort("POST"))
    page.click("#lg-new-box summary")
    form = page.locator("#lg-new")
    values = {"gb_id": "37081200001310000799", "name": "断网登记", "department": "兖州区公安分局",
              "lon": "116.83", "lat": "35.55", "main_url": "rtsp://192.0.2.10/ch1"}
    for name, value in values.items():
        form.locator(f"[name={name}]").fill(value)
    form.locator("button[type=submit]").click()
    assert _status(page, "#lg-new-status", "未登记") == "未登记：" + NETWORK_ZH
    for name, value in values.items():
        assert form.locator(f"[name={name}]").input_value() == value
    assert page.watch.console_errors == []


def test_an_import_without_an_answer_says_not_imported(page, live_server):
    _open(page, live_server + "/cameras")
    page.route("**/api/cameras/import**", _abort("POST"))
    page.set_input_files("#lg-file", files=[{
        "name": "ledger.csv", "mimeType": "text/csv",
        "buffer": b"gb_id,name,lon,lat,source,department,main_url\n"}])
    page.click("#lg-import-go")
    assert _status(page, "#lg-import-result", "未导入") == "未导入：" + NETWORK_ZH
    assert "lg-bad" in page.get_attribute("#lg-import-result", "class")
    assert page.is_enabled("#lg-import-go")
    assert page.watch.console_errors == []


def test_a_check_without_an_answer_says_it_could_not_check(page, live_server, engine):
    gb_id = _camera(engine)
    _open_details(page, live_server, gb_id)
    page.route(f"**/api/cameras/{gb_id}/sample", _abort("POST"))
    page.click("#lg-sample")
    assert _status(page, "#lg-sample-result", "未能检测") == "未能检测：" + NETWORK_ZH
    assert page.is_enabled("#lg-sample")
    assert page.watch.console_errors == []


def test_details_without_an_answer_keep_the_row_and_leave_no_uncaught_error(page, live_server, engine):
    gb_id = _camera(engine)
    _open(page, f"{live_server}/cameras?q={gb_id}")
    page.route(f"**/api/cameras/{gb_id}", _abort("GET"))
    page.click(f'#lg-rows tr[data-gb="{gb_id}"] .lg-open')
    page.wait_for_selector("#lg-detail-failed")
    assert page.inner_text("#lg-detail-failed") == "加载失败：" + NETWORK_ZH
    assert page.inner_text("#lg-detail .lg-id") == gb_id  # what the row knew stays in view
    page.wait_for_timeout(200)
    assert page.watch.console_errors == []
