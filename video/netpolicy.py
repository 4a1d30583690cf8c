"""Which network addresses the server may open camera streams at (the SSRF guard).

Camera URLs are typed in by grid admins and imported from ledgers, and the server
opens them: the sampler, "check now" (``POST /api/cameras/<gb_id>/sample``) and the
live relay. Without a rule on the *address*, a camera URL is an internal port
scanner: ``http://127.0.0.1:55432/`` answers differently when the database listens
than when nothing does, and ``http://169.254.169.254/`` reaches the cloud metadata
service. The scheme is already limited by ``video.urls``; this module limits where
the connection goes, and it is applied where the server connects (the probe worker
right before its first socket, the relay child right before OpenCV opens), not only
when a URL is stored: a host name can resolve elsewhere tomorrow.

The rules, checked on every address a host name resolves to (one refused address
refuses the URL):

* never: unspecified (``0.0.0.0/8``, ``::``), link-local (``169.254/16``,
  ``fe80::/10``: cloud metadata lives there), the metadata services outside it
  (Alibaba Cloud ``100.100.100.200``, Azure ``168.63.129.16``, AWS ``fd00:ec2::254``),
  multicast, broadcast (``255.255.255.255`` and this host's subnet broadcasts),
  reserved ranges (``240/4``), and the addresses of this host's own interfaces;
* loopback only as ``GRIDMAP_ALLOW_LOOPBACK_STREAMS`` says (below), and never the
  ports of this server's own database, app and sampler metrics;
* with ``GRIDMAP_CAMERA_NETWORKS`` set (CIDRs), only addresses inside those networks;
  unset, every other address, private ranges included: command-center cameras live on
  private video networks (``10/8``, ``172.16/12``, ``192.168/16``, ``100.64/10``).

IPv4 written as ``0x7f000001``, ``2130706433``, ``0177.0.0.1`` or ``127.1`` (what
``inet_aton`` and so FFmpeg's resolver accept) and IPv4 inside IPv6 (``::ffff:127.0.0.1``,
NAT64 ``64:ff9b::/96``, 6to4, IPv4-compatible ``::a.b.c.d``) are read as the IPv4
address they are; ``localhost`` and ``*.localhost`` are loopback without asking DNS.

``GRIDMAP_ALLOW_LOOPBACK_STREAMS``: ``1`` lets loopback streams be opened (the demo
streams of ``./scripts/run`` on 127.0.0.1:8554-8558 and the tests' stream servers on
free ports), ``demo`` only the demo stream servers' ports (``GRIDMAP_STREAMS_PORT`` to
+4 on 127.0.0.1), ``0`` none. Unset, it is ``1`` when ``GRIDMAP_DEPLOYMENT`` is
``demo`` (the default, whose accounts are public anyway) and ``0`` in ``production``.

Connecting to what was checked: the probe's own sockets (the preflight) connect to the
checked address, never to the name again. OpenCV/FFmpeg take a URL: an ``rtsp://`` URL
with a host name is handed over with the checked address in place of the name (RTSP
has no virtual hosts); ``http(s)``/``rtsps`` keep their name (the Host header and TLS
SNI need it) and are checked again immediately before the open. What remains (see
README): a name re-pointed in the microseconds between that check and FFmpeg's own
lookup, and HTTP/RTSP redirects and HLS playlists that FFmpeg follows by itself.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gridmap.errors import Forbidden
from video.urls import DEFAULT_PORTS

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_MODES = ("none", "demo", "all")
DEMO_STREAM_PORTS = 5  # HTTP, RTSP, silent, garbage, closed (video.streams.serve_demo_streams)
SAMPLER_METRICS_PORT = 9108

# The English reason of each refusal: the API's stable text (web/reason_catalog.json
# has each in Chinese). None says whether the port is open: nothing was connected to.
REASONS = {
    "loopback": "the stream address is not allowed (loopback)",
    "service_port": "the stream address is not allowed (a port of this server's own services)",
    "self": "the stream address is not allowed (an address of this server)",
    "link_local": "the stream address is not allowed (link-local)",
    "metadata": "the stream address is not allowed (cloud metadata service)",
    "unspecified": "the stream address is not allowed (unspecified address)",
    "multicast": "the stream address is not allowed (multicast)",
    "broadcast": "the stream address is not allowed (broadcast)",
    "reserved": "the stream address is not allowed (reserved address)",
    "not_listed": "the stream address is not allowed (outside the camera networks)",
}

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, Huawei, Oracle, OpenStack (also link-local)
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.0.23",  # Tencent Cloud
        "100.100.100.200",  # Alibaba Cloud: inside CGNAT 100.64/10, which stays allowed
        "168.63.129.16",  # Azure wire server: a public address
        "fd00:ec2::254",  # AWS over IPv6: inside fc00::/7, which stays allowed
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPAT = ipaddress.IPv6Network("::/96")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_LOOPBACK_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "localhost6", "localhost6.localdomain6",
     "ip6-localhost", "ip6-loopback"}
)
_TRUE = {"1", "true", "yes", "on", "all"}
_FALSE = {"0", "false", "no", "off", "none", ""}


class AddressRefused(Exception):
    """The policy refuses this stream address; ``kind`` says which rule (see REASONS)."""

    def __init__(self, kind: str) -> None:
        super().__init__(REASONS[kind])
        self.kind = kind

    @property
    def reason(self) -> str:
        """Return the English reason (the API's ``reason``)."""
        return REASONS[self.kind]


class HostNotFound(Exception):
    """The stream's host name does not resolve (nothing was connected to)."""


class StreamAddressRefused(Forbidden):
    """A request to open a stream whose address the policy refuses (answered 403)."""


def refused_answer(exc: AddressRefused, **details: Any) -> StreamAddressRefused:
    """Return the web answer for a refusal: 403 with the rule's reason."""
    return StreamAddressRefused(exc.reason, kind=exc.kind, **details)


# ------------------------------------------------------------------ addresses


def _inet_aton_part(text: str) -> int | None:
    if re.fullmatch(r"0[xX][0-9a-fA-F]*", text):
        return int(text[2:] or "0", 16)
    if re.fullmatch(r"0[0-7]*", text):
        return int(text, 8)
    if re.fullmatch(r"[1-9][0-9]*", text):
        return int(text)
    return None


def parse_ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    """Read an IPv4 address in any form inet_aton accepts (hex, octal, 1-4 parts), else None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_inet_aton_part(p) for p in parts]
    if any(v is None for v in values):
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):  # type: ignore[operator]
        return None
    number = 0
    for v in head:
        number = number << 8 | v  # type: ignore[operator]
    number = number << 8 * (5 - len(values)) | last  # type: ignore[operator]
    return ipaddress.IPv4Address(number)


def parse_ip(host: str) -> IPAddress | None:
    """Return the address a host written as an IP literal means, or None for a name."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(re.split("%", text, maxsplit=1)[0])  # zone id
        except ValueError:
            return None
    return parse_ipv4_loose(text.rstrip(".") if text.count(".") == 4 else text)


def unwrap(ip: IPAddress) -> IPAddress:
    """Return the IPv4 address inside an IPv6 one (mapped, NAT64, 6to4, compatible), else ip."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _IPV4_COMPAT and int(ip) > 1:
            return ipaddress.IPv4Address(int(ip))
    return ip


def is_loopback_name(host: str) -> bool:
    """Return whether a host name means this machine (RFC 6761 ``localhost`` names)."""
    name = host.strip().rstrip(".").lower()
    return name in _LOOPBACK_NAMES or name.endswith(".localhost")


class _LocalAddresses:
    """This host's interface and subnet-broadcast addresses (Linux /proc), cached a while."""

    ttl_s = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0
        self._value: tuple[frozenset[IPAddress], frozenset[IPAddress]] = (frozenset(), frozenset())

    def get(self) -> tuple[frozenset[IPAddress], frozenset[IPAddress]]:
        with self._lock:
            if time.monotonic() >= self._until:
                self._value = _read_local_addresses()
                self._until = time.monotonic() + self.ttl_s
            return self._value


def _read_local_addresses() -> tuple[frozenset[IPAddress], frozenset[IPAddress]]:
    local: set[IPAddress] = set()
    broadcast: set[IPAddress] = set()
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as f:
            last = None
            for line in f:
                m = re.match(r"\s*\|--\s+([0-9.]+)\s*$", line)
                if m:
                    last = ipaddress.IPv4Address(m.group(1))
                elif last is not None and "/32 host LOCAL" in line:
                    local.add(last)
                elif last is not None and "/32 link BROADCAST" in line:
                    broadcast.add(last)
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            for line in f:
                local.add(ipaddress.IPv6Address(int(line.split()[0], 16)))
    except (OSError, ValueError, IndexError):
        pass
    if not local:  # not Linux: what the host name resolves to
        try:
            for info in socket.getaddrinfo(socket.gethostname(), None):
                local.add(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
        except (OSError, ValueError):
            pass
    return frozenset(local), frozenset(broadcast)


LOCAL_ADDRESSES = _LocalAddresses()


# --------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Target:
    """A checked stream endpoint: connect to ``addresses`` (in order), never the name again."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]
    literal: bool  # the URL names an IP address: no DNS involved at all

    def pinned_url(self, url: str) -> str:
        """Return ``url`` naming the checked address instead of its host (RTSP only).

        RTSP has no virtual hosts, so the camera does not mind; HTTP(S) keeps its name
        (the Host header, TLS SNI) and rtsps its SNI. Literal IPs stay as written.
        """
        if self.literal or self.scheme != "rtsp" or not self.addresses:
            return url
        parts = urlsplit(url)
        address = self.addresses[0]
        host = f"[{address}]" if ":" in address else address
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
        return urlunsplit(parts._replace(netloc=netloc))


Resolver = Callable[[str, int], Iterable[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Return the addresses a host name resolves to (TCP), in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotFound(str(host)) from exc
    out: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in out:
            out.append(address)
    return out


@dataclass(frozen=True)
class AddressPolicy:
    """The address rules (see the module docstring); picklable, so probes carry it."""

    networks: tuple[IPNetwork, ...] = ()  # the allow-list; empty: anything not denied
    loopback: str = "none"  # none | demo | all
    demo_ports: frozenset[int] = frozenset()  # loopback ports allowed in "demo" mode
    service_ports: frozenset[int] = frozenset()  # loopback ports never allowed
    local_addresses: Callable[[], tuple[frozenset[IPAddress], frozenset[IPAddress]]] | None = (
        field(default=None, compare=False, repr=False)
    )

    def __post_init__(self) -> None:
        if self.loopback not in LOOPBACK_MODES:
            raise ValueError(f"loopback must be one of {LOOPBACK_MODES}")

    def _local(self) -> tuple[frozenset[IPAddress], frozenset[IPAddress]]:
        return (self.local_addresses or LOCAL_ADDRESSES.get)()

    def refusal(self, address: str | IPAddress, port: int) -> str | None:
        """Return the kind of refusal (a REASONS key) for connecting there, or None if allowed."""
        ip = unwrap(address if not isinstance(address, str) else _ip(address))
        if ip in METADATA_ADDRESSES:
            return "metadata"
        if ip.is_unspecified or ip in _THIS_NETWORK:
            return "unspecified"
        if ip.is_loopback:
            if self.loopback == "all":
                return "service_port" if port in self.service_ports else None
            if self.loopback == "demo" and ip == ipaddress.IPv4Address("127.0.0.1"):
                return None if port in self.demo_ports else "loopback"
            return "loopback"
        if ip.is_link_local:
            return "link_local"
        if ip.is_multicast:
            return "multicast"
        local, broadcast = self._local()
        if ip == _LIMITED_BROADCAST or ip in broadcast:
            return "broadcast"
        if ip.is_reserved:
            return "reserved"
        if ip in local:
            return "self"
        if self.networks and not any(ip.version == n.version and ip in n for n in self.networks):
            return "not_listed"
        return None

    def check_address(self, address: str | IPAddress, port: int) -> None:
        """Raise AddressRefused unless the server may connect to ``address:port``."""
        kind = self.refusal(address, port)
        if kind is not None:
            raise AddressRefused(kind)

    def check_host(self, host: str, port: int, *, resolver: Resolver = system_resolver,
                   ) -> tuple[tuple[str, ...], bool]:
        """Return (the host's addresses, whether it was an IP literal), or raise.

        AddressRefused when any address is refused; HostNotFound when the name does
        not resolve. Numeric and localhost hosts are read here, without DNS.
        """
        literal = parse_ip(host)
        if literal is not None:
            addresses: tuple[str, ...] = (str(literal),)
        elif is_loopback_name(host):
            addresses = ("127.0.0.1", "::1")
        else:
            addresses = tuple(resolver(host, port))
            if not addresses:
                raise HostNotFound(host)
        for address in addresses:
            self.check_address(address, port)
        return addresses, literal is not None

    def check_url(self, url: str, *, resolver: Resolver = system_resolver) -> Target | None:
        """Check a (validated) stream URL; return its Target, or None for a local file.

        Raises AddressRefused or HostNotFound; nothing is connected to.
        """
        if "://" not in url:
            return None  # a demo file path (video.urls resolved it inside demo_root)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "file":
            return None
        host = parts.hostname or ""
        try:
            port = parts.port or DEFAULT_PORTS.get(scheme, 0)
        except ValueError:
            raise AddressRefused("reserved") from None
        addresses, literal = self.check_host(host, port, resolver=resolver)
        return Target(scheme=scheme, host=host, port=port, addresses=addresses, literal=literal)

    # -- settings

    @classmethod
    def from_settings(cls, *, networks: Any = None, loopback: Any = None,
                      deployment: str | None = "demo", streams_port: int = 8554,
                      service_ports: Iterable[int] = ()) -> AddressPolicy:
        """Build the policy from the settings' raw values (environment or Flask config)."""
        return cls(
            networks=parse_networks(networks),
            loopback=parse_loopback(loopback, deployment),
            demo_ports=frozenset(range(streams_port, streams_port + DEMO_STREAM_PORTS)),
            service_ports=frozenset(p for p in service_ports if p),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-able data (the relay child reads it from stdin)."""
        return {"networks": [str(n) for n in self.networks], "loopback": self.loopback,
                "demo_ports": sorted(self.demo_ports), "service_ports": sorted(self.service_ports)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AddressPolicy:
        """Read what to_dict wrote."""
        return cls(networks=parse_networks(data.get("networks")),
                   loopback=str(data.get("loopback", "none")),
                   demo_ports=frozenset(int(p) for p in data.get("demo_ports", ())),
                   service_ports=frozenset(int(p) for p in data.get("service_ports", ())))


def _ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text.split("%", 1)[0])


def parse_networks(value: Any) -> tuple[IPNetwork, ...]:
    """Read GRIDMAP_CAMERA_NETWORKS: CIDRs separated by commas or spaces, or a list."""
    if value is None or value == "":
        return ()
    items = re.split(r"[\s,;]+", value) if isinstance(value, str) else [str(v) for v in value]
    out = []
    for item in filter(None, (i.strip() for i in items)):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"GRIDMAP_CAMERA_NETWORKS: {item!r} is not a network such as 10.0.0.0/8"
            ) from None
    return tuple(out)


def parse_loopback(value: Any, deployment: str | None = "demo") -> str:
    """Read GRIDMAP_ALLOW_LOOPBACK_STREAMS (unset: all in demo, none in production)."""
    if value is None:
        return "all" if (deployment or "demo").strip().lower() == "demo" else "none"
    if isinstance(value, bool):
        return "all" if value else "none"
    text = str(value).strip().lower()
    if text in _TRUE:
        return "all"
    if text in _FALSE:
        return "none"
    if text == "demo":
        return "demo"
    raise ValueError("GRIDMAP_ALLOW_LOOPBACK_STREAMS must be 1, 0 or demo")


@lru_cache(maxsize=8)
def _cached(networks: Any, loopback: Any, deployment: str | None, streams_port: int,
            service_ports: tuple[int, ...]) -> AddressPolicy:
    return AddressPolicy.from_settings(networks=networks, loopback=loopback,
                                       deployment=deployment, streams_port=streams_port,
                                       service_ports=service_ports)


def _service_ports(app_port: int | None = None) -> tuple[int, ...]:
    from gridmap.config import app_port as configured_app_port
    from gridmap.config import pg_port

    ports = {pg_port(), configured_app_port(), SAMPLER_METRICS_PORT}
    if app_port:
        ports.add(app_port)
    return tuple(sorted(ports))


def from_env() -> AddressPolicy:
    """Return the policy the ``GRIDMAP_*`` environment sets (sampler, CLI, probes)."""
    from gridmap import config

    return _cached(config.camera_networks(), config.allow_loopback_streams(),
                   config.deployment(), config.streams_port(), _service_ports())


def current() -> AddressPolicy:
    """Return the policy of the Flask app serving this request, else from_env().

    The app's config (``CAMERA_NETWORKS``, ``ALLOW_LOOPBACK_STREAMS``, ``DEPLOYMENT``,
    which ``GRIDMAP_*`` variables and ``instance/config.py`` set) wins over the
    environment, and the port the request arrived on counts as one of the app's own.
    """
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_app_context():
        return from_env()
    from gridmap import config

    cfg = flask.current_app.config
    own_port = None
    if flask.has_request_context():
        try:
            own_port = int(flask.request.environ.get("SERVER_PORT") or 0)
        except ValueError:
            own_port = None
    networks = cfg.get("CAMERA_NETWORKS", config.camera_networks())
    if isinstance(networks, list):
        networks = tuple(networks)
    return _cached(networks, cfg.get("ALLOW_LOOPBACK_STREAMS", config.allow_loopback_streams()),
                   str(cfg.get("DEPLOYMENT") or config.deployment()), config.streams_port(),
                   _service_ports(own_port))
