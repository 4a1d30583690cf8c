"""Sign-in and sign-out pages, and who the caller is (``/api/me``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import login_user, logout_user
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select

from gridmap import accounts
from gridmap.matters import LOCAL_TZ
from web import i18n
from web.auth import (
    SessionUser,
    audit,
    client_ip,
    current_actor,
    demo_mode,
    lockout_settings,
)
from web.database import get_session, read_connection
from web.devices import describe_user_agent
from web.errors import error_response, wants_page

bp = Blueprint("auth", __name__)
# The sign-out page lists this many of the account's newest sign-ins.
DEVICES_SHOWN = 20

i18n.register(
    {
        "sign_in": {"zh": "登录", "en": "Sign in"},
        "sign_out": {"zh": "退出登录", "en": "Sign out"},
        "username": {"zh": "用户名", "en": "Username"},
        "password": {"zh": "密码", "en": "Password"},
        "sign_in_failed": {"zh": "用户名或密码错误", "en": "Wrong username or password"},
        "sign_in_locked": {
            "zh": "此地址登录失败次数过多，请稍后再试",
            "en": "Too many failed sign-ins from this address; try again later",
        },
        "sign_in_delayed": {
            "zh": "该账号登录失败次数过多，请稍后再试",
            "en": "Too many failed sign-ins for this account; try again later",
        },
        "sign_in_disabled": {"zh": "该账号不可用", "en": "This account cannot sign in"},
        "sign_out_confirm": {"zh": "确定退出登录？", "en": "Sign out of gridmap?"},
        "sign_out_everywhere": {"zh": "退出所有设备", "en": "Sign out everywhere"},
        "signed_in_devices": {"zh": "仍有效的登录", "en": "Sign-ins still valid"},
        "signed_in_at": {"zh": "登录于 {time}", "en": "signed in {time}"},
        "last_used_at": {"zh": "最近使用 {time}", "en": "last used {time}"},
        "this_device": {"zh": "（本设备）", "en": "(this device)"},
        "unknown_browser": {"zh": "未知浏览器", "en": "unknown browser"},
        "sign_out_everywhere_hint": {
            "zh": "手机丢失或在公用电脑上登录过时使用：本账号在所有设备上的登录都将失效。",
            "en": "For a lost phone or a shared computer: every device signed in to this "
                  "account is signed out.",
        },
        "demo_hint": {
            "zh": "演示环境：演示账号见 README「Demo users」",
            "en": "Demo deployment: demo accounts are listed in the README under 'Demo users'",
        },
    }
)


def _safe_next(raw: str | None) -> str:
    """Return a local path to go to after sign-in (never another host)."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return "/"
    return raw


def _login_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    html = render_template(
        "login.html",
        lang=g.get("lang", "zh"),
        error=error,
        next=_safe_next(request.values.get("next")),
        demo=demo_mode(),
    )
    return html, status


def _fail(kind: str, status: int, reason: str, headers: dict[str, str] | None = None) -> Any:
    if not wants_page():
        resp, _ = error_response(status, reason, message=i18n.translate(kind))
        resp.status_code = status
    else:
        html, _ = _login_page(i18n.translate(kind), status)
        resp = Response(html, status=status, mimetype="text/html")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form, or check a sign-in (form fields or JSON)."""
    if request.method == "GET":
        html, status = _login_page()
        return Response(html, status=status, mimetype="text/html")
    data = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(data, dict) and not hasattr(data, "get"):
        data = {}
    username = str(data.get("username") or "")[:64]
    password = data.get("password")
    password = password if isinstance(password, str) and len(password) <= 256 else ""
    db = get_session()
    name = username.strip().lower()
    try:
        user = accounts.authenticate(db, username, password, demo_allowed=demo_mode(),
                                     ip=client_ip(), name_secret=current_app.secret_key,
                                     policy=lockout_settings())
    except (accounts.SignInFailed, accounts.AccountLocked) as exc:
        known = (db.scalar(select(accounts.User.id).where(accounts.User.username == name))
                 if accounts.USERNAME_RE.match(name) else None)
        # Record the name only if it is an account: a password typed into the
        # username field must not end up in the audit log.
        if isinstance(exc, accounts.SignInFailed):
            audit("auth.sign_in_failed", username=name if known else None, status=401,
                  known_user=known is not None)
            db.commit()
            return _fail("sign_in_failed", 401, "wrong username or password")
        scope = exc.details.get("scope", "address")
        audit("auth.locked", username=name if known else None, status=429, scope=scope)
        db.commit()
        retry = str(exc.details.get("retry_after_s", 60))
        return _fail("sign_in_locked" if scope == "address" else "sign_in_delayed", 429,
                     exc.reason, {"Retry-After": retry})
    except accounts.AccountDisabled as exc:
        audit("auth.sign_in_refused", username=name, status=403, reason=exc.reason)
        db.commit()
        return _fail("sign_in_disabled", 403, exc.reason)
    actor = accounts.actor_for(db, user, ip=client_ip(), user_agent=request.user_agent.string)
    cookie_id = accounts.open_sign_in_session(db, user, ip=actor.ip,
                                              user_agent=actor.user_agent)
    db.commit()
    # A fresh session on sign-in: nothing planted before it (a CSRF token, say) survives.
    session.clear()
    login_user(SessionUser(cookie_id, actor))
    session.permanent = True
    g.actor = actor
    audit("auth.sign_in", status=200)
    if not wants_page():
        return jsonify({"user": accounts.user_summary(db, user.id), "csrf_token": generate_csrf()})
    return redirect(_safe_next(request.values.get("next")))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """Sign out (POST); GET shows the buttons and the account's sign-ins, so a link cannot sign anyone out."""
    from flask_login import current_user

    if request.method == "GET":
        rows = []
        if current_user.is_authenticated:
            rows = accounts.sign_in_sessions_of(get_session(), current_user.user_id,
                                                idle=current_app.permanent_session_lifetime)
        devices = [
            {"at": row.created_at.astimezone(LOCAL_TZ), "ip": row.ip,
             "seen": row.last_seen_at.astimezone(LOCAL_TZ),
             "browser": describe_user_agent(row.user_agent), "user_agent": row.user_agent,
             "current": row.id == current_user.sign_in_session_id}
            for row in rows[:DEVICES_SHOWN]]
        html = render_template("logout.html", lang=g.get("lang", "zh"),
                               devices=devices, device_count=len(rows))
        return Response(html, mimetype="text/html")

    if current_user.is_authenticated:
        g.actor = current_user.actor
        # Server-side: a copy of this cookie must not keep the session alive.
        db = get_session()  # a POST: writable
        if request.form.get("everywhere") == "1" or (
                request.is_json and (request.get_json(silent=True) or {}).get("everywhere")):
            user = db.get(accounts.User, current_user.user_id)
            ended = accounts.end_sign_in_sessions(db, user)
            audit("auth.sign_out_everywhere", status=200, sessions=ended)
        else:
            accounts.end_sign_in_session(db, current_user.user_id,
                                         current_user.sign_in_session_id)
            audit("auth.sign_out", status=200)
        db.commit()
    logout_user()
    session.clear()
    if not wants_page():
        return jsonify({"signed_out": True})
    return redirect(url_for("auth.login"))


@bp.get("/api/me")
def me():
    """The signed-in user.
    ---
    get:
      summary: The caller's account, unit, scope and a CSRF token for API clients
      responses:
        200: {description: '{user, scope, csrf_token}'}
        401: {description: Not signed in}
    """
    actor = current_actor()
    scope = actor.scope
    return jsonify(
        {
            "user": accounts.user_summary(read_connection(), actor.user_id),
            "scope": {
                "prefix": scope.prefix,
                "department": scope.department,
                "dispatch_unit": scope.unit_id,
                "whole_district": scope.unrestricted,
            },
            "deployment": current_app.config.get("DEPLOYMENT"),
            "csrf_token": generate_csrf(),
        }
    )
