"""The camera ledger page (摄像机台账): find, check and correct cameras; import and export.

The page is a table over the camera API (``/api/cameras``), in the caller's scope.
Operators who keep the ledger fix a camera's name, placement and view sector here,
upload the departments' ledger files and see every bad row at once, and export
what they see. It offers only the actions the role policy will allow.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, render_template

from video import registry
from video.models import SOURCES, STATUSES, TAG_LABELS
from web import i18n
from web.auth import current_actor, write_refusal
from web.database import get_session

bp = Blueprint("ledger", __name__)

PAGE_SIZE = 50
DATUMS = ("wgs84", "cgcs2000", "gcj02")

MESSAGES = {
    "lg_title": {"zh": "摄像机台账", "en": "Camera ledger"},
    "lg_list_sep": {"zh": "、", "en": ", "},
    "lg_colon": {"zh": "：", "en": ": "},
    "lg_nav": {"zh": "摄像机台账", "en": "Camera ledger"},
    "lg_back": {"zh": "← 地图", "en": "← Map"},
    "lg_search": {"zh": "名称或国标编码", "en": "Name or GB ID"},
    "lg_find": {"zh": "查询", "en": "Search"},
    "lg_reset": {"zh": "清空条件", "en": "Clear"},
    "lg_all_towns": {"zh": "全部镇街", "en": "All towns/streets"},
    "lg_all_sources": {"zh": "全部来源", "en": "All sources"},
    "lg_all_statuses": {"zh": "全部状态", "en": "All statuses"},
    "lg_all_tags": {"zh": "全部标签", "en": "All tags"},
    "lg_sector_filter": {"zh": "视场登记", "en": "View sector"},
    "lg_any_sector": {"zh": "视场：全部", "en": "Any view sector"},
    "lg_sector_missing": {"zh": "未登记朝向或视场角", "en": "Heading or field of view missing"},
    "lg_sector_known": {"zh": "已登记视场", "en": "View sector recorded"},
    "lg_sector_short": {"zh": "朝向 / 视场角", "en": "Heading / FOV"},
    "lg_sort": {"zh": "排序", "en": "Order"},
    "lg_sort_gb_id": {"zh": "按国标编码", "en": "By GB ID"},
    "lg_sort_name": {"zh": "按名称", "en": "By name"},
    "lg_sort_snapshot_at": {"zh": "最久未截图在前", "en": "Longest without a picture first"},
    "lg_sort_recent_snapshot_at": {"zh": "最新截图在前", "en": "Latest picture first"},
    "lg_total": {"zh": "共 {n} 个摄像机", "en": "{n} cameras"},
    "lg_none": {"zh": "没有符合条件的摄像机", "en": "No camera matches"},
    "lg_gb_id": {"zh": "国标编码", "en": "GB ID"},
    "lg_name": {"zh": "名称", "en": "Name"},
    "lg_source": {"zh": "来源", "en": "Source"},
    "lg_department": {"zh": "权属单位", "en": "Owner"},
    "lg_status": {"zh": "状态", "en": "Status"},
    "lg_area": {"zh": "所在镇街 / 村居", "en": "Town / community"},
    "lg_snapshot": {"zh": "最近截图", "en": "Last snapshot"},
    "lg_credentials": {"zh": "凭据", "en": "Login"},
    "lg_has_credentials": {"zh": "已另行加密保存", "en": "Stored apart, encrypted"},
    "lg_no_credentials": {"zh": "无", "en": "None"},
    "lg_prev": {"zh": "上一页", "en": "Previous"},
    "lg_next": {"zh": "下一页", "en": "Next"},
    "lg_pages": {"zh": "翻页", "en": "Pages"},
    "lg_csv_zh": {"zh": "CSV（中文表头，可直接导入）", "en": "CSV (Chinese headers)"},
    "lg_export_datum": {"zh": "导出坐标系", "en": "Export coordinates"},
    "lg_page": {"zh": "第 {page} / {pages} 页", "en": "Page {page} of {pages}"},
    "lg_detail": {"zh": "摄像机详情", "en": "Camera details"},
    "lg_close": {"zh": "关闭", "en": "Close"},
    "lg_location": {"zh": "位置（WGS-84）", "en": "Location (WGS-84)"},
    "lg_grid": {"zh": "所在网格", "en": "Grid"},
    "lg_sector": {"zh": "朝向 / 视场角 / 可视距离", "en": "Heading / field of view / range"},
    "lg_sector_unknown": {"zh": "未登记", "en": "Not recorded"},
    "lg_tags": {"zh": "标签", "en": "Tags"},
    "lg_main_url": {"zh": "主码流", "en": "Main stream"},
    "lg_sub_url": {"zh": "子码流", "en": "Sub stream"},
    "lg_live": {"zh": "实时视频", "en": "Live view"},
    "lg_to_wall": {"zh": "上视频墙", "en": "To the video wall"},
    "lg_on_map": {"zh": "在地图上查看", "en": "Show on the map"},
    "lg_edit": {"zh": "修改登记信息", "en": "Edit the record"},
    "lg_heading": {"zh": "朝向（°）", "en": "Heading (°)"},
    "lg_fov": {"zh": "视场角（°）", "en": "Field of view (°)"},
    "lg_range": {"zh": "可视距离（米）", "en": "Range (m)"},
    "lg_lon": {"zh": "经度", "en": "Longitude"},
    "lg_lat": {"zh": "纬度", "en": "Latitude"},
    "lg_tags_hint": {"zh": "多个标签用逗号分隔", "en": "Separate tags with commas"},
    "lg_save": {"zh": "保存", "en": "Save"},
    "lg_saving": {"zh": "正在保存…", "en": "Saving…"},
    "lg_saved": {"zh": "已保存", "en": "Saved"},
    "lg_not_saved": {"zh": "未保存：{reason}", "en": "Not saved: {reason}"},
    "lg_view_only": {"zh": "您的角色只能查看台账", "en": "Your role may only view the ledger"},
    "lg_new": {"zh": "登记新摄像机", "en": "Register a camera"},
    "lg_gb_hint": {"zh": "GB/T 28181 编码，20 位数字", "en": "GB/T 28181 ID, 20 digits"},
    "lg_register": {"zh": "登记", "en": "Register"},
    "lg_registered": {"zh": "已登记：{name}", "en": "Registered: {name}"},
    "lg_not_registered": {"zh": "未登记：{reason}", "en": "Not registered: {reason}"},
    "lg_login_user": {"zh": "登录用户名", "en": "Login user"},
    "lg_login_password": {"zh": "登录密码", "en": "Login password"},
    "lg_login_hint": {"zh": "用户名和密码与地址分开加密保存，任何页面、接口和导出都不会显示",
                      "en": "The login is encrypted and kept apart from the address; no page, API or export shows it"},
    "lg_new_login": {"zh": "更换登录", "en": "Change the login"},
    "lg_login_keep": {"zh": "留空则保留已保存的登录", "en": "Leave blank to keep the stored login"},
    "lg_clear_login": {"zh": "清除登录", "en": "Clear login"},
    "lg_clear_login_confirm": {"zh": "确认清除？", "en": "Really clear it?"},
    "lg_clearing": {"zh": "正在清除登录…", "en": "Clearing the login…"},
    "lg_not_cleared": {"zh": "未清除：{reason}", "en": "Not cleared: {reason}"},
    "lg_login_cleared_note": {"zh": "登录已清除", "en": "login cleared"},
    "lg_login_dropped_note": {"zh": "登录已清除（地址改变）", "en": "login removed (address changed)"},
    "lg_url_needs_scheme": {"zh": "填写登录时，地址须写明协议，如 rtsp 或 http",
                            "en": "With a login, the address must name its protocol, such as rtsp or http"},
    "lg_help": {"zh": "填写说明和模板", "en": "How to fill it in, and a template"},
    "lg_help_required": {"zh": "必填列：国标编码（20 位）、名称、经度、纬度、来源、权属单位、主码流；表头可用中文或英文（gb_id、name…）。",
                         "en": "Required columns: gb_id (20 digits), name, lon, lat, source, department, main_url; "
                               "Chinese headers work too."},
    "lg_help_sources": {"zh": "来源填写：", "en": "Sources: "},
    "lg_help_values": {"zh": "状态可填在线、离线等；多个标签用逗号或顿号分隔；朝向、视场角以度计，可视距离以米计。",
                       "en": "Status may be online, offline and so on; separate tags with commas; "
                             "heading and field of view in degrees, range in metres."},
    "lg_help_login": {"zh": "地址中的用户名和密码（rtsp://用户名:密码@地址）导入时拆出并加密保存，不会出现在任何页面或导出中。",
                      "en": "A login in an address (rtsp://user:password@host) is split off and stored encrypted; "
                            "no page or export shows it."},
    "lg_help_upsert": {"zh": "已有的国标编码会被更新；只要有一行有误，整个文件都不导入。",
                       "en": "Known GB IDs are updated; if any record is wrong, nothing in the file is imported."},
    "lg_template": {"zh": "下载导入模板（CSV）", "en": "Download the import template (CSV)"},
    "lg_sample": {"zh": "立即检测", "en": "Check now"},
    "lg_sampling": {"zh": "正在打开视频流检测…", "en": "Opening the stream…"},
    "lg_sample_size": {"zh": "{w}×{h}", "en": "{w}×{h}"},
    "lg_sample_open": {"zh": "打开用时 {ms} 毫秒", "en": "opened in {ms} ms"},
    "lg_sample_failed": {"zh": "未能检测：{reason}", "en": "Could not check: {reason}"},
    "lg_probe_timeout": {"zh": "连接超时", "en": "connection timed out"},
    "lg_probe_wall_timeout": {"zh": "检测超时", "en": "the check ran out of time"},
    "lg_probe_refused": {"zh": "连接被拒绝", "en": "connection refused"},
    "lg_login_moved": {
        "zh": "地址已指向其他协议、主机或端口：如不填写新地址的登录，保存时将清除已保存的登录",
        "en": "The address now points at another scheme, host or port: unless you enter its "
              "login, saving removes the stored login"},
    "lg_probe_address_refused": {"zh": "地址不允许访问（本机、链路本地或云元数据等）",
                                 "en": "address not allowed (loopback, link-local, cloud metadata …)"},
    "lg_probe_dns": {"zh": "域名无法解析", "en": "host name not found"},
    "lg_probe_unreachable": {"zh": "网络不可达", "en": "network unreachable"},
    "lg_probe_auth": {"zh": "登录失败（用户名或密码不对）", "en": "login refused (wrong user or password)"},
    "lg_probe_not_found": {"zh": "地址不存在", "en": "no stream at this address"},
    "lg_probe_open_failed": {"zh": "打开了，但不是可播放的视频流", "en": "answered, but not with a playable stream"},
    "lg_probe_no_frame": {"zh": "没有收到画面", "en": "no picture arrived"},
    "lg_probe_decode_error": {"zh": "画面无法解码", "en": "the picture does not decode"},
    "lg_probe_eof": {"zh": "视频流刚开始就结束了", "en": "the stream ended right away"},
    "lg_probe_oversize": {"zh": "画面过大，未解码", "en": "picture too large to decode"},
    "lg_probe_crashed": {"zh": "检测进程两次崩溃", "en": "the checker crashed twice"},
    "lg_probe_internal": {"zh": "内部错误", "en": "internal error"},
    "lg_probe_black": {"zh": "画面全黑", "en": "black picture"},
    "lg_probe_flat": {"zh": "画面无内容", "en": "blank picture"},
    "lg_probe_slow": {"zh": "打开过慢", "en": "slow to open"},
    "lg_probe_low_resolution": {"zh": "分辨率过低", "en": "resolution too low"},
    "lg_probe_stalled": {"zh": "只收到一帧后中断", "en": "stalled after one picture"},
    "lg_history": {"zh": "登记与修改记录", "en": "Registration and changes"},
    "lg_history_none": {"zh": "暂无记录（早于本功能的修改未记录）", "en": "Nothing recorded (changes before this record began are not)"},
    "lg_act_camera.registered": {"zh": "登记", "en": "registered"},
    "lg_act_camera.changed": {"zh": "修改", "en": "changed"},
    "lg_act_camera.imported": {"zh": "台账导入", "en": "imported from a ledger"},
    "lg_act_login": {"zh": "登录", "en": "login"},
    "lg_field_gb_id": {"zh": "国标编码", "en": "GB ID"},
    "lg_field_name": {"zh": "名称", "en": "name"},
    "lg_field_lon": {"zh": "经度", "en": "longitude"},
    "lg_field_lat": {"zh": "纬度", "en": "latitude"},
    "lg_field_heading": {"zh": "朝向", "en": "heading"},
    "lg_field_fov": {"zh": "视场角", "en": "field of view"},
    "lg_field_range_m": {"zh": "可视距离", "en": "range"},
    "lg_field_source": {"zh": "来源", "en": "source"},
    "lg_field_department": {"zh": "权属单位", "en": "owner"},
    "lg_field_main_url": {"zh": "主码流", "en": "main stream"},
    "lg_field_sub_url": {"zh": "子码流", "en": "sub stream"},
    "lg_field_snapshot_url": {"zh": "抓图地址", "en": "snapshot address"},
    "lg_field_status": {"zh": "状态", "en": "status"},
    "lg_field_tags": {"zh": "标签", "en": "tags"},
    "lg_field_lon/lat": {"zh": "经纬度", "en": "longitude/latitude"},
    "lg_field_file": {"zh": "文件", "en": "file"},
    "lg_import": {"zh": "导入台账", "en": "Import a ledger"},
    "lg_import_file": {"zh": "台账文件（CSV、GeoJSON 或 GeoPackage，10 MB 以内）",
                       "en": "Ledger file (CSV, GeoJSON or GeoPackage, up to 10 MB)"},
    "lg_datum": {"zh": "坐标系", "en": "Coordinates"},
    "lg_datum_wgs84": {"zh": "WGS-84（GPS）", "en": "WGS-84 (GPS)"},
    "lg_datum_cgcs2000": {"zh": "CGCS2000（天地图）", "en": "CGCS2000 (Tianditu)"},
    "lg_datum_gcj02": {"zh": "GCJ-02（高德、腾讯）", "en": "GCJ-02 (AutoNavi, Tencent)"},
    "lg_import_go": {"zh": "导入", "en": "Import"},
    "lg_importing": {"zh": "正在导入…", "en": "Importing…"},
    "lg_imported": {"zh": "已导入：新增 {inserted} 个，更新 {updated} 个",
                    "en": "Imported: {inserted} added, {updated} updated"},
    "lg_rejected": {"zh": "文件未导入，没有任何数据被修改：{reason}",
                    "en": "Nothing was imported or changed: {reason}"},
    "lg_row": {"zh": "记录", "en": "Record"},
    "lg_rows_counted": {"zh": "问题记录（从第一条数据记起，不含表头）",
                        "en": "Records with problems (counted from the first record, not the header)"},
    "lg_field": {"zh": "字段", "en": "Field"},
    "lg_problem": {"zh": "问题", "en": "Problem"},
    "lg_warnings": {"zh": "导入说明", "en": "Notes on the import"},
    "lg_pick_file": {"zh": "请先选择文件", "en": "Choose a file first"},
    "lg_import_district": {"zh": "台账导入由区指挥中心的操作员或网格管理员进行",
                           "en": "Ledgers are imported by the district center's operators or grid admins"},
    "lg_export": {"zh": "导出当前查询结果", "en": "Export these results"},
    "lg_failed": {"zh": "加载失败：{reason}", "en": "Could not load: {reason}"},
    # The reason when a request got no answer at all (the network, not the server).
    "lg_network_failed": {"zh": "网络连接失败，请重试", "en": "the network connection failed, please try again"},
    "lg_not_imported": {"zh": "未导入：{reason}", "en": "Not imported: {reason}"},
}
i18n.register(MESSAGES)


@bp.get("/cameras")
def ledger_page() -> Response:
    """Serve the camera ledger."""
    actor = current_actor()
    # Names of the areas that hold the caller's cameras: the table shows names, and
    # the town filter offers only towns the caller has cameras in.
    names = registry.area_names(get_session())
    config = {
        "lang": g.lang,
        "i18n": i18n.catalog(g.lang),
        "page": "ledger",
        "page_size": PAGE_SIZE,
        "sources": list(SOURCES),
        "statuses": list(STATUSES),
        "datums": list(DATUMS),
        "tags": list(TAG_LABELS),  # offered in the filter; any other tag still shows
        "areas": names,
        "towns": sorted((code, name) for code, name in names.items() if len(code) == 9),
        # A department registers its own cameras: its name is the owner by default.
        "user": {"username": actor.username, "unit": actor.unit_name,
                 "department": actor.scope.department},
        "can_edit": write_refusal(actor, "cameras.update_camera") is None,
        "can_import": write_refusal(actor, "cameras.import_cameras") is None,
        "can_sample": write_refusal(actor, "health.sample") is None,
    }
    html = render_template("ledger.html", config=config, lang=g.lang)
    resp = Response(html, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp
