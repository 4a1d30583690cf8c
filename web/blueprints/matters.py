"""Matters (事项) JSON API: intake, the five steps, attachments, video link, wall layers.

Every query goes through ``gridmap.matters.scope_clause``: a matter outside the
caller's jurisdiction answers 404 as if it did not exist. Illegal steps answer 409
with the allowed actions; a stale ``version`` answers 409 with the current one.
Text fields are stored and returned as text (HTML is never interpreted here).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from gridmap import matters
from gridmap.errors import InvalidInput, PayloadTooLarge
from web import i18n
from web.auth import current_actor
from web.database import get_session
from web.params import bbox_arg, int_arg, json_object
from web.wall import PanelSection, WallLayer, register_layer, register_section

bp = Blueprint("matters", __name__, url_prefix="/api")

MAX_JSON_BYTES = 64 * 1024
# Intake may carry a few photos; each is capped by the domain (5 MB).
MAX_INTAKE_BYTES = 4 * matters.MAX_ATTACHMENT_BYTES + 64 * 1024
MAX_PHOTOS = 4

i18n.register({
    "wall_layer_matters_open": {"zh": "在办事项", "en": "Open matters"},
    "wall_layer_matters_overdue": {"zh": "超期事项", "en": "Overdue matters"},
    "wall_layer_dispatch_orders": {"zh": "视频调度中的摄像头", "en": "Cameras in open dispatch orders"},
    "wall_section_matters": {"zh": "网格内在办事项", "en": "Open matters in this grid"},
})

# Two matter layers so the wall colours by deadline (its geojson renderer draws one
# colour per layer); each feature also carries ``properties.color`` by state.
register_layer(WallLayer("matters", "wall_layer_matters_open", "geojson", "/api/matters.geojson",
                         requires="/api/matters.geojson", refresh_s=30,
                         options={"color": "#1f78b4"}))
register_layer(WallLayer("matters_overdue", "wall_layer_matters_overdue", "geojson",
                         "/api/matters.geojson?overdue=1", requires="/api/matters.geojson",
                         default_on=True, refresh_s=30, options={"color": "#e31a1c"}))
register_layer(WallLayer("dispatch_orders", "wall_layer_dispatch_orders", "geojson",
                         "/api/dispatch/orders.geojson", requires="/api/dispatch/orders.geojson",
                         refresh_s=15, options={"color": "#ff7f00"}))
register_section(PanelSection("matters", "grid", "wall_section_matters",
                              "/api/grids/{code}/matters",
                              requires="/api/grids/370812001001001/matters"))


def _flag(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw not in ("0", "1", "true", "false"):
        raise InvalidInput(f"{name!r} is 1 or 0")
    return raw in ("1", "true")


def _bbox() -> tuple[float, float, float, float] | None:
    return bbox_arg() if request.args.get("bbox") else None


@bp.get("/matters/categories")
def categories():
    """The category tree.
    ---
    get:
      summary: The ten sector areas and the urban-management classes, two levels
      responses:
        200: {description: '{items: [{code, name_zh, name_en, town_solvable, children}]}'}
    """
    return jsonify({"items": matters.category_tree(get_session())})


@bp.get("/matters/units")
def transfer_units():
    """Units you may transfer matters to.
    ---
    get:
      summary: The units your unit may transfer (转办) a matter to
      responses:
        200: {description: '{count, items}'}
    """
    items = matters.transfer_units(get_session(), current_actor())
    return jsonify({"count": len(items), "items": items})


def _form_payload() -> dict[str, Any]:
    return {k: v for k, v in request.form.items() if v != ""}


@bp.post("/matters")
def create_matter():
    """Report a matter.
    ---
    post:
      summary: Report a matter; it is routed by location and category and its clocks start
      description: JSON, or multipart/form-data with the same fields plus up to 4 files
        "photos" (JPEG, PNG or WebP, 5 MB each). Coordinates in wgs84 (default), gcj02 or
        cgcs2000. The answer carries "duplicates", same-category matters within 50 m and 7 days.
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [category, lon, lat, title]
              properties:
                source: {type: string}
                source_ref: {type: string, maxLength: 64}
                category: {type: string}
                lon: {type: number}
                lat: {type: number}
                coord_sys: {type: string, enum: [wgs84, gcj02, cgcs2000]}
                title: {type: string, maxLength: 120}
                description: {type: string, maxLength: 4000}
                address: {type: string, maxLength: 200}
                urgency: {type: string, enum: [routine, urgent]}
                reporter_name: {type: string, maxLength: 40}
                reporter_phone: {type: string, maxLength: 20}
                reporter_email: {type: string, maxLength: 254}
                reported_by_worker: {type: integer}
                duplicate_of: {type: integer}
      responses:
        201: {description: The matter's detail plus duplicates}
        400: {description: Unknown category, outside the district, bad text or file}
        409: {description: The source reference exists already}
        413: {description: Too large}
    """
    session = get_session()
    actor = current_actor()
    photos = []
    if request.mimetype == "multipart/form-data":
        request.max_content_length = MAX_INTAKE_BYTES
        payload = _form_payload()
        photos = [f for f in request.files.getlist("photos") if f.filename or f.content_length]
        if len(photos) > MAX_PHOTOS:
            raise PayloadTooLarge(f"at most {MAX_PHOTOS} photos")
    else:
        payload = json_object(MAX_JSON_BYTES)
    detail = matters.intake(session, actor, payload)
    for photo in photos:
        data = photo.stream.read(matters.MAX_ATTACHMENT_BYTES + 1)
        matters.add_attachment(session, actor, detail["id"], kind="photo",
                               filename=photo.filename or "", content_type=photo.mimetype,
                               data=data)
    session.commit()
    duplicates = detail["duplicates"]
    if photos:
        detail = matters.matter_detail(session, actor, detail["id"])
        detail["duplicates"] = duplicates
    resp = jsonify(detail)
    resp.headers["Location"] = f"/api/matters/{detail['id']}"
    return resp, 201


@bp.post("/matters/duplicates")
def duplicates():
    """Duplicate suggestions for a report.
    ---
    post:
      summary: Same-category matters within 50 m and 7 days of a point (in your scope)
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [category, lon, lat]
              properties:
                category: {type: string}
                lon: {type: number}
                lat: {type: number}
                coord_sys: {type: string}
      responses:
        200: {description: '{items}'}
        400: {description: Unknown category or bad point}
    """
    body = json_object(MAX_JSON_BYTES)
    session = get_session()
    lon, lat = matters.locate(session, body)
    items = matters.find_duplicates(session, body.get("category"), lon, lat,
                                    actor=current_actor())
    return jsonify({"items": items})


@bp.get("/matters")
def list_matters():
    """List matters.
    ---
    get:
      summary: Matters in your jurisdiction, newest first, with filters
      parameters:
        - {in: query, name: state, schema: {type: string}, description: 'open or a state'}
        - {in: query, name: overdue, schema: {type: integer, enum: [0, 1]}}
        - {in: query, name: category, schema: {type: string}}
        - {in: query, name: area, schema: {type: string}, description: area code prefix}
        - {in: query, name: unit, schema: {type: integer}}
        - {in: query, name: q, schema: {type: string, maxLength: 60}}
        - {in: query, name: bbox, schema: {type: string}}
        - {in: query, name: limit, schema: {type: integer, maximum: 200}}
        - {in: query, name: offset, schema: {type: integer}}
      responses:
        200: {description: '{total, items}'}
        400: {description: A bad filter}
    """
    unit = request.args.get("unit")
    return jsonify(matters.list_matters(
        get_session(), current_actor(), state=request.args.get("state") or None,
        overdue=_flag("overdue"), category=request.args.get("category") or None,
        area=request.args.get("area") or None,
        unit_id=int_arg("unit", 0, minimum=1, maximum=2**31 - 1) if unit else None,
        q=(request.args.get("q") or "").strip() or None, bbox=_bbox(),
        limit=int_arg("limit", 50, minimum=1, maximum=matters.MAX_PAGE),
        offset=int_arg("offset", 0, maximum=10_000_000),
    ))


@bp.get("/matters.geojson")
def matters_layer():
    """Open matters as a map layer.
    ---
    get:
      summary: Open matters in your jurisdiction as GeoJSON points (properties.color by state/deadline)
      parameters:
        - {in: query, name: bbox, schema: {type: string}}
        - {in: query, name: overdue, schema: {type: integer, enum: [0, 1]}}
      responses:
        200: {description: A FeatureCollection}
    """
    body = matters.matters_geojson(get_session(), current_actor(), bbox=_bbox(),
                                   overdue=_flag("overdue"))
    resp = jsonify(body)
    resp.mimetype = "application/geo+json"
    return resp


@bp.get("/dispatch/orders.geojson")
def dispatch_orders_layer():
    """Cameras of open dispatch orders as a map layer.
    ---
    get:
      summary: The cameras of open, unexpired dispatch orders your unit sent or received
      responses:
        200: {description: A FeatureCollection}
    """
    resp = jsonify(matters.open_orders_geojson(get_session(), current_actor()))
    resp.mimetype = "application/geo+json"
    return resp


@bp.get("/grids/<code>/matters")
def grid_matters(code: str):
    """Open matters of a grid (map-wall panel).
    ---
    get:
      summary: A grid's open matters, newest first, for the grid panel
      responses:
        200: {description: '{total, items: [{id, ref, title, time, status}]}'}
        400: {description: Not a grid code}
        404: {description: A grid outside your jurisdiction}
    """
    if not (code.isascii() and code.isdigit() and len(code) == 15):
        raise InvalidInput("a grid code has 15 digits", code=code[:20])
    return jsonify(matters.grid_matters(get_session(), current_actor(), code))


@bp.get("/matters/<int:matter_id>")
def get_matter(matter_id: int):
    """One matter.
    ---
    get:
      summary: A matter with its timeline, deadlines, attachments and your allowed actions
      responses:
        200: {description: The matter}
        404: {description: No such matter in your jurisdiction}
    """
    return jsonify(matters.matter_detail(get_session(), current_actor(), matter_id))


@bp.post("/matters/<int:matter_id>/actions/<action>")
def act(matter_id: int, action: str):
    """Take a step.
    ---
    post:
      summary: 'transfer, accept, return, escalate, handle, verify, reject, close, rate,
        reopen, supervise or comment'
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                note: {type: string, maxLength: 2000}
                unit_id: {type: integer}
                rating: {type: integer, minimum: 1, maximum: 5}
                by: {type: string}
                kind: {type: string, enum: [instant, written, onsite, escalated]}
                respond_by: {type: string, format: date-time}
                version: {type: integer}
      responses:
        200: {description: The matter after the step}
        400: {description: Unknown action or bad payload}
        403: {description: Your unit or role may not take this step}
        404: {description: No such matter in your jurisdiction}
        409: {description: Illegal in the current state, or a stale version}
    """
    session = get_session()
    actor = current_actor()
    detail = matters.apply_action(session, actor, matter_id, action, json_object(MAX_JSON_BYTES, optional=True))
    session.commit()
    return jsonify(detail)


@bp.post("/matters/<int:matter_id>/attachments")
def attach(matter_id: int):
    """Attach a file or a camera snapshot.
    ---
    post:
      summary: Multipart "file" with "kind" (photo, snapshot, document), or JSON {camera_id} for
        that camera's latest snapshot
      responses:
        201: {description: The attachment's metadata}
        400: {description: Not a JPEG/PNG/WebP image or PDF document}
        404: {description: No such matter or camera in your jurisdiction, or no snapshot}
        413: {description: Over 5 MB, or too many attachments}
    """
    session = get_session()
    actor = current_actor()
    if request.mimetype == "multipart/form-data":
        request.max_content_length = matters.MAX_ATTACHMENT_BYTES + 64 * 1024
        upload = request.files.get("file")
        if upload is None:
            raise InvalidInput("send the file as multipart field 'file'", field="file")
        data = upload.stream.read(matters.MAX_ATTACHMENT_BYTES + 1)
        item = matters.add_attachment(session, actor, matter_id,
                                      kind=request.form.get("kind") or "photo",
                                      filename=upload.filename or "",
                                      content_type=upload.mimetype, data=data)
    else:
        body = json_object(MAX_JSON_BYTES)
        item = matters.attach_snapshot(session, actor, matter_id, body.get("camera_id"))
    session.commit()
    return jsonify(item), 201


@bp.get("/matters/<int:matter_id>/attachments/<int:attachment_id>")
def attachment(matter_id: int, attachment_id: int):
    """Download an attachment.
    ---
    get:
      summary: The attachment's bytes (images inline, documents as a download)
      responses:
        200: {description: The file}
        404: {description: No such matter or attachment in your jurisdiction}
    """
    content_type, filename, data = matters.attachment_bytes(
        get_session(), current_actor(), matter_id, attachment_id)
    resp = Response(data, mimetype=content_type)
    disposition = "inline" if content_type.startswith("image/") else "attachment"
    resp.headers.set("Content-Disposition", disposition, filename=filename)
    # Stored bytes were sniffed; never let a browser guess otherwise.
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.get("/matters/<int:matter_id>/cameras")
def cameras(matter_id: int):
    """Cameras that can see a matter.
    ---
    get:
      summary: Cameras in your scope whose view covers the matter's spot, online and nearest first
      parameters:
        - {in: query, name: limit, schema: {type: integer, maximum: 50}}
      responses:
        200: {description: '{count, items}'}
        404: {description: No such matter in your jurisdiction}
    """
    items = matters.cameras_for_matter(get_session(), current_actor(), matter_id,
                                       limit=int_arg("limit", 12, minimum=1, maximum=50))
    return jsonify({"count": len(items), "items": items})


@bp.post("/matters/<int:matter_id>/dispatch")
def dispatch_video(matter_id: int):
    """Dispatch a matter's video.
    ---
    post:
      summary: Send the cameras that can see the matter to units (default its handling unit)
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                unit_ids: {type: array, items: {type: integer}}
                minutes: {type: integer, minimum: 1, maximum: 10080}
                note: {type: string, maxLength: 2000}
      responses:
        201: {description: '{order: id}'}
        400: {description: No camera covers the matter, or a bad payload}
        403: {description: Your role or unit may not dispatch to those units}
        404: {description: No such matter in your jurisdiction}
    """
    session = get_session()
    body = json_object(MAX_JSON_BYTES, optional=True)
    note = body.get("note", "")
    if not isinstance(note, str):
        raise InvalidInput("note must be text", field="note")
    order_id = matters.dispatch_video(session, current_actor(), matter_id,
                                      body.get("unit_ids") or [],
                                      minutes=body.get("minutes", 240), note=note)
    session.commit()
    return jsonify({"order": order_id, "url": f"/api/dispatch/{order_id}"}), 201
