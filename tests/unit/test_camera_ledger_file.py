"""Camera ledger files as the district's departments keep them: Chinese headers and
names for sources, statuses and tags, Excel's GBK CSV, and the import template."""

from __future__ import annotations

import csv
import io

import pytest

from geodata.io import ImportRejected, read_features
from gridmap.errors import InvalidInput
from video.ledger import (
    COLUMN_ALIASES,
    TEMPLATE_COLUMNS,
    TEMPLATE_HEADERS_ZH,
    read_camera_file,
    template_csv,
)
from video.models import SOURCE_LABELS, SOURCES, STATUS_LABELS, STATUSES
from video.registry import validate

CHINESE_LEDGER = (
    "国标编码,设备名称,经度,纬度,所属系统,权属单位,视频流地址,子码流地址,方位角,视场角,可视距离,设备状态,标签\n"
    "37081200001310000021,兴隆路口-01,116.80,35.55,天网,兖州区公安分局,rtsp://192.0.2.1/a,,90,60,80,在线,"
    "重点场所、路口\n"
    "37081200001320000022,九州路-02,116.81,35.56,sharp_eyes,兖州区委政法委,rtsp://192.0.2.2/a,"
    "rtsp://192.0.2.2/b,,,,离线,crowd；夜市\n"
)


def test_a_chinese_ledger_reads_as_the_registry_expects():
    rows, _ = read_camera_file(CHINESE_LEDGER.encode("utf-8"), "台账.csv", "wgs84")
    first, second = rows
    assert first["gb_id"] == "37081200001310000021" and first["name"] == "兴隆路口-01"
    assert (first["source"], first["status"], first["tags"]) == ("skynet", "online", "key_place,intersection")
    assert (second["source"], second["status"], second["tags"]) == ("sharp_eyes", "offline", "crowd,夜市")
    assert (first["lon"], first["lat"]) == pytest.approx((116.80, 35.55))
    assert first["main_url"] == "rtsp://192.0.2.1/a" and second["sub_url"] == "rtsp://192.0.2.2/b"
    # What the registry then checks and stores.
    camera = validate(first)
    assert (camera.heading, camera.fov, camera.range_m) == (90, 60, 80)
    assert camera.tags == ["intersection", "key_place"]
    assert validate(second).tags == ["crowd", "夜市"]


def test_excels_gbk_csv_with_chinese_headers_is_read():
    rows, _ = read_camera_file(CHINESE_LEDGER.encode("gb18030"), "台账.csv", "wgs84")
    assert [r["source"] for r in rows] == ["skynet", "sharp_eyes"]


def test_an_unknown_source_name_stays_as_written_for_the_registry_to_refuse():
    text = CHINESE_LEDGER.replace(",天网,", ",公安天网二期,")
    rows, _ = read_camera_file(text.encode(), "台账.csv", "wgs84")
    assert rows[0]["source"] == "公安天网二期"
    with pytest.raises(InvalidInput, match="unknown source"):
        validate(rows[0])


def test_two_headers_for_one_field_reject_the_file_naming_both():
    text = CHINESE_LEDGER.replace("设备名称", "gb_id", 1)  # 国标编码 and gb_id
    with pytest.raises(InvalidInput) as caught:
        read_camera_file(text.encode(), "台账.csv", "wgs84")
    errors = caught.value.details["errors"]
    assert [(e["row"], e["field"], e["reason"]) for e in errors] == [
        (None, "gb_id", "columns 国标编码 and gb_id both give gb_id")]


def test_a_ledger_without_any_gb_id_header_is_refused_once_for_the_file():
    text = CHINESE_LEDGER.replace("国标编码", "序号", 1)
    with pytest.raises(InvalidInput) as caught:
        read_camera_file(text.encode(), "台账.csv", "wgs84")
    assert [(e["row"], e["field"]) for e in caught.value.details["errors"]] == [(None, "gb_id")]


def test_aliases_match_headers_without_case_or_spaces():
    data = b"GB_ID , Name ,lon,lat\n37081200001310000021,a,116.8,35.5\n"
    result = read_features(data, fmt="csv", datum="wgs84",
                           column_aliases={"编码": "gb_id", "名称": "name"})
    assert {"gb_id", "name"} <= set(result.frame.columns)
    assert result.frame.loc[0, "gb_id"] == "37081200001310000021"


def test_the_code_names_cover_every_source_and_status():
    assert set(SOURCE_LABELS) == set(SOURCES) and set(STATUS_LABELS) == set(STATUSES)
    zh = [zh for zh, _ in SOURCE_LABELS.values()]
    assert len(set(zh)) == len(zh)


@pytest.mark.parametrize("chinese", [True, False])
def test_the_template_is_an_empty_ledger_the_import_reads(chinese):
    body = template_csv(chinese)
    assert body.startswith("\ufeff".encode())  # Excel opens UTF-8 only with the BOM
    headers = next(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    expected = [TEMPLATE_HEADERS_ZH[c] for c in TEMPLATE_COLUMNS] if chinese else list(TEMPLATE_COLUMNS)
    assert headers == expected
    # Filled in with one camera, it imports with every field where it belongs.
    values = {"gb_id": "37081200001310000021", "name": "模板", "lon": "116.8", "lat": "35.5",
              "source": "天网" if chinese else "skynet", "department": "兖州区公安分局",
              "main_url": "rtsp://192.0.2.1/a", "sub_url": "rtsp://192.0.2.1/b",
              "snapshot_url": "http://192.0.2.1/s.jpg", "heading": "10", "fov": "20",
              "range_m": "30", "status": "在线" if chinese else "online", "tags": "road"}
    line = ",".join(values[c] for c in TEMPLATE_COLUMNS)
    rows, _ = read_camera_file(body + line.encode() + b"\r\n", "template.csv", "wgs84")
    row = rows[0]
    assert {k: row[k] for k in ("gb_id", "source", "status", "sub_url", "snapshot_url")} == {
        "gb_id": "37081200001310000021", "source": "skynet", "status": "online",
        "sub_url": "rtsp://192.0.2.1/b", "snapshot_url": "http://192.0.2.1/s.jpg"}
    assert validate(row).range_m == 30


def test_every_chinese_template_header_is_an_alias_or_a_coordinate():
    for column, header in TEMPLATE_HEADERS_ZH.items():
        assert COLUMN_ALIASES.get(header) == column or header in ("经度", "纬度")


def test_clashing_aliases_are_an_import_rejection_in_geodata():
    with pytest.raises(ImportRejected) as caught:
        read_features(b"gb_id,GB_ID,lon,lat\n1,2,116.8,35.5\n", fmt="csv", datum="wgs84",
                      column_aliases={"GB_ID": "gb_id"})
    assert caught.value.errors[0].field == "gb_id"


def test_every_probe_error_has_a_label_on_the_ledger_page():
    from video.probe import ErrorClass
    from web.blueprints.ledger import MESSAGES

    missing = [e.value for e in ErrorClass if f"lg_probe_{e.value}" not in MESSAGES]
    assert missing == []
    assert all(MESSAGES[f"lg_probe_{e.value}"]["zh"] for e in ErrorClass)


def test_a_chinese_export_reads_back_as_the_same_records():
    from video.ledger import write_camera_file

    rows, _ = read_camera_file(CHINESE_LEDGER.encode("utf-8"), "台账.csv", "wgs84")
    for row in rows:
        row["tags"] = ",".join(validate(row).tags)
        row.update(grid_code="370812001001001", community_code="370812001001", town_code="370812001")
    body = write_camera_file(rows, "csv", "gcj02", chinese=True)
    text = body.decode("utf-8-sig")
    header = text.splitlines()[0].split(",")
    assert header[:3] == ["国标编码", "名称", "来源"] and header[-2:] == ["经度", "纬度"]
    assert "天网" in text and "skynet" not in text and "路口、重点场所" in text.replace('"', "")
    again, _ = read_camera_file(body, "导出.csv", "gcj02")
    for before, after in zip(rows, again, strict=True):
        assert {k: after[k] for k in ("gb_id", "source", "status")} == {
            k: before[k] for k in ("gb_id", "source", "status")}
        assert validate(after).tags == validate(before).tags
        assert (after["lon"], after["lat"]) == pytest.approx((before["lon"], before["lat"]), abs=1e-5)
