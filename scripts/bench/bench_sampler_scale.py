"""The sampler at the demo's scale: 8,600 cameras on this machine.

Starts the local demo streams and one sampler against the demo database
(GRIDMAP_DATABASE, default gridmap), makes every camera due, lets it run for
--minutes, then reports: samples/s, the p95 age of each camera's latest sample
(goal ≤ 90 s), the share of stale cameras (no sample in the last 2 intervals, goal
< 1 %), and the CPU share of the sampler, its probe workers and the stream servers.
"""

from __future__ import annotations

import argparse
import os
import time

from _common import bench_database
from sqlalchemy import text


def cpu_seconds(pids: list[int]) -> float:
    """Return user+system CPU seconds of processes and their reaped children."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        total += (utime + stime + cutime + cstime) / tick
    return total


def main() -> None:
    """Run the sampler for a while and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=24)
    args = parser.parse_args()

    from gridmap import db
    from gridmap.config import var_dir
    from video.registry import demo_stream_password, demo_streams_base_port
    from video.sampler import Sampler, SamplerConfig
    from video.streams import serve_demo_streams

    url = bench_database()
    engine = db.engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE cameras SET next_due_at = now(), lease_owner = NULL, "
                          "lease_until = NULL, fail_count = 0, sample_interval_s = 60"))
        conn.execute(text("DELETE FROM camera_samples"))
    streams = serve_demo_streams(var_dir() / "streams", demo_streams_base_port(),
                                 password=demo_stream_password(), include_uhd=False)
    config = SamplerConfig(name="bench", processes=args.processes,
                           threads_per_process=args.threads)
    sampler = Sampler(engine, config)
    pids = [os.getpid(), *sampler.prober.worker_pids()]
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    try:
        taken = sampler.run(duration_s=args.minutes * 60)
    finally:
        pids = [os.getpid(), *sampler.prober.worker_pids()]
        cpu1, t1 = cpu_seconds(pids), time.monotonic()
        sampler.close()
        streams.stop()
    with engine.connect() as conn:
        ages = conn.execute(text(
            "SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY "
            "EXTRACT(EPOCH FROM now() - last_sample_at)) FROM cameras "
            "WHERE last_sample_at IS NOT NULL")).scalar()
        never = conn.execute(text("SELECT count(*) FROM cameras WHERE last_sample_at IS NULL "
                                  "OR last_sample_at < now() - interval '120 s'")).scalar()
        total = conn.execute(text("SELECT count(*) FROM cameras")).scalar()
        by_health = conn.execute(text("SELECT status, count(*) FROM cameras GROUP BY 1 "
                                      "ORDER BY 2 DESC")).all()
    wall = t1 - t0
    print(f"sampler at demo scale: {total:,} cameras, {args.minutes:g} min, "
          f"{config.capacity} probes in flight")
    print(f"  samples            {taken:,}  ({taken / wall:.1f}/s; the district needs "
          f"{total / 60:.0f}/s at one per minute)")
    print(f"  latest-sample age  p50 {ages[0]:.0f} s   p95 {ages[1]:.0f} s   (goal p95 ≤ 90 s)")
    print(f"  stale cameras      {never:,} = {100 * never / total:.1f} %   (goal < 1 %; "
          "stale = no sample in the last 120 s)")
    print(f"  CPU (sampler + probe workers + demo stream servers in this process) "
          f"{100 * (cpu1 - cpu0) / wall / os.cpu_count():.0f} % of {os.cpu_count()} cores")
    print("  health: " + ", ".join(f"{s} {n}" for s, n in by_health))


if __name__ == "__main__":
    main()
