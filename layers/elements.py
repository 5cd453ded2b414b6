"""Small folium elements the map pages share: assets, page config, legend, registry, tile layers."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

import folium
from folium.elements import JSCSSMixin
from folium.plugins import VectorGridProtobuf
from folium.template import Template

from .assets import static_url


class GisappAssets(JSCSSMixin, folium.MacroElement):
    """Link the project's own map script and style sheet (after Leaflet and its plugins)."""

    default_js = [("gisapp_map_js", static_url("js/gisapp-map.js"))]
    default_css = [
        ("noto_sans_sc_400", static_url("vendor/fonts/noto-sans-sc/400.css")),
        ("gisapp_css", static_url("css/gisapp.css")),
    ]
    _template = Template("")


class PageConfig(folium.MacroElement):
    """Give the browser scripts the language, texts, style tables and endpoints (``window.gisapp``)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.gisapp = window.gisapp || {};
        gisapp.configure({{ this.config|tojson }}, {{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self._name = "PageConfig"
        self.config = config


class Registry(folium.MacroElement):
    """Register the map's layers by key in ``gisapp.layers`` (dispatch and planning scripts use them)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {%- for key, name in this.entries %}
        gisapp.layers[{{ key|tojson }}] = {{ name }};
        {%- endfor %}
        gisapp.ready();
        {% endmacro %}
        """
    )

    def __init__(self, entries: list[tuple[str, str]]):
        super().__init__()
        self._name = "Registry"
        self.entries = entries


class Attribution(folium.MacroElement):
    """Add the data attribution (real outline source; synthetic data label) to the map."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {%- for text in this.texts %}
        {{ this._parent.get_name() }}.attributionControl.addAttribution({{ text|tojson }});
        {%- endfor %}
        {% endmacro %}
        """
    )

    def __init__(self, texts: list[str]):
        super().__init__()
        self._name = "Attribution"
        self.texts = [html.escape(t) for t in texts]


@dataclass
class LegendEntry:
    """One row of a legend: a swatch ('line', 'fill', 'dot', 'icon', 'ramp') and its label."""

    label: str
    color: str = "#999"
    kind: str = "fill"
    icon: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def swatch_html(self) -> str:
        c = html.escape(self.color)
        if self.kind == "line":
            w = self.extra.get("weight", 3)
            dash = "border-top-style:dashed;" if self.extra.get("dashed") else ""
            halo = (f"box-shadow:0 0 0 3px {html.escape(self.extra['halo'])}66;" if self.extra.get("halo") else "")
            return f'<span class="lg-line" style="border-top:{w}px solid {c};{dash}{halo}"></span>'
        if self.kind == "dot":
            return f'<span class="lg-dot" style="background:{c}"></span>'
        if self.kind == "icon":
            ring = self.extra.get("ring")
            ring_css = f"box-shadow:0 0 0 2px {html.escape(ring)};" if ring else ""
            name = html.escape(self.icon.removeprefix("fa-"))
            return (f'<span class="lg-icon" style="background:{c};{ring_css}"><svg class="ic" aria-hidden="true">'
                    f'<use href="{static_url("vendor/fontawesome/icons.svg")}#fa-{name}"></use></svg></span>')
        if self.kind == "outline":
            dash = "border-style:dashed;" if self.extra.get("dashed") else ""
            return f'<span class="lg-fill" style="background:transparent;border:2px solid {c};{dash}"></span>'
        if self.kind == "ramp":
            stops = ",".join(html.escape(x) for x in self.extra["colors"])
            return f'<span class="lg-ramp" style="background:linear-gradient(90deg,{stops})"></span>'
        return f'<span class="lg-fill" style="background:{c}"></span>'


@dataclass
class LegendSection:
    """The legend of one layer."""

    title: str
    entries: list[LegendEntry]
    note: str = ""

    def to_html(self) -> str:
        rows = "".join(f'<div class="lg-row">{e.swatch_html()}<span>{html.escape(e.label)}</span></div>'
                       for e in self.entries)
        note = f'<div class="lg-note">{html.escape(self.note)}</div>' if self.note else ""
        return f'<div class="lg-title">{html.escape(self.title)}</div>{rows}{note}'


class Legend(folium.MacroElement):
    """A legend control whose sections follow their layers' visibility in the layer control."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        gisapp.addLegend({{ this._parent.get_name() }}, {{ this.title|tojson }}, [
            {%- for var, body in this.sections %}
            {layer: {{ var }}, html: {{ body|tojson }}},
            {%- endfor %}
        ]);
        {% endmacro %}
        """
    )

    def __init__(self, title: str, sections: list[tuple[str, str]]):
        super().__init__()
        self._name = "Legend"
        self.title = title
        self.sections = sections


class VectorTileLayer(VectorGridProtobuf):
    """folium.plugins.VectorGridProtobuf plus popups/tooltips for its features (``gisapp.bindTiles``)."""

    _template = Template(
        """
        {% macro script(this, kwargs) -%}
        var {{ this.get_name() }} = L.vectorGrid.protobuf(
            {{ this.url|tojson }}, {{ this.options }}
        );
        gisapp.bindTiles({{ this.get_name() }}, {{ this.kind|tojson }});
        {%- endmacro %}
        """
    )

    def __init__(self, url: str, name: str, kind: str, layer_name: str, style_js: str, show: bool = True,
                 min_zoom: int = 0, max_native_zoom: int = 16, max_zoom: int = 19):
        opts = {
            "rendererFactory": "__RENDERER__",
            "interactive": True,
            "maxNativeZoom": max_native_zoom,
            "maxZoom": max_zoom,
            "minZoom": min_zoom,
            "vectorTileLayerStyles": {layer_name: "__STYLE__"},
            "getFeatureId": "__FID__",
        }
        text = json.dumps(opts)
        text = (text.replace('"__RENDERER__"', "L.canvas.tile")
                .replace('"__STYLE__"', style_js)
                .replace('"__FID__"', "function (f) { return f.id !== undefined ? f.id : f.properties.id; }"))
        super().__init__(url, name=name, options=text, show=show)
        self.kind = kind


class Gcj02TileLayer(folium.raster_layers.TileLayer):
    """A raster basemap in GCJ-02 (AMap-style), shifted for display over WGS84 data (gisapp-map.js)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.tileLayer.gcj02(
                {{ this.tiles|tojson }},
                {{ this.options|tojavascript }}
            );
        {% endmacro %}
        """
    )
