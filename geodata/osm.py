"""Read OpenStreetMap roads from a .osm.pbf file into road_node and road_edge.

Ways with a ``highway`` tag listed in the setting ``osm_highway_road_class`` become road
edges, split at every intersection (a node shared by two ways, or used twice by one) so that
intersections are graph nodes. Oneway: ``oneway=yes|true|1`` (forward), ``oneway=-1|reverse``
(the geometry is reversed), roundabouts (``junction=roundabout|circular``) and motorways are
oneway unless tagged ``oneway=no``. A numeric ``maxspeed`` (km/h, or mph) becomes the edge's
``speed_kmh``; otherwise routing uses the class speed. Lengths are geodesic metres (WGS84).

Data written this way is © OpenStreetMap contributors (ODbL); the importer records that in
``dataset_meta``. It writes through COPY and does not apply the service-extent check (that is
for API input): any region can be imported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyproj

_GEOD = pyproj.Geod(ellps="WGS84")
_ONEWAY_YES = {"yes", "true", "1"}
_ONEWAY_REVERSE = {"-1", "reverse"}
_ONEWAY_NO = {"no", "false", "0"}
_IMPLIED_ONEWAY = {"motorway", "motorway_link"}
_SPEED_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?\s*$", re.I)


class OsmImportError(ValueError):
    """The file cannot be imported (unreadable, no roads, roads already present)."""


@dataclass
class Way:
    osm_id: int
    refs: list[int]
    lonlat: list[tuple[float, float]]
    highway: str
    oneway: bool
    name: str | None
    speed_kmh: float | None
    bridge: bool


@dataclass
class OsmRoads:
    """Road edges and nodes split at intersections, ready to write."""

    nodes: dict[int, tuple[float, float]] = field(default_factory=dict)  # osm node id -> lon, lat
    edges: list[dict[str, Any]] = field(default_factory=list)
    ways: int = 0
    way_length_m: float = 0.0


def parse_maxspeed(raw: str | None) -> float | None:
    """Return km/h from an OSM ``maxspeed`` value ("50", "30 mph"), or None when not numeric."""
    if not raw:
        return None
    m = _SPEED_RE.match(raw.split(";")[0])
    if not m:
        return None
    v = float(m.group(1))
    if (m.group(2) or "").lower() == "mph":
        v *= 1.609344  # mph to km/h
    return v if 0 < v <= 200 else None


def way_is_oneway(tags: dict[str, str]) -> tuple[bool, bool]:
    """Return (oneway, reversed) for a way's tags."""
    ow = (tags.get("oneway") or "").strip().lower()
    if ow in _ONEWAY_REVERSE:
        return True, True
    if ow in _ONEWAY_YES:
        return True, False
    if ow in _ONEWAY_NO:
        return False, False
    if tags.get("junction", "").lower() in ("roundabout", "circular"):
        return True, False
    if tags.get("highway") in _IMPLIED_ONEWAY:
        return True, False
    return False, False


def read_ways(path: str | Path, highway_classes: dict[str, str]) -> list[Way]:
    """Read the road ways of a .osm.pbf (or .osm/.osm.bz2) file with their node locations."""
    import osmium

    path = Path(path)
    if not path.is_file():
        raise OsmImportError(f"no such file: {path}")
    ways = []
    try:
        fp = osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY).with_locations()
        for obj in fp:
            if not obj.is_way():
                continue
            hw = obj.tags.get("highway")
            if hw not in highway_classes:
                continue
            if obj.tags.get("area") == "yes" or obj.tags.get("access") in ("no", "private"):
                continue
            tags = {t.k: t.v for t in obj.tags}
            oneway, rev = way_is_oneway(tags)
            # A way clipped by the extract loses nodes: keep each run of located nodes as its own piece.
            pieces: list[tuple[list[int], list[tuple[float, float]]]] = [([], [])]
            for nd in obj.nodes:
                if not nd.location.valid():
                    if pieces[-1][0]:
                        pieces.append(([], []))
                    continue
                refs, coords = pieces[-1]
                if refs and refs[-1] == nd.ref:
                    continue
                refs.append(nd.ref)
                coords.append((nd.lon, nd.lat))
            for refs, coords in pieces:
                if len(refs) < 2:
                    continue
                if rev:
                    refs.reverse()
                    coords.reverse()
                ways.append(Way(obj.id, refs, coords, hw, oneway, tags.get("name"),
                                parse_maxspeed(tags.get("maxspeed")), tags.get("bridge", "no") not in ("no", "")))
    except RuntimeError as e:  # libosmium errors (not a pbf, truncated file)
        raise OsmImportError(f"cannot read {path.name}: {e}") from None
    return ways


def split_ways(ways: list[Way], highway_classes: dict[str, str]) -> OsmRoads:
    """Split ways at intersections: nodes used more than once (across or within ways) and way ends."""
    use: dict[int, int] = {}
    for w in ways:
        for r in w.refs:
            use[r] = use.get(r, 0) + 1
    out = OsmRoads(ways=len(ways))
    for w in ways:
        lons = [c[0] for c in w.lonlat]
        lats = [c[1] for c in w.lonlat]
        out.way_length_m += _GEOD.line_length(lons, lats)
        start = 0
        last = len(w.refs) - 1
        for i in range(1, last + 1):
            if i != last and use[w.refs[i]] < 2:
                continue
            seg = w.lonlat[start:i + 1]
            length = float(_GEOD.line_length([c[0] for c in seg], [c[1] for c in seg]))
            a, b = w.refs[start], w.refs[i]
            out.nodes[a] = w.lonlat[start]
            out.nodes[b] = w.lonlat[i]
            out.edges.append({"source": a, "target": b, "road_class": highway_classes[w.highway],
                              "name": w.name, "speed_kmh": w.speed_kmh, "oneway": w.oneway,
                              "bridge": w.bridge, "length_m": length, "coords": seg, "osm_way_id": w.osm_id})
            start = i
    return out


def _wkt_line(coords: list[tuple[float, float]]) -> str:
    return "SRID=4326;LINESTRING(" + ",".join(f"{x!r} {y!r}" for x, y in coords) + ")"


def import_osm(conn: psycopg.Connection, path: str | Path, settings: Any, *, replace: bool = False,
               log: Callable[[str], None] = lambda m: None) -> dict:
    """Import the roads of an OSM file into ``conn`` (inside the caller's transaction).

    Parameters
    ----------
    conn : psycopg.Connection
    path : path of a .osm.pbf file
    settings : gisapp.config.Settings (uses ``osm_highway_road_class``)
    replace : bool
        Delete the existing road network (and its coverage) first; without it an import into
        a database that already has roads is refused.

    Returns
    -------
    dict
        Counts: ways, nodes, edges, oneway edges, total km and OSM way km.
    """
    classes = dict(settings.osm_highway_road_class)
    existing = conn.execute("SELECT count(*) FROM road_edge").fetchone()
    n_existing = existing[0] if isinstance(existing, tuple) else next(iter(existing.values()))
    if n_existing and not replace:
        raise OsmImportError(f"the database already has {n_existing} road edges; use --replace to drop them")
    ways = read_ways(path, classes)
    if not ways:
        raise OsmImportError(f"{Path(path).name} has no ways with a highway tag among "
                             f"{', '.join(sorted(classes))}")
    roads = split_ways(ways, classes)
    log(f"read {len(ways)} road ways; {len(roads.nodes)} nodes and {len(roads.edges)} edges after splitting")
    if replace:
        conn.execute("TRUNCATE patrol_edge_day, road_coverage, road_edge, road_node")
        conn.execute("DELETE FROM patrol_watermark")  # match every position report again, to the new roads
    osm_ids = list(roads.nodes)
    ids = [r[0] if isinstance(r, tuple) else r["id"] for r in conn.execute(
        "SELECT nextval(pg_get_serial_sequence('road_node', 'id')) AS id FROM generate_series(1, %s)",
        [len(osm_ids)]).fetchall()]
    node_id = dict(zip(osm_ids, ids, strict=True))
    with conn.cursor().copy("COPY road_node (id, geom, osm_id) FROM STDIN") as cp:
        for osm, nid in node_id.items():
            x, y = roads.nodes[osm]
            cp.write_row((nid, f"SRID=4326;POINT({x!r} {y!r})", osm))
    with conn.cursor().copy("COPY road_edge (source, target, road_class, name, speed_kmh, oneway, bridge, "
                            "length_m, geom, osm_way_id, synthetic) FROM STDIN") as cp:
        for e in roads.edges:
            cp.write_row((node_id[e["source"]], node_id[e["target"]], e["road_class"], e["name"], e["speed_kmh"],
                          e["oneway"], e["bridge"], e["length_m"], _wkt_line(e["coords"]), e["osm_way_id"], False))
    conn.execute("""
        INSERT INTO dataset_meta (layer, source, synthetic, licence, attribution, params)
        VALUES ('road_edges', %s, false, 'ODbL-1.0', '© OpenStreetMap contributors', %s::jsonb)
        ON CONFLICT (layer) DO UPDATE SET source = EXCLUDED.source, synthetic = false,
            licence = EXCLUDED.licence, attribution = EXCLUDED.attribution, params = EXCLUDED.params,
            loaded_at = now()""",
                 [f"OpenStreetMap extract {Path(path).name}", json.dumps({"highway_road_class": classes})])
    lengths = np.array([e["length_m"] for e in roads.edges])
    summary = {"ways": roads.ways, "nodes": len(roads.nodes), "edges": len(roads.edges),
               "oneway_edges": sum(1 for e in roads.edges if e["oneway"]),
               "road_km": round(float(lengths.sum()) / 1000, 3), "osm_way_km": round(roads.way_length_m / 1000, 3)}
    log(json.dumps(summary))
    return summary
