"""Generate the demo's patrol-car tracks: position reports of the last days (unit_position).

Each station's patrol cars drive round trips from the station to random road nodes of its
jurisdiction along the fastest route and back, reporting once per road segment (at its
midpoint, at the patrol speed). Roads near a station are driven often, remote rural roads
seldom or never: the patrol gaps a station chief looks for. ``routing.patrol.ingest`` then
turns the reports into patrol coverage, as it does for live device reports.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import psycopg
import shapely
from scipy.sparse.csgraph import dijkstra

from .history import LOCAL_OFFSET_H


def generate_patrols(conn: psycopg.Connection, settings, params: dict, as_of: datetime,
                     rng: np.random.Generator) -> int:
    """Write the tracks of ``params['patrols']`` into unit_position; return the rows written."""
    import routing

    pp = params["patrols"]
    router = routing.get_router(conn, settings)
    g = router.graph
    if g.n_edges == 0:
        return 0
    cars = conn.execute(
        """SELECT u.id, u.organisation_id, ST_X(o.hq) AS lon, ST_Y(o.hq) AS lat FROM unit u
           JOIN organisation o ON o.id = u.organisation_id
           WHERE u.kind = 'patrol_car' AND o.kind = 'station' AND o.hq IS NOT NULL ORDER BY u.id""").fetchall()
    juris = conn.execute(
        """SELECT organisation_id, ST_AsBinary(geom) AS g FROM jurisdiction
           WHERE kind = 'station' AND valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)""",
        [as_of, as_of]).fetchall()
    polys = shapely.from_wkb([bytes(j["g"]) for j in juris])
    ni, pi = shapely.STRtree(polys).query(shapely.points(g.node_lonlat), predicate="within")  # (node, polygon)
    nodes_of = {juris[p]["organisation_id"]: ni[pi == p] for p in range(len(juris))}
    mid = shapely.get_coordinates(shapely.line_interpolate_point(g.geom_lonlat, 0.5, normalized=True)).tolist()
    fwd = g.forward
    mps = float(pp["speed_kmh"]) / 3.6
    day0 = (as_of + timedelta(hours=LOCAL_OFFSET_H)).replace(hour=0, minute=0, second=0, microsecond=0) \
        - timedelta(hours=LOCAL_OFFSET_H)
    trees: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
    rows = 0
    with conn.cursor().copy("COPY unit_position (unit_id, geom, reported_at, speed_kmh) FROM STDIN") as cp:
        for car in cars:
            org = car["organisation_id"]
            if org not in trees:
                hq = router.snap(np.array([[car["lon"], car["lat"]]]))
                start = int(g.edge_v[hq.edge[0]]) if hq.edge[0] >= 0 else -1
                dist, pred = dijkstra(fwd.matrix, directed=True, indices=start, return_predecessors=True)
                trees[org] = (start, dist, pred)
            start, dist, pred = trees[org]
            targets = nodes_of.get(org, np.empty(0, dtype=np.int64))
            targets = targets[np.isfinite(dist[targets])] if len(targets) else targets
            if start < 0 or not len(targets):
                continue
            for d in range(int(pp["days"]), 0, -1):
                t = day0 - timedelta(days=d - 1) + timedelta(hours=float(pp["first_hour"]) + rng.uniform(0, 2))
                for _ in range(int(pp["trips_per_day"])):
                    path = [int(rng.choice(targets))]
                    while path[-1] != start:
                        path.append(int(pred[path[-1]]))
                    path.reverse()  # station -> target
                    if len(path) < 2:
                        continue
                    arcs = fwd.arcs_between(np.array(path[:-1]), np.array(path[1:]))
                    edges = fwd.arc_edge[arcs]
                    for e in np.concatenate([edges, edges[::-1]]).tolist():  # out and back
                        t = t + timedelta(seconds=float(g.edge_length_m[e]) / mps)
                        if t > as_of:
                            break
                        cp.write_row((car["id"], f"SRID=4326;POINT({mid[e][0]!r} {mid[e][1]!r})", t,
                                      float(pp["speed_kmh"])))
                        rows += 1
                    t = t + timedelta(minutes=float(rng.uniform(20, 90)))
    return rows
