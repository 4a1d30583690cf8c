"""How a request uses the database: GETs read outside transactions and cannot write, on the real server."""

from __future__ import annotations

import logging

import psycopg
import pytest
from flask import Flask, g, jsonify
from psycopg.pq import TransactionStatus
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap import db
from web import create_app
from web.database import get_session, read_connection, writable_session

# One statement whose preparation we can look for in pg_prepared_statements.
PROBE = text("SELECT current_setting('transaction_read_only') AS read_only, "
             "(SELECT count(*) FROM pg_prepared_statements) AS prepared")


def _add_probes(app: Flask) -> Flask:
    """Register sign-in-exempt routes that report on their own transaction."""

    def probe():
        session = get_session()
        row = session.execute(PROBE).one()
        status = session.connection().connection.dbapi_connection.info.transaction_status
        return jsonify(read_only=row.read_only, prepared=row.prepared,
                       in_transaction=status != TransactionStatus.IDLE)

    def probe_write():
        # What a GET handler that forgot writable_session() would do.
        get_session().execute(text("UPDATE units SET name = name || ' (probe)' "
                                   "WHERE id = (SELECT min(id) FROM units)"))
        return jsonify(written=True)

    def probe_writable():
        row = writable_session().execute(PROBE).one()
        return jsonify(read_only=row.read_only)

    def probe_fails():
        get_session().execute(text("SELECT 1 / 0"))  # aborts the transaction

    def probe_driver():
        reader = read_connection()
        _, rows = db.driver_rows(reader, "SELECT current_setting('transaction_read_only'), "
                                         "pg_backend_pid()", {})
        return jsonify(session=isinstance(reader, Session), opened_session="db_session" in g,
                       read_only=rows[0][0], pid=rows[0][1],
                       checked_out=app.extensions["gridmap.read_engine"].pool.checkedout())

    def probe_driver_after_session():
        get_session().execute(text("SELECT 1"))  # e.g. the sign-in check read the caller
        reader = read_connection()
        return jsonify(same=reader is get_session(),
                       checked_out=app.extensions["gridmap.read_engine"].pool.checkedout())

    def probe_session_after_driver():
        pool = app.extensions["gridmap.read_engine"].pool
        db.driver_rows(read_connection(), "SELECT 1", {})
        before = pool.checkedout()
        get_session().execute(text("SELECT 1"))  # e.g. an after-request write's session
        return jsonify(before=before, after=pool.checkedout(),
                       same=read_connection() is get_session())

    def probe_driver_cut():
        reader = read_connection()
        _, rows = db.driver_rows(reader, "SELECT pg_backend_pid()", {})
        with psycopg.connect(app.extensions["gridmap.database_url"], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (rows[0][0],))
        db.driver_rows(reader, "SELECT 1", {})  # the server is gone from under it
        return jsonify(unreachable=True)

    app.add_url_rule("/_probe", "probe", probe, methods=["GET", "POST"])
    app.add_url_rule("/_probe/driver", "probe_driver", probe_driver, methods=["GET", "POST"])
    app.add_url_rule("/_probe/driver-after-session", "probe_driver_after_session",
                     probe_driver_after_session)
    app.add_url_rule("/_probe/driver-cut", "probe_driver_cut", probe_driver_cut)
    app.add_url_rule("/_probe/session-after-driver", "probe_session_after_driver",
                     probe_session_after_driver)
    app.add_url_rule("/_probe/writable", "probe_writable", probe_writable)
    app.add_url_rule("/_probe/fails", "probe_fails", probe_fails)
    app.add_url_rule("/_probe/write", "probe_write", probe_write)
    return app


@pytest.fixture
def live_app(database_url, demo_accounts):
    """An app on its own engine and pool, without the test's outer transaction."""
    url = f"{database_url}?application_name=gridmap_request_tx_test"
    app = _add_probes(create_app({
        "TESTING": True, "DATABASE_URL": url, "WTF_CSRF_ENABLED": False,
        "LOGIN_EXEMPT_ENDPOINTS": ["probe", "probe_writable", "probe_fails", "probe_write",
                                   "probe_driver", "probe_driver_after_session",
                                   "probe_driver_cut", "probe_session_after_driver"],
    }))
    app.config["PROPAGATE_EXCEPTIONS"] = False
    yield app
    db.engine_for(url).dispose()


def test_get_reads_read_only_outside_a_transaction(live_app):
    client = live_app.test_client()
    read = client.get("/_probe").get_json()
    assert read["read_only"] == "on"
    assert read["in_transaction"] is False  # no BEGIN/COMMIT round trips
    write = client.post("/_probe").get_json()
    assert write["read_only"] == "off"
    assert write["in_transaction"] is True  # the request commits or rolls back


def test_a_get_that_writes_without_asking_is_refused_and_stores_nothing(live_app):
    # Each statement of a GET commits on its own, so the server itself must refuse
    # a write there: nothing else would undo it.
    engine = db.engine_for(live_app.config["DATABASE_URL"])
    query = text("SELECT name FROM units WHERE id = (SELECT min(id) FROM units)")
    with engine.connect() as conn:
        before = conn.execute(query).scalar_one()
    try:
        refused = live_app.test_client().get("/_probe/write")
        with engine.connect() as conn:
            after = conn.execute(query).scalar_one()
    finally:  # this app commits for real: undo a write that got through
        with engine.begin() as conn:
            conn.execute(text("UPDATE units SET name = :n WHERE id = (SELECT min(id) FROM units)"),
                         {"n": before})
    assert after == before
    assert refused.status_code == 500
    assert "read-only" not in refused.get_data(as_text=True)  # no internals to the user
    # The connection went back to the pool in working order.
    assert live_app.test_client().get("/_probe").get_json()["read_only"] == "on"


def test_writable_session_lets_a_get_write(live_app):
    assert live_app.test_client().get("/_probe/writable").get_json()["read_only"] == "off"


def test_clean_reads_keep_prepared_statements_across_requests(live_app):
    # psycopg prepares a statement on its sixth run and forgets all on ROLLBACK;
    # GETs never roll back, so the probe eventually finds its own.
    client = live_app.test_client()
    seen = [client.get("/_probe").get_json()["prepared"] for _ in range(8)]
    assert seen[0] == 0
    assert seen[-1] >= 1


def test_a_get_whose_query_failed_leaves_a_working_connection(live_app):
    # The failed statement was its own transaction; the pooled connection is reused.
    client = live_app.test_client()
    assert client.get("/_probe").status_code == 200
    failed = client.get("/_probe/fails")
    assert failed.status_code == 500
    assert "division" not in failed.get_data(as_text=True)  # no internals to the user
    again = client.get("/_probe")
    assert again.status_code == 200
    assert again.get_json()["read_only"] == "on"


def test_a_driver_sql_get_reads_on_a_pooled_connection_without_a_session(live_app):
    client = live_app.test_client()
    answer = client.get("/_probe/driver").get_json()
    assert answer["session"] is False and answer["opened_session"] is False
    assert answer["read_only"] == "on"  # the read-only engine's connection
    assert answer["checked_out"] == 1
    # Given back at the end of the request, and reused by the next one.
    assert live_app.extensions["gridmap.read_engine"].pool.checkedout() == 0
    assert client.get("/_probe/driver").get_json()["pid"] == answer["pid"]


def test_a_request_with_a_session_reads_driver_sql_on_it(live_app):
    client = live_app.test_client()
    after_session = client.get("/_probe/driver-after-session").get_json()
    assert after_session == {"same": True, "checked_out": 1}  # never a second connection
    written = client.post("/_probe/driver").get_json()  # a request that may write
    assert written["session"] is True and written["read_only"] == "off"


def test_a_session_opened_after_driver_reads_takes_the_connections_place(live_app):
    answer = live_app.test_client().get("/_probe/session-after-driver").get_json()
    # One read-only connection either way: the pooled one is back before the session's.
    assert answer == {"before": 1, "after": 1, "same": True}
    assert live_app.extensions["gridmap.read_engine"].pool.checkedout() == 0


def test_a_read_connection_cut_mid_request_answers_503_and_leaves_the_pool(live_app, caplog):
    client = live_app.test_client()
    first = client.get("/_probe/driver").get_json()["pid"]
    with caplog.at_level(logging.WARNING):
        cut = client.get("/_probe/driver-cut", headers={"Accept": "application/json"})
    # Dropped as dead, not found dead by the pool's reset (which logs a traceback).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert cut.status_code == 503 and cut.headers["Retry-After"] == "5"
    assert cut.get_json()["reason"] == "the database is unavailable at the moment; try again shortly"
    assert "terminat" not in cut.get_data(as_text=True)  # no internals to the user
    # The dead connection was dropped, not handed to the next request.
    again = client.get("/_probe/driver")
    assert again.status_code == 200
    assert again.get_json()["pid"] != first
    assert live_app.extensions["gridmap.read_engine"].pool.checkedout() == 0


def test_the_nearby_answer_on_its_own_connection_matches_the_registry(live_app, engine):
    from tests.conftest import sign_in_client
    from video import registry

    client = sign_in_client(live_app, live_app.test_client(), "district-operator")
    with engine.connect() as conn:
        lon, lat = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM cameras "
                                     "ORDER BY gb_id LIMIT 1")).one()
    answer = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=800&limit=15")
    assert answer.status_code == 200
    with Session(engine) as session:
        expected = registry.nearby(session, lon, lat, radius_m=800, limit=15)
    items = answer.get_json()["items"]
    assert len(items) >= 1
    assert [(i["gb_id"], i["distance_m"], i["bearing"]) for i in items] == \
        [(i["gb_id"], i["distance_m"], i["bearing"]) for i in expected]
    assert live_app.extensions["gridmap.read_engine"].pool.checkedout() == 0


def test_a_get_cannot_write_in_the_test_transaction_either(app, connection):
    # The test fixtures' savepoint sessions are read-only for GETs too, so a GET
    # that writes without writable_session() fails the suite, not production.
    _add_probes(app)
    app.config["LOGIN_EXEMPT_ENDPOINTS"] = ["probe", "probe_writable"]
    client = app.test_client()
    assert client.get("/_probe").get_json()["read_only"] == "on"
    assert client.get("/_probe/writable").get_json()["read_only"] == "off"
    # The read-only mode ended with the request's savepoint.
    assert connection.execute(text("SHOW transaction_read_only")).scalar() == "off"


def test_read_only_engine_keeps_the_urls_own_options(database_url):
    url = f"{database_url}?application_name=gridmap_ro_options_test&options=-c%20statement_timeout%3D4321"
    engine = db.engine_for(url, read_only=True)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT current_setting('statement_timeout'), "
                                    "current_setting('transaction_read_only')")).one()
        assert tuple(row) == ("4321ms", "on")
    finally:
        engine.dispose()
