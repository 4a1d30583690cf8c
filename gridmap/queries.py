"""Spatial queries on the grid model. All filtering happens in PostGIS."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInput, NotFound
from gridmap.teams import staffing_problems

DISTRICT_BBOX = (116.55, 35.35, 116.95, 35.77)  # generous WGS-84 box around 370812
CODE_LENGTHS = {6: "district", 9: "town", 12: "community", 15: "grid"}
MAX_BBOX_DEGREES = 1.0


def check_lon_lat(lon: float, lat: float) -> None:
    """Raise InvalidInput unless (lon, lat) is a finite WGS-84 point near the district."""
    west, south, east, north = DISTRICT_BBOX
    if not (west <= lon <= east and south <= lat <= north):
        raise InvalidInput(
            f"point ({lon}, {lat}) is outside the district's area",
            lon=lon,
            lat=lat,
        )


def check_code(code: str) -> str:
    """Return the code if it is a 6/9/12/15-digit area code, else raise InvalidInput."""
    if not (code.isascii() and code.isdigit() and len(code) in CODE_LENGTHS):
        raise InvalidInput("an area code has 6, 9, 12 or 15 digits", code=code)
    return code


def check_bbox(west: float, south: float, east: float, north: float) -> None:
    """Raise InvalidInput for an inverted, empty or oversized bbox."""
    if not (west < east and south < north):
        raise InvalidInput("bbox must be west,south,east,north with west<east and south<north")
    if east - west > MAX_BBOX_DEGREES or north - south > MAX_BBOX_DEGREES:
        raise InvalidInput(f"bbox spans more than {MAX_BBOX_DEGREES} degrees")


def grid_at_point(session: Session, lon: float, lat: float, prefix: str = "") -> dict[str, Any]:
    """Return the grid containing a WGS-84 point (code, name, community, town) within a prefix."""
    check_lon_lat(lon, lat)
    row = session.execute(
        text(
            """
            SELECT g.id, g.code, g.name, g.kind, c.code AS community_code,
                   c.name AS community_name, t.code AS town_code, t.name AS town_name
            FROM grids g
            JOIN communities c ON c.id = g.community_id
            JOIN towns t ON t.id = c.town_id
            WHERE ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
              AND g.code LIKE :prefix || '%'
            ORDER BY g.code
            LIMIT 1
            """
        ),
        {"lon": lon, "lat": lat, "prefix": prefix},
    ).mappings().first()
    if row is None:
        raise NotFound("no grid contains this point", lon=lon, lat=lat)
    return dict(row)


def grids_in_bbox(
    session: Session, west: float, south: float, east: float, north: float, prefix: str = ""
) -> list[dict[str, Any]]:
    """Return grids (code, name, kind) intersecting a bbox, within a code prefix."""
    check_bbox(west, south, east, north)
    rows = session.execute(
        text(
            """
            SELECT g.code, g.name, g.kind FROM grids g
            WHERE g.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)
              AND ST_Intersects(g.geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326))
              AND g.code LIKE :prefix || '%'
            ORDER BY g.code
            """
        ),
        {"w": west, "s": south, "e": east, "n": north, "prefix": prefix},
    ).mappings()
    return [dict(r) for r in rows]


def grid_by_code(session: Session, code: str, prefix: str = "") -> dict[str, Any]:
    """Return one grid with its team, counts and key-person categories, within a prefix."""
    check_code(code)
    row = session.execute(
        text(
            """
            SELECT g.id, g.code, g.name, g.kind, g.version, g.houses, g.residents,
                   g.key_persons, g.key_places, g.components,
                   c.code AS community_code, c.name AS community_name,
                   t.code AS town_code, t.name AS town_name,
                   ST_Area(g.geom::geography) AS area_m2,
                   ST_AsGeoJSON(ST_Centroid(g.geom), 6)::json AS centroid,
                   ST_AsGeoJSON(ST_Envelope(g.geom), 6)::json AS bbox
            FROM grids g
            JOIN communities c ON c.id = g.community_id
            JOIN towns t ON t.id = c.town_id
            WHERE g.code = :code AND g.code LIKE :prefix || '%'
            """
        ),
        {"code": code, "prefix": prefix},
    ).mappings().first()
    if row is None:
        raise NotFound("no such grid", code=code)
    grid = dict(row)
    grid["workers"] = [
        dict(r)
        for r in session.execute(
            text("SELECT role, name, phone FROM grid_workers "
                 "WHERE grid_id = :id AND left_at IS NULL ORDER BY id"),
            {"id": grid["id"]},
        ).mappings()
    ]
    grid["team_problems"] = staffing_problems(w["role"] for w in grid["workers"])
    grid["key_person_categories"] = {
        cat: n
        for cat, n in session.execute(
            text(
                "SELECT category, count FROM key_person_counts WHERE grid_id = :id "
                "ORDER BY category"
            ),
            {"id": grid["id"]},
        )
    }
    del grid["id"]
    return grid


def hierarchy(session: Session, code: str) -> list[dict[str, str]]:
    """Return the chain district → town → community → grid down to ``code``."""
    check_code(code)
    rows = session.execute(
        text(
            """
            SELECT 'district' AS level, code, name FROM districts WHERE code = left(:code, 6)
            UNION ALL
            SELECT 'town', code, name FROM towns WHERE length(:code) >= 9
                   AND code = left(:code, 9)
            UNION ALL
            SELECT 'community', code, name FROM communities WHERE length(:code) >= 12
                   AND code = left(:code, 12)
            UNION ALL
            SELECT 'grid', code, name FROM grids WHERE length(:code) = 15 AND code = :code
            """
        ),
        {"code": code},
    ).mappings()
    chain = [dict(r) for r in rows]
    if len(chain) != [6, 9, 12, 15].index(len(code)) + 1:
        raise NotFound("no such area", code=code)
    return chain


def _feature_collection(session: Session, sql: str, params: dict[str, Any]) -> str:
    """Run a query returning one row of GeoJSON text."""
    return session.execute(text(sql), params).scalar_one()


GRID_FEATURES_SQL = """
SELECT json_build_object('type', 'FeatureCollection', 'features',
         COALESCE(json_agg(json_build_object(
           'type', 'Feature',
           'id', g.code,
           'geometry', ST_AsGeoJSON(g.geom, :digits)::json,
           'properties', json_build_object(
              'code', g.code, 'name', g.name, 'kind', g.kind,
              'community', c.name, 'town', t.name,
              'houses', g.houses, 'residents', g.residents,
              'key_persons', g.key_persons, 'key_places', g.key_places,
              'components', g.components, 'version', g.version)
         ) ORDER BY g.code), '[]'::json))::text
FROM grids g
JOIN communities c ON c.id = g.community_id
JOIN towns t ON t.id = c.town_id
WHERE g.code LIKE :prefix || '%'
"""

AREA_FEATURES_SQL = """
SELECT json_build_object('type', 'FeatureCollection', 'features',
         COALESCE(json_agg(json_build_object(
           'type', 'Feature',
           'id', a.code,
           'geometry', ST_AsGeoJSON(a.geom, :digits)::json,
           'properties', json_build_object('code', a.code, 'name', a.name, 'kind', a.kind)
         ) ORDER BY a.code), '[]'::json))::text
FROM {table} a
WHERE a.code LIKE :prefix || '%'
"""


def grids_geojson(session: Session, prefix: str = "", digits: int = 6) -> str:
    """Return all grids under a code prefix as GeoJSON text (built in PostGIS)."""
    return _feature_collection(session, GRID_FEATURES_SQL, {"prefix": prefix, "digits": digits})


def areas_geojson(session: Session, level: str, prefix: str = "", digits: int = 6) -> str:
    """Return towns or communities under a prefix as GeoJSON text."""
    table = {"town": "towns", "community": "communities"}.get(level)
    if table is None:
        raise InvalidInput("level must be town or community", level=level)
    sql = AREA_FEATURES_SQL.format(table=table)
    return _feature_collection(session, sql, {"prefix": prefix, "digits": digits})


def district_summary(session: Session, prefix: str = "") -> dict[str, Any]:
    """Return totals (grids, houses, residents, ...) of the grids under a prefix."""
    row = session.execute(
        text(
            """
            SELECT count(*) AS grids, COALESCE(sum(houses), 0) AS houses,
                   COALESCE(sum(residents), 0) AS residents,
                   COALESCE(sum(key_persons), 0) AS key_persons,
                   COALESCE(sum(key_places), 0) AS key_places,
                   COALESCE(sum(components), 0) AS components,
                   ST_AsGeoJSON(ST_Extent(geom)::geometry, 6)::json AS extent
            FROM grids WHERE code LIKE :prefix || '%'
            """
        ),
        {"prefix": prefix},
    ).mappings().one()
    return {k: (int(v) if isinstance(v, int | float) else v) for k, v in row.items()}


def loads(text_json: str) -> Any:
    """Parse JSON produced by PostGIS (tests and callers that need Python objects)."""
    return json.loads(text_json)
