"""The district's team roster (7,513 members of 930 grids): export, parse and import.

Imports run in transactions that are rolled back, so the database is left as it was.
The baseline is one plain SELECT of every current member, the least any export reads.
Run after ./scripts/run.
"""

from __future__ import annotations

import time

from _common import bench_database, percentiles, row
from sqlalchemy import text

RUNS = 7
LABELS = {"leader": "网格长", "full_time": "专职网格员", "part_time": "兼职网格员",
          "volunteer": "志愿者"}


def timed(fn) -> tuple[dict[str, float], object]:
    """Run ``fn`` RUNS times; return its percentiles and its last result."""
    out, result = [], None
    for _ in range(RUNS):
        t0 = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t0)
    return percentiles(out), result


def main() -> None:
    """Print the roster's export, parse and import times against a plain SELECT."""
    from geodata.io import read_table
    from gridmap import db, teams

    factory = db.session_factory(db.engine_for(bench_database()))
    names = {label: role for role, label in LABELS.items()}
    with factory() as session:
        base, _ = timed(lambda: session.execute(text(
            "SELECT g.code, w.role, w.name, w.phone FROM grid_workers w "
            "JOIN grids g ON g.id = w.grid_id WHERE w.left_at IS NULL")).all())
        export, data = timed(lambda: teams.roster_csv(session, labels=LABELS))
        parse, rows = timed(lambda: read_table(data, max_rows=teams.MAX_ROSTER_ROWS))
        # Every other member replaced by someone new (another name and phone number),
        # or the same members with a new phone number (kept by their member_id).
        replaced = [dict(r, name=r["name"] + "新", phone="147" + r["phone"][3:]) if i % 2 else r
                    for i, r in enumerate(rows)]
        rephoned = [dict(r, phone="147" + r["phone"][3:]) if i % 2 else r
                    for i, r in enumerate(rows)]

        def rolled_back(roster):
            def run():
                try:
                    return teams.import_roster(session, roster, role_names=names)
                finally:
                    session.rollback()
            return run

        same, counts_same = timed(rolled_back(rows))
        half, counts_half = timed(rolled_back(replaced))
        phones, counts_phones = timed(rolled_back(rephoned))
    print(f"team roster of the district: {len(rows):,} members, {len(data) / 1024:.0f} KB CSV, "
          f"{RUNS} runs each")
    print(row("plain SELECT of the members", base))
    print(row("export (CSV, labels, formula marks)", export, base))
    print(row("parse the CSV", parse))
    print(row("import, nothing changed", same, base))
    print(row("import, half the members replaced", half, base))
    print(row("import, half with a new phone", phones, base))
    print(f"  changes: unchanged {counts_same['unchanged']:,}; replaced: added "
          f"{counts_half['added']:,}, left {counts_half['left']:,}; new phones: updated "
          f"{counts_phones['updated']:,}, added {counts_phones['added']:,}")


if __name__ == "__main__":
    main()
