"""Database engine and sessions. Callers (a request, a CLI command) own commit/rollback."""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg
from sqlalchemy import Engine, TextClause, create_engine, event, exc
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gridmap import pgcluster
from gridmap.errors import DatabaseUnavailable

DEFAULT_DB_NAME = "gridmap"


def default_database() -> str | None:
    """Return the database chosen by ``GRIDMAP_DATABASE`` (scripts/test uses gridmap_test)."""
    return os.environ.get("GRIDMAP_DATABASE") or None


def external_url() -> str | None:
    """Return ``DATABASE_URL`` when an external PostGIS is configured."""
    return os.environ.get("DATABASE_URL") or None


def database_url(database: str | None = None) -> str:
    """Return the libpq URL of the database in use (external, or the embedded cluster)."""
    database = database or default_database()
    url = external_url()
    if url:
        if database:
            url = make_url(url).set(database=database).render_as_string(hide_password=False)
        return _libpq(url)
    c = pgcluster.cluster()
    if not c.password_file.exists():
        raise DatabaseUnavailable("the embedded cluster is not initialised; run `gridmap db start`")
    return c.url(database or DEFAULT_DB_NAME)


def _libpq(url: str) -> str:
    """Normalise SQLAlchemy-style driver URLs to the plain libpq form."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def sqlalchemy_url(libpq_url: str) -> str:
    """Return the SQLAlchemy URL (psycopg 3 driver) for a libpq URL."""
    return "postgresql+psycopg://" + _libpq(libpq_url).split("://", 1)[1]


def safe_url(libpq_url: str) -> str:
    """Return the URL with its password masked, for logs and messages."""
    return make_url(sqlalchemy_url(libpq_url)).render_as_string(hide_password=True)


_ENGINES: dict[tuple[str, bool], Engine] = {}


def engine_for(libpq_url: str, *, read_only: bool = False) -> Engine:
    """Return a pooled engine for the URL (one per URL and mode per process).

    A ``read_only`` engine runs each statement on its own (autocommit), and the
    server refuses any write on its connections. For requests that only read:
    with no BEGIN and COMMIT around them they save two round trips each, and
    under READ COMMITTED every statement took its own snapshot anyway.
    """
    engine = _ENGINES.get((libpq_url, read_only))
    if engine is None:
        url = sqlalchemy_url(libpq_url)
        mode = {}
        if read_only:
            mode = {"isolation_level": "AUTOCOMMIT",
                    "connect_args": {"options": read_only_options(url)}}
        engine = create_engine(url, pool_size=10, max_overflow=20, **mode)
        _ping_when_idle(engine)
        _ENGINES[libpq_url, read_only] = engine
    return engine


def read_only_options(url: str) -> str:
    """Return the URL's libpq ``options`` plus the setting that makes every transaction read-only.

    A startup option rather than a ``SET`` after connecting: a pooler in
    transaction mode (PgBouncer) may hand the server connection that ran a session
    ``SET`` to a writer, whose writes would then fail. PgBouncer refuses the
    ``options`` startup parameter unless told to ignore it, which drops only this
    safety net (README).
    """
    given = make_url(url).query.get("options", "")
    if isinstance(given, tuple):
        given = " ".join(given)
    return f"{given} -c default_transaction_read_only=on".strip()


# A pooled connection idle for longer than this is tested before it is handed out.
PING_AFTER_IDLE_S = 5.0


def _ping_when_idle(engine: Engine) -> None:
    """Test a pooled connection on checkout only if it sat idle (a restart may have cut it).

    SQLAlchemy's ``pool_pre_ping`` tests every checkout: two round trips (BEGIN,
    SELECT 1) on every request, a third of a short request's time. A connection
    checked in a moment ago is almost surely alive; if the server went away in
    that moment, the first statement fails, SQLAlchemy invalidates the whole pool
    and that one request answers 503.
    """

    @event.listens_for(engine.pool, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return  # new, or used a moment ago
        try:
            dbapi_connection.execute("SELECT 1")
            # COMMIT, not ROLLBACK: psycopg forgets its prepared statements on a
            # rollback (see web.database).
            dbapi_connection.commit()
        except Exception as error:
            # The pool discards this connection and checks out another.
            raise exc.DisconnectionError() from error


def dispose_all() -> None:
    """Close the pooled connections of every engine of this process."""
    for engine in _ENGINES.values():
        engine.dispose()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory that never commits on its own."""
    return sessionmaker(bind=engine, autoflush=True, expire_on_commit=False)


def driver_sql(statement: TextClause) -> str:
    """Return a text() statement in the driver's own parameter style, for driver_rows."""
    return str(statement.compile(dialect=psycopg_dialect()))


# What the driver-level helpers read through: a session (its connection and
# transaction) or a driver connection checked out on its own (web.database.read_connection).
Reader = Session | psycopg.Connection


def driver_connection(reader: Reader) -> psycopg.Connection:
    """Return the driver connection under a session, or the connection itself."""
    if isinstance(reader, Session):
        return reader.connection().connection.dbapi_connection
    return reader


def driver_rows(reader: Reader, sql: str,
                params: dict[str, Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run a query on the reader's connection through the driver's own cursor.

    For the hot paths (every request's sign-in check, the patrol leads' nearby
    search): SQLAlchemy's execute and result layers cost as much as a third of a
    small query. Same connection and transaction; a session's pending objects
    are not flushed first. Rows come back as tuples with their column names.
    """
    with driver_connection(reader).cursor(binary=True) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        # The result's own field names: cursor.description builds a Column object
        # per field, ten times the cost.
        result = cursor.pgresult
        names = [result.fname(i).decode() for i in range(result.nfields)] if result else []
        return names, rows
