"""Grid teams API: the "1+1+Z+N" members of a grid, and the grids whose team has gaps.

Changes name the member version they started from (``If-Match: "<version>"`` or a
``version`` field); a stale one is 409 with the current member. A second leader or
full-time worker in one grid is 409 naming the holder. Grids outside the caller's
jurisdiction are 404, as if they did not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify

from geodata.io import ImportRejected, read_table
from gridmap import teams
from gridmap.errors import InvalidInput
from web.auth import audit
from web.database import get_session
from web.i18n import catalog, current_language
from web.params import edited_version, int_arg, json_object, uploaded_file
from web.scope import current_prefix
from web.wall import WallLayer, register_layer

bp = Blueprint("teams", __name__)

# The command center sees at a glance where a grid lacks its leader or full-time worker.
register_layer(WallLayer("team_gaps", "wall_layer_team_gaps", "grid_values", "/api/teams/gaps.json",
                         requires="/api/teams/gaps.json", refresh_s=60,
                         options={"property": "staffed", "legend": "wall_team_gap_legend",
                                  "missing": "none", "flag": True}))

MAX_BODY = 4096
MAX_ROSTER_BYTES = 2 * 1024 * 1024


def _version(body: dict[str, Any]) -> int:
    """Return the member version from If-Match, ?version= or the body (they must agree)."""
    return edited_version(body, teams.parse_member_version, query=True)


def _with_etag(result: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(result)
    response.status_code = status
    member = result.get("member")
    if member:
        response.headers["ETag"] = f'"{member["version"]}"'
    return response


@bp.get("/api/grids/<code>/team")
def get_team(code: str) -> Response:
    """A grid's team.
    ---
    get:
      summary: The grid's current "1+1+Z+N" team, counts per role and staffing problems
      description: >
        problems lists what keeps the team from "1+1": no_leader, no_full_time,
        extra_leader, extra_full_time. Members carry the version an edit must name.
      responses:
        200: {description: 'code, name, community, members[], counts, problems[]'}
        404: {description: No such grid in the caller's jurisdiction}
    """
    return jsonify(teams.team(get_session(), code, prefix=current_prefix()))


@bp.post("/api/grids/<code>/team")
def add_member(code: str) -> Response:
    """Add a team member.
    ---
    post:
      summary: Add a member (leader, full_time, part_time or volunteer) to a grid's team
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [role, name, phone]
              properties:
                role: {type: string, enum: [leader, full_time, part_time, volunteer]}
                name: {type: string, maxLength: 40}
                phone: {type: string, description: 'mobile (11 digits) or landline with area code'}
      responses:
        201: {description: 'member (with its version) and the team'}
        400: {description: A missing or bad field}
        404: {description: No such grid}
        409: {description: 'The grid already has a leader (or full-time worker); details.holder'}
    """
    body = json_object(MAX_BODY)
    session = get_session()
    result = teams.add_member(session, code, body, prefix=current_prefix())
    session.commit()
    return _with_etag(result, 201)


@bp.patch("/api/grids/<code>/team/<int:member_id>")
def update_member(code: str, member_id: int) -> Response:
    """Change a team member.
    ---
    patch:
      summary: Change a member's role, name or phone
      parameters:
        - {in: header, name: If-Match, schema: {type: string}, description: 'the member version edited'}
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              properties:
                version: {type: integer}
                role: {type: string, enum: [leader, full_time, part_time, volunteer]}
                name: {type: string}
                phone: {type: string}
      responses:
        200: {description: 'member and team'}
        400: {description: A bad field or no version}
        404: {description: No such member in this grid's team}
        409: {description: 'Stale version (details.current), or the post is taken'}
    """
    body = json_object(MAX_BODY)
    body = {**body, "version": _version(body)}
    session = get_session()
    result = teams.update_member(session, code, member_id, body, prefix=current_prefix())
    session.commit()
    return _with_etag(result)


@bp.delete("/api/grids/<code>/team/<int:member_id>")
def remove_member(code: str, member_id: int) -> Response:
    """Take a member off a team.
    ---
    delete:
      summary: Mark a member as having left the team (their patrols and reports are kept)
      parameters:
        - {in: header, name: If-Match, schema: {type: string}}
        - {in: query, name: version, schema: {type: integer}}
      responses:
        200: {description: 'removed (the member id) and the team'}
        404: {description: No such member in this grid's team}
        409: {description: Stale version}
    """
    body = json_object(MAX_BODY, optional=True)
    session = get_session()
    result = teams.remove_member(session, code, member_id, _version(body),
                                 prefix=current_prefix())
    session.commit()
    return jsonify(result)


@bp.post("/api/grids/<code>/team/<int:member_id>/move")
def move_member(code: str, member_id: int) -> Response:
    """Move a member to another grid.
    ---
    post:
      summary: Move a member, with their role, to another grid's team in the jurisdiction
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
                to: {type: string, description: the destination grid's code}
                version: {type: integer}
      responses:
        200: {description: 'member, and the teams it left (from) and joined (to)'}
        404: {description: No such member, or no such destination grid}
        409: {description: "Stale version, or the destination's post is taken"}
    """
    body = json_object(MAX_BODY)
    session = get_session()
    result = teams.move_member(session, code, member_id, _version(body), body.get("to"),
                               prefix=current_prefix())
    session.commit()
    return _with_etag(result)


@bp.get("/api/teams/gaps")
def team_gaps() -> Response:
    """Grids whose team has gaps.
    ---
    get:
      summary: The grids in the caller's jurisdiction whose team is not "1+1", by code
      parameters:
        - {in: query, name: offset, schema: {type: integer, minimum: 0}}
        - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 500}}
      responses:
        200: {description: 'total, offset, limit and grids[] with their problems'}
        400: {description: Bad paging values}
    """
    return jsonify(teams.gaps(
        get_session(), prefix=current_prefix(),
        offset=int_arg("offset", 0), limit=int_arg("limit", 100, minimum=1, maximum=teams.MAX_PAGE),
    ))


@bp.get("/api/teams/gaps.json")
def team_gap_values() -> Response:
    """Grids without their 1+1, as map-layer values.
    ---
    get:
      summary: 'Every grid of the jurisdiction lacking its 1+1: [{key: code, staffed: 0, problems}]'
      responses:
        200: {description: The list (the wall's "team gaps" layer)}
    """
    return jsonify(teams.gap_values(get_session(), prefix=current_prefix()))


@bp.get("/api/teams.csv")
def roster() -> Response:
    """The team roster.
    ---
    get:
      summary: Every current team member of the caller's grids as CSV (UTF-8 with BOM, for Excel)
      description: >
        Columns town_code, town_name, community_code, community_name, grid_code,
        grid_name, role (in the UI language), name, phone. The download is audited.
      responses:
        200: {description: The CSV file}
    """
    prefix = current_prefix()
    labels = catalog(current_language())
    body = teams.roster_csv(get_session(), prefix=prefix,
                            labels={role: labels.get(role, role) for role in teams.ROLES})
    # Staff phone numbers leave the system here: record who took them (not the numbers).
    audit("team.roster_export", target=prefix or "district")
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="grid-teams-{stamp}.csv"'
    return response


@bp.post("/api/teams/import")
def import_roster() -> Response:
    """Import a team roster.
    ---
    post:
      summary: Give each grid in a roster CSV exactly the members it lists; all rows or none
      description: >
        The roster's form is the export's (grid_code, role, name, phone, member_id; the
        town and community columns are ignored; Chinese headers 网格编码, 角色, 姓名, 电话,
        成员编号 work too). Roles may be codes or labels (网格长, Grid leader). A row
        keeps the record its member_id names when it still has that member's name or
        phone (so a new phone number or a corrected name keeps the record); other rows
        are matched by name and phone, so moved members keep their record; members no
        longer listed are marked as having left; grids not in the file are untouched.
      requestBody:
        content:
          multipart/form-data:
            schema: {type: object, properties: {file: {type: string, format: binary}}}
      responses:
        200: {description: '{grids, added, updated, unchanged, left, team_gaps}'}
        400: {description: "Bad file; details.errors lists every bad row and its reason, grids outside the jurisdiction too"}
        413: {description: File too large}
    """
    data, _filename = uploaded_file(MAX_ROSTER_BYTES)
    try:
        rows = read_table(data, max_rows=teams.MAX_ROSTER_ROWS)
    except ImportRejected as exc:
        raise InvalidInput(f"{len(exc.errors)} problem(s) in the file; nothing was changed",
                           errors=[e._asdict() for e in exc.errors]) from None
    labels = {catalog(lang)[role]: role for lang in ("zh", "en") for role in teams.ROLES}
    session = get_session()
    result = teams.import_roster(session, rows, prefix=current_prefix(), role_names=labels)
    session.commit()
    audit("team.roster_import", target=current_prefix() or "district",
          grids=result["grids"], added=result["added"], left=result["left"])
    return jsonify(result)
