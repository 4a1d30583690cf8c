"""Grid teams ("1+1+Z+N"): who works each grid, edited without losing anyone's change.

Each grid has one grid leader (网格长) and one full-time grid worker (专职网格员),
the "1+1", plus any number of part-time workers (Z, 兼职网格员) and volunteers
(N, 志愿者). Adding a second leader or full-time worker is refused; a grid that
lacks one (a new grid after a split, a vacancy) or has two (after a merge) is a
staffing gap, listed for its admins until someone fixes it.

Every member row carries a version: an edit names the version it started from and
a stale one is a Conflict. A member who leaves is marked, not deleted: their patrol
records cascade from the row, and matters they reported point at it. The grid's
row is locked for every change, so two admins cannot both fill the same post.
The roster goes out as CSV for Excel and comes back whole (``import_roster``).
Callers own the transaction (commit or roll back).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.io import spreadsheet_safe
from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.validation import check_grid_code

ROLES = ("leader", "full_time", "part_time", "volunteer")
ONE_PER_GRID = ("leader", "full_time")  # the "1+1"
POST_NAMES = {"leader": "grid leader", "full_time": "full-time grid worker"}
MAX_MEMBERS = 60
MAX_NAME = 40
MAX_PAGE = 500
FIELDS = ("role", "name", "phone")
# Mainland mobile numbers, or landlines with their area code (0537 is Jining's).
MOBILE_RE = re.compile(r"^1[3-9][0-9]{9}$")
LANDLINE_RE = re.compile(r"^0[1-9][0-9]{1,2}[0-9]{7,8}$")
_ROLE_ORDER = "array_position(ARRAY['leader','full_time','part_time','volunteer']::text[], w.role::text)"
_MEMBER_COLUMNS = "w.id, w.role, w.name, w.phone, w.version, w.updated_at"


# --------------------------------------------------------------------------- pure rules


def staffing_problems(roles: Iterable[str]) -> list[str]:
    """Return what keeps a team's roles from being "1+1+Z+N" (e.g. ``no_leader``)."""
    counts = Counter(roles)
    problems = []
    for role in ONE_PER_GRID:
        if counts[role] == 0:
            problems.append(f"no_{role}")
        elif counts[role] > 1:
            problems.append(f"extra_{role}")
    return problems


def parse_role(value: Any) -> str:
    """Return a team role, or InvalidInput naming the roles there are."""
    if not isinstance(value, str) or value not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    return value


def parse_name(value: Any) -> str:
    """Return a member's name: 1–40 printable characters, trimmed."""
    if not isinstance(value, str):
        raise InvalidInput("name must be text", field="name")
    name = unicodedata.normalize("NFC", value).strip()
    if not name:
        raise InvalidInput("name must not be empty", field="name")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"name has at most {MAX_NAME} characters", field="name")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidInput("name must not contain control characters", field="name")
    return name


def parse_phone(value: Any) -> str:
    """Return a phone number as digits: a mainland mobile, or a landline with area code."""
    if not isinstance(value, str):
        raise InvalidInput("phone must be text", field="phone")
    digits = re.sub(r"[\s-]", "", value)
    if digits.startswith("+86"):
        digits = digits[3:]
    if not (MOBILE_RE.match(digits) or LANDLINE_RE.match(digits)):
        raise InvalidInput(
            "phone must be a mobile number (11 digits) or a landline with its area code",
            field="phone",
        )
    return digits


def parse_member(body: Mapping[str, Any], *, partial: bool = False) -> dict[str, str]:
    """Return the checked member fields of a request body (all of them unless ``partial``)."""
    unknown = set(body) - {*FIELDS, "version", "to"}
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    parsers = {"role": parse_role, "name": parse_name, "phone": parse_phone}
    fields = {}
    for name in FIELDS:
        if name in body:
            fields[name] = parsers[name](body[name])
        elif not partial:
            raise InvalidInput(f"missing field {name!r}", field=name)
    if partial and not fields:
        raise InvalidInput("say what to change: role, name or phone")
    return fields


def parse_member_version(value: Any) -> int:
    """Return the member version an edit started from."""
    if isinstance(value, str) and value.strip().strip('"').isdigit():
        value = int(value.strip().strip('"'))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise InvalidInput("version must be the member's version you edited (a positive integer)",
                           field="version")
    return value


# --------------------------------------------------------------------------- reads


def _grid(session: Session, code: str) -> Mapping[str, Any]:
    row = session.execute(
        text(
            "SELECT g.id, g.code, g.name, c.code AS community_code, c.name AS community_name "
            "FROM grids g JOIN communities c ON c.id = g.community_id WHERE g.code = :c"
        ),
        {"c": code},
    ).mappings().first()
    if row is None:
        raise NotFound("no such grid", code=code)
    return row


def _lock_grids(session: Session, codes: Sequence[str], *, require: bool = True) -> dict[str, int]:
    """Lock the grids' rows in id order (no deadlock between two moves); return their ids.

    With ``require``, a code that names no grid is NotFound; without, it is left out.
    """
    rows = session.execute(
        text("SELECT id, code FROM grids WHERE code = ANY(:c) ORDER BY id FOR NO KEY UPDATE"),
        {"c": list(codes)},
    ).all()
    found = {code: gid for gid, code in rows}
    missing = [code for code in codes if code not in found]
    if require and missing:
        raise NotFound("no such grid", code=missing[0])
    return found


def _members(session: Session, grid_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            f"SELECT {_MEMBER_COLUMNS} FROM grid_workers w "
            f"WHERE w.grid_id = :g AND w.left_at IS NULL ORDER BY {_ROLE_ORDER}, w.id"
        ),
        {"g": grid_id},
    ).mappings()
    return [dict(r) for r in rows]


def team(session: Session, code: str, *, prefix: str = "") -> dict[str, Any]:
    """Return a grid's current team, its staffing problems and the counts per role."""
    grid = _grid(session, check_grid_code(code, prefix))
    members = _members(session, grid["id"])
    roles = Counter(m["role"] for m in members)
    return {
        "code": grid["code"],
        "name": grid["name"],
        "community_code": grid["community_code"],
        "community_name": grid["community_name"],
        "members": members,
        "counts": {role: roles[role] for role in ROLES},
        "problems": staffing_problems(m["role"] for m in members),
    }


# The grids (those a WHERE clause picks) whose team is not "1+1", with the posts held.
_GAPS_SQL = """
SELECT g.code, g.name, c.code AS community_code, c.name AS community_name,
       count(w.id) AS members,
       coalesce(array_agg(w.role::text) FILTER (WHERE w.role IN ('leader', 'full_time')),
                '{{}}') AS posts
FROM grids g
JOIN communities c ON c.id = g.community_id
LEFT JOIN grid_workers w ON w.grid_id = g.id AND w.left_at IS NULL
WHERE {where}
GROUP BY g.id, c.id
HAVING count(*) FILTER (WHERE w.role = 'leader') <> 1
    OR count(*) FILTER (WHERE w.role = 'full_time') <> 1
"""
_IN_AREA = "g.code LIKE :prefix || '%'"


def problems_by_grid(session: Session, grid_ids: Sequence[int]) -> dict[str, list[str]]:
    """Return the staffing problems of those grids that have any, by grid code."""
    if not grid_ids:
        return {}
    rows = session.execute(
        text(f"SELECT code, posts FROM ({_GAPS_SQL.format(where='g.id = ANY(:ids)')}) x "
             "ORDER BY code"),
        {"ids": list(grid_ids)},
    ).all()
    return {code: staffing_problems(posts) for code, posts in rows}


def gaps(session: Session, *, prefix: str = "", offset: int = 0, limit: int = 100) -> dict[str, Any]:
    """Return the grids in the jurisdiction whose team is not "1+1", by grid code, paged."""
    if not 0 < limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be within 1–{MAX_PAGE}")
    if offset < 0:
        raise InvalidInput("offset must be ≥ 0")
    # One row at least (the total), even past the last page.
    rows = session.execute(
        text(
            f"""
            WITH gaps AS ({_GAPS_SQL.format(where=_IN_AREA)})
            SELECT t.total, p.* FROM (SELECT count(*) AS total FROM gaps) t
            LEFT JOIN LATERAL (SELECT * FROM gaps ORDER BY code OFFSET :offset LIMIT :limit) p
              ON TRUE
            """
        ),
        {"prefix": prefix, "offset": offset, "limit": limit},
    ).mappings().all()
    items = [
        {"code": r["code"], "name": r["name"], "community_code": r["community_code"],
         "community_name": r["community_name"], "members": r["members"],
         "problems": staffing_problems(r["posts"])}
        for r in rows if r["code"] is not None
    ]
    return {"total": int(rows[0]["total"]), "offset": offset, "limit": limit, "grids": items}


def gap_values(session: Session, *, prefix: str = "") -> list[dict[str, Any]]:
    """Return every grid of the jurisdiction without its "1+1", as map-layer values.

    ``staffed`` is 0 for each (the wall colours the grids by it); the rest are left out.
    """
    rows = session.execute(
        text(f"SELECT code, posts FROM ({_GAPS_SQL.format(where=_IN_AREA)}) x ORDER BY code"),
        {"prefix": prefix},
    ).all()
    return [{"key": code, "staffed": 0, "problems": staffing_problems(posts)}
            for code, posts in rows]


# --------------------------------------------------------------------------- changes


def _current_member(session: Session, grid_id: int, code: str, member_id: Any) -> dict[str, Any]:
    if isinstance(member_id, bool) or not isinstance(member_id, int):
        raise InvalidInput("a member id is an integer", field="id")
    row = session.execute(
        text(
            f"SELECT {_MEMBER_COLUMNS} FROM grid_workers w "
            "WHERE w.id = :id AND w.grid_id = :g AND w.left_at IS NULL"
        ),
        {"id": member_id, "g": grid_id},
    ).mappings().first()
    if row is None:
        raise NotFound("no such member in this grid's team", code=code, id=member_id)
    return dict(row)


def _check_version(member: Mapping[str, Any], version: int, code: str) -> None:
    if member["version"] != version:
        raise Conflict(
            f"someone else changed this member (now version {member['version']}, "
            f"you edited version {version}); reload the team",
            code=code, id=member["id"], current_version=member["version"],
            expected_version=version, current=dict(member),
        )


def _check_post_free(session: Session, grid_id: int, code: str, role: str,
                     except_id: int | None = None) -> None:
    """Refuse a second leader or full-time worker in one grid."""
    if role not in ONE_PER_GRID:
        return
    holder = session.execute(
        text(
            "SELECT id FROM grid_workers WHERE grid_id = :g AND role = :r AND left_at IS NULL "
            "AND id IS DISTINCT FROM :x ORDER BY id LIMIT 1"
        ),
        {"g": grid_id, "r": role, "x": except_id},
    ).scalar()
    if holder is not None:
        raise Conflict(
            f"grid {code} already has a {POST_NAMES[role]} (member {holder}); "
            "move them or change their role first",
            code=code, role=role, holder=holder,
        )


def add_member(session: Session, code: str, body: Mapping[str, Any], *,
               prefix: str = "") -> dict[str, Any]:
    """Add a member to a grid's team; return the new member and the team."""
    code = check_grid_code(code, prefix)
    fields = parse_member(body)
    if "version" in body or "to" in body:
        raise InvalidInput("a new member has no version or destination")
    grid_id = _lock_grids(session, [code])[code]
    _check_post_free(session, grid_id, code, fields["role"])
    size = session.execute(
        text("SELECT count(*) FROM grid_workers WHERE grid_id = :g AND left_at IS NULL"),
        {"g": grid_id},
    ).scalar_one()
    if size >= MAX_MEMBERS:
        raise Conflict(f"a team has at most {MAX_MEMBERS} members", code=code)
    member_id = session.execute(
        text(
            "INSERT INTO grid_workers (grid_id, role, name, phone) "
            "VALUES (:g, :role, :name, :phone) RETURNING id"
        ),
        {"g": grid_id, **fields},
    ).scalar_one()
    return {"member": _current_member(session, grid_id, code, member_id),
            "team": team(session, code)}


def update_member(session: Session, code: str, member_id: int, body: Mapping[str, Any], *,
                  prefix: str = "") -> dict[str, Any]:
    """Change a member's role, name or phone; ``body['version']`` is the version edited."""
    code = check_grid_code(code, prefix)
    if "to" in body:
        raise InvalidInput("to move a member to another grid, use move")
    version = parse_member_version(body.get("version"))
    changes = parse_member({k: v for k, v in body.items() if k != "version"}, partial=True)
    grid_id = _lock_grids(session, [code])[code]
    member = _current_member(session, grid_id, code, member_id)
    _check_version(member, version, code)
    if changes.get("role", member["role"]) != member["role"]:
        _check_post_free(session, grid_id, code, changes["role"], except_id=member_id)
    session.execute(
        text(
            "UPDATE grid_workers SET role = :role, name = :name, phone = :phone, "
            "version = version + 1, updated_at = now() WHERE id = :id"
        ),
        {**{k: member[k] for k in FIELDS}, **changes, "id": member_id},
    )
    return {"member": _current_member(session, grid_id, code, member_id),
            "team": team(session, code)}


def remove_member(session: Session, code: str, member_id: int, version: int, *,
                  prefix: str = "") -> dict[str, Any]:
    """Mark a member as having left the team (kept for the patrols and matters they made)."""
    code = check_grid_code(code, prefix)
    grid_id = _lock_grids(session, [code])[code]
    member = _current_member(session, grid_id, code, member_id)
    _check_version(member, version, code)
    session.execute(
        text(
            "UPDATE grid_workers SET left_at = now(), version = version + 1, updated_at = now() "
            "WHERE id = :id"
        ),
        {"id": member_id},
    )
    return {"removed": member_id, "team": team(session, code)}


def move_member(session: Session, code: str, member_id: int, version: int, to_code: Any, *,
                prefix: str = "") -> dict[str, Any]:
    """Move a member to another grid's team in the same jurisdiction, keeping their role."""
    code = check_grid_code(code, prefix)
    if not isinstance(to_code, str):
        raise InvalidInput("to must be a grid code", field="to")
    to_code = check_grid_code(to_code, prefix)
    if to_code == code:
        raise InvalidInput("the member is already in this grid's team", field="to")
    ids = _lock_grids(session, [code, to_code])
    member = _current_member(session, ids[code], code, member_id)
    _check_version(member, version, code)
    _check_post_free(session, ids[to_code], to_code, member["role"])
    session.execute(
        text(
            "UPDATE grid_workers SET grid_id = :to, version = version + 1, updated_at = now() "
            "WHERE id = :id"
        ),
        {"to": ids[to_code], "id": member_id},
    )
    return {"member": _current_member(session, ids[to_code], to_code, member_id),
            "from": team(session, code), "to": team(session, to_code)}


# member_id is the member's record: kept through an edit in Excel, it lets a changed
# phone number or a corrected name keep the member's record (and patrols).
ROSTER_COLUMNS = ("town_code", "town_name", "community_code", "community_name", "grid_code",
                  "grid_name", "role", "name", "phone", "member_id")


def roster_csv(session: Session, *, prefix: str = "", labels: Mapping[str, str] | None = None
               ) -> bytes:
    """Return the current members of every grid in the jurisdiction as CSV (UTF-8 with BOM).

    ``labels`` names the roles in the reader's language (the codes by default). The
    BOM makes Excel, where rosters are kept, read the Chinese names right.
    """
    rows = session.execute(
        text(
            f"""
            SELECT t.code, t.name, c.code, c.name, g.code, g.name, w.role, w.name, w.phone, w.id
            FROM grid_workers w
            JOIN grids g ON g.id = w.grid_id
            JOIN communities c ON c.id = g.community_id
            JOIN towns t ON t.id = c.town_id
            WHERE w.left_at IS NULL AND g.code LIKE :prefix || '%'
            ORDER BY g.code, {_ROLE_ORDER}, w.id
            """
        ),
        {"prefix": prefix},
    ).all()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ROSTER_COLUMNS)
    for row in rows:
        values = list(row)
        values[6] = (labels or {}).get(values[6], values[6])
        writer.writerow([spreadsheet_safe(v) for v in values])
    return out.getvalue().encode("utf-8-sig")


# --------------------------------------------------------------------------- roster import

MAX_ROSTER_ROWS = 20_000
# Column names as the roster export writes them, and as a hand-made sheet may say them.
ROSTER_ALIASES = {
    "grid_code": ("grid_code", "网格编码", "网格代码"),
    "role": ("role", "角色", "岗位"),
    "name": ("name", "姓名"),
    "phone": ("phone", "电话", "手机", "联系电话"),
}
# Optional columns: a hand-made sheet has no record numbers.
OPTIONAL_ROSTER_ALIASES = {"member_id": ("member_id", "成员编号")}


def _roster_columns(header: Sequence[str]) -> dict[str, str]:
    lower = {h.strip().lower(): h for h in header}
    found = {field: column for field, names in {**ROSTER_ALIASES, **OPTIONAL_ROSTER_ALIASES}.items()
             if (column := next((lower[n.lower()] for n in names if n.lower() in lower), None))}
    missing = [field for field in ROSTER_ALIASES if field not in found]
    if missing:
        raise InvalidInput(
            f"the roster lacks the column(s) {', '.join(missing)}; download the roster for "
            "the expected form", errors=[{"row": None, "field": f, "reason": "missing column"}
                                         for f in missing])
    return found


def _member_id(raw: Any) -> int | None:
    """Return a roster row's member_id (None when blank), or raise InvalidInput."""
    value = (raw or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise InvalidInput("member_id is the number the roster export gave; leave it empty "
                           "for a new member", field="member_id")
    return int(value)


def import_roster(session: Session, rows: Sequence[Mapping[str, str]], *, prefix: str = "",
                  role_names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Make each grid named in the roster have exactly the members it lists.

    A row keeps the record its member_id names (see _claims); the others are matched
    by name and phone among the current teams of those grids, so a member who moved
    to another grid keeps their record (and patrols); members no longer listed are
    marked as having left; grids not named are untouched. The
    roster is checked whole first: InvalidInput lists every bad row, nothing changes.
    ``role_names`` maps role labels (网格长, Grid leader) to role codes.
    """
    if not rows:
        raise InvalidInput("the roster has no rows")
    columns = _roster_columns(list(rows[0]))
    # Role codes and labels, either case ("Grid leader", "grid leader", 网格长, leader).
    names = {k.lower(): v for k, v in {**{r: r for r in ROLES}, **(role_names or {})}.items()}
    errors: list[dict[str, Any]] = []
    wanted: list[tuple[int, str, dict[str, Any]]] = []  # row number, grid, fields
    seen: dict[tuple[str, str, str], int] = {}
    for number, raw in enumerate(rows, start=1):
        if not any(raw.values()):
            continue  # Excel leaves rows of empty cells below a table
        try:
            code = check_grid_code(raw[columns["grid_code"]], prefix)
        except (InvalidInput, NotFound) as exc:
            errors.append({"row": number, "field": "grid_code", "reason": exc.reason})
            continue
        label = raw[columns["role"]].strip()
        fields = {"role": names.get(label.lower(), label), "name": raw[columns["name"]],
                  "phone": raw[columns["phone"]]}
        try:
            fields = parse_member(fields)
            member_id = _member_id(raw[columns["member_id"]]) if "member_id" in columns else None
        except InvalidInput as exc:
            errors.append({"row": number, "field": exc.details.get("field"), "reason": exc.reason})
            continue
        # One person may serve several grids (a community secretary leading two), once each.
        key = (code, fields["name"], fields["phone"])
        if key in seen:
            errors.append({"row": number, "field": "name", "reason":
                           f"the same person (name and phone) is on row {seen[key]} for this grid"})
            continue
        seen[key] = number
        if member_id is not None:
            fields["member_id"] = member_id
        wanted.append((number, code, fields))
    if not wanted and not errors:
        raise InvalidInput("the roster lists no members")
    # Locked now: a roster found good is applied to the grids as they were checked.
    ids = _lock_grids(session, sorted({code for _, code, _ in wanted}), require=False)
    for number, code, _ in wanted:
        if code not in ids:
            errors.append({"row": number, "field": "grid_code", "reason": f"no such grid {code}"})
    current = session.execute(
        text("SELECT id, grid_id, role, name, phone FROM grid_workers "
             "WHERE grid_id = ANY(:g) AND left_at IS NULL ORDER BY id"),
        {"g": list(ids.values())},
    ).all()
    claims = _claims(current, wanted, ids, errors)
    by_grid: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for number, code, fields in wanted:
        by_grid.setdefault(code, []).append((number, fields))
    for code, members in by_grid.items():
        if len(members) > MAX_MEMBERS:
            errors.append({"row": members[MAX_MEMBERS][0], "field": None,
                           "reason": f"grid {code} has more than {MAX_MEMBERS} members"})
        for role in ONE_PER_GRID:
            holders = [n for n, f in members if f["role"] == role]
            errors.extend({"row": n, "field": "role", "reason":
                           f"grid {code} already has a {POST_NAMES[role]} on row {holders[0]}"}
                          for n in holders[1:])
    if errors:
        errors.sort(key=lambda e: (e["row"] or 0, e["field"] or ""))
        raise InvalidInput(f"{len(errors)} problem(s) in the roster; nothing was changed",
                           errors=errors[:200], total=len(errors))
    return _apply_roster(session, by_grid, ids, current, claims)


def _claims(current: Sequence[Any], wanted: Sequence[tuple[int, str, Mapping[str, Any]]],
            ids: Mapping[str, int], errors: list[dict[str, Any]]) -> dict[int, Any]:
    """Return, by row number, the record each row's member_id keeps; report ambiguous rows.

    A row may keep the record its member_id names if that is a current member of
    the roster's grids with the row's name or its phone: a changed phone, or a
    corrected name. A row copied in Excel for a newcomer (new name and phone, the
    old id) is a new member; an id from an older export that names no current
    member is ignored, and the row is matched by name and phone. When several rows
    name one record, the one in the record's grid keeps it (else the first); the
    same person listed for another grid too is a further membership, anyone else
    is an error.
    """
    by_id = {row.id: row for row in current}
    claimants: dict[int, list[tuple[int, str, Mapping[str, Any]]]] = {}
    for number, code, fields in wanted:
        record = by_id.get(fields.get("member_id"))
        if record is not None and (record.name == fields["name"] or record.phone == fields["phone"]):
            claimants.setdefault(record.id, []).append((number, code, fields))
    claims: dict[int, Any] = {}
    for record_id, rows in claimants.items():
        record = by_id[record_id]
        number, _code, winner = next((row for row in rows if ids.get(row[1]) == record.grid_id),
                                     rows[0])
        claims[number] = record
        for other, _code, fields in rows:
            if other != number and (fields["name"], fields["phone"]) != (
                    winner["name"], winner["phone"]):
                errors.append({"row": other, "field": "member_id", "reason":
                               f"member {record_id} is on row {number} too"})
    return claims


def _apply_roster(session: Session, by_grid: Mapping[str, list[tuple[int, dict[str, Any]]]],
                  ids: Mapping[str, int], current: Sequence[Any],
                  claims: Mapping[int, Any]) -> dict[str, Any]:
    claimed = {record.id for record in claims.values()}
    pool: dict[tuple[str, str], list[Any]] = {}
    for row in current:
        if row.id not in claimed:
            pool.setdefault((row.name, row.phone), []).append(row)
    added: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    kept: set[int] = set()
    listed = []
    # Rows that name their record keep it, wherever it moves and whatever changed.
    for code, members in by_grid.items():
        for number, fields in members:
            record = claims.get(number)
            if record is None:
                listed.append((ids[code], fields))
                continue
            kept.add(record.id)
            update = {"g": ids[code], "role": fields["role"], "name": fields["name"],
                      "phone": fields["phone"], "id": record.id}
            if (record.grid_id, record.role, record.name, record.phone) != (
                    update["g"], update["role"], update["name"], update["phone"]):
                changed.append(update)
    # Then everyone who stays in their grid keeps that record; then the rest take a
    # record they move from (one person may serve several grids), or are new.
    unmatched = []
    for grid_id, fields in listed:
        rows = pool.get((fields["name"], fields["phone"]), [])
        here = next((r for r in rows if r.grid_id == grid_id), None)
        if here is None:
            unmatched.append((grid_id, fields))
            continue
        rows.remove(here)
        kept.add(here.id)
        if here.role != fields["role"]:
            changed.append({"g": grid_id, "role": fields["role"], "name": here.name,
                            "phone": here.phone, "id": here.id})
    for grid_id, fields in unmatched:
        rows = pool.get((fields["name"], fields["phone"]), [])
        if not rows:
            added.append({"g": grid_id, "role": fields["role"], "name": fields["name"],
                          "phone": fields["phone"]})
            continue
        moved = rows.pop(0)
        kept.add(moved.id)
        changed.append({"g": grid_id, "role": fields["role"], "name": moved.name,
                        "phone": moved.phone, "id": moved.id})
    # One batch each: a district roster is thousands of rows.
    if added:
        session.execute(text("INSERT INTO grid_workers (grid_id, role, name, phone) "
                             "VALUES (:g, :role, :name, :phone)"), added)
    if changed:
        session.execute(text("UPDATE grid_workers SET grid_id = :g, role = :role, name = :name, "
                             "phone = :phone, version = version + 1, updated_at = now() "
                             "WHERE id = :id"), changed)
    counts = {"added": len(added), "updated": len(changed),
              "unchanged": len(kept) - len(changed), "left": 0}
    gone = [row.id for row in current if row.id not in kept]
    if gone:
        session.execute(
            text("UPDATE grid_workers SET left_at = now(), version = version + 1, "
                 "updated_at = now() WHERE id = ANY(:ids)"), {"ids": gone})
    counts["left"] = len(gone)
    return {"grids": len(by_grid), **counts,
            "team_gaps": problems_by_grid(session, list(ids.values()))}
