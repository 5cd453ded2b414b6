"""Intake: parse a call, find its owners at its place and time, flag duplicates, store the incident."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime
from typing import Any

import psycopg

from gisapp.core import callerkey
from gisapp.core.errors import Conflict, GeometryError, Text, ValidationError
from gisapp.core.features import parse_time
from gisapp.core.geometry import parse_geometry

from .gazetteer import resolve_address
from .records import (
    bool_field,
    db_now,
    incident_detail,
    incident_summary,
    jsonable,
    log_event,
    mask_phone,
    queue_event,
    text_field,
)
from .rules import load_rules

log = logging.getLogger("gisapp.dispatch")

# --- intake -------------------------------------------------------------------------------------

def _request_hash(body: dict, settings) -> str:
    clean = {k: v for k, v in body.items() if k != "idempotency_key"}
    if isinstance(clean.get("caller_number"), str):  # a plain hash of a phone number is reversible
        clean["caller_number"] = callerkey.blind(settings, clean["caller_number"])
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

    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", "body", key="err.not_object")
    rules = load_rules(settings)
    channel = body.get("channel")
    if isinstance(channel, int) and not isinstance(channel, bool):
        channel = str(channel)
    if channel not in ("110", "122"):
        raise ValidationError(f"unknown channel {channel!r:.20}; use '110' or '122'", "channel",
                              key="err.intake.channel")
    itype = body.get("type")
    if not isinstance(itype, str) or itype not in rules.types:
        raise ValidationError(f"unknown incident type {itype!r:.40}; the catalogue (version {rules.version}) has "
                              f"{', '.join(rules.types)}", "type",
                              key="err.intake.type", params={"type": str(itype)[:40]})
    t = rules.types[itype]
    if channel not in t.channels:
        raise ValidationError(f"type {itype!r} is taken on channel {' or '.join(t.channels)}, not {channel}", "type",
                              key="err.intake.type_channel", params={"type": Text.code("itype.", itype),
                                                                     "channels": list(t.channels), "channel": channel})
    severity = body.get("severity", t.default_severity)
    if severity not in t.severities:
        raise ValidationError(f"type {itype!r} takes severity {', '.join(t.severities)}", "severity",
                              key="err.intake.severity", params={"type": Text.code("itype.", itype),
                                                                 "options": Text.codes("severity.", t.severities)})
    allow_outside = bool_field(body, "allow_outside")
    address = text_field(body, "address")
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
                                  "give a location point", "address", status=422,
                                  key="err.intake.address_not_found")
        lon, lat, location_source = geocode["lon"], geocode["lat"], geocode["source"]
    else:
        raise ValidationError("give a location (GeoJSON Point, or lon and lat) or an address", "location",
                              key="err.intake.no_location")
    now = db_now(conn)
    reported_at = parse_time(body["reported_at"], "reported_at") if body.get("reported_at") is not None else now
    if (reported_at - now).total_seconds() > settings.future_tolerance_s:
        raise ValidationError(f"{reported_at.isoformat()} is in the future (tolerance "
                              f"{settings.future_tolerance_s} s)", "reported_at", status=422,
                              key="err.future_time", params={"tolerance": settings.future_tolerance_s})
    caller = number = None
    if body.get("caller_number") is not None:
        if not isinstance(body["caller_number"], str):
            raise ValidationError("must be a string", "caller_number", key="err.not_string")
        caller = mask_phone(body["caller_number"])
        number = re.sub(r"[\s\-()]", "", body["caller_number"])
    elif body.get("caller_masked") is not None:
        caller = text_field(body, "caller_masked")
        if caller and not re.fullmatch(r"[0-9]{1,4}\*+[0-9]{0,4}", caller):
            raise ValidationError("must be masked like 138****5678 (send caller_number to mask it here)",
                                  "caller_masked", key="err.intake.masked")
    return {"channel": channel, "type": itype, "severity": severity, "lon": lon, "lat": lat, "address": address,
            "location_source": location_source, "geocode": geocode, "caller_masked": caller, "caller_number": number,
            "description": text_field(body, "description"), "reported_at": reported_at, "allow_outside": allow_outside,
            "synthetic": bool_field(body, "synthetic")}


def create_incident(conn: psycopg.Connection, settings, body: Any, actor: str, client: str | None,
                    idempotency_key: str | None = None, pending: list | None = None,
                    refuse_duplicates: bool = False) -> tuple[dict, bool]:
    """Take an incident: validate, resolve the location and owners, flag duplicates, log, emit.

    ``refuse_duplicates`` (a call to be dispatched at once): when active incidents lie within the
    duplicate radius and window, raise Conflict naming them by code before anything is written,
    so that no second unit is tied up before the dispatcher has decided.

    Returns
    -------
    (incident, created)
        ``created`` is False when ``idempotency_key`` was used before with the same request:
        the first incident is returned and nothing is written.
    """
    if isinstance(body, dict) and idempotency_key is None:
        idempotency_key = text_field(body, "idempotency_key")
    req_hash = _request_hash(body, settings) if isinstance(body, dict) else None
    if idempotency_key:
        prior = _idempotent_replay(conn, settings, idempotency_key, req_hash)
        if prior is not None:
            return prior, False
    v = parse_intake(conn, settings, body)
    own = ownership(conn, v["lon"], v["lat"], v["reported_at"])
    outside = not own["inside_county"] and not own["no_county"]
    if outside and not v["allow_outside"]:
        raise GeometryError("outside the county; send allow_outside: true to take it anyway (it is marked)",
                            "location", key="err.intake.outside_county")
    if refuse_duplicates:
        before = find_duplicates(conn, settings, v["lon"], v["lat"], v["reported_at"])
        if before:
            codes = [d["code"] for d in before]
            raise Conflict(f"possible duplicate of {', '.join(codes)}; send confirm_duplicates: true to dispatch "
                           "anyway, or take the call without dispatch and merge it", "confirm_duplicates",
                           key="err.duplicate_before_dispatch", params={"codes": codes},
                           duplicates=[jsonable(d) for d in before])
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
            raise Conflict("idempotency key in use by a request still running; retry", "idempotency_key",
                           key="err.idempotency_busy")
        return prior, False
    iid = row["id"]
    _keep_caller_number(conn, settings, iid, v["caller_number"])
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
    out["possible_duplicates"] = [jsonable(d) for d in dups]
    out["suggested_merge"] = {"into": dups[0]["id"], "code": dups[0]["code"]} if dups else None
    queue_event(conn, pending, "incident.created", {"incident": incident_summary(out),
                                                    "suggested_merge": out["suggested_merge"]}, iid)
    return out, True


def _keep_caller_number(conn: psycopg.Connection, settings, iid: int, number: str | None) -> None:
    """Store the full number encrypted (call-back); without a key only the masked one is kept."""
    if not number:
        return
    key = callerkey.current_key(settings)
    if key is None:
        log.warning("no caller key (setting caller_key / caller_key_file): incident %s keeps only the masked "
                    "caller number; run `gisapp caller-key init`", iid)
        return
    conn.execute("UPDATE incident SET caller_encrypted = %s WHERE id = %s", [callerkey.encrypt(key, number, iid), iid])


def _idempotent_replay(conn, settings, key: str, req_hash: str | None) -> dict | None:
    row = conn.execute("SELECT id, idempotency_hash FROM incident WHERE idempotency_key = %s", [key]).fetchone()
    if row is None:
        return None
    if req_hash is not None and row["idempotency_hash"] not in (None, req_hash):
        raise Conflict("this idempotency key was used for a different request", "idempotency_key",
                       key="err.idempotency_reused")
    out = incident_detail(conn, settings, row["id"], with_events=False)
    out["idempotent_replay"] = True
    return out


def check_intake(conn: psycopg.Connection, settings, lon: float | None, lat: float | None,
                 address: str | None) -> dict[str, Any]:
    """What a call at a point (or an address) would meet before it is taken: whether the point is
    outside the county and the active incidents it may duplicate (nearest first, by code).

    Nothing is written; the intake itself enforces the same checks (allow_outside, confirm_duplicates).
    """
    geocode = None
    if lon is None or lat is None:
        geocode = resolve_address(conn, address or "")
        if geocode is None:
            raise ValidationError("no village, road or town of the gazetteer found in this address; "
                                  "give a location point", "address", status=422,
                                  key="err.intake.address_not_found")
        lon, lat = geocode["lon"], geocode["lat"]
    own = ownership(conn, lon, lat, db_now(conn))
    dups = find_duplicates(conn, settings, lon, lat, db_now(conn))
    return {"lon": lon, "lat": lat, "geocode": geocode,
            "outside_county": bool(not own["inside_county"] and not own["no_county"]),
            "duplicates": [jsonable(d) for d in dups]}
