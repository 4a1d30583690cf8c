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
import socket
import subprocess
import sys
import time
from pathlib import Path

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


def wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Wait until the stream servers accept connections (the first start writes clips)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gridmap streams serve exited; see var/log/bench-streams.log")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the demo streams did not start in time")


def main() -> None:
    """Run the sampler for a while and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0)
    # OpenCV serialises opens per process (video/probe.py), so opens scale with
    # processes, not threads: many small worker processes, a few probes each.
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    from gridmap import db
    from gridmap.config import var_dir
    from video.registry import demo_streams_base_port
    from video.sampler import Sampler, SamplerConfig

    url = bench_database()
    engine = db.engine_for(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE cameras SET next_due_at = now(), lease_owner = NULL, "
                          "lease_until = NULL, fail_count = 0, sample_interval_s = 60"))
        conn.execute(text("DELETE FROM camera_samples"))
    # The demo streams run in their own process, as under ./scripts/run, so the
    # sampler's figures are not mixed with the Python stream servers' (or their GIL).
    log = open(var_dir() / "log" / "bench-streams.log", "ab")
    streams = subprocess.Popen([str(Path(sys.executable).parent / "gridmap"), "streams", "serve"],
                               stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(demo_streams_base_port() + 1, streams)
    config = SamplerConfig(name="bench", processes=args.processes,
                           threads_per_process=args.threads)
    sampler = Sampler(engine, config)
    pids = [os.getpid(), *sampler.prober.worker_pids()]
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    streams_cpu0 = cpu_seconds([streams.pid])
    try:
        taken = sampler.run(duration_s=args.minutes * 60)
    finally:
        pids = [os.getpid(), *sampler.prober.worker_pids()]
        cpu1, t1 = cpu_seconds(pids), time.monotonic()
        streams_cpu1 = cpu_seconds([streams.pid])
        sampler.close()
        streams.terminate()
        streams.wait(timeout=30)
        log.close()
    with engine.connect() as conn:
        ages = conn.execute(text(
            "SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY "
            "EXTRACT(EPOCH FROM now() - last_sample_at)) FROM cameras "
            "WHERE last_sample_at IS NOT NULL")).scalar()
        healthy_ages = conn.execute(text(
            "SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY "
            "EXTRACT(EPOCH FROM now() - last_sample_at)) FROM cameras "
            "WHERE last_sample_at IS NOT NULL AND fail_count = 0")).scalar()
        never = conn.execute(text("SELECT count(*) FROM cameras WHERE last_sample_at IS NULL "
                                  "OR last_sample_at < now() - interval '120 s'")).scalar()
        # Failing cameras wait out their backoff on purpose (next_due_at in the future);
        # the sampler is behind only on cameras overdue by more than an interval.
        backoff = conn.execute(text(
            "SELECT count(*) FROM cameras WHERE last_sample_at < now() - interval '120 s' "
            "AND next_due_at > now()")).scalar()
        behind = conn.execute(text(
            "SELECT count(*) FROM cameras WHERE last_sample_at IS NULL "
            "OR next_due_at < now() - make_interval(secs => sample_interval_s)")).scalar()
        total = conn.execute(text("SELECT count(*) FROM cameras")).scalar()
        by_health = conn.execute(text("SELECT status, count(*) FROM cameras GROUP BY 1 "
                                      "ORDER BY 2 DESC")).all()
    wall = t1 - t0
    print(f"sampler at demo scale: {total:,} cameras, {args.minutes:g} min, "
          f"{config.capacity} probes in flight")
    print(f"  samples            {taken:,}  ({taken / wall:.1f}/s; the district needs "
          f"{total / 60:.0f}/s at one per minute)")
    print(f"  latest-sample age  p50 {ages[0]:.0f} s   p95 {ages[1]:.0f} s   (goal p95 ≤ 90 s; "
          "all cameras, failing ones in backoff included)")
    print(f"                     p50 {healthy_ages[0]:.0f} s   p95 {healthy_ages[1]:.0f} s   "
          "(cameras not failing, i.e. on their 60 s schedule)")
    print(f"  no sample in 120 s {never:,} = {100 * never / total:.1f} %, of which {backoff:,} "
          "failing cameras are waiting out their backoff")
    print(f"  stale cameras      {behind:,} = {100 * behind / total:.1f} %   (goal < 1 %; stale ="
          " never sampled, or overdue by more than one interval)")
    print(f"  CPU: sampler + probe workers {100 * (cpu1 - cpu0) / wall / os.cpu_count():.0f} %, "
          f"demo stream servers {100 * (streams_cpu1 - streams_cpu0) / wall / os.cpu_count():.0f} %"
          f" of {os.cpu_count()} cores; {(cpu1 - cpu0) / max(taken, 1) * 1000:.1f} ms "
          "sampler CPU per sample")
    print("  health: " + ", ".join(f"{s} {n}" for s, n in by_health))


if __name__ == "__main__":
    main()
