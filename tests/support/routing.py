"""The routing tests' worlds: a hand-made road network with known answers, Helsinki's OSM roads,
and a check of our travel times against pgRouting."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
HELSINKI_PBF = TESTS / "data" / "Helsinki.osm.pbf"
ROOT_README = TESTS.parent / "README.md"
ROUTING_DB = "gisapp_test_routing"
HELSINKI_DB = "gisapp_test_helsinki"

# Hand-made network near Zouping's county seat. Lengths are set by hand (not measured) so the
# answers are known: 50 km/h = 72 s per km, 100 km/h = 36 s per km, 25 km/h = 144 s per km.
ORIGIN = (117.70, 36.85)
STEP = 0.01
NODES = {  # name: (column, row) on a 0.01 degree lattice
    "A": (0, 0), "B": (1, 0), "C": (2, 0), "D": (1, 1), "E": (5, 0), "F": (6, 0), "G": (0, 2),
}
EDGES = [  # (name, source, target, road_class, speed_kmh, oneway, length_m)
    ("AB", "A", "B", "county", None, False, 1000.0),    # 72 s both ways
    ("BC", "B", "C", "national", 100.0, True, 1000.0),  # 36 s, only B -> C
    ("AD", "A", "D", "village", None, False, 2000.0),   # 288 s
    ("DC", "D", "C", "village", None, False, 1000.0),   # 144 s
    ("EF", "E", "F", "village", None, False, 500.0),    # isolated from the rest
    ("GA", "G", "A", "county", None, True, 1000.0),     # 72 s, G -> A only
]


def lonlat(name: str) -> tuple[float, float]:
    c, r = NODES[name]
    return (ORIGIN[0] + c * STEP, ORIGIN[1] + r * STEP)


def insert_network(conn, nodes: dict[str, tuple[float, float]], edges: list[tuple]) -> tuple[dict, dict]:
    """Insert nodes and straight edges; return ({name: node id}, {name: edge id})."""
    node_ids = {}
    for name, (lon, lat) in nodes.items():
        node_ids[name] = conn.execute(
            "INSERT INTO road_node (geom) VALUES (ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
            [lon, lat]).fetchone()["id"]
    edge_ids = {}
    for name, s, t, cls, speed, oneway, length in edges:
        (x0, y0), (x1, y1) = nodes[s], nodes[t]
        edge_ids[name] = conn.execute(
            "INSERT INTO road_edge (source, target, road_class, name, speed_kmh, oneway, length_m, geom) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, ST_SetSRID(ST_MakeLine(ST_MakePoint(%s, %s), "
            "ST_MakePoint(%s, %s)), 4326)) RETURNING id",
            [node_ids[s], node_ids[t], cls, name, speed, oneway, length, x0, y0, x1, y1]).fetchone()["id"]
    return node_ids, edge_ids


def compare_node_times_with_pgr(conn, settings, n_picks: int, seed: int) -> int:
    """Node-to-node times among ``n_picks`` random nodes equal ``pgr_dijkstraCost`` on the same
    graph (relative difference under 1e-9; unreachable where pgRouting has no path); returns
    how many pairs were compared."""
    import math

    import numpy as np

    import routing
    from routing import pgr

    router = routing.get_router(conn, settings)
    g = router.graph
    picks = [int(g.node_id[i]) for i in np.random.default_rng(seed).choice(g.n_nodes, n_picks, replace=False)]
    peer = pgr.dijkstra_cost(conn, settings.road_speed_kmh, picks, picks)
    compared = 0
    for s in picks:
        ours = router.node_times([s])
        for t in picks:
            if s == t:
                continue
            mine = ours[g.node_index(t)]
            if (s, t) in peer:
                want = peer[(s, t)]
                assert abs(mine - want) / max(abs(mine), abs(want), 1e-12) < 1e-9, (s, t, mine, want)
                compared += 1
            else:
                assert math.isinf(mine), (s, t, mine)
    return compared
