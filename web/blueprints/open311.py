"""Open311 GeoReport v2 at /open311/v2/: services, and service requests to file and follow.

This blueprint authenticates by ``api_key``, not by the user session: its name,
``open311``, is on ``LOGIN_EXEMPT_BLUEPRINTS`` (no sign-in, no CSRF). Posting needs
the key; reading without one shows only requests filed through Open311, roughly
located, and with its key a client also sees its own at full precision
(``gridmap.open311``). Answers never carry personal data. Errors use the Open311
format ``[{"code": 400, "description": "..."}]`` with a 4xx status.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from gridmap import open311
from gridmap.errors import GridmapError
from web import errors as web_errors
from web.database import get_session

log = logging.getLogger(__name__)

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

web_errors.register_status(open311.ApiKeyError, 403)


def _error(status: int, reason: str) -> tuple[Response, int]:
    return jsonify(open311.error_body(status, reason)), status


@bp.errorhandler(GridmapError)
def domain_error(exc: GridmapError):
    """Answer a domain error in the Open311 error format."""
    status = web_errors.status_for(exc) or 400
    return _error(status, exc.reason)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """Answer an HTTP error (413, 405, bad form) in the Open311 error format."""
    return _error(exc.code or 400, exc.description or exc.name)


@bp.get("/services.json")
def services():
    """Our leaf matter categories as Open311 services."""
    return jsonify(open311.services(get_session()))


@bp.get("/services/<code>.json")
def service_definition(code: str):
    """One service's definition (no extra attributes)."""
    return jsonify(open311.service_definition(get_session(), code))


@bp.post("/requests.json")
def post_request():
    """File a service request (form-encoded, with api_key); 201 with its id."""
    session = get_session()
    # A field given twice stays a list, which the domain refuses by name.
    form = {k: v[0] if len(v) == 1 else v
            for k, v in request.form.to_dict(flat=False).items()} if request.form else {}
    if request.is_json:  # some clients send JSON despite the spec; accept an object
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _error(400, "the body must be form-encoded fields")
        form = body  # values as sent: open311.submit keeps text and numbers, refuses the rest
    try:
        answer = open311.submit(session, form)
    except GridmapError:
        session.rollback()  # nothing half-written
        raise
    session.commit()
    return jsonify(answer), 201


@bp.get("/requests.json")
def list_requests():
    """Service requests by id list, or by code, dates and status (what the reader may see)."""
    session = get_session()
    client = open311.reader(session, request.args.get("api_key"))
    return jsonify(open311.list_requests(session, request.args, client=client))


@bp.get("/requests/<ref>.json")
def get_request(ref: str):
    """One service request by id (the matter ref), as a one-element list."""
    session = get_session()
    client = open311.reader(session, request.args.get("api_key"))
    return jsonify(open311.request_by_id(session, ref, client=client))
