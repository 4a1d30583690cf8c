"""Point-to-grid lookup: the app's query function and HTTP endpoint, against the bare
SQL query over the same connection. Run after ./scripts/run has loaded the demo."""

from __future__ import annotations

import random

from _common import bench_database, percentiles, row, signed_in_test_client, time_calls
from sqlalchemy import text

N = 2000


def main() -> None:
    """Print p50/p95/p99 of each way of finding the grid that contains a point."""
    from gridmap import db, queries
    from web import create_app

    url = bench_database()
    engine = db.engine_for(url)
    with engine.connect() as conn:
        bounds = conn.execute(
            text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                 "(SELECT ST_Extent(geom)::geometry e FROM grids) x")
        ).one()
    rng = random.Random(7)
    # Points inside the district: sample random points, keep those some grid contains.
    with engine.connect() as conn:
        pts = []
        while len(pts) < N:
            lon = rng.uniform(bounds[0], bounds[2])
            lat = rng.uniform(bounds[1], bounds[3])
            hit = conn.execute(
                text("SELECT 1 FROM grids WHERE ST_Intersects(geom, "
                     "ST_SetSRID(ST_MakePoint(:x, :y), 4326)) LIMIT 1"), {"x": lon, "y": lat}
            ).first()
            if hit:
                pts.append((lon, lat))
    raw_sql = text(
        "SELECT g.code FROM grids g WHERE ST_Intersects(g.geom, "
        "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) LIMIT 1"
    )
    with db.session_factory(engine)() as session:
        conn = session.connection()
        raw = percentiles(time_calls(
            lambda i: conn.execute(raw_sql, {"lon": pts[i % N][0], "lat": pts[i % N][1]}).scalar(),
            N,
        ))
        fn = percentiles(time_calls(lambda i: queries.grid_at_point(session, *pts[i % N]), N))
    app = create_app({"DATABASE_URL": url})
    client = signed_in_test_client(app)

    def lookup(i: int) -> None:
        resp = client.get(f"/api/grids/at?lon={pts[i % N][0]}&lat={pts[i % N][1]}")
        assert resp.status_code == 200, resp.status_code

    http = percentiles(time_calls(lookup, N))
    trivial = percentiles(time_calls(lambda i: client.get("/api/version"), N))
    print(f"point-to-grid lookup, {N} random points inside the district")
    print(row("bare SQL (same connection)", raw))
    print(row("gridmap.queries.grid_at_point", fn, raw))
    print(row("GET /api/grids/at (in-process)", http, raw))
    print(row("trivial endpoint /api/version", trivial))


if __name__ == "__main__":
    main()
