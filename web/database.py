"""One SQLAlchemy session per request; the request commits, teardown rolls back."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from gridmap import db


def init_app(app: Flask) -> None:
    """Bind the engine for this app and register the session teardown."""
    url = app.config.get("DATABASE_URL") or db.database_url()
    app.extensions["gridmap.engine"] = db.engine_for(url)
    app.extensions["gridmap.sessions"] = db.session_factory(app.extensions["gridmap.engine"])
    app.teardown_appcontext(close_session)


def get_session() -> Session:
    """Return this request's session, opening it on first use."""
    if "db_session" not in g:
        bind = current_app.config.get("TEST_CONNECTION")
        if bind is not None:
            # Tests hand in a connection inside an outer transaction; commits
            # become savepoints so the test can roll everything back.
            g.db_session = Session(bind=bind, join_transaction_mode="create_savepoint")
        else:
            g.db_session = current_app.extensions["gridmap.sessions"]()
    return g.db_session


def close_session(_exc: BaseException | None = None) -> None:
    """Roll back anything uncommitted and release the connection."""
    session = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()
