"""Demo streams and the stream probe, on real bytes: no database, no mocks.

Clips are generated into a temporary directory, served from 127.0.0.1 on free ports
and probed through real worker processes, so every health class is produced by the
same decoding path the sampler uses.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote, quote_plus

import cv2
import numpy as np
import pytest

from video import streams
from video.probe import (
    ErrorClass,
    FrameStats,
    Health,
    Prober,
    ProbeRequest,
    StreamURLError,
    analyse_frame,
    classify,
    is_frozen,
    probe,
    scrub,
    signature_distance,
)
from video.urls import Credentials

PASSWORD = 'S3cr@t:/w?rd#%é "&x'  # every character that breaks naive URL handling
FAST = {"open_timeout_s": 2.0, "read_timeout_s": 2.0, "slow_ms": 60_000}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a directory with short demo clips (3 s at 10 fps keeps encoding quick)."""
    path = tmp_path_factory.mktemp("demo")
    streams.make_demo_clips(path, seconds=3.0, fps=10)
    return path


@pytest.fixture(scope="module")
def demo(demo_dir: Path):
    """Start every demo server on free ports."""
    clips = {p.stem: p for p in demo_dir.glob("*.mp4")}
    running = streams.start_demo_servers(demo_dir, clips, password=PASSWORD)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def prober():
    """Return a small worker pool shared by the tests of this module."""
    with Prober(processes=2, threads_per_process=4) as pool:
        yield pool


def slot_url(demo: streams.DemoStreams, note_or_path: str) -> str:
    """Return the URL of the manifest slot whose URL ends with a path."""
    for stream in demo.manifest():
        if stream.url.endswith(note_or_path):
            return stream.url
    raise KeyError(note_or_path)


# ------------------------------------------------------------------ clips


def test_clips_are_deterministic_and_show_walking_people(tmp_path: Path) -> None:
    a = streams.make_pedestrian_clip(tmp_path / "a.mp4", 320, 180, fps=5, seconds=1.0, seed=4)
    b = streams.make_pedestrian_clip(tmp_path / "b.mp4", 320, 180, fps=5, seconds=1.0, seed=4)
    assert a.read_bytes() == b.read_bytes()
    cap = cv2.VideoCapture(str(a), cv2.CAP_FFMPEG)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) == 5
    assert frames[0].shape == (180, 320, 3)
    # People move: consecutive frames differ, but only in part of the picture.
    changed = np.mean(np.abs(frames[0].astype(int) - frames[4].astype(int)).max(axis=2) > 40)
    assert 0.001 < changed < 0.3


def test_corrupted_mp4_keeps_its_container(demo_dir: Path) -> None:
    good = (demo_dir / "street_a.mp4").read_bytes()
    bad = (demo_dir / "corrupt.mp4").read_bytes()
    assert len(good) == len(bad)
    assert bad[:32] == good[:32]  # ftyp intact: it still parses as MP4
    assert bad != good


def test_manifest_has_48_slots_mostly_healthy(demo: streams.DemoStreams) -> None:
    manifest = demo.manifest()
    assert [s.slot for s in manifest] == list(range(48))
    assert len({s.url for s in manifest}) == 48
    healthy = [s for s in manifest if s.expected == "online"]
    assert 0.7 < len(healthy) / 48 < 0.9
    assert {s.kind for s in manifest} == {"rtsp", "mjpeg", "http_file", "fault"}
    assert {s.expected for s in manifest} == {
        "online",
        "offline",
        "no_signal",
        "frozen",
        "degraded",
    }
    assert all(PASSWORD not in s.url for s in manifest)
    assert demo.url(48 + 5) == manifest[5].url  # slots wrap


# ------------------------------------------------------------------ online


@pytest.mark.parametrize(
    "path",
    ["/cam00", "/cam04", "/mjpeg/cam00", "/live-mp4/street_b.mp4", "/files/main_a.mp4"],
)
def test_healthy_streams_are_online(demo: streams.DemoStreams, prober: Prober, path: str) -> None:
    url = (
        slot_url(demo, path)
        if "/files/" not in path
        else f"http://127.0.0.1:{demo.ports.http}{path}"
    )
    result = prober.probe(url, **FAST)
    assert result.health is Health.ONLINE, result
    assert result.ok and result.error is None
    assert result.width in (640, 1280) and result.height in (360, 720)
    assert result.open_ms is not None and result.first_frame_ms is not None
    snapshot = cv2.imdecode(np.frombuffer(result.jpeg, np.uint8), cv2.IMREAD_COLOR)
    thumb = cv2.imdecode(np.frombuffer(result.thumbnail, np.uint8), cv2.IMREAD_COLOR)
    assert snapshot.shape[:2] == (result.height, result.width)
    assert thumb.shape[1] == 160
    assert len(result.signature) == 144
    assert 40 < result.brightness < 220


def test_local_file_inside_the_demo_directory(demo_dir: Path, prober: Prober) -> None:
    result = prober.probe(str(demo_dir / "street_c.mp4"), demo_root=demo_dir, **FAST)
    assert result.health is Health.ONLINE
    assert (result.width, result.height) == (640, 360)


def test_single_call_probe_starts_its_own_worker(demo: streams.DemoStreams) -> None:
    result = probe(slot_url(demo, "/mjpeg/cam01"), **FAST)
    assert result.health is Health.ONLINE


# ------------------------------------------------------------------ faults


FAULTS = {
    # name: (slot URL suffix, expected health, accepted error classes)
    "closed_port": ("closed", Health.OFFLINE, {ErrorClass.REFUSED}),
    "silent_server": ("silent", Health.OFFLINE, {ErrorClass.TIMEOUT}),
    "garbage_server": ("garbage", Health.OFFLINE, {ErrorClass.OPEN_FAILED}),
    "black": ("/black", Health.NO_SIGNAL, {ErrorClass.BLACK}),
    "low_resolution": ("/lowres", Health.DEGRADED, {ErrorClass.LOW_RESOLUTION}),
    "no_frame_after_play": ("/stall", Health.OFFLINE, {ErrorClass.NO_FRAME}),
    "closes_mid_frame": ("/mjpeg/cut", Health.OFFLINE, {ErrorClass.EOF}),
    "corrupted_mp4": ("/files/corrupt.mp4", Health.OFFLINE, {ErrorClass.DECODE_ERROR}),
    "corrupted_rtsp": (
        "rtsp:/corrupt",
        Health.OFFLINE,
        {ErrorClass.NO_FRAME, ErrorClass.DECODE_ERROR},
    ),
    "mjpeg_no_frame": ("http:/mjpeg/stall", Health.OFFLINE, {ErrorClass.TIMEOUT}),
    "mjpeg_garbage": (
        "http:/mjpeg/garbage",
        Health.OFFLINE,
        {ErrorClass.TIMEOUT, ErrorClass.OPEN_FAILED},
    ),
    "not_found": ("rtsp:/nope", Health.OFFLINE, {ErrorClass.NOT_FOUND}),
    "auth_missing": ("rtsp:/private/cam00", Health.OFFLINE, {ErrorClass.AUTH}),
}


def fault_url(demo: streams.DemoStreams, spec: str) -> str:
    """Resolve a FAULTS spec to a URL on the running demo servers."""
    p = demo.ports
    if spec.startswith("rtsp:/"):
        return f"rtsp://{p.host}:{p.rtsp}{spec[5:]}"
    if spec.startswith("http:/"):
        return f"http://{p.host}:{p.http}{spec[5:]}"
    if spec in ("closed", "silent", "garbage"):
        port = getattr(p, spec)
        return (
            f"rtsp://{p.host}:{port}/cam" if spec != "garbage" else f"http://{p.host}:{port}/video"
        )
    if spec.startswith("/files/"):
        return f"http://{p.host}:{p.http}{spec}"
    return slot_url(demo, spec)


@pytest.fixture(scope="module")
def fault_results(demo: streams.DemoStreams, prober: Prober) -> dict:
    """Probe every fault stream at once (the slow ones overlap) and keep the results."""
    names = list(FAULTS)
    nominal = {s.url: (s.nominal_width, s.nominal_height) for s in demo.manifest()}
    futures = []
    for name in names:
        url = fault_url(demo, FAULTS[name][0])
        width, height = nominal.get(url, (None, None))
        futures.append(prober.submit(url, nominal_width=width, nominal_height=height, **FAST))
    return {n: f.result() for n, f in zip(names, futures, strict=True)}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_stream_gets_its_health_class(fault_results: dict, name: str) -> None:
    _, health, errors = FAULTS[name]
    result = fault_results[name]
    assert result.health is health, result
    assert result.error in errors, result
    if health is Health.OFFLINE:
        assert not result.ok and result.jpeg is None


def test_four_k_stream_is_decoded_and_shrunk(demo: streams.DemoStreams, prober: Prober) -> None:
    url = fault_url(demo, "rtsp:/uhd")
    result = prober.probe(url, open_timeout_s=4, read_timeout_s=4, slow_ms=60_000)
    assert result.health is Health.ONLINE
    assert (result.width, result.height) == (3840, 2160)
    snapshot = cv2.imdecode(np.frombuffer(result.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert snapshot.shape[1] == 1280  # never a 4K JPEG in the database
    capped = prober.probe(url, max_pixels=1920 * 1080, **FAST)
    assert (capped.health, capped.error) == (Health.DEGRADED, ErrorClass.OVERSIZE)
    assert capped.jpeg is None


# ------------------------------------------------------------------ frozen


@pytest.mark.parametrize("path", ["/frozen", "/mjpeg/frozen"])
def test_frozen_stream_is_frozen_on_the_second_sample(
    demo: streams.DemoStreams, prober: Prober, path: str
) -> None:
    url = slot_url(demo, path)
    first = prober.probe(url, **FAST)
    assert first.health is Health.ONLINE  # one sample cannot tell
    second = prober.probe(url, previous_signature=first.signature, **FAST)
    assert second.health is Health.FROZEN


@pytest.mark.parametrize("path", ["/cam01", "/mjpeg/cam02", "/live-mp4/street_a.mp4"])
def test_moving_stream_is_not_frozen(demo: streams.DemoStreams, prober: Prober, path: str) -> None:
    url = slot_url(demo, path)
    first = prober.probe(url, **FAST)
    second = prober.probe(url, previous_signature=first.signature, **FAST)
    assert second.health is Health.ONLINE
    assert signature_distance(first.signature, second.signature) > 3


# ------------------------------------------------------------- wall clock


def test_hung_probe_is_killed_and_the_pool_recovers(demo: streams.DemoStreams) -> None:
    silent = fault_url(demo, "silent")
    healthy = slot_url(demo, "/cam02")
    with Prober(processes=1, threads_per_process=2) as pool:
        # FFmpeg and the preflight would wait 60 s; the wall clock stops it first.
        hung = pool.submit(silent, open_timeout_s=60, read_timeout_s=60, wall_timeout_s=1.5)
        neighbour = pool.submit(healthy, **FAST)
        assert neighbour.result().health is Health.ONLINE  # same worker, not failed
        result = hung.result()
        assert (result.health, result.error) == (
            Health.OFFLINE,
            ErrorClass.WALL_TIMEOUT,
        )
        assert pool.probe(healthy, **FAST).health is Health.ONLINE  # replacement works


# ------------------------------------------------------------- credentials


def secret_spellings() -> list[str]:
    """Return the ways the demo password could leak into text."""
    return [
        PASSWORD,
        quote(PASSWORD, safe=""),
        quote(PASSWORD),
        quote_plus(PASSWORD),
        base64.b64encode(f"demo:{PASSWORD}".encode()).decode().rstrip("="),
    ]


def test_credentials_work_and_never_leak(
    demo: streams.DemoStreams, prober: Prober, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="video.probe")
    good = ("demo", PASSWORD)
    bad = ("demo", PASSWORD + "x")
    rtsp = fault_url(demo, "rtsp:/private/cam01")
    mjpeg = fault_url(demo, "http:/private/mjpeg/cam12")
    results = [
        prober.probe(rtsp, credentials=good, **FAST),
        prober.probe(mjpeg, credentials=good, **FAST),
        prober.probe(rtsp, credentials=bad, **FAST),
        prober.probe(mjpeg, credentials=bad, **FAST),
        # Credentials offered to broken servers, whose errors FFmpeg logs.
        prober.probe(fault_url(demo, "rtsp:/corrupt"), credentials=good, **FAST),
        prober.probe(fault_url(demo, "garbage"), credentials=good, **FAST),
    ]
    assert [r.health for r in results[:2]] == [Health.ONLINE, Health.ONLINE]
    assert [r.error for r in results[2:4]] == [ErrorClass.AUTH, ErrorClass.AUTH]
    with pytest.raises(StreamURLError) as embedded:
        prober.submit(f"rtsp://demo:{quote(PASSWORD, safe='')}@127.0.0.1:554/x")
    requests = [ProbeRequest(rtsp, credentials=Credentials(*good))]
    text = "\n".join(
        [caplog.text, str(embedded.value), repr(embedded.value), repr(requests)]
        + [repr(r) + r.detail + r.url for r in results]
    )
    assert "probe worker" in caplog.text  # FFmpeg's stderr did reach the log, scrubbed
    for spelling in secret_spellings():
        assert spelling not in text


def test_scrub_removes_every_spelling_and_userinfo() -> None:
    creds = Credentials("demo", PASSWORD)
    basic = base64.b64encode(f"demo:{PASSWORD}".encode()).decode()
    text = (
        f"[rtsp @ 0x1] rtsp://demo:{quote(PASSWORD, safe='')}@10.0.0.1/x failed; "
        f"Authorization: Basic {basic}; raw {PASSWORD}; form {quote_plus(PASSWORD)}; "
        "other rtsp://admin:12345@10.0.0.2/y"
    )
    cleaned = scrub(text, [creds])
    for spelling in secret_spellings():
        assert spelling not in cleaned
    assert "12345" not in cleaned and "10.0.0.2/y" in cleaned


# --------------------------------------------------------------- bad URLs


@pytest.mark.parametrize(
    "url",
    [
        "exec:ls",
        "ffmpeg:-i x",
        "pipe:0",
        "concat:/etc/passwd|/etc/hosts",
        "subfile,,start,0,end,0,,:/etc/passwd",
        "rtsp://127.0.0.1/a;rm -rf /",
        "rtsp://127.0.0.1/$(id)",
        "http://127.0.0.1/`id`",
        "rtsp://127.0.0.1/a b",
        "rtsp://127.0.0.1/a\nb",
        "relative/clip.mp4",
        "file:///etc/passwd",
        "/etc/passwd",
        "",
        "rtsp://",
        "rtsp://demo:pw@127.0.0.1/x",
        "udp://127.0.0.1:1234",
    ],
)
def test_odd_urls_are_rejected_before_anything_opens(
    prober: Prober, url: str, demo_dir: Path
) -> None:
    with pytest.raises(StreamURLError):
        prober.submit(url, demo_root=demo_dir)
    with pytest.raises(StreamURLError):
        probe(url, demo_root=demo_dir)


# --------------------------------------------------------------- pure maths


def stats_of(frame: np.ndarray) -> FrameStats:
    """Return analyse_frame() of a frame, without JPEG encoding."""
    return analyse_frame(frame, want_jpeg=False)


def street() -> np.ndarray:
    """Return one synthetic street frame."""
    return next(streams.street_frames(640, 360, fps=5, seconds=0.2, seed=11))


def test_classify_covers_every_class() -> None:
    moving = stats_of(street())
    assert classify(moving, first_frame_ms=100) == (Health.ONLINE, None)
    black = stats_of(np.zeros((360, 640, 3), np.uint8))
    assert classify(black, first_frame_ms=100) == (Health.NO_SIGNAL, ErrorClass.BLACK)
    blue = stats_of(np.full((360, 640, 3), (200, 60, 20), np.uint8))
    assert classify(blue, first_frame_ms=100) == (Health.NO_SIGNAL, ErrorClass.FLAT)
    assert (
        classify(moving, first_frame_ms=100, previous_signature=moving.signature)[0]
        is Health.FROZEN
    )
    assert classify(moving, first_frame_ms=100, nominal_width=1920, nominal_height=1080) == (
        Health.DEGRADED,
        ErrorClass.LOW_RESOLUTION,
    )
    assert classify(moving, first_frame_ms=9000, slow_ms=3000) == (
        Health.DEGRADED,
        ErrorClass.SLOW,
    )


def test_signature_tolerates_codec_noise_but_not_motion() -> None:
    frames = list(streams.street_frames(640, 360, fps=10, seconds=1.0, seed=3))
    noisy = np.clip(
        frames[0].astype(int) + np.random.default_rng(0).integers(-3, 4, frames[0].shape),
        0,
        255,
    )
    a = stats_of(frames[0]).signature
    assert is_frozen(a, stats_of(noisy.astype(np.uint8)).signature)
    assert not is_frozen(a, stats_of(frames[5]).signature)
    assert signature_distance(a, a) == 0
    with pytest.raises(ValueError):
        signature_distance(a, a[:10])


def test_request_repr_hides_the_password() -> None:
    request = ProbeRequest("rtsp://127.0.0.1/x", credentials=Credentials("demo", PASSWORD))
    assert PASSWORD not in repr(request)
    assert PASSWORD not in repr(replace(request, url="rtsp://127.0.0.1/y"))


def test_probe_survives_its_worker_being_killed(demo: streams.DemoStreams) -> None:
    with Prober(processes=1, threads_per_process=1) as pool:
        future = pool.submit(fault_url(demo, "rtsp:/stall"), **FAST)  # runs ~4 s
        for _ in range(200):
            if pool.in_flight:
                break
            time.sleep(0.05)
        os.kill(pool.worker_pids()[0], signal.SIGKILL)
        result = future.result()  # retried once on a fresh worker
        assert (result.health, result.error) == (Health.OFFLINE, ErrorClass.NO_FRAME)
