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
