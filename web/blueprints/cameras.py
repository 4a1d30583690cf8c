"""Camera API: list/get/create/update, nearby, in-area, bbox, map layer, import/export."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, g, jsonify, request

from gridmap import accounts
from gridmap.errors import InvalidInput
from video import registry
from web.auth import audit
from web.database import get_session, read_connection
from web.errors import answerable
from web.params import bbox_arg, float_arg, int_arg, json_object, list_arg, uploaded_file
from web.reasons import localize_rows
from web.scope import camera_filters, current_prefix

bp = Blueprint("cameras", __name__, url_prefix="/api")

MAX_IMPORT_BYTES = 10 * 1024 * 1024
# The audit actions a camera's history shows (its writes, not who looked at it).
CAMERA_HISTORY = ("camera.registered", "camera.changed", "camera.imported")
EXPORT_TYPES = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "geojson": ("application/geo+json", "geojson"),
    "gpkg": ("application/geopackage+sqlite3", "gpkg"),
}


@bp.get("/cameras")
def list_cameras():
    """List cameras with paging and filters.
    ---
    get:
      summary: Cameras in the caller's jurisdiction, paged and filtered
      parameters:
        - {in: query, name: source, schema: {type: string}, description: 'comma-separated'}
        - {in: query, name: status, schema: {type: string}}
        - {in: query, name: tag, schema: {type: string}}
        - {in: query, name: area, schema: {type: string, pattern: '^[0-9]{6,15}$'},
           description: 'a town (9), community (12) or grid (15) code'}
        - {in: query, name: q, schema: {type: string}, description: name or GB ID prefix}
        - {in: query, name: sector, schema: {type: string, enum: [known, unknown]},
           description: whether heading and field of view are recorded}
        - {in: query, name: sort, schema: {type: string, enum: [gb_id, name, snapshot_at, -snapshot_at]},
           description: 'snapshot_at: longest without a picture first'}
        - {in: query, name: offset, schema: {type: integer, minimum: 0}}
        - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 1000}}
      responses:
        200: {description: '{total, offset, limit, items}'}
        400: {description: Bad filter or paging value}
    """
    page = registry.list_cameras(
        get_session(),
        camera_filters(),
        offset=int_arg("offset", 0, maximum=10_000_000),
        limit=int_arg("limit", 100, minimum=1, maximum=registry.MAX_PAGE_SIZE),
        **ledger_args(),
        order=request.args.get("sort") or "gb_id",
    )
    return jsonify(page)


def ledger_args() -> dict[str, str | None]:
    """Return the list's and the export's search text (``q``) and ``sector`` condition."""
    return {"q": (request.args.get("q") or "").strip()[:60] or None,
            "sector": request.args.get("sector") or None}


@bp.get("/cameras/<gb_id>")
def get_camera(gb_id: str):
    """One camera.
    ---
    get:
      summary: A camera by GB/T 28181 ID (never includes credentials)
      responses:
        200: {description: The camera}
        404: {description: Unknown or outside the caller's jurisdiction}
    """
    return jsonify(registry.get(get_session(), gb_id, prefix=current_prefix()))


@bp.post("/cameras")
def create_camera():
    """Register a camera.
    ---
    post:
      summary: Register a camera; credentials in URLs are split off and stored encrypted
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [gb_id, name, lon, lat, source, main_url]
              properties:
                tags:
                  description: "a list, or one string separated by , ; 、 (ASCII or full width):
                    short words; a known tag (key_place, crowd, intersection, road, village,
                    community, river) may be written by its Chinese or English name and is
                    stored as its code"
                  oneOf: [{type: array, items: {type: string}}, {type: string}]
      responses:
        201: {description: Created}
        400: {description: Invalid field, with the reason}
        409: {description: Duplicate GB ID}
    """
    body = json_object()
    session = get_session()
    camera = registry.create(session, body)
    session.commit()
    audit("camera.registered", target=f"camera:{camera['gb_id']}", login=_login_given(body))
    return jsonify(camera), 201


@bp.patch("/cameras/<gb_id>")
def update_camera(gb_id: str):
    """Update or move a camera.
    ---
    patch:
      summary: Change a camera's fields; a move re-derives its grid and view sector
      description: >
        A camera keeps one login, for its streams (main_url and sub_url), stored apart
        and encrypted. Give it in a stream address (rtsp://user:password@host/…; an empty
        "@" gives none); main_url and sub_url may both carry it only if it is the same,
        and snapshot_url may only repeat it. The stored login is bound to the streams'
        scheme, host and port: a change that points a stream at another one without a
        login removes it (warnings: code login_dropped), so it is never sent to another
        server; a change of path or query keeps it. "clear_login": true removes it.
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                clear_login: {type: boolean, description: remove the stored login}
      responses:
        200: {description: 'The updated camera, with warnings: [{row, field, code, reason,
              message}] saying what the change did besides (login_dropped, login_cleared)'}
        400: {description: Invalid field, with the reason}
        404: {description: Unknown camera}
    """
    body = json_object()
    session = get_session()
    before = registry.get(session, gb_id, prefix=current_prefix())
    warnings: list[dict] = []
    camera = registry.update(session, gb_id, body, prefix=current_prefix(), warnings=warnings)
    session.commit()
    # Which fields changed, never their values: the trail says who did what, and a
    # stream address is not for every reader of it (its login never is).
    # Tags are a set: stored sorted on write, so an older unsorted list is not a change.
    changed = [k for k in registry.CAMERA_FIELDS
               if (sorted(before[k] or []) != sorted(camera[k] or []) if k == "tags"
                   else before.get(k) != camera.get(k))]
    audit("camera.changed", target=f"camera:{gb_id}", fields=changed, login=_login_given(body),
          **_login_removed(warnings))
    return jsonify({**camera, "warnings": answerable(localize_rows(warnings))})


def _login_given(body: dict) -> bool:
    """Return whether a request's stream addresses carry a login (stored apart, never logged)."""
    return any(registry.login_given(body.get(k)) for k in ("main_url", "sub_url", "snapshot_url"))


def _login_removed(warnings: list[dict]) -> dict[str, bool]:
    """Return the audit detail saying the stored login was dropped or cleared (never what it was)."""
    codes = {w.get("code") for w in warnings}
    return {key: True for key in ("login_dropped", "login_cleared") if key in codes}


@bp.get("/cameras/<gb_id>/changes")
def camera_changes(gb_id: str):
    """Who registered and changed a camera, and when.
    ---
    get:
      summary: The camera's latest registrations, changes and imports from the audit trail
      responses:
        200: {description: '{items: [{at, username, action, detail: {fields, login}}]}'}
        404: {description: Unknown camera or outside the caller's jurisdiction}
    """
    session = get_session()
    registry.get(session, gb_id, prefix=current_prefix())
    return jsonify({"items": accounts.audit_history(session, f"camera:{gb_id}", CAMERA_HISTORY)})


@bp.get("/cameras/nearby")
def nearby():
    """Nearest cameras around a point.
    ---
    get:
      summary: The nearest cameras within a radius, with distance (m) and bearing (°)
      parameters:
        - {in: query, name: lon, required: true, schema: {type: number}}
        - {in: query, name: lat, required: true, schema: {type: number}}
        - {in: query, name: radius, schema: {type: number, default: 500, maximum: 20000}}
        - {in: query, name: limit, schema: {type: integer, default: 20, maximum: 200}}
        - {in: query, name: sees, schema: {type: integer, enum: [0, 1]},
           description: rank cameras whose view sector contains the point first}
        - {in: query, name: source, schema: {type: string}}
        - {in: query, name: status, schema: {type: string}}
        - {in: query, name: tag, schema: {type: string}}
        - {in: query, name: fields, schema: {type: string},
           description: "comma-separated keys each item carries: any of bearing, community_code,
             department, distance_m, fov, gb_id, grid_code, has_credentials, heading,
             last_sample_at, lat, lon, main_url, name, range_m, sees_point, snapshot_at,
             snapshot_url, source, status, sub_url, tags, town_code. Default: the summary
             (bearing, distance_m, fov, gb_id, grid_code, heading, lat, lon, name,
             sees_point, snapshot_at, source, status); GET /api/cameras/{gb_id} has the rest"}
      responses:
        200: {description: '{count, items}'}
        400: {description: Bad coordinates, radius, limit or fields}
    """
    items = registry.nearby(
        read_connection(),  # driver SQL only: no ORM session to open (web.database)
        float_arg("lon"),
        float_arg("lat"),
        radius_m=float_arg("radius", 500.0),
        limit=int_arg("limit", registry.DEFAULT_NEARBY, minimum=1, maximum=registry.MAX_NEARBY),
        filters=camera_filters(),
        sees_first=int_arg("sees", 0, maximum=1) == 1,
        fields=list_arg("fields") or registry.NEARBY_SUMMARY,
    )
    return jsonify({"count": len(items), "items": items})


@bp.get("/areas/<code>/cameras")
def cameras_in_area(code: str):
    """Cameras in a grid, community or town.
    ---
    get:
      summary: All cameras under an area code (grid 15, community 12 or town 9 digits)
      responses:
        200: {description: '{count, items}'}
        400: {description: Malformed code}
    """
    items = registry.in_area(get_session(), code, camera_filters())
    return jsonify({"count": len(items), "items": items})


@bp.get("/cameras/bbox")
def cameras_in_bbox():
    """Cameras in a bbox.
    ---
    get:
      summary: Cameras inside west,south,east,north
      parameters:
        - {in: query, name: bbox, required: true, schema: {type: string}}
      responses:
        200: {description: '{count, items}'}
        400: {description: Malformed bbox}
    """
    items = registry.in_bbox(get_session(), *bbox_arg(), filters=camera_filters())
    return jsonify({"count": len(items), "items": items})


@bp.get("/cameras/layer.json")
def camera_layer():
    """Compact camera layer for client-side clustering.
    ---
    get:
      summary: Every camera in scope as compact arrays [gb_id, lon, lat, source, status, sector]
      responses:
        200: {description: '{fields, sources, statuses, rows}'}
    """
    body = registry.layer_json(get_session(), camera_filters())
    resp = Response(body, mimetype="application/json")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/cameras/sectors.geojson")
def camera_sectors():
    """View sectors in a bbox.
    ---
    get:
      summary: Camera fields of view (sectors) inside a bbox, as GeoJSON
      parameters:
        - {in: query, name: bbox, required: true, schema: {type: string}}
      responses:
        200: {description: FeatureCollection}
        400: {description: Malformed or oversized bbox}
    """
    body = registry.sectors_geojson(get_session(), *bbox_arg(), filters=camera_filters())
    return Response(body, mimetype="application/geo+json")


@bp.post("/cameras/import")
def import_cameras():
    """Import a camera ledger.
    ---
    post:
      summary: Upsert cameras by GB ID from CSV, GeoJSON or GeoPackage; all rows or none
      parameters:
        - {in: query, name: datum, schema: {type: string, enum: [wgs84, cgcs2000, gcj02]}}
      requestBody:
        content:
          multipart/form-data:
            schema: {type: object, properties: {file: {type: string, format: binary}}}
      responses:
        200: {description: '{inserted, updated, warnings: [{row, field, reason, message}]}: the
              warnings say what the reader did (coordinates transformed, Z dropped,
              attribute encoding guessed), whose status the file did not change (the
              health checks set it) and whose stored login was removed because a stream
              address now points at another scheme, host or port without a login (code
              login_dropped). A column the file leaves out keeps what is stored'}
        400: {description: Bad file; details.errors lists every bad row and its reason}
        413: {description: File too large}
    """
    from video.ledger import read_camera_file

    data, filename = uploaded_file(MAX_IMPORT_BYTES)
    rows, warnings = read_camera_file(data, filename, request.args.get("datum") or "wgs84")
    session = get_session()
    counts = registry.upsert_many(session, rows)
    session.commit()
    dropped = counts.pop("login_dropped")
    warnings.extend(dropped)
    dropped_ids = {w["gb_id"] for w in dropped}
    status_kept = counts.pop("status_kept")
    if status_kept:
        warnings.append({"row": None, "field": "status", "reason":
                         f"the health checks set a camera's status: {status_kept} existing "
                         "camera(s) kept theirs"})
    audit("cameras.imported", target="cameras", filename=filename[:120], **counts)
    # Each camera's history names the import too; it does not say which fields a
    # ledger changed (the file is the record of that).
    for row in rows:
        gb_id = str(row.get("gb_id") or "").strip()
        audit("camera.imported", target=f"camera:{gb_id}", login=_login_given(row),
              **({"login_dropped": True} if gb_id in dropped_ids else {}))
    # Warnings quote the file too (a CRS label, GDAL's notes): masked like errors.
    return jsonify({**counts, "warnings": answerable(localize_rows(warnings))})


@bp.get("/cameras/import-template.csv")
def import_template():
    """The camera ledger's import template.
    ---
    get:
      summary: An empty camera ledger (header row only) as CSV, Chinese headers unless lang=en
      responses:
        200: {description: The CSV file (UTF-8 with BOM, for Excel)}
    """
    from video.ledger import template_csv

    chinese = g.lang != "en"
    resp = Response(template_csv(chinese), mimetype="text/csv; charset=utf-8")
    name = "摄像机台账模板.csv" if chinese else "camera-ledger-template.csv"
    resp.headers["Content-Disposition"] = (
        f"attachment; filename=\"camera-ledger-template.csv\"; filename*=UTF-8''{quote(name)}")
    return resp


@bp.get("/cameras/export.<fmt>")
def export_cameras(fmt: str):
    """Export cameras.
    ---
    get:
      summary: Cameras in scope as CSV, GeoJSON or GeoPackage (no credentials)
      parameters:
        - {in: path, name: fmt, required: true, schema: {type: string, enum: [csv, geojson, gpkg]}}
        - {in: query, name: datum, schema: {type: string, enum: [wgs84, cgcs2000, gcj02]}}
        - {in: query, name: source, schema: {type: string}}
        - {in: query, name: status, schema: {type: string}}
        - {in: query, name: tag, schema: {type: string}}
        - {in: query, name: area, schema: {type: string, pattern: '^[0-9]{6,15}$'}}
        - {in: query, name: q, schema: {type: string}, description: name or GB ID prefix}
        - {in: query, name: sector, schema: {type: string, enum: [known, unknown]}}
        - {in: query, name: headers, schema: {type: string, enum: [en, zh]},
           description: 'zh: a CSV with Chinese headers and Chinese names of sources, statuses and tags'}
      responses:
        200: {description: The file}
        400: {description: Unknown format}
    """
    from video.ledger import write_camera_file

    if fmt not in EXPORT_TYPES:
        raise InvalidInput("format must be csv, geojson or gpkg", format=fmt)
    rows = registry.export_rows(get_session(), camera_filters(), **ledger_args())
    headers = request.args.get("headers") or "en"
    if headers not in ("en", "zh"):
        raise InvalidInput("headers must be en or zh", headers=headers)
    body = write_camera_file(rows, fmt, request.args.get("datum") or "wgs84",
                             chinese=headers == "zh")
    mimetype, ext = EXPORT_TYPES[fmt]
    resp = Response(body, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="cameras.{ext}"'
    return resp
