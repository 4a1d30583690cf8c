"""Benchmark the crowd pipeline: the sampler hook per crowd sample, and the map aggregates.

Run: .venv/bin/python scripts/bench/bench_crowd.py [--samples 300] [--hours 24]

1. Hook: one JPEG sample (640x360, like the sampler's snapshots) of the demo street
   scene per crowd camera, through CrowdHook exactly as the sampler calls it (inside
   the sample's transaction): decode + estimate + store reading, state and alerts.
   Stages are timed separately; the CPU figure is per crowd sample, single-threaded.
2. Aggregates at the demo scale: every demo 'crowd' camera (258) reporting once a
   minute for `--hours`, plus 12 sensors every 5 minutes, then the heat, replay and
   choropleth queries as the endpoints run them, and the endpoints themselves.

Everything runs in one transaction that is rolled back: the database is unchanged.
Uses GRIDMAP_DATABASE (default gridmap, the demo database).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cv2
from sqlalchemy import text
from sqlalchemy.orm import Session

from scripts.bench._common import bench_database, percentiles, row
from video import crowd
from video.crowd import CrowdHook, Reading, Source
from video.density import Calibration, CameraState, estimate
from video.probe import Health
from video.registry import Filters
from video.streams import street_frames

SAMPLER_RATE_PER_CAMERA = 1 / 60  # one sample a minute


def street_jpegs(n: int) -> list[bytes]:
    """Return n JPEG snapshots of the demo street (what the hook sees in the demo)."""
    out = []
    for i, frame in enumerate(street_frames(fps=5, seconds=max(10, n / 5 + 1), seed=3)):
        if len(out) == n:
            break
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok, i
        out.append(data.tobytes())
    return out


def bench_hook(session: Session, samples: int) -> None:
    """Time the hook end to end and by stage."""
    cams = session.execute(text(
        "SELECT c.id, c.gb_id FROM cameras c JOIN crowd_cameras k ON k.camera_id = c.id "
        "WHERE 'crowd' = ANY(c.tags) ORDER BY c.id")).all()
    if not cams:
        sys.exit("no calibrated crowd cameras; load the demo (gridmap demo load)")
    jpegs = street_jpegs(samples)
    hook = CrowdHook()
    t0 = time.time() - samples * 60
    # Warm every camera's state first (8 samples make a background "warm"), as a
    # running sampler has; the timed samples are then steady state.
    warm = cams[: min(len(cams), 20)]
    for k in range(10):
        for cam in warm:
            hook(session, cam, SimpleNamespace(health=Health.ONLINE, jpeg=jpegs[k % len(jpegs)],
                                               sampled_at=t0 - 3600 + 60 * k))
    total, decode, est, store = [], [], [], []
    calib = Calibration.from_json(crowd.DEMO_CALIBRATION)
    for i in range(samples):
        cam = warm[i % len(warm)]
        data = jpegs[i % len(jpegs)]
        # Stages, the way process() runs them.
        a = time.perf_counter()
        frame = crowd.decode_jpeg(data)
        b = time.perf_counter()
        state_bytes = session.execute(text("SELECT state FROM crowd_cameras WHERE camera_id = :i"),
                                      {"i": cam.id}).scalar()
        state = CameraState.from_bytes(bytes(state_bytes))
        c = time.perf_counter()
        estimate(frame, calib, state)
        d = time.perf_counter()
        decode.append(b - a)
        est.append(d - c)
        # The whole hook (decode + estimate + store), as the sampler calls it.
        e = time.perf_counter()
        hook(session, cam, SimpleNamespace(health=Health.ONLINE, jpeg=data,
                                           sampled_at=t0 + 60 * i))
        total.append(time.perf_counter() - e)
    store = [max(0.0, t - x - y) for t, x, y in zip(total, decode, est, strict=True)]
    # A camera's first 8 samples have no trusted background: the still-image path.
    cold = []
    for i in range(min(samples, 100)):
        frame = crowd.decode_jpeg(jpegs[i % len(jpegs)])
        s = time.perf_counter()
        estimate(frame, calib, None)
        cold.append(time.perf_counter() - s)
    other = session.execute(text("SELECT id, gb_id FROM cameras WHERE NOT ('crowd' = ANY(tags)) "
                                 "LIMIT 1")).one()
    skip = []
    for _ in range(2000):
        s = time.perf_counter()
        hook(session, other, SimpleNamespace(health=Health.ONLINE, jpeg=jpegs[0], sampled_at=0))
        skip.append(time.perf_counter() - s)
    size = len(bytes(session.execute(text("SELECT state FROM crowd_cameras WHERE camera_id = :i"),
                                     {"i": warm[0].id}).scalar()))
    print(f"\nSampler hook, {samples} crowd samples (640x360 JPEG, warm state, "
          f"{hook.stats['failed']} failed)")
    print(row("decode JPEG", percentiles(decode)))
    print(row("estimate (warm state)", percentiles(est)))
    print(row("estimate (cold: still image)", percentiles(cold)))
    print(row("store reading/state/alerts", percentiles(store)))
    total_stats = percentiles(total)
    print(row("hook total per crowd sample", total_stats))
    print(row("hook on a non-crowd sample", percentiles(skip)))
    rate = len(cams) * SAMPLER_RATE_PER_CAMERA
    print(f"stored state per camera: {size / 1024:.1f} KiB")
    print(f"{len(cams)} crowd cameras at 1/min = {rate:.1f} samples/s -> "
          f"{rate * total_stats['mean'] / 1000:.3f} CPU-seconds per second (mean)")


def populate(session: Session, hours: int) -> tuple[int, int]:
    """Insert a demo-scale history: crowd cameras every minute, 12 sensors every 5 minutes."""
    from video import sensors

    session.execute(text("DELETE FROM crowd_readings"))
    cams = session.execute(text(
        "SELECT c.id FROM cameras c JOIN crowd_cameras k ON k.camera_id = c.id ORDER BY c.id"
    )).scalars().all()
    now = session.execute(text("SELECT now()")).scalar_one()
    # Generated in SQL: a daily wave per camera, no Python loop over 370,000 rows.
    inserted = session.execute(text(
        f"""
        INSERT INTO crowd_readings (camera_id, measured_at, count, area_m2, density, level, method)
        SELECT c.id, t, n, 80, n / 80, {crowd.level_sql("n / 80")}, 'bench'
        FROM unnest(CAST(:ids AS int[])) AS c(id),
             generate_series(CAST(:now AS timestamptz) - make_interval(hours => :h),
                             CAST(:now AS timestamptz), interval '1 minute') AS t,
             LATERAL (SELECT greatest(0, 40 + 35 * sin(extract(epoch FROM t) / 7200 + c.id))
                      AS n) x
        """
    ), {"ids": list(cams), "now": now, "h": hours}).rowcount
    fleet = sensors.ensure_demo_sensors(session, 12)
    n_sensor = 0
    for s in fleet:
        sid = session.execute(text("SELECT id FROM crowd_sensors WHERE device_id = :d"),
                              {"d": s.device_id}).scalar_one()
        readings = [Reading(now - timedelta(minutes=5 * k), 100 + k % 50, s.area_m2)
                    for k in range(hours * 12)]
        n_sensor += len(crowd.record_readings(session, Source("sensor", sid), readings))
    session.execute(text("ANALYZE crowd_readings"))
    return inserted, n_sensor


def bench_aggregates(session: Session, connection, hours: int, repeat: int) -> None:
    """Time the aggregate queries and their endpoints at the demo scale."""
    t = time.perf_counter()
    cams, sens = populate(session, hours)
    print(f"\nAggregates over {cams:,} camera readings and {sens:,} sensor readings "
          f"({hours} h; populated in {time.perf_counter() - t:.1f} s)")
    everyone = Filters()
    town = session.execute(text("SELECT code FROM towns ORDER BY code LIMIT 1")).scalar_one()
    cases = {
        "heat.geojson (10 min)": lambda: crowd.heat(session, everyone, "", 10),
        "heat.geojson, one town": lambda: crowd.heat(session, Filters(prefix=town), town, 10),
        "heat.geojson (footprints)": lambda: crowd.heat(session, everyone, "", 10, "footprint"),
        f"replay ({hours} h, 15 min)": lambda: crowd.replay(session, everyone, "", hours, 900),
        "replay (24 h, 5 min)": lambda: crowd.replay(session, everyone, "", min(hours, 24), 300),
        "grids.geojson": lambda: crowd.grids_geojson(session, everyone, "", 10),
        "grids.json": lambda: crowd.grid_values(session, everyone, "", 10),
    }
    sizes = {}
    for label, fn in cases.items():
        out = fn()
        sizes[label] = len(out if isinstance(out, str) else str(out))
        times = []
        for _ in range(repeat):
            s = time.perf_counter()
            fn()
            times.append(time.perf_counter() - s)
        print(row(label, percentiles(times)) + f"   {sizes[label] / 1024:8.1f} KiB")
    bench_endpoints(connection, repeat)


def bench_endpoints(connection, repeat: int) -> None:
    """Time the HTTP endpoints through the app (test client, gzip off), signed in."""
    from sqlalchemy import select

    from web import create_app

    app = create_app({"TESTING": True, "TEST_CONNECTION": connection,
                      "DATABASE_URL": bench_database(), "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    try:
        from gridmap.accounts import User, open_sign_in_session
        from web.database import get_session

        with app.app_context():
            db = get_session()
            user = db.scalars(select(User).where(User.username == "district-operator")).first()
            ident = open_sign_in_session(db, user) if user else None
            db.commit()
        if ident:
            with client.session_transaction() as cookie:
                cookie["_user_id"] = ident
                cookie["_fresh"] = True
    except ImportError:  # an app without sign-in
        pass
    print("\nEndpoints (Flask test client, includes JSON encoding)")
    for url in ("/api/crowd/heat.geojson", "/api/crowd/replay?hours=24&step=15m",
                "/api/crowd/grids.geojson", "/api/alerts?state=active"):
        first = client.get(url)
        if first.status_code != 200:
            print(f"{url:<40} HTTP {first.status_code} (sign in a demo user first)")
            continue
        times = []
        for _ in range(repeat):
            s = time.perf_counter()
            client.get(url)
            times.append(time.perf_counter() - s)
        print(row(url, percentiles(times)) + f"   {len(first.data) / 1024:8.1f} KiB")


def main() -> None:
    """Run both benchmarks inside one rolled-back transaction."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # per-sample CPU, as one sampler thread pays it
    os.environ.setdefault("GRIDMAP_ALERTS_DIR", "/tmp/gridmap-bench-alerts")
    from gridmap import db

    engine = db.engine_for(bench_database())
    started = datetime.now(UTC)
    with engine.connect() as connection:
        trans = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        try:
            bench_hook(session, args.samples)
            bench_aggregates(session, connection, args.hours, args.repeat)
        finally:
            session.close()
            trans.rollback()
    print(f"\n(rolled back; {datetime.now(UTC) - started} in total)")


if __name__ == "__main__":
    main()
