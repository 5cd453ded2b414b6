"""Add the planner's tools to the /map/plan page's map (``layers.pages.plan_map``).

The page includes ``web/templates/plan_panel.html`` and ``web/static/js/plan.js``. This module adds Leaflet.draw through
``folium.plugins.Draw`` (its assets are served from web/static by the maps area's
``layers.assets``) with an editable feature group that ``plan.js`` fills with the selected
draft's areas, and tells ``plan.js`` where to find both.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _plan_tools_class():
    """The element exposing the draw control and its editable group to plan.js as
    ``gisapp.planDraw`` (made on first use: folium is imported only when a map is rendered)."""
    from branca.element import MacroElement
    from folium.template import Template

    class PlanTools(MacroElement):
        _template = Template("""
            {% macro script(this, kwargs) %}
            window.gisapp = window.gisapp || {};
            window.gisapp.planDraw = {items: {{ this.group.get_name() }}, control: {{ this.draw.get_name() }}};
            {% endmacro %}
        """)

        def __init__(self, group, draw):
            super().__init__()
            self._name = "PlanTools"
            self.group = group
            self.draw = draw

    return PlanTools


def draw_local(lang: str) -> dict:
    """Leaflet.draw's texts (``L.drawLocal``) in ``lang``, from the i18n keys ``pl.draw.<path>``."""
    from gisapp.core.i18n import MESSAGES, t

    out: dict = {}
    for key in MESSAGES:
        if key.startswith("pl.draw."):
            node = out
            *path, leaf = key[len("pl.draw."):].split(".")
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = t(key, lang)
    return out


@functools.cache
def _draw_local_class():
    """Sets ``L.drawLocal`` (deep-merged) before the draw control is made, so that its buttons and
    tooltips read in the page language (Leaflet.draw ships English only)."""
    from branca.element import MacroElement
    from folium.template import Template

    class DrawLocal(MacroElement):
        _template = Template("""
            {% macro script(this, kwargs) %}
            (function (src, dst) {
              (function merge(s, d) {
                Object.keys(s).forEach(function (k) {
                  if (typeof s[k] === 'object') { d[k] = d[k] || {}; merge(s[k], d[k]); } else { d[k] = s[k]; }
                });
              }(src, dst));
            }({{ this.texts | tojson }}, L.drawLocal));
            {% endmacro %}
        """)

        def __init__(self, texts: dict):
            super().__init__()
            self._name = "DrawLocal"
            self.texts = texts

    return DrawLocal


def add_planning_tools(m: Any, lang: str = "zh") -> None:
    """Add the drawing tools and the draft group to the plan page's folium map ``m``."""
    import folium
    from folium.plugins import Draw

    _draw_local_class()(draw_local(lang)).add_to(m)
    group = folium.FeatureGroup(name="规划草稿 / Draft", control=False)
    group.add_to(m)
    shape = {"shapeOptions": {"color": "#c2410c", "weight": 3}}
    draw = Draw(
        feature_group=group,
        position="topleft",
        show_geometry_on_click=False,
        draw_options={"polygon": {"allowIntersection": False, "showArea": True, **shape},
                      "rectangle": shape, "polyline": shape,
                      "circle": False, "marker": False, "circlemarker": False},
        edit_options={"remove": False},
    )
    draw.add_to(m)
    _plan_tools_class()(group, draw).add_to(m)
