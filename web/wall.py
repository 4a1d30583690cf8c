"""The map wall page: a folium shell whose layers come from a registry.

Each entry of ``LAYERS`` is one layer of the wall's layer list; ``wall.js`` has a
renderer per ``kind``. A layer or panel section whose API is not routed in this app
is left out of the page, so features that arrive later (crowd heat, alerts, open
matters, dispatch orders) plug in with one ``register_layer`` /
``register_section`` call each, and the page never shows empty placeholders::

    register_layer(WallLayer("matters", "wall_layer_matters", "geojson", "/api/matters.geojson",
                             requires="/api/matters.geojson", refresh_s=30))
    register_section(PanelSection("matters", "grid", "wall_matters",
                                  "/api/grids/{code}/matters",
                                  requires="/api/grids/370812001001001/matters"))

Renderer contracts (wall.js): ``geojson`` draws any FeatureCollection (points as
dots, tooltips from ``properties.name`` or ``title``); ``heat`` expects
``{"points": [[lon, lat, weight], ...]}``; ``bbox`` layers get ``?bbox=w,s,e,n``;
``grid_values`` expects a list of ``{"key": grid code, <value>: number}`` (with
``options.flag`` every listed grid carries a yes/no mark: one legend swatch). A panel
section's URL returns a list (or ``{"items": [...]}``) of objects with ``title`` or
``name`` and optional ``time``/``status``, or one object shown as a table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from branca.element import CssLink, Element, JavascriptLink
from flask import Flask
from folium.plugins import Fullscreen
from markupsafe import escape
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from web import i18n
from web.assets import render_offline
from web.maps import GridmapGlue, PageShell, base_map

WALL_JS = "/static/js/wall.js"
WALL_CSS = "/static/css/wall.css"
SUPERCLUSTER_JS = "/vendor/npm/supercluster/dist/supercluster.min.js"
HEAT_JS = "/vendor/folium/leaflet_heat.min.js"
LAYER_KINDS = (
    "boundaries",
    "grids",
    "cameras",
    "choropleth",
    "grid_values",
    "bbox",
    "geojson",
    "heat",
)
SAMPLE_GB_ID = "00000000000000000000"


@dataclass(frozen=True)
class WallLayer:
    """One entry of the wall's layer list (listed top layer first; panes set the stacking)."""

    key: str
    title: str  # i18n message key
    kind: str  # a renderer in wall.js, one of LAYER_KINDS
    url: str
    requires: str | None = None  # a concrete path that must be routed to offer the layer
    default_on: bool = False
    min_zoom: int | None = None
    refresh_s: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"unknown wall layer kind {self.kind!r}")


@dataclass(frozen=True)
class PanelSection:
    """An extra section of the grid or camera side panel, fetched from ``url``."""

    key: str
    target: str  # "grid" ({code} in url) or "camera" ({gb_id} in url)
    title: str  # i18n message key
    url: str
    requires: str | None = None


LAYERS: list[WallLayer] = [
    WallLayer(
        "towns",
        "towns",
        "boundaries",
        "/api/areas/towns.geojson",
        default_on=True,
        options={"level": "town", "labels_max_zoom": 12},
    ),
    WallLayer(
        "communities",
        "communities",
        "boundaries",
        "/api/areas/communities.geojson",
        default_on=True,
        options={"level": "community", "labels_min_zoom": 14, "labels_max_zoom": 14},
    ),
    WallLayer(
        "coverage",
        "wall_layer_coverage",
        "choropleth",
        "/api/coverage/grids.geojson",
        options={"property": "area_share", "legend": "wall_coverage_share"},
    ),
    WallLayer(
        "online_rate",
        "wall_layer_online_rate",
        "grid_values",
        "/api/health/rollup?level=grid",
        requires="/api/health/rollup",
        refresh_s=60,
        options={"property": "online_rate", "legend": "wall_online_rate"},
    ),
    WallLayer(
        "grids",
        "grids",
        "grids",
        "/api/grids.geojson",
        default_on=True,
        options={"labels_min_zoom": 15},
    ),
    WallLayer(
        "blind",
        "wall_layer_blind",
        "bbox",
        "/api/coverage/blind.geojson",
        min_zoom=15,
        options={"color": "#e6550d"},
    ),
    WallLayer(
        "sectors",
        "wall_layer_sectors",
        "bbox",
        "/api/cameras/sectors.geojson",
        min_zoom=16,
        options={"color": "#3182bd"},
    ),
    WallLayer("cameras", "cameras", "cameras", "/api/cameras/layer.json", default_on=True),
    # Crowd monitoring (issue: crowd density and alerts): one entry each.
    WallLayer(
        "crowding",
        "wall_layer_crowding",
        "grid_values",
        "/api/crowd/grids.json",
        requires="/api/crowd/grids.json",
        refresh_s=60,
        options={"property": "calm", "legend": "wall_crowd_calm", "missing": "none"},
    ),
    WallLayer(
        "crowd_heat",
        "wall_layer_crowd_heat",
        "heat",
        "/api/crowd/heat.geojson",
        requires="/api/crowd/heat.geojson",
        refresh_s=30,
    ),
    WallLayer(
        "alerts",
        "wall_layer_alerts",
        "geojson",
        "/api/alerts.geojson",
        requires="/api/alerts.geojson",
        default_on=True,
        refresh_s=15,
        options={"color": "#e31a1c"},
    ),
]

SECTIONS: list[PanelSection] = []

# Optional APIs the page adapts to: the key is sent to wall.js, the path is probed.
FEATURES = {
    "status_feed": "/api/cameras/status.json",
    "snapshot": f"/api/cameras/{SAMPLE_GB_ID}/snapshot.jpg",
    "health": f"/api/cameras/{SAMPLE_GB_ID}/health",
    "live_view": f"/cameras/{SAMPLE_GB_ID}/live",
}


def register_layer(layer: WallLayer) -> None:
    """Add a layer to the wall (replacing one with the same key)."""
    LAYERS[:] = [entry for entry in LAYERS if entry.key != layer.key] + [layer]


def register_section(section: PanelSection) -> None:
    """Add a side-panel section (replacing one with the same key)."""
    if section.target not in ("grid", "camera"):
        raise ValueError("a panel section's target is 'grid' or 'camera'")
    SECTIONS[:] = [entry for entry in SECTIONS if entry.key != section.key] + [section]


def is_routed(app: Flask, path: str) -> bool:
    """Return whether a GET of ``path`` reaches a route whose last segment matches."""
    adapter = app.url_map.bind("localhost")
    try:
        rule, _args = adapter.match(path.split("?")[0], method="GET", return_rule=True)
    except (HTTPException, RequestRedirect):
        return False
    # '/api/cameras/status.json' also matches '/api/cameras/<gb_id>': demand the literal.
    return rule.rule.rsplit("/", 1)[-1] == path.split("?")[0].rsplit("/", 1)[-1]


def wall_options(app: Flask) -> dict[str, Any]:
    """Return the layers, sections and optional features this app offers (cached)."""
    cached = app.extensions.get("gridmap.wall")
    if cached is None:
        cached = {
            "layers": [
                asdict(layer)
                for layer in LAYERS
                if layer.requires is None or is_routed(app, layer.requires)
            ],
            "sections": [
                asdict(section)
                for section in SECTIONS
                if section.requires is None or is_routed(app, section.requires)
            ],
            "features": {key: is_routed(app, path) for key, path in FEATURES.items()},
        }
        app.extensions["gridmap.wall"] = cached
    return cached


class WallShell(PageShell):
    """The wall's DOM and script, plus its stylesheet and the clustering library."""

    def __init__(self, body_html: str, heat: bool = False, preload: tuple[str, ...] = ()) -> None:
        super().__init__(body_html, WALL_JS, "gridmapWall.init")
        self.heat = heat
        self.preload = preload

    def render(self, **kwargs: Any) -> None:
        """Add the assets after the glue's, so wall.css overrides gridmap.css."""
        figure = self.get_root()
        # The default layers' data starts downloading with the scripts, not after them;
        # wall.js's fetch() (same URL, CORS mode, same-origin credentials) reuses it.
        for n, url in enumerate(self.preload):
            link = f'<link rel="preload" href="{escape(url)}" as="fetch" crossorigin="anonymous">'
            figure.header.add_child(Element(link), name=f"wall_preload_{n}", index=0)
        figure.header.add_child(JavascriptLink(SUPERCLUSTER_JS), name="supercluster_js")
        if self.heat:
            figure.header.add_child(JavascriptLink(HEAT_JS), name="leaflet_heat_js")
        figure.header.add_child(CssLink(WALL_CSS), name="wall_css")
        super().render(**kwargs)


WALL_DOM = """
<header id="wall-bar" class="wall-bar">
  <span id="wall-bar-title" class="wall-bar-title"></span>
  <span id="wall-caption" class="wall-caption"></span>
  <span id="wall-live" class="wall-live"></span>
  <span id="wall-clock" class="wall-clock"></span>
  <button id="wall-tour" class="wall-btn" type="button"></button>
  <button id="wall-mode" class="wall-btn" type="button"></button>
</header>
<div id="wall-stale" class="wall-stale" role="status" aria-live="polite"></div>
<aside id="wall-panel" class="wall-panel" hidden aria-live="polite">
  <button id="wall-panel-close" class="wall-panel-close" type="button">×</button>
  <div id="wall-panel-body" class="wall-panel-body"></div>
</aside>
"""


def wall_map_html(
    config: dict[str, Any], tile_url: str | None = None, tile_attribution: str = ""
) -> str:
    """Return the map wall page: vector layers from the API, no internet assets."""
    m = base_map(tile_url=tile_url, tile_attribution=tile_attribution)
    # base_map's zoom limits only reach a tile layer, and there is none by default;
    # quarter zoom steps let the district and each toured town fill the screen.
    m.options.update(min_zoom=9, max_zoom=19, zoom_snap=0.25, zoom_delta=0.5)
    messages = config["i18n"]
    Fullscreen(
        position="topleft",
        title=messages["wall_fullscreen"],
        title_cancel=messages["wall_exit_fullscreen"],
        force_separate_button=True,
    ).add_to(m)
    GridmapGlue(config).add_to(m)
    layers = config["wall"]["layers"]
    heat = any(layer["kind"] == "heat" for layer in layers)
    preload = tuple(
        layer["url"]
        for layer in layers
        if layer["default_on"] and layer["kind"] in ("boundaries", "grids", "cameras")
    )
    WallShell(WALL_DOM, heat=heat, preload=preload).add_to(m)
    return render_offline(m)


i18n.register(
    {
        "wall_title": {"zh": "兖州区网格化指挥大屏", "en": "Yanzhou command map wall"},
        "wall_search_placeholder": {
            "zh": "搜索网格编码/名称、村居、摄像头编码/名称、场所",
            "en": "Grid code or name, community, camera ID or name, place",
        },
        "wall_search_none": {"zh": "未找到匹配结果", "en": "No matches"},
        "wall_search_invalid": {
            "zh": "只能输入文字、数字、空格和 - · . ( ) # / 、 +",
            "en": "Use letters, digits, spaces and - · . ( ) # / 、 + only",
        },
        "wall_search_too_long": {"zh": "最多 40 个字符", "en": "At most 40 characters"},
        "wall_type_grid": {"zh": "网格", "en": "Grid"},
        "wall_type_community": {"zh": "村居", "en": "Community"},
        "wall_type_town": {"zh": "镇街", "en": "Town"},
        "wall_type_camera": {"zh": "摄像头", "en": "Camera"},
        "wall_type_place": {"zh": "场所", "en": "Place"},
        "wall_layers": {"zh": "图层", "en": "Layers"},
        "wall_layer_coverage": {"zh": "视频覆盖率", "en": "Video coverage"},
        "wall_layer_online_rate": {"zh": "摄像头在线率", "en": "Camera online rate"},
        "wall_layer_blind": {"zh": "监控盲区", "en": "Blind spots"},
        "wall_layer_sectors": {"zh": "摄像头视域", "en": "Camera fields of view"},
        "wall_layer_crowding": {"zh": "网格人员密集度", "en": "Crowding per grid"},
        "wall_layer_crowd_heat": {"zh": "人员密度热力", "en": "Crowd heat"},
        "wall_layer_alerts": {"zh": "人员聚集预警", "en": "Crowd alerts"},
        "wall_crowd_calm": {"zh": "宽松程度（绿色为宽松）", "en": "Calm (green = uncrowded)"},
        "wall_filter_source": {"zh": "来源", "en": "Source"},
        "wall_filter_status": {"zh": "状态", "en": "Status"},
        "wall_filter_tag": {"zh": "标签", "en": "Tag"},
        "wall_color_by": {"zh": "着色", "en": "Colour by"},
        "wall_color_status": {"zh": "按状态", "en": "Status"},
        "wall_color_source": {"zh": "按来源", "en": "Source"},
        "wall_legend": {"zh": "图例", "en": "Legend"},
        "wall_zoom_hint": {"zh": "放大到 {z} 级显示", "en": "Zoom to {z}+ to show"},
        "wall_close": {"zh": "关闭", "en": "Close"},
        "wall_base_counts": {"zh": "基础数据", "en": "Base counts"},
        "wall_key_person_categories": {"zh": "重点人员分类", "en": "Key persons by category"},
        # Key-person categories, by the names geodata/generator.py stores (wall.js
        # shows a category without an entry here as it is stored).
        "wall_kpc_严重精神障碍患者": {"zh": "严重精神障碍患者", "en": "Severe mental illness"},
        "wall_kpc_刑满释放人员": {"zh": "刑满释放人员", "en": "Released prisoners"},
        "wall_kpc_困境儿童": {"zh": "困境儿童", "en": "Children in difficulty"},
        "wall_kpc_残疾人": {"zh": "残疾人", "en": "People with disabilities"},
        "wall_kpc_独居老人": {"zh": "独居老人", "en": "Elderly living alone"},
        "wall_kpc_留守老人": {"zh": "留守老人", "en": "Left-behind elderly"},
        "wall_kpc_社区矫正对象": {"zh": "社区矫正对象", "en": "Under community correction"},
        "wall_grid_cameras": {"zh": "网格内摄像头", "en": "Cameras in this grid"},
        "wall_online_rate": {"zh": "在线率", "en": "Online rate"},
        "wall_coverage_share": {"zh": "覆盖面积比例", "en": "Share of area covered"},
        "wall_show_cameras": {"zh": "显示摄像头", "en": "Show cameras"},
        "wall_zoom_to": {"zh": "定位", "en": "Zoom to"},
        "wall_phone": {"zh": "电话", "en": "Phone"},
        "wall_no_workers": {"zh": "未登记网格员", "en": "No grid workers registered"},
        "wall_cameras_total": {"zh": "共 {n} 个", "en": "{n} in total"},
        "wall_not_checked": {"zh": "未检测", "en": "not checked yet"},
        "wall_no_grid_cameras": {"zh": "网格内没有摄像头", "en": "No camera in this grid"},
        "wall_snapshot": {"zh": "最新截图", "en": "Latest snapshot"},
        "wall_snapshot_age": {"zh": "{age}前截取", "en": "taken {age} ago"},
        "wall_health_history": {"zh": "状态记录", "en": "Status history"},
        "wall_no_history": {"zh": "尚无状态变化记录", "en": "No status changes recorded"},
        "wall_status_since": {"zh": "自 {t} 起", "en": "since {t}"},
        "wall_last_sample": {"zh": "最近检测", "en": "Last checked"},
        "wall_source": {"zh": "来源", "en": "Source"},
        "wall_owner": {"zh": "权属单位", "en": "Owner"},
        "wall_status": {"zh": "状态", "en": "Status"},
        "wall_tags": {"zh": "标签", "en": "Tags"},
        "wall_gb_id": {"zh": "国标编码", "en": "GB ID"},
        "wall_grid": {"zh": "所属网格", "en": "Grid"},
        "wall_position": {"zh": "位置", "en": "Position"},
        "wall_nearby": {"zh": "附近摄像头", "en": "Nearby cameras"},
        "wall_nearby_here": {"zh": "此处附近摄像头", "en": "Cameras near this spot"},
        "wall_no_nearby": {"zh": "300 米内没有其他摄像头", "en": "No other camera within 300 m"},
        "wall_to_videowall": {"zh": "全部上视频墙", "en": "All on the video wall"},
        "wall_live_unavailable": {"zh": "实时视频暂未接入", "en": "Live view not available yet"},
        "wall_age_s": {"zh": "{n}秒", "en": "{n} s"},
        "wall_age_m": {"zh": "{n}分钟", "en": "{n} min"},
        "wall_age_h": {"zh": "{n}小时", "en": "{n} h"},
        "wall_age_d": {"zh": "{n}天", "en": "{n} d"},
        "wall_live": {"zh": "实时", "en": "Live"},
        # A layer whose latest refresh failed: still drawn, from the data of {t}.
        "wall_stale": {"zh": "{layer}数据未更新 · 最后更新 {t}", "en": "{layer} not updated · last updated {t}"},
        "wall_stale_never": {"zh": "{layer}未能加载", "en": "{layer} could not be loaded"},
        "wall_updated": {"zh": "状态更新于 {t}", "en": "Status updated {t}"},
        "wall_changed_n": {"zh": "{n} 个摄像头状态变化", "en": "{n} camera status changes"},
        "wall_mode_wall": {"zh": "大屏模式", "en": "Wall mode"},
        "wall_mode_desk": {"zh": "值守模式", "en": "Desk mode"},
        "wall_tour_start": {"zh": "开始轮播", "en": "Start tour"},
        "wall_tour_stop": {"zh": "停止轮播", "en": "Stop tour"},
        "wall_whole_district": {"zh": "兖州区全域", "en": "Whole district"},
        "wall_whole_scope": {"zh": "辖区全域", "en": "Whole jurisdiction"},
        "wall_fullscreen": {"zh": "全屏", "en": "Full screen"},
        "wall_exit_fullscreen": {"zh": "退出全屏", "en": "Exit full screen"},
        "wall_coords": {"zh": "经纬度", "en": "Lon/lat"},
        "wall_kind": {"zh": "类型", "en": "Kind"},
        "wall_tag_community": {"zh": "社区", "en": "Community"},
        "wall_tag_key_place": {"zh": "重点场所", "en": "Key place"},
        "wall_tag_intersection": {"zh": "路口", "en": "Intersection"},
        "wall_tag_road": {"zh": "道路", "en": "Road"},
        "wall_tag_river": {"zh": "河道", "en": "River"},
        "wall_tag_crowd": {"zh": "人员密集", "en": "Crowded place"},
        "wall_tag_village": {"zh": "村庄", "en": "Village"},
        "wall_place_bank": {"zh": "银行", "en": "Bank"},
        "wall_place_factory": {"zh": "工厂", "en": "Factory"},
        "wall_place_government": {"zh": "机关单位", "en": "Government"},
        "wall_place_hospital": {"zh": "医疗机构", "en": "Clinic/hospital"},
        "wall_place_hotel": {"zh": "宾馆酒店", "en": "Hotel"},
        "wall_place_market": {"zh": "市场", "en": "Market"},
        "wall_place_park": {"zh": "公园", "en": "Park"},
        "wall_place_school": {"zh": "学校", "en": "School"},
        "wall_place_square": {"zh": "广场", "en": "Square"},
        "wall_place_station": {"zh": "车站", "en": "Station"},
        "wall_kind_street": {"zh": "街道", "en": "Street"},
        "wall_kind_town": {"zh": "镇", "en": "Town"},
        "wall_kind_community": {"zh": "社区", "en": "Community"},
        "wall_kind_village": {"zh": "村", "en": "Village"},
    }
)
