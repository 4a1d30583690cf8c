"""Leaflet's own controls (zoom, layers, popup close, the replay player) speak the page's
language: their hover titles and screen-reader labels, on every map page; and inline
lists are joined the page's way ("、" in Chinese, ", " in English)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.browser

ZOOM = {"zh": ("放大", "缩小"), "en": ("Zoom in", "Zoom out")}
LAYERS = {"zh": "图层", "en": "Layers"}
# Each page's "ready" flag, set once its map and first layers are drawn.
PAGES = {
    "/": "() => document.documentElement.dataset.loadedGrids !== undefined",
    "/crowd": "() => document.documentElement.dataset.crowdReady === '1'",
    "/grids/edit": "() => document.documentElement.dataset.geReady === '1'",
    "/matters": "() => document.documentElement.dataset.mtReady === '1'",
    "/patrol": "() => document.documentElement.dataset.loadedGrids !== undefined",
    "/wall": "() => document.documentElement.dataset.wallReady === '1'",
}
CONTROL_TEXT = """() => {
  const pick = (sel, attr) => { const n = document.querySelector(sel); return n && n.getAttribute(attr); };
  return {
    zoomIn: [pick('.leaflet-control-zoom-in', 'title'), pick('.leaflet-control-zoom-in', 'aria-label')],
    zoomOut: [pick('.leaflet-control-zoom-out', 'title'), pick('.leaflet-control-zoom-out', 'aria-label')],
    layers: pick('.leaflet-control-layers-toggle', 'title'),
  };
}"""


def control_text(page) -> dict:
    return page.evaluate(CONTROL_TEXT)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("path", list(PAGES))
def test_zoom_and_layer_controls_speak_the_pages_language(page, live_server, path, lang):
    page.goto(f"{live_server}{path}?lang={lang}")
    page.wait_for_function(PAGES[path], timeout=20_000)
    got = control_text(page)
    zoom_in, zoom_out = ZOOM[lang]
    assert got["zoomIn"] == [zoom_in, zoom_in]
    assert got["zoomOut"] == [zoom_out, zoom_out]
    if got["layers"] is not None:  # the pages with a layer list
        assert got["layers"] == LAYERS[lang]
    assert page.watch.console_errors == []


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_matter_page_controls_speak_the_pages_language(page, live_server, engine, lang):
    with engine.connect() as conn:
        matter_id = conn.execute(text("SELECT min(id) FROM matters")).scalar()
    page.goto(f"{live_server}/matters/{matter_id}?lang={lang}")
    page.wait_for_function(PAGES["/matters"], timeout=20_000)
    zoom_in, zoom_out = ZOOM[lang]
    got = control_text(page)
    assert got["zoomIn"] == [zoom_in, zoom_in] and got["zoomOut"] == [zoom_out, zoom_out]


@pytest.mark.parametrize("lang,close", [("zh", "关闭弹窗"), ("en", "Close popup")])
def test_the_popup_close_button_speaks_the_pages_language(page, live_server, lang, close):
    page.goto(f"{live_server}/?lang={lang}")
    page.wait_for_function("() => document.documentElement.dataset.loadedGrids === '930'")
    page.locator("path.gm-grids[data-code]").first.click(force=True)
    page.locator(".gm-popup").wait_for()
    page.wait_for_function(
        "label => document.querySelector('.leaflet-popup-close-button')"
        ".getAttribute('aria-label') === label", arg=close, timeout=5_000)


REPLAY_TITLES = {
    "zh": {"backward": "后退", "play": "播放", "forward": "前进", "date": "日期", "pause": "暂停",
           "layer": "24小时回放"},
    "en": {"backward": "Backward", "play": "Play", "forward": "Forward", "date": "Date",
           "pause": "Pause", "layer": "24-hour replay"},
}
REPLAY_BUTTONS = """() => Object.fromEntries(
  ['backward', 'play', 'forward', 'date'].map(k => {
    const n = document.querySelector('a.leaflet-control-timecontrol.timecontrol-' + k + ':not(.reverse)');
    return [k, n && n.getAttribute('title')];
  }))"""


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_replay_players_buttons_speak_the_pages_language(page, live_server, lang):
    words = REPLAY_TITLES[lang]
    page.goto(f"{live_server}/crowd?lang={lang}")
    page.wait_for_function(PAGES["/crowd"], timeout=20_000)
    assert control_text(page)["zoomIn"] == [ZOOM[lang][0]] * 2
    page.get_by_text(words["layer"]).click()
    page.locator(".leaflet-control-timecontrol").first.wait_for(state="visible")
    page.wait_for_function("() => document.documentElement.dataset.crowdReplay === '96'")
    buttons = page.evaluate(REPLAY_BUTTONS)
    assert buttons == {k: words[k] for k in ("backward", "play", "forward", "date")}
    # Every other button of the player is translated too: no library English is left.
    titles = page.locator(".leaflet-bar-timecontrol [title]").evaluate_all(
        "els => els.map(e => e.getAttribute('title'))")
    if lang == "zh":
        assert titles and not [t for t in titles if t.isascii()], titles
    # Playing, the play button says what a click does now: pause; stopped, play again.
    # (From the first step: at the last one, where the replay opens, playing stops at once.)
    page.evaluate("window.gridmapCrowd.state.map.timeDimension.setCurrentTimeIndex(0)")
    play = page.locator("a.timecontrol-play:not(.reverse)")
    play.click()
    page.wait_for_function("w => document.querySelector('a.timecontrol-play:not(.reverse)')"
                           ".getAttribute('title') === w", arg=words["pause"], timeout=5_000)
    play.click()
    page.wait_for_function("w => document.querySelector('a.timecontrol-play:not(.reverse)')"
                           ".getAttribute('title') === w", arg=words["play"], timeout=5_000)
    assert page.watch.console_errors == []


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_geoman_drawing_hints_follow_the_page(page, live_server, lang):
    page.goto(f"{live_server}/grids/edit?lang={lang}")
    page.wait_for_function(PAGES["/grids/edit"], timeout=20_000)
    assert page.evaluate("L.PM.activeLang") == lang
    assert page.watch.console_errors == []


@pytest.mark.parametrize("lang,expected", [
    ("en", "No grid leader, No full-time grid worker"),
    ("zh", "缺网格长、缺专职网格员"),
])
def test_a_grids_team_gaps_are_listed_in_the_pages_language(page, live_server, engine, lang,
                                                           expected):
    # The first grid by code (first in the gaps list) loses its leader and full-time worker.
    with engine.begin() as conn:
        code = conn.execute(text("SELECT min(code) FROM grids")).scalar()
        gone = conn.execute(text(
            "UPDATE grid_workers w SET left_at = now() FROM grids g WHERE g.id = w.grid_id "
            "AND g.code = :c AND w.left_at IS NULL AND w.role IN ('leader', 'full_time') "
            "RETURNING w.id"), {"c": code}).scalars().all()
    try:
        page.goto(f"{live_server}/grids/edit?lang={lang}")
        page.wait_for_function(PAGES["/grids/edit"], timeout=20_000)
        problems = page.locator(f'.ge-gap[data-code="{code}"] .ge-gap-problems')
        problems.wait_for()
        assert problems.inner_text() == expected
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE grid_workers SET left_at = NULL WHERE id = ANY(:ids)"),
                         {"ids": gone})
