"""Error reasons in the reader's language.

Domain code raises with an English reason: the API's stable text, which logs,
tests and API clients read. Pages show ``message``, the same reason in the
request's language, from ``reason_catalog.json``. Its keys are the reasons'
templates as the source writes them (``{}`` where a value goes in); its values
say the same in Chinese, with ``{0}``, ``{1}`` … for those values. A unit test
checks that every reason an answer can carry has its entry.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from web import i18n

CATALOG_PATH = Path(__file__).with_name("reason_catalog.json")

# Field names and coded values that reasons quote ("name is required", "a viewer
# may not …"), as the pages label them.
LABELS = {
    "operator": "值班员", "grid_admin": "网格管理员", "patrol_lead": "巡查组长", "viewer": "只读用户",
    "dispatch": "调度", "escalation": "上报", "grid": "网格", "community": "社区", "town": "镇街",
    "grid leader": "网格长", "full-time grid worker": "专职网格员",
    # What an uploaded file turned out to be (geodata.io).
    "a GeoJSON file": "GeoJSON 文件", "a zipped Shapefile": "压缩的 Shapefile",
    "a GeoPackage": "GeoPackage", "a CSV text file": "CSV 文本文件", "a zip archive": "zip 压缩包",
    "an SQLite database": "SQLite 数据库", "plain text": "纯文本", "a PNG image": "PNG 图片",
    "a JPEG image": "JPEG 图片", "a GIF image": "GIF 图片", "a PDF document": "PDF 文档",
    "a gzip archive": "gzip 压缩包", "a RAR archive": "RAR 压缩包", "a 7-Zip archive": "7-Zip 压缩包",
    "an old-style Office document (.xls/.doc)": "旧版 Office 文档（.xls/.doc）",
    "a RIFF media file": "RIFF 媒体文件",
    "a bare .shp file (upload the .shp, .shx, .dbf and .prj as one .zip)":
        "单独的 .shp 文件（请将 .shp、.shx、.dbf 和 .prj 打包成一个 .zip 上传）",

    "name": "名称", "title": "标题", "phone": "电话", "note": "说明", "reason": "原因",
    "address": "地址", "description": "描述", "feedback": "反馈", "incident": "事件",
    "category": "类别", "source": "来源", "status": "状态", "priority": "优先级",
    "urgency": "紧急程度", "severity": "严重程度", "role": "角色", "rating": "评价",
    "version": "版本", "tags": "标签", "heading": "朝向", "fov": "视场角", "range_m": "视距",
    "lon": "经度", "lat": "纬度", "radius": "半径", "limit": "数量上限", "offset": "偏移量",
    "kind": "类型", "area": "区域", "layout": "布局", "cameras": "摄像头", "targets": "接收单位",
    "file": "文件", "grid_code": "网格编码", "gb_id": "国标编码", "unit_id": "单位",
    "worker_id": "网格员", "reporter_name": "报告人姓名", "reporter_phone": "报告人电话",
    "reporter_email": "报告人邮箱", "reported_by_worker": "发现网格员", "source_ref": "来源编号",
    "started_at": "开始时间", "ended_at": "结束时间", "reported_at": "报告时间",
    "respond_by": "响应时限", "dwell_s": "停留时长", "coord_sys": "坐标系", "department": "部门",
    "main_url": "主码流地址", "sub_url": "子码流地址", "snapshot_url": "截图地址",
    "member_id": "成员编号",
}

# GEOS's own words for why a geometry is invalid (shapely.is_valid_reason), which
# grid uploads and edits quote, as the lower-case text editing writes or as GEOS
# writes it, with the spot in brackets ("Self-intersection[116.8 35.5]").
GEOS_VALIDITY = {
    "self-intersection": "自相交", "ring self-intersection": "环自相交",
    "hole lies outside shell": "内环位于外环之外", "holes are nested": "内环相互嵌套",
    "interior is disconnected": "内部不连通", "nested shells": "外环相互嵌套",
    "duplicate rings": "环重复", "too few points in geometry component": "几何部件的点太少",
    "invalid coordinate": "坐标无效", "ring is not closed": "环未闭合",
    "repeated point": "点重复", "topology validation error": "拓扑校验错误",
}
_GEOS_SPOT = re.compile(r"^(?P<text>[^\[]+?)\s*(?:\[(?P<spot>[^\]]*)\])?$")


@cache
def _catalog() -> tuple[dict[str, str], list[tuple[re.Pattern[str], str]]]:
    """Return the exact reasons and the templates (most specific first)."""
    entries: dict[str, str] = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    exact = {english: zh for english, zh in entries.items() if "{}" not in english}
    templates = [
        (re.compile("^" + "(.*?)".join(map(re.escape, english.split("{}"))) + "$", re.S), zh)
        for english, zh in entries.items() if "{}" in english
    ]
    # A template with more fixed text is the more specific one.
    templates.sort(key=lambda item: -len(item[0].pattern.replace("(.*?)", "")))
    return exact, templates


def _label(value: str) -> str:
    """Return the Chinese label of a field name or coded value, else the value itself."""
    if value in LABELS:
        return LABELS[value]
    geos = _GEOS_SPOT.match(value)
    if geos and geos["text"].lower() in GEOS_VALIDITY:
        words = GEOS_VALIDITY[geos["text"].lower()]
        return f"{words}（{geos['spot']}）" if geos["spot"] else words
    for kind in ("mt_state_", "mt_act_"):  # matter states and actions, as the matters page says
        entry = i18n.MESSAGES.get(kind + value)
        if entry:
            return entry["zh"]
    return value


def localize(reason: str, lang: str) -> str:
    """Return ``reason`` in ``lang`` ("zh" or "en"); the English reason when no entry fits."""
    if lang == "en" or not reason:
        return reason
    exact, templates = _catalog()
    if reason in exact:
        return exact[reason]
    for pattern, zh in templates:
        found = pattern.match(reason)
        if found:
            return zh.format(*map(_label, found.groups()))
    return reason


def localize_rows(rows: list[Any], lang: str | None = None) -> list[Any]:
    """Return report rows (``{row, field, reason}``) each with its ``message`` and
    ``field_label`` in ``lang`` (the request's language by default)."""
    lang = lang or i18n.current_language()
    return [_localize_row(row, lang)
            if isinstance(row, dict) and isinstance(row.get("reason"), str) else row
            for row in rows]


def _localize_row(row: dict[str, Any], lang: str) -> dict[str, Any]:
    """Return a report row with its ``message`` and, if it names a field, ``field_label``."""
    out = {**row, "message": localize(row["reason"], lang)}
    field = row.get("field")
    if isinstance(field, str):
        out["field_label"] = LABELS.get(field, field) if lang == "zh" else field
    return out
