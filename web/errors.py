"""Map domain exceptions and HTTP errors to JSON 4xx responses, in one place."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from geodata.coords import CoordinateError
from gridmap import errors as domain

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[Exception], int] = {
    domain.NotFound: 404,
    domain.InvalidInput: 400,
    domain.Conflict: 409,
    domain.PayloadTooLarge: 413,
    domain.Forbidden: 403,
    domain.DatabaseUnavailable: 503,
    CoordinateError: 400,
}


def register_status(exc_type: type[Exception], status: int) -> None:
    """Let another room's exception family map to an HTTP status."""
    STATUS_BY_ERROR[exc_type] = status


def status_for(exc: Exception) -> int | None:
    """Return the HTTP status for a domain exception, or None if unknown."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return None


def error_response(status: int, reason: str, **details):
    """Return a JSON error body ``{"error": ..., "reason": ...}`` with the status."""
    body = {"error": status, "reason": reason}
    if details:
        body["details"] = details
    return jsonify(body), status


def init_app(app: Flask) -> None:
    """Register the error handlers."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            return error_response(exc.code or 500, exc.description or exc.name)
        return exc

    @app.errorhandler(Exception)
    def any_error(exc: Exception):
        status = status_for(exc)
        if status is not None:
            details = getattr(exc, "details", {}) or {}
            reason = getattr(exc, "reason", None) or str(exc)
            return error_response(status, reason, **details)
        # Unknown failures: log server-side (no request data), answer without a traceback.
        log.exception("unhandled %s on %s %s", type(exc).__name__, request.method, request.path)
        return error_response(500, "internal error; the operators have been notified")
