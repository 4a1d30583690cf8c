"""Units, users, dispatch orders, video patrol and the audit log: the three-tier model.

The district runs three tiers of command: the district center (tier 1); towns/streets
and departments (tier 2); villages/communities (tier 3). A town or community sees
its code prefix; a department sees the cameras it owns (``cameras.department``);
every unit also sees the cameras of open, unexpired dispatch orders addressed to it.
``scope_for`` turns a unit into the :class:`video.registry.Scope` that every camera
query applies, so the rules live in one SQL fragment.

Nothing here imports Flask; callers own the transaction (functions add and flush).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from gridmap import db, notify
from gridmap.errors import Conflict, Forbidden, GridmapError, InvalidInput, NotFound
from gridmap.models import Base
from gridmap.validation import mask_url_userinfo
from video.models import Camera
from video.registry import NO_AREA, Scope, open_target_sql

UNIT_KINDS = ("district", "town", "department", "community")
TIER_OF_KIND = {"district": 1, "town": 2, "department": 2, "community": 3}
CODE_LENGTH_OF_KIND = {"district": 6, "town": 9, "community": 12}
ROLES = ("operator", "grid_admin", "patrol_lead", "viewer")
ORDER_KINDS = ("dispatch", "escalation")
ORDER_STATES = ("open", "closed", "cancelled")
TARGET_STATES = ("pending", "acknowledged", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
EVENT_ACTIONS = ("created", "acknowledged", "viewed", "closed", "cancelled")
FINDING_SEVERITIES = ("info", "issue", "urgent")

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,39}$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128
# Wrong passwords for one name from one address before that address is locked out
# of the name for LOCKOUT_DURATION (also how long a failure is remembered).
LOCKOUT_THRESHOLD = 5
LOCKOUT_DURATION = timedelta(minutes=15)
# Wrong passwords for one name from all addresses together (remembered until a day
# passes without one) before addresses that never signed in to it wait a delay that
# doubles with each further failure, up to LOCKOUT_DURATION: guessing spread over
# many addresses. Addresses that signed in to the account are not delayed.
ACCOUNT_FAILURE_CEILING = 20
ACCOUNT_FAILURE_MEMORY = timedelta(hours=24)


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


# --------------------------------------------------------------------------- models


class Unit(Base):
    """A command unit: the district center, a town/street, a department or a community."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    kind: Mapped[str] = mapped_column(String(12))
    tier: Mapped[int] = mapped_column(SmallInteger)
    # Area units: the jurisdiction as an area code (a prefix of grid codes).
    code: Mapped[str | None] = mapped_column(String(15), unique=True)
    # Departments: the owner name their cameras carry in cameras.department.
    department: Mapped[str | None] = mapped_column(String(60), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint(f"kind IN {_in(UNIT_KINDS)}", name="kind"),
        CheckConstraint(
            "(kind = 'district' AND tier = 1) OR (kind IN ('town', 'department') AND tier = 2)"
            " OR (kind = 'community' AND tier = 3)",
            name="tier_matches_kind",
        ),
        CheckConstraint(
            "(kind = 'department' AND code IS NULL AND department IS NOT NULL)"
            " OR (kind = 'district' AND code ~ '^[0-9]{6}$' AND department IS NULL)"
            " OR (kind = 'town' AND code ~ '^[0-9]{9}$' AND department IS NULL)"
            " OR (kind = 'community' AND code ~ '^[0-9]{12}$' AND department IS NULL)",
            name="jurisdiction",
        ),
    )


class User(Base):
    """A person who signs in; belongs to one unit and has one role."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(60), default="", server_default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(12))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Part of the session cookie's user id: rotating it (password change, lockout)
    # invalidates every signed-in session of the user at once.
    session_token: Mapped[str] = mapped_column(String(43))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    password_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        CheckConstraint(f"role IN {_in(ROLES)}", name="role"),
        CheckConstraint("username ~ '^[a-z0-9][a-z0-9._-]{2,39}$'", name="username"),
        CheckConstraint("failed_attempts >= 0", name="failed_attempts"),
    )


class SignInSession(Base):
    """One signed-in browser or phone: signing out deletes it, so its cookie stops working.

    The cookie carries the row's id and a random secret; only the secret's SHA-256
    is stored, so a copy of this table opens no session.
    """

    __tablename__ = "sign_in_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Stamped when the app refreshes the cookie, at most once a minute of use.
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class SignInCounter(Base):
    """Failed sign-ins under one username from one address (or, address '*', from all).

    Kept for every name tried, whether or not it is an account, so an unknown name
    answers exactly like a known one. Only an HMAC of the name is stored (keyed with
    the app's secret): a password typed into the username field is not kept readable.
    A row whose address signed in successfully marks that address as the account's
    own, which the account-wide throttle leaves alone (see ``authenticate``).
    """

    __tablename__ = "sign_in_counters"

    name_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The client address (an IPv6 client's /64), or '*' for the name's count over all.
    address: Mapped[str] = mapped_column(String(45), primary_key=True)
    # Set when the name is an account: `users passwd` clears the account's counters.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    succeeded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the row says nothing any more and may be dropped.
    forget_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

    __table_args__ = (CheckConstraint("failures >= 0", name="failures"),)


class DispatchOrder(Base):
    """Cameras sent down the tiers (dispatch) or up them (escalation)."""

    __tablename__ = "dispatch_orders"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(12))
    from_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    priority: Mapped[str] = mapped_column(String(8), default="normal", server_default="normal")
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
    incident_ref: Mapped[str | None] = mapped_column(String(64))
    # How the cameras were chosen (area, grid, bbox, point and radius or IDs), kept
    # for the record; the cameras themselves are in dispatch_cameras.
    selection: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")
    state: Mapped[str] = mapped_column(String(10), default="open", server_default="open")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"kind IN {_in(ORDER_KINDS)}", name="kind"),
        CheckConstraint(f"state IN {_in(ORDER_STATES)}", name="state"),
        CheckConstraint(f"priority IN {_in(PRIORITIES)}", name="priority"),
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
        Index("ix_dispatch_orders_state_expires", "state", "expires_at"),
    )


class DispatchTarget(Base):
    """One addressee of an order, with its own acknowledgement and closing feedback."""

    __tablename__ = "dispatch_targets"

    order_id: Mapped[int] = mapped_column(
        ForeignKey("dispatch_orders.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(12), default="pending", server_default="pending")
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    feedback: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(f"state IN {_in(TARGET_STATES)}", name="state"),
        # The scope fragment looks up "orders addressed to my unit" on every query.
        Index("ix_dispatch_targets_unit_state", "unit_id", "state"),
    )


class DispatchCamera(Base):
    """A camera of an order."""

    __tablename__ = "dispatch_cameras"

    order_id: Mapped[int] = mapped_column(
        ForeignKey("dispatch_orders.id", ondelete="CASCADE"), primary_key=True
    )
    camera_id: Mapped[int] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class DispatchEvent(Base):
    """One timestamped step of an order's timeline."""

    __tablename__ = "dispatch_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("dispatch_orders.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    action: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    detail: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")

    __table_args__ = (
        CheckConstraint(f"action IN {_in(EVENT_ACTIONS)}", name="action"),
        Index("ix_dispatch_events_order_at", "order_id", "at"),
        Index("ix_dispatch_events_at", "at"),
    )


class PatrolTour(Base):
    """A named group of cameras that cycles on the video wall (视频巡查)."""

    __tablename__ = "patrol_tours"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    dwell_s: Mapped[int] = mapped_column(Integer, default=20, server_default="20")
    layout: Mapped[int] = mapped_column(SmallInteger, default=4, server_default="4")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        UniqueConstraint("unit_id", "name", name="uq_patrol_tours_unit_name"),
        CheckConstraint("dwell_s BETWEEN 5 AND 600", name="dwell"),
        CheckConstraint("layout IN (1, 4, 9, 16)", name="layout"),
    )


class PatrolTourCamera(Base):
    """A camera of a tour, in playing order."""

    __tablename__ = "patrol_tour_cameras"

    tour_id: Mapped[int] = mapped_column(
        ForeignKey("patrol_tours.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    camera_id: Mapped[int] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), index=True
    )


class PatrolFinding(Base):
    """Something a video patrol saw, recorded against a grid."""

    __tablename__ = "patrol_findings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The code, not a foreign key: grid edits retire and re-create grid rows, and
    # a finding must keep the code it was recorded against.
    grid_code: Mapped[str] = mapped_column(String(15))
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="SET NULL"))
    tour_id: Mapped[int | None] = mapped_column(
        ForeignKey("patrol_tours.id", ondelete="SET NULL")
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    severity: Mapped[str] = mapped_column(String(8), default="info", server_default="info")
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )

    __table_args__ = (
        CheckConstraint("grid_code ~ '^[0-9]{15}$'", name="grid_code_digits"),
        CheckConstraint(f"severity IN {_in(FINDING_SEVERITIES)}", name="severity"),
        Index(
            "ix_patrol_findings_grid_code_prefix",
            "grid_code",
            postgresql_ops={"grid_code": "text_pattern_ops"},
        ),
    )


class AuditEntry(Base):
    """Who did what, when and from where. Never a password, token or stream credential."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    username: Mapped[str | None] = mapped_column(String(40))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(80))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(200))
    method: Mapped[str | None] = mapped_column(String(8))
    path: Mapped[str | None] = mapped_column(String(300))
    status: Mapped[int | None] = mapped_column(SmallInteger)
    detail: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")

    __table_args__ = (
        Index("ix_audit_log_action_at", "action", "at"),
        Index("ix_audit_log_user_at", "user_id", "at"),
        Index("ix_audit_log_target_at", "target", "at"),
    )


# A department's scope filters cameras by owner name; declared here (the scope's
# home) rather than in video.models so the camera model stays the registry's.
Index("ix_cameras_department", Camera.department)


# --------------------------------------------------------------------------- errors


class SignInFailed(GridmapError):
    """Unknown user or wrong password (deliberately not saying which)."""


class AccountLocked(GridmapError):
    """Too many failed sign-ins for the name: from this address, or from everywhere."""


class AccountDisabled(Forbidden):
    """The account is deactivated, or is a demo account outside demo mode."""


# --------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Actor:
    """The signed-in caller as the domain sees it: user, role, unit and origin."""

    user_id: int | None
    username: str
    role: str
    unit_id: int
    unit_name: str
    unit_kind: str
    tier: int
    unit_code: str | None = None
    department: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    # Whether the unit had open dispatched cameras when the actor was loaded (None:
    # not known, so each query looks); see video.registry.Scope.has_dispatched.
    has_dispatched: bool | None = None

    @property
    def scope(self) -> Scope:
        """Return the camera visibility of this caller's unit."""
        scope = scope_for(self.unit_kind, self.unit_code, self.department, self.unit_id)
        if scope.unrestricted or self.has_dispatched is None:
            return scope
        return replace(scope, has_dispatched=self.has_dispatched)

    @property
    def area_prefix(self) -> str:
        """Return the area prefix ('' for the district, NO_AREA for departments)."""
        return self.scope.prefix


def scope_for(kind: str, code: str | None, department: str | None, unit_id: int) -> Scope:
    """Return the Scope of a unit: district all, area units a prefix, departments owner."""
    if kind == "district":
        return Scope()
    if kind == "department":
        return Scope(prefix=NO_AREA, department=department, unit_id=unit_id)
    return Scope(prefix=code or NO_AREA, unit_id=unit_id)


def actor_for(session: Session, user: User, ip: str | None = None,
              user_agent: str | None = None) -> Actor:
    """Return the Actor of a user (one query for the unit)."""
    unit = session.get(Unit, user.unit_id)
    if unit is None:  # the FK makes this impossible; keep the type checker honest
        raise NotFound("the user's unit is gone")
    return Actor(
        user_id=user.id, username=user.username, role=user.role, unit_id=unit.id,
        unit_name=unit.name, unit_kind=unit.kind, tier=unit.tier, unit_code=unit.code,
        department=unit.department, ip=ip, user_agent=(user_agent or "")[:200] or None,
    )


def system_actor(unit: Unit, username: str = "system") -> Actor:
    """Return an Actor for CLI and benchmark work done on behalf of a unit."""
    return Actor(user_id=None, username=username, role="operator", unit_id=unit.id,
                 unit_name=unit.name, unit_kind=unit.kind, tier=unit.tier,
                 unit_code=unit.code, department=unit.department)


# --------------------------------------------------------------------------- passwords


def check_password_policy(password: str, username: str = "") -> None:
    """Raise InvalidInput unless the password is long and varied enough."""
    if not isinstance(password, str):
        raise InvalidInput("password must be text")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"a password has {MIN_PASSWORD_LENGTH}–{MAX_PASSWORD_LENGTH} characters"
        )
    classes = sum(
        (
            any(c.isalpha() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 2:
        raise InvalidInput("a password mixes at least two of letters, digits and symbols")
    if username and password.lower() == username.lower():
        raise InvalidInput("the password must differ from the username")


def hash_password(password: str) -> str:
    """Return a salted scrypt hash (werkzeug's default method)."""
    return generate_password_hash(password, method="scrypt")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Checking a password against this for unknown usernames makes a wrong name
    # take as long as a wrong password, so timing does not reveal which names exist.
    return hash_password(secrets.token_urlsafe(16))


def new_session_token() -> str:
    """Return a fresh random session token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- units and users


def check_username(username: str) -> str:
    """Return the normalised username or raise InvalidInput."""
    name = (username or "").strip().lower()
    if not USERNAME_RE.match(name):
        raise InvalidInput(
            "a username has 3–40 characters: lowercase letters, digits, '.', '_' or '-'"
        )
    return name


def create_unit(
    session: Session,
    name: str,
    kind: str,
    *,
    code: str | None = None,
    department: str | None = None,
    parent: Unit | None = None,
) -> Unit:
    """Add a unit after checking its kind, code and parent; returns it flushed."""
    if kind not in UNIT_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(UNIT_KINDS)}")
    name = (name or "").strip()
    if not name or len(name) > 60:
        raise InvalidInput("a unit name has 1–60 characters")
    if kind == "department":
        department = (department or name).strip()
        if code:
            raise InvalidInput("a department has no area code; it owns cameras by name")
        if len(department) > 60:
            raise InvalidInput("a department name has at most 60 characters")
    else:
        department = None
        length = CODE_LENGTH_OF_KIND[kind]
        if not (code and code.isascii() and code.isdigit() and len(code) == length):
            raise InvalidInput(f"a {kind} unit needs a {length}-digit area code")
    if parent is not None:
        if parent.tier >= TIER_OF_KIND[kind]:
            raise InvalidInput("a unit's parent must be a higher tier")
        if kind == "community" and parent.kind == "town" and not code.startswith(parent.code):
            raise InvalidInput("a community's parent town must contain its code")
    if session.scalar(select(Unit.id).where(Unit.name == name)) is not None:
        raise Conflict("a unit with this name exists", name=name)
    unit = Unit(name=name, kind=kind, tier=TIER_OF_KIND[kind], code=code,
                department=department, parent_id=parent.id if parent else None)
    session.add(unit)
    session.flush()
    return unit


def unit_by_ref(session: Session, ref: str | int) -> Unit:
    """Return a unit by id, area code or name, else NotFound."""
    ref_text = str(ref).strip()
    stmt = select(Unit).where(
        (Unit.name == ref_text) | (Unit.code == ref_text)
        | (Unit.id == (int(ref_text) if ref_text.isdigit() and len(ref_text) < 9 else -1))
    )
    unit = session.scalars(stmt.order_by(Unit.id)).first()
    if unit is None:
        raise NotFound("no such unit", unit=ref_text)
    return unit


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    unit: Unit,
    *,
    display_name: str = "",
    is_demo: bool = False,
    password_hash: str | None = None,
) -> User:
    """Add a user with a hashed password; returns it flushed."""
    name = check_username(username)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    if password_hash is None:
        check_password_policy(password, name)
        password_hash = hash_password(password)
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict("a user with this name exists", username=name)
    user = User(username=name, display_name=display_name[:60], password_hash=password_hash,
                role=role, unit_id=unit.id, is_demo=is_demo,
                session_token=new_session_token())
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Change a password, unlock the account and end its other sessions."""
    check_password_policy(password, user.username)
    user.password_hash = hash_password(password)
    user.password_changed_at = datetime.now(UTC)
    user.failed_attempts = 0
    user.locked_until = None
    # Locked in the order sign-ins lock them (an address, then '*'): no deadlock.
    session.execute(select(SignInCounter.address).where(SignInCounter.user_id == user.id)
                    .order_by(SignInCounter.address == EVERY_ADDRESS).with_for_update())
    session.execute(delete(SignInCounter).where(SignInCounter.user_id == user.id))
    end_sign_in_sessions(session, user)


# A session ends this long after its sign-in however active it stays (the cookie's
# own 12-hour lifetime slides with use); older rows are dropped at the next sign-in.
SIGN_IN_LIFETIME = timedelta(days=30)


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def open_sign_in_session(session: Session, user: User, *, ip: str | None = None,
                         user_agent: str | None = None) -> str:
    """Record a new sign-in of the user; return the id its cookie carries.

    The id is ``<user id>:<user token>:<session id>:<secret>``: the user token ends
    every session of the user at once (password change, lockout), the row ends this
    one (sign-out).
    """
    session.execute(delete(SignInSession).where(
        SignInSession.user_id == user.id, ~_within_lifetime()))
    secret = secrets.token_urlsafe(32)
    row = SignInSession(user_id=user.id, secret_hash=_secret_hash(secret), ip=ip,
                        user_agent=(user_agent or "")[:200] or None)
    session.add(row)
    session.flush()
    return f"{user.id}:{user.session_token}:{row.id}:{secret}"


def _within_lifetime():
    return SignInSession.created_at > func.now() - SIGN_IN_LIFETIME


def sign_in_sessions_of(session: Session, user_id: int,
                        idle: timedelta | None = None) -> Sequence[SignInSession]:
    """Return the user's sign-in sessions that may still be in use, last used first.

    ``idle`` is how long an unused cookie stays valid: sessions unused for longer
    cannot be used any more and are left out.
    """
    query = select(SignInSession).where(SignInSession.user_id == user_id, _within_lifetime())
    if idle is not None:
        query = query.where(SignInSession.last_seen_at > func.now() - idle)
    return session.scalars(query.order_by(SignInSession.last_seen_at.desc(),
                                          SignInSession.id.desc())).all()


def touch_sign_in_session(session: Session, user_id: int, session_id: int) -> None:
    """Record that one of the user's sign-in sessions is in use now."""
    session.execute(
        update(SignInSession).where(SignInSession.id == session_id,
                                    SignInSession.user_id == user_id)
        .values(last_seen_at=func.now()),
        execution_options=notify.UNANNOUNCED)  # the sign-in check reads nothing of it


def end_sign_in_session(session: Session, user_id: int, session_id: int) -> bool:
    """End one signed-in session (sign-out); return whether it was still open."""
    ended = session.execute(delete(SignInSession).where(
        SignInSession.id == session_id, SignInSession.user_id == user_id))
    return ended.rowcount > 0


def end_sign_in_sessions(session: Session, user: User) -> int:
    """End every session of the user (a lost phone, a new password); return how many were open."""
    user.session_token = new_session_token()
    ended = session.execute(delete(SignInSession).where(SignInSession.user_id == user.id))
    session.flush()
    return ended.rowcount


def parse_cookie_id(cookie_id: str) -> tuple[int, str, int, str] | None:
    """Split a session cookie's id into (user id, user token, session id, secret), or None."""
    parts = cookie_id.split(":")
    if len(parts) != 4:
        return None  # also a cookie from before per-session sign-out: sign in again
    user_id, token, session_id, secret = parts
    if not (user_id.isdigit() and session_id.isdigit() and token and secret):
        return None
    if len(user_id) > 10 or len(session_id) > 18:
        return None  # beyond the columns' range: names no row
    return int(user_id), token, int(session_id), secret


# Runs on every signed-in request, so it is kept cheap to plan: has_dispatched asks
# whether an open order still addresses the unit, without joining its cameras (an
# order always has some). The flag only decides whether the scope's dispatch
# branch is written into the unit's queries; that branch checks everything itself.
SESSION_ACTOR = text(f"""
SELECT u.id, u.username, u.role, u.active, u.is_demo, u.session_token,
       (SELECT s.secret_hash FROM sign_in_sessions s
        WHERE s.id = :session_id AND s.user_id = u.id
          AND s.created_at > now() - interval '{SIGN_IN_LIFETIME.days} days') AS secret_hash,
       un.id AS unit_id, un.name AS unit_name, un.kind, un.tier, un.code, un.department,
       EXISTS (SELECT 1 FROM dispatch_targets dt JOIN dispatch_orders o ON o.id = dt.order_id
               WHERE {open_target_sql("un.id")}) AS has_dispatched
FROM users u JOIN units un ON un.id = u.unit_id
WHERE u.id = :id
""")
_SESSION_ACTOR_SQL = db.driver_sql(SESSION_ACTOR)


def load_session_actor(session: Session, cookie_id: str, *,
                       demo_allowed: bool) -> Actor | None:
    """Return the Actor of a session cookie id (see open_sign_in_session) that is still valid.

    One query: the user, the sign-in session, the unit and whether anything is
    dispatched to the unit (so scoped queries without orders carry no dispatch
    branch). It runs through the driver: SQLAlchemy's layers cost a fifth of a
    signed-in request.
    """
    parsed = parse_cookie_id(cookie_id)
    if parsed is None:
        return None
    user_id, token, session_id, secret = parsed
    names, rows = db.driver_rows(session, _SESSION_ACTOR_SQL,
                                 {"id": user_id, "session_id": session_id})
    if not rows:
        return None
    row = dict(zip(names, rows[0], strict=True))
    if not row["active"]:
        return None
    if not secrets.compare_digest(row["session_token"], token):
        return None
    if row["secret_hash"] is None or not secrets.compare_digest(row["secret_hash"],
                                                                _secret_hash(secret)):
        return None
    if row["is_demo"] and not demo_allowed:
        return None
    return Actor(
        user_id=row["id"], username=row["username"], role=row["role"],
        unit_id=row["unit_id"], unit_name=row["unit_name"], unit_kind=row["kind"],
        tier=row["tier"], unit_code=row["code"], department=row["department"],
        has_dispatched=bool(row["has_dispatched"]),
    )


class ActorCache:
    """Valid sessions' Actors while no table behind them has changed.

    Asking the database on every request cost a signed-in request about 0.9 ms, as
    much as the patrol leads' whole nearby query. An entry is good only under the
    change generation it was read in (``gridmap.notify``: any committed write to
    users, sign-in sessions, units or dispatch orders starts a new one) and for at
    most ``ttl_s``.
    A stale ``has_dispatched`` of True is harmless (the dispatch branch checks
    expiry itself); a new order bumps the generation.
    """

    def __init__(self, generation: Callable[[], int | None], *, ttl_s: float,
                 max_entries: int = 10_000) -> None:
        self._generation = generation
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], tuple[int, float, Actor]] = {}

    def generation(self) -> int | None:
        """Return the generation to read under (None: do not cache now)."""
        return self._generation()

    def get(self, key: tuple[Any, ...]) -> Actor | None:
        """Return the cached Actor for the key if it is still good."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        generation, expires, loaded = entry
        if generation != self._generation() or time.monotonic() >= expires:
            self._entries.pop(key, None)
            return None
        return loaded

    def get_or_load(self, key: tuple[Any, ...],
                    load: Callable[[], Actor | None]) -> Actor | None:
        """Return the cached Actor, or load it (None: no valid session) and remember it."""
        cached = self.get(key)
        if cached is not None:
            return cached
        generation = self.generation()  # before reading: a change meanwhile voids it
        loaded = load()
        if loaded is not None and generation is not None:
            self.put(key, loaded, generation)
        return loaded

    def put(self, key: tuple[Any, ...], loaded: Actor, generation: int) -> None:
        """Remember what was read under ``generation``, unless that is already over."""
        if generation != self._generation():
            return  # a change landed while it was read: it may be stale already
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare (10,000 live sessions); simpler than LRU
        self._entries[key] = (generation, time.monotonic() + self.ttl_s, loaded)


@dataclass(frozen=True)
class LockoutPolicy:
    """How failed sign-ins slow guessing down (see ``authenticate``)."""

    threshold: int = LOCKOUT_THRESHOLD
    lock_for: timedelta = LOCKOUT_DURATION
    account_ceiling: int = ACCOUNT_FAILURE_CEILING
    account_memory: timedelta = ACCOUNT_FAILURE_MEMORY


ADDRESS_LOCKED = "too many failed sign-ins from this address; try again later"
NAME_THROTTLED = "too many failed sign-ins for this account; try again later"
# The counters' row of a name over all addresses.
EVERY_ADDRESS = "*"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def sign_in_name_key(name: str, secret: str | bytes) -> str:
    """Return what a (normalised) sign-in name is counted under: its HMAC-SHA256, in hex."""
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    return hmac.new(key, name.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def sign_in_address(ip: str | None) -> str:
    """Return the address a client's failures are counted under.

    IPv4 as it is; IPv6 by its /64, which one client usually holds whole (counting
    single addresses would give it 2**64 fresh tries); anything else as '-'.
    """
    try:
        parsed = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return "-"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed.packed, 64), strict=False))
    return str(parsed)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def _counter(session: Session, name_key: str, address: str, now: datetime) -> SignInCounter:
    """Return the counters' row, created if missing and locked until the transaction ends."""
    session.execute(
        pg_insert(SignInCounter)
        .values(name_key=name_key, address=address, failures=0, forget_after=now)
        .on_conflict_do_nothing())
    return session.scalars(
        select(SignInCounter)
        .where(SignInCounter.name_key == name_key, SignInCounter.address == address)
        .with_for_update().execution_options(populate_existing=True)).one()


def _refuse_if_locked(here: SignInCounter, everywhere: SignInCounter | None,
                      own_address: bool, now: datetime) -> None:
    """Raise AccountLocked while this address is locked out of the name, or (unless it is
    the account's own address) while the name is throttled everywhere."""
    if here.locked_until is not None and here.locked_until > now:
        raise AccountLocked(ADDRESS_LOCKED, scope="address",
                            retry_after_s=_seconds_until(here.locked_until, now))
    if (not own_address and everywhere is not None
            and everywhere.locked_until is not None and everywhere.locked_until > now):
        raise AccountLocked(NAME_THROTTLED, scope="account",
                            retry_after_s=_seconds_until(everywhere.locked_until, now))


def _forget_stale_counters(session: Session, now: datetime, batch: int = 100) -> None:
    """Drop rows that say nothing any more (skipping any another sign-in holds)."""
    stale = (select(SignInCounter.name_key, SignInCounter.address)
             .where(SignInCounter.forget_after < now).limit(batch)
             .with_for_update(skip_locked=True))
    session.execute(
        delete(SignInCounter)
        .where(tuple_(SignInCounter.name_key, SignInCounter.address).in_(stale))
        .execution_options(synchronize_session=False))


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    demo_allowed: bool,
    name_secret: str | bytes,
    ip: str | None = None,
    now: datetime | None = None,
    policy: LockoutPolicy = LockoutPolicy(),
) -> User:
    """Check a sign-in from the client address ``ip``; count failures per name and address.

    A name is whatever was typed, normalised, whether or not it is an account, so an
    unknown name answers exactly as a known one: the same 401s, the same 429s with
    the same Retry-After, after the same work (a password hash is checked either way).

    - ``policy.threshold`` wrong passwords for a name from one address (each
      remembered for ``policy.lock_for``) lock that address out of the name for
      ``policy.lock_for``; other addresses, the account's operator among them, are
      not affected. Signing in from an address clears its count.
    - Past ``policy.account_ceiling`` wrong passwords from all addresses together
      (forgotten after ``policy.account_memory`` without one), every further one
      makes addresses that have not signed in to the account within
      SIGN_IN_LIFETIME wait 2, 4, 8 … seconds, at most ``policy.lock_for``.

    Raises SignInFailed (unknown user or wrong password), AccountLocked (with
    ``retry_after_s`` and ``scope``: 'address' or 'account') or AccountDisabled.
    The counters are flushed either way: the caller must commit even when this raises.
    """
    now = now or _utcnow()
    name = (username if isinstance(username, str) else "").strip().lower()
    password = password if isinstance(password, str) else ""
    name_key = sign_in_name_key(name, name_secret)
    _forget_stale_counters(session, now)  # first: it may drop this name's own stale rows
    here = _counter(session, name_key, sign_in_address(ip), now)
    everywhere = session.scalars(
        select(SignInCounter)
        .where(SignInCounter.name_key == name_key, SignInCounter.address == EVERY_ADDRESS)
        .execution_options(populate_existing=True)).first()
    # An address that signed in to the account lately is its operator's own.
    own_address = here.succeeded_at is not None and here.succeeded_at > now - SIGN_IN_LIFETIME
    _refuse_if_locked(here, everywhere, own_address, now)

    user = (session.scalars(select(User).where(User.username == name)).first()
            if USERNAME_RE.match(name) else None)
    if user is None:
        check_password_hash(_dummy_hash(), password)
    elif check_password_hash(user.password_hash, password):
        if not user.active:
            raise AccountDisabled("this account is deactivated")
        if user.is_demo and not demo_allowed:
            raise AccountDisabled("demo accounts can sign in only when DEPLOYMENT is 'demo'")
        here.user_id = user.id
        here.failures = 0
        here.last_failed_at = here.locked_until = None
        here.succeeded_at = now
        here.forget_after = now + SIGN_IN_LIFETIME
        user.last_login_at = now
        session.flush()
        return user

    # A wrong password (or no such account: the same from here on).
    user_id = user.id if user is not None else None
    if here.last_failed_at is None or here.last_failed_at <= now - policy.lock_for:
        here.failures = 0
    here.failures += 1
    here.last_failed_at = now
    here.user_id = user_id
    if here.failures >= policy.threshold:
        here.failures = 0
        here.locked_until = now + policy.lock_for
    here.forget_after = max(
        now + policy.lock_for, here.locked_until or now,
        here.succeeded_at + SIGN_IN_LIFETIME if here.succeeded_at else now)

    everywhere = _counter(session, name_key, EVERY_ADDRESS, now)
    if (everywhere.last_failed_at is None
            or everywhere.last_failed_at <= now - policy.account_memory):
        everywhere.failures = 0
    everywhere.failures += 1
    everywhere.last_failed_at = now
    everywhere.user_id = user_id
    excess = everywhere.failures - policy.account_ceiling
    if excess > 0:
        delay = min(2.0 ** min(excess, 32), policy.lock_for.total_seconds())
        everywhere.locked_until = now + timedelta(seconds=delay)
    everywhere.forget_after = max(now + policy.account_memory, everywhere.locked_until or now)
    session.flush()

    _refuse_if_locked(here, everywhere, own_address, now)
    raise SignInFailed("wrong username or password")


def sign_in_lockouts(session: Session, now: datetime | None = None) -> dict[int, list[str]]:
    """Return, per account, the addresses locked out of it now ('*': all but its own)."""
    rows = session.execute(
        select(SignInCounter.user_id, SignInCounter.address)
        .where(SignInCounter.user_id.is_not(None),
               SignInCounter.locked_until > (now or _utcnow()))
        .order_by(SignInCounter.user_id, SignInCounter.address))
    locks: dict[int, list[str]] = {}
    for user_id, address in rows:
        locks.setdefault(user_id, []).append(address)
    return locks


# The user and the unit in one query, through the driver: /api/me answers every
# API client's start (it read both through the ORM in 2.4 ms more than a trivial
# answer).
USER_SUMMARY = text("""
SELECT u.id, u.username, u.display_name, u.role, u.active, u.is_demo,
       un.id AS unit_id, un.name AS unit_name, un.kind AS unit_kind, un.tier AS unit_tier,
       un.code AS unit_code, un.department AS unit_department, un.parent_id AS unit_parent_id
FROM users u LEFT JOIN units un ON un.id = u.unit_id
WHERE u.id = :id
""")
_USER_SUMMARY_SQL = db.driver_sql(USER_SUMMARY)
# No "locked": sign-in lockouts are per address and name (sign_in_counters), not a
# state of the account.
_USER_FIELDS = ("id", "username", "display_name", "role", "active", "is_demo")
_UNIT_FIELDS = ("id", "name", "kind", "tier", "code", "department", "parent_id")


def user_summary(reader: db.Reader, user_id: int) -> dict[str, Any]:
    """Return a user's public fields with its unit (never the hash or token); NotFound if none."""
    names, rows = db.driver_rows(reader, _USER_SUMMARY_SQL, {"id": user_id})
    if not rows:
        raise NotFound("no such user", user_id=user_id)
    row = dict(zip(names, rows[0], strict=True))
    unit = None
    if row["unit_id"] is not None:
        unit = {field: row[f"unit_{field}"] for field in _UNIT_FIELDS}
    return {**{field: row[field] for field in _USER_FIELDS}, "unit": unit}


def unit_summary(unit: Unit) -> dict[str, Any]:
    """Return a unit's public fields (those user_summary gives for the user's unit)."""
    return {field: getattr(unit, field) for field in _UNIT_FIELDS}


def list_units(session: Session) -> list[Unit]:
    """Return every unit, by tier and name."""
    return list(session.scalars(select(Unit).order_by(Unit.tier, Unit.code, Unit.name)))


def list_users(session: Session) -> list[User]:
    """Return every user, by unit and name."""
    return list(session.scalars(select(User).order_by(User.unit_id, User.username)))


# --------------------------------------------------------------------------- addressing


def can_address(sender: Unit | Actor, target: Unit, kind: str) -> bool:
    """Return whether ``sender`` may send an order of ``kind`` to ``target``.

    Dispatch goes down: the district to any tier-2/3 unit, a town to its own
    communities. Escalation goes up: to the district, or from a community to its
    own town. Nobody addresses itself or a deactivated unit.
    """
    s_kind = sender.unit_kind if isinstance(sender, Actor) else sender.kind
    s_code = sender.unit_code if isinstance(sender, Actor) else sender.code
    s_id = sender.unit_id if isinstance(sender, Actor) else sender.id
    if target.id == s_id or not target.active:
        return False
    if kind == "dispatch":
        if s_kind == "district":
            return target.tier > 1
        return (s_kind == "town" and target.kind == "community"
                and bool(target.code and s_code and target.code.startswith(s_code)))
    if kind == "escalation":
        if target.kind == "district":
            return s_kind != "district"
        return (s_kind == "community" and target.kind == "town"
                and bool(target.code and s_code and s_code.startswith(target.code)))
    return False


def addressable_units(session: Session, actor: Actor, kind: str) -> list[Unit]:
    """Return the units the actor's unit may address with an order of ``kind``."""
    return [u for u in list_units(session) if can_address(actor, u, kind)]


# --------------------------------------------------------------------------- audit

_SECRET_KEY_RE = re.compile(r"pass|secret|token|credential|authori[sz]ation|cookie|csrf|key$",
                            re.IGNORECASE)


def scrub(value: Any, depth: int = 0) -> Any:
    """Return ``value`` with secret-looking keys dropped and URL userinfo masked."""
    if depth > 4:
        return None
    if isinstance(value, Mapping):
        return {
            str(k)[:40]: scrub(v, depth + 1)
            for k, v in list(value.items())[:40]
            if not _SECRET_KEY_RE.search(str(k))
        }
    if isinstance(value, list | tuple | set):
        return [scrub(v, depth + 1) for v in list(value)[:50]]
    if isinstance(value, str):
        return mask_url_userinfo(value)[:300]
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)[:100]


def audit_history(session: Session, target: str, actions: Sequence[str],
                  limit: int = 20) -> list[dict[str, Any]]:
    """Return the latest successful audit entries of these actions on one target, newest first."""
    rows = session.execute(
        select(AuditEntry.at, AuditEntry.username, AuditEntry.action, AuditEntry.detail)
        .where(AuditEntry.target == target, AuditEntry.action.in_(actions),
               AuditEntry.status < 400)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    ).all()
    return [{"at": r.at, "username": r.username, "action": r.action, "detail": r.detail or {}}
            for r in rows]


def record_audit(
    session: Session,
    action: str,
    *,
    actor: Actor | None = None,
    username: str | None = None,
    unit_id: int | None = None,
    target: str | None = None,
    detail: Mapping[str, Any] | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    method: str | None = None,
    path: str | None = None,
    status: int | None = None,
) -> AuditEntry:
    """Add one audit entry (scrubbed of secrets); the caller commits."""
    entry = AuditEntry(
        action=action[:40],
        user_id=actor.user_id if actor else None,
        username=(actor.username if actor else username),
        unit_id=actor.unit_id if actor else unit_id,
        target=(target or None) and str(target)[:80],
        ip=(ip or (actor.ip if actor else None) or None),
        user_agent=((user_agent or (actor.user_agent if actor else None) or "")[:200] or None),
        method=method,
        path=(path or "")[:300] or None,
        status=status,
        detail=scrub(dict(detail or {})),
    )
    session.add(entry)
    return entry


def audit_entries(
    session: Session,
    *,
    action: str | None = None,
    username: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Return audit entries, newest first, filtered by action prefix, user and time."""
    where, params = ["TRUE"], {"limit": limit, "offset": offset}
    if action:
        where.append("a.action LIKE :action || '%'")
        params["action"] = action
    if username:
        where.append("a.username = :username")
        params["username"] = username
    if since is not None:
        where.append("a.at > :since")
        params["since"] = since
    cond = " AND ".join(where)
    total = session.execute(
        text(f"SELECT count(*) FROM audit_log a WHERE {cond}"), params
    ).scalar_one()
    rows = session.execute(
        text(
            "SELECT a.id, a.at, a.username, u.name AS unit, a.action, a.target, a.ip, "
            "a.user_agent, a.method, a.path, a.status, a.detail FROM audit_log a "
            f"LEFT JOIN units u ON u.id = a.unit_id WHERE {cond} "
            "ORDER BY a.at DESC, a.id DESC OFFSET :offset LIMIT :limit"
        ),
        params,
    ).mappings()
    return {"total": total, "items": [dict(r) for r in rows]}


# --------------------------------------------------------------------------- demo accounts

# Departments of the demo cameras (their cameras.department names), plus the
# emergency bureau and the departments that matters are routed to (market
# regulation, human resources, culture and tourism, transport, agriculture), which
# own no camera and see only what is dispatched or addressed to them.
DEMO_DEPARTMENTS = (
    "兖州区公安分局",
    "兖州区公安分局交警大队",
    "兖州区综合行政执法局",
    "济宁市生态环境局兖州区分局",
    "兖州区水务局",
    "兖州区住房和城乡建设局",
    "兖州区教育和体育局",
    "兖州区卫生健康局",
    "兖州区应急管理局",
    "兖州区市场监督管理局",
    "兖州区人力资源和社会保障局",
    "兖州区文化和旅游局",
    "兖州区交通运输局",
    "兖州区农业农村局",
)
DISTRICT_UNIT = "兖州区社会治理指挥中心"
DEMO_COMMUNITIES = ("370812001001", "370812001002", "370812100201")
DEMO_TOWN = "370812001"  # 鼓楼街道
DEMO_SECOND_TOWN = "370812100"  # 大安镇
DEMO_DEPARTMENT = "兖州区公安分局"
ROLE_SUFFIX = {"operator": "operator", "grid_admin": "gridadmin",
               "patrol_lead": "patrol", "viewer": "viewer"}


@dataclass(frozen=True)
class DemoUser:
    """A demo account: username, password (demo mode only), role and unit reference."""

    username: str
    password: str
    role: str
    unit: str  # a unit name or area code


def _demo_users() -> tuple[DemoUser, ...]:
    units = (
        ("district", DISTRICT_UNIT),
        ("gulou", DEMO_TOWN),
        ("police", DEMO_DEPARTMENT),
        ("community", DEMO_COMMUNITIES[0]),
    )
    users = [
        DemoUser(f"{prefix}-{ROLE_SUFFIX[role]}", f"Demo!{prefix}-{ROLE_SUFFIX[role]}", role, ref)
        for prefix, ref in units
        for role in ROLES
    ]
    users.append(DemoUser("daan-operator", "Demo!daan-operator", "operator", DEMO_SECOND_TOWN))
    users.append(DemoUser("water-operator", "Demo!water-operator", "operator", "兖州区水务局"))
    users.append(DemoUser("emergency-operator", "Demo!emergency-operator", "operator",
                          "兖州区应急管理局"))
    return tuple(users)


DEMO_USERS = _demo_users()


def ensure_demo_units(session: Session) -> dict[str, Unit]:
    """Create the demo units that are missing (idempotent); return them by name/code."""
    existing = {u.name: u for u in list_units(session)}
    by_ref: dict[str, Unit] = {}

    def ensure(name: str, kind: str, code: str | None = None, department: str | None = None,
               parent: Unit | None = None) -> Unit:
        unit = existing.get(name)
        if unit is None:
            unit = create_unit(session, name, kind, code=code, department=department,
                               parent=parent)
            existing[name] = unit
        by_ref[name] = unit
        if unit.code:
            by_ref[unit.code] = unit
        return unit

    district_code = session.execute(text("SELECT code FROM districts LIMIT 1")).scalar() or "370812"
    district = ensure(DISTRICT_UNIT, "district", code=district_code)
    towns = {
        code: ensure(name, "town", code=code, parent=district)
        for code, name in session.execute(text("SELECT code, name FROM towns ORDER BY code"))
    }
    for dept in DEMO_DEPARTMENTS:
        ensure(dept, "department", department=dept, parent=district)
    for code, name in session.execute(
        text("SELECT code, name FROM communities WHERE code = ANY(:codes) ORDER BY code"),
        {"codes": list(DEMO_COMMUNITIES)},
    ):
        town = towns.get(code[:9])
        # Community names repeat across towns; the code keeps the unit name unique.
        ensure(f"{name}（{code}）", "community", code=code, parent=town)
    return by_ref


def ensure_demo_accounts(session: Session) -> int:
    """Create the demo units and users that are missing; return how many users were added."""
    units = ensure_demo_units(session)
    added = 0
    for demo in DEMO_USERS:
        if session.scalar(select(User.id).where(User.username == demo.username)) is not None:
            continue
        unit = units.get(demo.unit)
        if unit is None:  # e.g. a reduced data set without that community
            continue
        create_user(session, demo.username, demo.password, demo.role, unit, is_demo=True,
                    display_name=demo.username)
        added += 1
    return added
