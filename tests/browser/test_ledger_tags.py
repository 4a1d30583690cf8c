"""The ledger's edit form shows a camera's tags by their names in the page's language,
as its record does, and stores what is typed under the tags' codes."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.browser.conftest import restore_camera_row
from video.models import TAG_LABELS

pytestmark = pytest.mark.browser

READY = "() => document.documentElement.dataset.lgReady === '1'"
GB_ID = "37081201001310000002"  # the audit's camera: 道路、路口


@pytest.fixture
def tagged_camera(engine, demo_loaded):
    """Yield the GB ID and tags of a camera tagged road and intersection; restore its row."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT gb_id, tags, to_jsonb(c) AS saved FROM cameras c "
            "WHERE tags @> ARRAY['road', 'intersection']::varchar[] "
            "ORDER BY gb_id <> :g, gb_id LIMIT 1"), {"g": GB_ID}).one()
    try:
        yield row.gb_id, list(row.tags)
    finally:
        restore_camera_row(engine, row.saved)


def stored_tags(engine, gb_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT tags FROM cameras WHERE gb_id = :g"),
                                 {"g": gb_id}).scalar())


def open_camera(page, url: str, gb_id: str) -> None:
    page.goto(url)
    page.wait_for_function(READY)
    page.click(f'#lg-rows tr[data-gb="{gb_id}"] .lg-open')
    page.wait_for_function(f"() => document.querySelector('#lg-detail .lg-id')?.textContent === '{gb_id}'")
    page.wait_for_selector("#lg-history")


def save(page, status: str) -> str:
    """Press save and return the status line once it starts with ``status``."""
    page.evaluate("() => { document.getElementById('lg-edit-status').textContent = ''; }")
    page.click("#lg-edit button[type=submit]")
    page.wait_for_function("s => document.getElementById('lg-edit-status').textContent.startsWith(s)",
                           arg=status)
    return page.inner_text("#lg-edit-status")


def test_tags_are_edited_by_their_chinese_names(page, live_server, engine, tagged_camera):
    gb_id, tags = tagged_camera
    patches: list[str] = []
    page.on("request", lambda r: patches.append(r.post_data or "") if r.method == "PATCH" else None)
    open_camera(page, f"{live_server}/cameras?q={gb_id}", gb_id)
    names = [TAG_LABELS[tag][0] for tag in tags]
    assert "、".join(names) in page.inner_text("#lg-detail-body")  # the record: 道路、路口
    assert page.input_value("#lg-edit input[name=tags]") == "，".join(names)

    # Saved as it is, nothing is sent and the tags stay.
    assert save(page, "已保存") == "已保存"
    assert patches == [] and stored_tags(engine, gb_id) == tags

    # A tag added by its Chinese name is stored under its code.
    page.fill("#lg-edit input[name=tags]", "，".join(names) + "，人流监测")
    assert save(page, "已保存") == "已保存"
    assert sorted(stored_tags(engine, gb_id)) == sorted([*tags, "crowd"])
    assert json.loads(patches[-1])["tags"] == [*tags, "crowd"]
    assert "人流监测" in page.inner_text("#lg-detail-body")
    assert set(page.input_value("#lg-edit input[name=tags]").split("，")) == {*names, "人流监测"}

    # Names, codes and the usual separators mix; a name not in the list is a tag of its own.
    page.fill("#lg-edit input[name=tags]", "道路、intersection 村庄")
    assert save(page, "已保存") == "已保存"
    assert sorted(stored_tags(engine, gb_id)) == ["intersection", "road", "village"]

    # What is not a tag is refused with the reason, as before, and nothing changes.
    page.fill("#lg-edit input[name=tags]", "道路，路口!")
    message = save(page, "未保存")
    assert message.startswith("未保存：") and "标签" in message
    assert sorted(stored_tags(engine, gb_id)) == ["intersection", "road", "village"]


def test_tags_are_edited_by_their_english_names(page, live_server, engine, tagged_camera):
    gb_id, tags = tagged_camera
    open_camera(page, f"{live_server}/cameras?lang=en&q={gb_id}", gb_id)
    names = [TAG_LABELS[tag][1] for tag in tags]
    assert ", ".join(names) in page.inner_text("#lg-detail-body")
    assert page.input_value("#lg-edit input[name=tags]") == ", ".join(names)
    assert save(page, "Saved") == "Saved"
    assert stored_tags(engine, gb_id) == tags

    # A name of two words is one tag, in any case.
    page.fill("#lg-edit input[name=tags]", ", ".join(names) + ", key place")
    assert save(page, "Saved") == "Saved"
    assert sorted(stored_tags(engine, gb_id)) == sorted([*tags, "key_place"])
    assert set(page.input_value("#lg-edit input[name=tags]").split(", ")) == {*names, "Key place"}

    page.fill("#lg-edit input[name=tags]", "Road, no-such-tag!")
    message = save(page, "Not saved")
    assert "tags" in message.lower()
    assert sorted(stored_tags(engine, gb_id)) == sorted([*tags, "key_place"])
