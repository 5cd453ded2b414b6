"""Serve every map asset from this server: point folium's CDN defaults at web/static/vendor.

Folium renders ``<script>``/``<link>`` tags from the class-level ``default_js`` and
``default_css`` lists of ``folium.Map`` and of each plugin. ``localize_folium()`` replaces
every entry it knows with the vendored copy (see web/static/VENDOR.md) and drops the ones
the pages do not need (Bootstrap, which folium's templates do not use, and the Bootstrap 3
glyphicons sheet). ``external_references()`` finds
any reference to another host left in rendered HTML; the pages refuse to render one.
"""

from __future__ import annotations

import re
import threading

import folium
import folium.plugins as plugins
from folium.elements import JSCSSMixin

STATIC_URL = "/static"

# folium resource name -> path under web/static (None: not needed, dropped).
LOCAL: dict[str, str | None] = {
    # folium.Map
    "leaflet": "vendor/leaflet/leaflet.js",
    "jquery": "vendor/jquery/jquery.min.js",
    # Bootstrap: folium's templates do not need it, and the map pages style themselves
    # (web/static/css/gisapp.css); pages that include other areas' panels link it themselves.
    "bootstrap": None,
    "awesome_markers": "vendor/awesome-markers/leaflet.awesome-markers.js",
    "leaflet_css": "vendor/leaflet/leaflet.css",
    "bootstrap_css": None,
    "glyphicons_css": None,  # Bootstrap 3 glyph font: the pages use Font Awesome instead
    # Font Awesome's CSS and font: the pages draw icons from one SVG sprite instead
    # (vendor/fontawesome/icons.svg); pages with other areas' panels link the CSS themselves.
    "awesome_markers_font_css": None,
    "awesome_markers_css": "vendor/awesome-markers/leaflet.awesome-markers.css",
    "awesome_rotate_css": "vendor/folium/leaflet.awesome.rotate.min.css",
    # plugins
    "markerclusterjs": "vendor/markercluster/leaflet.markercluster.js",
    "markerclustercss": "vendor/markercluster/MarkerCluster.css",
    "markerclusterdefaultcss": "vendor/markercluster/MarkerCluster.Default.css",
    "leaflet-heat.js": "vendor/leaflet-heat/leaflet_heat.min.js",
    "vectorGrid": "vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js",
    "leaflet_draw_js": "vendor/leaflet-draw/leaflet.draw.js",
    "leaflet_draw_css": "vendor/leaflet-draw/leaflet.draw.css",
    "Control.Fullscreen.js": "vendor/fullscreen/Control.FullScreen.js",
    "Control.FullScreen.css": "vendor/fullscreen/Control.FullScreen.css",
}

# The plugin classes whose assets are vendored (the ones the pages and the planning map use).
PLUGIN_CLASSES: tuple[type[JSCSSMixin], ...] = (
    folium.Map,
    plugins.MarkerCluster,
    plugins.FastMarkerCluster,
    plugins.HeatMap,
    plugins.VectorGridProtobuf,
    plugins.Draw,
    plugins.Fullscreen,
)

_done = False
_lock = threading.Lock()


def static_url(path: str) -> str:
    """Return the URL of a file under web/static."""
    return f"{STATIC_URL}/{path}"


def _localise(pairs: list[tuple[str, str]], cls_name: str) -> list[tuple[str, str]]:
    out = []
    for name, url in pairs:
        if url.startswith(STATIC_URL + "/"):
            out.append((name, url))
            continue
        if name not in LOCAL:
            raise RuntimeError(f"{cls_name}: no vendored copy of {name!r} ({url}); add it to "
                               "scripts/vendor_assets.py and layers/assets.LOCAL")
        if LOCAL[name] is not None:
            out.append((name, static_url(LOCAL[name])))
    return out


def localize_folium() -> None:
    """Replace the CDN defaults of folium.Map and the vendored plugins by local URLs (once per process)."""
    global _done
    with _lock:
        if _done:
            return
        for cls in PLUGIN_CLASSES:
            # Assign on the class itself (not inherited lists), so subclasses keep theirs.
            cls.default_js = _localise(list(cls.__dict__.get("default_js", cls.default_js)), cls.__name__)
            cls.default_css = _localise(list(cls.__dict__.get("default_css", cls.default_css)), cls.__name__)
        _done = True


_EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?((?:https?:)?//[^"'\s>]+)"""
    r"""|url\(\s*["']?((?:https?:)?//[^"')\s]+)"""
    r"""|@import\s+["']((?:https?:)?//[^"']+)""",
    re.I,
)


def external_references(html: str, allowed_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Return the URLs in ``html`` that a browser would fetch from another host.

    Looks at ``src``/``href`` attributes, CSS ``url(...)`` and ``@import``; plain links
    (``<a href>``) count too, except those in ``allowed_prefixes``.
    """
    found = []
    for m in _EXTERNAL.finditer(html):
        url = next(g for g in m.groups() if g)
        if not url.startswith(allowed_prefixes or ("\0",)):
            found.append(url)
    return found
