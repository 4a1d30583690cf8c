"""Grid editing API and page: redraw, split, merge, move an edge, reassign, upload, history.

Every edit names the version it started from (``If-Match: "<version>"`` or a
``version`` field); a stale one is answered 409 with the current version and
geometry. Broken coverage is 400 with ``details.offending`` as GeoJSON. Grids
outside the caller's jurisdiction are 404, as if they did not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, jsonify, request

from gridmap import grid_edits
from gridmap.errors import InvalidInput
from web.auth import current_actor, write_refusal
from web.database import get_session
from web.grid_edit_page import grid_edit_html
from web.i18n import catalog
from web.params import edited_version, json_object, uploaded_file
from web.reasons import localize_rows
from web.scope import current_prefix

# The page's date field names Beijing days (its exports end each at 23:59:59+08:00).
LOCAL_TZ = ZoneInfo("Asia/Shanghai")

bp = Blueprint("grid_edit", __name__)

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
EXPORT_TYPES = {
    "geojson": ("application/geo+json", "geojson"),
    "gpkg": ("application/geopackage+sqlite3", "gpkg"),
    "shp": ("application/zip", "zip"),
}


def _context(body: dict[str, Any] | None = None) -> grid_edits.EditContext:
    reason = (body or {}).get("reason") if body is not None else request.form.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("reason must be text")
    # The sign-in guard names the editor; "anonymous" only outside a signed-in request.
    actor = g.get("user_name") or "anonymous"
    return grid_edits.EditContext(actor=actor, reason=reason or "", prefix=current_prefix())


def _version(body: dict[str, Any]) -> int:
    """Return the edited version from If-Match or the body (they must agree if both)."""
    return edited_version(body, grid_edits.parse_version)


def _versions(body: dict[str, Any]) -> dict[str, int]:
    raw = body.get("versions")
    if not isinstance(raw, dict):
        raise InvalidInput('versions must map each grid code to the version you edited')
    return {str(k): grid_edits.parse_version(v) for k, v in raw.items()}


def _edited(result: dict[str, Any], code: str | None = None) -> Response:
    response = jsonify(result)
    version = result["versions"].get(code) if code else None
    if version is not None:
        response.headers["ETag"] = f'"{version}"'
    return response


@bp.put("/api/grids/<code>/geometry")
def put_geometry(code: str) -> Response:
    """Redraw a grid's boundary.
    ---
    put:
      summary: Give a grid a new boundary; neighbours give up or receive the difference
      description: >
        Area the grid gains is taken from its neighbours; area it gives up goes to
        `neighbour` (a grid code, or `auto` for the same-community grid sharing the
        longest border); without one, freeing area is refused with the freed area in
        details.offending and the candidates. Grids stay within their community.
      parameters:
        - {in: header, name: If-Match, schema: {type: string}, description: 'the version edited, e.g. "3"'}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [geometry, reason]
              properties:
                geometry: {type: object, description: GeoJSON Polygon/MultiPolygon in EPSG:4326}
                version: {type: integer}
                reason: {type: string, maxLength: 500}
                neighbour: {type: string, description: grid code or auto}
      responses:
        200: {description: 'The edit: changed/created codes and their new versions'}
        400: {description: 'Invalid geometry or broken coverage; details.offending is GeoJSON'}
        404: {description: No such grid in the caller's jurisdiction}
        409: {description: 'Stale version; details has current_version and geometry'}
    """
    body = json_object()
    neighbour = body.get("neighbour")
    if neighbour is not None and not isinstance(neighbour, str):
        raise InvalidInput("neighbour must be a grid code or 'auto'")
    session = get_session()
    result = grid_edits.edit_boundary(
        session,
        code,
        body.get("geometry"),
        version=_version(body),
        ctx=_context(body),
        neighbour=neighbour or None,
    )
    session.commit()
    return _edited(result, code)


@bp.post("/api/grids/<code>/split")
def split(code: str) -> Response:
    """Split a grid along a line.
    ---
    post:
      summary: Cut a grid in pieces along a drawn line; the largest piece keeps the code
      parameters:
        - {in: header, name: If-Match, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [line, reason]
              properties:
                line: {type: object, description: GeoJSON LineString crossing the grid}
                version: {type: integer}
                reason: {type: string}
      responses:
        200: {description: 'The edit; created lists the new grid codes'}
        400: {description: The line does not cross the grid, or a piece is too small}
        404: {description: No such grid}
        409: {description: Stale version}
    """
    body = json_object()
    session = get_session()
    result = grid_edits.split(
        session, code, body.get("line"), version=_version(body), ctx=_context(body)
    )
    session.commit()
    return _edited(result, code)


@bp.post("/api/grids/merge")
def merge() -> Response:
    """Merge adjacent grids.
    ---
    post:
      summary: Merge adjacent grids of one community; `keep` (default the first) keeps its code
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [codes, versions, reason]
              properties:
                codes: {type: array, items: {type: string}, minItems: 2}
                versions: {type: object, additionalProperties: {type: integer}}
                keep: {type: string}
                reason: {type: string}
      responses:
        200: {description: 'The edit; retired maps each merged code to the surviving one'}
        400: {description: Not adjacent, different communities, or bad input}
        404: {description: No such grid}
        409: {description: Stale version}
    """
    body = json_object()
    codes = body.get("codes")
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise InvalidInput("codes must be a list of grid codes")
    keep = body.get("keep")
    session = get_session()
    result = grid_edits.merge(
        session, codes, versions=_versions(body), ctx=_context(body), keep=keep
    )
    session.commit()
    return _edited(result)


@bp.post("/api/grids/edge")
def move_edge() -> Response:
    """Move the shared edge of two grids.
    ---
    post:
      summary: Replace the shared edge of grids a and b by a line with the same end points
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [a, b, line, versions, reason]
              properties:
                a: {type: string}
                b: {type: string}
                line: {type: object, description: GeoJSON LineString from one end of the edge to the other}
                versions: {type: object, additionalProperties: {type: integer}}
                reason: {type: string}
      responses:
        200: {description: The edit}
        400: {description: Not neighbours, wrong end points, or the line leaves the two grids}
        404: {description: No such grid}
        409: {description: Stale version}
    """
    body = json_object()
    a, b = body.get("a"), body.get("b")
    if not isinstance(a, str) or not isinstance(b, str):
        raise InvalidInput("a and b must be grid codes")
    session = get_session()
    result = grid_edits.move_edge(
        session, a, b, body.get("line"), versions=_versions(body), ctx=_context(body)
    )
    session.commit()
    return _edited(result)


@bp.post("/api/grids/<code>/reassign")
def reassign(code: str) -> Response:
    """Move a grid to another community.
    ---
    post:
      summary: Move a grid to an adjacent community of the same town; it gets a new code there
      parameters:
        - {in: header, name: If-Match, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [community, reason]
              properties:
                community: {type: string, description: 12-digit community code}
                version: {type: integer}
                reason: {type: string}
      responses:
        200: {description: 'The edit; moved maps the old code to the new one'}
        400: {description: Not adjacent, another town, or the community would be left empty}
        404: {description: No such grid or community}
        409: {description: Stale version}
    """
    body = json_object()
    session = get_session()
    result = grid_edits.reassign(
        session, code, body.get("community"), version=_version(body), ctx=_context(body)
    )
    session.commit()
    return _edited(result)


@bp.post("/api/grids/upload")
def upload() -> Response:
    """Replace grid boundaries from a file.
    ---
    post:
      summary: Upload GeoJSON or GeoPackage features (code, version, polygon); all or nothing
      description: >
        Together the uploaded grids must cover exactly the area of the grids they
        replace (rounding below 1 m² is tolerated); each feature's version must be
        current. Export a file first: it has the code and version columns.
      requestBody:
        content:
          multipart/form-data:
            schema:
              type: object
              properties:
                file: {type: string, format: binary}
                reason: {type: string}
      responses:
        200: {description: 'The edit, plus warnings: what the reader did to the file (coordinates transformed, Z dropped)'}
        400: {description: 'Bad file or broken coverage; details.errors or details.offending'}
        409: {description: A feature's version is stale}
        413: {description: File too large}
    """
    data, filename = uploaded_file(MAX_UPLOAD_BYTES)
    session = get_session()
    result = grid_edits.upload(session, data, filename, ctx=_context(None))
    session.commit()
    return _edited({**result, "warnings": localize_rows(result["warnings"])})


@bp.get("/api/grids/<code>/versions")
def versions(code: str) -> Response:
    """A grid's version history.
    ---
    get:
      summary: Every version of a grid, oldest first, with who, when, why and the kind of edit
      responses:
        200: {description: '{code, versions: [...]}'}
        404: {description: No such grid}
    """
    items = grid_edits.versions(get_session(), code, prefix=current_prefix())
    return jsonify({"code": code, "versions": items})


@bp.get("/api/grids/<code>/versions/<int:n>")
def version(code: str, n: int) -> Response:
    """One version of a grid.
    ---
    get:
      summary: A grid's geometry and attributes at version n (GeoJSON Feature)
      responses:
        200: {description: GeoJSON Feature (geometry null for a retired code)}
        404: {description: No such grid or version}
    """
    feature = grid_edits.version_feature(get_session(), code, n, prefix=current_prefix())
    return Response(_json(feature), mimetype="application/geo+json")


@bp.get("/api/grids/<code>/compare")
def compare(code: str) -> Response:
    """Compare two versions of a grid.
    ---
    get:
      summary: Both versions and the symmetric difference, gained and lost area
      parameters:
        - {in: query, name: a, required: true, schema: {type: integer}}
        - {in: query, name: b, required: true, schema: {type: integer}}
      responses:
        200: {description: '{a, b, difference, gained, lost} as GeoJSON Features'}
        400: {description: Missing a or b}
        404: {description: No such grid or version}
    """
    a, b = _int_query("a"), _int_query("b")
    return jsonify(grid_edits.compare(get_session(), code, a, b, prefix=current_prefix()))


@bp.post("/api/grids/<code>/revert")
def revert(code: str) -> Response:
    """Revert a grid to an earlier version.
    ---
    post:
      summary: Give a grid the boundary of an earlier version (an edit with the same checks)
      description: >
        Freed area goes to the bordering grid of the same community (auto). Reverting
        to a version before a split undoes it: grids split off since then that the
        old boundary covers are retired into this one (listed in `retired`).
      parameters:
        - {in: header, name: If-Match, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [to]
              properties:
                to: {type: integer, description: the version to restore}
                version: {type: integer, description: the current version you saw}
                reason: {type: string}
      responses:
        200: {description: The edit}
        400: {description: The old boundary no longer fits the coverage (details.offending)}
        404: {description: No such grid or version}
        409: {description: Stale version}
    """
    body = json_object()
    to = grid_edits.parse_version(body.get("to"))
    session = get_session()
    ctx = _context(body)
    if not ctx.reason:
        ctx = grid_edits.EditContext(ctx.actor, f"revert to version {to}", ctx.prefix)
    result = grid_edits.revert(session, code, to, version=_version(body), ctx=ctx)
    session.commit()
    return _edited(result, code)


@bp.get("/api/grids/<code>/adjacent")
def adjacent(code: str) -> Response:
    """Grids and communities bordering a grid.
    ---
    get:
      summary: The grids sharing an edge with a grid and the communities it could move to
      responses:
        200: {description: '{code, version, grids: [{code, name, version, same_community, shared_m}], communities: [{code, name}]}'}
        404: {description: No such grid}
    """
    return jsonify(grid_edits.adjacent(get_session(), code, prefix=current_prefix()))


@bp.get("/api/grids/export.<fmt>")
def export(fmt: str) -> Response:
    """Export the grids, now or as of a date.
    ---
    get:
      summary: Grids as GeoJSON, GeoPackage or zipped Shapefile, optionally as they were at a date
      parameters:
        - {in: path, name: fmt, required: true, schema: {type: string, enum: [geojson, gpkg, shp]}}
        - {in: query, name: as_of, schema: {type: string, format: date-time}, description: ISO date or date-time (UTC if no zone)}
        - {in: query, name: level, schema: {type: string, enum: [grid, community]}, description: 'community: each community as the union of its grids at that time'}
      responses:
        200: {description: 'The file (grids: code, name, kind, community, version, since; communities: code, name, grids)'}
        400: {description: 'Unknown format or level, bad date, or a date before the grid records begin (records_begin)'}
    """
    if fmt not in EXPORT_TYPES:
        raise InvalidInput("format must be geojson, gpkg or shp", format=fmt)
    as_of = _as_of(request.args.get("as_of"))
    level = request.args.get("level") or "grid"
    body = grid_edits.export(get_session(), fmt, as_of=as_of, prefix=current_prefix(),
                             level=level)
    mimetype, ext = EXPORT_TYPES[fmt]
    stamp = as_of.strftime("%Y%m%dT%H%M%S") if as_of else "current"
    response = Response(body, mimetype=mimetype)
    name = grid_edits.EXPORT_LEVELS[level][0]
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.{ext}"'
    return response


@bp.get("/grids/edit")
def edit_page() -> Response:
    """Serve the grid editing page (folium + Geoman, offline)."""
    from flask_wtf.csrf import generate_csrf

    actor = current_actor()
    config = {
        "lang": g.lang,
        "i18n": catalog(g.lang),
        "page": "grid-edit",
        # Offer only what the guard allows: viewers and patrol leads look, not edit.
        "can_edit": write_refusal(actor, "grid_edit.put_geometry") is None,
        "can_edit_team": write_refusal(actor, "teams.update_member") is None,
        # The earliest day an "as of" export can name: before it nothing is recorded.
        "records_begin_day": _local_day(grid_edits.records_begin(get_session())),
    }
    html = grid_edit_html(
        config, tile_url=current_app.config.get("TILE_URL"), csrf_token=generate_csrf()
    )
    return Response(html, mimetype="text/html")


def _int_query(name: str) -> int:
    raw = request.args.get(name)
    if raw is None:
        raise InvalidInput(f"missing query parameter {name!r}")
    return grid_edits.parse_version(raw)


def _local_day(moment: datetime | None) -> str | None:
    """Return the Beijing calendar day of a moment (the day the page's date field names)."""
    return moment.astimezone(LOCAL_TZ).date().isoformat() if moment else None


def _as_of(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("as_of must be an ISO date or date-time", as_of=raw[:40]) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
