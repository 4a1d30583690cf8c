"""Dispatch orders, escalations, video patrol tours and findings, and the audit log API."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, jsonify, request

from gridmap import accounts, dispatch
from gridmap.errors import Forbidden, InvalidInput
from web.auth import audit, current_actor
from web.database import get_session
from web.params import int_arg, json_object

bp = Blueprint("dispatch", __name__, url_prefix="/api")

MAX_BODY_BYTES = 64 * 1024


def _since() -> datetime | None:
    raw = request.args.get("since")
    if not raw:
        return None
    # An unencoded "+01:00" arrives as " 01:00"; take it back rather than refuse it.
    raw = raw.replace(" ", "+")
    try:
        since = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("since must be an ISO 8601 timestamp") from None
    if since.tzinfo is None:
        raise InvalidInput("since must include a time zone")
    return since


@bp.post("/dispatch")
def create_order():
    """Dispatch cameras down (or escalate them up).
    ---
    post:
      summary: Send cameras to units your unit may address, with priority, note and expiry
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [targets, cameras]
              properties:
                kind: {type: string, enum: [dispatch, escalation], default: dispatch}
                targets: {type: array, items: {type: integer}, maxItems: 20}
                cameras:
                  type: object
                  description: 'exactly one of gb_ids [..], area "code", grid "code",
                    bbox [w,s,e,n] or nearby {lon, lat, radius, limit}'
                priority: {type: string, enum: [low, normal, high, urgent]}
                note: {type: string, maxLength: 2000}
                incident: {type: string, maxLength: 64}
                expires_in_minutes: {type: number, minimum: 1, maximum: 10080}
                expires_at: {type: string, format: date-time}
      responses:
        201: {description: The order with its targets, cameras and timeline}
        400: {description: Malformed payload or missing CSRF token}
        403: {description: A target your unit may not address, or your role may not send}
        404: {description: A camera or unit you cannot see}
        413: {description: Too many cameras or targets}
    """
    session = get_session()
    actor = current_actor()
    order_id = dispatch.create_order(session, actor, json_object(MAX_BODY_BYTES))
    session.commit()
    return jsonify(dispatch.order_detail(session, actor, order_id)), 201


@bp.post("/dispatch/preview")
def preview():
    """Resolve a camera selection without sending anything.
    ---
    post:
      summary: The cameras a selection (gb_ids, area, grid, bbox or nearby) picks in your scope
      responses:
        200: {description: '{count, items: [{gb_id}]}'}
        400: {description: Malformed selection}
        413: {description: More cameras than an order may carry}
    """
    cameras, summary = dispatch.select_cameras(get_session(), current_actor(),
                                               json_object(MAX_BODY_BYTES).get("cameras"))
    return jsonify({"count": len(cameras), "selection": summary,
                    "items": [{"gb_id": gb} for _cid, gb in cameras]})


@bp.get("/dispatch/<int:order_id>")
def get_order(order_id: int):
    """An order and its timeline.
    ---
    get:
      summary: An order you sent or received, with targets, cameras and every timestamped step
      responses:
        200: {description: The order}
        404: {description: No such order, or not one of yours}
    """
    return jsonify(dispatch.order_detail(get_session(), current_actor(), order_id))


def _step(order_id: int, action: str):
    session = get_session()
    actor = current_actor()
    # A step's body is optional (feedback or a reason), but if there is one it is JSON.
    body = json_object(MAX_BODY_BYTES, optional=True)
    if action == "ack":
        dispatch.acknowledge(session, actor, order_id)
    elif action == "close":
        dispatch.close(session, actor, order_id, body.get("feedback", ""))
    else:
        dispatch.cancel(session, actor, order_id, body.get("reason", ""))
    session.commit()
    return jsonify(dispatch.order_detail(session, actor, order_id))


@bp.post("/dispatch/<int:order_id>/ack")
def acknowledge(order_id: int):
    """Acknowledge an order.
    ---
    post:
      summary: Acknowledge an order addressed to your unit
      responses:
        200: {description: The order}
        403: {description: Your unit is not an addressee, or your role may not}
        404: {description: No such order, or not one of yours}
        409: {description: Already acknowledged, closed or cancelled}
        410: {description: The order has expired}
    """
    return _step(order_id, "ack")


@bp.post("/dispatch/<int:order_id>/close")
def close(order_id: int):
    """Close your part of an order.
    ---
    post:
      summary: Close your unit's part with feedback; access to its cameras ends
      requestBody:
        content:
          application/json:
            schema: {type: object, properties: {feedback: {type: string, maxLength: 2000}}}
      responses:
        200: {description: The order}
        404: {description: No such order, or not one of yours}
        409: {description: Already closed or cancelled}
        410: {description: The order has expired}
    """
    return _step(order_id, "close")


@bp.post("/dispatch/<int:order_id>/cancel")
def cancel(order_id: int):
    """Cancel an order you sent.
    ---
    post:
      summary: Cancel an open order of your unit; every addressee loses access at once
      responses:
        200: {description: The order}
        403: {description: Not your unit's order}
        404: {description: No such order, or not one of yours}
        410: {description: The order has expired}
    """
    return _step(order_id, "cancel")


@bp.get("/dispatch/inbox")
def inbox():
    """Orders addressed to your unit (poll with since).
    ---
    get:
      summary: Open orders for your unit, or all that changed since a previous server_time
      parameters:
        - {in: query, name: since, schema: {type: string, format: date-time}}
      responses:
        200: {description: '{server_time, orders}'}
        400: {description: Malformed since}
    """
    body = dispatch.inbox(get_session(), current_actor(), _since(),
                          limit=int_arg("limit", 100, minimum=1, maximum=500))
    resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/dispatch/outbox")
def outbox():
    """Orders your unit sent.
    ---
    get:
      summary: Orders sent by your unit, newest first
      responses:
        200: {description: '{count, orders}'}
    """
    orders = dispatch.outbox(get_session(), current_actor(),
                             limit=int_arg("limit", 100, minimum=1, maximum=500))
    return jsonify({"count": len(orders), "orders": orders})


@bp.get("/dispatch/units")
def units():
    """Units you may address.
    ---
    get:
      summary: The units your unit may send a dispatch (or escalation) to
      parameters:
        - {in: query, name: kind, schema: {type: string, enum: [dispatch, escalation]}}
      responses:
        200: {description: '{count, items}'}
    """
    items = dispatch.unit_choices(get_session(), current_actor(),
                                  request.args.get("kind", "dispatch"))
    return jsonify({"count": len(items), "items": items})


# --------------------------------------------------------------------------- video patrol


@bp.get("/patrol/tours")
def list_tours():
    """Your unit's patrol tours.
    ---
    get:
      summary: Named camera groups of your unit that cycle on the video wall
      responses:
        200: {description: '{count, items}'}
    """
    items = dispatch.list_tours(get_session(), current_actor())
    return jsonify({"count": len(items), "items": items})


@bp.post("/patrol/tours")
def create_tour():
    """Define a patrol tour.
    ---
    post:
      summary: Name a group of cameras in your scope, with a dwell time and layout
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [name, gb_ids]
              properties:
                name: {type: string, maxLength: 60}
                gb_ids: {type: array, items: {type: string}, maxItems: 64}
                dwell_s: {type: integer, minimum: 5, maximum: 600}
                layout: {type: integer, enum: [1, 4, 9, 16]}
      responses:
        201: {description: The tour}
        400: {description: Malformed tour}
        404: {description: A camera outside your scope}
        409: {description: Your unit already has a tour of this name}
    """
    session = get_session()
    actor = current_actor()
    tour_id = dispatch.create_tour(session, actor, json_object(MAX_BODY_BYTES))
    session.commit()
    return jsonify(dispatch.tour_detail(session, actor, tour_id)), 201


@bp.get("/patrol/tours/<int:tour_id>")
def get_tour(tour_id: int):
    """A patrol tour.
    ---
    get:
      summary: A tour with the cameras you can still see, in playing order
      responses:
        200: {description: The tour}
        404: {description: No such tour, or not your unit's}
    """
    return jsonify(dispatch.tour_detail(get_session(), current_actor(), tour_id))


@bp.delete("/patrol/tours/<int:tour_id>")
def delete_tour(tour_id: int):
    """Delete a patrol tour.
    ---
    delete:
      summary: Delete one of your unit's tours
      responses:
        204: {description: Deleted}
        404: {description: No such tour, or not your unit's}
    """
    session = get_session()
    dispatch.delete_tour(session, current_actor(), tour_id)
    session.commit()
    return "", 204


@bp.get("/patrol/findings")
def list_findings():
    """Patrol findings.
    ---
    get:
      summary: Findings on grids in your area and those your unit recorded, newest first
      parameters:
        - {in: query, name: grid, schema: {type: string}, description: grid code prefix}
      responses:
        200: {description: '{count, items}'}
    """
    items = dispatch.list_findings(get_session(), current_actor(),
                                   request.args.get("grid", ""),
                                   limit=int_arg("limit", 100, minimum=1, maximum=500))
    return jsonify({"count": len(items), "items": items})


@bp.post("/patrol/findings")
def record_finding():
    """Record a patrol finding.
    ---
    post:
      summary: Record what a video patrol saw against a grid (optionally a camera and tour)
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [grid_code, note]
              properties:
                grid_code: {type: string}
                note: {type: string, maxLength: 2000}
                severity: {type: string, enum: [info, issue, urgent]}
                gb_id: {type: string}
                tour_id: {type: integer}
      responses:
        201: {description: '{id}'}
        400: {description: Malformed finding}
        404: {description: A grid or camera outside your scope}
    """
    session = get_session()
    finding_id = dispatch.record_finding(session, current_actor(), json_object(MAX_BODY_BYTES))
    session.commit()
    return jsonify({"id": finding_id}), 201


# --------------------------------------------------------------------------- audit


@bp.get("/audit")
def audit_log():
    """The audit log.
    ---
    get:
      summary: Sign-ins, denials, dispatches, escalations, dispatched views and data edits
      description: District-center operators only. Never contains a secret.
      parameters:
        - {in: query, name: action, schema: {type: string}, description: action prefix}
        - {in: query, name: user, schema: {type: string}}
        - {in: query, name: since, schema: {type: string, format: date-time}}
        - {in: query, name: offset, schema: {type: integer}}
        - {in: query, name: limit, schema: {type: integer, maximum: 500}}
      responses:
        200: {description: '{total, items}'}
        403: {description: Not a district-center operator}
    """
    actor = current_actor()
    if actor.tier != 1 or actor.role != "operator":
        audit("access.denied", target="audit", status=403)
        raise Forbidden("the audit log is for district-center operators")
    action = (request.args.get("action") or "")[:40]
    user = (request.args.get("user") or "")[:40]
    return jsonify(accounts.audit_entries(
        get_session(), action=action or None, username=user or None, since=_since(),
        limit=int_arg("limit", 100, minimum=1, maximum=500),
        offset=int_arg("offset", 0, maximum=10_000_000),
    ))
