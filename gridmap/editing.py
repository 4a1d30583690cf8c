"""Edit a grid coverage: redraw, split, merge, move a shared edge, reassign; validate.

Pure shapely: no database, no Flask. Every operation takes the grids of a
neighbourhood (code → Polygon/MultiPolygon, WGS-84 degrees) and returns an
:class:`EditResult` with the new geometries; the caller persists it.

How edits stay a valid coverage
    An edit nodes the boundaries of the grids it may change together with the new
    linework (the drawn boundary, the split line, the new edge) in one GEOS noding,
    polygonizes that into faces and hands every face to exactly one owner. Faces
    share their edges vertex for vertex, so the per-owner unions tile the same area
    as before and match each other exactly. Where the new linework meets the outer
    boundary of the changed grids, the new nodes are inserted into the untouched
    neighbours too ("conforming"), so every shared edge keeps identical vertices,
    which is what ``shapely.coverage_is_valid`` demands. Every result is validated
    before it is returned; nothing invalid is ever handed to the caller.

The community rule
    A grid always lies within its own community (village/community, the first 12
    digits of its code). Redraws, splits, merges and edge moves may only move area
    between grids of one community; an edit that would move area across a
    community boundary is refused. Moving a whole grid to another community is
    :func:`reassign`: it moves the community boundary with it (both communities are
    re-derived as the union of their grids), keeps the grid's shape, gives it a new
    code under the new community, and is only allowed between adjacent communities
    of the same town/street (a town boundary never moves by a grid edit).

Conventions
    Tolerances are in square metres, converted with a local factor for the
    district's latitude (about 35.5°N): faces smaller than :data:`MIN_FACE_M2` are
    numerical slivers and keep their old owner.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import (
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
    mapping,
)
from shapely.geometry.base import BaseGeometry

from gridmap.errors import Conflict, InvalidInput

Polygonal = Polygon | MultiPolygon
Grids = Mapping[str, BaseGeometry]

SRID = 4326
# A drawn or uploaded geometry with more vertices than this is refused before any
# GEOS call: a grid has a few dozen vertices, the whole district boundary ~560.
MAX_VERTICES = 20_000
MAX_SPLIT_PARTS = 8
# Square metres per square degree near 35.5°N (111,320 m × cos 35.5° by 110,950 m).
M2_PER_DEG2 = 111_320.0 * math.cos(math.radians(35.5)) * 110_950.0
MIN_FACE_M2 = 1.0  # faces below this are numerical slivers, not intended changes
MIN_GRID_M2 = 100.0  # no edit may leave a grid smaller than this
COVERAGE_TOLERANCE_M2 = 1.0  # gaps/overlaps below this are rounding, not errors
SNAP_DEG = 1e-6  # ≈ 0.1 m: drawn vertices this close to existing ones are the same
CONFORM_DEG = 1e-9  # ≈ 0.1 mm: a new node this close to a neighbour's edge lies on it
EDGE_END_DEG = 2e-5  # ≈ 2 m: a moved edge must start and end at the old edge's ends
CODE_LENGTH = 15
COMMUNITY_LENGTH = 12
TOWN_LENGTH = 9


class InvalidGeometry(InvalidInput):
    """A submitted geometry is malformed, invalid, too large or out of the district."""


class EditRefused(InvalidInput):
    """The edit is well-formed but breaks an editing rule (community, adjacency, ...)."""


class CoverageBroken(InvalidInput):
    """The edit would leave gaps, overlaps or invalid grids in the coverage."""


class GridEditConflict(Conflict):
    """The grid changed since the editor loaded it (stale version)."""


@dataclass(frozen=True)
class NewGrid:
    """A grid an edit creates; its code is assigned when it is stored."""

    community: str
    geom: MultiPolygon
    source: str  # the grid it was cut from: name, kind and team follow from it


@dataclass(frozen=True)
class EditResult:
    """What an edit changes; every geometry is a MultiPolygon in WGS-84."""

    kind: str
    changed: dict[str, MultiPolygon] = field(default_factory=dict)
    created: tuple[NewGrid, ...] = ()
    retired: dict[str, str] = field(default_factory=dict)  # code → absorbing grid
    moved: dict[str, str] = field(default_factory=dict)  # code → new community code
    communities: dict[str, MultiPolygon] = field(default_factory=dict)
    # Grids whose vertices were only conformed (no area moved): stored, not re-derived.
    conformed: frozenset[str] = frozenset()

    def touched(self) -> set[str]:
        """Return every existing code the result writes, retires or moves."""
        return set(self.changed) | set(self.retired) | set(self.moved)


@dataclass(frozen=True)
class Problem:
    """One coverage defect with the geometry that shows it."""

    kind: str  # invalid | overlap | gap | outside | edge
    geom: BaseGeometry
    codes: tuple[str, ...] = ()
    detail: str = ""

    def feature(self) -> dict[str, Any]:
        """Return the problem as a GeoJSON Feature."""
        return {
            "type": "Feature",
            "geometry": mapping(self.geom),
            "properties": {
                "problem": self.kind,
                "codes": list(self.codes),
                "detail": self.detail,
                "area_m2": round(area_m2(self.geom), 2),
            },
        }


# --------------------------------------------------------------------------- helpers


def area_m2(geom: BaseGeometry) -> float:
    """Return the approximate area of a WGS-84 geometry in square metres."""
    return float(shapely.area(geom)) * M2_PER_DEG2


def community_of(code: str) -> str:
    """Return the community code of a grid code (codes nest)."""
    return code[:COMMUNITY_LENGTH]


def as_multi(geom: BaseGeometry) -> MultiPolygon:
    """Return the polygonal parts of ``geom`` as a MultiPolygon."""
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and not p.is_empty]
    nested = [p for g in parts for p in (g.geoms if isinstance(g, MultiPolygon) else [g])]
    return MultiPolygon(nested)


def _offending(problems: Sequence[Problem]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [p.feature() for p in problems]}


def _n_parts(geom: BaseGeometry) -> int:
    return len(as_multi(geom).geoms)


# --------------------------------------------------------------------------- input parsing


def check_srid(srid: Any) -> None:
    """Refuse any spatial reference other than WGS-84 (EPSG:4326)."""
    if srid is None:
        return
    text = str(srid).strip().upper()
    if text in ("4326", "EPSG:4326", "CRS84", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84"):
        return
    if text.startswith("URN:OGC:DEF:CRS:EPSG:") and text.rsplit(":", 1)[-1] == "4326":
        return
    raise InvalidGeometry(
        f"geometries must be WGS-84 longitude/latitude (EPSG:4326), not {str(srid)[:40]}",
        srid=str(srid)[:40],
    )


def _geometry_object(obj: Any) -> dict[str, Any]:
    """Unwrap a Feature and check the legacy GeoJSON ``crs`` member."""
    if not isinstance(obj, Mapping):
        raise InvalidGeometry("the geometry must be a GeoJSON object")
    if obj.get("type") == "Feature":
        if "crs" in obj:
            _check_crs_member(obj["crs"])
        obj = obj.get("geometry")
        if not isinstance(obj, Mapping):
            raise InvalidGeometry("the feature has no geometry")
    if "crs" in obj:
        _check_crs_member(obj["crs"])
    return dict(obj)


def _check_crs_member(crs: Any) -> None:
    name = crs.get("properties", {}).get("name") if isinstance(crs, Mapping) else crs
    check_srid(name)


class _VertexBudget:
    """Counts positions while walking nested coordinates; stops at the cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.cap:
            raise InvalidGeometry(
                f"the geometry has more than {self.cap:,} vertices", max_vertices=self.cap
            )


def _position(pos: Any, where: str, bounds: tuple[float, float, float, float] | None) -> tuple[float, float]:
    if not isinstance(pos, list | tuple) or len(pos) not in (2, 3):
        raise InvalidGeometry(f"{where}: a position is [longitude, latitude]")
    x, y = pos[0], pos[1]
    for v in (x, y):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InvalidGeometry(f"{where}: coordinates must be numbers")
        if not math.isfinite(v):
            raise InvalidGeometry(f"{where}: coordinates must be finite (no NaN or Infinity)")
    if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
        raise InvalidGeometry(
            f"{where}: ({x}, {y}) is not longitude/latitude; send WGS-84 degrees (EPSG:4326)",
            srid_hint="EPSG:4326",
        )
    if bounds is not None:
        west, south, east, north = bounds
        if not (west <= x <= east and south <= y <= north):
            raise InvalidGeometry(
                f"{where}: ({x}, {y}) lies outside the district",
                offending={"type": "Point", "coordinates": [x, y]},
            )
    return float(x), float(y)


def _ring(ring: Any, where: str, budget: _VertexBudget, bounds) -> list[tuple[float, float]]:
    if not isinstance(ring, list | tuple):
        raise InvalidGeometry(f"{where}: a ring is a list of positions")
    budget.take(len(ring))
    if len(ring) < 4:
        raise InvalidGeometry(f"{where}: a ring needs at least 4 positions (first = last)")
    pts = [_position(p, where, bounds) for p in ring]
    if pts[0] != pts[-1]:
        raise InvalidGeometry(f"{where}: the ring is not closed (first position ≠ last)")
    if len(set(pts)) < 3:
        raise InvalidGeometry(f"{where}: the ring has fewer than 3 distinct positions")
    return pts


def _polygon_rings(coords: Any, where: str, budget: _VertexBudget, bounds) -> list[list[tuple[float, float]]]:
    if not isinstance(coords, list | tuple) or not coords:
        raise InvalidGeometry(f"{where}: a polygon needs at least an outer ring")
    return [_ring(r, f"{where} ring {i + 1}", budget, bounds) for i, r in enumerate(coords)]


def _explain_invalid(geom: BaseGeometry) -> InvalidGeometry:
    reason = shapely.is_valid_reason(geom)
    details: dict[str, Any] = {"validity": reason}
    # GEOS reports "Self-intersection[x y]": show that spot on the map.
    if "[" in reason and reason.endswith("]"):
        try:
            x, y = (float(v) for v in reason[reason.index("[") + 1 : -1].split()[:2])
            details["offending"] = {"type": "Point", "coordinates": [x, y]}
        except ValueError:
            pass
    text = reason.split("[")[0].strip().lower() or "invalid geometry"
    return InvalidGeometry(f"the geometry is invalid: {text}", **details)


def parse_polygon(
    obj: Any,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    max_vertices: int = MAX_VERTICES,
) -> MultiPolygon:
    """Check a GeoJSON (Multi)Polygon before GEOS sees it; return a valid MultiPolygon."""
    geom = _geometry_object(obj)
    kind = geom.get("type")
    budget = _VertexBudget(max_vertices)
    if kind == "GeometryCollection":
        members = geom.get("geometries")
        if not members:
            raise InvalidGeometry("the geometry collection is empty")
        if len(members) != 1:
            raise InvalidGeometry("send one Polygon or MultiPolygon, not a collection")
        return parse_polygon(members[0], bounds=bounds, max_vertices=max_vertices)
    coords = geom.get("coordinates")
    if kind == "Polygon":
        polys = [_polygon_rings(coords, "polygon", budget, bounds)]
    elif kind == "MultiPolygon":
        if not isinstance(coords, list | tuple) or not coords:
            raise InvalidGeometry("the multipolygon is empty")
        polys = [_polygon_rings(p, f"part {i + 1}", budget, bounds) for i, p in enumerate(coords)]
    else:
        raise InvalidGeometry(f"expected a Polygon or MultiPolygon, got {str(kind)[:30]}")
    # Only now, with every position checked and the size bounded, does GEOS see it.
    result = MultiPolygon([Polygon(rings[0], rings[1:]) for rings in polys])
    if not result.is_valid:
        raise _explain_invalid(result)
    if result.is_empty or result.area == 0:
        raise InvalidGeometry("the geometry has no area")
    return result


def parse_line(
    obj: Any,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    max_vertices: int = MAX_VERTICES,
) -> LineString:
    """Check a GeoJSON LineString (split line, new edge); return it."""
    geom = _geometry_object(obj)
    if geom.get("type") != "LineString":
        raise InvalidGeometry(f"expected a LineString, got {str(geom.get('type'))[:30]}")
    coords = geom.get("coordinates")
    if not isinstance(coords, list | tuple):
        raise InvalidGeometry("a line is a list of positions")
    _VertexBudget(max_vertices).take(len(coords))
    if len(coords) < 2:
        raise InvalidGeometry("a line needs at least 2 positions")
    pts = [_position(p, "line", bounds) for p in coords]
    line = LineString(pts)
    if line.length == 0:
        raise InvalidGeometry("the line has no length")
    if not line.is_simple:
        raise InvalidGeometry("the line crosses itself")
    return line


def check_polygonal(geom: BaseGeometry, max_vertices: int = MAX_VERTICES) -> MultiPolygon:
    """Check an already-built geometry the way :func:`parse_polygon` checks GeoJSON."""
    if geom is None or geom.is_empty:
        raise InvalidGeometry("the geometry is empty")
    if not isinstance(geom, Polygon | MultiPolygon):
        raise InvalidGeometry(f"expected a Polygon or MultiPolygon, got {geom.geom_type}")
    if shapely.get_num_coordinates(geom) > max_vertices:
        raise InvalidGeometry(f"the geometry has more than {max_vertices:,} vertices")
    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise InvalidGeometry("coordinates must be finite (no NaN or Infinity)")
    if not geom.is_valid:
        raise _explain_invalid(geom)
    return as_multi(geom)


# --------------------------------------------------------------------------- coverage checks


@dataclass(frozen=True)
class CoverageReport:
    """The result of :func:`validate_coverage`."""

    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Return whether the coverage has no problem."""
        return not self.problems

    def offending(self) -> dict[str, Any]:
        """Return the problems as a GeoJSON FeatureCollection."""
        return _offending(self.problems)


def validate_coverage(
    grids: Grids,
    district: BaseGeometry | None,
    *,
    tolerance_m2: float = COVERAGE_TOLERANCE_M2,
    edges: bool = True,
) -> CoverageReport:
    """Check every grid is valid, none overlap, no gaps, and the union is the district.

    With ``district=None`` only validity, overlaps and matching edges are checked
    (a neighbourhood, not the whole district). ``edges`` also reports shared edges
    whose vertices do not match (GEOS coverage rules), even without any area error.
    """
    problems: list[Problem] = []
    codes = list(grids)
    geoms: list[BaseGeometry] = []
    good: list[str] = []
    for code in codes:
        g = grids[code]
        if g is None or g.is_empty:
            problems.append(Problem("invalid", Point(), (code,), "empty geometry"))
        elif not g.is_valid:
            problems.append(Problem("invalid", g, (code,), shapely.is_valid_reason(g)))
        else:
            geoms.append(g)
            good.append(code)
    arr = np.array(geoms, dtype=object)
    valid_cov = bool(shapely.coverage_is_valid(arr)) if len(arr) else True
    if not valid_cov:
        tree = shapely.STRtree(arr)
        left, right = tree.query(arr, predicate="intersects")
        for i, j in zip(left, right, strict=True):
            if i >= j:
                continue
            overlap = shapely.intersection(arr[i], arr[j])
            if area_m2(overlap) > tolerance_m2:
                problems.append(
                    Problem("overlap", as_multi(overlap), (good[i], good[j]), "grids overlap")
                )
        if edges:
            invalid = shapely.coverage_invalid_edges(arr)
            for code, edge in zip(good, invalid, strict=True):
                if edge is not None and not edge.is_empty:
                    problems.append(
                        Problem("edge", edge, (code,), "edge does not match its neighbour")
                    )
    if district is not None and len(arr):
        union = shapely.coverage_union_all(arr) if valid_cov else shapely.union_all(arr)
        gaps = shapely.difference(district, union)
        if area_m2(gaps) > tolerance_m2:
            problems.append(Problem("gap", as_multi(gaps), (), "area covered by no grid"))
        outside = shapely.difference(union, district)
        if area_m2(outside) > tolerance_m2:
            problems.append(Problem("outside", as_multi(outside), (), "grid area outside the district"))
    return CoverageReport(tuple(problems))


def check_coverage(grids: Grids, district: BaseGeometry | None, **kwargs: Any) -> None:
    """Raise :class:`CoverageBroken` with the offending geometries unless the coverage is valid."""
    report = validate_coverage(grids, district, **kwargs)
    if not report.ok:
        kinds = sorted({p.kind for p in report.problems})
        raise CoverageBroken(
            f"the grids would not form a valid coverage ({', '.join(kinds)})",
            offending=report.offending(),
        )


# --------------------------------------------------------------------------- engine


@dataclass
class _Faces:
    """Faces of a noded neighbourhood with their old owners."""

    polys: np.ndarray  # Polygons
    owner: list[str | None]  # old owner (None: outside the grids given)
    area: np.ndarray  # m²

    def where(self, geom: BaseGeometry) -> np.ndarray:
        """Return which faces lie inside ``geom`` (faces are noded against its boundary)."""
        # By area, not by an interior point: GEOS may return a boundary vertex as the
        # "interior" point of a thin sliver, and a face is wholly in or out anyway.
        shapely.prepare(geom)
        hit = shapely.intersects(geom, self.polys)
        inside = np.zeros(len(self.polys), dtype=bool)
        if hit.any():
            common = shapely.area(shapely.intersection(self.polys[hit], geom)) * M2_PER_DEG2
            inside[hit] = common > 0.5 * self.area[hit]
        return inside


def _faces(region: Grids, lines: Sequence[BaseGeometry]) -> _Faces:
    """Node the region's boundaries with ``lines`` and polygonize them into faces."""
    codes = list(region)
    geoms = np.array([region[c] for c in codes], dtype=object)
    linework = shapely.union_all(np.concatenate([shapely.boundary(geoms), np.array(lines, dtype=object)]))
    polys = np.array(shapely.get_parts(shapely.polygonize(shapely.get_parts(linework))), dtype=object)
    area = shapely.area(polys) * M2_PER_DEG2
    owner: list[str | None] = [None] * len(polys)
    if len(polys):
        tree = shapely.STRtree(geoms)
        pi, gi = tree.query(polys, predicate="intersects")
        common = shapely.area(shapely.intersection(polys[pi], geoms[gi])) * M2_PER_DEG2
        best = np.zeros(len(polys))
        for p, g, a in zip(pi, gi, common, strict=True):
            # Each face lies in exactly one old grid; the others only touch it.
            if a > best[p] and a > 0.5 * area[p]:
                best[p] = a
                owner[p] = codes[g]
    return _Faces(polys, owner, area)


def _components(faces: _Faces, idx: Sequence[int]) -> list[list[int]]:
    """Group faces into connected components (sharing an edge, not just a point)."""
    idx = list(idx)
    if not idx:
        return []
    polys = faces.polys[idx]
    tree = shapely.STRtree(polys)
    a, b = tree.query(polys, predicate="touches")
    parent = list(range(len(idx)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(a, b, strict=True):
        if i < j and shapely.intersection(polys[i].boundary, polys[j].boundary).length > 0:
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for k in range(len(idx)):
        groups.setdefault(find(k), []).append(idx[k])
    return list(groups.values())


def _union_faces(faces: _Faces, idx: Sequence[int]) -> MultiPolygon:
    return as_multi(shapely.coverage_union_all(faces.polys[list(idx)]))


def _shared_length(a: BaseGeometry, b: BaseGeometry) -> float:
    return float(shapely.intersection(a.boundary, b.boundary).length)


def _refuse_community_crossing(faces: _Faces, new_owner: list[str | None], code_hint: str) -> None:
    crossing = [
        i
        for i, (old, new) in enumerate(zip(faces.owner, new_owner, strict=True))
        if old is not None and new is not None and old != new
        and community_of(old) != community_of(new) and faces.area[i] >= MIN_FACE_M2
    ]
    if crossing:
        geom = _union_faces(faces, crossing)
        raise EditRefused(
            "grids must stay within their community: this edit would move "
            f"≈{area_m2(geom):,.0f} m² across a community boundary "
            "(reassign the grid to move the community boundary)",
            code=code_hint,
            offending=_offending([Problem("community", geom, (code_hint,), "crosses a community boundary")]),
        )


def _assemble(
    kind: str,
    original: Grids,
    hood: _Hood,
    faces: _Faces,
    new_owner: list[str | None],
    *,
    keep_parts: bool = True,
    created: Sequence[tuple[str, str]] = (),
    absorbable: Mapping[str, str] | None = None,
) -> EditResult:
    """Union faces per owner, check the rules, conform the neighbours, validate.

    ``absorbable`` maps grids that may vanish to the grid that may take all of
    them (a revert undoing a split); they are retired into it.
    """
    region, outer = hood.region, hood.outer
    by_owner: dict[str, list[int]] = {}
    for i, owner in enumerate(new_owner):
        if owner is not None:
            by_owner.setdefault(owner, []).append(i)
    new: dict[str, MultiPolygon] = {}
    for owner, idx in by_owner.items():
        new[owner] = _union_faces(faces, idx)
    retired: dict[str, str] = {}
    for code in region:
        if code in new:
            continue
        taker = (absorbable or {}).get(code)
        if taker is not None and all(
                new_owner[i] == taker for i in range(len(faces.owner)) if faces.owner[i] == code):
            retired[code] = taker
            continue
        raise EditRefused(
            f"the edit would leave nothing of grid {code}; merge it instead",
            code=code,
            offending=_offending([Problem("removed", region[code], (code,), "would vanish")]),
        )
    for code, geom in new.items():
        if area_m2(geom) < MIN_GRID_M2:
            raise EditRefused(
                f"grid {code} would be smaller than {MIN_GRID_M2:.0f} m²",
                code=code,
                offending=_offending([Problem("too_small", geom, (code,), "too small")]),
            )
        old_parts = _n_parts(region[code]) if code in region else 1
        if keep_parts and _n_parts(geom) > max(1, old_parts):
            raise EditRefused(
                f"the edit would cut grid {code} into separate pieces",
                code=code,
                offending=_offending([Problem("pieces", geom, (code,), "disconnected")]),
            )
    # Untouched neighbours get the new nodes that landed on their edges.
    fresh = _new_vertices(list(new.values()), list(region.values()))
    final_outer = dict(outer)
    if len(fresh):
        for code, geom in outer.items():
            out = _insert_vertices(geom, fresh, CONFORM_DEG)
            if out is not None:
                final_outer[code] = out
    # Validate the neighbourhood as it will be stored, before anyone stores it.
    check_coverage({**final_outer, **new}, None)
    before_union = shapely.coverage_union_all(np.array(list(region.values()), dtype=object))
    after_union = shapely.coverage_union_all(np.array(list(new.values()), dtype=object))
    moved = area_m2(shapely.symmetric_difference(before_union, after_union))
    if moved > COVERAGE_TOLERANCE_M2:
        raise CoverageBroken(
            "the edit would change the area covered by the grids",
            offending=_offending([
                Problem("gap", as_multi(shapely.difference(before_union, after_union)), (), "uncovered"),
                Problem("outside", as_multi(shapely.difference(after_union, before_union)), (), "added"),
            ]),
        )
    changed: dict[str, MultiPolygon] = {}
    vertex_only: set[str] = set()
    for c, g in {**final_outer, **new}.items():
        if c not in original:
            continue
        old = as_multi(original[c])
        if shapely.normalize(g).equals_exact(shapely.normalize(old), 0):
            continue  # same vertices: keep the stored geometry untouched
        changed[c] = g
        if area_m2(shapely.symmetric_difference(g, old)) < MIN_FACE_M2:
            vertex_only.add(c)  # only nodes were added where new linework met it
    new_grids = tuple(
        NewGrid(community=community_of(src), geom=new[key], source=src) for key, src in created
    )
    return EditResult(kind=kind, changed=changed, created=new_grids, retired=retired,
                      conformed=frozenset(vertex_only))


@dataclass
class _Hood:
    """The grids an edit may change (region) and their neighbours (outer)."""

    region: dict[str, BaseGeometry]
    outer: dict[str, BaseGeometry]


def _hood(
    grids: Grids, codes: Iterable[str], drawn: Sequence[BaseGeometry] = ()
) -> tuple[_Hood, list[BaseGeometry]]:
    """Return region and outer, and the drawn geometries fitted onto existing edges.

    A drawn vertex within :data:`SNAP_DEG` of an existing edge is meant to be on it
    (a GIS tool rounded it, or the editor dropped it on the edge). It is moved onto
    the edge and inserted into every grid sharing that edge, so the noding meets it
    exactly instead of leaving a hair-thin sliver and mismatched vertices.
    """
    region = {c: grids[c] for c in codes}
    union = shapely.union_all(np.array(list(region.values()), dtype=object))
    shapely.prepare(union)
    outer = {c: g for c, g in grids.items() if c not in region and shapely.intersects(union, g)}
    hood = _Hood(region, outer)
    if not drawn:
        return hood, []
    moves: dict[tuple[float, float], tuple[float, float]] = {}
    everyone = {**region, **outer}
    known = _coords_set(everyone.values())
    pts = [tuple(xy) for xy in shapely.get_coordinates(np.array(list(drawn), dtype=object))]
    candidates = [xy for xy in dict.fromkeys(pts) if xy not in known]
    if candidates:
        cand = shapely.points(np.array(candidates))
        for geom in everyone.values():
            boundary = geom.boundary
            close = shapely.dwithin(boundary, cand, SNAP_DEG)
            for xy, pt, hit in zip(candidates, cand, close, strict=True):
                if hit and xy not in moves:
                    on = boundary.interpolate(boundary.project(pt))
                    moves[xy] = (on.x, on.y)
    if not moves:
        return hood, list(drawn)
    fitted = np.array(list(moves.values()))
    for group in (hood.region, hood.outer):
        for code, geom in group.items():
            out = _insert_vertices(geom, fitted, CONFORM_DEG)
            if out is not None:
                group[code] = out

    def move(coords: np.ndarray) -> np.ndarray:
        return np.array([moves.get((x, y), (x, y)) for x, y in coords])

    return hood, [shapely.transform(g, move) for g in drawn]


def _coords_set(geoms: Iterable[BaseGeometry]) -> set[tuple[float, float]]:
    out: set[tuple[float, float]] = set()
    for g in geoms:
        out.update(map(tuple, shapely.get_coordinates(g)))
    return out


def _new_vertices(new: Sequence[BaseGeometry], old: Sequence[BaseGeometry]) -> np.ndarray:
    """Return vertices of ``new`` that none of ``old`` has."""
    known = _coords_set(old)
    fresh = {xy for xy in _coords_set(new) if xy not in known}
    return np.array(sorted(fresh), dtype=float).reshape(-1, 2)


def _insert_ring(coords: np.ndarray, pts: np.ndarray, tol: float) -> np.ndarray | None:
    a, b = coords[:-1], coords[1:]
    d = b - a
    seg_len2 = (d * d).sum(axis=1)
    known = set(map(tuple, coords))
    inserts: dict[int, list[tuple[float, tuple[float, float]]]] = {}
    for p in pts:
        if tuple(p) in known:
            continue
        t = ((p - a) * d).sum(axis=1) / np.where(seg_len2 == 0, 1.0, seg_len2)
        t = np.clip(t, 0.0, 1.0)
        dist = np.hypot(*(a + t[:, None] * d - p).T)
        i = int(np.argmin(dist))
        if dist[i] <= tol and 0.0 < t[i] < 1.0:
            inserts.setdefault(i, []).append((float(t[i]), (float(p[0]), float(p[1]))))
    if not inserts:
        return None
    out: list[tuple[float, float]] = []
    for i in range(len(a)):
        out.append((float(a[i][0]), float(a[i][1])))
        for _t, q in sorted(inserts.get(i, [])):
            out.append(q)
    out.append(out[0])
    return np.array(out)


def _insert_vertices(geom: BaseGeometry, pts: np.ndarray, tol: float) -> MultiPolygon | None:
    """Insert points lying on ``geom``'s edges as vertices; None when none does."""
    lo = pts.min(axis=0) - tol
    hi = pts.max(axis=0) + tol
    x0, y0, x1, y1 = geom.bounds
    if x0 > hi[0] or y0 > hi[1] or x1 < lo[0] or y1 < lo[1]:
        return None
    near = pts[shapely.dwithin(geom.boundary, shapely.points(pts), tol)]
    if not len(near):
        return None
    polys = []
    changed = False
    for poly in as_multi(geom).geoms:
        rings = []
        for ring in [poly.exterior, *poly.interiors]:
            coords = np.asarray(ring.coords)
            new = _insert_ring(coords, near, tol)
            changed |= new is not None
            rings.append(coords if new is None else new)
        polys.append(Polygon(rings[0], rings[1:]))
    return MultiPolygon(polys) if changed else None


def _require(grids: Grids, code: str) -> BaseGeometry:
    geom = grids.get(code)
    if geom is None:
        raise EditRefused(f"grid {code} is not part of the edited neighbourhood", code=code)
    return geom


def _snap(geom: MultiPolygon, grids: Grids) -> MultiPolygon:
    """Snap drawn vertices onto existing vertices nearby (browser/QGIS rounding)."""
    box = shapely.box(*geom.bounds).buffer(SNAP_DEG * 2)
    ref = [g for g in grids.values() if shapely.intersects(box, g)]
    if not ref:
        return geom
    points = MultiPoint(shapely.get_coordinates(np.array(ref, dtype=object)))
    snapped = shapely.snap(geom, points, SNAP_DEG)
    if snapped.is_valid and not snapped.is_empty and isinstance(snapped, Polygon | MultiPolygon):
        return as_multi(snapped)
    return geom


def _interiors_intersect(grids: Grids, geom: BaseGeometry) -> list[str]:
    shapely.prepare(geom)
    return [
        c for c, g in grids.items() if shapely.intersects(geom, g) and not shapely.touches(geom, g)
    ]


def _touching(grids: Grids, code: str) -> list[str]:
    geom = grids[code]
    return [c for c, g in grids.items() if c != code and shapely.intersects(geom, g)]


def _check_in_district(geom: BaseGeometry, district: BaseGeometry | None) -> None:
    if district is None:
        return
    outside = shapely.difference(geom, district)
    if area_m2(outside) > MIN_FACE_M2:
        raise InvalidGeometry(
            f"the geometry reaches ≈{area_m2(outside):,.0f} m² outside the district",
            offending=_offending([Problem("outside", as_multi(outside), (), "outside the district")]),
        )


# --------------------------------------------------------------------------- operations


def replace_boundary(
    grids: Grids,
    code: str,
    new_geom: BaseGeometry,
    district: BaseGeometry | None = None,
    *,
    neighbour: str | None = None,
    absorbable: Sequence[str] = (),
) -> EditResult:
    """Give grid ``code`` a new boundary; neighbours lose what it gains.

    Area the grid gives up goes to ``neighbour`` (a grid code), or with
    ``neighbour="auto"`` each freed piece goes to the grid of the same community that
    shares the longest border with it; with no neighbour the edit is refused when
    any area is freed. A neighbour the new boundary covers entirely is refused,
    unless it is one of ``absorbable`` (same community): then it is retired into
    ``code``.
    """
    _require(grids, code)
    new_geom = check_polygonal(new_geom)
    _check_in_district(new_geom, district)
    new_geom = _snap(new_geom, grids)
    if neighbour not in (None, "auto"):
        _require(grids, neighbour)
        if neighbour == code:
            raise EditRefused("the neighbour must be another grid", code=code)
    region_codes = {code, *_interiors_intersect(grids, new_geom), *_touching(grids, code)}
    if neighbour not in (None, "auto"):
        region_codes.add(neighbour)
    hood, (new_geom,) = _hood(grids, region_codes, [new_geom])
    region = hood.region
    faces = _faces(region, [new_geom.boundary])
    inside = faces.where(new_geom)
    new_owner: list[str | None] = list(faces.owner)
    outside_idx: list[int] = []
    freed: list[int] = []
    for i, old_owner in enumerate(faces.owner):
        if faces.area[i] < MIN_FACE_M2:
            continue  # slivers keep their owner
        if inside[i]:
            if old_owner is None:
                outside_idx.append(i)
            else:
                new_owner[i] = code
        elif old_owner == code:
            freed.append(i)
    if outside_idx:
        geom = _union_faces(faces, outside_idx)
        raise InvalidGeometry(
            f"the new boundary reaches ≈{area_m2(geom):,.0f} m² outside the district",
            offending=_offending([Problem("outside", geom, (code,), "outside the district")]),
        )
    if freed:
        for comp in _components(faces, freed):
            piece = _union_faces(faces, comp)
            candidates = sorted(
                (
                    (_shared_length(piece, region[c]), c)
                    for c in region
                    if c != code and community_of(c) == community_of(code)
                ),
                reverse=True,
            )
            candidates = [(n, c) for n, c in candidates if n > 0]
            if neighbour is None:
                raise EditRefused(
                    f"the new boundary frees ≈{area_m2(piece):,.0f} m²; choose the neighbouring "
                    "grid that receives it",
                    code=code,
                    candidates=[c for _n, c in candidates],
                    offending=_offending([Problem("freed", piece, (code,), "needs a receiving grid")]),
                )
            receiver = neighbour
            if neighbour == "auto":
                if not candidates:
                    raise EditRefused(
                        "no grid of the same community borders the freed area",
                        code=code,
                        offending=_offending([Problem("freed", piece, (code,), "no receiving grid")]),
                    )
                receiver = candidates[0][1]
            for i in comp:
                new_owner[i] = receiver
    _refuse_community_crossing(faces, new_owner, code)
    result = _assemble("boundary", grids, hood, faces, new_owner, absorbable={
        c: code for c in absorbable if c != code and community_of(c) == community_of(code)})
    if code not in result.changed:
        raise EditRefused("the new boundary is the same as the current one", code=code)
    return result


def split_grid(grids: Grids, code: str, line: BaseGeometry) -> EditResult:
    """Cut grid ``code`` along ``line``; the largest piece keeps the code."""
    old = _require(grids, code)
    if not isinstance(line, LineString | MultiLineString) or line.is_empty:
        raise InvalidGeometry("the split line must be a LineString")
    if not shapely.intersects(line, old):
        raise EditRefused("the split line does not cross the grid", code=code)
    hood, (line,) = _hood(grids, [code], [line])
    old = hood.region[code]
    faces = _faces(hood.region, [line])
    mine = [i for i, o in enumerate(faces.owner) if o == code]
    # A face is cut when part of its boundary is new (the line), not the old boundary.
    rest = shapely.difference(shapely.boundary(faces.polys[mine]), old.boundary)
    cut = [i for i, r in zip(mine, rest, strict=True) if r.length > CONFORM_DEG]
    if len(mine) < 2 or not cut:
        raise EditRefused(
            "the split line does not cross the grid from one side to the other",
            code=code,
            offending=_offending([Problem("line", line, (code,), "does not cut the grid")]),
        )
    if len(mine) > MAX_SPLIT_PARTS:
        raise EditRefused(f"a split may make at most {MAX_SPLIT_PARTS} grids", code=code)
    for i in mine:
        if faces.area[i] < MIN_GRID_M2:
            raise EditRefused(
                f"the split would leave a piece smaller than {MIN_GRID_M2:.0f} m²",
                code=code,
                offending=_offending([Problem("too_small", faces.polys[i], (code,), "too small")]),
            )
    keeper = max(cut, key=lambda i: faces.area[i])
    new_owner: list[str | None] = [None] * len(faces.polys)
    created: list[tuple[str, str]] = []
    for i in mine:
        # Parts the line does not touch (of a multi-part grid) stay with the keeper.
        if i == keeper or i not in cut:
            new_owner[i] = code
        else:
            key = f"{code}#new{len(created) + 1}"
            new_owner[i] = key
            created.append((key, code))
    return _assemble("split", grids, hood, faces, new_owner, keep_parts=False, created=created)


def merge_grids(grids: Grids, codes: Sequence[str], keep: str | None = None) -> EditResult:
    """Merge adjacent grids of one community into ``keep`` (default: the first code)."""
    codes = list(dict.fromkeys(codes))
    if len(codes) < 2:
        raise EditRefused("a merge needs at least two different grids")
    keep = keep or codes[0]
    if keep not in codes:
        raise EditRefused("the grid that keeps its code must be one of the merged grids", code=keep)
    geoms = {c: _require(grids, c) for c in codes}
    communities = {community_of(c) for c in codes}
    if len(communities) > 1:
        raise EditRefused(
            "only grids of the same community can be merged (reassign one first)",
            communities=sorted(communities),
        )
    # Adjacent means sharing an edge; grids touching at a corner are not.
    linked = {codes[0]}
    frontier = [codes[0]]
    while frontier:
        c = frontier.pop()
        for o in codes:
            if o not in linked and _shared_length(geoms[c], geoms[o]) > 0:
                linked.add(o)
                frontier.append(o)
    if len(linked) != len(codes):
        apart = [c for c in codes if c not in linked]
        raise EditRefused(
            "the grids are not adjacent: they must share a boundary, not just a corner",
            codes=apart,
            offending=_offending([Problem("not_adjacent", geoms[c], (c,), "not adjacent") for c in apart]),
        )
    merged = as_multi(shapely.coverage_union_all(np.array(list(geoms.values()), dtype=object)))
    result = {keep: merged}
    after = {**{c: g for c, g in grids.items() if c not in geoms}, **result}
    check_coverage(after, None)
    return EditResult(kind="merge", changed=result, retired={c: keep for c in codes if c != keep})


def move_edge(grids: Grids, a: str, b: str, line: BaseGeometry) -> EditResult:
    """Move the shared edge of grids ``a`` and ``b`` onto ``line`` (same end points)."""
    ga, gb = _require(grids, a), _require(grids, b)
    if a == b:
        raise EditRefused("moving an edge needs two different grids", code=a)
    if community_of(a) != community_of(b):
        raise EditRefused(
            "grids must stay within their community: the edge between two communities "
            "is a community boundary",
            codes=[a, b],
        )
    if not isinstance(line, LineString) or line.is_empty:
        raise InvalidGeometry("the new edge must be a LineString")
    shared = shapely.line_merge(shapely.intersection(ga.boundary, gb.boundary))
    if shared.is_empty or shared.length == 0:
        raise EditRefused("the grids do not share an edge", codes=[a, b])
    if not isinstance(shared, LineString):
        raise EditRefused(
            "the grids share more than one stretch of boundary; redraw one of them instead",
            codes=[a, b],
            offending=_offending([Problem("edge", shared, (a, b), "several shared edges")]),
        )
    if shared.is_closed:
        raise EditRefused("one grid encloses the other; redraw its boundary instead", codes=[a, b])
    start, end = Point(shared.coords[0]), Point(shared.coords[-1])
    coords = list(line.coords)
    p0, p1 = Point(coords[0]), Point(coords[-1])
    if p0.distance(start) + p1.distance(end) > p0.distance(end) + p1.distance(start):
        coords.reverse()
        p0, p1 = p1, p0
    if p0.distance(start) > EDGE_END_DEG or p1.distance(end) > EDGE_END_DEG:
        raise EditRefused(
            "the new edge must start and end where the old shared edge does",
            codes=[a, b],
            offending=_offending([Problem("edge", shared, (a, b), "the current shared edge")]),
        )
    coords[0], coords[-1] = shared.coords[0], shared.coords[-1]
    edge = LineString(coords)
    if not edge.is_simple:
        raise InvalidGeometry("the new edge crosses itself")
    hood, (edge,) = _hood(grids, [a, b], [edge])
    faces = _faces(hood.region, [edge])
    lenses = as_multi(shapely.polygonize(shapely.get_parts(shapely.union_all([shared, edge]))))
    flip = faces.where(lenses) if not lenses.is_empty else np.zeros(len(faces.polys), bool)
    new_owner: list[str | None] = list(faces.owner)
    escaped = []
    for i, o in enumerate(faces.owner):
        if not flip[i] or faces.area[i] < MIN_FACE_M2:
            continue
        if o is None:
            escaped.append(i)
        else:
            new_owner[i] = b if o == a else a
    if escaped:
        geom = _union_faces(faces, escaped)
        raise EditRefused(
            "the new edge leaves the two grids",
            codes=[a, b],
            offending=_offending([Problem("outside", geom, (a, b), "outside both grids")]),
        )
    result = _assemble("edge", grids, hood, faces, new_owner)
    if a not in result.changed and b not in result.changed:
        raise EditRefused("the new edge is the same as the current one", codes=[a, b])
    return result


def reassign(
    grids: Grids,
    code: str,
    community: str,
    communities: Mapping[str, BaseGeometry],
) -> EditResult:
    """Move grid ``code`` to the adjacent ``community``; both community boundaries follow.

    ``grids`` must hold every grid of both communities (the new community boundaries
    are the unions of their grids).
    """
    geom = _require(grids, code)
    source = community_of(code)
    if len(community) != COMMUNITY_LENGTH or not community.isdigit():
        raise InvalidInput("a community code has 12 digits", community=community)
    if community == source:
        raise EditRefused("the grid already belongs to this community", code=code)
    if community not in communities or source not in communities:
        raise EditRefused("unknown community", community=community)
    if community[:TOWN_LENGTH] != code[:TOWN_LENGTH]:
        raise EditRefused(
            "a grid can only move to a community of the same town/street "
            "(moving a town boundary is the district's decision)",
            code=code,
            community=community,
        )
    if _shared_length(geom, communities[community]) <= 0:
        raise EditRefused(
            "the grid does not border that community",
            code=code,
            community=community,
            offending=_offending([Problem("not_adjacent", geom, (code,), "not adjacent")]),
        )
    stay = [g for c, g in grids.items() if community_of(c) == source and c != code]
    if not stay:
        raise EditRefused(
            "the grid is its community's only grid; a community cannot be left empty",
            code=code,
        )
    joining = [g for c, g in grids.items() if community_of(c) == community]
    old_comm = as_multi(shapely.coverage_union_all(np.array(stay, dtype=object)))
    new_comm = as_multi(shapely.coverage_union_all(np.array([*joining, geom], dtype=object)))
    if _n_parts(old_comm) > max(1, _n_parts(communities[source])):
        raise EditRefused(
            "the grid's community would fall apart into separate pieces",
            code=code,
            offending=_offending([Problem("pieces", old_comm, (), "disconnected")]),
        )
    for geom in (old_comm, new_comm):
        if not geom.is_valid:
            raise CoverageBroken(
                "the community boundaries would become invalid",
                offending=_offending([Problem("invalid", geom, (), shapely.is_valid_reason(geom))]),
            )
    return EditResult(
        kind="reassign",
        moved={code: community},
        communities={source: old_comm, community: new_comm},
    )


def replace_block(
    grids: Grids,
    new: Mapping[str, BaseGeometry],
    district: BaseGeometry | None = None,
) -> EditResult:
    """Replace several grids at once (an upload); together they must cover the same area.

    Gaps, overlaps or area outside the replaced grids below :data:`MIN_FACE_M2` are
    rounding (e.g. a GIS tool writing fewer decimals) and keep their old owner.
    """
    if not new:
        raise InvalidGeometry("no grids to replace")
    for code in new:
        _require(grids, code)
    snapped = {c: _snap(check_polygonal(g), grids) for c, g in new.items()}
    for g in snapped.values():
        _check_in_district(g, district)
    hood, fitted = _hood(grids, list(new), list(snapped.values()))
    snapped = dict(zip(snapped, fitted, strict=True))
    faces = _faces(hood.region, [g.boundary for g in snapped.values()])
    inside = {c: faces.where(g) for c, g in snapped.items()}
    new_owner: list[str | None] = list(faces.owner)
    problems: list[Problem] = []
    for i, old in enumerate(faces.owner):
        hits = [c for c in snapped if inside[c][i]]
        if faces.area[i] < MIN_FACE_M2:
            continue
        if old is None and hits:
            problems.append(Problem("outside", faces.polys[i], tuple(hits), "outside the replaced grids"))
        elif old is not None and not hits:
            problems.append(Problem("gap", faces.polys[i], (old,), "covered by no uploaded grid"))
        elif len(hits) > 1:
            problems.append(Problem("overlap", faces.polys[i], tuple(hits), "uploaded grids overlap"))
        elif hits:
            new_owner[i] = hits[0]
    if problems:
        raise CoverageBroken(
            "the uploaded grids must exactly cover the grids they replace",
            offending=_offending(problems),
        )
    _refuse_community_crossing(faces, new_owner, next(iter(new)))
    return _assemble("upload", grids, hood, faces, new_owner)


# --------------------------------------------------------------------------- counts


def split_counts(
    counts: Mapping[int, Mapping[str, int]],
    houses_before: Mapping[int, int],
    flows: Mapping[tuple[int, int], int],
    absorbed_by: Mapping[int, int],
) -> dict[int, dict[str, int]]:
    """Redistribute per-category key-person counts after houses changed grids.

    ``flows[(old, new)]`` is how many of grid ``old``'s houses now lie in ``new``
    (houses that stayed need not be listed). Each old grid's counts follow its
    houses proportionally (largest remainder, so every category's total is kept
    exactly); a grid without houses keeps its counts, or hands them to the grid
    that absorbed it (``absorbed_by``).
    """
    out: dict[int, dict[str, int]] = {}

    def add(grid: int, cat: str, n: int) -> None:
        out.setdefault(grid, {})
        out[grid][cat] = out[grid].get(cat, 0) + n

    for old, cats in counts.items():
        total = houses_before.get(old, 0)
        moved: dict[int, int] = {}
        for (o, new), n in flows.items():
            # Houses never land in a retired grid; if told so, they are in its absorber.
            dest = absorbed_by.get(new, new)
            if o == old and dest != old and n > 0:
                moved[dest] = moved.get(dest, 0) + n
        shares = dict(moved)
        stay = total - sum(moved.values())
        if old not in absorbed_by and stay > 0:
            shares[old] = stay
        if not shares or sum(shares.values()) <= 0:
            shares = {absorbed_by.get(old, old): 1}
        weight = sum(shares.values())
        order = sorted(shares)
        for cat, n in cats.items():
            exact = {g: n * shares[g] / weight for g in order}
            base = {g: int(math.floor(v)) for g, v in exact.items()}
            left = n - sum(base.values())
            # Hand the remainder to the largest fractional parts, ties by grid id.
            for g in sorted(order, key=lambda g: (-(exact[g] - base[g]), g))[:left]:
                base[g] += 1
            for g in order:
                add(g, cat, base[g])
            if old not in absorbed_by:
                out.setdefault(old, {}).setdefault(cat, 0)
    return out
