"""Video dispatch down the tiers and escalation up them; video patrol tours and findings.

An operator selects cameras (explicit GB IDs, an area or grid code, a bbox, or a
point and radius), always through the sender's own camera scope, and addresses
one or more units it may address (``accounts.can_address``). Each addressee
acknowledges and closes its part with feedback; while its part is open and the
order unexpired, the addressee sees the order's cameras: that rule is the dispatch
branch of ``video.registry.Scope.sql``, so every camera query honours it.

An order the caller has no part in (neither its sender nor an addressee; the
district center oversees all of them) is NotFound, exactly like one that does not
exist, so order ids cannot be enumerated. Functions add and flush; the caller
commits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gridmap.accounts import (
    FINDING_SEVERITIES,
    ORDER_KINDS,
    PRIORITIES,
    Actor,
    DispatchOrder,
    DispatchTarget,
    PatrolFinding,
    PatrolTour,
    Unit,
    can_address,
    record_audit,
)
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from gridmap.validation import text_field
from video.registry import MAX_RADIUS_M, Filters

MAX_TARGETS = 20
MAX_CAMERAS = 200
MAX_TOUR_CAMERAS = 64
MAX_NOTE = 2000
MAX_EXPIRY_MINUTES = 7 * 24 * 60
DEFAULT_EXPIRY_MINUTES = 4 * 60
MAX_NEARBY_RADIUS_M = 5000.0
INCIDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:#-]{0,63}$")
GB_ID_RE = re.compile(r"^[0-9]{20}$")
SELECTION_KINDS = ("gb_ids", "area", "grid", "bbox", "nearby", "incident")
# Who may do what with orders (viewers only read; grid admins edit data, not video).
DISPATCH_ROLES = frozenset({"operator"})
ESCALATION_ROLES = frozenset({"operator", "patrol_lead"})
HANDLING_ROLES = frozenset({"operator", "patrol_lead"})
PATROL_ROLES = frozenset({"operator", "patrol_lead"})
FINDING_ROLES = frozenset({"operator", "patrol_lead", "grid_admin"})

EFFECTIVE_STATE_SQL = (
    "CASE WHEN o.state = 'open' AND o.expires_at <= now() THEN 'expired' ELSE o.state END"
)


class OrderExpired(Conflict):
    """The order's expiry has passed: it can no longer be acted on."""


# --------------------------------------------------------------------------- validation


def _number(raw: Any, key: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidInput(f"{key} must be a finite number", field=key)
    return float(raw)


def _expiry(payload: Mapping[str, Any], now: datetime) -> datetime:
    if "expires_at" in payload and payload["expires_at"] is not None:
        raw = payload["expires_at"]
        try:
            when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise InvalidInput("expires_at must be an ISO 8601 time with a time zone")
        if when <= now:
            raise InvalidInput("expires_at must be in the future")
        if when > now + timedelta(minutes=MAX_EXPIRY_MINUTES):
            raise InvalidInput(f"an order lasts at most {MAX_EXPIRY_MINUTES // 1440} days")
        return when
    minutes = payload.get("expires_in_minutes", DEFAULT_EXPIRY_MINUTES)
    value = _number(minutes, "expires_in_minutes")
    if not 1 <= value <= MAX_EXPIRY_MINUTES:
        raise InvalidInput(f"expires_in_minutes must be within 1–{MAX_EXPIRY_MINUTES}")
    return now + timedelta(minutes=value)


def _unit_ids(raw: Any) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("targets must be a non-empty list of unit ids", field="targets")
    if len(raw) > MAX_TARGETS:
        raise PayloadTooLarge(f"at most {MAX_TARGETS} target units", field="targets")
    ids: list[int] = []
    for item in raw:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 < item < 2**31:
            raise InvalidInput("targets must be unit ids (positive integers)", field="targets")
        if item not in ids:
            ids.append(item)
    return ids


# --------------------------------------------------------------------------- camera selection


def select_cameras(
    session: Session, actor: Actor, selection: Any, *, limit: int = MAX_CAMERAS,
    own_only: bool = False,
) -> tuple[list[tuple[int, str]], dict[str, Any]]:
    """Resolve a selection to (camera id, GB ID) pairs within the actor's scope.

    ``selection`` has exactly one of ``gb_ids``, ``area``, ``grid``, ``bbox``
    (``[w, s, e, n]``), ``nearby`` (``{lon, lat, radius, limit}``) or ``incident``
    (a matter's ``SX…`` reference: the cameras whose view covers its spot). Cameras
    the actor cannot see are "not found", like cameras that do not exist. With
    ``own_only`` (orders) the cameras dispatched to the actor's unit are left out,
    and naming one is refused: what was lent is not passed on.
    """
    from gridmap.queries import check_bbox, check_code, check_lon_lat

    if not isinstance(selection, Mapping):
        raise InvalidInput("cameras must be an object naming one selection", field="cameras")
    keys = [k for k in SELECTION_KINDS if k in selection]
    if len(keys) != 1 or len(selection) != 1:
        raise InvalidInput(
            "cameras names exactly one of " + ", ".join(SELECTION_KINDS), field="cameras"
        )
    kind = keys[0]
    value = selection[kind]
    scope = actor.scope.own() if own_only else actor.scope
    filters = Filters(scope=scope)
    cap = limit + 1  # one more than allowed, to tell "too many" from "exactly the limit"
    if kind == "gb_ids":
        if not isinstance(value, list) or not value:
            raise InvalidInput("gb_ids must be a non-empty list", field="cameras.gb_ids")
        if len(value) > limit:
            raise PayloadTooLarge(f"at most {limit} cameras per selection")
        if not all(isinstance(v, str) and GB_ID_RE.match(v) for v in value):
            raise InvalidInput("gb_ids are 20-digit GB/T 28181 IDs", field="cameras.gb_ids")
        wanted = list(dict.fromkeys(value))
        where, params = filters.sql()
        rows = session.execute(
            text(f"SELECT c.id, c.gb_id FROM cameras c WHERE c.gb_id = ANY(:ids) {where}"),
            {**params, "ids": wanted},
        ).all()
        found = {gb: cid for cid, gb in rows}
        missing = [g for g in wanted if g not in found]
        lent = _lent(session, actor, missing) if own_only and missing else []
        if lent:
            raise Forbidden("cameras dispatched to your unit cannot be sent on in an order",
                            gb_ids=lent[:20])
        if missing:
            raise NotFound("camera not found", gb_ids=missing[:20])
        return [(found[g], g) for g in wanted], {"gb_ids": len(wanted)}
    if kind == "incident":
        from gridmap.matters import incident_cameras

        if not isinstance(value, str):
            raise InvalidInput("incident is a matter reference (SX…)", field="cameras.incident")
        picked = incident_cameras(session, actor, value, limit=limit, own_only=own_only)
        if not picked:
            raise InvalidInput("no camera you can see covers this matter", field="cameras")
        return picked, {"incident": value, "cameras": len(picked)}
    if kind in ("area", "grid"):
        if not isinstance(value, str):
            raise InvalidInput(f"{kind} must be an area code", field=f"cameras.{kind}")
        check_code(value)
        if kind == "grid" and len(value) != 15:
            raise InvalidInput("a grid code has 15 digits", field="cameras.grid")
        where, params = Filters(prefix=value, scope=scope).sql()
        rows = session.execute(
            text(
                f"SELECT c.id, c.gb_id FROM cameras c WHERE TRUE {where} "
                "ORDER BY c.gb_id LIMIT :cap"
            ),
            {**params, "cap": cap},
        ).all()
        summary: dict[str, Any] = {kind: value}
    elif kind == "bbox":
        if not (isinstance(value, list) and len(value) == 4):
            raise InvalidInput("bbox is [west, south, east, north]", field="cameras.bbox")
        w, s, e, n = (_number(v, "bbox") for v in value)
        check_bbox(w, s, e, n)
        where, params = filters.sql()
        rows = session.execute(
            text(
                "SELECT c.id, c.gb_id FROM cameras c "
                "WHERE c.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326) "
                "AND ST_Intersects(c.geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326)) "
                f"{where} ORDER BY c.gb_id LIMIT :cap"
            ),
            {**params, "w": w, "s": s, "e": e, "n": n, "cap": cap},
        ).all()
        summary = {"bbox": [w, s, e, n]}
    else:
        if not isinstance(value, Mapping):
            raise InvalidInput("nearby is {lon, lat, radius, limit}", field="cameras.nearby")
        lon = _number(value.get("lon"), "nearby.lon")
        lat = _number(value.get("lat"), "nearby.lat")
        radius = _number(value.get("radius", 300), "nearby.radius")
        count = value.get("limit", 16)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= limit:
            raise InvalidInput(f"nearby.limit must be within 1–{limit}")
        check_lon_lat(lon, lat)
        if not 0 < radius <= min(MAX_NEARBY_RADIUS_M, MAX_RADIUS_M):
            raise InvalidInput(f"nearby.radius must be within (0, {MAX_NEARBY_RADIUS_M:g}] m")
        where, params = filters.sql(ordered=True)  # a KNN walk: dispatched ids by hash
        rows = session.execute(
            text(
                "WITH here AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) "
                "SELECT c.id, c.gb_id FROM cameras c, here "
                "WHERE ST_DWithin(c.geom::geography, here.pt::geography, :radius) "
                f"{where} ORDER BY c.geom::geography <-> here.pt::geography LIMIT :n"
            ),
            {**params, "lon": lon, "lat": lat, "radius": radius, "n": count},
        ).all()
        summary = {"nearby": {"lon": lon, "lat": lat, "radius": radius, "limit": count}}
    if len(rows) > limit:
        raise PayloadTooLarge(f"the selection has more than {limit} cameras; narrow it")
    if not rows:
        if own_only:
            raise InvalidInput("the selection contains no camera of your own jurisdiction",
                               field="cameras")
        raise InvalidInput("the selection contains no camera you can see", field="cameras")
    return [(int(r[0]), str(r[1])) for r in rows], summary


def _lent(session: Session, actor: Actor, gb_ids: list[str]) -> list[str]:
    """Return which of these GB IDs the actor sees only because they were dispatched to it."""
    where, params = Filters(scope=actor.scope).sql()
    return list(session.scalars(
        text(f"SELECT c.gb_id FROM cameras c WHERE c.gb_id = ANY(:ids) {where} ORDER BY c.gb_id"),
        {**params, "ids": gb_ids}))


# --------------------------------------------------------------------------- orders


def create_order(
    session: Session, actor: Actor, payload: Mapping[str, Any], *, now: datetime | None = None
) -> int:
    """Validate and store a dispatch or escalation order; return its id."""
    now = now or datetime.now(UTC)
    if not isinstance(payload, Mapping):
        raise InvalidInput("the body must be a JSON object")
    unknown = set(payload) - {"kind", "targets", "cameras", "priority", "note", "incident",
                              "expires_in_minutes", "expires_at"}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}")
    kind = payload.get("kind", "dispatch")
    if kind not in ORDER_KINDS:
        raise InvalidInput("kind is dispatch or escalation", field="kind")
    roles = DISPATCH_ROLES if kind == "dispatch" else ESCALATION_ROLES
    if actor.role not in roles:
        raise Forbidden(f"a {actor.role} may not send a {kind} order")
    target_ids = _unit_ids(payload.get("targets"))
    priority = payload.get("priority", "normal")
    if priority not in PRIORITIES:
        raise InvalidInput(f"priority is one of {', '.join(PRIORITIES)}", field="priority")
    note = text_field(payload, "note", MAX_NOTE)
    incident = text_field(payload, "incident", 64) or None
    if incident is not None and not INCIDENT_RE.match(incident):
        raise InvalidInput("incident is a reference of letters, digits and _.:#-",
                           field="incident")
    expires_at = _expiry(payload, now)
    units = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(target_ids)))}
    missing = [i for i in target_ids if i not in units]
    if missing:
        raise NotFound("no such unit", units=missing)
    refused = [units[i].name for i in target_ids if not can_address(actor, units[i], kind)]
    if refused:
        raise Forbidden(f"your unit may not send a {kind} order to {refused[0]}",
                        units=refused)
    # Only the sender's own cameras: a camera lent to it must not outlive the order
    # that lent it in an order of its own (cancelling the first would not end the second).
    cameras, summary = select_cameras(session, actor, payload.get("cameras"), own_only=True)
    order = DispatchOrder(
        kind=kind, from_unit_id=actor.unit_id, created_by=actor.user_id, priority=priority,
        note=note, incident_ref=incident, selection=summary, state="open",
        expires_at=expires_at,
    )
    session.add(order)
    session.flush()
    session.add_all(DispatchTarget(order_id=order.id, unit_id=i) for i in target_ids)
    session.execute(
        text("INSERT INTO dispatch_cameras (order_id, camera_id) VALUES (:o, :c)"),
        [{"o": order.id, "c": cid} for cid, _ in cameras],
    )
    _event(session, order.id, "created", actor,
           {"targets": target_ids, "cameras": len(cameras), "priority": priority})
    record_audit(session, f"{kind}.create", actor=actor, target=f"order:{order.id}",
                 detail={"targets": [units[i].name for i in target_ids],
                         "cameras": len(cameras), "priority": priority,
                         "incident": incident, "selection": summary})
    session.flush()
    return order.id


def _event(session: Session, order_id: int, action: str, actor: Actor,
           detail: Mapping[str, Any] | None = None) -> None:
    # clock_timestamp(), not now(): several steps in one transaction keep their order.
    session.execute(
        text(
            "INSERT INTO dispatch_events (order_id, at, action, unit_id, user_id, detail) "
            "VALUES (:o, clock_timestamp(), :a, :u, :usr, CAST(:d AS jsonb))"
        ),
        {"o": order_id, "a": action, "u": actor.unit_id, "usr": actor.user_id,
         "d": _json(detail or {})},
    )


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


def _load_order(session: Session, actor: Actor, order_id: int, *,
                lock: bool = False) -> tuple[DispatchOrder, DispatchTarget | None]:
    """Return the order and the actor's part in it; NotFound if the actor has none."""
    if isinstance(order_id, bool) or not isinstance(order_id, int) or not 0 < order_id < 2**62:
        raise NotFound("no such order")
    stmt = select(DispatchOrder).where(DispatchOrder.id == order_id)
    order = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if order is None:
        raise NotFound("no such order", order=order_id)
    part = session.get(DispatchTarget, (order_id, actor.unit_id))
    if part is None and order.from_unit_id != actor.unit_id and actor.tier != 1:
        raise NotFound("no such order", order=order_id)
    return order, part


def _check_actionable(order: DispatchOrder, now: datetime) -> None:
    if order.state == "cancelled":
        raise Conflict("the order was cancelled")
    if order.state == "closed":
        raise Conflict("the order is closed")
    if order.expires_at <= now:
        raise OrderExpired("the order has expired", expired_at=order.expires_at.isoformat())


def acknowledge(session: Session, actor: Actor, order_id: int, *,
                now: datetime | None = None) -> None:
    """Acknowledge an order on behalf of the actor's unit (an addressee)."""
    now = now or datetime.now(UTC)
    order, part = _load_order(session, actor, order_id, lock=True)
    if part is None:
        raise Forbidden("only an addressed unit acknowledges an order")
    if actor.role not in HANDLING_ROLES:
        raise Forbidden(f"a {actor.role} may not acknowledge orders")
    _check_actionable(order, now)
    if part.state != "pending":
        raise Conflict(f"your unit's part is already {part.state}")
    part.state = "acknowledged"
    part.acknowledged_at = now
    _event(session, order.id, "acknowledged", actor)
    record_audit(session, f"{order.kind}.acknowledge", actor=actor, target=f"order:{order.id}")
    session.flush()


def close(session: Session, actor: Actor, order_id: int, feedback: Any = "", *,
          now: datetime | None = None) -> None:
    """Close the actor's unit's part with feedback; the order closes with its last part."""
    now = now or datetime.now(UTC)
    text_feedback = text_field({"feedback": feedback}, "feedback", MAX_NOTE)
    order, part = _load_order(session, actor, order_id, lock=True)
    if part is None:
        raise Forbidden("only an addressed unit closes its part; the sender cancels")
    if actor.role not in HANDLING_ROLES:
        raise Forbidden(f"a {actor.role} may not close orders")
    _check_actionable(order, now)
    if part.state == "closed":
        raise Conflict("your unit's part is already closed")
    part.state = "closed"
    part.closed_at = now
    part.feedback = text_feedback
    _event(session, order.id, "closed", actor, {"feedback": text_feedback[:200]})
    session.flush()
    open_parts = session.execute(
        text("SELECT count(*) FROM dispatch_targets WHERE order_id = :o AND state <> 'closed'"),
        {"o": order.id},
    ).scalar_one()
    if open_parts == 0:
        order.state = "closed"
        order.closed_at = now
    record_audit(session, f"{order.kind}.close", actor=actor, target=f"order:{order.id}",
                 detail={"order_closed": open_parts == 0})
    session.flush()


def cancel(session: Session, actor: Actor, order_id: int, reason: Any = "", *,
           now: datetime | None = None) -> None:
    """Cancel an open order (its sender unit's operators only); access ends at once."""
    now = now or datetime.now(UTC)
    text_reason = text_field({"reason": reason}, "reason", MAX_NOTE)
    order, _part = _load_order(session, actor, order_id, lock=True)
    if order.from_unit_id != actor.unit_id:
        raise Forbidden("only the sending unit cancels an order")
    if actor.role not in HANDLING_ROLES:
        raise Forbidden(f"a {actor.role} may not cancel orders")
    _check_actionable(order, now)
    order.state = "cancelled"
    order.closed_at = now
    _event(session, order.id, "cancelled", actor, {"reason": text_reason[:200]})
    record_audit(session, f"{order.kind}.cancel", actor=actor, target=f"order:{order.id}")
    session.flush()


def record_view(session: Session, actor: Actor, camera_id: int) -> list[int]:
    """Add a 'viewed' step to the orders that let the actor's unit see a camera.

    Once per order and user, so a refreshing video wall does not flood the timeline.
    Returns the ids of the orders concerned.
    """
    rows = session.execute(
        text(
            "SELECT o.id FROM dispatch_orders o "
            "JOIN dispatch_targets dt ON dt.order_id = o.id AND dt.unit_id = :u "
            "JOIN dispatch_cameras dc ON dc.order_id = o.id AND dc.camera_id = :c "
            "WHERE dt.state <> 'closed' AND o.state = 'open' AND o.expires_at > now() "
            "ORDER BY o.id"
        ),
        {"u": actor.unit_id, "c": camera_id},
    ).scalars().all()
    for order_id in rows:
        seen = session.execute(
            text("SELECT 1 FROM dispatch_events WHERE order_id = :o AND action = 'viewed' "
                 "AND user_id IS NOT DISTINCT FROM :usr LIMIT 1"),
            {"o": order_id, "usr": actor.user_id},
        ).first()
        if seen is None:
            _event(session, order_id, "viewed", actor, {"camera_id": camera_id})
    return list(rows)


ORDER_SUMMARY_SQL = f"""
SELECT o.id, o.kind, o.priority, o.note, o.incident_ref AS incident, o.created_at,
       o.expires_at, o.closed_at, {EFFECTIVE_STATE_SQL} AS state,
       o.from_unit_id, fu.name AS from_unit,
       (SELECT count(*) FROM dispatch_cameras dc WHERE dc.order_id = o.id) AS cameras,
       mine.state AS my_state,
       (SELECT max(e.at) FROM dispatch_events e WHERE e.order_id = o.id) AS updated_at
FROM dispatch_orders o
JOIN units fu ON fu.id = o.from_unit_id
LEFT JOIN dispatch_targets mine ON mine.order_id = o.id AND mine.unit_id = :unit
"""


def order_detail(session: Session, actor: Actor, order_id: int) -> dict[str, Any]:
    """Return an order with its targets, cameras and timeline (NotFound if not yours)."""
    order, _part = _load_order(session, actor, order_id)
    head = session.execute(
        text(ORDER_SUMMARY_SQL + " WHERE o.id = :o"), {"o": order.id, "unit": actor.unit_id}
    ).mappings().one()
    detail = dict(head)
    detail["selection"] = order.selection
    detail["targets"] = [
        dict(r) for r in session.execute(
            text(
                "SELECT t.unit_id, u.name AS unit, u.kind, t.state, t.acknowledged_at, "
                "t.closed_at, t.feedback FROM dispatch_targets t JOIN units u ON u.id = t.unit_id "
                "WHERE t.order_id = :o ORDER BY u.tier, u.name"
            ),
            {"o": order.id},
        ).mappings()
    ]
    detail["cameras"] = [
        dict(r) for r in session.execute(
            text(
                "SELECT c.gb_id, c.name, round(ST_X(c.geom)::numeric, 6)::float AS lon, "
                "round(ST_Y(c.geom)::numeric, 6)::float AS lat, c.status, c.grid_code "
                "FROM dispatch_cameras dc JOIN cameras c ON c.id = dc.camera_id "
                "WHERE dc.order_id = :o ORDER BY c.gb_id"
            ),
            {"o": order.id},
        ).mappings()
    ]
    timeline = [
        dict(r) for r in session.execute(
            text(
                "SELECT e.at, e.action, u.name AS unit, usr.username AS user, e.detail "
                "FROM dispatch_events e LEFT JOIN units u ON u.id = e.unit_id "
                "LEFT JOIN users usr ON usr.id = e.user_id "
                "WHERE e.order_id = :o ORDER BY e.at, e.id"
            ),
            {"o": order.id},
        ).mappings()
    ]
    if detail["state"] == "expired":
        timeline.append({"at": order.expires_at, "action": "expired", "unit": None,
                         "user": None, "detail": {}})
    detail["timeline"] = timeline
    return detail


def inbox(session: Session, actor: Actor, since: datetime | None = None,
          limit: int = 100) -> dict[str, Any]:
    """Return orders addressed to the actor's unit: open ones, or all changed since ``since``.

    Clients poll with the returned ``server_time``; the query looks a few seconds
    further back than ``since`` so a step committed late is not missed (clients
    merge by order id).
    """
    server_time = session.execute(text("SELECT clock_timestamp()")).scalar_one()
    params: dict[str, Any] = {"unit": actor.unit_id, "limit": limit}
    if since is None:
        cond = ("mine.state <> 'closed' AND o.state = 'open' AND o.expires_at > now()")
    else:
        cond = ("EXISTS (SELECT 1 FROM dispatch_events e WHERE e.order_id = o.id "
                "AND e.at > CAST(:since AS timestamptz) - interval '5 seconds') "
                "OR (o.state = 'open' AND o.expires_at <= now() "
                "AND o.expires_at > CAST(:since AS timestamptz) - interval '5 seconds')")
        params["since"] = since
    rows = session.execute(
        text(ORDER_SUMMARY_SQL + f" WHERE mine.unit_id IS NOT NULL AND ({cond}) "
             "ORDER BY o.created_at DESC LIMIT :limit"),
        params,
    ).mappings()
    return {"server_time": server_time.isoformat(), "orders": [dict(r) for r in rows]}


def outbox(session: Session, actor: Actor, limit: int = 100) -> list[dict[str, Any]]:
    """Return the orders the actor's unit sent, newest first."""
    rows = session.execute(
        text(ORDER_SUMMARY_SQL + " WHERE o.from_unit_id = :unit "
             "ORDER BY o.created_at DESC LIMIT :limit"),
        {"unit": actor.unit_id, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]


# --------------------------------------------------------------------------- video patrol


def create_tour(session: Session, actor: Actor, payload: Mapping[str, Any]) -> int:
    """Store a named camera group that cycles on the wall; cameras must be in scope."""
    if actor.role not in PATROL_ROLES:
        raise Forbidden(f"a {actor.role} may not define patrol tours")
    if not isinstance(payload, Mapping):
        raise InvalidInput("the body must be a JSON object")
    name = text_field(payload, "name", 60, required=True)
    dwell = payload.get("dwell_s", 20)
    if isinstance(dwell, bool) or not isinstance(dwell, int) or not 5 <= dwell <= 600:
        raise InvalidInput("dwell_s must be an integer within 5–600", field="dwell_s")
    layout = payload.get("layout", 4)
    if layout not in (1, 4, 9, 16) or isinstance(layout, bool):
        raise InvalidInput("layout is 1, 4, 9 or 16", field="layout")
    cameras, _summary = select_cameras(
        session, actor, {"gb_ids": payload.get("gb_ids")}, limit=MAX_TOUR_CAMERAS
    )
    exists = session.scalar(
        select(PatrolTour.id).where(PatrolTour.unit_id == actor.unit_id, PatrolTour.name == name)
    )
    if exists is not None:
        raise Conflict("your unit already has a tour with this name", name=name)
    tour = PatrolTour(unit_id=actor.unit_id, name=name, dwell_s=dwell, layout=layout,
                      created_by=actor.user_id)
    session.add(tour)
    session.flush()
    session.execute(
        text("INSERT INTO patrol_tour_cameras (tour_id, position, camera_id) VALUES (:t, :p, :c)"),
        [{"t": tour.id, "p": i, "c": cid} for i, (cid, _gb) in enumerate(cameras)],
    )
    record_audit(session, "patrol.tour_create", actor=actor, target=f"tour:{tour.id}",
                 detail={"name": name, "cameras": len(cameras)})
    session.flush()
    return tour.id


def _load_tour(session: Session, actor: Actor, tour_id: int) -> PatrolTour:
    tour = session.get(PatrolTour, tour_id) if 0 < tour_id < 2**31 else None
    if tour is None or (tour.unit_id != actor.unit_id and actor.tier != 1):
        raise NotFound("no such tour", tour=tour_id)
    return tour


def list_tours(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Return the actor's unit's tours with their camera counts."""
    rows = session.execute(
        text(
            "SELECT t.id, t.name, t.dwell_s, t.layout, t.created_at, "
            "(SELECT count(*) FROM patrol_tour_cameras tc WHERE tc.tour_id = t.id) AS cameras "
            "FROM patrol_tours t WHERE t.unit_id = :u ORDER BY t.name"
        ),
        {"u": actor.unit_id},
    ).mappings()
    return [dict(r) for r in rows]


def tour_detail(session: Session, actor: Actor, tour_id: int) -> dict[str, Any]:
    """Return a tour with the cameras the actor can still see, in playing order."""
    tour = _load_tour(session, actor, tour_id)
    where, params = Filters(scope=actor.scope).sql()
    cameras = [
        dict(r) for r in session.execute(
            text(
                "SELECT c.gb_id, c.name, c.status FROM patrol_tour_cameras tc "
                f"JOIN cameras c ON c.id = tc.camera_id WHERE tc.tour_id = :t {where} "
                "ORDER BY tc.position"
            ),
            {**params, "t": tour.id},
        ).mappings()
    ]
    return {"id": tour.id, "name": tour.name, "dwell_s": tour.dwell_s, "layout": tour.layout,
            "cameras": cameras}


def delete_tour(session: Session, actor: Actor, tour_id: int) -> None:
    """Delete one of the actor's unit's tours."""
    if actor.role not in PATROL_ROLES:
        raise Forbidden(f"a {actor.role} may not delete patrol tours")
    tour = _load_tour(session, actor, tour_id)
    if tour.unit_id != actor.unit_id:
        raise Forbidden("only the owning unit deletes a tour")
    record_audit(session, "patrol.tour_delete", actor=actor, target=f"tour:{tour.id}",
                 detail={"name": tour.name})
    session.delete(tour)
    session.flush()


def record_finding(session: Session, actor: Actor, payload: Mapping[str, Any]) -> int:
    """Record a patrol finding against a grid the actor can see (or its camera's grid)."""
    if actor.role not in FINDING_ROLES:
        raise Forbidden(f"a {actor.role} may not record findings")
    if not isinstance(payload, Mapping):
        raise InvalidInput("the body must be a JSON object")
    grid_code = payload.get("grid_code")
    if not (isinstance(grid_code, str) and grid_code.isascii() and grid_code.isdigit()
            and len(grid_code) == 15):
        raise InvalidInput("grid_code is a 15-digit grid code", field="grid_code")
    note = text_field(payload, "note", MAX_NOTE, required=True)
    severity = payload.get("severity", "info")
    if severity not in FINDING_SEVERITIES:
        raise InvalidInput(f"severity is one of {', '.join(FINDING_SEVERITIES)}",
                           field="severity")
    camera_id = None
    camera_grid = None
    gb_id = payload.get("gb_id")
    if gb_id is not None:
        picked, _summary = select_cameras(session, actor, {"gb_ids": [gb_id]})
        camera_id = picked[0][0]
        camera_grid = session.execute(
            text("SELECT grid_code FROM cameras WHERE id = :c"), {"c": camera_id}
        ).scalar()
    prefix = actor.area_prefix
    exists = session.execute(
        text("SELECT 1 FROM grids WHERE code = :g"), {"g": grid_code}
    ).first()
    if exists is None or not (grid_code.startswith(prefix) or camera_grid == grid_code):
        raise NotFound("no such grid", code=grid_code)
    tour_id = payload.get("tour_id")
    if tour_id is not None:
        if isinstance(tour_id, bool) or not isinstance(tour_id, int):
            raise InvalidInput("tour_id must be an integer", field="tour_id")
        tour_id = _load_tour(session, actor, tour_id).id
    finding = PatrolFinding(grid_code=grid_code, camera_id=camera_id, tour_id=tour_id,
                            unit_id=actor.unit_id, user_id=actor.user_id, severity=severity,
                            note=note)
    session.add(finding)
    session.flush()
    record_audit(session, "patrol.finding", actor=actor, target=f"grid:{grid_code}",
                 detail={"finding": finding.id, "severity": severity, "gb_id": gb_id})
    return finding.id


def list_findings(session: Session, actor: Actor, grid_prefix: str = "",
                  limit: int = 100) -> list[dict[str, Any]]:
    """Return findings on grids in the actor's area, plus those its unit recorded."""
    if grid_prefix and not (grid_prefix.isascii() and grid_prefix.isdigit()
                            and len(grid_prefix) <= 15):
        raise InvalidInput("grid must be up to 15 digits")
    rows = session.execute(
        text(
            "SELECT f.id, f.grid_code, f.severity, f.note, f.created_at, u.name AS unit, "
            "usr.username AS user, c.gb_id FROM patrol_findings f "
            "JOIN units u ON u.id = f.unit_id LEFT JOIN users usr ON usr.id = f.user_id "
            "LEFT JOIN cameras c ON c.id = f.camera_id "
            "WHERE (f.grid_code LIKE :area || '%' OR f.unit_id = :unit) "
            "AND f.grid_code LIKE :want || '%' ORDER BY f.created_at DESC, f.id DESC LIMIT :n"
        ),
        {"area": actor.area_prefix, "unit": actor.unit_id, "want": grid_prefix, "n": limit},
    ).mappings()
    return [dict(r) for r in rows]


def unit_choices(session: Session, actor: Actor, kind: str) -> list[dict[str, Any]]:
    """Return the units the actor may address with ``kind`` (for the dispatch form)."""
    from gridmap.accounts import addressable_units, unit_summary

    if kind not in ORDER_KINDS:
        raise InvalidInput("kind is dispatch or escalation")
    return [unit_summary(u) for u in addressable_units(session, actor, kind)]
