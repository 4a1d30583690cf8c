"""Every page passes axe-core's WCAG 2 A/AA checks.

axe-core comes from web/node_modules (a dev dependency, never served by the app)
and is evaluated in the page by the test. One finding is accepted, by name: folium's
maps forbid page zoom on phones (``meta-viewport``), on purpose, because the map
itself zooms and a zoomed page would move its controls out of reach.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
RUN_AXE = """() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']},
                                      resultTypes: ['violations']})
  .then(r => r.violations.filter(v => v.id !== 'meta-viewport')
                         .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', ')))"""
PAGES = [
    ("/", "() => document.documentElement.dataset.loadedGrids === '930'", None),
    ("/wall", "() => document.documentElement.dataset.wallReady === '1'", None),
    ("/grids/edit", "() => document.documentElement.dataset.geReady === '1'", None),
    ("/matters", "() => document.documentElement.dataset.mtReady === '1'", None),
    ("/matters/bulletin", None, None),
    ("/crowd", "() => document.documentElement.dataset.crowdReady === '1'", None),
    ("/videowall", "() => document.documentElement.dataset.videowall === 'ready'", None),
    ("/cameras", "() => document.documentElement.dataset.lgReady === '1'", None),
    ("/cameras", "() => document.documentElement.dataset.lgReady === '1'", PHONE),
    ("/patrol", None, PHONE),
    ("/logout", None, PHONE),  # shows the two sign-out buttons (a GET signs no one out)
]


def findings(page) -> list[str]:
    """Return axe's WCAG 2 A/AA findings on the page as it is now (but the accepted one)."""
    assert AXE.exists(), "npm ci --prefix web installs axe-core"
    # Evaluated by the test's debugger connection: the page's policy rightly refuses
    # an inline <script> it did not write.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
    return page.evaluate(RUN_AXE)


@pytest.mark.parametrize("path, ready, viewport", PAGES, ids=[p + ("@phone" if v else "") for p, _, v in PAGES])
def test_pages_have_no_accessibility_problem(signed_in_page, live_server, path, ready,
                                                      viewport):
    page = signed_in_page("district-operator", **({"viewport": viewport} if viewport else {}))
    page.goto(live_server + path)
    if ready:
        page.wait_for_function(ready, timeout=20_000)
    else:
        page.wait_for_load_state("networkidle")
    assert findings(page) == []


def test_the_grid_panel_and_team_form_are_labelled(signed_in_page, live_server):
    page = signed_in_page("district-gridadmin")
    page.goto(live_server + "/grids/edit")
    page.wait_for_function("() => document.documentElement.dataset.geReady === '1'")
    page.evaluate("code => gridEdit.select(code)", "370812001001001")
    page.wait_for_function("() => (document.documentElement.dataset.geTeam || '').startsWith('370812001001001:')")
    assert page.locator("#ge-team-box").is_visible()
    assert findings(page) == []


def test_the_video_walls_camera_suggestions_are_accessible(signed_in_page, live_server):
    page = signed_in_page("district-operator")
    page.goto(live_server + "/videowall")
    page.wait_for_function("() => document.documentElement.dataset.videowall === 'ready'")
    page.locator("#vw-ids").fill("鼓楼街道")
    page.wait_for_selector("#vw-suggest [role=option]")
    page.locator("#vw-ids").press("ArrowDown")
    assert page.locator("#vw-ids").get_attribute("aria-activedescendant") == "vw-suggest-0"
    assert findings(page) == []


def test_the_sign_in_page_has_no_accessibility_problem(browser, live_server):
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    page.goto(live_server + "/login")
    try:
        assert findings(page) == []
    finally:
        context.close()


def test_an_injected_inline_script_or_handler_does_not_run(signed_in_page, live_server):
    """Defence in depth behind escaping: should markup ever slip into a page, the
    browser refuses to run it, because the policy allows only the page's own scripts."""
    page = signed_in_page("district-operator")
    page.goto(live_server + "/matters")
    page.wait_for_function("() => document.documentElement.dataset.mtReady === '1'")
    page.evaluate("""() => {
        document.body.insertAdjacentHTML('beforeend',
            '<img src="/favicon.ico?x" onload="window.__injected = 1">');
        const s = document.createElement('script');
        s.textContent = 'window.__injected = 2';
        document.body.appendChild(s);
        const a = document.createElement('a');
        a.href = 'javascript:window.__injected = 3'; a.id = 'injected-link';
        a.textContent = 'link'; a.style.cssText = 'position:fixed;top:200px;left:200px;z-index:99999';
        document.body.appendChild(a);
    }""")
    page.click("#injected-link")
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__injected === undefined")
    violations = [e for e in page.watch.console_errors if "Content Security Policy" in e]
    assert len(violations) >= 2  # the handler and the script were refused, and said so


def test_the_ledgers_details_and_forms_are_accessible(signed_in_page, live_server):
    page = signed_in_page("district-operator")
    page.goto(live_server + "/cameras")
    page.wait_for_function("() => document.documentElement.dataset.lgReady === '1'", timeout=20_000)
    page.click("#lg-rows tr:first-child .lg-open")
    page.wait_for_selector("#lg-detail:not([hidden]) .lg-facts")
    page.click("#lg-new-box summary")
    assert page.is_visible("#lg-new [name=gb_id]")
    assert findings(page) == []
