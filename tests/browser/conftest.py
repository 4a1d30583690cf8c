"""Real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, against
the app served by a real WSGI server on a loopback port."""

from __future__ import annotations

import os
import threading
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


@pytest.fixture(scope="session")
def live_server(database_url, demo_loaded):
    """Serve the app with waitress on a free loopback port; yield its base URL."""
    from waitress.server import create_server

    from web import create_app

    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


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


@pytest.fixture
def page(browser, request):
    """Open a fresh context/page; save a screenshot to test-output/ on teardown."""
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
    pg = context.new_page()
    pg.watch = PageWatch(pg)
    yield pg
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(OUTPUT_DIR / f"{request.node.name}.png"))
    context.close()
