"""Shared fixtures. Integration tests run on the real PostGIS (``gridmap_test``),
each inside a transaction that is rolled back, so they never change stored data."""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

TEST_DATABASE = os.environ.get("GRIDMAP_DATABASE", "gridmap_test")


@pytest.fixture(scope="session")
def database_url() -> str:
    """Return the libpq URL of the test database; fail (never skip) if unreachable."""
    from gridmap import db
    from gridmap.errors import DatabaseUnavailable

    try:
        url = db.database_url(TEST_DATABASE)
        with db.engine_for(url).connect() as conn:
            conn.execute(text("SELECT postgis_version()"))
    except (DatabaseUnavailable, Exception) as exc:
        pytest.fail(f"test database unavailable ({type(exc).__name__}); run ./scripts/test")
    return url


@pytest.fixture(scope="session")
def engine(database_url):
    """Return the pooled engine of the test database."""
    from gridmap import db

    yield db.engine_for(database_url)
    # Close every pooled connection (also those of apps built in tests) before exit.
    db.dispose_all()


@pytest.fixture(scope="session")
def demo_loaded(engine) -> None:
    """Fail clearly if the demo data set has not been loaded into the test database."""
    with engine.connect() as conn:
        if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM grids)")).scalar():
            pytest.fail("the test database has no demo data; run ./scripts/test")


@pytest.fixture
def connection(engine, demo_loaded):
    """Yield a connection inside a transaction that is rolled back afterwards."""
    conn = engine.connect()
    trans = conn.begin()
    try:
        yield conn
    finally:
        trans.rollback()
        conn.close()


@pytest.fixture
def session(connection) -> Session:
    """Return an ORM session whose commits become savepoints of the test transaction."""
    s = Session(bind=connection, join_transaction_mode="create_savepoint")
    yield s
    s.close()


@pytest.fixture(scope="session")
def demo_accounts(engine, demo_loaded) -> None:
    """Make sure the demo units and users exist (idempotent; what the demo loader adds)."""
    from gridmap.accounts import ensure_demo_accounts

    with Session(engine) as s:
        ensure_demo_accounts(s)
        s.commit()


@pytest.fixture
def seeded(session, demo_accounts) -> Session:
    """Seed the matter categories and routing rules (idempotent, rolled back with the test)."""
    from gridmap import matters

    matters.ensure_categories(session)
    matters.ensure_routing_rules(session)
    session.flush()
    return session


@pytest.fixture
def app(connection, database_url, demo_accounts):
    """Return the Flask app bound to the test transaction (CSRF off; see test_auth)."""
    from web import create_app

    return create_app(
        {"TESTING": True, "DATABASE_URL": database_url, "TEST_CONNECTION": connection,
         "WTF_CSRF_ENABLED": False}
    )


def sign_in_client(app, client, username: str):
    """Put a signed-in session for ``username`` into a test client's cookie.

    Records a sign-in session and writes what Flask-Login would after a sign-in,
    without the scrypt check and the sign-in rate limit, so every test can start
    signed in cheaply.
    """
    from sqlalchemy import select

    from gridmap.accounts import User, open_sign_in_session
    from web.database import get_session

    with app.app_context():
        db = get_session()
        user = db.scalars(select(User).where(User.username == username)).one()
        ident = open_sign_in_session(db, user)
        db.commit()  # a savepoint of the test's transaction when the app is bound to one
    with client.session_transaction() as sess:
        sess["_user_id"] = ident
        sess["_fresh"] = True
        sess.permanent = True  # as the sign-in form makes it: a 12-hour sliding cookie
    return client


@pytest.fixture
def client_as(app):
    """Return a factory of test clients signed in as a given (demo) user."""
    return lambda username: sign_in_client(app, app.test_client(), username)


@pytest.fixture
def client(app, client_as):
    """Return a test client signed in as the district center's operator."""
    return client_as("district-operator")


@pytest.fixture
def anon_client(app):
    """Return a test client that has not signed in."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Return a click runner for the CLI."""
    return app.test_cli_runner()


@pytest.fixture
def committed_team(engine, demo_loaded):
    """Yield every grid worker row as committed; put them all back afterwards.

    For tests whose changes of grid teams are really committed (a live server,
    concurrent sessions), where the rollback fixture cannot undo them.
    """
    with engine.begin() as conn:
        top = conn.execute(text("SELECT max(id) FROM grid_workers")).scalar()
        rows = conn.execute(text(
            "SELECT w.id, w.grid_id, g.code AS grid_code, w.role, w.name, w.phone, w.version, "
            "w.updated_at, w.left_at FROM grid_workers w JOIN grids g ON g.id = w.grid_id")).all()
    try:
        yield rows
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM grid_workers WHERE id > :m"), {"m": top})
            conn.execute(text(
                "UPDATE grid_workers w SET grid_id = r.grid_id, role = r.role, name = r.name, "
                "phone = r.phone, version = r.version, updated_at = r.updated_at, left_at = r.left_at "
                "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id int, grid_id int, role text, "
                "name text, phone text, version int, updated_at timestamptz, left_at timestamptz) "
                "WHERE w.id = r.id AND (w.grid_id, w.role, w.name, w.phone, w.version, w.updated_at, "
                "w.left_at) IS DISTINCT FROM (r.grid_id, r.role, r.name, r.phone, r.version, "
                "r.updated_at, r.left_at)"),
                {"rows": json.dumps([{**r._asdict(), "updated_at": r.updated_at.isoformat(),
                                      "left_at": r.left_at and r.left_at.isoformat()}
                                     for r in rows])})


@contextmanager
def blocked_attempt(engine, holder_pid: int, attempt, expected: type[Exception]):
    """Run ``attempt(session)`` in a thread until it waits on ``holder_pid``'s locks.

    Yields the outcome dict; the caller then commits or rolls back the holder. On
    leaving, the thread is joined: ``outcome["result"]`` is "committed" or the
    ``expected`` exception the attempt raised.
    """
    from gridmap import db

    factory = db.session_factory(engine)
    outcome: dict[str, object] = {}

    def run() -> None:
        with factory() as s:
            outcome["pid"] = s.execute(text("SELECT pg_backend_pid()")).scalar()
            try:
                attempt(s)
                s.commit()
                outcome["result"] = "committed"
            except expected as exc:
                s.rollback()
                outcome["result"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        with engine.connect() as watch:
            for _ in range(200):
                if watch.execute(text("SELECT :w = ANY(pg_blocking_pids(:p))"),
                                 {"w": holder_pid, "p": outcome.get("pid", 0)}).scalar():
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the second session never waited on the first one's locks")
        yield outcome
    finally:
        thread.join(timeout=60)
