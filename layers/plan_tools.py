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


def add_planning_tools(m: Any) -> None:
    """Add the drawing tools and the draft group to the plan page's folium map ``m``."""
    import folium
    from folium.plugins import Draw

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
