"""Matter statistics: the overdue scan, per-unit rates, hot spots, repeats and the look-back.

Everything is computed in PostgreSQL over the caller's matters (``scope_clause``),
so a town sees its own figures and the district center all of them. Months are
calendar months in China Standard Time, given as ``"YYYY-MM"``.

The monthly look-back (回头看) lists last month's unresolved matters (not closed)
and unsatisfied ones (closed with a rating below the threshold) in
``matter_lookbacks``; unsatisfied ones are reopened to their unit and matters still
awaiting triage are transferred to their routed unit, through the state machine of
:mod:`gridmap.matters`. A listed matter is struck off once it is closed after its
listing. Functions add and flush; the caller commits.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap import matters
from gridmap.accounts import Actor
from gridmap.errors import Conflict, Forbidden, GridmapError, InvalidInput
from gridmap.matter_models import CLOCK_STATES, clock_running_sql

CST = timezone(timedelta(hours=8), "CST")
DUE_SOON = matters.DUE_SOON
RATING_THRESHOLD = matters.RATING_THRESHOLD
REPEAT_RADIUS_M = 50.0
REPEAT_MIN_COUNT = 3
# UTM 50N: metres for the repeat clustering (the district lies inside zone 50).
METRIC_SRID = 32650
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
OPEN_STATES = ("reported", "transferred", "handling", "handled", "verified")
FLAGS = tuple(CLOCK_STATES)


def parse_month(value: object, *, default_offset: int = 0,
                now: datetime | None = None) -> date:
    """Return the first day of a ``YYYY-MM`` month (default: this month + offset)."""
    if value is not None and not isinstance(value, str):
        # A JSON body may carry 202611 or ["2026-11"]: text only.
        raise InvalidInput("month must be YYYY-MM", month=str(value)[:20])
    if not value:
        today = (now or datetime.now(UTC)).astimezone(CST).date()
        return shift_month(today.replace(day=1), default_offset)
    m = MONTH_RE.match(value.strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or not 2000 <= int(m.group(1)) <= 2100:
        raise InvalidInput("month must be YYYY-MM", month=value)
    return date(int(m.group(1)), int(m.group(2)), 1)


def shift_month(first: date, months: int) -> date:
    """Return the first day of the month ``months`` after ``first``'s."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(first: date) -> tuple[datetime, datetime]:
    """Return the [start, end) instants of a month in China Standard Time."""
    nxt = shift_month(first, 1)
    return (datetime(first.year, first.month, 1, tzinfo=CST),
            datetime(nxt.year, nxt.month, 1, tzinfo=CST))


def _scope(actor: Actor | None, alias: str = "m") -> tuple[str, dict[str, Any]]:
    if actor is None:  # system work (benchmarks, CLI): every matter
        return "TRUE", {}
    return matters.scope_clause(actor, alias)


# --------------------------------------------------------------------------- overdue scan

# One pass over the open matters. The WHERE clause ORs the clocks' running
# conditions, which are the predicates of the partial indexes
# ix_matters_open_{accept,finish,feedback}_due word for word, so the planner
# answers with a BitmapOr of those small indexes and never reads the closed matters.
def _overdue_scan_sql() -> str:
    columns = []
    for clock in FLAGS:
        running, due = clock_running_sql(clock, "m"), f"m.{clock}_due"
        for flag, window in (("overdue", f"{due} < :now"),
                             ("due_soon", f"{due} >= :now AND {due} < :soon")):
            where = f"WHERE {running} AND {window}"
            columns.append(f"count(*) FILTER ({where}) AS {clock}_{flag}")
            columns.append(f"array_agg(m.id ORDER BY m.id) FILTER ({where}) AS {clock}_{flag}_ids")
    columns.append(f"count(*) FILTER (WHERE {matters.clocks_past_sql('now')}) AS any_overdue")
    return (f"SELECT {', '.join(columns)} FROM matters m "
            f"WHERE {matters.clocks_past_sql('soon')} AND {{scope}}")


_OVERDUE_SQL = _overdue_scan_sql()


def overdue_scan(session: Session, now: datetime | None = None, *,
                 actor: Actor | None = None, due_soon: timedelta = DUE_SOON) -> dict[str, Any]:
    """Return counts and ids of matters overdue or due soon, per 1-2-3 clock, in one query."""
    now = now or datetime.now(UTC)
    scope_sql, params = _scope(actor)
    row = session.execute(text(_OVERDUE_SQL.format(scope=scope_sql)),
                          {**params, "now": now, "soon": now + due_soon}).mappings().one()
    out: dict[str, Any] = {"at": now.isoformat(), "due_soon_hours": due_soon.total_seconds() / 3600,
                           "overdue": {}, "due_soon": {}, "ids": {"overdue": {}, "due_soon": {}},
                           "any_overdue": int(row["any_overdue"])}
    for flag in FLAGS:
        out["overdue"][flag] = int(row[f"{flag}_overdue"])
        out["due_soon"][flag] = int(row[f"{flag}_due_soon"])
        out["ids"]["overdue"][flag] = list(row[f"{flag}_overdue_ids"] or [])
        out["ids"]["due_soon"][flag] = list(row[f"{flag}_due_soon_ids"] or [])
    return out


# --------------------------------------------------------------------------- unit stats


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def unit_stats(session: Session, actor: Actor | None, month: date) -> list[dict[str, Any]]:
    """Return per handling unit: received, completed, completion, on-time and satisfaction rates.

    Received: matters reported in the month and handled by the unit. Completed: of
    those, verified or closed. On time: completed ones handled before their finish
    deadline. Satisfaction: ratings at or above the threshold over rated matters.
    """
    start, end = month_bounds(month)
    scope_sql, params = _scope(actor)
    rows = session.execute(
        text(f"""
            SELECT u.id, u.name, u.kind,
                   count(*) AS received,
                   count(*) FILTER (WHERE m.state IN ('verified', 'closed')) AS completed,
                   count(*) FILTER (WHERE m.state IN ('verified', 'closed')
                                    AND m.handled_at <= m.finish_due) AS on_time,
                   count(*) FILTER (WHERE m.state <> 'closed') AS open,
                   count(m.rating) AS rated,
                   count(*) FILTER (WHERE m.rating >= :threshold) AS satisfied,
                   round(avg(m.rating)::numeric, 2) AS mean_rating,
                   count(*) FILTER (WHERE m.redo_count > 0) AS redone
            FROM matters m JOIN units u ON u.id = m.handling_unit_id
            WHERE m.reported_at >= :start AND m.reported_at < :end AND {scope_sql}
            GROUP BY u.id, u.name, u.kind
            ORDER BY count(*) DESC, u.name
        """),
        {**params, "start": start, "end": end, "threshold": RATING_THRESHOLD},
    ).mappings()
    out = []
    for r in rows:
        out.append({
            "unit": {"id": r["id"], "name": r["name"], "kind": r["kind"]},
            "received": r["received"], "completed": r["completed"], "open": r["open"],
            "on_time": r["on_time"], "rated": r["rated"], "satisfied": r["satisfied"],
            "redone": r["redone"],
            "mean_rating": float(r["mean_rating"]) if r["mean_rating"] is not None else None,
            "completion_rate": _rate(r["completed"], r["received"]),
            "on_time_rate": _rate(r["on_time"], r["completed"]),
            "satisfaction_rate": _rate(r["satisfied"], r["rated"]),
        })
    return out


def month_summary(session: Session, actor: Actor | None, month: date) -> dict[str, Any]:
    """Return the month's totals: by state, by source and per day (for the bulletin charts)."""
    start, end = month_bounds(month)
    scope_sql, params = _scope(actor)
    p = {**params, "start": start, "end": end, "threshold": RATING_THRESHOLD}
    where = f"m.reported_at >= :start AND m.reported_at < :end AND {scope_sql}"
    tot = session.execute(text(f"""
        SELECT count(*) AS total,
               count(*) FILTER (WHERE m.state IN ('verified', 'closed')) AS completed,
               count(*) FILTER (WHERE m.state IN ('verified', 'closed')
                                AND m.handled_at <= m.finish_due) AS on_time,
               count(m.rating) AS rated,
               count(*) FILTER (WHERE m.rating >= :threshold) AS satisfied,
               count(*) FILTER (WHERE m.urgency = 'urgent') AS urgent,
               count(*) FILTER (WHERE m.redo_count > 0) AS redone
        FROM matters m WHERE {where}"""), p).mappings().one()
    by_state = dict(session.execute(text(
        f"SELECT m.state, count(*) FROM matters m WHERE {where} GROUP BY 1"), p).all())
    by_source = session.execute(text(
        f"SELECT m.source, count(*) FROM matters m WHERE {where} GROUP BY 1 ORDER BY 2 DESC"),
        p).all()
    by_day = session.execute(text(f"""
        SELECT (m.reported_at AT TIME ZONE 'Asia/Shanghai')::date AS day, count(*)
        FROM matters m WHERE {where} GROUP BY 1 ORDER BY 1"""), p).all()
    return {
        "month": f"{month:%Y-%m}",
        "total": tot["total"], "completed": tot["completed"], "on_time": tot["on_time"],
        "rated": tot["rated"], "satisfied": tot["satisfied"], "urgent": tot["urgent"],
        "redone": tot["redone"],
        "completion_rate": _rate(tot["completed"], tot["total"]),
        "on_time_rate": _rate(tot["on_time"], tot["completed"]),
        "satisfaction_rate": _rate(tot["satisfied"], tot["rated"]),
        "by_state": by_state,
        "by_source": [{"source": s, "count": n} for s, n in by_source],
        "by_day": [{"day": d.isoformat(), "count": n} for d, n in by_day],
    }


# --------------------------------------------------------------------------- hot spots


def hotspots(session: Session, actor: Actor | None, month: date, *,
             limit: int = 10) -> dict[str, list[dict[str, Any]]]:
    """Return the month's busiest grids and categories (leaf and top-level)."""
    if not 1 <= limit <= 100:
        raise InvalidInput("limit must be within 1–100")
    start, end = month_bounds(month)
    scope_sql, params = _scope(actor)
    p = {**params, "start": start, "end": end, "limit": limit}
    where = f"m.reported_at >= :start AND m.reported_at < :end AND {scope_sql}"
    grids = session.execute(text(f"""
        SELECT m.grid_code, g.name AS grid_name, t.name AS town_name, count(*) AS n,
               count(*) FILTER (WHERE m.state <> 'closed') AS open
        FROM matters m
        LEFT JOIN grids g ON g.code = m.grid_code
        LEFT JOIN towns t ON t.code = left(m.grid_code, 9)
        WHERE {where} AND m.grid_code IS NOT NULL
        GROUP BY m.grid_code, g.name, t.name
        ORDER BY n DESC, m.grid_code LIMIT :limit"""), p).mappings().all()
    cats = session.execute(text(f"""
        SELECT c.code, c.name_zh, c.name_en, count(*) AS n
        FROM matters m JOIN matter_categories c ON c.code = m.category_code
        WHERE {where} GROUP BY c.code, c.name_zh, c.name_en
        ORDER BY n DESC, c.code LIMIT :limit"""), p).mappings().all()
    areas = session.execute(text(f"""
        SELECT c.code, c.name_zh, c.name_en, count(*) AS n
        FROM matters m JOIN matter_categories c ON c.code = split_part(m.category_code, '.', 1)
        WHERE {where} GROUP BY c.code, c.name_zh, c.name_en
        ORDER BY n DESC, c.code"""), p).mappings().all()
    towns = session.execute(text(f"""
        SELECT left(m.grid_code, 9) AS code, t.name, count(*) AS n
        FROM matters m LEFT JOIN towns t ON t.code = left(m.grid_code, 9)
        WHERE {where} AND m.grid_code IS NOT NULL
        GROUP BY 1, 2 ORDER BY n DESC, 1"""), p).mappings().all()
    return {
        "grids": [{"grid_code": r["grid_code"], "grid_name": r["grid_name"],
                   "town_name": r["town_name"], "count": r["n"], "open": r["open"]}
                  for r in grids],
        "categories": [{"code": r["code"], "name_zh": r["name_zh"], "name_en": r["name_en"],
                        "count": r["n"]} for r in cats],
        "areas": [{"code": r["code"], "name_zh": r["name_zh"], "name_en": r["name_en"],
                   "count": r["n"]} for r in areas],
        "towns": [{"code": r["code"], "name": r["name"], "count": r["n"]} for r in towns],
    }


def repeats(session: Session, actor: Actor | None, month: date, *,
            radius_m: float = REPEAT_RADIUS_M, min_count: int = REPEAT_MIN_COUNT,
            limit: int = 50) -> list[dict[str, Any]]:
    """Return places where one category was reported ``min_count``+ times within ``radius_m``.

    Same-category matters of the month are clustered with DBSCAN in metres (a
    cluster chains matters each within ``radius_m`` of another), so a corner that
    keeps flooding or a stall that keeps coming back shows up once, with its count.
    """
    if not 0 < radius_m <= 1000 or not 2 <= min_count <= 100:
        raise InvalidInput("radius_m must be within (0, 1000] and min_count within 2–100")
    start, end = month_bounds(month)
    scope_sql, params = _scope(actor)
    rows = session.execute(text(f"""
        WITH month AS (
          SELECT m.id, m.ref, m.category_code, m.grid_code, m.geom, m.reported_at, m.state,
                 ST_ClusterDBSCAN(ST_Transform(m.geom, {METRIC_SRID}), eps := :radius,
                                  minpoints := :min_count)
                   OVER (PARTITION BY m.category_code) AS cluster
          FROM matters m
          WHERE m.reported_at >= :start AND m.reported_at < :end AND {scope_sql}
        )
        SELECT x.category_code, c.name_zh, c.name_en, count(*) AS n,
               min(x.grid_code) AS grid_code, g.name AS grid_name,
               ST_X(ST_Centroid(ST_Collect(x.geom))) AS lon,
               ST_Y(ST_Centroid(ST_Collect(x.geom))) AS lat,
               min(x.reported_at) AS first_at, max(x.reported_at) AS last_at,
               count(*) FILTER (WHERE x.state <> 'closed') AS open,
               (array_agg(x.ref ORDER BY x.reported_at))[1:10] AS refs,
               (array_agg(x.id ORDER BY x.reported_at))[1:10] AS ids
        FROM month x
        JOIN matter_categories c ON c.code = x.category_code
        LEFT JOIN grids g ON g.code = (SELECT min(y.grid_code) FROM month y
                                       WHERE y.category_code = x.category_code
                                         AND y.cluster = x.cluster)
        WHERE x.cluster IS NOT NULL
        GROUP BY x.category_code, x.cluster, c.name_zh, c.name_en, g.name
        HAVING count(*) >= :min_count
        ORDER BY n DESC, min(x.reported_at) LIMIT :limit"""),
        {**params, "start": start, "end": end, "radius": radius_m, "min_count": min_count,
         "limit": limit}).mappings().all()
    return [{
        "category": {"code": r["category_code"], "name_zh": r["name_zh"], "name_en": r["name_en"]},
        "count": r["n"], "open": r["open"], "grid_code": r["grid_code"],
        "grid_name": r["grid_name"], "lon": r["lon"], "lat": r["lat"],
        "first_at": r["first_at"].isoformat(), "last_at": r["last_at"].isoformat(),
        "refs": list(r["refs"]), "ids": list(r["ids"]),
    } for r in rows]


# --------------------------------------------------------------------------- look-back


def _require_district_operator(actor: Actor) -> None:
    if actor.unit_kind != "district" or actor.role != "operator":
        raise Forbidden("only an operator of the district center runs the look-back")


def strike_off(session: Session, month: date | None = None) -> int:
    """Strike off listed matters closed since their listing; return how many."""
    result = session.execute(text("""
        UPDATE matter_lookbacks l SET struck_at = m.closed_at
        FROM matters m
        WHERE m.id = l.matter_id AND l.struck_at IS NULL AND m.state = 'closed'
          AND m.closed_at >= l.listed_at
          AND (CAST(:month AS date) IS NULL OR l.month = CAST(:month AS date))"""),
        {"month": month})
    return int(result.rowcount or 0)


def run_lookback(session: Session, actor: Actor, month: date | None = None, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """List ``month``'s (default: last month's) unresolved and unsatisfied matters and act.

    Unresolved: reported before the month's end and not closed (earlier months' too,
    so a matter is listed again every month until it is closed). Unsatisfied:
    reported in the month and closed with a rating below the threshold; these are
    reopened to their unit. Matters still awaiting triage are transferred to the unit
    their routing gives. Re-running a month lists only what is new.
    """
    _require_district_operator(actor)
    now = now or datetime.now(UTC)
    month = month or parse_month(None, default_offset=-1, now=now)
    start, end = month_bounds(month)
    if end > now + timedelta(days=1) and start > now:
        raise InvalidInput("the look-back month has not begun", month=f"{month:%Y-%m}")
    struck = strike_off(session)
    listed = session.execute(text("""
        INSERT INTO matter_lookbacks (month, matter_id, reason, listed_at, assigned_unit_id)
        SELECT :month, m.id,
               CASE WHEN m.state <> 'closed' THEN 'unresolved' ELSE 'unsatisfied' END,
               :now, COALESCE(m.handling_unit_id, m.current_unit_id)
        FROM matters m
        WHERE m.reported_at < :end
          AND (m.state <> 'closed'
               OR (m.reported_at >= :start AND m.rating < :threshold
                   -- a rating older than the result verified since is the one that
                   -- already sent the matter back (and its redo was done)
                   AND (m.rated_at IS NULL OR m.verified_at IS NULL
                        OR m.rated_at >= m.verified_at)))
        ON CONFLICT (month, matter_id) DO NOTHING
        RETURNING matter_id, reason"""),
        {"month": month, "now": now, "start": start, "end": end,
         "threshold": RATING_THRESHOLD}).all()
    if listed:
        session.execute(text("""
            INSERT INTO matter_events (matter_id, at, action, from_state, to_state, user_id,
                                       username, unit_id, note)
            SELECT m.id, :now, 'lookback', m.state, m.state, :uid, :uname, :unit, :note
            FROM matters m WHERE m.id = ANY(:ids)"""),
            {"now": now, "uid": actor.user_id, "uname": actor.username, "unit": actor.unit_id,
             "note": f"{month:%Y-%m} 回头看", "ids": [mid for mid, _ in listed]})
    reopened, transferred, failed = _reassign(session, actor, listed)
    session.flush()
    return {"month": f"{month:%Y-%m}", "listed": len(listed),
            "unresolved": sum(1 for _, r in listed if r == "unresolved"),
            "unsatisfied": sum(1 for _, r in listed if r == "unsatisfied"),
            "reopened": reopened, "transferred": transferred, "not_reassigned": failed,
            "struck": struck}


def _reassign(session: Session, actor: Actor, listed: list) -> tuple[int, int, list[dict]]:
    """Reopen unsatisfied matters and transfer those awaiting triage, via the state machine."""
    ids = [mid for mid, _ in listed]
    if not ids:
        return 0, 0, []
    rows = session.execute(text("""
        SELECT m.id, m.state, m.category_code, ST_X(m.geom) AS lon, ST_Y(m.geom) AS lat,
               m.handling_unit_id
        FROM matters m WHERE m.id = ANY(:ids) AND m.state IN ('closed', 'reported')
        ORDER BY m.id"""), {"ids": ids}).mappings().all()
    reopened = transferred = 0
    failed: list[dict] = []
    for r in rows:
        try:
            with session.begin_nested():
                if r["state"] == "closed":
                    payload = {"note": "回头看：群众不满意，重新交办"}
                    if r["handling_unit_id"]:
                        payload["unit_id"] = r["handling_unit_id"]
                    matters.apply_action(session, actor, r["id"], "reopen", payload)
                    reopened += 1
                else:
                    routing = matters.route(session, r["category_code"], r["lon"], r["lat"])
                    unit_id = routing.unit_id or r["handling_unit_id"]
                    if not unit_id:
                        raise Conflict("no unit to transfer to")
                    matters.apply_action(session, actor, r["id"], "transfer",
                                         {"unit_id": unit_id, "note": "回头看：重新交办"})
                    transferred += 1
        except GridmapError as exc:  # listed anyway; the center sees why in the result
            failed.append({"id": r["id"], "reason": exc.reason})
    return reopened, transferred, failed


def lookback_list(session: Session, actor: Actor | None, month: date, *,
                  include_struck: bool = True) -> dict[str, Any]:
    """Return a month's look-back list (in the caller's scope), struck-off ones marked."""
    scope_sql, params = _scope(actor)
    rows = session.execute(text(f"""
        SELECT l.id AS lookback_id, l.reason, l.listed_at,
               COALESCE(l.struck_at, CASE WHEN m.state = 'closed' AND m.closed_at >= l.listed_at
                                          THEN m.closed_at END) AS struck_at,
               m.id, m.ref, m.title, m.state, m.rating, m.redo_count, m.reported_at, m.grid_code,
               m.category_code, c.name_zh AS category_zh, c.name_en AS category_en,
               u.id AS unit_id, u.name AS unit_name
        FROM matter_lookbacks l
        JOIN matters m ON m.id = l.matter_id
        LEFT JOIN matter_categories c ON c.code = m.category_code
        LEFT JOIN units u ON u.id = COALESCE(m.handling_unit_id, l.assigned_unit_id)
        WHERE l.month = :month AND {scope_sql}
        ORDER BY (l.struck_at IS NULL AND m.state <> 'closed') DESC, m.reported_at, m.id"""),
        {**params, "month": month}).mappings().all()
    items = []
    for r in rows:
        if r["struck_at"] is not None and not include_struck:
            continue
        items.append({
            "id": r["id"], "ref": r["ref"], "title": r["title"], "state": r["state"],
            "reason": r["reason"], "rating": r["rating"], "redo_count": r["redo_count"],
            "grid_code": r["grid_code"],
            "category": {"code": r["category_code"], "name_zh": r["category_zh"],
                         "name_en": r["category_en"]},
            "unit": {"id": r["unit_id"], "name": r["unit_name"]} if r["unit_id"] else None,
            "reported_at": r["reported_at"].isoformat(),
            "listed_at": r["listed_at"].isoformat(),
            "struck_at": r["struck_at"].isoformat() if r["struck_at"] else None,
        })
    return {"month": f"{month:%Y-%m}", "total": len(rows),
            "open": sum(1 for i in items if i["struck_at"] is None),
            "struck": sum(1 for i in items if i["struck_at"] is not None),
            "items": items}


def bulletin(session: Session, actor: Actor | None, month: date) -> dict[str, Any]:
    """Return everything the monthly bulletin shows, in one dict."""
    return {
        "summary": month_summary(session, actor, month),
        "units": unit_stats(session, actor, month),
        "hotspots": hotspots(session, actor, month),
        "repeats": repeats(session, actor, month, limit=20),
        # The look-back of a month lists the month before's matters.
        "lookback": lookback_list(session, actor, month),
    }
