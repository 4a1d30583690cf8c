"""UI text in Simplified Chinese by default, English on request (?lang=en, cookie)."""

from __future__ import annotations

from flask import Flask, g, request

from video.models import SOURCE_LABELS, STATUS_LABELS, TAG_LABELS

LANGUAGES = ("zh", "en")
COOKIE = "gridmap_lang"

MESSAGES: dict[str, dict[str, str]] = {
    "app_title": {"zh": "兖州区网格化社会治理指挥平台", "en": "Yanzhou Grid Governance Command"},
    "grids": {"zh": "网格", "en": "Grids"},
    "towns": {"zh": "镇街", "en": "Towns/streets"},
    "communities": {"zh": "村居", "en": "Villages/communities"},
    "cameras": {"zh": "视频监控", "en": "Cameras"},
    "code": {"zh": "编码", "en": "Code"},
    "name": {"zh": "名称", "en": "Name"},
    "kind": {"zh": "类型", "en": "Kind"},
    "houses": {"zh": "房屋", "en": "Houses"},
    "residents": {"zh": "人口", "en": "Residents"},
    "key_persons": {"zh": "重点人员", "en": "Key persons"},
    "key_places": {"zh": "重点场所", "en": "Key places"},
    "components": {"zh": "城市部件", "en": "City components"},
    "team": {"zh": "网格力量", "en": "Grid team"},
    "leader": {"zh": "网格长", "en": "Grid leader"},
    "full_time": {"zh": "专职网格员", "en": "Full-time grid worker"},
    "part_time": {"zh": "兼职网格员", "en": "Part-time worker"},
    "volunteer": {"zh": "志愿者", "en": "Volunteer"},
    "team_no_leader": {"zh": "缺网格长", "en": "No grid leader"},
    "grid_here": {"zh": "所在网格", "en": "Grid here"},
    "wall_layer_team_gaps": {"zh": "网格力量缺额", "en": "Grids lacking their 1+1"},
    "wall_team_gap_legend": {"zh": "缺网格长或专职网格员", "en": "No grid leader or full-time worker"},
    "call": {"zh": "呼叫", "en": "Call"},
    "team_no_full_time": {"zh": "缺专职网格员", "en": "No full-time grid worker"},
    "team_extra_leader": {"zh": "网格长多于 1 名", "en": "More than one grid leader"},
    "team_extra_full_time": {"zh": "专职网格员多于 1 名", "en": "More than one full-time worker"},
    "urban": {"zh": "城市网格", "en": "Urban"},
    "rural": {"zh": "农村网格", "en": "Rural"},
    "special": {"zh": "专属网格", "en": "Special"},
    "legend": {"zh": "图例", "en": "Legend"},
    "switch_language": {"zh": "English", "en": "中文"},
    "loading": {"zh": "加载中…", "en": "Loading…"},
    "load_failed": {"zh": "数据加载失败", "en": "Failed to load data"},
    # A read that got no answer at all (every page; a write says what was not done).
    "network_failed": {"zh": "网络连接失败，请重试", "en": "Network error. Try again."},
    # The bar gridmap.js shows on any page when a request finds the sign-in gone.
    "gm_signed_out": {"zh": "登录已过期或已退出。本页填写的内容仍在：请在新标签页重新登录，再回到本页提交。",
                      "en": "Your sign-in has expired or ended. What you typed here is kept: sign in "
                            "again in a new tab, then come back and send it."},
    "gm_sign_in_tab": {"zh": "在新标签页登录", "en": "Sign in in a new tab"},
    "gm_signed_in_again": {"zh": "已重新登录，可以继续操作", "en": "Signed in again: carry on"},
    "gm_dismiss": {"zh": "关闭", "en": "Dismiss"},
    # Asked inside a panel (no window.confirm: a map-wall kiosk may block it) before
    # closing or leaving an edit that holds unsaved changes (ledger, grid editor).
    "unsaved_discard_q": {"zh": "放弃未保存的修改？", "en": "Discard unsaved changes?"},
    "unsaved_discard": {"zh": "放弃修改", "en": "Discard changes"},
    "unsaved_keep": {"zh": "继续编辑", "en": "Keep editing"},
    "community": {"zh": "村居", "en": "Community"},
    "town": {"zh": "镇街", "en": "Town/street"},
    "locate_me": {"zh": "定位附近摄像头", "en": "Cameras near me"},
    "tap_hint": {"zh": "或在地图上点选位置", "en": "or tap a spot on the map"},
    "locating": {"zh": "正在定位…", "en": "Locating…"},
    "searching": {"zh": "正在查找…", "en": "Searching…"},
    "found_n": {"zh": "500 米内 {n} 个摄像头", "en": "{n} cameras within 500 m"},
    # The search asks for the nearest few: when it got that many, more may lie in range.
    "found_nearest_n": {"zh": "500 米内最近的 {n} 个摄像头", "en": "The nearest {n} cameras within 500 m"},
    "no_cameras": {"zh": "500 米内没有摄像头", "en": "No camera within 500 m"},
    "geo_denied": {"zh": "无法获取位置，请在地图上点选", "en": "Location unavailable; tap the map"},
    "geo_unavailable": {"zh": "浏览器不支持定位", "en": "This browser cannot locate"},
    "sees_here": {"zh": "可视此处", "en": "sees this spot"},
    "no_snapshot": {"zh": "暂无截图", "en": "No snapshot yet"},
    "open_live": {"zh": "打开实时视频", "en": "Open live view"},
    "back_to_list": {"zh": "返回列表", "en": "Back to list"},
    "snapshot_at": {"zh": "截图时间 {time}", "en": "Snapshot taken {time}"},
    # Between the items of an inline list ("Category, Location, Title").
    "list_sep": {"zh": "、", "en": ", "},
    # Leaflet's own controls (gridmap.js translates their titles and labels).
    "lf_zoom_in": {"zh": "放大", "en": "Zoom in"},
    "lf_zoom_out": {"zh": "缩小", "en": "Zoom out"},
    "lf_layers": {"zh": "图层", "en": "Layers"},
    "lf_close_popup": {"zh": "关闭弹窗", "en": "Close popup"},
    # The replay player (leaflet-timedimension).
    "td_backward": {"zh": "后退", "en": "Backward"},
    "td_forward": {"zh": "前进", "en": "Forward"},
    "td_play": {"zh": "播放", "en": "Play"},
    "td_play_reverse": {"zh": "倒放", "en": "Play reverse"},
    "td_pause": {"zh": "暂停", "en": "Pause"},
    "td_loop": {"zh": "循环", "en": "Loop"},
    "td_date": {"zh": "日期", "en": "Date"},
    "td_utc_time": {"zh": "UTC 时间", "en": "UTC time"},
    "td_local_time": {"zh": "本地时间", "en": "Local time"},
}
# Camera sources, statuses and common tags, named where the ledger import reads them.
for _prefix, _labels in (("src_", SOURCE_LABELS), ("st_", STATUS_LABELS), ("tag_", TAG_LABELS)):
    MESSAGES.update({_prefix + code: {"zh": zh, "en": en} for code, (zh, en) in _labels.items()})


def register(messages: dict[str, dict[str, str]]) -> None:
    """Add a feature's UI messages (each key maps to {'zh': ..., 'en': ...})."""
    for key, entry in messages.items():
        if key in MESSAGES and MESSAGES[key] != entry:
            raise ValueError(f"UI message {key!r} is defined twice with different text")
        if "zh" not in entry or "en" not in entry:
            raise ValueError(f"UI message {key!r} needs both zh and en")
        MESSAGES[key] = entry


def current_language() -> str:
    """Return the language of this request: ?lang=, then the cookie, then Chinese."""
    lang = request.args.get("lang") or request.cookies.get(COOKIE) or "zh"
    return lang if lang in LANGUAGES else "zh"


def translate(key: str, lang: str | None = None) -> str:
    """Return the UI text for ``key`` in the current language."""
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    return entry.get(lang or g.get("lang", "zh"), entry["zh"])


def catalog(lang: str) -> dict[str, str]:
    """Return every message in one language (sent to the browser glue)."""
    return {k: v.get(lang, v["zh"]) for k, v in MESSAGES.items()}


def init_app(app: Flask) -> None:
    """Pick the language per request and remember an explicit choice in a cookie."""

    @app.before_request
    def pick_language() -> None:
        g.lang = current_language()

    @app.after_request
    def remember_language(response):
        if request.args.get("lang") in LANGUAGES:
            response.set_cookie(COOKIE, request.args["lang"], samesite="Lax", httponly=True)
        return response

    app.jinja_env.globals.update(t=translate)
