"""Deterministic demo data for Yanzhou (兖州区, 370812): areas, people, places, cameras.

``generate(seed)`` returns the same data set for the same arguments. The district
border is real (``geodata.boundary``); the ten towns/streets, their ~390
communities/villages and 930 grids are *plausible inventions*: real sub-district
boundaries are not public, so town positions follow the known layout (four
streets around the old town at 116.826E 35.553N; 颜店 north, 新驿 west, 小孟
southwest, 大安 southeast, 漕河 northeast, 新兖 around the core) and sizes are
guesses. The grids form a valid polygonal coverage of the district (shared edges
match vertex for vertex; their union equals the district up to floating-point
noding, far below 1e-9 of its area). Houses, key places, components and cameras
are synthetic points; key persons are counts per grid and category only.

Pipeline: settlements (town seats, village centres) -> atoms and nested areas
(``synth_areas``) -> houses and residents -> grid teams and key-person counts ->
roads, key places and components (``synth_places``) -> cameras (``synth_cameras``).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import MultiPolygon
from tqdm import tqdm

from geodata.boundary import district_boundary
from geodata.synth_areas import (
    DEFAULT_HOUSES,
    TOWNS,
    Settlements,
    TownSpec,
    area_frames,
    build_areas,
    draw_people,
    plan_settlements,
)
from geodata.synth_cameras import cameras as place_cameras
from geodata.synth_names import fake_phones, person_names
from geodata.synth_places import (
    Anchors,
    build_roads,
    components,
    key_places,
    with_lonlat,
)
from geodata.synth_space import Locator, apportion, to_lonlat, to_metres

__all__ = ["TOWNS", "DemoDataset", "TownSpec", "generate"]

DEFAULT_SEED = 370812
DEFAULT_CAMERAS = 8_600
RESIDENTS_DEFAULT = 540_000  # 2.16 residents per household at the default scale
RURAL_HOUSEHOLD_FACTOR = 1.25  # rural households are a little larger
KEY_PERSONS_DEFAULT = 30_000
# Neutral care/supervision categories and their shares of all key persons.
KEY_PERSON_CATEGORIES = {
    "留守老人": 0.34,
    "独居老人": 0.16,
    "残疾人": 0.18,
    "困境儿童": 0.09,
    "严重精神障碍患者": 0.10,
    "社区矫正对象": 0.04,
    "刑满释放人员": 0.09,
}
# Categories markedly more common in villages (the young work elsewhere).
RURAL_HEAVY = {"留守老人": 2.0, "困境儿童": 1.5}
# Inclusive ranges of Z (part-timers) and N (volunteers) in a "1+1+Z+N" team.
PART_TIMERS, VOLUNTEERS = (1, 3), (2, 6)
STAGES = ("areas", "houses", "teams", "places", "components", "cameras")
CRS = "EPSG:4326"


@dataclass(frozen=True)
class DemoDataset:
    """The complete demo data set; every geometry and coordinate is WGS-84."""

    district: MultiPolygon
    towns: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    workers: pd.DataFrame
    houses: pd.DataFrame
    key_person_counts: pd.DataFrame
    key_places: pd.DataFrame
    components: pd.DataFrame
    cameras: pd.DataFrame


class _Stages:
    """Hand out one independent RNG per stage and advance an optional tqdm bar."""

    def __init__(self, seed: int, show: bool) -> None:
        # Independent streams: fewer houses or cameras leave the areas unchanged.
        seeds = np.random.SeedSequence(seed).spawn(len(STAGES))
        self.rngs = {name: np.random.default_rng(s) for name, s in zip(STAGES, seeds, strict=True)}
        self.bar = tqdm(total=len(STAGES), disable=not show, desc="demo data")

    def start(self, name: str) -> np.random.Generator:
        """Show ``name`` as the running stage and return its RNG."""
        self.bar.set_postfix_str(name)
        return self.rngs[name]

    def done(self) -> None:
        """Count the running stage as finished."""
        self.bar.update(1)

    def close(self) -> None:
        """Close the progress bar."""
        self.bar.close()


def generate(
    seed: int = DEFAULT_SEED,
    *,
    houses: int = DEFAULT_HOUSES,
    cameras: int = DEFAULT_CAMERAS,
    progress: bool = False,
) -> DemoDataset:
    """Generate the demo data set deterministically from ``seed``."""
    if houses < 1 or cameras < 0:
        raise ValueError("houses must be positive and cameras non-negative")
    scale = houses / DEFAULT_HOUSES
    stages = _Stages(seed, progress)
    try:
        district = district_boundary()
        rng = stages.start("areas")
        settlements = plan_settlements(rng, district)
        towns, communities, grids = (
            gpd.GeoDataFrame(r, geometry="geometry", crs=CRS)
            for r in area_frames(build_areas(rng, district, settlements))
        )
        locator = Locator(grids.geometry.to_numpy())
        codes = grids["code"].to_numpy()
        stages.done()

        rng = stages.start("houses")
        urban = grids["kind"].to_numpy() == "urban"
        house_df, house_grid = _houses(rng, settlements, district, houses, locator, urban)
        house_df["grid_code"] = codes[house_grid]
        anchors = _anchors(house_df, house_grid, towns, communities, grids)
        stages.done()

        rng = stages.start("teams")
        workers = _workers(rng, codes)
        key_persons = _key_persons(
            rng,
            anchors,
            house_df["residents"].to_numpy(),
            codes,
            round(KEY_PERSONS_DEFAULT * scale),
        )
        stages.done()

        rng = stages.start("places")
        roads = build_roads(rng, district)
        places = _located(with_lonlat(key_places(rng, anchors, roads, scale)), locator, codes)
        stages.done()

        rng = stages.start("components")
        comps = _located(with_lonlat(components(rng, anchors, roads, scale)), locator, codes)
        stages.done()

        rng = stages.start("cameras")
        xy = to_metres(places[["lon", "lat"]].to_numpy())  # settled positions
        places_m = places.assign(x=xy[:, 0], y=xy[:, 1])
        cams = place_cameras(rng, cameras, anchors, roads, places_m, locator, codes)
        stages.done()
    finally:
        stages.close()
    return DemoDataset(
        district=district,
        towns=towns,
        communities=communities,
        grids=grids,
        workers=workers,
        houses=house_df,
        key_person_counts=key_persons,
        key_places=places[["name", "kind", "lon", "lat", "grid_code"]],
        components=comps[["category_code", "category", "lon", "lat", "grid_code"]],
        cameras=cams,
    )


def _houses(
    rng: np.random.Generator,
    settlements: Settlements,
    district: MultiPolygon,
    n: int,
    locator: Locator,
    urban: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the houses (lon, lat, residents) and the index of each one's grid."""
    lonlat, grid = locator.settle(to_lonlat(draw_people(rng, settlements, district, n)))
    total = round(n * RESIDENTS_DEFAULT / DEFAULT_HOUSES)
    residents = _residents(rng, grid, ~urban, total)
    return pd.DataFrame({"lon": lonlat[:, 0], "lat": lonlat[:, 1], "residents": residents}), grid


def _anchors(
    houses: pd.DataFrame,
    house_grid: np.ndarray,
    towns: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
) -> Anchors:
    """Return what the place generators build on: houses and named, typed grids."""
    comm = dict(zip(communities["code"], communities["name"], strict=True))
    town = dict(zip(towns["code"], towns["name"], strict=True))
    return Anchors(
        houses_xy=to_metres(houses[["lon", "lat"]].to_numpy()),
        house_grid=house_grid,
        grid_urban=grids["kind"].to_numpy() == "urban",
        grid_community=[comm[c] for c in grids["community_code"]],
        grid_town=[town[c[:9]] for c in grids["code"]],
    )


def _located(df: pd.DataFrame, locator: Locator, grid_codes: np.ndarray) -> pd.DataFrame:
    """Move points into a grid where needed and add their grid_code."""
    lonlat, grid = locator.settle(df[["lon", "lat"]].to_numpy())
    return df.assign(lon=lonlat[:, 0], lat=lonlat[:, 1], grid_code=grid_codes[grid])


def _residents(
    rng: np.random.Generator, house_grid: np.ndarray, rural: np.ndarray, total: int
) -> np.ndarray:
    """Return residents per house (at least one) summing exactly to ``total``."""
    n = len(house_grid)
    if total < n:
        raise ValueError("fewer residents than houses")
    # Everyone beyond the first resident of each house is drawn house by house,
    # which hits the total exactly and still varies household size.
    weight = rng.gamma(2.0, 1.0, n) * np.where(rural[house_grid], RURAL_HOUSEHOLD_FACTOR, 1.0)
    extra = np.bincount(rng.choice(n, size=total - n, p=weight / weight.sum()), minlength=n)
    return (1 + extra).astype(np.int64)


def _workers(rng: np.random.Generator, grid_codes: np.ndarray) -> pd.DataFrame:
    """Return each grid's "1+1+Z+N" team: leader, full-time worker, part-timers, volunteers."""
    z = rng.integers(PART_TIMERS[0], PART_TIMERS[1] + 1, len(grid_codes))
    v = rng.integers(VOLUNTEERS[0], VOLUNTEERS[1] + 1, len(grid_codes))
    per_grid = 2 + z + v
    roles = np.concatenate(
        [
            ["leader", "full_time"] + ["part_time"] * a + ["volunteer"] * b
            for a, b in zip(z, v, strict=True)
        ]
    )
    n = int(per_grid.sum())
    return pd.DataFrame(
        {
            "grid_code": np.repeat(grid_codes, per_grid),
            "role": roles,
            "name": person_names(rng, n),
            "phone": fake_phones(rng, n),
        }
    )


def _key_persons(
    rng: np.random.Generator,
    anchors: Anchors,
    residents: np.ndarray,
    grid_codes: np.ndarray,
    total: int,
) -> pd.DataFrame:
    """Return key-person counts per grid and category (every pair, zeros included)."""
    per_cat = apportion(total, np.array(list(KEY_PERSON_CATEGORIES.values())))
    people = np.bincount(anchors.house_grid, weights=residents, minlength=len(grid_codes))
    rows = []
    for cat, n in zip(KEY_PERSON_CATEGORIES, per_cat, strict=True):
        # Key persons live where people live; +1 gives grids without houses a chance.
        w = (people + 1.0) * np.where(anchors.grid_urban, 1.0, RURAL_HEAVY.get(cat, 1.0))
        counts = np.bincount(rng.choice(len(w), size=int(n), p=w / w.sum()), minlength=len(w))
        rows.append(
            pd.DataFrame(
                {
                    "grid_code": grid_codes,
                    "category": cat,
                    "count": counts.astype(np.int64),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
