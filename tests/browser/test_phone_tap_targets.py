"""On a phone (390 × 844, touch) every control in a page's header and toolbars is a
tap target at least 40 px tall (and wide), and no page is wider than the screen."""

from __future__ import annotations

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
MIN_PX = 40
CONTROLS = ("a, button, input[type=button], input[type=submit], select")
# The page, what says it is drawn, and the header/toolbars whose controls are measured.
MAP_READY = "() => document.querySelector('.leaflet-control-zoom-in') && document.querySelector('.gm-user')"
MAP_CONTROLS = [".leaflet-control-zoom", ".gm-lang-box", ".gm-user"]
PAGES = [
    ("/", MAP_READY, MAP_CONTROLS),
    ("/patrol", MAP_READY, MAP_CONTROLS),
    ("/crowd", MAP_READY, MAP_CONTROLS),
    ("/wall", MAP_READY, [".leaflet-control-zoom", ".wall-bar", ".wall-legend", ".gm-user"]),
    ("/videowall", "() => document.documentElement.dataset.videowall === 'ready'",
     [".vw-bar"]),
    ("/cameras/{gb_id}/live", "() => document.documentElement.dataset.videowall === 'ready'",
     [".vw-bar"]),
    ("/cameras", "() => document.documentElement.dataset.lgReady === '1'",
     [".lg-bar", ".lg-filter", ".lg-pager"]),
    ("/matters", "() => document.documentElement.dataset.mtReady === '1'",
     [".mt-head", ".mt-countbar", ".gm-lang-box"]),
    ("/matters/{matter_id}", "() => document.documentElement.dataset.mtReady === '1'",
     [".mt-head", ".gm-lang-box"]),
]

MEASURE = """([scopes, controls]) => {
  const out = [];
  for (const scope of scopes) {
    for (const box of document.querySelectorAll(scope)) {
      for (const c of box.querySelectorAll(controls)) {
        const r = c.getBoundingClientRect();
        if (!r.width && !r.height) continue;  // not shown on this page
        out.push({scope, what: c.tagName.toLowerCase() + (c.id ? '#' + c.id : '') + ' '
                  + JSON.stringify((c.textContent || c.value || '').trim().slice(0, 20)),
                  width: Math.round(r.width * 10) / 10, height: Math.round(r.height * 10) / 10});
      }
    }
  }
  return {controls: out, scrollWidth: document.documentElement.scrollWidth};
}"""


@pytest.fixture(scope="module")
def ids(engine, demo_loaded) -> dict:
    """A camera and a matter the district center's operator sees."""
    with engine.connect() as conn:
        gb_id = conn.execute(text("SELECT gb_id FROM cameras ORDER BY gb_id LIMIT 1")).scalar()
        matter_id = conn.execute(text("SELECT id FROM matters ORDER BY id LIMIT 1")).scalar()
    assert gb_id and matter_id, "the demo data set has cameras and matters"
    return {"gb_id": gb_id, "matter_id": matter_id}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("path, ready, scopes", PAGES,
                         ids=["grid-map", "patrol", "crowd", "wall", "videowall", "live", "ledger",
                              "matters", "matter"])
def test_header_and_toolbar_controls_are_big_enough_to_tap(signed_in_page, live_server, ids,
                                                           path, ready, scopes, lang):
    page = signed_in_page("district-operator", viewport=PHONE, device_scale_factor=3,
                          is_mobile=True, has_touch=True)
    page.goto(live_server + path.format(**ids) + f"?lang={lang}")
    page.wait_for_function(ready, timeout=20_000)
    found = page.evaluate(MEASURE, [scopes, CONTROLS])
    assert len(found["controls"]) >= 2, found  # the scopes matched the page's header
    small = [c for c in found["controls"] if c["height"] < MIN_PX or c["width"] < MIN_PX]
    assert small == [], "\n".join(f"{c['what']}: {c['width']}×{c['height']}" for c in small)
    assert found["scrollWidth"] <= PHONE["width"]
