"""Video coverage layers: per-grid shares, blind spots and per-town roll-ups."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from video import coverage
from web.database import writable_session
from web.params import bbox_arg
from web.scope import current_prefix

bp = Blueprint("coverage", __name__, url_prefix="/api/coverage")

# Bound the work one request may do; the rest is picked up by the next reader.
REFRESH_PER_REQUEST = 300


def _fresh_session():
    """Recompute grids marked dirty by camera or grid changes, then return the session."""
    session = writable_session()
    if coverage.refresh_dirty(session, limit=REFRESH_PER_REQUEST):
        session.commit()
    return session


@bp.get("/grids.geojson")
def grids():
    """Per-grid coverage choropleth.
    ---
    get:
      summary: Grids with the share of area, houses and key places seen by online cameras
      responses:
        200: {description: FeatureCollection}
    """
    body = coverage.grids_geojson(_fresh_session(), current_prefix())
    return Response(body, mimetype="application/geo+json")


@bp.get("/blind.geojson")
def blind():
    """Blind spots in a bbox.
    ---
    get:
      summary: Areas no online camera sees, inside a bbox
      parameters:
        - {in: query, name: bbox, required: true, schema: {type: string}}
      responses:
        200: {description: FeatureCollection}
        400: {description: Malformed or oversized bbox}
    """
    body = coverage.blind_geojson(_fresh_session(), *bbox_arg(), prefix=current_prefix())
    return Response(body, mimetype="application/geo+json")


@bp.get("/towns")
def towns():
    """Coverage per town.
    ---
    get:
      summary: Coverage rolled up per town/street
      responses:
        200: {description: List of towns with area share, houses and places seen}
    """
    return jsonify(coverage.by_town(_fresh_session(), current_prefix()))
