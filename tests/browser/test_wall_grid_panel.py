"""The map wall's grid panel on a phone (full width, below the wrapped top bar, nothing
cut or wrapped mid-number) and its key-person categories in English."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.browser.test_map_wall import PANEL_IS, committed, open_wall, zoom_to

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
GRID_NAME = "新嘉园社区第二网格"
CATEGORIES_EN = {
    "严重精神障碍患者": "Severe mental illness",
    "刑满释放人员": "Released prisoners",
    "困境儿童": "Children in difficulty",
    "残疾人": "People with disabilities",
    "独居老人": "Elderly living alone",
    "留守老人": "Left-behind elderly",
    "社区矫正对象": "Under community correction",
}


def grid_tap_point(engine, name: str) -> dict:
    """Return a grid's code and a point inside it, away from its edge and any camera."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                text(
                    """
                SELECT g.code, ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat
                FROM grids g
                CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(g.geom, 40, 7)) AS p
                WHERE g.name = :name
                  AND NOT ST_DWithin(ST_Boundary(g.geom), p.geom, 0.0005)
                  AND NOT EXISTS (SELECT 1 FROM cameras c WHERE ST_DWithin(c.geom, p.geom, 0.0005))
                ORDER BY p.path LIMIT 1
                """
                ),
                {"name": name},
            )
            .mappings()
            .one()
        )
    return dict(row)


def tap_grid(page, engine, name: str) -> str:
    """Tap a grid on the map (a real touch) and wait for its panel; return its code."""
    grid = grid_tap_point(engine, name)
    zoom_to(page, grid["lon"], grid["lat"], 16)
    point = page.evaluate(
        "([lon, lat]) => gridmapWall.api.toScreen(lon, lat)", [grid["lon"], grid["lat"]]
    )
    page.touchscreen.tap(point["x"], point["y"])
    page.wait_for_function(PANEL_IS, arg=f"grid:{grid['code']}")
    return grid["code"]


# Lines a text takes (one rect per line box), how far anything in the panel reaches.
MEASURE = """() => {
  const lines = node => { const r = document.createRange(); r.selectNodeContents(node);
                          return Array.from(r.getClientRects()).filter(b => b.width > 0).length; };
  const panel = document.getElementById('wall-panel');
  const p = panel.getBoundingClientRect();
  const bar = document.getElementById('wall-bar').getBoundingClientRect();
  let right = 0, widest = '';
  for (const e of panel.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width && r.right > right) { right = r.right; widest = e.className || e.tagName; }
  }
  const mode = document.getElementById('wall-mode').getBoundingClientRect();
  const hit = document.elementFromPoint(mode.left + mode.width / 2, mode.top + mode.height / 2);
  const style = getComputedStyle(panel);
  return {
    panel: {left: p.left, right: p.right, top: p.top, bottom: p.bottom, width: p.width},
    barBottom: bar.bottom, innerWidth: innerWidth, innerHeight: innerHeight,
    scrollWidth: panel.scrollWidth, clientWidth: panel.clientWidth, overflowY: style.overflowY,
    right: right, widest: widest,
    modeButtonFree: hit !== null && hit.closest('#wall-mode') !== null,
    counts: Array.from(panel.querySelectorAll('.wall-counts td')).map(lines),
    phones: Array.from(panel.querySelectorAll('.wall-team-phone')).map(lines),
    names: Array.from(panel.querySelectorAll('.wall-team-name')).map(lines),
    houses: lines(panel.querySelector('.wall-counts tr[data-key="houses"] td')),
  };
}"""


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_grid_panel_on_a_phone_spans_the_screen_below_the_bar(signed_in_page, live_server,
                                                                engine, lang):
    phone = signed_in_page("district-operator", **PHONE)
    open_wall(phone, live_server, f"?lang={lang}")
    tap_grid(phone, engine, GRID_NAME)
    m = phone.evaluate(MEASURE)
    assert m["panel"]["width"] >= 360, m["panel"]
    assert m["panel"]["left"] >= 0 and m["panel"]["right"] <= m["innerWidth"], m["panel"]
    assert m["panel"]["top"] >= m["barBottom"] - 0.5, (m["panel"], m["barBottom"])
    assert m["panel"]["bottom"] <= m["innerHeight"], m["panel"]
    assert m["modeButtonFree"], "the panel covers the bar's wall-mode button"
    assert m["right"] <= m["innerWidth"], (m["right"], m["widest"])
    assert m["scrollWidth"] <= m["clientWidth"], "the panel scrolls sideways"
    assert m["overflowY"] in ("auto", "scroll")  # a long panel scrolls inside itself
    assert m["houses"] == 1, "Houses wraps"
    assert m["counts"] and set(m["counts"]) == {1}, m["counts"]
    assert m["phones"] and set(m["phones"]) == {1}, m["phones"]
    assert m["names"] and set(m["names"]) == {1}, m["names"]
    # The close button is on screen, answers a tap, and closes the panel.
    close = phone.locator("#wall-panel-close")
    box = close.bounding_box()
    assert box["x"] + box["width"] <= m["innerWidth"] and box["y"] >= m["barBottom"] - 0.5
    close.tap()
    phone.wait_for_function("() => document.getElementById('wall-panel').hidden")
    assert phone.watch.console_errors == []


def test_the_grid_panel_keeps_its_desk_size(page, live_server, engine):
    open_wall(page, live_server)
    page.evaluate("code => gridmapWall.api.openGrid(code)", grid_tap_point(engine, GRID_NAME)["code"])
    page.wait_for_function("() => (document.documentElement.dataset.wallPanel || '').startsWith('grid:')")
    box = page.locator("#wall-panel").bounding_box()
    assert (box["y"], box["width"], 1600 - box["x"] - box["width"]) == (48, 380, 10)
    assert box["y"] + box["height"] == 900 - 30


@pytest.fixture
def extra_category(engine):
    """Give the grid a key-person category the UI has no name for (removed afterwards)."""
    params = {"name": GRID_NAME, "cat": "其他关爱对象"}
    grid = "(SELECT id FROM grids WHERE name = :name)"
    with committed(
        engine,
        f"INSERT INTO key_person_counts (grid_id, category, count) VALUES ({grid}, :cat, 5)",
        f"DELETE FROM key_person_counts WHERE grid_id = {grid} AND category = :cat",
        params,
    ):
        yield params["cat"]


def category_counts(engine, name: str) -> dict[str, int]:
    """Return a grid's key persons per category, as stored."""
    with engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT k.category, k.count FROM key_person_counts k JOIN grids g ON g.id = k.grid_id "
            "WHERE g.name = :name"), {"name": name}).all())


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_key_person_categories_are_named_in_the_page_language(page, live_server, engine,
                                                              extra_category, lang):
    code = grid_tap_point(engine, GRID_NAME)["code"]
    open_wall(page, live_server, f"?lang={lang}")
    page.evaluate("code => gridmapWall.api.openGrid(code)", code)
    page.wait_for_function(PANEL_IS, arg=f"grid:{code}")
    title = "Key persons by category" if lang == "en" else "重点人员分类"
    rows = page.locator(f'#wall-panel section:has(> h3:text-is("{title}")) tr')
    got = {rows.nth(i).locator("th").inner_text(): int(rows.nth(i).locator("td").inner_text())
           for i in range(rows.count())}
    stored = category_counts(engine, GRID_NAME)
    assert set(CATEGORIES_EN) | {extra_category} == set(stored)
    # Known categories in the page's language; one the UI has no name for as stored.
    names = CATEGORIES_EN if lang == "en" else {}
    assert got == {names.get(cat, cat): n for cat, n in stored.items()}
    assert page.watch.console_errors == []


def test_every_generated_category_has_an_english_name():
    from geodata.generator import KEY_PERSON_CATEGORIES
    from web import wall  # noqa: F401  (registers the wall's messages)
    from web.i18n import MESSAGES

    for category in KEY_PERSON_CATEGORIES:
        entry = MESSAGES[f"wall_kpc_{category}"]
        assert entry["zh"] == category and entry["en"].isascii(), category
