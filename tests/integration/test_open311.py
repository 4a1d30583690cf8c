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


def hotline_matter(session, **extra):
    """File a 12345 hotline matter the way the hotline desk does; return its ref."""
    from gridmap.accounts import DISTRICT_UNIT, system_actor, unit_by_ref

    actor = system_actor(unit_by_ref(session, DISTRICT_UNIT), "hotline-desk")
    detail = matters.intake(session, actor, {
        "source": "hotline_12345", "source_ref": "RX-T-1", "category": "SJ.01",
        "lon": 116.82647, "lat": 35.55312, "title": "热线事项", "description": "王先生 13900000000",
        "reporter_name": "王五", "reporter_phone": "13900000000", **extra})
    session.commit()
    return detail["ref"]


def test_other_channels_matters_are_not_found_without_their_key(anon_client, key, session):
    # Refs are sequential (SX + date + number): knowing one must not open a hotline matter.
    ref = hotline_matter(session)
    filed = post(anon_client, key).get_json()[0]["service_request_id"]
    for reader in ({}, {"api_key": key}):  # the public, and a client that did not file it
        one = anon_client.get(f"/open311/v2/requests/{ref}.json", query_string=reader)
        assert one.status_code == 404 and one.get_json()[0]["code"] == 404
        assert one.get_json()[0]["description"] == "no such service request"
        by_ids = anon_client.get("/open311/v2/requests.json", query_string={
            "service_request_id": f"{ref},{filed}", **reader})
        assert [r["service_request_id"] for r in by_ids.get_json()] == [filed]
        listed = anon_client.get("/open311/v2/requests.json", query_string=reader).get_json()
        assert ref not in {r["service_request_id"] for r in listed}
        assert filed in {r["service_request_id"] for r in listed}
        for answer in (one, by_ids):
            assert "13900000000" not in answer.get_data(as_text=True)
            assert "王五" not in answer.get_data(as_text=True)


def test_a_sequential_sweep_of_refs_finds_only_open311_requests(anon_client, key, session):
    hotline = hotline_matter(session)
    filed = post(anon_client, key).get_json()[0]["service_request_id"]
    day, number = hotline[:10], int(hotline[10:])
    sweep = ",".join(f"{day}{n:05d}" for n in range(max(1, number - 60), number + 40))
    found = anon_client.get("/open311/v2/requests.json",
                            query_string={"service_request_id": sweep}).get_json()
    refs = [r["service_request_id"] for r in found]
    assert hotline not in refs
    sources = session.execute(text("SELECT DISTINCT source FROM matters WHERE ref = ANY(:r)"),
                              {"r": refs}).scalars().all()
    assert set(sources) <= {"open311"}
    assert filed in refs or filed[:10] != day


def test_public_reads_are_rounded_and_the_filing_client_sees_its_own_exactly(
        anon_client, key, session):
    resp = post(anon_client, key, lat="35.55312", long="116.82647", address_string="建设路 1 号",
                first_name="三", last_name="张", phone="13800000000",
                email="zhang@example.invalid", description="门口垃圾")
    assert resp.status_code == 201, resp.get_json()
    ref = resp.get_json()[0]["service_request_id"]
    public = anon_client.get(f"/open311/v2/requests/{ref}.json")
    [req] = public.get_json()
    assert req["lat"] == 35.553 and req["long"] == 116.826  # about 100 m
    assert req["address"] is None and req["description"] == "门口垃圾"
    listed = anon_client.get("/open311/v2/requests.json", query_string={"service_code": "SJ.01"})
    [again] = [r for r in listed.get_json() if r["service_request_id"] == ref]
    assert again == req
    # The spec's shape stays whole; nothing personal in it.
    assert set(req) == {"service_request_id", "status", "status_notes", "service_name",
                        "service_code", "description", "agency_responsible", "service_notice",
                        "requested_datetime", "updated_datetime", "expected_datetime",
                        "address", "address_id", "zipcode", "lat", "long", "media_url"}
    for answer in (public, listed):
        for personal in ("13800000000", "张三", "zhang@example.invalid", "55312", "82647",
                         "建设路"):
            assert personal not in answer.get_data(as_text=True)
    [mine] = anon_client.get(f"/open311/v2/requests/{ref}.json",
                             query_string={"api_key": key}).get_json()
    assert mine["lat"] == pytest.approx(35.55312, abs=1e-9)
    assert mine["long"] == pytest.approx(116.82647, abs=1e-9)
    assert mine["address"] == "建设路 1 号"
    assert "13800000000" not in str(mine) and "张三" not in str(mine)
    mine_listed = anon_client.get("/open311/v2/requests.json",
                                  query_string={"service_request_id": ref, "api_key": key})
    assert mine_listed.get_json() == [mine]
    # Another client's key sees it as the public does.
    _other, other_key = open311.create_client(session, "test-other-app")
    session.commit()
    [theirs] = anon_client.get(f"/open311/v2/requests/{ref}.json",
                               query_string={"api_key": other_key}).get_json()
    assert theirs == req


def test_a_hotline_client_follows_what_it_filed_but_the_public_cannot(anon_client, session):
    _client, hotline_key = open311.create_client(session, "test-hotline-system",
                                                 source="hotline_12345")
    session.commit()
    resp = post(anon_client, hotline_key, lat="35.55312", long="116.82647", phone="13800000000")
    assert resp.status_code == 201, resp.get_json()
    ref = resp.get_json()[0]["service_request_id"]
    assert anon_client.get(f"/open311/v2/requests/{ref}.json").status_code == 404
    assert ref not in {r["service_request_id"]
                       for r in anon_client.get("/open311/v2/requests.json").get_json()}
    [mine] = anon_client.get(f"/open311/v2/requests/{ref}.json",
                             query_string={"api_key": hotline_key}).get_json()
    assert mine["lat"] == pytest.approx(35.55312, abs=1e-9)
    listed = anon_client.get("/open311/v2/requests.json",
                             query_string={"api_key": hotline_key}).get_json()
    assert ref in {r["service_request_id"] for r in listed}


def test_a_wrong_key_on_a_read_is_403_not_a_public_read(anon_client, key, session):
    ref = post(anon_client, key).get_json()[0]["service_request_id"]
    for path in (f"/open311/v2/requests/{ref}.json", "/open311/v2/requests.json"):
        resp = anon_client.get(path, query_string={"api_key": "wrong-key"})
        assert resp.status_code == 403 and resp.get_json()[0]["description"] == "invalid api_key"
        assert anon_client.get(path, query_string={"api_key": ""}).status_code == 200
    session.execute(text("UPDATE api_clients SET active = false WHERE name = 'test-citizen-app'"))
    resp = anon_client.get(f"/open311/v2/requests/{ref}.json", query_string={"api_key": key})
    assert resp.status_code == 403


def test_clients_whose_names_start_alike_are_refused(session):
    from gridmap.errors import Conflict

    long_name = "市民随手拍" * 7  # longer than the 32 characters an actor name keeps
    open311.create_client(session, long_name)
    with pytest.raises(Conflict):
        open311.create_client(session, long_name[:32] + "其他")
    open311.create_client(session, long_name[:31])  # shorter: a different actor name


@pytest.mark.parametrize("query, reason", [
    ({"end_date": "0001-01-01T00:00:00"}, "end_date must be between the years 2000 and 2100"),
    ({"start_date": "0001-01-01T00:00:00"}, "start_date must be between the years"),
    ({"end_date": "9999-12-31T23:59:59-23:00"}, "end_date must be between the years"),
    ({"end_date": "2101-01-01T00:00:00Z"}, "end_date must be between the years"),
    ({"start_date": "1999-12-31"}, "start_date must be between the years"),
    ({"end_date": "nan"}, "end_date must be a W3C date-time"),
    ({"end_date": "NaT"}, "end_date must be a W3C date-time"),
    ({"end_date": "inf"}, "end_date must be a W3C date-time"),
    ({"start_date": "2026-13-01"}, "start_date must be a W3C date-time"),
    ({"start_date": "2026-01-01\x00"}, "NUL"),  # refused before the domain
    ({"start_date": "2026-01-01T00:00:00" + "0" * 5000}, "start_date must be a W3C date-time"),
    ({"start_date": "2026-03-01", "end_date": "2026-02-01"}, "start_date is after end_date"),
    ({"start_date": "2000-01-01", "end_date": "2100-12-31"}, "at most one year"),
])
def test_out_of_range_dates_are_400_with_a_reason(anon_client, query, reason):
    resp = anon_client.get("/open311/v2/requests.json", query_string=query)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    [err] = resp.get_json()
    assert err["code"] == 400 and reason in err["description"]


def test_dates_at_the_bounds_are_answered(anon_client):
    for query in ({"end_date": "2000-01-01T00:00:00+14:00"},
                  {"start_date": "2100-12-01", "end_date": "2100-12-31T23:59:59-12:00"}):
        resp = anon_client.get("/open311/v2/requests.json", query_string=query)
        assert resp.status_code == 200 and resp.get_json() == [], query


@pytest.mark.parametrize("field, value", [
    ("first_name", ["a"]),
    ("description", {"text": "垃圾"}),
    ("lat", [35.553]),
    ("phone", True),
    ("token", ["t-1", "t-2"]),
    ("attribute[x]", {"a": 1}),
])
def test_a_json_list_or_object_is_400_naming_the_field_and_stores_nothing(
        anon_client, key, session, field, value):
    before = session.execute(text("SELECT count(*) FROM matters")).scalar()
    data = {"service_code": "SJ.01", "description": "路边暴露垃圾", **INSIDE, "api_key": key,
            field: value}
    resp = anon_client.post("/open311/v2/requests.json", json=data)
    assert resp.status_code == 400, resp.get_json()
    [err] = resp.get_json()
    assert err["description"] == f"{field} must be a single text value"
    assert session.execute(text("SELECT count(*) FROM matters")).scalar() == before


def test_a_form_field_given_twice_is_400_and_stores_nothing(anon_client, key, session):
    before = session.execute(text("SELECT count(*) FROM matters")).scalar()
    data = {"service_code": "SJ.01", **INSIDE, "api_key": key, "first_name": ["a", "b"]}
    resp = anon_client.post("/open311/v2/requests.json", data=data)
    assert resp.status_code == 400
    assert resp.get_json()[0]["description"] == "first_name must be a single text value"
    assert session.execute(text("SELECT count(*) FROM matters")).scalar() == before


def test_json_numbers_are_kept_as_their_plain_text(anon_client, key, session):
    resp = anon_client.post("/open311/v2/requests.json", json={
        "api_key": key, "service_code": "SJ.01", "lat": 35.55312, "long": 116.82647,
        "phone": 13800000000, "first_name": 3, "last_name": None, "description": "路边垃圾"})
    assert resp.status_code == 201, resp.get_json()
    ref = resp.get_json()[0]["service_request_id"]
    row = session.execute(text("SELECT reporter_phone, reporter_name, ST_Y(geom) AS lat"
                               " FROM matters WHERE ref = :r"), {"r": ref}).mappings().one()
    assert row["reporter_phone"] == "13800000000" and row["reporter_name"] == "3"
    assert row["lat"] == pytest.approx(35.55312, abs=1e-9)


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
