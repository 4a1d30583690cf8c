"""folium map builders. Data layers are fetched by the browser from JSON endpoints,
never embedded as one marker object per row."""

from __future__ import annotations

import json
from typing import Any

import folium
from branca.element import CssLink, Element, JavascriptLink, MacroElement
from jinja2 import Template
from markupsafe import Markup, escape

from web.assets import render_offline

YANZHOU_CENTER = (35.553, 116.78)
DEFAULT_ZOOM = 11
GLUE_JS = "/static/js/gridmap.js"
GLUE_CSS = "/static/css/gridmap.css"


def _json_for_script(value: Any) -> Markup:
    """Serialise to JSON that is safe inside a <script> element."""
    text = json.dumps(value, ensure_ascii=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _request_identity() -> tuple[str | None, dict[str, Any] | None]:
    """Return the page's CSRF token and signed-in user, when rendered for a request."""
    from flask import g, has_request_context

    if not has_request_context():
        return None, None
    from flask_wtf.csrf import generate_csrf

    actor = g.get("actor")
    user = {"username": actor.username, "unit": actor.unit_name, "role": actor.role,
            "tier": actor.tier} if actor is not None else None
    return generate_csrf(), user


class RemoteGeoJson(MacroElement):
    """A GeoJSON overlay the browser fetches from ``url`` (with tooltip and click)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = gridmap.remoteGeoJson(
            {{ this._parent.get_name() }}, {{ this.url_json }}, {{ this.options_json }});
        {% endmacro %}
        """
    )

    def __init__(self, url: str, name: str, **options: Any) -> None:
        super().__init__()
        self._name = "RemoteGeoJson"
        self.url_json = _json_for_script(url)
        self.options_json = _json_for_script({"name": name, **options})


class GridmapGlue(MacroElement):
    """Loads the app's glue JS/CSS and hands it the UI catalog and page options."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}
        {% if this.csrf_token %}<meta name="csrf-token" content="{{ this.csrf_token }}">{% endif %}
        <script>window.GRIDMAP = {{ this.config_json }};</script>
        {% endmacro %}
        {% macro script(this, kwargs) %}
        gridmap.init({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self._name = "GridmapGlue"
        token, user = _request_identity()
        self.csrf_token = escape(token) if token else ""
        self.config_json = _json_for_script({**config, "user": user} if user else config)

    def render(self, **kwargs: Any) -> None:
        """Add the glue assets to the page header, then render the element."""
        figure = self.get_root()
        figure.header.add_child(JavascriptLink(GLUE_JS), name="gridmap_js")
        figure.header.add_child(CssLink(GLUE_CSS), name="gridmap_css")
        # MacroElement.render places the header macro (config + CSRF meta) itself.
        super().render(**kwargs)


def base_map(
    *,
    tile_url: str | None = None,
    tile_attribution: str = "",
    location: tuple[float, float] = YANZHOU_CENTER,
    zoom: int = DEFAULT_ZOOM,
) -> folium.Map:
    """Return a map with no internet tiles: vector boundaries on a plain background."""
    m = folium.Map(
        location=location,
        zoom_start=zoom,
        tiles=None,
        control_scale=False,  # folium's scale bar shows feet too; gridmap.js adds a metric one
        # SVG for the ~1,000 polygons (crisp, clickable); points use their own canvas.
        prefer_canvas=False,
        min_zoom=9,
        max_zoom=19,
    )
    if tile_url:
        folium.TileLayer(tiles=tile_url, attr=tile_attribution or "intranet", name="base").add_to(m)
    return m


def grid_map_html(config: dict[str, Any], tile_url: str | None = None) -> str:
    """Return the HTML of the first map page: towns and the 930 grids."""
    m = base_map(tile_url=tile_url)
    RemoteGeoJson(
        "/api/areas/towns.geojson",
        name=config["i18n"]["towns"],
        kind="towns",
        interactive=False,
    ).add_to(m)
    RemoteGeoJson(
        "/api/grids.geojson",
        name=config["i18n"]["grids"],
        kind="grids",
        fit=True,
        legend=True,
    ).add_to(m)
    GridmapGlue(config).add_to(m)
    return render_offline(m)


class PageShell(MacroElement):
    """Adds a page's own DOM (panels, lists) and script to the folium figure."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {{ this.init_js }}({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, body_html: str, script_url: str, init_js: str) -> None:
        super().__init__()
        self._name = "PageShell"
        self.body_html = body_html
        self.script_url = script_url
        self.init_js = init_js

    def render(self, **kwargs: Any) -> None:
        """Place the DOM in the body and the script in the header."""
        figure = self.get_root()
        figure.html.add_child(Element(self.body_html), name=self.get_name() + "_dom")
        figure.header.add_child(JavascriptLink(self.script_url), name=self.get_name() + "_js")
        super().render(**kwargs)


# Only the status line is a live region ("N cameras within 500 m", "Searching…", the
# error): a screen reader hears that one line, not the whole list, after each search.
PATROL_DOM = """
<div id="patrol-sheet" class="patrol-sheet">
  <div class="patrol-bar">
    <button id="patrol-locate" class="patrol-btn" type="button"></button>
    <span id="patrol-status" class="patrol-status" role="status" aria-live="polite"></span>
  </div>
  <section id="patrol-grid" class="patrol-grid" hidden></section>
  <ol id="patrol-list" class="patrol-list"></ol>
</div>
<div id="patrol-viewer" class="patrol-viewer" hidden>
  <button id="patrol-viewer-close" class="patrol-btn" type="button">×</button>
  <div id="patrol-viewer-body"></div>
</div>
"""


def patrol_map_html(config: dict[str, Any], tile_url: str | None = None) -> str:
    """Return the mobile patrol page: a map above a list of nearby cameras."""
    # folium's map already writes the phone viewport (no page zoom: the map zooms).
    m = base_map(tile_url=tile_url, zoom=13)
    RemoteGeoJson("/api/grids.geojson", name=config["i18n"]["grids"], kind="grids",
                  interactive=False).add_to(m)
    GridmapGlue(config).add_to(m)
    PageShell(PATROL_DOM, "/static/js/patrol.js", "gridmapPatrol.init").add_to(m)
    return render_offline(m)
