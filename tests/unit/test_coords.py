"""Coordinate systems: GCJ-02 round trips and datum parsing (pure, no database)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod
from shapely.geometry import Polygon

from geodata.boundary import boundary_gcj02, district_boundary
from geodata.coords import (
    CoordinateError,
    Datum,
    from_wgs84,
    gcj02_to_wgs84,
    in_china,
    parse_datum,
    to_wgs84,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")
china_lon = st.floats(min_value=74.0, max_value=134.0, allow_nan=False)
china_lat = st.floats(min_value=18.5, max_value=53.0, allow_nan=False)


@given(china_lon, china_lat)
@settings(max_examples=300, deadline=None)
def test_wgs84_gcj02_round_trip_within_one_metre(lon, lat):
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert GEOD.inv(lon, lat, *back)[2] < 1.0


@given(china_lon, china_lat)
@settings(max_examples=100, deadline=None)
def test_gcj02_offset_is_hundreds_of_metres_not_zero(lon, lat):
    # The obfuscation really moves points (a no-op "conversion" would pass round trips).
    shift = GEOD.inv(lon, lat, *wgs84_to_gcj02(lon, lat))[2]
    assert 1.0 < shift < 1500.0


def test_district_boundary_is_converted_and_plausible():
    wgs, gcj = district_boundary(), boundary_gcj02()
    assert wgs.is_valid
    area_km2 = abs(GEOD.geometry_area_perimeter(wgs)[0]) / 1e6
    assert 640 < area_km2 < 670  # Yanzhou is about 651 km²
    # The conversion shifts the whole outline by the local GCJ-02 offset (~500 m here).
    dx = gcj.centroid.x - wgs.centroid.x
    dy = gcj.centroid.y - wgs.centroid.y
    assert 0.002 < abs(dx) + abs(dy) < 0.02


def test_geometry_conversion_round_trip():
    square = Polygon([(116.8, 35.5), (116.81, 35.5), (116.81, 35.51), (116.8, 35.51)])
    back = to_wgs84(from_wgs84(square, "gcj02"), Datum.GCJ02)
    assert back.symmetric_difference(square).area < 1e-9
    assert to_wgs84(square, "cgcs2000").equals(square)


@pytest.mark.parametrize(
    "name, datum",
    [("WGS84", Datum.WGS84), ("epsg:4490", Datum.CGCS2000), ("GCJ-02", Datum.GCJ02),
     ("mars", Datum.GCJ02)],
)
def test_parse_datum(name, datum):
    assert parse_datum(name) is datum


def test_unknown_datum_is_rejected():
    with pytest.raises(CoordinateError, match="unknown coordinate system"):
        parse_datum("bd09")


def test_in_china():
    assert in_china(116.8, 35.5)
    assert not in_china(2.35, 48.85)
