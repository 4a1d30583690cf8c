"""The grid model: district → towns/streets → villages/communities → grids.

Every geometry column is WGS-84 (SRID 4326) with a GiST index. Codes are digit
strings that nest (district 6 + town 3 + community 3 + grid 3), so a jurisdiction
is a code prefix and scope filters are ``code LIKE prefix || '%'``.
"""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SRID = 4326

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names for migrations."""

    metadata = MetaData(naming_convention=NAMING)


def multipolygon() -> Geometry:
    """Return a MultiPolygon column type in WGS-84 with a spatial index."""
    return Geometry("MULTIPOLYGON", srid=SRID, spatial_index=True)


def point() -> Geometry:
    """Return a Point column type in WGS-84 with a spatial index."""
    return Geometry("POINT", srid=SRID, spatial_index=True)


def code_pattern_index(table: str, column: str = "code") -> Index:
    """Return a btree index usable by ``LIKE 'prefix%'`` scope filters."""
    return Index(
        f"ix_{table}_{column}_prefix",
        column,
        postgresql_ops={column: "text_pattern_ops"},
    )


class District(Base):
    """The district itself (one row: 370812 兖州区)."""

    __tablename__ = "districts"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    geom = mapped_column(multipolygon(), nullable=False)

    __table_args__ = (CheckConstraint("code ~ '^[0-9]{6}$'", name="code_digits"),)


class Town(Base):
    """A town (镇) or street (街道)."""

    __tablename__ = "towns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(10))  # street | town
    district_code: Mapped[str] = mapped_column(ForeignKey("districts.code"))
    geom = mapped_column(multipolygon(), nullable=False)

    communities: Mapped[list[Community]] = relationship(back_populates="town")

    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{9}$'", name="code_digits"),
        CheckConstraint("kind IN ('street', 'town')", name="kind"),
    )


class Community(Base):
    """A village (村) or community (社区)."""

    __tablename__ = "communities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(12), unique=True)
    name: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(10))  # community | village
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    geom = mapped_column(multipolygon(), nullable=False)

    town: Mapped[Town] = relationship(back_populates="communities")
    grids: Mapped[list[Grid]] = relationship(back_populates="community")

    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{12}$'", name="code_digits"),
        CheckConstraint("kind IN ('community', 'village')", name="kind"),
        code_pattern_index("communities"),
    )


class Grid(Base):
    """One management grid with its cached base counts.

    The counts are derived from the point tables (houses, places, components) and
    the per-category key-person counts; ``refresh_grid_counts`` recomputes them, so
    they can be served with the grid layer without a join per request.
    """

    __tablename__ = "grids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(15), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(10))  # urban | rural | special
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    geom = mapped_column(multipolygon(), nullable=False)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    houses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    residents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    key_persons: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    key_places: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    components: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    community: Mapped[Community] = relationship(back_populates="grids")
    # The current team (members who left keep their rows for their patrols and reports).
    workers: Mapped[list[GridWorker]] = relationship(
        primaryjoin="and_(Grid.id == GridWorker.grid_id, GridWorker.left_at.is_(None))",
        order_by="GridWorker.id", viewonly=True,
    )
    key_person_counts: Mapped[list[KeyPersonCount]] = relationship(
        order_by="KeyPersonCount.category"
    )

    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{15}$'", name="code_digits"),
        CheckConstraint("kind IN ('urban', 'rural', 'special')", name="kind"),
        code_pattern_index("grids"),
    )


class GridWorker(Base):
    """A member of a grid's "1+1+Z+N" team."""

    __tablename__ = "grid_workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(40))
    phone: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    # Leaving a team marks the row: patrols cascade from it and matters point at it.
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    grid: Mapped[Grid] = relationship()

    __table_args__ = (
        CheckConstraint(
            "role IN ('leader', 'full_time', 'part_time', 'volunteer')", name="role"
        ),
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_grid_workers_current", "grid_id", "role",
              postgresql_where=text("left_at IS NULL")),
    )


class KeyPersonCount(Base):
    """How many key persons of one category a grid has (a count, never a record)."""

    __tablename__ = "key_person_counts"

    grid_id: Mapped[int] = mapped_column(
        ForeignKey("grids.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(40), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("count >= 0", name="count_nonneg"),)


class House(Base):
    """A house (point) with its number of residents."""

    __tablename__ = "houses"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    geom = mapped_column(point(), nullable=False)
    residents: Mapped[int] = mapped_column(Integer)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), index=True)

    __table_args__ = (CheckConstraint("residents >= 0", name="residents_nonneg"),)


class KeyPlace(Base):
    """A key place: school, hospital, market, station, square, ..."""

    __tablename__ = "key_places"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    geom = mapped_column(point(), nullable=False)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), index=True)


class CityComponent(Base):
    """A city component (部件) with a digital-urban-management category code."""

    __tablename__ = "city_components"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    category_code: Mapped[str] = mapped_column(String(6), index=True)
    category: Mapped[str] = mapped_column(String(40))
    geom = mapped_column(point(), nullable=False)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"), index=True)


class AuditNote(Base):
    """Free-form provenance of loaded data sets (what, when, from which seed)."""

    __tablename__ = "dataset_loads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    description: Mapped[str] = mapped_column(Text)


# --------------------------------------------------------------------------- grid editing
# History of grid boundaries (issue 8). Appended here so Alembic's env sees them.

from sqlalchemy import UniqueConstraint  # noqa: E402
from sqlalchemy import text as _sql_text  # noqa: E402
from sqlalchemy.dialects.postgresql import JSONB  # noqa: E402

EDIT_KINDS = ("boundary", "split", "merge", "edge", "reassign", "upload", "revert")


class GridEdit(Base):
    """One boundary edit: who, when, why and what kind; groups its version rows."""

    __tablename__ = "grid_edits"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str] = mapped_column(Text)
    edited_by: Mapped[str] = mapped_column(String(64))
    edited_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    # Codes changed, created, retired and moved, and the request's parameters.
    summary: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")

    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{k}'" for k in EDIT_KINDS) + ")", name="kind"
        ),
    )


class GridVersion(Base):
    """A grid's geometry and attributes at one version, valid over [valid_from, valid_to).

    ``edit_id`` is NULL for the state as loaded (written the first time a grid is
    edited); ``geom`` is NULL for the row that retires a code (merged away or moved
    to another community). The grids in force at time t are the rows with a
    geometry and ``valid_from <= t < valid_to`` (loaded states count from the
    beginning), plus grids never edited at all.
    """

    __tablename__ = "grid_versions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(15))
    version: Mapped[int] = mapped_column(Integer)
    edit_id: Mapped[int | None] = mapped_column(
        ForeignKey("grid_edits.id", ondelete="CASCADE"), index=True
    )
    geom = mapped_column(multipolygon(), nullable=True)
    attributes: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("grid_code", "version", name="uq_grid_versions_code_version"),
        # At most one open (current) row per code: history cannot fork.
        Index(
            "uq_grid_versions_current",
            "grid_code",
            unique=True,
            postgresql_where=_sql_text("valid_to IS NULL"),
        ),
        Index("ix_grid_versions_valid", "valid_from", "valid_to"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_range"),
    )
