"""Helpers shared by the benchmarks: timing statistics and database access."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
