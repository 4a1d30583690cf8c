"""The OpenAPI document, built from the YAML in each API view's docstring."""

from __future__ import annotations

from apispec import APISpec
from apispec_webframeworks.flask import FlaskPlugin
from flask import Flask, jsonify

VERSION = "0.1.0"


def build_spec(app: Flask) -> dict:
    """Return the OpenAPI 3 document for every ``/api/`` route of the app."""
    spec = APISpec(
        title="gridmap API",
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[FlaskPlugin()],
        info={"description": "Grid model, cameras and dispatch for Yanzhou district (370812)."},
    )
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.rule.startswith("/api/") and rule.endpoint != "openapi":
                spec.path(view=app.view_functions[rule.endpoint], app=app)
    return spec.to_dict()


def init_app(app: Flask) -> None:
    """Serve the document at /api/openapi.json (built once, after all blueprints)."""
    cache: dict[str, dict] = {}

    @app.get("/api/version", endpoint="version")
    def version():
        """The app's name and version.
        ---
        get:
          summary: Name and version of the running app (no database access)
          responses:
            200: {description: '{name, version}'}
        """
        return jsonify({"name": "gridmap", "version": VERSION})

    @app.get("/api/openapi.json", endpoint="openapi")
    def openapi_json():
        if "spec" not in cache:
            cache["spec"] = build_spec(app)
        return jsonify(cache["spec"])
