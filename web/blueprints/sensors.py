"""Sensor ingestion: devices post counts with their own bearer token.

This blueprint authenticates devices by token, not by the user session. Its name,
``sensor_ingest``, is on the sign-in guard's list of token-authenticated blueprints
(``web.auth.DEFAULT_TOKEN_BLUEPRINTS``): no session, no CSRF check. With a plain
Flask-WTF ``CSRFProtect`` the equivalent is ``csrf.exempt(bp)``. Nothing
session-authenticated may ever be added here.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from gridmap.errors import PayloadTooLarge
from video import sensors
from web import errors
from web.database import get_session

bp = Blueprint("sensor_ingest", __name__, url_prefix="/api/sensors")

errors.register_status(sensors.SensorAuthError, 401)


@bp.errorhandler(sensors.SensorAuthError)
def unauthorized(exc: sensors.SensorAuthError):
    """Answer 401 with the challenge RFC 6750 asks for."""
    response, status = errors.error_response(401, exc.reason)
    response.headers["WWW-Authenticate"] = 'Bearer realm="gridmap-sensors"'
    return response, status


def _body() -> bytes:
    """Return the request body, refusing more than the ingestion limit unread."""
    if (request.content_length or 0) > sensors.MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body exceeds {sensors.MAX_BODY_BYTES} bytes")
    # Read one byte past the limit so a body without Content-Length is caught too.
    return request.stream.read(sensors.MAX_BODY_BYTES + 1)


@bp.post("/<device_id>/readings")
def post_readings(device_id: str):
    """Ingest sensor readings.
    ---
    post:
      summary: Store one reading or a batch from a crowd-flow sensor (idempotent on time)
      description: >
        Authenticated by the device's own token (`Authorization: Bearer <token>`).
        A reading is `{time, count, area_m2?}`: time as ISO 8601 with an offset or
        Unix seconds (up to 30 days old, at most 5 minutes ahead), count >= 0,
        area_m2 (1 to 1,000,000 m²) overriding the sensor's area. No reading may
        exceed 10 persons/m², the densest crowds measured. A batch is a list of up
        to 1,000.
        The whole batch is validated before anything is stored; times already
        stored are ignored (re-sends are safe) and late readings are accepted.
      parameters:
        - {in: header, name: Authorization, required: true, schema: {type: string},
           description: 'Bearer <device token>'}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              oneOf:
                - &reading
                  type: object
                  required: [time, count]
                  additionalProperties: false
                  properties:
                    time: {oneOf: [{type: string, format: date-time}, {type: number}]}
                    count: {type: number, minimum: 0}
                    area_m2: {type: number, minimum: 1, maximum: 1000000}
                - {type: array, minItems: 1, maxItems: 1000, items: *reading}
      responses:
        200: {description: '{device_id, received, stored, duplicates, alerts_raised, alerts_cleared};
                             the alert figures count hysteresis transitions (a raise re-arms the
                             sensor''s alert if nobody has closed it yet)'}
        400: {description: 'Malformed or too deeply nested JSON, bad time, negative/NaN count, area out of range, over 10 persons/m², empty batch; reason says which'}
        401: {description: Missing or wrong token}
        404: {description: Unknown device}
        413: {description: Body over 256 KiB or more than 1,000 readings}
    """
    body = _body()
    session = get_session()
    sensor = sensors.authenticate(session, device_id, request.headers.get("Authorization"))
    readings = sensors.parse_readings(sensors.parse_body(body), sensor.area_m2)
    result = sensors.ingest(session, sensor, readings)
    session.commit()
    return jsonify(result)
