"""Store grid boundary edits: lock, check versions, write, keep history, re-derive.

One edit is one transaction of the caller (a request or a CLI command commits).
Inside it the edit:

1. parses and checks the submitted geometry before GEOS sees it
   (:mod:`gridmap.editing`), and refuses codes outside the caller's prefix;
2. locks the affected grids and their neighbours (``SELECT … FOR UPDATE``, in id
   order) and compares the version the editor started from: a stale version is a
   :class:`~gridmap.editing.GridEditConflict` carrying the current version and
   geometry;
3. computes the new geometries in shapely on the locked neighbourhood and
   validates them there;
4. writes them inside a savepoint: geometries and versions, new grids with the
   next free code under their community, retired codes, version rows with their
   validity period; re-derives houses, key places, components (``ST_Intersects``)
   and cameras (their trigger), splits key-person counts along with the houses,
   refreshes the cached counts, and finally checks the district cheaply (the sum
   of grid areas is the district's area, changed grids are valid in PostGIS).

A failure at any step raises a domain error and leaves nothing behind.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from shapely import wkb
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from gridmap import editing, teams
from gridmap.demo import refresh_grid_counts
from gridmap.editing import (
    COVERAGE_TOLERANCE_M2,
    M2_PER_DEG2,
    CoverageBroken,
    EditResult,
    GridEditConflict,
    InvalidGeometry,
)
from gridmap.errors import InvalidInput, NotFound
from gridmap.validation import BIGINT_MAX, text_field
from gridmap.validation import check_grid_code as check_code

MAX_REASON = 500
MAX_UPLOAD_FEATURES = 500
LOCK_ROUNDS = 4
EXPORT_FORMATS = {"geojson": "geojson", "gpkg": "gpkg", "shp": "shapefile", "zip": "shapefile"}
DEADLOCK = "40P01"
LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class EditContext:
    """Who edits, why, and within which jurisdiction (code prefix)."""

    actor: str
    reason: str
    prefix: str = ""

    def checked(self) -> EditContext:
        """Return the context with a cleaned reason, or raise InvalidInput."""
        reason = text_field({"reason": self.reason}, "reason", MAX_REASON)
        if not reason:
            raise InvalidInput("say why the boundary changes (reason)", field="reason")
        actor = (self.actor or "anonymous").strip()[:64] or "anonymous"
        return EditContext(actor=actor, reason=reason, prefix=self.prefix or "")


@dataclass
class _Row:
    id: int
    code: str
    version: int
    geom: BaseGeometry
    community_id: int
    name: str
    kind: str


# --------------------------------------------------------------------------- reading


def _wkb(geom: BaseGeometry) -> bytes:
    return shapely.to_wkb(editing.as_multi(geom), include_srid=False)


def district(session: Session) -> BaseGeometry:
    """Return the district boundary (one row)."""
    raw = session.execute(text("SELECT ST_AsBinary(geom) FROM districts LIMIT 1")).scalar()
    if raw is None:
        raise NotFound("no district is loaded")
    return wkb.loads(bytes(raw))


def _bounds(geom: BaseGeometry) -> tuple[float, float, float, float]:
    # A little slack: the district boundary itself has vertices on the bbox.
    x0, y0, x1, y1 = geom.bounds
    return (x0 - 1e-6, y0 - 1e-6, x1 + 1e-6, y1 + 1e-6)


def _neighbourhood_ids(
    session: Session, codes: Sequence[str], extra: BaseGeometry | None, rings: int
) -> set[int]:
    """Return ids of the grids within ``rings`` adjacency steps of the seeds."""
    sql = """
    WITH seed AS (
      SELECT geom FROM grids WHERE code = ANY(:codes)
      UNION ALL
      SELECT ST_GeomFromWKB(:extra, 4326) WHERE CAST(:extra AS bytea) IS NOT NULL
    ), ring1 AS (
      SELECT DISTINCT g.id, g.geom FROM grids g JOIN seed s
        ON g.geom && s.geom AND ST_Intersects(g.geom, s.geom)
    )
    """
    if rings >= 2:
        sql += """
    SELECT DISTINCT g.id FROM grids g JOIN ring1 r
      ON g.geom && r.geom AND ST_Intersects(g.geom, r.geom)
    """
    else:
        sql += "SELECT id FROM ring1"
    params = {"codes": list(codes), "extra": None if extra is None else _wkb(extra)}
    return {r[0] for r in session.execute(text(sql), params)}


def _lock(session: Session, ids: Iterable[int]) -> dict[str, _Row]:
    rows = session.execute(
        text(
            """
            SELECT id, code, version, ST_AsBinary(geom), community_id, name, kind
            FROM grids WHERE id = ANY(:ids) ORDER BY id FOR UPDATE
            """
        ),
        {"ids": sorted(ids)},
    )
    return {
        r[1]: _Row(r[0], r[1], r[2], wkb.loads(bytes(r[3])), r[4], r[5], r[6]) for r in rows
    }


def _lock_neighbourhood(
    session: Session, codes: Sequence[str], extra: BaseGeometry | None = None, rings: int = 1
) -> dict[str, _Row]:
    """Lock the seeds and their neighbours; repeat until the set is stable under lock."""
    locked: dict[str, _Row] = {}
    try:
        for _ in range(LOCK_ROUNDS):
            ids = _neighbourhood_ids(session, codes, extra, rings)
            missing = ids - {r.id for r in locked.values()}
            if not missing:
                return locked
            # Rows locked earlier stay locked; re-reading returns their current state.
            locked = _lock(session, ids | {r.id for r in locked.values()})
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) in (DEADLOCK, LOCK_NOT_AVAILABLE):
            raise GridEditConflict(
                "another edit of neighbouring grids ran at the same time; try again"
            ) from None
        raise
    raise GridEditConflict("the neighbourhood kept changing while it was being locked; try again")


def _retired_successor(session: Session, code: str) -> str | None:
    row = session.execute(
        text(
            "SELECT attributes->>'successor' FROM grid_versions "
            "WHERE grid_code = :c AND geom IS NULL AND valid_to IS NULL"
        ),
        {"c": code},
    ).first()
    return row[0] if row else None


def _require_locked(session: Session, locked: Mapping[str, _Row], code: str) -> _Row:
    row = locked.get(code)
    if row is not None:
        return row
    successor = _retired_successor(session, code)
    if successor:
        raise GridEditConflict(
            f"grid {code} no longer exists: it became {successor}; reload",
            code=code,
            current_version=None,
            successor=successor,
        )
    raise NotFound("no such grid", code=code)


def _check_versions(locked: Mapping[str, _Row], expected: Mapping[str, int]) -> None:
    for code, version in expected.items():
        row = locked[code]
        if row.version != version:
            raise GridEditConflict(
                f"someone else changed grid {code} (now version {row.version}, "
                f"you edited version {version}); reload it",
                code=code,
                current_version=row.version,
                expected_version=version,
                geometry=mapping(row.geom),
            )


def parse_version(value: Any) -> int:
    """Return a version number from a body field or an If-Match value."""
    if isinstance(value, bool):
        raise InvalidInput("version must be a positive integer")
    if isinstance(value, str):
        value = value.strip().removeprefix("W/").strip('"')
        if not (value.isascii() and value.isdigit() and len(value) < 10):
            raise InvalidInput("version must be a positive integer", version=value[:20])
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= BIGINT_MAX:
        raise InvalidInput("version must be a positive integer (the version you edited)")
    return value


# --------------------------------------------------------------------------- writing


ATTRS_SQL = """
jsonb_build_object('name', g.name, 'kind', g.kind, 'community', c.code,
  'houses', g.houses, 'residents', g.residents, 'key_persons', g.key_persons,
  'key_places', g.key_places, 'components', g.components)
"""

POINT_TABLES = ("houses", "key_places", "city_components")

REDERIVE_SQL = """
WITH src AS (
  SELECT p.id, p.grid_id AS old_id, p.geom{extra_cols}
  FROM {table} p JOIN grids g ON g.id = p.grid_id
  WHERE p.grid_id = ANY(:sources)
    AND (p.grid_id = ANY(:retired) OR NOT ST_Intersects(g.geom, p.geom))
), dest AS (
  SELECT s.id, s.old_id{extra_cols_s},
         COALESCE(
           (SELECT g.id FROM grids g WHERE g.id = ANY(:targets)
              AND ST_Intersects(g.geom, s.geom) ORDER BY g.code LIMIT 1),
           -- a point on no grid (rounding at an outer edge): the nearest target
           (SELECT g.id FROM grids g WHERE g.id = ANY(:targets)
              ORDER BY g.geom <-> s.geom LIMIT 1)) AS new_id
  FROM src s
), upd AS (
  UPDATE {table} p SET grid_id = d.new_id FROM dest d
  WHERE p.id = d.id AND d.new_id IS DISTINCT FROM d.old_id
  RETURNING p.id
)
SELECT d.old_id, d.new_id, count(*){sum_col} FROM dest d GROUP BY 1, 2
"""


def _rederive_points(
    session: Session, sources: list[int], targets: list[int], retired: list[int]
) -> dict[str, dict[tuple[int, int], int]]:
    """Move points that left their grid to the grid they now lie in; return the flows."""
    flows: dict[str, dict[tuple[int, int], int]] = {}
    for table in POINT_TABLES:
        houses = table == "houses"
        sql = REDERIVE_SQL.format(
            table=table,
            extra_cols=", p.residents" if houses else "",
            extra_cols_s=", s.residents" if houses else "",
            sum_col=", COALESCE(sum(d.residents), 0)" if houses else "",
        )
        rows = session.execute(
            text(sql), {"sources": sources, "targets": targets, "retired": retired}
        ).all()
        flows[table] = {(r[0], r[1]): int(r[2]) for r in rows}
    return flows


def _rederive_cameras(session: Session, sources: list[int], retired: list[int]) -> None:
    """Re-derive the cameras that left their grid; retired grids are deleted meanwhile."""
    # The derive trigger searches all grids, so a retired grid must be gone before it
    # runs; its cameras are detached first (this update does not fire the trigger).
    detached = [
        r[0]
        for r in session.execute(
            text(
                "UPDATE cameras SET grid_id = NULL, grid_code = NULL "
                "WHERE grid_id = ANY(:retired) RETURNING id"
            ),
            {"retired": retired},
        )
    ]
    if retired:
        session.execute(text("DELETE FROM grids WHERE id = ANY(:ids)"), {"ids": retired})
    # Cameras: their trigger derives grid_id/grid_code (and marks coverage dirty).
    session.execute(
        text(
            """
            UPDATE cameras c SET geom = c.geom
            WHERE c.id = ANY(:detached)
               OR (c.grid_id = ANY(:sources) AND NOT ST_Intersects(
                     (SELECT g.geom FROM grids g WHERE g.id = c.grid_id), c.geom))
            """
        ),
        {"sources": sources, "detached": detached},
    )


def _rederive_matters(session: Session, codes: Sequence[str]) -> int:
    """Re-derive the grid code of the matters of the edited grids; return how many moved.

    Matters keep a grid code, not a grid id, and may number in the hundreds of
    thousands: only those filed under a code the edit wrote, retired or renamed are
    looked at (prefix index), and only rows whose grid actually changes are written.
    Any matter that now lies in an edited grid was filed under one of these codes,
    because the area it lies in belonged to one of them before the edit.
    """
    if not codes:
        return 0
    return session.execute(
        text(
            """
            UPDATE matters m SET grid_code = d.code
            FROM (SELECT x.id, (SELECT g.code FROM grids g WHERE ST_Intersects(g.geom, x.geom)
                                ORDER BY g.code LIMIT 1) AS code
                  FROM matters x WHERE x.grid_code = ANY(:codes)) d
            WHERE d.id = m.id AND m.grid_code IS DISTINCT FROM d.code
            """
        ),
        {"codes": list(codes)},
    ).rowcount


def _split_key_persons(
    session: Session,
    sources: list[int],
    targets: list[int],
    houses_before: Mapping[int, int],
    flows: Mapping[tuple[int, int], int],
    absorbed_by: Mapping[int, int],
) -> None:
    counts: dict[int, dict[str, int]] = {}
    for gid, cat, n in session.execute(
        text("SELECT grid_id, category, count FROM key_person_counts WHERE grid_id = ANY(:ids)"),
        {"ids": sources},
    ):
        counts.setdefault(gid, {})[cat] = n
    if not counts:
        return
    new = editing.split_counts(counts, houses_before, flows, absorbed_by)
    categories = sorted({c for cats in counts.values() for c in cats})
    rows = []
    for gid in sorted(set(targets) | set(new)):
        if gid in absorbed_by:
            continue
        for cat in categories:
            rows.append({"g": gid, "c": cat, "n": new.get(gid, {}).get(cat, 0)})
    session.execute(
        text("DELETE FROM key_person_counts WHERE grid_id = ANY(:ids)"),
        {"ids": sorted(set(sources) | set(targets))},
    )
    if rows:
        session.execute(
            text("INSERT INTO key_person_counts (grid_id, category, count) VALUES (:g, :c, :n)"),
            rows,
        )


def _next_codes(session: Session, community: str, n: int) -> tuple[int, str, list[str]]:
    """Lock the community and return (id, name, n free codes under it, lowest first)."""
    row = session.execute(
        text("SELECT id, name FROM communities WHERE code = :c FOR UPDATE"), {"c": community}
    ).first()
    if row is None:
        raise NotFound("no such community", community=community)
    # Codes once used stay retired in the history: never hand them out again.
    taken = {
        r[0]
        for r in session.execute(
            text(
                "SELECT code FROM grids WHERE code LIKE :p || '%' "
                "UNION SELECT grid_code FROM grid_versions WHERE grid_code LIKE :p || '%'"
            ),
            {"p": community},
        )
    }
    free = [f"{community}{i:03d}" for i in range(1, 1000) if f"{community}{i:03d}" not in taken]
    if len(free) < n:
        raise InvalidInput("the community has no free grid codes left", community=community)
    return row[0], row[1], free[:n]


def _grid_name(community_name: str, code: str) -> str:
    n = int(code[-3:])
    try:
        from geodata.synth_names import ordinal

        number = ordinal(n) if n < 100 else str(n)
    except ImportError:  # the name generator is optional at run time
        number = str(n)
    return f"{community_name}第{number}网格"


def _store(
    session: Session,
    result: EditResult,
    locked: Mapping[str, _Row],
    ctx: EditContext,
    kind: str,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """Write an edit result, its history and everything derived from it."""
    _check_scope(result, ctx.prefix)
    with session.begin_nested():
        return _store_in_savepoint(session, result, locked, ctx, kind, params)


def _check_scope(result: EditResult, prefix: str) -> None:
    """Refuse an edit that would move area of a grid outside the caller's jurisdiction.

    Nodes added to a neighbour's edge (vertices only, no area moves) are allowed:
    they keep the coverage exact and change nothing anyone can see.
    """
    if not prefix:
        return
    touched = (set(result.changed) - set(result.conformed)) | set(result.retired)
    touched |= set(result.retired.values()) | set(result.moved.values())
    touched |= {new.community for new in result.created}
    outside = sorted(c for c in touched if not c.startswith(prefix))
    if outside:
        raise editing.EditRefused(
            "the edit would change grids outside your jurisdiction", codes=outside
        )


def _store_in_savepoint(
    session: Session,
    result: EditResult,
    locked: Mapping[str, _Row],
    ctx: EditContext,
    kind: str,
    params: Mapping[str, Any],
) -> dict[str, Any]:
    edit_id, now = session.execute(
        text(
            "INSERT INTO grid_edits (kind, reason, edited_by, summary) "
            "VALUES (:k, :r, :a, '{}') RETURNING id, edited_at"
        ),
        {"k": kind, "r": ctx.reason, "a": ctx.actor},
    ).one()
    touched = sorted(result.touched())
    touched_ids = [locked[c].id for c in touched]
    # The loaded state becomes version history the first time a grid is edited.
    session.execute(
        text(
            f"""
            INSERT INTO grid_versions (grid_code, version, edit_id, geom, attributes, valid_from)
            SELECT g.code, g.version, NULL, g.geom, {ATTRS_SQL}, LEAST(g.updated_at, :now)
            FROM grids g JOIN communities c ON c.id = g.community_id
            WHERE g.id = ANY(:ids)
              AND NOT EXISTS (SELECT 1 FROM grid_versions v WHERE v.grid_code = g.code)
            """
        ),
        {"ids": touched_ids, "now": now},
    )
    session.execute(
        text(
            "UPDATE grid_versions SET valid_to = :now "
            "WHERE grid_code = ANY(:codes) AND valid_to IS NULL"
        ),
        {"codes": touched, "now": now},
    )
    houses_before = {
        gid: n
        for gid, n in session.execute(
            text("SELECT grid_id, count(*) FROM houses WHERE grid_id = ANY(:ids) GROUP BY 1"),
            {"ids": touched_ids},
        )
    }
    if result.changed:
        session.execute(
            text(
                "UPDATE grids SET geom = ST_GeomFromWKB(:g, 4326), version = version + 1, "
                "updated_at = :now WHERE id = :id"
            ),
            [{"g": _wkb(geom), "id": locked[c].id, "now": now} for c, geom in result.changed.items()],
        )
    created: list[dict[str, Any]] = []
    by_community: dict[str, list[editing.NewGrid]] = {}
    for new in result.created:
        by_community.setdefault(new.community, []).append(new)
    for community, news in sorted(by_community.items()):
        community_id, community_name, codes = _next_codes(session, community, len(news))
        for new, code in zip(news, codes, strict=True):
            src = locked[new.source]
            gid = session.execute(
                text(
                    "INSERT INTO grids (code, name, kind, community_id, geom, version, updated_at) "
                    "VALUES (:code, :name, :kind, :cid, ST_GeomFromWKB(:g, 4326), 1, :now) "
                    "RETURNING id"
                ),
                {
                    "code": code,
                    "name": _grid_name(community_name, code),
                    "kind": src.kind,
                    "cid": community_id,
                    "g": _wkb(new.geom),
                    "now": now,
                },
            ).scalar_one()
            created.append({"id": gid, "code": code, "source": new.source})
    moved: list[dict[str, Any]] = []
    for code, community in sorted(result.moved.items()):
        community_id, _name, (new_code,) = _next_codes(session, community, 1)
        session.execute(
            text(
                "UPDATE grids SET code = :new, community_id = :cid, version = 1, updated_at = :now "
                "WHERE id = :id"
            ),
            {"new": new_code, "cid": community_id, "id": locked[code].id, "now": now},
        )
        moved.append({"id": locked[code].id, "old": code, "code": new_code})
    for community, geom in result.communities.items():
        session.execute(
            text("UPDATE communities SET geom = ST_GeomFromWKB(:g, 4326) WHERE code = :c"),
            {"g": _wkb(geom), "c": community},
        )

    # Re-derive what lies in the grids whose area changed.
    area_changed = [c for c in result.changed if c not in result.conformed]
    retired_ids = [locked[c].id for c in result.retired]
    absorbed_by = {locked[c].id: locked[k].id for c, k in result.retired.items()}
    sources = sorted({locked[c].id for c in area_changed} | set(retired_ids))
    targets = sorted({locked[c].id for c in area_changed} | {c["id"] for c in created})
    if sources:
        flows = _rederive_points(session, sources, targets, retired_ids)
        _split_key_persons(
            session, sources, targets, houses_before, flows["houses"], absorbed_by
        )
    for old_id, keep_id in absorbed_by.items():
        session.execute(
            text("UPDATE grid_workers SET grid_id = :k WHERE grid_id = :o"),
            {"k": keep_id, "o": old_id},
        )
    if sources:
        _rederive_cameras(session, sources, retired_ids)
    if moved:
        # The camera rows carry the grid code: re-derive it for the renamed grid.
        session.execute(
            text("UPDATE cameras SET geom = geom WHERE grid_id = ANY(:ids)"),
            {"ids": [m["id"] for m in moved]},
        )
    # Matters carry only the code; their rows follow the redrawn, retired or renamed grids.
    _rederive_matters(session, sorted(result.touched()))
    if targets:
        refresh_grid_counts(session, targets)

    # History: the new state of every written grid, and the end of retired codes.
    written_ids = sorted(
        {locked[c].id for c in result.changed} | {c["id"] for c in created} | {m["id"] for m in moved}
    )
    session.execute(
        text(
            f"""
            INSERT INTO grid_versions (grid_code, version, edit_id, geom, attributes, valid_from)
            SELECT g.code, g.version, :edit, g.geom, {ATTRS_SQL}, :now
            FROM grids g JOIN communities c ON c.id = g.community_id
            WHERE g.id = ANY(:ids)
            """
        ),
        {"ids": written_ids, "edit": edit_id, "now": now},
    )
    notes: dict[str, dict[str, Any]] = {}
    for c in result.conformed:
        notes.setdefault(c, {})["vertices_only"] = True
    for c in created:
        notes.setdefault(c["code"], {})["split_from"] = c["source"]
    for m in moved:
        notes.setdefault(m["code"], {})["previous_code"] = m["old"]
    for c, keep in result.retired.items():
        notes.setdefault(keep, {}).setdefault("absorbed", []).append(c)
    for code, note in notes.items():
        session.execute(
            text(
                "UPDATE grid_versions SET attributes = attributes || CAST(:n AS jsonb) "
                "WHERE edit_id = :edit AND grid_code = :code"
            ),
            {"n": json.dumps(note, ensure_ascii=False), "edit": edit_id, "code": code},
        )
    ends = [(c, keep, "merged") for c, keep in result.retired.items()]
    ends += [(m["old"], m["code"], "moved") for m in moved]
    if ends:
        session.execute(
            text(
                "INSERT INTO grid_versions (grid_code, version, edit_id, geom, attributes, valid_from) "
                "VALUES (:code, :version, :edit, NULL, CAST(:a AS jsonb), :now)"
            ),
            [
                {
                    "code": code,
                    "version": locked[code].version + 1,
                    "edit": edit_id,
                    "a": json.dumps({"successor": successor, "ended": how}),
                    "now": now,
                }
                for code, successor, how in ends
            ],
        )
    _check_district(session, written_ids)

    grids = _versions_of(session, written_ids)
    summary = {
        "changed": sorted(c for c in result.changed if c not in result.conformed),
        "vertices_only": sorted(result.conformed),
        "created": [c["code"] for c in created],
        "retired": dict(result.retired),
        "moved": {m["old"]: m["code"] for m in moved},
        "params": dict(params),
    }
    session.execute(
        text("UPDATE grid_edits SET summary = CAST(:s AS jsonb) WHERE id = :id"),
        {"s": json.dumps(summary, ensure_ascii=False), "id": edit_id},
    )
    return {
        "edit": edit_id,
        "kind": kind,
        # New grids start without a team and merged ones may have two leaders: say so.
        "team_gaps": teams.problems_by_grid(session, written_ids),
        "edited_at": now.isoformat(),
        "edited_by": ctx.actor,
        "reason": ctx.reason,
        **{k: v for k, v in summary.items() if k != "params"},
        "versions": grids,
    }


def _versions_of(session: Session, ids: Sequence[int]) -> dict[str, int]:
    return {
        code: version
        for code, version in session.execute(
            text("SELECT code, version FROM grids WHERE id = ANY(:ids) ORDER BY code"),
            {"ids": list(ids)},
        )
    }


def _check_district(session: Session, written_ids: Sequence[int]) -> None:
    """Cheap global check: written grids valid, and grid areas add up to the district."""
    row = session.execute(
        text(
            """
            SELECT (SELECT sum(ST_Area(geom)) FROM grids),
                   (SELECT ST_Area(geom) FROM districts LIMIT 1),
                   (SELECT array_agg(code) FROM grids
                     WHERE id = ANY(:ids) AND NOT ST_IsValid(geom))
            """
        ),
        {"ids": list(written_ids)},
    ).one()
    total, district_area, invalid = row
    if invalid:
        raise CoverageBroken("PostGIS finds the new grids invalid", codes=invalid)
    if total is not None and district_area is not None:
        diff = abs(float(total) - float(district_area)) * M2_PER_DEG2
        # Summing ~930 float areas loses a little; 10 m² is far below any real gap.
        if diff > COVERAGE_TOLERANCE_M2 * 10:
            raise CoverageBroken(
                f"the grids' areas no longer add up to the district (off by ≈{diff:,.0f} m²)"
            )


# --------------------------------------------------------------------------- edits


def _conflict_on_deadlock(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Turn a lock deadlock between two concurrent edits into a 409 for the loser."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) in (DEADLOCK, LOCK_NOT_AVAILABLE):
                raise GridEditConflict(
                    "another edit of neighbouring grids ran at the same time; try again"
                ) from None
            raise

    return wrapper


def _load(
    session: Session,
    codes: Sequence[str],
    ctx: EditContext,
    expected: Mapping[str, int],
    extra: BaseGeometry | None = None,
    rings: int = 1,
) -> dict[str, _Row]:
    for code in codes:
        check_code(code, ctx.prefix)
    locked = _lock_neighbourhood(session, codes, extra, rings)
    for code in codes:
        _require_locked(session, locked, code)
    _check_versions(locked, expected)
    return locked


def _geoms(locked: Mapping[str, _Row]) -> dict[str, BaseGeometry]:
    return {c: r.geom for c, r in locked.items()}


@_conflict_on_deadlock
def edit_boundary(
    session: Session,
    code: str,
    geometry: Any,
    *,
    version: int,
    ctx: EditContext,
    neighbour: str | None = None,
    kind: str = "boundary",
    absorbable: Sequence[str] = (),
) -> dict[str, Any]:
    """Give a grid a new boundary (GeoJSON); neighbours give or receive the difference.

    Grids in ``absorbable`` that the new boundary covers entirely are retired into it.
    """
    ctx = ctx.checked()
    check_code(code, ctx.prefix)
    if neighbour not in (None, "auto"):
        check_code(neighbour, ctx.prefix)
    area = district(session)
    geom = editing.parse_polygon(geometry, bounds=_bounds(area))
    locked = _load(session, [code], ctx, {code: version}, extra=geom, rings=2)
    if neighbour not in (None, "auto") and neighbour not in locked:
        raise editing.EditRefused("the receiving grid does not border the edited area", code=neighbour)
    result = editing.replace_boundary(_geoms(locked), code, geom, area, neighbour=neighbour,
                                      absorbable=absorbable)
    return _store(session, result, locked, ctx, kind, {"code": code, "neighbour": neighbour})


@_conflict_on_deadlock
def split(
    session: Session, code: str, line: Any, *, version: int, ctx: EditContext
) -> dict[str, Any]:
    """Split a grid along a GeoJSON LineString; the largest piece keeps the code."""
    ctx = ctx.checked()
    check_code(code, ctx.prefix)
    area = district(session)
    geom = editing.parse_line(line, bounds=_bounds(area))
    locked = _load(session, [code], ctx, {code: version})
    result = editing.split_grid(_geoms(locked), code, geom)
    return _store(session, result, locked, ctx, "split", {"code": code})


@_conflict_on_deadlock
def merge(
    session: Session,
    codes: Sequence[str],
    *,
    versions: Mapping[str, int],
    ctx: EditContext,
    keep: str | None = None,
) -> dict[str, Any]:
    """Merge adjacent grids of one community; ``keep`` (or the first) keeps its code."""
    ctx = ctx.checked()
    codes = list(dict.fromkeys(codes))
    if len(codes) < 2:
        raise InvalidInput("a merge needs at least two grid codes")
    _require_versions(codes, versions)
    locked = _load(session, codes, ctx, {c: versions[c] for c in codes})
    result = editing.merge_grids(_geoms(locked), codes, keep=keep)
    return _store(session, result, locked, ctx, "merge", {"codes": codes, "keep": keep or codes[0]})


@_conflict_on_deadlock
def move_edge(
    session: Session,
    a: str,
    b: str,
    line: Any,
    *,
    versions: Mapping[str, int],
    ctx: EditContext,
) -> dict[str, Any]:
    """Move the shared edge between two grids onto a GeoJSON LineString."""
    ctx = ctx.checked()
    _require_versions([a, b], versions)
    area = district(session)
    geom = editing.parse_line(line, bounds=_bounds(area))
    locked = _load(session, [a, b], ctx, {a: versions[a], b: versions[b]})
    result = editing.move_edge(_geoms(locked), a, b, geom)
    return _store(session, result, locked, ctx, "edge", {"a": a, "b": b})


@_conflict_on_deadlock
def reassign(
    session: Session, code: str, community: str, *, version: int, ctx: EditContext
) -> dict[str, Any]:
    """Move a grid to an adjacent community of the same town; it gets a new code there."""
    ctx = ctx.checked()
    check_code(code, ctx.prefix)
    if not (isinstance(community, str) and community.isdigit() and len(community) == 12):
        raise InvalidInput("a community code has 12 digits", community=str(community)[:40])
    if not community.startswith(ctx.prefix):
        raise NotFound("no such community", community=community)
    source = editing.community_of(code)
    member_codes = [
        r[0]
        for r in session.execute(
            text("SELECT code FROM grids WHERE left(code, 12) = ANY(:c)"),
            {"c": [source, community]},
        )
    ]
    # Grids first, then communities: the same lock order as every other edit.
    locked = _load(session, sorted({code, *member_codes}), ctx, {code: version})
    rows = session.execute(
        text(
            "SELECT code, ST_AsBinary(geom) FROM communities WHERE code = ANY(:c) "
            "ORDER BY id FOR UPDATE"
        ),
        {"c": [source, community]},
    ).all()
    communities = {r[0]: wkb.loads(bytes(r[1])) for r in rows}
    if community not in communities:
        raise NotFound("no such community", community=community)
    grids = {c: r.geom for c, r in locked.items() if editing.community_of(c) in (source, community)}
    result = editing.reassign(grids, code, community, communities)
    return _store(session, result, locked, ctx, "reassign", {"code": code, "community": community})


def revert(
    session: Session, code: str, to_version: int, *, version: int, ctx: EditContext
) -> dict[str, Any]:
    """Give a grid the boundary it had at ``to_version`` (an edit like any other).

    Reverting to a version before a split undoes it: a grid split off this one since
    then, which the old boundary covers entirely, is retired into it (its team and
    everything in it come back). Any other grid that would vanish is refused.
    """
    check_code(code, ctx.prefix)
    target = version_geometry(session, code, to_version, prefix=ctx.prefix)
    if target is None:
        raise InvalidInput(f"version {to_version} of grid {code} has no boundary (retired)")
    return edit_boundary(
        session,
        code,
        mapping(target),
        version=version,
        ctx=EditContext(ctx.actor, ctx.reason or f"revert to version {to_version}", ctx.prefix),
        neighbour="auto",
        kind="revert",
        absorbable=_split_off_since(session, code, to_version),
    )


def _split_off_since(session: Session, code: str, version: int) -> list[str]:
    """Return the live grids split off ``code`` after its ``version``."""
    return list(session.execute(
        text(
            """
            SELECT v.grid_code FROM grid_versions v
            JOIN grid_versions src ON src.edit_id = v.edit_id AND src.grid_code = :c
            JOIN grids g ON g.code = v.grid_code
            WHERE v.attributes->>'split_from' = :c AND v.version = 1 AND src.version > :v
            """
        ),
        {"c": code, "v": version},
    ).scalars())


@_conflict_on_deadlock
def upload(session: Session, data: bytes, filename: str, *, ctx: EditContext) -> dict[str, Any]:
    """Replace the uploaded grids' boundaries (GeoJSON/GPKG with code + version); all or none."""
    from pathlib import PurePath

    from geodata.io import ImportRejected, read_features

    ctx = ctx.checked()
    suffix = PurePath(filename or "").suffix.lower()
    fmt = {".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg"}.get(suffix)
    if fmt is None:
        raise InvalidInput("upload a .geojson, .json or .gpkg file", filename=str(filename)[:80])
    try:
        result = read_features(
            data,
            fmt=fmt,
            expected_geom={"Polygon", "MultiPolygon"},
            required_columns=("code", "version"),
            max_features=MAX_UPLOAD_FEATURES,
            max_vertices_per_feature=editing.MAX_VERTICES,
        )
    except ImportRejected as exc:
        raise InvalidInput(
            f"{len(exc.errors)} problem(s) in the file; nothing was changed",
            errors=[e._asdict() for e in exc.errors],
        ) from None
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    frame, warnings = result.frame, [w._asdict() for w in result.warnings]
    new: dict[str, BaseGeometry] = {}
    expected: dict[str, int] = {}
    errors = []
    for row_no, (code, version, geom) in enumerate(
        zip(frame["code"], frame["version"], frame.geometry, strict=True), start=1
    ):
        code = str(code).strip()
        try:
            check_code(code, ctx.prefix)
            if isinstance(version, np.integer | float) and float(version).is_integer():
                version = int(version)
            expected[code] = parse_version(version)
            if code in new:
                raise InvalidInput("the code appears twice")
            new[code] = editing.check_polygonal(geom)
        except (InvalidInput, NotFound, ValueError, TypeError) as exc:
            errors.append({"row": row_no, "code": code, "reason": getattr(exc, "reason", str(exc))})
    if errors:
        raise InvalidInput(f"{len(errors)} problem(s) in the file; nothing was changed", errors=errors)
    if not new:
        raise InvalidInput("the file has no features")
    area = district(session)
    union = shapely.union_all(np.array(list(new.values()), dtype=object))
    locked = _load(session, sorted(new), ctx, expected, extra=union, rings=1)
    result = editing.replace_block(_geoms(locked), new, area)
    stored = _store(session, result, locked, ctx, "upload", {"codes": sorted(new), "file": filename})
    # What the reader did to the file (coordinates transformed, Z dropped), for the uploader.
    return {**stored, "warnings": warnings}


def _require_versions(codes: Sequence[str], versions: Mapping[str, int]) -> None:
    missing = [c for c in codes if c not in versions]
    if missing:
        raise InvalidInput("give the version you edited for every grid", missing=missing)


def adjacent(session: Session, code: str, *, prefix: str = "") -> dict[str, Any]:
    """Return a grid with the grids it shares an edge with and the communities it borders."""
    check_code(code, prefix)
    grid = session.execute(
        text(
            "SELECT g.version, g.name, ST_AsGeoJSON(g.geom)::json AS geometry "
            "FROM grids g WHERE g.code = :c"
        ),
        {"c": code},
    ).mappings().first()
    if grid is None:
        raise NotFound("no such grid", code=code)
    rows = session.execute(
        text(
            """
            SELECT n.code, n.name, n.version, left(n.code, 12) = left(g.code, 12) AS same_community,
                   ST_Length(ST_Intersection(ST_Boundary(g.geom), ST_Boundary(n.geom))::geography)
                     AS shared_m
            FROM grids g JOIN grids n
              ON n.id <> g.id AND n.geom && g.geom AND ST_Intersects(n.geom, g.geom)
            WHERE g.code = :c AND n.code LIKE :p || '%'
            ORDER BY 5 DESC
            """
        ),
        {"c": code, "p": prefix},
    ).mappings()
    grids = [
        {**dict(r), "shared_m": round(float(r["shared_m"]), 1)} for r in rows if r["shared_m"] > 0
    ]
    communities = session.execute(
        text(
            """
            SELECT c.code, c.name FROM communities c JOIN grids g ON g.code = :c
            WHERE c.code <> left(g.code, 12) AND left(c.code, 9) = left(g.code, 9)
              AND c.code LIKE :p || '%' AND c.geom && g.geom
              AND ST_Length(ST_Intersection(ST_Boundary(c.geom), ST_Boundary(g.geom))) > 0
            ORDER BY c.code
            """
        ),
        {"c": code, "p": prefix[:12]},
    ).mappings()
    return {
        "code": code,
        "name": grid["name"],
        "version": grid["version"],
        "geometry": grid["geometry"],
        "grids": grids,
        "communities": [dict(r) for r in communities],
    }


# --------------------------------------------------------------------------- history


def _grid_exists(session: Session, code: str) -> bool:
    return bool(session.execute(text("SELECT 1 FROM grids WHERE code = :c"), {"c": code}).first())


def versions(session: Session, code: str, *, prefix: str = "") -> list[dict[str, Any]]:
    """Return a grid's versions, oldest first (the loaded state is the first)."""
    check_code(code, prefix)
    rows = session.execute(
        text(
            """
            SELECT v.version, v.valid_from, v.valid_to, v.geom IS NULL AS retired,
                   v.attributes, e.id AS edit, e.kind, e.reason, e.edited_by,
                   CASE WHEN v.geom IS NULL THEN NULL ELSE ST_Area(v.geom::geography) END AS area_m2
            FROM grid_versions v LEFT JOIN grid_edits e ON e.id = v.edit_id
            WHERE v.grid_code = :c ORDER BY v.version
            """
        ),
        {"c": code},
    ).mappings().all()
    if rows:
        return [_version_dict(r) for r in rows]
    current = session.execute(
        text(
            f"""
            SELECT g.version, g.updated_at AS valid_from, NULL AS valid_to, false AS retired,
                   {ATTRS_SQL} AS attributes, NULL AS edit, 'loaded' AS kind, NULL AS reason,
                   NULL AS edited_by, ST_Area(g.geom::geography) AS area_m2
            FROM grids g JOIN communities c ON c.id = g.community_id WHERE g.code = :c
            """
        ),
        {"c": code},
    ).mappings().first()
    if current is None:
        raise NotFound("no such grid", code=code)
    return [_version_dict(current)]


def _version_dict(r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "version": r["version"],
        "kind": r["kind"] or "loaded",
        "reason": r["reason"],
        "edited_by": r["edited_by"],
        "edit": r["edit"],
        "valid_from": _iso(r["valid_from"]),
        "valid_to": _iso(r["valid_to"]),
        "current": r["valid_to"] is None and not r["retired"],
        "retired": bool(r["retired"]),
        "area_m2": None if r["area_m2"] is None else round(float(r["area_m2"]), 1),
        "attributes": r["attributes"],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def version_geometry(
    session: Session, code: str, version: int, *, prefix: str = ""
) -> BaseGeometry | None:
    """Return a grid's geometry at a version (None for a retirement row)."""
    check_code(code, prefix)
    row = session.execute(
        text(
            "SELECT ST_AsBinary(geom), geom IS NULL FROM grid_versions "
            "WHERE grid_code = :c AND version = :v"
        ),
        {"c": code, "v": version},
    ).first()
    if row is None:
        # A grid never edited has exactly one version: the current one.
        row = session.execute(
            text("SELECT ST_AsBinary(geom), false FROM grids WHERE code = :c AND version = :v"),
            {"c": code, "v": version},
        ).first()
        if row is None or _has_history(session, code):
            raise NotFound("no such version", code=code, version=version)
    return None if row[1] else wkb.loads(bytes(row[0]))


def _has_history(session: Session, code: str) -> bool:
    return bool(
        session.execute(
            text("SELECT 1 FROM grid_versions WHERE grid_code = :c LIMIT 1"), {"c": code}
        ).first()
    )


def version_feature(session: Session, code: str, version: int, *, prefix: str = "") -> dict[str, Any]:
    """Return one version as a GeoJSON Feature with its metadata."""
    meta = next((v for v in versions(session, code, prefix=prefix) if v["version"] == version), None)
    if meta is None:
        raise NotFound("no such version", code=code, version=version)
    geom = version_geometry(session, code, version, prefix=prefix)
    return {
        "type": "Feature",
        "id": f"{code}@{version}",
        "geometry": None if geom is None else mapping(geom),
        "properties": {"code": code, **meta},
    }


def compare(session: Session, code: str, a: int, b: int, *, prefix: str = "") -> dict[str, Any]:
    """Return two versions and what changed between them (GeoJSON)."""
    fa = version_feature(session, code, a, prefix=prefix)
    fb = version_feature(session, code, b, prefix=prefix)
    ga = version_geometry(session, code, a, prefix=prefix)
    gb = version_geometry(session, code, b, prefix=prefix)
    empty = shapely.MultiPolygon()
    ga = empty if ga is None else ga
    gb = empty if gb is None else gb
    gained = editing.as_multi(shapely.difference(gb, ga))
    lost = editing.as_multi(shapely.difference(ga, gb))
    sym = editing.as_multi(shapely.symmetric_difference(ga, gb))
    return {
        "code": code,
        "a": fa,
        "b": fb,
        "difference": {
            "type": "Feature",
            "geometry": mapping(sym),
            "properties": {"area_m2": round(editing.area_m2(sym), 1)},
        },
        "gained": {
            "type": "Feature",
            "geometry": mapping(gained),
            "properties": {"area_m2": round(editing.area_m2(gained), 1)},
        },
        "lost": {
            "type": "Feature",
            "geometry": mapping(lost),
            "properties": {"area_m2": round(editing.area_m2(lost), 1)},
        },
    }


AS_OF_SQL = """
SELECT v.grid_code AS code, v.version, ST_AsBinary(v.geom) AS wkb,
       v.attributes->>'name' AS name, v.attributes->>'kind' AS kind,
       v.attributes->>'community' AS community, v.valid_from
FROM grid_versions v
WHERE v.geom IS NOT NULL AND v.grid_code LIKE :prefix || '%'
  AND (v.edit_id IS NULL OR v.valid_from <= :at)
  AND (v.valid_to IS NULL OR v.valid_to > :at)
UNION ALL
SELECT g.code, g.version, ST_AsBinary(g.geom), g.name, g.kind, c.code, g.updated_at
FROM grids g JOIN communities c ON c.id = g.community_id
WHERE g.code LIKE :prefix || '%'
  AND NOT EXISTS (SELECT 1 FROM grid_versions v WHERE v.grid_code = g.code)
ORDER BY 1
"""

CURRENT_SQL = """
SELECT g.code, g.version, ST_AsBinary(g.geom) AS wkb, g.name, g.kind, c.code AS community,
       g.updated_at AS valid_from
FROM grids g JOIN communities c ON c.id = g.community_id
WHERE g.code LIKE :prefix || '%' ORDER BY g.code
"""


# The earliest recorded state of any grid: a grid's first version (kept in
# grid_versions once it is edited) or, for one never edited, when it was loaded.
RECORDS_BEGIN_SQL = """
SELECT LEAST((SELECT min(valid_from) FROM grid_versions WHERE edit_id IS NULL),
             (SELECT min(updated_at) FROM grids))
"""


def records_begin(session: Session) -> datetime | None:
    """Return when the grid records begin (None with no grids)."""
    return session.execute(text(RECORDS_BEGIN_SQL)).scalar()


def grids_frame(session: Session, *, as_of: datetime | None = None, prefix: str = "") -> gpd.GeoDataFrame:
    """Return the grids in force now, or at ``as_of``, as a GeoDataFrame (EPSG:4326)."""
    if as_of is None:
        rows = session.execute(text(CURRENT_SQL), {"prefix": prefix}).mappings().all()
    else:
        # Before the records begin nothing is known; answering the first recorded
        # state would pass today's boundaries off as those of that date.
        begin = records_begin(session)
        if begin is not None and as_of < begin:
            raise InvalidInput("as_of is before the grid records begin (records_begin)",
                               as_of=as_of.isoformat(), records_begin=begin.isoformat())
        rows = session.execute(text(AS_OF_SQL), {"prefix": prefix, "at": as_of}).mappings().all()
    # Short ASCII column names: Shapefile fields are at most 10 bytes.
    return gpd.GeoDataFrame(
        {
            "code": [r["code"] for r in rows],
            "name": [r["name"] for r in rows],
            "kind": [r["kind"] for r in rows],
            "community": [r["community"] for r in rows],
            "version": [int(r["version"]) for r in rows],
            "since": [_iso(r["valid_from"]) or "" for r in rows],
        },
        geometry=[wkb.loads(bytes(r["wkb"])) for r in rows],
        crs="EPSG:4326",
    )


def communities_frame(
    session: Session, *, as_of: datetime | None = None, prefix: str = ""
) -> gpd.GeoDataFrame:
    """Return the communities as their grids made them, now or at ``as_of``.

    Every grid version records its community, so a community's boundary at any date
    is the union of its grids then: reassigning a grid keeps the old boundaries.
    """
    grids = grids_frame(session, as_of=as_of, prefix=prefix)
    # The grids are a coverage: the coverage union is exact and fast.
    merged = grids.dissolve(by="community", aggfunc={"code": "count"}, method="coverage")
    names = dict(session.execute(text("SELECT code, name FROM communities")).all())
    codes = list(merged.index)
    return gpd.GeoDataFrame(
        {
            "code": codes,
            "name": [names.get(code, "") for code in codes],
            "grids": [int(n) for n in merged["code"]],
        },
        geometry=[editing.as_multi(g) for g in merged.geometry],
        crs="EPSG:4326",
    )


# level → (what the file and its layer are called, the frame)
EXPORT_LEVELS = {"grid": ("grids", grids_frame), "community": ("communities", communities_frame)}


def export(
    session: Session, fmt: str, *, as_of: datetime | None = None, prefix: str = "",
    level: str = "grid",
) -> bytes:
    """Export the grids or communities (now or as of a date) as GeoJSON, GeoPackage or Shapefile."""
    from geodata.io import write_features

    if fmt not in EXPORT_FORMATS:
        raise InvalidInput("format must be geojson, gpkg or shp", format=fmt)
    if level not in EXPORT_LEVELS:
        raise InvalidInput("level must be grid or community", level=str(level)[:20])
    layer, make_frame = EXPORT_LEVELS[level]
    return write_features(make_frame(session, as_of=as_of, prefix=prefix), EXPORT_FORMATS[fmt],
                          layer=layer)


__all__ = [
    "CoverageBroken",
    "EditContext",
    "adjacent",
    "GridEditConflict",
    "InvalidGeometry",
    "compare",
    "edit_boundary",
    "export",
    "grids_frame",
    "communities_frame",
    "merge",
    "move_edge",
    "reassign",
    "records_begin",
    "revert",
    "split",
    "upload",
    "version_feature",
    "version_geometry",
    "versions",
]
