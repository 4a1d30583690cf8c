"""Open311 GeoReport v2: our categories as services, matters as service requests.

A hotline or a citizen app files matters with ``POST requests.json`` and follows
them with ``GET requests.json`` / ``GET requests/<id>.json``. The request id is the
matter's ref. Posting needs an ``api_key`` whose sha256 is in ``api_clients``.

Reading without a key is public, and refs are sequential (SX + date + number), so
a ref is no secret: the public sees only matters filed through Open311 itself
(source ``open311``), with coordinates rounded to about 100 m and no address;
other channels' matters (12345 hotline, grid workers, internal) are not found.
A client that passes its ``api_key`` also sees the requests it filed itself,
whatever its source, at full precision with their address. No answer carries
the reporter's name, phone or email.

Our five steps map to Open311's ``open``/``closed`` with a ``status_notes`` line
naming the step. Nothing here imports Flask; ``web.blueprints.open311`` is the
HTTP layer.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select, text
from sqlalchemy.orm import Session

from gridmap import matters
from gridmap.accounts import Actor, Unit, system_actor, unit_by_ref
from gridmap.errors import Conflict, Forbidden, GridmapError, InvalidInput, NotFound
from gridmap.matter_models import MATTER_SOURCES, ApiClient

JURISDICTION = "370812"
KEY_BYTES = 32
MAX_LIST = 1000
DEFAULT_WINDOW = timedelta(days=90)  # the spec's default for GET requests.json
MAX_MEDIA_URL = 500
MAX_DATE_TEXT = 40
DATE_YEARS = (2000, 2100)  # dates outside are refused (and would overflow the arithmetic)
PUBLIC_DECIMALS = 3  # public coordinates: 0.001° is about 100 m here
ACTOR_PREFIX = "open311:"
ACTOR_NAME_LENGTH = 40  # matter_events.username
TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:#/-]{0,63}$")
REF_RE = re.compile(r"^SX[0-9]{13}$")
POST_FIELDS = frozenset({
    "api_key", "jurisdiction_id", "service_code", "lat", "long", "address_string",
    "address_id", "email", "device_id", "account_id", "first_name", "last_name", "phone",
    "description", "media_url", "token",
})
# Our steps, as Open311 status and a status note (Chinese first: the jurisdiction's language).
STATUS = {
    "reported": ("open", "已受理，待分拨 (reported, awaiting triage)"),
    "transferred": ("open", "已转办，待签收 (transferred to the responsible unit)"),
    "handling": ("open", "处置中 (being handled)"),
    "handled": ("open", "已处置，待核实 (handled, awaiting verification)"),
    "verified": ("open", "已核实，已回访 (verified and reported back)"),
    "closed": ("closed", "已结案 (closed)"),
}


class ApiKeyError(Forbidden):
    """The api_key is missing, unknown or revoked."""


# --------------------------------------------------------------------------- clients


def hash_key(key: str) -> bytes:
    """Return the sha256 digest stored for an api key."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def create_client(session: Session, name: str, *, unit: Unit | None = None,
                  source: str = "open311") -> tuple[ApiClient, str]:
    """Create an API client; return it and its key (shown once, only its hash is kept)."""
    name = (name or "").strip()
    if not name or len(name) > 60:
        raise InvalidInput("a client name has 1–60 characters")
    if source not in MATTER_SOURCES:
        raise InvalidInput(f"source is one of {', '.join(MATTER_SOURCES)}")
    # A client's requests are told apart by its actor name, which keeps only the name's
    # start: two clients whose names start alike would see each other's requests.
    actor_name = func.left(literal(ACTOR_PREFIX) + ApiClient.name, ACTOR_NAME_LENGTH)
    if session.scalar(select(ApiClient.id).where(
            (ApiClient.name == name) | (actor_name == actor_name_of(name)))) is not None:
        raise Conflict("an API client with this name exists", name=name)
    key = secrets.token_urlsafe(KEY_BYTES)
    client = ApiClient(name=name, source=source, key_hash=hash_key(key),
                       unit_id=unit.id if unit else None)
    session.add(client)
    session.flush()
    return client, key


def authenticate(session: Session, key: Any) -> ApiClient:
    """Return the active client whose key this is, else raise ApiKeyError."""
    if not isinstance(key, str) or not key.strip():
        raise ApiKeyError("api_key is required to submit requests")
    if len(key) > 200:
        raise ApiKeyError("invalid api_key")
    client = session.scalars(
        select(ApiClient).where(ApiClient.key_hash == hash_key(key.strip()))
    ).first()
    if client is None or not client.active:
        raise ApiKeyError("invalid api_key")
    return client


def reader(session: Session, key: Any) -> ApiClient | None:
    """Return the client reading with this api_key; None for a public (keyless) read.

    A key that is given but unknown or revoked is refused (ApiKeyError) rather than
    quietly read as public, so a client notices its key no longer works.
    """
    if key is None or (isinstance(key, str) and not key.strip()):
        return None
    return authenticate(session, key)


def actor_name_of(name: str) -> str:
    """Return the actor name a client's requests are filed under (as the history keeps it)."""
    return f"{ACTOR_PREFIX}{name}"[:ACTOR_NAME_LENGTH]


def client_actor(session: Session, client: ApiClient) -> Actor:
    """Return the actor a client's requests are filed as (its unit, else the district center)."""
    unit = session.get(Unit, client.unit_id) if client.unit_id else None
    if unit is None:
        unit = session.scalars(
            select(Unit).where(Unit.kind == "district", Unit.active).order_by(Unit.id)
        ).first()
    if unit is None:
        raise Conflict("there is no district center unit to file requests with")
    return system_actor(unit, actor_name_of(client.name))


def unit_for(session: Session, ref: str | None) -> Unit | None:
    """Return the unit named by id, code or name (None when not given)."""
    return unit_by_ref(session, ref) if ref else None


# --------------------------------------------------------------------------- services


def services(session: Session) -> list[dict[str, Any]]:
    """Return our active leaf categories as Open311 services, grouped by their sector."""
    rows = session.execute(text("""
        SELECT c.code, c.name_zh, c.name_en, p.name_zh AS group_zh, p.name_en AS group_en
        FROM matter_categories c
        LEFT JOIN matter_categories p ON p.code = c.parent_code
        WHERE c.active AND NOT EXISTS (
          SELECT 1 FROM matter_categories k WHERE k.parent_code = c.code AND k.active)
        ORDER BY c.code""")).mappings()
    return [{
        "service_code": r["code"],
        "service_name": r["name_zh"],
        "description": r["name_en"],
        "metadata": False,
        "type": "realtime",
        "keywords": r["name_en"],
        "group": r["group_zh"] or r["name_zh"],
    } for r in rows]


def service_definition(session: Session, code: str) -> dict[str, Any]:
    """Return a service's definition (no extra attributes: every service takes the basics)."""
    if not any(s["service_code"] == code for s in services(session)):
        raise NotFound("unknown service_code", service_code=code)
    return {"service_code": code, "attributes": []}


def _check_jurisdiction(value: Any) -> None:
    if value not in (None, "", JURISDICTION):
        raise InvalidInput(f"unknown jurisdiction_id; this endpoint serves {JURISDICTION}")


# --------------------------------------------------------------------------- requests


def _coordinate(raw: Any, key: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{key} must be a number", field=key) from None
    if not low <= value <= high:  # NaN and infinities fail here
        raise InvalidInput(f"{key} is out of range", field=key)
    return value


def scalar_form(fields: Mapping[str, Any]) -> dict[str, str]:
    """Return the posted fields as text, refusing a list, object or true/false by name.

    A form field given twice arrives as a list. JSON numbers are kept as their plain
    text (``"lat": 35.553`` is ``"35.553"``, a phone number ``13800000000`` its digits);
    JSON null is an absent field.
    """
    form: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            form[key] = ""
        elif isinstance(value, str):
            form[key] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            form[key] = str(value)
        else:
            raise InvalidInput(f"{str(key)[:40]} must be a single text value", field=str(key)[:40])
    return form


def intake_payload(session: Session, form: Mapping[str, Any], client: ApiClient) -> dict:
    """Translate an Open311 POST (form fields) into a matters.intake payload."""
    unknown = set(form) - POST_FIELDS - {k for k in form if k.startswith("attribute[")}
    if unknown:
        raise InvalidInput(f"unknown field {sorted(unknown)[0]!r}")
    _check_jurisdiction(form.get("jurisdiction_id"))
    code = (form.get("service_code") or "").strip()
    if not code:
        raise InvalidInput("service_code is required")
    service = next((s for s in services(session) if s["service_code"] == code), None)
    if service is None:
        raise InvalidInput("unknown service_code", service_code=code[:20])
    if form.get("lat") in (None, "") or form.get("long") in (None, ""):
        if form.get("address_string") or form.get("address_id"):
            raise InvalidInput("lat and long are required: addresses cannot be geocoded here")
        raise InvalidInput("a location is required: lat and long")
    lat = _coordinate(form.get("lat"), "lat", -90, 90)
    lon = _coordinate(form.get("long"), "long", -180, 180)
    description = (form.get("description") or "").strip()
    media = (form.get("media_url") or "").strip()
    if media:
        if len(media) > MAX_MEDIA_URL or not re.match(r"^https?://\S+$", media):
            raise InvalidInput("media_url must be an http(s) URL of at most 500 characters")
        description = (description + "\n" if description else "") + f"[media] {media}"
    title = description.splitlines()[0][:60] if description else service["service_name"]
    payload: dict[str, Any] = {
        "source": client.source, "category": code, "lon": lon, "lat": lat,
        "title": title or service["service_name"], "description": description,
        "address": (form.get("address_string") or "").strip()[:200],
    }
    token = (form.get("token") or "").strip()
    if token:
        if not TOKEN_RE.match(token):
            raise InvalidInput("token is 1–64 letters, digits and _.:#/-")
        payload["source_ref"] = token
    # Chinese order: family name first.
    name = ((form.get("last_name") or "").strip() + (form.get("first_name") or "").strip())
    if name:
        payload["reporter_name"] = name[:40]
    phone = (form.get("phone") or "").strip()
    if phone:
        payload["reporter_phone"] = phone
    email = (form.get("email") or "").strip()
    if email:
        payload["reporter_email"] = email  # for the callback; never in an answer
    return payload


def submit(session: Session, form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Authenticate, file one service request through matters.intake; return the spec's answer.

    ``form`` maps each field to its text, or to a list (a form field given twice) or
    any JSON value: anything but text, a number or null is refused by name.
    """
    form = scalar_form(form)
    client = authenticate(session, form.get("api_key"))
    payload = intake_payload(session, form, client)
    detail = matters.intake(session, client_actor(session, client), payload)
    status, note = STATUS.get(detail["state"], ("open", ""))
    return [{"service_request_id": detail["ref"], "service_notice": note,
             "account_id": None}]


# Whether the reading client (:me, its actor name; NULL for the public) filed the matter.
_OWN = """(CAST(:me AS text) IS NOT NULL AND EXISTS (
          SELECT 1 FROM matter_events e WHERE e.matter_id = m.id AND e.action = 'report'
            AND e.username = CAST(:me AS text)))"""
_REQUEST_SQL = f"""
SELECT m.ref, m.state, m.source, m.category_code, c.name_zh AS service_name, m.description,
       m.address, ST_X(m.geom) AS lon, ST_Y(m.geom) AS lat, m.reported_at, m.updated_at,
       m.feedback_due, m.closed_at, u.name AS agency, {_OWN} AS own
FROM matters m
JOIN matter_categories c ON c.code = m.category_code
LEFT JOIN units u ON u.id = COALESCE(m.handling_unit_id, m.current_unit_id)
"""
# What a reader may see: the public, Open311's own requests; a client, also what it filed.
_VISIBLE = f"(m.source = 'open311' OR {_OWN})"


def _me(client: ApiClient | None) -> str | None:
    return actor_name_of(client.name) if client is not None else None


def _public_degrees(value: float | None) -> float | None:
    return None if value is None else round(value, PUBLIC_DECIMALS)


def _as_request(r: Mapping[str, Any]) -> dict[str, Any]:
    """Return one matter as an Open311 service request, without personal data.

    The client that filed it sees its location as stored; anyone else sees the
    coordinates rounded to about 100 m and no address, so a report does not
    pinpoint the reporter's home.
    """
    status, note = STATUS.get(r["state"], ("open", ""))
    own = bool(r["own"])

    def iso(t: datetime | None) -> str | None:
        return t.isoformat(timespec="seconds") if t else None

    return {
        "service_request_id": r["ref"],
        "status": status,
        "status_notes": note,
        "service_name": r["service_name"],
        "service_code": r["category_code"],
        "description": r["description"],
        "agency_responsible": r["agency"],
        "service_notice": None,
        "requested_datetime": iso(r["reported_at"]),
        "updated_datetime": iso(r["updated_at"]),
        "expected_datetime": iso(r["feedback_due"]) if status == "open" else None,
        "address": (r["address"] or None) if own else None,
        "address_id": None,
        "zipcode": None,
        "lat": r["lat"] if own else _public_degrees(r["lat"]),
        "long": r["lon"] if own else _public_degrees(r["lon"]),
        "media_url": None,
    }


def request_by_id(session: Session, ref: str, *,
                  client: ApiClient | None = None) -> list[dict[str, Any]]:
    """Return ``[request]`` for one matter ref the reader may see, else NotFound.

    Refs are sequential, so knowing one proves nothing: a matter of another channel
    is not found, exactly as a ref that does not exist.
    """
    if not isinstance(ref, str) or not REF_RE.match(ref):
        raise NotFound("no such service request")
    row = session.execute(text(_REQUEST_SQL + " WHERE m.ref = :ref AND " + _VISIBLE),
                          {"ref": ref, "me": _me(client)}).mappings().first()
    if row is None:
        raise NotFound("no such service request")
    return [_as_request(row)]


def _when(raw: Any, key: str) -> datetime | None:
    """Return a W3C date-time as an aware datetime (UTC when it names no zone), or None."""
    if raw in (None, ""):
        return None
    value = str(raw).strip()
    try:
        if len(value) > MAX_DATE_TEXT:
            raise ValueError(value)
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{key} must be a W3C date-time", field=key) from None
    low, high = DATE_YEARS
    if not low <= t.year <= high:  # checked before any arithmetic, which would overflow
        raise InvalidInput(f"{key} must be between the years {low} and {high}", field=key)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def list_requests(session: Session, args: Mapping[str, Any], *, client: ApiClient | None = None,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """Return requests by ``service_request_id`` list or by code/dates/status.

    Either way only what the reader may see (``request_by_id``): ids of other
    channels' matters are left out, as ids that do not exist.
    """
    _check_jurisdiction(args.get("jurisdiction_id"))
    me = _me(client)
    ids = (args.get("service_request_id") or "").strip()
    if ids:
        refs = [r.strip() for r in ids.split(",") if r.strip()]
        if len(refs) > 100:
            raise InvalidInput("at most 100 service_request_id values")
        refs = [r for r in refs if REF_RE.match(r)]
        rows = session.execute(text(_REQUEST_SQL + " WHERE m.ref = ANY(:refs) AND " + _VISIBLE
                                    + " ORDER BY m.ref"),
                               {"refs": refs, "me": me}).mappings().all()
        return [_as_request(r) for r in rows]
    now = now or datetime.now(UTC)
    end = _when(args.get("end_date"), "end_date") or now
    start = _when(args.get("start_date"), "start_date") or end - DEFAULT_WINDOW
    if start > end:
        raise InvalidInput("start_date is after end_date")
    if end - start > timedelta(days=366):
        raise InvalidInput("the date range is at most one year")
    status = (args.get("status") or "").strip()
    states: list[str] | None = None
    if status:
        wanted = {s.strip() for s in status.split(",")}
        if not wanted <= {"open", "closed"}:
            raise InvalidInput("status is open or closed")
        states = [s for s, (st, _n) in STATUS.items() if st in wanted]
    codes = [c.strip() for c in (args.get("service_code") or "").split(",") if c.strip()]
    rows = session.execute(text(_REQUEST_SQL + " WHERE " + _VISIBLE + """
          AND m.reported_at >= :start AND m.reported_at <= :end
          AND (CAST(:states AS text[]) IS NULL OR m.state = ANY(CAST(:states AS text[])))
          AND (cardinality(CAST(:codes AS text[])) = 0 OR m.category_code = ANY(CAST(:codes AS text[])))
        ORDER BY m.reported_at DESC, m.id DESC LIMIT :limit"""),
        {"start": start, "end": end, "states": states, "codes": codes, "me": me,
         "limit": MAX_LIST}).mappings().all()
    return [_as_request(r) for r in rows]


def error_body(status: int, exc: GridmapError | str) -> list[dict[str, Any]]:
    """Return the Open311 error format: ``[{"code": status, "description": ...}]``."""
    reason = exc if isinstance(exc, str) else exc.reason
    return [{"code": status, "description": reason}]
