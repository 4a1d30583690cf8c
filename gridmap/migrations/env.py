"""Alembic environment: geoalchemy2 helpers, PostGIS's own tables left alone."""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, pool

import gridmap.accounts
import gridmap.matter_models  # noqa: F401  (matters, steps, look-back, patrols; likewise)
import video.crowd_models  # crowd calibrations, sensors, readings and alerts, likewise
import video.models  # noqa: F401  (registers the camera tables on the shared metadata)
from gridmap.models import Base

config = context.config
target_metadata = Base.metadata

POSTGIS_TABLES = {"spatial_ref_sys", "topology", "layer"}


def include_object(obj, name, type_, reflected, compare_to):
    """Skip PostGIS-owned tables, then defer to geoalchemy2's rules."""
    if type_ == "table" and name in POSTGIS_TABLES:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def run_migrations_online() -> None:
    """Run migrations on the connection passed in by gridmap, or on the configured URL."""
    connection = config.attributes.get("connection")
    if connection is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
        with engine.connect() as conn:
            _configure_and_run(conn)
            conn.commit()
    else:
        _configure_and_run(connection)


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        process_revision_directives=alembic_helpers.writer,
        render_item=alembic_helpers.render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
