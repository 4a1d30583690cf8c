"""The operators' full-screen map wall at /wall."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request

from geodata.coords import CoordinateError, Datum, parse_datum
from gridmap.search import camera_tags
from video.models import SOURCES, STATUSES
from web.database import get_session
from web.i18n import catalog
from web.scope import camera_filters, current_prefix
from web.wall import wall_map_html, wall_options

bp = Blueprint("wall", __name__)

MODES = ("desk", "wall")
DEFAULT_DWELL_S = 30
DEFAULT_POLL_S = 5


def _page_int(name: str, default: int, low: int, high: int) -> int:
    """Return an integer page option, clamped; junk falls back to the default."""
    raw = request.args.get(name, "")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6):
        return default
    return max(low, min(high, int(raw)))


def _tile_datum() -> str:
    """Return 'gcj02' when the configured tiles use GCJ-02, else 'wgs84'."""
    try:
        datum = parse_datum(current_app.config.get("TILE_DATUM") or "wgs84")
    except CoordinateError:
        current_app.logger.warning("TILE_DATUM is not wgs84, cgcs2000 or gcj02; using wgs84")
        return "wgs84"
    # CGCS2000 (Tianditu) agrees with WGS-84 to centimetres: no shift.
    return "gcj02" if datum is Datum.GCJ02 else "wgs84"


def _focus_camera() -> str | None:
    """Return the GB ID the page should open on, if ``?camera=`` holds one (else None)."""
    raw = request.args.get("camera", "")
    return raw if raw.isascii() and raw.isdigit() and len(raw) == 20 else None


@bp.get("/wall")
def wall_page() -> Response:
    """Serve the full-screen map wall (?mode=wall: the dark, touring display; ?camera=: open on one)."""
    config = current_app.config
    mode = request.args.get("mode", "desk")
    options = wall_options(current_app._get_current_object())
    page_config = {
        "lang": g.lang,
        "i18n": catalog(g.lang),
        "page": "wall",
        "wall": {
            "mode": mode if mode in MODES else "desk",
            "dwell_s": _page_int(
                "dwell", int(config.get("WALL_DWELL_SECONDS", DEFAULT_DWELL_S)), 5, 3600
            ),
            "poll_s": _page_int(
                "poll", int(config.get("WALL_POLL_SECONDS", DEFAULT_POLL_S)), 1, 300
            ),
            "datum": _tile_datum(),
            "scope_prefix": current_prefix(),
            # ?camera=<GB ID>: open on that camera (the ledger and other pages link here).
            "focus_camera": _focus_camera(),
            "sources": list(SOURCES),
            "statuses": list(STATUSES),
            "tags": camera_tags(get_session(), camera_filters().sql("c")),
            **options,
        },
    }
    html = wall_map_html(
        page_config,
        tile_url=config.get("TILE_URL"),
        tile_attribution=config.get("TILE_ATTRIBUTION") or "",
    )
    resp = Response(html, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp
