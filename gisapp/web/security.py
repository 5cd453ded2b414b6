"""Browser hardening: security headers on every response (HTML, JSON, tiles, static files).

Flask-Talisman sets them (``init_app``). The Content-Security-Policy:

- ``script-src 'self' 'nonce-…'``: every script is served by the project; the inline scripts
  (folium's map script, the page scripts in the templates) carry the request's nonce
  (``csp_nonce()`` in templates; ``nonce_scripts`` for folium's rendered header). No
  ``'unsafe-inline'``, no ``'unsafe-eval'``, no inline event handlers (``onclick=``): an
  injected ``<script>`` or ``onerror=`` never runs even where escaping were to fail.
- ``style-src 'self' 'unsafe-inline'``: folium writes ``<style>`` blocks, and Leaflet and the
  page scripts put ``style="…"`` attributes into markup they build (marker icons, legends,
  share bars), which neither a nonce nor a hash can allow (attribute hashes need
  ``'unsafe-hashes'`` and fixed values). Inline style cannot run script; escaping every
  user-written text is what keeps markup out.
- ``img-src 'self' data: blob:`` (plus the basemap's origin when ``basemap_url`` is set),
  ``connect-src 'self'``, ``font-src 'self' data:``, ``object-src 'none'``,
  ``base-uri 'self'``, ``form-action 'self'``, ``frame-ancestors 'none'``.

Also ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: strict-origin-when-cross-origin`` and, over HTTPS, HSTS. Talisman's HTTPS
redirect and cookie flags are off here: the session cookie is configured with the sessions.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Flask, request
from flask_talisman import Talisman
from markupsafe import Markup

from gisapp.core.config import Settings


def content_security_policy(settings: Settings) -> dict[str, list[str]]:
    """The policy, by directive (Talisman adds the nonce to ``script-src``)."""
    img = ["'self'", "data:", "blob:"]
    if settings.basemap_url:
        parts = urlsplit(settings.basemap_url)
        if parts.scheme in ("http", "https") and parts.netloc:
            img.append(f"{parts.scheme}://{parts.netloc.replace('{s}', '*')}")
    return {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": img,
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }


_SCRIPT_TAG = re.compile(r"<script(?![^>]*\bnonce=)", re.IGNORECASE)


def nonce_scripts(html: str) -> Markup:
    """``html`` (trusted markup such as folium's rendered header) with the request's nonce on every
    ``<script>`` tag."""
    nonce = getattr(request, "csp_nonce", "")
    return Markup(_SCRIPT_TAG.sub(f'<script nonce="{nonce}"', html) if nonce else html)


def init_app(app: Flask) -> None:
    """Send the security headers on every response."""
    settings: Settings = app.extensions["gisapp.settings"]
    keep = {k: app.config.get(k) for k in ("SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY",
                                           "SESSION_COOKIE_SAMESITE")}
    Talisman(
        app,
        force_https=False,
        session_cookie_secure=False,
        session_cookie_samesite=keep["SESSION_COOKIE_SAMESITE"] or "Lax",
        frame_options="DENY",
        content_security_policy=content_security_policy(settings),
        content_security_policy_nonce_in=["script-src"],
        referrer_policy="strict-origin-when-cross-origin",
        strict_transport_security=True,
        x_content_type_options=True,
    )
    app.config.update({k: v for k, v in keep.items() if v is not None})
    app.jinja_env.filters["nonce_scripts"] = nonce_scripts
