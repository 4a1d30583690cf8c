"""The monthly matters bulletin renders offline and prints to a multi-page PDF."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.browser


def _last_month() -> str:
    today = datetime.now(UTC).date().replace(day=1)
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def test_bulletin_shows_the_month_and_prints_to_pdf(page, live_server, engine):
    month = _last_month()
    with engine.connect() as conn:
        reported = conn.execute(text(
            "SELECT count(*) FROM matters WHERE to_char(reported_at AT TIME ZONE 'Asia/Shanghai',"
            " 'YYYY-MM') = :m"), {"m": month}).scalar()
    assert reported > 0, "the demo data set has matters in every recent month"
    page.goto(live_server + f"/matters/bulletin?month={month}")
    total = int(page.locator("#kpi-total").inner_text().replace(",", ""))
    assert total == reported  # the district center sees every matter of the month
    assert page.locator("#mb-units tbody tr").count() > 0
    assert page.locator("svg").count() >= 2  # charts drawn server-side, no chart library
    pdf = page.pdf(format="A4", print_background=True)
    assert pdf.startswith(b"%PDF")
    counts = [int(n) for n in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", pdf)]
    assert counts and max(counts) >= 2  # the sections break onto their own pages
    assert page.watch.console_errors == []
    assert page.watch.remote_requests() == []


def test_on_a_phone_the_bulletin_fits_the_screen_and_its_wide_tables_scroll(
        signed_in_page, live_server):
    phone = signed_in_page("district-operator", viewport={"width": 390, "height": 844},
                           is_mobile=True, has_touch=True)
    phone.goto(live_server + f"/matters/bulletin?month={_last_month()}&lang=en")
    assert phone.locator("#mb-units tbody tr").count() > 0
    widths = phone.evaluate("""() => ({page: document.documentElement.scrollWidth,
        shown: document.getElementById('mb-units').clientWidth,
        table: document.getElementById('mb-units').scrollWidth})""")
    assert widths["page"] <= 390, widths  # the browser does not shrink the whole page
    assert widths["shown"] <= 390 - 2 * 16 and widths["table"] > widths["shown"], widths
    assert phone.watch.console_errors == []
