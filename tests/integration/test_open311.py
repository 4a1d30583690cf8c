"""Open311 GeoReport v2 at /open311/v2/: services, filing with an api_key, following by id."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from gridmap import matters, open311

INSIDE = {"lat": "35.553", "long": "116.826"}  # 鼓楼街道


@pytest.fixture
def key(seeded, app):
    """Create an API client (categories and rules seeded); return its key."""
    session = seeded
    _client, api_key = open311.create_client(session, "test-citizen-app")
    session.commit()
    return api_key


def post(client, key, **fields):
    data = {"service_code": "SJ.01", "description": "路边暴露垃圾", **INSIDE, **fields}
    if key is not None:
        data["api_key"] = key
    return client.post("/open311/v2/requests.json", data=data)


def test_services_list_leaf_categories(anon_client, key):
    services = anon_client.get("/open311/v2/services.json")
    assert services.status_code == 200
    codes = {s["service_code"] for s in services.get_json()}
    assert "SJ.01" in codes and "SJ" not in codes  # leaves only
    one = next(s for s in services.get_json() if s["service_code"] == "SJ.01")
    assert one["metadata"] is False and one["type"] == "realtime" and one["group"]
    definition = anon_client.get("/open311/v2/services/SJ.01.json")
    assert definition.get_json() == {"service_code": "SJ.01", "attributes": []}
    missing = anon_client.get("/open311/v2/services/ZZ.99.json")
    assert missing.status_code == 404 and missing.get_json()[0]["code"] == 404


def test_post_needs_a_valid_key(anon_client, key, session):
    before = session.execute(text("SELECT count(*) FROM matters")).scalar()
    for bad in (None, "", "wrong-key"):
        resp = post(anon_client, bad)
        assert resp.status_code == 403
        body = resp.get_json()
        assert body[0]["code"] == 403 and body[0]["description"]
    assert session.execute(text("SELECT count(*) FROM matters")).scalar() == before


def test_post_files_a_matter_and_get_follows_it(anon_client, key, session):
    resp = post(anon_client, key, first_name="三", last_name="张", phone="13800000000",
                email="zhang@example.invalid", token="app-0001",
                description="<b>垃圾</b> 堆放")
    assert resp.status_code == 201, resp.get_json()
    ref = resp.get_json()[0]["service_request_id"]
    row = session.execute(text("SELECT source, source_ref, reporter_name, reporter_phone, state,"
                               " category_code, description, reporter_email FROM matters"
                               " WHERE ref = :r"), {"r": ref}).mappings().one()
    assert row["source"] == "open311" and row["source_ref"] == "app-0001"
    assert row["reporter_email"] == "zhang@example.invalid"  # kept for the callback
    assert row["reporter_name"] == "张三" and row["state"] == "transferred"
    assert row["description"] == "<b>垃圾</b> 堆放"  # stored as text
    one = anon_client.get(f"/open311/v2/requests/{ref}.json")
    assert one.status_code == 200
    [req] = one.get_json()
    assert req["service_request_id"] == ref and req["status"] == "open"
    assert "转办" in req["status_notes"] and req["service_code"] == "SJ.01"
    assert req["lat"] == pytest.approx(35.553) and req["long"] == pytest.approx(116.826)
    text_of_answer = one.get_data(as_text=True)
    for personal in ("13800000000", "张三", "zhang@example.invalid"):
        assert personal not in text_of_answer
    listed = anon_client.get(f"/open311/v2/requests.json?service_request_id={ref}")
    assert [r["service_request_id"] for r in listed.get_json()] == [ref]
    recent = anon_client.get("/open311/v2/requests.json?service_code=SJ.01&status=open")
    assert ref in {r["service_request_id"] for r in recent.get_json()}
    assert "13800000000" not in recent.get_data(as_text=True)


def test_closed_maps_to_closed(anon_client, key, session):
    ref = post(anon_client, key).get_json()[0]["service_request_id"]
    session.execute(text("UPDATE matters SET state = 'closed', closed_at = now() WHERE ref = :r"),
                    {"r": ref})
    [req] = anon_client.get(f"/open311/v2/requests/{ref}.json").get_json()
    assert req["status"] == "closed" and req["expected_datetime"] is None
    closed = anon_client.get("/open311/v2/requests.json?status=closed").get_json()
    assert ref in {r["service_request_id"] for r in closed}


def test_other_sources_are_not_listed_but_can_be_followed_by_id(anon_client, key, session):
    from gridmap.accounts import DISTRICT_UNIT, system_actor, unit_by_ref

    actor = system_actor(unit_by_ref(session, DISTRICT_UNIT), "hotline-desk")
    detail = matters.intake(session, actor, {
        "source": "hotline_12345", "source_ref": "RX-T-1", "category": "SJ.01",
        "lon": 116.826, "lat": 35.553, "title": "热线事项", "description": "王先生 13900000000",
        "reporter_name": "王五", "reporter_phone": "13900000000"})
    session.commit()
    listed = anon_client.get("/open311/v2/requests.json").get_json()
    assert detail["ref"] not in {r["service_request_id"] for r in listed}
    [req] = anon_client.get(f"/open311/v2/requests/{detail['ref']}.json").get_json()
    assert req["description"] is None  # free text of other channels may name people
    assert "13900000000" not in str(req) and "王五" not in str(req)


@pytest.mark.parametrize("fields, reason", [
    ({"lat": "36.9", "long": "116.826"}, "outside"),
    ({"lat": "abc"}, "lat"),
    ({"lat": "", "long": "", "address_string": "建设路 1 号"}, "geocoded"),
    ({"service_code": "ZZ.99"}, "service_code"),
    ({"service_code": ""}, "service_code"),
    ({"jurisdiction_id": "110000"}, "jurisdiction"),
    ({"media_url": "javascript:alert(1)"}, "media_url"),
    ({"email": "not an address"}, "email"),
    ({"email": "a@b.c" + "c" * 260}, "email"),
    ({"evil": "1"}, "unknown field"),
])
def test_bad_requests_are_400_and_store_nothing(anon_client, key, session, fields, reason):
    before = session.execute(text("SELECT count(*) FROM matters")).scalar()
    resp = post(anon_client, key, **fields)
    assert resp.status_code == 400
    [err] = resp.get_json()
    assert err["code"] == 400 and reason in err["description"]
    assert session.execute(text("SELECT count(*) FROM matters")).scalar() == before


def test_duplicate_token_is_409(anon_client, key):
    assert post(anon_client, key, token="dup-1").status_code == 201
    again = post(anon_client, key, token="dup-1")
    assert again.status_code == 409 and again.get_json()[0]["code"] == 409


def test_unknown_request_is_404(anon_client, key):
    resp = anon_client.get("/open311/v2/requests/SX2099010199999.json")
    assert resp.status_code == 404 and resp.get_json()[0]["code"] == 404
    assert anon_client.get("/open311/v2/requests.json?status=maybe").status_code == 400


def test_cli_creates_a_client_and_prints_the_key_once(runner, session, monkeypatch):
    from web.cli import main

    result = runner.invoke(main, ["matters", "api-client", "--help"])
    assert result.exit_code == 0 and "create" in result.output
    client, key = open311.create_client(session, "cli-check")
    assert open311.authenticate(session, key).id == client.id
    stored = session.execute(text("SELECT key_hash FROM api_clients WHERE id = :i"),
                             {"i": client.id}).scalar()
    assert bytes(stored) == open311.hash_key(key) and key.encode() not in bytes(stored)


FIELDS = ["service_code", "lat", "long", "address_string", "description", "email",
          "first_name", "last_name", "phone", "media_url", "token", "device_id",
          "account_id", "jurisdiction_id", "attribute[x]"]
NASTY = st.sampled_from(["", "\x00", "nan", "-inf", "1e400", "999999999999999999999", "116.826",
                         "35.553", "SJ.01", "SJ", "<script>x</script>", "a" * 5000, "😀",
                         "http://127.0.0.1/x.jpg", "javascript:alert(1)", "13800000000"])


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(fields=st.dictionaries(st.sampled_from(FIELDS), st.one_of(st.text(max_size=40), NASTY),
                              max_size=6),
       as_json=st.booleans())
def test_any_filing_is_stored_whole_or_refused_with_a_reason(anon_client, key, session, fields,
                                                            as_json):
    data = {"service_code": "SJ.01", "description": "路边暴露垃圾", **INSIDE, **fields,
            "api_key": key}
    count = text("SELECT count(*) FROM matters")
    before = session.execute(count).scalar()
    resp = (anon_client.post("/open311/v2/requests.json", json=data) if as_json
            else anon_client.post("/open311/v2/requests.json", data=data))
    assert resp.status_code in (201, 400, 404, 409, 413), (resp.status_code, fields)
    after = session.execute(count).scalar()
    if resp.status_code == 201:
        assert after == before + 1
        assert resp.get_json()[0]["service_request_id"]
    else:
        assert after == before, fields
        assert resp.get_json()[0]["description"], fields  # Open311's error shape, with a reason
