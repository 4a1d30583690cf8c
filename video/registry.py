"""The camera registry: validated create/update/import, spatial queries, exports.

Everything spatial runs in PostGIS (KNN on the geography expression index,
ST_DWithin, view sectors); rows are never pulled into Python to be filtered.
Credentials are split off stream URLs before anything is stored and never leave
this module except through ``stream_credentials`` for the stream-opening process.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap import db
from gridmap.config import var_dir
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound
from gridmap.validation import text_field
from video import credentials as secret_store
from video.gbid import InvalidGbId, parse_gb_id
from video.models import SOURCES, STATUSES, tag_code
from video.urls import (
    Credentials,
    StreamURLError,
    given_login,
    split_credentials,
    stream_origin,
    validate_stream_url,
)

MAX_RADIUS_M = 20_000.0
MAX_NEARBY = 200
DEFAULT_NEARBY = 20
MAX_PAGE_SIZE = 1000
CAMERA_FIELDS = (
    "gb_id",
    "name",
    "lon",
    "lat",
    "heading",
    "fov",
    "range_m",
    "source",
    "department",
    "main_url",
    "sub_url",
    "snapshot_url",
    "status",
    "tags",
)


def demo_root() -> Path:
    """Return the folder whose files may be used as demo stream URLs."""
    return var_dir() / "streams"


@dataclass
class CameraInput:
    """A validated camera ready to store (URLs already free of credentials)."""

    gb_id: str
    name: str
    lon: float
    lat: float
    source: str
    department: str
    main_url: str
    sub_url: str | None = None
    snapshot_url: str | None = None
    heading: float | None = None
    fov: float | None = None
    range_m: float | None = None
    status: str = "unknown"
    tags: list[str] = field(default_factory=list)
    username: str | None = None
    password: str | None = None


# A prefix no area code starts with (codes start with a province code, never 0):
# the area part of the scope of units that have no area, such as departments.
NO_AREA = "000000"

# Cameras of open, unexpired orders addressed to a unit. Used as ``id = ANY(ARRAY(…))``:
# the array is an InitPlan computed once per query, and unlike ``id IN (subquery)``
# it can be ORed with the grid-code prefix index in a BitmapOr (``IN`` made the town
# list 2.1x a plain prefix filter: a sequential scan). The web layer also asks once
# per request whether there is anything dispatched at all (``resolve_dispatched``),
# so a unit without open orders runs exactly the plain query. Passing the resolved
# ids as an array parameter instead was measured slower with many orders (planning
# a 1,000-element ANY each time); see scripts/bench/bench_scope.py.
def dispatched_sql(unit: str = ":s_unit") -> str:
    """Return the SELECT of camera ids dispatched to ``unit`` (a parameter or a column)."""
    return (
        "SELECT dc.camera_id FROM dispatch_cameras dc "
        "JOIN dispatch_targets dt ON dt.order_id = dc.order_id "
        "JOIN dispatch_orders o ON o.id = dc.order_id "
        f"WHERE {open_target_sql(unit)}"
    )


def open_target_sql(unit: str) -> str:
    """Return the condition that target ``dt`` of order ``o`` is ``unit``'s, open and unexpired."""
    return (f"dt.unit_id = {unit} AND dt.state <> 'closed' "
            "AND o.state = 'open' AND o.expires_at > now()")


DISPATCHED_SQL = dispatched_sql()

# The same cameras for queries that walk an index in order and test each row (the
# nearby KNN): ``id IN (…)`` is a hash table built once, where ``= ANY(ARRAY(…))``
# searches the array linearly for every row the walk visits. A community with
# 1,000 dispatched cameras waited 6.5 ms for its nearby answer (the plain filter:
# 1.9 ms); with this, 0.9 ms. The unit's open orders come first, fenced in a
# MATERIALIZED CTE: when the planner believes the dispatch tables are empty (as
# it does until they are next analysed), it otherwise scanned every dispatched
# camera and, for each, the targets and orders again (10 ms). Listings keep
# ``ANY``: its array can be ORed with the grid-code index in a BitmapOr, and
# ``IN`` made them sequential scans (a community list 9x the plain filter).
DISPATCHED_SET_SQL = (
    "WITH open_orders AS MATERIALIZED ("
    "SELECT dt.order_id FROM dispatch_targets dt "
    "JOIN dispatch_orders o ON o.id = dt.order_id "
    f"WHERE {open_target_sql(':s_unit')}) "
    "SELECT dc.camera_id FROM open_orders t "
    "JOIN dispatch_cameras dc ON dc.order_id = t.order_id"
)


def _prefix_match(alias: str, prefix: str) -> str:
    """Return ``grid_code LIKE '<prefix>%'`` with the prefix inlined (digits only).

    Why inlined: psycopg prepares a statement after a few runs, and PostgreSQL may
    then switch to a generic plan, in which ``LIKE $1 || '%'`` cannot use the
    prefix index; a small area's nearby query went from 1 ms to 13 ms. The prefix
    is checked to be ASCII digits before it gets here, so inlining is safe.
    """
    if not (prefix.isascii() and prefix.isdigit()):
        raise InvalidInput("scope prefix must be digits")
    return f"{alias}.grid_code LIKE '{prefix}%'"


@dataclass(frozen=True)
class Scope:
    """Which cameras a caller may see; ``Scope()`` (the district) sees all of them.

    A camera is visible when its grid code starts with ``prefix``, or it belongs to
    ``department``, or it is in an open, unexpired dispatch order addressed to
    ``unit_id``. ``NO_AREA`` as the prefix means "no area at all" (departments).
    """

    prefix: str = ""
    department: str | None = None
    unit_id: int | None = None
    # Whether the unit has open dispatched cameras at all, when already looked up
    # (resolve_dispatched); None: unknown, so every query asks.
    has_dispatched: bool | None = None

    def __post_init__(self) -> None:
        if self.prefix and not (self.prefix.isascii() and self.prefix.isdigit()):
            raise InvalidInput("scope prefix must be digits")

    def own(self) -> Scope:
        """Return this scope without the cameras dispatched to the unit: its own jurisdiction."""
        return replace(self, unit_id=None, has_dispatched=None)

    @property
    def unrestricted(self) -> bool:
        """Return whether this scope sees every camera."""
        return self.prefix == "" and self.department is None

    def sql(self, alias: str = "c", *, ordered: bool = False) -> tuple[str, dict[str, Any]]:
        """Return the visibility WHERE fragment (starting with AND) and its parameters.

        ``ordered``: the query walks an index in order and tests each row it meets
        (a KNN), so dispatched cameras are matched by hash (DISPATCHED_SET_SQL).
        """
        if self.unrestricted:
            return "", {}
        parts, params = [], {}
        if self.prefix and self.prefix != NO_AREA:
            parts.append(_prefix_match(alias, self.prefix))
        if self.department is not None:
            parts.append(f"{alias}.department = :s_department")
            params["s_department"] = self.department
        if self.unit_id is not None and self.has_dispatched is not False:
            parts.append(f"{alias}.id IN ({DISPATCHED_SET_SQL})" if ordered
                         else f"{alias}.id = ANY(ARRAY({DISPATCHED_SQL}))")
            params["s_unit"] = self.unit_id
        if not parts:
            return " AND FALSE", {}
        return " AND (" + " OR ".join(parts) + ")", params


def resolve_dispatched(session: Session, scope: Scope) -> Scope:
    """Return the scope knowing whether its unit has open dispatched cameras (one query).

    Most units have none most of the time; their queries then carry no dispatch
    branch at all and run exactly like a plain prefix or department filter.
    """
    if scope.unrestricted or scope.unit_id is None:
        return scope
    found = session.execute(
        text(f"SELECT EXISTS ({DISPATCHED_SQL})"), {"s_unit": scope.unit_id}
    ).scalar_one()
    return replace(scope, has_dispatched=bool(found))


# The scope of the request being served. The web layer binds it after sign-in and
# resets it at teardown; Filters built anywhere during the request default to it,
# so a query that forgets to pass the caller's scope is still narrowed to it.
# Outside a request (CLI, sampler, tests of this module) it is the whole district.
_BOUND_SCOPE: ContextVar[Scope | None] = ContextVar("gridmap_camera_scope", default=None)
_WHOLE_DISTRICT = Scope()


def bind_scope(scope: Scope) -> Token[Scope | None]:
    """Make ``scope`` the default of every Filters built in this context."""
    return _BOUND_SCOPE.set(scope)


def reset_scope(token: Token[Scope | None]) -> None:
    """Restore the scope that was bound before ``bind_scope``."""
    _BOUND_SCOPE.reset(token)


def bound_scope() -> Scope:
    """Return the scope bound to this context (the whole district if none)."""
    return _BOUND_SCOPE.get() or _WHOLE_DISTRICT


def scope_for_prefix(prefix: str = "") -> Scope:
    """Return the scope for a legacy ``prefix`` argument.

    Inside a request the bound scope is authoritative (callers pass the prefix they
    derived from it, and it cannot express departments or dispatched cameras);
    outside one, the prefix alone is the scope.
    """
    bound = bound_scope()
    return Scope(prefix=prefix) if bound.unrestricted else bound


@dataclass(frozen=True)
class Filters:
    """Optional list filters (source, status, tag, area prefix) within the caller's scope."""

    sources: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    prefix: str = ""  # narrows to an area; visibility comes from ``scope``
    scope: Scope = field(default_factory=bound_scope)

    def __post_init__(self) -> None:
        bad = [s for s in self.sources if s not in SOURCES]
        if bad:
            raise InvalidInput(f"unknown source {bad[0]!r}", allowed=list(SOURCES))
        bad = [s for s in self.statuses if s not in STATUSES]
        if bad:
            raise InvalidInput(f"unknown status {bad[0]!r}", allowed=list(STATUSES))
        if self.prefix and not (self.prefix.isascii() and self.prefix.isdigit()):
            raise InvalidInput("scope prefix must be digits")
        # Tags are stored as codes (parse_tags), so ?tag=道路 finds the road cameras.
        object.__setattr__(self, "tags", tuple(tag_code(t) for t in self.tags))

    def sql(self, alias: str = "c", *, ordered: bool = False) -> tuple[str, dict[str, Any]]:
        """Return a WHERE fragment (starting with AND) and its parameters (``ordered``: see Scope.sql)."""
        parts, params = [], {}
        if self.sources:
            parts.append(f"{alias}.source = ANY(:f_sources)")
            params["f_sources"] = list(self.sources)
        if self.statuses:
            parts.append(f"{alias}.status = ANY(:f_statuses)")
            params["f_statuses"] = list(self.statuses)
        if self.tags:
            parts.append(f"{alias}.tags && CAST(:f_tags AS varchar[])")
            params["f_tags"] = list(self.tags)
        if self.prefix:
            parts.append(_prefix_match(alias, self.prefix))
        visible, scope_params = self.scope.sql(alias, ordered=ordered)
        params.update(scope_params)
        return "".join(" AND " + p for p in parts) + visible, params


# --------------------------------------------------------------------------- validation


def _number(
    row: Mapping[str, Any], key: str, *, required: bool = False
) -> float | None:
    raw = row.get(key)
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        if required:
            raise InvalidInput(f"{key} is required", field=key)
        return None
    if isinstance(raw, float) and math.isnan(raw) and not required:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{key} must be a number", field=key) from None
    if not math.isfinite(value):
        raise InvalidInput(f"{key} must be finite", field=key)
    return value


def _url(raw: Any, key: str, *, required: bool) -> tuple[str | None, Credentials | None]:
    if (
        raw is None
        or (isinstance(raw, float) and math.isnan(raw))
        or str(raw).strip() == ""
    ):
        if required:
            raise InvalidInput(f"{key} is required", field=key)
        return None, None
    try:
        clean, creds = split_credentials(str(raw).strip())
        clean = validate_stream_url(clean, demo_root=demo_root())
    except StreamURLError as exc:
        raise InvalidInput(f"{key}: {exc}", field=key) from None
    return clean, given_login(creds)


# What separates tags written as one string: commas, semicolons and the enumeration
# comma, in ASCII or full width (a name such as "Key place" keeps its space).
_TAG_SEPARATORS = re.compile(r"[,，、;；]")


def parse_tags(raw: Any) -> list[str]:
    """Return tag codes from a list or a separated string; known tags may be given by name."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return []
    items = raw if isinstance(raw, list | tuple) else _TAG_SEPARATORS.split(str(raw))
    tags = []
    for item in items:
        # "道路" and "Road" are the tag road: filters and the map's legend go by code.
        tag = tag_code(str(item).strip())
        if not tag:
            continue
        if len(tag) > 30 or not all(ch.isalnum() or ch in "_-" for ch in tag):
            raise InvalidInput(
                "tags are short words of letters, digits, '_' or '-'", field="tags"
            )
        tags.append(tag)
    return sorted(set(tags))


def _ledger_text(row: Mapping[str, Any], key: str, limit: int, *, required: bool = False) -> str:
    """Return a one-line text field of a camera record (a number in a ledger is text too)."""
    raw = row.get(key)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        raw = f"{raw:g}" if isinstance(raw, float) else str(raw)
    return text_field({key: raw}, key, limit, required=required, one_line=True)


# The one login a camera keeps is its streams' (sub, else main: what the sampler and
# the relay open). It is bound to the scheme, host and port of those addresses: a
# change that points a stream at another origin without giving a login drops it, so
# the stored password is never sent to a server it was not entered for.
LOGIN_DROPPED = ("the stored login was removed: a stream address now points at another "
                 "scheme, host or port; enter the login for the new address")
LOGINS_DIFFER = ("main_url and sub_url carry different logins; a camera keeps one login "
                 "for its streams")
SNAPSHOT_LOGIN_REFUSED = ("snapshot_url: a camera keeps one login, its streams'; give the "
                          "login with main_url (the same login may be repeated here) or "
                          "leave it out of snapshot_url")
CLEAR_LOGIN_CONFLICT = "clear_login cannot be combined with a login in a stream address"


def login_given(raw: Any) -> bool:
    """Return whether a raw stream address carries a login (an empty ``@`` is none)."""
    if not isinstance(raw, str):
        return False
    try:
        return given_login(split_credentials(raw.strip())[1]) is not None
    except StreamURLError:
        return False


def _stream_origins(main_url: str | None, sub_url: str | None) -> set[tuple[str, str, int | None]]:
    """Return the origins (scheme, host, port) the camera's stored login is sent to."""
    return {o for o in (stream_origin(main_url), stream_origin(sub_url)) if o is not None}


def validate(row: Mapping[str, Any]) -> CameraInput:
    """Check one camera record and split credentials off its URLs.

    The login comes from main_url or sub_url (both may carry it, if it is the same);
    snapshot_url may repeat it, never bring another. ``user:@`` without either part
    is no login at all.
    """
    gb_id = str(row.get("gb_id") or "").strip()
    try:
        parse_gb_id(gb_id)
    except InvalidGbId as exc:
        raise InvalidInput(f"gb_id: {exc}", field="gb_id") from None
    name = _ledger_text(row, "name", 120, required=True)
    lon = _number(row, "lon", required=True)
    lat = _number(row, "lat", required=True)
    heading = _number(row, "heading")
    fov = _number(row, "fov")
    range_m = _number(row, "range_m")
    if heading is not None and not 0 <= heading <= 360:
        raise InvalidInput("heading must be within 0–360°", field="heading")
    if heading is not None:
        heading %= 360
    if fov is not None and not 0 < fov <= 360:
        raise InvalidInput("fov must be within (0, 360]°", field="fov")
    if range_m is not None and not 0 < range_m <= 5000:
        raise InvalidInput("range_m must be within (0, 5000] m", field="range_m")
    source = str(row.get("source") or "").strip()
    if source not in SOURCES:
        raise InvalidInput(
            f"unknown source {source!r}", field="source", allowed=list(SOURCES)
        )
    status = str(row.get("status") or "unknown").strip()
    if status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}", field="status")
    main_url, creds = _url(row.get("main_url"), "main_url", required=True)
    sub_url, sub_creds = _url(row.get("sub_url"), "sub_url", required=False)
    snapshot_url, snap_creds = _url(
        row.get("snapshot_url"), "snapshot_url", required=False
    )
    if creds is not None and sub_creds is not None and creds != sub_creds:
        raise InvalidInput(LOGINS_DIFFER, field="sub_url")
    creds = creds or sub_creds
    if snap_creds is not None and snap_creds != creds:
        # Nothing stores a snapshot login of its own, and the stream login is compared
        # only with one given beside it (never with the stored one: no password oracle).
        raise InvalidInput(SNAPSHOT_LOGIN_REFUSED, field="snapshot_url")
    return CameraInput(
        gb_id=gb_id,
        name=name,
        lon=lon,
        lat=lat,
        source=source,
        department=_ledger_text(row, "department", 60),
        main_url=main_url,
        sub_url=sub_url,
        snapshot_url=snapshot_url,
        heading=heading,
        fov=fov,
        range_m=range_m,
        status=status,
        tags=parse_tags(row.get("tags")),
        username=getattr(creds, "username", None),
        password=getattr(creds, "password", None),
    )


def check_in_district(
    session: Session, points: Sequence[tuple[float, float]]
) -> list[int]:
    """Return the indexes of points that lie outside the district (one query)."""
    if not points:
        return []
    rows = session.execute(
        text(
            """
            SELECT p.i - 1 FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[]))
                 WITH ORDINALITY AS p(lon, lat, i)
            WHERE NOT EXISTS (
              SELECT 1 FROM districts d
              WHERE ST_Intersects(d.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)))
            ORDER BY p.i
            """
        ),
        {"lons": [p[0] for p in points], "lats": [p[1] for p in points]},
    )
    return [int(r[0]) for r in rows]


# --------------------------------------------------------------------------- writes

_INSERT_SQL = """
INSERT INTO cameras (gb_id, name, geom, heading, fov, range_m, source, department,
                     main_url, sub_url, snapshot_url, status, tags)
VALUES (:gb_id, :name, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :heading, :fov, :range_m,
        :source, :department, :main_url, :sub_url, :snapshot_url, :status,
        CAST(:tags AS varchar[]))"""
# A registration: two at once with one GB ID leave one camera and one Conflict
# (the second waits on the unique index, then inserts nothing).
INSERT_SQL = _INSERT_SQL + """
ON CONFLICT (gb_id) DO NOTHING
RETURNING id
"""
# An import's row. The status is not among the updated columns: the health checks
# set it (with its history); a ledger's status is only a new camera's first one.
UPSERT_SQL = _INSERT_SQL + """
ON CONFLICT (gb_id) DO UPDATE SET
  name = EXCLUDED.name, geom = EXCLUDED.geom, heading = EXCLUDED.heading,
  fov = EXCLUDED.fov, range_m = EXCLUDED.range_m, source = EXCLUDED.source,
  department = EXCLUDED.department, main_url = EXCLUDED.main_url,
  sub_url = EXCLUDED.sub_url, snapshot_url = EXCLUDED.snapshot_url,
  tags = EXCLUDED.tags, updated_at = now()
RETURNING id, (xmax = 0) AS inserted
"""


def _params(cam: CameraInput) -> dict[str, Any]:
    return {
        "gb_id": cam.gb_id,
        "name": cam.name,
        "lon": cam.lon,
        "lat": cam.lat,
        "heading": cam.heading,
        "fov": cam.fov,
        "range_m": cam.range_m,
        "source": cam.source,
        "department": cam.department,
        "main_url": cam.main_url,
        "sub_url": cam.sub_url,
        "snapshot_url": cam.snapshot_url,
        "status": cam.status,
        "tags": cam.tags,
    }


def _store_credentials(
    session: Session, camera_id: int, cam: CameraInput, *,
    before: Mapping[str, Any] | None = None, clear: bool = False,
) -> str | None:
    """Store the login the record gave, or keep, clear or drop the stored one.

    ``before``: the camera as stored before this write (None for a new camera). Without
    a new login, the stored one stays only while every stream address keeps an origin
    (scheme, host, port) the camera's streams had. Returns "dropped" when a stored login
    was removed for that reason, "cleared" when ``clear`` removed one, else None.
    """
    if cam.username is None and cam.password is None:
        if before is None:
            return None
        moved = not _stream_origins(cam.main_url, cam.sub_url) <= _stream_origins(
            before.get("main_url"), before.get("sub_url"))
        if not (clear or moved):
            return None
        removed = session.execute(
            text("DELETE FROM camera_credentials WHERE camera_id = :id RETURNING camera_id"),
            {"id": camera_id},
        ).first()
        if removed is None:
            return None
        return "cleared" if clear else "dropped"
    session.execute(
        text(
            """
            INSERT INTO camera_credentials (camera_id, username_enc, password_enc)
            VALUES (:id, :u, :p)
            ON CONFLICT (camera_id) DO UPDATE SET
              username_enc = EXCLUDED.username_enc, password_enc = EXCLUDED.password_enc
            """
        ),
        {
            "id": camera_id,
            "u": secret_store.encrypt(cam.username or ""),
            "p": secret_store.encrypt(cam.password or ""),
        },
    )
    return None


def create(session: Session, row: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and insert one camera; a duplicate GB ID is a Conflict."""
    cam = validate(row)
    if check_in_district(session, [(cam.lon, cam.lat)]):
        raise InvalidInput("location is outside the district", field="lon/lat")
    camera_id = session.execute(text(INSERT_SQL), _params(cam)).scalar()
    if camera_id is None:
        raise Conflict("a camera with this gb_id already exists", gb_id=cam.gb_id)
    _store_credentials(session, camera_id, cam)
    return _stored_in_scope(session, cam.gb_id)


def _stored_in_scope(session: Session, gb_id: str, prefix: str = "") -> dict[str, Any]:
    """Return the camera just written, or refuse a write that put it outside the caller's scope.

    Placement (grid, town) and owner are derived on write, so only now can a
    camera be seen to have left the caller's jurisdiction; the caller's rollback
    then undoes the write.
    """
    try:
        return get(session, gb_id, prefix=prefix)
    except NotFound:
        raise Forbidden("the camera would lie outside your jurisdiction", gb_id=gb_id) from None


def update(
    session: Session, gb_id: str, changes: Mapping[str, Any], prefix: str = "",
    warnings: list[dict[str, Any]] | None = None,
) -> dict:
    """Apply changes to one camera (a move re-derives its grid and sector).

    ``changes["clear_login"] = True`` removes the stored login. A change that points a
    stream address at another scheme, host or port without giving a login removes it
    too; ``warnings`` (if given) then gets a row saying so (``code: login_dropped``).
    """
    current = get(session, gb_id, prefix=prefix)
    clear = changes.get("clear_login", False)
    if not isinstance(clear, bool):
        raise InvalidInput("clear_login must be true or false", field="clear_login")
    if "status" in changes and changes["status"] != current["status"]:
        raise InvalidInput("status is set by the health checks; it cannot be edited",
                           field="status")
    merged = {**current, **{k: v for k, v in changes.items() if k in CAMERA_FIELDS}}
    merged["gb_id"] = gb_id
    merged_before = _raw_urls(session, gb_id)
    for key in ("main_url", "sub_url", "snapshot_url"):
        if key not in changes:
            merged[key] = merged_before[key]
    cam = validate(merged)
    if clear and cam.username is not None:
        raise InvalidInput(CLEAR_LOGIN_CONFLICT, field="clear_login")
    # The owner decides who else sees a camera: a town handing one to a department
    # would take it from the department that runs it (the district center decides).
    if cam.department != (current["department"] or "") and not bound_scope().unrestricted:
        raise Forbidden("only the district center changes which unit owns a camera",
                        field="department")
    if check_in_district(session, [(cam.lon, cam.lat)]):
        raise InvalidInput("location is outside the district", field="lon/lat")
    camera_id = session.execute(text(UPSERT_SQL), _params(cam)).scalar_one()
    outcome = _store_credentials(session, camera_id, cam, before=merged_before, clear=clear)
    if outcome == "dropped" and warnings is not None:
        warnings.append(_login_dropped_row(None, cam, merged_before))
    elif outcome == "cleared" and warnings is not None:
        warnings.append({"row": None, "field": "clear_login", "code": "login_cleared",
                         "reason": "the stored login was removed"})
    return _stored_in_scope(session, gb_id, prefix)


def _login_dropped_row(row: int | None, cam: CameraInput,
                       before: Mapping[str, Any]) -> dict[str, Any]:
    """Return the report row of a login dropped because a stream moved to another origin."""
    known = _stream_origins(before.get("main_url"), before.get("sub_url"))
    field = "main_url" if stream_origin(cam.main_url) not in known else "sub_url"
    return {"row": row, "field": field, "code": "login_dropped", "gb_id": cam.gb_id,
            "reason": LOGIN_DROPPED}


def _raw_urls(session: Session, gb_id: str) -> dict[str, str | None]:
    """Return the camera's stored main, sub and snapshot URLs (without their login)."""
    return dict(session.execute(
        text("SELECT main_url, sub_url, snapshot_url FROM cameras WHERE gb_id = :g"),
        {"g": gb_id},
    ).mappings().one())


def upsert_many(session: Session, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Validate every row first; store all of them or none. Returns counts or raises.

    A row that points a known camera's stream at another scheme, host or port without
    a login drops its stored login: ``login_dropped`` lists those rows (report rows).

    Raises ``InvalidInput`` whose ``details['errors']`` lists every bad row with
    its reason, so a ledger can be fixed in one pass.
    """
    rows = list(rows)
    stored = _stored_records(session, rows)
    errors: list[dict[str, Any]] = []
    valid: list[tuple[int, CameraInput]] = []
    seen: dict[str, int] = {}
    status_kept = 0
    for index, row in enumerate(rows, start=1):
        before = stored.get(str(row.get("gb_id") or "").strip())
        if before is not None:
            # A column the file leaves out keeps what is stored (a ledger of names and
            # positions must not blank the owner, the sub stream or the tags).
            row = {**before, **row}
        try:
            cam = validate(row)
        except InvalidInput as exc:
            errors.append(
                {"row": index, "field": exc.details.get("field"), "reason": exc.reason}
            )
            continue
        if cam.gb_id in seen:
            errors.append(
                {
                    "row": index,
                    "field": "gb_id",
                    "reason": f"duplicate gb_id, first seen in row {seen[cam.gb_id]}",
                }
            )
            continue
        seen[cam.gb_id] = index
        valid.append((index, cam))
        status_kept += before is not None and cam.status != before["status"]
    outside = check_in_district(session, [(c.lon, c.lat) for _, c in valid])
    for i in outside:
        errors.append(
            {
                "row": valid[i][0],
                "field": "lon/lat",
                "reason": "location is outside the district",
            }
        )
    if errors:
        errors.sort(key=lambda e: e["row"])
        raise InvalidInput(
            f"{len(errors)} bad row(s); nothing was imported", errors=errors
        )
    inserted = updated = 0
    dropped: list[dict[str, Any]] = []
    for index, cam in valid:
        camera_id, was_insert = session.execute(text(UPSERT_SQL), _params(cam)).one()
        before = stored.get(cam.gb_id)
        if _store_credentials(session, camera_id, cam, before=before) and before is not None:
            dropped.append(_login_dropped_row(index, cam, before))
        inserted += bool(was_insert)
        updated += not was_insert
    return {"inserted": inserted, "updated": updated, "status_kept": status_kept,
            "login_dropped": dropped}


def _stored_records(session: Session, rows: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the stored fields (CAMERA_FIELDS) of the cameras these rows name, by GB ID."""
    ids = sorted({str(r.get("gb_id") or "").strip() for r in rows} - {""})
    found = session.execute(
        text(f"SELECT {PUBLIC_COLUMNS} FROM cameras c WHERE c.gb_id = ANY(:ids)"), {"ids": ids}
    ).mappings()
    return {r["gb_id"]: {k: r[k] for k in CAMERA_FIELDS} for r in map(_public, found)}


# --------------------------------------------------------------------------- reads

PUBLIC_COLUMNS = """
  c.gb_id, c.name, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.heading, c.fov, c.range_m,
  c.source, c.department, c.status, c.tags, c.grid_code,
  left(c.grid_code, 12) AS community_code, left(c.grid_code, 9) AS town_code,
  c.main_url, c.sub_url, c.snapshot_url, c.last_sample_at, c.snapshot_at, c.has_credentials"""


def _public(row: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(row)
    out["tags"] = list(out.get("tags") or [])
    return out


def get(
    session: Session, gb_id: str, prefix: str = "", scope: Scope | None = None
) -> dict[str, Any]:
    """Return one camera (public fields) within the caller's scope, else NotFound."""
    visible, params = (scope or scope_for_prefix(prefix)).sql()
    row = (
        session.execute(
            text(f"SELECT {PUBLIC_COLUMNS} FROM cameras c WHERE c.gb_id = :g {visible}"),
            {**params, "g": gb_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound("no such camera", gb_id=gb_id)
    return _public(row)


# How a ledger page may be ordered: "snapshot_at" puts the longest-silent first
# (never sampled before all), "-snapshot_at" the latest pictures first.
LIST_ORDERS = {
    "gb_id": "c.gb_id",
    "name": "c.name, c.gb_id",
    "snapshot_at": "c.snapshot_at ASC NULLS FIRST, c.gb_id",
    "-snapshot_at": "c.snapshot_at DESC NULLS LAST, c.gb_id",
}
# Whether the view sector (heading and field of view) is in the ledger: coverage
# falls back to a default circle for cameras without one.
SECTOR_CLAUSES = {
    "known": " AND c.heading IS NOT NULL AND c.fov IS NOT NULL",
    "unknown": " AND (c.heading IS NULL OR c.fov IS NULL)",
}


def _filtered(filters: Filters, q: str | None,
              sector: str | None = None) -> tuple[str, dict[str, Any]]:
    """Return the filters' WHERE fragment, plus a name or GB ID prefix search if ``q``
    and a view-sector condition if ``sector`` ("known" or "unknown")."""
    where, params = filters.sql()
    if sector:
        if sector not in SECTOR_CLAUSES:
            raise InvalidInput("sector must be known or unknown", sector=sector)
        where += SECTOR_CLAUSES[sector]
    if q:
        where += " AND (c.name ILIKE :q OR c.gb_id LIKE :qs)"
        params["q"] = "%" + q.replace("%", r"\%").replace("_", r"\_") + "%"
        params["qs"] = q.replace("%", "").replace("_", "") + "%"
    return where, params


def list_cameras(
    session: Session,
    filters: Filters,
    *,
    offset: int = 0,
    limit: int = 100,
    q: str | None = None,
    sector: str | None = None,
    order: str = "gb_id",
) -> dict[str, Any]:
    """Return one page of cameras matching the filters, ordered by GB ID or ``order``."""
    if not 0 < limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be within 1–{MAX_PAGE_SIZE}")
    if offset < 0:
        raise InvalidInput("offset must be ≥ 0")
    if order not in LIST_ORDERS:
        raise InvalidInput("sort must be gb_id, name, snapshot_at or -snapshot_at", sort=order)
    where, params = _filtered(filters, q, sector)
    total = session.execute(
        text(f"SELECT count(*) FROM cameras c WHERE TRUE {where}"), params
    ).scalar_one()
    rows = session.execute(
        text(
            f"SELECT {PUBLIC_COLUMNS} FROM cameras c WHERE TRUE {where} "
            f"ORDER BY {LIST_ORDERS[order]} OFFSET :offset LIMIT :limit"
        ),
        {**params, "offset": offset, "limit": limit},
    ).mappings()
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "items": [_public(r) for r in rows],
    }


def area_names(session: Session, filters: Filters | None = None) -> dict[str, str]:
    """Return the names of the towns and communities holding cameras in scope, by code."""
    # Built per call (not as a default argument) so it picks up the bound scope.
    filters = filters or Filters()
    where, params = filters.sql()
    rows = session.execute(
        text(
            f"""
            WITH held AS (SELECT DISTINCT left(c.grid_code, 12) AS code FROM cameras c
                          WHERE c.grid_code IS NOT NULL {where})
            SELECT m.code, m.name, t.code, t.name
            FROM communities m JOIN towns t ON t.id = m.town_id
            WHERE m.code IN (SELECT code FROM held)
            """
        ),
        params,
    ).all()
    names: dict[str, str] = {}
    for community_code, community, town_code, town in rows:
        names[community_code] = community
        names[town_code] = town
    return names


def check_radius(radius_m: float) -> None:
    """Raise InvalidInput unless 0 < radius ≤ MAX_RADIUS_M."""
    if not (radius_m > 0 and radius_m <= MAX_RADIUS_M):
        raise InvalidInput(
            f"radius must be within (0, {MAX_RADIUS_M:g}] m", radius=radius_m
        )


# KNN (`<->` on the geography expression index) walks the index in distance order
# and stops after the candidates, so it costs the same at 8,600 or 1,000,000 cameras.
# Index order is spherical; the exact distance on the WGS-84 ellipsoid differs by
# up to ±0.23 % with direction at this latitude, which can swap close neighbours.
# So the query fetches a few more candidates than asked, with the radius widened
# by that bound, and Python re-ranks them by the ellipsoidal distance (pyproj, one
# vectorised call): ST_Distance and ST_Azimuth on the spheroid cost more than the
# KNN itself. When the candidates could have missed a closer camera (bound in
# _knn_complete), the query runs again with four times as many.
# The point is spelled out in each clause (not a CTE): an index-ordered KNN scan
# needs a constant right-hand side at plan time.
PT = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)"
_GEOD = Geod(ellps="WGS84")
# PostGIS measures geography KNN on a sphere of the WGS-84 mean radius (2a + b) / 3.
KNN_SPHERE_RADIUS_M = 6_371_008.7714
# Curvature changes within MAX_RADIUS_M move the ratio in sphere_floor by under
# 2e-5 (tests/unit/test_nearby_bound.py); this keeps five times that as slack.
_FLOOR_SLACK = 1e-4
MAX_CANDIDATES = 4 * MAX_NEARBY + 20


def sphere_floor(lat: float) -> float:
    """Return a lower bound of ellipsoidal over KNN-sphere distance near ``lat``.

    Over a short distance the ellipsoid's radius of curvature lies between the
    meridian's (M) and the prime vertical's (N ≥ M), so the ellipsoidal distance
    is at least M / R times the spherical one: 0.9978 at Yanzhou's 35.5° N.
    """
    s2 = math.sin(math.radians(lat)) ** 2
    meridian = _GEOD.a * (1.0 - _GEOD.es) / (1.0 - _GEOD.es * s2) ** 1.5
    return meridian / KNN_SPHERE_RADIUS_M - _FLOOR_SLACK


def knn_extra(limit: int) -> int:
    """Return how many KNN candidates to fetch beyond ``limit``.

    Each extra row costs the query and its decoding a few microseconds; with
    these, the second, wider query of _knn_complete ran for 0.1 % of 1,500 demo
    points at KNN-20 within 500 m or 5 km and never at KNN-5, -50 or -200.
    """
    return 2 + limit // 10


_SPHERE_M = f"(c.geom::geography <-> {PT}::geography)"
# What the query selects for each key a nearby item may carry (bearing and
# distance_m are computed in Python): the camera's public fields, plus whether
# its view sector contains the point.
_NEARBY_EXPRESSIONS = {
    "community_code": "left(c.grid_code, 12)",
    "department": "c.department",
    "fov": "c.fov",
    "gb_id": "c.gb_id",
    "grid_code": "c.grid_code",
    "has_credentials": "c.has_credentials",
    "heading": "c.heading",
    "last_sample_at": "c.last_sample_at",
    "lat": "ST_Y(c.geom)",
    "lon": "ST_X(c.geom)",
    "main_url": "c.main_url",
    "name": "c.name",
    "range_m": "c.range_m",
    "sees_point": ("(c.heading IS NOT NULL AND c.fov IS NOT NULL"
                   f" AND ST_Intersects(c.view_sector, {PT}))"),
    "snapshot_at": "c.snapshot_at",
    "snapshot_url": "c.snapshot_url",
    "source": "c.source",
    "status": "c.status",
    "sub_url": "c.sub_url",
    "tags": "c.tags",
    "town_code": "left(c.grid_code, 9)",
}
# Every key a nearby item can carry (``fields``), in sorted order.
NEARBY_FIELDS = tuple(sorted((*_NEARBY_EXPRESSIONS, "bearing", "distance_m")))
# What an item carries unless asked otherwise: what a list of nearby cameras shows
# and its map draws (the patrol page, the wall, crowd alerts). The rest of a
# camera's record is one GET /api/cameras/<gb_id> away; on a phone's link the
# summary is under half the bytes, and the query and its items cost less too.
NEARBY_SUMMARY = ("bearing", "distance_m", "fov", "gb_id", "grid_code", "heading", "lat",
                  "lon", "name", "sees_point", "snapshot_at", "source", "status")
# Columns the ranking reads whatever the items carry.
_RANKING_COLUMNS = ("lat", "lon", "sees_point")


@dataclass(frozen=True)
class NearbyPlan:
    """How the nearby query's rows become items for one set of fields."""

    columns: str  # the SELECT list, its columns sorted by name, the KNN's sphere distance last
    row: tuple[str, ...]  # the query's column names, in order
    keys: tuple[str, ...]  # the item's keys, sorted as the JSON provider writes them
    positions: tuple[int, ...]  # where each key's value sits in (bearing, distance_m, *row)
    lat: int
    lon: int
    sees: int
    sphere: int

    def item(self, row: Sequence[Any], distance_m: float, bearing: float) -> dict[str, Any]:
        """Return one item: the requested fields of the row plus distance and bearing."""
        return dict(zip(self.keys, self._pick((bearing, distance_m, *row)), strict=True))

    @functools.cached_property
    def _pick(self) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        # itemgetter picks in C, twice as fast as a comprehension; given one
        # position it returns the value itself, not a 1-tuple.
        if len(self.positions) == 1:
            only = self.positions[0]
            return lambda values: (values[only],)
        return operator.itemgetter(*self.positions)


@functools.lru_cache(maxsize=64)
def nearby_plan(fields: tuple[str, ...] = NEARBY_SUMMARY) -> NearbyPlan:
    """Return the plan for items carrying ``fields`` (any of NEARBY_FIELDS; order and repeats ignored)."""
    unknown = [f for f in fields if f not in NEARBY_FIELDS]
    if unknown or not fields:
        raise InvalidInput(
            f"fields must name some of: {', '.join(NEARBY_FIELDS)}", unknown=unknown[:5])
    keys = tuple(sorted(set(fields)))
    selected = sorted(set(keys).union(_RANKING_COLUMNS).intersection(_NEARBY_EXPRESSIONS))
    row = (*selected, "sphere_m")
    # A dict built in the provider's key order leaves orjson's key sort nothing
    # to move (sorting twenty shuffled items cost as much as encoding them).
    source = ("bearing", "distance_m", *row)
    return NearbyPlan(
        columns=",\n  ".join([*(f"{_NEARBY_EXPRESSIONS[k]} AS {k}" for k in selected),
                              f"{_SPHERE_M} AS sphere_m"]),
        row=row,
        keys=keys,
        positions=tuple(source.index(k) for k in keys),
        lat=row.index("lat"),
        lon=row.index("lon"),
        sees=row.index("sees_point"),
        sphere=row.index("sphere_m"),
    )


# One index-ordered scan reads the candidates' columns as it goes: the geography
# KNN rechecks each row's distance from the heap anyway, so the row is already at
# hand. (Reading the ids first and the rows again through the primary key cost a
# fifth more.) The radius is applied outside the LIMIT so the KNN stays an index
# scan.
NEARBY_SQL = """
SELECT * FROM (
  SELECT {columns}
  FROM cameras c WHERE TRUE {where}
  ORDER BY sphere_m LIMIT {candidates:d}
) knn WHERE sphere_m <= :reach{aimed}
"""
# Cameras aimed at the point may be farther than the nearest few: with "sees the
# point first" they are added too (GiST on view_sector), so none in range is missed.
# UNION drops the rows both parts found (their columns are identical).
_AIMED_UNION = f"""
UNION
SELECT {{columns}}
FROM cameras c
WHERE c.heading IS NOT NULL AND c.fov IS NOT NULL
  AND ST_Intersects(c.view_sector, {PT}) {{where}}
  AND {_SPHERE_M} <= :reach"""


@functools.lru_cache(maxsize=256)
def _nearby_sql(where: str, sees_first: bool, candidates: int, columns: str) -> str:
    """Return the nearby query for a scope/filter clause, KNN size and columns, in psycopg's style.

    The KNN's LIMIT is written into the text: with a parameter there, PostgreSQL
    cannot cost a generic plan and plans the prepared statement on every call.
    """
    statement = text(NEARBY_SQL.format(
        columns=columns,
        candidates=int(candidates),
        where=where,
        aimed=_AIMED_UNION.format(columns=columns, where=where) if sees_first else "",
    ))
    return db.driver_sql(statement)


def nearby(
    reader: db.Reader,
    lon: float,
    lat: float,
    *,
    radius_m: float = 500.0,
    limit: int = DEFAULT_NEARBY,
    filters: Filters | None = None,
    sees_first: bool = False,
    fields: tuple[str, ...] = NEARBY_SUMMARY,
) -> list[dict[str, Any]]:
    """Return the nearest cameras within a radius, with distance and bearing.

    Distances are geodesic on the WGS-84 ellipsoid; the bearing is the forward
    azimuth from the point to the camera. With ``sees_first`` the cameras whose
    view sector contains the point come first (nearest first), then the rest.
    Items carry ``fields`` (NEARBY_FIELDS; the summary by default).
    ``reader`` is a session, or a driver connection (a GET's read_connection).
    """
    # Built per call (not as a default argument) so it picks up the bound scope.
    filters = filters or Filters()
    from gridmap.queries import check_lon_lat

    check_lon_lat(lon, lat)
    check_radius(radius_m)
    if not 0 < limit <= MAX_NEARBY:
        raise InvalidInput(f"limit must be within 1–{MAX_NEARBY}")
    plan = nearby_plan(fields)
    where, params = filters.sql(ordered=True)
    floor = sphere_floor(lat)
    candidates = limit + knn_extra(limit)
    while True:
        _, rows = db.driver_rows(
            reader, _nearby_sql(where, sees_first, candidates, plan.columns),
            {**params, "lon": lon, "lat": lat, "reach": radius_m / floor},
        )
        if not rows:
            return []
        n = len(rows)
        # pyproj on arrays, not lists: a third of the call's cost was converting them.
        azimuths, _, metres = _GEOD.inv(
            np.full(n, lon), np.full(n, lat), np.array([r[plan.lon] for r in rows]),
            np.array([r[plan.lat] for r in rows]), inplace=True)
        distances = metres.tolist()
        ranked = sorted(
            (not rows[i][plan.sees] if sees_first else False, distances[i], i)
            for i in range(n) if distances[i] <= radius_m
        )
        spheres = [r[plan.sphere] for r in rows]
        if candidates >= MAX_CANDIDATES or _knn_complete(
                spheres, ranked, candidates, limit, radius_m, sees_first, floor):
            break
        candidates = min(candidates * 4, MAX_CANDIDATES)
    shown = [i for _, _, i in ranked[:limit]]
    # Decimetres and tenths of a degree; a bearing of 359.96° shows as 0.0, not 360.0.
    shown_m = np.round(metres[shown], 1).tolist()
    shown_bearing = (np.round(azimuths[shown] % 360.0, 1) % 360.0).tolist()
    return [plan.item(rows[i], distance, bearing)
            for i, distance, bearing in zip(shown, shown_m, shown_bearing, strict=True)]


def _knn_complete(spheres: Sequence[float], ranked: list[tuple[bool, float, int]],
                  candidates: int, limit: int, radius_m: float, sees_first: bool,
                  floor: float) -> bool:
    """Return whether no camera the KNN left out could rank among the first ``limit``.

    ``spheres`` are the rows' KNN (sphere) distances. The KNN returns the
    ``candidates`` nearest on the sphere; any camera it left out is at least as far
    on the sphere as the last one it returned, so on the ellipsoid at least
    ``floor`` (sphere_floor) times that. (Aimed cameras added by ``sees`` are all
    fetched, and farther on the sphere than the KNN's rows.)
    """
    if len(spheres) < candidates:
        return True  # the KNN ran past the radius: everything inside was fetched
    last_sphere = sorted(spheres)[candidates - 1]
    if len(ranked) < limit:
        needed = radius_m  # everything within the radius is wanted
    else:
        not_seeing, needed, _ = ranked[limit - 1]
        if sees_first and not not_seeing:
            return True  # the first `limit` all see the point, and all such are fetched
    return last_sphere * floor > needed


def in_area(
    session: Session, code: str, filters: Filters | None = None
) -> list[dict[str, Any]]:
    """Return the cameras in a grid, community or town (by code prefix)."""
    # Built per call (not as a default argument) so it picks up the bound scope.
    filters = filters or Filters()
    from gridmap.queries import check_code

    check_code(code)
    if filters.prefix and not (code.startswith(filters.prefix) or filters.prefix.startswith(code)):
        return []
    narrowest = code if len(code) >= len(filters.prefix) else filters.prefix
    scoped = Filters(filters.sources, filters.statuses, filters.tags, prefix=narrowest,
                     scope=filters.scope)
    where, params = scoped.sql()
    rows = session.execute(
        text(
            f"SELECT {PUBLIC_COLUMNS} FROM cameras c WHERE TRUE {where} ORDER BY c.gb_id"
        ),
        params,
    ).mappings()
    return [_public(r) for r in rows]


def in_bbox(
    session: Session,
    west: float,
    south: float,
    east: float,
    north: float,
    filters: Filters | None = None,
    limit: int = 5000,
) -> list[dict[str, Any]]:
    """Return cameras inside a bbox (GiST && then exact test)."""
    # Built per call (not as a default argument) so it picks up the bound scope.
    filters = filters or Filters()
    from gridmap.queries import check_bbox

    check_bbox(west, south, east, north)
    where, params = filters.sql()
    rows = session.execute(
        text(
            f"SELECT {PUBLIC_COLUMNS} FROM cameras c "
            "WHERE c.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326) "
            # && compares float4 index boxes; the exact test trims the rounding fringe.
            "AND ST_Intersects(c.geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326)) "
            f"{where} ORDER BY c.gb_id LIMIT :limit"
        ),
        {**params, "w": west, "s": south, "e": east, "n": north, "limit": limit},
    ).mappings()
    return [_public(r) for r in rows]


def layer_json(session: Session, filters: Filters | None = None) -> str:
    """Return every camera as compact JSON arrays for client-side clustering.

    ``[id, lon, lat, source index, status index, has view sector]`` per camera,
    built in PostGIS; coordinates are rounded to ~1 m (5 decimals).
    """
    # Built per call (not as a default argument) so it picks up the bound scope.
    filters = filters or Filters()
    where, params = filters.sql()
    sql = f"""
    SELECT json_build_object(
      'fields', json_build_array('gb_id', 'lon', 'lat', 'source', 'status', 'sector'),
      'sources', CAST(:sources AS text[]),
      'statuses', CAST(:statuses AS text[]),
      'rows', COALESCE(json_agg(json_build_array(
          c.gb_id, round(ST_X(c.geom)::numeric, 5), round(ST_Y(c.geom)::numeric, 5),
          array_position(CAST(:sources AS text[]), c.source::text) - 1,
          array_position(CAST(:statuses AS text[]), c.status::text) - 1,
          CASE WHEN c.heading IS NOT NULL AND c.fov IS NOT NULL THEN 1 ELSE 0 END)
        ORDER BY c.id), '[]'::json))::text
    FROM cameras c WHERE TRUE {where}
    """
    return session.execute(
        text(sql), {**params, "sources": list(SOURCES), "statuses": list(STATUSES)}
    ).scalar_one()


def sectors_geojson(
    session: Session,
    west: float,
    south: float,
    east: float,
    north: float,
    filters: Filters | None = None,
) -> str:
    """Return the view sectors inside a bbox as GeoJSON (for the map's FOV layer)."""
    # Built per call (not as a default argument) so it picks up the bound scope.
    filters = filters or Filters()
    from gridmap.queries import check_bbox

    check_bbox(west, south, east, north)
    where, params = filters.sql()
    sql = f"""
    SELECT json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(
      json_build_object('type', 'Feature', 'id', c.gb_id,
        'geometry', ST_AsGeoJSON(c.view_sector, 6)::json,
        'properties', json_build_object('gb_id', c.gb_id, 'status', c.status,
                                        'source', c.source))), '[]'::json))::text
    FROM cameras c
    WHERE c.view_sector && ST_MakeEnvelope(:w, :s, :e, :n, 4326)
      AND c.heading IS NOT NULL {where}
    """
    return session.execute(
        text(sql), {**params, "w": west, "s": south, "e": east, "n": north}
    ).scalar_one()


def stream_credentials(session: Session, gb_id: str) -> tuple[str, str] | None:
    """Return (username, password) for the process that opens the stream."""
    row = session.execute(
        text(
            "SELECT k.username_enc, k.password_enc FROM camera_credentials k "
            "JOIN cameras c ON c.id = k.camera_id WHERE c.gb_id = :g"
        ),
        {"g": gb_id},
    ).first()
    if row is None:
        return None
    return secret_store.decrypt(row[0]), secret_store.decrypt(row[1])


# --------------------------------------------------------------------------- demo


def demo_streams_base_port() -> int:
    """Return the first port of the local demo stream servers."""
    from gridmap.config import env

    return int(env("STREAMS_PORT", "8554"))


def demo_stream_password() -> str:
    """Return the demo streams' password (generated once under var/, never logged)."""
    import secrets

    path = var_dir() / "demo-streams.secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def load_generated(session: Session, cameras_df) -> int:
    """Bulk-insert generated demo cameras pointing at the local demo streams."""
    from video.streams import LOOPBACK, DemoPorts, demo_manifest

    base = demo_streams_base_port()
    ports = DemoPorts(
        host=LOOPBACK,
        http=base,
        rtsp=base + 1,
        silent=base + 2,
        garbage=base + 3,
        closed=base + 4,
    )
    slots = demo_manifest(ports)
    rows = []
    for r in cameras_df.itertuples(index=False):
        slot = slots[int(r.stream_slot) % len(slots)]
        rows.append(
            {
                "gb_id": r.gb_id,
                "name": r.name,
                "lon": float(r.lon),
                "lat": float(r.lat),
                "heading": None if _nan(r.heading) else float(r.heading) % 360,
                "fov": None if _nan(r.fov) else float(r.fov),
                "range_m": None if _nan(r.range_m) else float(r.range_m),
                "source": r.source,
                "department": r.department,
                "main_url": slot.url,
                "sub_url": slot.url,
                "snapshot_url": None,
                "status": "unknown",
                "tags": list(r.tags),
                "nominal_width": slot.nominal_width,
                "nominal_height": slot.nominal_height,
            }
        )
    # executemany through the driver: batched round trips; the trigger derives grids.
    session.execute(text(DEMO_INSERT_SQL), rows)
    password = demo_stream_password()
    session.execute(
        text(
            """
            INSERT INTO camera_credentials (camera_id, username_enc, password_enc)
            SELECT id, :u, :p FROM cameras WHERE main_url LIKE '%/private/%'
            """
        ),
        {"u": secret_store.encrypt("demo"), "p": secret_store.encrypt(password)},
    )
    return len(rows)


DEMO_INSERT_SQL = """
INSERT INTO cameras (gb_id, name, geom, heading, fov, range_m, source, department,
                     main_url, sub_url, snapshot_url, status, tags,
                     nominal_width, nominal_height)
VALUES (:gb_id, :name, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :heading, :fov, :range_m,
        :source, :department, :main_url, :sub_url, :snapshot_url, :status,
        CAST(:tags AS varchar[]), :nominal_width, :nominal_height)
"""


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def export_rows(session: Session, filters: Filters | None = None, q: str | None = None,
                sector: str | None = None) -> list[dict[str, Any]]:
    """Return cameras as flat rows for CSV/GeoJSON/GeoPackage export (no secrets)."""
    # Built per call (not as a default argument) so it picks up the bound scope.
    filters = filters or Filters()
    where, params = _filtered(filters, q, sector)
    rows = session.execute(
        text(
            f"SELECT {PUBLIC_COLUMNS} FROM cameras c WHERE TRUE {where} ORDER BY c.gb_id"
        ),
        params,
    ).mappings()
    out = []
    for r in rows:
        item = _public(r)
        item["tags"] = ",".join(item["tags"])
        out.append(item)
    return out
