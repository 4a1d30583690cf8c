"""The patrol page's camera viewer is a modal dialog a keyboard or screen reader can
use (on the emulated phone of test_patrol), and a signed-out search keeps the list."""

from __future__ import annotations

import json

import pytest

from tests.browser.test_patrol import phone  # noqa: F401  (the phone fixture)

pytestmark = pytest.mark.browser

LISTED = "() => Number(document.documentElement.dataset.nearbyCount || 0) > 0"
ACTIVE = """() => {
  const a = document.activeElement;
  return {id: a.id, tag: a.tagName, gb: a.dataset ? (a.dataset.gbId || null) : null,
          inViewer: !!a.closest('#patrol-viewer')};
}"""


def _listed(phone, live_server) -> str:  # noqa: F811
    phone.goto(live_server + "/patrol")
    phone.wait_for_function(LISTED)
    return phone.locator("button.patrol-item").nth(1).get_attribute("data-gb-id")


def test_the_viewer_is_a_dialog_that_takes_and_gives_back_the_focus(phone, live_server):  # noqa: F811
    gb_id = _listed(phone, live_server)
    viewer = phone.locator("#patrol-viewer")
    assert viewer.get_attribute("role") == "dialog"
    assert viewer.get_attribute("aria-modal") == "true"
    assert viewer.get_attribute("aria-label") == "摄像头详情"
    assert phone.get_attribute("#patrol-viewer-close", "aria-label") == "关闭"

    # Opened from the keyboard: the focus is on the dialog's heading, not the hidden list.
    item = phone.locator(f"button.patrol-item[data-gb-id='{gb_id}']")
    item.focus()
    phone.keyboard.press("Enter")
    viewer.wait_for(state="visible")
    active = phone.evaluate(ACTIVE)
    assert active["inViewer"] and active["id"] == "patrol-viewer-title", active
    # Tab stays inside the dialog, round and round.
    for _ in range(6):
        phone.keyboard.press("Tab")
        assert phone.evaluate(ACTIVE)["inViewer"]
    phone.keyboard.press("Shift+Tab")
    assert phone.evaluate(ACTIVE)["inViewer"]
    # Escape closes it, back on the item that opened it.
    phone.keyboard.press("Escape")
    assert not viewer.is_visible()
    assert phone.evaluate(ACTIVE)["gb"] == gb_id

    # Opened by a tap and closed by "back to the list": the same item has the focus.
    item.tap()
    viewer.wait_for(state="visible")
    assert phone.evaluate(ACTIVE)["id"] == "patrol-viewer-title"
    viewer.locator("button.patrol-back").tap()
    assert not viewer.is_visible()
    assert phone.evaluate(ACTIVE)["gb"] == gb_id
    # And by the × in its corner.
    item.tap()
    viewer.wait_for(state="visible")
    phone.locator("#patrol-viewer-close").tap()
    assert not viewer.is_visible()
    assert phone.evaluate(ACTIVE)["gb"] == gb_id
    assert phone.watch.console_errors == []


def test_the_viewer_speaks_english_on_request(phone, live_server):  # noqa: F811
    phone.goto(live_server + "/patrol?lang=en")
    phone.wait_for_function(LISTED)
    assert phone.get_attribute("#patrol-viewer", "aria-label") == "Camera details"
    assert phone.get_attribute("#patrol-viewer-close", "aria-label") == "Close"


def test_a_signed_out_search_shows_the_message_and_keeps_the_list(phone, live_server):  # noqa: F811
    _listed(phone, live_server)
    before = phone.locator("button.patrol-item").evaluate_all("els => els.map(e => e.dataset.gbId)")
    url = phone.url
    phone.watch.expect_errors = True
    phone.route("**/api/cameras/nearby**", lambda route: route.fulfill(
        status=401, content_type="application/json",
        body=json.dumps({"reason": "unauthenticated", "message": "请先登录"})))
    phone.evaluate("() => gridmapPatrol.search(35.5540, 116.8270)")
    phone.wait_for_function("() => document.getElementById('patrol-status').textContent === '请先登录'")
    phone.wait_for_timeout(300)  # a redirect, were there one, would have started
    assert phone.url == url
    after = phone.locator("button.patrol-item").evaluate_all("els => els.map(e => e.dataset.gbId)")
    assert after == before
    assert [e for e in phone.watch.console_errors if not e.startswith("HTTP 401")] == []
