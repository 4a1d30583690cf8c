"""Nested partitions of the district built from one set of small "atoms".

Every area in the demo (town, community, grid) is a union of atoms: the faces of
a Voronoi diagram noded against the district border. Because all levels are
unions of the *same* faces, neighbouring areas share identical vertices and the
grids form a valid polygonal coverage by construction, with no snapping step.
Regions grow over the atom adjacency graph from seed atoms (a multi-source
Dijkstra), so every region is edge-connected and nests inside its parent.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPolygon

from geodata.synth_space import Noise, to_metres

# Margin (degrees) around the district for the Voronoi diagram's outer cells.
VORONOI_MARGIN_DEG = 0.02
# DE-9IM pattern "boundaries share a line": adjacency along an edge, not a corner.
SHARED_EDGE = "****1****"


@dataclass(frozen=True)
class Atoms:
    """Faces tiling the district, with their centres and edge adjacency (CSR)."""

    faces: np.ndarray  # shapely Polygons, WGS-84
    xy: np.ndarray  # (n, 2) representative points in local metres
    indptr: np.ndarray
    indices: np.ndarray
    length: np.ndarray  # metres between the centres of adjacent atoms

    def __len__(self) -> int:
        return len(self.faces)


def build_atoms(district: MultiPolygon, seeds_lonlat: np.ndarray) -> Atoms:
    """Tile the district with Voronoi faces of the seeds, noded against its border."""
    envelope = shapely.buffer(shapely.envelope(district), VORONOI_MARGIN_DEG)
    edges = shapely.voronoi_polygons(
        shapely.multipoints(seeds_lonlat), extend_to=envelope, only_edges=True
    )
    # One union nodes the Voronoi edges with the border; polygonize then yields
    # faces whose shared edges carry the same vertices on both sides.
    lines = shapely.union_all(np.concatenate((shapely.get_parts(edges), [district.boundary])))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    inner = shapely.point_on_surface(faces)
    shapely.prepare(district)
    keep = shapely.contains(district, inner) & (shapely.area(faces) > 0)
    faces, inner = faces[keep], inner[keep]
    xy = to_metres(shapely.get_coordinates(inner))
    indptr, indices = _adjacency(faces)
    src = np.repeat(np.arange(len(faces)), np.diff(indptr))
    length = np.hypot(*(xy[indices] - xy[src]).T)
    return Atoms(faces, xy, indptr, indices, np.maximum(length, 1.0))


def _adjacency(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return CSR arrays of the faces that share an edge with each face."""
    tree = shapely.STRtree(faces)
    i, j = tree.query(faces, predicate="touches")
    keep = i < j
    i, j = i[keep], j[keep]
    edge = shapely.relate_pattern(faces[i], faces[j], SHARED_EDGE)
    i, j = i[edge], j[edge]
    src = np.concatenate((i, j))
    dst = np.concatenate((j, i))
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    indptr = np.searchsorted(src, np.arange(len(faces) + 1))
    return indptr, dst


def grow(
    atoms: Atoms,
    seeds: np.ndarray,
    labels: np.ndarray,
    speed: np.ndarray,
    *,
    noise: Noise | None = None,
    amplitude: float = 0.0,
    parent: np.ndarray | None = None,
) -> np.ndarray:
    """Label every atom with the label of the seed that reaches it first."""
    # Each seed spreads at its own speed over edge lengths that a smooth noise
    # field stretches, so borders wander like real ones instead of being
    # straight Voronoi bisectors. ``parent`` confines growth to the seed's parent.
    weight = atoms.length
    if noise is not None and amplitude:
        src = np.repeat(np.arange(len(atoms)), np.diff(atoms.indptr))
        mid = (atoms.xy[src] + atoms.xy[atoms.indices]) / 2
        weight = weight * np.exp(amplitude * noise(mid[:, 0], mid[:, 1]))
    indptr = atoms.indptr.tolist()
    indices = atoms.indices.tolist()
    weight = weight.tolist()
    same = parent.tolist() if parent is not None else None
    out = [-1] * len(atoms)
    best = [float("inf")] * len(atoms)
    heap = [
        (0.0, int(s), int(lab), float(v)) for s, lab, v in zip(seeds, labels, speed, strict=True)
    ]
    heapq.heapify(heap)
    while heap:
        cost, u, lab, v = heapq.heappop(heap)
        if out[u] != -1:
            continue
        out[u] = lab
        for k in range(indptr[u], indptr[u + 1]):
            w = indices[k]
            if out[w] != -1 or (same is not None and same[w] != same[u]):
                continue
            c = cost + weight[k] / v
            if c < best[w]:
                best[w] = c
                heapq.heappush(heap, (c, w, lab, v))
    result = np.asarray(out, dtype=np.int64)
    if (result < 0).any():
        raise RuntimeError("some atoms were not reached; a parent region has no seed")
    return result


def nearest_free(
    atoms: Atoms, points: np.ndarray, candidates: np.ndarray, taken: np.ndarray
) -> np.ndarray:
    """Return, for each point (metres), the nearest candidate atom not yet taken."""
    chosen = np.empty(len(points), dtype=np.int64)
    cxy = atoms.xy[candidates]
    for n, p in enumerate(points):
        d = np.hypot(*(cxy - p).T)
        d[taken[candidates]] = np.inf
        k = int(np.argmin(d))
        chosen[n] = candidates[k]
        taken[candidates[k]] = True
    return chosen


def kmeans(
    rng: np.random.Generator,
    xy: np.ndarray,
    weight: np.ndarray,
    k: int,
    rounds: int = 12,
) -> np.ndarray:
    """Return k weighted k-means centres of the points (a few Lloyd rounds)."""
    if k >= len(xy):
        return xy.copy()
    p = weight / weight.sum()
    centres = xy[rng.choice(len(xy), size=k, replace=False, p=_no_zero(p, k))]
    for _ in range(rounds):
        d = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        nearest = d.argmin(axis=1)
        w = np.bincount(nearest, weights=weight, minlength=k)
        sx = np.bincount(nearest, weights=weight * xy[:, 0], minlength=k)
        sy = np.bincount(nearest, weights=weight * xy[:, 1], minlength=k)
        moved = w > 0
        centres[moved] = np.column_stack((sx[moved] / w[moved], sy[moved] / w[moved]))
    return centres


def _no_zero(p: np.ndarray, k: int) -> np.ndarray:
    """Return probabilities with enough non-zero entries to draw k distinct items."""
    if np.count_nonzero(p) >= k:
        return p
    q = p + 1e-9
    return q / q.sum()


def dissolve(atoms: Atoms, labels: np.ndarray, count: int) -> list[MultiPolygon]:
    """Return, for each label 0..count-1, the union of its atoms as a MultiPolygon."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(count + 1))
    out = []
    for lab in range(count):
        part = atoms.faces[order[bounds[lab] : bounds[lab + 1]]]
        geom = shapely.coverage_union_all(part)
        out.append(as_multipolygon(geom))
    return out


def as_multipolygon(geom: shapely.Geometry) -> MultiPolygon:
    """Return the polygonal parts of ``geom`` as a MultiPolygon."""
    if isinstance(geom, MultiPolygon):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    return MultiPolygon(parts)
