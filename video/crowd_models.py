"""ORM models of crowd density: camera calibrations, flow sensors, readings and alerts.

A reading belongs to exactly one camera or one sensor; its place, grid and
jurisdiction come from that source. Sensors get their grid code from PostGIS (a
trigger on insert and move, re-run when grids change, see the 0006 migration), the
same way cameras do. Each source row carries its alert hysteresis state, so the
pure ``video.crowd.step`` can be resumed reading after reading.
"""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models import SRID, Base, code_pattern_index, point

ALERT_STATES = ("open", "acknowledged", "closed")
LEVEL_CHECK = "level IN ('A', 'B', 'C', 'D', 'E', 'F')"
DEVICE_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class HysteresisColumns:
    """The alert hysteresis state of one source (see ``video.crowd.Hysteresis``)."""

    alert_active: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    above_run: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    below_run: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    # Time of the newest reading fed to the hysteresis: late (out-of-order) readings
    # are stored but do not move it, so the state follows time, not arrival order.
    alert_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CrowdCamera(HysteresisColumns, Base):
    """A camera's crowd calibration, its estimator state and its ground footprint."""

    __tablename__ = "crowd_cameras"

    camera_id: Mapped[int] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    # Validated by video.density.Calibration.from_json before it is stored.
    calibration: Mapped[dict] = mapped_column(JSONB)
    # video.density.CameraState.to_bytes(): a zlib-compressed ~320x180 background.
    state: Mapped[bytes | None] = mapped_column(LargeBinary)
    state_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The ROI projected onto the ground; NULL means "use the camera's view sector".
    footprint = mapped_column(Geometry("POLYGON", srid=SRID, spatial_index=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        # Warm-up states hold a few samples (see video.density.CameraState).
        CheckConstraint("octet_length(state) <= 1048576", name="state_small"),
    )


class CrowdSensor(HysteresisColumns, Base):
    """A crowd-flow sensor (people counter) that posts counts for a known area."""

    __tablename__ = "crowd_sensors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    geom = mapped_column(point(), nullable=False)
    area_m2: Mapped[float] = mapped_column(Float)
    alert_density: Mapped[float | None] = mapped_column(Float)
    # Derived by the crowd_sensors_derive trigger; never written by application code.
    grid_code: Mapped[str | None] = mapped_column(String(15))
    # sha256 of a 256-bit random token: the token itself is shown once and never stored.
    token_hash: Mapped[bytes] = mapped_column(LargeBinary)
    token_set_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint(f"device_id ~ '{DEVICE_ID_PATTERN}'", name="device_id_chars"),
        CheckConstraint("area_m2 > 0", name="area_positive"),
        CheckConstraint("alert_density IS NULL OR alert_density > 0", name="alert_positive"),
        CheckConstraint("octet_length(token_hash) = 32", name="token_hash_sha256"),
        code_pattern_index("crowd_sensors", "grid_code"),
    )


class CrowdReading(Base):
    """One density reading of one camera or one sensor at one time."""

    __tablename__ = "crowd_readings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    sensor_id: Mapped[int | None] = mapped_column(
        ForeignKey("crowd_sensors.id", ondelete="CASCADE")
    )
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    count: Mapped[float] = mapped_column(Float)
    area_m2: Mapped[float] = mapped_column(Float)
    density: Mapped[float] = mapped_column(Float)
    level: Mapped[str] = mapped_column(String(1))
    method: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint("num_nonnulls(camera_id, sensor_id) = 1", name="one_source"),
        CheckConstraint("count >= 0 AND area_m2 > 0 AND density >= 0", name="values"),
        CheckConstraint(LEVEL_CHECK, name="level"),
        # Idempotency (a sensor re-sending a batch) and the per-source time-range
        # index in one: NULLs never collide, so each constraint covers one kind.
        UniqueConstraint("camera_id", "measured_at", name="uq_crowd_readings_camera_time"),
        UniqueConstraint("sensor_id", "measured_at", name="uq_crowd_readings_sensor_time"),
        Index("ix_crowd_readings_time", "measured_at"),
    )


class CrowdAlert(Base):
    """A crowding alert at one place, raised by the hysteresis of one camera or sensor."""

    __tablename__ = "crowd_alerts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    sensor_id: Mapped[int | None] = mapped_column(
        ForeignKey("crowd_sensors.id", ondelete="CASCADE")
    )
    place: Mapped[str] = mapped_column(String(200))
    # The jurisdiction at raise time: an alert stays with the grid it happened in.
    grid_code: Mapped[str | None] = mapped_column(String(15))
    geom = mapped_column(point(), nullable=False)
    level: Mapped[str] = mapped_column(String(1))
    density: Mapped[float] = mapped_column(Float)  # at raise time
    count: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    peak_density: Mapped[float] = mapped_column(Float)
    peak_level: Mapped[str] = mapped_column(String(1))
    crush_risk: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    snapshot_path: Mapped[str | None] = mapped_column(Text)  # relative to the alerts folder
    nearest_cameras: Mapped[list] = mapped_column(JSONB, default=list, server_default="[]")
    state: Mapped[str] = mapped_column(String(12), default="open", server_default="open")
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_reading_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the hysteresis saw the crowd disperse; the alert stays until a person closes it.
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(String(64))
    # [{"at", "by", "action", "note"}], appended by acknowledge and close.
    notes: Mapped[list] = mapped_column(JSONB, default=list, server_default="[]")

    __table_args__ = (
        CheckConstraint("num_nonnulls(camera_id, sensor_id) = 1", name="one_source"),
        CheckConstraint(f"state IN {ALERT_STATES!r}", name="state"),
        CheckConstraint(LEVEL_CHECK, name="level"),
        CheckConstraint("peak_level IN ('A', 'B', 'C', 'D', 'E', 'F')", name="peak_level"),
        # At most one alert per source that is not closed: the database backs the
        # hysteresis' promise that an alert never flaps into duplicates.
        Index(
            "uq_crowd_alerts_camera_unclosed", "camera_id", unique=True,
            postgresql_where=text("camera_id IS NOT NULL AND state <> 'closed'"),
        ),
        Index(
            "uq_crowd_alerts_sensor_unclosed", "sensor_id", unique=True,
            postgresql_where=text("sensor_id IS NOT NULL AND state <> 'closed'"),
        ),
        Index("ix_crowd_alerts_state_time", "state", "raised_at"),
        code_pattern_index("crowd_alerts", "grid_code"),
    )
