"""One boundary edit end to end: parse, lock, shapely edit and validation, writes,
history, re-derivation of houses/places/components/cameras/key persons, count refresh
and the district check, on the full demo data set. Every edit runs in a transaction
that is rolled back, so the database is left as it was. Run after ./scripts/run."""

from __future__ import annotations

import random
import time

import shapely
from _common import bench_database, percentiles, row
from shapely import wkb
from shapely.geometry import mapping
from sqlalchemy import text

N = 100
GOAL_P50_MS = 300.0


def main() -> None:
    """Print p50/p95 of a whole edit and of its pure-geometry part."""
    from gridmap import db, editing, grid_edits

    url = bench_database()
    engine = db.engine_for(url)
    factory = db.session_factory(engine)
    with engine.connect() as conn:
        pairs = conn.execute(
            text(
                """
                SELECT a.code, b.code FROM grids a JOIN grids b
                  ON a.community_id = b.community_id AND a.id <> b.id
                 AND ST_Length(ST_Intersection(ST_Boundary(a.geom), ST_Boundary(b.geom))) > 0
                ORDER BY 1, 2
                """
            )
        ).all()
    rng = random.Random(8)
    ctx = grid_edits.EditContext("bench", "benchmark edit")
    whole: list[float] = []
    pure: list[float] = []
    changed: list[int] = []
    refused = 0
    while len(whole) < N:
        code, other = rng.choice(pairs)
        radius = rng.uniform(0.0002, 0.0006)
        with factory() as session:
            g = wkb.loads(bytes(session.execute(text("SELECT ST_AsBinary(geom) FROM grids WHERE code = :c"), {"c": code}).scalar()))
            n = wkb.loads(bytes(session.execute(text("SELECT ST_AsBinary(geom) FROM grids WHERE code = :c"), {"c": other}).scalar()))
            version = session.execute(text("SELECT version FROM grids WHERE code = :c"), {"c": code}).scalar()
            geometry = mapping(editing.as_multi(shapely.union(g, shapely.intersection(n, g.buffer(radius)))))
            t0 = time.perf_counter()
            try:
                result = grid_edits.edit_boundary(session, code, geometry, version=version, ctx=ctx)
                session.flush()
            except editing.EditRefused:
                refused += 1  # e.g. the strip would cut the neighbour in two
                session.rollback()
                continue
            whole.append(time.perf_counter() - t0)
            changed.append(len(result["changed"]) + len(result["vertices_only"]))
            session.rollback()
        # The shapely part alone, on the same neighbourhood (no database).
        with factory() as session:
            area = grid_edits.district(session)
            locked = grid_edits._lock_neighbourhood(session, [code], editing.parse_polygon(geometry), rings=2)
            grids = {c: r.geom for c, r in locked.items()}
            session.rollback()
        t0 = time.perf_counter()
        editing.replace_boundary(grids, code, editing.parse_polygon(geometry), area)
        pure.append(time.perf_counter() - t0)
    total = percentiles(whole)
    print(f"grid boundary edit on {url.rsplit('/', 1)[-1]}, {N} random edits (rolled back), {refused} refused")
    print(row("whole edit incl. re-derivation", total))
    print(row("shapely edit + local validation", percentiles(pure)))
    print(f"grids written per edit: median {sorted(changed)[len(changed) // 2]}, max {max(changed)}")
    verdict = "meets" if total["p50"] <= GOAL_P50_MS else "misses"
    print(f"goal p50 ≤ {GOAL_P50_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
