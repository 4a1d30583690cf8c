"""The OpenAPI document, built from the YAML in each API view's docstring."""

from __future__ import annotations

import re

from apispec import APISpec
from apispec_webframeworks.flask import FlaskPlugin
from flask import Flask, jsonify
from werkzeug.routing import Rule

VERSION = "0.1.0"

# A Flask rule's variables, with their converter: "<int:matter_id>", "<code>".
_RULE_VARIABLE = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_CONVERTER_SCHEMAS = {"int": {"type": "integer", "minimum": 0}, "float": {"type": "number"}}
# What the common path variables look like, for the operations that don't say.
_VARIABLE_SCHEMAS = {
    "code": {"type": "string", "pattern": r"^[0-9]{6}([0-9]{3}){0,3}$",
             "description": "Area code: district 6 + town 3 + community 3 + grid 3 digits"},
    "gb_id": {"type": "string", "pattern": r"^[0-9]{20}$",
              "description": "GB/T 28181 20-digit device ID"},
}
_METHODS = ("get", "put", "post", "patch", "delete")


# The body of every error answer (web.errors).
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "reason", "message"],
    "properties": {
        "error": {"type": "integer", "description": "The HTTP status"},
        "reason": {"type": "string", "description": "What was wrong, in English (stable text)"},
        "message": {"type": "string",
                    "description": "The same in the request's language (?lang=, the gridmap_lang "
                                   "cookie; Chinese by default), for pages to show"},
        "details": {"type": "object", "description": "The offending field or value, when known"},
    },
}
SECURITY_SCHEMES = {
    "session": {"type": "apiKey", "in": "cookie", "name": "gridmap_session",
                "description": "Sign in at /login; writes also need the X-CSRFToken header "
                               "(the token is in every page's csrf-token meta tag)"},
    "device": {"type": "http", "scheme": "bearer",
               "description": "A crowd-flow sensor's own token (gridmap sensors issue-token)"},
}
# Answers every operation may give besides the ones it documents.
_COMMON_ANSWERS = {
    "400": "Malformed input; `reason` says what and `details` where",
}
_SIGNED_IN_ANSWERS = {"401": "Not signed in, or the session has ended"}
_BODY_ANSWERS = {"413": "The body is larger than this operation accepts"}
_WRITE_ANSWERS = {"403": "Your role or unit may not do this (viewers only read)"}


def build_spec(app: Flask) -> dict:
    """Return the OpenAPI 3 document for every ``/api/`` route of the app."""
    spec = APISpec(
        title="gridmap API",
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[FlaskPlugin()],
        info={"description": "Grid model, cameras and dispatch for Yanzhou district (370812)."},
    )
    spec.components.schema("Error", ERROR_SCHEMA)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    rules = [rule for rule in app.url_map.iter_rules()
             if rule.rule.startswith("/api/") and rule.endpoint != "openapi"]
    with app.test_request_context():
        for rule in rules:
            spec.path(view=app.view_functions[rule.endpoint], app=app)
    document = spec.to_dict()
    document["security"] = [{"session": []}]
    for rule in rules:
        _complete_operations(document, rule)
    return document


def _complete_operations(document: dict, rule: Rule) -> None:
    """Fill in what a rule's operations leave out: path variables, security, error answers.

    The rule is the truth about its path variables, so docstrings declare only the
    ones with more to say (an enum of formats). Every error answer has the one
    error body.
    """
    from web.auth import DEFAULT_TOKEN_BLUEPRINTS, PUBLIC_ENDPOINTS

    variables = {name: converter for converter, name in _RULE_VARIABLE.findall(rule.rule)}
    path = _RULE_VARIABLE.sub(lambda m: "{" + m.group(2) + "}", rule.rule)
    operations = document["paths"].get(path, {})
    blueprint = rule.endpoint.rpartition(".")[0]
    for method in sorted(m.lower() for m in rule.methods or ()):
        operation = operations.get(method)
        if operation is None or method not in _METHODS:
            continue
        parameters = operation.setdefault("parameters", [])
        declared = {p["name"]: p for p in parameters if p.get("in") == "path"}
        for name, converter in variables.items():
            if name not in declared:
                schema = dict(_CONVERTER_SCHEMAS.get(converter)
                              or _VARIABLE_SCHEMAS.get(name, {"type": "string"}))
                parameters.append({"in": "path", "name": name, "required": True,
                                   "schema": schema})
        answers = dict(_COMMON_ANSWERS)
        if rule.endpoint in PUBLIC_ENDPOINTS:
            operation["security"] = []
        elif blueprint in DEFAULT_TOKEN_BLUEPRINTS:
            operation["security"] = [{"device": []}]
            answers |= _SIGNED_IN_ANSWERS
        else:
            answers |= _SIGNED_IN_ANSWERS
            if method != "get":
                answers |= _WRITE_ANSWERS
        if "requestBody" in operation:
            answers |= _BODY_ANSWERS
        responses = operation.setdefault("responses", {})
        for status, description in answers.items():
            responses.setdefault(status, {"description": description})
        for status, response in responses.items():
            if str(status)[0] in "45" and "content" not in response:
                response["content"] = {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


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
