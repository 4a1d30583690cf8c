"""Timeline notes the system writes carry a code, so pages show them in their language."""

from __future__ import annotations

from sqlalchemy import text

from gridmap import accounts, matters
from tests.integration.test_matters import TOWN, _seen_spot, actor, report, step


def test_auto_routing_note_is_marked_as_the_systems(seeded):
    district = actor(seeded, "district-operator")
    m = report(seeded, district)
    transfer = next(e for e in m["events"] if e["action"] == "transfer")
    # The stored text stays as written; the code says the system wrote it.
    assert transfer["note"] == "智能流转"
    assert transfer["system_note"] == {"code": "auto_routed"}
    assert next(e for e in m["events"] if e["action"] == "report")["system_note"] is None
    # The same words typed by a person are that person's note, shown as typed.
    m = step(seeded, district, m, "comment", note="智能流转")
    assert m["events"][-1]["note"] == "智能流转" and m["events"][-1]["system_note"] is None


def test_rows_stored_before_the_code_are_recognised(seeded):
    # The demo loader (and every matter routed before) stored only the Chinese note.
    matter_id = seeded.execute(text(
        "SELECT matter_id FROM matter_events WHERE action = 'transfer' AND note = '智能流转' "
        "AND user_id IS NULL ORDER BY id LIMIT 1")).scalar()
    assert matter_id is not None, "the demo data routes most matters automatically"
    detail = matters.matter_detail(seeded, actor(seeded, "district-operator"), matter_id)
    transfer = next(e for e in detail["events"]
                    if e["action"] == "transfer" and e["note"] == "智能流转")
    assert transfer["system_note"] == {"code": "auto_routed"}


def test_video_dispatch_note_carries_its_order(seeded):
    district = actor(seeded, "district-operator")
    _gb_id, lon, lat = _seen_spot(seeded, TOWN)
    m = report(seeded, district, at=(lon, lat))
    town = accounts.unit_by_ref(seeded, TOWN)
    order_id = matters.dispatch_video(seeded, district, m["id"], [town.id], note="请查看现场")
    last = matters.matter_detail(seeded, district, m["id"])["events"][-1]
    assert last["note"] == f"视频调度 #{order_id}"
    assert last["system_note"] == {"code": "video_dispatch", "order": order_id}
