"""The real Yanzhou district boundary (see data/PROVENANCE.md)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import shapely
from shapely.geometry import MultiPolygon, shape

from geodata.coords import Datum, to_wgs84

DISTRICT_CODE = "370812"
DISTRICT_NAME = "兖州区"
BOUNDARY_RESOURCE = "yanzhou_370812_gcj02.geojson"


def boundary_gcj02() -> MultiPolygon:
    """Return the district boundary exactly as published, in GCJ-02."""
    raw = resources.files("geodata").joinpath("data", BOUNDARY_RESOURCE).read_text("utf-8")
    return shape(json.loads(raw))


@lru_cache(maxsize=1)
def district_boundary() -> MultiPolygon:
    """Return the district boundary in WGS-84 as a valid MultiPolygon."""
    geom = shapely.make_valid(to_wgs84(boundary_gcj02(), Datum.GCJ02))
    if geom.geom_type == "Polygon":
        geom = MultiPolygon([geom])
    return geom
