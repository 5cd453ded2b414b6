"""Named SQL queries of the routing package (parameters bound by psycopg, never formatted in)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row


def _tuples(conn: psycopg.Connection, sql: str, params: Any = None) -> list[tuple]:
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _dicts(conn: psycopg.Connection, sql: str, params: Any = None) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def network_version(conn: psycopg.Connection) -> int:
    """Return ``road_network_version.version`` (bumped by a trigger whenever road_edge changes)."""
    rows = _tuples(conn, "SELECT version FROM road_network_version")
    return int(rows[0][0]) if rows else 0


def road_edges(conn: psycopg.Connection) -> list[tuple]:
    """Return every road edge as (id, source, target, road_class, speed_kmh, oneway, length_m, wkb)."""
    return _tuples(conn, "SELECT id, source, target, road_class, speed_kmh, oneway, length_m, "
                         "ST_AsBinary(geom) FROM road_edge ORDER BY id")


def joint_zone_orgs(conn: psycopg.Connection, joint_zone_id: int) -> list[int]:
    """Organisations of a joint zone: its members and its centre."""
    return [r[0] for r in _tuples(conn, "SELECT m.organisation_id FROM joint_zone_member m WHERE m.joint_zone_id = %s "
                                        "UNION SELECT z.centre_org_id FROM joint_zone z WHERE z.id = %s",
                                  [joint_zone_id, joint_zone_id])]


def units(conn: psycopg.Connection, statuses: Sequence[str], capabilities: Sequence[str] | None,
          organisation_ids: Sequence[int] | None, joint_zone_id: int | None) -> list[tuple]:
    """Return (id, organisation_id, lon, lat, code, name) of units with a position matching the filters.

    Only the filters given are put into the statement (a generic plan with ``%s IS NULL OR``
    branches is several times slower), and rows come in binary. The hot path (nearest units)
    uses the in-memory :mod:`routing.units` snapshot instead; this reads the table directly.
    """
    params = {"statuses": list(statuses), "caps": list(capabilities) if capabilities else None,
              "orgs": list(organisation_ids) if organisation_ids is not None else None, "jz": joint_zone_id}
    shape = (bool(capabilities), organisation_ids is not None, joint_zone_id is not None)
    q = _UNIT_QUERIES.get(shape)
    if q is None:
        q = _UNIT_QUERIES[shape] = _unit_query(*shape).as_string(conn)
    with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        cur.execute(q, params)
        return cur.fetchall()


_UNIT_QUERIES: dict[tuple, str] = {}  # statement text per combination of filters (composed once)


def _unit_query(caps: bool, orgs: bool, jz: bool) -> sql.Composed:
    where = [sql.SQL("u.last_position IS NOT NULL"), sql.SQL("u.status = ANY(%(statuses)s::text[])")]
    if caps:
        where.append(sql.SQL("u.capabilities @> %(caps)s::text[]"))
    if orgs:  # an empty list matches no unit
        where.append(sql.SQL("u.organisation_id = ANY(%(orgs)s::bigint[])"))
    if jz:
        where.append(sql.SQL("u.organisation_id IN (SELECT m.organisation_id FROM joint_zone_member m "
                             "WHERE m.joint_zone_id = %(jz)s UNION SELECT z.centre_org_id FROM joint_zone z "
                             "WHERE z.id = %(jz)s)"))
    return sql.SQL("SELECT u.id, u.organisation_id, ST_X(u.last_position), ST_Y(u.last_position), u.code, u.name "
                   "FROM unit u WHERE {} ORDER BY u.id").format(sql.SQL(" AND ").join(where))


def count_units(conn: psycopg.Connection, statuses: Sequence[str] | None = None,
                with_position: bool = False) -> int:
    """Count units, optionally only those with a status in ``statuses`` and/or a position."""
    return int(_tuples(conn, """
        SELECT count(*) FROM unit
        WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
          AND (NOT %(pos)s OR last_position IS NOT NULL)""",
        {"statuses": list(statuses) if statuses is not None else None, "pos": with_position})[0][0])


def joint_zone_exists(conn: psycopg.Connection, joint_zone_id: int) -> bool:
    return bool(_tuples(conn, "SELECT 1 FROM joint_zone WHERE id = %s", [joint_zone_id]))


def stations(conn: psycopg.Connection, organisation_ids: Sequence[int] | None = None) -> list[tuple]:
    """Return (id, code, name, lon, lat) of stations with a headquarters point."""
    return _tuples(conn, """
        SELECT id, code, name, ST_X(hq), ST_Y(hq) FROM organisation
        WHERE hq IS NOT NULL AND kind = 'station'
          AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
        ORDER BY id""", {"ids": list(organisation_ids) if organisation_ids is not None else None})


def organisations_with_hq(conn: psycopg.Connection, organisation_ids: Sequence[int]) -> list[tuple]:
    """Return (id, code, name, lon, lat) of the given organisations (any kind) that have a hq point."""
    return _tuples(conn, "SELECT id, code, name, ST_X(hq), ST_Y(hq) FROM organisation "
                         "WHERE id = ANY(%s::bigint[]) AND hq IS NOT NULL ORDER BY id", [list(organisation_ids)])


def units_by_id(conn: psycopg.Connection, unit_ids: Sequence[int]) -> list[tuple]:
    """Return (id, code, name, organisation_id, lon, lat) of the given units that have a position."""
    return _tuples(conn, "SELECT id, code, name, organisation_id, ST_X(last_position), ST_Y(last_position) "
                         "FROM unit WHERE id = ANY(%s::bigint[]) AND last_position IS NOT NULL ORDER BY id",
                   [list(unit_ids)])


def existing_ids(conn: psycopg.Connection, table: str, ids: Sequence[int]) -> set[int]:
    """Return which of ``ids`` exist in ``table`` (one of a fixed set of tables)."""
    sql = {
        "organisation": "SELECT id FROM organisation WHERE id = ANY(%s::bigint[])",
        "unit": "SELECT id FROM unit WHERE id = ANY(%s::bigint[])",
        "incident": "SELECT id FROM incident WHERE id = ANY(%s::bigint[])",
        "joint_zone": "SELECT id FROM joint_zone WHERE id = ANY(%s::bigint[])",
        "jurisdiction": "SELECT id FROM jurisdiction WHERE id = ANY(%s::bigint[])",
    }[table]
    return {r[0] for r in _tuples(conn, sql, [list(ids)])}


def incident_point(conn: psycopg.Connection, incident_id: int) -> tuple[float, float] | None:
    rows = _tuples(conn, "SELECT ST_X(geom), ST_Y(geom) FROM incident WHERE id = %s", [incident_id])
    return (rows[0][0], rows[0][1]) if rows else None


def station_jurisdictions(conn: psycopg.Connection) -> list[tuple]:
    """Return (jurisdiction id, organisation id, org code, org name, lon, lat, geom wkb) of current
    station jurisdictions whose organisation has a headquarters point."""
    return _tuples(conn, """
        SELECT j.id, o.id, o.code, o.name, ST_X(o.hq), ST_Y(o.hq), ST_AsBinary(j.geom)
        FROM jurisdiction j JOIN organisation o ON o.id = j.organisation_id
        WHERE j.valid_from <= now() AND (j.valid_to IS NULL OR j.valid_to > now()) AND j.kind = 'station'
        ORDER BY o.code""")


def incident_points_window(conn: psycopg.Connection, window_days: float) -> list[tuple]:
    """Return (lon, lat) of incidents in the ``window_days`` before the latest reported one."""
    return _tuples(conn, """
        SELECT ST_X(geom), ST_Y(geom) FROM incident
        WHERE reported_at > (SELECT max(reported_at) FROM incident) - make_interval(days => %s::int)
          AND status <> 'merged' AND duplicate_of IS NULL""", [int(window_days)])
