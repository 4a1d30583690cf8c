"""Helpers shared by the benchmarks: timing statistics and database access."""

from __future__ import annotations

import http.client
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """Return p50/p95/p99/mean in milliseconds."""
    ms = sorted(s * 1000 for s in samples_s)

    def pick(q: float) -> float:
        return ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))]

    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "mean": statistics.mean(ms)}


def time_calls(fn: Callable[[int], object], n: int, warmup: int = 20) -> list[float]:
    """Call ``fn(i)`` n times after a warm-up; return the durations in seconds."""
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def time_interleaved(fns: dict[str, Callable[[int], object]], n: int,
                     warmup: int = 20) -> dict[str, list[float]]:
    """Time several calls round-robin, so drift of a shared machine hits all alike.

    Each round starts one call further along: the call that runs first in a round
    (after the others have filled the caches with their own work) is slower, and
    no one should always be that call.
    """
    for i in range(warmup):
        for fn in fns.values():
            fn(i)
    items = list(fns.items())
    out: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(n):
        start = i % len(items)
        for name, fn in items[start:] + items[:start]:
            t0 = time.perf_counter()
            fn(i)
            out[name].append(time.perf_counter() - t0)
    return out


def bench_database() -> str:
    """Return the URL of the database to benchmark (GRIDMAP_DATABASE, default gridmap)."""
    from gridmap import db

    return db.database_url(os.environ.get("GRIDMAP_DATABASE") or "gridmap")


def row(label: str, stats: dict[str, float], base: dict[str, float] | None = None) -> str:
    """Format one result line, with ratios against a baseline when given."""
    text = f"{label:<34} p50 {stats['p50']:8.3f} ms  p95 {stats['p95']:8.3f} ms  p99 {stats['p99']:8.3f} ms"
    if base:
        text += f"   ×{stats['p50'] / base['p50']:.2f} p50  ×{stats['p99'] / base['p99']:.2f} p99"
    return text


def sign_in(port: int, username: str) -> str:
    """Sign in through the real form; return the Cookie header value."""
    from gridmap.accounts import DEMO_USERS

    password = next(u.password for u in DEMO_USERS if u.username == username)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/login")
    resp = conn.getresponse()
    page = resp.read().decode()
    cookie = resp.getheader("Set-Cookie").split(";", 1)[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body = urlencode({"username": username, "password": password, "csrf_token": token})
    conn.request("POST", "/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 302, resp.status
    return resp.getheader("Set-Cookie").split(";", 1)[0]


def signed_in_test_client(app, username: str = "district-operator"):
    """Return a Flask test client signed in through the login form (CSRF off)."""
    from gridmap.accounts import DEMO_USERS

    app.config["WTF_CSRF_ENABLED"] = False
    password = next(u.password for u in DEMO_USERS if u.username == username)
    client = app.test_client()
    resp = client.post("/login", data={"username": username, "password": password})
    assert resp.status_code == 302, resp.status_code
    return client
