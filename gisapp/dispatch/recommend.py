"""Recommend units by road travel time (the routing engine), or by straight line without a road network."""

from __future__ import annotations

from typing import Any

import psycopg

import routing

from .fitness import Requirements, units_by_id, why

# --- recommendations ----------------------------------------------------------------------------

def recommend_units(conn: psycopg.Connection, settings, lon: float, lat: float, *, k: int | None = None,
                    capability: str | None = None, organisation_ids: list[int] | None = None,
                    joint_zone_id: int | None = None, requirements: Requirements | None = None) -> dict[str, Any]:
    """Return the nearest available units by road travel time (routing), or by straight line without roads.

    The answer follows the routing contract (``routing.get_router(...).nearest_units``) with
    more keys: ``method`` ("road" or "straight_line": no road network loaded), the leg's
    ``requirements``, and per unit ``why``: its ETA, status, kind, crew and whether it meets
    each requirement. ``requirements`` (a leg's capability, unit kinds, minimum crew) keeps the
    units that meet them; ``capability`` alone is the older form of the same.
    """

    k = k or settings.recommend_k
    req = requirements or Requirements(capability)
    # kinds and crew are not routing filters: ask for more units and keep the k that fit
    ask = min(max(k * 4, 20), max(settings.nearest_units_max_k, k)) if req.filters_beyond_capability else k
    has_roads = conn.execute("SELECT EXISTS (SELECT 1 FROM road_edge) AS x").fetchone()["x"]
    if not has_roads:
        out = _straight_line_units(conn, settings, lon, lat, ask, req.capability, organisation_ids, joint_zone_id)
    else:
        out = dict(routing.nearest_units(conn, settings, lon, lat, k=ask, capability=req.capability,
                                         organisation_ids=organisation_ids, joint_zone_id=joint_zone_id,
                                         statuses=("available",)))
        out["method"] = "road"
    rows = units_by_id(conn, [u["unit_id"] for u in out["units"]])
    kept = []
    for u in out["units"]:
        row = rows.get(u["unit_id"])
        if row is None:
            continue
        u = dict(u)
        u["why"] = why(row, req, u.get("eta_s"))
        if u["why"]["fit"]:
            kept.append(u)
    out["units"] = kept[:k]
    out["requirements"] = req.to_json()
    if not out["units"] and req.filters_beyond_capability and not out.get("reason"):
        out["reason"] = "no available unit meets the leg's requirements (" + ", ".join(
            f"{k_}={v}" for k_, v in req.to_json().items() if v) + ")"
    if not out["units"]:  # the text a person reads: i18n dp.reason.<code> (``reason`` stays English)
        why_not = out.get("reason") or ""
        out["reason_code"] = ("no_unit_requirements" if "requirements" in why_not else "unreachable"
                              if "reach" in why_not else "no_roads" if "network is empty" in why_not
                              else "no_unit_capability" if req.capability else "no_unit")
    out["capability"] = req.capability
    _explain(conn, out["units"])
    return out


def _explain(conn: psycopg.Connection, units: list[dict]) -> None:
    """Add why each unit is recommended: its kind, capabilities, crew, status and organisation
    (``organisation_name`` and ``organisation_name_en``, the names the map's legend uses)."""
    if not units:
        return
    rows = {r["id"]: r for r in conn.execute(
        "SELECT u.id, u.kind, u.capabilities, u.crew, u.status, o.name AS organisation_name, "
        "o.name_en AS organisation_name_en FROM unit u JOIN organisation o ON o.id = u.organisation_id "
        "WHERE u.id = ANY(%s)", [[u["unit_id"] for u in units]])}
    for u in units:
        r = rows.get(u["unit_id"])
        if r is not None:
            u.update({"kind": r["kind"], "capabilities": list(r["capabilities"] or []), "crew": r["crew"],
                      "status": r["status"], "organisation_name": r["organisation_name"],
                      "organisation_name_en": r["organisation_name_en"]})


def travel_route(conn: psycopg.Connection, settings, from_lonlat: tuple[float, float],
                 to_lonlat: tuple[float, float]) -> dict[str, Any]:
    """Road route and ETA between two points (straight line at ``straight_line_speed_kmh`` without roads)."""

    if conn.execute("SELECT EXISTS (SELECT 1 FROM road_edge) AS x").fetchone()["x"]:
        out = routing.get_router(conn, settings).travel_time(conn, from_lonlat, to_lonlat)
        if out.get("eta_s") is not None and out.get("route"):
            return out
    dist = conn.execute("SELECT ST_Distance(ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, "
                        "ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography) AS d", [*from_lonlat, *to_lonlat]
                        ).fetchone()["d"]
    return {"eta_s": dist / (settings.straight_line_speed_kmh / 3.6), "distance_m": dist,
            "route": {"type": "LineString", "coordinates": [list(from_lonlat), list(to_lonlat)]}}


def _straight_line_units(conn, settings, lon, lat, k, capability, organisation_ids, joint_zone_id) -> dict:
    rows = conn.execute(
        """
        SELECT u.id AS unit_id, u.code, u.name, u.organisation_id, ST_X(u.last_position) AS ulon,
               ST_Y(u.last_position) AS ulat,
               ST_Distance(u.last_position::geography, p.g::geography) AS straight_line_m
        FROM unit u, (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g) p
        WHERE u.status = 'available' AND u.last_position IS NOT NULL
          AND (%(cap)s::text IS NULL OR %(cap)s::text = ANY(u.capabilities))
          AND (%(orgs)s::bigint[] IS NULL OR u.organisation_id = ANY(%(orgs)s::bigint[]))
          AND (%(jz)s::bigint IS NULL OR u.organisation_id IN (
               SELECT organisation_id FROM joint_zone_member WHERE joint_zone_id = %(jz)s::bigint))
        ORDER BY u.last_position::geography <-> p.g::geography, u.id LIMIT %(k)s
        """, {"lon": lon, "lat": lat, "cap": capability, "orgs": organisation_ids, "jz": joint_zone_id, "k": k}
    ).fetchall()
    speed = settings.straight_line_speed_kmh / 3.6  # km/h to m/s
    units = []
    for rank, r in enumerate(rows, 1):
        units.append({"unit_id": r["unit_id"], "code": r["code"], "name": r["name"],
                      "organisation_id": r["organisation_id"], "eta_s": round(r["straight_line_m"] / speed, 1),
                      "distance_m": round(r["straight_line_m"], 1), "straight_line_m": round(r["straight_line_m"], 1),
                      "straight_line_rank": rank,
                      "route": {"type": "LineString", "coordinates": [[r["ulon"], r["ulat"]], [lon, lat]]}})
    reason = reason_code = None
    if not units:
        reason = "no available unit" + (f" with capability {capability!r}" if capability else "") + (
            " in the given organisations" if organisation_ids else "")
        reason_code = "no_unit_capability" if capability else "no_unit"  # i18n dp.reason.<code>
    return {"incident": {"lon": lon, "lat": lat, "snap": None}, "units": units, "reason": reason,
            "reason_code": reason_code, "capability": capability, "method": "straight_line"}
