"""``gridmap db …`` and ``gridmap demo …``: the database and demo-data commands."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from tqdm import tqdm

from gridmap import db, pgcluster
from gridmap.config import var_dir
from gridmap.errors import GridmapError


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@click.group("db")
def db_group() -> None:
    """Manage the database (embedded cluster under var/, or DATABASE_URL)."""


@db_group.command("start")
@click.option("--database", "databases", multiple=True, default=("gridmap",),
              show_default=True, help="Databases to create (with PostGIS) if missing.")
def db_start(databases: tuple[str, ...]) -> None:
    """Start the embedded PostGIS (or check DATABASE_URL) and create the databases."""
    try:
        ensure_started(databases)
    except GridmapError as exc:
        _fail(exc)
    click.echo(f"database ready: {db.safe_url(db.database_url())}")


def ensure_started(databases: tuple[str, ...] = ("gridmap",)) -> None:
    """Start the embedded cluster if needed and make sure the databases exist."""
    if db.external_url():
        for name in databases:
            pgcluster.ensure_database(db.database_url("postgres"), name)
        return
    c = pgcluster.cluster()
    pgcluster.start(c)
    for name in databases:
        pgcluster.ensure_database(c.url("postgres"), name)


@db_group.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster (no effect with DATABASE_URL)."""
    if db.external_url():
        click.echo("DATABASE_URL is set: the external server is not managed here")
        return
    try:
        was_running = pgcluster.stop(pgcluster.cluster())
    except GridmapError as exc:
        _fail(exc)
    click.echo("stopped" if was_running else "not running")


@db_group.command("status")
def db_status() -> None:
    """Say which database is in use and whether it is up."""
    if db.external_url():
        click.echo(f"external: {db.safe_url(db.database_url())}")
        return
    c = pgcluster.cluster()
    state = "running" if pgcluster.is_running(c) else "stopped"
    click.echo(f"embedded cluster at {c.root} (port {c.port}): {state}")
    sys.exit(0 if state == "running" else 3)


@db_group.command("url")
@click.option("--database", default=None, help="Another database on the same server.")
def db_url(database: str | None) -> None:
    """Print the libpq URL of the database in use (for psql or QGIS)."""
    try:
        click.echo(db.database_url(database))
    except GridmapError as exc:
        _fail(exc)


@db_group.command("migrate")
@click.option("--revision", default="head", show_default=True)
def db_migrate(revision: str) -> None:
    """Apply Alembic migrations."""
    from gridmap import migrate

    migrate.upgrade(db.database_url(), revision)
    click.echo(f"migrated to {revision}")


@db_group.command("backup")
@click.option("--database", default=None, help="Another database on the same server.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The file to write (default var/backups/<database>-<UTC time>.dump).")
def db_backup(database: str | None, output: Path | None) -> None:
    """Back up the database to one file (pg_dump custom format, readable by you only)."""
    from gridmap import backup

    url = db.database_url(database)
    name = database or db.default_database() or "gridmap"
    if output is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        output = var_dir() / "backups" / f"{name}-{stamp}.dump"
    click.echo(f"backing up {db.safe_url(url)} …")
    try:
        done = backup.backup(url, output)
    except GridmapError as exc:
        _fail(exc)
    click.echo(f"wrote {done.path} ({done.size / 1024 / 1024:.1f} MB); the stream credentials "
               "in it are encrypted with the credential key, which is not in the backup: "
               "keep a copy of the key apart from it")


@db_group.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--database", required=True,
              help="A new or empty database to restore into (created if missing).")
def db_restore(path: Path, database: str) -> None:
    """Restore a backup into a new or empty database, all or nothing."""
    from gridmap import backup

    try:
        ensure_started((database,))
        url = db.database_url(database)
        click.echo(f"restoring {path} into {db.safe_url(url)} …")
        counts = backup.restore(url, path)
    except GridmapError as exc:
        _fail(exc)
    click.echo("restored: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    click.echo(f"to use it: GRIDMAP_DATABASE={database} (or DATABASE_URL)")


@click.group("demo")
def demo_group() -> None:
    """Generate and load the Yanzhou demo data set."""


@demo_group.command("load")
@click.option("--seed", default=370812, show_default=True, type=int)
@click.option("--houses", default=250_000, show_default=True, type=click.IntRange(1_000, 2_000_000))
@click.option("--cameras", default=8_600, show_default=True, type=click.IntRange(0, 2_000_000))
@click.option("--if-empty", is_flag=True, help="When grids exist, only add missing demo accounts and matters.")
@click.option("--replace", is_flag=True, help="Delete existing demo data first.")
def demo_load(seed: int, houses: int, cameras: int, if_empty: bool, replace: bool) -> None:
    """Generate the deterministic demo data set and load it."""
    from gridmap import demo

    engine = db.engine_for(db.database_url())
    with db.session_factory(engine)() as session:
        if demo.is_loaded(session) and not replace:
            if if_empty:
                added = demo.top_up(session, seed=seed)
                session.commit()
                extra = ", ".join(f"{k} {v:,}" for k, v in added.items() if v)
                click.echo("demo data already loaded" + (f"; added {extra}" if extra else ""))
                return
            _fail(GridmapError("grids already exist; pass --replace to reload"))
        started = time.perf_counter()
        with tqdm(total=len(demo.STAGES), desc="demo data", unit="step") as bar:
            counts = demo.load_demo(
                session, seed=seed, houses=houses, cameras=cameras, replace=replace,
                progress=lambda msg: (bar.set_postfix_str(msg), bar.update(1)),
            )
        session.commit()
    elapsed = time.perf_counter() - started
    summary = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    click.echo(f"loaded in {elapsed:.1f} s: {summary}")
