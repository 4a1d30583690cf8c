"""Import/export of GeoJSON, zipped Shapefile, GeoPackage and CSV (geodata.io)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, box

from geodata.coords import gcj02_to_wgs84, wgs84_to_gcj02
from geodata.io import (
    CSV,
    FORMATS,
    GEOJSON,
    GPKG,
    MAX_REPORTED_ERRORS,
    SHAPEFILE,
    ExportError,
    ImportRejected,
    RowError,
    read_features,
    write_features,
)

# Points and cells inside Yanzhou district (WGS-84).
CAMERAS = [("兖州站前摄像头", 116.8302, 35.5541), ("鼓楼街路口", 116.8215, 35.5502)]


@pytest.fixture
def cams() -> gpd.GeoDataFrame:
    """Two camera points with Chinese names, an int and a float attribute."""
    return gpd.GeoDataFrame(
        {
            "名称": [name for name, _, _ in CAMERAS],
            "通道": [1, 2],
            "高度": [6.5, 8.25],
        },
        geometry=[Point(x, y) for _, x, y in CAMERAS],
        crs="EPSG:4326",
    )


@pytest.fixture
def grids() -> gpd.GeoDataFrame:
    """A polygon, a polygon with a hole and a multipolygon, named in Chinese."""
    hole = box(116.80, 35.55, 116.81, 35.56).difference(
        box(116.803, 35.553, 116.806, 35.556)
    )
    multi = MultiPolygon(
        [box(116.82, 35.55, 116.83, 35.56), box(116.84, 35.55, 116.85, 35.56)]
    )
    return gpd.GeoDataFrame(
        {
            "名称": ["鼓楼街道第一网格", "新兖镇网格", "大安镇网格"],
            "编码": ["001", "002", "003"],
        },
        geometry=[box(116.78, 35.53, 116.79, 35.54), hole, multi],
        crs="EPSG:4326",
    )


def feature_collection(
    items: list[tuple[dict | None, dict]], crs: str | None = None
) -> bytes:
    """Return GeoJSON bytes for (geometry, properties) pairs."""
    doc: dict = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": p, "geometry": g} for g, p in items
        ],
    }
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(doc, ensure_ascii=False).encode()


def point(x: float, y: float) -> dict:
    return {"type": "Point", "coordinates": [x, y]}


def polygon(ring: list[tuple[float, float]]) -> dict:
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}


def write_with_pyogrio(gdf: gpd.GeoDataFrame, path: Path, **kwargs) -> Path:
    """Write a file in whatever CRS the frame has (write_features always writes 4326)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="'crs' was not provided")
        pyogrio.write_dataframe(gdf, path, **kwargs)
    return path


def zip_shapefile(
    gdf: gpd.GeoDataFrame, tmp_path: Path, *, drop: tuple[str, ...] = ()
) -> bytes:
    """Return a zipped shapefile of ``gdf``, leaving out the sidecars in ``drop``."""
    folder = tmp_path / "shp"
    folder.mkdir()
    write_with_pyogrio(gdf, folder / "layer.shp", encoding="UTF-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for part in folder.iterdir():
            if part.suffix not in drop:
                archive.write(part, f"data/{part.name}")
    return buffer.getvalue()


def rejected(*args, **kwargs) -> list[RowError]:
    """Call read_features expecting ImportRejected; return its errors."""
    with pytest.raises(ImportRejected) as info:
        read_features(*args, **kwargs)
    assert info.value.errors
    assert str(info.value.errors[0]) in str(info.value)
    return info.value.errors


def reasons(errors: list[RowError]) -> str:
    return " | ".join(str(e) for e in errors)


def assert_same_shape(a, b, tol: float = 1e-9, area_rel: float = 1e-9) -> None:
    """Assert two geometries match: same kind, Hausdorff distance and area within tolerance."""
    assert a.geom_type.removeprefix("Multi") == b.geom_type.removeprefix("Multi")
    assert a.hausdorff_distance(b) <= tol
    assert a.area == pytest.approx(b.area, rel=area_rel, abs=1e-15)


def assert_same_frame(
    got: gpd.GeoDataFrame, want: gpd.GeoDataFrame, *, as_text: bool = False
) -> None:
    assert got.crs.to_epsg() == 4326
    assert len(got) == len(want)
    for column in want.columns.drop(want.geometry.name):
        expected = [str(v) for v in want[column]] if as_text else list(want[column])
        assert list(got[column]) == expected, column
    for a, b in zip(got.geometry, want.geometry, strict=True):
        assert_same_shape(a, b)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", FORMATS)
def test_polygons_round_trip_with_chinese_names(fmt, grids):
    data = write_features(grids, fmt)
    result = read_features(data, fmt=fmt, datum="wgs84")
    assert result.fmt == fmt
    assert_same_frame(result.frame, grids, as_text=fmt == CSV)


@pytest.mark.parametrize("fmt", FORMATS)
def test_points_round_trip_with_typed_attributes(fmt, cams):
    data = write_features(cams, fmt)
    result = read_features(data, datum="wgs84")  # format sniffed from the content
    assert result.fmt == fmt
    # CSV keeps every value as text on purpose (codes must keep leading zeros).
    assert_same_frame(result.frame, cams, as_text=fmt == CSV)


@pytest.mark.parametrize("fmt", [GEOJSON, SHAPEFILE, GPKG])
def test_round_trip_without_datum_uses_declared_crs(fmt, grids):
    result = read_features(write_features(grids, fmt))
    assert result.source_crs == "EPSG:4326"
    assert_same_frame(result.frame, grids)


def test_csv_points_are_written_as_lon_lat_and_polygons_as_wkt(cams, grids):
    points = write_features(cams, CSV)
    assert points.startswith(b"\xef\xbb\xbf")  # BOM so Excel reads UTF-8
    header = points.decode("utf-8-sig").splitlines()[0]
    assert header == "名称,通道,高度,lon,lat"
    cells = write_features(grids, CSV).decode("utf-8-sig").splitlines()
    assert cells[0] == "名称,编码,wkt"
    with pytest.raises(ExportError, match="Point"):
        write_features(grids, CSV, csv_geometry="xy")
    wkt = write_features(cams, CSV, csv_geometry="wkt").decode("utf-8-sig")
    assert "POINT (116.8302 35.5541)" in wkt


def test_shapefile_zip_has_utf8_cpg(cams):
    with zipfile.ZipFile(
        io.BytesIO(write_features(cams, SHAPEFILE, layer="摄像头"))
    ) as archive:
        names = sorted(archive.namelist())
        assert names == [
            "摄像头.cpg",
            "摄像头.dbf",
            "摄像头.prj",
            "摄像头.shp",
            "摄像头.shx",
        ]
        assert archive.read("摄像头.cpg").decode().strip().upper() == "UTF-8"


def test_geopackage_layer_name(cams, tmp_path):
    target = tmp_path / "out.gpkg"
    data = write_features(cams, GPKG, layer="cameras", path=target)
    assert target.read_bytes() == data
    assert [str(name) for name, _ in pyogrio.list_layers(target)] == ["cameras"]
    assert_same_frame(read_features(target).frame, cams)


def test_read_from_path_file_object_and_bare_shp(cams, tmp_path):
    geojson = tmp_path / "cams.geojson"
    write_features(cams, GEOJSON, path=geojson)
    assert_same_frame(read_features(geojson).frame, cams)
    with geojson.open("rb") as stream:
        assert_same_frame(read_features(stream).frame, cams)
    shp = write_with_pyogrio(cams, tmp_path / "cams.shp", encoding="UTF-8")
    assert_same_frame(read_features(shp).frame, cams)


def test_export_converts_other_crs_and_rejects_missing_crs(cams):
    projected = cams.to_crs(3857)
    result = read_features(write_features(projected, GEOJSON))
    assert_same_frame(result.frame, cams)
    with pytest.raises(ExportError, match="no CRS"):
        write_features(cams.set_crs(None, allow_override=True), GEOJSON)


# --------------------------------------------------------------------------- datums and CRSs


@pytest.mark.parametrize("fmt", FORMATS)
def test_gcj02_output_reads_back_with_the_flag(fmt, grids):
    data = write_features(grids, fmt, datum="gcj02")
    result = read_features(data, datum="gcj02")
    assert result.source_crs == "GCJ-02"
    for got, want in zip(result.frame.geometry, grids.geometry, strict=True):
        # The iterative inverse is good to ~1 mm (1e-8 degrees).
        assert_same_shape(got, want, tol=1e-8, area_rel=1e-5)


def test_gcj02_output_coordinates_are_shifted(cams):
    doc = json.loads(write_features(cams, GEOJSON, datum="gcj02"))
    for feature, (_, lon, lat) in zip(doc["features"], CAMERAS, strict=True):
        assert feature["geometry"]["coordinates"] == pytest.approx(
            list(wgs84_to_gcj02(lon, lat))
        )


@pytest.mark.parametrize("fmt", [SHAPEFILE, GPKG])
def test_gcj02_output_declares_no_crs_so_the_flag_is_required(fmt, cams):
    data = write_features(cams, fmt, datum="gcj02")
    if fmt == SHAPEFILE:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert not [n for n in archive.namelist() if n.endswith(".prj")]
    errors = rejected(data)
    assert errors[0].field == "crs"
    assert "datum" in errors[0].reason


@pytest.mark.parametrize("fmt", [GEOJSON, SHAPEFILE, GPKG])
def test_cgcs2000_output_declares_4490(fmt, cams):
    data = write_features(cams, fmt, datum="cgcs2000")
    if fmt == SHAPEFILE:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert "China" in archive.read("features.prj").decode()
    result = read_features(data)
    assert result.source_crs.startswith("EPSG:4490")
    assert_same_frame(result.frame, cams)


def test_gcj02_geojson_input_matches_gcj02_to_wgs84():
    gcj_points = [(116.8361, 35.5529), (116.8275, 35.5490)]
    ring = [(116.80, 35.55), (116.81, 35.55), (116.81, 35.56), (116.80, 35.55)]
    data = feature_collection(
        [(point(x, y), {"名称": f"点{i}"}) for i, (x, y) in enumerate(gcj_points)]
        + [(polygon(ring), {"名称": "网格"})]
    )
    frame = read_features(data, datum="gcj02").frame
    for geom, (x, y) in zip(frame.geometry[:2], gcj_points, strict=True):
        assert (geom.x, geom.y) == pytest.approx(gcj02_to_wgs84(x, y), abs=1e-12)
    expected = [gcj02_to_wgs84(x, y) for x, y in ring]
    assert np.allclose(
        shapely.get_coordinates(frame.geometry[2]), expected, rtol=0, atol=1e-12
    )
    assert list(frame["名称"]) == ["点0", "点1", "网格"]


def test_gcj02_csv_input_with_chinese_coordinate_columns():
    text = "名称,经度,纬度\n北门,116.8361,35.5529\n"
    frame = read_features(text.encode("gbk"), fmt="csv", datum="gcj02").frame
    assert frame.loc[0, "名称"] == "北门"
    assert (frame.geometry[0].x, frame.geometry[0].y) == pytest.approx(
        gcj02_to_wgs84(116.8361, 35.5529), abs=1e-12
    )


def test_cgcs2000_geojson_input():
    data = feature_collection(
        [(point(116.83, 35.55), {"a": 1})], crs="urn:ogc:def:crs:EPSG::4490"
    )
    result = read_features(data)
    assert result.source_crs.startswith("EPSG:4490")
    assert result.frame.geometry[0].equals(Point(116.83, 35.55))


@pytest.mark.parametrize("epsg", [3857, 4527, 4548, 32650])
def test_projected_input_is_transformed(epsg, grids, tmp_path):
    path = write_with_pyogrio(grids.to_crs(epsg), tmp_path / "projected.gpkg")
    result = read_features(path)
    assert result.source_crs.startswith(f"EPSG:{epsg}")
    assert any("transformed" in w.reason for w in result.warnings)
    for got, want in zip(result.frame.geometry, grids.geometry, strict=True):
        assert got.hausdorff_distance(want) < 1e-8
        assert got.area == pytest.approx(want.area, rel=1e-6)


def test_declared_crs_wins_over_datum_with_a_note(cams, tmp_path):
    path = write_with_pyogrio(cams.to_crs(4527), tmp_path / "gk.gpkg")
    result = read_features(path, datum="wgs84")
    assert any("instead of datum" in w.reason for w in result.warnings)
    assert_same_frame(result.frame, cams)


def test_gcj02_flag_contradicts_a_projected_crs(cams, tmp_path):
    path = write_with_pyogrio(cams.to_crs(3857), tmp_path / "merc.gpkg")
    errors = rejected(path, datum="gcj02")
    assert errors[0].field == "crs" and "GCJ-02" in errors[0].reason


def test_other_datums_are_rejected(cams, tmp_path):
    path = write_with_pyogrio(cams.to_crs(2436), tmp_path / "beijing54.gpkg")
    errors = rejected(path)
    assert errors[0].field == "crs"
    assert "Beijing 1954" in errors[0].reason


def test_unknown_datum_name_is_rejected(cams):
    errors = rejected(write_features(cams, GEOJSON), datum="bd09")
    assert errors[0].field == "datum"


@pytest.mark.parametrize("fmt", [SHAPEFILE, GPKG])
def test_missing_crs_is_rejected_unless_datum_given(fmt, cams, tmp_path):
    if fmt == SHAPEFILE:
        data = zip_shapefile(cams, tmp_path, drop=(".prj",))
    else:
        data = write_with_pyogrio(
            cams.set_crs(None, allow_override=True), tmp_path / "x.gpkg"
        ).read_bytes()
    errors = rejected(data)
    assert errors == [errors[0]]
    assert errors[0].row is None and errors[0].field == "crs"
    assert "declares no coordinate system" in errors[0].reason
    result = read_features(data, datum="cgcs2000")
    assert result.source_crs == "EPSG:4490"
    assert_same_frame(result.frame, cams)


def test_csv_needs_a_datum(cams):
    errors = rejected(write_features(cams, CSV))
    assert errors[0].field == "crs"


def test_metres_declared_as_degrees_are_rejected(cams, tmp_path):
    mislabelled = cams.to_crs(3857).set_crs(4326, allow_override=True)
    errors = rejected(write_with_pyogrio(mislabelled, tmp_path / "bad.gpkg"))
    assert errors[0] == RowError(None, "crs", errors[0].reason)
    assert "probably wrong" in errors[0].reason
    assert [(e.row, e.field) for e in errors[1:]] == [(1, "geometry"), (2, "geometry")]
    assert "not longitude/latitude degrees" in errors[1].reason


def test_gauss_kruger_zone_without_prefix_is_rejected(cams, tmp_path):
    # CM-style eastings (~480 km) labelled as the zone CRS (expects 39 480 km).
    mislabelled = cams.to_crs(4548).set_crs(4527, allow_override=True)
    errors = rejected(write_with_pyogrio(mislabelled, tmp_path / "gk.gpkg"))
    assert "zone number" in errors[0].reason
    assert [e.row for e in errors[1:]] == [1, 2]
    assert all(
        "EPSG:4527" in e.reason or "outside China" in e.reason for e in errors[1:]
    )


def test_swapped_latitude_longitude_is_explained():
    errors = rejected(b"name,lat,lon\nA,116.83,35.55\n", datum="wgs84")
    assert errors[1].row == 1
    assert "swapped" in errors[1].reason


# --------------------------------------------------------------------------- bad input


def test_bow_tie_polygon_reports_validity_reason_and_row():
    bow_tie = [
        (116.80, 35.50),
        (116.81, 35.51),
        (116.81, 35.50),
        (116.80, 35.51),
        (116.80, 35.50),
    ]
    good = [(116.80, 35.50), (116.81, 35.50), (116.81, 35.51), (116.80, 35.50)]
    data = feature_collection([(polygon(good), {"n": 1}), (polygon(bow_tie), {"n": 2})])
    errors = rejected(data)
    assert errors == [RowError(2, "geometry", errors[0].reason)]
    assert errors[0].reason.startswith("invalid geometry: Self-intersection[")
    assert "row 2" in str(errors[0])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "the file is empty"),
        (b"  \n", "the file is empty"),
        (feature_collection([]), "no features"),
        (b"name,lon,lat\n", "no features"),
    ],
)
def test_empty_inputs(data, expected):
    errors = rejected(data, datum="wgs84")
    assert errors[0].row is None
    assert expected in errors[0].reason


@pytest.mark.parametrize(
    ("data", "fmt", "expected"),
    [
        (b"name,code\n\xe6\x91\x84,1\n", None, "no coordinate columns"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "geojson", "PNG image"),
        (b"%PDF-1.7\n", None, "PDF"),
        (b'{"hello": "world"}', None, "not valid GeoJSON"),
        (b"name,lon,lat\nA,1,2\n", "geojson", "expected a GeoJSON file"),
        (b"\x00\x00\x27\x0a" + bytes(96), None, "bare .shp"),
    ],
)
def test_non_spatial_inputs(data, fmt, expected):
    errors = rejected(data, fmt=fmt, datum="wgs84")
    assert expected in errors[0].reason


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00", "\\ud83d x"])
def test_half_a_surrogate_pair_in_geojson_is_refused_not_stored_as_u_fffd(escape):
    data = feature_collection([(point(116.8, 35.55), {"name": "@@"})]).replace(
        b"@@", f"cam {escape}".encode())
    errors = rejected(data, datum="wgs84")
    assert "half a surrogate pair" in errors[0].reason and "line 1" in errors[0].reason


def test_geojson_in_gbk_is_refused_with_the_reason():
    data = feature_collection([(point(116.8, 35.55), {"name": "鼓楼执行"})])
    errors = rejected(data.decode().encode("gbk"), datum="wgs84")
    assert errors[0].reason.startswith("a GeoJSON file is UTF-8 text (RFC 7946)")


def test_a_whole_surrogate_pair_in_geojson_is_read_as_its_character():
    data = feature_collection([(point(116.8, 35.55), {"name": "@@"})]).replace(
        b"@@", b"cam \\ud83d\\ude00")
    assert read_features(data).frame["name"].tolist() == ["cam \U0001f600"]


def test_png_renamed_geojson_and_prose_txt(tmp_path):
    png = tmp_path / "map.geojson"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert "PNG image" in rejected(png)[0].reason
    prose = tmp_path / "notes.txt"
    prose.write_text("这不是地图文件。\nJust some notes.\n", encoding="utf-8")
    assert "no coordinate columns" in rejected(prose, datum="wgs84")[0].reason


def test_geopackage_without_spatial_layer_and_plain_sqlite(tmp_path):
    gpkg = tmp_path / "table.gpkg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pyogrio.write_dataframe(
            gpd.pd.DataFrame({"名称": ["a"]}), gpkg, layer="tbl", driver="GPKG"
        )
    assert "no layer with geometries" in rejected(gpkg)[0].reason
    db = tmp_path / "plain.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (x)")
    conn.close()
    assert "not a GeoPackage" in rejected(db)[0].reason


def test_zip_without_shapefile_or_sidecars(cams, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "no .shp file" in rejected(buffer.getvalue())[0].reason
    errors = rejected(zip_shapefile(cams, tmp_path, drop=(".shx",)))
    assert "layer.shx missing" in errors[0].reason
    assert "truncated or corrupt" in rejected(b"PK\x03\x04" + bytes(20))[0].reason


def test_zip_with_two_shapefiles_needs_layer(cams, tmp_path):
    data = zip_shapefile(cams, tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buffer, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
            dst.writestr(info.filename.replace("layer", "other"), src.read(info))
    assert "several shapefiles" in rejected(buffer.getvalue())[0].reason
    assert_same_frame(read_features(buffer.getvalue(), layer="other").frame, cams)


def test_geopackage_with_two_layers_needs_layer(cams, grids, tmp_path):
    path = tmp_path / "two.gpkg"
    write_with_pyogrio(cams, path, layer="cams")
    write_with_pyogrio(grids, path, layer="grids")
    assert "several layers (cams, grids)" in rejected(path)[0].reason
    assert_same_frame(read_features(path, layer="grids").frame, grids)
    assert "no spatial layer 'nope'" in rejected(path, layer="nope")[0].reason


def test_coordinates_outside_china_name_the_row():
    data = feature_collection(
        [
            (point(116.83, 35.55), {"名称": "兖州"}),
            (point(2.3522, 48.8566), {"名称": "巴黎"}),
            (point(116.82, 35.56), {"名称": "兖州2"}),
        ]
    )
    errors = rejected(data)
    assert errors == [
        RowError(
            2, "geometry", "lies outside China: WGS-84 coordinates at (2.3522, 48.8566)"
        )
    ]


def test_truncated_geojson():
    data = feature_collection(
        [(point(116.83 + i / 1000, 35.55), {"i": i}) for i in range(100)]
    )
    errors = rejected(data[: len(data) // 2])
    assert errors[0].row is None
    assert "truncated" in errors[0].reason and "Unterminated" in errors[0].reason


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_geojson_coordinates(bad):
    data = feature_collection([(point(116.83, 35.55), {}), (point(bad, 35.55), {})])
    assert rejected(data) == [
        RowError(2, "geometry", "coordinates contain NaN or infinity")
    ]


def test_non_finite_and_non_numeric_csv_coordinates():
    text = "名称,lon,lat\nA,116.83,35.55\nB,nan,35.55\nC,116.8,inf\nD,东经116,35.5\nE,,35.5\n"
    errors = rejected(text.encode(), datum="wgs84")
    assert [(e.row, e.field) for e in errors] == [
        (2, "lon"),
        (3, "lat"),
        (4, "lon"),
        (5, "lon"),
    ]
    assert "not finite" in errors[0].reason
    assert "'东经116' is not a number" in errors[2].reason
    assert errors[3].reason == "missing coordinate"


def test_wkt_csv_errors():
    text = "name,wkt\nA,POINT (116.8 35.5)\nB,POINT (nan 35.5)\nC,POLYGON ((116.8 35.5\nD,\n"
    errors = rejected(text.encode(), datum="wgs84")
    assert [(e.row, e.field) for e in errors] == [
        (2, "geometry"),
        (3, "wkt"),
        (4, "geometry"),
    ]
    assert "NaN" in errors[0].reason
    assert "not valid WKT" in errors[1].reason
    assert errors[2].reason == "missing geometry"


def test_too_many_vertices_is_caught_before_geos(tmp_path, monkeypatch):
    ring = shapely.Point(116.83, 35.55).buffer(0.01, quad_segs=500)  # ~2000 vertices
    small = box(116.80, 35.50, 116.81, 35.51)
    many_parts = MultiPolygon(
        [box(116.8 + i / 1000, 35.5, 116.8005 + i / 1000, 35.5005) for i in range(300)]
    )
    frame = gpd.GeoDataFrame(
        {"n": [1, 2, 3]}, geometry=[small, ring, many_parts], crs="EPSG:4326"
    )
    path = write_with_pyogrio(frame, tmp_path / "big.gpkg")
    decoded: list[int] = []
    real = shapely.from_wkb

    def spy(values, *args, **kwargs):
        decoded.extend(len(v) for v in np.atleast_1d(values))
        return real(values, *args, **kwargs)

    monkeypatch.setattr(shapely, "from_wkb", spy)
    errors = rejected(path, max_vertices_per_feature=1000)
    assert errors == [
        RowError(2, "geometry", "more than 1,000 vertices"),
        RowError(3, "geometry", "more than 1,000 vertices"),
    ]
    assert decoded and max(decoded) < 1000 * 16  # the big geometries never reached GEOS
    monkeypatch.undo()
    assert len(read_features(path, max_vertices_per_feature=5000).frame) == 3


def test_too_many_vertices_in_wkt_csv():
    ring = (
        ", ".join(f"{116.8 + i * 1e-5} 35.5" for i in range(50))
        + ", 116.8 35.51, 116.8 35.5"
    )
    text = f'id,wkt\n1,"POLYGON (({ring}))"\n'
    errors = rejected(text.encode(), datum="wgs84", max_vertices_per_feature=10)
    assert errors == [RowError(1, "wkt", "more than 10 vertices")]


def test_wrong_geometry_type(cams, grids):
    mixed = gpd.GeoDataFrame(
        {"名称": ["点", "面"]},
        geometry=[cams.geometry[0], grids.geometry[0]],
        crs="EPSG:4326",
    )
    errors = rejected(write_features(mixed, GEOJSON), expected_geom={"point"})
    assert errors == [
        RowError(2, "geometry", "geometry type is Polygon; expected Point")
    ]
    grids_ok = read_features(
        write_features(grids, GEOJSON), expected_geom={"Polygon", "MultiPolygon"}
    )
    assert len(grids_ok.frame) == 3
    with pytest.raises(ValueError, match="unknown geometry type"):
        read_features(write_features(grids, GEOJSON), expected_geom={"Polgon"})


def test_oversized_inputs(cams, tmp_path):
    data = write_features(cams, GEOJSON)
    assert "limit is 100 bytes" in rejected(data, max_bytes=100)[0].reason
    path = tmp_path / "cams.geojson"
    path.write_bytes(data)
    assert "limit" in rejected(path, max_bytes=100)[0].reason
    assert "limit" in rejected(io.BytesIO(data), max_bytes=100)[0].reason


def test_zip_bomb_is_rejected_by_uncompressed_size(cams, tmp_path):
    data = zip_shapefile(cams, tmp_path)
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        dst.writestr("data/padding.bin", bytes(5_000_000))
    bomb = buffer.getvalue()
    assert len(bomb) < 100_000
    assert "expands to" in rejected(bomb, max_bytes=1_000_000)[0].reason


def test_too_many_features(cams):
    assert (
        "more than 1 features"
        in rejected(write_features(cams, GPKG), max_features=1)[0].reason
    )
    assert (
        "more than 1 features"
        in rejected(write_features(cams, CSV), datum="wgs84", max_features=1)[0].reason
    )


def test_required_columns(cams):
    data = write_features(cams.assign(编号=["A1", " "]), GEOJSON)
    assert rejected(data, required_columns=["名称", "型号"]) == [
        RowError(None, "型号", "required column is missing")
    ]
    assert rejected(data, required_columns=["编号"]) == [
        RowError(2, "编号", "required value is missing")
    ]


def test_every_bad_row_is_reported_and_nothing_is_imported():
    items = [
        (point(116.83, 35.55), {"i": 0}),
        (None, {"i": 1}),
        (point(200.0, 35.0), {"i": 2}),
    ]
    items.append((point(116.8, 35.5), {"i": 3}))
    items.append(({"type": "Polygon", "coordinates": []}, {"i": 4}))
    errors = rejected(feature_collection(items))
    assert [(e.row, e.reason.split(":")[0]) for e in errors] == [
        (2, "missing geometry"),
        (3, "coordinates such as (200, 35) are not longitude/latitude degrees in EPSG"),
        (5, "empty geometry"),
    ]


def test_malformed_csv():
    assert (
        "malformed CSV"
        in rejected(b"a,lon,lat\n1,2,3\n4,5,6,7\n", datum="wgs84")[0].reason
    )


def test_z_values_are_dropped_with_a_note():
    data = json.dumps(
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Point", "coordinates": [116.8, 35.5, 40.0]},
        }
    ).encode()
    result = read_features(data)
    assert not result.frame.geometry[0].has_z
    assert any("Z/M" in w.reason for w in result.warnings)


def test_rejection_lists_are_capped():
    items = [(point(2.0, 48.0), {}) for _ in range(MAX_REPORTED_ERRORS + 50)]
    errors = rejected(feature_collection(items))
    assert len(errors) == MAX_REPORTED_ERRORS + 1
    assert errors[-1].reason.endswith("more problems not listed")


def test_row_error_text():
    assert (
        str(RowError(3, "名称", "required value is missing"))
        == "row 3, field '名称': required value is missing"
    )
    assert str(RowError(None, None, "the file is empty")) == "file: the file is empty"


# --------------------------------------------------------------------------- export errors


def test_shapefile_export_refuses_long_field_names_and_mixed_types(cams, grids):
    with pytest.raises(ExportError, match="10 bytes"):
        write_features(cams.rename(columns={"名称": "摄像头名称"}), SHAPEFILE)
    mixed = gpd.GeoDataFrame(
        geometry=[cams.geometry[0], grids.geometry[0]], crs="EPSG:4326"
    )
    with pytest.raises(ExportError, match="one kind of geometry"):
        write_features(mixed, SHAPEFILE)


def test_shapefile_export_mixes_polygons_and_multipolygons(grids):
    result = read_features(write_features(grids, SHAPEFILE))
    assert_same_frame(result.frame, grids)


def test_export_rejects_bad_arguments(cams):
    with pytest.raises(ValueError, match="unknown format"):
        write_features(cams, "kml")
    with pytest.raises(ExportError, match="layer names"):
        write_features(cams, GPKG, layer="../evil")
    with pytest.raises(ValueError, match="unknown coordinate system"):
        write_features(cams, GEOJSON, datum="bd09")


def test_multipolygon_round_trip_geometry_is_identical(grids):
    got = read_features(write_features(grids, GPKG)).frame.geometry
    for a, b in zip(got, grids.geometry, strict=True):
        assert a.equals(b)


def test_shapefile_export_stores_datetimes_as_iso_text(cams):
    stamped = cams.assign(
        时间=gpd.pd.to_datetime(["2024-05-01 08:30", "2024-05-02 17:00"])
    )
    frame = read_features(write_features(stamped, SHAPEFILE)).frame
    assert list(frame["时间"]) == ["2024-05-01T08:30:00", "2024-05-02T17:00:00"]


SPREADSHEET_TRAPS = ["=HYPERLINK(\"http://x\")", "+86 139 0000 1234", "@SUM(A1)", "-cmd|' /C calc'!A0",
                     "'=already quoted", "''=twice", "\tTAB", "-12.5", "'plain", "normal 名称"]


def test_csv_cells_never_run_as_formulas_and_read_back_unchanged(cams):
    frame = cams.iloc[[0] * len(SPREADSHEET_TRAPS)].reset_index(drop=True)
    frame["名称"] = SPREADSHEET_TRAPS
    data = write_features(frame, CSV)
    cells = [r[0] for r in list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[1:]]
    # Formula starts get Excel's text mark; numbers and plain text stay as they are.
    assert cells == ["'" + t if t[:1] in "=+@-\t'" and t not in ("-12.5", "'plain") else t
                     for t in SPREADSHEET_TRAPS]
    assert cells[3] == "'-cmd|' /C calc'!A0" and cells[4] == "''=already quoted"
    assert list(read_features(data, datum="wgs84").frame["名称"]) == SPREADSHEET_TRAPS
