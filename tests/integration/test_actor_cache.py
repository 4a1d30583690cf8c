"""The sign-in check's cache, on the real server: changes committed anywhere end its entries.

These tests commit (a probe user of their own, removed afterwards): notifications
are sent only on commit, so the rolled-back test transaction cannot show them.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gridmap import accounts, notify
from tests.conftest import sign_in_client
from web import create_app
from web.auth import ThrottledRefreshSessionInterface

PROBE_PASSWORD = "Cache-probe-passw0rd"


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    """Poll until predicate() is true; return whether it became true in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def probe_user(engine, demo_accounts):
    """A committed viewer of the district center, deleted afterwards."""
    name = f"cache-probe-{uuid.uuid4().hex[:8]}"
    with Session(engine) as s:
        unit = s.scalars(select(accounts.Unit).where(accounts.Unit.tier == 1)).first()
        accounts.create_user(s, name, PROBE_PASSWORD, "viewer", unit)
        s.commit()
    yield name
    with Session(engine) as s:
        s.execute(delete(accounts.User).where(accounts.User.username == name))
        s.commit()


@pytest.fixture
def cached_app(database_url, demo_accounts):
    """An app on the real server (no test transaction), so its sign-in cache is on."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url})
    cache = app.extensions["gridmap.actor_cache"]
    assert wait_for(lambda: cache.generation() is not None), "the watcher never listened"
    return app


@pytest.fixture
def probe_client(cached_app, probe_user):
    client = sign_in_client(cached_app, cached_app.test_client(), probe_user)
    # The fixtures' own commits are announced a moment later: let that pass, so a
    # test's entries are not ended by them.
    time.sleep(0.3)
    return client


def count_loads(monkeypatch) -> list[int]:
    """Count the sign-in check's database reads (the real function still runs)."""
    calls: list[int] = []
    real = accounts.load_session_actor

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(accounts, "load_session_actor", counted)
    return calls


def test_a_signed_in_caller_is_read_once_while_nothing_changes(probe_client, probe_user,
                                                               monkeypatch):
    loads = count_loads(monkeypatch)
    for _ in range(5):
        me = probe_client.get("/api/me")
        assert me.status_code == 200
        assert me.get_json()["user"]["username"] == probe_user
    assert len(loads) == 1


def test_cache_off_reads_every_request(database_url, probe_user, monkeypatch):
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "SESSION_CACHE_SECONDS": 0})
    assert "gridmap.actor_cache" not in app.extensions
    client = sign_in_client(app, app.test_client(), probe_user)
    loads = count_loads(monkeypatch)
    for _ in range(3):
        assert client.get("/api/me").status_code == 200
    assert len(loads) == 3


def test_deactivation_committed_by_another_process_ends_the_session(probe_client, probe_user,
                                                                    database_url):
    assert probe_client.get("/api/me").status_code == 200
    # A separate connection, as the CLI or a second app process would commit it.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET active = false WHERE username = %s", (probe_user,))
    assert wait_for(lambda: probe_client.get("/api/me").status_code == 401)


def test_a_password_change_committed_here_takes_effect_on_the_next_request(
        cached_app, probe_client, probe_user):
    assert probe_client.get("/api/me").status_code == 200
    with cached_app.extensions["gridmap.sessions"]() as s:
        user = s.scalars(select(accounts.User).where(accounts.User.username == probe_user)).one()
        accounts.set_password(s, user, "An0ther-new-passw0rd")
        s.commit()
    # No waiting: this process counted its own commit before the notification came.
    assert probe_client.get("/api/me").status_code == 401


def test_a_rolled_back_change_keeps_the_entry(cached_app, probe_client, probe_user,
                                              monkeypatch):
    assert probe_client.get("/api/me").status_code == 200
    loads = count_loads(monkeypatch)
    with cached_app.extensions["gridmap.sessions"]() as s:
        user = s.scalars(select(accounts.User).where(accounts.User.username == probe_user)).one()
        user.active = False
        s.flush()
        s.rollback()
    assert probe_client.get("/api/me").status_code == 200
    assert loads == []


CHANGES = {
    "users": "UPDATE users SET role = role WHERE false",
    "sign_in_sessions": "DELETE FROM sign_in_sessions WHERE false",
    "units": "UPDATE units SET name = name WHERE false",
    "dispatch_orders": "UPDATE dispatch_orders SET state = state WHERE false",
    "dispatch_targets": "DELETE FROM dispatch_targets WHERE false",
}


@pytest.fixture
def listener(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {notify.ACTOR_CHANNEL}")
        yield conn


@pytest.mark.parametrize("table", sorted(CHANGES))
def test_writes_to_what_the_check_reads_are_announced(listener, database_url, table):
    # Statement triggers fire even when no row matches: nothing is changed here.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(CHANGES[table])
    notes = list(listener.notifies(timeout=2.0, stop_after=1))
    assert [n.payload for n in notes] == [table]


def test_sign_in_bookkeeping_is_not_announced(listener, database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET last_login_at = last_login_at, "
                     "failed_attempts = failed_attempts WHERE false")
    assert list(listener.notifies(timeout=0.5)) == []


def test_stamping_a_sign_in_as_used_is_not_announced(listener, database_url):
    # The stamp changes nothing the sign-in check reads.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE sign_in_sessions SET last_seen_at = now() WHERE false")
    assert list(listener.notifies(timeout=0.5)) == []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE sign_in_sessions SET secret_hash = secret_hash WHERE false")
    assert [n.payload for n in listener.notifies(timeout=2.0, stop_after=1)] == [
        "sign_in_sessions"]


def test_a_refreshed_cookie_stamps_its_sign_in_and_keeps_the_cache(probe_client, probe_user,
                                                                    database_url, monkeypatch):
    def last_seen():
        with psycopg.connect(database_url) as conn:
            return conn.execute(
                "SELECT s.last_seen_at FROM sign_in_sessions s JOIN users u ON u.id = s.user_id "
                "WHERE u.username = %s", (probe_user,)).fetchone()[0]

    assert probe_client.get("/api/me").status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE sign_in_sessions SET last_seen_at = now() - interval '1 hour' "
                     "FROM users u WHERE u.id = user_id AND u.username = %s", (probe_user,))
    hour_ago = last_seen()
    loads = count_loads(monkeypatch)
    # Within a minute of the last refresh the cookie is not re-signed: no stamp.
    assert probe_client.get("/api/me").status_code == 200
    assert last_seen() == hour_ago
    # A minute later (here: a second, the interval shortened) it is, and stamped.
    monkeypatch.setattr(ThrottledRefreshSessionInterface, "refresh_interval_s", 1)
    time.sleep(1.1)
    answer = probe_client.get("/api/me")
    assert answer.status_code == 200 and "Set-Cookie" in answer.headers
    assert (last_seen() - hour_ago).total_seconds() > 3500
    time.sleep(0.3)  # a notification, had there been one, would have arrived
    assert probe_client.get("/api/me").status_code == 200
    assert loads == []  # the stamp ended no cached sign-in
    # Re-signed again, but this process stamped the sign-in less than a minute ago
    # (what a script sending its first cookie every time would cause): no write.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE sign_in_sessions SET last_seen_at = %s "
                     "FROM users u WHERE u.id = user_id AND u.username = %s",
                     (hour_ago, probe_user))
    time.sleep(1.1)
    answer = probe_client.get("/api/me")
    assert answer.status_code == 200 and "Set-Cookie" in answer.headers
    assert last_seen() == hour_ago


def test_a_new_sign_in_is_not_announced(listener, database_url):
    # Nothing can be cached for a session that did not exist.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO sign_in_sessions (user_id, secret_hash) "
                     "SELECT id, 'x' FROM users WHERE false")
    assert list(listener.notifies(timeout=0.5)) == []


def test_a_sign_out_committed_elsewhere_ends_the_session(probe_client, probe_user,
                                                          database_url):
    assert probe_client.get("/api/me").status_code == 200
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM sign_in_sessions WHERE user_id = "
                     "(SELECT id FROM users WHERE username = %s)", (probe_user,))
    assert wait_for(lambda: probe_client.get("/api/me").status_code == 401)


def test_a_rolled_back_write_is_not_announced(listener, database_url):
    with psycopg.connect(database_url) as conn:
        conn.execute(CHANGES["users"])
        conn.rollback()
    assert list(listener.notifies(timeout=0.5)) == []


def test_the_watcher_counts_changes_committed_anywhere(database_url):
    watch = notify.watcher(database_url)
    assert wait_for(lambda: watch.generation() is not None)
    before = watch.generation()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(CHANGES["units"])
    assert wait_for(lambda: watch.generation() != before)


def test_a_cut_listener_stops_the_cache_until_it_listens_again(cached_app, database_url,
                                                                probe_client, monkeypatch):
    watch = notify.watcher(database_url)
    assert probe_client.get("/api/me").status_code == 200
    before = watch.generation()
    with psycopg.connect(database_url, autocommit=True) as conn:
        cut = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'gridmap-listen' "
                           "AND datname = current_database()").fetchall()
    assert cut and all(ok for (ok,) in cut)
    # A notification sent while it was cut is lost, so nothing read before counts.
    assert wait_for(lambda: watch.generation() not in (None, before))
    loads = count_loads(monkeypatch)
    assert probe_client.get("/api/me").status_code == 200
    assert len(loads) == 1
    again = watch.generation()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(CHANGES["users"])
    assert wait_for(lambda: watch.generation() != again)  # listening again


def test_an_unreachable_database_is_never_trusted():
    watch = notify.ChangeWatcher("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1",
                                 notify.ACTOR_CHANNEL)
    try:
        for _ in range(10):
            assert watch.generation() is None
            time.sleep(0.05)
    finally:
        watch.close()
