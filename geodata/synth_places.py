"""Synthetic roads, key places and city components for the demo data set.

Places go where people are: they are anchored on generated houses, on a simple
synthesised road network (an urban street grid plus roads between town seats)
or on the industrial sites. Names are invented; see ``synth_names``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiPolygon, Point

from geodata.synth_areas import SPECIAL_SITES, TOWNS, URBAN_CENTRE_M
from geodata.synth_names import EW_ROADS, NS_ROADS, short, unique_names
from geodata.synth_space import apportion, to_lonlat, to_metres

# The urban street grid: spacing, extent around the urban centre, slight skew.
STREET_SPACING_M, STREET_EXTENT_M, STREET_SKEW_RAD = 700.0, 3_600.0, 0.06
# Roads between seats (town names; the first is the old town). Names invented.
ROUTES = (
    ("鼓楼街道", "颜店镇", "兖颜公路"),
    ("鼓楼街道", "新驿镇", "兖驿公路"),
    ("鼓楼街道", "小孟镇", "兖孟公路"),
    ("鼓楼街道", "大安镇", "兖大公路"),
    ("鼓楼街道", "漕河镇", "兖漕公路"),
    ("鼓楼街道", "兴隆庄街道", "兴隆大道"),
    ("颜店镇", "新驿镇", "颜驿公路"),
    ("新驿镇", "小孟镇", "驿孟公路"),
    ("小孟镇", "大安镇", "孟安公路"),
    ("颜店镇", "漕河镇", "颜漕公路"),
    ("漕河镇", "新兖镇", "漕兖公路"),
)
# The Si river (泗河) runs north-east to south-west past the west of the city.
RIVER_NAME = "泗河"
RIVER_KM = (
    (4.0, 19.0),
    (0.5, 12.5),
    (-3.0, 6.5),
    (-5.3, 1.5),
    (-6.8, -4.5),
    (-9.0, -10.5),
    (-10.5, -18.0),
)
KEY_PLACES_DEFAULT = 3_300
KEY_PLACE_MIX = {  # kind: (default count, weight of urban houses vs rural ones)
    "school": (300, 1.0),
    "hospital": (250, 1.5),
    "market": (260, 1.5),
    "station": (200, 1.0),
    "square": (150, 2.0),
    "government": (420, 1.0),
    "park": (90, 3.0),
    "factory": (780, 1.0),
    "hotel": (450, 4.0),
    "bank": (400, 3.0),
}
COMPONENTS_DEFAULT = 30_000
# Category code (GB/T 30428.2 style: class 2 + subclass 2 + item 2 digits; the
# exact code list is illustrative), name, share, where it stands.
COMPONENT_CATEGORIES = (
    ("010101", "上水井盖", 0.08, "road"),
    ("010201", "污水井盖", 0.08, "road"),
    ("010301", "雨水井盖", 0.09, "road"),
    ("010302", "雨水箅子", 0.06, "road"),
    ("010401", "消防栓", 0.04, "road"),
    ("010501", "电力井盖", 0.04, "road"),
    ("010601", "通信井盖", 0.04, "road"),
    ("010701", "燃气井盖", 0.03, "road"),
    ("010901", "配电箱", 0.03, "house"),
    ("020101", "公交站亭", 0.01, "road"),
    ("020201", "交通信号灯", 0.02, "road"),
    ("020301", "交通标志牌", 0.04, "road"),
    ("020401", "道路护栏", 0.03, "road"),
    ("030101", "公共厕所", 0.01, "house"),
    ("030201", "垃圾箱", 0.08, "house"),
    ("030301", "广告牌匾", 0.04, "house"),
    ("040101", "景观灯", 0.02, "road"),
    ("040201", "路灯", 0.17, "road"),
    ("040301", "行道树", 0.05, "road"),
    ("050101", "宣传栏", 0.02, "house"),
    ("060101", "健身设施", 0.02, "house"),
)
URBAN_ROAD_WEIGHT = 6.0  # urban streets carry many more components per km
FACTORY_WORDS = "鑫泰华瑞宏恒盛丰源达通力康安隆昌兴利远嘉益诚信德"
FACTORY_TRADES = (
    "机械",
    "化工",
    "纺织",
    "食品",
    "建材",
    "包装",
    "纸业",
    "橡胶",
    "电子",
    "物流",
    "农业科技",
    "新材料",
)
# Name templates per kind for (urban, village) anchors: {c} community, {t} town, {w} a word.
PLACE_NAMES = {
    "school": (
        (
            "兖州区{c}小学",
            "兖州区{c}实验小学",
            "{c}幼儿园",
            "兖州区{c}中学",
            "{c}双语幼儿园",
            "{t}中学",
        ),
        ("{c}小学", "{c}幼儿园", "{t}中学", "{t}中心小学"),
    ),
    "hospital": (
        (
            "{c}社区卫生服务站",
            "{c}诊所",
            "{c}口腔诊所",
            "{c}中医诊所",
            "{t}社区卫生服务中心",
        ),
        ("{c}村卫生室", "{t}卫生院", "{c}诊所"),
    ),
    "market": (
        ("{c}农贸市场", "{c}便民超市", "{c}生鲜超市", "{c}菜市场", "{w}购物中心"),
        ("{c}便民超市", "{t}集贸市场", "{c}农贸市场", "{c}集市"),
    ),
    "station": (
        ("{c}公交站", "{c}东公交站", "{c}西公交站", "{c}南公交站", "{c}北公交站"),
        ("{c}站", "{t}客运站", "{c}东站", "{c}西站"),
    ),
    "square": (
        ("{c}文化广场", "{c}健身广场", "{c}休闲广场"),
        ("{c}文化广场", "{c}村民广场"),
    ),
    "park": (
        ("{c}公园", "{c}游园", "{c}口袋公园", "{t}湿地公园"),
        ("{c}游园", "{t}湿地公园", "{c}生态园"),
    ),
    "hotel": (
        ("{c}宾馆", "{w}酒店", "{w}快捷酒店", "{w}大酒店", "{c}旅馆"),
        ("{c}宾馆", "{c}旅馆", "{w}酒店", "{w}农家乐"),
    ),
}
GOV_AGENCIES = (
    "派出所",
    "司法所",
    "便民服务中心",
    "财政所",
    "供电所",
    "综合执法中队",
    "退役军人服务站",
    "综治中心",
)
BANKS = (
    "中国工商银行",
    "中国农业银行",
    "中国银行",
    "中国建设银行",
    "中国邮政储蓄银行",
    "农村商业银行",
)
PLACE_COLUMNS = ["name", "kind", "x", "y"]


@dataclass(frozen=True)
class Roads:
    """The synthetic road network and river, in local metres."""

    names: list[str]
    lines: list[LineString]
    urban: np.ndarray  # bool per line
    crossings: np.ndarray  # (n, 2) urban intersections
    crossing_names: list[str]
    river: LineString


@dataclass(frozen=True)
class Anchors:
    """What the place generators anchor on: houses and the grid attributes."""

    houses_xy: np.ndarray  # metres
    house_grid: np.ndarray
    grid_urban: np.ndarray  # bool per grid
    grid_community: list[str]  # community name per grid
    grid_town: list[str]  # town name per grid


def build_roads(rng: np.random.Generator, district: MultiPolygon) -> Roads:
    """Synthesise an urban street grid, roads between town seats and the river."""
    land = shapely.transform(district, to_metres)
    core = shapely.intersection(land, Point(URBAN_CENTRE_M).buffer(STREET_EXTENT_M))
    names, lines, urban = [], [], []
    ns, ew = _street_grid(rng, core)
    for name, line in (*ns, *ew):
        names.append(name)
        lines.append(line)
        urban.append(True)
    seat_xy = to_metres(np.array([t.seat for t in TOWNS]))
    seats = {t.name: xy for t, xy in zip(TOWNS, seat_xy, strict=True)}
    for a, b, name in ROUTES:
        line = _bent(rng, seats[a], seats[b])
        names.append(name)
        lines.append(_longest(shapely.intersection(land, line)))
        urban.append(False)
    crossings, crossing_names = [], []
    for a_name, a in ns:
        for b_name, b in ew:
            hit = shapely.intersection(a, b)
            if isinstance(hit, Point):
                crossings.append((hit.x, hit.y))
                crossing_names.append(
                    f"{a_name}与{b_name}" + ("口" if b_name.endswith(("路", "街")) else "路口")
                )
    river = _longest(shapely.intersection(land, LineString(np.array(RIVER_KM) * 1000.0)))
    return Roads(names, lines, np.array(urban), np.array(crossings), crossing_names, river)


def _street_grid(rng: np.random.Generator, core: shapely.Geometry) -> tuple[list, list]:
    """Return named north-south and east-west streets clipped to the urban core."""
    cx, cy = URBAN_CENTRE_M
    out: tuple[list, list] = ([], [])
    for axis, names in enumerate((NS_ROADS, EW_ROADS)):
        offsets = (np.arange(len(names)) - (len(names) - 1) / 2) * STREET_SPACING_M
        offsets = offsets + rng.normal(0, 60, len(names))
        angle = STREET_SKEW_RAD + rng.normal(0, 0.02)
        for name, off in zip(names, offsets, strict=True):
            t = np.array([-STREET_EXTENT_M, STREET_EXTENT_M])
            if axis == 0:  # north-south: x = off, skewed slightly
                xy = np.column_stack((cx + off + t * np.sin(angle), cy + t * np.cos(angle)))
            else:
                xy = np.column_stack((cx + t * np.cos(angle), cy + off - t * np.sin(angle)))
            line = _longest(shapely.intersection(core, LineString(xy)))
            if line.length > 0:
                out[axis].append((name, line))
    return out


def _bent(rng: np.random.Generator, a: np.ndarray, b: np.ndarray) -> LineString:
    """Return a road from a to b with a few gentle random bends."""
    t = np.linspace(0, 1, 6)[:, None]
    pts = a + (b - a) * t
    normal = np.array([-(b - a)[1], (b - a)[0]]) / max(np.hypot(*(b - a)), 1.0)
    bend = rng.normal(0, 250, len(t))
    bend[[0, -1]] = 0
    return LineString(pts + bend[:, None] * normal)


def _longest(geom: shapely.Geometry) -> LineString:
    """Return the longest line part of a clipped geometry (or an empty line)."""
    parts = [g for g in shapely.get_parts(shapely.line_merge(geom)) if g.geom_type == "LineString"]
    return max(parts, key=lambda g: g.length) if parts else LineString()


def road_points(
    rng: np.random.Generator, roads: Roads, n: int, urban_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return n points along the roads (metres) and the index of each one's road."""
    length = np.array([ln.length for ln in roads.lines])
    w = length * np.where(roads.urban, urban_weight, 1.0)
    which = rng.choice(len(length), size=n, p=w / w.sum())
    frac = rng.uniform(0.02, 0.98, n)
    pts = shapely.line_interpolate_point(
        np.array(roads.lines, dtype=object)[which], frac, normalized=True
    )
    return shapely.get_coordinates(pts), which


def scaled(default: int, scale: float) -> int:
    """Return a default count scaled to a smaller (or larger) demo."""
    return round(default * scale)


def key_places(
    rng: np.random.Generator, anchors: Anchors, roads: Roads, scale: float
) -> pd.DataFrame:
    """Place the key places (schools, hospitals, ...) where people are; metres + names."""
    kinds = list(KEY_PLACE_MIX)
    counts = apportion(
        scaled(KEY_PLACES_DEFAULT, scale),
        np.array([KEY_PLACE_MIX[k][0] for k in kinds], float),
    )
    frames = []
    taken: set[str] = set()
    for kind, n in zip(kinds, counts, strict=True):
        if n == 0:
            continue
        if kind == "government":
            xy, names = _government(rng, int(n), anchors)
            names = unique_names(names, taken)
        else:
            xy, community, town = _place_anchors(rng, kind, int(n), anchors, roads)
            names = [
                _place_name(rng, kind, c, t, taken) for c, t in zip(community, town, strict=True)
            ]
        frames.append(pd.DataFrame({"name": names, "kind": kind, "x": xy[:, 0], "y": xy[:, 1]}))
    if not frames:  # a tiny demo can round every kind down to zero
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PLACE_COLUMNS})
    return pd.concat(frames, ignore_index=True)


def _place_anchors(
    rng: np.random.Generator, kind: str, n: int, anchors: Anchors, roads: Roads
) -> tuple[np.ndarray, list[str], list[str]]:
    """Return positions and the community/town names they are named after."""
    urban_w = KEY_PLACE_MIX[kind][1]
    house_urban = anchors.grid_urban[anchors.house_grid]
    w = np.where(house_urban, urban_w, 1.0)
    pick = rng.choice(len(w), size=n, p=w / w.sum())
    xy = anchors.houses_xy[pick] + rng.normal(0, 40, (n, 2))
    if kind == "factory":
        # Factories cluster in the industrial sites and along the roads between seats.
        sites = to_metres(np.array([ll for _, ll in SPECIAL_SITES]))
        k = n // 2
        xy[:k] = sites[rng.integers(len(sites), size=k)] + rng.normal(0, 450, (k, 2))
        m = n // 4
        xy[k : k + m] = road_points(rng, roads, m, 0.0)[0] + rng.normal(0, 120, (m, 2))
    grid = anchors.house_grid[pick]
    return (
        xy,
        [anchors.grid_community[g] for g in grid],
        [anchors.grid_town[g] for g in grid],
    )


def _government(rng: np.random.Generator, n: int, anchors: Anchors) -> tuple[np.ndarray, list[str]]:
    """Place town governments at the seats, then one committee office per community."""
    seats = to_metres(np.array([t.seat for t in TOWNS]))
    names = [t.name + ("办事处" if t.kind == "street" else "人民政府") for t in TOWNS]
    xy = list(seats)
    # One house per community (in random order) hosts its committee office.
    order = rng.permutation(len(anchors.house_grid))
    house_comm = np.array(anchors.grid_community)[anchors.house_grid[order]]
    _, first = np.unique(house_comm, return_index=True)
    for h in rng.permutation(order[first]):
        community = anchors.grid_community[anchors.house_grid[h]]
        xy.append(anchors.houses_xy[h])
        names.append(community + ("村民委员会" if community.endswith("村") else "居民委员会"))
    # Any further offices are town-level agencies near the seats.
    while len(names) < n:
        t = rng.integers(len(TOWNS))
        xy.append(seats[t] + rng.normal(0, 300, 2))
        names.append(TOWNS[t].name + GOV_AGENCIES[rng.integers(len(GOV_AGENCIES))])
    return np.asarray(xy[:n]) + rng.normal(0, 15, (n, 2)), names[:n]


def _place_name(
    rng: np.random.Generator, kind: str, community: str, town: str, taken: set[str]
) -> str:
    """Return a fresh plausible name for a key place near ``community`` in ``town``."""
    c, t = short(community), short(town)
    if kind == "factory":
        words = [
            FACTORY_WORDS[i] + FACTORY_WORDS[j]
            for i, j in rng.integers(len(FACTORY_WORDS), size=(4, 2))
        ]
        trades = rng.choice(FACTORY_TRADES, size=4)
        options = [f"山东{w}{trade}有限公司" for w, trade in zip(words, trades, strict=True)]
    elif kind == "bank":
        options = [
            f"{bank}兖州{c}{branch}"
            for bank in rng.permutation(BANKS)
            for branch in ("支行", "分理处")
        ]
    else:
        w = (
            FACTORY_WORDS[rng.integers(len(FACTORY_WORDS))]
            + FACTORY_WORDS[rng.integers(len(FACTORY_WORDS))]
        )
        templates = PLACE_NAMES[kind][community.endswith("村")]
        options = [tpl.format(c=c, t=t, w=w) for tpl in rng.permutation(templates)]
    for name in options:
        if name not in taken:
            taken.add(name)
            return name
    return unique_names([f"{options[0]}（一）"], taken)[0]


def components(
    rng: np.random.Generator, anchors: Anchors, roads: Roads, scale: float
) -> pd.DataFrame:
    """Place city components along roads and near houses, denser in urban grids."""
    counts = apportion(
        scaled(COMPONENTS_DEFAULT, scale),
        np.array([c[2] for c in COMPONENT_CATEGORIES]),
    )
    frames = []
    house_urban = anchors.grid_urban[anchors.house_grid]
    hw = np.where(house_urban, 3.0, 1.0)
    for (code, name, _, where), n in zip(COMPONENT_CATEGORIES, counts, strict=True):
        n = int(n)
        if where == "road":
            xy, _ = road_points(rng, roads, n, URBAN_ROAD_WEIGHT)
            xy = xy + rng.normal(0, 8, (n, 2))  # kerb-side, not on the centre line
        else:
            pick = rng.choice(len(hw), size=n, p=hw / hw.sum())
            xy = anchors.houses_xy[pick] + rng.normal(0, 25, (n, 2))
        frames.append(
            pd.DataFrame({"category_code": code, "category": name, "x": xy[:, 0], "y": xy[:, 1]})
        )
    return pd.concat(frames, ignore_index=True)


def with_lonlat(df: pd.DataFrame) -> pd.DataFrame:
    """Replace metre columns x, y with lon, lat."""
    ll = to_lonlat(df[["x", "y"]].to_numpy())
    return df.drop(columns=["x", "y"]).assign(lon=ll[:, 0], lat=ll[:, 1])
