"""The database commands and the migrations, on the real server."""

from __future__ import annotations

import psycopg
from click.testing import CliRunner
from sqlalchemy import inspect, text

from gridmap import db, migrate, pgcluster
from web.cli import main

SCRATCH = "gridmap_migration_test"


def test_db_url_prints_a_working_libpq_url(database_url):
    result = CliRunner().invoke(main, ["db", "url", "--database", "gridmap_test"])
    assert result.exit_code == 0
    url = result.output.strip()
    assert url.startswith("postgresql://")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM grids").fetchone()[0] == 930


def test_db_status_reports_running(database_url):
    result = CliRunner().invoke(main, ["db", "status"])
    assert result.exit_code == 0
    assert "running" in result.output or "external" in result.output


def test_password_never_printed_by_db_start(database_url):
    result = CliRunner().invoke(main, ["db", "start", "--database", "gridmap_test"])
    assert result.exit_code == 0 and "***" in result.output
    if not db.external_url():
        password = pgcluster.cluster().password_file.read_text().strip()
        assert password not in result.output


def test_migrations_upgrade_downgrade_upgrade(database_url):
    pgcluster.ensure_database(db.database_url("postgres"), SCRATCH)
    url = db.database_url(SCRATCH)
    migrate.upgrade(url)
    engine = db.engine_for(url)
    tables = set(inspect(engine).get_table_names())
    assert {"grids", "cameras", "camera_samples", "grid_coverage"} <= tables
    engine.dispose()
    migrate.downgrade(url, "base")
    remaining = set(inspect(engine).get_table_names()) - {"spatial_ref_sys", "alembic_version"}
    engine.dispose()
    assert remaining == set()
    migrate.upgrade(url)
    with engine.connect() as conn:
        srid = conn.execute(
            text("SELECT srid FROM geometry_columns WHERE f_table_name = 'grids'")
        ).scalar()
    engine.dispose()
    assert srid == 4326


def _backend_pid(conn) -> int:
    return conn.execute(text("SELECT pg_backend_pid()")).scalar()


def test_pool_replaces_a_connection_cut_while_idle(database_url):
    # Its own engine (a distinct URL), so the shared pool is left alone.
    engine = db.engine_for(f"{database_url}?application_name=gridmap_ping_test")
    try:
        with engine.connect() as conn:
            first = _backend_pid(conn)
        with engine.connect() as conn:
            assert _backend_pid(conn) == first  # reused while fresh: no ping
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        # Pretend the connection has been idle long enough to be tested.
        for record in list(engine.pool._pool.queue):
            record.info["checked_in_at"] -= db.PING_AFTER_IDLE_S + 1
        with engine.connect() as conn:
            assert _backend_pid(conn) != first
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
