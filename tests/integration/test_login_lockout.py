"""Failed sign-ins lock one address out of one name, and say nothing about which names exist.

The counters are kept per (name, client address) for every name tried: an unknown
name answers exactly like an account, a guesser at one address cannot lock the
operator at another out, and guessing spread over many addresses only delays
addresses that never signed in to the account.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from gridmap import accounts
from gridmap.accounts import DEMO_USERS, User

PASSWORDS = {u.username: u.password for u in DEMO_USERS}
WRONG = "Wrong-passw0rd-1"
# Headers that differ from one answer to the next whatever the name: the clock and
# the rate limiter's window. The limiter also rewrites Retry-After, to the later of
# the app's and its own window's end, by the wall clock (so it may be a second short).
VARYING_HEADERS = {"Date", "X-RateLimit-Reset", "Content-Length", "Retry-After"}


class Clock:
    """The sign-in counters' clock, moved on by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    frozen = Clock()
    monkeypatch.setattr(accounts, "_utcnow", frozen)
    return frozen


def sign_in(client, username: str, password: str | None = None, *, ip: str,
            lang: str | None = None):
    return client.post("/login" + (f"?lang={lang}" if lang else ""),
                       json={"username": username, "password": password or PASSWORDS[username]},
                       environ_base={"REMOTE_ADDR": ip})


def answer(resp) -> tuple:
    headers = sorted((k, v) for k, v in resp.headers.items() if k not in VARYING_HEADERS)
    return resp.status_code, resp.get_json(), headers


def retry_after(resp) -> int:
    return int(resp.headers["Retry-After"])


def about(seconds: int):
    """Return what a Retry-After of the app's ``seconds`` reads as after the limiter."""
    return pytest.approx(seconds, abs=1)


def audit_rows(session, action: str) -> list[dict]:
    rows = session.execute(text(
        "SELECT username, status, detail FROM audit_log WHERE action = :a ORDER BY id"),
        {"a": action})
    return [dict(r._mapping) for r in rows]


def test_an_unknown_name_answers_exactly_like_an_account(app, session, clock, monkeypatch):
    hashes_checked = []
    real_check = accounts.check_password_hash

    def counting_check(pwhash: str, password: str) -> bool:
        hashes_checked[-1] += 1
        return real_check(pwhash, password)

    monkeypatch.setattr(accounts, "check_password_hash", counting_check)
    client = app.test_client()
    runs = {}
    for name, ip in (("water-operator", "10.40.0.1"), ("nosuchuser-zz", "10.40.0.2")):
        answers, retries, checks = [], [], []
        for _ in range(7):
            hashes_checked.append(0)
            resp = sign_in(client, name, WRONG, ip=ip)
            answers.append(answer(resp))
            retries.append(retry_after(resp) if resp.status_code == 429 else None)
            checks.append(hashes_checked[-1])
        runs[name] = answers, retries, checks

    known, unknown = runs["water-operator"], runs["nosuchuser-zz"]
    assert [a[0] for a in known[0]] == [401, 401, 401, 401, 429, 429, 429]
    assert unknown[0] == known[0]  # statuses, bodies (reason, message), headers
    assert known[1][:4] == unknown[1][:4] == [None] * 4
    assert known[1][4:] == [about(900)] * 3 and unknown[1][4:] == [about(900)] * 3
    # The same work: a password hash is checked until the address is locked out.
    assert unknown[2] == known[2] == [1, 1, 1, 1, 1, 0, 0]
    # The lock of a name that is no account is audited without the name.
    locks = audit_rows(session, "auth.locked")
    assert [r["username"] for r in locks] == ["water-operator"] * 3 + [None] * 3
    assert {r["detail"]["scope"] for r in locks} == {"address"}


def test_a_guesser_at_one_address_cannot_lock_the_operator_out(app, session, clock):
    operator = app.test_client()
    assert sign_in(operator, "district-operator", ip="10.20.0.5").status_code == 200
    attacker = app.test_client()
    codes = [sign_in(attacker, "district-operator", WRONG, ip="10.66.0.1").status_code
             for _ in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    # The guesser's address is locked out, even with the right password ...
    locked = sign_in(attacker, "district-operator", ip="10.66.0.1")
    assert locked.status_code == 429 and retry_after(locked) == about(900)
    # ... while the operator's session lives on and a new sign-in elsewhere works.
    assert operator.get("/api/me").status_code == 200
    assert sign_in(app.test_client(), "district-operator", ip="10.20.0.5").status_code == 200
    assert sign_in(app.test_client(), "district-operator", ip="10.20.0.77").status_code == 200
    # When the lock runs out, the guesser's address may try again.
    clock.advance(minutes=15, seconds=1)
    assert sign_in(attacker, "district-operator", WRONG, ip="10.66.0.1").status_code == 401


def test_a_successful_sign_in_clears_only_its_own_addresses_count(app, clock):
    client = app.test_client()
    a, b = "10.30.0.1", "10.30.0.2"
    assert [sign_in(client, "gulou-patrol", WRONG, ip=a).status_code
            for _ in range(4)] == [401] * 4
    assert [sign_in(client, "gulou-patrol", WRONG, ip=b).status_code
            for _ in range(4)] == [401] * 4
    assert sign_in(client, "gulou-patrol", ip=b).status_code == 200
    # B starts again from nothing ...
    assert [sign_in(client, "gulou-patrol", WRONG, ip=b).status_code
            for _ in range(4)] == [401] * 4
    # ... A still has its four.
    assert sign_in(client, "gulou-patrol", WRONG, ip=a).status_code == 429


def test_an_ipv6_client_is_counted_by_its_64(app, clock):
    client = app.test_client()
    codes = [sign_in(client, "gulou-viewer", WRONG, ip=f"2001:db8:0:7::{i}").status_code
             for i in range(1, 6)]
    assert codes == [401, 401, 401, 401, 429]
    assert sign_in(client, "gulou-viewer", ip="2001:db8:0:7::99").status_code == 429
    assert sign_in(client, "gulou-viewer", ip="2001:db8:0:8::1").status_code == 200


@pytest.fixture
def low_ceiling_app(connection, database_url, demo_accounts):
    from web import create_app

    return create_app({"TESTING": True, "DATABASE_URL": database_url,
                       "TEST_CONNECTION": connection, "WTF_CSRF_ENABLED": False,
                       "LOCKOUT_ACCOUNT_CEILING": 3})


def test_guessing_from_many_addresses_delays_only_addresses_new_to_the_account(
        low_ceiling_app, clock):
    client = low_ceiling_app.test_client()
    own = "10.50.0.1"
    assert sign_in(client, "police-operator", ip=own).status_code == 200
    runs = {}
    for name, net in (("police-operator", "10.51"), ("no-such-operator", "10.52")):
        codes = [sign_in(client, name, WRONG, ip=f"{net}.0.{i}").status_code
                 for i in range(1, 5)]
        refused = sign_in(client, name, WRONG, ip=f"{net}.1.1")
        runs[name] = codes, answer(refused)
    assert runs["police-operator"] == runs["no-such-operator"]
    codes, (status, body, _) = runs["police-operator"]
    assert codes == [401, 401, 401, 429]  # the fourth passes the ceiling of 3
    assert status == 429
    assert body["reason"] == accounts.NAME_THROTTLED
    assert body["message"] == "该账号登录失败次数过多，请稍后再试"
    # The delay (2 s; the limiter may announce its own minute) holds even the right
    # password from a new address, but not from one the account signed in from.
    assert sign_in(client, "police-operator", ip="10.53.0.1").status_code == 429
    assert sign_in(client, "police-operator", ip=own).status_code == 200
    clock.advance(seconds=3)
    # Each further failure doubles it: 4 s now.
    assert sign_in(client, "police-operator", WRONG, ip="10.51.2.1").status_code == 429
    clock.advance(seconds=3)
    assert sign_in(client, "police-operator", ip="10.53.0.1").status_code == 429
    clock.advance(seconds=2)
    assert sign_in(client, "police-operator", ip="10.53.0.1").status_code == 200


@pytest.mark.parametrize(("lang", "message"), [
    ("zh", "此地址登录失败次数过多，请稍后再试"),
    ("en", "Too many failed sign-ins from this address; try again later"),
])
def test_a_locked_out_address_is_told_so_in_its_language(app, clock, lang, message):
    client = app.test_client()
    for _ in range(5):
        resp = sign_in(client, "daan-operator", WRONG, ip="10.60.0.1", lang=lang)
    assert resp.status_code == 429
    assert resp.get_json()["reason"] == accounts.ADDRESS_LOCKED
    assert resp.get_json()["message"] == message
    page = client.post(f"/login?lang={lang}",
                       data={"username": "daan-operator", "password": WRONG},
                       headers={"Accept": "text/html"}, environ_base={"REMOTE_ADDR": "10.60.0.1"})
    assert page.status_code == 429 and retry_after(page) == about(900)
    assert message in page.get_data(as_text=True)


def test_the_lock_reasons_read_in_chinese():
    from web.reasons import localize

    for reason in (accounts.ADDRESS_LOCKED, accounts.NAME_THROTTLED):
        assert localize(reason, "zh").endswith("登录失败次数过多，请稍后再试")


def test_counters_keep_no_readable_name_and_a_new_password_clears_them(app, session, clock):
    client = app.test_client()
    # Rows from before this test (the browser tests sign in and commit) are left out.
    before = set(session.execute(text("SELECT name_key, address FROM sign_in_counters")).all())
    for name, ip in (("emergency-operator", "10.70.0.1"), ("Typed-Passw0rd-99", "10.70.0.2")):
        for _ in range(5):
            sign_in(client, name, WRONG, ip=ip)
    rows = session.execute(text("SELECT * FROM sign_in_counters")).all()
    assert rows and "passw0rd" not in str(rows).lower() and "emergency" not in str(rows)
    user = session.scalars(select(User).where(User.username == "emergency-operator")).one()
    assert accounts.sign_in_lockouts(session, clock.now)[user.id] == ["10.70.0.1"]
    assert sign_in(client, "emergency-operator", ip="10.70.0.1").status_code == 429
    accounts.set_password(session, user, "A-brand-new-passw0rd")  # `gridmap users passwd`
    session.flush()
    assert user.id not in accounts.sign_in_lockouts(session, clock.now)
    assert sign_in(client, "emergency-operator", "A-brand-new-passw0rd",
                   ip="10.70.0.1").status_code == 200
    # Rows that say nothing any more go at the next sign-in; an address that signed
    # in stays the account's own for 30 days.
    clock.advance(hours=25)
    assert sign_in(client, "emergency-operator", WRONG, ip="10.70.0.3").status_code == 401
    left = session.execute(text(
        "SELECT name_key, address, failures, succeeded_at IS NOT NULL FROM sign_in_counters"
    )).all()
    assert sorted(tuple(r[1:]) for r in left if (r[0], r[1]) not in before) == [
        ("*", 1, False), ("10.70.0.1", 0, True), ("10.70.0.3", 1, False)]


@pytest.mark.parametrize("hops, counted", [(0, "127.0.0.1"), (1, "10.80.0.9")])
def test_the_client_address_comes_from_a_trusted_proxy_only(
        connection, database_url, demo_accounts, session, hops, counted):
    from web import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "TEST_CONNECTION": connection, "WTF_CSRF_ENABLED": False,
                      "PROXY_HOPS": hops})
    before = set(session.execute(text("SELECT name_key, address FROM sign_in_counters")).all())
    client = app.test_client()
    # Without a proxy to trust, the header is anyone's to forge and is ignored.
    # A name nobody else tries (unknown names are counted like accounts).
    resp = client.post("/login", json={"username": f"proxy-test-{hops}", "password": WRONG},
                       headers={"X-Forwarded-For": "10.80.0.9"},
                       environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert resp.status_code == 401
    new = {address for key, address in session.execute(
        text("SELECT name_key, address FROM sign_in_counters")).all()
        if (key, address) not in before and address != "*"}
    assert new == {counted}


@pytest.mark.parametrize("hops", [-1, 6, "two", True])
def test_a_bad_proxy_hops_setting_stops_the_app(database_url, hops):
    from web import ConfigError, create_app

    with pytest.raises(ConfigError, match="PROXY_HOPS"):
        create_app({"TESTING": True, "DATABASE_URL": database_url, "PROXY_HOPS": hops})
