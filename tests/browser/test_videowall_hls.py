"""The video wall plays an external media server's HLS stream (hls.js, served offline)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text


class _CorsHandler(SimpleHTTPRequestHandler):
    """A stand-in media server: static HLS files with the CORS header media servers send."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, *_args) -> None:  # keep the test output quiet
        pass


@pytest.fixture(scope="module")
def hls_server(tmp_path_factory):
    """Write a short H.264 HLS stream with ffmpeg and serve it on a loopback port."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg not found; ./scripts/test installs it")
    root = tmp_path_factory.mktemp("hls")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
         "-t", "6", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "10",
         "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
         str(root / "cam.m3u8")],
        check=True, timeout=60,
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 partial(_CorsHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def hls_app_server(database_url, demo_loaded, demo_accounts, hls_server):
    """Serve the app with every camera's live view handed to the HLS server."""
    from tests.browser.conftest import serving
    from web import create_app

    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "LOGIN_RATE_LIMIT": "500 per minute",
                      "LIVE_URL_TEMPLATE": hls_server + "/cam.m3u8"})
    with serving(app) as url:
        yield url


def test_an_hls_tile_plays_through_hls_js(browser, hls_app_server, engine):
    from tests.browser.conftest import PageWatch, sign_in

    with engine.connect() as conn:
        gb_id = conn.execute(text("SELECT gb_id FROM cameras ORDER BY gb_id LIMIT 1")).scalar()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        watch = PageWatch(page)
        sign_in(page, hls_app_server, "district-operator")
        page.goto(hls_app_server + f"/videowall?layout=1&cameras={gb_id}")
        page.wait_for_function("() => document.documentElement.dataset.videowall === 'ready'")
        tile = page.locator(f".vw-tile[data-gb-id='{gb_id}']")
        page.wait_for_function(
            "gb => { const t = document.querySelector(`.vw-tile[data-gb-id='${gb}']`);"
            " return t && t.dataset.mode === 'external'; }", arg=gb_id)
        # hls.js through MSE, or the browser's own HLS support where it has one.
        player = tile.get_attribute("data-player")
        assert player in ("hls.js", "native")
        # Frames were decoded: the video advanced and knows the stream's size.
        page.wait_for_function(
            "gb => { const v = document.querySelector(`.vw-tile[data-gb-id='${gb}'] video`);"
            " return v && v.currentTime > 0.5 && v.videoWidth === 320; }", arg=gb_id,
            timeout=20_000)
        assert watch.remote_requests() == []
        assert any(u.endswith("/vendor/npm/hls.js/dist/hls.light.min.js") for u in watch.requests)
        assert watch.console_errors == []
        assert any(u.endswith(".ts") for u in watch.requests)
    finally:
        context.close()
