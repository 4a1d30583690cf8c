"""Camera ledgers as files: CSV, GeoJSON and GeoPackage in, the same out.

Reading goes through ``geodata.io`` (CRS handling incl. GCJ-02, row-level
validation); each feature becomes a registry row with ``lon``/``lat`` taken from
its point. Exports never contain credentials: registry rows are already clean.
"""

from __future__ import annotations

import math
import re
from pathlib import PurePath
from typing import Any

import geopandas as gpd
from shapely.geometry import Point

from geodata.io import ExportError, ImportRejected, read_features, write_features
from gridmap.errors import InvalidInput
from video.models import SOURCE_LABELS, STATUS_LABELS, TAG_LABELS, tag_code

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
    "snapshot_url",
)
MAX_LEDGER_ROWS = 50_000
# The import template's columns: the required ones first, then the optional ones.
TEMPLATE_COLUMNS = ("gb_id", "name", "lon", "lat", "source", "department", "main_url", "sub_url",
                    "snapshot_url", "heading", "fov", "range_m", "status", "tags")
TEMPLATE_HEADERS_ZH = {"gb_id": "国标编码", "name": "名称", "lon": "经度", "lat": "纬度",
                       "source": "来源", "department": "权属单位", "main_url": "主码流",
                       "sub_url": "子码流", "snapshot_url": "抓图地址", "heading": "朝向",
                       "fov": "视场角", "range_m": "可视距离", "status": "状态", "tags": "标签"}
EXPORT_HEADERS_ZH = {**TEMPLATE_HEADERS_ZH, "grid_code": "网格编码", "community_code": "村居编码",
                     "town_code": "镇街编码"}
# Headers Chinese camera ledgers (台账) use, beside the export's own English names.
COLUMN_ALIASES = {
    **dict.fromkeys(("国标编码", "国标ID", "设备编码", "设备国标编码"), "gb_id"),
    **dict.fromkeys(("名称", "设备名称", "点位名称", "摄像机名称", "摄像头名称"), "name"),
    **dict.fromkeys(("来源", "所属系统", "来源系统", "接入平台"), "source"),
    **dict.fromkeys(("权属单位", "所属单位", "管理单位", "建设单位"), "department"),
    **dict.fromkeys(("状态", "设备状态"), "status"),
    **dict.fromkeys(("标签",), "tags"),
    **dict.fromkeys(("朝向", "方位角", "朝向角"), "heading"),
    **dict.fromkeys(("视场角", "水平视场角"), "fov"),
    **dict.fromkeys(("可视距离", "监控距离", "视距"), "range_m"),
    **dict.fromkeys(("主码流", "主码流地址", "视频流地址", "取流地址"), "main_url"),
    **dict.fromkeys(("子码流", "子码流地址"), "sub_url"),
    **dict.fromkeys(("抓图地址", "截图地址"), "snapshot_url"),
}
# A source or status may be written as its code or its Chinese name (tags: models.tag_code).
_CODE_BY_LABEL = {
    field: {zh: code for code, (zh, _en) in labels.items()}
    for field, labels in (("source", SOURCE_LABELS), ("status", STATUS_LABELS))
}
_TAG_SEPARATORS = re.compile(r"[,，、;；\s]+")


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
            column_aliases=COLUMN_ALIASES,
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
        row = _coded({k: _clean(v) for k, v in record.items()})
        row["lon"], row["lat"] = geom.x, geom.y
        rows.append(row)
    return rows, [w._asdict() for w in result.warnings]


def _in_chinese(record: dict[str, Any]) -> dict[str, Any]:
    """Return an export record with Chinese headers and Chinese names for coded values."""
    out = dict(record)
    for field, labels in (("source", SOURCE_LABELS), ("status", STATUS_LABELS)):
        code = out.get(field)
        if code in labels:
            out[field] = labels[code][0]
    tags = out.get("tags")
    if isinstance(tags, str) and tags:
        out["tags"] = "、".join(TAG_LABELS[t][0] if t in TAG_LABELS else t for t in tags.split(","))
    return {EXPORT_HEADERS_ZH[k]: v for k, v in out.items()}


def _coded(row: dict[str, Any]) -> dict[str, Any]:
    """Return the row with Chinese names of sources, statuses and tags read as their codes."""
    for field in ("source", "status"):
        value = row.get(field)
        if isinstance(value, str):
            row[field] = _CODE_BY_LABEL[field].get(value.strip(), value)
    tags = row.get("tags")
    if isinstance(tags, str):
        words = [w for w in _TAG_SEPARATORS.split(tags) if w]
        row["tags"] = ",".join(map(tag_code, words))
    return row


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_camera_file(rows: list[dict[str, Any]], fmt: str, datum: str,
                      chinese: bool = False) -> bytes:
    """Serialise registry rows (no secrets) as CSV, GeoJSON or GeoPackage bytes.

    ``chinese`` writes a CSV as a Chinese ledger: Chinese headers and Chinese names
    of sources, statuses and tags (what the import reads back as the same records).
    """
    records = [{k: r.get(k) for k in EXPORT_COLUMNS} for r in rows]
    columns = list(EXPORT_COLUMNS)
    xy_names = ("lon", "lat")
    if chinese and fmt == "csv":
        records = [_in_chinese(r) for r in records]
        columns = [EXPORT_HEADERS_ZH[c] for c in columns]
        xy_names = ("经度", "纬度")
    frame = gpd.GeoDataFrame(
        records,
        columns=columns,
        geometry=[Point(r["lon"], r["lat"]) for r in rows],
        crs="EPSG:4326",
    )
    try:
        return write_features(frame, fmt, datum=datum, layer="cameras", csv_xy_names=xy_names)
    except (ExportError, ValueError) as exc:
        raise InvalidInput(str(exc)) from None


def template_csv(chinese: bool) -> bytes:
    """Return an empty ledger (header row only) as UTF-8 CSV with a BOM, for Excel."""
    headers = [TEMPLATE_HEADERS_ZH[c] if chinese else c for c in TEMPLATE_COLUMNS]
    return ("\ufeff" + ",".join(headers) + "\r\n").encode("utf-8")
