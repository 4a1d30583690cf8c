"""Scope enforcement overhead on the camera list and nearby endpoints.

Goal: a scoped query costs at most 1.2× the same query without the scope.

1. SQL (registry functions, one connection): each tier's scope (``Scope.sql``: area
   prefix OR department OR dispatched, as a web request runs it: whether anything is
   dispatched to the unit comes with the user, so without orders there is no dispatch
   branch) against a plain hand-written filter returning the same rows
   (``grid_code LIKE``, ``department =``, plus ``id = ANY(<the ids>)``), with no orders
   and with 50 open orders (20 cameras each) addressed to the unit.
2. HTTP (waitress, one keep-alive connection, signed-in session cookies): the same
   list/nearby requests as a town operator (scoped) and as the district operator
   (no scope clause at all), plus the cost of being signed in per request: a trivial
   signed-in endpoint (cookie, one query for user + unit + "anything dispatched?")
   against a trivial public one.

Runs against the demo database (GRIDMAP_DATABASE, default gridmap) after
``./scripts/run`` has loaded it; the orders of (1) live in a savepoint that is rolled
back, and (2) signs in as the demo users through the real sign-in form.
"""

from __future__ import annotations

import http.client
import random
import threading
from dataclasses import dataclass

from _common import bench_database, percentiles, row, sign_in, time_interleaved
from sqlalchemy import text
from sqlalchemy.orm import Session

from video.registry import NO_AREA, Filters, Scope

N = 400
TOWN = "370812001"
DEPARTMENT = "兖州区公安分局"
COMMUNITY = "370812001001"
ORDERS = 50
CAMERAS_PER_ORDER = 20


def points_in(session: Session, where: str, n: int, seed: int = 6) -> list[tuple[float, float]]:
    """Return n camera locations matching ``where`` (nearby queries with results)."""
    rows = session.execute(text(f"SELECT ST_X(geom), ST_Y(geom) FROM cameras WHERE {where}")).all()
    rng = random.Random(seed)
    return [tuple(rows[rng.randrange(len(rows))]) for _ in range(n)]


def add_orders(session: Session, unit_name: str, exclude_where: str) -> None:
    """Dispatch ORDERS orders of cameras from elsewhere to a unit (caller rolls back)."""
    from gridmap import accounts, dispatch

    district = accounts.unit_by_ref(session, accounts.DISTRICT_UNIT)
    target = accounts.unit_by_ref(session, unit_name)
    ids = session.execute(text(f"SELECT gb_id FROM cameras WHERE NOT ({exclude_where}) "
                               "ORDER BY random() LIMIT :n"),
                          {"n": ORDERS * CAMERAS_PER_ORDER}).scalars().all()
    actor = accounts.system_actor(district, "bench")
    for i in range(ORDERS):
        chunk = ids[i * CAMERAS_PER_ORDER:(i + 1) * CAMERAS_PER_ORDER]
        dispatch.create_order(session, actor, {"targets": [target.id],
                                               "cameras": {"gb_ids": list(chunk)}})
    session.flush()


@dataclass(frozen=True)
class PlainFilter(Filters):
    """The baseline: the same rows by a hand-written WHERE, with the dispatched ids known."""

    where: str = "TRUE"
    ids: tuple[int, ...] = ()

    def sql(self, alias: str = "c", *, ordered: bool = False) -> tuple[str, dict]:
        """Return the plain WHERE fragment (the same for every kind of query)."""
        if not self.ids:
            return f" AND {self.where}", {}
        return f" AND ({self.where} OR {alias}.id = ANY(CAST(:ids AS integer[])))", {
            "ids": list(self.ids)}


def sql_level(engine) -> None:
    from gridmap import accounts
    from video import registry

    print("1. SQL: scoped query vs the same rows by a plain filter")
    print("   scoped = as a web request runs it (whether anything is dispatched is known);")
    print("   in-query = the dispatched lookup always inside the query (domain code)")
    with Session(engine) as session:
        cases = [
            ("town", f"c.grid_code LIKE '{TOWN}%'", TOWN,
             lambda u: Scope(prefix=TOWN, unit_id=u)),
            ("community", f"c.grid_code LIKE '{COMMUNITY}%'", COMMUNITY,
             lambda u: Scope(prefix=COMMUNITY, unit_id=u)),
            ("department", f"c.department = '{DEPARTMENT}'", DEPARTMENT,
             lambda u: Scope(prefix=NO_AREA, department=DEPARTMENT, unit_id=u)),
        ]
        for label, where, ref, make_scope in cases:
            unit = accounts.unit_by_ref(session, ref)
            scope = make_scope(unit.id)
            pts = points_in(session, where.replace("c.", ""), 200)
            for orders in (False, True):
                trans = session.begin_nested() if orders else None
                if orders:
                    add_orders(session, unit.name, where.replace("c.", ""))
                ids = tuple(session.execute(text(registry.DISPATCHED_SQL),
                                            {"s_unit": unit.id}).scalars())
                plain = PlainFilter(scope=Scope(), where=where, ids=ids)
                tag = f"{label}{' +50 orders' if orders else ''}"

                # The web layer learns "anything dispatched?" with the user (one query per
                # request, measured in part 2), so the scoped query runs with it known.
                known = registry.resolve_dispatched(session, scope)

                def resolved(known=known):
                    return Filters(scope=known)

                def listing(make):
                    return lambda i: registry.list_cameras(session, make(), offset=(i * 37) % 200,
                                                           limit=100)

                def near(make, pts=pts):
                    return lambda i: registry.nearby(session, *pts[i % len(pts)], radius_m=500,
                                                     limit=20, filters=make())

                for op, run in (("list", listing), ("nearby", near)):
                    # Interleaved call by call: the machine's drift between one tight
                    # loop and the next moved these ratios by a third.
                    times = time_interleaved({
                        "plain": run(lambda plain=plain: plain),
                        "scoped": run(resolved),
                        "in-query": run(lambda scope=scope: Filters(scope=scope)),
                    }, N)
                    base, got, inq = (percentiles(times[k])
                                      for k in ("plain", "scoped", "in-query"))
                    print(row(f"  {tag} {op} plain", base))
                    print(row(f"  {tag} {op} scoped", got, base))
                    print(row(f"  {tag} {op} in-query", inq, base))
                if trans is not None:
                    trans.rollback()


def serve(app):
    """Start waitress on a free loopback port; return (server, port)."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return server, server.effective_port


def http_timer(port: int, cookie: str | None, paths: list[str]):
    """Return a function timing GET requests over one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Accept-Encoding": "identity"}
    if cookie:
        headers["Cookie"] = cookie

    def get(i: int) -> bytes:
        conn.request("GET", paths[i % len(paths)], headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, (resp.status, body[:200])
        return body

    return get


def http_level(engine, url: str) -> None:
    from web import create_app

    print("2. HTTP (waitress): town operator (scoped) vs district operator (no scope clause)")
    app = create_app({"DATABASE_URL": url})
    server, port = serve(app)
    try:
        town = sign_in(port, "gulou-operator")
        district = sign_in(port, "district-operator")
        with Session(engine) as session:
            pts = points_in(session, f"grid_code LIKE '{TOWN}%'", 200)
        nearby = [f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=500&limit=20"
                  for lon, lat in pts]
        listing = [f"/api/cameras?limit=100&offset={(i * 37) % 200}" for i in range(50)]
        for label, paths in (("list", listing), ("nearby", nearby)):
            times = time_interleaved({"district": http_timer(port, district, paths),
                                      "town": http_timer(port, town, paths)}, N)
            base, got = percentiles(times["district"]), percentiles(times["town"])
            print(row(f"  {label} district (no scope)", base))
            print(row(f"  {label} town (scoped)", got, base))
        times = time_interleaved({"public": http_timer(port, None, ["/api/version"]),
                                  "signed": http_timer(port, town, ["/api/relay/status"])}, N)
        public, signed = percentiles(times["public"]), percentiles(times["signed"])
        print(row("  /api/version (public)", public))
        print(row("  /api/relay/status (signed in)", signed, public))
    finally:
        server.close()


def main() -> None:
    from gridmap import db

    url = bench_database()
    engine = db.engine_for(url)
    sql_level(engine)
    http_level(engine, url)


if __name__ == "__main__":
    main()
