"""Import and export vector files: GeoJSON, zipped Shapefile, GeoPackage and CSV.

Imports are all-or-nothing. :func:`read_features` checks every row and either returns
all features in EPSG:4326 or raises :class:`ImportRejected` listing every bad row
(``row`` is the 1-based feature number: row 1 is the first feature, or the first line
after the header of a CSV; ``row`` is None for problems with the file as a whole).

Coordinate reference system rule:

* A CRS declared by the file is used as declared. It is accepted when it is a 2-D
  geographic or projected CRS on the WGS 84 or CGCS2000 datum that has an EPSG code
  (or is OGC:CRS84); for example EPSG:4326, EPSG:4490, EPSG:3857, UTM zones and the
  CGCS2000 Gauss-Krüger zones (EPSG:4513-4554); pyproj transforms it to EPSG:4326. Other datums (Beijing 1954, Xi'an 1980, ...) are rejected: PROJ has no
  accurate public transformation from them to WGS 84 and a silent ~100 m shift would
  misplace cameras across streets.
* A file without a CRS (a shapefile without .prj, a GeoPackage layer without SRS, any
  CSV) is rejected unless the caller passes ``datum``. ``datum`` only fills in a
  missing CRS, except ``datum='gcj02'``: GCJ-02 has no EPSG code, so such files
  declare EPSG:4326 (or CGCS2000 degrees) or nothing, and the flag says how to read
  them; a projected declaration together with ``gcj02`` is a contradiction and rejected.
* A CRS is "clearly wrong" when the coordinates do not fit it: degrees outside
  ±180/±90 in a geographic CRS, or any feature outside China after conversion
  (checked with :func:`geodata.coords.in_china`). If no feature at all lands in China
  the report also names the CRS as the probable culprit.

CSV: coordinates come from a WKT column (``wkt``, ``geometry``, ``geom``, ``the_geom``)
or, failing that, from the first of the column pairs lon/lat, lng/lat,
longitude/latitude, x/y, 经度/纬度 (case-insensitive); all other values stay text.
UTF-8 (with or without BOM) and GBK/GB18030 are accepted.

Z and M values are dropped (the database stores 2-D geometries); a note says so.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, NamedTuple

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pyogrio
import pyogrio.errors
import pyogrio.raw
import shapely
import shapely.errors
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from geodata.coords import (
    EPSG_BY_DATUM,
    CoordinateError,
    Datum,
    gcj02_to_wgs84_arrays,
    in_china,
    parse_datum,
    wgs84_to_gcj02_arrays,
)
from gridmap.validation import mask_url_userinfo

GEOJSON = "geojson"
SHAPEFILE = "shapefile"
GPKG = "gpkg"
CSV = "csv"
FORMATS = (GEOJSON, SHAPEFILE, GPKG, CSV)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_FEATURES = 100_000
# The district boundary has ~560 vertices and a grid cell a few dozen; 100k is far
# beyond any legitimate feature and small enough to keep GEOS work bounded.
DEFAULT_MAX_VERTICES = 100_000
# A rejected 100k-row file must not produce a 100k-entry error response.
MAX_REPORTED_ERRORS = 200

GEOMETRY_TYPES = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)

# CSV coordinate columns, matched case-insensitively, first pair found wins.
XY_COLUMN_PAIRS = (
    ("lon", "lat"),
    ("lng", "lat"),
    ("longitude", "latitude"),
    ("x", "y"),
    ("经度", "纬度"),
)
WKT_COLUMNS = ("wkt", "geometry", "geom", "the_geom")

# DBF field names are at most 10 bytes; GDAL "launders" longer ones by cutting
# bytes, which splits multi-byte UTF-8 Chinese names in half.
SHAPEFILE_MAX_FIELD_BYTES = 10

_FORMAT_ALIASES = {
    "geojson": GEOJSON,
    "json": GEOJSON,
    "shapefile": SHAPEFILE,
    "shp": SHAPEFILE,
    "zip": SHAPEFILE,
    "esri shapefile": SHAPEFILE,
    "gpkg": GPKG,
    "geopackage": GPKG,
    "csv": CSV,
    "txt": CSV,
}
_FORMAT_LABELS = {
    GEOJSON: "a GeoJSON file",
    SHAPEFILE: "a zipped Shapefile",
    GPKG: "a GeoPackage",
    CSV: "a CSV text file",
}
_KIND_FORMATS = {"json": GEOJSON, "zip": SHAPEFILE, "sqlite": GPKG, "text": CSV}
_KIND_LABELS = {
    "json": "JSON",
    "zip": "a zip archive",
    "sqlite": "an SQLite database",
    "text": "plain text",
}
# Well-known file signatures of things people upload by mistake.
_FOREIGN_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old-style Office document (.xls/.doc)"),
    (b"RIFF", "a RIFF media file"),
    (
        b"\x00\x00\x27\x0a",
        "a bare .shp file (upload the .shp, .shx, .dbf and .prj as one .zip)",
    ),
)
_GPKG_APPLICATION_IDS = (b"GPKG", b"GP10", b"GP11")
_SIDECARS = (".shp", ".shx", ".dbf", ".prj", ".cpg")

# Datum names as PROJ spells them; WGS 84 appears both as the ensemble (EPSG:4326)
# and as a plain datum (EPSG:3857), and its realizations differ by centimetres.
_ACCEPTED_DATUM_PREFIXES = ("World Geodetic System 1984", "China 2000")


class RowError(NamedTuple):
    """One problem in an input file; ``row`` is None when the file as a whole is at fault."""

    row: int | None
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = "file" if self.row is None else f"row {self.row}"
        if self.field:
            where += f", field {self.field!r}"
        return f"{where}: {self.reason}"


class ImportRejected(ValueError):
    """An input file was rejected as a whole; ``errors`` lists what is wrong with it."""

    def __init__(self, errors: Iterable[RowError]):
        errors = list(errors)
        if len(errors) > MAX_REPORTED_ERRORS:
            hidden = len(errors) - MAX_REPORTED_ERRORS
            errors = errors[:MAX_REPORTED_ERRORS]
            errors.append(RowError(None, None, f"{hidden} more problems not listed"))
        self.errors: list[RowError] = errors
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"import rejected: {shown}{more}")


class ExportError(ValueError):
    """A frame cannot be written faithfully in the requested format."""


@dataclass(eq=False)
class ImportResult:
    """An accepted import: every feature, in EPSG:4326, plus non-fatal notes."""

    frame: gpd.GeoDataFrame
    fmt: str
    source_crs: str
    # The import is all-or-nothing, so an accepted result never carries row errors;
    # this holds notices in the same shape (CRS transformed, Z dropped, GDAL warnings).
    warnings: list[RowError] = dataclasses.field(default_factory=list)


@dataclass
class _Loaded:
    """Raw rows read from a file, before CRS handling and validation."""

    attrs: pd.DataFrame
    geoms: np.ndarray  # shapely geometries, None where missing or already rejected
    crs: str | None
    errors: list[RowError] = dataclasses.field(default_factory=list)
    notes: list[RowError] = dataclasses.field(default_factory=list)


@dataclass
class _SourceCRS:
    """How to turn the file's coordinates into WGS-84 longitude/latitude."""

    label: str
    geographic: bool
    declared: bool
    convert: Callable[[np.ndarray], np.ndarray] | None = None
    hint: str = ""


Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO


def _reject(reason: str, field: str | None = None) -> ImportRejected:
    return ImportRejected([RowError(None, field, reason)])


def normalise_format(fmt: str) -> str:
    """Return the canonical format name for a user-supplied one such as 'shp' or 'GeoPackage'."""
    key = str(fmt).strip().lower().lstrip(".")
    try:
        return _FORMAT_ALIASES[key]
    except KeyError:
        raise ValueError(
            f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}"
        ) from None


# --------------------------------------------------------------------------- reading


def read_features(
    source: Source,
    *,
    fmt: str | None = None,
    datum: str | Datum | None = None,
    expected_geom: set[str] | None = None,
    required_columns: Iterable[str] = (),
    column_aliases: Mapping[str, str] | None = None,
    layer: str | None = None,
    encoding: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_features: int = DEFAULT_MAX_FEATURES,
    max_vertices_per_feature: int = DEFAULT_MAX_VERTICES,
) -> ImportResult:
    """Read a vector file into EPSG:4326, rejecting the whole file if any row is bad.

    ``column_aliases`` maps other header names (matched without case or surrounding
    spaces, e.g. a ledger's Chinese headers) to the names the caller reads; the
    required columns are checked after renaming.
    """
    wanted = _normalise_geom_types(expected_geom)
    if datum is None:
        flag = None
    else:
        try:
            flag = parse_datum(datum)
        except CoordinateError as exc:
            raise _reject(str(exc), "datum") from None
    with tempfile.TemporaryDirectory(prefix="gridmap-import-") as tmp:
        detected, loaded = _load(
            source,
            fmt=fmt,
            layer=layer,
            encoding=encoding,
            max_bytes=max_bytes,
            max_features=max_features,
            max_vertices=max_vertices_per_feature,
            tmp=Path(tmp),
        )
    if column_aliases:
        loaded = _rename_columns(loaded, column_aliases)
    return _validate(
        loaded,
        fmt=detected,
        datum=flag,
        wanted=wanted,
        required=tuple(required_columns),
        max_vertices=max_vertices_per_feature,
    )


def _normalise_geom_types(expected: set[str] | None) -> set[str] | None:
    if expected is None:
        return None
    canonical = {name.lower(): name for name in GEOMETRY_TYPES}
    try:
        return {canonical[name.strip().lower()] for name in expected}
    except KeyError as exc:
        raise ValueError(f"unknown geometry type {exc.args[0]!r}") from None


def _load(
    source: Source,
    *,
    fmt: str | None,
    layer: str | None,
    encoding: str | None,
    max_bytes: int,
    max_features: int,
    max_vertices: int,
    tmp: Path,
) -> tuple[str, _Loaded]:
    declared = normalise_format(fmt) if fmt is not None else None
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise _reject("file not found")
        if path.suffix.lower() == ".shp" and declared in (None, SHAPEFILE):
            # A bare .shp path: GDAL finds the sidecars next to it.
            gdal_path = _check_shp_on_disk(path, max_bytes)
            return SHAPEFILE, _read_ogr(
                gdal_path,
                layer=None,
                encoding=encoding,
                max_features=max_features,
                max_vertices=max_vertices,
                tmp=tmp,
            )
        size = path.stat().st_size
        if size > max_bytes:
            raise _reject(_too_big(size, max_bytes))
        data = path.read_bytes()
        name: str | None = path.name
    elif isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        name = None
    elif hasattr(source, "read"):
        # Read one byte past the limit so an oversized stream is never fully buffered.
        data = source.read(max_bytes + 1)
        if not isinstance(data, bytes):
            raise TypeError("file-like sources must be opened in binary mode")
        name = getattr(source, "filename", None) or getattr(source, "name", None)
        name = name if isinstance(name, str) else None
    else:
        raise TypeError(f"cannot read features from {type(source).__name__}")

    if not data:
        raise _reject("the file is empty")
    if len(data) > max_bytes:
        raise _reject(_too_big(len(data), max_bytes))
    detected = _detect_format(data, declared or _format_from_name(name))

    if detected == CSV:
        return CSV, _read_csv(
            data, max_features=max_features, max_vertices=max_vertices
        )
    if detected == SHAPEFILE:
        gdal_path = _extract_shapefile(data, layer=layer, max_bytes=max_bytes, tmp=tmp)
        layer = None
    elif detected == GPKG:
        gdal_path = str(tmp / "upload.gpkg")
        Path(gdal_path).write_bytes(data)
        layer = _pick_gpkg_layer(gdal_path, layer, tmp)
    else:
        _check_geojson_text(data)
        target = tmp / "upload.geojson"
        target.write_bytes(data)
        # The prefix pins the GeoJSON driver, so GDAL cannot reinterpret the upload
        # as TopoJSON, ESRI JSON or anything else that happens to be JSON.
        gdal_path = f"GeoJSON:{target}"
    return detected, _read_ogr(
        gdal_path,
        layer=layer,
        encoding=encoding,
        max_features=max_features,
        max_vertices=max_vertices,
        tmp=tmp,
    )


def _check_geojson_text(data: bytes) -> None:
    """Refuse GeoJSON text that is not UTF-8 or escapes half a surrogate pair ("\\ud800").

    GeoJSON is UTF-8 (RFC 7946), and GDAL would read half a pair as U+FFFD, storing
    a damaged name. Only these are decided here (orjson is strict about both); any
    other malformation is left for GDAL to report in its own words.
    """
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
        if "not valid UTF-8" in reason:
            raise _reject(_NOT_UTF8_GEOJSON) from None
        if "surrogate" in reason:
            raise _reject(f"not valid GeoJSON: half a surrogate pair, {reason}") from None


_NOT_UTF8_GEOJSON = ("a GeoJSON file is UTF-8 text (RFC 7946), and this one is not "
                     "(GBK?); save it as UTF-8")


def _too_big(size: int, limit: int) -> str:
    return f"the file is {size:,} bytes; the limit is {limit:,} bytes"


def _format_from_name(name: str | None) -> str | None:
    if not name:
        return None
    return _FORMAT_ALIASES.get(PurePosixPath(name).suffix.lower().lstrip("."))


def _detect_format(data: bytes, declared: str | None) -> str:
    head = data[:4096]
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise _reject(f"not a spatial file: the content is {what}")
    if head[4:8] == b"ftyp":
        raise _reject("not a spatial file: the content is an MP4/MOV video")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind = "zip"
    elif head.startswith(b"SQLite format 3\x00"):
        kind = "sqlite"
        if head[68:72] not in _GPKG_APPLICATION_IDS:
            raise _reject(
                "not a spatial file: an SQLite database that is not a GeoPackage"
            )
    elif head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        kind = "json"
    else:
        kind = "text"
    detected = _KIND_FORMATS[kind]
    if declared is not None and declared != detected:
        raise _reject(
            f"expected {_FORMAT_LABELS[declared]}, but the content looks like {_KIND_LABELS[kind]}"
        )
    return detected


def _check_shp_on_disk(path: Path, max_bytes: int) -> str:
    siblings = {
        p.suffix.lower(): p
        for p in path.parent.iterdir()
        if p.stem == path.stem and p.suffix.lower() in _SIDECARS
    }
    missing = [ext for ext in (".shx", ".dbf") if ext not in siblings]
    if missing:
        raise _reject(
            f"the shapefile is incomplete: {', '.join(path.stem + m for m in missing)} missing"
        )
    size = sum(p.stat().st_size for p in siblings.values())
    if size > max_bytes:
        raise _reject(_too_big(size, max_bytes))
    return str(path)


def _extract_shapefile(
    data: bytes, *, layer: str | None, max_bytes: int, tmp: Path
) -> str:
    """Copy one shapefile's parts out of a zip under fixed names; return the .shp path."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise _reject("not a readable zip archive (truncated or corrupt)") from None
    with archive:
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir()
            and not info.filename.startswith("__MACOSX/")
            and not PurePosixPath(info.filename).name.startswith("._")
        ]
        # Declared sizes are checked first and actual bytes again while copying,
        # because a zip bomb can lie in its headers.
        declared = sum(info.file_size for info in members)
        if declared > max_bytes:
            raise _reject(
                f"the zip expands to {declared:,} bytes; the limit is {max_bytes:,} bytes"
            )
        if any(info.flag_bits & 0x1 for info in members):
            raise _reject("the zip is password-protected")
        shps = [info for info in members if info.filename.lower().endswith(".shp")]
        if layer is not None:
            shps = [info for info in shps if PurePosixPath(info.filename).stem == layer]
        if not shps:
            names = ", ".join(info.filename for info in members[:10]) or "nothing"
            wanted = f"shapefile named {layer!r}" if layer else ".shp file"
            raise _reject(f"the zip contains no {wanted} (found: {names})")
        if len(shps) > 1:
            stems = ", ".join(PurePosixPath(info.filename).stem for info in shps)
            raise _reject(
                f"the zip contains several shapefiles ({stems}); pass layer= to pick one"
            )
        stem = shps[0].filename[:-4]
        parts = {
            info.filename[len(stem) :].lower(): info
            for info in members
            if info.filename[: len(stem)] == stem
            and info.filename[len(stem) :].lower() in _SIDECARS
        }
        missing = [ext for ext in (".shx", ".dbf") if ext not in parts]
        if missing:
            short = PurePosixPath(stem).name
            raise _reject(
                f"the shapefile is incomplete: {', '.join(short + m for m in missing)} missing from the zip"
            )
        budget = max_bytes
        for ext, info in parts.items():
            # Fixed names: no path traversal, no dependence on the zip's filename encoding.
            budget = _copy_member(archive, info, tmp / f"upload{ext}", budget)
    return str(tmp / "upload.shp")


def _copy_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: int
) -> int:
    try:
        with archive.open(info) as src, dest.open("wb") as dst:
            while chunk := src.read(1 << 20):
                budget -= len(chunk)
                if budget < 0:
                    raise _reject("the zip expands beyond the size limit")
                dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise _reject(f"the zip is corrupt ({info.filename}: {exc})") from None
    return budget


def _pick_gpkg_layer(gdal_path: str, layer: str | None, tmp: Path) -> str:
    with _gdal_messages():
        try:
            layers = pyogrio.list_layers(gdal_path)
        except pyogrio.errors.DataSourceError as exc:
            raise _reject(
                f"cannot open the GeoPackage: {_gdal_text(exc, tmp)}"
            ) from None
    spatial = [str(name) for name, geom_type in layers if geom_type is not None]
    if layer is not None:
        if layer not in spatial:
            known = ", ".join(spatial) or "none"
            raise _reject(
                f"the GeoPackage has no spatial layer {layer!r} (spatial layers: {known})"
            )
        return layer
    if not spatial:
        tables = ", ".join(str(name) for name, _ in layers) or "none"
        raise _reject(
            f"not a spatial file: the GeoPackage has no layer with geometries (tables: {tables})"
        )
    if len(spatial) > 1:
        raise _reject(
            f"the GeoPackage has several layers ({', '.join(spatial)}); pass layer= to pick one"
        )
    return spatial[0]


@contextmanager
def _gdal_messages() -> Iterator[list[str]]:
    """Collect GDAL/pyogrio warnings instead of letting them escape as Python warnings."""
    # pyogrio reports GDAL CPLE_Warning through warnings.warn from a C callback; an
    # "error" filter there turns into an unraisable exception, so record them all.
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    messages.extend(str(w.message) for w in caught)


# What GDAL quotes in its messages is the file's own content (a coordinate that is
# text, a field value, a JSON token): a camera ledger's stream URL with its password,
# say. Messages say "a value from the file" instead; the axis names GDAL quotes stay.
FILE_VALUE = "(a value from the file)"
# A quote opens after a non-word character (not the apostrophe of "can't"); one GDAL
# left open (a message cut short) runs to the end.
_GDAL_QUOTED = re.compile(r"(?<!\w)(?:'\".*\"'|'[^']*'(?!\w)|\"[^\"]*\"(?!\w)|['\"].*)", re.S)
_GDAL_OWN_WORDS = frozenset({"'x'", "'y'", "'z'", "'m'"})


def gdal_message(text: str) -> str:
    """Return a GDAL message with every value it quotes from the file replaced."""
    text = _GDAL_QUOTED.sub(
        lambda m: m.group(0) if m.group(0) in _GDAL_OWN_WORDS else FILE_VALUE, text)
    # Whatever is left unquoted still goes through the login mask (a field name, say).
    return mask_url_userinfo(text)


def _gdal_text(exc: Exception, tmp: Path) -> str:
    """Return a GDAL message without the temporary path it mentions, or what it quotes."""
    text = str(exc).replace("GeoJSON:", "")
    for part in (
        str(tmp / "upload.geojson"),
        str(tmp / "upload.gpkg"),
        str(tmp / "upload.shp"),
        str(tmp),
    ):
        text = text.replace(f"'{part}'", "the file").replace(part, "the file")
    return gdal_message(text)


def _read_ogr(
    gdal_path: str,
    *,
    layer: str | None,
    encoding: str | None,
    max_features: int,
    max_vertices: int,
    tmp: Path,
) -> _Loaded:
    kwargs: dict[str, object] = {}
    if layer is not None:
        kwargs["layer"] = layer
    if encoding:
        kwargs["encoding"] = encoding
    with _gdal_messages() as messages:
        try:
            meta, _fids, wkbs, field_data = pyogrio.raw.read(
                gdal_path, force_2d=True, max_features=max_features + 1, **kwargs
            )
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            text = _gdal_text(exc, tmp)
            if gdal_path.startswith("GeoJSON:"):
                text = f"not valid GeoJSON (truncated or malformed?): {text}"
            raise _reject(text) from None
        except UnicodeDecodeError:
            # Text attributes in another encoding than the file declares (or UTF-8).
            raise _reject(f"the attributes are not {encoding or 'UTF-8'} text; "
                          "give their encoding (a .cpg file beside a shapefile)") from None
    notes = [RowError(None, None, f"GDAL: {gdal_message(m)}") for m in messages]
    if wkbs is None or meta.get("geometry_type") is None:
        raise _reject("not a spatial file: the layer has no geometry column")
    if len(wkbs) > max_features:
        raise _reject(f"the file has more than {max_features:,} features")
    geometry_type = str(meta["geometry_type"])
    if re.search(r"\b(Z|M|ZM|25D|3D)\b", geometry_type):
        notes.append(
            RowError(
                None, "geometry", f"{geometry_type} geometries: Z/M values were dropped"
            )
        )
    if (
        gdal_path.lower().endswith(".shp")
        and not encoding
        and not Path(gdal_path).with_suffix(".cpg").exists()
    ):
        # Without a .cpg GDAL falls back to the DBF language byte or ISO-8859-1, which
        # garbles GBK names from Chinese ArcGIS exports without any error.
        notes.append(
            RowError(
                None,
                None,
                "no .cpg file: attribute encoding was guessed; pass encoding='GBK' if names are garbled",
            )
        )

    names = [str(n) for n in meta["fields"]]
    attrs = pd.DataFrame(
        dict(zip(names, field_data, strict=True)), index=pd.RangeIndex(len(wkbs))
    )
    if "geometry" in attrs.columns:
        raise _reject(
            "an attribute is named 'geometry', which clashes with the geometry column",
            "geometry",
        )

    errors: list[RowError] = []
    geoms = np.full(len(wkbs), None, dtype=object)
    keep: list[int] = []
    for i, wkb in enumerate(wkbs):
        if wkb is None:
            continue
        try:
            count = _wkb_vertex_count(wkb, max_vertices)
        except ValueError as exc:
            errors.append(RowError(i + 1, "geometry", f"unreadable geometry: {exc}"))
            continue
        if count > max_vertices:
            errors.append(
                RowError(i + 1, "geometry", f"more than {max_vertices:,} vertices")
            )
            continue
        keep.append(i)
    if keep:
        # Only geometries under the vertex cap ever reach GEOS.
        decoded = shapely.from_wkb(
            np.array([wkbs[i] for i in keep], dtype=object), on_invalid="ignore"
        )
        for i, geom in zip(keep, decoded, strict=True):
            if geom is None:
                errors.append(RowError(i + 1, "geometry", "unreadable geometry"))
            geoms[i] = geom
    return _Loaded(
        attrs=attrs, geoms=geoms, crs=meta.get("crs"), errors=errors, notes=notes
    )


_WKB_MAX_DEPTH = 32


def _wkb_vertex_count(wkb: bytes, limit: int) -> int:
    """Count the vertices in a WKB blob without decoding it, stopping once past ``limit``."""
    count, end = _wkb_walk(memoryview(wkb), 0, limit, 0)
    # Past the limit the walk stops early, so the end offset is only checked below it.
    if count <= limit and end != len(wkb):
        raise ValueError("trailing bytes after the geometry")
    return count


def _wkb_walk(buf: memoryview, offset: int, limit: int, depth: int) -> tuple[int, int]:
    if depth > _WKB_MAX_DEPTH:
        raise ValueError("geometry collections nested too deeply")
    try:
        order = "<" if buf[offset] == 1 else ">"
        (code,) = struct.unpack_from(order + "I", buf, offset + 1)
        offset += 5
        dims = 2 + bool(code & 0x80000000) + bool(code & 0x40000000)  # EWKB Z/M flags
        if code & 0x20000000:  # EWKB SRID
            offset += 4
        code &= 0x0FFFFFFF
        base, iso = code % 1000, code // 1000
        dims += {0: 0, 1: 1, 2: 1, 3: 2}.get(iso, 0)
        point = 8 * dims
        if base == 1:
            end = offset + point
            count = 1
        elif base == 2:
            (count,) = struct.unpack_from(order + "I", buf, offset)
            end = offset + 4 + count * point
        elif base == 3:
            (rings,) = struct.unpack_from(order + "I", buf, offset)
            offset += 4
            count = 0
            for _ in range(rings):
                (n,) = struct.unpack_from(order + "I", buf, offset)
                offset += 4 + n * point
                count += n
                if count > limit or offset > len(buf):
                    break
            end = offset
        elif base in (4, 5, 6, 7):
            (parts,) = struct.unpack_from(order + "I", buf, offset)
            offset += 4
            count = 0
            for _ in range(parts):
                n, offset = _wkb_walk(buf, offset, limit - count, depth + 1)
                count += n
                if count > limit:
                    break
            end = offset
        else:
            raise ValueError(f"unsupported WKB geometry type {code}")
    except (IndexError, struct.error):
        raise ValueError("truncated WKB") from None
    if count <= limit and end > len(buf):
        raise ValueError("truncated WKB")
    return count, end


# A cell starting with one of these is a formula to Excel and WPS (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _looks_like_formula(value: str) -> bool:
    head = value.lstrip("'")
    return head[:1] in FORMULA_STARTS and not _is_number(head)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def spreadsheet_safe(value: Any) -> Any:
    """Return a text cell that a spreadsheet shows as text, never runs as a formula.

    A leading apostrophe is Excel's own "this is text" mark. Values that already
    start with apostrophes before a formula character get one more, so
    ``from_spreadsheet_safe`` gives back exactly what was written.
    """
    if isinstance(value, str) and _looks_like_formula(value):
        return "'" + value
    return value


def from_spreadsheet_safe(value: Any) -> Any:
    """Undo ``spreadsheet_safe`` for a cell read back from CSV."""
    if isinstance(value, str) and value.startswith("'") and _looks_like_formula(value):
        return value[1:]
    return value


def _decode_text(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise _reject("not a text file (binary data or UTF-16); save the CSV as UTF-8")
    # Excel writes UTF-8 with a BOM or, on Chinese Windows, GBK; GB18030 is a superset of GBK.
    for codec in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    raise _reject("the CSV is neither UTF-8 nor GBK/GB18030 text")


def read_table(data: bytes, *, max_rows: int, max_bytes: int = DEFAULT_MAX_BYTES
               ) -> list[dict[str, str]]:
    """Return the rows of a CSV table without geometry (a roster, a list) as text.

    UTF-8 (with or without BOM) or GBK, comma or tab separated, as Excel saves it;
    cells keep their text exactly (codes stay zero-padded) and lose the text marks
    our exports put before formula characters. File-level problems raise
    ImportRejected.
    """
    if len(data) > max_bytes:
        raise _reject(_too_big(len(data), max_bytes))
    frame = _csv_frame(data, max_rows)
    return [{k: v.strip() for k, v in row.items()} for row in frame.to_dict("records")]


def _csv_frame(data: bytes, max_rows: int, noun: str = "rows") -> pd.DataFrame:
    text = _decode_text(data)
    first_line = text.split("\n", 1)[0]
    sep = "\t" if "\t" in first_line and "," not in first_line else ","
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            na_filter=False, nrows=max_rows + 1)
    except pd.errors.EmptyDataError:
        raise _reject("the file is empty") from None
    except pd.errors.ParserError as exc:
        raise _reject(f"malformed CSV: {exc}") from None
    header = next(csv.reader([first_line.rstrip("\r")], delimiter=sep), [])
    seen: set[str] = set()
    for name in (h.strip() for h in header):
        if name and name in seen:
            # pandas would keep both as "name" and "name.1", and the second would be
            # silently ignored: which of the two did the author mean?
            raise _reject(f"the header names column {name!r} twice")
        seen.add(name)
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) > max_rows:
        raise _reject(f"the file has more than {max_rows:,} {noun}")
    return frame.map(from_spreadsheet_safe)


def _read_csv(data: bytes, *, max_features: int, max_vertices: int) -> _Loaded:
    # Everything stays text: ledger codes such as 20-digit GB/T 28181 IDs and
    # zero-padded grid codes must not be turned into numbers.
    frame = _csv_frame(data, max_features, noun="features")
    lower = {c.lower(): c for c in frame.columns}
    wkt_col = next((lower[n] for n in WKT_COLUMNS if n in lower), None)
    xy = next(
        ((lower[a], lower[b]) for a, b in XY_COLUMN_PAIRS if a in lower and b in lower),
        None,
    )
    if wkt_col is not None:
        geoms, errors = _parse_wkt_column(frame[wkt_col], wkt_col, max_vertices)
        attrs = frame.drop(columns=[wkt_col])
    elif xy is not None:
        geoms, errors = _parse_xy_columns(frame[xy[0]], frame[xy[1]], xy)
        attrs = frame.drop(columns=list(xy))
    else:
        found = ", ".join(frame.columns) or "none"
        raise _reject(
            "not a spatial file: no coordinate columns (expected lon/lat, lng/lat, "
            f"longitude/latitude, x/y, 经度/纬度 or a WKT column; found: {found})"
        )
    return _Loaded(
        attrs=attrs.reset_index(drop=True), geoms=geoms, crs=None, errors=errors
    )


def _parse_wkt_column(
    values: pd.Series, column: str, max_vertices: int
) -> tuple[np.ndarray, list[RowError]]:
    geoms = np.full(len(values), None, dtype=object)
    errors: list[RowError] = []
    for i, raw in enumerate(values):
        text = raw.strip()
        if not text:
            continue  # reported as a missing geometry by _validate
        # Vertices are separated by commas, except where a ")," closes a ring or part;
        # counting them before GEOS parses keeps huge strings out of GEOS.
        estimate = text.count(",") + 1 - len(re.findall(r"\)\s*,", text))
        if estimate > max_vertices:
            errors.append(
                RowError(i + 1, column, f"more than {max_vertices:,} vertices")
            )
            continue
        try:
            geoms[i] = shapely.from_wkt(text, on_invalid="raise")
        except shapely.errors.GEOSException as exc:
            errors.append(RowError(i + 1, column, f"not valid WKT: {exc}"))
    return geoms, errors


def _parse_xy_columns(
    xs: pd.Series, ys: pd.Series, columns: tuple[str, str]
) -> tuple[np.ndarray, list[RowError]]:
    geoms = np.full(len(xs), None, dtype=object)
    errors: list[RowError] = []
    for i, pair in enumerate(zip(xs, ys, strict=True)):
        values: list[float] = []
        for column, raw in zip(columns, pair, strict=True):
            text = raw.strip()
            try:
                value = float(text)
            except ValueError:
                shown = text if len(text) <= 40 else text[:40] + "…"
                reason = (
                    "missing coordinate" if not text else f"{shown!r} is not a number"
                )
                errors.append(RowError(i + 1, column, reason))
                continue
            if not np.isfinite(value):
                errors.append(
                    RowError(i + 1, column, f"coordinate is not finite ({text})")
                )
                continue
            values.append(value)
        if len(values) == 2:
            geoms[i] = shapely.Point(*values)
    return geoms, errors


# --------------------------------------------------------------------------- validation


_GCJ02_NOTE = RowError(None, "crs", "coordinates were converted from GCJ-02 to WGS-84")


def _resolve_crs(
    declared: str | None, datum: Datum | None
) -> tuple[_SourceCRS, list[RowError]]:
    notes: list[RowError] = []
    if declared is None:
        if datum is None:
            raise _reject(
                "the file declares no coordinate system (a shapefile without .prj, a "
                "GeoPackage layer without SRS, or a CSV); pass datum='wgs84', "
                "'cgcs2000' or 'gcj02'",
                "crs",
            )
        if datum is Datum.GCJ02:
            return _SourceCRS(
                "GCJ-02", geographic=True, declared=False, convert=_gcj02_to_wgs84_xy
            ), [_GCJ02_NOTE]
        epsg = EPSG_BY_DATUM[datum]
        convert = None if epsg == 4326 else _pyproj_xy(epsg)
        if convert is not None:
            label = f"EPSG:{epsg}"
            notes.append(RowError(
                None, "crs", f"coordinates were transformed from {label} to EPSG:4326"))
        return _SourceCRS(
            f"EPSG:{epsg}", geographic=True, declared=False, convert=convert
        ), notes

    try:
        crs = CRS.from_user_input(declared)
    except CRSError:
        raise _reject("the file's coordinate system is not recognised", "crs") from None
    crs = crs.to_2d()
    epsg = crs.to_epsg(min_confidence=70)
    is_crs84 = crs.equals(CRS.from_epsg(4326), ignore_axis_order=True)
    label = f"EPSG:{epsg} ({crs.name})" if epsg else crs.name
    if not (crs.is_geographic or crs.is_projected):
        raise _reject(
            f"{label} is not a 2-D geographic or projected coordinate system", "crs"
        )
    if not crs.datum.name.startswith(_ACCEPTED_DATUM_PREFIXES):
        raise _reject(
            f"{label} uses the {crs.datum.name} datum; only WGS 84 and CGCS2000 based "
            "coordinate systems are accepted (there is no accurate public transformation "
            "from other Chinese datums to WGS 84); convert the file to CGCS2000 first",
            "crs",
        )
    if epsg is None and not is_crs84:
        raise _reject(
            f"the coordinate system {crs.name!r} has no EPSG code; re-export it with one",
            "crs",
        )

    if datum is Datum.GCJ02:
        if not crs.is_geographic:
            raise _reject(
                f"the file declares {label}, but GCJ-02 data must be longitude/latitude "
                "declared as EPSG:4326 or not declared at all",
                "crs",
            )
        return _SourceCRS(
            "GCJ-02", geographic=True, declared=True, convert=_gcj02_to_wgs84_xy
        ), [*notes, _GCJ02_NOTE]
    if datum is not None and epsg != EPSG_BY_DATUM[datum] and not is_crs84:
        notes.append(
            RowError(
                None,
                "crs",
                f"the file declares {label}; it was used instead of datum={datum.value!r}",
            )
        )
    if is_crs84 or epsg == 4326:
        return _SourceCRS("EPSG:4326", geographic=True, declared=True), notes
    if crs.is_projected:
        notes.append(
            RowError(
                None, "crs", f"coordinates were transformed from {label} to EPSG:4326"
            )
        )
    hint = ""
    if "Gauss-Kruger zone" in crs.name:
        hint = " (zone CRSs expect the zone number in front of the easting; the 'CM' variants do not)"
    return _SourceCRS(
        label,
        geographic=crs.is_geographic,
        declared=True,
        convert=_pyproj_xy(crs),
        hint=hint,
    ), notes


def _pyproj_xy(crs: CRS | int) -> Callable[[np.ndarray], np.ndarray]:
    # always_xy: GDAL hands us x=longitude/easting whatever the CRS's official axis order.
    # CGCS2000 -> WGS 84 is PROJ's null "ballpark" shift, which is right to a few cm.
    transformer = Transformer.from_crs(crs, 4326, always_xy=True)

    def convert(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return convert


def _gcj02_to_wgs84_xy(xy: np.ndarray) -> np.ndarray:
    lons, lats = gcj02_to_wgs84_arrays(xy[:, 0], xy[:, 1])
    return np.column_stack([lons, lats])


def _wgs84_to_gcj02_xy(xy: np.ndarray) -> np.ndarray:
    lons, lats = wgs84_to_gcj02_arrays(xy[:, 0], xy[:, 1])
    return np.column_stack([lons, lats])


def _fmt_xy(x: float, y: float) -> str:
    return f"({_num(x)}, {_num(y)})"


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _fmt_bounds(b: np.ndarray) -> str:
    if b[0] == b[2] and b[1] == b[3]:
        return f"at {_fmt_xy(b[0], b[1])}"
    return f"within {_fmt_xy(b[0], b[1])}-{_fmt_xy(b[2], b[3])}"


def _bbox_in_china(bounds: np.ndarray) -> bool:
    # The China box is a rectangle, so a geometry is inside it iff both corners are.
    minx, miny, maxx, maxy = bounds
    return in_china(minx, miny) and in_china(maxx, maxy)


class _RowChecker:
    """Geometries under validation: which rows are still good, and what failed."""

    def __init__(self, geoms: np.ndarray, errors: list[RowError]):
        self.geoms = np.array(geoms, dtype=object)
        self.errors = errors
        self.ok = np.array([g is not None for g in self.geoms], dtype=bool)

    def good(self) -> np.ndarray:
        """Return the geometries with None in place of rows already rejected."""
        return np.where(self.ok, self.geoms, None)

    def fail(self, mask: np.ndarray, reason: Callable[[int], str]) -> int:
        """Reject the still-good rows in ``mask``; return how many there were."""
        rows = np.flatnonzero(self.ok & mask)
        self.errors.extend(
            RowError(int(i) + 1, "geometry", reason(int(i))) for i in rows
        )
        self.ok[mask] = False
        return len(rows)


def _check_shapes(
    rows: _RowChecker, wanted: set[str] | None, max_vertices: int
) -> None:
    """Reject rows whose geometry is missing, empty, too big, non-finite or of the wrong type."""
    reported = {e.row for e in rows.errors}
    rows.errors.extend(
        RowError(int(i) + 1, "geometry", "missing geometry")
        for i in np.flatnonzero(~rows.ok)
        if i + 1 not in reported
    )
    rows.fail(shapely.is_empty(rows.good()), lambda i: "empty geometry")
    counts = shapely.get_num_coordinates(rows.good())
    limit = f"the limit is {max_vertices:,}"
    rows.fail(counts > max_vertices, lambda i: f"{counts[i]:,} vertices; {limit}")
    coords, index = shapely.get_coordinates(rows.good(), return_index=True)
    nonfinite = np.zeros(len(rows.geoms), dtype=bool)
    nonfinite[index[~np.isfinite(coords).all(axis=1)]] = True
    rows.fail(nonfinite, lambda i: "coordinates contain NaN or infinity")
    if wanted is not None:
        names = np.array([g.geom_type if g is not None else "" for g in rows.geoms])
        expected = ", ".join(sorted(wanted))
        rows.fail(
            ~np.isin(names, sorted(wanted)),
            lambda i: f"geometry type is {names[i]}; expected {expected}",
        )


def _check_position(rows: _RowChecker, source: _SourceCRS) -> None:
    """Convert good rows to WGS-84 and reject those that cannot lie in China."""
    candidates = int(rows.ok.sum())
    misplaced = 0
    bounds = shapely.bounds(rows.good())

    def swapped(i: int) -> str:
        b = bounds[i]
        if source.geographic and in_china(b[1], b[0]) and in_china(b[3], b[2]):
            return " (longitude and latitude look swapped)"
        return ""

    if source.geographic:
        lon, lat = bounds[:, [0, 2]], bounds[:, [1, 3]]
        not_degrees = (np.abs(lon) > 180).any(axis=1) | (np.abs(lat) > 90).any(axis=1)
        misplaced += rows.fail(
            not_degrees,
            lambda i: (
                f"coordinates such as {_fmt_xy(bounds[i, 0], bounds[i, 1])} are "
                f"not longitude/latitude degrees in {source.label}{swapped(i)}"
            ),
        )
    if source.convert is not None and rows.ok.any():
        rows.geoms[rows.ok] = shapely.transform(rows.geoms[rows.ok], source.convert)
        coords, index = shapely.get_coordinates(rows.good(), return_index=True)
        lost = np.zeros(len(rows.geoms), dtype=bool)
        lost[index[~np.isfinite(coords).all(axis=1)]] = True
        misplaced += rows.fail(
            lost,
            lambda i: (
                f"cannot be converted from {source.label} (outside its valid area)"
            ),
        )
    wgs = shapely.bounds(rows.good())
    outside = np.array(
        [
            bool(ok) and not _bbox_in_china(b)
            for ok, b in zip(rows.ok, wgs, strict=True)
        ],
        dtype=bool,
    )
    misplaced += rows.fail(
        outside,
        lambda i: (
            f"lies outside China: WGS-84 coordinates {_fmt_bounds(wgs[i])}{swapped(i)}"
        ),
    )
    if candidates and misplaced == candidates:
        what = (
            f"the declared {source.label}"
            if source.declared
            else f"datum {source.label}"
        )
        rows.errors.append(
            RowError(
                None,
                "crs",
                f"no feature lies in China when read with {what}; "
                f"the coordinate system is probably wrong{source.hint}",
            )
        )


def _rename_columns(loaded: _Loaded, aliases: Mapping[str, str]) -> _Loaded:
    """Return the rows with aliased headers renamed; two headers for one name reject the file."""
    wanted = {key.strip().casefold(): name for key, name in aliases.items()}
    wanted.update({name.strip().casefold(): name for name in aliases.values()})
    renamed: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    for column in loaded.attrs.columns:
        name = wanted.get(str(column).strip().casefold())
        if name is not None:
            renamed[column] = name
            sources.setdefault(name, []).append(str(column))
    clashes = [RowError(None, name, f"columns {', '.join(cols[:-1])} and {cols[-1]} both give {name}")
               for name, cols in sources.items() if len(cols) > 1]
    if clashes:
        raise ImportRejected(clashes)
    return dataclasses.replace(loaded, attrs=loaded.attrs.rename(columns=renamed))


def _validate(
    loaded: _Loaded,
    *,
    fmt: str,
    datum: Datum | None,
    wanted: set[str] | None,
    required: tuple[str, ...],
    max_vertices: int,
) -> ImportResult:
    if len(loaded.geoms) == 0:
        raise _reject("the file contains no features")
    missing_columns = [
        RowError(None, col, "required column is missing")
        for col in required
        if col not in loaded.attrs.columns
    ]
    if missing_columns:
        raise ImportRejected(missing_columns + loaded.errors)
    source, crs_notes = _resolve_crs(loaded.crs, datum)

    rows = _RowChecker(loaded.geoms, list(loaded.errors))
    _check_shapes(rows, wanted, max_vertices)
    _check_position(rows, source)
    # Validity is judged on the WGS-84 geometry, which is what gets stored.
    valid = shapely.is_valid(rows.good())
    rows.fail(
        ~valid, lambda i: f"invalid geometry: {shapely.is_valid_reason(rows.geoms[i])}"
    )
    for col in required:
        values = loaded.attrs[col]
        blank = (
            values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
        )
        rows.errors.extend(
            RowError(int(i) + 1, col, "required value is missing")
            for i in np.flatnonzero(blank)
        )

    if rows.errors:
        rows.errors.sort(key=lambda e: -1 if e.row is None else e.row)
        raise ImportRejected(rows.errors)
    frame = gpd.GeoDataFrame(
        loaded.attrs.reset_index(drop=True),
        geometry=gpd.GeoSeries(list(rows.geoms), crs="EPSG:4326"),
    )
    notes = crs_notes + loaded.notes
    return ImportResult(frame=frame, fmt=fmt, source_crs=source.label, warnings=notes)


# --------------------------------------------------------------------------- writing


def write_features(
    frame: gpd.GeoDataFrame,
    fmt: str,
    *,
    datum: str | Datum = "wgs84",
    layer: str = "features",
    path: str | os.PathLike[str] | None = None,
    csv_geometry: str | None = None,
    csv_xy_names: tuple[str, str] = ("lon", "lat"),
) -> bytes:
    """Serialise a GeoDataFrame as GeoJSON, zipped Shapefile, GeoPackage or CSV bytes.

    A CSV of points gets its coordinates in two columns, ``csv_xy_names``
    (longitude, latitude; e.g. 经度, 纬度 for a Chinese ledger).
    """
    fmt = normalise_format(fmt)
    target = parse_datum(datum)
    if not isinstance(frame, gpd.GeoDataFrame):
        raise ExportError("write_features needs a GeoDataFrame")
    if frame.crs is None:
        raise ExportError("the frame has no CRS; set it to EPSG:4326")
    if not re.fullmatch(r"[\w\-]{1,63}", layer):
        raise ExportError("layer names may contain only letters, digits, '_' and '-'")
    if frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    geoms = np.asarray(frame.geometry.array, dtype=object)
    if target is Datum.GCJ02:
        present = np.array([g is not None for g in geoms], dtype=bool)
        geoms = geoms.copy()
        geoms[present] = shapely.transform(geoms[present], _wgs84_to_gcj02_xy)
        # GCJ-02 has no EPSG code. Leaving the CRS out (no .prj, undefined SRS) makes
        # our own importer demand datum='gcj02' instead of silently reading it as WGS-84.
        crs = None
    else:
        # CGCS2000 and WGS-84 agree to centimetres (see geodata.coords): relabel only.
        crs = f"EPSG:{EPSG_BY_DATUM[target]}"
    attrs = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    if "geometry" in attrs.columns:
        raise ExportError(
            "an attribute is named 'geometry', which clashes with the geometry column"
        )
    out = gpd.GeoDataFrame(
        attrs, geometry=gpd.GeoSeries(list(geoms), index=attrs.index, crs=crs)
    )

    if fmt == CSV:
        data = _csv_bytes(out, csv_geometry, csv_xy_names)
    else:
        with tempfile.TemporaryDirectory(prefix="gridmap-export-") as tmp:
            data = _ogr_bytes(out, fmt, layer, Path(tmp))
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _ogr_bytes(out: gpd.GeoDataFrame, fmt: str, layer: str, tmp: Path) -> bytes:
    if fmt == SHAPEFILE:
        _check_shapefile_frame(out)
        # DBF has no date-time type; GDAL would store text anyway, with a warning.
        for column in out.columns.drop(out.geometry.name):
            if pd.api.types.is_datetime64_any_dtype(out[column]):
                out[column] = [
                    v.isoformat() if pd.notna(v) else None for v in out[column]
                ]
        target = tmp / f"{layer}.shp"
        options: dict[str, object] = {"driver": "ESRI Shapefile", "encoding": "UTF-8"}
    elif fmt == GPKG:
        target = tmp / f"{layer}.gpkg"
        options = {"driver": "GPKG", "layer": layer}
    else:
        target = tmp / f"{layer}.geojson"
        options = {"driver": "GeoJSON", "layer": layer}
    with _gdal_messages() as messages:
        try:
            pyogrio.write_dataframe(out, target, **options)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise ExportError(f"cannot write {fmt}: {exc}") from None
    problems = [
        m for m in messages if not ("'crs' was not provided" in m and out.crs is None)
    ]
    if problems:
        # Any GDAL warning on write means something was altered or lost; refuse.
        raise ExportError(f"cannot write {fmt} faithfully: {'; '.join(problems)}")
    if fmt != SHAPEFILE:
        return target.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for part in sorted(tmp.iterdir()):
            if part.stem == layer and part.suffix.lower() in _SIDECARS:
                archive.write(part, part.name)
    return buffer.getvalue()


_SHAPEFILE_FAMILIES = {
    "Point": "points",
    "MultiPoint": "points",
    "LineString": "lines",
    "MultiLineString": "lines",
    "Polygon": "polygons",
    "MultiPolygon": "polygons",
}


def _check_shapefile_frame(out: gpd.GeoDataFrame) -> None:
    too_long = [
        c
        for c in out.columns
        if c != out.geometry.name and len(str(c).encode()) > SHAPEFILE_MAX_FIELD_BYTES
    ]
    if too_long:
        raise ExportError(
            f"shapefile field names are limited to {SHAPEFILE_MAX_FIELD_BYTES} bytes (a Chinese "
            f"character takes 3): rename {', '.join(map(repr, too_long))} or export a GeoPackage"
        )
    families = {_SHAPEFILE_FAMILIES.get(t, t) for t in out.geometry.dropna().geom_type}
    if len(families) > 1 or not families <= set(_SHAPEFILE_FAMILIES.values()):
        raise ExportError(
            f"a shapefile holds one kind of geometry (points, lines or polygons), but the frame has "
            f"{', '.join(sorted(families))}; "
            "export a GeoPackage or GeoJSON instead"
        )


def _csv_bytes(out: gpd.GeoDataFrame, csv_geometry: str | None,
               xy_names: tuple[str, str] = ("lon", "lat")) -> bytes:
    geoms = np.asarray(out.geometry.array, dtype=object)
    attrs = pd.DataFrame(out.drop(columns=out.geometry.name))
    all_points = bool(len(geoms)) and all(
        g is not None and g.geom_type == "Point" and not g.is_empty for g in geoms
    )
    mode = csv_geometry or ("xy" if all_points else "wkt")
    if mode == "xy":
        if not all_points:
            raise ExportError(
                "lon/lat CSV columns need every geometry to be a non-empty Point; use csv_geometry='wkt'"
            )
        new = {xy_names[0]: shapely.get_x(geoms), xy_names[1]: shapely.get_y(geoms)}
    elif mode == "wkt":
        new = {"wkt": shapely.to_wkt(geoms, rounding_precision=-1)}
    else:
        raise ValueError("csv_geometry must be 'xy', 'wkt' or None")
    clash = [c for c in new if c.lower() in {str(a).lower() for a in attrs.columns}]
    if clash:
        raise ExportError(
            f"attribute columns {clash} clash with the CSV geometry columns"
        )
    table = attrs.assign(**new).map(spreadsheet_safe)
    # UTF-8 with a BOM: Excel on Chinese Windows otherwise opens it as GBK and garbles names.
    return table.to_csv(index=False, lineterminator="\n").encode("utf-8-sig")


__all__ = [
    "CSV",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FEATURES",
    "DEFAULT_MAX_VERTICES",
    "FORMATS",
    "GEOJSON",
    "GPKG",
    "SHAPEFILE",
    "ExportError",
    "ImportRejected",
    "ImportResult",
    "RowError",
    "normalise_format",
    "read_features",
    "write_features",
]
