"""Crowd alerts: list, map layer, acknowledge, close, snapshot; scoped by jurisdiction.

The caller sees the alerts in its area and those raised by cameras it may see
through its department or a dispatch order (``video.crowd.alert_visibility``);
any other alert answers 404, as if it did not exist. Alerts of cameras dispatched
to the caller's unit are view-only (403 on acknowledge and close); an action the
alert's state does not allow (acknowledging twice, touching a closed alert)
answers 409 with the current state.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request, send_file

from gridmap.errors import InvalidInput
from video import crowd
from web.database import get_session
from web.params import int_arg, list_arg
from web.scope import current_scope

bp = Blueprint("alerts", __name__, url_prefix="/api")


def _states(default: tuple[str, ...] = ()) -> tuple[str, ...]:
    return crowd.parse_states(list_arg("state")) or default


def _note() -> Any:
    if not request.get_data(cache=True):
        return None
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return data.get("note")


def _actor() -> str:
    # Users and tiers land later; until then the actor is whoever the app says it is.
    return g.get("user_name") or "anonymous"


@bp.get("/alerts")
def list_alerts():
    """List crowd alerts.
    ---
    get:
      summary: Crowd alerts in the caller's jurisdiction, newest first
      parameters:
        - {in: query, name: state, schema: {type: string},
           description: 'open, acknowledged, closed or active (open + acknowledged); comma-separated'}
        - {in: query, name: offset, schema: {type: integer, minimum: 0}}
        - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 500}}
      responses:
        200: {description: '{total, offset, limit, items}'}
        400: {description: Unknown state or bad paging}
    """
    page = crowd.list_alerts(
        get_session(), current_scope(), _states(),
        limit=int_arg("limit", 100, minimum=1, maximum=500),
        offset=int_arg("offset", 0, maximum=10_000_000),
    )
    response = jsonify(page)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/alerts.geojson")
def alerts_geojson() -> Response:
    """Crowd alerts as a map layer.
    ---
    get:
      summary: Alerts as GeoJSON points (default active = open + acknowledged)
      parameters:
        - {in: query, name: state, schema: {type: string}}
      responses:
        200: {description: GeoJSON FeatureCollection; properties.title is the place}
        400: {description: Unknown state}
    """
    body = crowd.alerts_geojson(get_session(), current_scope(), _states(crowd.ACTIVE_STATES))
    response = Response(body, mimetype="application/geo+json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/alerts/<int:alert_id>")
def get_alert(alert_id: int):
    """One crowd alert.
    ---
    get:
      summary: An alert with its place, levels, nearest cameras and notes
      responses:
        200: {description: The alert}
        404: {description: Unknown or outside the caller's jurisdiction}
    """
    return jsonify(crowd.get_alert(get_session(), alert_id, current_scope()))


@bp.post("/alerts/<int:alert_id>/ack")
def acknowledge(alert_id: int):
    """Acknowledge an alert.
    ---
    post:
      summary: Acknowledge an open alert (optionally with a note)
      requestBody:
        content:
          application/json:
            schema: {type: object, properties: {note: {type: string, maxLength: 1000}}}
      responses:
        200: {description: The acknowledged alert}
        400: {description: Malformed body or note}
        403: {description: 'A viewer, or the alert of a camera dispatched to the unit (view-only)'}
        404: {description: Unknown or outside the caller's jurisdiction}
        409: {description: The alert is not open}
    """
    session = get_session()
    alert = crowd.transition(session, alert_id, "acknowledge", scope=current_scope(),
                             actor=_actor(), note=_note())
    session.commit()
    return jsonify(alert)


@bp.post("/alerts/<int:alert_id>/close")
def close(alert_id: int):
    """Close an alert.
    ---
    post:
      summary: Close an open or acknowledged alert with a note on how it was handled
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [note]
              properties: {note: {type: string, minLength: 1, maxLength: 1000}}
      responses:
        200: {description: The closed alert}
        400: {description: Missing or bad note}
        403: {description: 'A viewer, or the alert of a camera dispatched to the unit (view-only)'}
        404: {description: Unknown or outside the caller's jurisdiction}
        409: {description: The alert is already closed}
    """
    session = get_session()
    alert = crowd.transition(session, alert_id, "close", scope=current_scope(),
                             actor=_actor(), note=_note())
    session.commit()
    return jsonify(alert)


@bp.get("/alerts/<int:alert_id>/snapshot.jpg")
def snapshot(alert_id: int):
    """An alert's snapshot.
    ---
    get:
      summary: The picture kept when the alert was raised (the camera's, or a nearby one's)
      responses:
        200: {description: JPEG}
        404: {description: No such alert in scope, or no snapshot}
    """
    path = crowd.alert_snapshot(get_session(), alert_id, current_scope())
    return send_file(path, mimetype="image/jpeg", max_age=3600)
