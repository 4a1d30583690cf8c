"""Security headers on every response: a Content-Security-Policy that keeps pages on
this server (and the intranet tile and media servers configured), no sniffing, no
framing by other sites, no referrers leaving the site.

The policy is the browser's half of "offline by design": a page that tried to load
a script, style, font or tile from the internet, or to send data there, is stopped
by the browser and reported as a console error, which the browser tests fail on.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, g, has_request_context

# Scripts: files from this server, and the inline scripts this server wrote into
# the page (folium's map script, the page's config), which carry the answer's
# nonce. An injected <script>, inline handler or javascript: link does not run.
# Styles: style attributes stay allowed (Leaflet positions everything with them),
# but a <style> element must come from this server's page (the answer's nonce):
# an injected one could read the page's text and tokens by attribute selectors.
# style-src is the fallback of browsers older than the -elem/-attr directives.
_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "style-src-elem": ["'self'"],
    "style-src-attr": ["'unsafe-inline'"],
    "img-src": ["'self'", "data:", "blob:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "media-src": ["'self'", "blob:"],
    "worker-src": ["'self'", "blob:"],  # hls.js may run its demuxer in a blob worker
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'self'"],
}
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
    # The patrol page asks for the phone's position; nothing asks for camera or microphone.
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=(), payment=()",
}
_TEMPLATE_LABEL = re.compile(r"^\{[^}]*\}$")


def source_of(url: str | None) -> str | None:
    """Return the CSP source (scheme://host[:port]) of a configured URL, never its user or password.

    A leading template label such as Leaflet's ``{s}`` becomes ``*``; a template
    anywhere else in the host allows the scheme only.
    """
    if not url:
        return None
    parts = urlsplit(url.replace("{", "%7B").replace("}", "%7D"))
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https"):
        return None
    host = (parts.netloc.rpartition("@")[2]).replace("%7B", "{").replace("%7D", "}")
    labels = host.split(".")
    if labels and _TEMPLATE_LABEL.match(labels[0]):
        labels[0] = "*"
    host = ".".join(labels)
    if "{" in host or "}" in host:
        return f"{scheme}:"
    return f"{scheme}://{host}"


def content_security_policy(tile_urls: Iterable[str | None] = (),
                            media_urls: Iterable[str | None] = (), nonce: str | None = None) -> str:
    """Return the policy, allowing the given intranet tile and media servers and the
    inline scripts that carry ``nonce``."""
    policy = {name: list(sources) for name, sources in _POLICY.items()}
    if nonce:
        policy["script-src"].append(f"'nonce-{nonce}'")
        policy["style-src-elem"].append(f"'nonce-{nonce}'")
    for url in tile_urls:
        source = source_of(url)
        if source and source not in policy["img-src"]:
            policy["img-src"].append(source)
    for url in media_urls:
        source = source_of(url)
        for name in ("media-src", "connect-src"):
            if source and source not in policy[name]:
                policy[name].append(source)
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in policy.items())


def csp_nonce() -> str:
    """Return this answer's script nonce (made on first use; the policy then names it)."""
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(18)
    return nonce


_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc\s*=)(?=[\s>])")
_INLINE_STYLE = re.compile(r"<style(?=[\s>])")


def with_nonce(html: str) -> str:
    """Return ``html`` with this answer's nonce on every inline ``<script>`` and ``<style>`` (folium's pages)."""
    if not has_request_context():
        return html
    nonce = csp_nonce()
    html = _INLINE_SCRIPT.sub(f'<script nonce="{nonce}"', html)
    return _INLINE_STYLE.sub(f'<style nonce="{nonce}"', html)


def init_app(app: Flask) -> None:
    """Add the security headers to every response."""
    plain: dict[tuple, str] = {}  # the policy without a nonce, per set of intranet servers

    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.after_request
    def _secure(response: Response) -> Response:
        # One pass over the answer's headers: a view may have set its own.
        present = {name.lower() for name in response.headers.keys()}
        extra = [(name, value) for name, value in HEADERS.items() if name.lower() not in present]
        if "content-security-policy" not in present:
            # Read per answer: a test may change the servers after start-up.
            tiles = [app.config.get("TILE_URL")]
            media = (app.config.get("LIVE_URL_TEMPLATE"),
                     *(app.config.get("LIVE_URLS") or {}).values())
            nonce = g.get("csp_nonce")  # only pages that wrote inline scripts have one
            if nonce:
                policy = content_security_policy(tiles, media, nonce)
            else:
                key = (tiles[0], media)
                if key not in plain:
                    plain[key] = content_security_policy(tiles, media)
                policy = plain[key]
            extra.append(("Content-Security-Policy", policy))
        response.headers.extend(extra)
        return response
