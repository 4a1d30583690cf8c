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
    from video.streams import serve_demo_streams

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    port = base_port if base_port is not None else demo_streams_base_port()
    with serve_demo_streams(var_dir() / "streams", port, password=demo_stream_password(),
                            include_uhd=uhd) as running:
        p = running.ports
        click.echo(f"demo streams: http://{p.host}:{p.http}/  rtsp://{p.host}:{p.rtsp}/ "
                   f"({len(running.manifest())} slots)")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


@click.command("sampler")
@click.option("--processes", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Probes in flight per worker process.")
@click.option("--lease", default=60, show_default=True, type=click.IntRange(10, 3600),
              help="Seconds a claimed camera stays leased to this sampler.")
@click.option("--metrics-port", default=None, type=int, help="Serve Prometheus metrics here.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@click.option("--max-samples", default=None, type=int, help="Stop after this many samples.")
def sampler_command(processes: int, threads: int, lease: int, metrics_port: int | None,
                    duration: float | None, max_samples: int | None) -> None:
    """Sample every due camera on its schedule (several samplers may run at once)."""
    import logging
    import signal

    from gridmap import db
    from video.sampler import Sampler, SamplerConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = SamplerConfig(processes=processes, threads_per_process=threads, lease_s=lease)
    sampler = Sampler(db.engine_for(db.database_url()), config)
    signal.signal(signal.SIGTERM, lambda *_: sampler.stop_event.set())
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1", registry=sampler.metrics.registry)
    click.echo(f"sampler {config.name}: up to {config.capacity} probes in flight")
    try:
        taken = sampler.run(duration_s=duration, max_samples=max_samples)
    except KeyboardInterrupt:
        taken = 0
    finally:
        sampler.close()
    click.echo(f"sampler {config.name}: {taken} samples")
