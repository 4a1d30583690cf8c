"""Coordinate systems used by Chinese map data: WGS-84, CGCS2000 and GCJ-02.

WGS-84 (EPSG:4326) is what the database stores. CGCS2000 (EPSG:4490) differs from
WGS-84 by centimetres, far below the accuracy of any ledger we import, so it is
accepted as-is after an explicit pyproj transform (which is the identity for the
geographic CRS pair). GCJ-02 is the obfuscated datum used by AMap/Gaode and many
camera ledgers; it has no EPSG code, so ``prcoords`` (public domain, maintained
reference implementation) does the maths, and the inverse is its iterative solver
("bored" mode), accurate to millimetres.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import numpy as np
import prcoords
import shapely
from shapely.geometry.base import BaseGeometry


class Datum(StrEnum):
    """Coordinate reference systems accepted on input."""

    WGS84 = "wgs84"
    CGCS2000 = "cgcs2000"
    GCJ02 = "gcj02"


EPSG_BY_DATUM = {Datum.WGS84: 4326, Datum.CGCS2000: 4490}

# Rough bounding box of the People's Republic of China, used to reject coordinates
# that cannot belong to a Chinese ledger (and outside which GCJ-02 is undefined).
CHINA_BBOX = (73.4, 18.0, 135.1, 53.6)


class CoordinateError(ValueError):
    """A coordinate that cannot be interpreted (not finite, or outside China)."""


def parse_datum(value: str | Datum) -> Datum:
    """Return the Datum for a user-supplied name such as 'gcj02' or 'EPSG:4490'."""
    text = str(value).strip().lower().replace("-", "").replace("_", "")
    aliases = {
        "wgs84": Datum.WGS84,
        "epsg:4326": Datum.WGS84,
        "4326": Datum.WGS84,
        "cgcs2000": Datum.CGCS2000,
        "epsg:4490": Datum.CGCS2000,
        "4490": Datum.CGCS2000,
        "gcj02": Datum.GCJ02,
        "gcj": Datum.GCJ02,
        "mars": Datum.GCJ02,
    }
    try:
        return aliases[text]
    except KeyError:
        raise CoordinateError(
            f"unknown coordinate system {value!r}; use wgs84, cgcs2000 or gcj02"
        ) from None


def in_china(lon: float, lat: float) -> bool:
    """Return whether a WGS-84/GCJ-02 point lies in the bounding box of China."""
    west, south, east, north = CHINA_BBOX
    return west <= lon <= east and south <= lat <= north


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """Convert one WGS-84 point to GCJ-02."""
    out = prcoords.wgs_gcj(prcoords.Coords(lat, lon), check_china=False)
    return out.lon, out.lat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Convert one GCJ-02 point to WGS-84 with the iterative (sub-metre) inverse."""
    out = prcoords.gcj_wgs_bored(prcoords.Coords(lat, lon), check_china=False)
    return out.lon, out.lat


def _vectorize(fn: Callable[[float, float], tuple[float, float]]):
    def convert(lons: np.ndarray, lats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lons = np.asarray(lons, dtype=float)
        lats = np.asarray(lats, dtype=float)
        out = np.array([fn(x, y) for x, y in zip(lons.ravel(), lats.ravel(), strict=True)])
        if out.size == 0:
            return lons.copy(), lats.copy()
        return out[:, 0].reshape(lons.shape), out[:, 1].reshape(lats.shape)

    return convert


gcj02_to_wgs84_arrays = _vectorize(gcj02_to_wgs84)
wgs84_to_gcj02_arrays = _vectorize(wgs84_to_gcj02)


def _transform_xy(fn: Callable[[float, float], tuple[float, float]], geom: BaseGeometry):
    def apply(coords: np.ndarray) -> np.ndarray:
        return np.array([fn(x, y) for x, y in coords]) if len(coords) else coords

    return shapely.transform(geom, apply)


def to_wgs84(geom: BaseGeometry, datum: Datum | str) -> BaseGeometry:
    """Return a copy of ``geom`` converted from ``datum`` to WGS-84."""
    datum = parse_datum(datum)
    if datum is Datum.GCJ02:
        return _transform_xy(gcj02_to_wgs84, geom)
    # WGS-84 and CGCS2000 agree to a few centimetres: no shift is applied.
    return geom


def from_wgs84(geom: BaseGeometry, datum: Datum | str) -> BaseGeometry:
    """Return a copy of a WGS-84 ``geom`` converted to ``datum``."""
    datum = parse_datum(datum)
    if datum is Datum.GCJ02:
        return _transform_xy(wgs84_to_gcj02, geom)
    return geom


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two WGS-84 points."""
    r = 6371008.8
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return float(2 * r * np.arcsin(np.sqrt(a)))
