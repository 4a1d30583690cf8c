"""Search API: one box for grids, communities, towns, cameras and key places."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from gridmap import search as search_queries
from web.database import get_session
from web.params import int_arg
from web.scope import camera_filters, current_prefix

bp = Blueprint("search", __name__, url_prefix="/api")


@bp.get("/search")
def search():
    """Typed search results with a location.
    ---
    get:
      summary: Find grids (code or name), communities, towns, cameras (GB ID or name) and key places
      parameters:
        - {in: query, name: q, required: true, schema: {type: string, maxLength: 40},
           description: 'letters, digits, spaces and - · . ( ) # / 、 +; several words must all match'}
        - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 50, default: 20}}
      responses:
        200: {description: '{query, count, items: [{type, id, name, detail, kind, rank, lon, lat, bbox}]}'}
        400: {description: 'Empty, too long or odd characters in q, or a bad limit; the reason says which'}
    """
    body = search_queries.search(
        get_session(),
        request.args.get("q"),
        prefix=current_prefix(),
        camera_scope=camera_filters().sql("cam"),
        limit=int_arg("limit", 20, minimum=1, maximum=search_queries.MAX_LIMIT),
    )
    return jsonify(body)
