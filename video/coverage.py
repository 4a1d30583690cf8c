"""Video coverage per grid and town, computed in PostGIS from the view sectors.

A grid's covered area is the union of the view sectors of its online cameras
clipped to the grid; the rest is its blind spots. Triggers mark grids dirty when
cameras or grids change; ``refresh_dirty`` recomputes just those, so the layer is
always current without recomputing the whole district on every status flip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

REFRESH_SQL = """
WITH target AS (
  SELECT g.id, g.geom FROM grids g WHERE g.id = ANY(CAST(:ids AS integer[]))
), seen AS (
  SELECT t.id,
         ST_Intersection(t.geom, ST_UnaryUnion(ST_Collect(c.view_sector))) AS geom,
         count(c.id) FILTER (WHERE c.grid_id = t.id) AS cameras_online
  FROM target t
  LEFT JOIN cameras c
    ON c.status = 'online' AND c.view_sector && t.geom
   AND ST_Intersects(c.view_sector, t.geom)
  GROUP BY t.id, t.geom
)
INSERT INTO grid_coverage AS gc (grid_id, area_share, houses_seen, houses_total,
                                 places_seen, places_total, cameras_online, blind, computed_at)
SELECT t.id,
       CASE WHEN s.geom IS NULL THEN 0
            ELSE LEAST(1.0, ST_Area(s.geom::geography) / NULLIF(ST_Area(t.geom::geography), 0))
       END,
       (SELECT count(*) FROM houses h WHERE h.grid_id = t.id
          AND s.geom IS NOT NULL AND ST_Intersects(s.geom, h.geom)),
       (SELECT count(*) FROM houses h WHERE h.grid_id = t.id),
       (SELECT count(*) FROM key_places p WHERE p.grid_id = t.id
          AND s.geom IS NOT NULL AND ST_Intersects(s.geom, p.geom)),
       (SELECT count(*) FROM key_places p WHERE p.grid_id = t.id),
       s.cameras_online,
       ST_Multi(ST_CollectionExtract(
         CASE WHEN s.geom IS NULL THEN t.geom ELSE ST_Difference(t.geom, s.geom) END, 3)),
       now()
FROM target t JOIN seen s ON s.id = t.id
ON CONFLICT (grid_id) DO UPDATE SET
  area_share = EXCLUDED.area_share, houses_seen = EXCLUDED.houses_seen,
  houses_total = EXCLUDED.houses_total, places_seen = EXCLUDED.places_seen,
  places_total = EXCLUDED.places_total, cameras_online = EXCLUDED.cameras_online,
  blind = EXCLUDED.blind, computed_at = EXCLUDED.computed_at
"""


def refresh(session: Session, grid_ids: Sequence[int]) -> int:
    """Recompute coverage for the given grids; return how many were refreshed."""
    if not grid_ids:
        return 0
    session.execute(text(REFRESH_SQL), {"ids": list(grid_ids)})
    session.execute(
        text("DELETE FROM coverage_dirty WHERE grid_id = ANY(CAST(:ids AS integer[]))"),
        {"ids": list(grid_ids)},
    )
    return len(grid_ids)


def refresh_dirty(session: Session, limit: int | None = None) -> int:
    """Recompute the grids marked dirty (oldest first is irrelevant: all are stale)."""
    ids = [
        r[0]
        for r in session.execute(
            text(
                "SELECT grid_id FROM coverage_dirty ORDER BY grid_id "
                "FOR UPDATE SKIP LOCKED LIMIT :limit"
            ),
            {"limit": limit},
        )
    ]
    return refresh(session, ids)


def refresh_all(session: Session) -> int:
    """Recompute coverage for every grid."""
    ids = [r[0] for r in session.execute(text("SELECT id FROM grids ORDER BY id"))]
    return refresh(session, ids)


def grids_geojson(session: Session, prefix: str = "") -> str:
    """Return per-grid coverage as a GeoJSON choropleth (grid polygons with shares)."""
    return session.execute(
        text(
            """
            SELECT json_build_object('type', 'FeatureCollection', 'features',
              COALESCE(json_agg(json_build_object(
                'type', 'Feature', 'id', g.code,
                'geometry', ST_AsGeoJSON(g.geom, 5)::json,
                'properties', json_build_object(
                  'code', g.code, 'name', g.name,
                  'area_share', round(COALESCE(gc.area_share, 0)::numeric, 4),
                  'houses_seen', COALESCE(gc.houses_seen, 0),
                  'houses_total', COALESCE(gc.houses_total, g.houses),
                  'places_seen', COALESCE(gc.places_seen, 0),
                  'places_total', COALESCE(gc.places_total, g.key_places),
                  'cameras_online', COALESCE(gc.cameras_online, 0))
              ) ORDER BY g.code), '[]'::json))::text
            FROM grids g LEFT JOIN grid_coverage gc ON gc.grid_id = g.id
            WHERE g.code LIKE :prefix || '%'
            """
        ),
        {"prefix": prefix},
    ).scalar_one()


def blind_geojson(
    session: Session,
    west: float,
    south: float,
    east: float,
    north: float,
    prefix: str = "",
) -> str:
    """Return the blind-spot polygons inside a bbox as GeoJSON."""
    from gridmap.queries import check_bbox

    check_bbox(west, south, east, north)
    return session.execute(
        text(
            """
            SELECT json_build_object('type', 'FeatureCollection', 'features',
              COALESCE(json_agg(json_build_object(
                'type', 'Feature', 'id', g.code,
                'geometry', ST_AsGeoJSON(
                   ST_Intersection(gc.blind, ST_MakeEnvelope(:w, :s, :e, :n, 4326)), 5)::json,
                'properties', json_build_object('code', g.code))), '[]'::json))::text
            FROM grid_coverage gc JOIN grids g ON g.id = gc.grid_id
            WHERE gc.blind && ST_MakeEnvelope(:w, :s, :e, :n, 4326)
              AND g.code LIKE :prefix || '%'
            """
        ),
        {"w": west, "s": south, "e": east, "n": north, "prefix": prefix},
    ).scalar_one()


def by_town(session: Session, prefix: str = "") -> list[dict[str, Any]]:
    """Return coverage rolled up per town (area-weighted share, houses, places)."""
    rows = session.execute(
        text(
            """
            SELECT t.code, t.name,
                   COALESCE(sum(gc.area_share * ST_Area(g.geom::geography))
                            / NULLIF(sum(ST_Area(g.geom::geography)), 0), 0) AS area_share,
                   COALESCE(sum(gc.houses_seen), 0) AS houses_seen,
                   COALESCE(sum(g.houses), 0) AS houses_total,
                   COALESCE(sum(gc.places_seen), 0) AS places_seen,
                   COALESCE(sum(g.key_places), 0) AS places_total
            FROM towns t
            JOIN communities c ON c.town_id = t.id
            JOIN grids g ON g.community_id = c.id
            LEFT JOIN grid_coverage gc ON gc.grid_id = g.id
            WHERE g.code LIKE :prefix || '%'
            GROUP BY t.code, t.name ORDER BY t.code
            """
        ),
        {"prefix": prefix},
    ).mappings()
    return [{**dict(r), "area_share": round(float(r["area_share"]), 4)} for r in rows]
