"""The Flask application factory."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask

DEV_SECRET_KEY = "gridmap-development-key-not-for-production"


class ConfigError(RuntimeError):
    """A setting the app refuses to start with; the message names it, never its value."""


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the gridmap web app."""
    app = Flask(__name__, instance_relative_config=True)
    from web.json_provider import OrjsonProvider

    app.json = OrjsonProvider(app)
    from web.params import RowIdConverter

    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    app.config.from_mapping(
        SECRET_KEY=DEV_SECRET_KEY,
        DEPLOYMENT="demo",  # demo | production (env GRIDMAP_DEPLOYMENT)
        DATABASE_URL=None,  # None: DATABASE_URL env, else the embedded cluster
        MAX_CONTENT_LENGTH=20 * 1024 * 1024,
        COMPRESS_MIMETYPES=[
            "text/html", "text/css", "application/javascript", "text/javascript",
            "application/json", "application/geo+json", "image/svg+xml",
        ],
        COMPRESS_MIN_SIZE=500,
        TILE_URL=None,  # optional intranet tile template, see web.maps
        TILE_DATUM="wgs84",
        # Sign-in (web.auth): cookies are HttpOnly and SameSite=Lax; set
        # GRIDMAP_SESSION_COOKIE_SECURE=true when served over TLS.
        SESSION_COOKIE_NAME="gridmap_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        LOGIN_RATE_LIMIT="10 per minute",  # sign-in POSTs per client address
        LOCKOUT_THRESHOLD=5,  # failed sign-ins for one name from one address before it is locked out
        LOCKOUT_MINUTES=15,
        RATELIMIT_STORAGE_URI="memory://",
        LOGIN_EXEMPT_BLUEPRINTS=["sensor_ingest", "open311"],  # Bearer-token blueprints
        # Live video (web.relay): MJPEG relays at RELAY_FPS, at most RELAY_MAX at once;
        # LIVE_URL_TEMPLATE (e.g. "https://media/live/{gb_id}.m3u8") or LIVE_URLS
        # ({gb_id: url}) hand tiles to an external media server instead.
        RELAY_MAX=8,
        RELAY_FPS=2.0,
        RELAY_MAX_SECONDS=1800,
        LIVE_URL_TEMPLATE=None,
        LIVE_URLS={},
        # Reverse proxies in front of the app that set X-Forwarded-For/-Proto/-Host
        # (GRIDMAP_PROXY_HOPS). 0 ignores those headers: anyone could forge them, and
        # the sign-in limits count by client address.
        PROXY_HOPS=0,
    )
    app.config.from_prefixed_env("GRIDMAP")
    app.config.from_pyfile("config.py", silent=True)
    if config:
        app.config.update(config)
    _refuse_default_secret_in_production(app)
    _refuse_logins_in_live_urls(app)
    _trust_proxies(app)

    from web import assets, database, errors, headers, i18n, openapi
    from web.params import close_uploads, refuse_nul_characters

    database.init_app(app)
    errors.init_app(app)
    headers.init_app(app)
    assets.init_app(app)
    i18n.init_app(app)
    app.teardown_request(close_uploads)
    app.before_request(refuse_nul_characters)
    from web import auth

    auth.init_app(app)  # sign-in guard for every route below, CSRF, audit

    from web.blueprints import cameras, coverage, grids, health, mapview, patrol, search, wall

    app.register_blueprint(mapview.bp)
    app.register_blueprint(patrol.bp)
    app.register_blueprint(grids.bp)
    app.register_blueprint(cameras.bp)
    app.register_blueprint(coverage.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(wall.bp)
    from web.blueprints import grid_edit
    app.register_blueprint(grid_edit.bp)
    from web.blueprints import teams
    app.register_blueprint(teams.bp)
    from web.blueprints import alerts, crowd, sensors
    app.register_blueprint(crowd.bp)
    app.register_blueprint(sensors.bp)  # 'sensor_ingest': device tokens, no session/CSRF
    app.register_blueprint(alerts.bp)
    from web.blueprints import dispatch, videowall

    app.register_blueprint(dispatch.bp)
    app.register_blueprint(videowall.bp)
    from web.blueprints import ledger

    app.register_blueprint(ledger.bp)  # the /cameras ledger page
    from web.blueprints import matters as matters_api
    app.register_blueprint(matters_api.bp)  # /api/matters…, wall layers for matters and orders
    from web import matters_page
    app.register_blueprint(matters_page.bp)  # the /matters pages

    from web.blueprints import matter_reports, open311
    app.register_blueprint(open311.bp)  # 'open311': api_key / public reads, no session/CSRF
    app.register_blueprint(matter_reports.bp)  # bulletin, stats, look-back, patrols
    openapi.init_app(app)
    return app


def _trust_proxies(app: Flask) -> None:
    """Take the client address from PROXY_HOPS trusted proxies' X-Forwarded-* headers."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    hops = app.config["PROXY_HOPS"]
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 5:
        raise ConfigError("GRIDMAP_PROXY_HOPS must be a whole number from 0 to 5")
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def _refuse_default_secret_in_production(app: Flask) -> None:
    if app.config["DEPLOYMENT"] == "production" and app.config["SECRET_KEY"] in (
        DEV_SECRET_KEY,
        "",
        None,
    ):
        raise RuntimeError(
            "refusing to start in production with the default SECRET_KEY; "
            "set GRIDMAP_SECRET_KEY"
        )


LIVE_LOGIN_REFUSED = (
    "{setting} names a login (user:password@) for the media server; every viewer of "
    "a live tile would read it. Give the URL without its login, and let the media "
    "server admit the app's viewers another way (by network address, say)"
)


def _refuse_logins_in_live_urls(app: Flask) -> None:
    """Refuse media-server URLs that carry a login: live.json hands them to every viewer."""
    from gridmap.validation import mask_url_userinfo

    template = app.config.get("LIVE_URL_TEMPLATE")
    per_camera = app.config.get("LIVE_URLS") or {}
    if template is not None and not isinstance(template, str):
        raise ConfigError("LIVE_URL_TEMPLATE must be a URL text such as "
                          "https://media.example/live/{gb_id}.m3u8, or unset")
    if not isinstance(per_camera, Mapping):
        raise ConfigError("LIVE_URLS must map camera GB IDs to media-server URLs")
    settings = [("LIVE_URL_TEMPLATE", template)] if template else []
    for gb_id, url in per_camera.items():
        # A GB ID is 20 digits: anything else in the key is not repeated either.
        key = gb_id if isinstance(gb_id, str) and gb_id.isascii() and gb_id.isdigit() \
            and len(gb_id) == 20 else None
        setting = f"LIVE_URLS[{key!r}]" if key else "an entry of LIVE_URLS"
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{setting} must be a media-server URL text")
        settings.append((setting, url))
    for setting, url in settings:
        if mask_url_userinfo(url) != url:
            raise ConfigError(LIVE_LOGIN_REFUSED.format(setting=setting))
