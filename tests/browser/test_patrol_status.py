"""The patrol page tells a screen reader one short line after a search (its status
line is the live region), not the whole sheet of up to 20 cameras (on the emulated
phone of test_patrol)."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.test_patrol import phone  # noqa: F401  (the phone fixture)

pytestmark = pytest.mark.browser

LISTED = "() => document.documentElement.dataset.nearbyCount !== undefined"
# Every element of the page that is (or sits inside) a live region, by id or tag.
LIVE = """() => [...document.querySelectorAll('[aria-live], [role=status], [role=log], [role=alert]')]
  .filter(e => e.getAttribute('aria-live') !== 'off')
  .map(e => e.id || e.tagName.toLowerCase())"""


@pytest.mark.parametrize(("query", "said"), [
    ("", r"500 米内(最近的)? (\d+) 个摄像头"),
    ("?lang=en", r"(The nearest )?(\d+) cameras within 500 m"),
], ids=["zh", "en"])
def test_only_the_status_line_is_announced_and_it_gives_the_count(
        phone, live_server, query, said):  # noqa: F811
    phone.goto(live_server + "/patrol" + query)
    phone.wait_for_function(LISTED)
    sheet = phone.locator("#patrol-sheet")
    status = phone.locator("#patrol-status")
    assert sheet.get_attribute("aria-live") is None
    assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
    # The list, the grid contacts and the sheet are in no live region: only the line is.
    assert phone.evaluate(LIVE) == ["patrol-status"]
    for part in ("#patrol-list", "#patrol-grid"):
        assert phone.locator(part).evaluate(
            "e => e.closest('[aria-live], [role=status], [role=log], [role=alert]')") is None

    # The line states what the search found: the count of cameras listed.
    count = int(phone.evaluate("document.documentElement.dataset.nearbyCount"))
    assert count == phone.locator("button.patrol-item").count() > 0
    found = re.fullmatch(said, status.inner_text())
    assert found and int(found.group(2)) == count
    assert phone.watch.console_errors == []


def test_an_empty_search_says_so_on_the_status_line(phone, live_server):  # noqa: F811
    phone.goto(live_server + "/patrol")
    phone.wait_for_function("() => Number(document.documentElement.dataset.nearbyCount || 0) > 0")
    phone.route("**/api/cameras/nearby**", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps({"items": [], "count": 0})))
    phone.evaluate("() => gridmapPatrol.search(35.5540, 116.8270)")
    phone.wait_for_function("() => document.documentElement.dataset.nearbyCount === '0'")
    # What a screen reader hears is the empty message, not "0 cameras".
    assert phone.locator("#patrol-status").inner_text() == "500 米内没有摄像头"
    assert phone.locator("#patrol-list .patrol-empty").inner_text() == "500 米内没有摄像头"
    assert phone.locator("#patrol-sheet").get_attribute("aria-live") is None
    assert phone.watch.console_errors == []
