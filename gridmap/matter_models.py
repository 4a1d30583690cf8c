"""ORM models of matters (事项): intake, routing, the five steps, deadlines and look-back.

A matter is reported at a point; PostGIS derives its grid (and so its community and
town, which are code prefixes of the grid code) on insert and on move, and again
when grids are redrawn, the same way cameras and crowd sensors get theirs. The
category tree and the routing rules are data, so the command center can change them
without a release. Steps, supervision and ratings are append-only rows, so a
matter's whole history survives redo and re-dispatch.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
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

from gridmap.models import Base, code_pattern_index, point

MATTER_SOURCES = (
    "grid_worker",  # 网格员巡查上报
    "hotline_12345",  # 12345 政务服务便民热线
    "emergency_110",
    "emergency_119",
    "emergency_120",
    "emergency_122",
    "video_patrol",  # 视频巡查
    "crowd_alert",  # 人群密度告警
    "open311",  # citizen app / GeoReport v2
    "other",
)
# The five steps (上报 → 转办 → 处置 → 核实 → 结案) as states. "reported" waits for
# triage or transfer; "transferred" waits for the unit to accept (1-day clock);
# "handling" is accepted and being worked (2-day clock); "handled" waits for
# verification; "verified" has been checked and reported back to the citizen (3-day
# clock); "closed" is struck off.
MATTER_STATES = ("reported", "transferred", "handling", "handled", "verified", "closed")
# The 1-2-3 clocks and the states in which each runs: accept until the unit accepts,
# finish until the matter is handled, feedback until it is verified (reported back).
# The partial indexes, the overdue filters and the overdue scan all follow this.
CLOCK_STATES = {
    "accept": ("transferred",),
    "finish": ("transferred", "handling"),
    "feedback": ("transferred", "handling", "handled"),
}


def clock_running_sql(clock: str, alias: str = "") -> str:
    """Return the SQL condition under which a clock runs (a partial index's predicate)."""
    column = f"{alias}.state" if alias else "state"
    states = CLOCK_STATES[clock]
    if len(states) == 1:
        return f"{column} = '{states[0]}'"
    return f"{column} IN ({', '.join(repr(st) for st in states)})"


URGENCIES = ("routine", "urgent")
SUPERVISION_KINDS = ("instant", "written", "onsite", "escalated")  # 即时/书面/现场/提级督办
ATTACHMENT_KINDS = ("photo", "snapshot", "document")
LOOKBACK_REASONS = ("unresolved", "unsatisfied")
# Who is acting in a step.
MATTER_ACTIONS = (
    "report", "triage", "transfer", "accept", "return", "escalate", "handle", "verify",
    "reject", "close", "rate", "reopen", "supervise", "attach", "merge", "comment",
    "relocate", "lookback",
)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


class MatterCategory(Base):
    """One node of the configurable category tree (ten sector areas + urban events)."""

    __tablename__ = "matter_categories"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    parent_code: Mapped[str | None] = mapped_column(
        ForeignKey("matter_categories.code"), index=True
    )
    name_zh: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(80))
    # Whether a town/street can normally solve it at once (else it goes up).
    town_solvable: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    sort: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        CheckConstraint("code ~ '^[A-Z][A-Z0-9]{0,3}(\\.[0-9A-Z]{1,4}){0,3}$'", name="code"),
    )


class MatterRoutingRule(Base):
    """Category (prefix) + area (code prefix) → responsible unit; most specific wins."""

    __tablename__ = "matter_routing_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_prefix: Mapped[str] = mapped_column(String(20), default="", server_default="")
    area_prefix: Mapped[str] = mapped_column(String(15), default="", server_default="")
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), index=True)
    # Urgent matters of this kind skip the unit and go to the district for triage.
    urgent_to_district: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default="true"
    )
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")

    __table_args__ = (
        CheckConstraint("area_prefix ~ '^([0-9]{6}([0-9]{3}){0,3})?$'", name="area_prefix"),
        UniqueConstraint("category_prefix", "area_prefix", name="uq_matter_routing_rules_key"),
    )


class Matter(Base):
    """A reported matter and where it stands in the five steps."""

    __tablename__ = "matters"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ref: Mapped[str] = mapped_column(String(20), unique=True)  # e.g. SX2026112600001
    source: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str | None] = mapped_column(String(64))  # e.g. the 12345 ticket id
    category_code: Mapped[str] = mapped_column(ForeignKey("matter_categories.code"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    address: Mapped[str] = mapped_column(String(200), default="", server_default="")
    geom = mapped_column(point(), nullable=False)
    # Derived by trigger from geom (and re-derived when grids change).
    grid_code: Mapped[str | None] = mapped_column(String(15))
    urgency: Mapped[str] = mapped_column(String(8), default="routine", server_default="routine")
    state: Mapped[str] = mapped_column(String(12), default="reported", server_default="reported")
    # The unit whose move it is (the district center while awaiting triage).
    current_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    # The unit responsible for solving it (set by routing or transfer).
    handling_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    # Personal data: shown only to the handling unit(s) and the district center.
    reporter_name: Mapped[str] = mapped_column(String(40), default="", server_default="")
    reporter_phone: Mapped[str] = mapped_column(String(20), default="", server_default="")
    reporter_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    reported_by_user: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    reported_by_worker: Mapped[int | None] = mapped_column(
        ForeignKey("grid_workers.id", ondelete="SET NULL"), index=True
    )
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("matters.id"))
    reported_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # The 1-2-3 clocks: accept within 1 day, finish within 2, report back within 3,
    # counted from the (latest) transfer; restarted on redo.
    clock_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accept_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finish_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    feedback_due: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    redo_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalated: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (
        CheckConstraint(f"source IN {_in(MATTER_SOURCES)}", name="source"),
        CheckConstraint(f"state IN {_in(MATTER_STATES)}", name="state"),
        CheckConstraint(f"urgency IN {_in(URGENCIES)}", name="urgency"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating"),
        CheckConstraint("redo_count >= 0", name="redo_count"),
        # One matter per original ticket of a source (e.g. a 12345 ticket id).
        Index("uq_matters_source_ref", "source", "source_ref", unique=True,
              postgresql_where=text("source_ref IS NOT NULL")),
        code_pattern_index("matters", "grid_code"),
        # The overdue scan reads only open matters, by their next deadline.
        *(Index(f"ix_matters_open_{clock}_due", f"{clock}_due",
                postgresql_where=text(clock_running_sql(clock)))
          for clock in CLOCK_STATES),
        Index("ix_matters_reported_at", "reported_at"),
        Index("ix_matters_category_reported", "category_code", "reported_at"),
    )


class MatterEvent(Base):
    """One step of a matter's history: who, which unit, when, what, with a note."""

    __tablename__ = "matter_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    matter_id: Mapped[int] = mapped_column(ForeignKey("matters.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    action: Mapped[str] = mapped_column(String(12))
    from_state: Mapped[str | None] = mapped_column(String(12))
    to_state: Mapped[str | None] = mapped_column(String(12))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    username: Mapped[str | None] = mapped_column(String(40))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    # For transfers, escalations and reopenings: the unit the matter went to.
    to_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    detail: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")

    __table_args__ = (
        CheckConstraint(f"action IN {_in(MATTER_ACTIONS)}", name="action"),
        Index("ix_matter_events_matter_at", "matter_id", "at"),
        Index("ix_matter_events_unit_at", "unit_id", "at"),
    )


class MatterAttachment(Base):
    """A photo, video snapshot or document attached to a matter (bytes kept in the DB).

    Kept in PostgreSQL rather than under var/ so an attachment and the step it
    belongs to commit or roll back together; they are capped in size.
    """

    __tablename__ = "matter_attachments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    matter_id: Mapped[int] = mapped_column(
        ForeignKey("matters.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[int | None] = mapped_column(ForeignKey("matter_events.id"))
    kind: Mapped[str] = mapped_column(String(10))
    filename: Mapped[str] = mapped_column(String(120), default="", server_default="")
    content_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (
        CheckConstraint(f"kind IN {_in(ATTACHMENT_KINDS)}", name="kind"),
        CheckConstraint("size > 0", name="size"),
    )


class MatterSupervision(Base):
    """A supervision action (督办) on a matter: instant, written, on-site or escalated."""

    __tablename__ = "matter_supervisions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    matter_id: Mapped[int] = mapped_column(
        ForeignKey("matters.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    by_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    to_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    respond_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint(f"kind IN {_in(SUPERVISION_KINDS)}", name="kind"),)


class MatterLookback(Base):
    """A matter listed again in a month's look-back (回头看) until it is closed."""

    __tablename__ = "matter_lookbacks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date)  # the first day of the look-back month
    matter_id: Mapped[int] = mapped_column(
        ForeignKey("matters.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(12))
    listed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    assigned_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    struck_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"reason IN {_in(LOOKBACK_REASONS)}", name="reason"),
        UniqueConstraint("month", "matter_id", name="uq_matter_lookbacks_month_matter"),
    )


class Holiday(Base):
    """A calendar exception for work-day deadlines: a holiday, or a make-up workday (调休)."""

    __tablename__ = "work_calendar"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(40), default="", server_default="")


class GridPatrol(Base):
    """A grid worker's patrol of a grid on one day (巡查记录)."""

    __tablename__ = "grid_patrols"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("grid_workers.id", ondelete="CASCADE"))
    grid_code: Mapped[str] = mapped_column(String(15))
    day: Mapped[date] = mapped_column(Date)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    distance_m: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    places_visited: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    matters_reported: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    note: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (
        CheckConstraint("ended_at >= started_at", name="ended_after_started"),
        CheckConstraint("distance_m >= 0", name="distance"),
        Index("ix_grid_patrols_grid_day", "grid_code", "day"),
        Index("ix_grid_patrols_worker_day", "worker_id", "day"),
        code_pattern_index("grid_patrols", "grid_code"),
    )


class ApiClient(Base):
    """An outside system (hotline, citizen app) that files matters through Open311.

    Open311 GeoReport v2 passes ``api_key`` with each POST; only its sha256 is
    stored, and the key is shown once when the client is created.
    """

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    source: Mapped[str] = mapped_column(String(16), default="open311", server_default="open311")
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    # The unit the client's matters are reported on behalf of (for the history).
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint(f"source IN {_in(MATTER_SOURCES)}", name="source"),
        CheckConstraint("octet_length(key_hash) = 32", name="key_hash_sha256"),
    )
