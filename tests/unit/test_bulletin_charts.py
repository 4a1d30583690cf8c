"""The bulletin's server-drawn SVG charts keep their marks and labels inside the picture."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from web.blueprints.matter_reports import column_chart

DIGIT_EM = 0.6  # a digit or dash of the chart's sans-serif face is at most ~0.6 em wide


def _days(n: int) -> list[tuple[str, float]]:
    return [(f"10-{d:02d}", float((d * 37) % 155)) for d in range(1, n + 1)]


@given(st.integers(min_value=1, max_value=31), st.integers(min_value=300, max_value=900))
def test_a_column_charts_day_labels_and_columns_stay_inside_its_width(days, width):
    svg = str(column_chart(_days(days), label="每日受理量", width=width))
    assert f'viewBox="0 0 {width} ' in svg
    labels = re.findall(r'<text x="([\d.]+)" y="[\d.]+" font-size="(\d+)" text-anchor="middle">([^<]+)</text>', svg)
    assert labels, "every fifth day is labelled"
    for x, size, text in labels:
        half = len(text) * DIGIT_EM * int(size) / 2
        assert 0 <= float(x) - half and float(x) + half <= width, (x, text, width)
    for x, w in re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg):
        assert float(x) + float(w) <= width


def test_an_empty_month_draws_no_chart():
    assert str(column_chart([], label="每日受理量")) == ""
