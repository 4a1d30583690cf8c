"""Local demo and test video streams: synthetic clips and the servers that play them.

Everything here binds to 127.0.0.1 and is meant for the demo map wall, the tests and
the benchmarks, never for production cameras.

Clips are drawn with numpy/OpenCV (a textured street with walking pedestrians and an
OSD clock, like a real camera) and encoded to H.264 MP4 by piping raw frames to
``ffmpeg -c:v libx264``. The pip OpenCV wheel cannot encode H.264 ('avc1' has no
encoder in it), and even where it can, VideoWriter does not let us set the GOP, the
B-frames or the profile, which we need to look like an IP camera (main profile, no
B-frames, one IDR per second).

Servers:

* :class:`DemoHTTPServer` - one threaded stdlib HTTP server for MJPEG
  (``multipart/x-mixed-replace``) at ``/mjpeg/<name>``, MP4 files with Range support
  at ``/files/<clip>.mp4``, one-GOP segments at ``/live-mp4/<name>.mp4``, Basic
  auth under ``/private/...`` and HTTP fault paths.
* :class:`RTSPServer` - a small RTSP 1.0 server written here (RTP/AVP over TCP
  interleaved, H.264 packetised per RFC 6184). We chose it over the alternatives:
  ``ffmpeg -rtsp_flags listen`` only works for *input* (as an output FFmpeg tries to
  ANNOUNCE to a server and gets "connection refused"), and it would serve one client
  anyway; a GStreamer RTSP server needs python3-gi, which is built for Debian's Python
  and not importable from the project's venv, plus several Debian packages on every
  machine. Our own server serves any number of clients from one process, sends each
  new client an IDR at once (like a camera with a GOP cache) and then runs in real
  time, and can misbehave on purpose (stall after PLAY, cut the connection mid-frame,
  demand Digest auth). Each new client of a path starts at the next IDR of the clip:
  a short looping clip has few IDRs, and two samples starting on the same one would
  look frozen. ``/live-mp4/<name>.mp4`` does the same with one-GOP MP4 segments.
* :class:`FaultTCPServer` and :class:`ClosedPort` - a server that accepts and stays
  silent, one that sends garbage, and a port that refuses connections.

:func:`serve_demo_streams` starts all of them and :func:`demo_manifest` lists the 48
demo stream slots that demo cameras reference by ``stream_slot``.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import logging
import math
import os
import re
import secrets
import shutil
import socket
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import quote, unquote, urlsplit

import cv2
import numpy as np

log = logging.getLogger(__name__)

DEFAULT_FPS = 25
# 7 s loops: a sampler running every 30 s or 60 s never lands on the same loop phase
# twice in a row (60 mod 7 = 4 s), so healthy demo streams are not mistaken for frozen.
DEFAULT_SECONDS = 7.0
SUB_SIZE = (640, 360)
MAIN_SIZE = (1280, 720)
UHD_SIZE = (3840, 2160)
DEMO_USER = "demo"
LOOPBACK = "127.0.0.1"

# Bump when the drawing or the encoder settings change, so cached demo clips are rebuilt.
CLIP_VERSION = 1


class StreamsError(RuntimeError):
    """A demo clip could not be produced or a demo server could not start."""


# --------------------------------------------------------------------------- clips


@dataclass(frozen=True, slots=True)
class _Walker:
    """One synthetic pedestrian: where it walks, how fast and what it wears."""

    x0: float
    ground_y: float
    direction: int
    laps: int
    scale: float
    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]
    stride_cycles: int
    phase: float


def _street_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a textured street: facades, two pavements and an asphalt road."""
    s = width / 640.0
    img = np.empty((height, width, 3), np.uint8)
    horizon = int(height * 0.38)
    road_top, road_bottom = int(height * 0.52), int(height * 0.84)
    img[:horizon] = (150, 140, 125)
    img[horizon:road_top] = (165, 170, 175)
    img[road_top:road_bottom] = (70, 72, 75)
    img[road_bottom:] = (160, 165, 170)
    # Building facades with windows; a real scene has strong, stable edges, which is
    # what keeps the frame signature steady when only the pedestrians move.
    x = 0
    while x < width:
        bw = int(rng.integers(60, 140) * s)
        top = int(rng.integers(0, horizon // 3 + 1))
        colour = tuple(int(c) for c in rng.integers(60, 200, 3))
        cv2.rectangle(img, (x, top), (x + bw, horizon), colour, -1)
        win = tuple(int(c) for c in rng.integers(20, 90, 3))
        for wy in range(top + int(8 * s), horizon - int(14 * s), int(22 * s)):
            for wx in range(x + int(8 * s), x + bw - int(14 * s), int(20 * s)):
                cv2.rectangle(img, (wx, wy), (wx + int(10 * s), wy + int(12 * s)), win, -1)
        x += bw + int(rng.integers(0, 8) * s)
    # Pavement tiles and kerbs.
    for ty in range(horizon, road_top, max(2, int(12 * s))):
        cv2.line(img, (0, ty), (width, ty), (145, 150, 155), max(1, int(s)))
    for tx in range(0, width, max(2, int(24 * s))):
        cv2.line(img, (tx, horizon), (tx, road_top), (145, 150, 155), max(1, int(s)))
    cv2.line(img, (0, road_top), (width, road_top), (200, 200, 200), max(1, int(3 * s)))
    cv2.line(img, (0, road_bottom), (width, road_bottom), (200, 200, 200), max(1, int(3 * s)))
    # Dashed lane marking and a zebra crossing.
    mid = (road_top + road_bottom) // 2
    for dx in range(0, width, int(60 * s)):
        cv2.rectangle(
            img,
            (dx, mid - int(2 * s)),
            (dx + int(30 * s), mid + int(2 * s)),
            (220, 220, 220),
            -1,
        )
    zx = int(width * 0.62)
    for zy in range(road_top + int(6 * s), road_bottom - int(6 * s), int(14 * s)):
        cv2.rectangle(img, (zx, zy), (zx + int(70 * s), zy + int(7 * s)), (215, 215, 215), -1)
    # Asphalt grain: low-amplitude blurred noise, as seen through a camera's denoiser.
    grain = rng.normal(0.0, 6.0, (height, width, 1)).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 1.2 * s)[..., None]
    return np.clip(img.astype(np.float32) + grain, 0, 255).astype(np.uint8)


def _make_walkers(width: int, height: int, count: int, rng: np.random.Generator) -> list[_Walker]:
    """Pick pedestrians on the two pavements and on the zebra crossing."""
    walkers = []
    lanes = (0.47, 0.50, 0.95, 0.99)
    for i in range(count):
        ground = lanes[i % len(lanes)] * height
        walkers.append(
            _Walker(
                x0=float(rng.uniform(0, width)),
                ground_y=float(ground + rng.uniform(-0.01, 0.01) * height),
                direction=1 if rng.random() < 0.5 else -1,
                laps=1,
                # Nearer (lower) pedestrians look bigger: cheap perspective.
                scale=float((0.55 + 0.6 * ground / height) * width / 640.0),
                shirt=tuple(int(c) for c in rng.integers(20, 235, 3)),
                trousers=tuple(int(c) for c in rng.integers(10, 120, 3)),
                skin=tuple(
                    int(c)
                    for c in (
                        rng.integers(90, 150),
                        rng.integers(140, 190),
                        rng.integers(180, 230),
                    )
                ),
                stride_cycles=int(rng.integers(6, 10)),
                phase=float(rng.uniform(0, 2 * math.pi)),
            )
        )
    return walkers


def _draw_walker(img: np.ndarray, w: _Walker, t: float, seconds: float) -> None:
    """Draw one pedestrian at time t; whole laps and strides per loop keep loops seamless."""
    width = img.shape[1]
    margin = 40 * w.scale
    span = width + 2 * margin
    x = (w.x0 + w.direction * w.laps * span * t / seconds) % span - margin
    k = w.scale
    y = w.ground_y
    swing = math.sin(w.phase + 2 * math.pi * w.stride_cycles * t / seconds)
    hip = (int(x), int(y - 28 * k))
    thick = max(2, int(5 * k))
    cv2.ellipse(img, (int(x), int(y)), (int(10 * k), int(3 * k)), 0, 0, 360, (40, 40, 40), -1)
    for sign in (1, -1):
        foot = (int(x + sign * swing * 9 * k), int(y))
        cv2.line(img, hip, foot, w.trousers, thick)
    cv2.rectangle(
        img,
        (int(x - 6 * k), int(y - 52 * k)),
        (int(x + 6 * k), int(y - 26 * k)),
        w.shirt,
        -1,
    )
    shoulder = (int(x), int(y - 48 * k))
    for sign in (1, -1):
        hand = (int(x - sign * swing * 8 * k), int(y - 30 * k))
        cv2.line(img, shoulder, hand, w.shirt, max(2, int(3 * k)))
    cv2.circle(img, (int(x), int(y - 58 * k)), max(2, int(6 * k)), w.skin, -1)


def _draw_osd(img: np.ndarray, label: str, frame_index: int, fps: float) -> None:
    """Stamp a camera name and a running clock, as IP cameras do."""
    s = img.shape[1] / 640.0
    secs = int(frame_index / fps)
    text = f"{label}  2024-05-01 08:{secs // 60:02d}:{secs % 60:02d}.{frame_index % int(fps):02d}"
    org = (int(8 * s), int(20 * s))
    cv2.putText(
        img,
        text,
        org,
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5 * s,
        (0, 0, 0),
        max(1, int(3 * s)),
        cv2.LINE_AA,
    )
    cv2.putText(
        img,
        text,
        org,
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5 * s,
        (255, 255, 255),
        max(1, int(s)),
        cv2.LINE_AA,
    )


def street_frames(
    width: int = SUB_SIZE[0],
    height: int = SUB_SIZE[1],
    *,
    fps: int = DEFAULT_FPS,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    walkers: int | None = None,
    label: str = "CAM",
) -> Iterator[np.ndarray]:
    """Yield BGR frames of pedestrians walking along a street, deterministically per seed."""
    rng = np.random.default_rng(seed)
    background = _street_background(width, height, rng)
    people = _make_walkers(width, height, walkers if walkers is not None else 7, rng)
    count = max(1, round(fps * seconds))
    for n in range(count):
        frame = background.copy()
        t = n / fps
        # Far pedestrians first so nearer ones overlap them.
        for w in sorted(people, key=lambda p: p.ground_y):
            _draw_walker(frame, w, t, count / fps)
        _draw_osd(frame, label, n, fps)
        yield frame


def ffmpeg_binary() -> str:
    """Return the path of the ffmpeg executable, or raise StreamsError."""
    path = shutil.which("ffmpeg")
    if path is None:
        raise StreamsError("ffmpeg not found on PATH (Debian package 'ffmpeg')")
    return path


def write_h264(
    path: str | Path,
    frames: Iterable[np.ndarray],
    *,
    fps: int = DEFAULT_FPS,
    gop: int | None = None,
    crf: int = 26,
    preset: str = "veryfast",
) -> Path:
    """Encode BGR frames to an IP-camera-like H.264 MP4 (main profile, no B-frames)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise StreamsError("no frames to encode")
    height, width = first.shape[:2]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.mp4")
    cmd = [
        ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-an", "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
        "-profile:v", "main", "-pix_fmt", "yuv420p", "-bf", "0",
        "-g", str(gop or fps), "-keyint_min", str(gop or fps), "-sc_threshold", "0",
        # Bit-exact muxing: no encoder/version strings or dates, so clips are reproducible.
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
        "-movflags", "+faststart", "-f", "mp4", str(tmp),
    ]  # fmt: skip
    # stderr goes to a temporary file, not a pipe: a pipe nobody reads while we write
    # stdin could fill up and deadlock both processes.
    with tempfile.TemporaryFile() as errfile:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errfile)
        assert proc.stdin is not None
        try:
            proc.stdin.write(np.ascontiguousarray(first).tobytes())
            for frame in iterator:
                if frame.shape[:2] != (height, width):
                    raise StreamsError("all frames of a clip must have the same size")
                proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            proc.stdin.close()
            proc.wait(timeout=600)
        except BaseException:
            proc.kill()
            proc.wait()
            tmp.unlink(missing_ok=True)
            raise
        finally:
            if not proc.stdin.closed:
                proc.stdin.close()
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            errfile.seek(0)
            err = errfile.read().decode(errors="replace")[-500:]
            raise StreamsError(f"ffmpeg failed ({proc.returncode}): {err}")
    os.replace(tmp, path)
    return path


def make_pedestrian_clip(
    path: str | Path,
    width: int = SUB_SIZE[0],
    height: int = SUB_SIZE[1],
    *,
    fps: int = DEFAULT_FPS,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    label: str = "CAM",
) -> Path:
    """Write a looping H.264 MP4 of pedestrians walking along a street."""
    frames = street_frames(width, height, fps=fps, seconds=seconds, seed=seed, label=label)
    return write_h264(path, frames, fps=fps)


def make_black_clip(
    path: str | Path,
    width: int = SUB_SIZE[0],
    height: int = SUB_SIZE[1],
    *,
    fps: int = DEFAULT_FPS,
    seconds: float = 2.0,
) -> Path:
    """Write an all-black H.264 MP4 (a camera with a covered lens or no sensor signal)."""
    black = np.zeros((height, width, 3), np.uint8)
    return write_h264(path, (black for _ in range(max(1, round(fps * seconds)))), fps=fps)


def make_frozen_clip(
    path: str | Path,
    width: int = SUB_SIZE[0],
    height: int = SUB_SIZE[1],
    *,
    fps: int = DEFAULT_FPS,
    seconds: float = 2.0,
    seed: int = 0,
) -> Path:
    """Write an H.264 MP4 that repeats one street picture (an encoder stuck on a frame)."""
    still = next(
        street_frames(width, height, fps=fps, seconds=1.0 / fps, seed=seed, label="FROZEN")
    )
    return write_h264(path, (still for _ in range(max(1, round(fps * seconds)))), fps=fps)


def _mp4_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, payload_start, box_end) for the ISO-BMFF boxes in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def corrupt_mp4(src: str | Path, dst: str | Path, *, seed: int = 0, fraction: float = 0.2) -> Path:
    """Copy an MP4 with bytes flipped inside its media data (mdat), headers left intact."""
    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(seed)
    flipped = False
    for kind, start, end in _mp4_boxes(bytes(data), 0, len(data)):
        if kind != b"mdat" or end - start < 64:
            continue
        # Keep the first few bytes of every sample length prefix region intact is not
        # possible without parsing; flipping a fraction of all payload bytes makes every
        # slice undecodable while the container still parses, which is what a broken
        # recorder or a bad disk produces.
        n = max(1, int((end - start) * fraction))
        idx = rng.integers(start, end, n)
        arr = np.frombuffer(data, np.uint8).copy()
        arr[idx] ^= rng.integers(1, 256, n).astype(np.uint8)
        data = bytearray(arr.tobytes())
        flipped = True
    if not flipped:
        raise StreamsError(f"{src}: no mdat box to corrupt")
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def make_segments(clip: str | Path, directory: str | Path) -> list[Path]:
    """Split an MP4 at every IDR into small self-contained MP4 files (one GOP each)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("seg*.mp4"):
        old.unlink()
    cmd = [
        ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(clip),
        "-c", "copy", "-an", "-f", "segment", "-segment_time", "0.01", "-reset_timestamps", "1",
        "-segment_format_options", "movflags=+faststart", "-fflags", "+bitexact",
        str(directory / "seg%03d.mp4"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    if done.returncode != 0:
        raise StreamsError(
            f"ffmpeg segmenting failed: {done.stderr.decode(errors='replace')[-500:]}"
        )
    return sorted(directory.glob("seg*.mp4"))


# ------------------------------------------------------------------ H.264 for RTSP


@dataclass(frozen=True, slots=True)
class H264Track:
    """An H.264 elementary stream split into access units, ready to packetise."""

    sps: bytes
    pps: bytes
    fps: float
    width: int
    height: int
    units: tuple[tuple[bytes, ...], ...]  # access units, each a tuple of NAL units
    keyframes: tuple[int, ...]  # indexes of access units that start with an IDR

    @property
    def duration(self) -> float:
        """Return the loop length in seconds."""
        return len(self.units) / self.fps


def _split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream into NAL units (start codes removed)."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    nals = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        nal = data[start:end].rstrip(b"\x00") if i + 1 < len(starts) else data[start:end]
        if nal:
            nals.append(nal)
    return nals


def load_h264_track(clip: str | Path, *, corrupt_fraction: float = 0.0, seed: int = 0) -> H264Track:
    """Read an MP4's H.264 stream as access units; optionally flip bytes in every slice."""
    cmd = [
        ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(clip),
        "-an", "-c:v", "copy", "-bsf:v", "h264_mp4toannexb", "-f", "h264", "-",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    if done.returncode != 0 or not done.stdout:
        raise StreamsError(
            f"cannot read H.264 from {clip}: {done.stderr.decode(errors='replace')[-300:]}"
        )
    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    rng = np.random.default_rng(seed)
    units: list[list[bytes]] = []
    current: list[bytes] = []
    has_vcl = False
    sps = pps = b""
    for nal in _split_annexb(done.stdout):
        kind = nal[0] & 0x1F
        vcl = kind in (1, 5)
        # A new access unit starts at a parameter set/SEI/AUD after a slice, or at a
        # slice whose first_mb_in_slice is 0 (ue(v) 0 encodes as a leading 1 bit).
        if has_vcl and (
            (not vcl and kind in (6, 7, 8, 9)) or (vcl and len(nal) > 1 and nal[1] & 0x80)
        ):
            units.append(current)
            current, has_vcl = [], False
        if kind == 7 and not sps:
            sps = nal
        elif kind == 8 and not pps:
            pps = nal
        if kind == 9:
            continue  # access unit delimiters carry nothing a client needs
        if vcl and corrupt_fraction > 0 and len(nal) > 8:
            arr = np.frombuffer(nal, np.uint8).copy()
            n = max(1, int((len(nal) - 4) * corrupt_fraction))
            idx = rng.integers(4, len(nal), n)
            arr[idx] ^= rng.integers(1, 256, n).astype(np.uint8)
            nal = arr.tobytes()
        current.append(nal)
        has_vcl = has_vcl or vcl
    if current:
        units.append(current)
    if not sps or not pps or not units:
        raise StreamsError(f"{clip}: no SPS/PPS or no frames in the H.264 stream")
    keyframes = tuple(i for i, au in enumerate(units) if any(n[0] & 0x1F == 5 for n in au))
    return H264Track(
        sps=sps,
        pps=pps,
        fps=float(fps),
        width=width,
        height=height,
        units=tuple(tuple(au) for au in units),
        keyframes=keyframes or (0,),
    )


RTP_PAYLOAD_TYPE = 96
RTP_MAX_PAYLOAD = 1400


def rtp_packets(
    nals: Iterable[bytes], *, seq: int, timestamp: int, ssrc: int
) -> tuple[list[bytes], int]:
    """Packetise one access unit as RTP (RFC 6184 single NAL and FU-A); return packets and next seq."""
    payloads: list[bytes] = []
    for nal in nals:
        if len(nal) <= RTP_MAX_PAYLOAD:
            payloads.append(nal)
            continue
        indicator = (nal[0] & 0xE0) | 28
        kind = nal[0] & 0x1F
        body = nal[1:]
        chunks = [
            body[i : i + RTP_MAX_PAYLOAD - 2] for i in range(0, len(body), RTP_MAX_PAYLOAD - 2)
        ]
        for i, chunk in enumerate(chunks):
            header = kind | (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
            payloads.append(bytes((indicator, header)) + chunk)
    packets = []
    for i, payload in enumerate(payloads):
        marker = 0x80 if i == len(payloads) - 1 else 0
        head = struct.pack(
            ">BBHII",
            0x80,
            marker | RTP_PAYLOAD_TYPE,
            seq & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc,
        )
        packets.append(head + payload)
        seq += 1
    return packets, seq


# ------------------------------------------------------------------ server plumbing


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free a moment ago (for tests; prefer port=0 where possible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _Service:
    """Start/stop plumbing shared by the demo servers."""

    scheme = "tcp"

    def __init__(self, host: str = LOOPBACK, port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._stopping = threading.Event()
        self._count_lock = threading.Lock()
        self._counts: dict[str, int] = {}

    @property
    def port(self) -> int:
        """Return the bound port (after start())."""
        if self._port is None:
            raise StreamsError(f"{type(self).__name__} is not started")
        return self._port

    def next_start(self, key: str) -> int:
        """Count connections per path (demo servers use it to vary the first frame)."""
        with self._count_lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def url(self, path: str = "") -> str:
        """Return the URL of a path on this server."""
        return f"{self.scheme}://{self.host}:{self.port}/{path.lstrip('/')}"

    def start(self) -> _Service:
        """Bind and start serving in background threads; return self."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving and close every socket."""
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _TCPServer(socketserver.ThreadingTCPServer):
    """ThreadingTCPServer that remembers its live client sockets so stop() can cut them."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type, owner: _Service) -> None:
        self.owner = owner
        self.clients: set[socket.socket] = set()
        self.clients_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        with self.clients_lock:
            self.clients.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self.clients_lock:
            self.clients.discard(request)
        super().shutdown_request(request)

    def cut_clients(self) -> None:
        """Shut down every client socket so blocked handler threads return."""
        with self.clients_lock:
            clients = list(self.clients)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _ThreadedService(_Service):
    """A _Service backed by a _TCPServer running serve_forever in a thread."""

    handler: type

    def _make_server(self) -> _TCPServer:
        return _TCPServer((self.host, self._requested_port), self.handler, self)

    def start(self) -> _ThreadedService:
        """Bind and start serving in background threads; return self."""
        if self._port is not None:
            return self
        self._stopping.clear()
        try:
            self._server = self._make_server()
        except OSError as exc:
            raise StreamsError(
                f"{type(self).__name__}: cannot bind {self.host}:{self._requested_port}: {exc}"
            ) from exc
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every socket."""
        if self._port is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.cut_clients()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._port = None


# ------------------------------------------------------------------------ faults


class ClosedPort(_Service):
    """A port that refuses connections: bound (so nobody else takes it) but never listening."""

    def start(self) -> ClosedPort:
        """Reserve the port; return self."""
        if self._port is None:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._sock.bind((self.host, self._requested_port))
            self._port = self._sock.getsockname()[1]
        return self

    def stop(self) -> None:
        """Release the port."""
        if self._port is not None:
            self._sock.close()
            self._port = None


class _FaultHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        owner: FaultTCPServer = self.server.owner  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        sock.settimeout(0.2)
        rng = np.random.default_rng(owner.seed)
        while not owner._stopping.is_set():
            if owner.mode == "garbage":
                try:
                    sock.sendall(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
                except TimeoutError:
                    pass
                except OSError:
                    return
                time.sleep(0.05)
                continue
            # Silent: read and drop whatever the client says, never answer.
            try:
                if not sock.recv(4096):
                    return
            except TimeoutError:
                continue
            except OSError:
                return


class FaultTCPServer(_ThreadedService):
    """A TCP server that accepts and then stays silent ('silent') or sends random bytes ('garbage')."""

    handler = _FaultHandler

    def __init__(
        self,
        mode: str = "silent",
        host: str = LOOPBACK,
        port: int = 0,
        *,
        seed: int = 0,
    ) -> None:
        if mode not in ("silent", "garbage"):
            raise ValueError(f"unknown fault mode {mode!r}")
        super().__init__(host, port)
        self.mode = mode
        self.seed = seed


# ------------------------------------------------------------------------- RTSP


@dataclass(frozen=True, slots=True)
class RTSPStream:
    """What one RTSP path plays: a track live, or a deliberate fault."""

    track: H264Track
    mode: str = "live"  # live | stall (no RTP after PLAY) | cut (half an IDR, then close)
    offset_s: float = 0.0
    auth: bool = False


class _RTSPHandler(socketserver.BaseRequestHandler):
    """One RTSP client connection: requests, then RTP over the same TCP connection."""

    def setup(self) -> None:
        self.owner: RTSPServer = self.server.owner  # type: ignore[attr-defined]
        self.sock: socket.socket = self.request
        self.reader = self.sock.makefile("rb")
        self.write_lock = threading.Lock()
        self.session = secrets.token_hex(8)
        self.stream: RTSPStream | None = None
        self.stream_name = ""
        self.channel = 0
        self.play_thread: threading.Thread | None = None
        self.stop_play = threading.Event()

    def finish(self) -> None:
        self.stop_play.set()
        if self.play_thread is not None:
            self.play_thread.join(timeout=2)
        self.reader.close()

    def send(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)

    def handle(self) -> None:
        try:
            while not self.owner._stopping.is_set():
                first = self.reader.read(1)
                if not first:
                    return
                if first == b"$":  # interleaved RTCP from the client: read and drop
                    head = self.reader.read(3)
                    if len(head) < 3:
                        return
                    self.reader.read(struct.unpack(">H", head[1:])[0])
                    continue
                request_line = (first + self.reader.readline(8192)).decode("latin-1").strip()
                if not request_line:
                    continue
                headers: dict[str, str] = {}
                while True:
                    line = self.reader.readline(8192).decode("latin-1").strip()
                    if not line:
                        break
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                if int(headers.get("content-length", "0") or 0):
                    self.reader.read(int(headers["content-length"]))
                if not self.respond(request_line, headers):
                    return
        except OSError:
            return

    def reply(
        self,
        cseq: str,
        status: str,
        extra: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", "Server: gridmap-demo"]
        for key, value in (extra or {}).items():
            lines.append(f"{key}: {value}")
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def respond(self, request_line: str, headers: dict[str, str]) -> bool:
        parts = request_line.split()
        cseq = headers.get("cseq", "0")
        if len(parts) != 3 or not parts[2].startswith("RTSP/"):
            self.reply(cseq, "400 Bad Request")
            return False
        method, url, _ = parts
        if method == "OPTIONS":
            self.reply(
                cseq,
                "200 OK",
                {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER"},
            )
            return True
        name = self.owner.stream_name(url)
        stream = self.owner.streams.get(name) if name is not None else None
        if method == "TEARDOWN":
            self.reply(cseq, "200 OK", {"Session": self.session})
            return False
        if method == "GET_PARAMETER":
            self.reply(cseq, "200 OK", {"Session": self.session})
            return True
        if stream is None:
            self.reply(cseq, "404 Not Found")
            return True
        if stream.auth and not self.owner.check_digest(method, headers.get("authorization", "")):
            self.reply(
                cseq,
                "401 Unauthorized",
                {"WWW-Authenticate": self.owner.digest_challenge()},
            )
            return True
        if method == "DESCRIBE":
            base = url.split("?")[0].rstrip("/") + "/"
            sdp = self.owner.sdp(stream.track).encode()
            self.reply(
                cseq,
                "200 OK",
                {"Content-Base": base, "Content-Type": "application/sdp"},
                sdp,
            )
        elif method == "SETUP":
            transport = headers.get("transport", "")
            match = re.search(r"interleaved=(\d+)", transport)
            if "RTP/AVP/TCP" not in transport.upper() or match is None:
                # UDP is not offered: clients such as FFmpeg then retry over TCP.
                self.reply(cseq, "461 Unsupported Transport")
                return True
            self.channel = int(match.group(1))
            self.stream = stream
            self.stream_name = name or ""
            self.reply(
                cseq,
                "200 OK",
                {
                    "Transport": f"RTP/AVP/TCP;unicast;interleaved={self.channel}-{self.channel + 1}",
                    "Session": f"{self.session};timeout=60",
                },
            )
        elif method == "PLAY":
            if self.stream is None:
                self.reply(cseq, "455 Method Not Valid in This State")
                return True
            self.reply(cseq, "200 OK", {"Session": self.session, "Range": "npt=0.000-"})
            if self.play_thread is None:
                self.play_thread = threading.Thread(target=self.play, name="rtsp-play", daemon=True)
                self.play_thread.start()
        else:
            self.reply(cseq, "405 Method Not Allowed")
        return True

    def play(self) -> None:
        """Send RTP for the chosen stream, paced at its frame rate, from the last IDR."""
        stream = self.stream
        assert stream is not None
        track = stream.track
        if stream.mode == "stall":
            return  # the connection stays open, but not a single frame will come
        ssrc = secrets.randbits(32)
        seq = secrets.randbits(16)
        n = len(track.units)
        # Every new client of a path starts at the next IDR of the clip, whatever the
        # time: a looping clip has few IDRs, and two samples that start on the same
        # one (easy with a wall-clock "live" position) would look frozen.
        turn = self.owner.next_start(self.stream_name) + round(stream.offset_s)
        first = track.keyframes[turn % len(track.keyframes)]
        started = time.monotonic()
        index = first
        try:
            while not self.stop_play.is_set() and not self.owner._stopping.is_set():
                unit = track.units[index % n]
                timestamp = round(index * 90000 / track.fps)
                packets, seq = rtp_packets(unit, seq=seq, timestamp=timestamp, ssrc=ssrc)
                if stream.mode == "cut":
                    packets = packets[: max(1, len(packets) // 2)]
                frames = b"".join(
                    b"$" + bytes((self.channel,)) + struct.pack(">H", len(p)) + p for p in packets
                )
                self.send(frames)
                if stream.mode == "cut":
                    # Close mid-frame: the client has half an IDR and then EOF.
                    self.sock.shutdown(socket.SHUT_RDWR)
                    return
                index += 1
                # The IDR goes out at once (like a camera with a GOP cache), then the
                # stream runs in real time.
                due = started + (index - first - 1) / track.fps
                delay = due - time.monotonic()
                if delay > 0:
                    self.stop_play.wait(delay)
        except OSError:
            return


class RTSPServer(_ThreadedService):
    """A many-client RTSP server for H.264 tracks (RTP over TCP interleaved only)."""

    scheme = "rtsp"
    handler = _RTSPHandler
    realm = "gridmap-demo"

    def __init__(
        self,
        streams: dict[str, RTSPStream],
        host: str = LOOPBACK,
        port: int = 0,
        *,
        user: str = DEMO_USER,
        password: str | None = None,
    ) -> None:
        super().__init__(host, port)
        if password is None and any(s.auth for s in streams.values()):
            raise ValueError("a password is needed for streams with auth=True")
        self.streams = {name.strip("/"): s for name, s in streams.items()}
        self.user = user
        self.password = password
        self.epoch = time.monotonic()
        self._nonce = secrets.token_hex(16)

    def stream_name(self, url: str) -> str | None:
        """Return the stream name for a request URL (the SETUP track suffix removed)."""
        path = unquote(urlsplit(url).path).strip("/")
        path = path.removesuffix("/trackID=0")
        return path or None

    def sdp(self, track: H264Track) -> str:
        """Return the session description of a track."""
        sprop = ",".join(base64.b64encode(p).decode() for p in (track.sps, track.pps))
        profile = track.sps[1:4].hex()
        return (
            "v=0\r\n"
            f"o=- {int(self.epoch)} 1 IN IP4 {self.host}\r\n"
            "s=gridmap demo stream\r\n"
            f"c=IN IP4 {self.host}\r\n"
            "t=0 0\r\n"
            "a=control:*\r\n"
            f"m=video 0 RTP/AVP {RTP_PAYLOAD_TYPE}\r\n"
            f"a=rtpmap:{RTP_PAYLOAD_TYPE} H264/90000\r\n"
            f"a=fmtp:{RTP_PAYLOAD_TYPE} packetization-mode=1;profile-level-id={profile};sprop-parameter-sets={sprop}\r\n"
            f"a=framerate:{track.fps:g}\r\n"
            "a=control:trackID=0\r\n"
        )

    def digest_challenge(self) -> str:
        """Return the WWW-Authenticate value for Digest auth."""
        return f'Digest realm="{self.realm}", nonce="{self._nonce}"'

    def check_digest(self, method: str, header: str) -> bool:
        """Return whether an Authorization header carries a valid Digest response."""
        if not header.lower().startswith("digest "):
            return False
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header[7:]))
        if fields.get("username") != self.user or fields.get("nonce") != self._nonce:
            return False
        assert self.password is not None

        def md5(text: str) -> str:
            return hashlib.md5(text.encode("utf-8")).hexdigest()

        ha1 = md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = md5(f"{method}:{fields.get('uri', '')}")
        if "qop" in fields:
            expected = md5(
                f"{ha1}:{self._nonce}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:{fields['qop']}:{ha2}"
            )
        else:
            expected = md5(f"{ha1}:{self._nonce}:{ha2}")
        return secrets.compare_digest(expected, fields.get("response", ""))


# ------------------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class MJPEGStream:
    """What one /mjpeg/<name> path plays: a clip as JPEG frames, live, or a fault."""

    clip: Path | None
    mode: str = "live"  # live | stall (headers, no frame) | cut (half a JPEG, then close) | garbage
    fps: float = 10.0
    offset_s: float = 0.0
    auth: bool = False


@dataclass(frozen=True, slots=True)
class LiveMP4:
    """A /live-mp4/<name>.mp4 path: each request is redirected to the next GOP segment."""

    segments: tuple[str, ...]  # paths under the files root, one GOP each
    offset: int = 0  # first segment, so paths that share a clip show different moments


class _HTTPHandler(http.server.BaseHTTPRequestHandler):
    server_version = "gridmap-demo/1"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http %s - %s", self.address_string(), format % args)

    @property
    def owner(self) -> DemoHTTPServer:
        return self.server.owner  # type: ignore[attr-defined]

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        path = unquote(urlsplit(self.path).path)
        private = path.startswith("/private/")
        if private:
            path = path[len("/private") :]
            if not self.owner.check_basic(self.headers.get("Authorization", "")):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="gridmap-demo"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        try:
            if path.startswith("/mjpeg/"):
                stream = self.owner.mjpeg.get(path[len("/mjpeg/") :])
                if stream is not None and stream.auth == private:
                    self.send_mjpeg(stream)
                    return
            elif path.startswith("/live-mp4/"):
                live = self.owner.live_mp4.get(path[len("/live-mp4/") :].removesuffix(".mp4"))
                if live is not None:
                    self.redirect_live(live, private)
                    return
            elif path.startswith("/files/"):
                self.send_file(path[len("/files/") :], head)
                return
            self.send_error(404)
        except (ConnectionError, TimeoutError):
            return  # the client went away, which is what probes do after one frame

    def redirect_live(self, live: LiveMP4, private: bool) -> None:
        # Like RTSP: every request gets the next segment, so two samples never see
        # the same frame of the short looping clip.
        index = self.owner.next_start(self.path) + live.offset
        segment = live.segments[index % len(live.segments)]
        self.send_response(302)
        self.send_header("Location", ("/private" if private else "") + "/files/" + quote(segment))
        self.send_header("Content-Length", "0")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def send_file(self, relative: str, head: bool) -> None:
        root = self.owner.files_root
        target = (root / relative).resolve()
        if root not in target.parents or not target.is_file():
            self.send_error(404)
            return
        size = target.stat().st_size
        start, end = 0, size - 1
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:
                start = max(0, size - int(match.group(2)))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header(
            "Content-Type",
            "video/mp4" if target.suffix == ".mp4" else "application/octet-stream",
        )
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if head:
            return
        with target.open("rb") as f:
            f.seek(start)
            remaining = end - start + 1
            while remaining > 0 and not self.owner._stopping.is_set():
                chunk = f.read(min(65536, remaining))
                if not chunk:
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)

    def send_mjpeg(self, stream: MJPEGStream) -> None:
        boundary = "gridmapframe"
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={boundary}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        stop = self.owner._stopping
        if stream.mode == "garbage":
            rng = np.random.default_rng(7)
            while not stop.is_set():
                self.wfile.write(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
                stop.wait(0.05)
            return
        if stream.mode == "stall":
            self.wfile.flush()
            stop.wait(3600)  # a camera that says "200 OK" and never sends a picture
            return
        assert stream.clip is not None
        frames = self.owner.jpeg_frames(stream.clip, stream.fps)
        started = time.monotonic()
        sent = 0
        while not stop.is_set():
            now = time.monotonic() - self.owner.epoch + stream.offset_s
            jpeg = frames[int(now * stream.fps) % len(frames)]
            head = f"--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            if stream.mode == "cut":
                self.wfile.write(head + jpeg[: len(jpeg) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(head + jpeg + b"\r\n")
            self.wfile.flush()
            sent += 1
            stop.wait(max(0.0, started + sent / stream.fps - time.monotonic()))


class DemoHTTPServer(_ThreadedService):
    """Threaded HTTP server for MJPEG streams, MP4 files and HTTP fault paths."""

    scheme = "http"
    handler = _HTTPHandler

    def __init__(
        self,
        files_root: str | Path,
        *,
        mjpeg: dict[str, MJPEGStream] | None = None,
        live_mp4: dict[str, LiveMP4] | None = None,
        host: str = LOOPBACK,
        port: int = 0,
        user: str = DEMO_USER,
        password: str | None = None,
        jpeg_quality: int = 80,
    ) -> None:
        super().__init__(host, port)
        self.files_root = Path(files_root).resolve()
        self.mjpeg = dict(mjpeg or {})
        self.live_mp4 = dict(live_mp4 or {})
        if password is None and any(s.auth for s in self.mjpeg.values()):
            raise ValueError("a password is needed for streams with auth=True")
        self.user = user
        self.password = password
        self.jpeg_quality = jpeg_quality
        self.epoch = time.monotonic()
        self._jpeg_cache: dict[tuple[Path, float], list[bytes]] = {}
        self._jpeg_lock = threading.Lock()

    def start(self) -> DemoHTTPServer:
        """Encode every MJPEG clip, then bind and serve; return self."""
        # Eagerly: encoding on the first request stalled that request (and every
        # other first request behind the lock) for seconds under load.
        for stream in self.mjpeg.values():
            if stream.clip is not None:
                self.jpeg_frames(stream.clip, stream.fps)
        super().start()
        return self

    def check_basic(self, header: str) -> bool:
        """Return whether an Authorization header carries the right Basic credentials."""
        if self.password is None or not header.startswith("Basic "):
            return False
        try:
            user, _, password = (
                base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.user) and secrets.compare_digest(
            password.encode(), self.password.encode()
        )

    def jpeg_frames(self, clip: Path, fps: float) -> list[bytes]:
        """Return a clip's frames, resampled to fps, as JPEG bytes (encoded once, then cached)."""
        key = (clip, fps)
        with self._jpeg_lock:
            cached = self._jpeg_cache.get(key)
            if cached is not None:
                return cached
            cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
            try:
                clip_fps = cap.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
                frames: list[bytes] = []
                index = 0
                while True:
                    ok, frame = cap.read()
                    if not ok:
                        break
                    if len(frames) <= index * fps / clip_fps:
                        ok, buf = cv2.imencode(
                            ".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
                        )
                        frames.append(buf.tobytes())
                    index += 1
            finally:
                cap.release()
            if not frames:
                raise StreamsError(f"{clip}: no frames to serve as MJPEG")
            self._jpeg_cache[key] = frames
            return frames


# --------------------------------------------------------------- demo assembly


@dataclass(frozen=True, slots=True)
class DemoStream:
    """One demo stream slot: its URL and what a probe is expected to find there."""

    slot: int
    url: str
    kind: str  # rtsp | mjpeg | http_file | fault
    expected: str  # the health class a correct probe reports (frozen: on the second sample)
    nominal_width: int
    nominal_height: int
    username: str | None = None  # the password comes from configuration, never from here
    note: str = ""


@dataclass(frozen=True, slots=True)
class DemoPorts:
    """Where the demo servers listen."""

    host: str
    http: int
    rtsp: int
    silent: int
    garbage: int
    closed: int


# Clip name -> (width, height, seed); the healthy demo scenes.
DEMO_SCENES: dict[str, tuple[int, int, int]] = {
    "street_a": (*SUB_SIZE, 1),
    "street_b": (*SUB_SIZE, 2),
    "street_c": (*SUB_SIZE, 3),
    "street_d": (*SUB_SIZE, 4),
    "main_a": (*MAIN_SIZE, 5),
    "main_b": (*MAIN_SIZE, 6),
}
_SUB_SCENES = ("street_a", "street_b", "street_c", "street_d")


def make_demo_clips(
    directory: str | Path,
    *,
    seconds: float = DEFAULT_SECONDS,
    fps: int = DEFAULT_FPS,
    include_uhd: bool = True,
) -> dict[str, Path]:
    """Write (or reuse) every demo clip in directory and return them by name."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / "clips.stamp"
    wanted = f"v{CLIP_VERSION} seconds={seconds} fps={fps} uhd={include_uhd}\n"
    fresh = stamp.is_file() and stamp.read_text() == wanted
    clips: dict[str, Path] = {}

    def build(name: str, make) -> None:
        path = directory / f"{name}.mp4"
        if not (fresh and path.is_file()):
            make(path)
        clips[name] = path

    for name, (w, h, seed) in DEMO_SCENES.items():
        label = f"CAM {name.upper()}"
        build(name, lambda p, w=w, h=h, seed=seed, label=label: make_pedestrian_clip(
            p, w, h, fps=fps, seconds=seconds, seed=seed, label=label))  # fmt: skip
    build(
        "lowres",
        lambda p: make_pedestrian_clip(p, 320, 180, fps=fps, seconds=seconds, seed=7, label="LOW"),
    )
    build("black", lambda p: make_black_clip(p, fps=fps))
    build("frozen", lambda p: make_frozen_clip(p, fps=fps, seed=9))
    build("corrupt", lambda p: corrupt_mp4(clips["street_a"], p, seed=3))
    if include_uhd:
        # 4K at a low frame rate: real 3840x2160 decoding for the probe, cheap to encode.
        build(
            "uhd",
            lambda p: make_pedestrian_clip(p, *UHD_SIZE, fps=5, seconds=2.0, seed=8, label="UHD"),
        )
    for name in (*DEMO_SCENES, "frozen"):
        seg_dir = directory / "segments" / name
        if not (fresh and any(seg_dir.glob("seg*.mp4"))):
            make_segments(clips[name], seg_dir)
    stamp.write_text(wanted)
    return clips


@dataclass
class DemoStreams:
    """The running demo servers; stop() them when done."""

    ports: DemoPorts
    password: str
    services: list[_Service] = field(default_factory=list)

    def manifest(self) -> list[DemoStream]:
        """Return the 48 demo stream slots."""
        return demo_manifest(self.ports)

    def url(self, slot: int) -> str:
        """Return the URL of a demo stream slot."""
        return stream_for_slot(self.ports, slot).url

    def stop(self) -> None:
        """Stop every server."""
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _rtsp_streams(clips: dict[str, Path], *, corrupt_seed: int = 5) -> dict[str, RTSPStream]:
    """Return the RTSP paths of the demo: healthy cams, faults and auth-protected cams."""
    tracks = {name: load_h264_track(path) for name, path in clips.items() if name != "corrupt"}
    streams: dict[str, RTSPStream] = {}
    scenes = list(DEMO_SCENES)
    for i in range(16):
        scene = scenes[i % len(scenes)]
        # Different offsets make cameras that share a scene show different moments.
        streams[f"cam{i:02d}"] = RTSPStream(tracks[scene], offset_s=1.3 * i)
    for i in range(2):
        streams[f"private/cam{i:02d}"] = RTSPStream(
            tracks[_SUB_SCENES[i]], offset_s=0.7 * i, auth=True
        )
    streams["black"] = RTSPStream(tracks["black"])
    streams["frozen"] = RTSPStream(tracks["frozen"])
    streams["lowres"] = RTSPStream(tracks["lowres"])
    streams["stall"] = RTSPStream(tracks["street_a"], mode="stall")
    streams["cut"] = RTSPStream(tracks["street_b"], mode="cut")
    # Flip bytes from the slice header on, so no slice decodes (not just concealed blocks).
    corrupt = load_h264_track(clips["street_c"], corrupt_fraction=0.5, seed=corrupt_seed)
    corrupt = H264Track(
        sps=corrupt.sps,
        pps=corrupt.pps,
        fps=corrupt.fps,
        width=corrupt.width,
        height=corrupt.height,
        units=tuple(tuple(_break_slice(n) for n in au) for au in corrupt.units),
        keyframes=corrupt.keyframes,
    )
    streams["corrupt"] = RTSPStream(corrupt)
    if "uhd" in tracks:
        streams["uhd"] = RTSPStream(tracks["uhd"])
    return streams


def _break_slice(nal: bytes) -> bytes:
    """Return a slice NAL whose header names a PPS that does not exist (others unchanged)."""
    if nal[0] & 0x1F not in (1, 5):
        return nal
    # first_mb_in_slice=0 ('1'), slice_type=7 ('0001000'), pps_id=200: a decoder drops it.
    return nal[:1] + bytes((0x88, 0x00, 0x32, 0x50)) + nal[5:]


def start_demo_servers(
    directory: str | Path,
    clips: dict[str, Path],
    *,
    base_port: int = 0,
    host: str = LOOPBACK,
    password: str | None = None,
    mjpeg_fps: float = 10.0,
) -> DemoStreams:
    """Start the HTTP, RTSP and fault servers for already written demo clips."""
    directory = Path(directory)
    password = password if password is not None else secrets.token_urlsafe(12)

    def port(offset: int) -> int:
        return base_port + offset if base_port else 0

    mjpeg: dict[str, MJPEGStream] = {}
    for i in range(12):
        mjpeg[f"cam{i:02d}"] = MJPEGStream(
            clips[_SUB_SCENES[i % 4]], fps=mjpeg_fps, offset_s=0.9 * i
        )
    for i in range(2):
        mjpeg[f"cam{12 + i:02d}"] = MJPEGStream(
            clips[_SUB_SCENES[i]], fps=mjpeg_fps, offset_s=2.1 * i, auth=True
        )
    mjpeg["black"] = MJPEGStream(clips["black"], fps=mjpeg_fps)
    mjpeg["frozen"] = MJPEGStream(clips["frozen"], fps=mjpeg_fps)
    mjpeg["stall"] = MJPEGStream(None, mode="stall")
    mjpeg["cut"] = MJPEGStream(clips["street_d"], mode="cut")
    mjpeg["garbage"] = MJPEGStream(None, mode="garbage")
    live_mp4: dict[str, LiveMP4] = {}
    for i, name in enumerate((*DEMO_SCENES, "frozen")):
        segs = sorted((directory / "segments" / name).glob("seg*.mp4"))
        rel = tuple(str(p.relative_to(directory)) for p in segs)
        live_mp4[name] = LiveMP4(rel)
        live_mp4[f"{name}_b"] = LiveMP4(rel, offset=3 + i)
    streams = DemoStreams(ports=DemoPorts(host, 0, 0, 0, 0, 0), password=password)
    try:
        http_srv = DemoHTTPServer(
            directory,
            mjpeg=mjpeg,
            live_mp4=live_mp4,
            host=host,
            port=port(0),
            password=password,
        ).start()
        streams.services.append(http_srv)
        rtsp = RTSPServer(_rtsp_streams(clips), host=host, port=port(1), password=password).start()
        streams.services.append(rtsp)
        silent = FaultTCPServer("silent", host, port(2)).start()
        streams.services.append(silent)
        garbage = FaultTCPServer("garbage", host, port(3)).start()
        streams.services.append(garbage)
        closed = ClosedPort(host, port(4)).start()
        streams.services.append(closed)
    except BaseException:
        streams.stop()
        raise
    streams.ports = DemoPorts(
        host, http_srv.port, rtsp.port, silent.port, garbage.port, closed.port
    )
    return streams


def serve_demo_streams(
    directory: str | Path,
    base_port: int = 8554,
    *,
    host: str = LOOPBACK,
    password: str | None = None,
    seconds: float = DEFAULT_SECONDS,
    include_uhd: bool = True,
) -> DemoStreams:
    """Write the demo clips into directory (cached) and start every demo server.

    Ports: HTTP base_port, RTSP base_port+1, silent TCP +2, garbage TCP +3, refusing +4
    (base_port=0 picks free ports). Call stop() on the result, or use it as a context
    manager. A random password protects the /private/ paths unless one is given.
    """
    clips = make_demo_clips(directory, seconds=seconds, include_uhd=include_uhd)
    return start_demo_servers(directory, clips, base_port=base_port, host=host, password=password)


def demo_manifest(ports: DemoPorts) -> list[DemoStream]:
    """Return the 48 demo stream slots: mostly healthy, a deliberate minority broken."""
    h = ports.host
    rtsp = f"rtsp://{h}:{ports.rtsp}"
    http = f"http://{h}:{ports.http}"
    sub, main = SUB_SIZE, MAIN_SIZE
    scenes = list(DEMO_SCENES)
    slots: list[tuple[str, str, str, tuple[int, int], str | None, str]] = []
    for i in range(16):  # slots 0-15: RTSP cameras
        size = DEMO_SCENES[scenes[i % len(scenes)]][:2]
        slots.append(
            (
                f"{rtsp}/cam{i:02d}",
                "rtsp",
                "online",
                size,
                None,
                scenes[i % len(scenes)],
            )
        )
    for i in range(12):  # slots 16-27: MJPEG cameras
        slots.append(
            (
                f"{http}/mjpeg/cam{i:02d}",
                "mjpeg",
                "online",
                sub,
                None,
                _SUB_SCENES[i % 4],
            )
        )
    for name in scenes:  # slots 28-33: "live" MP4 over HTTP
        slots.append(
            (
                f"{http}/live-mp4/{name}.mp4",
                "http_file",
                "online",
                DEMO_SCENES[name][:2],
                None,
                name,
            )
        )
    slots += [  # slots 34-37: need credentials
        (f"{rtsp}/private/cam00", "rtsp", "online", sub, DEMO_USER, "Digest auth"),
        (f"{rtsp}/private/cam01", "rtsp", "online", sub, DEMO_USER, "Digest auth"),
        (
            f"{http}/private/mjpeg/cam12",
            "mjpeg",
            "online",
            sub,
            DEMO_USER,
            "Basic auth",
        ),
        (
            f"{http}/private/mjpeg/cam13",
            "mjpeg",
            "online",
            sub,
            DEMO_USER,
            "Basic auth",
        ),
    ]
    slots += [  # slots 38-47: the deliberate minority
        (f"{rtsp}/black", "fault", "no_signal", sub, None, "black picture"),
        (
            f"{http}/mjpeg/frozen",
            "fault",
            "frozen",
            sub,
            None,
            "same picture every sample",
        ),
        (
            f"{rtsp}/lowres",
            "fault",
            "degraded",
            main,
            None,
            "320x180 where 1280x720 is expected",
        ),
        (
            f"rtsp://{h}:{ports.closed}/cam",
            "fault",
            "offline",
            sub,
            None,
            "connection refused",
        ),
        (
            f"rtsp://{h}:{ports.silent}/cam",
            "fault",
            "offline",
            sub,
            None,
            "accepts, never answers",
        ),
        (
            f"http://{h}:{ports.garbage}/video",
            "fault",
            "offline",
            sub,
            None,
            "garbage bytes",
        ),
        (f"{rtsp}/stall", "fault", "offline", sub, None, "PLAY, then no frame"),
        (f"{http}/mjpeg/cut", "fault", "offline", sub, None, "closes mid-frame"),
        (f"{http}/files/corrupt.mp4", "fault", "offline", sub, None, "corrupted H.264"),
        (f"{rtsp}/frozen", "fault", "frozen", sub, None, "same picture every sample"),
    ]
    return [
        DemoStream(
            slot=i,
            url=url,
            kind=kind,
            expected=exp,
            nominal_width=size[0],
            nominal_height=size[1],
            username=user,
            note=note,
        )
        for i, (url, kind, exp, size, user, note) in enumerate(slots)
    ]


def stream_for_slot(ports: DemoPorts, slot: int) -> DemoStream:
    """Return the demo stream of a camera's stream_slot (wrapping past the last slot)."""
    streams = demo_manifest(ports)
    return streams[slot % len(streams)]
