"""Sign-in, sessions, CSRF, the sign-in rate limit and lockout, roles and the account CLI."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gridmap import accounts
from gridmap.accounts import DEMO_USERS, User
from gridmap.matters import LOCAL_TZ

PASSWORDS = {u.username: u.password for u in DEMO_USERS}
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def demo_password(username: str) -> str:
    return PASSWORDS[username]


@pytest.fixture
def csrf_app(connection, database_url, demo_accounts):
    """An app with CSRF protection on, as in production."""
    from web import create_app

    return create_app({"TESTING": True, "DATABASE_URL": database_url,
                       "TEST_CONNECTION": connection})


def form_token(client, path: str = "/login") -> str:
    page = client.get(path)
    assert page.status_code == 200
    return CSRF_INPUT.search(page.get_data(as_text=True)).group(1)


def login_json(client, username: str, password: str | None = None):
    return client.post("/login", json={"username": username,
                                       "password": password or demo_password(username)})


# --------------------------------------------------------------------------- who may enter


@pytest.mark.parametrize(
    "path",
    ["/api/cameras", "/api/grids.geojson", "/api/dispatch/inbox", "/api/audit", "/api/me",
     "/api/cameras/layer.json", "/api/coverage/towns", "/api/search?q=鼓楼"],
)
def test_anonymous_api_calls_get_401_json(anon_client, path):
    resp = anon_client.get(path)
    assert resp.status_code == 401
    assert resp.get_json()["error"] == 401


@pytest.mark.parametrize("path", ["/", "/patrol", "/wall", "/videowall", "/grids/edit"])
def test_anonymous_pages_redirect_to_the_sign_in_page(anon_client, path):
    resp = anon_client.get(path)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=" + path.replace("/", "%2F")) or \
        resp.headers["Location"].startswith("/login?next=" + path)


@pytest.mark.parametrize(("accept", "status"), [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", 302),  # a navigation
    ("*/*", 401),  # fetch(), an image, curl
    ("application/json", 401),
])
def test_a_signed_out_page_request_is_sent_to_sign_in_only_when_a_browser_navigates(
        anon_client, accept, status):
    # The same rule as the error pages (web.errors.wants_page): a script or an
    # image gets a 401 it can act on, not the sign-in page's HTML.
    resp = anon_client.get("/wall", headers={"Accept": accept})
    assert resp.status_code == status
    if status == 401:
        assert resp.get_json()["reason"] == "sign in first"
    missing = anon_client.get("/no-such-page", headers={"Accept": accept})
    assert missing.status_code == 404
    assert missing.mimetype == ("text/html" if status == 302 else "application/json")


@pytest.mark.parametrize(
    "path",
    ["/login", "/logout", "/static/js/gridmap.js", "/vendor/npm/leaflet/dist/leaflet.js",
     "/favicon.ico", "/api/version", "/api/openapi.json"],
)
def test_allow_list_needs_no_sign_in(anon_client, path):
    with anon_client.get(path) as resp:
        assert resp.status_code == 200


def test_unknown_routes_stay_404_for_everyone(anon_client, client):
    assert anon_client.get("/api/no-such-thing").status_code == 404
    assert client.get("/api/no-such-thing").status_code == 404


# --------------------------------------------------------------------------- signing in


def test_form_sign_in_sets_a_hardened_session_cookie(csrf_app):
    client = csrf_app.test_client()
    token = form_token(client)
    resp = client.post("/login", data={"username": "gulou-operator", "csrf_token": token,
                                       "password": demo_password("gulou-operator"),
                                       "next": "/videowall"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/videowall"
    cookie = next(h for h in resp.headers.getlist("Set-Cookie")
                  if h.startswith("gridmap_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    me = client.get("/api/me").get_json()
    assert me["user"]["username"] == "gulou-operator"
    assert me["scope"] == {"prefix": "370812001", "department": None,
                           "dispatch_unit": me["user"]["unit"]["id"], "whole_district": False}
    assert "password_hash" not in str(me) and "session_token" not in str(me)


def test_me_gives_the_user_and_unit_as_stored(app, session):
    client = app.test_client()
    assert login_json(client, "gulou-operator").status_code == 200
    user = session.scalars(select(User).where(User.username == "gulou-operator")).one()
    unit = session.get(accounts.Unit, user.unit_id)
    me = client.get("/api/me").get_json()["user"]
    assert me == {
        "id": user.id, "username": "gulou-operator", "display_name": user.display_name,
        "role": user.role, "active": True, "is_demo": user.is_demo,
        "unit": {"id": unit.id, "name": unit.name, "kind": unit.kind, "tier": unit.tier,
                 "code": unit.code, "department": unit.department, "parent_id": unit.parent_id},
    }
    assert me["unit"]["code"] == "370812001"  # 鼓楼街道


def test_the_session_cookie_is_re_sent_at_most_once_a_minute(app, monkeypatch):
    import time as clock

    from web.auth import ThrottledRefreshSessionInterface

    client = app.test_client()
    assert login_json(client, "district-viewer").status_code == 200  # sets the cookie
    now = clock.time()
    monkeypatch.setattr("web.auth.time.time", lambda: now)

    def cookie_sent() -> bool:
        resp = client.get("/api/me")
        assert resp.status_code == 200
        return any(h.startswith("gridmap_session=") for h in resp.headers.getlist("Set-Cookie"))

    cookie_sent()  # the first refresh stamps the session
    assert not cookie_sent() and not cookie_sent()  # within the minute: no cookie
    now += ThrottledRefreshSessionInterface.refresh_interval_s + 1
    assert cookie_sent()  # a minute on: the expiry slides again
    assert not cookie_sent()
    # A change of the session goes out at once, and sign-out still ends it.
    resp = client.post("/logout")
    assert any(h.startswith("gridmap_session=") for h in resp.headers.getlist("Set-Cookie"))
    assert client.get("/api/me").status_code == 401


def test_cookie_is_secure_when_configured_for_tls(connection, database_url, demo_accounts):
    from web import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "TEST_CONNECTION": connection, "WTF_CSRF_ENABLED": False,
                      "SESSION_COOKIE_SECURE": True})
    resp = login_json(app.test_client(), "district-viewer")
    assert resp.status_code == 200
    cookie = next(h for h in resp.headers.getlist("Set-Cookie")
                  if h.startswith("gridmap_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_passwords_are_stored_as_scrypt_hashes(session):
    user = session.scalars(select(User).where(User.username == "district-operator")).one()
    assert user.password_hash.startswith("scrypt:")
    assert demo_password("district-operator") not in user.password_hash


def test_wrong_password_is_401_and_unknown_user_looks_the_same(app):
    client = app.test_client()
    wrong = login_json(client, "gulou-operator", "not-the-password-1")
    unknown = login_json(client, "nobody-here", "not-the-password-1")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    assert wrong.get_json()["message"] == "用户名或密码错误"  # the sign-in page's own words
    assert client.get("/api/me").status_code == 401


def test_sign_in_page_speaks_chinese_and_english(anon_client):
    assert "用户名" in anon_client.get("/login").get_data(as_text=True)
    failed = anon_client.post("/login", data={"username": "x-user", "password": "wrong-pass-1"},
                              headers={"Accept": "text/html"})
    assert failed.status_code == 401 and "用户名或密码错误" in failed.get_data(as_text=True)
    assert "Username" in anon_client.get("/login?lang=en").get_data(as_text=True)


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil", ""])
def test_next_never_leaves_the_site(app, target):
    resp = app.test_client().post("/login", data={
        "username": "district-viewer", "password": demo_password("district-viewer"),
        "next": target})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


def test_sign_out_ends_the_session(app):
    client = app.test_client()
    assert login_json(client, "district-viewer").status_code == 200
    assert client.get("/logout").status_code == 200  # a GET only shows the button
    assert client.get("/api/me").status_code == 200
    assert client.post("/logout").status_code == 302
    assert client.get("/api/me").status_code == 401


def session_cookie(client) -> str:
    return client.get_cookie("gridmap_session").value


def test_sign_out_ends_the_session_on_the_server_too(app):
    # A copy of the cookie (a shared workstation, a proxy log) must not outlive it.
    client = app.test_client()
    assert login_json(client, "district-viewer").status_code == 200
    copied = session_cookie(client)
    assert client.post("/logout").status_code == 302
    replay = app.test_client()
    replay.set_cookie("gridmap_session", copied)
    assert replay.get("/api/me").status_code == 401


def test_signing_out_on_one_device_keeps_the_others(app):
    desk, phone = app.test_client(), app.test_client()
    assert login_json(desk, "gulou-viewer").status_code == 200
    assert login_json(phone, "gulou-viewer").status_code == 200
    assert desk.post("/logout").status_code == 302
    assert desk.get("/api/me").status_code == 401
    assert phone.get("/api/me").status_code == 200


def test_sign_out_everywhere_ends_every_device_of_the_user(app, session):
    desk, phone, other = app.test_client(), app.test_client(), app.test_client()
    for client, user in ((desk, "gulou-viewer"), (phone, "gulou-viewer"),
                         (other, "district-viewer")):
        assert login_json(client, user).status_code == 200
    assert desk.post("/logout", data={"everywhere": "1"}).status_code == 302
    assert desk.get("/api/me").status_code == 401
    assert phone.get("/api/me").status_code == 401
    assert other.get("/api/me").status_code == 200  # someone else's sessions stay
    logged = session.execute(text(
        "SELECT detail FROM audit_log WHERE action = 'auth.sign_out_everywhere' "
        "ORDER BY id DESC LIMIT 1")).scalar_one()
    assert logged["sessions"] == 2
    assert login_json(phone, "gulou-viewer").status_code == 200  # signing in again works


def test_api_clients_sign_out_everywhere_in_json(app):
    first, second = app.test_client(), app.test_client()
    for client in (first, second):
        assert login_json(client, "district-viewer").status_code == 200
    answer = first.post("/logout", json={"everywhere": True})
    assert answer.status_code == 200 and answer.get_json() == {"signed_out": True}
    assert second.get("/api/me").status_code == 401


@pytest.mark.parametrize(("lang", "words"), [("zh", "退出所有设备"), ("en", "Sign out everywhere")])
def test_the_sign_out_page_offers_signing_out_everywhere(client, lang, words):
    page = client.get(f"/logout?lang={lang}").get_data(as_text=True)
    assert words in page and 'name="everywhere" value="1"' in page
    assert client.get("/api/me").status_code == 200  # showing the page signed no one out


ANDROID_PHONE = ("Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/120.0.6099.230 Mobile Safari/537.36")


def test_the_sign_out_page_lists_the_accounts_sign_ins(app):
    phone, desk, script = app.test_client(), app.test_client(), app.test_client()
    phone.environ_base.update(REMOTE_ADDR="10.7.7.7", HTTP_USER_AGENT=ANDROID_PHONE)
    desk.environ_base.update(REMOTE_ADDR="10.8.8.8", HTTP_USER_AGENT="DeskBrowser/2.0")
    script.environ_base.update(REMOTE_ADDR="10.9.9.9", HTTP_USER_AGENT="")
    for client in (phone, desk, script):
        assert login_json(client, "police-viewer").status_code == 200
    page = desk.get("/logout?lang=en").get_data(as_text=True)
    listed = page[page.index('id="logout-devices"'):]
    # A phone by its browser, system and model; the full header on hover.
    phone_entry = listed[listed.index("10.7.7.7"):][:400]
    assert ">Chrome Mobile 120 · Android 14 · V2309A<" in phone_entry
    assert f'title="{ANDROID_PHONE}"' in phone_entry
    # A header no one knows is shown as it is; none at all says so.
    mine = listed[listed.index("10.8.8.8"):][:400]
    assert ">DeskBrowser/2.0<" in mine
    assert "(this device)" in mine and listed.count("(this device)") == 1
    assert ">unknown browser<" in listed[listed.index("10.9.9.9"):][:400]
    phone.post("/logout")
    assert "10.7.7.7" not in desk.get("/logout").get_data(as_text=True)


def test_the_sign_out_page_leaves_out_sign_ins_idle_past_the_cookie_lifetime(app, session):
    idle, busy = app.test_client(), app.test_client()
    idle.environ_base.update(REMOTE_ADDR="10.5.5.5")
    busy.environ_base.update(REMOTE_ADDR="10.6.6.6")
    for client in (idle, busy):
        assert login_json(client, "police-viewer").status_code == 200
    user_id = session.scalar(select(User.id).where(User.username == "police-viewer"))
    # The idle one was last used 13 hours ago: its cookie lapsed after 12.
    session.execute(text("UPDATE sign_in_sessions SET last_seen_at = now() - interval '13 hours' "
                         "WHERE user_id = :u AND ip = '10.5.5.5'"), {"u": user_id})
    session.execute(text("UPDATE sign_in_sessions SET last_seen_at = now() - interval '3 hours' "
                         "WHERE user_id = :u AND ip = '10.6.6.6'"), {"u": user_id})
    page = busy.get("/logout").get_data(as_text=True)
    listed = page[page.index('id="logout-devices"'):]
    assert "10.5.5.5" not in listed and "仍有效的登录 (1)" in page
    seen = session.scalar(text("SELECT last_seen_at FROM sign_in_sessions "
                               "WHERE user_id = :u AND ip = '10.6.6.6'"), {"u": user_id})
    shown = seen.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
    assert f"最近使用 <time datetime=\"{seen.astimezone(LOCAL_TZ).isoformat()}\">{shown}</time>" in listed


def test_a_session_ends_30_days_after_its_sign_in_however_active(app, session):
    client = app.test_client()
    assert login_json(client, "gulou-viewer").status_code == 200
    user_id = session.scalar(select(User.id).where(User.username == "gulou-viewer"))
    session.execute(text("UPDATE sign_in_sessions SET created_at = now() - interval '29 days' "
                         "WHERE user_id = :u"), {"u": user_id})
    assert client.get("/api/me").status_code == 200
    session.execute(text("UPDATE sign_in_sessions SET created_at = now() - interval '31 days' "
                         "WHERE user_id = :u"), {"u": user_id})
    assert client.get("/api/me").status_code == 401


def test_a_sign_in_is_recorded_without_its_secret(app, session):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    assert login_json(client, "gulou-viewer").status_code == 200
    with app.test_request_context():
        from flask import current_app

        cookie_id = current_app.session_interface.get_signing_serializer(current_app).loads(
            session_cookie(client))["_user_id"]
    user_id, _token, session_id, secret = accounts.parse_cookie_id(cookie_id)
    row = session.get(accounts.SignInSession, session_id)
    assert row.user_id == user_id and row.ip == "10.1.2.3"
    assert secret not in row.secret_hash and len(row.secret_hash) == 64


@pytest.mark.parametrize("cookie_id", [
    "1:token",  # a cookie from before per-session sign-out
    "x:token:1:secret", "1:token:x:secret", "1::1:secret", "1:token:1:",
    "1:token:99999999999999999999:secret", "99999999999:token:1:secret",
])
def test_malformed_session_ids_are_simply_signed_out(app, cookie_id):
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = cookie_id
    assert client.get("/api/me").status_code == 401


def test_a_forged_secret_is_refused(app, session):
    client = app.test_client()
    assert login_json(client, "gulou-viewer").status_code == 200
    with app.test_request_context():
        from flask import current_app

        cookie_id = current_app.session_interface.get_signing_serializer(current_app).loads(
            session_cookie(client))["_user_id"]
    user_id, token, session_id, _secret = accounts.parse_cookie_id(cookie_id)
    forged = app.test_client()
    with forged.session_transaction() as sess:
        sess["_user_id"] = f"{user_id}:{token}:{session_id}:not-the-secret"
    assert forged.get("/api/me").status_code == 401
    assert client.get("/api/me").status_code == 200


def test_password_change_ends_other_sessions(app, session):
    client = app.test_client()
    assert login_json(client, "gulou-viewer").status_code == 200
    user = session.scalars(select(User).where(User.username == "gulou-viewer")).one()
    accounts.set_password(session, user, "A-brand-new-passw0rd")
    session.flush()
    assert client.get("/api/me").status_code == 401
    assert login_json(client, "gulou-viewer", "A-brand-new-passw0rd").status_code == 200


def test_deactivating_a_user_ends_their_sessions(app, session):
    # Every request checks the session's user (here in the database: the cache is
    # off for apps on a test transaction; test_actor_cache covers it), so this
    # takes effect on the very next request.
    client = app.test_client()
    assert login_json(client, "gulou-viewer").status_code == 200
    assert client.get("/api/me").get_json()["user"]["username"] == "gulou-viewer"
    user = session.scalars(select(User).where(User.username == "gulou-viewer")).one()
    user.active = False
    session.flush()
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/cameras/nearby?lon=116.8&lat=35.55").status_code == 401


@pytest.mark.parametrize("password", ["short1!", "onlyletterslong", "1234567890123", "x" * 129])
def test_weak_passwords_are_refused(session, password):
    from gridmap.errors import InvalidInput

    unit = accounts.unit_by_ref(session, "370812001")
    with pytest.raises(InvalidInput):
        accounts.create_user(session, "weak-pass-user", password, "viewer", unit)


# --------------------------------------------------------------------------- abuse


def test_sign_in_is_rate_limited_per_address(app):
    client = app.test_client()
    codes = [login_json(client, f"someone-{i}", "wrong-pass-1").status_code for i in range(10)]
    assert codes == [401] * 10
    eleventh = login_json(client, "district-operator")
    assert eleventh.status_code == 429
    # Another address is not affected.
    other = client.post("/login", json={"username": "district-viewer",
                                        "password": demo_password("district-viewer")},
                        environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 200


def test_repeated_failures_lock_the_address_out_of_the_account(app, session):
    # Per client address: test_login_lockout covers other addresses and unknown names.
    client = app.test_client()
    codes = [login_json(client, "gulou-patrol", "wrong-pass-1").status_code for _ in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    locked = login_json(client, "gulou-patrol")  # even the right password
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 60
    assert "too many failed sign-ins" in locked.get_json()["reason"]
    user = session.scalars(select(User).where(User.username == "gulou-patrol")).one()
    counter = session.scalars(select(accounts.SignInCounter).where(
        accounts.SignInCounter.user_id == user.id,
        accounts.SignInCounter.address == "127.0.0.1")).one()
    assert counter.locked_until > datetime.now(UTC)
    # When the lock runs out, the right password works again and resets the count.
    counter.locked_until = datetime.now(UTC) - timedelta(seconds=1)
    session.flush()
    assert login_json(client, "gulou-patrol").status_code == 200
    session.refresh(counter)
    assert counter.failures == 0 and counter.locked_until is None


def test_demo_users_are_refused_outside_demo_mode(connection, database_url, demo_accounts,
                                                  session):
    from web import create_app

    demo_app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                           "TEST_CONNECTION": connection, "WTF_CSRF_ENABLED": False})
    demo_client = demo_app.test_client()
    assert login_json(demo_client, "district-operator").status_code == 200
    unit = accounts.unit_by_ref(session, "370812001")
    accounts.create_user(session, "real-operator", "Real-passw0rd-42", "operator", unit)
    session.flush()

    prod = create_app({"TESTING": True, "DATABASE_URL": database_url,
                       "TEST_CONNECTION": connection, "WTF_CSRF_ENABLED": False,
                       "DEPLOYMENT": "production", "SECRET_KEY": "a-real-secret-key-for-tests"})
    client = prod.test_client()
    refused = login_json(client, "district-operator")
    assert refused.status_code == 403 and "demo" in refused.get_json()["reason"]
    assert login_json(client, "real-operator", "Real-passw0rd-42").status_code == 200
    # A demo session cookie carried over from a demo deployment stops working too.
    cookie = demo_client.get_cookie("gridmap_session")
    prod_client = prod.test_client()
    prod_client.set_cookie("gridmap_session", cookie.value)
    assert prod_client.get("/api/me").status_code == 401


def test_production_refuses_the_default_secret_key(database_url):
    from web import create_app

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"DEPLOYMENT": "production", "DATABASE_URL": database_url})


# --------------------------------------------------------------------------- CSRF


def test_state_changes_need_a_csrf_token(csrf_app, session):
    client = csrf_app.test_client()
    # Even signing in needs the form's token.
    assert client.post("/login", data={"username": "district-operator",
                                       "password": demo_password("district-operator")}
                       ).status_code == 400
    token = form_token(client)
    assert client.post("/login", data={"username": "district-operator", "csrf_token": token,
                                       "password": demo_password("district-operator")}
                       ).status_code == 302
    api_token = client.get("/api/me").get_json()["csrf_token"]
    gulou = accounts.unit_by_ref(session, "370812001").id
    gb_id = session.execute(text("SELECT gb_id FROM cameras WHERE grid_code LIKE '370812001%' "
                                 "ORDER BY gb_id LIMIT 1")).scalar()
    body = {"targets": [gulou], "cameras": {"gb_ids": [gb_id]}, "note": "csrf"}
    before = session.execute(text("SELECT count(*) FROM dispatch_orders")).scalar()
    missing = client.post("/api/dispatch", json=body)
    forged = client.post("/api/dispatch", json=body, headers={"X-CSRFToken": "forged." + "x" * 40})
    other_session = csrf_app.test_client()
    other_token = form_token(other_session)  # valid, but for another session
    stolen = client.post("/api/dispatch", json=body, headers={"X-CSRFToken": other_token})
    assert missing.status_code == forged.status_code == stolen.status_code == 400
    assert "CSRF" in missing.get_json()["reason"]
    assert session.execute(text("SELECT count(*) FROM dispatch_orders")).scalar() == before
    ok = client.post("/api/dispatch", json=body, headers={"X-CSRFToken": api_token})
    assert ok.status_code == 201, ok.get_json()
    # Other features' writes are covered by the same guard without doing anything.
    assert client.post(f"/api/cameras/{gb_id}/sample").status_code == 400
    assert client.patch(f"/api/cameras/{gb_id}", json={"name": "x"}).status_code == 400
    assert client.put("/api/grids/370812001001001/geometry", json={}).status_code == 400
    assert client.post("/logout").status_code == 400


def test_a_refused_csrf_token_and_a_lost_sign_in_say_so_in_the_callers_language(csrf_app):
    client = csrf_app.test_client()
    gone = client.post("/api/matters", json={}, headers={"Accept-Language": "zh-CN"})
    assert gone.status_code == 401
    assert gone.get_json()["message"] == "未登录或登录已过期，请重新登录"
    token = form_token(client)
    client.post("/login", data={"username": "district-operator", "csrf_token": token,
                                "password": demo_password("district-operator")})
    stale = client.post("/api/matters?lang=zh", json={}, headers={"X-CSRFToken": token + "x"})
    assert stale.status_code == 400 and stale.headers["X-Gridmap-Csrf"] == "stale"
    body = stale.get_json()
    assert body["details"] == {"csrf": True} and "CSRF" in body["reason"]
    assert body["message"].startswith("页面安全令牌（CSRF）缺失或已失效")
    # A form posted from a page gets the same reason on the error page.
    page = client.post("/logout", headers={"Accept": "text/html"})
    assert page.status_code == 400 and "页面安全令牌" in page.get_data(as_text=True)


def test_pages_carry_the_csrf_meta_tag_for_scripts(client):
    for path in ("/", "/wall", "/patrol", "/videowall"):
        html = client.get(path).get_data(as_text=True)
        assert '<meta name="csrf-token" content="' in html, path


# --------------------------------------------------------------------------- roles


def test_viewers_only_read(client_as, session):
    viewer = client_as("district-viewer")
    gb_id = session.execute(text("SELECT gb_id FROM cameras ORDER BY gb_id LIMIT 1")).scalar()
    assert viewer.get(f"/api/cameras/{gb_id}").status_code == 200
    assert viewer.patch(f"/api/cameras/{gb_id}", json={"name": "x"}).status_code == 403
    assert viewer.post("/api/dispatch", json={}).status_code == 403
    assert viewer.post("/logout").status_code == 302  # a viewer may still sign out


def test_data_edits_need_operators_or_grid_admins(client_as, session):
    gb_id = session.execute(text("SELECT gb_id FROM cameras WHERE grid_code LIKE '370812001%' "
                                 "ORDER BY gb_id LIMIT 1")).scalar()
    patrol = client_as("gulou-patrol")
    assert patrol.patch(f"/api/cameras/{gb_id}", json={"name": "改名"}).status_code == 403
    admin = client_as("gulou-gridadmin")
    assert admin.patch(f"/api/cameras/{gb_id}", json={"name": "改名"}).status_code == 200
    # The registry import upserts anywhere: the district only.
    assert admin.post("/api/cameras/import", data={}).status_code == 403


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_session(monkeypatch, connection):
    """Point the account commands at the test transaction."""
    import web.auth

    monkeypatch.setattr(
        web.auth, "_cli_session",
        lambda: Session(bind=connection, join_transaction_mode="create_savepoint"),
    )


def test_cli_manages_units_and_users(cli_session, session):
    from click.testing import CliRunner

    from web.cli import main

    runner = CliRunner()
    added = runner.invoke(main, ["units", "add", "测试社区站", "--kind", "community",
                                 "--code", "370812002001", "--parent", "370812002"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(main, ["units", "list"])
    assert "测试社区站" in listed.output and "370812002001" in listed.output
    bad = runner.invoke(main, ["units", "add", "坏社区", "--kind", "community", "--code", "12"])
    assert bad.exit_code != 0 and "12-digit" in bad.output
    user = runner.invoke(main, ["users", "add", "cli-user", "--unit", "370812002001",
                                "--role", "patrol_lead", "--password-stdin"],
                         input="Cli-passw0rd-1\n")
    assert user.exit_code == 0, user.output
    users = runner.invoke(main, ["users", "list"])
    assert "cli-user" in users.output and "Cli-passw0rd-1" not in users.output
    weak = runner.invoke(main, ["users", "passwd", "cli-user", "--password-stdin"], input="weak\n")
    assert weak.exit_code != 0
    changed = runner.invoke(main, ["users", "passwd", "cli-user", "--password-stdin"],
                            input="Another-passw0rd\n")
    assert changed.exit_code == 0, changed.output
    row = session.scalars(select(User).where(User.username == "cli-user")).one()
    assert row.role == "patrol_lead" and row.password_hash.startswith("scrypt:")
    for _ in range(2):
        accounts.open_sign_in_session(session, row, ip="10.9.8.7", user_agent="巡逻手机")
    session.execute(text("UPDATE sign_in_sessions SET last_seen_at = '2026-11-20 09:30+08' "
                         "WHERE user_id = :u"), {"u": row.id})
    listed = runner.invoke(main, ["users", "sessions", "cli-user"])
    assert listed.exit_code == 0 and "cli-user: 2 session(s)" in listed.output
    assert listed.output.count("\t2026-11-20 09:30\t10.9.8.7\t巡逻手机") == 2  # last used
    ended = runner.invoke(main, ["users", "sessions", "cli-user", "--end"])
    assert ended.exit_code == 0 and "2 session(s) ended" in ended.output, ended.output
    assert not session.scalars(select(accounts.SignInSession).where(
        accounts.SignInSession.user_id == row.id)).all()
    assert runner.invoke(main, ["users", "sessions", "nobody-here", "--end"]).exit_code != 0


def test_cli_demo_accounts_only_in_demo_mode(cli_session, monkeypatch):
    from click.testing import CliRunner

    from web.cli import main

    monkeypatch.setenv("GRIDMAP_DEPLOYMENT", "production")
    refused = CliRunner().invoke(main, ["users", "demo"])
    assert refused.exit_code != 0 and "demo" in refused.output
    monkeypatch.setenv("GRIDMAP_DEPLOYMENT", "demo")
    ok = CliRunner().invoke(main, ["users", "demo"])
    assert ok.exit_code == 0 and "0 users added" in ok.output


def test_demo_accounts_cover_every_tier_and_role(session):
    rows = session.execute(text(
        "SELECT DISTINCT un.tier, un.kind, u.role FROM users u JOIN units un ON un.id = u.unit_id "
        "WHERE u.is_demo")).all()
    kinds = {(kind, role) for _tier, kind, role in rows}
    for kind in ("district", "town", "department", "community"):
        for role in accounts.ROLES:
            assert (kind, role) in kinds
    assert {tier for tier, _k, _r in rows} == {1, 2, 3}
