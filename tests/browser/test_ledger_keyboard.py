"""The camera ledger by keyboard: a camera's details take the focus when opened,
the edit form is a few Tabs away, and Escape closes them back to the row."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.lgReady === '1'"
ACTIVE = """() => {
  const a = document.activeElement;
  return {id: a.id, tag: a.tagName, gb: a.dataset ? (a.dataset.gb || null) : null,
          inPanel: !!a.closest('#lg-detail'), name: a.getAttribute('name')};
}"""


def _open_list(page, live_server) -> None:
    page.goto(live_server + "/cameras")
    page.wait_for_function(READY)


def _details_of(page, gb_id: str) -> None:
    page.wait_for_function(f"() => document.querySelector('#lg-detail .lg-id')?.textContent === '{gb_id}'")


def test_enter_on_a_row_moves_focus_into_the_details_and_escape_returns_it(page, live_server):
    _open_list(page, live_server)
    gb_id = page.eval_on_selector("#lg-rows tr:nth-child(4)", "tr => tr.dataset.gb")
    page.focus(f'#lg-rows button.lg-open[data-gb="{gb_id}"]')
    page.keyboard.press("Enter")
    _details_of(page, gb_id)
    active = page.evaluate(ACTIVE)
    assert active["id"] == "lg-detail-title" and active["inPanel"], active
    assert page.get_attribute("#lg-detail-title", "tabindex") == "-1"

    # The edit form is a handful of Tabs away, not the rest of the table's rows.
    for _ in range(11):
        page.keyboard.press("Tab")
        if page.evaluate(ACTIVE)["name"] == "name":
            break
    else:
        pytest.fail("the edit form is not within 11 Tabs of the details' heading")
    assert page.evaluate(ACTIVE)["inPanel"]

    # Escape (from a field of the form) closes the details, back on the row.
    page.keyboard.press("Escape")
    assert page.is_hidden("#lg-detail")
    active = page.evaluate(ACTIVE)
    assert active["tag"] == "BUTTON" and active["gb"] == gb_id, active
    assert page.watch.console_errors == []


def test_a_click_moves_focus_to_the_details_and_the_close_button_returns_it(page, live_server):
    _open_list(page, live_server)
    gb_id = page.eval_on_selector("#lg-rows tr:nth-child(2)", "tr => tr.dataset.gb")
    page.click(f'#lg-rows button.lg-open[data-gb="{gb_id}"]')
    _details_of(page, gb_id)
    assert page.evaluate(ACTIVE)["id"] == "lg-detail-title"
    page.click("#lg-detail-close")
    assert page.is_hidden("#lg-detail")
    assert page.evaluate(ACTIVE)["gb"] == gb_id
    # Opened again and closed by Escape from its heading: the same.
    page.keyboard.press("Enter")
    _details_of(page, gb_id)
    page.wait_for_selector("#lg-history li")
    assert page.evaluate(ACTIVE)["id"] == "lg-detail-title"
    page.keyboard.press("Escape")
    assert page.is_hidden("#lg-detail")
    assert page.evaluate(ACTIVE)["gb"] == gb_id
    assert page.watch.console_errors == []
