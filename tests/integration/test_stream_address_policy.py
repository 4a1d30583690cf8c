"""Camera URLs are no internal port scanner: the address policy where the server connects.

A grid admin may point their own camera anywhere a URL can name; "check now", the
sampler and the live relay must then refuse loopback, link-local and metadata
addresses before connecting, and say so with one reason whatever listens there.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from sqlalchemy import text

from gridmap.config import pg_port
from video.netpolicy import REASONS

COMMUNITY = "370812001001"  # 东永安社区: community-gridadmin's and community-viewer's scope


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        time.sleep(0.3)  # a connection on its way would land by now
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener():
    running = Listener()
    yield running
    running.close()


def make_app(connection, database_url, **config):
    from web import create_app

    return create_app({"TESTING": True, "DATABASE_URL": database_url,
                       "TEST_CONNECTION": connection, "WTF_CSRF_ENABLED": False, **config})


def own_camera(session) -> str:
    """Return a camera in community-gridadmin's community, without a stored login."""
    gb_id = session.execute(
        text("SELECT gb_id FROM cameras WHERE grid_code LIKE :p || '%' ORDER BY gb_id LIMIT 1"),
        {"p": COMMUNITY},
    ).scalar_one()
    session.execute(text("DELETE FROM camera_credentials WHERE camera_id = "
                         "(SELECT id FROM cameras WHERE gb_id = :g)"), {"g": gb_id})
    return gb_id


def patch_url(client, gb_id: str, url: str) -> None:
    resp = client.patch(f"/api/cameras/{gb_id}", json={"main_url": url, "sub_url": url})
    assert resp.status_code == 200, resp.get_json()


def samples_of(session, gb_id: str) -> int:
    return session.execute(
        text("SELECT count(*) FROM camera_samples s JOIN cameras c ON c.id = s.camera_id "
             "WHERE c.gb_id = :g"), {"g": gb_id}).scalar()


def sample(app, client, gb_id: str):
    from web.blueprints.health import shutdown_prober

    try:
        return client.post(f"/api/cameras/{gb_id}/sample")
    finally:
        shutdown_prober(app)


@pytest.mark.parametrize("url, kind", [
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://127.0.0.1:{db}/", "loopback"),
    ("http://[::1]:{db}/", "loopback"),
    ("http://0x7f000001:{db}/", "loopback"),
    ("http://[fe80::1]/", "link_local"),
    ("http://0.0.0.0:{db}/", "unspecified"),
    ("rtsp://localhost:{db}/x", "loopback"),
])
def test_check_now_refuses_internal_addresses_without_probing(
        connection, database_url, demo_accounts, session, url, kind):
    app = make_app(connection, database_url, ALLOW_LOOPBACK_STREAMS=0)
    from tests.conftest import sign_in_client

    admin = sign_in_client(app, app.test_client(), "community-gridadmin")
    gb_id = own_camera(session)
    patch_url(admin, gb_id, url.format(db=pg_port()))
    before = samples_of(session, gb_id)
    started = time.monotonic()
    resp = sample(app, admin, gb_id)
    assert resp.status_code == 403, resp.get_json()
    body = resp.get_json()
    assert body["reason"] == REASONS[kind]
    assert body["message"].startswith("不允许访问该视频流地址")
    assert time.monotonic() - started < 3  # refused at once, no open timeout waited for
    assert samples_of(session, gb_id) == before  # nothing probed, nothing recorded


def test_a_refused_address_gets_no_connection_and_no_port_state(
        connection, database_url, demo_accounts, session, listener):
    from tests.conftest import sign_in_client

    app = make_app(connection, database_url, ALLOW_LOOPBACK_STREAMS=0)
    admin = sign_in_client(app, app.test_client(), "community-gridadmin")
    patrol = sign_in_client(app, app.test_client(), "community-patrol")
    gb_id = own_camera(session)
    answers = []
    # An open port (the listener), a closed one and the database answer alike.
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        closed = reserved.getsockname()[1]
        for port in (listener.port, closed, pg_port()):
            patch_url(admin, gb_id, f"http://127.0.0.1:{port}/")
            for who in (admin, patrol):
                resp = sample(app, who, gb_id)
                answers.append((resp.status_code, resp.get_json()["reason"]))
    assert set(answers) == {(403, REASONS["loopback"])}
    assert listener.accepted == 0


def test_the_live_relay_refuses_before_starting(connection, database_url, demo_accounts,
                                                session, listener):
    from tests.conftest import sign_in_client

    app = make_app(connection, database_url, ALLOW_LOOPBACK_STREAMS=0, RELAY_MAX=1)
    admin = sign_in_client(app, app.test_client(), "community-gridadmin")
    viewer = sign_in_client(app, app.test_client(), "community-viewer")
    gb_id = own_camera(session)
    for url, kind in ((f"http://127.0.0.1:{listener.port}/video", "loopback"),
                      ("http://169.254.169.254/latest/meta-data/", "metadata")):
        patch_url(admin, gb_id, url)
        started = time.monotonic()
        resp = viewer.get(f"/cameras/{gb_id}/live.mjpeg", headers={"Accept": "image/*"})
        assert resp.status_code == 403, resp.get_data(as_text=True)
        assert resp.get_json()["reason"] == REASONS[kind]
        assert time.monotonic() - started < 3
        # The slot is free again: the refusal started no relay.
        assert viewer.get("/api/relay/status").get_json() == {"active": 0, "cap": 1}
    assert listener.accepted == 0


def test_the_sampler_records_address_refused_instead_of_trying(
        engine, session, listener, monkeypatch, tmp_path):
    from video.probe import ErrorClass, Health, Prober
    from video.sampler import Sampler, SamplerConfig, claim, record

    monkeypatch.setenv("GRIDMAP_ALLOW_LOOPBACK_STREAMS", "0")
    session.execute(text("UPDATE cameras SET next_due_at = now() + interval '1 day'"))
    cam_id = session.execute(text("SELECT id FROM cameras ORDER BY id LIMIT 1")).scalar()
    session.execute(
        text("UPDATE cameras SET main_url = :u, sub_url = :u, next_due_at = now() - interval "
             "'1 minute', lease_owner = NULL, lease_until = NULL WHERE id = :id"),
        {"u": f"rtsp://127.0.0.1:{listener.port}/cam", "id": cam_id})
    session.execute(text("DELETE FROM camera_credentials WHERE camera_id = :id"), {"id": cam_id})
    [claimed] = claim(session, "policy-test", 5, 60)
    with Prober(processes=1, threads_per_process=1) as prober:
        sampler = Sampler(engine, SamplerConfig(snapshot_dir=tmp_path), prober=prober)
        result = prober.probe(sampler._request(claimed))  # through a real worker process
    assert result.health is Health.OFFLINE and result.error is ErrorClass.ADDRESS_REFUSED
    assert result.detail == REASONS["loopback"] and result.elapsed_ms < 1000
    assert record(session, claimed, result, sampler="policy-test", delay_s=60)
    error, status = session.execute(
        text("SELECT s.error, c.status FROM camera_samples s JOIN cameras c ON c.id = s.camera_id "
             "WHERE s.camera_id = :id ORDER BY s.sampled_at DESC LIMIT 1"), {"id": cam_id}).one()
    assert (error, status) == ("address_refused", "offline")
    assert listener.accepted == 0


@pytest.fixture(scope="module")
def demo_streams(tmp_path_factory):
    """Real local demo stream servers on free loopback ports."""
    from video.streams import serve_demo_streams

    with serve_demo_streams(tmp_path_factory.mktemp("policy-streams"), 0,
                            password="Policy-Stream-9", seconds=3.0,
                            include_uhd=False) as running:
        yield running


def test_allowed_loopback_streams_still_work_but_never_the_servers_own_ports(
        connection, database_url, demo_accounts, session, demo_streams, monkeypatch, tmp_path):
    from tests.conftest import sign_in_client

    monkeypatch.setenv("GRIDMAP_VAR_DIR", str(tmp_path))
    app = make_app(connection, database_url, ALLOW_LOOPBACK_STREAMS=1)
    admin = sign_in_client(app, app.test_client(), "community-gridadmin")
    gb_id = own_camera(session)
    slot = next(s for s in demo_streams.manifest()
                if s.kind == "mjpeg" and s.expected == "online" and not s.username)
    patch_url(admin, gb_id, slot.url)
    resp = sample(app, admin, gb_id)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["health"] in ("online", "degraded")
    # Loopback allowed is not the database, the app or the sampler's metrics.
    for port in (pg_port(), 9108):
        patch_url(admin, gb_id, f"http://127.0.0.1:{port}/")
        refused = sample(app, admin, gb_id)
        assert refused.status_code == 403
        assert refused.get_json()["reason"] == REASONS["service_port"]


def test_demo_mode_allows_the_demo_stream_servers_and_nothing_else_on_loopback(
        connection, database_url, demo_accounts, session, demo_streams, listener,
        monkeypatch, tmp_path):
    from tests.conftest import sign_in_client

    monkeypatch.setenv("GRIDMAP_VAR_DIR", str(tmp_path))
    slot = next(s for s in demo_streams.manifest()
                if s.kind == "mjpeg" and s.expected == "online" and not s.username)
    monkeypatch.setenv("GRIDMAP_STREAMS_PORT", str(demo_streams.ports.http))
    app = make_app(connection, database_url, ALLOW_LOOPBACK_STREAMS="demo")
    admin = sign_in_client(app, app.test_client(), "community-gridadmin")
    gb_id = own_camera(session)
    patch_url(admin, gb_id, slot.url)
    resp = sample(app, admin, gb_id)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["health"] in ("online", "degraded")
    patch_url(admin, gb_id, f"http://127.0.0.1:{listener.port}/video")
    refused = sample(app, admin, gb_id)
    assert refused.status_code == 403 and refused.get_json()["reason"] == REASONS["loopback"]
    assert listener.accepted == 0

