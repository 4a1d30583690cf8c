"""China's official public holidays and make-up workdays (调休) for the deadline clocks.

The State Council announces each year's calendar late in the year before. The
``chinesecalendar`` package carries every announced year offline; a year it does
not know yet (or a local exception) comes from a CSV of ``day,workday,name``.
Entries are stored in ``work_calendar`` (gridmap.workdays reads them): a local
entry already stored wins over the package's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date

import chinese_calendar
from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInput

# Chinese names of the package's holidays (it names them in English).
_NAME_ZH = {h.value: h.chinese for h in chinese_calendar.Holiday}
CalendarDay = tuple[date, bool, str]


def official_days(years: Iterable[int] | None = None) -> list[CalendarDay]:
    """Return the announced holidays (not workdays) and make-up weekend workdays, by day."""
    wanted = set(years) if years is not None else None
    days = [(d, False, name) for d, name in chinese_calendar.holidays.items()]
    # Its workday list holds the make-up weekend days (Mon–Fri are workdays anyway).
    days += [(d, True, name) for d, name in chinese_calendar.workdays.items() if d.weekday() >= 5]
    return sorted((d, work, (_NAME_ZH.get(name, name) + ("调休" if work else ""))[:40])
                  for d, work, name in days
                  if wanted is None or d.year in wanted)


def known_years() -> list[int]:
    """Return the years whose calendar the package carries."""
    return sorted({d.year for d in chinese_calendar.holidays})


def read_calendar_csv(data: bytes) -> list[CalendarDay]:
    """Parse ``day,workday,name`` rows (day as YYYY-MM-DD; workday 0/1 or 否/是); refuse bad rows."""
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise InvalidInput("the calendar file is not UTF-8 text") from None
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    if rows and rows[0] and rows[0][0].strip().lower() in ("day", "date", "日期"):
        rows = rows[1:]
    days, errors = [], []
    for number, row in enumerate(rows, start=1):
        if not any(cell.strip() for cell in row):
            continue
        cells = [c.strip() for c in row] + ["", ""]
        try:
            day = date.fromisoformat(cells[0])
        except ValueError:
            errors.append(f"row {number}: {cells[0]!r} is not a date (YYYY-MM-DD)")
            continue
        workday = {"1": True, "0": False, "是": True, "否": False,
                   "true": True, "false": False}.get(cells[1].lower())
        if workday is None:
            errors.append(f"row {number}: workday is 1 or 0, not {cells[1]!r}")
            continue
        days.append((day, workday, cells[2][:40]))
    if errors:
        raise InvalidInput("; ".join(errors[:20]))
    return days


def store(session: Session, days: Iterable[CalendarDay], *, replace: bool = False) -> int:
    """Store calendar days; return how many were written. The caller commits.

    Without ``replace`` a day already stored keeps its entry (a local decision
    outranks the package); with it, the given days overwrite.
    """
    rows = [{"d": d, "w": w, "n": n} for d, w, n in days]
    if not rows:
        return 0
    conflict = ("DO UPDATE SET workday = EXCLUDED.workday, name = EXCLUDED.name" if replace
                else "DO NOTHING")
    written = session.execute(text(
        "INSERT INTO work_calendar (day, workday, name) "
        "SELECT * FROM unnest(CAST(:days AS date[]), CAST(:work AS boolean[]), "
        f"CAST(:names AS varchar[])) ON CONFLICT (day) {conflict} RETURNING day"),
        {"days": [r["d"] for r in rows], "work": [r["w"] for r in rows],
         "names": [r["n"] for r in rows]}).all()
    return len(written)
