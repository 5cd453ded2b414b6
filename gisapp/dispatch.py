"""Take incidents on the one 110 + 122 platform, find their owners, dispatch legs and run their lifecycle.

Every function takes an open connection (inside the caller's transaction) and plain
arguments; none imports Flask. Locks are always taken in the order incident -> leg -> unit,
and live events are emitted last, so concurrent requests neither deadlock nor publish
anything that is rolled back.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from .dispatch_catalogue import STATUS_COLUMN, LegSpec, Rules, load_rules
from .errors import Conflict, Forbidden, GeometryError, NotFound, ValidationError
from .features import parse_time
from .geometry import parse_geometry
from .sla import leg_clocks
from .stream import emit

ACTIVE_INCIDENT = ("open", "dispatched")
OPEN_LEG = ("dispatched", "signed_off", "en_route", "arrived", "first_feedback")
# What a unit's status becomes when its leg enters a status (None: leave it).
UNIT_STATUS_FOR_LEG = {"en_route": "en_route", "arrived": "on_scene", "closed": "available", "cancelled": "available"}
MANUAL_UNIT_STATUSES = ("available", "off_duty", "out_of_service")
MAX_TEXT = {"description": 4000, "address": 300, "idempotency_key": 200}


# --- small parsers ------------------------------------------------------------------------------

def mask_phone(number: str) -> str:
    """Mask a caller's number: keep the first 3 and last 4 digits (138****5678)."""
    digits = re.sub(r"[\s\-+()]", "", number)
    if not re.fullmatch(r"[0-9]{5,20}", digits):
        raise ValidationError("a phone number of 5 to 20 digits", "caller_number")
    if len(digits) <= 7:
        return digits[:1] + "*" * (len(digits) - 3) + digits[-2:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def _str(body: dict, key: str, required: bool = False) -> str | None:
    val = body.get(key)
    if val is None:
        if required:
            raise ValidationError("is required", key)
        return None
    if not isinstance(val, str):
        raise ValidationError("must be a string", key)
    val = val.strip()
    if required and not val:
        raise ValidationError("is required", key)
    limit = MAX_TEXT.get(key, 200)
    if len(val) > limit:
        raise ValidationError(f"at most {limit} characters", key)
    return val or None


def _bool(body: dict, key: str) -> bool:
    val = body.get(key, False)
    if not isinstance(val, bool):
        raise ValidationError("must be true or false", key)
    return val


def _id(val: Any, field: str) -> int:
    if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
        raise ValidationError("must be a positive integer id", field)
    return val


def _now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now() AS t").fetchone()["t"]


def queue_event(conn: psycopg.Connection, pending: list | None, type_: str, data: dict,
                incident_id: int | None = None) -> None:
    """Emit a live event now, or keep it in ``pending`` for :func:`flush_events` at the end of the transaction."""
    if pending is None:
        emit(conn, type_, data, incident_id)
    else:
        pending.append((type_, data, incident_id))


def flush_events(conn: psycopg.Connection, pending: list) -> None:
    """Emit the kept events in order (the last statements of the transaction)."""
    for type_, data, incident_id in pending:
        emit(conn, type_, data, incident_id)
    pending.clear()


def log_event(conn: psycopg.Connection, incident_id: int, kind: str, actor: str, client: str | None,
              data: dict[str, Any] | None = None, leg_id: int | None = None) -> None:
    """Append one row to the incident's event log (rows are never changed)."""
    conn.execute(
        "INSERT INTO incident_event (incident_id, leg_id, actor, client, kind, data) VALUES (%s, %s, %s, %s, %s, %s)",
        [incident_id, leg_id, actor, client, kind, json.dumps(data or {}, default=str, ensure_ascii=False)])


# --- reading ------------------------------------------------------------------------------------

_INCIDENT_COLS = sql.SQL(
    "i.id, i.code, i.channel, i.type, i.severity, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.address, "
    "i.location_source, i.caller_masked, i.description, i.reported_at, i.status, i.station_org_id, "
    "i.traffic_org_id, i.grid_id, i.joint_zone_id, i.station_jurisdiction_id, i.traffic_jurisdiction_id, "
    "i.outside_county, i.duplicate_of, i.duplicate_candidates, i.closed_at, i.created_by, i.created_at, "
    "i.rule_version, i.synthetic")
_LEG_COLS = sql.SQL(
    "l.id, l.incident_id, l.organisation_id, o.code AS organisation_code, o.name AS organisation_name, "
    "o.kind AS organisation_kind, l.unit_id, u.code AS unit_code, u.name AS unit_name, l.role, l.status, "
    "l.capability, l.dispatched_at, l.signed_off_at, l.en_route_at, l.arrived_at, l.first_feedback_at, "
    "l.closed_at, l.cancelled_at, l.fallback_from_org_id, l.rule_version, l.sla_flagged")


def _jsonable(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def get_incident_row(conn: psycopg.Connection, incident_id: int, lock: bool = False) -> dict:
    q = sql.SQL("SELECT {} FROM incident i WHERE i.id = %s").format(_INCIDENT_COLS)
    if lock:
        q = q + sql.SQL(" FOR UPDATE")
    row = conn.execute(q, [incident_id]).fetchone()
    if row is None:
        raise NotFound(f"no incident {incident_id}", "id")
    return row


def legs_of(conn: psycopg.Connection, incident_ids: list[int]) -> list[dict]:
    return conn.execute(sql.SQL(
        "SELECT {} FROM dispatch_leg l JOIN organisation o ON o.id = l.organisation_id "
        "LEFT JOIN unit u ON u.id = l.unit_id WHERE l.incident_id = ANY(%s) ORDER BY l.incident_id, l.id"
    ).format(_LEG_COLS), [incident_ids]).fetchall()


def leg_json(leg: dict, settings, now: datetime) -> dict:
    out = _jsonable(leg)
    out["sla"] = leg_clocks(leg, settings, now)
    return out


def incident_json(inc: dict, legs: list[dict], settings, now: datetime, rules: Rules | None = None) -> dict:
    """An incident with its legs and their SLA clocks, as the API and the stream carry it."""
    out = _jsonable(inc)
    out["duplicate_candidates"] = list(inc.get("duplicate_candidates") or [])
    if rules is not None and inc["type"] in rules.types:
        t = rules.types[inc["type"]]
        out["type_zh"], out["type_en"], out["category"] = t.zh, t.en, t.category
    out["legs"] = [leg_json(leg, settings, now) for leg in legs]
    out["overdue"] = sorted({c for leg in out["legs"] for c in leg["sla"]["overdue"]})
    return out


def incident_detail(conn: psycopg.Connection, settings, incident_id: int, with_events: bool = True) -> dict:
    """Return one incident with its legs, clocks, duplicate candidates and event log."""
    inc = get_incident_row(conn, incident_id)
    now = _now(conn)
    out = incident_json(inc, legs_of(conn, [incident_id]), settings, now, load_rules(settings))
    if with_events:
        out["events"] = [_jsonable(r) for r in conn.execute(
            "SELECT id, leg_id, at, actor, client, kind, data FROM incident_event WHERE incident_id = %s ORDER BY id",
            [incident_id])]
    return out


def board(conn: psycopg.Connection, settings, organisation_id: int | None = None) -> dict:
    """The dispatcher's queue: open incidents with their legs and clocks, most urgent first; unit counts."""
    rules = load_rules(settings)
    now = _now(conn)
    incs = conn.execute(sql.SQL(
        "SELECT {} FROM incident i WHERE i.status = ANY(%s) "
        "AND (%s::bigint IS NULL OR EXISTS (SELECT 1 FROM dispatch_leg l WHERE l.incident_id = i.id "
        "AND l.organisation_id = %s::bigint) OR i.station_org_id = %s::bigint) "
        "ORDER BY i.reported_at LIMIT 2000").format(_INCIDENT_COLS),
        [list(ACTIVE_INCIDENT), organisation_id, organisation_id, organisation_id]).fetchall()
    legs: dict[int, list[dict]] = {}
    for leg in legs_of(conn, [i["id"] for i in incs]):
        legs.setdefault(leg["incident_id"], []).append(leg)
    items = [incident_json(i, legs.get(i["id"], []), settings, now, rules) for i in incs]

    def urgency(item: dict) -> float:
        rem = [c["remaining_s"] for leg in item["legs"] for c in leg["sla"]["clocks"].values()
               if c["remaining_s"] is not None]
        return min(rem) if rem else -1e12  # not yet dispatched: first
    items.sort(key=urgency)
    counts = {r["status"]: r["n"] for r in conn.execute(
        "SELECT status, count(*) AS n FROM unit WHERE (%s::bigint IS NULL OR organisation_id = %s::bigint) "
        "GROUP BY status", [organisation_id, organisation_id])}
    last = conn.execute("SELECT last_id FROM live_event_counter").fetchone()["last_id"]
    return {"now": now.isoformat(), "last_event_id": last, "rules_version": rules.version,
            "incidents": items, "unit_status_counts": counts}


# --- intake -------------------------------------------------------------------------------------

def _request_hash(body: dict) -> str:
    clean = {k: v for k, v in body.items() if k != "idempotency_key"}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def ownership(conn: psycopg.Connection, lon: float, lat: float, at: datetime) -> dict[str, Any]:
    """Return the station and traffic jurisdictions, grid and joint zone containing a point at ``at``."""
    row = conn.execute(
        """
        WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g),
        sj AS (SELECT j.id, j.organisation_id FROM jurisdiction j, p WHERE j.kind = 'station'
               AND j.valid_from <= %(t)s AND (j.valid_to IS NULL OR j.valid_to > %(t)s) AND ST_Covers(j.geom, p.g)
               ORDER BY j.valid_from DESC, j.id DESC LIMIT 1),
        tj AS (SELECT j.id, j.organisation_id FROM jurisdiction j, p WHERE j.kind = 'traffic'
               AND j.valid_from <= %(t)s AND (j.valid_to IS NULL OR j.valid_to > %(t)s) AND ST_Covers(j.geom, p.g)
               ORDER BY j.valid_from DESC, j.id DESC LIMIT 1),
        gr AS (SELECT g.id FROM grid g, p WHERE ST_Covers(g.geom, p.g)
               ORDER BY (g.organisation_id = (SELECT organisation_id FROM sj)) DESC NULLS LAST, g.id LIMIT 1),
        jz AS (SELECT z.id FROM joint_zone z, p WHERE z.valid_from <= %(t)s
               AND (z.valid_to IS NULL OR z.valid_to > %(t)s)
               AND (ST_Covers(z.geom, p.g) OR (z.geom IS NULL AND EXISTS (
                    SELECT 1 FROM joint_zone_member m WHERE m.joint_zone_id = z.id
                    AND m.organisation_id IN ((SELECT organisation_id FROM sj), (SELECT organisation_id FROM tj)))))
               ORDER BY (z.geom IS NULL), z.valid_from DESC, z.id DESC LIMIT 1)
        SELECT (SELECT id FROM sj) AS station_jurisdiction_id, (SELECT organisation_id FROM sj) AS station_org_id,
               (SELECT id FROM tj) AS traffic_jurisdiction_id, (SELECT organisation_id FROM tj) AS traffic_org_id,
               (SELECT id FROM gr) AS grid_id, (SELECT id FROM jz) AS joint_zone_id,
               EXISTS (SELECT 1 FROM county c, p WHERE ST_Covers(c.geom, p.g)) AS inside_county,
               NOT EXISTS (SELECT 1 FROM county) AS no_county
        """, {"lon": lon, "lat": lat, "t": at}).fetchone()
    return row


def find_duplicates(conn: psycopg.Connection, settings, lon: float, lat: float, at: datetime,
                    exclude_id: int | None = None) -> list[dict]:
    """Return active incidents within the duplicate radius and time window of a new one, nearest first."""
    return conn.execute(
        """
        SELECT i.id, i.code, i.type, i.status, i.reported_at,
               round(ST_Distance(i.geom::geography, p.g::geography)::numeric, 1)::float AS distance_m,
               abs(extract(epoch FROM i.reported_at - %(t)s))::float AS seconds_apart
        FROM incident i, (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g) p
        WHERE i.reported_at BETWEEN %(t)s - make_interval(secs => %(w)s) AND %(t)s + make_interval(secs => %(w)s)
          AND i.status IN ('open', 'dispatched', 'closed') AND i.id IS DISTINCT FROM %(ex)s
          AND ST_DWithin(i.geom::geography, p.g::geography, %(r)s)
        ORDER BY distance_m, i.reported_at LIMIT 5
        """, {"lon": lon, "lat": lat, "t": at, "w": settings.duplicate_window_s, "r": settings.duplicate_radius_m,
              "ex": exclude_id}).fetchall()


def parse_intake(conn: psycopg.Connection, settings, body: Any) -> dict[str, Any]:
    """Check an intake request and resolve its location; raise a 4xx error naming the field."""
    from .gazetteer import resolve_address

    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", "body")
    rules = load_rules(settings)
    channel = body.get("channel")
    if isinstance(channel, int) and not isinstance(channel, bool):
        channel = str(channel)
    if channel not in ("110", "122"):
        raise ValidationError(f"unknown channel {channel!r:.20}; use '110' or '122'", "channel")
    itype = body.get("type")
    if not isinstance(itype, str) or itype not in rules.types:
        raise ValidationError(f"unknown incident type {itype!r:.40}; the catalogue (version {rules.version}) has "
                              f"{', '.join(rules.types)}", "type")
    t = rules.types[itype]
    if channel not in t.channels:
        raise ValidationError(f"type {itype!r} is taken on channel {' or '.join(t.channels)}, not {channel}", "type")
    severity = body.get("severity", t.default_severity)
    if severity not in t.severities:
        raise ValidationError(f"type {itype!r} takes severity {', '.join(t.severities)}", "severity")
    allow_outside = _bool(body, "allow_outside")
    address = _str(body, "address")
    location_source = "point"
    geocode = None
    if body.get("location") is not None:
        geom = parse_geometry(body["location"], "Point", settings.service_extent, "location", allow_outside)
        lon, lat = geom.x, geom.y
    elif body.get("lon") is not None or body.get("lat") is not None:
        geom = parse_geometry({"type": "Point", "coordinates": [body.get("lon"), body.get("lat")]}, "Point",
                              settings.service_extent, "location", allow_outside)
        lon, lat = geom.x, geom.y
    elif address:
        geocode = resolve_address(conn, address)
        if geocode is None:
            raise ValidationError("no village, road or town of the gazetteer found in this address; "
                                  "give a location point", "address", status=422)
        lon, lat, location_source = geocode["lon"], geocode["lat"], geocode["source"]
    else:
        raise ValidationError("give a location (GeoJSON Point, or lon and lat) or an address", "location")
    now = _now(conn)
    reported_at = parse_time(body["reported_at"], "reported_at") if body.get("reported_at") is not None else now
    if (reported_at - now).total_seconds() > settings.future_tolerance_s:
        raise ValidationError(f"{reported_at.isoformat()} is in the future (tolerance "
                              f"{settings.future_tolerance_s} s)", "reported_at", status=422)
    caller = None
    if body.get("caller_number") is not None:
        if not isinstance(body["caller_number"], str):
            raise ValidationError("must be a string", "caller_number")
        caller = mask_phone(body["caller_number"])
    elif body.get("caller_masked") is not None:
        caller = _str(body, "caller_masked")
        if caller and not re.fullmatch(r"[0-9]{1,4}\*+[0-9]{0,4}", caller):
            raise ValidationError("must be masked like 138****5678 (send caller_number to mask it here)",
                                  "caller_masked")
    return {"channel": channel, "type": itype, "severity": severity, "lon": lon, "lat": lat, "address": address,
            "location_source": location_source, "geocode": geocode, "caller_masked": caller,
            "description": _str(body, "description"), "reported_at": reported_at, "allow_outside": allow_outside,
            "synthetic": _bool(body, "synthetic")}


def create_incident(conn: psycopg.Connection, settings, body: Any, actor: str, client: str | None,
                    idempotency_key: str | None = None, pending: list | None = None) -> tuple[dict, bool]:
    """Take an incident: validate, resolve the location and owners, flag duplicates, log, emit.

    Returns
    -------
    (incident, created)
        ``created`` is False when ``idempotency_key`` was used before with the same request:
        the first incident is returned and nothing is written.
    """
    if isinstance(body, dict) and idempotency_key is None:
        idempotency_key = _str(body, "idempotency_key")
    req_hash = _request_hash(body) if isinstance(body, dict) else None
    if idempotency_key:
        prior = _idempotent_replay(conn, settings, idempotency_key, req_hash)
        if prior is not None:
            return prior, False
    v = parse_intake(conn, settings, body)
    own = ownership(conn, v["lon"], v["lat"], v["reported_at"])
    outside = not own["inside_county"] and not own["no_county"]
    if outside and not v["allow_outside"]:
        raise GeometryError("outside the county; send allow_outside: true to take it anyway (it is marked)",
                            "location")
    rules = load_rules(settings)
    row = conn.execute(
        """
        INSERT INTO incident (channel, type, severity, geom, address, location_source, caller_masked, description,
                              reported_at, station_org_id, traffic_org_id, grid_id, joint_zone_id,
                              station_jurisdiction_id, traffic_jurisdiction_id, outside_county, idempotency_key,
                              idempotency_hash, rule_version, synthetic, created_by)
        VALUES (%(channel)s, %(type)s, %(severity)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), %(address)s,
                %(location_source)s, %(caller_masked)s, %(description)s, %(reported_at)s, %(station_org_id)s,
                %(traffic_org_id)s, %(grid_id)s, %(joint_zone_id)s, %(station_jurisdiction_id)s,
                %(traffic_jurisdiction_id)s, %(outside)s, %(key)s, %(hash)s, %(rv)s, %(synthetic)s, %(actor)s)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
        """, {**v, **own, "outside": outside, "key": idempotency_key, "hash": req_hash, "rv": rules.version,
              "actor": actor}).fetchone()
    if row is None:  # a concurrent request with the same key won the race
        prior = _idempotent_replay(conn, settings, idempotency_key, req_hash)
        if prior is None:
            raise Conflict("idempotency key in use by a request still running; retry", "idempotency_key")
        return prior, False
    iid = row["id"]
    dups = find_duplicates(conn, settings, v["lon"], v["lat"], v["reported_at"], exclude_id=iid)
    if dups:
        conn.execute("UPDATE incident SET duplicate_candidates = %s WHERE id = %s", [[d["id"] for d in dups], iid])
    log_event(conn, iid, "created", actor, client, {
        "channel": v["channel"], "type": v["type"], "severity": v["severity"], "location_source": v["location_source"],
        "outside_county": outside, "owners": {k: own[k] for k in ("station_org_id", "traffic_org_id", "grid_id",
                                                                   "joint_zone_id")}})
    if dups:
        log_event(conn, iid, "duplicate_flagged", actor, client,
                  {"candidates": [d["id"] for d in dups], "suggested_merge_into": dups[0]["id"]})
    out = incident_detail(conn, settings, iid, with_events=False)
    out["geocode"] = v["geocode"]
    out["possible_duplicates"] = [_jsonable(d) for d in dups]
    out["suggested_merge"] = {"into": dups[0]["id"], "code": dups[0]["code"]} if dups else None
    queue_event(conn, pending, "incident.created", {"incident": incident_summary(out),
                                                    "suggested_merge": out["suggested_merge"]}, iid)
    return out, True


def _idempotent_replay(conn, settings, key: str, req_hash: str | None) -> dict | None:
    row = conn.execute("SELECT id, idempotency_hash FROM incident WHERE idempotency_key = %s", [key]).fetchone()
    if row is None:
        return None
    if req_hash is not None and row["idempotency_hash"] not in (None, req_hash):
        raise Conflict("this idempotency key was used for a different request", "idempotency_key")
    out = incident_detail(conn, settings, row["id"], with_events=False)
    out["idempotent_replay"] = True
    return out


def incident_summary(inc: dict) -> dict:
    """The fields of an incident the stream carries (no caller number, no description)."""
    keys = ("id", "code", "channel", "type", "severity", "lon", "lat", "address", "status", "reported_at",
            "station_org_id", "traffic_org_id", "grid_id", "joint_zone_id", "outside_county", "duplicate_of",
            "duplicate_candidates", "closed_at")
    return {k: (inc[k].isoformat() if isinstance(inc.get(k), datetime) else inc.get(k)) for k in keys}


# --- recommendations ----------------------------------------------------------------------------

def recommend_units(conn: psycopg.Connection, settings, lon: float, lat: float, *, k: int | None = None,
                    capability: str | None = None, organisation_ids: list[int] | None = None,
                    joint_zone_id: int | None = None) -> dict[str, Any]:
    """Return the nearest available units by road travel time (routing), or by straight line without roads.

    The answer follows the routing contract (``routing.get_router(...).nearest_units``) with
    one more key, ``method``: "road" or "straight_line" (no road network loaded).
    """
    import routing

    k = k or settings.recommend_k
    has_roads = conn.execute("SELECT EXISTS (SELECT 1 FROM road_edge) AS x").fetchone()["x"]
    if not has_roads:
        return _straight_line_units(conn, settings, lon, lat, k, capability, organisation_ids, joint_zone_id)
    out = dict(routing.nearest_units(conn, settings, lon, lat, k=k, capability=capability,
                                     organisation_ids=organisation_ids, joint_zone_id=joint_zone_id,
                                     statuses=("available",)))
    out["method"] = "road"
    return out


def travel_route(conn: psycopg.Connection, settings, from_lonlat: tuple[float, float],
                 to_lonlat: tuple[float, float]) -> dict[str, Any]:
    """Road route and ETA between two points (straight line at ``straight_line_speed_kmh`` without roads)."""
    import routing

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
    reason = None
    if not units:
        reason = "no available unit" + (f" with capability {capability!r}" if capability else "") + (
            " in the given organisations" if organisation_ids else "")
    return {"incident": {"lon": lon, "lat": lat, "snap": None}, "units": units, "reason": reason,
            "method": "straight_line"}


# --- plan and dispatch --------------------------------------------------------------------------

def _org(conn, org_id: int | None) -> dict | None:
    if org_id is None:
        return None
    return conn.execute("SELECT id, code, name, kind, takes_part_in_traffic, merged FROM organisation WHERE id = %s",
                        [org_id]).fetchone()


def _target_org(conn, inc: dict, target: str) -> int | None:
    if target == "station":
        return inc["station_org_id"]
    if target == "squadron":
        return inc["traffic_org_id"]
    row = conn.execute("SELECT id FROM organisation WHERE kind = %s ORDER BY id LIMIT 1", [target]).fetchone()
    return row["id"] if row else None


def _has_available(conn, org_id: int, capability: str | None) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM unit WHERE organisation_id = %s AND status = 'available' "
        "AND (%s::text IS NULL OR %s::text = ANY(capabilities))) AS x", [org_id, capability, capability]
    ).fetchone()["x"]


def _zone_members(conn, inc: dict, owner_id: int) -> list[int]:
    """Members of the incident's joint zone (else the owner's zones) that may stand in for the owner."""
    zone_ids = [inc["joint_zone_id"]] if inc.get("joint_zone_id") else [r["joint_zone_id"] for r in conn.execute(
        "SELECT m.joint_zone_id FROM joint_zone_member m JOIN joint_zone z ON z.id = m.joint_zone_id "
        "WHERE m.organisation_id = %s AND z.valid_from <= %s AND (z.valid_to IS NULL OR z.valid_to > %s)",
        [owner_id, inc["reported_at"], inc["reported_at"]])]
    if not zone_ids:
        return []
    # Same kind as the owner: a station falls back to a neighbouring station; a squadron to a
    # squadron or a station that takes part in traffic management.
    return [r["organisation_id"] for r in conn.execute(
        "SELECT DISTINCT m.organisation_id FROM joint_zone_member m JOIN organisation o ON o.id = m.organisation_id "
        "JOIN organisation own ON own.id = %(owner)s "
        "WHERE m.joint_zone_id = ANY(%(zones)s) AND m.organisation_id <> own.id AND (o.kind = own.kind "
        "OR (own.kind = 'squadron' AND o.kind = 'station' AND o.takes_part_in_traffic)) ORDER BY 1",
        {"zones": zone_ids, "owner": owner_id})]


def plan_incident(conn: psycopg.Connection, settings, inc: dict, recommend: bool = True) -> dict[str, Any]:
    """Apply the dispatch rules to an incident: the legs, their organisations and recommended units."""
    rules = load_rules(settings)
    itype = rules.types.get(inc["type"])
    if itype is None:
        raise Conflict(f"type {inc['type']!r} is not in the catalogue version {rules.version}", "type")
    station = _org(conn, inc["station_org_id"])
    rule = rules.match(itype, inc["severity"], inc["channel"], station["takes_part_in_traffic"] if station else None)
    legs = []
    for spec in rule.legs:
        legs.append(_plan_leg(conn, settings, inc, spec, recommend))
    return {"rule": rule.name, "rule_version": rules.version, "legs": legs}


def _plan_leg(conn, settings, inc: dict, spec: LegSpec, recommend: bool) -> dict[str, Any]:
    owner_id = _target_org(conn, inc, spec.target)
    target = spec.target
    if owner_id is None and spec.otherwise:
        owner_id, target = _target_org(conn, inc, spec.otherwise), spec.otherwise
    leg: dict[str, Any] = {"role": spec.role, "target": target, "capability": spec.capability,
                           "organisation_id": owner_id, "fallback_from_org_id": None, "reason": None}
    if owner_id is None:
        leg["reason"] = f"no {spec.target} owns this place" + (f" and no {spec.otherwise}" if spec.otherwise else "")
        leg["recommendation"] = None
        return leg
    if spec.fallback == "joint_zone" and not _has_available(conn, owner_id, spec.capability):
        members = _zone_members(conn, inc, owner_id)
        rec = recommend_units(conn, settings, inc["lon"], inc["lat"], k=settings.recommend_k,
                              capability=spec.capability, organisation_ids=members) if members else None
        if rec and rec["units"]:
            leg["fallback_from_org_id"] = owner_id
            leg["organisation_id"] = owner_id = rec["units"][0]["organisation_id"]
            leg["reason"] = "the owner has no available unit: neighbouring member of the joint war zone"
            if recommend:
                leg["recommendation"] = rec
                leg["recommendation"]["units"] = [u for u in rec["units"] if u["organisation_id"] == owner_id]
        else:
            leg["reason"] = "no available unit in the owner or its joint war zone"
    if recommend and "recommendation" not in leg:
        leg["recommendation"] = recommend_units(conn, settings, inc["lon"], inc["lat"], capability=spec.capability,
                                                organisation_ids=[owner_id])
    org = _org(conn, owner_id)
    leg["organisation_code"], leg["organisation_name"], leg["organisation_kind"] = org["code"], org["name"], org["kind"]
    return leg


def dispatch_incident(conn: psycopg.Connection, settings, incident_id: int, actor: str, client: str | None,
                      units: dict[str, int] | None = None, auto_assign: bool = False,
                      pending: list | None = None) -> dict:
    """Create the legs the rules give for an incident (one per organisation, at the same moment).

    ``units`` maps a leg role to a unit id to assign at once; ``auto_assign`` assigns each leg
    the best recommended unit still available. Raises Conflict when the incident already has
    open legs or is not open.
    """
    inc = get_incident_row(conn, incident_id, lock=True)
    if inc["status"] != "open":
        raise Conflict(f"incident {inc['code']} is {inc['status']}; only an open incident is dispatched", "status")
    if conn.execute("SELECT 1 FROM dispatch_leg WHERE incident_id = %s AND status <> 'cancelled'",
                    [incident_id]).fetchone():
        raise Conflict(f"incident {inc['code']} already has legs", "status")
    units = units or {}
    plan = plan_incident(conn, settings, inc, recommend=auto_assign)
    roles = {leg["role"] for leg in plan["legs"]}
    for role in units:
        if role not in roles:
            raise ValidationError(f"the rule {plan['rule']!r} has no {role!r} leg; legs: {', '.join(sorted(roles))}",
                                  "units")
    missing = [leg for leg in plan["legs"] if leg["organisation_id"] is None]
    if missing:
        raise Conflict(f"cannot dispatch the {missing[0]['role']} leg: {missing[0]['reason']}", "organisation")
    leg_ids = []
    for leg in plan["legs"]:
        row = conn.execute(
            "INSERT INTO dispatch_leg (incident_id, organisation_id, role, capability, fallback_from_org_id, "
            "rule_version) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            [incident_id, leg["organisation_id"], leg["role"], leg["capability"], leg["fallback_from_org_id"],
             plan["rule_version"]]).fetchone()
        leg_ids.append(row["id"])
        log_event(conn, incident_id, "dispatched", actor, client, {
            "role": leg["role"], "organisation_id": leg["organisation_id"], "rule": plan["rule"],
            "rule_version": plan["rule_version"], "fallback_from_org_id": leg["fallback_from_org_id"]}, row["id"])
        unit_id = units.get(leg["role"])
        if unit_id is not None:
            _assign(conn, row["id"], incident_id, _id(unit_id, f"units.{leg['role']}"), actor, client)
        elif auto_assign and leg.get("recommendation"):
            for cand in leg["recommendation"]["units"]:
                if _try_assign(conn, row["id"], cand["unit_id"]):
                    log_event(conn, incident_id, "assigned", actor, client,
                              {"unit_id": cand["unit_id"], "eta_s": cand["eta_s"], "auto": True}, row["id"])
                    break
    conn.execute("UPDATE incident SET status = 'dispatched', rule_version = %s WHERE id = %s",
                 [plan["rule_version"], incident_id])
    out = incident_detail(conn, settings, incident_id, with_events=False)
    out["rule"] = plan["rule"]
    data = {"incident": incident_summary(out), "legs": [_leg_event(x) for x in out["legs"]],
            "units": [_unit_event(conn, x["unit_id"]) for x in out["legs"] if x["unit_id"]]}
    queue_event(conn, pending, "incident.dispatched", data, incident_id)
    return out


def _leg_event(leg: dict) -> dict:
    keys = ("id", "incident_id", "organisation_id", "organisation_code", "unit_id", "unit_code", "role", "status",
            "dispatched_at", "signed_off_at", "en_route_at", "arrived_at", "first_feedback_at", "closed_at",
            "fallback_from_org_id")
    out = {k: leg.get(k) for k in keys}
    if "sla" in leg:
        out["due"] = {name: c["due_at"] for name, c in leg["sla"]["clocks"].items()}
        out["overdue"] = leg["sla"]["overdue"]
    return out


def _try_assign(conn, leg_id: int, unit_id: int) -> bool:
    """Take a unit for a leg if it is still available (a conditional UPDATE: the row lock decides races)."""
    row = conn.execute(
        "UPDATE unit SET status = 'assigned', current_leg_id = %s, updated_at = now() "
        "WHERE id = %s AND status = 'available' RETURNING id", [leg_id, unit_id]).fetchone()
    if row is None:
        return False
    conn.execute("UPDATE dispatch_leg SET unit_id = %s WHERE id = %s", [unit_id, leg_id])
    return True


def _assign(conn, leg_id: int, incident_id: int, unit_id: int, actor: str, client: str | None) -> None:
    if not _try_assign(conn, leg_id, unit_id):
        u = conn.execute("SELECT code, status, current_leg_id FROM unit WHERE id = %s", [unit_id]).fetchone()
        if u is None:
            raise NotFound(f"no unit {unit_id}", "unit_id")
        taken = f" (on leg {u['current_leg_id']})" if u["current_leg_id"] else ""
        raise Conflict(f"unit {u['code']} is {u['status']}{taken}, not available", "unit_id")
    log_event(conn, incident_id, "assigned", actor, client, {"unit_id": unit_id}, leg_id)


def _lock_leg(conn, leg_id: int) -> tuple[dict, dict]:
    """Lock the leg's incident, then the leg (the global lock order)."""
    row = conn.execute("SELECT incident_id FROM dispatch_leg WHERE id = %s", [leg_id]).fetchone()
    if row is None:
        raise NotFound(f"no leg {leg_id}", "id")
    inc = get_incident_row(conn, row["incident_id"], lock=True)
    leg = conn.execute("SELECT * FROM dispatch_leg WHERE id = %s FOR UPDATE", [leg_id]).fetchone()
    return inc, leg


def _may_act_on_leg(user: dict, leg: dict) -> None:
    role = user["role"]
    if role in ("admin", "dispatcher"):
        return
    if role == "chief" and user.get("station_id") == leg["organisation_id"]:
        return
    if role == "device" and user.get("unit_id") and user["unit_id"] == leg["unit_id"]:
        return
    raise Forbidden(f"role {role!r} may not act on this leg", "role")


def assign_unit(conn: psycopg.Connection, settings, leg_id: int, unit_id: int, user: dict, client: str | None) -> dict:
    """Assign a unit to a leg atomically: of two concurrent requests for one unit, one gets 409."""
    inc, leg = _lock_leg(conn, leg_id)
    _may_act_on_leg(user, leg)
    if leg["status"] not in ("dispatched", "signed_off"):
        raise Conflict(f"leg {leg_id} is {leg['status']}; units are assigned before it is en route", "status")
    if leg["unit_id"] is not None:
        if leg["unit_id"] == unit_id:
            return incident_detail(conn, settings, inc["id"], with_events=False)
        raise Conflict(f"leg {leg_id} already has unit {leg['unit_id']}", "unit_id")
    _assign(conn, leg_id, inc["id"], unit_id, user["username"], client)
    out = incident_detail(conn, settings, inc["id"], with_events=False)
    new_leg = next(x for x in out["legs"] if x["id"] == leg_id)
    emit(conn, "leg.assigned", {"leg": _leg_event(new_leg), "unit": _unit_event(conn, unit_id)}, inc["id"])
    return out


def transition_leg(conn: psycopg.Connection, settings, leg_id: int, to: Any, user: dict, client: str | None,
                   note: str | None = None) -> dict:
    """Move a leg to its next status; 409 when the lifecycle does not allow it. Closes the incident with its last leg."""
    from .dispatch_catalogue import LEG_STATUSES

    rules = load_rules(settings)
    if not isinstance(to, str) or to not in LEG_STATUSES or to == "dispatched":
        raise ValidationError(f"must be one of {', '.join(s for s in LEG_STATUSES if s != 'dispatched')}", "to")
    inc, leg = _lock_leg(conn, leg_id)
    _may_act_on_leg(user, leg)
    allowed = rules.transitions.get(leg["status"], ())
    if to not in allowed:
        raise Conflict(f"leg {leg_id} is {leg['status']}; it may go to {', '.join(allowed) or 'nothing'}, not {to}",
                       "to", current=leg["status"], allowed=list(allowed))
    if to in rules.needs_unit and leg["unit_id"] is None:
        raise Conflict(f"assign a unit to leg {leg_id} before it is {to}", "unit_id")
    col = STATUS_COLUMN[to]
    conn.execute(sql.SQL("UPDATE dispatch_leg SET status = %s, {} = now() WHERE id = %s").format(sql.Identifier(col)),
                 [to, leg_id])
    log_event(conn, inc["id"], "transition", user["username"], client,
              {"from": leg["status"], "to": to, **({"note": note} if note else {})}, leg_id)
    unit_status = UNIT_STATUS_FOR_LEG.get(to)
    if leg["unit_id"] is not None and unit_status:
        release = unit_status == "available"
        conn.execute(
            "UPDATE unit SET status = %s, current_leg_id = CASE WHEN %s THEN NULL ELSE current_leg_id END, "
            "updated_at = now() WHERE id = %s AND current_leg_id = %s",
            [unit_status, release, leg["unit_id"], leg_id])
    inc_type = "leg.updated"
    if to in ("closed", "cancelled"):
        states = conn.execute("SELECT status FROM dispatch_leg WHERE incident_id = %s", [inc["id"]]).fetchall()
        statuses = {s["status"] for s in states}
        if statuses <= {"closed", "cancelled"}:
            if "closed" in statuses:
                conn.execute("UPDATE incident SET status = 'closed', closed_at = now() WHERE id = %s", [inc["id"]])
                log_event(conn, inc["id"], "closed", user["username"], client, {"by_leg": leg_id})
                inc_type = "incident.closed"
            else:
                conn.execute("UPDATE incident SET status = 'open' WHERE id = %s", [inc["id"]])
                log_event(conn, inc["id"], "reopened", user["username"], client, {"reason": "every leg cancelled"})
                inc_type = "incident.reopened"
    out = incident_detail(conn, settings, inc["id"], with_events=False)
    new_leg = next(x for x in out["legs"] if x["id"] == leg_id)
    data = {"leg": _leg_event(new_leg), "from": leg["status"], "to": to, "incident": incident_summary(out)}
    if leg["unit_id"] is not None:
        data["unit"] = _unit_event(conn, leg["unit_id"])
    emit(conn, inc_type, data, inc["id"])
    return out


def merge_incident(conn: psycopg.Connection, settings, incident_id: int, into_id: int, actor: str,
                   client: str | None) -> dict:
    """Merge a duplicate into another incident: it is marked merged and its open legs cancelled."""
    if incident_id == into_id:
        raise ValidationError("an incident cannot be merged into itself", "into")
    first, second = sorted((incident_id, into_id))
    rows = {r["id"]: r for r in (get_incident_row(conn, first, lock=True), get_incident_row(conn, second, lock=True))}
    inc, into = rows[incident_id], rows[into_id]
    if inc["status"] not in ACTIVE_INCIDENT:
        raise Conflict(f"incident {inc['code']} is {inc['status']}", "status")
    if into["status"] in ("merged", "cancelled"):
        raise Conflict(f"incident {into['code']} is {into['status']}; merge into the incident it went to", "into")
    legs = conn.execute("SELECT id, unit_id FROM dispatch_leg WHERE incident_id = %s AND status = ANY(%s) FOR UPDATE",
                        [incident_id, list(OPEN_LEG)]).fetchall()
    for leg in legs:
        conn.execute("UPDATE dispatch_leg SET status = 'cancelled', cancelled_at = now() WHERE id = %s", [leg["id"]])
        if leg["unit_id"]:
            conn.execute("UPDATE unit SET status = 'available', current_leg_id = NULL, updated_at = now() "
                         "WHERE id = %s AND current_leg_id = %s", [leg["unit_id"], leg["id"]])
    conn.execute("UPDATE incident SET status = 'merged', duplicate_of = %s WHERE id = %s", [into_id, incident_id])
    log_event(conn, incident_id, "merged", actor, client, {"into": into_id, "cancelled_legs": [x["id"] for x in legs]})
    log_event(conn, into_id, "merged_in", actor, client, {"from": incident_id})
    out = incident_detail(conn, settings, incident_id, with_events=False)
    emit(conn, "incident.merged", {"incident": incident_summary(out), "into": into_id}, incident_id)
    return out


# --- units --------------------------------------------------------------------------------------

_UNIT_COLS = sql.SQL(
    "u.id, u.code, u.name, u.organisation_id, o.code AS organisation_code, o.name AS organisation_name, u.kind, "
    "u.capabilities, u.status, u.shift, u.crew, ST_X(u.last_position) AS lon, ST_Y(u.last_position) AS lat, "
    "u.last_position_at, u.current_leg_id, l.incident_id AS current_incident_id, u.updated_at")


def _unit_event(conn, unit_id: int) -> dict:
    row = conn.execute(sql.SQL(
        "SELECT {} FROM unit u JOIN organisation o ON o.id = u.organisation_id "
        "LEFT JOIN dispatch_leg l ON l.id = u.current_leg_id WHERE u.id = %s").format(_UNIT_COLS), [unit_id]).fetchone()
    return _jsonable(row) if row else {"id": unit_id}


def unit_board(conn: psycopg.Connection, settings, organisation_id: int | None = None,
               status: str | None = None) -> dict:
    """The unit status board: every unit with status, position, position age and current incident."""
    now = _now(conn)
    rows = conn.execute(sql.SQL(
        "SELECT {} FROM unit u JOIN organisation o ON o.id = u.organisation_id "
        "LEFT JOIN dispatch_leg l ON l.id = u.current_leg_id "
        "WHERE (%s::bigint IS NULL OR u.organisation_id = %s::bigint) AND (%s::text IS NULL OR u.status = %s::text) "
        "ORDER BY o.code, u.code").format(_UNIT_COLS), [organisation_id, organisation_id, status, status]).fetchall()
    units = []
    for r in rows:
        u = _jsonable(r)
        age = (now - r["last_position_at"]).total_seconds() if r["last_position_at"] else None
        u["position_age_s"] = round(age, 1) if age is not None else None
        u["position_stale"] = age is None or age > settings.position_stale_s
        units.append(u)
    counts: dict[str, int] = {}
    for u in units:
        counts[u["status"]] = counts.get(u["status"], 0) + 1
    return {"now": now.isoformat(), "counts": counts, "units": units}


def set_unit_status(conn: psycopg.Connection, unit_id: int, status: Any, actor: str, client: str | None) -> dict:
    """Set a unit available, off duty or out of service; 409 while it works on a leg."""
    if status not in MANUAL_UNIT_STATUSES:
        raise ValidationError(f"must be one of {', '.join(MANUAL_UNIT_STATUSES)} (the others follow the legs)",
                              "status")
    u = conn.execute("SELECT id, code, status, current_leg_id FROM unit WHERE id = %s FOR UPDATE", [unit_id]).fetchone()
    if u is None:
        raise NotFound(f"no unit {unit_id}", "id")
    if u["current_leg_id"] is not None:
        raise Conflict(f"unit {u['code']} works on leg {u['current_leg_id']}; close or cancel the leg first", "status")
    conn.execute("UPDATE unit SET status = %s, updated_at = now() WHERE id = %s", [status, unit_id])
    conn.execute("INSERT INTO audit_log (actor, action, entity, entity_id, client, detail) "
                 "VALUES (%s, 'unit_status', 'unit', %s, %s, %s)",
                 [actor, str(unit_id), client, json.dumps({"from": u["status"], "to": status})])
    ev = _unit_event(conn, unit_id)
    emit(conn, "unit.status", {"unit": ev, "from": u["status"]})
    return ev


def parse_positions(body: Any, settings, now: datetime, user: dict) -> list[dict]:
    """Check a batch of position reports; raise a 4xx naming ``positions[i].<field>``."""
    reports = body.get("positions") if isinstance(body, dict) else body
    if not isinstance(reports, list) or not reports:
        raise ValidationError("send {\"positions\": [{\"lon\", \"lat\", \"at\"}, ...]}", "positions")
    if len(reports) > settings.position_batch_max:
        raise ValidationError(f"at most {settings.position_batch_max} reports per batch", "positions", status=413)
    x0, y0, x1, y1 = settings.service_extent
    own_unit = user.get("unit_id")
    out = []
    for i, r in enumerate(reports):
        f = f"positions[{i}]"
        if not isinstance(r, dict):
            raise ValidationError("must be an object", f)
        unit_id = r.get("unit_id")
        if unit_id is None:
            unit_id = own_unit
            if unit_id is None:
                raise ValidationError("is required (this token is not bound to a unit)", f + ".unit_id")
        unit_id = _id(unit_id, f + ".unit_id")
        if own_unit is not None and unit_id != own_unit:
            raise Forbidden(f"this token reports for unit {own_unit} only", f + ".unit_id")
        lon, lat = r.get("lon"), r.get("lat")
        for name, v in (("lon", lon), ("lat", lat)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValidationError("must be a finite number", f"{f}.{name}")
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            swapped = x0 <= lat <= x1 and y0 <= lon <= y1
            raise GeometryError("outside the service area" + ("; lon and lat look swapped" if swapped else ""),
                                f + ".lon", status=422)
        if r.get("at") is None:
            raise ValidationError("is required (the device's time of the fix)", f + ".at")
        at = parse_time(r["at"], f + ".at")
        if (at - now).total_seconds() > settings.future_tolerance_s:
            raise ValidationError(f"{at.isoformat()} is more than {settings.future_tolerance_s} s in the future",
                                  f + ".at", status=422)
        rec = {"unit_id": unit_id, "lon": float(lon), "lat": float(lat), "at": at}
        for name, lo, hi in (("speed_kmh", 0, 400), ("heading_deg", 0, 360)):
            v = r.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
                raise ValidationError(f"must be a number in [{lo}, {hi}]", f"{f}.{name}")
            rec[name] = v
        out.append(rec)
    return out


def ingest_positions(conn: psycopg.Connection, settings, body: Any, user: dict) -> dict:
    """Store a batch of position reports; the newest report of each unit moves it.

    Duplicates (same unit and time) are ignored, older reports are kept in the history
    without moving the unit, so out-of-order delivery ends in the same state as in-order.
    """
    now = _now(conn)
    reports = parse_positions(body, settings, now, user)
    ids = sorted({r["unit_id"] for r in reports})
    # Lock the units in id order: two batches for the same units queue up instead of deadlocking.
    known = {r["id"] for r in conn.execute("SELECT id FROM unit WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
                                           [ids])}
    for i, r in enumerate(reports):
        if r["unit_id"] not in known:
            raise NotFound(f"no unit {r['unit_id']}", f"positions[{i}].unit_id", status=422)
    cols = {k: [r[k] for r in reports] for k in ("unit_id", "lon", "lat", "at", "speed_kmh", "heading_deg")}
    moved = conn.execute(
        """
        WITH ins AS (
            INSERT INTO unit_position (unit_id, geom, reported_at, speed_kmh, heading_deg)
            SELECT u, ST_SetSRID(ST_MakePoint(x, y), 4326), t, s, h
            FROM unnest(%(unit_id)s::bigint[], %(lon)s::float8[], %(lat)s::float8[], %(at)s::timestamptz[],
                        %(speed_kmh)s::float8[], %(heading_deg)s::float8[]) AS r(u, x, y, t, s, h)
            ON CONFLICT (unit_id, reported_at) DO NOTHING
            RETURNING unit_id, geom, reported_at
        ), newest AS (
            SELECT DISTINCT ON (unit_id) unit_id, geom, reported_at FROM ins ORDER BY unit_id, reported_at DESC
        ), upd AS (
            UPDATE unit u SET last_position = n.geom, last_position_at = n.reported_at, updated_at = now()
            FROM newest n WHERE u.id = n.unit_id AND (u.last_position_at IS NULL OR u.last_position_at < n.reported_at)
            RETURNING u.id, u.code, u.status, u.organisation_id, ST_X(u.last_position) AS lon,
                      ST_Y(u.last_position) AS lat, u.last_position_at
        )
        SELECT (SELECT count(*) FROM ins) AS stored, (SELECT json_agg(upd ORDER BY id) FROM upd) AS moved
        """, cols).fetchone()
    stored = moved["stored"]
    units = moved["moved"] or []
    if units:
        emit(conn, "unit.moved", {"units": units})
    return {"received": len(reports), "stored": stored, "duplicates": len(reports) - stored,
            "moved_units": [u["id"] for u in units],
            "history_only": stored - len(units)}


def parse_period(args: dict, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Read ``from`` / ``to`` (ISO times; default: the last 30 days)."""
    now = now or datetime.now(UTC)
    end = parse_time(args["to"], "to") if args.get("to") else now
    start = parse_time(args["from"], "from") if args.get("from") else end - timedelta(days=30)
    if start >= end:
        raise ValidationError("must be before 'to'", "from")
    return start, end
