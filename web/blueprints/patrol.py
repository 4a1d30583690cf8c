"""The patrol lead's phone page: cameras near me, one-handed."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g

from web.i18n import catalog
from web.maps import patrol_map_html

bp = Blueprint("patrol", __name__)


@bp.get("/patrol")
def patrol_page() -> Response:
    """Serve the mobile 'cameras near me' page."""
    config = {"lang": g.lang, "i18n": catalog(g.lang), "page": "patrol"}
    html = patrol_map_html(config, tile_url=current_app.config.get("TILE_URL"))
    return Response(html, mimetype="text/html")
