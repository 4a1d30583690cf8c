"""The Flask application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask

DEV_SECRET_KEY = "gridmap-development-key-not-for-production"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the gridmap web app."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY=DEV_SECRET_KEY,
        DEPLOYMENT="demo",  # demo | production (env GRIDMAP_DEPLOYMENT)
        DATABASE_URL=None,  # None: DATABASE_URL env, else the embedded cluster
        MAX_CONTENT_LENGTH=20 * 1024 * 1024,
        JSON_AS_ASCII=False,
        COMPRESS_MIMETYPES=[
            "text/html", "text/css", "application/javascript", "text/javascript",
            "application/json", "application/geo+json", "image/svg+xml",
        ],
        COMPRESS_MIN_SIZE=500,
        TILE_URL=None,  # optional intranet tile template, see web.maps
        TILE_DATUM="wgs84",
    )
    app.config.from_prefixed_env("GRIDMAP")
    app.config.from_pyfile("config.py", silent=True)
    if config:
        app.config.update(config)
    _refuse_default_secret_in_production(app)

    from web import assets, database, errors, i18n, openapi
    from web.params import close_uploads

    database.init_app(app)
    errors.init_app(app)
    assets.init_app(app)
    i18n.init_app(app)
    app.teardown_request(close_uploads)

    from web.blueprints import cameras, coverage, grids, health, mapview, patrol

    app.register_blueprint(mapview.bp)
    app.register_blueprint(patrol.bp)
    app.register_blueprint(grids.bp)
    app.register_blueprint(cameras.bp)
    app.register_blueprint(coverage.bp)
    app.register_blueprint(health.bp)

    openapi.init_app(app)
    return app


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

