"""The grid editing page: folium map, Geoman for drawing, and the editing panel."""

from __future__ import annotations

from typing import Any

from branca.element import CssLink, Element
from folium.plugins import GeoMan
from markupsafe import escape

from web import i18n
from web.assets import render_offline
from web.maps import GridmapGlue, PageShell, base_map

EDIT_JS = "/static/js/grid_edit.js"
EDIT_CSS = "/static/css/grid_edit.css"

i18n.register(
    {
        "ge_title": {"zh": "网格边界编辑", "en": "Grid boundary editing"},
        "ge_pick": {"zh": "在地图上点选一个网格", "en": "Click a grid on the map"},
        "ge_version": {"zh": "版本", "en": "Version"},
        "ge_reason": {"zh": "调整原因", "en": "Reason"},
        "ge_reason_hint": {"zh": "例如：按新建道路调整", "en": "e.g. follow the new road"},
        "ge_edit": {"zh": "编辑节点", "en": "Edit vertices"},
        "ge_save": {"zh": "保存", "en": "Save"},
        "ge_cancel": {"zh": "取消", "en": "Cancel"},
        "ge_split": {"zh": "画线拆分", "en": "Split by a line"},
        "ge_merge": {"zh": "合并", "en": "Merge with"},
        "ge_edge": {"zh": "调整共用边", "en": "Move shared edge with"},
        "ge_reassign": {"zh": "划归村居", "en": "Move to community"},
        "ge_neighbour": {"zh": "让出区域归属", "en": "Freed area goes to"},
        "ge_auto": {"zh": "自动（共用边最长的同村居网格）", "en": "Automatic (longest shared border)"},
        "ge_none": {"zh": "不让出", "en": "Do not free any area"},
        "ge_saved": {"zh": "已保存，版本 {v}", "en": "Saved: version {v}"},
        "ge_conflict": {
            "zh": "其他人已修改此网格，请重新加载",
            "en": "Someone else changed this grid — reload",
        },
        "ge_reload": {"zh": "重新加载", "en": "Reload"},
        "ge_history": {"zh": "历史版本", "en": "Version history"},
        "ge_show": {"zh": "查看", "en": "Show"},
        "ge_compare": {"zh": "与当前对比", "en": "Compare with current"},
        "ge_revert": {"zh": "恢复到此版本", "en": "Revert to this"},
        "ge_draw_line": {
            "zh": "请画一条穿过网格的线，双击结束",
            "en": "Draw a line across the grid; double-click to finish",
        },
        "ge_draw_edge": {
            "zh": "从共用边的一端画到另一端，双击结束",
            "en": "Draw from one end of the shared edge to the other; double-click to finish",
        },
        "ge_need_reason": {"zh": "请填写调整原因", "en": "Please give a reason"},
        "ge_working": {"zh": "正在提交…", "en": "Submitting…"},
        "ge_problem": {"zh": "问题区域已在地图上标出", "en": "The problem is shown on the map"},
        "ge_loaded_state": {"zh": "初始数据", "en": "As loaded"},
        "ge_current": {"zh": "当前", "en": "current"},
        "ge_retired": {"zh": "已撤销", "en": "retired"},
        "ge_choose": {"zh": "请选择", "en": "Choose"},
        "ge_kind_boundary": {"zh": "边界调整", "en": "Boundary"},
        "ge_kind_split": {"zh": "拆分", "en": "Split"},
        "ge_kind_merge": {"zh": "合并", "en": "Merge"},
        "ge_kind_edge": {"zh": "共用边", "en": "Shared edge"},
        "ge_kind_reassign": {"zh": "划归", "en": "Reassign"},
        "ge_kind_upload": {"zh": "文件导入", "en": "Upload"},
        "ge_kind_revert": {"zh": "恢复", "en": "Revert"},
        "ge_team": {"zh": "网格力量（1+1+Z+N）", "en": "Grid team (1+1+Z+N)"},
        "ge_team_name": {"zh": "姓名", "en": "Name"},
        "ge_team_phone": {"zh": "电话", "en": "Phone"},
        "ge_team_role": {"zh": "角色", "en": "Role"},
        "ge_team_add": {"zh": "添加成员", "en": "Add member"},
        "ge_team_remove": {"zh": "移出", "en": "Remove"},
        "ge_team_confirm": {"zh": "确认移出？", "en": "Remove? Click again"},
        "ge_team_move": {"zh": "调至网格…", "en": "Move to grid…"},
        "ge_team_saved": {"zh": "网格力量已更新", "en": "Team updated"},
        "ge_team_empty": {"zh": "暂无成员", "en": "No members yet"},
        "ge_team_taken_leader": {
            "zh": "该网格已有网格长：请先调离现任或改其角色",
            "en": "This grid already has a grid leader: move them or change their role first",
        },
        "ge_team_taken_full_time": {
            "zh": "该网格已有专职网格员：请先调离现任或改其角色",
            "en": "This grid already has a full-time grid worker: move them or change their role first",
        },
        "ge_team_complete": {"zh": "1+1 已配齐", "en": "1+1 complete"},
        "ge_team_stale": {
            "zh": "其他人已修改该成员，已重新加载",
            "en": "Someone else changed this member; reloaded",
        },
        "ge_gaps": {"zh": "力量缺额的网格", "en": "Grids with team gaps"},
        "ge_roster": {"zh": "导出网格力量花名册（CSV）", "en": "Download the team roster (CSV)"},
        "ge_roster_import": {"zh": "导入花名册", "en": "Import a roster"},
        "ge_export": {"zh": "导出边界（供 QGIS 使用）", "en": "Export boundaries (for QGIS)"},
        "ge_as_of": {"zh": "截至日期（留空为当前）", "en": "As of (empty: now)"},
        "ge_as_of_too_early": {"zh": "网格记录始于{day}，无更早的状态", "en": "The grid records begin on {day}; nothing earlier is known"},
        "ge_export_grids": {"zh": "网格", "en": "Grids"},
        "ge_export_communities": {"zh": "村居", "en": "Communities"},
        "ge_roster_done": {
            "zh": "花名册已导入：{grids} 个网格，新增 {added}，调整 {updated}，移出 {left}",
            "en": "Roster imported: {grids} grids, {added} added, {updated} changed, {left} removed",
        },
        "ge_roster_row": {"zh": "第 {row} 行", "en": "Row {row}"},
        "ge_gaps_none": {"zh": "辖区内网格均已配齐 1+1", "en": "Every grid in your area has its 1+1"},
        "ge_gaps_more": {"zh": "另有 {n} 个", "en": "{n} more"},
        "ge_new_gaps": {"zh": "请为 {code} 配备网格力量：{problems}",
                        "en": "Assign a team to {code}: {problems}"},
        "ge_offline": {"zh": "网络连接失败，未保存，请重试", "en": "Network error: not saved. Try again."},
        "ge_find": {"zh": "按编码或名称选择网格", "en": "Pick a grid by code or name"},
        "ge_find_hint": {"zh": "15 位网格编码或网格名称", "en": "15-digit grid code or grid name"},
        "ge_find_go": {"zh": "选择", "en": "Select"},
        "ge_find_bad": {"zh": "请输入 15 位网格编码或网格名称",
                        "en": "Enter a 15-digit grid code or a grid name"},
        "ge_find_none": {"zh": "您的辖区内没有网格 {code}", "en": "No grid {code} in your area"},
        "ge_find_no_name": {"zh": "您的辖区内没有名称含“{q}”的网格",
                            "en": "No grid in your area has “{q}” in its name"},
        "ge_find_many": {"zh": "有 {n} 个网格名称含“{q}”，请输入完整名称或编码",
                         "en": "{n} grids have “{q}” in their name: give the full name or the code"},
        "ge_finish_first": {"zh": "请先保存或取消当前编辑", "en": "Save or cancel the current edit first"},
        "ge_read_only": {"zh": "您的角色只能查看网格及其历史版本",
                         "en": "Your role may only view grids and their history"},
    }
)

EDIT_DOM = """
<aside id="ge-panel" class="ge-panel" aria-label="__PANEL_LABEL__">
  <h2 id="ge-title" class="ge-title"></h2>
  <form id="ge-find-form" class="ge-find" role="search" autocomplete="off" novalidate>
    <label id="ge-find-label" for="ge-find"></label>
    <div class="ge-row"><input id="ge-find" type="search" maxlength="60" enterkeyhint="go">
      <button id="ge-find-go" type="submit"></button></div>
  </form>
  <div id="ge-selected" class="ge-selected" data-code="" data-version=""></div>
  <p id="ge-read-only" class="ge-read-only" hidden></p>
  <div id="ge-tools" class="ge-tools">
  <label class="ge-field"><span id="ge-reason-label"></span>
    <input id="ge-reason" type="text" maxlength="500" autocomplete="off"></label>
  <div class="ge-row">
    <button id="ge-edit" type="button" disabled></button>
    <button id="ge-save" type="button" disabled></button>
    <button id="ge-cancel" type="button" disabled></button>
  </div>
  <div id="ge-confirm" class="ge-confirm" role="alertdialog" aria-labelledby="ge-confirm-text" hidden>
    <p id="ge-confirm-text"></p>
    <div class="ge-row"><button id="ge-confirm-discard" type="button"></button>
      <button id="ge-confirm-keep" type="button"></button></div>
  </div>
  <label class="ge-field"><span id="ge-neighbour-label"></span>
    <select id="ge-neighbour"></select></label>
  <div class="ge-row"><button id="ge-split" type="button" disabled></button></div>
  <div class="ge-row"><button id="ge-merge" type="button" disabled></button>
    <select id="ge-merge-with" aria-labelledby="ge-merge"></select></div>
  <div class="ge-row"><button id="ge-edge" type="button" disabled></button>
    <select id="ge-edge-with" aria-labelledby="ge-edge"></select></div>
  <div class="ge-row"><button id="ge-reassign" type="button" disabled></button>
    <select id="ge-community" aria-labelledby="ge-reassign"></select></div>
  </div>
  <div id="ge-message" class="ge-message" role="status" aria-live="polite"></div>
  <div id="ge-conflict" class="ge-conflict" role="alert" hidden>
    <span id="ge-conflict-text"></span>
    <button id="ge-reload" type="button"></button>
  </div>
  <section id="ge-team-box" class="ge-team-box" hidden>
    <h3 id="ge-team-title" class="ge-subtitle"></h3>
    <div id="ge-team-problems" class="ge-team-problems"></div>
    <ul id="ge-team" class="ge-team"></ul>
    <form id="ge-team-add" class="ge-team-add" autocomplete="off">
      <select id="ge-team-new-role" aria-labelledby="ge-team-title"></select>
      <input id="ge-team-new-name" type="text" maxlength="40" required>
      <input id="ge-team-new-phone" type="tel" maxlength="20" required>
      <button id="ge-team-add-btn" type="submit"></button>
    </form>
  </section>
  <h3 id="ge-history-title" class="ge-subtitle"></h3>
  <ol id="ge-history" class="ge-history"></ol>
  <h3 id="ge-gaps-title" class="ge-subtitle"></h3>
  <ul id="ge-gaps" class="ge-gaps"></ul>
  <h3 id="ge-export-title" class="ge-subtitle"></h3>
  <div class="ge-exports">
    <label class="ge-field"><span id="ge-as-of-label"></span><input id="ge-as-of" type="date"></label>
    <div class="ge-export-links" id="ge-export-links"></div>
  </div>
  <p class="ge-roster-row"><a id="ge-roster" class="ge-roster" href="/api/teams.csv" download></a>
    <label id="ge-roster-import" class="ge-roster-import"><span id="ge-roster-import-label"></span>
      <input id="ge-roster-file" type="file" accept=".csv,text/csv"></label></p>
</aside>
"""


def grid_edit_html(
    config: dict[str, Any], tile_url: str | None = None, csrf_token: str | None = None
) -> str:
    """Return the editing page: grids to pick, Geoman drawing tools, panel and history."""
    m = base_map(tile_url=tile_url, zoom=13)
    if csrf_token:
        # The glue sends it back as X-CSRFToken on every edit (Flask-WTF's header).
        m.get_root().header.add_child(
            Element(f'<meta name="csrf-token" content="{escape(csrf_token)}">'), name="csrf"
        )
    # Geoman brings its JS/CSS (served locally); the toolbar stays hidden because the
    # panel's buttons drive it, so every action goes through the same checked path.
    GeoMan(
        position="topright",
        drawMarker=False,
        drawCircleMarker=False,
        drawPolyline=False,
        drawRectangle=False,
        drawPolygon=False,
        drawCircle=False,
        drawText=False,
        editMode=False,
        dragMode=False,
        cutPolygon=False,
        removalMode=False,
        rotateMode=False,
    ).add_to(m)
    GridmapGlue(config).add_to(m)
    m.get_root().header.add_child(CssLink(EDIT_CSS), name="grid_edit_css")
    # The panel's landmark name is read out before the script runs: render it here.
    label = escape(i18n.translate("ge_title", config.get("lang") or "zh"))
    PageShell(EDIT_DOM.replace("__PANEL_LABEL__", label), EDIT_JS, "gridEdit.init").add_to(m)
    return render_offline(m)
