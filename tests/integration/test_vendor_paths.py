"""/vendor/npm serves the allow-listed packages' own files and nothing else under
web/node_modules, however a path tries to step out of its package."""

from __future__ import annotations

import pytest

from web.assets import NODE_MODULES, SERVED_PACKAGES

REFUSED = [
    "/vendor/npm/leaflet/../axe-core/axe.min.js",
    "/vendor/npm/leaflet/%2e%2e/.package-lock.json",
    "/vendor/npm/leaflet/%2E%2E/axe-core/axe.min.js",
    "/vendor/npm/leaflet/.%2e/axe-core/axe.min.js",
    "/vendor/npm/leaflet/%2e./axe-core/axe.min.js",
    "/vendor/npm/leaflet/..%2faxe-core/axe.min.js",
    "/vendor/npm/leaflet/..%2Faxe-core%2Faxe.min.js",
    "/vendor/npm/leaflet/%252e%252e/axe-core/axe.min.js",
    "/vendor/npm/leaflet/..%5caxe-core%5caxe.min.js",
    "/vendor/npm/leaflet/..\\axe-core\\axe.min.js",
    "/vendor/npm/leaflet\\..\\axe-core\\axe.min.js",
    "/vendor/npm/leaflet/dist/../../axe-core/axe.min.js",
    "/vendor/npm/leaflet/./dist/leaflet.js",
    "/vendor/npm/@geoman-io/../axe-core/axe.min.js",
    "/vendor/npm/@geoman-io/leaflet-geoman-free/../../axe-core/axe.min.js",
    "/vendor/npm/hls.js/../.gridmap-stamp",
    "/vendor/npm/hls.js/../../../setup.cfg",
    "/vendor/npm/leaflet/package.json/..",
    "/vendor/npm/leaflet/.",
    "/vendor/npm/leaflet/..",
    "/vendor/npm/leaflet/",
    "/vendor/npm/leaflet",
    "/vendor/npm/.package-lock.json",
    "/vendor/npm/axe-core/axe.min.js",
    "/vendor/npm/lodash/lodash.js",
    "/vendor/npm/leaflet/node_modules/axe-core/axe.min.js",
    "/vendor/npm/leaflet/C:/windows/win.ini",
]
SERVED = [
    "/vendor/npm/leaflet/dist/leaflet.js",
    "/vendor/npm/leaflet/dist/leaflet.css",
    "/vendor/npm/leaflet/package.json",
    "/vendor/npm/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.js",
    "/vendor/npm/hls.js/dist/hls.light.min.js",
    "/vendor/npm/leaflet.fullscreen/Control.FullScreen.js",
    "/vendor/npm/leaflet-timedimension/dist/leaflet.timedimension.control.css",
    "/vendor/folium/leaflet_heat.min.js",
]


def test_the_refused_files_exist():
    # Otherwise a 404 below would only say the file is missing.
    assert (NODE_MODULES / "axe-core" / "axe.min.js").is_file()
    assert (NODE_MODULES / ".package-lock.json").is_file()
    assert "axe-core" not in SERVED_PACKAGES


@pytest.mark.parametrize("path", REFUSED)
def test_a_path_out_of_a_served_package_is_404(anon_client, client, path):
    for who in (anon_client, client):
        with who.get(path) as resp:
            assert resp.status_code == 404, (path, resp.status_code)
            body = resp.get_data()
            assert b"axe" not in body.lower() and b"lockfileVersion" not in body


@pytest.mark.parametrize("path", SERVED)
def test_the_served_packages_files_are_200(anon_client, path):
    with anon_client.get(path) as resp:
        assert resp.status_code == 200, path
        assert resp.get_data()
