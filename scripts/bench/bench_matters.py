"""Matters: intake-to-routed latency and the overdue scan at 100,000 open matters.

1. Intake: ``gridmap.matters.intake`` of a routine matter (validation, grid lookup,
   routing rule, duplicate search within 50 m / 7 days, reference number, report and
   transfer steps with the 1-2-3 clocks, audit entry) against a raw baseline: one
   ``INSERT`` of the same row with the same grid-deriving trigger. p50/p95 and the
   ratio. Every intake runs in a savepoint that is rolled back.
2. Overdue scan: 100,000 open matters (transferred, handling or handled, with
   deadlines spread around now) are generated with one ``INSERT … SELECT`` inside a
   transaction that is rolled back at the end, then ``matter_stats.overdue_scan``
   (one query over the partial indexes) is timed. Goal: <= 1 s.

Runs against the demo database (GRIDMAP_DATABASE, default gridmap) after
``./scripts/run`` has loaded it; nothing is left behind.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

from _common import bench_database, percentiles, row, time_calls
from sqlalchemy import text
from sqlalchemy.orm import Session

N_INTAKE = 200
OPEN_MATTERS = 100_000
SCAN_RUNS = 7
GOAL_S = 1.0


def _points(session: Session, n: int) -> list[tuple[float, float]]:
    """Return n house locations (matters come from where people live)."""
    rows = session.execute(text(
        "SELECT ST_X(geom), ST_Y(geom) FROM houses TABLESAMPLE SYSTEM (2) LIMIT 5000")).all()
    rng = random.Random(9)
    return [rows[rng.randrange(len(rows))] for _ in range(n)]


def bench_intake(session: Session) -> None:
    """Time intake-to-routed against a raw INSERT of the same row."""
    from gridmap import matters
    from gridmap.accounts import DISTRICT_UNIT, system_actor, unit_by_ref

    matters.ensure_categories(session)
    matters.ensure_routing_rules(session)
    actor = system_actor(unit_by_ref(session, DISTRICT_UNIT), "bench")
    cats = ["SJ.01", "SJ.04", "BJ.02", "CS.03", "JT.01", "CJ.02"]
    pts = _points(session, N_INTAKE + 40)
    states: list[str] = []

    def intake(i: int) -> None:
        lon, lat = pts[i % len(pts)]
        with session.begin_nested() as sp:
            detail = matters.intake(session, actor, {
                "source": "hotline_12345", "category": cats[i % len(cats)], "lon": lon,
                "lat": lat, "title": "基准测试事项", "description": "bench",
                "reporter_name": "测试", "reporter_phone": "13800000000"})
            states.append(detail["state"])
            sp.rollback()

    def raw(i: int) -> None:
        lon, lat = pts[i % len(pts)]
        with session.begin_nested() as sp:
            session.execute(text("""
                INSERT INTO matters (ref, source, category_code, title, geom, state)
                VALUES (:ref, 'hotline_12345', :cat, '基准测试事项',
                        ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'reported')"""),
                {"ref": f"SX2099010{i:06d}", "cat": cats[i % len(cats)], "x": lon, "y": lat})
            sp.rollback()

    base = percentiles(time_calls(raw, N_INTAKE))
    full = percentiles(time_calls(intake, N_INTAKE))
    routed = sum(1 for s in states if s == "transferred") / max(1, len(states))
    print(f"intake-to-routed, {N_INTAKE} matters ({routed:.0%} routed straight to a unit)")
    print(row("raw INSERT (baseline)", base))
    print(row("matters.intake (routed)", full, base))
    print(f"  ratio p50 ×{full['p50'] / base['p50']:.1f}, p95 ×{full['p95'] / base['p95']:.1f}")


def bench_overdue(session: Session) -> None:
    """Generate OPEN_MATTERS open matters (rolled back) and time the overdue scan."""
    from gridmap import matter_stats

    t0 = time.perf_counter()
    unit = session.execute(text("SELECT id FROM units WHERE kind = 'town' LIMIT 1")).scalar()
    # Grid codes are given, not derived: the trigger's point-in-polygon lookups are
    # not what is measured, and skipping them keeps the set-up short.
    session.execute(text("ALTER TABLE matters DISABLE TRIGGER matters_derive"))
    session.execute(text("""
        INSERT INTO matters (ref, source, category_code, title, geom, grid_code, state,
          current_unit_id, handling_unit_id, reported_at, clock_started_at, accept_due,
          finish_due, feedback_due)
        SELECT 'SX2098' || lpad(i::text, 9, '0'), 'hotline_12345', 'SJ.01', 'bench',
               ST_SetSRID(ST_MakePoint(116.7 + random() * 0.25, 35.45 + random() * 0.2), 4326),
               '370812001001001',
               (ARRAY['transferred', 'handling', 'handled'])[1 + (i % 3)], :unit, :unit,
               s, s, s + interval '1 day', s + interval '2 days', s + interval '3 days'
        FROM generate_series(1, :n) AS i,
             LATERAL (SELECT now() - random() * interval '3 days 12 hours' AS s) t"""),
        {"n": OPEN_MATTERS, "unit": unit})
    session.execute(text("ALTER TABLE matters ENABLE TRIGGER matters_derive"))
    session.execute(text("ANALYZE matters"))
    total_open = session.execute(text(
        "SELECT count(*) FROM matters WHERE state IN ('transferred', 'handling', 'handled')")
    ).scalar()
    print(f"\noverdue scan: {total_open:,} open matters (set-up {time.perf_counter() - t0:.1f} s)")
    now = datetime.now(UTC)
    runs = []
    for _ in range(SCAN_RUNS):
        t = time.perf_counter()
        result = matter_stats.overdue_scan(session, now)
        runs.append(time.perf_counter() - t)
    stats = percentiles(runs)
    print(row("overdue_scan (counts + ids)", stats))
    print(f"  overdue: {result['overdue']}, due soon: {result['due_soon']}, "
          f"any overdue {result['any_overdue']:,}")
    verdict = "meets" if stats["p95"] / 1000 <= GOAL_S else "MISSES"
    print(f"  goal <= {GOAL_S:.0f} s: {verdict} (p95 {stats['p95'] / 1000:.3f} s)")
    plan = session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + matter_stats._OVERDUE_SQL.format(
        scope="TRUE")), {"now": now, "soon": now + matter_stats.DUE_SOON}).scalars().all()
    print("  plan: " + " | ".join(p.strip() for p in plan if "Scan" in p or "Bitmap" in p))


def main() -> None:
    """Run both benchmarks in one transaction and roll it back."""
    from gridmap import db

    engine = db.engine_for(bench_database())
    with engine.connect() as conn:
        trans = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            bench_intake(session)
            bench_overdue(session)
        finally:
            session.close()
            trans.rollback()


if __name__ == "__main__":
    main()
