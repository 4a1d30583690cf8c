"""How a request uses the database: GETs read outside transactions and cannot write, on the real server."""

from __future__ import annotations

import pytest
from flask import Flask, jsonify
from psycopg.pq import TransactionStatus
from sqlalchemy import text

from gridmap import db
from web import create_app
from web.database import get_session, writable_session

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

    app.add_url_rule("/_probe", "probe", probe, methods=["GET", "POST"])
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
        "LOGIN_EXEMPT_ENDPOINTS": ["probe", "probe_writable", "probe_fails", "probe_write"],
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
