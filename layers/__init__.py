"""Map layers for the role pages: one builder per layer kind (``layers.builders``), composed into
folium maps (``layers.compose``, ``layers.pages``), with every asset served locally (``layers.assets``)."""

from .builders import MapLayer
from .compose import Basemap, MapComposer, RenderedMap

__all__ = ["Basemap", "MapComposer", "MapLayer", "RenderedMap"]
