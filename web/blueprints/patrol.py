"""The patrol lead's phone page: cameras near me, one-handed."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g

from web import i18n
from web.maps import patrol_map_html

bp = Blueprint("patrol", __name__)

i18n.register({
    # The camera viewer, a dialog over the whole screen, and its close button (×).
    "patrol_viewer": {"zh": "摄像头详情", "en": "Camera details"},
    "patrol_viewer_close": {"zh": "关闭", "en": "Close"},
})


@bp.get("/patrol")
def patrol_page() -> Response:
    """Serve the mobile 'cameras near me' page."""
    config = {"lang": g.lang, "i18n": i18n.catalog(g.lang), "page": "patrol"}
    html = patrol_map_html(config, tile_url=current_app.config.get("TILE_URL"))
    return Response(html, mimetype="text/html")
