"""Errors answer browsers with a page in their language and API clients with JSON."""

from __future__ import annotations

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
IMAGE = {"Accept": "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"}


def test_an_unknown_page_is_a_chinese_page_with_a_way_back(client):
    resp = client.get("/no-such-page", headers=HTML)
    assert resp.status_code == 404
    assert resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    assert "页面或数据不存在" in page and 'href="/"' in page and "返回地图" in page
    assert "requested URL" not in page  # not Werkzeug's English page


def test_the_english_switch_applies_to_error_pages(client):
    page = client.get("/no-such-page?lang=en", headers=HTML).get_data(as_text=True)
    assert "Not found" in page and "Back to the map" in page


def test_a_domain_error_on_a_page_shows_its_reason_in_the_pages_language(client):
    from web.reasons import localize

    resp = client.get("/cameras/37081200001320000000/live", headers=HTML)
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert localize("no such camera", "zh") in resp.get_data(as_text=True)
    english = client.get("/cameras/37081200001320000000/live?lang=en", headers=HTML)
    assert "no such camera" in english.get_data(as_text=True)


def test_api_errors_keep_the_english_reason_and_add_the_readers_message(client):
    from web.reasons import localize

    body = client.get("/api/cameras/37081200001320000000").get_json()
    assert body["reason"] == "no such camera"
    assert body["message"] == localize("no such camera", "zh") != body["reason"]
    wrong = client.delete("/api/cameras").get_json()  # Werkzeug's own errors get the title
    assert wrong["message"] == "不支持此操作"
    english = client.get("/api/cameras/37081200001320000000?lang=en").get_json()
    assert english["message"] == english["reason"] == "no such camera"
    assert client.delete("/api/cameras").get_json()["message"] == "Method not allowed"


def test_api_clients_images_and_fetch_still_get_json(client):
    for path, headers in (("/api/no-such-thing", HTML),
                          ("/cameras/37081200001320000000/live", {"Accept": "application/json"}),
                          ("/cameras/37081200001320000000/live.mjpeg", IMAGE),
                          ("/no-such-page", {"Accept": "*/*"})):
        resp = client.get(path, headers=headers)
        assert resp.status_code == 404, path
        assert resp.get_json()["error"] == 404, path



def test_a_wrong_method_says_which_are_allowed(client):
    resp = client.delete("/api/cameras")
    assert resp.status_code == 405 and resp.get_json()["error"] == 405
    assert set(resp.headers["Allow"].split(", ")) >= {"GET", "POST"}
    page = client.delete("/patrol", headers=HTML)
    assert page.status_code == 405 and "GET" in page.headers["Allow"]


def test_an_id_beyond_bigint_names_no_row(client):
    huge = 2**64
    for path in (f"/api/alerts/{huge}/ack", f"/api/matters/{huge}", f"/api/dispatch/{huge}"):
        resp = client.post(path) if path.endswith("/ack") else client.get(path)
        assert resp.status_code == 404, path
        assert resp.get_json()["error"] == 404
    assert client.get(f"/api/matters/{2**63 - 1}").status_code == 404  # in range, no such row


def test_nul_characters_are_refused_with_a_reason(client):
    for path in ("/api/cameras?tag=a%00b", "/api/cameras?q=%00", "/api/search?q=x%00",
                 "/api/cameras?x%00=1"):
        resp = client.get(path)
        assert resp.status_code == 400, path
        assert "NUL" in resp.get_json()["reason"], path
    assert client.get("/api/cameras?q=%2500&limit=1").status_code == 200  # "%00" as text is fine
    form = client.post("/login", data={"username": "a\x00b", "password": "x"},
                       headers={"Accept": "application/json"})
    assert form.status_code == 400 and "NUL" in form.get_json()["reason"]


def test_a_value_the_database_refuses_is_a_400_and_writes_nothing(app, client, session, caplog):
    """The last line of defence, for a value no input check caught: NUL in text, a
    number beyond its column. The request's transaction is rolled back."""
    from sqlalchemy import text

    from web.database import get_session

    def write_then_refuse(value: str):
        db = get_session()
        db.execute(text("UPDATE grids SET name = name || '!' WHERE code = '370812001001001'"))
        db.execute(text("SELECT CAST(:v AS smallint)" if value.isdigit() else "SELECT :v"),
                   {"v": value})
        db.commit()
        return {}

    app.add_url_rule("/api/test-refused", "test_refused",
                     lambda: write_then_refuse(request_value()), methods=["POST"])
    name = text("SELECT name FROM grids WHERE code = '370812001001001'")
    before = session.scalar(name)
    for value, words in (("a\x00b", "NUL"), ("99999999", "out of range")):
        with caplog.at_level("WARNING", logger="web.errors"):
            resp = client.post("/api/test-refused", json={"value": value})
        assert resp.status_code == 400, resp.get_json()
        assert words in resp.get_json()["reason"]
        assert session.scalar(name) == before
        assert "refused a value" in caplog.text and value not in caplog.text
        caplog.clear()
    assert client.get("/api/grids/370812001001001").status_code == 200  # the session recovered


def request_value() -> str:
    from flask import request

    return request.get_json()["value"]
