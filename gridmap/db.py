"""Database engine and sessions. Callers (a request, a CLI command) own commit/rollback."""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine
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


_ENGINES: dict[str, Engine] = {}


def engine_for(libpq_url: str) -> Engine:
    """Return a pooled engine for the URL (one per URL per process)."""
    engine = _ENGINES.get(libpq_url)
    if engine is None:
        engine = create_engine(
            sqlalchemy_url(libpq_url),
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
        )
        _ENGINES[libpq_url] = engine
    return engine


def dispose_all() -> None:
    """Close the pooled connections of every engine of this process."""
    for engine in _ENGINES.values():
        engine.dispose()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory that never commits on its own."""
    return sessionmaker(bind=engine, autoflush=True, expire_on_commit=False)
