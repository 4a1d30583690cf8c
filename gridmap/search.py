"""Free-text search over grids, communities, towns, cameras and key places.

The matching runs in PostgreSQL in one statement: exact code or name first, then
prefixes, then names containing the query, then "address-like" matches where every
word of the query appears in the object's town + community + name. Areas and places
are narrowed to the caller's area prefix, cameras to the caller's camera visibility
(a WHERE fragment from the web layer's scope, on the alias ``cam``).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInput

MAX_QUERY_LENGTH = 40
MAX_TERMS = 4
MAX_LIMIT = 50
PER_TYPE = 8
RESULT_TYPES = ("grid", "community", "town", "camera", "place")
# Punctuation that occurs in place and camera names (road cameras are named by their
# stake number, K9+837); anything else is refused so LIKE wildcards, quotes, markup
# and control characters never reach the query.
ALLOWED_PUNCTUATION = frozenset(" -·.()（）#/、+")
ALLOWED_TEXT = "letters, digits, spaces and - · . ( ) # / 、 +"

SEARCH_SQL = """
WITH hits AS (
  SELECT 'grid' AS type, 1 AS type_rank, g.code AS id, g.name,
         concat_ws(' · ', t.name, c.name) AS detail, g.kind AS kind,
         CASE WHEN g.code = :q OR g.name = :q THEN 0
              WHEN g.code LIKE :prefix OR g.name ILIKE :prefix THEN 1
              WHEN g.name ILIKE :contains THEN 2 ELSE 3 END AS rank,
         g.geom
  FROM grids g
  JOIN communities c ON c.id = g.community_id
  JOIN towns t ON t.id = c.town_id
  WHERE g.code LIKE :scope || '%'
    AND (g.code LIKE :prefix
         OR concat(t.name, c.name, g.name) ILIKE ALL (CAST(:terms AS text[])))
  UNION ALL
  SELECT 'community', 2, c.code, c.name, t.name, c.kind,
         CASE WHEN c.code = :q OR c.name = :q THEN 0
              WHEN c.code LIKE :prefix OR c.name ILIKE :prefix THEN 1
              WHEN c.name ILIKE :contains THEN 2 ELSE 3 END,
         c.geom
  FROM communities c
  JOIN towns t ON t.id = c.town_id
  WHERE c.code LIKE :scope || '%'
    AND (c.code LIKE :prefix OR concat(t.name, c.name) ILIKE ALL (CAST(:terms AS text[])))
  UNION ALL
  SELECT 'town', 0, t.code, t.name, NULL, t.kind,
         CASE WHEN t.code = :q OR t.name = :q THEN 0
              WHEN t.code LIKE :prefix OR t.name ILIKE :prefix THEN 1 ELSE 2 END,
         t.geom
  FROM towns t
  WHERE t.code LIKE :scope || '%'
    AND (t.code LIKE :prefix OR t.name ILIKE ALL (CAST(:terms AS text[])))
  UNION ALL
  SELECT 'camera', 3, cam.gb_id, cam.name, cam.source, cam.status,
         CASE WHEN cam.gb_id = :q OR cam.name = :q THEN 0
              WHEN cam.gb_id LIKE :prefix OR cam.name ILIKE :prefix THEN 1
              WHEN cam.name ILIKE :contains THEN 2 ELSE 3 END,
         cam.geom
  FROM cameras cam
  WHERE (cam.gb_id LIKE :prefix OR cam.name ILIKE ALL (CAST(:terms AS text[]))) {camera_scope}
  UNION ALL
  SELECT 'place', 4, CAST(p.id AS text), p.name, concat_ws(' · ', t.name, c.name), p.kind,
         CASE WHEN p.name = :q THEN 0 WHEN p.name ILIKE :prefix THEN 1
              WHEN p.name ILIKE :contains THEN 2 ELSE 3 END,
         p.geom
  FROM key_places p
  LEFT JOIN grids g ON g.id = p.grid_id
  LEFT JOIN communities c ON c.id = g.community_id
  LEFT JOIN towns t ON t.id = c.town_id
  WHERE COALESCE(g.code, '') LIKE :scope || '%'
    AND concat(t.name, c.name, p.name) ILIKE ALL (CAST(:terms AS text[]))
), ranked AS (
  SELECT *, row_number() OVER (PARTITION BY type ORDER BY rank, length(name), id) AS n
  FROM hits
)
SELECT type, id, name, detail, kind, rank,
       round(ST_X(ST_PointOnSurface(geom))::numeric, 6) AS lon,
       round(ST_Y(ST_PointOnSurface(geom))::numeric, 6) AS lat,
       CASE WHEN GeometryType(geom) = 'POINT' THEN NULL
            ELSE json_build_array(round(ST_XMin(geom)::numeric, 6),
                                  round(ST_YMin(geom)::numeric, 6),
                                  round(ST_XMax(geom)::numeric, 6),
                                  round(ST_YMax(geom)::numeric, 6)) END AS bbox
FROM ranked
WHERE n <= :per_type
ORDER BY rank, type_rank, length(name), id
LIMIT :limit
"""


def normalize_query(raw: str | None) -> str:
    """Return the query folded to NFKC with single spaces, or raise InvalidInput."""
    if raw is None:
        raise InvalidInput("missing query parameter 'q'")
    # NFKC turns full-width digits and letters (common in IME input) into ASCII.
    q = " ".join(unicodedata.normalize("NFKC", raw).split())
    if not q:
        raise InvalidInput("q must not be empty")
    if len(q) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"q is at most {MAX_QUERY_LENGTH} characters", length=len(q))
    for ch in q:
        if not (ch in ALLOWED_PUNCTUATION or unicodedata.category(ch)[0] in "LN"):
            raise InvalidInput(f"q may contain only {ALLOWED_TEXT}", character=f"U+{ord(ch):04X}")
    if len(q.split()) > MAX_TERMS:
        raise InvalidInput(f"q has at most {MAX_TERMS} words")
    return q


def _like_escape(value: str) -> str:
    """Escape LIKE wildcards (the validator already refuses them; belt and braces)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(
    session: Session,
    raw_query: str | None,
    *,
    prefix: str = "",
    camera_scope: tuple[str, dict[str, Any]] = ("", {}),
    limit: int = 20,
) -> dict:
    """Return typed matches for a query within the caller's area ``prefix`` and camera scope.

    ``camera_scope`` is a ``(" AND ...", params)`` visibility fragment on alias ``cam``
    (``video.registry.Filters.sql("cam")``); the default sees every camera.
    """
    q = normalize_query(raw_query)
    if not 0 < limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be within 1–{MAX_LIMIT}")
    if prefix and not (prefix.isascii() and prefix.isdigit()):
        raise InvalidInput("scope prefix must be digits")
    escaped = _like_escape(q)
    scope_sql, scope_params = camera_scope
    params: dict[str, Any] = {
        **scope_params,
        "q": q,
        "prefix": escaped + "%",
        "contains": "%" + escaped + "%",
        "terms": ["%" + _like_escape(term) + "%" for term in q.split()],
        "scope": prefix,
        "per_type": PER_TYPE,
        "limit": limit,
    }
    sql = SEARCH_SQL.replace("{camera_scope}", scope_sql)
    rows = session.execute(text(sql), params).mappings()
    items = []
    for row in rows:
        item = dict(row)
        item["lon"] = float(item["lon"])
        item["lat"] = float(item["lat"])
        if item["bbox"] is not None:
            item["bbox"] = [float(v) for v in item["bbox"]]
        items.append(item)
    return {"query": q, "count": len(items), "items": items}


def camera_tags(session: Session, camera_scope: tuple[str, dict[str, Any]] = ("", {})) -> list[str]:
    """Return the distinct tags of the cameras in scope (the tag facet of the camera filter).

    ``camera_scope`` is a visibility fragment on alias ``c`` (see ``search``).
    """
    scope_sql, params = camera_scope
    rows = session.execute(
        text(
            f"SELECT DISTINCT unnest(c.tags) AS tag FROM cameras c WHERE TRUE {scope_sql} ORDER BY 1"
        ),
        params,
    )
    return [r[0] for r in rows]
