"""The crowd page (/crowd): live heat, a 24-hour replay, crowding by grid, and alerts."""

from __future__ import annotations

from typing import Any

from branca.element import JavascriptLink
from folium.plugins import HeatMap, HeatMapWithTime

from video.crowd import ReplayBins
from web import i18n
from web.assets import render_offline
from web.maps import GridmapGlue, PageShell, RemoteGeoJson, base_map

CROWD_JS = "/static/js/crowd.js"
REPLAY_HOURS = 24
REPLAY_STEP_S = 15 * 60
# The iso8601-js-period npm package ships iso8601.js only; the "iso8601" asset name in
# web.assets points at an iso8601.min.js that exists on CDNs but not in node_modules.
ISO8601_JS = "/vendor/npm/iso8601-js-period/iso8601.js"
# leaflet.heat's default ramp, starting at green so level A reads as calm.
HEAT_GRADIENT = {0.2: "#1a9850", 0.4: "#91cf60", 0.6: "#fee08b", 0.8: "#fc8d59", 1.0: "#d73027"}

i18n.register({
    "crowd_title": {"zh": "人员密集态势", "en": "Crowd density"},
    "crowd_heat": {"zh": "实时热力", "en": "Live heat"},
    "crowd_replay": {"zh": "24小时回放", "en": "24-hour replay"},
    "crowd_grids": {"zh": "网格拥挤程度", "en": "Crowding by grid"},
    "crowd_alerts": {"zh": "拥挤告警", "en": "Crowd alerts"},
    "crowd_alert_points": {"zh": "告警位置", "en": "Alert locations"},
    "crowd_points": {"zh": "监测点", "en": "Monitoring points"},
    "crowd_no_alerts": {"zh": "暂无未关闭的告警", "en": "No open alerts"},
    "crowd_ack": {"zh": "确认", "en": "Acknowledge"},
    "crowd_close": {"zh": "关闭", "en": "Close"},
    "crowd_note": {"zh": "处置说明", "en": "Note"},
    "crowd_note_required": {"zh": "关闭告警需填写处置说明", "en": "Closing an alert needs a note"},
    "crowd_state_open": {"zh": "待处理", "en": "Open"},
    "crowd_state_acknowledged": {"zh": "已确认", "en": "Acknowledged"},
    "crowd_state_closed": {"zh": "已关闭", "en": "Closed"},
    "crowd_cleared": {"zh": "人群已消散", "en": "Crowd has dispersed"},
    "crowd_density": {"zh": "密度", "en": "Density"},
    "crowd_per_m2": {"zh": "人/平方米", "en": "persons/m²"},
    "crowd_people": {"zh": "人数", "en": "People"},
    "crowd_level": {"zh": "服务水平", "en": "Level of service"},
    "crowd_level_A": {"zh": "A 自由通行", "en": "A free flow"},
    "crowd_level_B": {"zh": "B 基本自由", "en": "B minor conflicts"},
    "crowd_level_C": {"zh": "C 略有拥挤", "en": "C some restriction"},
    "crowd_level_D": {"zh": "D 拥挤", "en": "D restricted"},
    "crowd_level_E": {"zh": "E 严重拥挤", "en": "E severely restricted"},
    "crowd_level_F": {"zh": "F 极度拥挤", "en": "F critical"},
    "crowd_updated": {"zh": "更新于 {t}", "en": "Updated {t}"},
    "crowd_points_n": {"zh": "{n} 个监测点", "en": "{n} monitoring points"},
    "crowd_peak": {"zh": "峰值", "en": "Peak"},
    "crowd_crush": {"zh": "有踩踏风险", "en": "Crush risk"},
    "crowd_nearest": {"zh": "附近摄像头", "en": "Nearby cameras"},
    "crowd_snapshot": {"zh": "告警截图", "en": "Alert snapshot"},
    "crowd_raised": {"zh": "发生于 {t}", "en": "Raised {t}"},
    "crowd_sees": {"zh": "可视", "en": "sees it"},
    "crowd_action_failed": {"zh": "操作失败", "en": "Action failed"},
    "crowd_source_camera": {"zh": "视频估算", "en": "Camera estimate"},
    "crowd_source_sensor": {"zh": "客流传感器", "en": "Flow sensor"},
    "crowd_fps": {"zh": "{n}帧/秒", "en": "{n} fps"},
})

class ReplayHeatMap(HeatMapWithTime):
    """folium's HeatMapWithTime, loading the iso8601 library from its real local file."""

    default_js = [(name, url) for name, url in HeatMapWithTime.default_js if name != "iso8601"]

    def render(self, **kwargs: Any) -> None:
        """Put the iso8601 script ahead of leaflet-timedimension, which needs it."""
        self.get_root().header.add_child(JavascriptLink(ISO8601_JS), name="iso8601_local")
        super().render(**kwargs)


CROWD_DOM = """
<style>
.crowd-panel { width: 300px; max-height: calc(100vh - 380px); overflow-y: auto;  /* clear of the legend below */
  background: rgba(255,255,255,0.96); border-radius: 6px; box-shadow: 0 1px 6px rgba(0,0,0,0.25);
  font-size: 13px; }
.crowd-panel h2 { font-size: 15px; margin: 0; border-bottom: 1px solid #e3e6ea; }
.crowd-panel-head { display: block; width: 100%; padding: 8px 10px; border: none; background: transparent;
  font: inherit; font-weight: 700; color: inherit; text-align: left; cursor: pointer; }
.crowd-panel.collapsed > :not(h2) { display: none; }
.crowd-panel.collapsed h2 { border-bottom: none; }
@media (max-width: 600px) { .crowd-panel { width: min(300px, calc(100vw - 24px)); max-height: 45vh; } }
.crowd-status { padding: 4px 10px; color: #555; font-size: 12px; }
.crowd-alerts { list-style: none; margin: 0; padding: 0; }
.crowd-alert { padding: 8px 10px; border-top: 1px solid #eef0f3; }
.crowd-alert-head { display: flex; gap: 6px; align-items: center; }
.crowd-alert-place { font-weight: 600; flex: 1; cursor: pointer; }
.crowd-badge { display: inline-block; min-width: 18px; padding: 0 4px; border-radius: 3px; color: #fff;
  text-align: center; font-weight: 700; }
.crowd-meta { color: #555; margin: 2px 0; }
.crowd-crush { color: #b2182b; font-weight: 700; }
.crowd-actions { display: flex; gap: 6px; margin-top: 4px; }
.crowd-actions input { flex: 1; min-width: 0; }
.crowd-empty { padding: 10px; color: #666; }
.crowd-legend { background: rgba(255,255,255,0.94); padding: 6px 8px; border-radius: 4px; font-size: 12px; }
.crowd-legend-row { display: flex; align-items: center; gap: 6px; }
.crowd-swatch { width: 14px; height: 10px; display: inline-block; }
.crowd-popup img { width: 280px; display: block; background: #222; margin: 4px 0; }
/* leaflet-timedimension draws its buttons with the Glyphicons web font from a CDN;
   plain Unicode symbols keep the page offline (no font is ever requested). */
.leaflet-bar-timecontrol .leaflet-control-timecontrol:before { font-family: inherit; }
.timecontrol-play:before, .timecontrol-play.reverse:before { content: "\\25B6"; }
.timecontrol-play.pause:before { content: "\\275A\\275A"; }
a.timecontrol-play.loading:before, .timecontrol-date.loading:before { content: "\\21BB"; }
.timecontrol-speed:before { content: "\\00BB"; }
.timecontrol-stop:before { content: "\\25A0"; }
.timecontrol-forward:before { content: "\\25B8\\25B8"; }
.timecontrol-backward:before { content: "\\25C2\\25C2"; }
.timecontrol-loop:before { content: "\\21BA"; }
/* The speed is said in words ("3帧/秒"): room for them beside the control's » sign. */
.leaflet-bar-timecontrol .timecontrol-speed .speed { width: 80px; padding: 0 4px 0 20px;  /* up to "10帧/秒" */
  box-sizing: border-box; }
</style>
<aside id="crowd-panel" class="crowd-panel" aria-live="polite">
  <h2><button type="button" id="crowd-panel-title" class="crowd-panel-head" aria-expanded="true"></button></h2>
  <div id="crowd-status" class="crowd-status"></div>
  <ol id="crowd-alerts" class="crowd-alerts"></ol>
</aside>
"""


def crowd_map_html(config: dict[str, Any], replay: ReplayBins,
                   tile_url: str | None = None) -> str:
    """Return the crowd page: heat (refreshed by crowd.js), replay, grid choropleth, alerts."""
    messages = config["i18n"]
    m = base_map(tile_url=tile_url, zoom=12)
    # Both heat layers start empty or embedded and are put in the layer list by
    # crowd.js, which also owns their refreshing and keeps them mutually exclusive.
    live = HeatMap([], name=messages["crowd_heat"], radius=28, blur=20, min_opacity=0.35,
                   max_zoom=15, gradient=HEAT_GRADIENT, control=False)
    live.add_to(m)
    # HeatMapWithTime embeds its frames and has no loader: the page carries empty steps
    # with their labels, and crowd.js fills them from /api/crowd/replay when the replay
    # is switched on (24 hours of readings are ~0.7 MB and ~0.3 s of database work at
    # the demo scale, too much to pay on every page load).
    frames: list[list] = [[] for _ in replay.starts]
    timed = ReplayHeatMap(frames, index=list(replay.labels), name=messages["crowd_replay"],
                          radius=28,
                            max_opacity=0.75, gradient=HEAT_GRADIENT, position="bottomleft",
                            show=False, control=False, min_speed=1, max_speed=10,
                            speed_step=1)
    timed.add_to(m)
    RemoteGeoJson("/api/areas/towns.geojson", name=messages["towns"], kind="towns",
                  interactive=False).add_to(m)
    page = dict(config)
    page["crowd"] = {
        **config.get("crowd", {}),
        "heat_layer": live.get_name(),
        "replay_layer": timed.get_name(),
        "replay_control": timed._control_name,
        "replay_frames": len(frames),
        "replay_url": f"/api/crowd/replay?hours={REPLAY_HOURS}&step={replay.step_s}s",
    }
    GridmapGlue(page).add_to(m)
    PageShell(CROWD_DOM, CROWD_JS, "gridmapCrowd.init").add_to(m)
    return render_offline(m)


def register_wall_layers() -> None:
    """Offer the crowd layers on the map wall (call once, e.g. from the app factory)."""
    from web.wall import WallLayer, register_layer

    # The wall's renderers: "heat" reads the `points` member of heat.geojson;
    # "grid_values" colours grids by `calm` (1 = level A) on its good-is-green ramp;
    # "geojson" draws alert points titled by their place.
    register_layer(WallLayer("crowd_grids", "crowd_grids", "grid_values", "/api/crowd/grids.json",
                             requires="/api/crowd/grids.json", refresh_s=60,
                             options={"property": "calm", "legend": "crowd_level"}))
    register_layer(WallLayer("crowd_heat", "crowd_heat", "heat", "/api/crowd/heat.geojson",
                             requires="/api/crowd/heat.geojson", refresh_s=30))
    register_layer(WallLayer("crowd_alerts", "crowd_alerts", "geojson", "/api/alerts.geojson",
                             requires="/api/alerts.geojson", refresh_s=20,
                             options={"color": "#d73027"}))
