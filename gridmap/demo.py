"""Load the deterministic Yanzhou demo data set into PostGIS.

Bulk tables go through ``COPY`` (EWKT text is valid geometry input), because
250,000 houses through ORM inserts would take minutes instead of seconds.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.boundary import DISTRICT_CODE, DISTRICT_NAME
from geodata.generator import DemoDataset, generate
from gridmap.models import SRID

Progress = Callable[[str], None]

# Tables the demo owns, children first, so a reload can empty them in order.
DEMO_TABLES = (
    "matter_lookbacks",
    "matter_supervisions",
    "matter_attachments",
    "matter_events",
    "matters",
    "grid_patrols",
    "grid_versions",
    "grid_edits",
    "camera_credentials",
    "grid_coverage",
    "coverage_dirty",
    "cameras",
    "city_components",
    "key_places",
    "houses",
    "key_person_counts",
    "grid_workers",
    "grids",
    "communities",
    "towns",
    "districts",
)


def ewkt(geom: BaseGeometry) -> str:
    """Return the EWKT of a WGS-84 geometry, promoting polygons to multipolygons."""
    if isinstance(geom, Polygon):
        geom = MultiPolygon([geom])
    return f"SRID={SRID};{geom.wkt}"


def _copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Stream rows into ``table`` with COPY on the session's own connection."""
    raw = session.connection().connection.driver_connection
    buf = io.StringIO()
    count = 0
    for row in rows:
        buf.write("\t".join(_copy_value(v) for v in row))
        buf.write("\n")
        count += 1
    cols = ", ".join(columns)
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        copy.write(buf.getvalue())
    return count


def _copy_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return r"\N"
    text_value = str(value)
    return text_value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _points(df: pd.DataFrame) -> list[str]:
    return [f"SRID={SRID};POINT({x!r} {y!r})" for x, y in zip(df["lon"], df["lat"], strict=True)]


STAGES = ("generate", "district", "areas", "teams", "houses", "places", "counts", "cameras",
          "matters")


def load_demo(
    session: Session,
    *,
    seed: int = 370812,
    houses: int = 250_000,
    cameras: int = 8_600,
    replace: bool = False,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Generate the seeded data set and load it (replacing old rows if asked)."""
    step = progress or (lambda _msg: None)
    data = generate(seed, houses=houses, cameras=cameras)
    step("generate")
    if replace:
        clear(session)
    counts = load(session, data, progress=step)
    counts.update(load_demo_cameras(session, data))
    step("cameras")
    from gridmap.accounts import ensure_demo_accounts  # units and demo users (issue 6)

    counts["users"] = ensure_demo_accounts(session)
    # The official holidays first: the matters' deadlines count work days with them.
    from gridmap.holidays import official_days, store

    counts["work_calendar"] = store(session, official_days())
    counts.update(load_demo_matters(session, data, seed=seed))  # issue 9, needs the units
    step("matters")
    session.execute(
        text("INSERT INTO dataset_loads (description) VALUES (:d)"),
        {"d": f"demo seed={seed} houses={houses} cameras={cameras}"},
    )
    return counts


def top_up(session: Session, *, seed: int = 370812) -> dict[str, int]:
    """Add the demo parts a database loaded by an older release lacks (accounts, holidays, matters)."""
    from gridmap.accounts import ensure_demo_accounts
    from gridmap.holidays import official_days, store

    counts = {"users": ensure_demo_accounts(session)}
    # A database loaded before the holiday calendar existed has none: without it
    # the 1-2-3 clocks fall due on public holidays. Days stored already are kept.
    counts["work_calendar"] = store(session, official_days())
    if not session.execute(text("SELECT EXISTS (SELECT 1 FROM matters)")).scalar():
        counts.update(load_demo_matters(session, generate(seed), seed=seed))
    return counts


def load_demo_cameras(session: Session, data: DemoDataset) -> dict[str, int]:
    """Load the generated cameras once the camera registry exists."""
    from video import coverage, crowd, registry

    loaded = registry.load_generated(session, data.cameras)
    coverage.refresh_all(session)
    crowd.load_demo_calibrations(session)  # issue 5: 'crowd' cameras get a calibration
    return {"cameras": loaded}


def is_loaded(session: Session) -> bool:
    """Return whether grids are already present."""
    return bool(session.execute(text("SELECT EXISTS (SELECT 1 FROM grids)")).scalar())


def clear(session: Session) -> None:
    """Delete every demo-owned row (the caller commits)."""
    session.execute(text("TRUNCATE " + ", ".join(DEMO_TABLES) + " RESTART IDENTITY CASCADE"))


def load(session: Session, data: DemoDataset, progress: Progress | None = None) -> dict[str, int]:
    """Insert the data set; return row counts per table. The caller commits."""
    step = progress or (lambda _msg: None)
    counts: dict[str, int] = {}
    session.execute(
        text("INSERT INTO districts (code, name, geom) VALUES (:c, :n, ST_GeomFromEWKT(:g))"),
        {"c": DISTRICT_CODE, "n": DISTRICT_NAME, "g": ewkt(data.district)},
    )
    step("district")
    counts["towns"] = _copy_rows(
        session,
        "towns",
        ("code", "name", "kind", "district_code", "geom"),
        (
            (r.code, r.name, r.kind, DISTRICT_CODE, ewkt(r.geometry))
            for r in data.towns.itertuples()
        ),
    )
    town_ids = _ids_by_code(session, "towns")
    counts["communities"] = _copy_rows(
        session,
        "communities",
        ("code", "name", "kind", "town_id", "geom"),
        (
            (r.code, r.name, r.kind, town_ids[r.town_code], ewkt(r.geometry))
            for r in data.communities.itertuples()
        ),
    )
    community_ids = _ids_by_code(session, "communities")
    counts["grids"] = _copy_rows(
        session,
        "grids",
        ("code", "name", "kind", "community_id", "geom"),
        (
            (r.code, r.name, r.kind, community_ids[r.community_code], ewkt(r.geometry))
            for r in data.grids.itertuples()
        ),
    )
    grid_ids = _ids_by_code(session, "grids")
    step("areas")
    counts["grid_workers"] = _copy_rows(
        session,
        "grid_workers",
        ("grid_id", "role", "name", "phone"),
        (
            (grid_ids[r.grid_code], r.role, r.name, r.phone)
            for r in data.workers.itertuples()
        ),
    )
    counts["key_person_counts"] = _copy_rows(
        session,
        "key_person_counts",
        ("grid_id", "category", "count"),
        (
            (grid_ids[r.grid_code], r.category, int(r.count))
            for r in data.key_person_counts.itertuples()
        ),
    )
    step("teams")
    counts["houses"] = _copy_rows(
        session,
        "houses",
        ("geom", "residents", "grid_id"),
        zip(
            _points(data.houses),
            data.houses["residents"].astype(int),
            data.houses["grid_code"].map(grid_ids),
            strict=True,
        ),
    )
    step("houses")
    counts["key_places"] = _copy_rows(
        session,
        "key_places",
        ("name", "kind", "geom", "grid_id"),
        zip(
            data.key_places["name"],
            data.key_places["kind"],
            _points(data.key_places),
            data.key_places["grid_code"].map(grid_ids),
            strict=True,
        ),
    )
    counts["city_components"] = _copy_rows(
        session,
        "city_components",
        ("category_code", "category", "geom", "grid_id"),
        zip(
            data.components["category_code"],
            data.components["category"],
            _points(data.components),
            data.components["grid_code"].map(grid_ids),
            strict=True,
        ),
    )
    step("places")
    session.execute(text("ANALYZE"))
    refresh_grid_counts(session)
    step("counts")
    return counts


def _ids_by_code(session: Session, table: str) -> dict[str, int]:
    rows = session.execute(text(f"SELECT code, id FROM {table}"))
    return {code: ident for code, ident in rows}


def refresh_grid_counts(session: Session, grid_ids: Sequence[int] | None = None) -> None:
    """Recompute the cached base counts of the given grids (all when None)."""
    # Correlated sub-selects use the grid_id indexes, so a refresh of one edited
    # grid touches only its own rows.
    session.execute(
        text(
            """
            UPDATE grids g SET
              houses = (SELECT count(*) FROM houses h WHERE h.grid_id = g.id),
              residents = (SELECT COALESCE(sum(residents), 0) FROM houses h
                           WHERE h.grid_id = g.id),
              key_places = (SELECT count(*) FROM key_places p WHERE p.grid_id = g.id),
              components = (SELECT count(*) FROM city_components c WHERE c.grid_id = g.id),
              key_persons = (SELECT COALESCE(sum(count), 0) FROM key_person_counts k
                             WHERE k.grid_id = g.id)
            WHERE CAST(:ids AS integer[]) IS NULL OR g.id = ANY(CAST(:ids AS integer[]))
            """
        ),
        {"ids": None if grid_ids is None else list(grid_ids)},
    )


# --------------------------------------------------------------------------- matters (issue 9)

# Relative frequency of each category (prefix) in the demo: urban-management events
# and parking dominate a hotline's day; the rest keep the sector areas visible.
CATEGORY_WEIGHTS = {
    "SJ.01": 9, "SJ.02": 5, "SJ.03": 3, "SJ.04": 7, "SJ.05": 2, "SJ.06": 1,
    "BJ.01": 4, "BJ.02": 5, "BJ.03": 4, "BJ.04": 2, "BJ.05": 1,
    "CS.01": 6, "CS.02": 2, "CS.03": 5, "CS.04": 3, "CS.05": 3,
    "JT.01": 6, "JT.02": 3, "JT.03": 2, "JT.04": 2,
    "CJ.01": 4, "CJ.02": 6, "CJ.03": 2, "CJ.04": 4,
    "LB.01": 4, "XF": 1.5, "SP": 1.5, "NY.02": 2, "NY.03": 2,
}
DEMO_API_CLIENT = "demo-citizen-app"
DEMO_API_KEY_FILE = "open311-demo-key"
DEMO_MATTER_USER = "district-operator"  # who the center's demo steps are recorded as


_RATING_DETAIL = {r: json.dumps({"rating": r, "by": "callback"}) for r in range(1, 6)}


def _copy_frame(session: Session, table: str, frame: pd.DataFrame) -> int:
    """COPY a data frame (columns named as the table's) in CSV, formatted by pandas in C.

    Far faster than formatting value by value for the 150,000 matter rows; missing
    values are written as \\N so empty strings stay empty strings.
    """
    raw = session.connection().connection.driver_connection
    buf = io.StringIO()
    frame = frame.copy()
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            # pandas formats zoned times slowly (per value); numpy writes UTC in C.
            values = frame[col].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
            text_values = np.char.add(np.datetime_as_string(values, unit="us"), "+00")
            frame[col] = np.where(np.isnat(values), None, text_values)
    frame.to_csv(buf, header=False, index=False, na_rep="\\N")
    cols = ", ".join(frame.columns)
    with raw.cursor() as cur, cur.copy(
        f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
    ) as copy:
        copy.write(buf.getvalue())
    return len(frame)


def _category_weight(code: str) -> float:
    for key in (code, code.split(".")[0]):
        if key in CATEGORY_WEIGHTS:
            return float(CATEGORY_WEIGHTS[key])
    return 1.0


def _objects(series: pd.Series) -> list:
    """Return a column as Python values with None for missing (COPY writes \\N)."""
    return [None if v is None or v is pd.NaT or (not isinstance(v, str) and pd.isna(v)) else v
            for v in series.astype(object)]


def load_demo_matters(session: Session, data: DemoDataset, *, seed: int = 370812,
                      n: int | None = None) -> dict[str, int]:
    """Generate the demo matters, steps and patrols (relative to today) and COPY them in.

    The categories and routing rules are seeded first; each matter's unit is its
    routing rule's (one query for all category/grid pairs, the same SQL as
    ``matters.route``), its clocks are recomputed with ``matters.clock_dues`` after
    the timestamps are shifted to today, and last month's look-back is run.
    """
    from datetime import UTC, datetime

    from geodata import synth_matters as sm
    from gridmap import matters

    matters.ensure_categories(session)
    matters.ensure_routing_rules(session)
    leaves = session.execute(text("""
        SELECT c.code, c.name_zh, c.town_solvable FROM matter_categories c
        WHERE c.active AND NOT EXISTS (SELECT 1 FROM matter_categories k
                                       WHERE k.parent_code = c.code)
        ORDER BY c.code""")).all()
    cats = [sm.Category(code, name, solvable, _category_weight(code))
            for code, name, solvable in leaves]
    now = datetime.now(UTC)
    synth = sm.shift(sm.generate(seed, data.houses, data.workers, cats,
                                 n=n or sm.DEFAULT_MATTERS,
                                 grid_names=dict(zip(data.grids["code"], data.grids["name"],
                                                     strict=True))), now)
    m = synth.matters
    district_id, district_user = session.execute(text(
        "SELECT u.id, (SELECT id FROM users WHERE username = :u) FROM units u"
        " WHERE u.kind = 'district' ORDER BY u.id LIMIT 1"), {"u": DEMO_MATTER_USER}).one()
    pairs = m[["category_code", "grid_code"]].drop_duplicates()
    route_sql = matters.route_sql(cat="x.cat", grid="x.grid")
    unit_of = {
        (cat, grid): unit for cat, grid, unit in session.execute(text(f"""
            SELECT x.cat, x.grid, (SELECT sub.unit_id FROM ({route_sql}) sub)
            FROM unnest(CAST(:cats AS text[]), CAST(:grids AS text[])) AS x(cat, grid)"""),
            {"cats": list(pairs["category_code"]), "grids": list(pairs["grid_code"])})
    }
    handling = [unit_of.get((c, g)) or district_id
                for c, g in zip(m["category_code"], m["grid_code"], strict=True)]
    current = [None if cur is None or cur != cur else (district_id if cur == "district" else h)
               for cur, h in zip(m["current"], handling, strict=True)]
    # Deadlines as the live system counts them (work days by default), from the clock start.
    exceptions = dict(session.execute(text("SELECT day, workday FROM work_calendar")).all())
    dues = {k: [] for k in ("accept_due", "finish_due", "feedback_due")}
    for start in _objects(m["clock_started_at"]):
        got = matters.clock_dues(start.to_pydatetime(), exceptions) if start is not None else {}
        for k in dues:
            dues[k].append(got.get(k))
    worker_ids = session.execute(text("SELECT id FROM grid_workers ORDER BY id")).scalars().all()
    if len(worker_ids) != len(data.workers):
        raise RuntimeError("grid workers in the database do not match the generated teams")
    workers = [worker_ids[i] if i >= 0 else None for i in m["worker_index"]]
    counts = {}
    fast = _skip_row_triggers(session)
    counts["matters"] = _copy_frame(session, "matters", pd.DataFrame({
        "grid_code": m["grid_code"], "ref": m["ref"], "source": m["source"], "source_ref": m["source_ref"],
        "category_code": m["category_code"], "title": m["title"],
        "description": m["description"], "address": m["address"], "geom": _points(m),
        "urgency": m["urgency"], "state": m["state"],
        "current_unit_id": pd.array(current, dtype="Int64"),
        "handling_unit_id": pd.array(handling, dtype="Int64"),
        "reporter_name": m["reporter_name"], "reporter_phone": m["reporter_phone"],
        "reported_by_worker": pd.array(workers, dtype="Int64"),
        "reported_at": m["reported_at"], "clock_started_at": m["clock_started_at"],
        "accept_due": pd.to_datetime(pd.Series(dues["accept_due"], dtype=object), utc=True),
        "finish_due": pd.to_datetime(pd.Series(dues["finish_due"], dtype=object), utc=True),
        "feedback_due": pd.to_datetime(pd.Series(dues["feedback_due"], dtype=object), utc=True),
        "accepted_at": m["accepted_at"], "handled_at": m["handled_at"],
        "verified_at": m["verified_at"], "closed_at": m["closed_at"], "rating": m["rating"],
        "rated_at": m["rated_at"], "redo_count": m["redo_count"],
        "escalated": m["escalated"], "updated_at": _last_change(m),
    }))
    ids = dict(session.execute(text("SELECT ref, id FROM matters WHERE ref = ANY(:r)"),
                               {"r": list(m["ref"])}).all())
    key_id = pd.Series([ids[r] for r in m["ref"]], index=m["key"].to_numpy())
    key_unit = pd.Series(handling, index=m["key"].to_numpy())
    ev = synth.events
    who = ev["actor"]
    unit_of_event = key_unit.reindex(ev["key"]).to_numpy()
    # Three kinds of detail only: a rating, an automatic transfer, nothing.
    details = [_RATING_DETAIL.get(r, "{}") if a == "rate" else
               ('{"auto": true}' if a == "transfer" and w == "system" else "{}")
               for a, w, r in zip(ev["action"], who, _objects(ev["rating"]), strict=True)]
    counts["matter_events"] = _copy_frame(session, "matter_events", pd.DataFrame({
        "matter_id": key_id.reindex(ev["key"]).to_numpy(), "at": ev["at"],
        "action": ev["action"], "from_state": ev["from_state"], "to_state": ev["to_state"],
        "user_id": pd.array([district_user if w == "district" else None for w in who],
                            dtype="Int64"),
        "username": [DEMO_MATTER_USER if w == "district" else None for w in who],
        "unit_id": pd.array([district_id if w == "district" else u if w == "handling" else None
                             for w, u in zip(who, unit_of_event, strict=True)], dtype="Int64"),
        "to_unit_id": pd.array([u if t == "handling" else None for t, u in
                                zip(ev["to_unit"], unit_of_event, strict=True)], dtype="Int64"),
        "note": ev["note"], "detail": details,
    }))
    p = synth.patrols
    counts["grid_patrols"] = _copy_frame(session, "grid_patrols", pd.DataFrame({
        "worker_id": [worker_ids[i] for i in p["worker_index"]], "grid_code": p["grid_code"],
        "day": p["day"], "started_at": p["started_at"], "ended_at": p["ended_at"],
        "distance_m": p["distance_m"], "places_visited": p["places_visited"],
        "matters_reported": p["matters_reported"], "note": p["note"],
    }))
    if fast:
        session.execute(text("SET LOCAL session_replication_role = origin"))
    session.execute(text("ANALYZE matters, matter_events, grid_patrols"))
    _demo_lookback(session, district_id, now)
    _demo_api_client(session)
    return counts


def _skip_row_triggers(session: Session) -> bool:
    """Skip per-row triggers (FK checks, grid derivation) for the bulk COPY, if allowed.

    Every row is consistent by construction: its grid code comes from the same
    polygons the trigger would look up, and every id it references was just read
    from the database. Only superusers may do this (the embedded cluster's owner
    is one); elsewhere the triggers simply run and the load is a few seconds slower.
    """
    try:
        with session.begin_nested():
            session.execute(text("SET LOCAL session_replication_role = replica"))
    except Exception:  # not a superuser: keep the triggers
        return False
    return True


def _last_change(m: pd.DataFrame) -> list:
    """Return each matter's time of its last recorded step (its updated_at)."""
    cols = ["reported_at", "clock_started_at", "accepted_at", "handled_at", "verified_at",
            "rated_at", "closed_at"]
    return list(m[cols].max(axis=1))


def _demo_lookback(session: Session, district_id: int, now) -> None:
    """Run last month's look-back, as the center would on the first working day."""
    from gridmap import matter_stats
    from gridmap.accounts import Unit, system_actor

    district = session.get(Unit, district_id)
    matter_stats.run_lookback(session, system_actor(district, DEMO_MATTER_USER), now=now)


def _demo_api_client(session: Session) -> None:
    """Create (or re-key) the demo Open311 client; its key goes to var/, never to the log."""
    from gridmap import open311
    from gridmap.config import env, var_dir
    if (env("DEPLOYMENT", "demo") or "demo") != "demo":
        return
    session.execute(text("DELETE FROM api_clients WHERE name = :n"), {"n": DEMO_API_CLIENT})
    _client, key = open311.create_client(session, DEMO_API_CLIENT)
    path = var_dir() / DEMO_API_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
