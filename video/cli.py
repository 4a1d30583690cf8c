"""``gridmap density …``: video-side commands."""

from __future__ import annotations

import sys

import click


@click.group("density")
def density_group() -> None:
    """Crowd-density estimation from video or images."""


@density_group.command("estimate")
@click.argument("video_or_image", type=click.Path(dir_okay=False))
@click.option("--calibration", "calibration", required=True, type=click.Path(dir_okay=False),
              help="JSON with roi, area_m2 and person_height_px.")
@click.option("--every", default=1, show_default=True, type=click.IntRange(1, 10_000),
              help="Estimate every N-th frame.")
def density_estimate(video_or_image: str, calibration: str, every: int) -> None:
    """Print one JSON line per sampled frame: frame, count, density, level."""
    from video.density import DensityError, run_cli

    try:
        run_cli(video_or_image, calibration, every, sys.stdout)
    except DensityError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.group("streams")
def streams_group() -> None:
    """Local demo and test video streams."""


@streams_group.command("serve")
@click.option("--port", "base_port", default=None, type=int,
              help="First port (HTTP); RTSP and fault servers use the next four.")
@click.option("--uhd/--no-uhd", default=False, show_default=True,
              help="Also build a 3840x2160 clip (slow to encode).")
def streams_serve(base_port: int | None, uhd: bool) -> None:
    """Generate the demo clips (cached under var/streams) and serve them until stopped."""
    import signal
    import threading

    from gridmap.config import var_dir
    from video.registry import demo_stream_password, demo_streams_base_port
    from video.streams import StreamsError, serve_demo_streams

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    port = base_port if base_port is not None else demo_streams_base_port()
    try:
        running = serve_demo_streams(var_dir() / "streams", port,
                                     password=demo_stream_password(), include_uhd=uhd)
    except StreamsError as exc:
        raise click.ClickException(
            f"{exc}. Is another ./scripts/run or `gridmap streams serve` running? "
            "Stop it, or pick other ports with --port."
        ) from None
    with running:
        p = running.ports
        click.echo(f"demo streams: http://{p.host}:{p.http}/  rtsp://{p.host}:{p.rtsp}/ "
                   f"({len(running.manifest())} slots)")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


@click.command("sampler")
@click.option("--processes", default=16, show_default=True, type=click.IntRange(1, 64),
              help="Probe worker processes. OpenCV opens one stream at a time per process, "
                   "so opens scale with processes; each costs ~100 MB.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Probes in flight per worker process.")
@click.option("--lease", default=60, show_default=True, type=click.IntRange(10, 3600),
              help="Seconds a claimed camera stays leased to this sampler.")
@click.option("--metrics-port", default=None, type=int, help="Serve Prometheus metrics here.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@click.option("--max-samples", default=None, type=int, help="Stop after this many samples.")
@click.option("--crowd/--no-crowd", default=True, show_default=True,
              help="Estimate crowd density for calibrated cameras tagged 'crowd'.")
def sampler_command(processes: int, threads: int, lease: int, metrics_port: int | None,
                    duration: float | None, max_samples: int | None, crowd: bool) -> None:
    """Sample every due camera on its schedule (several samplers may run at once)."""
    import logging
    import signal

    from gridmap import db
    from video.sampler import Sampler, SamplerConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = SamplerConfig(processes=processes, threads_per_process=threads, lease_s=lease)
    from video.crowd import CrowdHook

    hooks = [CrowdHook()] if crowd else []
    sampler = Sampler(db.engine_for(db.database_url()), config, hooks=hooks)
    signal.signal(signal.SIGTERM, lambda *_: sampler.stop_event.set())
    if metrics_port:
        from prometheus_client import start_http_server

        try:
            start_http_server(metrics_port, addr="127.0.0.1", registry=sampler.metrics.registry)
        except OSError as exc:
            sampler.close()  # its probe worker processes are already up
            raise click.ClickException(
                f"cannot serve metrics on 127.0.0.1:{metrics_port}: {exc.strerror or exc}. "
                "Is another sampler running? Stop it, or pick another --metrics-port."
            ) from None
    click.echo(f"sampler {config.name}: up to {config.capacity} probes in flight")
    try:
        taken = sampler.run(duration_s=duration, max_samples=max_samples)
    except KeyboardInterrupt:
        taken = 0
    finally:
        sampler.close()
    click.echo(f"sampler {config.name}: {taken} samples")


# --------------------------------------------------------------------------- sensors


def _db_session():
    """Return a session on the configured database (the command commits)."""
    from sqlalchemy.orm import Session

    from gridmap import db

    return Session(db.engine_for(db.database_url()))


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group("sensors")
def sensors_group() -> None:
    """Crowd-flow sensors: register devices, issue tokens, simulate readings."""


@sensors_group.command("add")
@click.argument("device_id")
@click.option("--name", required=True, help="Where it counts, e.g. 'Xinhua Square east gate'.")
@click.option("--lon", required=True, type=float, help="WGS-84 longitude.")
@click.option("--lat", required=True, type=float, help="WGS-84 latitude.")
@click.option("--area-m2", "area_m2", required=True, type=float,
              help="Ground area the count refers to.")
@click.option("--alert-density", default=None, type=float,
              help="Alert threshold in persons/m² (default: Fruin level E, 1.08).")
def sensors_add(device_id: str, name: str, lon: float, lat: float, area_m2: float,
                alert_density: float | None) -> None:
    """Register a sensor and print its token (shown this once; only a hash is kept)."""
    from gridmap.errors import GridmapError
    from video import sensors

    with _db_session() as session:
        try:
            sensor, token = sensors.register(session, device_id, name, lon, lat, area_m2,
                                             alert_density)
        except GridmapError as exc:
            _fail(exc.reason)
        session.commit()
    click.echo(f"sensor {sensor['device_id']} registered in grid {sensor['grid_code'] or '-'}")
    click.echo(f"token (shown once): {token}")


@sensors_group.command("rotate-token")
@click.argument("device_id")
def sensors_rotate(device_id: str) -> None:
    """Issue a new token for a sensor; the old one stops working."""
    from gridmap.errors import GridmapError
    from video import sensors

    with _db_session() as session:
        try:
            token = sensors.rotate_token(session, device_id)
        except GridmapError as exc:
            _fail(exc.reason)
        session.commit()
    click.echo(f"token (shown once): {token}")


@sensors_group.command("list")
def sensors_list() -> None:
    """List the registered sensors with their latest reading."""
    from video import sensors

    with _db_session() as session:
        rows = sensors.list_sensors(session)
    for r in rows:
        latest = (f"{r['density']:.2f} p/m² ({r['level']}) at {r['measured_at']:%Y-%m-%d %H:%M}"
                  if r["measured_at"] else "no readings")
        click.echo(f"{r['device_id']}\t{r['grid_code'] or '-'}\t{r['area_m2']:g} m²\t{latest}")


@sensors_group.command("simulate")
@click.option("--url", "app_url", default="http://127.0.0.1:5000", show_default=True,
              help="The running app to post to.")
@click.option("--sensors", "count", default=12, show_default=True, type=click.IntRange(1, 200),
              help="Demo sensors at key places (registered or re-tokened as demo-*).")
@click.option("--interval", default=60.0, show_default=True, type=click.FloatRange(1, 3600),
              help="Seconds between live readings.")
@click.option("--backfill-hours", default=24.0, show_default=True,
              type=click.FloatRange(0, 24 * 7), help="Post this much history first.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@click.option("--seed", default=0, show_default=True, type=int)
def sensors_simulate(app_url: str, count: int, interval: float, backfill_hours: float,
                     duration: float | None, seed: int) -> None:
    """Post plausible readings of demo sensors to the running app over HTTP."""
    from video import sensors

    with _db_session() as session:
        fleet = sensors.ensure_demo_sensors(session, count, seed=seed)
        session.commit()
    click.echo(f"{len(fleet)} demo sensors; posting to {app_url}")
    try:
        totals = sensors.simulate(app_url, fleet, interval_s=interval,
                                  backfill_h=backfill_hours, duration_s=duration, seed=seed,
                                  echo=click.echo)
    except KeyboardInterrupt:
        return
    click.echo(f"posted {totals['posted']}, stored {totals['stored']}, "
               f"alerts raised {totals['alerts_raised']}, failed requests {totals['errors']}")
