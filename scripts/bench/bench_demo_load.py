"""Time to generate and load the full Yanzhou demo data set (goal ≤ 60 s on 2 cores).

Loads into a scratch database (gridmap_bench) so the demo database is untouched.
"""

from __future__ import annotations

import time

from _common import bench_database  # noqa: F401  (sets sys.path)

BENCH_DB = "gridmap_bench"


def main() -> None:
    """Create a scratch database, migrate, then time generation and loading."""
    from geodata.generator import generate
    from gridmap import db, demo, migrate
    from gridmap.cli import ensure_started

    ensure_started((BENCH_DB,))
    url = db.database_url(BENCH_DB)
    migrate.upgrade(url)
    engine = db.engine_for(url)
    with db.session_factory(engine)() as session:
        demo.clear(session)
        session.commit()
    t0 = time.perf_counter()
    data = generate(370812)
    t1 = time.perf_counter()
    with db.session_factory(engine)() as session:
        counts = demo.load(session, data)
        t2 = time.perf_counter()
        counts.update(demo.load_demo_cameras(session, data))
        session.commit()
    t3 = time.perf_counter()
    print("full demo data set (930 grids, 250k houses, 8,600 cameras)")
    print(f"  generate          {t1 - t0:7.2f} s")
    print(f"  load grid model   {t2 - t1:7.2f} s")
    print(f"  load cameras+cov  {t3 - t2:7.2f} s")
    print(f"  total             {t3 - t0:7.2f} s   (goal ≤ 60 s)")
    print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
