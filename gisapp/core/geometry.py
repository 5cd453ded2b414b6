"""Validate GeoJSON geometry from clients: types, coordinate ranges, validity, extent."""

from __future__ import annotations

import math
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.validation import explain_validity

from gisapp.core.errors import GeometryError, ValidationError

# RFC 7946 geometry type -> the types a column of that type accepts (promoted to Multi).
_PROMOTE = {
    "MultiPolygon": {"Polygon", "MultiPolygon"},
    "Polygon": {"Polygon"},
    "Point": {"Point"},
    "LineString": {"LineString"},
    "MultiLineString": {"LineString", "MultiLineString"},
}
_CRS84 = {
    "urn:ogc:def:crs:OGC:1.3:CRS84",
    "urn:ogc:def:crs:OGC::CRS84",
    "urn:ogc:def:crs:EPSG::4326",
    "EPSG:4326",
}
MAX_VERTICES = 200_000


def walk_positions(coords: Any, field: str, out: list, depth: int = 0) -> None:
    """Collect the positions of GeoJSON ``coordinates`` into ``out``, checking each is 2 or 3
    finite numbers; arrays nested deeper than any geometry type's (4 levels) are refused."""
    if depth > 4:
        raise ValidationError("coordinates are nested deeper than any GeoJSON geometry's", field,
                              key="err.geom.nested")
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float)) \
            and not isinstance(coords[0], bool):
        if len(coords) < 2 or len(coords) > 3:
            raise ValidationError("a position needs 2 (or 3) numbers", field, key="err.geom.position")
        for v in coords:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValidationError(f"coordinate {v!r} is not a finite number", field,
                                      key="err.geom.not_finite")
        out.append(coords)
        if len(out) > MAX_VERTICES:
            raise ValidationError(f"more than {MAX_VERTICES} vertices", field,
                                  key="err.geom.vertices", params={"n": MAX_VERTICES})
        return
    if not isinstance(coords, (list, tuple)):
        raise ValidationError(f"coordinates must be nested arrays of numbers, got {coords!r:.60}", field,
                              key="err.geom.coordinates")
    for c in coords:
        walk_positions(c, field, out, depth + 1)


def parse_geometry(
    obj: Any,
    expected: str,
    extent: tuple[float, float, float, float] | None,
    field: str = "geometry",
    allow_outside: bool = False,
):
    """Check a GeoJSON geometry object and return it as a shapely geometry of ``expected`` type.

    Parameters
    ----------
    obj : dict
        The GeoJSON geometry from the request.
    expected : str
        The column's geometry type ("Point", "LineString", "MultiPolygon", ...).
    extent : tuple or None
        (lon_min, lat_min, lon_max, lat_max) in which the geometry must lie.
    allow_outside : bool
        Accept a geometry outside ``extent`` (the caller marks it).

    Raises
    ------
    ValidationError, GeometryError
        With ``field`` and a reason a person can act on.
    """
    if not isinstance(obj, dict):
        raise ValidationError("must be a GeoJSON geometry object", field, key="err.geom.not_object")
    crs = obj.get("crs")
    if crs is not None:
        name = (crs.get("properties") or {}).get("name") if isinstance(crs, dict) else None
        if name not in _CRS84:
            raise ValidationError(
                f"coordinates must be WGS84 longitude/latitude (RFC 7946); got crs {name!r}", field,
                key="err.geom.crs"
            )
    gtype = obj.get("type")
    accepted = _PROMOTE.get(expected, {expected})
    if gtype not in accepted:
        raise GeometryError(f"geometry type {gtype!r} is not accepted here; expected {expected}", field,
                            key="err.geom.type", params={"gtype": str(gtype)[:40], "expected": expected})
    coords = obj.get("coordinates")
    positions: list = []
    walk_positions(coords, field, positions)
    if not positions:
        raise GeometryError("geometry has no coordinates", field, key="err.geom.no_coordinates")
    if extent is not None and _all_swapped_inside(positions, extent):
        raise GeometryError(
            "longitude and latitude look swapped: RFC 7946 order is [longitude, latitude]", field,
            key="err.geom.swapped"
        )
    for pos in positions:
        lon, lat = pos[0], pos[1]
        if not -180 <= lon <= 180:
            raise ValidationError(f"longitude {lon} out of range [-180, 180]", field,
                                  key="err.geom.position_range")
        if not -90 <= lat <= 90:
            raise ValidationError(f"latitude {lat} out of range [-90, 90]", field,
                                  key="err.geom.position_range")
    check_rings(gtype, coords, field)
    geom = build_shape(gtype, coords, field)
    if not geom.is_valid:
        raise GeometryError(f"invalid geometry: {explain_validity(geom)}", field, key="err.geom.invalid")
    if gtype == "Polygon" and expected.startswith("Multi"):
        geom = shapely.MultiPolygon([geom])
    elif gtype == "LineString" and expected == "MultiLineString":
        geom = shapely.MultiLineString([geom])
    if geom.has_z:
        geom = shapely.force_2d(geom)
    if extent is not None and not allow_outside:
        check_extent(geom, extent, field)
    return geom


def check_rings(gtype: str, coords: Any, field: str) -> None:
    """Refuse a Polygon or MultiPolygon whose rings are not closed linear rings of at least four
    positions (RFC 7946, 3.1.6): shapely would close them silently."""
    if gtype not in ("Polygon", "MultiPolygon"):
        return
    polys = [coords] if gtype == "Polygon" else coords
    if not isinstance(polys, list | tuple):
        raise GeometryError(f"malformed {gtype}", field, key="err.geom.malformed")
    for poly in polys:
        if not isinstance(poly, list | tuple) or not poly:
            raise GeometryError("a polygon needs at least one ring", field, key="err.geom.no_ring")
        for ring in poly:
            if not isinstance(ring, list | tuple) or len(ring) < 4 or not all(isinstance(p, list | tuple) for p in ring):
                raise GeometryError("a polygon ring needs at least 4 positions", field,
                                    key="err.geom.ring_short")
            if list(ring[0][:2]) != list(ring[-1][:2]):
                raise GeometryError("a polygon ring must end where it starts (closed ring, RFC 7946)", field,
                                    key="err.geom.ring_open")


def build_shape(gtype: str, coords: Any, field: str):
    """The shapely geometry of checked GeoJSON coordinates; a 422 naming ``field`` when shapely
    cannot build it or it is empty."""
    try:
        geom = shape({"type": gtype, "coordinates": coords})
    except (ValueError, TypeError, IndexError, AttributeError, shapely.errors.ShapelyError) as e:
        raise GeometryError(f"malformed {gtype}: {e}", field, key="err.geom.malformed") from None
    if geom.is_empty:
        raise GeometryError("geometry is empty", field, key="err.geom.empty")
    return geom


def _all_swapped_inside(positions: list, extent: tuple[float, float, float, float]) -> bool:
    x0, y0, x1, y1 = extent
    inside = all(x0 <= p[0] <= x1 and y0 <= p[1] <= y1 for p in positions)
    swapped = all(x0 <= p[1] <= x1 and y0 <= p[0] <= y1 for p in positions)
    return swapped and not inside


def check_extent(geom, extent: tuple[float, float, float, float], field: str = "geometry") -> None:
    """Refuse a geometry outside the deployment's extent, with a hint when lon/lat look swapped."""
    x0, y0, x1, y1 = extent
    gx0, gy0, gx1, gy1 = geom.bounds
    if gx0 >= x0 and gy0 >= y0 and gx1 <= x1 and gy1 <= y1:
        return
    # Swapped axes: (lat, lon) read as (lon, lat) would fall inside the extent.
    if gy0 >= x0 and gx0 >= y0 and gy1 <= x1 and gx1 <= y1:
        raise GeometryError(
            "outside the service area; longitude and latitude look swapped "
            "(RFC 7946 order is [longitude, latitude])",
            field, key="err.geom.swapped"
        )
    raise GeometryError(
        f"outside the service area (lon {x0}..{x1}, lat {y0}..{y1})", field,
        key="err.geom.outside_area"
    )
