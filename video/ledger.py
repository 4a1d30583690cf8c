"""Camera ledgers as files: CSV, GeoJSON and GeoPackage in, the same out.

Reading goes through ``geodata.io`` (CRS handling incl. GCJ-02, row-level
validation); each feature becomes a registry row with ``lon``/``lat`` taken from
its point. Exports never contain credentials: registry rows are already clean.
"""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any

import geopandas as gpd
from shapely.geometry import Point

from geodata.io import ExportError, ImportRejected, read_features, write_features
from gridmap.errors import InvalidInput

FORMAT_BY_SUFFIX = {
    ".csv": "csv",
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
}
EXPORT_COLUMNS = (
    "gb_id",
    "name",
    "source",
    "department",
    "status",
    "tags",
    "heading",
    "fov",
    "range_m",
    "grid_code",
    "community_code",
    "town_code",
    "main_url",
    "sub_url",
)
MAX_LEDGER_ROWS = 50_000


def read_camera_file(data: bytes, filename: str,
                     datum: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Parse an uploaded ledger into registry rows and the reader's warnings
    (coordinates transformed, Z dropped, encoding guessed), or raise InvalidInput
    with row errors."""
    fmt = FORMAT_BY_SUFFIX.get(PurePath(filename).suffix.lower())
    if fmt is None:
        raise InvalidInput(
            "the file must be .csv, .geojson, .json or .gpkg", filename=filename
        )
    try:
        result = read_features(
            data,
            fmt=fmt,
            datum=datum,
            expected_geom={"Point"},
            required_columns=("gb_id",),
            max_features=MAX_LEDGER_ROWS,
        )
    except ImportRejected as exc:
        raise InvalidInput(
            f"{len(exc.errors)} problem(s) in the file; nothing was imported",
            errors=[e._asdict() for e in exc.errors],
        ) from None
    except ValueError as exc:  # a bad datum name and similar caller errors
        raise InvalidInput(str(exc)) from None
    rows = []
    for record, geom in zip(
        result.frame.drop(columns="geometry").to_dict("records"),
        result.frame.geometry,
        strict=True,
    ):
        row = {k: _clean(v) for k, v in record.items()}
        row["lon"], row["lat"] = geom.x, geom.y
        rows.append(row)
    return rows, [w._asdict() for w in result.warnings]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_camera_file(rows: list[dict[str, Any]], fmt: str, datum: str) -> bytes:
    """Serialise registry rows (no secrets) as CSV, GeoJSON or GeoPackage bytes."""
    frame = gpd.GeoDataFrame(
        [{k: r.get(k) for k in EXPORT_COLUMNS} for r in rows],
        columns=list(EXPORT_COLUMNS),
        geometry=[Point(r["lon"], r["lat"]) for r in rows],
        crs="EPSG:4326",
    )
    try:
        return write_features(frame, fmt, datum=datum, layer="cameras")
    except (ExportError, ValueError) as exc:
        raise InvalidInput(str(exc)) from None
