"""The matters pages under trouble (a UI audit in headless Chromium): a lost sign-in, a
version conflict and a dropped connection keep what the operator typed; the map's dots
are not Tab stops; the action form closes on Escape and gives focus back; a malformed
coordinate is refused; the landmarks are labelled in the page's language."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.browser import test_matters_page as matters_page
from tests.browser.conftest import sign_in
from tests.browser.test_matters_page import MARK, STATE_IS, TOWN, open_page, spot

pytestmark = pytest.mark.browser

# The matters page tests' fixtures: the category tree, and matters filed (deleted after).
categories = matters_page.categories
filed = matters_page.filed

LONG = "东侧人行道井盖缺失约半米，夜间无照明，已有行人绊倒。" * 12  # a long note worth keeping
FOCUSED = "() => { const a = document.activeElement; return a ? (a.id || a.dataset.action || a.tagName) : null; }"


def domain_action(engine, username: str, matter_id: int, action: str, payload: dict) -> None:
    """Someone else, in another tab, moves the matter on."""
    from gridmap import accounts, matters

    with Session(engine) as s:
        user = s.scalars(select(accounts.User).where(accounts.User.username == username)).one()
        matters.apply_action(s, accounts.actor_for(s, user), matter_id, action, payload)
        s.commit()


def sign_in_again_in_a_new_tab(page, live_server: str, username: str) -> None:
    tab = page.context.new_page()
    sign_in(tab, live_server, username)
    assert "/login" not in tab.url
    tab.close()


def fill_intake(page, here: dict, title: str) -> None:
    page.select_option("#mt-category", "BJ.01")
    page.fill("#mt-lon", str(here["lon"]))
    page.fill("#mt-lat", str(here["lat"]))
    page.fill("#mt-title-input", title)
    page.fill("#mt-description", LONG)


# --------------------------------------------------------------------------- 1. lost sign-in


def test_a_lost_sign_in_keeps_the_intake_form_and_it_files_once_signed_in_again(
        page, live_server, engine, filed):
    here = spot(engine, TOWN, 8)
    open_page(page, live_server + "/matters")
    page.click("#mt-tab-new")
    assert page.url.endswith("/matters?new=1")  # the address names the tab
    fill_intake(page, here, f"{MARK} 登录过期")
    page.context.clear_cookies()
    page.watch.expect_errors = True  # the next answer is 401 on purpose
    page.click("#mt-submit")
    page.wait_for_function("() => document.documentElement.dataset.mtFiled === 'error'")
    assert page.url.endswith("/matters?new=1")  # no redirect to /login
    assert "登录" in page.inner_text("#mt-form-msg")
    assert "填写的内容仍在" in page.inner_text("#mt-form-msg")
    assert page.input_value("#mt-description") == LONG
    assert page.input_value("#mt-title-input") == f"{MARK} 登录过期"
    assert not page.is_hidden("#mt-new-view")
    link = page.locator("#gm-signin-bar .gm-signin-link")
    assert link.get_attribute("href") == "/login?next=%2Fmatters%3Fnew%3D1"
    sign_in_again_in_a_new_tab(page, live_server, "district-operator")
    # Sent again: gridmap.js renews the stale CSRF token (a 400 first) by itself.
    page.click("#mt-submit")
    page.wait_for_function("() => (document.documentElement.dataset.mtFiled || '').startsWith('SX')")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT description FROM matters WHERE title = :t"),
                              {"t": f"{MARK} 登录过期"}).scalar_one()
    assert stored == LONG
    assert page.watch.console_errors == []


def test_a_lost_sign_in_keeps_a_comment_on_a_matter(page, live_server, engine, filed):
    here = spot(engine, TOWN, 8)
    m = filed("district-operator", category="CS.01", lon=here["lon"], lat=here["lat"], title="备注")
    open_page(page, f"{live_server}/matters/{m['id']}?lang=zh")
    page.click("#mt-actions button[data-action='comment']")
    page.fill("#mt-action-form textarea", LONG)
    page.context.clear_cookies()
    page.watch.expect_errors = True
    page.click("#mt-action-confirm")
    page.wait_for_function("() => document.getElementById('mt-msg').textContent.includes('登录')")
    assert page.url.endswith(f"/matters/{m['id']}?lang=zh")
    assert page.input_value("#mt-action-form textarea") == LONG
    page.locator("#gm-signin-bar").wait_for()
    sign_in_again_in_a_new_tab(page, live_server, "district-operator")
    page.click("#mt-action-confirm")  # (the stale CSRF token's 400, renewed and sent again)
    page.locator("#mt-timeline .mt-event[data-action='comment']").wait_for()
    assert LONG in page.inner_text("#mt-timeline")
    assert page.is_hidden("#mt-action-form")
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- 2. conflict


def test_reload_after_a_conflict_keeps_the_form_and_its_note(page, live_server, engine, filed):
    here = spot(engine, TOWN, 9)
    m = filed("district-operator", category="CS.05", lon=here["lon"], lat=here["lat"], title="冲突")
    open_page(page, f"{live_server}/matters/{m['id']}")
    page.click("#mt-actions button[data-action='transfer']")
    unit = page.locator("#mt-action-form select[name=unit_id]")
    unit.wait_for()
    choice = unit.locator("option").nth(2).get_attribute("value")
    unit.select_option(choice)
    page.fill("#mt-action-form textarea", LONG)
    domain_action(engine, "district-operator", m["id"], "comment", {"note": "另一窗口的备注"})
    page.watch.expect_errors = True  # 409 on purpose
    page.click("#mt-action-confirm")
    page.locator("#mt-conflict").wait_for(state="visible")
    assert "已被修改" in page.inner_text("#mt-msg")
    assert page.input_value("#mt-action-form textarea") == LONG
    page.watch.expect_errors = False
    page.click("#mt-reload")
    page.locator("#mt-conflict").wait_for(state="hidden")
    assert "另一窗口的备注" in page.inner_text("#mt-timeline")
    form = page.locator("#mt-action-form")
    assert form.is_visible() and form.get_attribute("data-action") == "transfer"
    assert page.input_value("#mt-action-form textarea") == LONG
    assert page.input_value("#mt-action-form select[name=unit_id]") == choice
    assert page.evaluate(FOCUSED) == "TEXTAREA"
    page.click("#mt-action-confirm")
    page.wait_for_function("() => document.getElementById('mt-action-form').hidden")
    assert LONG in page.inner_text("#mt-timeline")
    assert page.watch.console_errors == []


def test_reload_after_a_conflict_says_when_the_action_is_gone_and_keeps_the_note(
        signed_in_page, live_server, engine, filed):
    here = spot(engine, TOWN, 9)
    m = filed("district-operator", category="CS.05", lon=here["lon"], lat=here["lat"], title="已受理")
    page = signed_in_page("gulou-operator")
    open_page(page, f"{live_server}/matters/{m['id']}")
    page.click("#mt-actions button[data-action='accept']")
    page.fill("#mt-action-form textarea", LONG)
    domain_action(engine, "gulou-operator", m["id"], "accept", {})  # taken in another tab
    page.watch.expect_errors = True
    page.click("#mt-action-confirm")
    page.locator("#mt-conflict").wait_for(state="visible")
    page.watch.expect_errors = False
    page.click("#mt-reload")
    page.wait_for_function(STATE_IS, arg="handling")
    gone = page.locator("#mt-action-gone")
    gone.wait_for()
    assert "已无法办理" in gone.inner_text()
    assert page.input_value("#mt-action-form textarea") == LONG
    assert page.locator("#mt-action-confirm").count() == 0
    # The note carries into another action's form.
    page.click("#mt-actions button[data-action='comment']")
    assert page.input_value("#mt-action-form textarea") == LONG
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- 3. network


def test_a_dropped_connection_says_so_in_the_pages_language_and_keeps_the_input(
        page, live_server, engine, filed):
    here = spot(engine, TOWN, 10)
    m = filed("district-operator", category="CS.01", lon=here["lon"], lat=here["lat"], title="断网")
    open_page(page, f"{live_server}/matters/{m['id']}")
    page.route("**/api/matters/*/actions/*", lambda route: route.abort())
    page.click("#mt-actions button[data-action='comment']")
    page.fill("#mt-action-form textarea", LONG)
    page.click("#mt-action-confirm")
    page.wait_for_function("() => document.getElementById('mt-msg').textContent.includes('网络')")
    assert page.inner_text("#mt-msg") == "网络连接失败，未提交，请重试"
    assert page.input_value("#mt-action-form textarea") == LONG
    assert not page.is_disabled("#mt-action-confirm")

    open_page(page, live_server + "/matters?new=1&lang=en")
    page.route(lambda url: url.endswith("/api/matters"), lambda route: route.abort())
    fill_intake(page, here, f"{MARK} offline")
    page.click("#mt-submit")
    page.wait_for_function("() => document.documentElement.dataset.mtFiled === 'error'")
    assert page.inner_text("#mt-form-msg") == "Network error: not submitted. Try again."
    assert page.input_value("#mt-description") == LONG
    assert "Failed to fetch" not in page.content()
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- 4. Tab stops


def test_the_maps_dots_are_not_tab_stops(page, live_server, engine, filed):
    open_page(page, live_server + "/matters")
    assert int(page.evaluate("document.documentElement.dataset.mtLayer")) > 50
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    reached = None
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") in ("mt-tab-list", "mt-tab-new"):
            reached = page.evaluate("() => document.activeElement.id")
            break
    assert reached, "the panel's tabs are not within 60 Tabs"
    dots = page.evaluate("""() => [...document.querySelectorAll('.leaflet-overlay-pane path.leaflet-interactive')]
        .filter(p => p.getAttribute('tabindex') !== '-1').length""")
    assert dots <= 1  # (the towns layer is not interactive; every matter dot is -1)

    here = spot(engine, TOWN, 10)
    m = filed("district-operator", category="CS.01", lon=here["lon"], lat=here["lat"], title="圆点")
    open_page(page, f"{live_server}/matters/{m['id']}")
    assert page.evaluate("gridmapMatters.state.matterMarker.getElement().getAttribute('tabindex')") == "-1"
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- 5. Escape, focus


def test_the_action_form_closes_on_escape_and_gives_focus_back(page, live_server, engine, filed):
    here = spot(engine, TOWN, 11)
    m = filed("district-operator", category="CS.01", lon=here["lon"], lat=here["lat"], title="焦点")
    open_page(page, f"{live_server}/matters/{m['id']}")
    version = page.evaluate("document.documentElement.dataset.mtVersion")
    page.click("#mt-actions button[data-action='comment']")
    page.fill("#mt-action-form textarea", "不发送")
    page.keyboard.press("Escape")
    assert page.is_hidden("#mt-action-form")
    assert page.evaluate(FOCUSED) == "comment"
    page.keyboard.press("Enter")  # the step button opens the form again, empty
    assert page.is_visible("#mt-action-form")
    assert page.input_value("#mt-action-form textarea") == ""
    page.click("#mt-action-form .mt-action-cancel")
    assert page.is_hidden("#mt-action-form")
    assert page.evaluate(FOCUSED) == "comment"
    assert page.evaluate("document.documentElement.dataset.mtVersion") == version  # nothing sent
    page.click("#mt-actions button[data-action='comment']")
    page.fill("#mt-action-form textarea", "已电话联系")
    page.click("#mt-action-confirm")
    page.wait_for_function("v => document.documentElement.dataset.mtVersion !== v", arg=version)
    page.wait_for_function("() => document.activeElement !== document.body")
    assert page.evaluate(FOCUSED) == "comment"
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- 6. coordinates


@pytest.mark.parametrize("lang,expected", [
    ("zh", "经度格式不正确：只能填写数字，如 116.796837"),
    ("en", "Longitude: not a number. Type digits only, e.g. 116.796837"),
])
def test_a_malformed_longitude_is_refused(page, live_server, engine, filed, lang, expected):
    here = spot(engine, TOWN, 12)
    open_page(page, f"{live_server}/matters?new=1&lang={lang}")
    fill_intake(page, here, f"{MARK} 坐标")
    page.fill("#mt-lon", f"{here['lon']}abc")
    page.click("#mt-submit")
    assert page.inner_text("#mt-form-msg") == expected
    assert page.get_attribute("#mt-lon", "aria-invalid") == "true"
    assert page.evaluate(FOCUSED) == "mt-lon"
    assert page.evaluate("document.documentElement.dataset.mtFiled") is None
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM matters WHERE title = :t"),
                            {"t": f"{MARK} 坐标"}).scalar() == 0
    # Full-width digits from a Chinese input method are numbers.
    page.fill("#mt-lon", str(here["lon"]).translate(str.maketrans("0123456789.", "０１２３４５６７８９．")))
    page.click("#mt-submit")
    page.wait_for_function("() => (document.documentElement.dataset.mtFiled || '').startsWith('SX')")
    with engine.connect() as conn:
        lon = conn.execute(text("SELECT ST_X(geom) FROM matters WHERE title = :t"),
                           {"t": f"{MARK} 坐标"}).scalar_one()
    assert lon == pytest.approx(here["lon"], abs=1e-6)
    assert page.watch.console_errors == []


# --------------------------------------------------------------------------- 7. labels


@pytest.mark.parametrize("lang,panel,detail,steps", [
    ("zh", "事项受理与办理", "事项详情", "办理步骤"),
    ("en", "Matters workbench", "Matter", "Steps"),
])
def test_landmarks_are_labelled_in_the_pages_language(page, live_server, engine, filed,
                                                       lang, panel, detail, steps):
    here = spot(engine, TOWN, 12)
    m = filed("district-operator", category="CS.01", lon=here["lon"], lat=here["lat"], title="标签")
    open_page(page, f"{live_server}/matters?lang={lang}")
    assert page.get_attribute("#mt-panel", "aria-label") == panel
    open_page(page, f"{live_server}/matters/{m['id']}?lang={lang}")
    assert page.get_attribute("#mt-panel", "aria-label") == detail
    assert page.get_attribute("#mt-steps", "aria-label") == steps
    assert page.watch.console_errors == []
