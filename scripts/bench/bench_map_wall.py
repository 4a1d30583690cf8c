"""Map wall: first view in headless Chromium against the real server, and the naive
folium alternative (one ``folium.Marker`` per camera in a ``MarkerCluster``).

Measures the bytes transferred for the first view (compressed, from CDP and resource
timing), the server time of each data endpoint, the time until the grid and camera
layers are drawn, and long tasks (> 50 ms, flagged > 200 ms) while the map is panned
and zoomed with the mouse. Run after ./scripts/run has loaded the demo (database
``gridmap`` or GRIDMAP_DATABASE).
"""

from __future__ import annotations

import gzip
import os
import statistics
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from _common import bench_database
from sqlalchemy import text

CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM", "/usr/bin/chromium")
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
VIEWPORT = {"width": 1920, "height": 1080}
ENDPOINTS = [
    "/wall",
    "/api/areas/towns.geojson",
    "/api/areas/communities.geojson",
    "/api/grids.geojson",
    "/api/cameras/layer.json",
    "/api/cameras/status.json",
    "/api/search?q=鼓楼",
    "/api/coverage/grids.geojson",
    "/api/alerts.geojson",
]
# What the first view of /wall fetches (the default layers).
FIRST_VIEW_DATA = [
    "/api/areas/towns.geojson",
    "/api/areas/communities.geojson",
    "/api/grids.geojson",
    "/api/cameras/layer.json",
    "/api/alerts.geojson",
]
GOALS = {"first_view_s": 1.5, "first_view_mb": 1.5, "long_task_ms": 200}
RUNS = 5
USER = "district-operator"  # a demo account of the district centre (whole district in scope)

LONGTASK_OBSERVER = """
window.__longtasks = [];
new PerformanceObserver(list => {
  for (const e of list.getEntries()) {
    window.__longtasks.push({start: e.startTime, duration: e.duration});
  }
}).observe({type: 'longtask', buffered: true});
"""

WAIT_MOVEEND = """
() => new Promise(resolve => {
  const map = gridmapWall.state.map;
  let done = false;
  const finish = () => { if (!done) { done = true; setTimeout(resolve, 120); } };
  map.once('moveend', finish);
  setTimeout(finish, 1500);
})
"""


def serve(app):
    """Serve ``app`` with waitress on a free loopback port; return (server, base URL)."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    return server, f"http://127.0.0.1:{server.effective_port}"


def sign_in(browser, base: str) -> dict:
    """Sign in through the real form once; return the storage state (session cookie)."""
    from gridmap.accounts import DEMO_USERS

    password = next(u.password for u in DEMO_USERS if u.username == USER)
    context = browser.new_context()
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("#username", USER)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("#login-submit")
    if "/login" in page.url:
        raise SystemExit(f"cannot sign in as {USER}: load the demo (./scripts/run) first")
    state = context.storage_state()
    context.close()
    return state


def fetch(url: str, cookie: str) -> tuple[float, int, int]:
    """GET with gzip accepted; return (seconds, bytes on the wire, bytes decoded)."""
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip", "Cookie": cookie})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req) as resp:
        body = resp.read()
        encoding = resp.headers.get("Content-Encoding")
    elapsed = time.perf_counter() - t0
    raw = gzip.decompress(body) if encoding == "gzip" else body
    return elapsed, len(body), len(raw)


def endpoint_times(base: str, state: dict, n: int = 15) -> list[tuple[str, float, float, int, int]]:
    """Return (path, p50 ms, max ms, wire bytes, raw bytes) per data endpoint."""
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in state["cookies"])
    out = []
    for path in ENDPOINTS:
        url = base + urllib.parse.quote(path, safe="/?=&")
        fetch(url, cookie)  # warm-up: connection pool, query plans
        samples = [fetch(url, cookie) for _ in range(n)]
        times = [s[0] * 1000 for s in samples]
        out.append((path, statistics.median(times), max(times), samples[-1][1], samples[-1][2]))
    return out


def first_view(browser, state: dict, url: str, ready: str, marks: list[str]) -> dict:
    """Load ``url`` in a fresh context; return timings, bytes and per-resource sizes.

    ``ready`` is a JS function, not an expression: the pages' policy forbids eval.
    """
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN", storage_state=state)
    page = context.new_page()
    page.add_init_script(LONGTASK_OBSERVER)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    wire: dict[str, float] = {}
    urls: dict[str, str] = {}
    cdp.on(
        "Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"])
    )
    cdp.on(
        "Network.loadingFinished",
        lambda e: wire.__setitem__(e["requestId"], e["encodedDataLength"]),
    )
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_function(ready, timeout=120_000, polling=50)
    wall_s = time.perf_counter() - t0
    timing = page.evaluate(
        """marks => {
          const out = {};
          for (const m of marks) {
            const e = performance.getEntriesByName(m);
            out[m] = e.length ? e[0].startTime : null;
          }
          const nav = performance.getEntriesByType('navigation')[0];
          out.nav_transfer = nav.transferSize;
          out.dom_content_loaded = nav.domContentLoadedEventEnd;
          out.resources = performance.getEntriesByType('resource').map(r => ({
            name: r.name, transfer: r.transferSize, decoded: r.decodedBodySize,
            ttfb: r.responseStart - r.requestStart, duration: r.duration, end: r.responseEnd}));
          return out;
        }""",
        marks,
    )
    timing["wall_s"] = wall_s
    timing["cdp_bytes"] = sum(wire.values())
    timing["cdp_by_url"] = {urls.get(k, k): v for k, v in wire.items()}
    timing["page"] = page
    timing["context"] = context
    return timing


def pan_and_zoom(page) -> None:
    """Pan with mouse drags and zoom with the wheel, as an operator would."""
    w, h = VIEWPORT["width"], VIEWPORT["height"]
    cx, cy = w // 2, h // 2

    def drag(dx: int, dy: int) -> None:
        page.mouse.move(cx, cy)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(cx + dx * step / 10, cy + dy * step / 10)
            page.wait_for_timeout(16)
        page.mouse.up()
        page.evaluate(WAIT_MOVEEND)

    def wheel(dy: int, at: tuple[int, int] = (cx, cy)) -> None:
        page.mouse.move(*at)
        page.mouse.wheel(0, dy)
        page.evaluate(WAIT_MOVEEND)

    for _ in range(5):  # district -> street level over the town centre
        wheel(-300)
    for dx, dy in ((400, 0), (0, 300), (-600, -200), (300, 300), (-200, -400)):
        drag(dx, dy)
    for _ in range(3):
        wheel(-300, (cx + 200, cy - 100))
    for dx, dy in ((500, 200), (-500, -200)):
        drag(dx, dy)
    for _ in range(8):  # back out to the whole district
        wheel(300)
    for dx, dy in ((300, 0), (-300, 0)):
        drag(dx, dy)


def naive_page(url: str) -> tuple[str, float]:
    """Build the naive map: a folium.Marker with a tooltip per camera in a MarkerCluster."""
    import folium
    from folium.plugins import MarkerCluster

    from gridmap import db
    from web.assets import render_offline
    from web.maps import base_map

    t0 = time.perf_counter()
    with db.engine_for(url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT gb_id, name, source, status, ST_X(geom), ST_Y(geom) FROM cameras ORDER BY id"
            )
        ).all()
    m = base_map()
    m.options["max_zoom"] = 19  # MarkerCluster refuses a map without one
    cluster = MarkerCluster(name="cameras").add_to(m)
    for gb_id, name, source, status, lon, lat in rows:
        # A tooltip, not a popup: folium's popups need jQuery, which the app never loads.
        folium.Marker([lat, lon], tooltip=f"{name} {gb_id} {source} · {status}").add_to(cluster)
    html = render_offline(m)
    return html, time.perf_counter() - t0


def main() -> None:
    """Print the first-view, endpoint and pan/zoom figures of /wall and the naive page."""
    from playwright.sync_api import sync_playwright

    from web import create_app

    url = bench_database()
    naive_html, naive_server_s = naive_page(url)
    naive_times = [naive_server_s] + [naive_page(url)[1] for _ in range(2)]
    app = create_app({"DATABASE_URL": url})
    from web.headers import with_nonce

    # Rendered once, outside a request: each answer gives its inline scripts the nonce.
    app.add_url_rule("/bench/naive", "bench_naive", lambda: with_nonce(naive_html))
    server, base = serve(app)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            state = sign_in(browser, base)
            endpoints = endpoint_times(base, state)
            runs = []
            for _ in range(RUNS):
                run = first_view(
                    browser,
                    state,
                    base + "/wall",
                    "() => document.documentElement.dataset.wallReady === '1'",
                    ["wall:grids-drawn", "wall:cameras-drawn", "wall:ready"],
                )
                runs.append(run)
                if len(runs) < RUNS:
                    run["context"].close()
            last = runs[-1]
            page = last["page"]
            page.wait_for_timeout(1000)
            t_start = page.evaluate("performance.now()")
            pan_and_zoom(page)
            tasks = page.evaluate("s => window.__longtasks.filter(t => t.start >= s)", t_start)
            load_tasks = page.evaluate("s => window.__longtasks.filter(t => t.start < s)", t_start)
            screenshot = Path(__file__).resolve().parents[2] / "test-output" / "bench_map_wall.png"
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
            last["context"].close()
            naive = first_view(
                browser,
                state,
                base + "/bench/naive",
                "() => document.querySelectorAll('.marker-cluster').length > 0",
                [],
            )
            naive["context"].close()
            browser.close()
    finally:
        server.close()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    wall_wire = statistics.median(r["cdp_bytes"] for r in runs)
    print(
        f"map wall benchmark — database {url.rsplit('/', 1)[-1]}, viewport "
        f"{VIEWPORT['width']}×{VIEWPORT['height']}, {RUNS} cold loads (median)\n"
    )
    print(f"{'endpoint':<34}{'p50 ms':>9}{'max ms':>9}{'wire KB':>10}{'raw KB':>10}")
    for path, p50, worst, wire_b, raw_b in endpoints:
        print(f"{path:<34}{p50:>9.1f}{worst:>9.1f}{wire_b / 1024:>10.1f}{raw_b / 1024:>10.1f}")
    print("\nfirst view of /wall (browser)")
    print(f"  grids drawn              {med('wall:grids-drawn'):8.0f} ms")
    print(f"  cameras drawn            {med('wall:cameras-drawn'):8.0f} ms")
    print(
        f"  all default layers drawn {med('wall:ready'):8.0f} ms   goal ≤ {GOALS['first_view_s'] * 1000:.0f} ms"
    )
    print(
        f"  transferred (CDP)        {wall_wire / 1024:8.1f} KB   goal ≤ {GOALS['first_view_mb'] * 1024:.0f} KB"
    )
    print("  largest transfers:")
    for name, size in sorted(last["cdp_by_url"].items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {size / 1024:8.1f} KB  {name.replace(base, '')}")
    worst = max((t["duration"] for t in tasks), default=0.0)
    over = [t for t in tasks if t["duration"] > GOALS["long_task_ms"]]
    print(
        f"\nscripted pan/zoom (16 wheel steps, 9 drags): {len(tasks)} long tasks > 50 ms, "
        f"longest {worst:.0f} ms, {len(over)} over {GOALS['long_task_ms']} ms"
    )
    print(
        f"  (during load, not counted: {len(load_tasks)} long tasks, longest "
        f"{max((t['duration'] for t in load_tasks), default=0):.0f} ms)"
    )

    naive_gz = len(gzip.compress(naive_html.encode()))
    wall_page_raw = next(e for e in endpoints if e[0] == "/wall")[4]
    data_paths = FIRST_VIEW_DATA
    wall_raw = wall_page_raw + sum(e[4] for e in endpoints if e[0] in data_paths)
    wall_server_ms = sum(e[1] for e in endpoints if e[0] == "/wall" or e[0] in data_paths)
    print("\nnaive folium page (8,600 folium.Marker with tooltips in one MarkerCluster)")
    print(
        f"  HTML                     {len(naive_html) / 1024 / 1024:8.2f} MB raw, "
        f"{naive_gz / 1024 / 1024:.2f} MB gzip"
    )
    print(f"  server time (build+render) {statistics.median(naive_times) * 1000:6.0f} ms")
    print(
        f"  browser: clusters shown  {naive['wall_s'] * 1000:8.0f} ms, transferred "
        f"{naive['cdp_bytes'] / 1024:.0f} KB"
    )
    print("\n/wall vs naive")
    print(
        f"  HTML bytes               {wall_page_raw / 1024:8.1f} KB vs {len(naive_html) / 1024:.0f} KB"
        f"  (×{len(naive_html) / wall_page_raw:.0f} smaller)"
    )
    print(
        f"  page + its data          {wall_raw / 1024:8.1f} KB raw vs {len(naive_html) / 1024:.0f} KB"
        f"  (×{len(naive_html) / wall_raw:.1f})"
    )
    print(
        f"  wire, first view         {wall_wire / 1024:8.1f} KB vs {naive['cdp_bytes'] / 1024:.0f} KB"
        f"  (×{naive['cdp_bytes'] / wall_wire:.1f})"
    )
    print(
        f"  server time              {wall_server_ms:8.0f} ms (page + data, sequential) vs "
        f"{statistics.median(naive_times) * 1000:.0f} ms  "
        f"(×{statistics.median(naive_times) * 1000 / wall_server_ms:.0f})"
    )
    print(
        f"  time to drawn            {med('wall:ready'):8.0f} ms vs {naive['wall_s'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
