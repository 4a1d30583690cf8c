"""The ``gridmap`` console command: assembles every room's commands plus ``serve``."""

from __future__ import annotations

import click

from gridmap.cli import db_group, demo_group
from gridmap.matters_cli import matters_group
from video.cli import density_group, sampler_command, sensors_group, streams_group


@click.group()
@click.version_option(package_name="gridmap")
def main() -> None:
    """gridmap: grid mapping and video dispatch for the Yanzhou command center."""


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--threads", default=16, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Serve the web app with a production WSGI server (waitress)."""
    import logging

    from waitress.server import create_server

    from web import create_app

    logging.basicConfig()  # as waitress.serve() does: warnings reach the console
    app = create_app()
    try:
        server = create_server(app, host=host, port=port, threads=threads, ident="gridmap")
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}. Is another gridmap "
            "running there? Stop it, or pick another --port (GRIDMAP_PORT for ./scripts/run)."
        ) from None
    click.echo(f"serving on http://{host}:{port}")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


main.add_command(db_group)
main.add_command(demo_group)
main.add_command(density_group)
main.add_command(streams_group)
main.add_command(sampler_command)
main.add_command(sensors_group)
main.add_command(matters_group)


def _add_account_commands() -> None:
    """Register ``gridmap users …`` and ``gridmap units …`` (web.auth)."""
    from web.auth import units_group, users_group

    main.add_command(users_group)
    main.add_command(units_group)


_add_account_commands()


if __name__ == "__main__":
    main()
