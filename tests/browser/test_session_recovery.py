"""A page outlives its sign-in: gridmap.js renews a stale CSRF token by itself, and a
lost sign-in offers a new tab to sign in again, keeping what the page holds."""

from __future__ import annotations

import pytest

from gridmap.accounts import DEMO_USERS

pytestmark = pytest.mark.browser

# A write the server refuses for its content once past the guard: nothing is stored,
# and its reason tells a CSRF or sign-in refusal from a request that got through.
BAD_CAMERA = """() => fetch('/api/cameras', {method: 'POST',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({gb_id: 'bad'})})
  .then(r => r.json().then(b => ({status: r.status, reason: b.reason})))"""
TOKEN = "() => document.querySelector('meta[name=\"csrf-token\"]').content"


def test_a_stale_csrf_token_is_renewed_and_the_request_sent_again(page, live_server):
    page.goto(live_server + "/cameras")
    page.evaluate("() => { document.querySelector('meta[name=\"csrf-token\"]').content = 'stale'; }")
    answer = page.evaluate(BAD_CAMERA)
    assert answer["status"] == 400 and answer["reason"].startswith("gb_id:"), answer
    assert page.evaluate(TOKEN) not in ("", "stale")
    assert page.locator("#gm-signin-bar").count() == 0


def test_a_lost_sign_in_offers_a_new_tab_and_the_page_carries_on(page, live_server):
    page.goto(live_server + "/cameras?q=%E8%B7%AF%E5%8F%A3")
    page.context.clear_cookies()
    assert page.evaluate(BAD_CAMERA)["status"] == 401
    bar = page.locator("#gm-signin-bar")
    bar.wait_for()
    assert bar.get_attribute("role") == "alert"
    assert "本页填写的内容仍在" in bar.inner_text()
    link = bar.locator(".gm-signin-link")
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("href") == "/login?next=%2Fcameras%3Fq%3D%25E8%25B7%25AF%25E5%258F%25A3"
    with page.context.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    password = next(u.password for u in DEMO_USERS if u.username == "district-operator")
    tab.fill("#username", "district-operator")
    tab.fill("#password", password)
    with tab.expect_navigation():
        tab.click("#login-submit")
    assert tab.url.endswith("/cameras?q=%E8%B7%AF%E5%8F%A3")
    tab.close()
    # Back on the first tab: the bar says so, and a write goes through on the renewed token.
    page.evaluate("() => window.dispatchEvent(new Event('focus'))")
    page.wait_for_function("() => document.querySelector('#gm-signin-bar .gm-signin-text')"
                           ".textContent.startsWith('已重新登录')")
    answer = page.evaluate(BAD_CAMERA)
    assert answer["status"] == 400 and answer["reason"].startswith("gb_id:"), answer
