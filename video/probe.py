"""Probe a camera stream: open it with hard timeouts, grab a frame, classify its health.

The database-free core of the stream sampler. :func:`probe` checks one URL;
:class:`Prober` keeps a pool of worker processes for the sampler's steady load.

Why worker processes: OpenCV's FFmpeg backend honours its open/read timeouts through
an interrupt callback, but some calls (DNS resolution, a decoder stuck on hostile
input, protocols that ignore the callback) can still block forever, and a thread
cannot be killed. Each probe therefore runs in a worker process, and the parent kills
the worker when a probe outlives its wall-clock budget.

Sizing the pool: the budget is 8,600 cameras at one sample a minute, 143 samples/s,
on 2 cores: about 14 ms of CPU per sample, while a probe spends most of its wall time
waiting (connect, RTSP handshake, the next IDR). By Little's law 143/s x ~2 s means
~300 probes in flight. One process per in-flight probe would cost ~300 x 60 MB and a
process start per probe; 300 threads each decoding with a thread per core would
thrash 2 cores. So a fixed pool of P processes each runs up to T probes on T
threads, and every capture decodes on a single FFmpeg thread (CAP_PROP_N_THREADS=1).

One measured fact shapes P and T: OpenCV serialises ``VideoCapture`` opens with a
process-wide mutex (a file open waited 2.8 s behind an RTSP open timing out in another
thread). Threads therefore overlap only the *reads* (waiting for and decoding the
first frames); opens queue per process. Two things follow. First, every probe starts
with a preflight in plain sockets (connect, one RTSP DESCRIBE or HTTP GET status line),
which runs in parallel and catches refused, unreachable, silent, garbage-speaking, 404
and unauthorised servers without ever taking the mutex, so dead cameras cost no open
slot. Second, workers report when a probe enters and leaves VideoCapture(), and the
parent hands a new probe only to a worker with no open in progress, so probes do not
queue behind a slow open inside a worker (measured before this: a 0-fps stream took
15 s instead of 10 s to classify, queued behind another stalled open). Third, P (not
P x T) bounds the open rate: P >= open rate x mean time inside
open (handshake + first packets, tens of ms on a LAN), with headroom; the benchmark
prints the measured figures. The defaults (4 processes per core, 4 threads each)
suit a LAN; for WAN cameras raise P.

The trade-off of threads in a shared process: a hung probe can only be killed with its
whole process. The parent reports the hung probe at its deadline, stops giving that
worker new probes, starts a replacement at once, and kills the old worker when its
other probes finish (or time out), so one bad camera never fails its neighbours.

Credentials never travel inside a URL outside the worker: the URL given to a probe
must not contain userinfo, the credentials ride in a separate field that repr() hides,
and the worker re-attaches them (percent-encoded) just before opening the stream. Any
text that leaves a worker (result details, errors, FFmpeg/OpenCV stderr forwarded to
the ``video.probe`` logger) is scrubbed of the password in plain, percent-encoded and
base64 forms.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import math
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from video import netpolicy
from video.netpolicy import AddressPolicy, AddressRefused, HostNotFound
from video.urls import (
    Credentials,
    StreamURLError,
    attach_credentials,
    redact,
    split_credentials,
    validate_stream_url,
)

log = logging.getLogger(__name__)


# Signature: mean grey level of each cell of a 16x9 grid (144 bytes). A 64-bit
# difference hash was measured and rejected: on a truly frozen H.264 stream codec
# drift between the IDR and later P-frames flips up to 5 of its 64 bits, while two
# samples of pedestrians 2 s apart can differ by a single bit. Counting the cells whose
# mean moved by more than 6 grey levels gives 0 for every frozen pair and at least 6
# for moving pedestrians 0.5 s or more apart.
SIGNATURE_GRID = (16, 9)
SIGNATURE_CELL_DELTA = 6
FROZEN_MAX_CHANGED_CELLS = 1  # tolerate one cell, e.g. a running OSD clock digit

NO_SIGNAL_MAX_STD = 6.0  # a picture this flat is a black/blue "no video" screen
BLACK_MAX_MEAN = 24.0
LOW_RESOLUTION_FACTOR = 0.5  # width or height below half the nominal one
DEFAULT_SLOW_MS = 3000.0
DEFAULT_MAX_PIXELS = 7680 * 4320  # 8K UHD; larger frames are not decoded at all
DEFAULT_SNAPSHOT_WIDTH = 1280
JPEG_QUALITY = 80
THUMB_QUALITY = 70

# FFmpeg options for every capture a worker opens (OPENCV_FFMPEG_CAPTURE_OPTIONS).
# fpsprobesize=0 stops avformat_find_stream_info from waiting ~1 s on live RTSP to
# estimate the frame rate (measured: 1.1 s -> 0.01-0.2 s to open). probesize=32 and
# analyzeduration=0 stop it from decoding the first IDR just to learn what the SDP
# (sprop-parameter-sets) or the MP4 header already says; OpenCV decodes that IDR
# again anyway (measured at 720p: 12 -> 6.5 ms CPU per open). Format detection is
# unaffected (it uses format_probesize). For cameras whose SDP carries no SPS/PPS the
# stream info is completed by the first decoded frame; if one misbehaves, pass
# Prober(capture_options={"probesize": "2000000", "analyzeduration": "500000"}).
# The whitelists are defence in depth against a hostile "camera" that serves a
# playlist or concat script naming local files or other protocols.
CAPTURE_OPTIONS = {
    "rtsp_transport": "tcp",
    "analyzeduration": "0",
    "probesize": "32",
    "fpsprobesize": "0",
    "protocol_whitelist": "file,http,https,tcp,tls,rtsp,rtsps,rtp,srtp,udp,crypto,httpproxy",
    "format_whitelist": "rtsp,mov,mp4,m4a,3gp,3g2,mj2,mpjpeg,mjpeg,jpeg_pipe,h264,hevc,mpegts,flv,matroska,webm,avi",
}


class ProbeError(Exception):
    """Base class of the errors raised by this module (bad URLs raise StreamURLError)."""


class ProberClosedError(ProbeError, RuntimeError):
    """The Prober was closed before the probe finished."""


class Health(StrEnum):
    """The health class of a camera stream, as shown on the map."""

    ONLINE = "online"
    OFFLINE = "offline"  # cannot open, refused, timed out, no decodable frame
    NO_SIGNAL = "no_signal"  # a frame, but black or flat
    FROZEN = "frozen"  # the same picture as the previous sample
    DEGRADED = "degraded"  # slow to open, or far below the nominal resolution


class ErrorClass(StrEnum):
    """Why a probe was not simply online; stored with the sample."""

    TIMEOUT = "timeout"  # open timed out
    WALL_TIMEOUT = "wall_timeout"  # still running at the wall-clock limit: killed
    REFUSED = "refused"
    DNS = "dns"
    UNREACHABLE = "unreachable"
    AUTH = "auth"  # credentials missing or rejected (401/403)
    NOT_FOUND = "not_found"  # 404 or no such file
    OPEN_FAILED = "open_failed"  # the server answered, but not with a playable stream
    NO_FRAME = "no_frame"  # opened, but no decodable frame within the read timeout
    DECODE_ERROR = "decode_error"  # opened, but the data does not decode
    EOF = "eof"  # the stream ended right after its first frame (closed mid-frame)
    OVERSIZE = "oversize"  # frame larger than max_pixels, not decoded
    CRASHED = "crashed"  # the worker died twice on this stream
    INTERNAL = "internal"
    BLACK = "black"
    FLAT = "flat"
    SLOW = "slow"
    LOW_RESOLUTION = "low_resolution"
    STALLED = "stalled"  # one frame, then nothing within the read timeout
    # The address policy (video.netpolicy) refuses where the URL points: loopback,
    # link-local, metadata … Nothing was connected to, so it says nothing of the port.
    ADDRESS_REFUSED = "address_refused"


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """Everything a worker needs for one probe (credentials hidden from repr)."""

    url: str
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    wall_timeout_s: float | None = None
    credentials: Credentials | None = field(default=None, repr=False)
    demo_root: Path | None = None  # local files are accepted only inside it
    want_jpeg: bool = True
    thumb_width: int = 160
    snapshot_width: int = DEFAULT_SNAPSHOT_WIDTH
    previous_signature: bytes | None = None
    nominal_width: int | None = None
    nominal_height: int | None = None
    slow_ms: float = DEFAULT_SLOW_MS
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Where the worker may connect (checked right before it does); by default the
    # settings' policy (video.netpolicy.current). None: unchecked (benchmarks only).
    address_policy: AddressPolicy | None = field(default_factory=netpolicy.current, repr=False)

    @property
    def wall_budget_s(self) -> float:
        """Return the wall-clock limit after which the probe's worker is killed."""
        if self.wall_timeout_s is not None:
            return self.wall_timeout_s
        # preflight and open share open_timeout_s (OpenCV gets at least 1 s of it);
        # then first frame + confirming frame, plus room for encoding.
        return self.open_timeout_s + 1.0 + 2 * self.read_timeout_s + 1.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe found; never contains credentials."""

    url: str
    ok: bool  # a frame was decoded and the stream kept going
    health: Health
    error: ErrorClass | None = None
    detail: str = ""
    sampled_at: float = 0.0  # Unix time when the probe started
    elapsed_ms: float = 0.0
    open_ms: float | None = None
    first_frame_ms: float | None = None  # from probe start to the first decoded frame
    width: int | None = None
    height: int | None = None
    brightness: float | None = None  # mean grey level 0-255
    contrast: float | None = None  # standard deviation of the grey level
    signature: bytes | None = field(default=None, repr=False)  # signature_distance()
    jpeg: bytes | None = field(default=None, repr=False)
    thumbnail: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class FrameStats:
    """Health signals computed from one decoded frame."""

    width: int
    height: int
    brightness: float
    contrast: float
    signature: bytes
    jpeg: bytes | None
    thumbnail: bytes | None


# ---------------------------------------------------------------- URLs, secrets

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@")


def check_url(url: str, *, demo_root: Path | None = None) -> str:
    """Return the validated URL (or demo file path) or raise StreamURLError.

    Validation is video.urls.validate_stream_url (rtsp, rtsps, http, https, and files
    inside demo_root only); on top of it a probe URL must not embed credentials, so
    that no password is ever stored, logged or returned with a URL.
    """
    clean = validate_stream_url(url, demo_root=demo_root)
    if split_credentials(url)[1] is not None:
        raise StreamURLError(
            "the stream URL embeds credentials; pass them separately (video.urls.split_credentials)"
        )
    return clean


def scrub(text: str, credentials: Iterable[Credentials | None] = ()) -> str:
    """Remove passwords (any encoding) and any URL userinfo from text."""
    return _USERINFO.sub(r"\1***@", redact(text, credentials))


# ------------------------------------------------------------------ frame maths


def frame_signature(grey: np.ndarray) -> bytes:
    """Return the 144-byte signature (16x9 cell means) of a grey frame."""
    import cv2

    cells = cv2.resize(grey, SIGNATURE_GRID, interpolation=cv2.INTER_AREA)
    return cells.astype(np.uint8).tobytes()


def signature_distance(a: bytes, b: bytes, *, delta: int = SIGNATURE_CELL_DELTA) -> int:
    """Return how many signature cells differ by more than delta grey levels."""
    if len(a) != len(b):
        raise ValueError("signatures of different lengths cannot be compared")
    x = np.frombuffer(a, np.uint8).astype(np.int16)
    y = np.frombuffer(b, np.uint8).astype(np.int16)
    return int(np.count_nonzero(np.abs(x - y) > delta))


def is_frozen(previous: bytes | None, current: bytes | None) -> bool:
    """Return whether two consecutive samples show the same picture."""
    if previous is None or current is None or len(previous) != len(current):
        return False
    return signature_distance(previous, current) <= FROZEN_MAX_CHANGED_CELLS


def analyse_frame(
    frame: np.ndarray,
    *,
    want_jpeg: bool = True,
    thumb_width: int = 160,
    snapshot_width: int = DEFAULT_SNAPSHOT_WIDTH,
) -> FrameStats:
    """Compute brightness, contrast, signature and (optionally) JPEG snapshot and thumbnail."""
    import cv2

    height, width = frame.shape[:2]
    thumb_w = max(16, min(thumb_width, width))
    thumb_h = max(9, round(height * thumb_w / width))
    # INTER_AREA straight from full size: one pass, and it averages (no aliasing) so
    # the statistics and the signature see the whole picture, not sampled pixels.
    thumb = cv2.resize(frame, (thumb_w, thumb_h), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(thumb, cv2.COLOR_BGR2GRAY) if thumb.ndim == 3 else thumb
    mean, std = cv2.meanStdDev(grey)
    jpeg = thumbnail = None
    if want_jpeg:
        snap = frame
        if width > snapshot_width:  # huge frames are shrunk before JPEG encoding
            snap = cv2.resize(
                frame,
                (snapshot_width, round(height * snapshot_width / width)),
                interpolation=cv2.INTER_AREA,
            )
        jpeg = cv2.imencode(".jpg", snap, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()
        thumbnail = cv2.imencode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])[
            1
        ].tobytes()
    return FrameStats(
        width=width,
        height=height,
        brightness=round(float(mean[0, 0]), 2),
        contrast=round(float(std[0, 0]), 2),
        signature=frame_signature(grey),
        jpeg=jpeg,
        thumbnail=thumbnail,
    )


def classify(
    stats: FrameStats,
    *,
    first_frame_ms: float,
    previous_signature: bytes | None = None,
    nominal_width: int | None = None,
    nominal_height: int | None = None,
    slow_ms: float = DEFAULT_SLOW_MS,
) -> tuple[Health, ErrorClass | None]:
    """Return the health class of a stream that produced a frame (worst finding wins)."""
    if stats.contrast < NO_SIGNAL_MAX_STD:
        return (
            Health.NO_SIGNAL,
            ErrorClass.BLACK if stats.brightness < BLACK_MAX_MEAN else ErrorClass.FLAT,
        )
    if is_frozen(previous_signature, stats.signature):
        return Health.FROZEN, None
    if (nominal_width and stats.width < nominal_width * LOW_RESOLUTION_FACTOR) or (
        nominal_height and stats.height < nominal_height * LOW_RESOLUTION_FACTOR
    ):
        return Health.DEGRADED, ErrorClass.LOW_RESOLUTION
    if first_frame_ms > slow_ms:
        return Health.DEGRADED, ErrorClass.SLOW
    return Health.ONLINE, None


# --------------------------------------------------------------- the probe itself


class _SecretRegistry:
    """Credentials in use in this process, kept a while after use for late log lines."""

    linger_s = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[Credentials, float] = {}

    def add(self, creds: Credentials | None) -> None:
        if creds is not None:
            with self._lock:
                self._until[creds] = math.inf

    def release(self, creds: Credentials | None) -> None:
        if creds is not None:
            with self._lock:
                self._until[creds] = time.monotonic() + self.linger_s

    def current(self) -> list[Credentials]:
        now = time.monotonic()
        with self._lock:
            for c in [c for c, until in self._until.items() if until < now]:
                del self._until[c]
            return list(self._until)


_SECRETS = _SecretRegistry()


def _offline(
    req: ProbeRequest,
    error: ErrorClass,
    detail: str,
    started: float,
    t0: float,
    **extra: Any,
) -> ProbeResult:
    return ProbeResult(
        url=req.url,
        ok=False,
        health=Health.OFFLINE,
        error=error,
        detail=detail,
        sampled_at=started,
        elapsed_ms=round((time.monotonic() - t0) * 1000, 1),
        **extra,
    )


@dataclass(frozen=True, slots=True)
class _Preflight:
    """What the server said before OpenCV was involved."""

    error: ErrorClass | None  # set: the probe ends here, OpenCV is never called
    detail: str = ""
    status: int | None = None


def _preflight(url: str, timeout: float, *, has_credentials: bool,
               addresses: tuple[str, ...] | None = None) -> _Preflight:
    """Connect and read one RTSP/HTTP status line, in parallel with other probes.

    OpenCV serialises VideoCapture opens with a process-wide mutex (measured: a file
    open waited 2.8 s behind an RTSP open that was timing out in another thread), so
    a dead camera would block every other probe in the worker for its whole open
    timeout. Refused, unreachable, silent, garbage-speaking and 404 servers are
    caught here instead, with plain sockets that run in parallel. No credentials are
    sent: a 401/403 only ends the probe when the caller has none to offer.
    ``addresses`` (the address policy's checked ones) are connected to in place of
    the host name, so a name cannot resolve elsewhere between the check and here.
    """
    if url.startswith("/"):
        if not Path(url).is_file():
            return _Preflight(ErrorClass.NOT_FOUND, "no such file")
        return _Preflight(None)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}[scheme]
    host = parts.hostname or ""
    deadline = time.monotonic() + timeout
    try:
        sock = _connect(addresses or (host,), port, deadline)
    except socket.gaierror:
        return _Preflight(ErrorClass.DNS, "host name does not resolve")
    except ConnectionRefusedError:
        return _Preflight(ErrorClass.REFUSED, "connection refused")
    except TimeoutError:
        return _Preflight(ErrorClass.TIMEOUT, "connect timed out")
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return _Preflight(ErrorClass.UNREACHABLE, "host unreachable")
        return _Preflight(ErrorClass.OPEN_FAILED, f"connect failed: {exc.strerror or exc}")
    with contextlib.ExitStack() as stack:
        stack.enter_context(sock)
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        if scheme in ("https", "rtsps"):
            # Only a status line is read; camera certificates are self-signed.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                sock = stack.enter_context(ctx.wrap_socket(sock, server_hostname=host))
            except TimeoutError:
                return _Preflight(ErrorClass.TIMEOUT, "TLS handshake timed out")
            except (OSError, ssl.SSLError):
                return _Preflight(ErrorClass.OPEN_FAILED, "TLS handshake failed")
        if scheme.startswith("rtsp"):
            target = urlunsplit(parts._replace(fragment=""))
            request = (
                f"DESCRIBE {target} RTSP/1.0\r\nCSeq: 1\r\n"
                "Accept: application/sdp\r\nUser-Agent: gridmap-probe\r\n\r\n"
            )
        else:
            path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "User-Agent: gridmap-probe\r\nConnection: close\r\n\r\n"
            )
        try:
            sock.sendall(request.encode("latin-1", errors="replace"))
            head = b""
            while b"\n" not in head and len(head) < 512:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = sock.recv(512)
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            return _Preflight(ErrorClass.TIMEOUT, "connected, but the server never answered")
        except (OSError, ssl.SSLError):
            return _Preflight(ErrorClass.OPEN_FAILED, "connection reset before an answer")
    status_line = head.split(b"\n", 1)[0].decode("latin-1", errors="replace")
    match = re.match(r"(?:RTSP|HTTP)/\d\.\d (\d{3})", status_line)
    if match is None:
        return _Preflight(ErrorClass.OPEN_FAILED, "the server does not speak RTSP/HTTP")
    code = int(match.group(1))
    if code == 404:
        return _Preflight(ErrorClass.NOT_FOUND, "server answered 404", code)
    if code in (401, 403) and not has_credentials:
        return _Preflight(ErrorClass.AUTH, f"server answered {code}; no credentials given", code)
    return _Preflight(None, "", code)


def _connect(addresses: tuple[str, ...], port: int, deadline: float) -> socket.socket:
    """Connect to the first of ``addresses`` that accepts, within the deadline."""
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection(
                (address, port), timeout=max(0.05, deadline - time.monotonic())
            )
        except socket.gaierror:
            raise
        except OSError as exc:
            error = exc
            if time.monotonic() >= deadline:
                break
    raise error or TimeoutError("connect timed out")


def check_address(req: ProbeRequest) -> netpolicy.Target | None:
    """Apply the request's address policy to its URL; return the checked Target.

    Raises AddressRefused or HostNotFound before anything is connected to; None
    means no network is involved (a demo file) or the request carries no policy.
    """
    if req.address_policy is None:
        return None
    return req.address_policy.check_url(req.url)


def _open_failure(req: ProbeRequest, pre: _Preflight, open_s: float,
                  budget_s: float) -> tuple[ErrorClass, str]:
    """Classify a failed OpenCV open that took ``open_s`` of its ``budget_s``, using
    what the preflight saw."""
    # The budget OpenCV was given, not the whole open timeout: the preflight spent
    # the rest (under load, enough that a timed-out open looked like a refusal).
    if open_s >= budget_s * 0.9:
        return ErrorClass.TIMEOUT, "open timed out"
    if pre.status in (401, 403):
        return ErrorClass.AUTH, f"server answered {pre.status}: credentials rejected"
    if pre.status is not None and pre.status >= 400:
        return ErrorClass.OPEN_FAILED, f"server answered {pre.status}"
    return ErrorClass.OPEN_FAILED, "the server answered, but not with a playable stream"


def probe_inline(req: ProbeRequest, on_open: Callable[[bool], None] | None = None) -> ProbeResult:
    """Run one probe in this process, with OpenCV's timeouts but no wall-clock kill.

    This is what worker processes run; call it directly only where a hang is
    acceptable (benchmarks, debugging). Use probe() or Prober everywhere else.
    """
    import cv2

    started, t0 = time.time(), time.monotonic()
    creds = req.credentials
    _SECRETS.add(creds)
    cap = None
    try:
        try:
            target = check_address(req)
            pre = _preflight(req.url, req.open_timeout_s, has_credentials=creds is not None,
                             addresses=target.addresses if target else None)
            if pre.error is not None:
                return _offline(req, pre.error, pre.detail, started, t0)
            open_target = req.url
            if target is not None:
                open_target = target.pinned_url(req.url)
                if open_target == req.url and not target.literal:
                    check_address(req)  # FFmpeg resolves the name itself: check again now
        except AddressRefused as exc:
            return _offline(req, ErrorClass.ADDRESS_REFUSED, exc.reason, started, t0)
        except HostNotFound:
            return _offline(req, ErrorClass.DNS, "host name does not resolve", started, t0)
        # OpenCV gets what is left of the open budget, but never less than a second.
        open_budget = max(1.0, req.open_timeout_s - (time.monotonic() - t0))
        open_url = attach_credentials(open_target, creds)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_budget * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(req.read_timeout_s * 1000),
            # One decoder thread per capture: hundreds of captures in flight must not
            # each start a thread per core.
            cv2.CAP_PROP_N_THREADS, 1,
        ]  # fmt: skip
        open_t = time.monotonic()
        if on_open is not None:
            on_open(True)
        try:
            cap = cv2.VideoCapture(open_url, cv2.CAP_FFMPEG, params)
        finally:
            if on_open is not None:
                on_open(False)
        del open_url
        opened = cap.isOpened()
        open_ms = round((time.monotonic() - t0) * 1000, 1)
        if not opened:
            error, detail = _open_failure(req, pre, time.monotonic() - open_t, open_budget)
            return _offline(req, error, detail, started, t0, open_ms=open_ms)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > req.max_pixels:
            return ProbeResult(
                url=req.url,
                ok=False,
                health=Health.DEGRADED,
                error=ErrorClass.OVERSIZE,
                detail=f"{width}x{height} exceeds the decode limit of {req.max_pixels} pixels",
                sampled_at=started,
                elapsed_ms=round((time.monotonic() - t0) * 1000, 1),
                open_ms=open_ms,
                width=width,
                height=height,
            )
        grab_t = time.monotonic()
        if not cap.grab():
            waited = time.monotonic() - grab_t
            if waited >= req.read_timeout_s * 0.9:
                return _offline(
                    req,
                    ErrorClass.NO_FRAME,
                    "no decodable frame in time",
                    started,
                    t0,
                    open_ms=open_ms,
                )
            return _offline(
                req,
                ErrorClass.DECODE_ERROR,
                "stream ended or did not decode",
                started,
                t0,
                open_ms=open_ms,
            )
        ok, frame = cap.retrieve()
        first_frame_ms = round((time.monotonic() - t0) * 1000, 1)
        if not ok or frame is None or frame.size == 0:
            return _offline(
                req,
                ErrorClass.DECODE_ERROR,
                "frame could not be converted",
                started,
                t0,
                open_ms=open_ms,
            )
        # One more frame proves the stream goes on: a server that dies mid-frame still
        # lets FFmpeg conceal the half picture it got, and it would look online.
        confirm_t = time.monotonic()
        confirmed = cap.grab()
        confirm_s = time.monotonic() - confirm_t
        stats = analyse_frame(
            frame,
            want_jpeg=req.want_jpeg,
            thumb_width=req.thumb_width,
            snapshot_width=req.snapshot_width,
        )
        del frame
        measured = {
            "open_ms": open_ms,
            "first_frame_ms": first_frame_ms,
            "width": stats.width,
            "height": stats.height,
            "brightness": stats.brightness,
            "contrast": stats.contrast,
            "signature": stats.signature,
        }
        if not confirmed and confirm_s < req.read_timeout_s * 0.9:
            return _offline(
                req,
                ErrorClass.EOF,
                "stream closed after its first frame",
                started,
                t0,
                **measured,
            )
        health, error = classify(
            stats,
            first_frame_ms=first_frame_ms,
            previous_signature=req.previous_signature,
            nominal_width=req.nominal_width,
            nominal_height=req.nominal_height,
            slow_ms=req.slow_ms,
        )
        detail = ""
        if not confirmed and health is Health.ONLINE:
            health, error, detail = (
                Health.DEGRADED,
                ErrorClass.STALLED,
                "one frame, then nothing",
            )
        return ProbeResult(
            url=req.url,
            ok=True,
            health=health,
            error=error,
            detail=detail,
            sampled_at=started,
            elapsed_ms=round((time.monotonic() - t0) * 1000, 1),
            jpeg=stats.jpeg,
            thumbnail=stats.thumbnail,
            **measured,
        )
    except Exception as exc:
        detail = scrub(f"{type(exc).__name__}: {exc}", [creds])
        return _offline(req, ErrorClass.INTERNAL, detail[:300], started, t0)
    finally:
        if cap is not None:
            cap.release()
        _SECRETS.release(creds)


# ------------------------------------------------------------------- workers


def _capture_stderr(send: Any) -> None:
    """Route this process's fd 2 (FFmpeg and OpenCV write there) through the scrubber."""
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def pump() -> None:
        pending = b""
        batch: list[str] = []
        last = time.monotonic()
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    return
                pending += chunk
                *lines, pending = pending.split(b"\n")
                in_use = _SECRETS.current()
                for raw in lines:
                    line = raw.decode("utf-8", errors="replace").rstrip()
                    if line and len(batch) < 200:  # corrupted streams log thousands of lines
                        batch.append(scrub(line, in_use)[:500])
                if batch and (len(batch) >= 50 or time.monotonic() - last > 0.2):
                    send(("log", batch))
                    batch, last = [], time.monotonic()

    threading.Thread(target=pump, name="stderr-pump", daemon=True).start()


def _worker_main(fd: int, threads: int) -> None:
    """Serve probes sent by the parent until told to stop or the parent goes away."""
    conn = Connection(fd)
    send_lock = threading.Lock()

    def send(message: object) -> None:
        with send_lock, contextlib.suppress(OSError, ValueError):
            conn.send(message)

    _capture_stderr(send)
    import cv2

    cv2.setNumThreads(1)  # resize/colour conversion: parallelism comes from the probes

    def run(task_id: int, req: ProbeRequest) -> None:
        # Tell the parent when this probe holds OpenCV's open mutex (see _dispatch).
        result = probe_inline(req, on_open=lambda opening: send(("opening", task_id, opening)))
        send(("result", task_id, result))

    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="probe")
    send(("ready", os.getpid()))
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == "stop":
                break
            _, task_id, req = message
            pool.submit(run, task_id, req)
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        sys.stderr.flush()
        # Never wait for a thread stuck inside FFmpeg.
        os._exit(0)


_WORKER_CODE = "import sys; from video.probe import _worker_main; _worker_main(int(sys.argv[1]), int(sys.argv[2]))"


@dataclass(eq=False)
class _Task:
    task_id: int
    request: ProbeRequest
    future: Future
    attempts: int = 0
    deadline: float = math.inf


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen
    conn: Connection
    pid: int | None = None
    ready: bool = False
    draining: bool = False  # no new probes: a probe hung in it, or it did enough
    done: int = 0
    in_flight: dict[int, _Task] = field(default_factory=dict)
    # Probes inside cv2.VideoCapture(): OpenCV runs one open at a time per process, so
    # a worker with an open in progress gets no new probe (it would only queue).
    opening: set[int] = field(default_factory=set)
    spawned_at: float = field(default_factory=time.monotonic)


class Prober:
    """A pool of probe worker processes with wall-clock kills and bounded concurrency.

    ``processes`` workers each run up to ``threads_per_process`` probes at once, so
    at most processes x threads probes are in flight; more submissions wait in a queue.
    Size it by Little's law: in_flight = samples_per_second x mean probe seconds.
    """

    def __init__(
        self,
        processes: int | None = None,
        threads_per_process: int = 4,
        *,
        max_probes_per_process: int = 5000,
        capture_options: dict[str, str] | None = None,
        start_timeout_s: float = 60.0,
    ) -> None:
        if threads_per_process < 1:
            raise ValueError("threads_per_process must be at least 1")
        self.processes = processes or 4 * (os.cpu_count() or 1)
        self.threads_per_process = threads_per_process
        # Recycling bounds memory that FFmpeg or OpenCV might leak over millions of opens.
        self.max_probes_per_process = max_probes_per_process
        self.start_timeout_s = start_timeout_s
        options = {**CAPTURE_OPTIONS, **(capture_options or {})}
        self._capture_options = "|".join(f"{k};{v}" for k, v in options.items())
        self._lock = threading.Lock()
        self._pending: deque[_Task] = deque()
        # Every submitted task until its future is resolved, wherever it sits, so a
        # shutdown (or a manager failure) can fail them all instead of leaving a
        # caller blocked in result() forever.
        self._unresolved: dict[int, _Task] = {}
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._manager = threading.Thread(target=self._manage, name="prober", daemon=True)
        self._manager.start()

    # -- public API

    def submit(self, url: str | ProbeRequest, **options: Any) -> Future[ProbeResult]:
        """Queue a probe and return a Future of its ProbeResult; bad URLs raise StreamURLError."""
        req = url if isinstance(url, ProbeRequest) else ProbeRequest(url=url, **options)
        if options and isinstance(url, ProbeRequest):
            req = replace(req, **options)
        if req.credentials is not None and not isinstance(req.credentials, Credentials):
            req = replace(req, credentials=Credentials(*req.credentials))
        req = replace(req, url=check_url(req.url, demo_root=req.demo_root))
        future: Future[ProbeResult] = Future()
        with self._lock:
            if self._closed:
                raise ProberClosedError("prober is closed")
            task = _Task(next(self._ids), req, future)
            self._pending.append(task)
            self._unresolved[task.task_id] = task
        self._wake()
        return future

    def map(self, requests: Iterable[str | ProbeRequest], **options: Any) -> Iterator[ProbeResult]:
        """Probe many streams concurrently; yield results in input order."""
        futures = [self.submit(r, **options) for r in requests]
        for future in futures:
            yield future.result()

    def probe(self, url: str | ProbeRequest, **options: Any) -> ProbeResult:
        """Probe one stream and wait for its result."""
        return self.submit(url, **options).result()

    def wait_ready(self, timeout_s: float = 60.0) -> bool:
        """Wait until every worker process has started; return whether they all did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                ready = sum(1 for w in self._workers if w.ready and not w.draining)
            if ready >= self.processes:
                return True
            time.sleep(0.05)
        return False

    def worker_pids(self) -> list[int]:
        """Return the process ids of the live workers (for CPU accounting)."""
        with self._lock:
            return [w.pid for w in self._workers if w.pid is not None]

    @property
    def in_flight(self) -> int:
        """Return how many probes are running now."""
        with self._lock:
            return sum(len(w.in_flight) for w in self._workers)

    def close(self) -> None:
        """Stop the workers; unfinished probes fail with ProberClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        self._manager.join()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- manager thread

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"x")

    def _spawn(self) -> _Worker:
        # A plain subprocess rather than multiprocessing: fork is unsafe in a threaded
        # parent, and spawn/forkserver re-import the parent's __main__, which breaks
        # scripts without a main guard. The pipe is a socketpair the child inherits.
        parent_sock, child_sock = socket.socketpair()
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {
            **os.environ,
            "OPENCV_FFMPEG_CAPTURE_OPTIONS": self._capture_options,
            "OPENCV_LOG_LEVEL": os.environ.get("OPENCV_LOG_LEVEL", "ERROR"),
            "PYTHONPATH": os.pathsep.join(
                filter(None, [package_root, os.environ.get("PYTHONPATH")])
            ),
        }
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _WORKER_CODE,
                    str(child_sock.fileno()),
                    str(self.threads_per_process),
                ],
                pass_fds=(child_sock.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                close_fds=True,
            )
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        worker = _Worker(process=process, conn=Connection(parent_sock.detach()))
        with self._lock:
            self._workers.append(worker)
        return worker

    def _retire(self, worker: _Worker, *, kill: bool) -> None:
        if not kill:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("stop",))
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=2)
        if worker.process.poll() is None:
            worker.process.kill()
        worker.process.wait()
        worker.conn.close()
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)

    def _finish(self, task: _Task, result: ProbeResult) -> None:
        with self._lock:
            self._unresolved.pop(task.task_id, None)
        if not task.future.done():
            task.future.set_result(result)

    def _manage(self) -> None:
        try:
            while True:
                with self._lock:
                    closed = self._closed
                if closed:
                    break
                self._step()
        except Exception:  # must not die silently with futures waiting
            log.exception("prober manager failed")
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        for worker in list(self._workers):
            self._retire(worker, kill=True)
        with self._lock:
            tasks, self._unresolved = list(self._unresolved.values()), {}
            self._pending.clear()
        for task in tasks:
            if not task.future.done():
                task.future.set_exception(
                    ProberClosedError("prober closed before the probe finished")
                )

    def _step(self) -> None:
        now = time.monotonic()
        # Keep `processes` workers that accept probes; replacements start at once.
        active = [w for w in self._workers if not w.draining]
        for _ in range(self.processes - len(active)):
            self._spawn()
        self._dispatch(now)
        deadlines = [t.deadline for w in self._workers for t in w.in_flight.values()]
        timeout = min([0.5, *(d - now for d in deadlines)])
        # A dead worker shows up as an EOF on its connection.
        waitables: list[Any] = [self._wake_r, *(w.conn for w in self._workers)]
        for ready in wait(waitables, timeout=max(0.0, timeout)):
            if ready is self._wake_r:
                with contextlib.suppress(BlockingIOError, OSError):
                    self._wake_r.recv(4096)
                continue
            for worker in list(self._workers):
                if ready is worker.conn:
                    self._receive(worker)
        self._enforce_deadlines(time.monotonic())
        for worker in list(self._workers):
            if not worker.ready and time.monotonic() - worker.spawned_at > self.start_timeout_s:
                log.warning(
                    "probe worker did not start within %.0f s; replacing it",
                    self.start_timeout_s,
                )
                self._on_death(worker)
            elif worker.draining and not worker.in_flight:
                self._retire(worker, kill=worker.done < self.max_probes_per_process)

    def _dispatch(self, now: float) -> None:
        while True:
            candidates = [
                w
                for w in self._workers
                if w.ready
                and not w.draining
                and not w.opening
                and len(w.in_flight) < self.threads_per_process
            ]
            with self._lock:
                if not candidates or not self._pending:
                    return
                task = self._pending.popleft()
            # A retried task is already running; cancelled ones are dropped.
            if task.attempts == 0 and not task.future.set_running_or_notify_cancel():
                self._unresolved.pop(task.task_id, None)
                continue
            worker = min(candidates, key=lambda w: len(w.in_flight))
            task.deadline = now + task.request.wall_budget_s
            try:
                worker.conn.send(("probe", task.task_id, task.request))
            except (OSError, ValueError):
                with self._lock:
                    self._pending.appendleft(task)
                self._on_death(worker)
                continue
            worker.in_flight[task.task_id] = task

    def _receive(self, worker: _Worker) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError, ValueError):
            self._on_death(worker)
            return
        self._handle(worker, message)

    def _handle(self, worker: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "result":
            task = worker.in_flight.pop(message[1], None)
            worker.done += 1
            if task is not None:
                self._finish(task, message[2])
            if worker.done >= self.max_probes_per_process:
                worker.draining = True
        elif kind == "opening":
            if message[2]:
                worker.opening.add(message[1])
            else:
                worker.opening.discard(message[1])
        elif kind == "ready":
            worker.ready, worker.pid = True, message[1]
        elif kind == "log":
            for line in message[1]:
                log.debug("probe worker %s: %s", worker.pid, line)

    def _on_death(self, worker: _Worker) -> None:
        if worker not in self._workers:
            return
        tasks = list(worker.in_flight.values())
        worker.in_flight.clear()
        if worker.ready:
            log.warning(
                "probe worker %s died or hung with %d probes in flight",
                worker.pid,
                len(tasks),
            )
        self._retire(worker, kill=True)
        retry = []
        for task in tasks:
            task.attempts += 1
            if task.attempts >= 2:
                req = task.request
                self._finish(
                    task,
                    ProbeResult(
                        url=req.url,
                        ok=False,
                        health=Health.OFFLINE,
                        error=ErrorClass.CRASHED,
                        detail="the probe process died on this stream twice",
                        sampled_at=time.time(),
                    ),
                )
            else:
                retry.append(task)
        with self._lock:
            self._pending.extendleft(reversed(retry))

    def _enforce_deadlines(self, now: float) -> None:
        for worker in list(self._workers):
            for task_id, task in list(worker.in_flight.items()):
                if task.deadline > now:
                    continue
                del worker.in_flight[task_id]
                worker.opening.discard(task_id)
                worker.draining = True
                budget = task.request.wall_budget_s
                self._finish(
                    task,
                    ProbeResult(
                        url=task.request.url,
                        ok=False,
                        health=Health.OFFLINE,
                        error=ErrorClass.WALL_TIMEOUT,
                        detail=f"still running after {budget:.1f} s; probe process killed",
                        sampled_at=time.time() - budget,
                        elapsed_ms=round(budget * 1000, 1),
                    ),
                )
                log.info(
                    "probe worker %s has a probe past its wall-clock limit; replacing it",
                    worker.pid,
                )


def probe(
    url: str,
    *,
    open_timeout_s: float = 5,
    read_timeout_s: float = 5,
    wall_timeout_s: float | None = None,
    credentials: tuple[str, str] | None = None,
    want_jpeg: bool = True,
    thumb_width: int = 160,
    demo_root: Path | None = None,
    previous_signature: bytes | None = None,
    nominal_width: int | None = None,
    nominal_height: int | None = None,
    slow_ms: float = DEFAULT_SLOW_MS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    prober: Prober | None = None,
) -> ProbeResult:
    """Probe one stream in a killable worker process and return what it found.

    Without a ``prober`` this starts (and stops) a one-process pool, which costs
    about half a second; the sampler should keep a Prober instead.
    """
    req = ProbeRequest(
        url=check_url(url, demo_root=demo_root),
        open_timeout_s=open_timeout_s,
        read_timeout_s=read_timeout_s,
        wall_timeout_s=wall_timeout_s,
        credentials=Credentials(*credentials) if credentials else None,
        demo_root=demo_root,
        want_jpeg=want_jpeg,
        thumb_width=thumb_width,
        previous_signature=previous_signature,
        nominal_width=nominal_width,
        nominal_height=nominal_height,
        slow_ms=slow_ms,
        max_pixels=max_pixels,
    )
    if prober is not None:
        return prober.probe(req)
    with Prober(processes=1, threads_per_process=1) as own:
        return own.probe(req)
