"""Crowd-flow sensors: registration with per-device tokens, strict ingestion, a simulator.

A sensor (a people counter at a gate, a square, a platform) posts counts for a known
area. Each device has its own random 256-bit token, shown once at registration; only
its SHA-256 is stored (a slow KDF adds nothing for a token with that much entropy)
and it is compared in constant time. Ingestion is idempotent on (device, time),
accepts late and out-of-order readings, and validates a whole batch before storing
any of it, so a bad payload is a 4xx with a reason and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import Conflict, GridmapError, InvalidInput, NotFound, PayloadTooLarge
from video.crowd import READING_RETENTION_DAYS, Reading, Source, advance_alerts, record_readings
from video.density import CRUSH_DENSITY, MAX_AREA_M2, MAX_DENSITY, MIN_AREA_M2

DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_BATCH = 1000
MAX_BODY_BYTES = 256 * 1024  # 1,000 readings of ~80 bytes each, with room
# Bounds of a reading (video.density explains the area and density bounds): a
# count of up to a million people, on 1 m² to 1 km², at most MAX_DENSITY p/m².
MAX_COUNT = 1_000_000
MAX_FUTURE = timedelta(minutes=5)  # sensor clocks drift; further ahead is wrong
MAX_AGE = timedelta(days=READING_RETENTION_DAYS)  # older would be pruned at once
FIELDS = {"time", "count", "area_m2"}


class SensorAuthError(GridmapError):
    """The request does not carry this device's valid token (HTTP 401)."""


@dataclass(frozen=True)
class Sensor:
    """A registered sensor as ingestion needs it (never the token hash)."""

    id: int
    device_id: str
    name: str
    area_m2: float
    alert_density: float | None


def new_token() -> str:
    """Return a fresh random device token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    """Return the stored form of a token: its SHA-256 digest."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def check_device_id(device_id: str) -> str:
    """Return the device id if well formed, else raise InvalidInput."""
    if not isinstance(device_id, str) or not DEVICE_ID.match(device_id):
        raise InvalidInput(
            "device id must be 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    return device_id


def _finite(value: Any, what: str) -> float:
    # bool is an int subclass, and JSON true as a count is a sender bug.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidInput(f"{what} must be finite")
    return out


# --------------------------------------------------------------------------- registry


def register(session: Session, device_id: str, name: str, lon: float, lat: float,
             area_m2: float, alert_density: float | None = None) -> tuple[dict[str, Any], str]:
    """Register a sensor; return it and its token (shown once, stored only hashed)."""
    from video.registry import check_in_district

    check_device_id(device_id)
    name = (name or "").strip()
    if not 1 <= len(name) <= 120:
        raise InvalidInput("name must be 1-120 characters")
    lon, lat = _finite(lon, "lon"), _finite(lat, "lat")
    area = _finite(area_m2, "area_m2")
    if not MIN_AREA_M2 <= area <= MAX_AREA_M2:
        raise InvalidInput(f"area_m2 must be within {MIN_AREA_M2:g}–{MAX_AREA_M2:,.0f} m²",
                           field="area_m2")
    if alert_density is not None and not _finite(alert_density, "alert_density") > 0:
        raise InvalidInput("alert_density must be > 0")
    if check_in_district(session, [(lon, lat)]):
        raise InvalidInput("the sensor lies outside the district", lon=lon, lat=lat)
    token = new_token()
    row = session.execute(
        text(
            """
            INSERT INTO crowd_sensors (device_id, name, geom, area_m2, alert_density, token_hash)
            VALUES (:d, :n, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :a, :t, :h)
            ON CONFLICT (device_id) DO NOTHING
            RETURNING id, grid_code
            """
        ),
        {"d": device_id, "n": name, "lon": lon, "lat": lat, "a": area, "t": alert_density,
         "h": token_hash(token)},
    ).first()
    if row is None:
        raise Conflict("a sensor with this device id exists", device_id=device_id)
    return {"id": row.id, "device_id": device_id, "name": name, "lon": lon, "lat": lat,
            "area_m2": area, "alert_density": alert_density, "grid_code": row.grid_code}, token


def rotate_token(session: Session, device_id: str) -> str:
    """Give a sensor a new token (the old one stops working at commit); return it."""
    token = new_token()
    found = session.execute(
        text("UPDATE crowd_sensors SET token_hash = :h, token_set_at = now() "
             "WHERE device_id = :d RETURNING id"),
        {"h": token_hash(token), "d": device_id},
    ).first()
    if found is None:
        raise NotFound("no such sensor", device_id=device_id)
    return token


def list_sensors(session: Session, prefix: str = "") -> list[dict[str, Any]]:
    """Return the sensors in a jurisdiction with their latest reading (no secrets)."""
    rows = session.execute(
        text(
            """
            SELECT s.device_id, s.name, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, s.area_m2,
                   s.alert_density, s.grid_code, s.last_seen_at, s.alert_active,
                   r.measured_at, r.count, r.density, r.level
            FROM crowd_sensors s
            LEFT JOIN LATERAL (SELECT measured_at, count, density, level FROM crowd_readings
                               WHERE sensor_id = s.id ORDER BY measured_at DESC LIMIT 1) r
                   ON TRUE
            WHERE COALESCE(s.grid_code, '') LIKE :p || '%'
            ORDER BY s.device_id
            """
        ),
        {"p": prefix},
    ).mappings()
    return [dict(r) for r in rows]


# --------------------------------------------------------------------------- ingestion


def bearer_token(authorization: str | None) -> str:
    """Return the token of an ``Authorization: Bearer <token>`` header, else 401."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SensorAuthError("send the device token as 'Authorization: Bearer <token>'")
    return token.strip()


def authenticate(session: Session, device_id: str, authorization: str | None) -> Sensor:
    """Return the sensor if the header carries its token (404 unknown, 401 wrong)."""
    check_device_id(device_id)
    token = bearer_token(authorization)
    row = session.execute(
        text("SELECT id, device_id, name, area_m2, alert_density, token_hash "
             "FROM crowd_sensors WHERE device_id = :d"),
        {"d": device_id},
    ).first()
    if row is None:
        raise NotFound("no such sensor", device_id=device_id)
    if not hmac.compare_digest(bytes(row.token_hash), token_hash(token)):
        raise SensorAuthError("wrong token for this device")
    return Sensor(row.id, row.device_id, row.name, row.area_m2, row.alert_density)


def parse_body(body: bytes) -> Any:
    """Parse a JSON body strictly: NaN/Infinity literals and oversize bodies refused."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body exceeds {MAX_BODY_BYTES} bytes")

    def no_constants(name: str) -> Any:
        raise InvalidInput(f"{name} is not a number JSON allows")

    try:
        return json.loads(body.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput("the body must be JSON (UTF-8)") from None
    except RecursionError:
        # Arrays or objects nested past Python's stack (100,000 '[' fit in the
        # size limit); a reading is never nested deeper than a list of objects.
        raise InvalidInput("the body is malformed JSON: nested too deeply") from None


def parse_time(value: Any, what: str, now: datetime) -> datetime:
    """Return an aware UTC time from ISO 8601 with an offset, or Unix seconds."""
    if isinstance(value, str):
        if len(value) > 40:
            raise InvalidInput(f"{what} is too long for a timestamp")
        try:
            at = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(f"{what} must be ISO 8601, e.g. 2024-05-01T08:30:00+08:00") from None
        if at.tzinfo is None:
            raise InvalidInput(f"{what} needs a time zone offset (or Z)")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = _finite(value, what)
        try:
            at = datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidInput(f"{what} is out of range") from None
    else:
        raise InvalidInput(f"{what} must be an ISO 8601 string or Unix seconds")
    at = at.astimezone(UTC)
    if at > now + MAX_FUTURE:
        raise InvalidInput(f"{what} lies in the future (check the sensor's clock)")
    if at < now - MAX_AGE:
        raise InvalidInput(f"{what} is older than {MAX_AGE.days} days")
    return at


def parse_readings(payload: Any, default_area_m2: float, now: datetime | None = None) -> list[Reading]:
    """Validate one reading object or a list of them; raise on the first bad one."""
    now = now or datetime.now(UTC)
    batch = isinstance(payload, list)
    items = payload if batch else [payload]
    if not items:
        raise InvalidInput("the batch is empty")
    if len(items) > MAX_BATCH:
        raise PayloadTooLarge(f"at most {MAX_BATCH} readings per request", received=len(items))
    out = []
    for i, item in enumerate(items):
        where = f"readings[{i}]" if batch else "reading"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be an object with time and count")
        unknown = sorted(set(item) - FIELDS)
        if unknown:
            raise InvalidInput(f"{where} has unknown field {unknown[0]!r}", allowed=sorted(FIELDS))
        for key in ("time", "count"):
            if key not in item:
                raise InvalidInput(f"{where} lacks {key}")
        at = parse_time(item["time"], f"{where}.time", now)
        count = _finite(item["count"], f"{where}.count")
        if not 0 <= count <= MAX_COUNT:
            raise InvalidInput(f"{where}.count must be within 0–{MAX_COUNT}")
        area = default_area_m2
        if item.get("area_m2") is not None:
            area = _finite(item["area_m2"], f"{where}.area_m2")
        # The registered area is checked too: it may predate these bounds.
        if not MIN_AREA_M2 <= area <= MAX_AREA_M2:
            raise InvalidInput(
                f"{where}.area_m2 must be within {MIN_AREA_M2:g}–{MAX_AREA_M2:,.0f} m²",
                field=f"{where}.area_m2")
        if count > MAX_DENSITY * area:
            raise InvalidInput(
                f"{where}.count: {count:g} people on {area:g} m² is more than "
                f"{MAX_DENSITY:g} persons/m², which no crowd reaches",
                field=f"{where}.count", density=round(count / area, 3))
        out.append(Reading(at=at, count=count, area_m2=area, method="sensor"))
    return out


def ingest(session: Session, sensor: Sensor, readings: Sequence[Reading]) -> dict[str, Any]:
    """Store validated readings of an authenticated sensor and advance its alerts."""
    # Lock the sensor first: concurrent batches of one device then feed its
    # hysteresis one after the other, in time order.
    session.execute(
        text("SELECT 1 FROM crowd_sensors WHERE id = :id FOR UPDATE"), {"id": sensor.id}
    )
    source = Source("sensor", sensor.id, threshold=sensor.alert_density,
                    crush_density=CRUSH_DENSITY)
    new = record_readings(session, source, readings)
    events = advance_alerts(session, source, new)
    session.execute(
        text("UPDATE crowd_sensors SET last_seen_at = now() WHERE id = :id"), {"id": sensor.id}
    )
    return {
        "device_id": sensor.device_id,
        "received": len(readings),
        "stored": len(new),
        "duplicates": len(readings) - len(new),
        "alerts_raised": sum(e == "raise" for e in events),
        "alerts_cleared": sum(e == "clear" for e in events),
    }


# --------------------------------------------------------------------------- simulator

# Plausible daily crowding per place kind: (local hour of the peak, peak density in
# persons/m², spread in hours) on top of a base level. Evening square dancing and
# school gates at drop-off and pick-up are the peaks that cross level E.
PROFILES: dict[str, tuple[float, list[tuple[float, float, float]]]] = {
    "square": (0.04, [(6.5, 0.35, 1.0), (19.75, 1.45, 1.0)]),
    "station": (0.08, [(7.5, 0.8, 1.0), (17.5, 0.9, 1.2)]),
    "market": (0.05, [(8.5, 1.15, 1.5), (17.0, 0.5, 1.0)]),
    "school": (0.01, [(7.4, 1.2, 0.35), (16.6, 1.3, 0.45)]),
}
DEMO_AREAS = {"square": 1500.0, "station": 600.0, "market": 900.0, "school": 300.0}
DEMO_PREFIX = "demo-"


@dataclass(frozen=True)
class SimSensor:
    """A demo sensor the simulator posts for (the token lives only in memory)."""

    device_id: str
    token: str
    kind: str
    area_m2: float
    factor: float  # this place's busyness relative to its kind


def demo_density(kind: str, hour: float, factor: float = 1.0) -> float:
    """Return the expected density of a place kind at a local hour of day."""
    base, peaks = PROFILES[kind]
    total = base
    for centre, peak, width in peaks:
        d = min(abs(hour - centre), 24 - abs(hour - centre))  # wrap around midnight
        total += peak * math.exp(-0.5 * (d / width) ** 2)
    return max(0.0, total * factor)


def demo_count(sensor: SimSensor, at: datetime, rng: random.Random) -> int:
    """Return a plausible people count for a sensor at a time (Poisson around the profile)."""
    from video.crowd import display_zone

    local = at.astimezone(display_zone())
    hour = local.hour + local.minute / 60 + local.second / 3600
    mean = demo_density(sensor.kind, hour, sensor.factor) * sensor.area_m2
    # Normal approximation of a Poisson count; exact enough above a few people.
    return max(0, round(rng.gauss(mean, math.sqrt(mean + 1e-9)))) if mean > 0 else 0


def ensure_demo_sensors(session: Session, n: int, seed: int = 0) -> list[SimSensor]:
    """Register (or re-token) n demo sensors at key places; return them with tokens."""
    rows = session.execute(
        text(
            """
            SELECT id, name, kind, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM (
              SELECT kp.*, row_number() OVER (PARTITION BY kind ORDER BY id) AS k
              FROM key_places kp WHERE kind = ANY(:kinds)) x
            ORDER BY k, kind LIMIT :n
            """
        ),
        {"kinds": list(PROFILES), "n": n},
    ).all()
    rng = random.Random(seed)
    out = []
    for r in rows:
        device_id = f"{DEMO_PREFIX}{r.kind}-{r.id}"
        exists = session.execute(
            text("SELECT 1 FROM crowd_sensors WHERE device_id = :d"), {"d": device_id}
        ).first()
        if exists:
            token = rotate_token(session, device_id)
        else:
            _, token = register(session, device_id, f"{r.name} 客流计数", r.lon, r.lat,
                                DEMO_AREAS[r.kind])
        out.append(SimSensor(device_id, token, r.kind, DEMO_AREAS[r.kind],
                             factor=rng.uniform(0.75, 1.15)))
    return out


Poster = Callable[[str, str, Any], tuple[int, dict]]


def http_post(url: str, token: str, body: Any) -> tuple[int, dict]:
    """POST JSON with a bearer token; return (status, parsed JSON body)."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        raise ValueError("the app URL must be http:// or https://")
    data = json.dumps(body).encode("utf-8")
    req = urllib.request.Request(
        url, data=data, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}


def simulate(base_url: str, sensors: Sequence[SimSensor], *, interval_s: float = 60.0,
             backfill_h: float = 0.0, backfill_step_s: int = 300,
             duration_s: float | None = None, seed: int = 0, post: Poster = http_post,
             clock: Callable[[], float] = time.time,
             sleep: Callable[[float], None] = time.sleep,
             echo: Callable[[str], None] = print) -> dict[str, int]:
    """Post plausible readings over HTTP: an optional backfill, then one per interval.

    The backfill goes in shuffled batches, so the server sees out-of-order arrival.
    """
    rng = random.Random(seed)
    totals = {"posted": 0, "stored": 0, "errors": 0, "alerts_raised": 0}

    def send(sensor: SimSensor, readings: list[dict]) -> None:
        url = f"{base_url.rstrip('/')}/api/sensors/{sensor.device_id}/readings"
        status, body = post(url, sensor.token, readings)
        totals["posted"] += len(readings)
        if status >= 400:
            totals["errors"] += 1
            echo(f"{sensor.device_id}: HTTP {status} {body.get('reason', '')}")
            return
        totals["stored"] += int(body.get("stored", 0))
        totals["alerts_raised"] += int(body.get("alerts_raised", 0))

    now = clock()
    if backfill_h > 0:
        steps = int(backfill_h * 3600 // backfill_step_s)
        for sensor in sensors:
            times = [now - (steps - i) * backfill_step_s for i in range(steps)]
            readings = [{"time": round(t, 3),
                         "count": demo_count(sensor, datetime.fromtimestamp(t, UTC), rng)}
                        for t in times]
            rng.shuffle(readings)
            for i in range(0, len(readings), MAX_BATCH // 2):
                send(sensor, readings[i:i + MAX_BATCH // 2])
        echo(f"backfill: {totals['stored']} readings stored for {len(sensors)} sensors")
    started = clock()
    while duration_s is None or clock() - started < duration_s:
        t = clock()
        for sensor in sensors:
            at = datetime.fromtimestamp(t, UTC)
            send(sensor, [{"time": at.isoformat(), "count": demo_count(sensor, at, rng)}])
        if duration_s is not None and clock() - started + interval_s > duration_s:
            break
        sleep(max(0.0, interval_s - (clock() - t)))
    return totals
