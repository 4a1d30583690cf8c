"""One SQLAlchemy session per request; the request commits, teardown ends the rest.

GET, HEAD and OPTIONS requests read on a read-only engine (``db.engine_for(url,
read_only=True)``): each statement runs on its own, outside BEGIN and COMMIT,
and the server refuses writes on those connections. That saves two round trips
per request, and under READ COMMITTED each statement took its own snapshot
anyway. Nothing is ever rolled back there, so psycopg keeps its prepared
statements (it forgets them on every ROLLBACK: a rollback may have undone the
objects they name). A GET that must write (the audit trail, a lazy coverage
refresh) asks for ``writable_session()`` explicitly.

A GET whose reads are all driver SQL (``db.driver_rows``: the patrol leads'
nearby search) can skip the ORM session altogether: ``read_connection()`` checks
out a pooled connection of the read-only engine and nothing more. Opening and
closing a session cost a request 0.2–0.3 ms, half that query's own cost in the
tight loop of scripts/bench/bench_cameras.py.
"""

from __future__ import annotations

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap import db

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def init_app(app: Flask) -> None:
    """Bind the engine for this app and register the session teardown."""
    url = app.config.get("DATABASE_URL") or db.database_url()
    app.extensions["gridmap.database_url"] = url
    app.extensions["gridmap.engine"] = db.engine_for(url)
    app.extensions["gridmap.sessions"] = db.session_factory(app.extensions["gridmap.engine"])
    app.extensions["gridmap.read_engine"] = db.engine_for(url, read_only=True)
    app.extensions["gridmap.read_sessions"] = db.session_factory(app.extensions["gridmap.read_engine"])
    app.teardown_appcontext(close_session)


def _test_connection():
    return current_app.config.get("TEST_CONNECTION")


def _open(read_only: bool) -> Session:
    bind = _test_connection()
    if bind is not None:
        # Tests hand in a connection inside an outer transaction; commits become
        # savepoints so the test can roll everything back. Read-only mode set
        # inside the savepoint ends with it, so the test's own writes still work.
        session = Session(bind=bind, join_transaction_mode="create_savepoint")
        if read_only:
            session.execute(text("SET TRANSACTION READ ONLY"))
        return session
    return current_app.extensions["gridmap.read_sessions" if read_only else "gridmap.sessions"]()


def _read_only_request() -> bool:
    return has_request_context() and request.method in READ_ONLY_METHODS


def get_session() -> Session:
    """Return this request's session, opening it on first use (read-only for a GET).

    A request that read on read_connection() first gives that connection back
    here, so it never holds two (driver_rows fetched its rows already). A reader
    kept from before must not be used after this; read_connection() now returns
    the session.
    """
    if "db_session" not in g:
        _release_read_connection()
        read_only = _read_only_request()
        g.db_session = _open(read_only)
        g.db_read_only = read_only
    return g.db_session


def read_connection() -> db.Reader:
    """Return what this request's driver-SQL reads run on: a pooled read-only connection for a GET.

    Where a session is already open (the sign-in check read the caller, a test's
    transaction, a request that writes), its connection serves instead, and a
    session opened later takes the connection's place (get_session): a request
    never holds two.
    """
    if "db_session" in g or _test_connection() is not None or not _read_only_request():
        return get_session()
    if "db_read_connection" not in g:
        g.db_read_connection = current_app.extensions["gridmap.read_engine"].raw_connection()
    return g.db_read_connection.driver_connection


def writable_session() -> Session:
    """End this request's transaction, dropping anything uncommitted; return a session that may write."""
    session = get_session()
    session.rollback()
    if g.get("db_read_only"):
        session.close()
        g.db_session = _open(read_only=False)
        g.db_read_only = False
    return g.db_session


def close_session(exc: BaseException | None = None) -> None:
    """Roll back what the request left uncommitted and release the connections."""
    try:
        _release_read_connection()
    finally:
        _close_request_session()


def _close_request_session() -> None:
    session = g.pop("db_session", None)
    read_only = g.pop("db_read_only", False)
    if session is None:
        return
    try:
        if read_only and _test_connection() is None:
            return  # autocommit: no transaction is open (close() below returns the connection)
        session.rollback()
    finally:
        session.close()


def _release_read_connection() -> None:
    """Return read_connection()'s connection to the pool, or drop it if the server cut it."""
    pooled = g.pop("db_read_connection", None)
    if pooled is None:
        return
    # A session would have told the pool of a cut connection itself; told nothing,
    # the pool finds it dead only when resetting it, and logs that as an error
    # with a traceback.
    if pooled.driver_connection.broken or pooled.driver_connection.closed:
        pooled.invalidate()
    pooled.close()  # autocommit, so no transaction is open: nothing to roll back
