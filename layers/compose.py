"""Compose built layers into one folium map: base map, layer control, legend, attribution, registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import folium

from gisapp.core.i18n import catalogue, t

from . import style as S
from .assets import external_references, localize_folium
from .builders import MapLayer, popup_specs
from .elements import Attribution, Gcj02TileLayer, GisappAssets, Legend, PageConfig, Registry

# The i18n keys the browser scripts need (popups, enums, panels).
_BROWSER_PREFIXES = ("prop.", "road.", "org.", "unit.", "incident.", "severity.", "jkind.", "itype.", "legend.",
                     "common.", "coverage.", "dispatch.", "channel.", "layer.", "cap.", "dp.", "pl.")


@dataclass
class Basemap:
    """A raster tile basemap: URL template, attribution, and whether its tiles are in GCJ-02."""

    url: str
    attribution: str
    gcj02: bool = False

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url.replace("{s}", "a"))
        return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


@dataclass
class RenderedMap:
    """The three parts of a rendered folium map, for embedding in a page template."""

    header: str
    html: str
    script: str
    map_name: str
    layer_keys: list[str] = field(default_factory=list)


class MapComposer:
    """Build a map page's folium.Map from ``MapLayer``s with the project's conventions.

    Parameters
    ----------
    lang : 'zh' or 'en'
    bounds : [[south, west], [north, east]] to fit on opening
    basemap : a raster basemap, or None (the project's own layers are the base map)
    attributions : attribution texts (data sources), shown on every map
    config : extra entries for ``window.gisapp`` (endpoints, page data)
    """

    def __init__(self, lang: str, bounds: list[list[float]], basemap: Basemap | None, attributions: list[str],
                 config: dict[str, Any] | None = None, min_zoom: int = 8, max_zoom: int = 19):
        localize_folium()
        self.lang = lang
        self.basemap = basemap
        center = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
        self.map = folium.Map(location=center, zoom_start=10, tiles=None, control_scale=True, min_zoom=min_zoom,
                              max_zoom=max_zoom, zoom_snap=0.25, prefer_canvas=False)
        self.bounds = bounds
        GisappAssets().add_to(self.map)
        # The county's land fill lies below the tile pane (200) so that vector tiles draw over it.
        folium.map.CustomPane("land", z_index=150, pointer_events=False).add_to(self.map)
        cfg = {"lang": lang, "i18n": catalogue(lang, _BROWSER_PREFIXES), "style": S.style_config(),
               "specs": popup_specs(lang), "bounds": bounds}
        cfg.update(config or {})
        PageConfig(cfg).add_to(self.map)
        if basemap is not None:
            cls = Gcj02TileLayer if basemap.gcj02 else folium.TileLayer
            cls(tiles=basemap.url, attr=basemap.attribution or " ", name=t("layer.basemap", lang), overlay=False,
                control=True, max_zoom=max_zoom).add_to(self.map)
        self.attributions = attributions
        self.layers: list[MapLayer] = []
        self._finished = False

    def add(self, layer: MapLayer) -> MapLayer:
        """Add a built layer (in drawing order: first added is drawn lowest)."""
        layer.element.add_to(self.map)
        self.layers.append(layer)
        return layer

    def finish(self) -> folium.Map:
        """Add the layer control, legend, attribution and registry; fit the bounds. Return the map."""
        if self._finished:
            return self.map
        folium.LayerControl(collapsed=False, position="topright", autoZIndex=True).add_to(self.map)
        sections = [(lyr.element.get_name(), lyr.legend.to_html()) for lyr in self.layers if lyr.legend]
        Legend(t("legend.title", self.lang), sections).add_to(self.map)
        Attribution(self.attributions).add_to(self.map)
        Registry([(lyr.key, lyr.element.get_name()) for lyr in self.layers]).add_to(self.map)
        self.map.fit_bounds(self.bounds, padding=(16, 16))
        self._finished = True
        return self.map

    def render(self) -> RenderedMap:
        """Render the map's header, body and script; refuse any reference to another host."""
        self.finish()
        root = self.map.get_root()
        root.render()
        out = RenderedMap(header=root.header.render(), html=root.html.render(), script=root.script.render(),
                          map_name=self.map.get_name(), layer_keys=[lyr.key for lyr in self.layers])
        allowed = (self.basemap.origin,) if self.basemap and self.basemap.origin else ()
        bad = external_references(out.header + out.html, allowed)
        if bad:
            raise RuntimeError(f"the map references other hosts: {bad[:5]}")
        return out

    def to_html(self) -> str:
        """Render the map as one standalone HTML document (tests, the benchmark's comparison)."""
        self.finish()
        return self.map.get_root().render()
