"""The stream address policy (video.netpolicy): where the server may open camera streams."""

from __future__ import annotations

import ipaddress
import json
import pickle
import socket
import threading
import time
from pathlib import Path

import pytest

from video import netpolicy
from video.netpolicy import (
    REASONS,
    AddressPolicy,
    AddressRefused,
    HostNotFound,
    parse_ip,
    parse_loopback,
    parse_networks,
)

NO_LOCAL = (frozenset(), frozenset())


def policy(**kwargs) -> AddressPolicy:
    """A policy that knows no local interface addresses unless told (deterministic)."""
    kwargs.setdefault("local_addresses", lambda: NO_LOCAL)
    return AddressPolicy(**kwargs)


def no_dns(host, port):
    raise AssertionError(f"DNS must not be asked for {host!r}")


def refusal(p: AddressPolicy, url: str, resolver=no_dns) -> str | None:
    try:
        p.check_url(url, resolver=resolver)
    except AddressRefused as exc:
        return exc.kind
    return None


@pytest.mark.parametrize("url, kind", [
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://169.254.10.1/", "link_local"),
    ("http://[fe80::1]/", "link_local"),
    ("http://[fe80::1%25eth0]:8080/", "link_local"),
    ("http://100.100.100.200/latest/meta-data/", "metadata"),  # Alibaba Cloud, inside CGNAT
    ("http://168.63.129.16/", "metadata"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://127.0.0.1:55432/", "loopback"),
    ("http://127.8.9.10/", "loopback"),
    ("http://[::1]:5000/", "loopback"),
    ("http://0x7f000001/", "loopback"),  # hex
    ("http://2130706433/", "loopback"),  # decimal
    ("http://0177.0.0.1/", "loopback"),  # octal
    ("http://0x7f.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped IPv6
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[::ffff:169.254.169.254]/", "metadata"),
    ("http://[64:ff9b::7f00:1]/", "loopback"),  # NAT64
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4
    ("http://[::127.0.0.1]/", "loopback"),  # IPv4-compatible
    ("http://localhost:9108/metrics", "loopback"),
    ("rtsp://LOCALHOST./x", "loopback"),
    ("rtsp://cam.localhost/x", "loopback"),
    ("http://ip6-localhost/", "loopback"),
    ("http://0.0.0.0:5000/", "unspecified"),
    ("http://0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("rtsp://224.1.2.3/x", "multicast"),
    ("rtsp://[ff02::1]/x", "multicast"),
    ("rtsp://255.255.255.255/x", "broadcast"),
    ("rtsp://240.0.0.1/x", "reserved"),
])
def test_what_the_server_never_opens(url, kind):
    assert refusal(policy(), url) == kind


@pytest.mark.parametrize("url", [
    "rtsp://10.1.2.3/Streaming/Channels/101",
    "rtsp://172.16.0.9:554/h264",
    "rtsp://172.31.255.254/h264",
    "http://192.168.1.64/ISAPI/stream.m3u8",
    "rtsps://100.64.0.1/live",  # CGNAT
    "rtsp://100.127.255.254/live",
    "https://[fd12:3456::7]/live.m3u8",  # unique local IPv6
    "rtsp://203.0.113.7/x",
    "rtsp://[2001:db8::7]/x",
    "http://0x0a000001/",  # 10.0.0.1 in hex is still a private camera
])
def test_private_and_public_camera_networks_stay_open(url):
    assert refusal(policy(), url) is None


def test_numeric_forms_are_read_as_inet_aton_reads_them():
    assert parse_ip("0x7f000001") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_ip("2130706433") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_ip("017700000001") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_ip("10.1") == ipaddress.IPv4Address("10.0.0.1")
    assert parse_ip("192.168.257") == ipaddress.IPv4Address("192.168.1.1")
    assert parse_ip("[::1]") == ipaddress.IPv6Address("::1")
    for name in ("camera.example", "256.1.1.1", "1.2.3.4.5", "08.1.1.1", "cam-01", "[nope]"):
        assert parse_ip(name) is None, name


def test_host_names_are_resolved_and_every_address_checked():
    p = policy()
    seen = []

    def resolver(host, port):
        seen.append((host, port))
        return {"cam.example": ["10.0.0.7"], "evil.example": ["10.0.0.8", "127.0.0.1"],
                "meta.example": ["169.254.169.254"]}[host]

    target = p.check_url("rtsp://cam.example/x", resolver=resolver)
    assert target.addresses == ("10.0.0.7",) and target.port == 554 and not target.literal
    assert refusal(p, "rtsp://evil.example/x", resolver) == "loopback"  # one bad address is enough
    assert refusal(p, "https://meta.example/", resolver) == "metadata"
    assert seen == [("cam.example", 554), ("evil.example", 554), ("meta.example", 443)]

    def nxdomain(host, port):
        raise HostNotFound(host)

    with pytest.raises(HostNotFound):
        p.check_url("rtsp://nowhere.invalid/x", resolver=nxdomain)


def test_rtsp_names_are_opened_at_the_checked_address_and_http_keeps_its_name():
    p = policy()
    target = p.check_url("rtsp://cam.example:8554/a?b=1", resolver=lambda h, port: ["10.0.0.7"])
    assert target.pinned_url("rtsp://cam.example:8554/a?b=1") == "rtsp://10.0.0.7:8554/a?b=1"
    v6 = p.check_url("rtsp://cam6.example/a", resolver=lambda h, port: ["fd00::7"])
    assert v6.pinned_url("rtsp://cam6.example/a") == "rtsp://[fd00::7]/a"
    web = p.check_url("https://media.example/live.m3u8", resolver=lambda h, port: ["10.0.0.8"])
    assert web.pinned_url("https://media.example/live.m3u8") == "https://media.example/live.m3u8"
    assert p.check_url("/var/streams/clip.mp4") is None  # a demo file: no network


def test_the_allow_list_admits_only_its_networks():
    p = policy(networks=parse_networks("10.20.0.0/16, 192.168.8.0/24  fd00:1::/32"))
    assert refusal(p, "rtsp://10.20.3.4/x") is None
    assert refusal(p, "rtsp://192.168.8.200/x") is None
    assert refusal(p, "rtsp://[fd00:1::9]/x") is None
    assert refusal(p, "rtsp://10.21.0.1/x") == "not_listed"
    assert refusal(p, "rtsp://203.0.113.5/x") == "not_listed"
    assert refusal(p, "rtsp://[::ffff:10.21.0.1]/x") == "not_listed"
    # The deny rules still hold inside a listed network.
    wide = policy(networks=parse_networks(["0.0.0.0/0", "::/0"]))
    assert refusal(wide, "http://169.254.169.254/") == "metadata"
    assert refusal(wide, "http://127.0.0.1:8554/") == "loopback"
    with pytest.raises(ValueError, match="GRIDMAP_CAMERA_NETWORKS"):
        parse_networks("10.0.0.0/8, cameras")


def test_loopback_modes():
    service = frozenset({55432, 5000, 9108})
    everything = policy(loopback="all", service_ports=service)
    assert refusal(everything, "rtsp://127.0.0.1:38001/cam") is None
    assert refusal(everything, "http://[::1]:41000/") is None
    # Even then, never this server's own database, app or metrics.
    assert refusal(everything, "http://127.0.0.1:55432/") == "service_port"
    assert refusal(everything, "http://localhost:9108/metrics") == "service_port"
    assert refusal(everything, "http://0x7f000001:5000/") == "service_port"
    # ... and never link-local or metadata.
    assert refusal(everything, "http://169.254.169.254/") == "metadata"

    demo = policy(loopback="demo", demo_ports=frozenset(range(8554, 8559)), service_ports=service)
    assert refusal(demo, "rtsp://127.0.0.1:8555/cam") is None
    assert refusal(demo, "http://127.0.0.1:8558/") is None
    assert refusal(demo, "http://127.0.0.1:8559/") == "loopback"
    assert refusal(demo, "http://127.0.0.1:55432/") == "loopback"

    assert refusal(policy(loopback="none"), "rtsp://127.0.0.1:8555/cam") == "loopback"


def test_the_settings():
    assert parse_loopback(None, "demo") == "all"
    assert parse_loopback(None, "production") == "none"
    assert parse_loopback("1", "production") == "all"
    assert parse_loopback(1, "production") == "all"  # Flask's from_prefixed_env reads JSON
    assert parse_loopback(True, "production") == "all"
    assert parse_loopback("0", "demo") == "none"
    assert parse_loopback(0, "demo") == "none"
    assert parse_loopback(False, "demo") == "none"
    assert parse_loopback("demo", "production") == "demo"
    with pytest.raises(ValueError):
        parse_loopback("maybe")


def test_from_env(monkeypatch):
    monkeypatch.setenv("GRIDMAP_DEPLOYMENT", "production")
    monkeypatch.delenv("GRIDMAP_ALLOW_LOOPBACK_STREAMS", raising=False)
    monkeypatch.setenv("GRIDMAP_CAMERA_NETWORKS", "10.0.0.0/8")
    monkeypatch.setenv("GRIDMAP_PG_PORT", "55433")
    p = netpolicy.from_env()
    assert p.loopback == "none" and p.networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert {55433, 5000, 9108} <= p.service_ports
    monkeypatch.setenv("GRIDMAP_ALLOW_LOOPBACK_STREAMS", "demo")
    monkeypatch.setenv("GRIDMAP_STREAMS_PORT", "9554")
    p = netpolicy.from_env()
    assert p.loopback == "demo" and p.demo_ports == frozenset(range(9554, 9559))
    monkeypatch.delenv("GRIDMAP_DEPLOYMENT")
    monkeypatch.delenv("GRIDMAP_ALLOW_LOOPBACK_STREAMS")
    monkeypatch.delenv("GRIDMAP_CAMERA_NETWORKS")
    p = netpolicy.from_env()
    assert p.loopback == "all" and p.networks == ()  # the demo deployment


def test_the_flask_config_wins_over_the_environment(monkeypatch):
    from flask import Flask

    monkeypatch.setenv("GRIDMAP_ALLOW_LOOPBACK_STREAMS", "1")
    app = Flask(__name__)
    app.config.update(ALLOW_LOOPBACK_STREAMS=0, CAMERA_NETWORKS=["192.168.0.0/16"])
    with app.test_request_context("/", base_url="http://127.0.0.1:8123"):
        p = netpolicy.current()
    assert p.loopback == "none" and p.networks == (ipaddress.ip_network("192.168.0.0/16"),)
    assert 8123 in p.service_ports  # the port this request arrived on is the app's own
    assert netpolicy.current().loopback == "all"  # outside the app: the environment


def test_this_hosts_own_addresses_are_refused():
    local = frozenset({ipaddress.ip_address("10.9.8.7"), ipaddress.ip_address("fd00::5")})
    broadcast = frozenset({ipaddress.ip_address("10.9.255.255")})
    p = AddressPolicy(loopback="all", local_addresses=lambda: (local, broadcast))
    assert refusal(p, "http://10.9.8.7:5432/") == "self"
    assert refusal(p, "http://[fd00::5]/") == "self"
    assert refusal(p, "http://[::ffff:10.9.8.7]/") == "self"
    assert refusal(p, "rtsp://10.9.255.255/x") == "broadcast"
    assert refusal(p, "rtsp://10.9.8.6/x") is None


def test_the_real_host_addresses_are_read():
    local, _ = netpolicy._read_local_addresses()
    if Path("/proc/net/fib_trie").exists():
        assert ipaddress.ip_address("127.0.0.1") in local
    outward = next((a for a in local if not a.is_loopback and not a.is_link_local), None)
    if outward is not None:
        assert AddressPolicy().refusal(outward, 5432) == "self"


def test_policies_travel_to_workers_and_relay_children():
    p = AddressPolicy.from_settings(networks="10.0.0.0/8", loopback="demo", streams_port=8554,
                                    service_ports=(55432,))
    assert pickle.loads(pickle.dumps(p)) == p
    assert AddressPolicy.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_every_refusal_reads_in_chinese():
    from web.reasons import CATALOG_PATH, localize

    catalog = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    for kind, reason in REASONS.items():
        assert reason in catalog, kind
        assert reason.startswith("the stream address is not allowed (")
        assert localize(reason, "zh") != reason


def test_a_refused_probe_connects_nowhere():
    """The probe checks before its first socket: a listener on loopback sees nothing."""
    from video.probe import ErrorClass, Health, ProbeRequest, probe_inline

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        for url in (f"http://127.0.0.1:{port}/", f"rtsp://0x7f000001:{port}/x",
                    f"http://[::ffff:127.0.0.1]:{port}/", f"http://localhost:{port}/"):
            result = probe_inline(ProbeRequest(url, address_policy=policy(loopback="none"),
                                               open_timeout_s=1, read_timeout_s=1))
            assert result.health is Health.OFFLINE and result.error is ErrorClass.ADDRESS_REFUSED
            assert result.detail == REASONS["loopback"]
    finally:
        thread.join()
        listener.close()
    assert accepted == []
