"""Synthetic towns, communities and grids of Yanzhou, and where its people live.

The real district border is used as-is, but the town, village and grid borders
below are invented: official boundaries are not public. Town positions follow the
known layout (four streets forming the urban core around the old town at
116.826E 35.553N; 颜店 north, 新驿 west, 小孟 southwest, 大安 southeast, 漕河
northeast, 新兖 wrapping the core) and their sizes are plausible, not surveyed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import MultiPolygon

from geodata.boundary import DISTRICT_CODE
from geodata.synth_names import community_names, ordinal, village_names
from geodata.synth_partition import (
    Atoms,
    build_atoms,
    dissolve,
    grow,
    kmeans,
    nearest_free,
)
from geodata.synth_space import (
    apportion,
    km,
    sample_in,
    smooth_noise,
    to_lonlat,
    to_metres,
)


@dataclass(frozen=True)
class TownSpec:
    """A town (镇) or street (街道): code suffix, name, kind and plausible layout."""

    code: str  # 3 digits, appended to the district code
    name: str
    kind: str  # 'street' | 'town'
    seat: tuple[float, float] = (0.0, 0.0)  # lon, lat of the government seat
    area_km2: float = 0.0  # target size of the synthetic area
    extra_seeds: tuple[tuple[float, float], ...] = field(default=())  # lon, lat

    @property
    def full_code(self) -> str:
        """Return the 9-digit code (district + town)."""
        return DISTRICT_CODE + self.code


TOWNS: list[TownSpec] = [
    TownSpec("001", "鼓楼街道", "street", km(0.0, 0.3), 11.0),
    TownSpec("002", "酒仙桥街道", "street", km(-1.4, 2.6), 15.0),
    TownSpec("003", "龙桥街道", "street", km(-3.0, -0.6), 16.0),
    # The Xinglongzhuang coal mine lies south-east of the core, inside this street.
    TownSpec("004", "兴隆庄街道", "street", km(0.6, -2.6), 34.0, (km(1.8, -5.5),)),
    TownSpec("100", "大安镇", "town", km(1.5, -12.0), 78.0),
    TownSpec("101", "新驿镇", "town", km(-15.0, 3.0), 118.0),
    TownSpec("102", "颜店镇", "town", km(-8.0, 12.0), 110.0),
    TownSpec("103", "新兖镇", "town", km(1.6, 4.6), 62.0, (km(-4.0, 4.4), km(-5.6, -2.4))),
    TownSpec("104", "漕河镇", "town", km(2.5, 12.0), 88.0),
    TownSpec("105", "小孟镇", "town", km(-8.5, -8.0), 92.0),
]

# Special-purpose grids (专属网格): industrial sites with their own grid team.
SPECIAL_SITES: tuple[tuple[str, tuple[float, float]], ...] = (
    ("兴隆庄煤矿工业广场", km(1.8, -5.6)),
    ("兴隆庄煤矿选煤厂", km(2.7, -6.4)),
    ("兖州经济开发区北区", km(-5.2, 3.4)),
    ("兖州经济开发区南区", km(-5.8, 0.9)),
    ("兖州站铁路货场", km(0.9, 0.7)),
    ("颜店工业园", km(-7.0, 10.4)),
    ("大安工业园", km(2.2, -10.0)),
    ("新驿物流园", km(-13.8, 1.6)),
)
GRID_TOTAL = 930
# Households per grid the grid count aims at; urban grids follow ~300-500.
TARGET_HOUSEHOLDS = {"street": 380.0, "town": 215.0}
DEFAULT_HOUSES = 250_000
# Where the demo's households live (shares of all houses).
URBAN_SHARE, SEAT_SHARE, VILLAGE_SHARE, SCATTER_SHARE = 0.44, 0.09, 0.44, 0.03
URBAN_CENTRE_M = (-800.0, 0.0)
URBAN_SIGMA_M, URBAN_RADIUS_M, URBAN_CORE_FRACTION = 1_500.0, 3_300.0, 0.55
SEAT_SIGMA_M = 450.0
SEAT_SPLIT_M = np.array([[0.0, 0.0], [650.0, 0.0], [-650.0, 0.0], [0.0, 650.0], [0.0, -650.0]])
VILLAGE_TARGET, VILLAGE_SPACING_M, VILLAGE_SIGMA_M = 300, 1_000.0, 180.0
VILLAGE_CLEARANCE_M = 4_200.0  # no villages inside the built-up core
# Atom counts: "settled" atoms follow households (fine cells where people are),
# "field" atoms cover farmland evenly. ~8 atoms per urban grid keeps shapes organic.
SETTLED_ATOMS, FIELD_ATOMS = 5_200, 2_800
STREET_HOUSEHOLDS_PER_COMMUNITY = 1_500.0
SPECIAL_SPEED = 0.45  # special grids grow slower, so they stay compact
TOWN_NOISE, COMMUNITY_NOISE, GRID_NOISE = 0.55, 0.35, 0.2
TOWN_CALIBRATION_ROUNDS = 8
VILLAGE_CODE_START = 200  # village committees are numbered 201, 202, ...
READING_BAND_DEG = 0.005  # ~550 m bands for north-to-south, west-to-east numbering


@dataclass(frozen=True)
class Settlements:
    """Where people live: the urban core, town seats and village centres (metres)."""

    seats: np.ndarray  # (6, 2) seats of the towns (not streets)
    villages: np.ndarray  # (v, 2)
    village_weight: np.ndarray  # relative size of each village


@dataclass(frozen=True)
class Areas:
    """The nested partition: atoms and their town, community and grid labels."""

    atoms: Atoms
    settled: np.ndarray  # bool per atom: seeded from where people live
    town: np.ndarray
    community: np.ndarray
    grid: np.ndarray
    community_town: np.ndarray  # town index of each community
    community_names: list[str]
    grid_community: np.ndarray  # community index of each grid
    grid_special: list[str | None]  # special site name, or None


def plan_settlements(rng: np.random.Generator, district: MultiPolygon) -> Settlements:
    """Place town seats and village centres (Poisson-disc spaced) inside the district."""
    seats = to_metres(np.array([t.seat for t in TOWNS if t.kind == "town"]))
    x0, y0, x1, y1 = district.bounds
    cand = to_metres(np.column_stack((rng.uniform(x0, x1, 6000), rng.uniform(y0, y1, 6000))))
    ll = to_lonlat(cand)
    cand = cand[shapely.contains_xy(district, ll[:, 0], ll[:, 1])]
    cand = cand[np.hypot(*(cand - URBAN_CENTRE_M).T) > VILLAGE_CLEARANCE_M]
    accepted = [*seats]
    for p in cand:
        if len(accepted) - len(seats) >= VILLAGE_TARGET:
            break
        if np.min(np.hypot(*(np.asarray(accepted) - p).T)) >= VILLAGE_SPACING_M:
            accepted.append(p)
    villages = np.asarray(accepted[len(seats) :])
    weight = rng.lognormal(0.0, 0.45, size=len(villages))
    return Settlements(seats, villages, weight)


def draw_people(
    rng: np.random.Generator, st: Settlements, district: MultiPolygon, n: int
) -> np.ndarray:
    """Draw n household locations (metres) from the settlement mixture."""
    mixture = (
        (URBAN_SHARE, lambda k: _urban(rng, k)),
        (SEAT_SHARE, lambda k: _clusters(rng, st.seats, None, SEAT_SIGMA_M, k)),
        (
            VILLAGE_SHARE,
            lambda k: _clusters(rng, st.villages, st.village_weight, VILLAGE_SIGMA_M, k),
        ),
        (SCATTER_SHARE, lambda k: _uniform(rng, district, k)),
    )
    counts = apportion(n, np.array([share for share, _ in mixture]))
    return np.vstack(
        [
            sample_in(rng, district, int(c), draw)
            for c, (_, draw) in zip(counts, mixture, strict=True)
        ]
    )


def _urban(rng: np.random.Generator, k: int) -> np.ndarray:
    """Draw from the urban core: a dense centre plus an even built-up disc."""
    core = rng.random(k) < URBAN_CORE_FRACTION
    gauss = rng.normal(URBAN_CENTRE_M, URBAN_SIGMA_M, size=(k, 2))
    r = URBAN_RADIUS_M * np.sqrt(rng.random(k))
    a = rng.uniform(0, 2 * np.pi, k)
    disc = np.column_stack((r * np.cos(a), r * np.sin(a))) + URBAN_CENTRE_M
    return np.where(core[:, None], gauss, disc)


def _clusters(
    rng: np.random.Generator,
    centres: np.ndarray,
    weight: np.ndarray | None,
    sigma: float,
    k: int,
) -> np.ndarray:
    """Draw k points around weighted cluster centres (Gaussian spread)."""
    p = None if weight is None else weight / weight.sum()
    which = rng.choice(len(centres), size=k, p=p)
    return centres[which] + rng.normal(0.0, sigma, size=(k, 2))


def _uniform(rng: np.random.Generator, district: MultiPolygon, k: int) -> np.ndarray:
    """Draw k points uniformly over the district's bounding box (metres)."""
    x0, y0, x1, y1 = district.bounds
    return to_metres(np.column_stack((rng.uniform(x0, x1, k), rng.uniform(y0, y1, k))))


def build_areas(rng: np.random.Generator, district: MultiPolygon, st: Settlements) -> Areas:
    """Build atoms and grow towns, communities and grids over them."""
    settled_xy = draw_people(rng, st, district, SETTLED_ATOMS)
    field_xy = sample_in(rng, district, FIELD_ATOMS, lambda k: _uniform(rng, district, k))
    atoms = build_atoms(district, to_lonlat(np.vstack((settled_xy, field_xy))))
    # Atoms keep their seed's role through the face that contains it.
    settled = _settled_mask(atoms, settled_xy)
    town = _grow_towns(rng, atoms)
    community, community_town, names = _grow_communities(rng, atoms, settled, town, st)
    grid, grid_community, special = _grow_grids(rng, atoms, settled, community, community_town)
    return Areas(
        atoms,
        settled,
        town,
        community,
        grid,
        community_town,
        names,
        grid_community,
        special,
    )


def _settled_mask(atoms: Atoms, settled_xy: np.ndarray) -> np.ndarray:
    """Mark atoms whose face contains a settled seed point."""
    tree = shapely.STRtree(atoms.faces)
    ll = to_lonlat(settled_xy)
    _, hit = tree.query(shapely.points(ll), predicate="within")
    mask = np.zeros(len(atoms), dtype=bool)
    mask[hit] = True
    return mask


def _grow_towns(rng: np.random.Generator, atoms: Atoms) -> np.ndarray:
    """Grow the ten towns from their seats, calibrating speeds to the target areas."""
    pts, labels = [], []
    for k, t in enumerate(TOWNS):
        for ll in (t.seat, *t.extra_seeds):
            pts.append(ll)
            labels.append(k)
    seeds = nearest_free(
        atoms,
        to_metres(np.array(pts)),
        np.arange(len(atoms)),
        np.zeros(len(atoms), bool),
    )
    labels_arr = np.array(labels)
    noise = smooth_noise(rng, 14, (2_500.0, 9_000.0))
    area = shapely.area(atoms.faces)
    target = np.array([t.area_km2 for t in TOWNS])
    speed = np.sqrt(target / target.mean())
    for _ in range(TOWN_CALIBRATION_ROUNDS):
        town = grow(
            atoms,
            seeds,
            labels_arr,
            speed[labels_arr],
            noise=noise,
            amplitude=TOWN_NOISE,
        )
        got = np.bincount(town, weights=area, minlength=len(TOWNS))
        share = got / got.sum() * target.sum()
        # Area grows roughly with speed squared, hence the square root.
        speed = speed * np.sqrt(target / np.maximum(share, 1e-9)) ** 0.8
    return town


def _grow_communities(
    rng: np.random.Generator,
    atoms: Atoms,
    settled: np.ndarray,
    town: np.ndarray,
    st: Settlements,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Seed communities (k-means in streets, village centres in towns) and grow them."""
    taken = np.zeros(len(atoms), dtype=bool)
    seeds, owner, names = [], [], []
    used_names: set[str] = set()
    vill_atoms = _atoms_at(atoms, st.villages)
    # A town seat is a small town of its own: split it into several villages.
    seat_atoms = _atoms_at(atoms, (st.seats[:, None, :] + SEAT_SPLIT_M).reshape(-1, 2))
    for k, t in enumerate(TOWNS):
        members = np.flatnonzero(town == k)
        if t.kind == "street":
            hh = settled[members].sum() / SETTLED_ATOMS * DEFAULT_HOUSES
            n = int(np.clip(round(hh / STREET_HOUSEHOLDS_PER_COMMUNITY), 4, len(members)))
            w = np.where(settled[members], 1.0, 0.1)
            centres = kmeans(rng, atoms.xy[members], w, n)
            names_k = community_names(rng, n, used_names)
        else:
            inside = np.concatenate((seat_atoms, vill_atoms))
            inside = inside[town[inside] == k]
            centres = atoms.xy[np.unique(inside)] if len(inside) else atoms.xy[members[:1]]
            names_k = village_names(rng, len(centres), used_names)
        chosen = nearest_free(atoms, centres, members, taken)
        seeds.extend(chosen.tolist())
        owner.extend([k] * len(chosen))
        names.extend(names_k)
    noise = smooth_noise(rng, 16, (800.0, 3_000.0))
    labels = np.arange(len(seeds))
    community = grow(
        atoms,
        np.array(seeds),
        labels,
        np.ones(len(seeds)),
        noise=noise,
        amplitude=COMMUNITY_NOISE,
        parent=town,
    )
    return community, np.array(owner), names


def _atoms_at(atoms: Atoms, xy: np.ndarray) -> np.ndarray:
    """Return the atom containing each point (metres), or the nearest one."""
    tree = shapely.STRtree(atoms.faces)
    return tree.nearest(shapely.points(to_lonlat(xy)))


def _grow_grids(
    rng: np.random.Generator,
    atoms: Atoms,
    settled: np.ndarray,
    community: np.ndarray,
    community_town: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """Allocate exactly GRID_TOTAL grids to communities and grow them from k-means seeds."""
    n_comm = len(community_town)
    size = np.bincount(community, minlength=n_comm)
    # Special grids take an atom of their own, so only roomy communities host them.
    roomy = np.flatnonzero(size[community] >= 2 + len(SPECIAL_SITES))
    taken = np.zeros(len(atoms), dtype=bool)
    sites = to_metres(np.array([ll for _, ll in SPECIAL_SITES]))
    special_atoms = nearest_free(atoms, sites, roomy, taken)
    special_comm = community[special_atoms]
    settled_n = np.bincount(community, weights=settled, minlength=n_comm)
    field_n = size - settled_n
    households = (settled_n + 0.05 * field_n) / SETTLED_ATOMS * DEFAULT_HOUSES
    kinds = np.array([TOWNS[t].kind for t in community_town])
    target = np.where(kinds == "street", TARGET_HOUSEHOLDS["street"], TARGET_HOUSEHOLDS["town"])
    caps = size - np.bincount(special_comm, minlength=n_comm)
    regular = apportion(GRID_TOTAL - len(special_atoms), households / target, minimum=1, caps=caps)
    seeds, owner, speed = [], [], []
    order = np.argsort(community, kind="stable")
    bounds = np.searchsorted(community[order], np.arange(n_comm + 1))
    for c in range(n_comm):
        members = order[bounds[c] : bounds[c + 1]]
        w = np.where(settled[members], 1.0, 0.08)
        centres = kmeans(rng, atoms.xy[members], w, int(regular[c]))
        chosen = nearest_free(atoms, centres, members, taken)
        seeds.extend(chosen.tolist())
        owner.extend([c] * len(chosen))
        speed.extend([1.0] * len(chosen))
    special: list[str | None] = [None] * len(seeds)
    for (name, _), a in zip(SPECIAL_SITES, special_atoms, strict=True):
        seeds.append(int(a))
        owner.append(int(community[a]))
        speed.append(SPECIAL_SPEED)
        special.append(name)
    noise = smooth_noise(rng, 16, (400.0, 1_500.0))
    grid = grow(
        atoms,
        np.array(seeds),
        np.arange(len(seeds)),
        np.array(speed),
        noise=noise,
        amplitude=GRID_NOISE,
        parent=community,
    )
    return grid, np.array(owner), special


def area_frames(areas: Areas) -> tuple[list[dict], list[dict], list[dict]]:
    """Return town, community and grid records (code, name, kind, parent, geometry)."""
    atoms = areas.atoms
    town_geoms = dissolve(atoms, areas.town, len(TOWNS))
    towns = [
        {"code": t.full_code, "name": t.name, "kind": t.kind, "geometry": g}
        for t, g in zip(TOWNS, town_geoms, strict=True)
    ]
    comm_geoms = dissolve(atoms, areas.community, len(areas.community_town))
    comm_codes = [""] * len(comm_geoms)
    communities = []
    last_code: dict[int, int] = {}
    is_village = np.array([TOWNS[t].kind == "town" for t in areas.community_town])
    for c in _reading_order(comm_geoms, areas.community_town, np.zeros(len(comm_geoms), bool)):
        t = int(areas.community_town[c])
        # Statistical division codes number residents' committees from 001 and
        # village committees from 201; the demo follows that convention.
        last_code[t] = last_code.get(t, VILLAGE_CODE_START if is_village[c] else 0) + 1
        comm_codes[c] = f"{TOWNS[t].full_code}{last_code[t]:03d}"
        kind = "village" if is_village[c] else "community"
        communities.append(
            {
                "code": comm_codes[c],
                "name": areas.community_names[c],
                "kind": kind,
                "town_code": TOWNS[t].full_code,
                "geometry": comm_geoms[c],
            }
        )
    grid_geoms = dissolve(atoms, areas.grid, len(areas.grid_community))
    special = np.array([s is not None for s in areas.grid_special])
    grids = []
    per_comm: dict[int, int] = {}
    for g in _reading_order(grid_geoms, areas.grid_community, special):
        c = int(areas.grid_community[g])
        per_comm[c] = per_comm.get(c, 0) + 1
        site = areas.grid_special[g]
        if site is not None:
            kind, name = "special", f"{site}专属网格"
        else:
            kind = "urban" if TOWNS[areas.community_town[c]].kind == "street" else "rural"
            name = f"{areas.community_names[c]}第{ordinal(per_comm[c])}网格"
        grids.append(
            {
                "code": f"{comm_codes[c]}{per_comm[c]:03d}",
                "name": name,
                "kind": kind,
                "community_code": comm_codes[c],
                "geometry": grid_geoms[g],
            }
        )
    communities.sort(key=lambda r: r["code"])
    grids.sort(key=lambda r: r["code"])
    return towns, communities, grids


def _reading_order(geoms: list[MultiPolygon], parent: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Order areas by parent, then north-to-south bands read west to east."""
    # Local grid codes are numbered in this reading order; flagged ones go last.
    xy = shapely.get_coordinates(shapely.point_on_surface(np.asarray(geoms, dtype=object)))
    band = -np.floor(xy[:, 1] / READING_BAND_DEG)
    return np.lexsort((xy[:, 0], band, last, parent))
