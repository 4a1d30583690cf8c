"""ORM models of the video side, on gridmap's shared metadata.

A camera's town, community and grid are derived in PostGIS by a trigger on insert
and on move (see the camera-registry migration), so no code path can store a
camera whose grid disagrees with its location. Credentials live in their own
table, encrypted, and are joined only by the process that opens the stream.
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
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from gridmap.models import SRID, Base, point

SOURCES = (
    "skynet",  # 天网
    "sharp_eyes",  # 雪亮
    "environment",
    "water",
    "housing",
    "urban_management",
    "traffic",
    "education",
    "other",
)
STATUSES = ("unknown", "online", "offline", "no_signal", "frozen", "degraded")
# What the ledgers and the pages call them, in Chinese and English: the pages'
# labels and the names a Chinese camera ledger may use for the codes above.
SOURCE_LABELS = {
    "skynet": ("天网", "Skynet"),
    "sharp_eyes": ("雪亮", "Sharp Eyes"),
    "environment": ("环保", "Environment"),
    "water": ("水利", "Water"),
    "housing": ("住建", "Housing"),
    "urban_management": ("城管", "Urban management"),
    "traffic": ("交通", "Traffic"),
    "education": ("教育", "Education"),
    "other": ("其他", "Other"),
}
STATUS_LABELS = {
    "unknown": ("未知", "Unknown"),
    "online": ("在线", "Online"),
    "offline": ("离线", "Offline"),
    "no_signal": ("无信号", "No signal"),
    "frozen": ("画面冻结", "Frozen"),
    "degraded": ("质量下降", "Degraded"),
}
# Tags the district's ledgers use; any other short word is a tag too.
TAG_LABELS = {
    "key_place": ("重点场所", "Key place"),
    "crowd": ("人流监测", "Crowd monitoring"),
    "intersection": ("路口", "Intersection"),
    "road": ("道路", "Road"),
    "village": ("村庄", "Village"),
    "community": ("社区", "Community"),
    "river": ("河道", "River"),
}
# A known tag may be written as its code or as its Chinese or English name, in any case.
_TAG_CODE_BY_NAME = {name.casefold(): code
                     for code, names in TAG_LABELS.items() for name in (code, *names)}


def tag_code(word: str) -> str:
    """Return the code of a known tag written by code or name (zh or en); any other word unchanged."""
    return _TAG_CODE_BY_NAME.get(word.casefold(), word)


class Camera(Base):
    """One video stream source with its GB/T 28181 ID and placement."""

    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gb_id: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    geom = mapped_column(point(), nullable=False)
    heading: Mapped[float | None] = mapped_column(Float)
    fov: Mapped[float | None] = mapped_column(Float)
    range_m: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(20), index=True)
    department: Mapped[str] = mapped_column(String(60))
    main_url: Mapped[str] = mapped_column(Text)
    sub_url: Mapped[str | None] = mapped_column(Text)
    snapshot_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(
        String(12), default="unknown", server_default="unknown"
    )
    tags: Mapped[list[str]] = mapped_column(
        ARRAY(String(30)), default=list, server_default="{}"
    )
    nominal_width: Mapped[int | None] = mapped_column(Integer)
    nominal_height: Mapped[int | None] = mapped_column(Integer)
    # Sampling schedule and leases (see video.sampler): a camera is due when
    # next_due_at has passed and no unexpired lease holds it.
    sample_interval_s: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    next_due_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fail_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_sample_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the latest stored picture was taken: a failed sample leaves it as it was.
    snapshot_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    status_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Kept by the camera_credentials_flag trigger (0010): whether credentials are
    # stored for the camera, never what they are. Never written by application code.
    has_credentials: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Derived by the cameras_derive trigger; never written by application code.
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), index=True)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    view_sector = mapped_column(
        Geometry("POLYGON", srid=SRID, spatial_index=True), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint("gb_id ~ '^[0-9]{20}$'", name="gb_id_digits"),
        CheckConstraint(
            "heading IS NULL OR (heading >= 0 AND heading < 360)", name="heading"
        ),
        CheckConstraint("fov IS NULL OR (fov > 0 AND fov <= 360)", name="fov"),
        CheckConstraint(
            "range_m IS NULL OR (range_m > 0 AND range_m <= 5000)", name="range"
        ),
        CheckConstraint(f"source IN {SOURCES!r}", name="source"),
        CheckConstraint(f"status IN {STATUSES!r}", name="status"),
        Index(
            "ix_cameras_grid_code_prefix",
            "grid_code",
            postgresql_ops={"grid_code": "text_pattern_ops"},
        ),
        Index("ix_cameras_tags", "tags", postgresql_using="gin"),
        # Declared so that autogenerate keeps it: true-distance KNN and ST_DWithin
        # on geography use this expression index (created in 0002).
        Index("ix_cameras_geog", text("(geom::geography)"), postgresql_using="gist"),
    )


class CameraCredential(Base):
    """The user:password split off a camera's stream URL, encrypted at rest."""

    __tablename__ = "camera_credentials"

    camera_id: Mapped[int] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    username_enc: Mapped[bytes] = mapped_column(LargeBinary)
    password_enc: Mapped[bytes] = mapped_column(LargeBinary)


class GridCoverage(Base):
    """What the online cameras see of one grid: shares and the blind spots."""

    __tablename__ = "grid_coverage"

    grid_id: Mapped[int] = mapped_column(
        ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True
    )
    area_share: Mapped[float] = mapped_column(Float)
    houses_seen: Mapped[int] = mapped_column(Integer)
    houses_total: Mapped[int] = mapped_column(Integer)
    places_seen: Mapped[int] = mapped_column(Integer)
    places_total: Mapped[int] = mapped_column(Integer)
    cameras_online: Mapped[int] = mapped_column(Integer)
    blind = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=True))
    computed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class CoverageDirty(Base):
    """Grids whose coverage must be recomputed (filled by triggers)."""

    __tablename__ = "coverage_dirty"

    grid_id: Mapped[int] = mapped_column(
        ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True
    )


class CameraSample(Base):
    """One sampling attempt of one camera (kept for a retention period)."""

    __tablename__ = "camera_samples"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    sampled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    health: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(String(20))
    open_ms: Mapped[float | None] = mapped_column(Float)
    first_frame_ms: Mapped[float | None] = mapped_column(Float)
    elapsed_ms: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    brightness: Mapped[float | None] = mapped_column(Float)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    sampler: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_camera_samples_camera_time", "camera_id", "sampled_at"),
        Index("ix_camera_samples_time", "sampled_at"),
    )


class CameraStatusChange(Base):
    """A change of a camera's health class (the status history)."""

    __tablename__ = "camera_status_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(12))
    error: Mapped[str | None] = mapped_column(String(20))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_camera_status_changes_camera_time", "camera_id", "changed_at"),)
