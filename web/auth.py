"""Sign-in, session cookies, CSRF, sign-in rate limits, the caller's scope and the audit trail.

One ``before_request`` guard runs for every route of every blueprint, so features
added later are covered without doing anything:

1. routes on the allow-list (sign-in pages, static files, vendor assets, favicon,
   ``/api/version``, ``/api/openapi.json``, token-authenticated blueprints) pass;
2. everyone else must be signed in: API calls get 401 JSON, pages a redirect;
3. state-changing requests need a valid CSRF token (form field or ``X-CSRFToken``);
4. the role policy: viewers only read, data edits need operators or grid admins;
5. the caller's scope is bound (``g.scope`` and ``video.registry.bind_scope``), and
   a route naming an area ``code`` or a camera ``gb_id`` outside it answers 404.

An ``after_request`` hook writes the audit entries queued during the request,
plus one for every successful state-changing request (data edits), in a
transaction of its own, so a denied or failed request still leaves its trace.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import click
from flask import Flask, Response, current_app, g, redirect, request, url_for
from flask import session as browser_session
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import text
from werkzeug.exceptions import Unauthorized

from gridmap import accounts, notify
from gridmap.errors import Forbidden, NotFound
from video import registry
from video.registry import NO_AREA, Scope
from web import errors as web_errors

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Routes anyone may reach without signing in.
PUBLIC_ENDPOINTS = frozenset(
    {"static", "version", "openapi", "mapview.favicon", "auth.login", "auth.logout"}
)
PUBLIC_BLUEPRINTS = frozenset({"vendor"})
# Blueprints that authenticate each request themselves (per-device Bearer tokens):
# no session, no CSRF. Extend with the GRIDMAP_LOGIN_EXEMPT_BLUEPRINTS setting.
DEFAULT_TOKEN_BLUEPRINTS = ("sensor_ingest",)
# Writes a viewer may still make.
ANY_ROLE_WRITES = frozenset({"auth.logout"})
# Blueprints whose writes change reference data: operators and grid admins only.
DATA_EDIT_ROLES = {"cameras": frozenset({"operator", "grid_admin"}),
                   "grid_edit": frozenset({"operator", "grid_admin"}),
                   "teams": frozenset({"operator", "grid_admin"})}
# Writes whose domain code has no scope of its own: the district only. A camera
# ledger import upserts by GB ID anywhere in the district.
DISTRICT_ONLY_WRITES = frozenset({"cameras.import_cameras"})
# Routes whose ``code`` is answered through the camera scope itself (a department
# may list its own cameras in any area), so the area guard must not refuse them.
CAMERA_SCOPED_CODE_ENDPOINTS = frozenset({"cameras.cameras_in_area"})
# Routes where an ancestor of the caller's area is fine (they reveal only names of
# the areas above it, or cameras already narrowed by the scope).
ANCESTOR_CODE_ENDPOINTS = frozenset({"grids.area_hierarchy"})
# Writes on a camera that a unit sees only through a dispatch order: viewing only.
DISPATCHED_VIEW_WRITES = frozenset({"health.sample"})
# Writes that record their own, more specific audit entries.
SELF_AUDITED_BLUEPRINTS = frozenset({"auth", "dispatch", "videowall", "matters"})
# Single endpoints that write their own, more telling entry.
SELF_AUDITED_ENDPOINTS = frozenset({"teams.import_roster", "cameras.create_camera",
                                    "cameras.update_camera", "cameras.import_cameras"})
VIEW_AUDIT_INTERVAL_S = 300.0
AREA_CODE_LENGTHS = (6, 9, 12, 15)


class SessionUser(UserMixin):
    """The signed-in user for Flask-Login; its id names the sign-in session (accounts.open_sign_in_session)."""

    def __init__(self, cookie_id: str, actor: accounts.Actor) -> None:
        self.user_id = actor.user_id
        self.cookie_id = cookie_id
        self.actor = actor

    def get_id(self) -> str:
        """Return the id the session cookie carries."""
        return self.cookie_id

    @property
    def sign_in_session_id(self) -> int | None:
        """Return the id of this sign-in's row."""
        parsed = accounts.parse_cookie_id(self.cookie_id)
        return parsed[2] if parsed else None


def demo_mode(app: Flask | None = None) -> bool:
    """Return whether demo accounts may sign in (only when DEPLOYMENT is 'demo')."""
    return (app or current_app).config.get("DEPLOYMENT") == "demo"


def client_ip() -> str | None:
    """Return the caller's address as the WSGI server saw it (behind a proxy, use ProxyFix)."""
    return (request.remote_addr or "")[:45] or None


def current_actor() -> accounts.Actor:
    """Return the signed-in caller (the guard has ensured there is one)."""
    actor = g.get("actor")
    if actor is None:
        raise Unauthorized("sign in first")
    return actor


def current_scope() -> Scope:
    """Return the caller's camera scope (nothing at all if no one is signed in)."""
    return g.get("scope") or Scope(prefix=NO_AREA)


# --------------------------------------------------------------------------- audit


def audit(action: str, *, target: str | None = None, status: int | None = None,
          username: str | None = None, **detail: Any) -> None:
    """Queue an audit entry for this request (written after the response is made)."""
    g.setdefault("audit_queue", []).append(
        {"action": action, "target": target, "status": status, "username": username,
         "detail": detail}
    )


def _flush_audit(response: Response) -> None:
    """Write the queued entries in their own transaction (the request's is over)."""
    from web.database import writable_session

    queue = g.pop("audit_queue", [])
    view = g.pop("dispatched_view", None)
    if not queue and view is None:
        return
    actor = g.get("actor")
    session = None
    try:
        # Whatever the handler left uncommitted would be rolled back at teardown
        # anyway; dropping it first keeps a failed request's changes out of this commit.
        session = writable_session()
        if view is not None and actor is not None and response.status_code < 400:
            from gridmap.dispatch import record_view

            orders = record_view(session, actor, view["camera_id"])
            queue.append({"action": "camera.view_dispatched", "target": view["gb_id"],
                          "status": response.status_code, "username": None,
                          "detail": {"orders": orders, "endpoint": request.endpoint}})
        for item in queue:
            accounts.record_audit(
                session, item["action"], actor=actor, username=item["username"],
                target=item["target"], detail=item["detail"], ip=client_ip(),
                user_agent=request.user_agent.string, method=request.method,
                path=request.path, status=item["status"] or response.status_code,
            )
        session.commit()
    except Exception:  # the response must not fail because its audit entry did
        log.exception("could not write %d audit entries", len(queue))
        if session is not None:
            session.rollback()


def _dispatched_view_due(actor: accounts.Actor, camera_id: int) -> bool:
    """Return whether a view of a dispatched camera should be audited now (rate-limited)."""
    state = current_app.extensions["gridmap.auth"]
    key = (actor.user_id, camera_id)
    now = time.monotonic()
    with state["lock"]:
        last = state["views"].get(key)
        if last is not None and now - last < VIEW_AUDIT_INTERVAL_S:
            return False
        if len(state["views"]) > 10_000:  # keep the memory bounded on a busy wall
            state["views"].clear()
        state["views"][key] = now
        return True


# --------------------------------------------------------------------------- the guard


def _token_authenticated() -> bool:
    exempt = set(DEFAULT_TOKEN_BLUEPRINTS) | set(
        current_app.config.get("LOGIN_EXEMPT_BLUEPRINTS") or ()
    )
    endpoints = set(current_app.config.get("LOGIN_EXEMPT_ENDPOINTS") or ())
    return request.blueprint in exempt or request.endpoint in endpoints


def _is_public() -> bool:
    endpoint = request.endpoint
    if endpoint is None:  # no route matched: let Flask answer 404/405
        return True
    return endpoint in PUBLIC_ENDPOINTS or request.blueprint in PUBLIC_BLUEPRINTS


def _protect_csrf() -> None:
    if request.method in SAFE_METHODS or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    current_app.extensions["csrf"].protect()


def _deny(reason: str, **detail: Any) -> None:
    audit("access.denied", target=request.endpoint, status=403, reason=reason, **detail)
    raise Forbidden(reason)


def write_refusal(actor: accounts.Actor, endpoint: str) -> str | None:
    """Return why the role policy refuses this actor a write to ``endpoint``, or None."""
    if endpoint in ANY_ROLE_WRITES:
        return None
    if actor.role == "viewer":
        return "viewers have read-only access"
    roles = DATA_EDIT_ROLES.get(endpoint.partition(".")[0])
    if roles is not None and actor.role not in roles:
        return f"a {actor.role} may not edit this data"
    if endpoint in DISTRICT_ONLY_WRITES and actor.tier != 1:
        return "only the district center may do this"
    return None


def _check_role(actor: accounts.Actor) -> None:
    if request.method in SAFE_METHODS:
        return
    # Pages ask write_refusal too, to offer only the actions the guard will allow.
    reason = write_refusal(actor, request.endpoint or "")
    if reason:
        _deny(reason)


def _check_path_objects(actor: accounts.Actor, scope: Scope) -> None:
    """404 for an area code or camera outside the caller's scope, named in the path."""
    if scope.unrestricted:
        return
    args = request.view_args or {}
    code = args.get("code")
    if (isinstance(code, str) and code.isascii() and code.isdigit()
            and len(code) in AREA_CODE_LENGTHS
            and request.endpoint not in CAMERA_SCOPED_CODE_ENDPOINTS):
        prefix = scope.prefix
        inside = prefix != NO_AREA and code.startswith(prefix)
        above = (prefix != NO_AREA and request.endpoint in ANCESTOR_CODE_ENDPOINTS
                 and prefix.startswith(code))
        if not (inside or above):
            audit("scope.denied", target=f"area:{code}", status=404)
            raise NotFound("no such area", code=code)
    gb_id = args.get("gb_id")
    if isinstance(gb_id, str) and len(gb_id) <= 32:
        from web.database import get_session

        own_sql, own_params = scope.own().sql()
        visible_sql, visible_params = scope.sql()
        row = get_session().execute(
            text(
                f"SELECT c.id, (TRUE {own_sql}) AS own, (TRUE {visible_sql}) AS visible "
                "FROM cameras c WHERE c.gb_id = :g"
            ),
            {**own_params, **visible_params, "g": gb_id},
        ).first()
        if row is None:
            return  # does not exist: the view answers its own 404
        camera_id, own, visible = row
        if not visible:
            audit("scope.denied", target=f"camera:{gb_id}", status=404)
            raise NotFound("no such camera", gb_id=gb_id)
        if not own:
            if request.method not in SAFE_METHODS and request.endpoint not in DISPATCHED_VIEW_WRITES:
                _deny("cameras dispatched to your unit are view-only", gb_id=gb_id)
            if _dispatched_view_due(actor, camera_id):
                g.dispatched_view = {"camera_id": camera_id, "gb_id": gb_id}


def _guard() -> Response | None:
    if _is_public():
        if request.endpoint in ("auth.login", "auth.logout"):
            _protect_csrf()
        return None
    if _token_authenticated():
        return None
    if not current_user.is_authenticated:
        if not web_errors.wants_page():
            raise Unauthorized("sign in first")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    actor = replace(current_user.actor, ip=client_ip(),
                    user_agent=(request.user_agent.string or "")[:200] or None)
    # The actor knows whether anything is dispatched to the unit (asked once, with
    # the user), so scoped queries of units without orders carry no dispatch branch.
    scope = actor.scope
    g.actor = actor
    g.user_name = actor.username  # what grid editing records as the editor
    g.scope = scope
    g.scope_prefix = scope.prefix
    g.scope_token = registry.bind_scope(scope)
    _protect_csrf()
    _check_role(actor)
    _check_path_objects(actor, scope)
    return None


def _after(response: Response) -> Response:
    actor = g.get("actor")
    if actor is not None and not browser_session.modified:
        _stamp_sign_in()
    if (actor is not None and request.method not in SAFE_METHODS
            and response.status_code < 400
            and request.blueprint not in SELF_AUDITED_BLUEPRINTS
            and request.endpoint not in SELF_AUDITED_ENDPOINTS):
        audit("data.edit", target=request.endpoint, endpoint=request.endpoint)
    if g.get("audit_queue") or g.get("dispatched_view"):
        _flush_audit(response)
    return response


STAMP_INTERVAL_S = 60.0


def _stamp_sign_in() -> None:
    """Record that this browser's sign-in is in use, whenever its cookie is re-signed.

    That is at most once a minute of use, so the sign-out page can tell which
    sign-ins are still alive and when each was last used. Its own short
    transaction (like the audit trail's); a failure costs the stamp, not the answer.
    """
    cookie_id = browser_session.get("_user_id")
    parsed = accounts.parse_cookie_id(cookie_id) if cookie_id else None
    if parsed is None or not ThrottledRefreshSessionInterface.refresh_due(current_app,
                                                                          browser_session):
        return
    # Also once a minute per sign-in in this process, whatever the client does with the
    # re-signed cookie: a script that keeps sending its first one is due every time.
    stamped = current_app.extensions.setdefault("gridmap.sign_in_stamps", {})
    now = time.monotonic()
    sign_in_id = parsed[2]
    if now - stamped.get(sign_in_id, -STAMP_INTERVAL_S) < STAMP_INTERVAL_S:
        return
    if len(stamped) > 10_000:  # forget sign-ins not seen for a minute
        for key in [k for k, at in stamped.items() if now - at >= STAMP_INTERVAL_S]:
            stamped.pop(key, None)
    stamped[sign_in_id] = now
    from web.database import writable_session

    try:
        db = writable_session()
        accounts.touch_sign_in_session(db, parsed[0], sign_in_id)
        db.commit()
    except Exception as exc:  # the answer must not fail for the stamp
        log.warning("could not stamp the sign-in as used (%s)", type(exc).__name__)


def _teardown(_exc: BaseException | None = None) -> None:
    token = g.pop("scope_token", None)
    if token is not None:
        registry.reset_scope(token)


# --------------------------------------------------------------------------- set-up


class ThrottledRefreshSessionInterface(SecureCookieSessionInterface):
    """Re-sign a permanent session's cookie at most once a minute, not on every response.

    Flask re-signs and re-sends the cookie of a permanent session with every
    response so that its expiry slides; that cost about 0.15 ms a request. The
    12-hour expiry now slides in one-minute steps. Any change of the session is
    still sent at once, and the session's validity is checked on every request
    (against the database, or what it said before any change: ``_cache_actors``).
    """

    refresh_interval_s = 60

    @classmethod
    def refresh_due(cls, app: Flask, session: Any) -> bool:
        """Return whether an unchanged session's cookie is re-signed with this response."""
        if not (session.permanent and app.config["SESSION_REFRESH_EACH_REQUEST"]):
            return False
        last = session.get("_refreshed")
        return not (isinstance(last, int) and 0 <= int(time.time()) - last < cls.refresh_interval_s)

    def should_set_cookie(self, app: Flask, session: Any) -> bool:
        """Return whether this response must carry the session cookie."""
        if session.modified or self.refresh_due(app, session):
            session["_refreshed"] = int(time.time())
            return True
        return False


def init_app(app: Flask) -> None:
    """Install Flask-Login, CSRF, the sign-in rate limit, the guard and the auth blueprint."""
    app.session_interface = ThrottledRefreshSessionInterface()
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # valid as long as the session
    # The guard calls csrf.protect() itself, after the allow-list and sign-in checks.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf = CSRFProtect()
    csrf.init_app(app)

    login_manager = LoginManager()
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"

    @login_manager.user_loader
    def load_user(user_id: str) -> SessionUser | None:
        from web.database import get_session

        demo_allowed = demo_mode(app)
        cache = app.extensions.get("gridmap.actor_cache")

        def load() -> accounts.Actor | None:
            return accounts.load_session_actor(get_session(), user_id, demo_allowed=demo_allowed)

        actor = cache.get_or_load((user_id, demo_allowed), load) if cache else load()
        return SessionUser(user_id, actor) if actor is not None else None

    _cache_actors(app)
    app.extensions["gridmap.auth"] = {"lock": threading.Lock(), "views": {}}
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=app.config.get("RATELIMIT_STORAGE_URI", "memory://"),
        default_limits=[],
        headers_enabled=True,
    )
    app.extensions["gridmap.limiter"] = limiter

    # Only signing in is rate limited. Exempting every other request here skips
    # the limiter's per-request lookup of app, blueprint and route limits.
    @limiter.request_filter
    def _not_sign_in() -> bool:
        return request.endpoint != "auth.login"

    web_errors.register_status(accounts.SignInFailed, 401)
    web_errors.register_status(accounts.AccountLocked, 429)
    from gridmap.dispatch import OrderExpired

    web_errors.register_status(OrderExpired, 410)

    from web.blueprints import auth as auth_bp

    app.register_blueprint(auth_bp.bp)
    view = app.view_functions["auth.login"]
    app.view_functions["auth.login"] = limiter.limit(
        lambda: current_app.config.get("LOGIN_RATE_LIMIT", "10 per minute"),
        methods=["POST"],
        error_message="too many sign-in attempts from this address; wait a minute",
    )(view)

    app.before_request(_guard)
    app.after_request(_after)
    app.teardown_request(_teardown)


def _cache_actors(app: Flask) -> None:
    """Let the sign-in check reuse what it read while users, units and orders are unchanged.

    Off with ``SESSION_CACHE_SECONDS = 0`` (a pooler in transaction mode cannot
    LISTEN), and for apps bound to a test's transaction, whose writes are rolled back
    and never announced.
    """
    ttl = float(app.config.get("SESSION_CACHE_SECONDS", 60))
    if ttl <= 0 or app.config.get("TEST_CONNECTION") is not None:
        return
    watch = notify.watcher(app.extensions["gridmap.database_url"])
    notify.count_own_commits(app.extensions["gridmap.engine"], watch)
    app.extensions["gridmap.actor_cache"] = accounts.ActorCache(watch.generation, ttl_s=ttl)


def lockout_settings(app: Flask | None = None) -> accounts.LockoutPolicy:
    """Return how failed sign-ins are counted and locked out, from the config.

    ``LOCKOUT_THRESHOLD`` wrong passwords for a name from one address lock that
    address out of it for ``LOCKOUT_MINUTES``; past ``LOCKOUT_ACCOUNT_CEILING`` from
    all addresses, addresses that never signed in to the account wait growing delays.
    """
    cfg = (app or current_app).config
    return accounts.LockoutPolicy(
        threshold=int(cfg.get("LOCKOUT_THRESHOLD", accounts.LOCKOUT_THRESHOLD)),
        lock_for=timedelta(minutes=float(cfg.get("LOCKOUT_MINUTES", 15))),
        account_ceiling=int(cfg.get("LOCKOUT_ACCOUNT_CEILING",
                                    accounts.ACCOUNT_FAILURE_CEILING)))


# --------------------------------------------------------------------------- CLI


def _cli_session():
    from gridmap import db

    engine = db.engine_for(db.database_url())
    return db.session_factory(engine)()


def _fail(message: str) -> None:
    raise click.ClickException(message)


@click.group("units")
def units_group() -> None:
    """Manage command units (district center, towns/streets, departments, communities)."""


@units_group.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(accounts.UNIT_KINDS), required=True)
@click.option("--code", default=None, help="Area code (district 6, town 9, community 12 digits).")
@click.option("--department", default=None,
              help="Departments: the owner name on their cameras (default: NAME).")
@click.option("--parent", default=None, help="Parent unit: id, area code or name.")
def units_add(name: str, kind: str, code: str | None, department: str | None,
              parent: str | None) -> None:
    """Add a unit."""
    from gridmap.errors import GridmapError

    with _cli_session() as session:
        try:
            parent_unit = accounts.unit_by_ref(session, parent) if parent else None
            unit = accounts.create_unit(session, name, kind, code=code, department=department,
                                        parent=parent_unit)
            session.commit()
        except GridmapError as exc:
            _fail(exc.reason)
        click.echo(f"unit {unit.id}: {unit.name} ({unit.kind}, tier {unit.tier})")


@units_group.command("list")
def units_list() -> None:
    """List the units."""
    with _cli_session() as session:
        for u in accounts.list_units(session):
            scope = u.code or f"dept:{u.department}"
            click.echo(f"{u.id:>4}  tier {u.tier}  {u.kind:<10}  {scope:<24}  {u.name}")


@click.group("users")
def users_group() -> None:
    """Manage user accounts (passwords are read from a prompt or stdin, never argv)."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        import sys

        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


@users_group.command("add")
@click.argument("username")
@click.option("--unit", "unit_ref", required=True, help="Unit id, area code or name.")
@click.option("--role", type=click.Choice(accounts.ROLES), required=True)
@click.option("--display-name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def users_add(username: str, unit_ref: str, role: str, display_name: str,
              password_stdin: bool) -> None:
    """Add a user."""
    from gridmap.errors import GridmapError

    password = _read_password(password_stdin)
    with _cli_session() as session:
        try:
            unit = accounts.unit_by_ref(session, unit_ref)
            user = accounts.create_user(session, username, password, role, unit,
                                        display_name=display_name)
            session.commit()
        except GridmapError as exc:
            _fail(exc.reason)
        click.echo(f"user {user.id}: {user.username} ({role}) in {unit.name}")


@users_group.command("list")
def users_list() -> None:
    """List the users with their unit and role (never a password)."""
    with _cli_session() as session:
        units = {u.id: u.name for u in accounts.list_units(session)}
        locks = accounts.sign_in_lockouts(session)
        for u in accounts.list_users(session):
            locked = locks.get(u.id, [])
            addresses = [a for a in locked if a != accounts.EVERY_ADDRESS]
            flags = [f for f, on in (("demo", u.is_demo), ("inactive", not u.active),
                                     ("sign-ins delayed", accounts.EVERY_ADDRESS in locked),
                                     (f"locked out: {', '.join(addresses)}", bool(addresses)))
                     if on]
            click.echo(f"{u.id:>4}  {u.username:<24} {u.role:<12} {units.get(u.unit_id, '?')}"
                       + (f"  [{', '.join(flags)}]" if flags else ""))


def _user_named(session, username: str) -> accounts.User:
    """Return the user of that name, or stop the command with a message."""
    from sqlalchemy import select

    user = session.scalars(
        select(accounts.User).where(accounts.User.username == username.lower())).first()
    if user is None:
        _fail(f"no user {username!r}")
    return user


@users_group.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def users_passwd(username: str, password_stdin: bool) -> None:
    """Set a user's password (unlocks the account and ends its sessions)."""
    from gridmap.errors import GridmapError

    password = _read_password(password_stdin)
    with _cli_session() as session:
        user = _user_named(session, username)
        try:
            accounts.set_password(session, user, password)
            session.commit()
        except GridmapError as exc:
            _fail(exc.reason)
        click.echo(f"password of {user.username} changed")


@users_group.command("sessions")
@click.argument("username")
@click.option("--end", is_flag=True,
              help="End them all (a lost phone, a shared workstation).")
def users_sessions(username: str, end: bool) -> None:
    """List a user's signed-in sessions (id, signed in, last used, address, browser), or end them all."""
    with _cli_session() as session:
        user = _user_named(session, username)
        if end:
            ended = accounts.end_sign_in_sessions(session, user)
            session.commit()
            click.echo(f"{user.username}: {ended} session(s) ended")
            return
        from gridmap.matters import LOCAL_TZ  # the command center's clock, as on the pages

        rows = accounts.sign_in_sessions_of(session, user.id)
        for row in rows:
            click.echo(f"{row.id}\t{row.created_at.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M}\t"
                       f"{row.last_seen_at.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M}\t"
                       f"{row.ip or '-'}\t{row.user_agent or '-'}")
        click.echo(f"{user.username}: {len(rows)} session(s)")


@users_group.command("demo")
def users_demo() -> None:
    """Create the demo units and users that are missing (demo deployments only)."""
    import os

    if os.environ.get("GRIDMAP_DEPLOYMENT", "demo") != "demo":
        _fail("demo accounts exist only when GRIDMAP_DEPLOYMENT is 'demo'")
    with _cli_session() as session:
        added = accounts.ensure_demo_accounts(session)
        session.commit()
    click.echo(f"demo accounts ready ({added} users added); see README.md, 'Demo users'")
