"""The sampler: opens each due camera's stream on a schedule, grabs a frame, stores a
snapshot and a sample row, and keeps the camera's health class and history.

Scale-out and crash safety come from leases in PostgreSQL: a sampler claims due
cameras with ``FOR UPDATE SKIP LOCKED`` and sets a lease; every sample is its own
transaction, so ``kill -9`` loses nothing that was committed, and a dead sampler's
cameras become claimable again when their lease expires. A camera's next sample is
scheduled at least one interval after its last one, so no camera is sampled twice
in an interval even with several samplers.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from gridmap.config import var_dir
from video import credentials as secret_store
from video import netpolicy
from video.probe import Health, Prober, ProbeRequest, ProbeResult, check_url
from video.urls import Credentials, StreamURLError

log = logging.getLogger(__name__)

FAILING = {Health.OFFLINE.value}


def default_name() -> str:
    """Return a sampler name unique on this network: host and process id."""
    return f"{socket.gethostname()}-{os.getpid()}"[:64]


@dataclass
class SamplerConfig:
    """Tunables of one sampler process."""

    name: str = field(default_factory=default_name)
    processes: int = 2
    threads_per_process: int = 8
    lease_s: int = 60
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    backoff_cap_s: int = 1800
    snapshot_width: int = 640
    thumb_width: int = 160
    snapshot_dir: Path | None = None
    history_per_camera: int = 3
    sample_retention_s: int = 6 * 3600
    idle_sleep_s: float = 0.5

    @property
    def capacity(self) -> int:
        """Return how many probes may be in flight at once."""
        return self.processes * self.threads_per_process

    def snapshots(self) -> Path:
        """Return the snapshot directory (created on demand)."""
        path = self.snapshot_dir or var_dir() / "snapshots"
        path.mkdir(parents=True, exist_ok=True)
        return path


@dataclass(frozen=True)
class Claim:
    """A camera leased to this sampler for one sample."""

    id: int
    gb_id: str
    url: str
    nominal_width: int | None
    nominal_height: int | None
    last_signature: bytes | None
    fail_count: int
    interval_s: int
    status: str
    credentials: Credentials | None = field(default=None, repr=False)


class Metrics:
    """Prometheus metrics of one sampler (own registry, so tests stay isolated)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.samples = Counter(
            "gridmap_sampler_samples", "Samples taken, by health class",
            ["health"], registry=self.registry,
        )
        self.failures = Counter(
            "gridmap_sampler_failures", "Failed samples, by error class",
            ["error"], registry=self.registry,
        )
        self.open_seconds = Histogram(
            "gridmap_sampler_open_seconds", "Time to open a stream",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10), registry=self.registry,
        )
        self.frame_seconds = Histogram(
            "gridmap_sampler_first_frame_seconds", "Time to the first decoded frame",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10), registry=self.registry,
        )
        self.queue_lag = Gauge(
            "gridmap_sampler_queue_lag_seconds",
            "How overdue the most overdue camera is", registry=self.registry,
        )
        self.in_flight = Gauge(
            "gridmap_sampler_in_flight", "Probes in flight", registry=self.registry
        )


CLAIM_SQL = """
WITH due AS (
  SELECT id FROM cameras
  WHERE next_due_at <= now() AND (lease_until IS NULL OR lease_until < now())
  ORDER BY next_due_at
  LIMIT :batch
  FOR UPDATE SKIP LOCKED
)
UPDATE cameras c
SET lease_owner = :me, lease_until = now() + make_interval(secs => :lease)
FROM due WHERE c.id = due.id
RETURNING c.id, c.gb_id, COALESCE(c.sub_url, c.main_url) AS url, c.nominal_width,
          c.nominal_height, c.last_signature, c.fail_count, c.sample_interval_s, c.status,
          (SELECT k.username_enc FROM camera_credentials k WHERE k.camera_id = c.id) AS u,
          (SELECT k.password_enc FROM camera_credentials k WHERE k.camera_id = c.id) AS p
"""


def claim(session: Session, owner: str, batch: int, lease_s: int) -> list[Claim]:
    """Lease up to ``batch`` due cameras to ``owner`` (the caller commits)."""
    rows = session.execute(
        text(CLAIM_SQL), {"me": owner, "batch": batch, "lease": lease_s}
    ).all()
    claims = []
    for r in rows:
        creds = None
        if r.u is not None:
            creds = Credentials(secret_store.decrypt(r.u), secret_store.decrypt(r.p))
        claims.append(
            Claim(
                id=r.id, gb_id=r.gb_id, url=r.url, nominal_width=r.nominal_width,
                nominal_height=r.nominal_height,
                last_signature=bytes(r.last_signature) if r.last_signature else None,
                fail_count=r.fail_count, interval_s=r.sample_interval_s, status=r.status,
                credentials=creds,
            )
        )
    return claims


def next_delay_s(health: str, fail_count: int, interval_s: int, cap_s: int,
                 rng: random.Random) -> float:
    """Return seconds until the next sample: the interval, or backoff for failures.

    Healthy cameras get a small positive jitter (never less than the interval);
    failing ones back off exponentially with ±20 % jitter up to a cap, so a dead
    stream never turns into a tight retry loop and retries do not synchronise.
    """
    if health in FAILING and fail_count > 0:
        base = min(cap_s, interval_s * 2 ** min(fail_count, 16))
        return max(interval_s, base * rng.uniform(0.8, 1.2))
    return interval_s * rng.uniform(1.0, 1.1)


RECORD_SQL = """
UPDATE cameras SET
  status = CAST(:health AS varchar),
  status_since = CASE WHEN status <> CAST(:health AS varchar) THEN CAST(:at AS timestamptz)
                      ELSE COALESCE(status_since, CAST(:at AS timestamptz)) END,
  last_sample_at = CAST(:at AS timestamptz),
  snapshot_at = CASE WHEN CAST(:picture AS boolean) THEN CAST(:at AS timestamptz)
                     ELSE snapshot_at END,
  last_signature = COALESCE(CAST(:signature AS bytea), last_signature),
  fail_count = :fail_count,
  next_due_at = CAST(:at AS timestamptz) + make_interval(secs => :delay),
  lease_owner = NULL, lease_until = NULL
WHERE id = :id AND (CAST(:owner AS text) IS NULL OR lease_owner = CAST(:owner AS text))
RETURNING id
"""


def record(
    session: Session, claimed: Claim, result: ProbeResult, *, sampler: str,
    delay_s: float, require_lease: bool = True,
) -> bool:
    """Store one sample and the camera's new health; return False if the lease was lost."""
    at = time.time()
    params = {
        "id": claimed.id, "health": result.health.value,
        "at": _ts(result.sampled_at or at),
        "signature": result.signature, "delay": delay_s,
        "picture": bool(result.jpeg),  # store_snapshot wrote it before this record
        "fail_count": claimed.fail_count + 1 if result.health.value in FAILING else 0,
        "owner": sampler if require_lease else None,
    }
    updated = session.execute(text(RECORD_SQL), params).first()
    if updated is None:
        return False
    session.execute(
        text(
            """
            INSERT INTO camera_samples (camera_id, sampled_at, health, error, open_ms,
                first_frame_ms, elapsed_ms, width, height, brightness, signature, sampler)
            VALUES (:id, :at, :health, :error, :open_ms, :frame_ms, :elapsed_ms, :w, :h,
                    :brightness, :signature, :sampler)
            """
        ),
        {
            **params, "error": result.error.value if result.error else None,
            "open_ms": result.open_ms, "frame_ms": result.first_frame_ms,
            "elapsed_ms": result.elapsed_ms, "w": result.width, "h": result.height,
            "brightness": result.brightness, "sampler": sampler,
        },
    )
    if claimed.status != result.health.value:
        session.execute(
            text(
                "INSERT INTO camera_status_changes (camera_id, status, error, changed_at) "
                "VALUES (:id, :health, :error, :at)"
            ),
            {**params, "error": result.error.value if result.error else None},
        )
    return True


def _ts(unix: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(unix, tz=UTC)


def snapshot_paths(root: Path, gb_id: str) -> tuple[Path, Path]:
    """Return (snapshot, thumbnail) paths of a camera's latest picture."""
    folder = root / gb_id[:10] / gb_id
    return folder / "latest.jpg", folder / "thumb.jpg"


def store_snapshot(root: Path, gb_id: str, result: ProbeResult, keep: int) -> None:
    """Write the latest JPEG and thumbnail atomically and keep a short history."""
    if not result.jpeg:
        return
    latest, thumb = snapshot_paths(root, gb_id)
    latest.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(result.sampled_at or time.time()))
    for path, data in ((latest, result.jpeg), (thumb, result.thumbnail)):
        if data:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # readers never see a half-written JPEG
    if keep > 0:
        (latest.parent / f"{stamp}.jpg").write_bytes(result.jpeg)
        history = sorted(latest.parent.glob("2*.jpg"))
        for old in history[:-keep]:
            old.unlink(missing_ok=True)


# Called after a sample is recorded, inside the same transaction (e.g. the crowd
# estimator for cameras tagged 'crowd'). A hook must not commit.
SampleHook = Callable[[Session, "Claim", ProbeResult], None]


class Sampler:
    """A pipelined sampling loop: keep up to ``capacity`` probes in flight."""

    def __init__(self, engine: Engine, config: SamplerConfig | None = None,
                 prober: Prober | None = None, hooks: Sequence[SampleHook] = ()) -> None:
        self.engine = engine
        self.hooks = list(hooks)
        self.config = config or SamplerConfig()
        self.metrics = Metrics()
        self._own_prober = prober is None
        self.prober = prober or Prober(
            processes=self.config.processes,
            threads_per_process=self.config.threads_per_process,
        )
        self.rng = random.Random()
        self.stop_event = threading.Event()
        self._in_flight: dict[Future, Claim] = {}
        self._last_cleanup = 0.0

    def close(self) -> None:
        """Stop the probe workers (if this sampler owns them)."""
        if self._own_prober:
            self.prober.close()

    def _request(self, c: Claim) -> ProbeRequest:
        return ProbeRequest(
            url=c.url, open_timeout_s=self.config.open_timeout_s,
            read_timeout_s=self.config.read_timeout_s, credentials=c.credentials,
            previous_signature=c.last_signature, nominal_width=c.nominal_width,
            nominal_height=c.nominal_height, snapshot_width=self.config.snapshot_width,
            thumb_width=self.config.thumb_width, demo_root=var_dir() / "streams",
        )

    def fill(self) -> int:
        """Claim due cameras up to capacity and submit their probes; return how many."""
        room = self.config.capacity - len(self._in_flight)
        if room <= 0:
            return 0
        with Session(self.engine) as session:
            claims = claim(session, self.config.name, room, self.config.lease_s)
            session.commit()
        for c in claims:
            try:
                future = self.prober.submit(self._request(c))
            except StreamURLError as exc:
                future = Future()
                future.set_result(_invalid_url_result(c, exc))
            self._in_flight[future] = c
        self.metrics.in_flight.set(len(self._in_flight))
        return len(claims)

    def drain(self, timeout_s: float) -> int:
        """Record the probes that finish within ``timeout_s``; return how many."""
        if not self._in_flight:
            return 0
        done, _ = wait(list(self._in_flight), timeout=timeout_s, return_when=FIRST_COMPLETED)
        for future in done:
            claimed = self._in_flight.pop(future)
            self._record(claimed, future.result())
        self.metrics.in_flight.set(len(self._in_flight))
        return len(done)

    def _record(self, claimed: Claim, result: ProbeResult) -> None:
        delay = next_delay_s(
            result.health.value, claimed.fail_count + (result.health.value in FAILING),
            claimed.interval_s, self.config.backoff_cap_s, self.rng,
        )
        store_snapshot(self.config.snapshots(), claimed.gb_id, result,
                       self.config.history_per_camera)
        with Session(self.engine) as session:
            kept = record(session, claimed, result, sampler=self.config.name, delay_s=delay)
            if kept:
                for hook in self.hooks:
                    hook(session, claimed, result)
            session.commit()
        if not kept:
            log.warning("lease on camera %s expired before its sample was stored", claimed.gb_id)
        self.metrics.samples.labels(result.health.value).inc()
        if result.error:
            self.metrics.failures.labels(result.error.value).inc()
        if result.open_ms is not None:
            self.metrics.open_seconds.observe(result.open_ms / 1000)
        if result.first_frame_ms is not None:
            self.metrics.frame_seconds.observe(result.first_frame_ms / 1000)

    def update_lag(self) -> float:
        """Measure how overdue the most overdue unleased camera is (seconds)."""
        with self.engine.connect() as conn:
            lag = conn.execute(
                text(
                    "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(next_due_at)), 0) "
                    "FROM cameras WHERE next_due_at <= now() "
                    "AND (lease_until IS NULL OR lease_until < now())"
                )
            ).scalar_one()
        self.metrics.queue_lag.set(float(lag))
        return float(lag)

    def cleanup(self) -> int:
        """Delete sample rows past retention (one sampler at a time, via advisory lock)."""
        with Session(self.engine) as session:
            got = session.execute(text("SELECT pg_try_advisory_xact_lock(370812004)")).scalar()
            if not got:
                return 0
            deleted = session.execute(
                text(
                    "DELETE FROM camera_samples "
                    "WHERE sampled_at < now() - make_interval(secs => :keep)"
                ),
                {"keep": self.config.sample_retention_s},
            ).rowcount
            session.commit()
        return deleted

    def run(self, *, max_samples: int | None = None, duration_s: float | None = None) -> int:
        """Sample until stopped (or a sample/time budget is reached); return samples taken."""
        taken = 0
        started = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if duration_s is not None and time.monotonic() - started > duration_s:
                    break
                if max_samples is None or taken + len(self._in_flight) < max_samples:
                    self.fill()
                if not self._in_flight:
                    if max_samples is not None and taken >= max_samples:
                        break
                    self.stop_event.wait(self.config.idle_sleep_s)
                    continue
                taken += self.drain(timeout_s=self.config.idle_sleep_s)
                now = time.monotonic()
                if now - self._last_cleanup > 60:
                    self._last_cleanup = now
                    self.update_lag()
                    self.cleanup()
        finally:
            # Finish what is in flight so no claimed camera waits for its lease to expire.
            while self._in_flight:
                taken += self.drain(timeout_s=1.0)
        return taken


def _invalid_url_result(c: Claim, exc: Exception) -> ProbeResult:
    from video.probe import ErrorClass

    return ProbeResult(
        url="", ok=False, health=Health.OFFLINE, error=ErrorClass.OPEN_FAILED,
        detail="stream URL rejected", sampled_at=time.time(),
    )


def sample_now(
    session: Session, gb_id: str, prober: Prober, *, open_timeout_s: float = 5.0,
    read_timeout_s: float = 5.0, snapshot_dir: Path | None = None,
) -> dict[str, Any]:
    """Probe one camera immediately with the sampler's timeouts and record it.

    The caller owns the transaction (and has already checked the caller's scope).
    A stream address the address policy refuses (video.netpolicy: loopback,
    link-local, cloud metadata …) raises StreamAddressRefused (403) before anything
    is connected to, and nothing is recorded.
    """
    row = session.execute(
        text(
            "SELECT id, gb_id, COALESCE(sub_url, main_url) AS url, nominal_width, "
            "nominal_height, last_signature, fail_count, sample_interval_s, status, "
            "(SELECT username_enc FROM camera_credentials WHERE camera_id = c.id) AS u, "
            "(SELECT password_enc FROM camera_credentials WHERE camera_id = c.id) AS p "
            "FROM cameras c WHERE gb_id = :g"
        ),
        {"g": gb_id},
    ).one()
    creds = (
        Credentials(secret_store.decrypt(row.u), secret_store.decrypt(row.p))
        if row.u is not None else None
    )
    claimed = Claim(
        id=row.id, gb_id=row.gb_id, url=row.url, nominal_width=row.nominal_width,
        nominal_height=row.nominal_height,
        last_signature=bytes(row.last_signature) if row.last_signature else None,
        fail_count=row.fail_count, interval_s=row.sample_interval_s, status=row.status,
        credentials=creds,
    )
    config = SamplerConfig(open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s,
                           snapshot_dir=snapshot_dir)
    policy = netpolicy.current()
    try:
        policy.check_url(check_url(claimed.url, demo_root=var_dir() / "streams"))
    except netpolicy.AddressRefused as exc:
        raise netpolicy.refused_answer(exc, gb_id=gb_id) from None
    except (StreamURLError, netpolicy.HostNotFound):
        pass  # the probe below says so, without connecting anywhere
    try:
        result = prober.probe(
            ProbeRequest(
                url=claimed.url, open_timeout_s=open_timeout_s,
                read_timeout_s=read_timeout_s, credentials=creds,
                previous_signature=claimed.last_signature,
                nominal_width=claimed.nominal_width, nominal_height=claimed.nominal_height,
                snapshot_width=config.snapshot_width, thumb_width=config.thumb_width,
                demo_root=var_dir() / "streams", address_policy=policy,
            )
        )
    except StreamURLError as exc:
        result = _invalid_url_result(claimed, exc)
    store_snapshot(config.snapshots(), gb_id, result, config.history_per_camera)
    delay = next_delay_s(result.health.value, claimed.fail_count, claimed.interval_s,
                         config.backoff_cap_s, random.Random())
    record(session, claimed, result, sampler="on-demand", delay_s=delay, require_lease=False)
    return {
        "gb_id": gb_id, "health": result.health.value,
        "error": result.error.value if result.error else None,
        "open_ms": result.open_ms, "first_frame_ms": result.first_frame_ms,
        "width": result.width, "height": result.height, "brightness": result.brightness,
        "has_snapshot": bool(result.jpeg),
    }
