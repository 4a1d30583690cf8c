"""Crowd density in the running system: the sampler hook, alert hysteresis, aggregates.

Three layers, kept apart:

* pure: :func:`step` (alert hysteresis) and :class:`Reading`, no database;
* persistence: calibrations, readings, the alert lifecycle (the caller owns the
  transaction; nothing here commits);
* aggregates for the map (current heat, a replay, a per-grid choropleth), each one
  SQL statement in PostGIS that returns ready JSON, scoped by the caller's prefix.

A reading comes from a camera (the sampler hook runs the estimator on the sample's
JPEG) or from a crowd-flow sensor (``video.sensors``); both end in
:func:`record_readings` and :func:`advance_alerts`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.config import env, var_dir
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound
from video.crowd_models import ALERT_STATES
from video.density import (
    CRUSH_DENSITY,
    FRUIN_LEVELS,
    FRUIN_THRESHOLDS,
    MAX_AREA_M2,
    MAX_DENSITY,
    MIN_AREA_M2,
    Calibration,
    CameraState,
    DensityError,
    estimate,
    fruin_level,
    level_min_density,
)
from video.registry import NO_AREA, Filters, Scope

log = logging.getLogger(__name__)

# --- Alert rule -------------------------------------------------------------------
# Without a per-place threshold an alert is raised at Fruin level E (1.08 p/m²):
# walkers can no longer choose their speed and cross-flows conflict. It clears only
# when density falls 20 % below the threshold, and both need two readings in a row
# (two minutes at the sampler's pace), so one noisy estimate neither raises nor
# clears an alert and a crowd hovering at the threshold cannot make it flap.
DEFAULT_ALERT_DENSITY = level_min_density("E")
CLEAR_MARGIN_SHARE = 0.2
RAISE_AFTER = 2
CLEAR_AFTER = 2

# --- Map aggregates ---------------------------------------------------------------
# Heat weights are density / the start of level F, capped at 1: the heat saturates
# where walking stops being possible, and levels A-E spread over the colour ramp.
HEAT_FULL_DENSITY = FRUIN_THRESHOLDS[-1]
DEFAULT_WINDOW_MIN = 10
MAX_WINDOW_MIN = 24 * 60
MAX_REPLAY_HOURS = 7 * 24
MIN_STEP_S = 60
MAX_REPLAY_FRAMES = 1000
NEAREST_RADIUS_M = 300.0
NEAREST_LIMIT = 5
PLACE_RADIUS_M = 200.0
READING_RETENTION_DAYS = 30
MAX_JPEG_BYTES = 8 * 1024 * 1024


def display_zone() -> ZoneInfo:
    """Return the time zone of labels shown to operators (GRIDMAP_TIMEZONE)."""
    return ZoneInfo(env("TIMEZONE", "Asia/Shanghai") or "Asia/Shanghai")


def alerts_dir() -> Path:
    """Return the folder of alert snapshots (kept as long as the alerts)."""
    path = Path(env("ALERTS_DIR") or var_dir() / "alerts")
    path.mkdir(parents=True, exist_ok=True)
    return path


# =================================================================================
# Pure: readings and alert hysteresis
# =================================================================================


@dataclass(frozen=True)
class Reading:
    """People counted on a known area at one time (a camera ROI or a sensor's area)."""

    at: datetime
    count: float
    area_m2: float
    method: str | None = None

    @property
    def density(self) -> float:
        """Return persons per square metre."""
        return self.count / self.area_m2

    @property
    def level(self) -> str:
        """Return the Fruin level of service (A-F)."""
        return fruin_level(self.density)

    @property
    def plausible(self) -> bool:
        """Return whether the reading is physically possible (what may be stored).

        Count >= 0, area within MIN_AREA_M2-MAX_AREA_M2, density at most MAX_DENSITY.
        """
        return (math.isfinite(self.count) and self.count >= 0
                and math.isfinite(self.area_m2) and MIN_AREA_M2 <= self.area_m2 <= MAX_AREA_M2
                and self.count <= MAX_DENSITY * self.area_m2)


@dataclass(frozen=True)
class AlertRule:
    """When a source raises and clears its alert."""

    threshold: float  # persons/m²: raise at or above this
    margin: float  # clear only below threshold - margin
    raise_after: int = RAISE_AFTER
    clear_after: int = CLEAR_AFTER

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"threshold must be > 0, got {self.threshold!r}")
        if not (math.isfinite(self.margin) and 0 <= self.margin < self.threshold):
            raise ValueError(f"margin must be within [0, threshold), got {self.margin!r}")
        if self.raise_after < 1 or self.clear_after < 1:
            raise ValueError("raise_after and clear_after must be >= 1")

    @classmethod
    def for_threshold(cls, threshold: float | None) -> AlertRule:
        """Return the default rule around a threshold (None: the default threshold)."""
        t = DEFAULT_ALERT_DENSITY if threshold is None else float(threshold)
        return cls(threshold=t, margin=CLEAR_MARGIN_SHARE * t)


@dataclass(frozen=True)
class Hysteresis:
    """A source's alert state between readings (stored on its row)."""

    active: bool = False
    above: int = 0  # consecutive readings at/above the threshold while inactive
    below: int = 0  # consecutive readings below threshold - margin while active


class Transition(StrEnum):
    """What one reading did to a source's alert."""

    RAISE = "raise"
    CLEAR = "clear"


def step(state: Hysteresis, density: float, rule: AlertRule) -> tuple[Hysteresis, Transition | None]:
    """Feed one density reading; return the new state and the transition, if any."""
    if not (math.isfinite(density) and density >= 0):
        raise ValueError(f"density must be a finite number >= 0, got {density!r}")
    if not state.active:
        if density < rule.threshold:
            return Hysteresis(), None
        above = state.above + 1
        if above >= rule.raise_after:
            return Hysteresis(active=True), Transition.RAISE
        return Hysteresis(above=above), None
    if density >= rule.threshold - rule.margin:
        return Hysteresis(active=True), None
    below = state.below + 1
    if below >= rule.clear_after:
        return Hysteresis(), Transition.CLEAR
    return Hysteresis(active=True, below=below), None


def run(densities: Iterable[float], rule: AlertRule,
        state: Hysteresis = Hysteresis()) -> list[Transition | None]:
    """Feed a sequence of densities; return the transition after each (for tests/tools)."""
    out: list[Transition | None] = []
    for d in densities:
        state, event = step(state, d, rule)
        out.append(event)
    return out


def decode_jpeg(data: bytes | None) -> np.ndarray | None:
    """Return the BGR image of a JPEG, or None when it is missing or undecodable."""
    import cv2

    if not data or len(data) > MAX_JPEG_BYTES:
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image if image is not None and image.size else None


def level_sql(expr: str) -> str:
    """Return a SQL CASE that maps a density expression to its Fruin level."""
    parts = [f"WHEN {expr} < {bound!r} THEN '{level}'"
             for level, bound in zip(FRUIN_LEVELS, FRUIN_THRESHOLDS, strict=False)]
    return f"(CASE {' '.join(parts)} ELSE '{FRUIN_LEVELS[-1]}' END)"


# =================================================================================
# Calibrations
# =================================================================================

# The demo street clips (video.streams.street_frames, 640x360 and scaled copies):
# the ROI is the far pavement between the facades and the kerb (y 140-190), whose
# ground is about 20 m wide and 4 m deep; a 1.70 m walker measures ~53 px with feet
# on row 169 and ~73 px on row 356 (the near pavement).
DEMO_CALIBRATION: dict[str, Any] = {
    "roi": [[0, 140], [640, 140], [640, 190], [0, 190]],
    "area_m2": 80.0,
    "person_height_px": [[169, 53], [356, 73]],
    "image_size": [640, 360],
    "alert_level": "E",
}


def set_calibration(session: Session, gb_id: str, calibration: str | bytes | dict,
                    footprint_wkt: str | None = None) -> dict[str, Any]:
    """Store (or replace) a camera's crowd calibration and optional ground footprint."""
    try:
        calib = Calibration.from_json(calibration)
    except DensityError as exc:
        raise InvalidInput(f"bad calibration: {exc}") from None
    camera_id = session.execute(
        text("SELECT id FROM cameras WHERE gb_id = :g"), {"g": gb_id}
    ).scalar()
    if camera_id is None:
        raise NotFound("no such camera", gb_id=gb_id)
    if footprint_wkt is not None:
        footprint_wkt = _check_footprint(session, footprint_wkt)
    session.execute(
        text(
            """
            INSERT INTO crowd_cameras (camera_id, calibration, footprint)
            VALUES (:id, CAST(:c AS jsonb), ST_GeomFromText(:w, 4326))
            ON CONFLICT (camera_id) DO UPDATE SET calibration = EXCLUDED.calibration,
              footprint = EXCLUDED.footprint, updated_at = now()
            """
        ),
        {"id": camera_id, "c": _json(calib.to_dict()), "w": footprint_wkt},
    )
    return {"gb_id": gb_id, "calibration": calib.to_dict()}


def _check_footprint(session: Session, wkt: str) -> str:
    """Return the WKT of a valid ground footprint polygon (lon/lat), else InvalidInput."""
    from shapely import wkt as shapely_wkt
    from shapely.errors import ShapelyError
    from shapely.geometry import Polygon

    try:
        shape = shapely_wkt.loads(wkt)
    except (ShapelyError, ValueError, TypeError):
        raise InvalidInput("footprint must be WKT") from None
    if not isinstance(shape, Polygon) or shape.is_empty or not shape.is_valid:
        raise InvalidInput("footprint must be one valid polygon")
    area = session.execute(
        text("SELECT ST_Area(ST_GeomFromText(:w, 4326)::geography)"), {"w": shape.wkt}
    ).scalar_one()
    if area > 1e6:
        raise InvalidInput("footprint is larger than 1 km²", area_m2=round(area))
    return shape.wkt


def load_demo_calibrations(session: Session) -> dict[str, int]:
    """Give every demo camera tagged 'crowd' the demo street calibration (idempotent)."""
    calib = Calibration.from_json(DEMO_CALIBRATION).to_dict()
    added = session.execute(
        text(
            """
            INSERT INTO crowd_cameras (camera_id, calibration)
            SELECT id, CAST(:c AS jsonb) FROM cameras WHERE 'crowd' = ANY(tags)
            ON CONFLICT (camera_id) DO NOTHING
            """
        ),
        {"c": _json(calib)},
    ).rowcount
    return {"crowd_calibrations": added}


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, allow_nan=False)


# =================================================================================
# Readings and alerts (persistence; the caller commits)
# =================================================================================

SOURCES = {
    # kind -> (table holding the hysteresis, its key, the readings/alerts column)
    "camera": ("crowd_cameras", "camera_id", "camera_id"),
    "sensor": ("crowd_sensors", "id", "sensor_id"),
}


@dataclass(frozen=True)
class Source:
    """A camera or sensor by database id, with its alert threshold and crush density."""

    kind: str
    id: int
    threshold: float | None = None
    crush_density: float = CRUSH_DENSITY

    def __post_init__(self) -> None:
        if self.kind not in SOURCES:
            raise ValueError(f"unknown source kind {self.kind!r}")


def record_readings(session: Session, source: Source, readings: Sequence[Reading]) -> list[Reading]:
    """Insert readings idempotently on (source, time); return those that were new."""
    # One reading per time: a batch that repeats a time keeps its first value, as a
    # re-sent batch keeps the stored one.
    first: dict[datetime, Reading] = {}
    for r in readings:
        first.setdefault(r.at, r)
    readings = list(first.values())
    if not readings:
        return []
    # The callers check first (sensors refuse with a reason, the camera hook caps):
    # this is the last guard that nothing impossible reaches the map.
    bad = next((r for r in readings if not r.plausible), None)
    if bad is not None:
        raise ValueError(f"implausible reading: {bad.count!r} people on {bad.area_m2!r} m²")
    column = SOURCES[source.kind][2]
    rows = session.execute(
        text(
            f"""
            INSERT INTO crowd_readings ({column}, measured_at, count, area_m2, density,
                                        level, method)
            SELECT :sid, r.at, r.n, r.a, r.n / r.a, r.lv, r.m
            FROM unnest(CAST(:at AS timestamptz[]), CAST(:n AS float8[]),
                        CAST(:a AS float8[]), CAST(:lv AS text[]), CAST(:m AS text[]))
                 AS r(at, n, a, lv, m)
            ON CONFLICT ({column}, measured_at) DO NOTHING
            RETURNING measured_at
            """
        ),
        {
            "sid": source.id,
            "at": [r.at for r in readings],
            "n": [float(r.count) for r in readings],
            "a": [float(r.area_m2) for r in readings],
            "lv": [r.level for r in readings],
            "m": [r.method for r in readings],
        },
    ).scalars().all()
    new = set(rows)
    return [r for r in readings if r.at in new]


@dataclass
class _Peak:
    """The worst reading of an active alert seen in this call (flushed once)."""

    density: float
    count: float
    at: datetime
    crush: bool


def advance_alerts(session: Session, source: Source, readings: Sequence[Reading], *,
                   snapshot: bytes | None = None) -> list[Transition]:
    """Feed new readings, in time order, to the source's hysteresis; open/clear alerts.

    Readings older than the newest one already fed are skipped (they are late
    arrivals: stored in the series, but history cannot be re-decided).
    """
    table, key, column = SOURCES[source.kind]
    row = session.execute(
        text(
            f"SELECT alert_active, above_run, below_run, alert_seen_at FROM {table} "
            f"WHERE {key} = :id FOR UPDATE"
        ),
        {"id": source.id},
    ).one()
    state = Hysteresis(row.alert_active, row.above_run, row.below_run)
    seen: datetime | None = row.alert_seen_at
    rule = AlertRule.for_threshold(source.threshold)
    events: list[Transition] = []
    peak: _Peak | None = None
    for r in sorted(readings, key=lambda r: r.at):
        if seen is not None and r.at <= seen:
            continue
        seen = r.at
        state, event = step(state, r.density, rule)
        crush = r.density >= source.crush_density
        if event is Transition.RAISE:
            _flush_peak(session, column, source.id, peak)
            peak = None
            _raise(session, source, r, rule, crush, snapshot)
            events.append(event)
        elif event is Transition.CLEAR:
            _flush_peak(session, column, source.id, peak)
            peak = None
            session.execute(
                text(f"UPDATE crowd_alerts SET cleared_at = :at WHERE {column} = :id "
                     "AND state <> 'closed' AND cleared_at IS NULL"),
                {"at": r.at, "id": source.id},
            )
            events.append(event)
        elif state.active:
            if peak is None or r.density > peak.density:
                peak = _Peak(r.density, r.count, r.at, crush)
            peak = replace(peak, at=max(peak.at, r.at), crush=peak.crush or crush)
    _flush_peak(session, column, source.id, peak)
    session.execute(
        text(f"UPDATE {table} SET alert_active = :a, above_run = :up, below_run = :down, "
             f"alert_seen_at = :seen WHERE {key} = :id"),
        {"a": state.active, "up": state.above, "down": state.below, "seen": seen,
         "id": source.id},
    )
    return events


def _flush_peak(session: Session, column: str, source_id: int, peak: _Peak | None) -> None:
    """Carry the worst reading of an active spell into its unclosed alert."""
    if peak is None:
        return
    session.execute(
        text(
            f"""
            UPDATE crowd_alerts SET
              peak_level = CASE WHEN :d > peak_density THEN :lv ELSE peak_level END,
              peak_density = GREATEST(peak_density, :d),
              crush_risk = crush_risk OR :crush,
              last_reading_at = GREATEST(last_reading_at, :at)
            WHERE {column} = :id AND state <> 'closed'
            """
        ),
        {"d": peak.density, "lv": fruin_level(peak.density), "crush": peak.crush,
         "at": peak.at, "id": source_id},
    )


def _raise(session: Session, source: Source, r: Reading, rule: AlertRule, crush: bool,
           snapshot: bytes | None) -> None:
    """Open an alert for the source, or re-arm its alert that nobody has closed yet."""
    _, _, column = SOURCES[source.kind]
    rearmed = session.execute(
        text(
            f"""
            UPDATE crowd_alerts SET cleared_at = NULL,
              peak_level = CASE WHEN :d > peak_density THEN :lv ELSE peak_level END,
              peak_density = GREATEST(peak_density, :d), crush_risk = crush_risk OR :crush,
              last_reading_at = GREATEST(last_reading_at, :at)
            WHERE {column} = :id AND state <> 'closed' RETURNING id
            """
        ),
        {"d": r.density, "lv": r.level, "crush": crush, "at": r.at, "id": source.id},
    ).first()
    if rearmed is not None:
        return
    site = _site(session, source)
    nearest = nearest_cameras(session, site["lon"], site["lat"], exclude=site.get("gb_id"))
    if snapshot is None:
        snapshot = _nearby_snapshot(nearest)
    path = _save_snapshot(snapshot, source, site["key"], r.at)
    session.execute(
        text(
            f"""
            INSERT INTO crowd_alerts ({column}, place, grid_code, geom, level, density, count,
                threshold, peak_density, peak_level, crush_risk, snapshot_path,
                nearest_cameras, state, raised_at, last_reading_at)
            VALUES (:id, :place, :grid, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :lv, :d,
                    :n, :t, :d, :lv, :crush, :path, CAST(:near AS jsonb), 'open', :at, :at)
            """
        ),
        {"id": source.id, "place": site["place"][:200], "grid": site["grid_code"],
         "lon": site["lon"], "lat": site["lat"], "lv": r.level, "d": r.density,
         "n": r.count, "t": rule.threshold, "crush": crush, "path": path,
         "near": _json(nearest), "at": r.at},
    )


SITE_SQL = {
    # The alert sits where the crowd is: inside the camera's ground footprint (or its
    # view sector), not at the pole.
    "camera": """
        SELECT c.gb_id AS key, c.gb_id, c.name, c.grid_code, ST_X(p.pt) AS lon, ST_Y(p.pt) AS lat
        FROM cameras c LEFT JOIN crowd_cameras k ON k.camera_id = c.id,
        LATERAL (SELECT ST_PointOnSurface(COALESCE(k.footprint, c.view_sector, c.geom)) AS pt) p
        WHERE c.id = :id
    """,
    "sensor": """
        SELECT s.device_id AS key, NULL AS gb_id, s.name, s.grid_code,
               ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
        FROM crowd_sensors s WHERE s.id = :id
    """,
}

# Nearest key place within PLACE_RADIUS_M: KNN on the GiST index gives candidates in
# degrees; the metric re-rank and the radius test run on the spheroid.
PLACE_SQL = """
WITH here AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS pt),
cand AS (SELECT kp.name, kp.geom FROM key_places kp, here ORDER BY kp.geom <-> here.pt LIMIT 5)
SELECT cand.name FROM cand, here
WHERE ST_DWithin(cand.geom::geography, here.pt::geography, :r)
ORDER BY ST_Distance(cand.geom::geography, here.pt::geography) LIMIT 1
"""


def _site(session: Session, source: Source) -> dict[str, Any]:
    """Return where an alert of this source is: point, grid, place name and key."""
    row = dict(session.execute(text(SITE_SQL[source.kind]), {"id": source.id}).mappings().one())
    place = session.execute(
        text(PLACE_SQL), {"lon": row["lon"], "lat": row["lat"], "r": PLACE_RADIUS_M}
    ).scalar()
    row["place"] = place or row["name"]
    return row


def nearest_cameras(session: Session, lon: float, lat: float, *,
                    exclude: str | None = None) -> list[dict[str, Any]]:
    """Return the cameras nearest to a spot, those that see it first (registry.nearby)."""
    from video import registry

    # Alerts are raised by the system, not a caller: look at the whole district (a
    # reader's scope is applied when the alert is served).
    everywhere = Filters(scope=registry.Scope())
    try:
        found = registry.nearby(session, lon, lat, radius_m=NEAREST_RADIUS_M,
                                limit=NEAREST_LIMIT + 1, filters=everywhere, sees_first=True)
    except InvalidInput:  # a spot outside the district's box: no neighbours to offer
        return []
    keep = ("gb_id", "name", "distance_m", "bearing", "sees_point", "status", "grid_code")
    return [{k: c[k] for k in keep} for c in found if c["gb_id"] != exclude][:NEAREST_LIMIT]


def _nearby_snapshot(nearest: Sequence[dict[str, Any]]) -> bytes | None:
    """Return the latest sampled JPEG of the first nearby camera that has one."""
    from video.sampler import SamplerConfig, snapshot_paths

    root = SamplerConfig().snapshots()
    for cam in nearest:
        latest, _ = snapshot_paths(root, cam["gb_id"])
        try:
            return latest.read_bytes()
        except OSError:
            continue
    return None


def _save_snapshot(jpeg: bytes | None, source: Source, key: str, at: datetime) -> str | None:
    """Copy the alert's picture out of the sampler's rolling history; return its path.

    The file is written before the transaction commits; if it then rolls back, an
    unreferenced JPEG is left behind, which is harmless.
    """
    if not jpeg:
        return None
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in key)[:64]
    rel = Path(at.strftime("%Y%m%d")) / f"{source.kind}-{safe}-{at.strftime('%H%M%S')}.jpg"
    path = alerts_dir() / rel
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(jpeg)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk must not stop the alert itself
        log.warning("cannot store alert snapshot %s: %s", rel, exc)
        return None
    return rel.as_posix()


def prune_readings(session: Session, keep_days: int = READING_RETENTION_DAYS,
                   batch: int = 5000) -> int:
    """Delete up to ``batch`` readings older than the retention (one pruner at a time)."""
    if not session.execute(text("SELECT pg_try_advisory_xact_lock(370812006)")).scalar():
        return 0
    return session.execute(
        text(
            "DELETE FROM crowd_readings WHERE id IN (SELECT id FROM crowd_readings "
            "WHERE measured_at < now() - make_interval(days => :d) LIMIT :b)"
        ),
        {"d": keep_days, "b": batch},
    ).rowcount


# =================================================================================
# The sampler hook
# =================================================================================

ESTIMABLE = {"online", "degraded"}  # frozen/black pictures would report stale or no crowds


class CrowdHook:
    """Sampler hook: estimate crowd density for calibrated 'crowd' cameras after a sample.

    Runs inside the sample's transaction, in a savepoint: a failure here is logged
    and rolled back alone, so the camera's health sample is never lost.
    """

    def __init__(self, *, refresh_s: float = 60.0, prune_every_s: float = 60.0,
                 retention_days: int = READING_RETENTION_DAYS) -> None:
        self.refresh_s = refresh_s
        self.prune_every_s = prune_every_s
        self.retention_days = retention_days
        self._ids: frozenset[int] = frozenset()
        self._ids_at = -math.inf
        self._pruned_at = time.monotonic()
        self.stats = {"estimated": 0, "skipped": 0, "failed": 0, "alerts": 0}

    def calibrated(self, session: Session) -> frozenset[int]:
        """Return the ids of calibrated 'crowd' cameras (cached for refresh_s)."""
        now = time.monotonic()
        if now - self._ids_at >= self.refresh_s:
            # 97 % of samples are not crowd cameras; one cached set spares them a query.
            self._ids = frozenset(session.execute(text(
                "SELECT k.camera_id FROM crowd_cameras k JOIN cameras c ON c.id = k.camera_id "
                "WHERE 'crowd' = ANY(c.tags)"
            )).scalars())
            self._ids_at = now
        return self._ids

    def __call__(self, session: Session, claim: Any, result: Any) -> None:
        """Estimate, store the reading and the new state, evaluate alerts (no commit)."""
        if claim.id not in self.calibrated(session):
            return
        health = getattr(result.health, "value", result.health)
        if health not in ESTIMABLE or not result.jpeg:
            self.stats["skipped"] += 1
            return
        try:
            with session.begin_nested():
                events = self.process(session, claim.id, result.jpeg,
                                      result.sampled_at or time.time())
            self.stats["estimated"] += 1
            self.stats["alerts"] += events.count(Transition.RAISE)
        except Exception:
            # Deliberately broad: whatever goes wrong with a crowd estimate (a
            # calibration that no longer fits the picture, a database error), the
            # sample it rides on must still be recorded.
            self.stats["failed"] += 1
            log.exception("crowd estimate failed for camera %s", claim.gb_id)
        self._maybe_prune(session)

    def process(self, session: Session, camera_id: int, jpeg: bytes,
                sampled_at: float) -> list[Transition]:
        """Run the estimator on one JPEG for one camera and store everything."""
        row = session.execute(
            text("SELECT calibration, state FROM crowd_cameras WHERE camera_id = :id "
                 "FOR UPDATE"),
            {"id": camera_id},
        ).one()
        calib = Calibration.from_json(row.calibration)
        frame = decode_jpeg(jpeg)
        if frame is None:
            raise DensityError("the sample's JPEG does not decode")
        state = None
        if row.state is not None:
            try:
                state = CameraState.from_bytes(bytes(row.state))
            except DensityError:
                log.warning("discarding unreadable crowd state of camera %s", camera_id)
        est, state = estimate(frame, calib, state)
        at = datetime.fromtimestamp(sampled_at, tz=UTC)
        count, method = est.count, est.method[:40]
        most = MAX_DENSITY * calib.area_m2
        if count > most:
            # More people than fit on the area: the calibration is off (its area too
            # small, or person heights too short). Keep the reading at the physical
            # maximum, which still raises the alert and flags the crush, rather than
            # drop a reading that may come from a real crush.
            log.warning("camera %s: %.0f people on %.1f m² is over %g p/m²; capped "
                        "(check its calibration)", camera_id, count, calib.area_m2, MAX_DENSITY)
            count, method = most, f"{est.method[:33]}+capped"
        reading = Reading(at=at, count=count, area_m2=calib.area_m2, method=method)
        session.execute(
            text("UPDATE crowd_cameras SET state = :s, state_at = :at WHERE camera_id = :id"),
            {"s": state.to_bytes(), "at": at, "id": camera_id},
        )
        source = Source("camera", camera_id, threshold=calib.alert_density,
                        crush_density=calib.crush_density)
        new = record_readings(session, source, [reading])
        return advance_alerts(session, source, new, snapshot=jpeg)

    def _maybe_prune(self, session: Session) -> None:
        now = time.monotonic()
        if now - self._pruned_at < self.prune_every_s:
            return
        self._pruned_at = now
        try:
            with session.begin_nested():
                prune_readings(session, self.retention_days)
        except Exception:  # pruning is housekeeping; never fail a sample for it
            log.exception("pruning crowd readings failed")


# =================================================================================
# Aggregates for the map (scoped; one statement each)
# =================================================================================


def check_window(minutes: int) -> None:
    """Raise InvalidInput unless 1 <= minutes <= MAX_WINDOW_MIN."""
    if not 1 <= minutes <= MAX_WINDOW_MIN:
        raise InvalidInput(f"minutes must be within 1–{MAX_WINDOW_MIN}", minutes=minutes)


# Latest reading per camera/sensor within the window (range scan on the time index,
# then one row per source), joined to where that source is and scoped.
LATEST_SQL = """
WITH latest AS (
  SELECT DISTINCT ON (r.camera_id, r.sensor_id) r.camera_id, r.sensor_id, r.measured_at,
         r.count, r.area_m2, r.density, r.level
  FROM crowd_readings r
  WHERE r.measured_at > now() - make_interval(mins => :minutes)
  ORDER BY r.camera_id, r.sensor_id, r.measured_at DESC
),
src AS (
  SELECT 'camera' AS kind, c.gb_id AS key, c.name, c.grid_code, l.measured_at, l.count,
         l.area_m2, l.density, l.level,
         COALESCE(k.footprint, c.view_sector, c.geom) AS area_geom,
         ST_PointOnSurface(COALESCE(k.footprint, c.view_sector, c.geom)) AS pt
  FROM latest l JOIN cameras c ON c.id = l.camera_id
  LEFT JOIN crowd_cameras k ON k.camera_id = c.id
  WHERE TRUE {camera_where}
  UNION ALL
  -- A sensor's footprint: a disc of its counting area around it.
  SELECT 'sensor', s.device_id, s.name, s.grid_code, l.measured_at, l.count, l.area_m2,
         l.density, l.level,
         ST_Buffer(s.geom::geography, sqrt(s.area_m2 / pi()), 8)::geometry, s.geom
  FROM latest l JOIN crowd_sensors s ON s.id = l.sensor_id
  WHERE COALESCE(s.grid_code, '') LIKE :prefix || '%'
)
"""


def _scope(filters: Filters, prefix: str) -> tuple[str, dict[str, Any]]:
    """Return the camera WHERE fragment and parameters, plus the area prefix.

    Cameras are narrowed by the caller's camera filters (its scope); sensors and
    grids, which are area data, by the caller's area prefix.
    """
    if prefix and not (prefix.isascii() and prefix.isdigit()):
        raise InvalidInput("scope prefix must be digits")
    where, params = filters.sql("c")
    return where, {**params, "prefix": prefix}


def heat(session: Session, filters: Filters, prefix: str = "",
         minutes: int = DEFAULT_WINDOW_MIN, geometry: str = "point") -> str:
    """Return current crowding as GeoJSON (points or footprints), plus heat triples.

    ``points`` (a foreign member) holds ``[lon, lat, weight]`` for heat layers.
    """
    check_window(minutes)
    if geometry not in ("point", "footprint"):
        raise InvalidInput("geometry must be 'point' or 'footprint'")
    where, params = _scope(filters, prefix)
    geom = "src.pt" if geometry == "point" else "src.area_geom"
    sql = LATEST_SQL.format(camera_where=where) + f"""
    SELECT json_build_object(
      'type', 'FeatureCollection',
      'minutes', CAST(:minutes AS int),
      'generated_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      'features', COALESCE(json_agg(json_build_object(
          'type', 'Feature', 'id', src.kind || ':' || src.key,
          'geometry', ST_AsGeoJSON({geom}, 6)::json,
          'properties', json_build_object(
            'kind', src.kind, 'key', src.key, 'name', src.name, 'grid_code', src.grid_code,
            'count', round(src.count::numeric, 1), 'area_m2', round(src.area_m2::numeric, 1),
            'density', round(src.density::numeric, 4), 'level', src.level,
            'weight', round(LEAST(1.0, src.density / :full)::numeric, 3),
            'measured_at', src.measured_at))
        ORDER BY src.kind, src.key), '[]'::json),
      'points', COALESCE(json_agg(json_build_array(
          round(ST_X(src.pt)::numeric, 6), round(ST_Y(src.pt)::numeric, 6),
          round(LEAST(1.0, src.density / :full)::numeric, 3))
        ORDER BY src.kind, src.key), '[]'::json))::text
    FROM src
    """
    return session.execute(
        text(sql), {**params, "minutes": minutes, "full": HEAT_FULL_DENSITY}
    ).scalar_one()


def parse_step(raw: str) -> int:
    """Return a replay step such as '15m', '1h', '90s' or '900' in seconds."""
    raw = (raw or "").strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    unit = units.get(raw[-1:], None)
    digits = raw[:-1] if unit else raw
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 6:
        raise InvalidInput("step must look like 15m, 1h or 900s", step=raw[:20])
    seconds = int(digits) * (unit or 1)
    if not MIN_STEP_S <= seconds <= 24 * 3600:
        raise InvalidInput(f"step must be within {MIN_STEP_S} s and 24 h", step=raw[:20])
    return seconds


# Binning runs on the raw rows (date_bin is integer arithmetic on timestamps, twice as
# fast as epoch numerics here); everything after it sees one row per source and step.
REPLAY_SQL = """
WITH binned AS (
  SELECT date_bin(make_interval(secs => :step), r.measured_at, :start) AS bin,
         r.camera_id, r.sensor_id, max(r.density) AS density
  FROM crowd_readings r
  WHERE r.measured_at >= :start AND r.measured_at < :end
  GROUP BY 1, 2, 3
),
cams AS (
  SELECT c.id, ST_PointOnSurface(COALESCE(k.footprint, c.view_sector, c.geom)) AS pt
  FROM cameras c LEFT JOIN crowd_cameras k ON k.camera_id = c.id
  WHERE c.id IN (SELECT camera_id FROM binned) {camera_where}
),
sens AS (
  SELECT s.id, s.geom AS pt FROM crowd_sensors s
  WHERE s.id IN (SELECT sensor_id FROM binned)
    AND COALESCE(s.grid_code, '') LIKE :prefix || '%'
),
placed AS (
  SELECT CAST(extract(epoch FROM b.bin - :start) / :step AS int) AS bin, b.density,
         COALESCE(c.pt, s.pt) AS pt, COALESCE(b.camera_id, -b.sensor_id) AS ord
  FROM binned b LEFT JOIN cams c ON c.id = b.camera_id LEFT JOIN sens s ON s.id = b.sensor_id
  WHERE c.id IS NOT NULL OR s.id IS NOT NULL
)
SELECT bin, json_agg(json_build_array(
         round(ST_Y(pt)::numeric, 5), round(ST_X(pt)::numeric, 5),
         round(LEAST(1.0, density / :full)::numeric, 3)) ORDER BY ord)::text AS frame
FROM placed GROUP BY bin ORDER BY bin
"""


@dataclass(frozen=True)
class ReplayBins:
    """The steps of a replay: aligned to the step length, the last one holding now."""

    start: datetime
    end: datetime
    step_s: int
    starts: tuple[datetime, ...]
    labels: tuple[str, ...]  # local time of each step's start, for the time slider


def replay_bins(now: datetime, hours: int, step_s: int) -> ReplayBins:
    """Return the replay steps ending with the one that holds ``now`` (validated)."""
    if not 1 <= hours <= MAX_REPLAY_HOURS:
        raise InvalidInput(f"hours must be within 1–{MAX_REPLAY_HOURS}", hours=hours)
    if not MIN_STEP_S <= step_s <= 24 * 3600:
        raise InvalidInput(f"step must be within {MIN_STEP_S} s and 24 h", step_s=step_s)
    n = math.ceil(hours * 3600 / step_s)
    if n > MAX_REPLAY_FRAMES:
        raise InvalidInput(f"at most {MAX_REPLAY_FRAMES} frames; use a longer step",
                           frames=n)
    # Aligned on the Unix epoch, so two requests in one step see the same steps.
    end = datetime.fromtimestamp((math.floor(now.timestamp() / step_s) + 1) * step_s, tz=UTC)
    start = end - timedelta(seconds=n * step_s)
    starts = tuple(start + timedelta(seconds=i * step_s) for i in range(n))
    zone = display_zone()
    multi_day = starts[0].astimezone(zone).date() != starts[-1].astimezone(zone).date()
    label = "%m-%d %H:%M" if multi_day else "%H:%M"
    return ReplayBins(start, end, step_s, starts,
                      tuple(t.astimezone(zone).strftime(label) for t in starts))


def replay(session: Session, filters: Filters, prefix: str = "", hours: int = 24,
           step_s: int = 900, now: datetime | None = None) -> dict[str, Any]:
    """Return heat frames over the last hours for folium's HeatMapWithTime.

    Each frame holds ``[lat, lon, weight]`` per source with the source's worst
    (highest) density inside the step; frames without readings are empty lists.
    """
    import json

    now = now or session.execute(text("SELECT now()")).scalar_one()
    bins = replay_bins(now, hours, step_s)
    where, params = _scope(filters, prefix)
    rows = session.execute(
        text(REPLAY_SQL.format(camera_where=where)),
        {**params, "start": bins.start, "end": bins.end, "step": step_s,
         "full": HEAT_FULL_DENSITY},
    ).all()
    frames: list[list] = [[] for _ in bins.starts]
    for bin_index, frame in rows:
        if 0 <= bin_index < len(frames):
            frames[bin_index] = json.loads(frame)
    return {
        "hours": hours, "step_s": step_s, "start": _iso(bins.start), "end": _iso(bins.end),
        "times": [_iso(t) for t in bins.starts], "index": list(bins.labels),
        "frames": frames,
    }


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


GRIDS_SQL = """
, per_grid AS (
  SELECT src.grid_code, sum(src.count) AS people, sum(src.area_m2) AS area,
         max(src.density) AS worst, count(*) AS sources, max(src.measured_at) AS latest
  FROM src WHERE src.grid_code LIKE :prefix || '%' GROUP BY src.grid_code
)
"""


def _grid_properties() -> str:
    level = level_sql("p.worst")
    index = "array_position(ARRAY['A','B','C','D','E','F'], " + level + ") - 1"
    return f"""
      'code', g.code, 'key', g.code, 'name', g.name,
      'people', round(p.people::numeric, 1), 'area_m2', round(p.area::numeric, 1),
      'density', round((p.people / p.area)::numeric, 4),
      'max_density', round(p.worst::numeric, 4), 'level', {level},
      'calm', round((1 - ({index}) / 5.0)::numeric, 2),
      'sources', p.sources, 'measured_at', p.latest
    """


def grids_geojson(session: Session, filters: Filters, prefix: str = "",
                  minutes: int = DEFAULT_WINDOW_MIN) -> str:
    """Return the grids with current readings and their crowding as GeoJSON.

    ``density`` is people over the measured area in the grid; ``level`` follows the
    worst single place (a packed square is not diluted by an empty street);
    ``calm`` = 1 - level index / 5 suits ramps where 1 is good.
    """
    check_window(minutes)
    where, params = _scope(filters, prefix)
    sql = LATEST_SQL.format(camera_where=where) + GRIDS_SQL + f"""
    SELECT json_build_object('type', 'FeatureCollection', 'minutes', CAST(:minutes AS int),
      'features', COALESCE(json_agg(json_build_object(
        'type', 'Feature', 'id', g.code, 'geometry', ST_AsGeoJSON(g.geom, 6)::json,
        'properties', json_build_object({_grid_properties()})) ORDER BY g.code), '[]'::json))::text
    FROM per_grid p JOIN grids g ON g.code = p.grid_code
    """
    return session.execute(text(sql), {**params, "minutes": minutes}).scalar_one()


def grid_values(session: Session, filters: Filters, prefix: str = "",
                minutes: int = DEFAULT_WINDOW_MIN) -> str:
    """Return the same per-grid figures without geometry: ``[{key, density, ...}]``."""
    check_window(minutes)
    where, params = _scope(filters, prefix)
    sql = LATEST_SQL.format(camera_where=where) + GRIDS_SQL + f"""
    SELECT COALESCE(json_agg(json_build_object({_grid_properties()}) ORDER BY g.code),
                    '[]'::json)::text
    FROM per_grid p JOIN grids g ON g.code = p.grid_code
    """
    return session.execute(text(sql), {**params, "minutes": minutes}).scalar_one()


# =================================================================================
# Alerts: list, acknowledge, close (scoped by jurisdiction)
# =================================================================================

ACTIVE_STATES = ("open", "acknowledged")
# Allowed transitions: action -> states it may start from.
TRANSITIONS = {"acknowledge": ("open",), "close": ("open", "acknowledged")}
MAX_NOTE = 1000


class AlertTransitionError(Conflict):
    """The alert is not in a state that allows this action."""


ALERT_COLUMNS = """
  a.id, a.place, a.grid_code, ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat, a.level,
  a.density, a.count, a.threshold, a.peak_density, a.peak_level, a.crush_risk,
  a.state, a.raised_at, a.last_reading_at, a.cleared_at, a.acknowledged_at,
  a.acknowledged_by, a.closed_at, a.closed_by, a.notes, a.nearest_cameras,
  (a.snapshot_path IS NOT NULL) AS has_snapshot,
  CASE WHEN a.camera_id IS NOT NULL THEN 'camera' ELSE 'sensor' END AS source_kind,
  COALESCE(c.gb_id, s.device_id) AS source_key, COALESCE(c.name, s.name) AS source_name
"""
ALERT_FROM = """
  FROM crowd_alerts a LEFT JOIN cameras c ON c.id = a.camera_id
  LEFT JOIN crowd_sensors s ON s.id = a.sensor_id
  WHERE TRUE {visible}
"""


def _as_scope(scope: Scope | str) -> Scope:
    """Return a Scope; a bare area prefix (older callers, tools) is an area-only scope."""
    return scope if isinstance(scope, Scope) else Scope(prefix=scope)


def _area_part(scope: Scope) -> str | None:
    """Return the area prefix that applies to area data, or None (the scope has no area)."""
    return scope.prefix if scope.prefix and scope.prefix != NO_AREA else None


def alert_visibility(scope: Scope | str) -> tuple[str, dict[str, Any]]:
    """Return the WHERE fragment (starting with AND) of the alerts a scope may see.

    An alert is visible when it lies in the scope's area (its grid code starts with
    the area prefix: what towns and communities always saw), or when it was raised
    by a camera the scope may see through its department or through a dispatch
    order to its unit (as the camera list shows them). Sensors are area data: their
    alerts are seen by area only. The district (an unrestricted scope) sees all.
    """
    scope = _as_scope(scope)
    if scope.unrestricted:
        return "", {}
    parts: list[str] = []
    area = _area_part(scope)
    if area is not None:
        # Inlined (digits only, checked by Scope): a generic plan keeps the prefix index.
        parts.append(f"a.grid_code LIKE '{area}%'")
    # The camera part of the scope without its area: the area is matched on the
    # alert's own grid code above, where the crowd was.
    params: dict[str, Any] = {}
    if scope.department is not None or (scope.unit_id is not None
                                        and scope.has_dispatched is not False):
        camera_sql, params = replace(scope, prefix=NO_AREA).sql("c")
        parts.append(f"(a.camera_id IS NOT NULL{camera_sql})")
    if not parts:
        return " AND FALSE", {}
    return " AND (" + " OR ".join(parts) + ")", params


def _alert_from(scope: Scope | str) -> tuple[str, dict[str, Any]]:
    where, params = alert_visibility(scope)
    return ALERT_FROM.format(visible=where), params


def parse_states(raw: Sequence[str]) -> tuple[str, ...]:
    """Return alert states from a filter ('active' = open + acknowledged)."""
    out: list[str] = []
    for value in raw:
        if value == "active":
            out.extend(ACTIVE_STATES)
        elif value in ALERT_STATES:
            out.append(value)
        else:
            raise InvalidInput(f"unknown alert state {value!r}",
                               allowed=[*ALERT_STATES, "active"])
    return tuple(dict.fromkeys(out))


def _visible_cameras(session: Session, scope: Scope, rows: Sequence[Any]) -> set[str] | None:
    """Return which of the rows' nearest cameras the scope may see (None: all of them)."""
    if scope.unrestricted:
        return None
    area = _area_part(scope)
    wanted = {c["gb_id"] for r in rows for c in r["nearest_cameras"] or []
              if c.get("gb_id") is not None}
    # Those in the area (by the grid stored with the alert, as always), then the
    # others by the camera scope as it stands (department, dispatch orders).
    seen = {c["gb_id"] for r in rows for c in r["nearest_cameras"] or []
            if area is not None and (c.get("grid_code") or "").startswith(area)}
    rest = sorted(wanted - seen)
    if rest:
        where, params = scope.sql("c")
        seen |= set(session.execute(
            text(f"SELECT c.gb_id FROM cameras c WHERE c.gb_id = ANY(:ids) {where}"),
            {**params, "ids": rest},
        ).scalars())
    return seen


def _alerts(session: Session, scope: Scope, rows: Sequence[Any]) -> list[dict[str, Any]]:
    # Neighbouring cameras the caller may not see are not the caller's to learn about.
    visible = _visible_cameras(session, scope, rows)
    out = []
    for row in rows:
        item = dict(row)
        item["nearest_cameras"] = [c for c in item["nearest_cameras"] or []
                                   if visible is None or c.get("gb_id") in visible]
        item["lon"], item["lat"] = round(item["lon"], 6), round(item["lat"], 6)
        out.append(item)
    return out


def list_alerts(session: Session, scope: Scope | str, states: Sequence[str] = (), *,
                limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """Return the alerts the caller's scope may see (alert_visibility), newest first."""
    scope = _as_scope(scope)
    source, params = _alert_from(scope)
    where = " AND a.state = ANY(:states)" if states else ""
    params = {**params, "states": list(states), "limit": limit, "offset": offset}
    total = session.execute(
        text(f"SELECT count(*) {source} {where}"), params
    ).scalar_one()
    rows = session.execute(
        text(f"SELECT {ALERT_COLUMNS} {source} {where} "
             "ORDER BY a.raised_at DESC, a.id DESC OFFSET :offset LIMIT :limit"),
        params,
    ).mappings().all()
    return {"total": total, "offset": offset, "limit": limit,
            "items": _alerts(session, scope, rows)}


def get_alert(session: Session, alert_id: int, scope: Scope | str) -> dict[str, Any]:
    """Return one alert the caller's scope may see, else NotFound."""
    scope = _as_scope(scope)
    source, params = _alert_from(scope)
    row = session.execute(
        text(f"SELECT {ALERT_COLUMNS} {source} AND a.id = :id"),
        {**params, "id": alert_id},
    ).mappings().first()
    if row is None:
        raise NotFound("no such alert", id=alert_id)
    return _alerts(session, scope, [row])[0]


def _clean_note(note: Any, required: bool) -> str | None:
    if note is None or (isinstance(note, str) and not note.strip()):
        if required:
            raise InvalidInput("a note is required")
        return None
    if not isinstance(note, str):
        raise InvalidInput("note must be text")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"note must be at most {MAX_NOTE} characters")
    return note.strip()


def transition(session: Session, alert_id: int, action: str, *, scope: Scope | str,
               actor: str, note: Any = None) -> dict[str, Any]:
    """Acknowledge or close an alert; an illegal transition raises AlertTransitionError.

    The alert must be visible to ``scope`` (else NotFound) and the scope's own, not
    seen only through a camera dispatched to the unit: dispatched cameras are
    view-only, and so are their alerts (Forbidden).
    """
    if action not in TRANSITIONS:
        raise ValueError(f"unknown alert action {action!r}")
    scope = _as_scope(scope)
    text_note = _clean_note(note, required=action == "close")
    alert_from, params = _alert_from(scope)
    own_where, own_params = alert_visibility(scope.own())
    source = session.execute(
        text(f"SELECT a.camera_id, a.sensor_id, (TRUE {own_where}) AS own "
             f"{alert_from} AND a.id = :id"),
        {**params, **own_params, "id": alert_id},
    ).first()
    if source is None:
        raise NotFound("no such alert", id=alert_id)
    if not source.own:
        raise Forbidden("alerts of cameras dispatched to your unit are view-only",
                        id=alert_id)
    # The source's row first, as readings lock it before its alerts: the other
    # order could deadlock with an upload arriving at the same moment.
    kind, source_id = (("camera", source.camera_id) if source.camera_id is not None
                       else ("sensor", source.sensor_id))
    source_table, source_key, _ = SOURCES[kind]
    session.execute(text(f"SELECT 1 FROM {source_table} WHERE {source_key} = :id FOR UPDATE"),
                    {"id": source_id})
    current, live = session.execute(
        text(f"SELECT a.state, a.cleared_at IS NULL {alert_from} AND a.id = :id FOR UPDATE OF a"),
        {**params, "id": alert_id},
    ).one()
    if current not in TRANSITIONS[action]:
        raise AlertTransitionError(f"cannot {action} an alert that is {current}",
                                   id=alert_id, state=current)
    entry = {"at": _iso(datetime.now(UTC)), "by": actor, "action": action, "note": text_note}
    if action == "acknowledge":
        sets = "state = 'acknowledged', acknowledged_at = now(), acknowledged_by = :actor"
    else:
        sets = "state = 'closed', closed_at = now(), closed_by = :actor"
    session.execute(
        text(f"UPDATE crowd_alerts SET {sets}, notes = notes || CAST(:entry AS jsonb) "
             "WHERE id = :id"),
        {"actor": actor[:64], "entry": _json([entry]), "id": alert_id},
    )
    if action == "close" and live:
        # Closed while the crowd is still there: the source starts over, so if it
        # stays above the threshold a new alert opens (readings would otherwise
        # only feed the closed one, and even a crush would raise nothing).
        session.execute(
            text(f"UPDATE {source_table} SET alert_active = false, above_run = 0, below_run = 0 "
                 f"WHERE {source_key} = :id"),
            {"id": source_id},
        )
    return get_alert(session, alert_id, scope)


def alert_snapshot(session: Session, alert_id: int, scope: Scope | str) -> Path:
    """Return the path of the snapshot of an alert the scope may see, else NotFound."""
    alert_from, params = _alert_from(scope)
    rel = session.execute(
        text(f"SELECT a.snapshot_path {alert_from} AND a.id = :id"),
        {**params, "id": alert_id},
    ).scalar()
    root = alerts_dir().resolve()
    path = (root / rel).resolve() if rel else None
    # The stored path is ours, but never follow one out of the alerts folder.
    if path is None or root not in path.parents or not path.is_file():
        raise NotFound("this alert has no snapshot", id=alert_id)
    return path


def alerts_geojson(session: Session, scope: Scope | str,
                   states: Sequence[str] = ACTIVE_STATES) -> str:
    """Return the alerts the scope may see as GeoJSON points (for map layers)."""
    alert_from, params = _alert_from(scope)
    sql = f"""
    SELECT json_build_object('type', 'FeatureCollection', 'features', COALESCE(json_agg(
      json_build_object('type', 'Feature', 'id', a.id,
        'geometry', ST_AsGeoJSON(a.geom, 6)::json,
        'properties', json_build_object('id', a.id, 'title', a.place, 'place', a.place,
          'level', a.level, 'peak_level', a.peak_level, 'density', round(a.density::numeric, 3),
          'peak_density', round(a.peak_density::numeric, 3), 'state', a.state,
          'crush_risk', a.crush_risk, 'time', a.raised_at, 'cleared_at', a.cleared_at,
          'grid_code', a.grid_code, 'source_key', COALESCE(c.gb_id, s.device_id)))
      ORDER BY a.raised_at DESC), '[]'::json))::text
    {alert_from} AND a.state = ANY(:states)
    """
    return session.execute(text(sql), {**params, "states": list(states)}).scalar_one()


__all__ = [
    "DEFAULT_ALERT_DENSITY",
    "AlertRule",
    "AlertTransitionError",
    "CrowdHook",
    "Hysteresis",
    "Reading",
    "Source",
    "Transition",
    "advance_alerts",
    "grid_values",
    "grids_geojson",
    "heat",
    "list_alerts",
    "load_demo_calibrations",
    "record_readings",
    "replay",
    "run",
    "set_calibration",
    "step",
    "transition",
]
