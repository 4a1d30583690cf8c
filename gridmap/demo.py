"""Load the deterministic Yanzhou demo data set into PostGIS.

Bulk tables go through ``COPY`` (EWKT text is valid geometry input), because
250,000 houses through ORM inserts would take minutes instead of seconds.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Sequence

import pandas as pd
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.boundary import DISTRICT_CODE, DISTRICT_NAME
from geodata.generator import DemoDataset, generate
from gridmap.models import SRID

Progress = Callable[[str], None]

# Tables the demo owns, children first, so a reload can empty them in order.
DEMO_TABLES = (
    "grid_versions",
    "grid_edits",
    "camera_credentials",
    "grid_coverage",
    "coverage_dirty",
    "cameras",
    "city_components",
    "key_places",
    "houses",
    "key_person_counts",
    "grid_workers",
    "grids",
    "communities",
    "towns",
    "districts",
)


def ewkt(geom: BaseGeometry) -> str:
    """Return the EWKT of a WGS-84 geometry, promoting polygons to multipolygons."""
    if isinstance(geom, Polygon):
        geom = MultiPolygon([geom])
    return f"SRID={SRID};{geom.wkt}"


def _copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Stream rows into ``table`` with COPY on the session's own connection."""
    raw = session.connection().connection.driver_connection
    buf = io.StringIO()
    count = 0
    for row in rows:
        buf.write("\t".join(_copy_value(v) for v in row))
        buf.write("\n")
        count += 1
    cols = ", ".join(columns)
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        copy.write(buf.getvalue())
    return count


def _copy_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return r"\N"
    text_value = str(value)
    return text_value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _points(df: pd.DataFrame) -> list[str]:
    return [f"SRID={SRID};POINT({x!r} {y!r})" for x, y in zip(df["lon"], df["lat"], strict=True)]


STAGES = ("generate", "district", "areas", "teams", "houses", "places", "counts", "cameras")


def load_demo(
    session: Session,
    *,
    seed: int = 370812,
    houses: int = 250_000,
    cameras: int = 8_600,
    replace: bool = False,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Generate the seeded data set and load it (replacing old rows if asked)."""
    step = progress or (lambda _msg: None)
    data = generate(seed, houses=houses, cameras=cameras)
    step("generate")
    if replace:
        clear(session)
    counts = load(session, data, progress=step)
    counts.update(load_demo_cameras(session, data))
    step("cameras")
    from gridmap.accounts import ensure_demo_accounts  # units and demo users (issue 6)

    counts["users"] = ensure_demo_accounts(session)
    session.execute(
        text("INSERT INTO dataset_loads (description) VALUES (:d)"),
        {"d": f"demo seed={seed} houses={houses} cameras={cameras}"},
    )
    return counts


def load_demo_cameras(session: Session, data: DemoDataset) -> dict[str, int]:
    """Load the generated cameras once the camera registry exists."""
    from video import coverage, crowd, registry

    loaded = registry.load_generated(session, data.cameras)
    coverage.refresh_all(session)
    crowd.load_demo_calibrations(session)  # issue 5: 'crowd' cameras get a calibration
    return {"cameras": loaded}


def is_loaded(session: Session) -> bool:
    """Return whether grids are already present."""
    return bool(session.execute(text("SELECT EXISTS (SELECT 1 FROM grids)")).scalar())


def clear(session: Session) -> None:
    """Delete every demo-owned row (the caller commits)."""
    session.execute(text("TRUNCATE " + ", ".join(DEMO_TABLES) + " RESTART IDENTITY CASCADE"))


def load(session: Session, data: DemoDataset, progress: Progress | None = None) -> dict[str, int]:
    """Insert the data set; return row counts per table. The caller commits."""
    step = progress or (lambda _msg: None)
    counts: dict[str, int] = {}
    session.execute(
        text("INSERT INTO districts (code, name, geom) VALUES (:c, :n, ST_GeomFromEWKT(:g))"),
        {"c": DISTRICT_CODE, "n": DISTRICT_NAME, "g": ewkt(data.district)},
    )
    step("district")
    counts["towns"] = _copy_rows(
        session,
        "towns",
        ("code", "name", "kind", "district_code", "geom"),
        (
            (r.code, r.name, r.kind, DISTRICT_CODE, ewkt(r.geometry))
            for r in data.towns.itertuples()
        ),
    )
    town_ids = _ids_by_code(session, "towns")
    counts["communities"] = _copy_rows(
        session,
        "communities",
        ("code", "name", "kind", "town_id", "geom"),
        (
            (r.code, r.name, r.kind, town_ids[r.town_code], ewkt(r.geometry))
            for r in data.communities.itertuples()
        ),
    )
    community_ids = _ids_by_code(session, "communities")
    counts["grids"] = _copy_rows(
        session,
        "grids",
        ("code", "name", "kind", "community_id", "geom"),
        (
            (r.code, r.name, r.kind, community_ids[r.community_code], ewkt(r.geometry))
            for r in data.grids.itertuples()
        ),
    )
    grid_ids = _ids_by_code(session, "grids")
    step("areas")
    counts["grid_workers"] = _copy_rows(
        session,
        "grid_workers",
        ("grid_id", "role", "name", "phone"),
        (
            (grid_ids[r.grid_code], r.role, r.name, r.phone)
            for r in data.workers.itertuples()
        ),
    )
    counts["key_person_counts"] = _copy_rows(
        session,
        "key_person_counts",
        ("grid_id", "category", "count"),
        (
            (grid_ids[r.grid_code], r.category, int(r.count))
            for r in data.key_person_counts.itertuples()
        ),
    )
    step("teams")
    counts["houses"] = _copy_rows(
        session,
        "houses",
        ("geom", "residents", "grid_id"),
        zip(
            _points(data.houses),
            data.houses["residents"].astype(int),
            data.houses["grid_code"].map(grid_ids),
            strict=True,
        ),
    )
    step("houses")
    counts["key_places"] = _copy_rows(
        session,
        "key_places",
        ("name", "kind", "geom", "grid_id"),
        zip(
            data.key_places["name"],
            data.key_places["kind"],
            _points(data.key_places),
            data.key_places["grid_code"].map(grid_ids),
            strict=True,
        ),
    )
    counts["city_components"] = _copy_rows(
        session,
        "city_components",
        ("category_code", "category", "geom", "grid_id"),
        zip(
            data.components["category_code"],
            data.components["category"],
            _points(data.components),
            data.components["grid_code"].map(grid_ids),
            strict=True,
        ),
    )
    step("places")
    session.execute(text("ANALYZE"))
    refresh_grid_counts(session)
    step("counts")
    return counts


def _ids_by_code(session: Session, table: str) -> dict[str, int]:
    rows = session.execute(text(f"SELECT code, id FROM {table}"))
    return {code: ident for code, ident in rows}


def refresh_grid_counts(session: Session, grid_ids: Sequence[int] | None = None) -> None:
    """Recompute the cached base counts of the given grids (all when None)."""
    # Correlated sub-selects use the grid_id indexes, so a refresh of one edited
    # grid touches only its own rows.
    session.execute(
        text(
            """
            UPDATE grids g SET
              houses = (SELECT count(*) FROM houses h WHERE h.grid_id = g.id),
              residents = (SELECT COALESCE(sum(residents), 0) FROM houses h
                           WHERE h.grid_id = g.id),
              key_places = (SELECT count(*) FROM key_places p WHERE p.grid_id = g.id),
              components = (SELECT count(*) FROM city_components c WHERE c.grid_id = g.id),
              key_persons = (SELECT COALESCE(sum(count), 0) FROM key_person_counts k
                             WHERE k.grid_id = g.id)
            WHERE CAST(:ids AS integer[]) IS NULL OR g.id = ANY(CAST(:ids AS integer[]))
            """
        ),
        {"ids": None if grid_ids is None else list(grid_ids)},
    )
