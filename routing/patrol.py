"""Patrol coverage: which road segments units drove along, from their position reports.

:func:`ingest` matches the position reports not seen yet (``unit_position`` rows after the
watermark) to their nearest road segment, keeps those within ``patrol_snap_m`` of a road and
moving (``patrol_min_speed_kmh`` when the device reports a speed), and adds them to
``patrol_edge_day`` (hits and last time per segment and local day). :func:`by_area` gives, per
station jurisdiction, grid or joint zone, the share of road km patrolled in the last
``days`` days, overall and for main and rural roads. The maintenance thread of each web worker
runs :func:`ingest`; it takes an advisory lock, so concurrent runs do not count a report twice.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg.rows import tuple_row

from . import get_router
from .graph import ROAD_CLASSES

PATROL_LOCK_KEY = 0x67697361_70617472  # pg advisory lock of patrol ingestion ("gisapatr")
# Reports of a transaction still open when the ingestion reads may carry lower ids than rows
# already committed; rows are taken only once they are this old, so none is skipped.
SETTLE_S = 5.0


def ingest(conn: psycopg.Connection, settings: Any, *, batch: int = 200_000, settle_s: float = SETTLE_S) -> dict | None:
    """Take the new position reports into ``patrol_edge_day``; None when another session is at it.

    Call it in a transaction (the caller commits). Returns counts: reports read, matched to a
    road, and the new watermark.
    """
    t0 = time.perf_counter()
    with conn.cursor(row_factory=tuple_row) as cur:
        if not cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [PATROL_LOCK_KEY]).fetchone()[0]:
            return None
        row = cur.execute("SELECT last_position_id FROM patrol_watermark").fetchone()
    mark = int(row[0]) if row else 0
    router = get_router(conn, settings)
    g = router.graph
    read = matched = 0
    tz = settings.local_timezone
    while True:
        with conn.cursor(row_factory=tuple_row, binary=True) as cur:
            rows = cur.execute(
                "SELECT id, ST_X(geom), ST_Y(geom), reported_at, speed_kmh FROM unit_position "
                "WHERE id > %s AND received_at <= now() - make_interval(secs => %s) ORDER BY id LIMIT %s",
                [mark, settle_s, batch]).fetchall()
        if not rows:
            break
        read += len(rows)
        mark = int(rows[-1][0])
        if g.n_edges == 0:
            continue
        lonlat = np.array([(r[1], r[2]) for r in rows], dtype=np.float64)
        speed = np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64)
        s = router.snap(lonlat)
        ok = (s.edge >= 0) & (s.distance_m <= settings.patrol_snap_m) & ~(speed < settings.patrol_min_speed_kmh)
        idx = np.flatnonzero(ok)
        matched += len(idx)
        if not len(idx):
            continue
        with conn.transaction():
            conn.execute("CREATE TEMP TABLE _patrol_in (edge_id bigint, at timestamptz) ON COMMIT DROP")
            with conn.cursor().copy("COPY _patrol_in (edge_id, at) FROM STDIN") as cp:
                for i in idx.tolist():
                    cp.write_row((int(g.edge_id[s.edge[i]]), rows[i][3]))
            conn.execute(
                """INSERT INTO patrol_edge_day AS p (edge_id, day, hits, last_at)
                   SELECT edge_id, (at AT TIME ZONE %(tz)s)::date, count(*), max(at) FROM _patrol_in
                    WHERE edge_id IN (SELECT id FROM road_edge) GROUP BY 1, 2
                   ON CONFLICT (edge_id, day) DO UPDATE SET hits = p.hits + EXCLUDED.hits,
                       last_at = greatest(p.last_at, EXCLUDED.last_at)""", {"tz": tz})
            conn.execute("DROP TABLE _patrol_in")
        if len(rows) < batch:
            break
    if read:
        conn.execute("""INSERT INTO patrol_watermark (last_position_id) VALUES (%s)
                        ON CONFLICT (singleton) DO UPDATE SET last_position_id = EXCLUDED.last_position_id,
                            updated_at = now()""", [mark])
    return {"read": read, "matched": matched, "watermark": mark, "seconds": round(time.perf_counter() - t0, 3)}


def patrolled_edges(conn: psycopg.Connection, settings: Any, days: int) -> dict[int, tuple]:
    """{edge id: (hits, last time)} of the segments patrolled in the last ``days`` local days (today included)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            """SELECT edge_id, sum(hits)::int, max(last_at) FROM patrol_edge_day
                WHERE day > (now() AT TIME ZONE %s)::date - %s GROUP BY edge_id""",
            [settings.local_timezone, days]).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def by_area(conn: psycopg.Connection, settings: Any, kind: str, days: int) -> list[dict]:
    """Share of road km patrolled in the last ``days`` days per area of ``kind`` (station or traffic
    jurisdictions, grids, joint zones), overall and for main and rural roads, with the area's geometry."""
    from .coverage import assign_edges, current_areas

    router = get_router(conn, settings)
    g = router.graph
    done = patrolled_edges(conn, settings, days)
    hit = np.zeros(g.n_edges, dtype=bool)
    for eid in done:
        e = g.edge_index_by_id.get(eid)
        if e is not None:
            hit[e] = True
    areas = current_areas(conn, kind)
    ei, ai = assign_edges(router, areas)
    main_classes = set(settings.main_road_classes)
    is_main = np.array([ROAD_CLASSES[c] in main_classes for c in range(len(ROAD_CLASSES))])[g.edge_class]
    out = []
    for k, (aid, name, org, wkb) in enumerate(areas):
        edges = ei[ai == k]

        def share(mask: np.ndarray, edges=edges) -> dict:
            length = g.edge_length_m[edges][mask]
            tot = float(length.sum())
            done_m = float(length[hit[edges][mask]].sum())
            return {"road_km": round(tot / 1000, 3), "patrolled_km": round(done_m / 1000, 3),
                    "share": round(done_m / tot, 6) if tot > 0 else None}

        every = np.ones(len(edges), dtype=bool)
        out.append({"area_kind": kind, "area_id": aid, "name": name, "organisation_id": org, "days": days,
                    **share(every), "main": share(is_main[edges]), "rural": share(~is_main[edges]),
                    "geometry": shapely.from_wkb(bytes(wkb))})
    return out
