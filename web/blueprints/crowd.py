"""Crowd density API and page: current heat, a replay, crowding per grid, sensors.

Every query is narrowed to the caller's jurisdiction (``web.scope``): cameras through
``camera_filters()`` (the caller's camera scope), sensors and grids, which are area
data, through ``current_prefix()``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, g, jsonify, request

from video import crowd, sensors
from web.crowd_page import REPLAY_HOURS, REPLAY_STEP_S, crowd_map_html
from web.database import get_session
from web.i18n import catalog
from web.params import int_arg
from web.scope import camera_filters, current_prefix

bp = Blueprint("crowd", __name__)

GEOJSON = "application/geo+json"


def _fresh(body: str, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _minutes() -> int:
    return int_arg("minutes", crowd.DEFAULT_WINDOW_MIN, minimum=1, maximum=crowd.MAX_WINDOW_MIN)


@bp.get("/crowd")
def crowd_page() -> Response:
    """Serve the crowd page (folium, offline)."""
    bins = crowd.replay_bins(datetime.now(UTC), REPLAY_HOURS, REPLAY_STEP_S)
    config = {"lang": g.lang, "i18n": catalog(g.lang), "page": "crowd"}
    html = crowd_map_html(config, bins, tile_url=current_app.config.get("TILE_URL"))
    return Response(html, mimetype="text/html")


@bp.get("/api/crowd/heat.geojson")
def heat() -> Response:
    """Current crowd heat.
    ---
    get:
      summary: Latest reading per camera and sensor within the window, as weighted features
      description: >
        One feature per camera or sensor whose newest reading is at most `minutes` old:
        count, density (persons/m²), Fruin level A-F and a heat weight (density over
        the start of level F, capped at 1). The foreign member `points` repeats them
        as `[lon, lat, weight]` for heat layers. Scoped to the caller's jurisdiction.
      parameters:
        - {in: query, name: minutes, schema: {type: integer, minimum: 1, maximum: 1440, default: 10}}
        - {in: query, name: geometry, schema: {type: string, enum: [point, footprint], default: point},
           description: 'point: inside the ground footprint; footprint: the footprint polygon'}
        - {in: query, name: source, schema: {type: string}, description: camera source filter}
      responses:
        200: {description: 'GeoJSON FeatureCollection with points, minutes, generated_at'}
        400: {description: Bad window or geometry}
    """
    body = crowd.heat(get_session(), camera_filters(), current_prefix(), _minutes(),
                      geometry=request.args.get("geometry", "point"))
    return _fresh(body, GEOJSON)


@bp.get("/api/crowd/replay")
def replay():
    """Heat replay frames.
    ---
    get:
      summary: Heat frames over the last hours, for folium's HeatMapWithTime
      description: >
        `frames[i]` lists `[lat, lon, weight]` per source, using the source's highest
        density within step i; `index` holds local-time labels and `times` the UTC
        start of each step. Steps are aligned to the step length; the last holds now.
      parameters:
        - {in: query, name: hours, schema: {type: integer, minimum: 1, maximum: 168, default: 24}}
        - {in: query, name: step, schema: {type: string, default: 15m}, description: 'e.g. 90s, 15m, 1h (at least 60 s)'}
      responses:
        200: {description: '{hours, step_s, start, end, times, index, frames}'}
        400: {description: 'Bad hours or step, or more than 1,000 frames'}
    """
    hours = int_arg("hours", 24, minimum=1, maximum=crowd.MAX_REPLAY_HOURS)
    step_s = crowd.parse_step(request.args.get("step", "15m"))
    body = crowd.replay(get_session(), camera_filters(), current_prefix(), hours=hours,
                        step_s=step_s)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/api/crowd/grids.geojson")
def grids_geojson() -> Response:
    """Crowding per grid.
    ---
    get:
      summary: Grids with current readings, with people, density, worst level and calm share
      description: >
        `density` is the people counted over the area measured in the grid; `level`
        is the worst single place's level; `calm` = 1 - level index / 5 (1 = level A).
      parameters:
        - {in: query, name: minutes, schema: {type: integer, minimum: 1, maximum: 1440, default: 10}}
      responses:
        200: {description: GeoJSON FeatureCollection of grid polygons}
        400: {description: Bad window}
    """
    body = crowd.grids_geojson(get_session(), camera_filters(), current_prefix(), _minutes())
    return _fresh(body, GEOJSON)


@bp.get("/api/crowd/grids.json")
def grid_values() -> Response:
    """Crowding per grid without geometry.
    ---
    get:
      summary: 'The per-grid figures as a list of {key: grid code, density, level, calm, ...}'
      parameters:
        - {in: query, name: minutes, schema: {type: integer, minimum: 1, maximum: 1440, default: 10}}
      responses:
        200: {description: List of grid figures}
        400: {description: Bad window}
    """
    body = crowd.grid_values(get_session(), camera_filters(), current_prefix(), _minutes())
    return _fresh(body, "application/json")


@bp.get("/api/crowd/sensors")
def list_sensors():
    """Crowd-flow sensors.
    ---
    get:
      summary: Registered sensors in the caller's jurisdiction with their latest reading
      responses:
        200: {description: List of sensors (never tokens)}
    """
    return jsonify(sensors.list_sensors(get_session(), current_prefix()))
