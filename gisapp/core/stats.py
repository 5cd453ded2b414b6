"""Count the features of every layer and the road km by class."""

from __future__ import annotations

import psycopg
from psycopg import sql

from gisapp.core.catalog import LAYERS


def layer_stats(conn: psycopg.Connection) -> dict:
    """Return layer counts, road km by class, directed edges, incidents by channel, synthetic flags."""
    counts = {}
    for lyr in LAYERS.values():
        q = sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(lyr.table))
        if lyr.versioned:
            q = q + sql.SQL(" WHERE valid_from <= now() AND (valid_to IS NULL OR valid_to > now())")
        counts[lyr.name] = conn.execute(q).fetchone()["n"]
    for table in ("dispatch_leg", "incident_event", "grid_staff", "unit_position", "app_user"):
        counts[table] = conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier(table))).fetchone()["n"]
    km = {r["road_class"]: round(r["km"], 3) for r in conn.execute(
        "SELECT road_class, sum(length_m) / 1000.0 AS km FROM road_edge GROUP BY road_class ORDER BY road_class")}
    directed = conn.execute(
        "SELECT coalesce(sum(CASE WHEN oneway THEN 1 ELSE 2 END), 0) AS n FROM road_edge").fetchone()["n"]
    by_channel = {r["channel"]: r["n"] for r in conn.execute(
        "SELECT channel, count(*) AS n FROM incident GROUP BY channel ORDER BY channel")}
    synthetic = {r["layer"]: r["synthetic"] for r in conn.execute(
        "SELECT layer, synthetic FROM dataset_meta ORDER BY layer")}
    return {"counts": counts, "road_km_by_class": km, "road_km_total": round(sum(km.values()), 3),
            "directed_edges": directed, "incidents_by_channel": by_channel, "synthetic_layers": synthetic}
