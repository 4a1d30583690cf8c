"""The operators' matters pages: the workbench (/matters) and one matter (/matters/<id>).

Both are folium maps like the other pages: the page carries only its DOM shell and
options; web/static/js/matters.js fetches everything from the matters JSON API
(``web/blueprints/matters.py``) and renders every user-supplied string as text.
"""

from __future__ import annotations

import re
from typing import Any

from branca.element import CssLink
from flask import Blueprint, Response, current_app, g
from markupsafe import escape

from gridmap import matters
from gridmap.errors import NotFound
from gridmap.matter_models import MATTER_SOURCES, MATTER_STATES, SUPERVISION_KINDS
from web import i18n
from web.assets import render_offline
from web.auth import current_actor
from web.database import get_session
from web.i18n import catalog, translate
from web.maps import GridmapGlue, PageShell, RemoteGeoJson, base_map

MATTERS_JS = "/static/js/matters.js"
MATTERS_CSS = "/static/css/matters.css"

bp = Blueprint("matters_page", __name__)

i18n.register({
    "mt_nav": {"zh": "事项", "en": "Matters"},
    "mt_title": {"zh": "事项受理与办理", "en": "Matters workbench"},
    "mt_detail_title": {"zh": "事项详情", "en": "Matter"},
    "mt_layer": {"zh": "未结事项", "en": "Open matters"},
    "mt_cameras_layer": {"zh": "可视摄像头", "en": "Cameras that see it"},
    "mt_tab_list": {"zh": "事项列表", "en": "Matters"},
    "mt_tab_new": {"zh": "上报事项", "en": "Report a matter"},
    "mt_all": {"zh": "全部", "en": "All"},
    "mt_open": {"zh": "未结案", "en": "Open"},
    "mt_f_state": {"zh": "状态", "en": "State"},
    "mt_f_flag": {"zh": "时限", "en": "Deadline"},
    "mt_f_category": {"zh": "类别", "en": "Category"},
    "mt_f_area": {"zh": "区域", "en": "Area"},
    "mt_f_q": {"zh": "搜索", "en": "Search"},
    "mt_f_q_hint": {"zh": "编号、标题、地址", "en": "Ref, title, address"},
    "mt_f_overdue": {"zh": "已超期", "en": "Overdue"},
    "mt_f_due_soon": {"zh": "即将到期", "en": "Due soon"},
    "mt_count": {"zh": "共 {n} 件", "en": "{n} matters"},
    "mt_none": {"zh": "没有符合条件的事项", "en": "No matters match"},
    "mt_more": {"zh": "加载更多", "en": "Load more"},
    "mt_refresh": {"zh": "刷新", "en": "Refresh"},
    # the five steps and the states
    "mt_step_report": {"zh": "上报", "en": "Report"},
    "mt_step_transfer": {"zh": "转办", "en": "Transfer"},
    "mt_step_handle": {"zh": "处置", "en": "Handle"},
    "mt_step_verify": {"zh": "核实", "en": "Verify"},
    "mt_step_close": {"zh": "结案", "en": "Close"},
    "mt_state_reported": {"zh": "待分拨", "en": "Reported"},
    "mt_state_transferred": {"zh": "待受理", "en": "Transferred"},
    "mt_state_handling": {"zh": "处置中", "en": "Handling"},
    "mt_state_handled": {"zh": "待核实", "en": "Handled"},
    "mt_state_verified": {"zh": "已核实", "en": "Verified"},
    "mt_state_closed": {"zh": "已结案", "en": "Closed"},
    "mt_urgent": {"zh": "紧急", "en": "Urgent"},
    "mt_routine": {"zh": "一般", "en": "Routine"},
    "mt_overdue": {"zh": "超期", "en": "Overdue"},
    "mt_due_soon": {"zh": "即将到期", "en": "Due soon"},
    "mt_legend": {"zh": "图例", "en": "Legend"},
    "mt_legend_urgent": {"zh": "大圆点：紧急", "en": "Large dot: urgent"},
    "mt_escalated": {"zh": "已提级", "en": "Escalated"},
    "mt_redo": {"zh": "返工 {n} 次", "en": "Redone {n}×"},
    # sources
    "mt_src_grid_worker": {"zh": "网格员上报", "en": "Grid worker"},
    "mt_src_hotline_12345": {"zh": "12345热线", "en": "12345 hotline"},
    "mt_src_emergency_110": {"zh": "110", "en": "110 police"},
    "mt_src_emergency_119": {"zh": "119", "en": "119 fire"},
    "mt_src_emergency_120": {"zh": "120", "en": "120 ambulance"},
    "mt_src_emergency_122": {"zh": "122", "en": "122 traffic"},
    "mt_src_video_patrol": {"zh": "视频巡查", "en": "Video patrol"},
    "mt_src_crowd_alert": {"zh": "人群密集告警", "en": "Crowd alert"},
    "mt_src_open311": {"zh": "市民应用", "en": "Citizen app"},
    "mt_src_other": {"zh": "其他", "en": "Other"},
    # intake form
    "mt_source": {"zh": "来源", "en": "Source"},
    "mt_worker": {"zh": "上报网格员", "en": "Reporting grid worker"},
    "mt_worker_none": {"zh": "（不指定）", "en": "(not named)"},
    "mt_worker_pick": {"zh": "先在地图上选定位置", "en": "Pick the spot on the map first"},
    "mt_worker_left": {"zh": "（已离岗）", "en": "(left the team)"},
    "mt_source_ref": {"zh": "原始单号", "en": "Original ticket no."},
    "mt_category": {"zh": "事项类别", "en": "Category"},
    "mt_choose": {"zh": "请选择", "en": "Choose"},
    "mt_location": {"zh": "位置", "en": "Location"},
    "mt_location_hint": {"zh": "在地图上点选，或输入经纬度", "en": "Click the map or type coordinates"},
    "mt_lon": {"zh": "经度", "en": "Longitude"},
    "mt_lat": {"zh": "纬度", "en": "Latitude"},
    "mt_field_title": {"zh": "标题", "en": "Title"},
    "mt_description": {"zh": "问题描述", "en": "Description"},
    "mt_address": {"zh": "地址", "en": "Address"},
    "mt_urgency": {"zh": "紧急程度", "en": "Urgency"},
    "mt_reporter": {"zh": "反映人", "en": "Reporter"},
    "mt_reporter_name": {"zh": "姓名", "en": "Name"},
    "mt_reporter_phone": {"zh": "联系电话", "en": "Phone"},
    "mt_photos": {"zh": "现场照片", "en": "Photos"},
    "mt_submit": {"zh": "提交", "en": "Submit"},
    "mt_submitting": {"zh": "正在提交…", "en": "Submitting…"},
    "mt_filed": {"zh": "已上报：{ref}", "en": "Filed: {ref}"},
    "mt_need": {"zh": "请填写：{f}", "en": "Please fill in: {f}"},
    # Timeline notes the system writes (gridmap.matters.system_note's codes).
    "mt_note_auto_routed": {"zh": "智能流转", "en": "Routed automatically"},
    "mt_note_video_dispatch": {"zh": "视频调度 #{order}", "en": "Video dispatch #{order}"},
    "mt_dups": {"zh": "疑似重复事项（50米内、7天内同类）", "en": "Possible duplicates (same kind, 50 m, 7 days)"},
    "mt_no_dups": {"zh": "附近没有同类事项", "en": "No similar matter nearby"},
    "mt_mark_dup": {"zh": "标记为此事项的重复", "en": "Mark as a duplicate of this"},
    "mt_unmark_dup": {"zh": "取消重复标记", "en": "Not a duplicate"},
    "mt_dup_of": {"zh": "将作为 {ref} 的重复事项上报", "en": "Will be filed as a duplicate of {ref}"},
    "mt_open_detail": {"zh": "查看详情", "en": "Open"},
    # detail
    "mt_back": {"zh": "返回列表", "en": "Back to the list"},
    "mt_not_found": {"zh": "事项不存在或不在您的管辖范围内", "en": "No such matter in your jurisdiction"},
    "mt_reported_at": {"zh": "上报时间", "en": "Reported"},
    "mt_current_unit": {"zh": "当前办理单位", "en": "Now with"},
    "mt_handling_unit": {"zh": "责任单位", "en": "Responsible unit"},
    "mt_grid": {"zh": "所属网格", "en": "Grid"},
    "mt_deadlines": {"zh": "办理时限（1-2-3）", "en": "Deadlines (1-2-3)"},
    "mt_accept_due": {"zh": "受理时限", "en": "Accept by"},
    "mt_finish_due": {"zh": "办结时限", "en": "Finish by"},
    "mt_feedback_due": {"zh": "反馈时限", "en": "Report back by"},
    "mt_left": {"zh": "剩余 {d}", "en": "{d} left"},
    "mt_late": {"zh": "已超 {d}", "en": "{d} late"},
    "mt_days": {"zh": "{n}天", "en": "{n} d"},
    "mt_hours": {"zh": "{n}小时", "en": "{n} h"},
    "mt_minutes": {"zh": "{n}分钟", "en": "{n} min"},
    "mt_rating": {"zh": "满意度评价", "en": "Rating"},
    "mt_contact": {"zh": "反映人联系方式", "en": "Reporter contact"},
    "mt_timeline": {"zh": "办理过程", "en": "Timeline"},
    "mt_supervisions": {"zh": "督办记录", "en": "Supervision"},
    "mt_attachments": {"zh": "附件", "en": "Attachments"},
    "mt_no_attachments": {"zh": "暂无附件", "en": "No attachments"},
    "mt_add_photo": {"zh": "添加照片", "en": "Add a photo"},
    "mt_actions": {"zh": "办理操作", "en": "Actions"},
    "mt_no_actions": {"zh": "当前没有可执行的操作", "en": "Nothing for you to do now"},
    "mt_note": {"zh": "办理意见", "en": "Note"},
    "mt_note_required": {"zh": "请填写办理意见", "en": "Please write a note"},
    "mt_unit": {"zh": "办理单位", "en": "Unit"},
    "mt_unit_same": {"zh": "原责任单位", "en": "The same unit"},
    "mt_rating_by": {"zh": "评价人", "en": "Rated by"},
    "mt_by_callback": {"zh": "电话回访", "en": "Call-back"},
    "mt_by_citizen": {"zh": "反映人自评", "en": "Reporter"},
    "mt_sup_kind": {"zh": "督办方式", "en": "Kind"},
    "mt_sup_instant": {"zh": "即时督办", "en": "Instant"},
    "mt_sup_written": {"zh": "书面督办", "en": "Written"},
    "mt_sup_onsite": {"zh": "现场督办", "en": "On-site"},
    "mt_sup_escalated": {"zh": "提级督办", "en": "Escalated"},
    "mt_respond_by": {"zh": "回复期限", "en": "Respond by"},
    "mt_confirm": {"zh": "确定", "en": "Confirm"},
    "mt_cancel": {"zh": "取消", "en": "Cancel"},
    "mt_done": {"zh": "已完成：{a}", "en": "Done: {a}"},
    "mt_conflict": {"zh": "事项已被他人更新，请重新加载后再办理",
                    "en": "Someone else updated this matter; reload and try again"},
    "mt_reload": {"zh": "重新加载", "en": "Reload"},
    "mt_failed": {"zh": "操作失败：{r}", "en": "Failed: {r}"},
    "mt_network": {"zh": "网络连接失败，未提交，请重试", "en": "Network error: not submitted. Try again."},
    "mt_kept": {"zh": "填写的内容仍在，重新登录后请再提交一次。",
                "en": "What you typed is still here: sign in again, then submit once more."},
    "mt_reloaded": {"zh": "已重新加载最新内容，请核对后再点“确定”。",
                    "en": "Reloaded: check the matter, then press Confirm again."},
    "mt_act_gone": {"zh": "“{a}”已无法办理：事项已被他人推进。您填写的意见保留如下，可复制使用。",
                    "en": "“{a}” is no longer possible: someone else moved the matter on. "
                          "Your note is kept below to copy."},
    "mt_close": {"zh": "关闭", "en": "Close"},
    "mt_bad_coord": {"zh": "{f}格式不正确：只能填写数字，如 116.796837",
                     "en": "{f}: not a number. Type digits only, e.g. 116.796837"},
    "mt_steps": {"zh": "办理步骤", "en": "Steps"},
    "mt_act_report": {"zh": "上报", "en": "Reported"},
    "mt_act_triage": {"zh": "分拨", "en": "Triage"},
    "mt_act_transfer": {"zh": "转办", "en": "Transfer"},
    "mt_act_accept": {"zh": "受理", "en": "Accept"},
    "mt_act_return": {"zh": "退回", "en": "Return"},
    "mt_act_escalate": {"zh": "提级上报", "en": "Escalate"},
    "mt_act_handle": {"zh": "处置完毕", "en": "Mark handled"},
    "mt_act_verify": {"zh": "核实通过", "en": "Verify"},
    "mt_act_reject": {"zh": "核实不通过", "en": "Reject (redo)"},
    "mt_act_close": {"zh": "结案", "en": "Close"},
    "mt_act_rate": {"zh": "满意度回访", "en": "Rate"},
    "mt_act_reopen": {"zh": "重新派单", "en": "Reopen"},
    "mt_act_supervise": {"zh": "督办", "en": "Supervise"},
    "mt_act_attach": {"zh": "添加附件", "en": "Attachment"},
    "mt_act_merge": {"zh": "合并", "en": "Merged"},
    "mt_act_comment": {"zh": "备注", "en": "Comment"},
    "mt_act_relocate": {"zh": "更正位置", "en": "Relocated"},
    "mt_act_lookback": {"zh": "回头看", "en": "Look-back"},
    "mt_act_dispatch": {"zh": "派发视频", "en": "Video dispatched"},
    "mt_cameras": {"zh": "可视该位置的摄像头", "en": "Cameras that can see it"},
    "mt_no_cameras": {"zh": "附近没有可视该位置的摄像头", "en": "No camera can see this spot"},
    "mt_attach_snapshot": {"zh": "附加截图", "en": "Attach snapshot"},
    "mt_snapshot_attached": {"zh": "截图已附加", "en": "Snapshot attached"},
    "mt_dispatch": {"zh": "一键派发视频", "en": "Dispatch this video"},
    "mt_dispatch_to": {"zh": "派发给", "en": "Send to"},
    "mt_dispatch_minutes": {"zh": "授权时长（分钟）", "en": "Minutes"},
    "mt_dispatched": {"zh": "已派发视频（调度单 {id}）", "en": "Video dispatched (order {id})"},
    "mt_distance": {"zh": "{m}米", "en": "{m} m"},
    "mt_to": {"zh": "至", "en": "to"},
})


def _page_config(page: str, **extra: Any) -> dict[str, Any]:
    options = {"sources": list(MATTER_SOURCES), "states": list(MATTER_STATES),
               "supervision_kinds": list(SUPERVISION_KINDS), **extra}
    return {"lang": g.lang, "i18n": catalog(g.lang), "page": page, "matters": options}


def _html(m: Any) -> Response:
    resp = Response(render_offline(m), mimetype="text/html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


LIST_DOM = """
<aside id="mt-panel" class="mt-panel" aria-label="__mt_title__">
  <div class="mt-head">
    <h1 id="mt-title" class="mt-h1"></h1>
    <div class="mt-tabs" role="tablist">
      <button id="mt-tab-list" class="mt-tab mt-tab-on" type="button" role="tab"></button>
      <button id="mt-tab-new" class="mt-tab" type="button" role="tab"></button>
    </div>
  </div>
  <section id="mt-list-view" class="mt-view">
    <form id="mt-filters" class="mt-filters" autocomplete="off">
      <label><span data-t="mt_f_state"></span><select id="mt-f-state"></select></label>
      <label><span data-t="mt_f_flag"></span><select id="mt-f-flag"></select></label>
      <label><span data-t="mt_f_category"></span><select id="mt-f-category"></select></label>
      <label><span data-t="mt_f_area"></span><select id="mt-f-area"></select></label>
      <label class="mt-wide"><span data-t="mt_f_q"></span><input id="mt-f-q" type="search" maxlength="60"></label>
    </form>
    <div class="mt-countbar"><span id="mt-count" class="mt-count" role="status"></span>
      <button id="mt-refresh" class="mt-link" type="button"></button></div>
    <ol id="mt-list" class="mt-list"></ol>
    <button id="mt-more" class="mt-btn mt-btn-quiet" type="button" hidden></button>
  </section>
  <section id="mt-new-view" class="mt-view" hidden>
    <form id="mt-intake" class="mt-form" autocomplete="off" novalidate>
      <div class="mt-row2">
        <label><span data-t="mt_source"></span><select id="mt-source" name="source"></select></label>
        <label><span data-t="mt_source_ref"></span><input id="mt-source-ref" name="source_ref" maxlength="64"></label>
      </div>
      <label id="mt-worker-row"><span data-t="mt_worker"></span><select id="mt-worker" name="reported_by_worker"></select></label>
      <label><span data-t="mt_category"></span><select id="mt-category" name="category" required></select></label>
      <fieldset class="mt-loc"><legend data-t="mt_location"></legend>
        <p class="mt-hint" data-t="mt_location_hint"></p>
        <div class="mt-row2">
          <label><span data-t="mt_lon"></span><input id="mt-lon" name="lon" inputmode="decimal" maxlength="14"></label>
          <label><span data-t="mt_lat"></span><input id="mt-lat" name="lat" inputmode="decimal" maxlength="14"></label>
        </div>
      </fieldset>
      <div id="mt-dups" class="mt-dups" aria-live="polite" hidden></div>
      <label><span data-t="mt_field_title"></span><input id="mt-title-input" name="title" maxlength="120" required></label>
      <label><span data-t="mt_description"></span><textarea id="mt-description" name="description" rows="3" maxlength="4000"></textarea></label>
      <label><span data-t="mt_address"></span><input id="mt-address" name="address" maxlength="200"></label>
      <label><span data-t="mt_urgency"></span><select id="mt-urgency" name="urgency"></select></label>
      <fieldset><legend data-t="mt_reporter"></legend>
        <div class="mt-row2">
          <label><span data-t="mt_reporter_name"></span><input id="mt-reporter-name" name="reporter_name" maxlength="40" autocomplete="off"></label>
          <label><span data-t="mt_reporter_phone"></span><input id="mt-reporter-phone" name="reporter_phone" type="tel" maxlength="20" autocomplete="off"></label>
        </div>
      </fieldset>
      <label><span data-t="mt_photos"></span><input id="mt-photos" name="photos" type="file" accept="image/*" multiple></label>
      <div id="mt-form-msg" class="mt-msg" role="status" aria-live="polite"></div>
      <button id="mt-submit" class="mt-btn" type="submit"></button>
    </form>
  </section>
</aside>
"""

DETAIL_DOM = """
<aside id="mt-panel" class="mt-panel mt-detail" aria-label="__mt_detail_title__">
  <div class="mt-head">
    <a id="mt-back" class="mt-link" href="/matters"></a>
    <div id="mt-header" class="mt-header"></div>
    <ol id="mt-steps" class="mt-steps" aria-label="__mt_steps__"></ol>
  </div>
  <div id="mt-conflict" class="mt-conflict" role="alert" hidden>
    <span data-t="mt_conflict"></span>
    <button id="mt-reload" class="mt-btn" type="button"></button>
  </div>
  <div id="mt-msg" class="mt-msg" role="status" aria-live="polite"></div>
  <section class="mt-sec"><h2 data-t="mt_actions"></h2><div id="mt-actions" class="mt-actions"></div>
    <div id="mt-action-form" class="mt-action-form" hidden></div></section>
  <section class="mt-sec"><div id="mt-facts"></div></section>
  <section class="mt-sec"><h2 data-t="mt_deadlines"></h2><dl id="mt-deadlines" class="mt-deadlines"></dl></section>
  <section id="mt-contact-sec" class="mt-sec" hidden><h2 data-t="mt_contact"></h2><div id="mt-contact"></div></section>
  <section class="mt-sec"><h2 data-t="mt_attachments"></h2><div id="mt-attachments" class="mt-attachments"></div>
    <label class="mt-upload"><span data-t="mt_add_photo"></span>
      <input id="mt-upload" type="file" accept="image/*"></label></section>
  <section class="mt-sec"><h2 data-t="mt_cameras"></h2>
    <div class="mt-dispatch">
      <label><span data-t="mt_dispatch_to"></span><select id="mt-dispatch-unit"></select></label>
      <label><span data-t="mt_dispatch_minutes"></span>
        <input id="mt-dispatch-minutes" type="number" min="10" max="1440" step="10" value="240"></label>
      <button id="mt-dispatch" class="mt-btn" type="button" disabled></button>
    </div>
    <ul id="mt-cameras" class="mt-cameras"></ul></section>
  <section class="mt-sec"><h2 data-t="mt_timeline"></h2><ol id="mt-timeline" class="mt-timeline"></ol></section>
  <section id="mt-sup-sec" class="mt-sec" hidden><h2 data-t="mt_supervisions"></h2>
    <ol id="mt-supervisions" class="mt-timeline"></ol></section>
</aside>
"""


def _dom(template: str) -> str:
    """Return a page's DOM with its ``__key__`` labels (aria-label) in the caller's language."""
    return re.sub(r"__(mt_\w+?)__", lambda m: str(escape(translate(m.group(1), g.lang))), template)


def _page_map(zoom: int) -> Any:
    m = base_map(tile_url=current_app.config.get("TILE_URL"), zoom=zoom)
    m.get_root().header.add_child(CssLink(MATTERS_CSS), name="matters_css")
    return m


@bp.get("/matters")
def matters_page() -> Response:
    """Serve the matters workbench: map of open matters, filterable list, intake form."""
    config = _page_config("matters")
    m = _page_map(12)
    RemoteGeoJson("/api/areas/towns.geojson", name=config["i18n"]["towns"], kind="towns",
                  interactive=False).add_to(m)
    GridmapGlue(config).add_to(m)
    PageShell(_dom(LIST_DOM), MATTERS_JS, "gridmapMatters.initList").add_to(m)
    return _html(m)


@bp.get("/matters/<int:matter_id>")
def matter_page(matter_id: int) -> Response:
    """Serve one matter: steps, deadlines, actions, timeline, attachments and cameras."""
    try:
        # The same visibility rule as the API: outside the caller's scope is 404.
        matters.matter_detail(get_session(), current_actor(), matter_id)
    except NotFound:
        return _not_found()
    config = _page_config("matter", id=matter_id)
    m = _page_map(16)
    GridmapGlue(config).add_to(m)
    PageShell(_dom(DETAIL_DOM), MATTERS_JS, "gridmapMatters.initDetail").add_to(m)
    return _html(m)


def _not_found() -> Response:
    """A plain page saying the matter is not there (or not the caller's to see)."""
    lang = g.lang
    body = (
        f'<!DOCTYPE html><html lang="{"en" if lang == "en" else "zh-CN"}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{escape(translate("mt_detail_title", lang))}</title>'
        f'<link rel="stylesheet" href="{MATTERS_CSS}"></head><body class="mt-plain">'
        f'<p id="mt-not-found" class="mt-notfound">{escape(translate("mt_not_found", lang))}</p>'
        f'<p><a class="mt-link" href="/matters">{escape(translate("mt_back", lang))}</a></p>'
        "</body></html>"
    )
    return Response(body, status=404, mimetype="text/html")
