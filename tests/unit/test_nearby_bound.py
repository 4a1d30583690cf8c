"""The bound that lets the nearby query stop after a few spherical KNN candidates."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from video.registry import KNN_SPHERE_RADIUS_M, MAX_RADIUS_M, sphere_floor

GEOD = Geod(ellps="WGS84")


KNN_SPHERE = Geod(a=KNN_SPHERE_RADIUS_M, b=KNN_SPHERE_RADIUS_M)


def sphere_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Distance on PostGIS's KNN sphere."""
    return KNN_SPHERE.inv(lon1, lat1, lon2, lat2)[2]


@settings(max_examples=2000, deadline=None)
@given(
    lat=st.floats(-85, 85),
    lon=st.floats(-180, 180),
    azimuth=st.floats(0, 360),
    distance=st.floats(1.0, MAX_RADIUS_M),
)
def test_ellipsoid_distance_never_falls_below_the_floor(lat, lon, azimuth, distance):
    lon2, lat2, _ = GEOD.fwd(lon, lat, azimuth, distance)
    assert distance >= sphere_floor(lat) * sphere_distance(lon, lat, lon2, lat2)


@pytest.mark.parametrize("lat", [0.0, 35.5, 60.0])
def test_the_floor_is_tight_north_south(lat):
    # Along a meridian the ratio is M / R itself: the bound may not be loose, or
    # the KNN would fetch more than it needs.
    lon2, lat2, _ = GEOD.fwd(116.8, lat, 0.0, 500.0)
    ratio = 500.0 / sphere_distance(116.8, lat, lon2, lat2)
    assert 0 < ratio - sphere_floor(lat) < 2e-4


def test_yanzhou_floor_is_under_a_quarter_percent():
    assert sphere_floor(35.55) == pytest.approx(0.99770, abs=1e-5)
