"""Unit tests of the deterministic demo-data generator (no database)."""

from __future__ import annotations

import math
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geodata.boundary import DISTRICT_CODE
from geodata.generator import TOWNS, DemoDataset, generate
from geodata.synth_cameras import SOURCES
from geodata.synth_space import apportion
from video.gbid import parse_gb_id

SMALL = {"houses": 20_000, "cameras": 1_000}
# The grids' union must equal the district within this share of its area.
AREA_TOLERANCE = 1e-6
OLD_TOWN = (116.826, 35.553)
METRIC_CRS = "EPSG:32650"  # UTM 50N covers the district


@pytest.fixture(scope="session")
def full() -> DemoDataset:
    """Return the data set at the default scale."""
    return generate()


@pytest.fixture(scope="session")
def small() -> DemoDataset:
    """Return a smaller data set (fewer houses and cameras)."""
    return generate(**SMALL)


@pytest.fixture(params=["full", "small"])
def data(request: pytest.FixtureRequest) -> DemoDataset:
    """Run a test against both scales."""
    return request.getfixturevalue(request.param)


def km2(frame: gpd.GeoDataFrame) -> np.ndarray:
    """Return the areas of a frame's geometries in km²."""
    return frame.to_crs(METRIC_CRS).area.to_numpy() / 1e6


def assert_partition(parts: gpd.GeoDataFrame, whole: shapely.Geometry) -> None:
    """Assert that ``parts`` is a valid coverage whose union is ``whole``."""
    geoms = parts.geometry.to_numpy()
    assert (shapely.get_type_id(geoms) == 6).all(), "every part is a MultiPolygon"
    assert shapely.is_valid(geoms).all()
    assert (shapely.area(geoms) > 0).all()
    assert shapely.coverage_is_valid(geoms)
    union = shapely.coverage_union_all(geoms)
    assert union.symmetric_difference(whole).area < AREA_TOLERANCE * whole.area


def grid_geoms(d: DemoDataset, codes: pd.Series) -> np.ndarray:
    """Return the grid geometry for each grid code."""
    by_code = pd.Series(d.grids.geometry.to_numpy(), index=d.grids["code"])
    return by_code.loc[codes].to_numpy()


# --- areas -------------------------------------------------------------------


def test_exactly_930_grids(data: DemoDataset) -> None:
    assert len(data.grids) == 930


def test_grids_are_a_valid_coverage_of_the_district(data: DemoDataset) -> None:
    assert_partition(data.grids, data.district)


def test_towns_and_communities_also_partition_the_district(full: DemoDataset) -> None:
    assert_partition(full.towns, full.district)
    assert_partition(full.communities, full.district)


def test_every_grid_lies_in_its_community_and_town(full: DemoDataset) -> None:
    comm = full.communities.set_index("code").geometry
    town = full.towns.set_index("code").geometry
    grids = full.grids
    outside = shapely.area(
        shapely.difference(grids.geometry.to_numpy(), comm.loc[grids["community_code"]].to_numpy())
    )
    assert (outside < 1e-12).all()
    cs = full.communities
    outside = shapely.area(
        shapely.difference(cs.geometry.to_numpy(), town.loc[cs["town_code"]].to_numpy())
    )
    assert (outside < 1e-12).all()


def test_codes_nest_and_are_unique(data: DemoDataset) -> None:
    towns, comms, grids = data.towns, data.communities, data.grids
    assert towns["code"].str.fullmatch(r"\d{9}").all()
    assert comms["code"].str.fullmatch(r"\d{12}").all()
    assert grids["code"].str.fullmatch(r"\d{15}").all()
    for frame in (towns, comms, grids):
        assert frame["code"].is_unique
    assert towns["code"].str.startswith(DISTRICT_CODE).all()
    assert set(comms["town_code"]) <= set(towns["code"])
    assert (comms["code"].str[:9] == comms["town_code"]).all()
    assert set(grids["community_code"]) == set(comms["code"]), "no community without grids"
    assert (grids["code"].str[:12] == grids["community_code"]).all()


def test_towns_match_the_spec(full: DemoDataset) -> None:
    expected = {
        "001": "鼓楼街道",
        "002": "酒仙桥街道",
        "003": "龙桥街道",
        "004": "兴隆庄街道",
        "100": "大安镇",
        "101": "新驿镇",
        "102": "颜店镇",
        "103": "新兖镇",
        "104": "漕河镇",
        "105": "小孟镇",
    }
    assert {t.code: t.name for t in TOWNS} == expected
    got = dict(zip(full.towns["code"].str[6:], full.towns["name"], strict=True))
    assert got == expected
    kinds = dict(zip(full.towns["name"], full.towns["kind"], strict=True))
    assert all((kinds[n] == "street") == n.endswith("街道") for n in kinds)


def test_streets_form_the_core_and_towns_surround_it(full: DemoDataset) -> None:
    metric = full.towns.to_crs(METRIC_CRS)
    centre = gpd.GeoSeries.from_xy([OLD_TOWN[0]], [OLD_TOWN[1]], crs="EPSG:4326")
    cx, cy = centre.to_crs(METRIC_CRS).get_coordinates().to_numpy()[0]
    rep = metric.geometry.representative_point()
    offset = dict(zip(full.towns["name"], zip(rep.x - cx, rep.y - cy, strict=True), strict=True))
    for name in ("鼓楼街道", "酒仙桥街道", "龙桥街道"):
        assert math.hypot(*offset[name]) < 5_000, name
    assert offset["颜店镇"][1] > 5_000  # north
    assert offset["新驿镇"][0] < -8_000  # west
    assert offset["小孟镇"][0] < 0 and offset["小孟镇"][1] < 0  # south-west
    assert offset["大安镇"][1] < -5_000  # south(-east)
    assert offset["漕河镇"][1] > 5_000 and offset["漕河镇"][0] > offset["颜店镇"][0]  # north-east
    core = metric[metric["kind"] == "street"].union_all()
    assert 30 < core.area / 1e6 < 120


def test_community_count_and_kinds(full: DemoDataset) -> None:
    comms = full.communities
    assert 250 <= len(comms) <= 450
    street = comms["town_code"].map(dict(zip(full.towns["code"], full.towns["kind"], strict=True)))
    assert ((street == "street") == (comms["kind"] == "community")).all()
    assert set(comms["kind"]) == {"community", "village"}
    assert comms["name"].is_unique


def test_grid_kinds_and_sizes(full: DemoDataset) -> None:
    grids = full.grids.assign(km2=km2(full.grids))
    kinds = grids["kind"].value_counts()
    assert set(kinds.index) == {"urban", "rural", "special"}
    assert 3 <= kinds["special"] <= 15
    median = grids.groupby("kind")["km2"].median()
    assert median["urban"] < 0.35 * median["rural"]
    # Urban grids follow households: roughly 300-500 each.
    households = full.houses.groupby("grid_code").size()
    urban = households.reindex(grids.loc[grids["kind"] == "urban", "code"]).fillna(0)
    assert 300 <= urban.median() <= 500


# --- points ------------------------------------------------------------------


@pytest.mark.parametrize("table", ["houses", "key_places", "components", "cameras"])
def test_every_point_lies_in_its_grid(data: DemoDataset, table: str) -> None:
    df = getattr(data, table)
    assert df["lon"].dtype == np.float64 and df["lat"].dtype == np.float64
    inside = shapely.contains_xy(grid_geoms(data, df["grid_code"]), df["lon"], df["lat"])
    assert inside.all()


def test_totals_at_default_scale(full: DemoDataset) -> None:
    assert len(full.houses) == 250_000
    assert full.houses["residents"].sum() == 540_000
    assert full.key_person_counts["count"].sum() == 30_000
    assert len(full.key_places) == 3_300
    assert len(full.components) == 30_000
    assert len(full.cameras) == 8_600


def test_totals_scale_with_houses(small: DemoDataset) -> None:
    assert len(small.houses) == 20_000
    assert small.houses["residents"].sum() == round(20_000 * 540_000 / 250_000)
    assert small.key_person_counts["count"].sum() == 2_400
    assert len(small.key_places) == 264
    assert len(small.components) == 2_400
    assert len(small.cameras) == 1_000


def test_houses_have_residents(data: DemoDataset) -> None:
    residents = data.houses["residents"]
    assert pd.api.types.is_integer_dtype(residents)
    assert residents.min() >= 1
    assert residents.mean() == pytest.approx(2.16)


def test_key_person_counts(full: DemoDataset) -> None:
    kp = full.key_person_counts
    assert (kp["count"] >= 0).all()
    assert not kp.duplicated(["grid_code", "category"]).any()
    assert len(kp) == len(full.grids) * kp["category"].nunique()
    assert 5 <= kp["category"].nunique() <= 10
    assert set(kp["grid_code"]) == set(full.grids["code"])


def test_key_places(full: DemoDataset) -> None:
    kinds = {"school", "hospital", "market", "station", "square"}
    kinds |= {"government", "park", "factory", "hotel", "bank"}
    places = full.key_places
    assert set(places["kind"]) == kinds
    assert places["name"].str.contains(r"[\u4e00-\u9fff]").all()
    assert places["name"].is_unique
    # Where people are: nearly all non-industrial places stand in grids with houses.
    with_houses = set(full.houses["grid_code"])
    assert places.loc[places["kind"] != "factory", "grid_code"].isin(with_houses).mean() > 0.95


def test_components(full: DemoDataset) -> None:
    comps = full.components
    assert comps["category_code"].str.fullmatch(r"\d{6}").all()
    assert comps.groupby("category_code")["category"].nunique().eq(1).all()
    assert {"010101", "010301", "010401", "040201"} <= set(comps["category_code"])
    grids = full.grids.assign(km2=km2(full.grids))
    density = (
        comps.groupby("grid_code").size().reindex(grids["code"]).fillna(0) / grids["km2"].to_numpy()
    )
    kind = grids.set_index("code")["kind"]
    assert density[kind == "urban"].median() > 10 * density[kind == "rural"].median()


def test_workers_are_1_1_z_n_teams(full: DemoDataset) -> None:
    roles = full.workers.groupby(["grid_code", "role"]).size().unstack(fill_value=0)
    assert len(roles) == 930
    assert (roles["leader"] == 1).all() and (roles["full_time"] == 1).all()
    assert roles["part_time"].between(1, 3).all()
    assert roles["volunteer"].between(2, 6).all()
    assert full.workers["phone"].str.fullmatch(r"1[3-9]\d0000\d{4}").all()
    assert full.workers["phone"].is_unique
    assert full.workers["name"].str.fullmatch(r"[\u4e00-\u9fff]{2,3}").all()


# --- cameras -----------------------------------------------------------------


def test_camera_ids_follow_gb28181(data: DemoDataset) -> None:
    ids = data.cameras["gb_id"]
    assert ids.str.fullmatch(r"\d{20}").all()
    assert ids.is_unique
    parsed = [parse_gb_id(i) for i in ids]  # the parser the camera registry uses
    assert {p.admin_code for p in parsed} == {DISTRICT_CODE}
    assert {p.type_code for p in parsed} <= {131, 132}
    industry = {s[0]: s[3] for s in SOURCES}
    assert [p.industry for p in parsed] == data.cameras["source"].map(industry).tolist()
    # The base unit names the camera's own town (001 -> 01, 105 -> 15).
    town = data.cameras["grid_code"].str[6:9]
    assert [p.base_unit for p in parsed] == (town.str[0] + town.str[2]).tolist()


def test_camera_sources_in_proportion(data: DemoDataset) -> None:
    share = data.cameras["source"].value_counts(normalize=True)
    for source, expected, *_ in SOURCES:
        assert share[source] == pytest.approx(expected, abs=0.005), source
    assert data.cameras.groupby("source")["department"].nunique().eq(1).all()


def test_camera_orientation_and_slots(data: DemoDataset) -> None:
    cams = data.cameras
    known = cams["heading"].notna()
    assert (known == cams["fov"].notna()).all() and (known == cams["range_m"].notna()).all()
    assert 0.55 < known.mean() < 0.65
    assert cams.loc[known, "heading"].between(0, 360).all()
    assert cams.loc[known, "fov"].between(30, 110).all()
    assert cams.loc[known, "range_m"].between(30, 150).all()
    assert cams["stream_slot"].between(0, 47).all()
    assert pd.api.types.is_integer_dtype(cams["stream_slot"])


def test_camera_names_and_tags(data: DemoDataset) -> None:
    cams = data.cameras
    town_names = dict(zip(data.towns["code"], data.towns["name"], strict=True))
    expected_town = cams["grid_code"].str[:9].map(town_names)
    assert (cams["name"].str.split("-").str[0] == expected_town).all()
    assert cams["name"].str.fullmatch(r".+-.+-\d{2,}").all()
    assert cams["name"].is_unique
    tags = cams["tags"]
    assert tags.map(lambda t: isinstance(t, list) and all(isinstance(x, str) for x in t)).all()
    crowd = tags.map(lambda t: "crowd" in t)
    assert crowd.mean() == pytest.approx(0.03, abs=0.005)
    assert tags[cams["source"] == "skynet"].map(lambda t: "road" in t or "key_place" in t).all()


def test_cameras_are_denser_where_people_are(full: DemoDataset) -> None:
    grids = full.grids.assign(km2=km2(full.grids))
    per_km2 = full.cameras.groupby("grid_code").size().reindex(grids["code"]).fillna(0)
    per_km2 = per_km2.to_numpy() / grids["km2"].to_numpy()
    urban = grids["kind"].to_numpy() == "urban"
    assert np.median(per_km2[urban]) > 5 * np.median(per_km2[~urban])
    # Sharp-eyes cameras reach nearly every grid that has houses (a few jitter
    # across a border into the neighbour).
    sharp = set(full.cameras.loc[full.cameras["source"] == "sharp_eyes", "grid_code"])
    lived_in = set(full.houses["grid_code"])
    assert len(lived_in & sharp) > 0.97 * len(lived_in)


# --- determinism and arguments ----------------------------------------------


def assert_same(a: DemoDataset, b: DemoDataset) -> None:
    """Assert that two data sets are identical, geometries vertex for vertex."""
    assert a.district.equals_exact(b.district, 0.0)
    for name in ("towns", "communities", "grids"):
        fa, fb = getattr(a, name), getattr(b, name)
        pd.testing.assert_frame_equal(fa.drop(columns="geometry"), fb.drop(columns="geometry"))
        assert shapely.equals_exact(fa.geometry.to_numpy(), fb.geometry.to_numpy(), 0.0).all()
    for name in (
        "workers",
        "houses",
        "key_person_counts",
        "key_places",
        "components",
        "cameras",
    ):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


def test_same_seed_same_data(small: DemoDataset) -> None:
    assert_same(small, generate(**SMALL))


def test_other_seed_other_data(small: DemoDataset) -> None:
    other = generate(1, houses=2_000, cameras=100)
    assert not small.grids.geometry.iloc[0].equals(other.grids.geometry.iloc[0])


def test_fewer_houses_keep_the_areas(full: DemoDataset, small: DemoDataset) -> None:
    pd.testing.assert_frame_equal(
        full.grids.drop(columns="geometry"), small.grids.drop(columns="geometry")
    )
    assert shapely.equals_exact(
        full.grids.geometry.to_numpy(), small.grids.geometry.to_numpy(), 0.0
    ).all()


def test_progress_bar_reports_stages(capsys: pytest.CaptureFixture[str]) -> None:
    generate(5, houses=1_000, cameras=20, progress=True)
    err = capsys.readouterr().err
    assert "demo data" in err and "cameras" in err


@pytest.mark.parametrize("kwargs", [{"houses": 0}, {"cameras": -1}])
def test_rejects_bad_sizes(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="houses must be positive"):
        generate(**kwargs)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), houses=st.integers(500, 3_000))
def test_any_seed_gives_930_grids_covering_the_district(seed: int, houses: int) -> None:
    d = generate(seed, houses=houses, cameras=50)
    assert len(d.grids) == 930
    assert_partition(d.grids, d.district)
    assert (d.grids["code"].str[:12] == d.grids["community_code"]).all()
    assert d.houses["residents"].sum() == round(houses * 2.16)
    assert len(d.cameras) == 50 and d.cameras["gb_id"].is_unique
    inside = shapely.contains_xy(
        grid_geoms(d, d.houses["grid_code"]), d.houses["lon"], d.houses["lat"]
    )
    assert inside.all()


@given(
    total=st.integers(0, 5_000),
    weights=st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=40),
)
def test_apportion_hits_the_total(total: int, weights: list[float]) -> None:
    counts = apportion(total, np.array(weights))
    assert counts.sum() == total
    assert (counts >= 0).all()
    if sum(weights) > 0:
        ideal = total * np.array(weights) / sum(weights)
        assert (np.abs(counts - ideal) < 1 + 1e-9).all()


def test_phone_numbers_are_recognisably_fake(full: DemoDataset) -> None:
    assert full.workers["phone"].map(lambda p: re.fullmatch(r"\d{11}", p) is not None).all()
    assert (full.workers["phone"].str[3:7] == "0000").all()
