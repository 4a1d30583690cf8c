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


def test_a_domain_error_on_a_page_shows_its_reason(client):
    resp = client.get("/cameras/37081200001320000000/live", headers=HTML)
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    assert "no such camera" in resp.get_data(as_text=True)


def test_api_clients_images_and_fetch_still_get_json(client):
    for path, headers in (("/api/no-such-thing", HTML),
                          ("/cameras/37081200001320000000/live", {"Accept": "application/json"}),
                          ("/cameras/37081200001320000000/live.mjpeg", IMAGE),
                          ("/no-such-page", {"Accept": "*/*"})):
        resp = client.get(path, headers=headers)
        assert resp.status_code == 404, path
        assert resp.get_json()["error"] == 404, path

