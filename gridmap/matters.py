"""Matters (事项): intake, smart routing, the five steps, deadlines, supervision, rating.

Visibility is one rule (``scope_clause``), used by every matter query: the district
center sees every matter; a town or community sees the matters located in its
area (grid code prefix) and those addressed to it; a department sees the matters
addressed to it, now or before; every unit also sees the matters it reported. The
reporter's contact is shown only to the handling units and the district center
(``may_see_contact``). Functions add and flush; the caller commits.

The five steps (上报 → 转办 → 处置 → 核实 → 结案) are the states of ``TRANSITIONS``,
a pure table; who may take a step is decided by ``_party_ok``:

- **transfer** (转办): a district-center operator, from triage or to re-assign; a
  town's operator may pass a matter it holds down to one of its communities.
- **accept / handle** (受理/处置), **return** (退回: not ours) and **escalate** (上报:
  beyond our power): the unit that holds the matter. Return and escalate send it
  back to the district center for triage.
- **verify / reject / close** (核实/核实不通过/结案): a district-center operator, or
  the operator of the unit that made the latest transfer (a town verifying its
  community's work).
- **rate** (评价): the reporter's channel. That is a district-center operator
  recording the citizen's callback (回访), or the unit that reported the matter on
  the citizen's behalf, unless it handled the matter itself: nobody rates their
  own work. An Open311 client (actor name ``open311:<client>``) rates only the
  matters it filed itself, whichever unit it acts for. A rating below
  ``RATING_THRESHOLD`` reopens the matter to the same unit (or ``unit_id``).
- **reopen / supervise** (重办/督办): a district-center operator.
- **comment**: anyone who can see the matter and may write.

The 1-2-3 clocks (accept within 1, finish within 2, report back within 3 work
days) start at each transfer and restart on redo (rejected verification, reopening).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geodata.coords import CoordinateError, Datum, parse_datum, to_wgs84
from gridmap import workdays
from gridmap.accounts import Actor, Unit, can_address, record_audit
from gridmap.config import env
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from gridmap.matter_models import (
    ATTACHMENT_KINDS,
    CLOCK_STATES,
    MATTER_SOURCES,
    MATTER_STATES,
    SUPERVISION_KINDS,
    URGENCIES,
    Matter,
    MatterAttachment,
    MatterCategory,
    MatterEvent,
    MatterRoutingRule,
    MatterSupervision,
    clock_running_sql,
)
from gridmap.queries import check_bbox, grid_at_point
from gridmap.validation import text_field
from video.registry import Filters, check_in_district
from video.registry import get as get_camera

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
log = logging.getLogger(__name__)
# Years already warned about for lacking a holiday calendar (once per process each).
_WARNED_YEARS: set[int] = set()
RATING_THRESHOLD = 3  # a rating below this reopens the matter
RATING_CHANNELS = ("citizen", "callback", "open311", "app")
DUE_SOON = timedelta(hours=4)  # a clock within this of its due time is "due soon"
CLOCK_DAYS = {"accept": 1, "finish": 2, "feedback": 3}  # the 1-2-3 rule
DUPLICATE_RADIUS_M = 50.0
DUPLICATE_DAYS = 7
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
MAX_ATTACHMENTS = 20
MAX_TITLE = 120
MAX_DESCRIPTION = 4000
MAX_ADDRESS = 200
MAX_NOTE = 2000
MAX_PAGE = 200
MAX_LAYER = 5000
CAMERA_RADIUS_M = 300.0
OPEN_STATES = ("reported", "transferred", "handling", "handled", "verified")
SOURCE_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:#/-]{0,63}$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 -]{2,18}$")
# An address a callback can go to: one @, a dot in the domain, no spaces or brackets.
EMAIL_RE = re.compile(r"^[^@\s<>()\[\],;:\"]{1,64}@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\".]{2,}$")
MAX_EMAIL = 254
REF_RE = re.compile(r"^SX[0-9]{13}$")
CODE_RE = re.compile(r"^[A-Z][A-Z0-9]{0,3}(\.[0-9A-Z]{1,4}){0,3}$")
INTAKE_FIELDS = frozenset({
    "source", "source_ref", "category", "lon", "lat", "coord_sys", "title", "description",
    "address", "urgency", "reporter_name", "reporter_phone", "reporter_email",
    "reported_by_worker",
    "reported_at", "duplicate_of",
})
# Roles: viewers only read (the web guard refuses their writes before we get here).
INTAKE_ROLES = frozenset({"operator", "patrol_lead", "grid_admin"})
STEP_ROLES = frozenset({"operator", "patrol_lead"})
COMMAND_ROLES = frozenset({"operator"})
COMMENT_ROLES = frozenset({"operator", "patrol_lead", "grid_admin"})
# Notes the system itself writes in the timeline, stored in the jurisdiction's language
# (the demo loader writes the same text). Readers get a code for them too, so a page
# shows them in its own language, old rows included (see ``system_note``).
AUTO_ROUTED_NOTE = "智能流转"
VIDEO_DISPATCH_NOTE = "视频调度 #{order}"
STATE_COLORS = {
    "reported": "#6a3d9a", "transferred": "#1f78b4", "handling": "#33a02c",
    "handled": "#b2df8a", "verified": "#a6cee3", "closed": "#999999",
}
OVERDUE_COLOR = "#e31a1c"
DUE_SOON_COLOR = "#ff7f00"

# Units a matter has been addressed to, now or before (transfers, escalations,
# reopenings), or that reported it.
_ADDRESSED_SQL = (
    "({a}.current_unit_id = :scope_unit OR {a}.handling_unit_id = :scope_unit"
    " OR EXISTS (SELECT 1 FROM matter_events se WHERE se.matter_id = {a}.id"
    " AND (se.to_unit_id = :scope_unit OR (se.action = 'report' AND se.unit_id = :scope_unit))))"
)


def scope_clause(actor: Actor, alias: str = "m") -> tuple[str, dict[str, Any]]:
    """Return the SQL condition and parameters limiting matters to the actor's jurisdiction."""
    if actor.unit_kind == "district":
        return "TRUE", {}
    addressed = _ADDRESSED_SQL.format(a=alias)
    params: dict[str, Any] = {"scope_unit": actor.unit_id}
    if actor.unit_kind == "department" or not actor.unit_code:
        return addressed, params
    params["scope_prefix"] = actor.unit_code + "%"
    return f"({alias}.grid_code LIKE :scope_prefix OR {addressed})", params


# --------------------------------------------------------------------------- state machine

# action -> (states it may start from, state it leads to; None: the state stays).
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "transfer": (frozenset({"reported", "transferred", "handling"}), "transferred"),
    "accept": (frozenset({"transferred"}), "handling"),
    "return": (frozenset({"transferred", "handling"}), "reported"),
    "escalate": (frozenset({"transferred", "handling"}), "reported"),
    "handle": (frozenset({"handling"}), "handled"),
    "verify": (frozenset({"handled"}), "verified"),
    "reject": (frozenset({"handled"}), "handling"),
    "close": (frozenset({"verified"}), "closed"),
    "rate": (frozenset({"verified", "closed"}), None),
    "reopen": (frozenset({"verified", "closed"}), "transferred"),
    "supervise": (frozenset(OPEN_STATES), None),
    "comment": (frozenset(MATTER_STATES), None),
}
ACTIONS = tuple(TRANSITIONS)
NOTE_REQUIRED = frozenset({"return", "escalate", "handle", "reject", "supervise", "comment"})


class IllegalTransition(Conflict):
    """The action is not possible from the matter's current state."""


def next_state(state: str, action: str) -> str:
    """Return the state after ``action`` from ``state``, or raise IllegalTransition."""
    if action not in TRANSITIONS:
        raise InvalidInput(f"unknown action {action!r}", allowed=list(ACTIONS))
    sources, target = TRANSITIONS[action]
    if state not in sources:
        raise IllegalTransition(
            f"cannot {action} a matter that is {state}", state=state,
            allowed=actions_from(state),
        )
    return target or state


def actions_from(state: str) -> list[str]:
    """Return the actions the state machine allows from ``state`` (ignoring who acts)."""
    return [a for a, (sources, _t) in TRANSITIONS.items() if state in sources]


def deadline_flags(row: Mapping[str, Any], now: datetime) -> dict[str, list[str]]:
    """Return which clocks of a matter are overdue or due soon at ``now`` (pure).

    Each clock runs only in its states (``CLOCK_STATES``).
    """
    state = row.get("state")
    overdue: list[str] = []
    due_soon: list[str] = []
    for clock, states in CLOCK_STATES.items():
        due = row.get(f"{clock}_due")
        if state not in states or due is None:
            continue
        if now > due:
            overdue.append(clock)
        elif due - now <= DUE_SOON:
            due_soon.append(clock)
    return {"overdue": overdue, "due_soon": due_soon}


def deadline_mode() -> str:
    """Return how deadlines count days: 'workdays' (default) or 'calendar'."""
    mode = env("MATTER_DEADLINE_MODE", workdays.DEFAULT_MODE) or workdays.DEFAULT_MODE
    return mode if mode in workdays.MODES else workdays.DEFAULT_MODE


def clock_dues(start: datetime, exceptions: Mapping[date, bool] | None = None,
               mode: str | None = None) -> dict[str, datetime]:
    """Return the accept/finish/feedback due times of clocks started at ``start`` (pure)."""
    local = start.astimezone(LOCAL_TZ)  # day boundaries are Beijing time
    chosen = mode or deadline_mode()
    return {
        f"{clock}_due": workdays.add_days(local, n, exceptions, chosen).astimezone(UTC)
        for clock, n in CLOCK_DAYS.items()
    }


# --------------------------------------------------------------------------- categories, rules


def _categories_file() -> Path:
    return Path(str(resources.files("gridmap") / "data" / "matter_categories.json"))


@lru_cache(maxsize=1)
def category_spec() -> tuple[dict[str, Any], ...]:
    """Return the flattened category tree of the packaged JSON (code, parent, names, unit)."""
    raw = json.loads(_categories_file().read_text(encoding="utf-8"))
    out: list[dict[str, Any]] = []

    def walk(nodes: Sequence[Mapping[str, Any]], parent: Mapping[str, Any] | None) -> None:
        for sort, node in enumerate(nodes):
            solvable = node.get("town_solvable", parent["town_solvable"] if parent else True)
            dept = node.get("department", parent.get("department") if parent else None)
            item = {"code": node["code"], "parent_code": parent["code"] if parent else None,
                    "name_zh": node["name_zh"], "name_en": node["name_en"],
                    "town_solvable": bool(solvable), "department": dept, "sort": sort}
            out.append(item)
            walk(node.get("children", ()), item)

    walk(raw["categories"], None)
    return tuple(out)


def ensure_categories(session: Session) -> int:
    """Seed the category tree from gridmap/data/matter_categories.json; return rows added."""
    existing = set(session.scalars(select(MatterCategory.code)))
    added = 0
    for item in category_spec():
        if item["code"] in existing:
            continue
        session.add(MatterCategory(
            code=item["code"], parent_code=item["parent_code"], name_zh=item["name_zh"],
            name_en=item["name_en"], town_solvable=item["town_solvable"], sort=item["sort"],
        ))
        session.flush()  # parents before children (the self-reference)
        added += 1
    return added


def ensure_routing_rules(session: Session) -> int:
    """Seed the default routing rules onto existing units (idempotent); return rows added.

    A category that a town cannot solve goes to its department, district-wide
    (``category_prefix`` = its code, ``area_prefix`` = ''); everything else located
    in a town goes to that town (``''`` + the town's code). The most specific rule
    wins (longest category prefix, then longest area prefix), so a department rule
    beats a town rule and a town-solvable child of a department's area gets its own
    town rules.
    """
    units_by_name = {u.name: u for u in session.scalars(select(Unit).where(Unit.active))}
    towns = [u for u in units_by_name.values() if u.kind == "town" and u.code]
    wanted: list[tuple[str, str, int, str]] = []
    spec = {c["code"]: c for c in category_spec()}
    for item in spec.values():
        parent = spec.get(item["parent_code"] or "")
        if not item["town_solvable"]:
            unit = units_by_name.get(item["department"] or "")
            same_as_parent = (parent is not None and not parent["town_solvable"]
                              and parent["department"] == item["department"])
            if unit is not None and not same_as_parent:
                wanted.append((item["code"], "", unit.id, f"部门办理：{item['name_zh']}"))
        elif parent is not None and not parent["town_solvable"]:
            # A town-solvable child of a department's category: each town's own rule.
            wanted.extend((item["code"], t.code, t.id, f"镇街办理：{item['name_zh']}")
                          for t in towns)
    wanted.extend(("", t.code, t.id, "属地镇街办理") for t in towns)
    have = {(r.category_prefix, r.area_prefix) for r in session.scalars(select(MatterRoutingRule))}
    added = 0
    for cat, area, unit_id, note in wanted:
        if (cat, area) in have:
            continue
        session.add(MatterRoutingRule(category_prefix=cat, area_prefix=area, unit_id=unit_id,
                                      note=note))
        have.add((cat, area))
        added += 1
    session.flush()
    return added


def category_tree(session: Session) -> list[dict[str, Any]]:
    """Return the active category tree: [{code, name_zh, name_en, town_solvable, children}]."""
    rows = session.scalars(
        select(MatterCategory).where(MatterCategory.active)
        .order_by(MatterCategory.sort, MatterCategory.code)
    ).all()
    nodes = {r.code: {"code": r.code, "name_zh": r.name_zh, "name_en": r.name_en,
                      "town_solvable": r.town_solvable, "children": []} for r in rows}
    roots: list[dict[str, Any]] = []
    for r in rows:
        parent = nodes.get(r.parent_code or "")
        (parent["children"] if parent else roots).append(nodes[r.code])
    return roots


def _category(session: Session, code: Any) -> MatterCategory:
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise InvalidInput("unknown category", field="category")
    cat = session.get(MatterCategory, code)
    if cat is None or not cat.active:
        raise InvalidInput("unknown category", field="category", category=code)
    return cat


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True)
class Routing:
    """Where a matter goes: its grid and town, and the responsible unit by rule."""

    grid_code: str | None
    town_code: str | None
    unit_id: int | None
    to_district: bool
    rule_id: int | None


def route_sql(cat: str = ":cat", grid: str = ":grid") -> str:
    """Return the routing-rule query for a category and grid code given as SQL expressions.

    Bound parameters by default; the demo loader passes column names to route many
    category/grid pairs in one statement with the very same rule.
    """
    return f"""
SELECT r.id, r.unit_id, r.urgent_to_district FROM matter_routing_rules r
JOIN units u ON u.id = r.unit_id AND u.active
WHERE r.active
  AND (r.category_prefix = '' OR {cat} = r.category_prefix
       OR {cat} LIKE r.category_prefix || '.%')
  AND (r.area_prefix = '' OR {grid} LIKE r.area_prefix || '%')
ORDER BY length(r.category_prefix) DESC, length(r.area_prefix) DESC, r.id
LIMIT 1
"""


ROUTE_SQL = route_sql()


def _grid_at(session: Session, lon: float, lat: float) -> str | None:
    try:
        return grid_at_point(session, lon, lat)["code"]
    except (NotFound, InvalidInput):  # outside every grid (or the district's bbox)
        return None


def route(session: Session, category_code: str, lon: float, lat: float, *,
          urgency: str = "routine") -> Routing:
    """Return the grid, town and responsible unit of a matter (most specific rule wins).

    ``to_district`` is true when no rule applies, or the matter is urgent and the
    rule sends urgent matters to the district center for triage.
    """
    _category(session, category_code)
    grid = _grid_at(session, lon, lat)
    row = session.execute(
        text(ROUTE_SQL), {"cat": category_code, "grid": grid or ""}
    ).first()
    if row is None:
        return Routing(grid, grid[:9] if grid else None, None, True, None)
    to_district = urgency == "urgent" and bool(row.urgent_to_district)
    return Routing(grid, grid[:9] if grid else None, int(row.unit_id), to_district, int(row.id))


def _district_unit(session: Session) -> Unit:
    unit = session.scalars(
        select(Unit).where(Unit.kind == "district", Unit.active).order_by(Unit.id)
    ).first()
    if unit is None:
        raise Conflict("there is no district center unit to triage matters")
    return unit


# --------------------------------------------------------------------------- validation


def _number(raw: Any, key: str) -> float:
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            raise InvalidInput(f"{key} must be a number", field=key) from None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidInput(f"{key} must be a finite number", field=key)
    return float(raw)


def _int(raw: Any, key: str) -> int:
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 12:
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw < 2**62:
        raise InvalidInput(f"{key} must be a positive integer", field=key)
    return raw


def _time(raw: Any, key: str) -> datetime:
    try:
        when = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise InvalidInput(f"{key} must be an ISO 8601 time with a time zone", field=key)
    return when


def locate(session: Session, payload: Mapping[str, Any]) -> tuple[float, float]:
    """Return the WGS-84 point of the payload, inside the district, else InvalidInput."""
    lon = _number(payload.get("lon"), "lon")
    lat = _number(payload.get("lat"), "lat")
    try:
        datum = parse_datum(payload.get("coord_sys") or "wgs84")
        if datum is not Datum.WGS84:
            from shapely.geometry import Point

            pt = to_wgs84(Point(lon, lat), datum)
            lon, lat = float(pt.x), float(pt.y)
    except CoordinateError as exc:
        raise InvalidInput(str(exc), field="coord_sys") from None
    if check_in_district(session, [(lon, lat)]):
        raise InvalidInput("the location is outside the district", field="lon",
                           lon=round(lon, 6), lat=round(lat, 6))
    return lon, lat


def _unit(session: Session, unit_id: Any) -> Unit:
    uid = _int(unit_id, "unit_id")
    unit = session.get(Unit, uid) if uid < 2**31 else None
    if unit is None or not unit.active:
        raise NotFound("no such unit", unit=uid)
    return unit


# --------------------------------------------------------------------------- intake


def _calendar(session: Session, start: datetime) -> dict[date, bool]:
    """Return the work-calendar exceptions that can matter for clocks started at ``start``."""
    first = start.astimezone(LOCAL_TZ).date()
    last = first + timedelta(days=60)
    rows = session.execute(
        text("SELECT day, workday FROM work_calendar WHERE day BETWEEN :a AND :b"),
        {"a": first, "b": last},
    )
    calendar = {r[0]: bool(r[1]) for r in rows}
    _warn_of_missing_years(session, first.year, last.year)
    return calendar


def _warn_of_missing_years(session: Session, first: int, last: int) -> None:
    """Log once per year a clock runs into that has no holiday calendar stored.

    Every year has official holidays, so a year without a single entry is one
    nobody loaded: its clocks treat every weekday as a workday.
    """
    wanted = set(range(first, last + 1)) - _WARNED_YEARS
    if not wanted:
        return
    known = set(session.execute(
        text("SELECT DISTINCT CAST(date_part('year', day) AS int) FROM work_calendar "
             "WHERE day BETWEEN make_date(:a, 1, 1) AND make_date(:b, 12, 31)"),
        {"a": min(wanted), "b": max(wanted)},
    ).scalars())
    for year in sorted(wanted - known):
        _WARNED_YEARS.add(year)
        log.warning("work_calendar has no entries for %d: deadlines in it count every weekday "
                    "as a workday; load that year's holidays with 'gridmap matters calendar "
                    "--file'", year)


def _start_clocks(session: Session, m: Matter, start: datetime) -> None:
    m.clock_started_at = start
    for key, due in clock_dues(start, _calendar(session, start)).items():
        setattr(m, key, due)


def _next_ref(session: Session, when: datetime) -> str:
    """Return the next SX + yyyymmdd + 5-digit reference of the (Beijing) day of ``when``."""
    day = when.astimezone(LOCAL_TZ).strftime("%Y%m%d")
    # One writer at a time per transaction: the sequence is max + 1 of the day.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('gridmap.matters.ref'))"))
    last = session.execute(
        text("SELECT max(ref) FROM matters WHERE ref >= :lo AND ref < :hi"),
        {"lo": f"SX{day}00000", "hi": f"SX{day}99999~"},
    ).scalar()
    seq = int(last[-5:]) + 1 if last else 1
    if seq > 99999:
        raise Conflict("the day's matter references are exhausted")
    return f"SX{day}{seq:05d}"


def _event(session: Session, m: Matter, action: str, actor: Actor | None, now: datetime, *,
           from_state: str | None, to_state: str | None, note: str = "",
           to_unit_id: int | None = None, detail: Mapping[str, Any] | None = None) -> MatterEvent:
    event = MatterEvent(
        matter_id=m.id, at=now, action=action, from_state=from_state, to_state=to_state,
        user_id=actor.user_id if actor else None, username=actor.username if actor else None,
        unit_id=actor.unit_id if actor else None, to_unit_id=to_unit_id, note=note,
        detail=dict(detail or {}),
    )
    session.add(event)
    session.flush()
    return event


def find_duplicates(session: Session, category_code: str, lon: float, lat: float, *,
                    at: datetime | None = None, radius_m: float = DUPLICATE_RADIUS_M,
                    days: int = DUPLICATE_DAYS, exclude_id: int | None = None,
                    actor: Actor | None = None) -> list[dict[str, Any]]:
    """Return matters of the same category within ``radius_m`` and ``days`` of a report.

    Runs in PostGIS: the bbox prefilter (``ST_Expand`` on the GiST index) and then
    the exact geography distance. With ``actor`` only matters in its scope are listed.
    """
    _category(session, category_code)
    lon, lat = _number(lon, "lon"), _number(lat, "lat")
    at = at or datetime.now(UTC)
    where, params = scope_clause(actor, "m") if actor is not None else ("TRUE", {})
    # Degrees of latitude per metre; longitude degrees shrink by cos(lat).
    pad = radius_m / 111_000.0 / max(math.cos(math.radians(lat)), 0.1)
    rows = session.execute(
        text(
            f"""
            SELECT m.id, m.ref, m.title, m.state, m.reported_at, m.category_code,
                   round(ST_Distance(m.geom::geography, p.pt::geography)::numeric, 1)::float
                     AS distance_m
            FROM matters m,
                 (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
            WHERE m.geom && ST_Expand(p.pt, :pad)
              AND ST_DWithin(m.geom::geography, p.pt::geography, :radius)
              AND m.category_code = :cat
              AND m.reported_at BETWEEN :since AND :until
              AND m.id IS DISTINCT FROM :exclude AND m.duplicate_of IS NULL
              AND {where}
            ORDER BY distance_m, m.reported_at DESC LIMIT 10
            """
        ),
        {**params, "lon": lon, "lat": lat, "pad": pad, "radius": radius_m,
         "cat": category_code, "since": at - timedelta(days=days),
         "until": at + timedelta(days=days), "exclude": exclude_id},
    ).mappings()
    return [dict(r) for r in rows]


def intake(session: Session, actor: Actor, payload: Mapping[str, Any], *,
           now: datetime | None = None) -> dict[str, Any]:
    """Validate and store a reported matter, route it, start its clocks; return its detail.

    Routine matters with a rule go straight to the responsible unit ('transferred');
    urgent ones (when the rule says so) and unrouted ones wait at the district
    center ('reported'). The answer carries ``duplicates``: same-category matters
    within 50 m and 7 days, as suggestions.
    """
    now = now or datetime.now(UTC)
    if actor.role not in INTAKE_ROLES:
        raise Forbidden(f"a {actor.role} may not report matters")
    if not isinstance(payload, Mapping):
        raise InvalidInput("the body must be a JSON object")
    unknown = set(payload) - INTAKE_FIELDS
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}")
    source = payload.get("source", "other")
    if source not in MATTER_SOURCES:
        raise InvalidInput(f"source is one of {', '.join(MATTER_SOURCES)}", field="source")
    source_ref = text_field(payload, "source_ref", 64) or None
    if source_ref is not None and not SOURCE_REF_RE.match(source_ref):
        raise InvalidInput("source_ref is letters, digits and _.:#/-", field="source_ref")
    category = _category(session, payload.get("category"))
    title = text_field(payload, "title", MAX_TITLE, required=True)
    description = text_field(payload, "description", MAX_DESCRIPTION)
    address = text_field(payload, "address", MAX_ADDRESS)
    urgency = payload.get("urgency") or "routine"
    if urgency not in URGENCIES:
        raise InvalidInput("urgency is routine or urgent", field="urgency")
    reporter_name = text_field(payload, "reporter_name", 40)
    reporter_phone = text_field(payload, "reporter_phone", 20)
    if reporter_phone and not PHONE_RE.match(reporter_phone):
        raise InvalidInput("reporter_phone is a phone number", field="reporter_phone")
    reporter_email = text_field(payload, "reporter_email", MAX_EMAIL)
    if reporter_email and not EMAIL_RE.match(reporter_email):
        raise InvalidInput("reporter_email is an email address", field="reporter_email")
    lon, lat = locate(session, payload)
    worker = None
    if payload.get("reported_by_worker") is not None:
        worker = _int(payload["reported_by_worker"], "reported_by_worker")
        # Only a worker of a grid in the caller's own area: ids are sequential, and
        # the answer names the worker (a team outside the area is not the caller's
        # to see, nor to credit with the report).
        if worker >= 2**31 or session.execute(
            text("SELECT 1 FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
                 "WHERE w.id = :w AND w.left_at IS NULL AND g.code LIKE :prefix || '%'"),
            {"w": worker, "prefix": actor.area_prefix},
        ).first() is None:
            raise InvalidInput("no such grid worker in a current team of your area",
                               field="reported_by_worker")
    reported_at = now
    if payload.get("reported_at") is not None:
        reported_at = _time(payload["reported_at"], "reported_at")
        if reported_at > now + timedelta(minutes=5) or reported_at < now - timedelta(days=3 * 366):
            raise InvalidInput("reported_at must lie within the last three years",
                               field="reported_at")
    duplicate_of = None
    if payload.get("duplicate_of") is not None:
        duplicate_of = _load(session, actor, _int(payload["duplicate_of"], "duplicate_of")).id
    if source_ref is not None and session.execute(
        text("SELECT 1 FROM matters WHERE source = :s AND source_ref = :r"),
        {"s": source, "r": source_ref},
    ).first() is not None:
        raise Conflict("a matter with this source reference exists", source=source,
                       source_ref=source_ref)
    routing = route(session, category.code, lon, lat, urgency=urgency)
    district = _district_unit(session)
    duplicates = find_duplicates(session, category.code, lon, lat, at=reported_at, actor=actor)

    m = Matter(
        ref=_next_ref(session, reported_at), source=source, source_ref=source_ref,
        category_code=category.code, title=title, description=description, address=address,
        geom=f"SRID=4326;POINT({lon!r} {lat!r})", urgency=urgency, state="reported",
        current_unit_id=district.id, reporter_name=reporter_name,
        reporter_phone=reporter_phone, reporter_email=reporter_email,
        reported_by_user=actor.user_id,
        reported_by_worker=worker, duplicate_of=duplicate_of, reported_at=reported_at,
    )
    try:
        with session.begin_nested():
            session.add(m)
            session.flush()
    except IntegrityError:  # a concurrent intake of the same ticket won the race
        raise Conflict("a matter with this source reference exists", source=source,
                       source_ref=source_ref) from None
    session.refresh(m, ["grid_code"])
    _event(session, m, "report", actor, reported_at, from_state=None, to_state="reported",
           detail={"source": source, "urgency": urgency, "suggested_unit": routing.unit_id,
                   "rule": routing.rule_id, "duplicates": [d["id"] for d in duplicates][:10]})
    if not routing.to_district and routing.unit_id is not None:
        m.state = "transferred"
        m.current_unit_id = m.handling_unit_id = routing.unit_id
        _start_clocks(session, m, reported_at)
        _event(session, m, "transfer", None, reported_at, from_state="reported",
               to_state="transferred", to_unit_id=routing.unit_id, note=AUTO_ROUTED_NOTE,
               detail={"rule": routing.rule_id, "auto": True})
    session.flush()
    record_audit(session, "matter.report", actor=actor, target=f"matter:{m.ref}",
                 detail={"source": source, "category": category.code, "state": m.state,
                         "unit": m.current_unit_id, "grid": m.grid_code})
    detail = _detail(session, actor, m, now=now, check_scope=False)
    detail["duplicates"] = duplicates
    return detail


# --------------------------------------------------------------------------- loading, detail


def _load(session: Session, actor: Actor, matter_id: Any, *, lock: bool = False) -> Matter:
    """Return a matter within the actor's scope (locked if asked), else NotFound."""
    if isinstance(matter_id, bool) or not isinstance(matter_id, int) or not 0 < matter_id < 2**62:
        raise NotFound("no such matter")
    where, params = scope_clause(actor, "m")
    visible = session.execute(
        text(f"SELECT m.id FROM matters m WHERE m.id = :id AND {where}"),
        {**params, "id": matter_id},
    ).first()
    if visible is None:
        raise NotFound("no such matter", matter=matter_id)
    stmt = select(Matter).where(Matter.id == matter_id)
    matter = session.scalars(stmt.with_for_update() if lock else stmt).one()
    if lock:
        session.refresh(matter)
    return matter


def matter_by_ref(session: Session, actor: Actor, ref: str) -> int:
    """Return the id of a matter by its SX reference within the actor's scope."""
    if not isinstance(ref, str) or not REF_RE.match(ref):
        raise NotFound("no such matter", ref=str(ref)[:20])
    where, params = scope_clause(actor, "m")
    found = session.execute(
        text(f"SELECT m.id FROM matters m WHERE m.ref = :ref AND {where}"),
        {**params, "ref": ref},
    ).scalar()
    if found is None:
        raise NotFound("no such matter", ref=ref)
    return int(found)


def _addressed_units(session: Session, m: Matter) -> set[int]:
    ids = {u for u in (m.current_unit_id, m.handling_unit_id) if u is not None}
    ids.update(session.execute(
        text("SELECT DISTINCT to_unit_id FROM matter_events "
             "WHERE matter_id = :m AND to_unit_id IS NOT NULL"),
        {"m": m.id},
    ).scalars())
    return ids


def may_see_contact(session: Session, actor: Actor, m: Matter) -> bool:
    """Return whether the actor may see the reporter's contact (handling units, district)."""
    if actor.unit_kind == "district":
        return True
    return actor.unit_id in _addressed_units(session, m)


def _reporter(session: Session, m: Matter) -> tuple[int | None, str | None]:
    row = session.execute(
        text("SELECT unit_id, username FROM matter_events WHERE matter_id = :m "
             "AND action = 'report' ORDER BY at, id LIMIT 1"),
        {"m": m.id},
    ).first()
    return (row[0], row[1]) if row else (None, None)


def _last_transferrer(session: Session, m: Matter) -> int | None:
    """Return the unit that made the latest manual transfer (None for smart routing).

    A reopen counts only where its maker chose the unit (the district's, or a
    rating that names one). A low rating that sends the matter back to the unit
    that handled it leaves the verifier as it was: the rater is the party the
    redo must satisfy, not its judge.
    """
    return session.execute(
        text("SELECT unit_id FROM matter_events WHERE matter_id = :m "
             "AND (action = 'transfer' OR (action = 'reopen' "
             "AND (detail ? 'manual' OR detail ? 'unit_chosen'))) "
             "ORDER BY at DESC, id DESC LIMIT 1"),
        {"m": m.id},
    ).scalar()


def _can_verify(session: Session, actor: Actor, m: Matter) -> bool:
    if actor.role not in COMMAND_ROLES:
        return False
    if actor.unit_kind == "district":
        return True
    by = _last_transferrer(session, m)
    return by is not None and by == actor.unit_id and by != m.handling_unit_id


def _can_rate(session: Session, actor: Actor, m: Matter) -> bool:
    unit, username = _reporter(session, m)
    if actor.username.startswith("open311:"):
        # An outside client rates only what it filed itself, whatever unit it acts for.
        return actor.username == username and actor.unit_id != m.handling_unit_id
    if actor.unit_kind == "district" and actor.role in COMMAND_ROLES:
        return True
    if unit is None or unit != actor.unit_id or actor.unit_id == m.handling_unit_id:
        return False
    if (username or "").startswith("open311:"):
        return False
    return actor.role in COMMAND_ROLES


def _party_ok(session: Session, actor: Actor, m: Matter, action: str) -> bool:
    """Return whether the actor is the party who may take ``action`` on ``m`` now."""
    holds = actor.unit_id == m.current_unit_id
    district = actor.unit_kind == "district"
    if action == "transfer":
        return actor.role in COMMAND_ROLES and (
            district or (holds and actor.unit_kind == "town"))
    if action in ("accept", "handle"):
        return holds and actor.role in STEP_ROLES
    if action in ("return", "escalate"):
        return holds and not district and actor.role in STEP_ROLES
    if action in ("verify", "reject", "close"):
        return _can_verify(session, actor, m)
    if action == "rate":
        return _can_rate(session, actor, m)
    if action in ("reopen", "supervise"):
        return district and actor.role in COMMAND_ROLES
    if action == "comment":
        return actor.role in COMMENT_ROLES
    return False


def allowed_actions(session: Session, actor: Actor, m: Matter) -> list[str]:
    """Return the actions this actor may take on the matter in its current state."""
    out = []
    for action in actions_from(m.state):
        if action == "rate" and m.rated_at is not None and m.verified_at is not None \
                and m.rated_at >= m.verified_at:
            continue
        if _party_ok(session, actor, m, action):
            out.append(action)
    return out


SUMMARY_SQL = """
SELECT m.id, m.ref, m.source, m.title, m.state, m.urgency, m.grid_code,
       left(m.grid_code, 12) AS community_code, left(m.grid_code, 9) AS town_code,
       m.category_code, c.name_zh AS category_zh, c.name_en AS category_en,
       m.current_unit_id, cu.name AS current_unit, m.handling_unit_id, hu.name AS handling_unit,
       m.reported_at, m.accept_due, m.finish_due, m.feedback_due, m.rating, m.redo_count,
       m.escalated, m.version, m.address,
       round(ST_X(m.geom)::numeric, 6)::float AS lon, round(ST_Y(m.geom)::numeric, 6)::float AS lat
FROM matters m
JOIN matter_categories c ON c.code = m.category_code
LEFT JOIN units cu ON cu.id = m.current_unit_id
LEFT JOIN units hu ON hu.id = m.handling_unit_id
"""


def _summary(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "id": row["id"], "ref": row["ref"], "source": row["source"], "title": row["title"],
        "state": row["state"], "urgency": row["urgency"], "grid_code": row["grid_code"],
        "community_code": row["community_code"], "town_code": row["town_code"],
        "category": {"code": row["category_code"], "name_zh": row["category_zh"],
                     "name_en": row["category_en"]},
        "current_unit": ({"id": row["current_unit_id"], "name": row["current_unit"]}
                         if row["current_unit_id"] else None),
        "handling_unit": ({"id": row["handling_unit_id"], "name": row["handling_unit"]}
                          if row["handling_unit_id"] else None),
        "address": row["address"], "lon": row["lon"], "lat": row["lat"],
        "reported_at": row["reported_at"],
        "deadlines": {k: row[k] for k in ("accept_due", "finish_due", "feedback_due")},
        "flags": deadline_flags(row, now), "rating": row["rating"],
        "redo_count": row["redo_count"], "escalated": row["escalated"],
        "version": row["version"],
    }


def _detail(session: Session, actor: Actor, m: Matter, *, now: datetime | None = None,
            check_scope: bool = True) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    if check_scope:
        m = _load(session, actor, m.id)
    row = session.execute(text(SUMMARY_SQL + " WHERE m.id = :id"), {"id": m.id}).mappings().one()
    out = _summary(row, now)
    out.update(source_ref=m.source_ref, description=m.description,
               accepted_at=m.accepted_at, handled_at=m.handled_at, verified_at=m.verified_at,
               closed_at=m.closed_at, rated_at=m.rated_at, duplicate_of=m.duplicate_of,
               clock_started_at=m.clock_started_at)
    if may_see_contact(session, actor, m):
        out["reporter"] = {"name": m.reporter_name, "phone": m.reporter_phone,
                           "email": m.reporter_email}
    if m.reported_by_worker is not None:
        # Staff, not the public: whoever sees the matter sees which grid worker found it.
        worker = session.execute(text(
            "SELECT w.id, w.role, w.name, g.code AS grid_code, w.left_at IS NOT NULL AS left "
            "FROM grid_workers w JOIN grids g ON g.id = w.grid_id WHERE w.id = :w"),
            {"w": m.reported_by_worker}).mappings().first()
        out["reported_by_worker"] = dict(worker) if worker else None
    out["events"] = [_event_out(r) for r in session.execute(
        text("SELECT e.at, e.action, e.from_state, e.to_state, e.username, u.name AS unit, "
             "tu.name AS to_unit, e.note, e.user_id, e.detail FROM matter_events e "
             "LEFT JOIN units u ON u.id = e.unit_id LEFT JOIN units tu ON tu.id = e.to_unit_id "
             "WHERE e.matter_id = :m ORDER BY e.at, e.id"),
        {"m": m.id},
    ).mappings()]
    out["attachments"] = [dict(r) for r in session.execute(
        text("SELECT a.id, a.kind, a.filename, a.content_type, a.size, c.gb_id AS camera_id, "
             "a.created_at FROM matter_attachments a LEFT JOIN cameras c ON c.id = a.camera_id "
             "WHERE a.matter_id = :m ORDER BY a.id"),
        {"m": m.id},
    ).mappings()]
    out["supervisions"] = [dict(r) for r in session.execute(
        text("SELECT s.id, s.kind, s.at, bu.name AS by_unit, tu.name AS to_unit, s.note, "
             "s.respond_by FROM matter_supervisions s LEFT JOIN units bu ON bu.id = s.by_unit_id "
             "LEFT JOIN units tu ON tu.id = s.to_unit_id WHERE s.matter_id = :m ORDER BY s.at, s.id"),
        {"m": m.id},
    ).mappings()]
    out["allowed_actions"] = allowed_actions(session, actor, m)
    return out


def system_note(action: str, user_id: int | None, note: str | None,
                detail: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return ``{"code": ..., args}`` when the system wrote an event's note, else None.

    The stored note stays as written (in Chinese); a page shows the code's text in its
    reader's language instead, for rows written before the code existed too.
    """
    if action == "transfer" and user_id is None and note == AUTO_ROUTED_NOTE:
        return {"code": "auto_routed"}
    order = (detail or {}).get("dispatch_order")
    if action == "comment" and order is not None and note == VIDEO_DISPATCH_NOTE.format(order=order):
        return {"code": "video_dispatch", "order": order}
    return None


def _event_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return a timeline event as the detail answers it (who, when, steps, note)."""
    out = {k: row[k] for k in ("at", "action", "from_state", "to_state", "username", "unit",
                               "to_unit", "note")}
    out["system_note"] = system_note(row["action"], row["user_id"], row["note"], row["detail"])
    return out


def matter_detail(session: Session, actor: Actor, matter_id: int, *,
                  now: datetime | None = None) -> dict[str, Any]:
    """Return a matter with its history, attachments and allowed actions (NotFound if out of scope)."""
    return _detail(session, actor, _load(session, actor, matter_id), now=now, check_scope=False)


def clocks_past_sql(bound: str, alias: str = "m") -> str:
    """Return SQL true when any running clock's due time is before ``:bound``."""
    return "(" + " OR ".join(
        f"({clock_running_sql(clock, alias)} AND {alias}.{clock}_due < :{bound})"
        for clock in CLOCK_STATES
    ) + ")"


OVERDUE_SQL = clocks_past_sql("now")


def _filters(actor: Actor, *, state: str | None, overdue: bool | None, category: str | None,
             area: str | None, unit_id: int | None, q: str | None,
             bbox: Sequence[float] | None, now: datetime) -> tuple[str, dict[str, Any]]:
    where, params = scope_clause(actor, "m")
    parts = [where]
    params = {**params, "now": now}
    if state:
        if state == "open":
            parts.append("m.state <> 'closed'")
        elif state in MATTER_STATES:
            parts.append("m.state = :f_state")
            params["f_state"] = state
        else:
            raise InvalidInput("state is open or one of " + ", ".join(MATTER_STATES))
    if overdue is not None:
        parts.append(OVERDUE_SQL if overdue else f"NOT {OVERDUE_SQL}")
    if category:
        if not CODE_RE.match(category):
            raise InvalidInput("unknown category", field="category")
        parts.append("(m.category_code = :f_cat OR m.category_code LIKE :f_cat_children)")
        params.update(f_cat=category, f_cat_children=category + ".%")
    if area:
        if not (area.isascii() and area.isdigit() and len(area) <= 15):
            raise InvalidInput("area is a code prefix of up to 15 digits", field="area")
        parts.append("m.grid_code LIKE :f_area")
        params["f_area"] = area + "%"
    if unit_id is not None:
        parts.append("(m.current_unit_id = :f_unit OR m.handling_unit_id = :f_unit)")
        params["f_unit"] = unit_id
    if q:
        if len(q) > 60:
            raise InvalidInput("q has at most 60 characters", field="q")
        parts.append("(m.title ILIKE :f_q OR m.address ILIKE :f_q OR m.ref LIKE :f_qref)")
        escaped = q.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        params.update(f_q=f"%{escaped}%", f_qref=escaped + "%")
    if bbox is not None:
        w, s, e, n = bbox
        check_bbox(w, s, e, n)
        parts.append("m.geom && ST_MakeEnvelope(:f_w, :f_s, :f_e, :f_n, 4326)")
        params.update(f_w=w, f_s=s, f_e=e, f_n=n)
    return " AND ".join(parts), params


def list_matters(session: Session, actor: Actor, *, state: str | None = None,
                 overdue: bool | None = None, category: str | None = None,
                 area: str | None = None, unit_id: int | None = None, q: str | None = None,
                 bbox: Sequence[float] | None = None, limit: int = 50, offset: int = 0,
                 now: datetime | None = None) -> dict[str, Any]:
    """Return one page of the matters the actor may see, newest first, with the total."""
    now = now or datetime.now(UTC)
    if not 0 < limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be within 1–{MAX_PAGE}")
    if offset < 0:
        raise InvalidInput("offset must be ≥ 0")
    where, params = _filters(actor, state=state, overdue=overdue, category=category, area=area,
                             unit_id=unit_id, q=q, bbox=bbox, now=now)
    total = session.execute(text(f"SELECT count(*) FROM matters m WHERE {where}"),
                            params).scalar_one()
    rows = session.execute(
        text(SUMMARY_SQL + f" WHERE {where} ORDER BY m.reported_at DESC, m.id DESC "
             "OFFSET :offset LIMIT :limit"),
        {**params, "offset": offset, "limit": limit},
    ).mappings()
    return {"total": total, "items": [_summary(r, now) for r in rows]}


def matters_geojson(session: Session, actor: Actor, *, bbox: Sequence[float] | None = None,
                    overdue: bool | None = None, limit: int = MAX_LAYER,
                    now: datetime | None = None) -> dict[str, Any]:
    """Return the open matters the actor may see as a FeatureCollection (colour by state/overdue)."""
    now = now or datetime.now(UTC)
    where, params = _filters(actor, state="open", overdue=overdue, category=None, area=None,
                             unit_id=None, q=None, bbox=bbox, now=now)
    rows = session.execute(
        text(SUMMARY_SQL + f" WHERE {where} ORDER BY m.reported_at DESC LIMIT :limit"),
        {**params, "limit": limit},
    ).mappings()
    features = []
    for r in rows:
        flags = deadline_flags(r, now)
        color = (OVERDUE_COLOR if flags["overdue"] else DUE_SOON_COLOR if flags["due_soon"]
                 else STATE_COLORS.get(r["state"], "#1f78b4"))
        features.append({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
            "properties": {"id": r["id"], "ref": r["ref"], "title": r["title"],
                           "state": r["state"], "urgency": r["urgency"],
                           "category": r["category_code"], "grid_code": r["grid_code"],
                           "overdue": flags["overdue"], "due_soon": flags["due_soon"],
                           "color": color, "url": f"/matters/{r['id']}"},
        })
    return {"type": "FeatureCollection", "features": features}


def grid_matters(session: Session, actor: Actor, code: str, *, limit: int = 20,
                 now: datetime | None = None) -> dict[str, Any]:
    """Return a grid's open matters for the map wall's grid panel ({title, time, status})."""
    now = now or datetime.now(UTC)
    page = list_matters(session, actor, state="open", area=code, limit=limit, now=now)
    items = []
    for item in page["items"]:
        flags = item["flags"]
        status = ("overdue" if flags["overdue"] else "due_soon" if flags["due_soon"]
                  else item["state"])
        items.append({"id": item["id"], "ref": item["ref"], "title": item["title"],
                      "time": item["reported_at"], "status": status, "state": item["state"],
                      "url": f"/matters/{item['id']}"})
    return {"total": page["total"], "items": items}


# --------------------------------------------------------------------------- the steps


# What each step's body may carry besides note and version. An unknown key is
# refused: a client that misspells "version" would otherwise lose its check.
ACTION_FIELDS: dict[str, frozenset[str]] = {
    "transfer": frozenset({"unit_id"}),
    "reopen": frozenset({"unit_id"}),
    "rate": frozenset({"rating", "by", "unit_id"}),
    "supervise": frozenset({"kind", "respond_by"}),
}


def _check_fields(action: str, payload: Mapping[str, Any]) -> None:
    allowed = ACTION_FIELDS.get(action, frozenset()) | {"note", "version"}
    unknown = sorted(str(k) for k in set(payload) - allowed)
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0][:40]!r}", allowed=sorted(allowed))


def _note(payload: Mapping[str, Any], action: str) -> str:
    return text_field(payload, "note", MAX_NOTE, required=action in NOTE_REQUIRED)


def _check_version(m: Matter, payload: Mapping[str, Any]) -> None:
    if payload.get("version") is None:
        return
    version = payload["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidInput("version must be an integer", field="version")
    if version != m.version:
        raise Conflict("the matter has changed since you loaded it", version=m.version,
                       state=m.state)


def _transfer_target(session: Session, actor: Actor, m: Matter, raw: Any) -> Unit:
    unit = _unit(session, raw)
    if unit.tier == 1:
        raise InvalidInput("the district center triages; transfer to a handling unit",
                           field="unit_id")
    if actor.unit_kind != "district" and not can_address(actor, unit, "dispatch"):
        raise Forbidden(f"your unit may not transfer matters to {unit.name}")
    if unit.id == m.current_unit_id and m.state in ("transferred", "handling"):
        raise Conflict("the matter is already with that unit", unit=unit.id)
    return unit


def _reopen(session: Session, actor: Actor, m: Matter, unit: Unit, now: datetime,
            note: str, detail: Mapping[str, Any]) -> None:
    before = m.state
    m.state = "transferred"
    m.current_unit_id = m.handling_unit_id = unit.id
    m.redo_count += 1
    m.accepted_at = m.handled_at = m.verified_at = m.closed_at = None
    _start_clocks(session, m, now)
    _event(session, m, "reopen", actor, now, from_state=before, to_state="transferred",
           to_unit_id=unit.id, note=note, detail=detail)


def apply_action(session: Session, actor: Actor, matter_id: int, action: str,
                 payload: Mapping[str, Any] | None = None, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """Take one step of the state machine; return the matter's detail afterwards.

    Illegal transitions are Conflict (with the allowed actions), a step the actor is
    not the party for is Forbidden, a matter outside the scope is NotFound, and a
    stale ``version`` is Conflict with the current one. Nothing changes on error.
    """
    now = now or datetime.now(UTC)
    payload = payload if payload is not None else {}
    if not isinstance(payload, Mapping):
        raise InvalidInput("the body must be a JSON object")
    if action not in TRANSITIONS:
        raise InvalidInput(f"unknown action {action!r}", allowed=list(ACTIONS))
    _check_fields(action, payload)
    m = _load(session, actor, matter_id, lock=True)
    _check_version(m, payload)
    before = m.state
    if before not in TRANSITIONS[action][0]:
        # What this actor could do instead, so the UI can offer it.
        raise IllegalTransition(f"cannot {action} a matter that is {before}", state=before,
                                allowed=allowed_actions(session, actor, m))
    after = next_state(before, action)
    if not _party_ok(session, actor, m, action):
        raise Forbidden(f"your unit or role may not {action} this matter",
                        allowed=allowed_actions(session, actor, m))
    note = _note(payload, action)
    audit: dict[str, Any] = {"from": before}
    if action == "transfer":
        unit = _transfer_target(session, actor, m, payload.get("unit_id"))
        m.state = after
        m.current_unit_id = m.handling_unit_id = unit.id
        m.accepted_at = m.handled_at = None
        _start_clocks(session, m, now)
        _event(session, m, action, actor, now, from_state=before, to_state=after,
               to_unit_id=unit.id, note=note)
        audit["unit"] = unit.id
    elif action == "accept":
        m.state, m.accepted_at = after, now
        _event(session, m, action, actor, now, from_state=before, to_state=after, note=note)
    elif action in ("return", "escalate"):
        district = _district_unit(session)
        m.state, m.current_unit_id = after, district.id
        if action == "escalate":
            m.escalated = True
        _event(session, m, action, actor, now, from_state=before, to_state=after,
               to_unit_id=district.id, note=note)
    elif action == "handle":
        m.state, m.handled_at = after, now
        _event(session, m, action, actor, now, from_state=before, to_state=after, note=note)
    elif action == "verify":
        m.state, m.verified_at = after, now
        _event(session, m, action, actor, now, from_state=before, to_state=after, note=note)
    elif action == "reject":
        # Verification failed: the handler redoes it, on fresh clocks.
        m.state, m.handled_at = after, None
        m.redo_count += 1
        _start_clocks(session, m, now)
        _event(session, m, action, actor, now, from_state=before, to_state=after, note=note,
               to_unit_id=m.handling_unit_id)
    elif action == "close":
        m.state, m.closed_at = after, now
        _event(session, m, action, actor, now, from_state=before, to_state=after, note=note)
    elif action == "rate":
        _rate(session, actor, m, payload, note, now, audit)
    elif action == "reopen":
        unit = (_transfer_target(session, actor, m, payload["unit_id"])
                if payload.get("unit_id") is not None else _handling_unit(session, m))
        _reopen(session, actor, m, unit, now, note, {"manual": True})
        audit["unit"] = unit.id
    elif action == "supervise":
        _supervise(session, actor, m, payload, note, now)
        audit["kind"] = payload.get("kind")
    else:  # comment
        _event(session, m, action, actor, now, from_state=before, to_state=before, note=note)
    m.version += 1
    m.updated_at = now
    session.flush()
    audit["to"] = m.state
    record_audit(session, f"matter.{action}", actor=actor, target=f"matter:{m.ref}",
                 detail=audit)
    return _detail(session, actor, m, now=now, check_scope=False)


def _handling_unit(session: Session, m: Matter) -> Unit:
    unit = session.get(Unit, m.handling_unit_id) if m.handling_unit_id else None
    if unit is None or not unit.active or unit.tier == 1:
        raise InvalidInput("the matter has no handling unit to reopen to; name unit_id",
                           field="unit_id")
    return unit


def _rate(session: Session, actor: Actor, m: Matter, payload: Mapping[str, Any], note: str,
          now: datetime, audit: dict[str, Any]) -> None:
    rating = payload.get("rating")
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidInput("rating is an integer from 1 to 5", field="rating")
    channel = payload.get("by") or "citizen"
    if channel not in RATING_CHANNELS:
        raise InvalidInput(f"by is one of {', '.join(RATING_CHANNELS)}", field="by")
    if m.rated_at is not None and m.verified_at is not None and m.rated_at >= m.verified_at:
        raise Conflict("this result has been rated already", rating=m.rating)
    reopen_to = None
    if rating < RATING_THRESHOLD:
        reopen_to = (_transfer_target(session, actor, m, payload["unit_id"])
                     if payload.get("unit_id") is not None else _handling_unit(session, m))
    m.rating, m.rated_at = rating, now
    _event(session, m, "rate", actor, now, from_state=m.state, to_state=m.state, note=note,
           detail={"rating": rating, "by": channel})
    audit.update(rating=rating, by=channel)
    if reopen_to is not None:
        # Unsatisfied: back to the same (or a chosen) unit for redoing, history kept.
        detail: dict[str, Any] = {"rating": rating, "threshold": RATING_THRESHOLD}
        if payload.get("unit_id") is not None:
            detail["unit_chosen"] = True
        _reopen(session, actor, m, reopen_to, now, note, detail)
        audit["reopened_to"] = reopen_to.id


def _supervise(session: Session, actor: Actor, m: Matter, payload: Mapping[str, Any],
               note: str, now: datetime) -> None:
    kind = payload.get("kind")
    if kind not in SUPERVISION_KINDS:
        raise InvalidInput(f"kind is one of {', '.join(SUPERVISION_KINDS)}", field="kind")
    respond_by = None
    if payload.get("respond_by") is not None:
        respond_by = _time(payload["respond_by"], "respond_by")
        if respond_by <= now:
            raise InvalidInput("respond_by must be in the future", field="respond_by")
        if respond_by > now + timedelta(days=366):
            raise InvalidInput("respond_by must lie within a year", field="respond_by")
    sup = MatterSupervision(matter_id=m.id, kind=kind, at=now, by_unit_id=actor.unit_id,
                            by_user_id=actor.user_id, to_unit_id=m.current_unit_id, note=note,
                            respond_by=respond_by)
    session.add(sup)
    if kind == "escalated":
        m.escalated = True
    session.flush()
    _event(session, m, "supervise", actor, now, from_state=m.state, to_state=m.state,
           note=note, to_unit_id=m.current_unit_id, detail={"kind": kind, "supervision": sup.id})


def transfer_units(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """Return the units the actor may transfer matters to (for the step form)."""
    if actor.role not in COMMAND_ROLES:
        return []
    units = session.scalars(
        select(Unit).where(Unit.active, Unit.tier > 1).order_by(Unit.tier, Unit.code, Unit.name)
    ).all()
    if actor.unit_kind != "district":
        units = [u for u in units if can_address(actor, u, "dispatch")]
    return [{"id": u.id, "name": u.name, "kind": u.kind, "tier": u.tier, "code": u.code}
            for u in units]


# --------------------------------------------------------------------------- attachments

_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"%PDF-", "application/pdf", ".pdf"),
)


def sniff(data: bytes) -> str | None:
    """Return the content type recognised from the bytes (JPEG, PNG, WebP, PDF), else None."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, content_type, _ext in _MAGIC:
        if data.startswith(magic):
            return content_type
    return None


def _clean_filename(name: Any, content_type: str) -> str:
    raw = name if isinstance(name, str) else ""
    base = raw.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*')[:100].strip()
    return base or {"image/jpeg": "photo.jpg", "image/png": "photo.png",
                    "image/webp": "photo.webp"}.get(content_type, "document.pdf")


def add_attachment(session: Session, actor: Actor, matter_id: int, *, kind: str,
                   filename: str, content_type: str | None, data: bytes,
                   camera_id: int | None = None) -> dict[str, Any]:
    """Attach a photo, snapshot (JPEG/PNG/WebP) or PDF document, checked by its bytes.

    The declared content type is not trusted: the stored type is the sniffed one,
    and a declared type that disagrees is refused.
    """
    if actor.role not in COMMENT_ROLES:
        raise Forbidden(f"a {actor.role} may not attach files")
    if kind not in ATTACHMENT_KINDS:
        raise InvalidInput(f"kind is one of {', '.join(ATTACHMENT_KINDS)}", field="kind")
    if not isinstance(data, bytes | bytearray) or not data:
        raise InvalidInput("the file is empty", field="file")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise PayloadTooLarge(f"an attachment has at most {MAX_ATTACHMENT_BYTES // 2**20} MB",
                              size=len(data))
    sniffed = sniff(bytes(data[:16]))
    allowed = ("application/pdf",) if kind == "document" else ()
    if sniffed is None or (sniffed == "application/pdf" and sniffed not in allowed):
        raise InvalidInput("only JPEG, PNG or WebP images (or PDF documents) are accepted",
                           field="file")
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared and declared not in ("application/octet-stream", sniffed):
        raise InvalidInput("the file's content does not match its declared type",
                           field="file", declared=declared[:60], found=sniffed)
    m = _load(session, actor, matter_id, lock=True)
    count = session.execute(text("SELECT count(*) FROM matter_attachments WHERE matter_id = :m"),
                            {"m": m.id}).scalar_one()
    if count >= MAX_ATTACHMENTS:
        raise PayloadTooLarge(f"a matter has at most {MAX_ATTACHMENTS} attachments")
    now = datetime.now(UTC)
    name = _clean_filename(filename, sniffed)
    event = _event(session, m, "attach", actor, now, from_state=m.state, to_state=m.state,
                   detail={"kind": kind, "filename": name, "size": len(data)})
    att = MatterAttachment(matter_id=m.id, event_id=event.id, kind=kind, filename=name,
                           content_type=sniffed, size=len(data),
                           sha256=hashlib.sha256(data).hexdigest(), data=bytes(data),
                           camera_id=camera_id, created_by=actor.user_id)
    session.add(att)
    m.version += 1
    session.flush()
    record_audit(session, "matter.attach", actor=actor, target=f"matter:{m.ref}",
                 detail={"attachment": att.id, "kind": kind, "size": len(data)})
    return {"id": att.id, "kind": kind, "filename": name, "content_type": sniffed,
            "size": len(data), "camera_id": camera_id, "created_at": att.created_at}


def attach_snapshot(session: Session, actor: Actor, matter_id: int, gb_id: str, *,
                    snapshot_dir: Path | None = None) -> dict[str, Any]:
    """Attach the latest sampled snapshot of a camera the actor can see."""
    from video.sampler import SamplerConfig, snapshot_paths

    if not isinstance(gb_id, str) or not re.fullmatch(r"[0-9]{20}", gb_id):
        raise InvalidInput("camera_id is a 20-digit GB/T 28181 ID", field="camera_id")
    _load(session, actor, matter_id)
    get_camera(session, gb_id, scope=actor.scope)  # NotFound outside the scope
    camera = session.execute(text("SELECT id FROM cameras WHERE gb_id = :g"),
                             {"g": gb_id}).scalar_one()
    root = snapshot_dir or SamplerConfig().snapshots()
    latest, _thumb = snapshot_paths(root, gb_id)
    try:
        data = latest.read_bytes()
    except OSError:
        raise NotFound("this camera has no snapshot yet", gb_id=gb_id) from None
    stamp = datetime.now(LOCAL_TZ).strftime("%Y%m%d-%H%M%S")
    return add_attachment(session, actor, matter_id, kind="snapshot",
                          filename=f"{gb_id}-{stamp}.jpg", content_type=None, data=data,
                          camera_id=camera)


def attachment_bytes(session: Session, actor: Actor, matter_id: int,
                     attachment_id: int) -> tuple[str, str, bytes]:
    """Return (content type, filename, bytes) of an attachment of a matter in scope."""
    m = _load(session, actor, matter_id)
    if isinstance(attachment_id, bool) or not isinstance(attachment_id, int) \
            or not 0 < attachment_id < 2**62:
        raise NotFound("no such attachment")
    row = session.execute(
        text("SELECT content_type, filename, data FROM matter_attachments "
             "WHERE id = :a AND matter_id = :m"),
        {"a": attachment_id, "m": m.id},
    ).first()
    if row is None:
        raise NotFound("no such attachment", attachment=attachment_id)
    return row[0], row[1], bytes(row[2])


# --------------------------------------------------------------------------- video link


CAMERAS_SQL = """
SELECT c.id, c.gb_id, c.name, c.status, c.source, c.department, c.grid_code, c.heading, c.fov,
       round(ST_X(c.geom)::numeric, 6)::float AS lon, round(ST_Y(c.geom)::numeric, 6)::float AS lat,
       round(ST_Distance(c.geom::geography, p.pt::geography)::numeric, 1)::float AS distance_m,
       c.last_sample_at, c.snapshot_at
FROM cameras c, (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt) p
WHERE c.view_sector && p.pt AND ST_Intersects(c.view_sector, p.pt)
  AND ST_DWithin(c.geom::geography, p.pt::geography, :radius) {where}
ORDER BY (c.status = 'online') DESC, distance_m, c.gb_id
LIMIT :limit
"""


def _cameras_at(session: Session, actor: Actor, lon: float, lat: float, *, limit: int,
                radius_m: float, own_only: bool = False) -> list[dict[str, Any]]:
    if not 0 < limit <= 50:
        raise InvalidInput("limit must be within 1–50")
    if not 0 < radius_m <= 2000:
        raise InvalidInput("radius must be within (0, 2000] m")
    where, params = Filters(scope=actor.scope.own() if own_only else actor.scope).sql()
    rows = session.execute(
        text(CAMERAS_SQL.format(where=where)),
        {**params, "lon": lon, "lat": lat, "radius": radius_m, "limit": limit},
    ).mappings()
    return [dict(r) for r in rows]


def _matter_point(session: Session, m: Matter) -> tuple[float, float]:
    return session.execute(
        text("SELECT ST_X(geom), ST_Y(geom) FROM matters WHERE id = :m"), {"m": m.id}
    ).one()


def cameras_for_matter(session: Session, actor: Actor, matter_id: int, *, limit: int = 12,
                       radius_m: float = CAMERA_RADIUS_M) -> list[dict[str, Any]]:
    """Return the cameras in the actor's scope whose view sector covers the matter's spot."""
    lon, lat = _matter_point(session, _load(session, actor, matter_id))
    items = _cameras_at(session, actor, lon, lat, limit=limit, radius_m=radius_m)
    for item in items:
        item.pop("id", None)
        item["snapshot_url"] = f"/api/cameras/{item['gb_id']}/snapshot.jpg"
    return items


def incident_cameras(session: Session, actor: Actor, ref: str, *, limit: int = 50,
                     own_only: bool = False) -> list[tuple[int, str]]:
    """Return (camera id, GB ID) of the cameras that can see a matter, by its ref.

    ``own_only``: only the unit's own cameras, not those dispatched to it.
    """
    lon, lat = _matter_point(session, _load(session, actor, matter_by_ref(session, actor, ref)))
    rows = _cameras_at(session, actor, lon, lat, limit=min(limit, 50), radius_m=CAMERA_RADIUS_M,
                       own_only=own_only)
    return [(int(r["id"]), str(r["gb_id"])) for r in rows]


def dispatch_video(session: Session, actor: Actor, matter_id: int, unit_ids: Sequence[int], *,
                   minutes: int = 240, note: str = "") -> int:
    """Dispatch the cameras that can see a matter to units; return the order id."""
    from gridmap import dispatch

    m = _load(session, actor, matter_id)
    if m.state == "closed":
        raise Conflict("the matter is closed")
    if unit_ids is None or (isinstance(unit_ids, list) and not unit_ids):
        unit_ids = [m.handling_unit_id] if m.handling_unit_id else []
    order_id = dispatch.create_order(session, actor, {
        "kind": "dispatch", "targets": list(unit_ids) if isinstance(unit_ids, list | tuple)
        else unit_ids, "cameras": {"incident": m.ref}, "priority":
        "urgent" if m.urgency == "urgent" else "high", "note": note or m.title[:200],
        "incident": m.ref, "expires_in_minutes": minutes,
    })
    _event(session, m, "comment", actor, datetime.now(UTC), from_state=m.state,
           to_state=m.state, note=VIDEO_DISPATCH_NOTE.format(order=order_id),
           detail={"dispatch_order": order_id})
    session.flush()
    return order_id


def open_orders_geojson(session: Session, actor: Actor) -> dict[str, Any]:
    """Return the cameras of open dispatch orders the actor takes part in, as points."""
    params: dict[str, Any] = {"unit": actor.unit_id}
    # A unit that closed its part has given the cameras back (their records 404 for
    # it), so the order leaves its map even while other units' parts stay open.
    part = ("TRUE" if actor.tier == 1 else
            "(o.from_unit_id = :unit OR EXISTS (SELECT 1 FROM dispatch_targets t "
            "WHERE t.order_id = o.id AND t.unit_id = :unit AND t.state <> 'closed'))")
    rows = session.execute(
        text(
            "SELECT o.id, o.kind, o.priority, o.incident_ref, o.note, o.expires_at, c.gb_id, "
            "c.name, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat FROM dispatch_orders o "
            "JOIN dispatch_cameras dc ON dc.order_id = o.id JOIN cameras c ON c.id = dc.camera_id "
            f"WHERE o.state = 'open' AND o.expires_at > now() AND {part} "
            "ORDER BY o.id DESC, c.gb_id LIMIT 2000"
        ),
        params,
    ).mappings()
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature",
         "geometry": {"type": "Point", "coordinates": [round(r["lon"], 6), round(r["lat"], 6)]},
         "properties": {"order": r["id"], "kind": r["kind"], "priority": r["priority"],
                        "incident": r["incident_ref"], "gb_id": r["gb_id"],
                        "title": f"#{r['id']} {r['name']}", "expires_at": r["expires_at"],
                        "url": f"/videowall?order={r['id']}"}}
        for r in rows
    ]}
