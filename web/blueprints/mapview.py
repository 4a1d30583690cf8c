"""The first map page: towns/streets and the 930 grids."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, send_from_directory

from web.i18n import catalog
from web.maps import grid_map_html

bp = Blueprint("mapview", __name__)


@bp.get("/")
def index() -> Response:
    """Serve the grid map page (folium, offline)."""
    config = {"lang": g.lang, "i18n": catalog(g.lang)}
    html = grid_map_html(config, tile_url=current_app.config.get("TILE_URL"))
    return Response(html, mimetype="text/html")


@bp.get("/favicon.ico")
def favicon() -> Response:
    """Serve the app icon (browsers ask for it on every page)."""
    return send_from_directory(
        current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )
