"""Grid API: GeoJSON layers, point lookup, bbox, details and the hierarchy."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from gridmap import queries, teams
from gridmap.errors import InvalidInput
from web.database import get_session
from web.params import bbox_arg, float_arg, prefix_arg
from web.scope import area_prefix, current_prefix

bp = Blueprint("grids", __name__, url_prefix="/api")

GEOJSON = "application/geo+json"


@bp.get("/grids.geojson")
def grids_geojson() -> Response:
    """All grids as GeoJSON.
    ---
    get:
      summary: Grids as a GeoJSON FeatureCollection (optionally under a code prefix)
      parameters:
        - {in: query, name: prefix, schema: {type: string, pattern: '^[0-9]{0,15}$'}}
      responses:
        200: {description: FeatureCollection with code, name, kind and base counts}
        400: {description: Bad prefix}
    """
    body = queries.grids_geojson(get_session(), area_prefix(prefix_arg()))
    return Response(body, mimetype=GEOJSON)


@bp.get("/areas/<level>.geojson")
def areas_geojson(level: str) -> Response:
    """Towns or communities as GeoJSON.
    ---
    get:
      summary: Town/street or village/community boundaries
      parameters:
        - {in: path, name: level, required: true, schema: {type: string, enum: [towns, communities]}}
        - {in: query, name: prefix, schema: {type: string}}
      responses:
        200: {description: FeatureCollection}
        400: {description: Unknown level}
    """
    single = {"towns": "town", "communities": "community"}.get(level, level)
    body = queries.areas_geojson(get_session(), single, area_prefix(prefix_arg()))
    return Response(body, mimetype=GEOJSON)


@bp.get("/grids/at")
def grid_at():
    """The grid containing a point.
    ---
    get:
      summary: Which grid contains a WGS-84 point
      parameters:
        - {in: query, name: lon, required: true, schema: {type: number}}
        - {in: query, name: lat, required: true, schema: {type: number}}
        - {in: query, name: team, schema: {type: integer, enum: [0, 1]},
           description: 'with 1, also the grid team to call (role, name, phone) and its gaps'}
      responses:
        200: {description: The grid with its community and town}
        400: {description: Missing, non-numeric or out-of-area coordinates}
        404: {description: No grid contains the point}
    """
    session = get_session()
    grid = queries.grid_at_point(session, float_arg("lon"), float_arg("lat"),
                                 prefix=current_prefix())
    if request.args.get("team") not in (None, "", "0", "1"):
        raise InvalidInput("team must be 0 or 1")
    if request.args.get("team") == "1":
        # What a patrol lead at an incident needs: who to call, in post order.
        team = teams.team(session, grid["code"], prefix=current_prefix())
        grid["team"] = {
            "members": [{k: m[k] for k in ("id", "role", "name", "phone")}
                        for m in team["members"]],
            "problems": team["problems"],
        }
    return jsonify(grid)


@bp.get("/grids")
def grids_in_bbox():
    """Grids intersecting a bbox.
    ---
    get:
      summary: Grids intersecting a bbox (west,south,east,north)
      parameters:
        - {in: query, name: bbox, required: true, schema: {type: string}}
        - {in: query, name: prefix, schema: {type: string}}
      responses:
        200: {description: List of grids}
        400: {description: Malformed bbox}
    """
    west, south, east, north = bbox_arg()
    items = queries.grids_in_bbox(get_session(), west, south, east, north,
                                  area_prefix(prefix_arg()))
    return jsonify({"count": len(items), "items": items})


@bp.get("/grids/<code>")
def grid_detail(code: str):
    """One grid with its team and counts.
    ---
    get:
      summary: A grid by its 15-digit code
      responses:
        200: {description: Grid details}
        400: {description: Malformed code}
        404: {description: No such grid}
    """
    return jsonify(queries.grid_by_code(get_session(), code, prefix=current_prefix()))


@bp.get("/areas/<code>/hierarchy")
def area_hierarchy(code: str):
    """The chain of areas down to a code.
    ---
    get:
      summary: District → town → community → grid for a code
      responses:
        200: {description: The chain}
        400: {description: Malformed code}
        404: {description: Unknown code}
    """
    return jsonify(queries.hierarchy(get_session(), code))


@bp.get("/summary")
def summary():
    """District totals.
    ---
    get:
      summary: Totals of grids, houses, residents, key persons, places and components
      responses:
        200: {description: Totals and extent}
    """
    return jsonify(queries.district_summary(get_session(), prefix=current_prefix()))
