"""Low-fps MJPEG relay of a camera stream, decoded with OpenCV in a child process.

Why a child process per relay: ``VideoCapture`` can block for good on a hostile or
stalled stream (see ``video.probe``), and a thread cannot be killed. The child gets
the stream URL and the stored credentials on stdin (never argv or the environment,
which other users can read), re-attaches the credentials only to open the capture,
and writes length-prefixed JPEG frames to stdout at about ``fps`` frames a second.
Its stderr goes nowhere, because FFmpeg may print the URL it opened.

A global cap (``RELAY_MAX``) bounds how many relays decode at once; over the cap
the endpoint answers 503 and the video wall falls back to refreshed snapshots.

The address policy (``video.netpolicy``) is applied twice: here before the child
starts (a refused address answers 403 ``StreamAddressRefused`` and starts nothing),
and in the child right before OpenCV opens the stream (a host name may resolve
elsewhere by then); RTSP URLs with a host name are opened at the checked address.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from video import netpolicy
from video.netpolicy import AddressPolicy
from video.probe import CAPTURE_OPTIONS
from video.urls import Credentials, StreamURLError

BOUNDARY = "gridmapframe"
MAX_FRAME_BYTES = 4 * 1024 * 1024
DEFAULT_WIDTH = 640
JPEG_QUALITY = 70


@dataclass(frozen=True)
class RelayRequest:
    """What the child needs to relay one stream (credentials hidden from repr)."""

    url: str
    fps: float = 2.0
    width: int = DEFAULT_WIDTH
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    demo_root: Path | None = None
    credentials: Credentials | None = field(default=None, repr=False)
    # Where the relay may connect: the serving app's policy (video.netpolicy.current).
    address_policy: AddressPolicy | None = field(default_factory=netpolicy.current, repr=False)


def check_relay_address(req: RelayRequest) -> None:
    """Refuse (403) a stream address the policy does not allow, connecting to nothing.

    An invalid URL or a name that does not resolve is a RelayError (the stream cannot
    be opened), as the child would find.
    """
    if req.address_policy is None:
        return
    from video.probe import check_url

    try:
        req.address_policy.check_url(check_url(req.url, demo_root=req.demo_root))
    except netpolicy.AddressRefused as exc:
        raise netpolicy.refused_answer(exc) from None
    except (StreamURLError, netpolicy.HostNotFound):
        raise RelayError("the stream could not be opened") from None


class RelayPool:
    """The global cap on concurrent relays."""

    def __init__(self, cap: int) -> None:
        self.cap = max(0, int(cap))
        self._lock = threading.Lock()
        self._active = 0

    def try_acquire(self) -> bool:
        """Take a relay slot if one is free."""
        with self._lock:
            if self._active >= self.cap:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        """Give a relay slot back."""
        with self._lock:
            self._active = max(0, self._active - 1)

    @property
    def active(self) -> int:
        """Return how many relays are running."""
        with self._lock:
            return self._active


class RelayError(RuntimeError):
    """The stream could not be opened or produced no frame in time."""


class Relay:
    """One child process decoding one stream into JPEG frames."""

    def __init__(self, req: RelayRequest) -> None:
        check_relay_address(req)
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {
            **os.environ,
            "OPENCV_FFMPEG_CAPTURE_OPTIONS": "|".join(
                f"{k};{v}" for k, v in CAPTURE_OPTIONS.items()
            ),
            "OPENCV_LOG_LEVEL": "SILENT",
            "PYTHONPATH": os.pathsep.join(
                filter(None, [package_root, os.environ.get("PYTHONPATH")])
            ),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from web.relay import worker_main; worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        spec = {
            "url": req.url,
            "fps": req.fps,
            "width": req.width,
            "open_timeout_s": req.open_timeout_s,
            "read_timeout_s": req.read_timeout_s,
            "demo_root": str(req.demo_root) if req.demo_root else None,
            "username": req.credentials.username if req.credentials else None,
            "password": req.credentials.password if req.credentials else None,
            "policy": req.address_policy.to_dict() if req.address_policy else None,
        }
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(spec).encode() + b"\n")
            self.process.stdin.close()
        except OSError:
            self.close()
            raise RelayError("the relay process did not start") from None
        self._buffer = b""

    def _read(self, n: int, deadline: float) -> bytes | None:
        stdout = self.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        while len(self._buffer) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, max(65536, n - len(self._buffer)))
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def next_frame(self, timeout_s: float) -> bytes | None:
        """Return the next JPEG, or None when the stream ended or stalled."""
        deadline = time.monotonic() + timeout_s
        head = self._read(4, deadline)
        if head is None:
            return None
        (size,) = struct.unpack(">I", head)
        if not 0 < size <= MAX_FRAME_BYTES:
            return None
        return self._read(size, deadline)

    def close(self) -> None:
        """Stop the child process and reap it."""
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def part(jpeg: bytes) -> bytes:
    """Return one multipart/x-mixed-replace part holding a JPEG."""
    head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(jpeg)}\r\n\r\n").encode()
    return head + jpeg + b"\r\n"


def stream(relay: Relay, first: bytes, pool: RelayPool, *, read_timeout_s: float,
           max_seconds: float) -> Iterator[bytes]:
    """Yield multipart parts until the stream ends, the viewer leaves or time is up.

    The relay and its slot are released in ``finally``: when the viewer disconnects
    the server closes this generator, which raises GeneratorExit at the ``yield``.
    """
    try:
        yield part(first)
        ends = time.monotonic() + max_seconds
        while time.monotonic() < ends:
            frame = relay.next_frame(read_timeout_s)
            if frame is None:
                break
            yield part(frame)
    finally:
        relay.close()
        pool.release()


def worker_main() -> None:
    """Child process: open the stream and write length-prefixed JPEGs to stdout."""
    import cv2

    from video.probe import check_url
    from video.urls import attach_credentials

    spec = json.loads(sys.stdin.readline())
    cv2.setNumThreads(1)
    demo_root = Path(spec["demo_root"]) if spec.get("demo_root") else None
    url = check_url(spec["url"], demo_root=demo_root)
    open_target = url
    if spec.get("policy") is not None:
        # Checked again right before the open: the name may point elsewhere by now.
        try:
            target = AddressPolicy.from_dict(spec["policy"]).check_url(url)
        except (netpolicy.AddressRefused, netpolicy.HostNotFound):
            sys.exit(4)
        if target is not None:
            open_target = target.pinned_url(url)
    creds = (Credentials(spec["username"] or "", spec["password"] or "")
             if spec.get("username") is not None else None)
    spec["password"] = None
    open_url = attach_credentials(open_target, creds) if "://" in url else url
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(spec["open_timeout_s"] * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(spec["read_timeout_s"] * 1000),
        cv2.CAP_PROP_N_THREADS, 1,
    ]  # fmt: skip
    cap = cv2.VideoCapture(open_url, cv2.CAP_FFMPEG, params)
    del open_url, creds
    if not cap.isOpened():
        sys.exit(3)
    out = sys.stdout.buffer
    interval = 1.0 / max(0.1, float(spec["fps"]))
    width = int(spec["width"])
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    # Finite media (a file, an MP4 over HTTP) decodes as fast as it downloads: pace it
    # by its own timestamps. Live streams arrive in real time and are drained.
    finite = scheme not in ("rtsp", "rtsps") and cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0
    loops = 0
    started, first_pos = time.monotonic(), None
    next_tick = 0.0
    parent = os.getppid()
    while os.getppid() == parent:
        if not cap.grab():
            if finite and scheme == "file" and loops < 1000:
                loops += 1  # loop demo clips
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                started, first_pos = time.monotonic(), None
                continue
            break
        if finite:
            pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            first_pos = pos if first_pos is None else first_pos
            ahead = (pos - first_pos) - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(min(ahead, 1.0))
        if time.monotonic() < next_tick:
            continue  # decode every frame, encode only at the relay rate
        ok, frame = cap.retrieve()
        if not ok or frame is None:
            continue
        h, w = frame.shape[:2]
        if w > width:
            frame = cv2.resize(frame, (width, max(1, round(h * width / w))),
                               interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            continue
        data = jpeg.tobytes()
        try:
            out.write(struct.pack(">I", len(data)) + data)
            out.flush()
        except (BrokenPipeError, OSError):
            break
        next_tick = time.monotonic() + interval
    cap.release()
