"""Deterministic demo matters (事项) and grid-worker patrols for the six months before a date.

``generate(seed, ...)`` returns the same matters, steps and patrols for the same
arguments. Timestamps are computed against a **fixed reference date**
(:data:`REFERENCE`, local midnight) so the data set itself never depends on the
clock; :func:`shift` then moves every timestamp by a whole number of days so that
the reference becomes today's local midnight at load time (time-of-day patterns
and weekdays' share survive; the newest matter is from yesterday evening).

Each matter is simulated through the five steps (report → transfer → handle →
verify → close) with the 1-2-3 clocks (accept within 1 calendar day of the
transfer, finish within 2, report back within 3); every step happening after the
reference date is cut, so a matter's state is exactly where its recorded steps
stopped, and its deadline columns are those of its last (re)transfer. A small share
of matters stall for weeks (the monthly look-back's material), some are rated
below the threshold and redone, and a few are closed unsatisfied after two redos.
Locations are drawn from the houses, so matters follow the population; grid
workers report theirs during their recorded patrols.

Units are symbolic here ("district" for the command center, "handling" for the
unit the matter is routed to); the loader resolves them with the routing rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from geodata.synth_names import fake_phones, person_names

CST = timezone(timedelta(hours=8), "CST")  # China Standard Time, no DST
REFERENCE = datetime(2026, 12, 1, tzinfo=CST)  # local midnight; see shift()
DEFAULT_MATTERS = 20_000
DAYS = 182  # about six months
PATROL_DAYS = 30
RATING_THRESHOLD = 3  # a rating below this reopens the matter
MAX_REDOS = 2  # after this many redos a low rating is closed with a note
ACCEPT_DAYS, FINISH_DAYS, FEEDBACK_DAYS = 1, 2, 3

# Share of matters per source: the 12345 hotline brings most, grid workers next.
SOURCE_SHARES = {
    "hotline_12345": 0.46,
    "grid_worker": 0.28,
    "video_patrol": 0.07,
    "emergency_110": 0.06,
    "emergency_122": 0.04,
    "open311": 0.035,
    "emergency_120": 0.02,
    "crowd_alert": 0.015,
    "emergency_119": 0.01,
}
# Sources whose reporter is a citizen with a phone (and so can rate the result).
CITIZEN_SOURCES = frozenset(
    {"hotline_12345", "open311", "emergency_110", "emergency_119", "emergency_120",
     "emergency_122"}
)
URGENT_SHARE = {"emergency_110": 0.5, "emergency_119": 0.8, "emergency_120": 0.7,
                "emergency_122": 0.4, "crowd_alert": 0.6}
RATED_SHARE = {"hotline_12345": 0.8, "open311": 0.7}  # others 0.4
RATING_P = np.array([0.04, 0.06, 0.10, 0.25, 0.55])  # ratings 1..5
STALL_SHARE = 0.015  # matters stuck for weeks at one step
# Hour of day of hotline calls and reports: daytime with an evening tail.
HOUR_P = np.array(
    [0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 1.0, 2.5, 5.0, 7.0, 7.5, 6.5, 4.5, 5.0, 6.5, 7.0,
     6.5, 5.5, 4.0, 3.5, 3.0, 2.0, 1.0, 0.5]
)
HOUR_P = HOUR_P / HOUR_P.sum()
SOURCE_NOTES = {
    "hotline_12345": "市民来电反映",
    "grid_worker": "网格员巡查发现",
    "video_patrol": "视频巡查发现",
    "crowd_alert": "人群密度告警",
    "open311": "市民通过手机应用上报",
    "emergency_110": "110 联动转办",
    "emergency_119": "119 联动转办",
    "emergency_120": "120 联动转办",
    "emergency_122": "122 联动转办",
}
MATTER_COLUMNS = (
    "key", "source", "source_ref", "category_code", "title", "description", "address", "lon",
    "lat", "grid_code", "urgency", "state", "current", "reporter_name", "reporter_phone",
    "worker_index", "reported_at", "clock_started_at", "accept_due", "finish_due",
    "feedback_due", "accepted_at", "handled_at", "verified_at", "closed_at", "rating",
    "rated_at", "redo_count", "escalated", "ref",
)
EVENT_COLUMNS = ("key", "at", "action", "from_state", "to_state", "actor", "to_unit", "note",
                 "rating")
PATROL_COLUMNS = ("worker_index", "grid_code", "day", "started_at", "ended_at", "distance_m",
                  "places_visited", "note", "matters_reported")
TIME_COLUMNS = (
    "reported_at", "clock_started_at", "accept_due", "finish_due", "feedback_due",
    "accepted_at", "handled_at", "verified_at", "closed_at", "rated_at",
)


@dataclass(frozen=True)
class Category:
    """A leaf category the generator may use, with its relative frequency."""

    code: str
    name_zh: str
    town_solvable: bool = True
    weight: float = 1.0


@dataclass(frozen=True)
class SynthMatters:
    """Matters, their steps and the patrols, all against ``reference``."""

    matters: pd.DataFrame  # MATTER_COLUMNS; "current" is "district" | "handling" | None
    events: pd.DataFrame  # key, at, action, from_state, to_state, actor, to_unit, note, rating
    patrols: pd.DataFrame  # worker_index, grid_code, day, started_at, ended_at, distance_m, ...
    reference: datetime


def generate(
    seed: int,
    houses: pd.DataFrame,
    workers: pd.DataFrame,
    categories: Sequence[Category],
    *,
    n: int = DEFAULT_MATTERS,
    reference: datetime = REFERENCE,
    grid_names: Mapping[str, str] | None = None,
    days: int = DAYS,
    patrol_days: int = PATROL_DAYS,
) -> SynthMatters:
    """Return ``n`` matters over ``days`` before ``reference`` plus recent patrols."""
    if not categories:
        raise ValueError("at least one category is needed")
    if houses.empty or workers.empty:
        raise ValueError("houses and grid workers are needed")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3708120009]))
    names = grid_names or {}
    patrols, patrols_by_grid = _patrols(rng, workers, reference, patrol_days)
    # Grid workers report in the grids they patrol: leader or full-time worker.
    reporters = {}
    for idx, (code, role) in enumerate(zip(workers["grid_code"], workers["role"], strict=True)):
        if role in ("full_time", "leader"):
            reporters.setdefault(code, []).append(idx)

    sources = np.array(list(SOURCE_SHARES))
    share = np.array(list(SOURCE_SHARES.values()))
    src = rng.choice(sources, size=n, p=share / share.sum())
    weights = np.array([c.weight for c in categories], dtype=float)
    cat_idx = rng.choice(len(categories), size=n, p=weights / weights.sum())
    house_idx = rng.integers(len(houses), size=n)
    # Day offsets: slightly more matters in recent months (the platform's uptake).
    day_off = np.floor(days * rng.power(1.15, size=n)).astype(int)
    day_off = np.clip(day_off, 0, days - 1)
    hours = rng.choice(24, size=n, p=HOUR_P)
    minutes = rng.integers(60, size=n)
    seconds = rng.integers(60, size=n)
    reporter_names = person_names(rng, n)
    phones = fake_phones(rng, min(n, 80_000))
    start = reference - timedelta(days=days)

    hx = houses["lon"].to_numpy()
    hy = houses["lat"].to_numpy()
    hg = houses["grid_code"].to_numpy()
    rows: list[dict] = []
    events: list[tuple] = []
    patrol_matters = np.zeros(len(patrols), dtype=int)
    refs = {"hotline_12345": 0, "open311": 0, "emergency": 0}
    for k in range(n):
        source = str(src[k])
        cat = categories[int(cat_idx[k])]
        grid = str(hg[house_idx[k]])
        reported = start + timedelta(days=int(day_off[k]), hours=int(hours[k]),
                                     minutes=int(minutes[k]), seconds=int(seconds[k]))
        worker = -1
        if source == "grid_worker":
            worker, reported = _worker_report(rng, grid, reported, reporters, patrols,
                                              patrols_by_grid, patrol_matters,
                                              reference, patrol_days)
        urgent = rng.random() < URGENT_SHARE.get(source, 0.02)
        citizen = source in CITIZEN_SOURCES
        source_ref = None
        if source in ("hotline_12345", "open311"):
            refs[source] += 1
            prefix = "RX" if source == "hotline_12345" else "APP"
            source_ref = f"{prefix}{seed % 10_000:04d}{refs[source]:07d}"
        elif source.startswith("emergency_"):
            refs["emergency"] += 1
            source_ref = f"JJ{source[-3:]}{refs['emergency']:07d}"
        place = names.get(grid, grid)
        row = {
            "key": k,
            "source": source,
            "source_ref": source_ref,
            "category_code": cat.code,
            "title": f"{cat.name_zh}（{place}）",
            "description": f"{SOURCE_NOTES[source]}：{place}附近{cat.name_zh}问题，请及时处置。",
            "address": f"{place}附近",
            "lon": float(hx[house_idx[k]]),
            "lat": float(hy[house_idx[k]]),
            "grid_code": grid,
            "urgency": "urgent" if urgent else "routine",
            "reporter_name": reporter_names[k] if citizen else "",
            "reporter_phone": phones[k % len(phones)] if citizen else "",
            "worker_index": worker,
            "reported_at": reported,
        }
        rated_share = RATED_SHARE.get(source, 0.4) if citizen else 0.0
        _simulate(rng, row, events, reference, rated_share)
        rows.append(row)

    matters = pd.DataFrame(rows)
    patrol_df = pd.DataFrame(patrols, columns=PATROL_COLUMNS[:-1]).assign(
        matters_reported=patrol_matters)
    for col in ("started_at", "ended_at"):
        patrol_df[col] = pd.to_datetime(patrol_df[col])
    ev = pd.DataFrame(events, columns=EVENT_COLUMNS)
    ev["at"] = pd.to_datetime(ev["at"])
    ev["rating"] = ev["rating"].astype("Int16")
    for col in TIME_COLUMNS:
        matters[col] = pd.to_datetime(matters[col])
    matters["rating"] = matters["rating"].astype("Int16")
    matters = matters.sort_values(["reported_at", "key"], kind="stable").reset_index(drop=True)
    matters["ref"] = matter_refs(matters["reported_at"])
    return SynthMatters(matters[list(MATTER_COLUMNS)], ev, patrol_df, reference)


def matter_refs(reported_at: pd.Series) -> pd.Series:
    """Return refs "SX" + local report date + a 5-digit running number per day."""
    local = reported_at.dt.tz_convert(CST)
    day = local.dt.strftime("%Y%m%d")
    seq = local.groupby(day).rank(method="first").astype(int)
    return "SX" + day + seq.map("{:05d}".format)


def shift(data: SynthMatters, now: datetime | None = None) -> SynthMatters:
    """Move every timestamp by whole days so the reference is ``now``'s local midnight."""
    now = (now or datetime.now(UTC)).astimezone(CST)
    today = datetime(now.year, now.month, now.day, tzinfo=CST)
    delta = timedelta(days=(today - data.reference.astimezone(CST)).days)
    matters = data.matters.copy()
    for col in TIME_COLUMNS:
        matters[col] = matters[col] + delta
    matters["ref"] = matter_refs(matters["reported_at"])
    events = data.events.assign(at=data.events["at"] + delta)
    patrols = data.patrols.assign(
        day=data.patrols["day"].map(lambda d: d + delta),
        started_at=data.patrols["started_at"] + delta,
        ended_at=data.patrols["ended_at"] + delta,
    )
    return replace(data, matters=matters, events=events, patrols=patrols,
                   reference=data.reference + delta)


# --------------------------------------------------------------------------- internals


def _patrols(
    rng: np.random.Generator, workers: pd.DataFrame, reference: datetime, days: int
) -> tuple[list[dict], dict[str, list[int]]]:
    """Return daily patrols of full-time workers (and some of leaders) for the last days."""
    rows = []
    by_grid: dict[str, list[int]] = {}
    roles = workers["role"].to_numpy()
    codes = workers["grid_code"].to_numpy()
    for d in range(days, 0, -1):
        day = (reference - timedelta(days=d)).astimezone(CST)
        weekend = day.weekday() >= 5
        for idx in np.flatnonzero((roles == "full_time") | (roles == "leader")):
            p = (0.3 if weekend else 0.88) if roles[idx] == "full_time" else 0.25
            if rng.random() >= p:
                continue
            started = day + timedelta(hours=int(rng.integers(7, 15)),
                                      minutes=int(rng.integers(60)))
            ended = started + timedelta(minutes=int(rng.integers(60, 240)))
            by_grid.setdefault(str(codes[idx]), []).append(len(rows))
            rows.append({  # a plain list until the end: per-row DataFrame access is slow
                "worker_index": int(idx), "grid_code": str(codes[idx]), "day": day.date(),
                "started_at": started, "ended_at": ended,
                "distance_m": round(float(rng.uniform(800, 6500)), 1),
                "places_visited": int(rng.integers(3, 18)), "note": "",
            })
    return rows, by_grid


def _worker_report(
    rng: np.random.Generator,
    grid: str,
    reported: datetime,
    reporters: Mapping[str, list[int]],
    patrols: list[dict],
    patrols_by_grid: Mapping[str, list[int]],
    patrol_matters: np.ndarray,
    reference: datetime,
    patrol_days: int,
) -> tuple[int, datetime]:
    """Return the reporting worker and time: inside one of their patrols when recent."""
    recent = patrols_by_grid.get(grid)
    if recent and reported >= reference - timedelta(days=patrol_days):
        p = recent[int(rng.integers(len(recent)))]
        started, ended = patrols[p]["started_at"], patrols[p]["ended_at"]
        span = (ended - started).total_seconds()
        patrol_matters[p] += 1
        return int(patrols[p]["worker_index"]), started + timedelta(
            seconds=int(rng.integers(max(1, int(span)))))
    staff = reporters.get(grid)
    if not staff:
        return -1, reported
    # Older reports: daytime, by one of the grid's staff.
    day = reported.astimezone(CST).replace(hour=int(rng.integers(8, 17)))
    return int(staff[int(rng.integers(len(staff)))]), min(day, reference - timedelta(hours=1))


def _hours(rng: np.random.Generator, median: float, sigma: float = 0.8) -> timedelta:
    return timedelta(hours=float(median * np.exp(rng.normal(0.0, sigma))))


def _simulate(
    rng: np.random.Generator, row: dict, events: list[tuple], reference: datetime,
    rated_share: float,
) -> None:
    """Run one matter through the steps; stop at the first step after ``reference``."""
    key = row["key"]
    state = "reported"
    row.update(state=state, current="district", clock_started_at=None, accept_due=None,
               finish_due=None, feedback_due=None, accepted_at=None, handled_at=None,
               verified_at=None, closed_at=None, rating=None, rated_at=None, redo_count=0,
               escalated=False)

    def emit(at: datetime, action: str, to_state: str, actor: str, to_unit: str | None = None,
             note: str = "", rating: int | None = None) -> None:
        nonlocal state
        events.append((key, at, action, state, to_state, actor, to_unit, note, rating))
        state = to_state
        row["state"] = to_state

    def start_clocks(at: datetime) -> None:
        row.update(clock_started_at=at, accept_due=at + timedelta(days=ACCEPT_DAYS),
                   finish_due=at + timedelta(days=FINISH_DAYS),
                   feedback_due=at + timedelta(days=FEEDBACK_DAYS), accepted_at=None,
                   handled_at=None, verified_at=None, current="handling")
        # The rating stays until the citizen rates the redone work (always, below).

    t = row["reported_at"]
    emit(t, "report", "reported", "system", note=SOURCE_NOTES.get(row["source"], ""))
    stall_step = int(rng.integers(4)) if rng.random() < STALL_SHARE else -1
    late = rng.random() < 0.12  # some units run over their clocks

    def delay(step: int, median: float) -> timedelta:
        d = _hours(rng, median)
        if late and step in (1, 2):
            d += timedelta(hours=float(rng.uniform(12, 60)))
        if step == stall_step:
            d += timedelta(days=float(rng.uniform(8, 70)))
        return d

    # Transfer: at once by smart routing; urgent matters wait for the center's triage.
    urgent = row["urgency"] == "urgent"
    t = t + (_hours(rng, 0.6, 0.5) if urgent else timedelta(seconds=2))
    if t > reference:
        return
    emit(t, "transfer", "transferred", "district" if urgent else "system", to_unit="handling",
         note="指挥中心研判分拨" if urgent else "智能流转")
    start_clocks(t)
    while True:
        redo = row["redo_count"] > 0
        t = t + delay(0, 2.0)
        if t > reference:
            return
        emit(t, "accept", "handling", "handling", note="重办" if redo else "")
        row["accepted_at"] = t
        t = t + delay(1, 14.0)
        if t > reference:
            return
        emit(t, "handle", "handled", "handling", note="重新处置完毕" if redo else "已到现场处置完毕")
        row["handled_at"] = t
        t = t + delay(2, 4.0)
        if t > reference:
            return
        emit(t, "verify", "verified", "district", note="核实办结，已回访")
        row["verified_at"] = t
        row["current"] = "district"
        t = t + delay(3, 6.0)
        if t > reference:
            return
        if redo or rng.random() < rated_share:
            # A redone matter pleases a little more often.
            p = RATING_P * (np.array([0.5, 0.5, 1.0, 1.2, 1.2]) if redo else 1.0)
            rating = int(rng.choice(5, p=p / p.sum())) + 1
            emit(t, "rate", "verified", "citizen", rating=rating)
            row.update(rating=rating, rated_at=t)
            if rating < RATING_THRESHOLD and row["redo_count"] < MAX_REDOS:
                t = t + _hours(rng, 1.0, 0.4)
                if t > reference:
                    return
                emit(t, "reopen", "transferred", "district", to_unit="handling",
                     note="群众不满意，退回重办")
                row["redo_count"] += 1
                start_clocks(t)
                continue
        t = t + _hours(rng, 3.0, 0.5)
        if t > reference:
            return
        low = row["rating"] is not None and row["rating"] < RATING_THRESHOLD
        emit(t, "close", "closed", "district",
             note="多次重办仍不满意，按程序结案" if low else "结案")
        row["closed_at"] = t
        row["current"] = None
        return
