"""``gridmap matters …``: Open311 API clients and the monthly look-back from the command line."""

from __future__ import annotations

import click

from gridmap.errors import GridmapError
from gridmap.matter_models import MATTER_SOURCES


def _session():
    from gridmap import db

    return db.session_factory(db.engine_for(db.database_url()))()


@click.group("matters")
def matters_group() -> None:
    """Matters: Open311 API clients and the monthly look-back."""


@matters_group.group("api-client")
def api_client_group() -> None:
    """Manage the systems that file matters through Open311 (hotline, citizen apps)."""


@api_client_group.command("create")
@click.argument("name")
@click.option("--unit", "unit_ref", default=None,
              help="Unit the client files on behalf of (id, code or name; default the center).")
@click.option("--source", type=click.Choice(MATTER_SOURCES), default="open311",
              show_default=True, help="The source its matters carry.")
def api_client_create(name: str, unit_ref: str | None, source: str) -> None:
    """Create a client and print its api_key once (only its sha256 is stored)."""
    from gridmap import open311

    with _session() as session:
        try:
            client, key = open311.create_client(
                session, name, unit=open311.unit_for(session, unit_ref), source=source)
            session.commit()
        except GridmapError as exc:
            raise click.ClickException(exc.reason) from None
        click.echo(f"api client {client.id}: {client.name} (source {client.source})")
        click.echo(f"api_key: {key}")
        click.echo("keep the key now: it is not stored and cannot be shown again", err=True)


@api_client_group.command("list")
def api_client_list() -> None:
    """List the clients (never a key)."""
    from sqlalchemy import select

    from gridmap.matter_models import ApiClient

    with _session() as session:
        for c in session.scalars(select(ApiClient).order_by(ApiClient.id)):
            state = "active" if c.active else "revoked"
            click.echo(f"{c.id:>4}  {c.name:<30} {c.source:<14} {state}")


@api_client_group.command("revoke")
@click.argument("name")
def api_client_revoke(name: str) -> None:
    """Revoke a client's key (its matters stay)."""
    from sqlalchemy import select

    from gridmap.matter_models import ApiClient

    with _session() as session:
        client = session.scalars(select(ApiClient).where(ApiClient.name == name)).first()
        if client is None:
            raise click.ClickException(f"no api client {name!r}")
        client.active = False
        session.commit()
        click.echo(f"api client {name} revoked")


@matters_group.command("calendar")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A CSV of day,workday,name (YYYY-MM-DD, 1/0, name) for a year not yet "
                   "in the package, or local exceptions; its days overwrite stored ones.")
@click.option("--year", "years", type=int, multiple=True,
              help="Only these years of the official calendar (default: every known year).")
def calendar(path: str | None, years: tuple[int, ...]) -> None:
    """Load the official holidays and make-up workdays the deadline clocks count with."""
    from pathlib import Path

    from gridmap import holidays

    with _session() as session:
        try:
            official = holidays.store(session, holidays.official_days(years or None))
            local = (holidays.store(session, holidays.read_calendar_csv(Path(path).read_bytes()),
                                    replace=True) if path else 0)
            session.commit()
        except GridmapError as exc:
            raise click.ClickException(exc.reason) from None
    known = holidays.known_years()
    click.echo(f"official calendar {known[0]}–{known[-1]}: {official} day(s) added"
               + (f"; from {path}: {local} day(s) written" if path else ""))


@matters_group.command("lookback")
@click.option("--month", default=None, help="YYYY-MM (default: last month).")
def lookback(month: str | None) -> None:
    """Run the monthly look-back (回头看) as the district center."""
    from sqlalchemy import select

    from gridmap import matter_stats
    from gridmap.accounts import Unit, system_actor

    with _session() as session:
        try:
            district = session.scalars(select(Unit).where(Unit.kind == "district")).first()
            if district is None:
                raise click.ClickException("no district center unit")
            first = matter_stats.parse_month(month, default_offset=-1)
            result = matter_stats.run_lookback(session, system_actor(district, "lookback"), first)
            session.commit()
        except GridmapError as exc:
            raise click.ClickException(exc.reason) from None
        click.echo(", ".join(f"{k} {v if not isinstance(v, list) else len(v)}"
                             for k, v in result.items()))
