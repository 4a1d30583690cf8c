"""Synthetic video cameras: sources, placement, GB/T 28181 style ids and names.

Cameras stand where people and traffic are: 雪亮 (sharp eyes) cameras at village
and community entrances, 天网 (skynet) at urban crossings, on roads and at key
places, and departmental cameras at their own sites (schools, factories, river).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from geodata.boundary import DISTRICT_CODE
from geodata.synth_names import short
from geodata.synth_places import (
    RIVER_NAME,
    STREET_SKEW_RAD,
    Anchors,
    Roads,
    road_points,
)
from geodata.synth_space import Locator, apportion, to_lonlat

# source, share of all cameras, owning department, GB/T 28181 industry code and
# network digit. Industry codes (GB/T 28181-2016 Annex D): 00 public-security road,
# 01 public-security community/buildings, 03 public-security other, 04 traffic road,
# 08 city management, 09 health and environment, 11 education; water and "other"
# have no code of their own and use 03. Network: 0 the video private network of
# the police, 6 the government network for departmental cameras.
SOURCES = (
    ("sharp_eyes", 0.45, "兖州区委政法委（综治中心）", "01", "0"),
    ("skynet", 0.35, "兖州区公安分局", "00", "0"),
    ("environment", 0.03, "济宁市生态环境局兖州区分局", "09", "6"),
    ("water", 0.03, "兖州区水务局", "03", "6"),
    ("housing", 0.03, "兖州区住房和城乡建设局", "01", "6"),
    ("urban_management", 0.04, "兖州区综合行政执法局", "08", "6"),
    ("traffic", 0.04, "兖州区公安分局交警大队", "04", "0"),
    ("education", 0.02, "兖州区教育和体育局", "11", "6"),
    ("other", 0.01, "兖州区卫生健康局", "03", "6"),
)
TYPE_CAMERA, TYPE_IPC, IPC_SHARE = "131", "132", 0.6
STREAM_SLOTS = 48
ORIENTED_SHARE = 0.6  # cameras with a known heading, field of view and range
FOV_DEG, RANGE_M = (30.0, 110.0), (30.0, 150.0)
CROWD_SHARE = 0.03
CROWD_KINDS = ("square", "station", "market", "school")
# How strongly skynet cameras favour each kind of key place.
SKYNET_PLACE_WEIGHT = {
    "school": 2,
    "hospital": 2,
    "market": 3,
    "station": 3,
    "square": 3,
    "government": 1,
    "bank": 2,
    "hotel": 1,
    "park": 1,
    "factory": 0.3,
}
PLACE_SPOTS = ("大门", "东门", "西门", "南门", "北门", "广场", "停车场", "周界")
VILLAGE_SPOTS = ("村口", "主街", "文化广场", "东路口", "西路口", "南路口", "北路口")
COMMUNITY_SPOTS = ("小区北门", "小区南门", "东门", "西门", "主干道", "健身广场", "车棚")
CAMERA_JITTER_M = 12.0
COLUMNS = [
    "gb_id",
    "name",
    "source",
    "department",
    "lon",
    "lat",
    "heading",
    "fov",
    "range_m",
    "tags",
    "stream_slot",
    "grid_code",
]


@dataclass
class Spots:
    """Camera positions (metres) with a location description and tags."""

    xy: list[np.ndarray] = field(default_factory=list)
    desc: list[str] = field(default_factory=list)
    tags: list[list[str]] = field(default_factory=list)
    bearing: list[float] = field(default_factory=list)
    crowd_ok: list[bool] = field(default_factory=list)

    def add(
        self,
        xy: np.ndarray,
        desc: str,
        tags: list[str],
        bearing: float = np.nan,
        crowd: bool = False,
    ) -> None:
        """Append one camera position."""
        self.xy.append(np.asarray(xy, dtype=float))
        self.desc.append(desc)
        self.tags.append(tags)
        self.bearing.append(bearing)
        self.crowd_ok.append(crowd)


def cameras(
    rng: np.random.Generator,
    n: int,
    anchors: Anchors,
    roads: Roads,
    places: pd.DataFrame,
    locator: Locator,
    grid_codes: np.ndarray,
) -> pd.DataFrame:
    """Generate n cameras in plausible source proportions, located in grids."""
    counts = apportion(n, np.array([s[1] for s in SOURCES]))
    spots, sources = Spots(), []
    for (source, *_), k in zip(SOURCES, counts, strict=True):
        _place_source(rng, source, int(k), spots, anchors, roads, places)
        sources += [source] * (len(spots.desc) - len(sources))
    return _finish(rng, spots, sources, locator, anchors, grid_codes)


def _place_source(
    rng: np.random.Generator,
    source: str,
    k: int,
    s: Spots,
    anchors: Anchors,
    roads: Roads,
    places: pd.DataFrame,
) -> None:
    """Add k camera positions typical of one source."""
    start = len(s.desc)
    match source:
        case "sharp_eyes":
            _residential(rng, k, anchors, s)
        case "skynet":
            a, b = k * 2 // 5, k // 4
            _crossings(rng, a, roads, s)
            _roads(rng, b, roads, s, urban_weight=0.0)
            _places(rng, k - a - b, places, SKYNET_PLACE_WEIGHT, s)
        case "environment":
            _places(rng, k - k // 3, places, {"factory": 1}, s)
            _river(rng, k // 3, roads, s)
        case "water":
            _river(rng, k, roads, s)
        case "housing":
            _residential(rng, k, anchors, s, urban_only=True)
        case "urban_management":
            _places(rng, k // 2, places, {"square": 1, "market": 1, "park": 1}, s)
            _roads(rng, k - k // 2, roads, s, urban_weight=50.0)
        case "traffic":
            _crossings(rng, k * 3 // 5, roads, s)
            _roads(rng, k - k * 3 // 5, roads, s)
        case "education":
            _places(rng, k, places, {"school": 1}, s)
        case _:
            _places(rng, k, places, {"hospital": 1, "hotel": 1, "bank": 1}, s)
    if len(s.desc) < start + k:
        # A tiny demo may lack the schools or factories a source needs; those
        # cameras go to residential entrances instead, so the total stays exact.
        _residential(rng, start + k - len(s.desc), anchors, s)


def _residential(
    rng: np.random.Generator,
    k: int,
    anchors: Anchors,
    s: Spots,
    urban_only: bool = False,
) -> None:
    """Cameras at village and community entrances: one per grid first, then by households."""
    grids = np.unique(anchors.house_grid)
    grids = grids[anchors.grid_urban[grids]] if urban_only else grids
    pool = np.flatnonzero(np.isin(anchors.house_grid, grids))
    if not len(pool):
        pool = np.arange(len(anchors.house_grid))
    # Villages get relatively more sharp-eyes cameras than dense urban blocks.
    w = np.where(anchors.grid_urban[anchors.house_grid[pool]], 1.0, 1.5)
    picks = rng.permutation(pool)
    _, first = np.unique(anchors.house_grid[picks], return_index=True)
    chosen = picks[rng.permutation(first)][:k]
    if len(chosen) < k:
        chosen = np.concatenate((chosen, rng.choice(pool, size=k - len(chosen), p=w / w.sum())))
    for h in chosen:
        community = anchors.grid_community[anchors.house_grid[h]]
        village = community.endswith("村")
        spots = VILLAGE_SPOTS if village else COMMUNITY_SPOTS
        spot = spots[rng.integers(len(spots))]
        desc = f"{community}{spot}" if not urban_only else f"{community}{rng.integers(1, 30)}号楼"
        s.add(anchors.houses_xy[h], desc, ["village" if village else "community"])


def _crossings(rng: np.random.Generator, k: int, roads: Roads, s: Spots) -> None:
    """Cameras at urban crossings, several per crossing, facing along the streets."""
    if not len(roads.crossings):
        _roads(rng, k, roads, s)
        return
    # Crossing cameras face along one of the four street directions.
    skew = float(np.degrees(STREET_SKEW_RAD))
    for i in rng.integers(len(roads.crossings), size=k):
        bearing = float(rng.integers(4) * 90) + skew
        s.add(
            roads.crossings[i],
            roads.crossing_names[i],
            ["road", "intersection"],
            bearing,
        )


def _roads(
    rng: np.random.Generator, k: int, roads: Roads, s: Spots, urban_weight: float = 1.0
) -> None:
    """Cameras along roads, named by street number or kilometre stake."""
    xy, which = road_points(rng, roads, k, urban_weight)
    for p, w in zip(xy, which, strict=True):
        line = roads.lines[w]
        at = line.project(shapely.Point(p))
        ahead = line.interpolate(min(at + 5.0, line.length))
        behind = line.interpolate(max(at - 5.0, 0.0))
        bearing = float(np.degrees(np.arctan2(ahead.x - behind.x, ahead.y - behind.y)) % 360)
        name = roads.names[w]
        desc = (
            f"{name}{int(at // 20) * 2 + 1}号"
            if roads.urban[w]
            else f"{name}K{int(at // 1000)}+{int(at % 1000):03d}"
        )
        s.add(p, desc, ["road"], bearing)


def _places(
    rng: np.random.Generator,
    k: int,
    places: pd.DataFrame,
    weights: dict[str, float],
    s: Spots,
) -> None:
    """Cameras at key places of the given kinds (weighted)."""
    w = places["kind"].map(weights).fillna(0.0).to_numpy(dtype=float)
    if k == 0 or w.sum() == 0:
        return
    xy = places[["x", "y"]].to_numpy()
    names, kinds = places["name"].tolist(), places["kind"].tolist()
    for i in rng.choice(len(places), size=k, p=w / w.sum()):
        spot = PLACE_SPOTS[rng.integers(len(PLACE_SPOTS))]
        s.add(xy[i], f"{names[i]}{spot}", ["key_place"], crowd=kinds[i] in CROWD_KINDS)


def _river(rng: np.random.Generator, k: int, roads: Roads, s: Spots) -> None:
    """Cameras along the river; the reach is named after the nearby community later."""
    if k == 0 or roads.river.is_empty:
        return
    pts = shapely.line_interpolate_point(roads.river, rng.uniform(0.02, 0.98, k), normalized=True)
    for p in shapely.get_coordinates(pts):
        s.add(p + rng.normal(0, 30, 2), RIVER_NAME + "{c}段", ["river"])


def _finish(
    rng: np.random.Generator,
    spots: Spots,
    sources: list[str],
    locator: Locator,
    anchors: Anchors,
    grid_codes: np.ndarray,
) -> pd.DataFrame:
    """Locate the cameras, then give them ids, names, orientation, tags and slots."""
    n = len(sources)
    xy = np.asarray(spots.xy, dtype=float).reshape(n, 2)
    lonlat, grid = locator.settle(to_lonlat(xy + rng.normal(0, CAMERA_JITTER_M, xy.shape)))
    tags = [list(t) for t in spots.tags]
    crowd_ok = np.flatnonzero(spots.crowd_ok)
    for i in rng.permutation(crowd_ok)[: round(CROWD_SHARE * n)]:
        tags[i].append("crowd")
    heading, fov, reach = _orientation(rng, np.asarray(spots.bearing, dtype=float))
    codes = [str(grid_codes[g]) for g in grid]
    names, seen = [], {}
    for desc, g in zip(spots.desc, grid, strict=True):
        town = anchors.grid_town[g]
        place = desc.replace("{c}", short(anchors.grid_community[g]))
        seen[town, place] = seen.get((town, place), 0) + 1
        names.append(f"{town}-{place}-{seen[town, place]:02d}")
    by_source = {s[0]: s for s in SOURCES}
    town_codes = [c[len(DISTRICT_CODE) : len(DISTRICT_CODE) + 3] for c in codes]
    return pd.DataFrame(
        {
            "gb_id": _text(_gb_ids(rng, town_codes, [by_source[s] for s in sources])),
            "name": _text(names),
            "source": _text(sources),
            "department": _text([by_source[s][2] for s in sources]),
            "lon": lonlat[:, 0],
            "lat": lonlat[:, 1],
            "heading": heading,
            "fov": fov,
            "range_m": reach,
            "tags": pd.Series(tags, dtype=object),
            "stream_slot": rng.integers(0, STREAM_SLOTS, size=n).astype(np.int64),
            "grid_code": _text(codes),
        },
        columns=COLUMNS,
    )


def _text(values: list[str]) -> pd.Series:
    """Return a string column (typed even when empty)."""
    return pd.Series(values, dtype="str")


def _orientation(
    rng: np.random.Generator, bearing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return heading, field of view and range; NaN for cameras without a survey."""
    n = len(bearing)
    known = rng.random(n) < ORIENTED_SHARE
    # Road cameras look along the road (either way); others anywhere.
    along = np.where(rng.random(n) < 0.5, bearing, bearing + 180.0) + rng.normal(0, 8, n)
    heading = np.where(np.isnan(bearing), rng.uniform(0, 360, n), along) % 360
    fov = rng.uniform(*FOV_DEG, n)
    reach = rng.uniform(*RANGE_M, n)
    nan = np.full(n, np.nan)
    return (
        np.where(known, np.round(heading, 1) % 360, nan),
        np.where(known, np.round(fov, 1), nan),
        np.where(known, np.round(reach, 1), nan),
    )


def _gb_ids(rng: np.random.Generator, towns: list[str], sources: list[tuple]) -> list[str]:
    """Return unique GB/T 28181-2016 ids, one per camera, for the given towns and sources."""
    # Layout (Annex D): centre 8 = district 6 + base unit 2, industry 2, type 3,
    # network 1, serial 6. The base unit is the camera's town: the first and last
    # digit of its 3-digit code (001 -> 01, 105 -> 15), unique for the ten towns.
    types = np.where(rng.random(len(towns)) < IPC_SHARE, TYPE_IPC, TYPE_CAMERA)
    serial: dict[str, int] = {}
    out = []
    for town, source, kind in zip(towns, sources, types, strict=True):
        industry, network = source[3], source[4]
        prefix = f"{DISTRICT_CODE}{town[0]}{town[2]}{industry}{kind}{network}"
        serial[prefix] = serial.get(prefix, 0) + 1
        out.append(f"{prefix}{serial[prefix]:06d}")
    return out
