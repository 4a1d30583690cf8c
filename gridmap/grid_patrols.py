"""Grid-worker patrol records (巡查记录): who patrolled which grid when, and what they reported.

A patrol belongs to a grid and to one of that grid's workers; the matters a worker
reported during the day come from ``matters.reported_by_worker``. Visibility is the
caller's area prefix (the district all grids, a town or community its own, a
department none). Functions add and flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.accounts import Actor
from gridmap.errors import InvalidInput, NotFound
from gridmap.matter_models import GridPatrol
from video.registry import NO_AREA

CST = timezone(timedelta(hours=8), "CST")
MAX_PATROL = timedelta(hours=16)
MAX_AGE = timedelta(days=31)  # patrols are recorded within the month
CLOCK_SKEW = timedelta(minutes=10)
MAX_DISTANCE_M = 100_000.0
MAX_NOTE = 2000
MAX_DAYS_LISTED = 62


def _prefix(actor: Actor) -> str | None:
    """Return the caller's area prefix ('' for all), or None when it sees no grid."""
    prefix = actor.area_prefix
    return None if prefix == NO_AREA else prefix


def _visible_grid(session: Session, actor: Actor, grid_code: str) -> None:
    prefix = _prefix(actor)
    if (not isinstance(grid_code, str) or not grid_code.isdigit() or len(grid_code) != 15
            or prefix is None or not grid_code.startswith(prefix)):
        raise NotFound("no such grid", code=str(grid_code)[:20])
    if session.execute(text("SELECT 1 FROM grids WHERE code = :c"), {"c": grid_code}).first() is None:
        raise NotFound("no such grid", code=grid_code)


def _time(payload: Mapping[str, Any], key: str) -> datetime:
    value = payload.get(key)
    if isinstance(value, datetime):
        t = value
    elif isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{key} must be an ISO 8601 time", field=key) from None
    else:
        raise InvalidInput(f"{key} is required (ISO 8601 with an offset)", field=key)
    if t.tzinfo is None:
        raise InvalidInput(f"{key} needs a UTC offset", field=key)
    return t


def _number(payload: Mapping[str, Any], key: str, low: float, high: float,
            integer: bool = False) -> float | int:
    value = payload.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{key} must be a number", field=key)
    if integer and int(value) != value:
        raise InvalidInput(f"{key} must be a whole number", field=key)
    if not low <= value <= high:  # NaN fails here too
        raise InvalidInput(f"{key} must be within {low:g}–{high:g}", field=key)
    return int(value) if integer else float(value)


def record_patrol(session: Session, actor: Actor, grid_code: str, payload: Mapping[str, Any],
                  *, now: datetime | None = None) -> dict[str, Any]:
    """Record one patrol of a grid by one of its workers; return it as listed."""
    _visible_grid(session, actor, grid_code)
    if not isinstance(payload, Mapping):
        raise InvalidInput("the body must be a JSON object")
    unknown = set(payload) - {"worker_id", "started_at", "ended_at", "distance_m",
                              "places_visited", "note"}
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    worker_id = payload.get("worker_id")
    if isinstance(worker_id, bool) or not isinstance(worker_id, int):
        raise InvalidInput("worker_id must be a grid worker's id", field="worker_id")
    row = session.execute(text(
        "SELECT g.code FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
        "WHERE w.id = :w AND w.left_at IS NULL"),
        {"w": worker_id}).first()
    if row is None or row[0] != grid_code:
        raise InvalidInput("the worker is not in this grid's team", field="worker_id")
    started, ended = _time(payload, "started_at"), _time(payload, "ended_at")
    now = now or datetime.now(UTC)
    if started < now - MAX_AGE:
        raise InvalidInput("patrols older than 31 days cannot be recorded", field="started_at")
    if ended < started:
        raise InvalidInput("ended_at is before started_at", field="ended_at")
    if ended - started > MAX_PATROL:
        raise InvalidInput("a patrol lasts at most 16 hours", field="ended_at")
    if ended > now + CLOCK_SKEW:
        raise InvalidInput("a patrol cannot end in the future", field="ended_at")
    note = payload.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise InvalidInput(f"note is text of at most {MAX_NOTE} characters", field="note")
    reported = session.execute(text(
        "SELECT count(*) FROM matters WHERE reported_by_worker = :w"
        " AND reported_at BETWEEN :s AND :e"), {"w": worker_id, "s": started, "e": ended}).scalar()
    patrol = GridPatrol(
        worker_id=worker_id, grid_code=grid_code, day=started.astimezone(CST).date(),
        started_at=started, ended_at=ended,
        distance_m=_number(payload, "distance_m", 0, MAX_DISTANCE_M),
        places_visited=_number(payload, "places_visited", 0, 1000, integer=True),
        matters_reported=int(reported or 0), note=note,
    )
    session.add(patrol)
    session.flush()
    listed = list_patrols(session, actor, grid_code=grid_code, day=patrol.day,
                          worker_id=worker_id)
    return next(p for p in listed["items"] if p["id"] == patrol.id)


def _day(value: date | str | None, key: str) -> date | None:
    if value is None or value == "" or isinstance(value, date):
        return value or None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"{key} must be YYYY-MM-DD", field=key) from None


def list_patrols(session: Session, actor: Actor, *, grid_code: str | None = None,
                 worker_id: int | None = None, day: date | str | None = None,
                 date_from: date | str | None = None, date_to: date | str | None = None,
                 limit: int = 200) -> dict[str, Any]:
    """Return patrols per grid/worker/day in the caller's area, each with the day's matters."""
    prefix = _prefix(actor)
    if grid_code is not None:
        _visible_grid(session, actor, grid_code)
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be within 1–1000")
    one_day = _day(day, "day")
    first = one_day or _day(date_from, "from")
    last = one_day or _day(date_to, "to")
    today = datetime.now(UTC).astimezone(CST).date()
    last = last or today
    first = first or last - timedelta(days=6)
    if first > last or (last - first).days > MAX_DAYS_LISTED:
        raise InvalidInput(f"the period is at most {MAX_DAYS_LISTED} days, first before last")
    if prefix is None:
        return {"from": first.isoformat(), "to": last.isoformat(), "total": 0, "items": []}
    rows = session.execute(text("""
        SELECT p.id, p.worker_id, w.name AS worker_name, w.role AS worker_role, p.grid_code,
               g.name AS grid_name, p.day, p.started_at, p.ended_at, p.distance_m,
               p.places_visited, p.matters_reported, p.note,
               count(*) OVER () AS total
        FROM grid_patrols p
        JOIN grid_workers w ON w.id = p.worker_id
        LEFT JOIN grids g ON g.code = p.grid_code
        WHERE p.grid_code LIKE :prefix AND p.day BETWEEN :first AND :last
          AND (CAST(:grid AS text) IS NULL OR p.grid_code = CAST(:grid AS text))
          AND (CAST(:worker AS integer) IS NULL OR p.worker_id = CAST(:worker AS integer))
        ORDER BY p.day DESC, p.grid_code, p.started_at
        LIMIT :limit"""),
        {"prefix": prefix + "%", "first": first, "last": last, "grid": grid_code,
         "worker": worker_id, "limit": limit}).mappings().all()
    matters_by = _matters_by_worker_day(session, {(r["worker_id"], r["day"]) for r in rows})
    items = [{
        "id": r["id"],
        "worker": {"id": r["worker_id"], "name": r["worker_name"], "role": r["worker_role"]},
        "grid_code": r["grid_code"], "grid_name": r["grid_name"], "day": r["day"].isoformat(),
        "started_at": r["started_at"].isoformat(), "ended_at": r["ended_at"].isoformat(),
        "minutes": round((r["ended_at"] - r["started_at"]).total_seconds() / 60),
        "distance_m": r["distance_m"], "places_visited": r["places_visited"],
        "matters_reported": r["matters_reported"], "note": r["note"],
        "matters": matters_by.get((r["worker_id"], r["day"]), []),
    } for r in rows]
    return {"from": first.isoformat(), "to": last.isoformat(),
            "total": rows[0]["total"] if rows else 0, "items": items}


def _matters_by_worker_day(session: Session, keys: set[tuple[int, date]]) -> dict:
    """Return the matters each worker reported on each day (one query)."""
    if not keys:
        return {}
    workers = sorted({w for w, _ in keys})
    days = sorted({d for _, d in keys})
    rows = session.execute(text("""
        SELECT m.reported_by_worker AS w,
               (m.reported_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
               m.id, m.ref, m.title, m.category_code, m.state, m.reported_at
        FROM matters m
        WHERE m.reported_by_worker = ANY(:workers)
          AND m.reported_at >= :first AND m.reported_at < :last
        ORDER BY m.reported_at"""),
        {"workers": workers,
         "first": datetime(days[0].year, days[0].month, days[0].day, tzinfo=CST),
         "last": datetime(days[-1].year, days[-1].month, days[-1].day, tzinfo=CST)
         + timedelta(days=1)}).mappings()
    out: dict[tuple[int, date], list[dict]] = {}
    for r in rows:
        if (r["w"], r["day"]) in keys:
            out.setdefault((r["w"], r["day"]), []).append({
                "id": r["id"], "ref": r["ref"], "title": r["title"],
                "category": r["category_code"], "state": r["state"],
                "reported_at": r["reported_at"].isoformat()})
    return out
