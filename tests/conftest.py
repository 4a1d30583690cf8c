"""Shared fixtures. Integration tests run on the real PostGIS (``gridmap_test``),
each inside a transaction that is rolled back, so they never change stored data."""

from __future__ import annotations

import os

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


@pytest.fixture
def app(connection, database_url):
    """Return the Flask app bound to the test transaction."""
    from web import create_app

    return create_app(
        {"TESTING": True, "DATABASE_URL": database_url, "TEST_CONNECTION": connection}
    )


@pytest.fixture
def client(app):
    """Return a test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Return a click runner for the CLI."""
    return app.test_cli_runner()
