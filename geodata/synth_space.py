"""Local metric frame, smooth noise and allocation helpers for the demo generator.

The generator places everything in metres around the old town and converts to
WGS-84 degrees only at the end. An equirectangular frame is accurate to well under
1 % across a 37 km district, which is plenty for synthetic data.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import shapely

# Yanzhou old town (WGS-84); the origin of the local frame.
CENTRE_LON = 116.826
CENTRE_LAT = 35.553
M_PER_DEG_LAT = 110_950.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(CENTRE_LAT))

Noise = Callable[[np.ndarray, np.ndarray], np.ndarray]


def to_lonlat(xy: np.ndarray) -> np.ndarray:
    """Convert local metres (n, 2) to WGS-84 lon/lat degrees (n, 2)."""
    xy = np.asarray(xy, dtype=float)
    return np.column_stack(
        (CENTRE_LON + xy[:, 0] / M_PER_DEG_LON, CENTRE_LAT + xy[:, 1] / M_PER_DEG_LAT)
    )


def to_metres(lonlat: np.ndarray) -> np.ndarray:
    """Convert WGS-84 lon/lat degrees (n, 2) to local metres (n, 2)."""
    lonlat = np.asarray(lonlat, dtype=float)
    return np.column_stack(
        (
            (lonlat[:, 0] - CENTRE_LON) * M_PER_DEG_LON,
            (lonlat[:, 1] - CENTRE_LAT) * M_PER_DEG_LAT,
        )
    )


def km(x: float, y: float) -> tuple[float, float]:
    """Return the lon/lat of a point given in km east/north of the old town."""
    lon, lat = to_lonlat(np.array([[x * 1000.0, y * 1000.0]]))[0]
    return (round(float(lon), 6), round(float(lat), 6))


def smooth_noise(rng: np.random.Generator, waves: int, wavelength_m: tuple[float, float]) -> Noise:
    """Return a smooth random field over metres with values roughly in [-1, 1]."""
    # A sum of random plane waves is cheap, deterministic and smooth at the chosen
    # scales, which is all that wiggly synthetic boundaries need.
    lengths = rng.uniform(*wavelength_m, size=waves)
    angles = rng.uniform(0.0, 2 * math.pi, size=waves)
    kx = 2 * math.pi * np.cos(angles) / lengths
    ky = 2 * math.pi * np.sin(angles) / lengths
    phase = rng.uniform(0.0, 2 * math.pi, size=waves)
    scale = math.sqrt(2.0 / waves)

    def field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)[..., None]
        y = np.asarray(y, dtype=float)[..., None]
        return np.clip(scale * np.sin(kx * x + ky * y + phase).sum(axis=-1), -1.0, 1.0)

    return field


def sample_in(
    rng: np.random.Generator,
    region: shapely.Geometry,
    n: int,
    draw: Callable[[int], np.ndarray],
) -> np.ndarray:
    """Draw n points (metres) with ``draw`` and redraw those outside ``region`` (lon/lat)."""
    out = np.empty((0, 2))
    shapely.prepare(region)
    for _ in range(100):
        if len(out) >= n:
            break
        need = n - len(out)
        # Over-draw a little so one or two rounds usually suffice.
        cand = draw(int(need * 1.3) + 16)
        ll = to_lonlat(cand)
        cand = cand[shapely.contains_xy(region, ll[:, 0], ll[:, 1])]
        out = np.vstack((out, cand[:need]))
    if len(out) < n:  # pragma: no cover - the draws are always mostly inside
        raise RuntimeError("could not place points inside the region")
    return out


def apportion(
    total: int, weights: np.ndarray, minimum: int = 0, caps: np.ndarray | None = None
) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights``, within [minimum, caps]."""
    w = np.asarray(weights, dtype=float)
    w = w / w.max() if len(w) and w.max() > 0 else w  # keeps the scale search finite
    n = len(w)
    caps = np.full(n, total, dtype=np.int64) if caps is None else np.asarray(caps, dtype=np.int64)
    if total < minimum * n or total > caps.sum() or (caps < minimum).any():
        raise ValueError(f"cannot split {total} into {n} parts within the bounds")
    if np.where(w > 0, caps, minimum).sum() < total:
        # The weighted parts cannot absorb the total: let zero-weight parts share.
        w = np.where(w > 0, w, 1e-9 * max(w.max(), 1.0))
    # Find the scale s with sum(clip(s * w, minimum, caps)) == total by bisection
    # (the sum grows continuously with s), then round by largest remainder.
    lo, hi = 0.0, 1.0
    while np.clip(hi * w, minimum, caps).sum() < total:
        hi *= 2.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.clip(mid * w, minimum, caps).sum() < total else (lo, mid)
    quota = np.clip(lo * w, minimum, caps)
    counts = np.floor(quota).astype(np.int64)
    remainder = quota - counts
    while (left := total - int(counts.sum())) > 0:
        room = np.flatnonzero(counts < caps)
        order = room[np.argsort(-remainder[room], kind="stable")][:left]
        counts[order] += 1
        remainder[order] = -1.0
    return counts


class Locator:
    """Find the grid whose interior holds each point, via one STRtree over the grids."""

    def __init__(self, grids: np.ndarray) -> None:
        self.grids = np.asarray(grids)
        self.tree = shapely.STRtree(self.grids)
        # Interior points of each grid: the fallback for points on a shared edge.
        self.inner = shapely.get_coordinates(shapely.point_on_surface(self.grids))

    def locate(self, lonlat: np.ndarray) -> np.ndarray:
        """Return the index of the grid strictly containing each point, or -1."""
        found = np.full(len(lonlat), -1, dtype=np.int64)
        if len(lonlat):
            pts, grid = self.tree.query(shapely.points(lonlat), predicate="within")
            found[pts] = grid
        return found

    def settle(self, lonlat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the points and their grids, moving any point no grid contains."""
        # A float point can land exactly on a shared edge (or a jitter can push
        # it past the border); such points move to the nearest grid's interior.
        lonlat = np.array(lonlat, dtype=float)
        found = self.locate(lonlat)
        lost = np.flatnonzero(found < 0)
        if len(lost):
            nearest = self.tree.nearest(shapely.points(lonlat[lost]))
            lonlat[lost] = self.inner[nearest]
            found[lost] = nearest
        return lonlat, found
