"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, against
the app served by a real WSGI server on a loopback port."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", "/usr/bin/chromium")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
OUTPUT_DIR = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"

# Flags from the machine notes: without the background-networking ones Chromium
# tries to reach Google's hosts at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@contextmanager
def serving(app, threads: int = 4):
    """Serve a WSGI app with waitress on a free loopback port; yield its base URL."""
    from waitress import wasyncore
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # Close the sockets from inside the server's own loop: closing them from
        # this thread races its select() into EBADF (a thread exception that
        # pytest then pins on whichever test runs next). Once its map is empty
        # the loop returns by itself.
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()
        if thread.is_alive():
            pytest.fail("the test server's loop did not stop")


@pytest.fixture(scope="session")
def live_server(database_url, demo_loaded, demo_accounts):
    """Serve the app with waitress on a free loopback port; yield its base URL."""
    from web import create_app

    # Every browser context signs in from 127.0.0.1: lift the per-address sign-in limit.
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "LOGIN_RATE_LIMIT": "500 per minute"})
    with serving(app, threads=8) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Launch headless Chromium once per session."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found; ./scripts/test installs Debian's chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class PageWatch:
    """Records every request and console error of a page."""

    def __init__(self, page) -> None:
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on(
            "console",
            lambda m: self.console_errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None,
        )
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        page.on(
            "response",
            lambda r: self.console_errors.append(f"HTTP {r.status} {r.url}")
            if r.status >= 400 and not self.expect_errors
            else None,
        )
        self.expect_errors = False

    def remote_requests(self) -> list[str]:
        """Return requests to any host that is not this machine."""
        out = []
        for url in self.requests:
            parsed = urlparse(url)
            if parsed.scheme in ("data", "blob", "about"):
                continue
            if parsed.hostname not in {h.strip("[]") for h in LOCAL_HOSTS}:
                out.append(url)
        return out


def sign_in(page, base_url: str, username: str, password: str | None = None) -> None:
    """Sign in through the real sign-in form (a demo user's password by default)."""
    from gridmap.accounts import DEMO_USERS

    if password is None:
        password = next(u.password for u in DEMO_USERS if u.username == username)
    page.goto(base_url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#login-submit")


@pytest.fixture(scope="session")
def auth_states(browser, live_server):
    """Return ``state(username)``: cookies of a demo user signed in once per session."""
    cache: dict[str, dict] = {}

    def state(username: str) -> dict:
        if username not in cache:
            context = browser.new_context()
            pg = context.new_page()
            sign_in(pg, live_server, username)
            if "/login" in pg.url:
                pytest.fail(f"demo user {username} could not sign in")
            cache[username] = context.storage_state()
            context.close()
        return cache[username]

    return state


@pytest.fixture
def signed_in_page(browser, auth_states, request):
    """Return ``open(username, **context options)``: a fresh page signed in as that user.

    Every page gets ``page.watch``; screenshots land in test-output/ on teardown.
    """
    opened: list[tuple[str, object, object]] = []

    def open_page(username: str, **options):
        options.setdefault("viewport", {"width": 1600, "height": 900})
        options.setdefault("locale", "zh-CN")
        context = browser.new_context(storage_state=auth_states(username), **options)
        pg = context.new_page()
        pg.watch = PageWatch(pg)
        opened.append((username, context, pg))
        return pg

    yield open_page
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    for i, (username, context, pg) in enumerate(opened):
        suffix = "" if i == 0 else f"-{username}"
        pg.screenshot(path=str(OUTPUT_DIR / f"{request.node.name}{suffix}.png"))
        context.close()


@pytest.fixture
def page(signed_in_page):
    """Open a fresh page signed in as the district center's operator."""
    return signed_in_page("district-operator")


@contextmanager
def _placed_snapshot(gb_id: str, channel: int = 1):
    """Place a generated JPEG where the sampler keeps the camera's latest snapshot."""
    import cv2
    import numpy as np

    from video.sampler import SamplerConfig, snapshot_paths

    latest, _thumb = snapshot_paths(SamplerConfig().snapshots(), gb_id)
    previous = latest.read_bytes() if latest.exists() else None
    created_dir = not latest.parent.exists()
    latest.parent.mkdir(parents=True, exist_ok=True)
    frame = np.zeros((180, 320, 3), np.uint8)
    frame[:, :, channel] = np.linspace(40, 220, 320, dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", frame)
    assert ok
    latest.write_bytes(jpeg.tobytes())
    try:
        yield
    finally:
        if previous is None:
            latest.unlink(missing_ok=True)
            if created_dir:
                latest.parent.rmdir()
        else:
            latest.write_bytes(previous)


@pytest.fixture
def snapshot_file():
    """Return a context manager that gives a camera a sampled snapshot, restored after."""
    return _placed_snapshot


def restore_camera_row(engine, saved: dict) -> None:
    """Put a camera's row back exactly as ``to_jsonb`` saved it (a test edited it through the page)."""
    import json

    from sqlalchemy import text

    columns = [k for k in saved if k != "id"]
    with engine.begin() as conn:
        conn.execute(text(
            f"UPDATE cameras c SET ({', '.join(columns)}) = (SELECT {', '.join(columns)} "
            "FROM jsonb_populate_record(NULL::cameras, CAST(:row AS jsonb))) WHERE c.id = :id"),
            {"row": json.dumps(saved), "id": saved["id"]})
