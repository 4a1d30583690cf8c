"""Serve front-end libraries from installed packages, and keep folium off CDNs.

Leaflet and its plugins come from ``web/node_modules`` (installed by ``npm ci``
from the committed lock file) and from the folium wheel's own templates. folium
names CDN URLs for every asset; ``localize`` rewrites them to these local routes
and refuses to render a page that would still reach the internet.
"""

from __future__ import annotations

import re
from pathlib import Path

import folium
from branca.element import Element, Figure
from flask import Blueprint, Flask, abort, send_from_directory

NODE_MODULES = Path(__file__).resolve().parent / "node_modules"
FOLIUM_TEMPLATES = Path(folium.__file__).resolve().parent / "templates"

# npm packages the app may serve; nothing else under node_modules is reachable.
SERVED_PACKAGES = {
    "leaflet",
    "leaflet.markercluster",
    "supercluster",
    "@geoman-io/leaflet-geoman-free",
    "leaflet-timedimension",
    "iso8601-js-period",
    "leaflet.fullscreen",
    "hls.js",  # HLS tiles of an external media server on the video wall (Chromium has no native HLS)
}

# folium asset name -> local URL; None drops an asset this app never uses.
LOCAL_ASSETS: dict[str, str | None] = {
    "leaflet": "/vendor/npm/leaflet/dist/leaflet.js",
    "leaflet_css": "/vendor/npm/leaflet/dist/leaflet.css",
    "jquery": None,
    "bootstrap": None,
    "bootstrap_css": None,
    "glyphicons_css": None,
    "awesome_markers": None,
    "awesome_markers_font_css": None,
    "awesome_markers_css": None,
    "awesome_rotate_css": None,
    "markerclusterjs": "/vendor/npm/leaflet.markercluster/dist/leaflet.markercluster.js",
    "markerclustercss": "/vendor/npm/leaflet.markercluster/dist/MarkerCluster.css",
    "markerclusterdefaultcss": "/vendor/npm/leaflet.markercluster/dist/MarkerCluster.Default.css",
    "leaflet-heat.js": "/vendor/folium/leaflet_heat.min.js",
    "leaflet_geoman_js": "/vendor/npm/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.js",
    "leaflet_geoman_css": "/vendor/npm/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css",
    "Control.Fullscreen.js": "/vendor/npm/leaflet.fullscreen/Control.FullScreen.js",
    "Control.FullScreen.css": "/vendor/npm/leaflet.fullscreen/Control.FullScreen.css",
    "iso8601": "/vendor/npm/iso8601-js-period/iso8601.js",
    "leaflet.timedimension.min.js": (
        "/vendor/npm/leaflet-timedimension/dist/leaflet.timedimension.min.js"
    ),
    "heatmap.min.js": "/vendor/folium/pa7_hm.min.js",
    "leaflet-heatmap.js": "/vendor/folium/pa7_leaflet_hm.min.js",
    "leaflet.timedimension.control.min.css": (
        "/vendor/npm/leaflet-timedimension/dist/leaflet.timedimension.control.css"
    ),
}

# A stylesheet's @font-face whose source is on the internet (leaflet-timedimension's
# control names Bootstrap's Glyphicons on a CDN; the pages draw those buttons with
# Unicode symbols instead).
REMOTE_FONT_FACE = re.compile(r"@font-face\s*{[^}]*url\(\s*['\"]?(?:https?:)?//[^}]*}", re.S)
REMOTE_URL = re.compile(r"""(?:src|href)\s*=\s*["']\s*(?:https?:)?//(?!127\.0\.0\.1|localhost)""")


class OfflineAssetError(RuntimeError):
    """A map element asked for a front-end asset that has no local copy."""


bp = Blueprint("vendor", __name__, url_prefix="/vendor")


def served_package(path: str) -> str | None:
    """Return the allow-listed package a request path names, or None if it may not be served.

    The path is checked as the file system will read it: every segment a plain
    name (no "", ".", "..", hidden or nested node_modules segment, no backslash,
    percent sign, colon or control character: the URL was decoded once already),
    and the file, symlinks resolved, inside that package's own folder. Otherwise
    leaflet/../axe-core would reach a package the list leaves out.
    """
    segments = path.split("/")
    if any(not seg or seg.startswith(".") or seg == "node_modules"
           or any(ch in seg for ch in "\\%:") or not seg.isprintable() for seg in segments):
        return None
    package = "/".join(segments[:2]) if path.startswith("@") else segments[0]
    if package not in SERVED_PACKAGES or len(segments) <= package.count("/") + 1:
        return None
    root = (NODE_MODULES / package).resolve()
    if not (NODE_MODULES / path).resolve().is_relative_to(root):
        return None
    return package


@bp.get("/npm/<path:path>")
def npm_asset(path: str):
    """Serve a file of an allow-listed npm package."""
    package = served_package(path)
    if package is None:
        abort(404)
    response = send_from_directory(NODE_MODULES, path, max_age=7 * 24 * 3600)
    if response.mimetype == "text/css":
        response.direct_passthrough = False
        css = response.get_data(as_text=True)
        offline = REMOTE_FONT_FACE.sub("/* a font on the internet was named here */", css)
        if offline != css:
            response.set_data(offline)
    return response


@bp.get("/folium/<path:path>")
def folium_asset(path: str):
    """Serve a JS file shipped inside the folium wheel."""
    return send_from_directory(FOLIUM_TEMPLATES, path, max_age=7 * 24 * 3600)


def init_app(app: Flask) -> None:
    """Register the vendor routes and gzip compression."""
    from flask_compress import Compress

    if not (NODE_MODULES / "leaflet" / "dist" / "leaflet.js").exists():
        app.logger.warning("front-end packages missing: run `npm ci --prefix web`")
    app.register_blueprint(bp)
    Compress(app)


def _walk(element: Element):
    yield element
    for child in list(element._children.values()):
        yield from _walk(child)


def localize(root: Element) -> None:
    """Point every folium asset of ``root``'s tree at the local vendor routes."""
    for element in _walk(root):
        for attr in ("default_js", "default_css"):
            links = getattr(element, attr, None)
            if not links:
                continue
            local = []
            for name, url in links:
                if name not in LOCAL_ASSETS:
                    raise OfflineAssetError(f"no local copy of {name} ({url})")
                if LOCAL_ASSETS[name]:
                    local.append((name, LOCAL_ASSETS[name]))
            # An instance attribute: folium's class-level lists stay untouched.
            setattr(element, attr, local)


def render_offline(m: folium.Map) -> str:
    """Render a folium map to HTML that loads nothing from the internet."""
    figure = m.get_root()
    assert isinstance(figure, Figure)
    localize(figure)
    html = figure.render()
    if REMOTE_URL.search(html):
        raise OfflineAssetError("rendered map still references a remote asset")
    from web.headers import with_nonce

    return with_nonce(html)
