"""Plans and their drafts: read, create, copy, archive, and edit their areas.

Draft, edit, validate and publish station and traffic jurisdictions and joint war zones.

A *plan* is a named draft of one kind (``station``, ``traffic`` or ``joint_zone``) holding
one *area* per organisation (or per joint-zone code). Drafts are edited freely: geometry
gets only structural checks on input and may be invalid while it is being drawn;
:func:`validate_plan` reports what stands between a draft and publication. Publishing
closes the versions in force at the effective time and inserts the draft's areas as new
versions, so dispatch ownership (computed from the versions in force at an incident's
``reported_at``) follows the new layout from then on, and any date's layout stays
readable. Rolling back is publishing a copy of an earlier plan again.

Every function takes a connection and plain arguments, works inside the caller's
transaction and never imports Flask.
"""


import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import shapely
from psycopg import sql
from shapely import wkb

from gisapp.core.audit import audit
from gisapp.core.errors import Conflict, GeometryError, NotFound, Text, ValidationError
from gisapp.core.geometry import build_shape, check_extent, check_rings, walk_positions

KINDS = ("station", "traffic", "joint_zone")
STATUSES = ("draft", "published", "archived")
# Issue codes of validation, and whether each one blocks a publish.
ISSUE_CODES = ("invalid", "empty", "overlap", "gap", "sliver", "outside", "grid_cut", "no_county")
# Reshaping snaps to this grid (degrees, about 0.01 mm) so that a vertex computed on a shared
# edge (a split point, say) never leaves a zero-width spike behind.
GRID_DEG = 1e-10


# --- reading ---------------------------------------------------------------------------------

def get_plan_row(conn: psycopg.Connection, plan_id: int, lock: bool = False) -> dict:
    """Return the plan row or raise NotFound (``lock`` takes a row lock for an edit)."""
    row = conn.execute("SELECT * FROM plan WHERE id = %s" + (" FOR UPDATE" if lock else ""),
                       [plan_id]).fetchone()
    if row is None:
        raise NotFound(f"no plan with id {plan_id}", "id", key="err.plan.not_found", params={"id": plan_id})
    return row


def draft_row(conn: psycopg.Connection, plan_id: int) -> dict:
    plan = get_plan_row(conn, plan_id, lock=True)
    if plan["status"] != "draft":
        raise Conflict(f"plan {plan_id} is {plan['status']}; only a draft can be edited "
                       "(copy it into a new draft with POST /api/v1/plans/{id}/copy)", "status",
                       key="err.plan.not_draft", params={"id": plan_id,
                                                         "status": Text.code("pl.status.", plan["status"])})
    return plan


def plan_json(row: dict) -> dict:
    """A plan row as JSON; ``scheduled`` is true for a published plan whose effective time is still
    ahead (its layout is not in force yet; like any published plan it can no longer be edited), and
    ``state`` is its status with ``scheduled`` told apart from ``published``."""
    out = {}
    for k, v in row.items():
        out[k] = v.isoformat() if isinstance(v, datetime) else v
    eff = row.get("effective_from")
    scheduled = row.get("status") == "published" and isinstance(eff, datetime) and eff > datetime.now(UTC)
    out["scheduled"] = bool(scheduled)
    out["state"] = "scheduled" if scheduled else row.get("status")
    out["editable"] = row.get("status") == "draft"
    return out


def list_plans(conn: psycopg.Connection, kind: str | None = None, status: str | None = None) -> list[dict]:
    """Return the plans (newest first) with their area counts."""
    if kind is not None and kind not in KINDS:
        raise ValidationError(f"must be one of {', '.join(KINDS)}", "kind",
                              key="err.one_of", params={"options": Text.codes("pl.kind.", KINDS)})
    if status is not None and status not in STATUSES:
        raise ValidationError(f"must be one of {', '.join(STATUSES)}", "status",
                              key="err.one_of", params={"options": Text.codes("pl.status.", STATUSES)})
    rows = conn.execute(
        "SELECT p.*, (SELECT count(*) FROM plan_area a WHERE a.plan_id = p.id) AS area_count "
        "FROM plan p WHERE (%(k)s::text IS NULL OR p.kind = %(k)s) AND (%(s)s::text IS NULL OR p.status = %(s)s) "
        "ORDER BY p.id DESC",
        {"k": kind, "s": status},
    ).fetchall()
    return [plan_json(r) for r in rows]


def areas_geojson(conn: psycopg.Connection, plan_id: int, srid: int) -> dict:
    """Return a plan's areas as a FeatureCollection (geometry as drawn, even when invalid)."""
    rows = conn.execute(
        """SELECT a.id, a.organisation_id, a.zone_code, a.name, a.name_en, a.centre_org_id, a.member_ids,
                  a.source_version_id, a.updated_at,
                  o.code AS organisation_code, o.name AS organisation_name, o.kind AS organisation_kind,
                  coalesce(a.name, o.name) AS label,
                  ST_AsGeoJSON(a.geom, 7)::json AS geometry,
                  CASE WHEN a.geom IS NULL THEN NULL ELSE ST_IsValid(a.geom) END AS valid,
                  CASE WHEN a.geom IS NULL THEN 0 ELSE ST_Area(plan_metric(a.geom, %s)) / 1e6 END AS area_km2
           FROM plan_area a LEFT JOIN organisation o ON o.id = a.organisation_id
           WHERE a.plan_id = %s ORDER BY coalesce(o.code, a.zone_code)""",
        [srid, plan_id],
    ).fetchall()
    feats = []
    for r in rows:
        props = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items() if k != "geometry"}
        props["area_km2"] = round(props["area_km2"], 6)
        feats.append({"type": "Feature", "id": r["id"], "geometry": r["geometry"], "properties": props})
    return {"type": "FeatureCollection", "features": feats}


def posts_geojson(conn: psycopg.Connection, plan_id: int) -> dict:
    """Return a plan's proposed patrol-car posts (MCLP) as a FeatureCollection."""
    rows = conn.execute(
        "SELECT id, zone_code, period, start_hour, end_hour, rank, road_node_id, covered_incidents, "
        "ST_AsGeoJSON(geom, 7)::json AS geometry FROM plan_post WHERE plan_id = %s "
        "ORDER BY zone_code, start_hour, rank", [plan_id]).fetchall()
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r["id"], "geometry": r["geometry"],
         "properties": {k: v for k, v in r.items() if k != "geometry"}} for r in rows]}


def get_plan(conn: psycopg.Connection, plan_id: int, srid: int) -> dict:
    """Return a plan with its areas (and posts, for joint-zone proposals)."""
    plan = plan_json(get_plan_row(conn, plan_id))
    plan["areas"] = areas_geojson(conn, plan_id, srid)
    plan["posts"] = posts_geojson(conn, plan_id)
    return plan


# --- geometry from clients --------------------------------------------------------------------

def parse_draft_geometry(obj: Any, extent: tuple[float, float, float, float] | None,
                         field: str = "geometry", expected: str = "MultiPolygon"):
    """Check a drawn geometry's structure only and return it as shapely (maybe invalid).

    A draft's geometry may self-intersect or overlap while it is being edited: validity is
    reported by :func:`validate_plan`, not refused here. Refused: wrong types, positions
    that are not finite numbers, unclosed or too short rings, coordinates outside
    the service extent.
    """
    if not isinstance(obj, dict):
        raise ValidationError("must be a GeoJSON geometry object", field, key="err.geom.not_object")
    gtype = obj.get("type")
    accepted = {"MultiPolygon": ("Polygon", "MultiPolygon"), "LineString": ("LineString",)}[expected]
    if gtype not in accepted:
        raise GeometryError(f"geometry type {gtype!r} is not accepted here; expected {' or '.join(accepted)}",
                            field,
                            key="err.geom.type", params={"gtype": str(gtype)[:40], "expected": list(accepted)})
    coords = obj.get("coordinates")
    positions: list = []
    walk_positions(coords, field, positions)
    if not positions:
        raise GeometryError("geometry has no coordinates", field, key="err.geom.no_coordinates")
    for pos in positions:
        if not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90):
            raise ValidationError(f"position {pos!r:.60} out of range (RFC 7946 order is [longitude, latitude])",
                                  field, key="err.geom.position_range")
    if gtype != "LineString":
        check_rings(gtype, coords, field)
    elif not isinstance(coords, list) or len(coords) < 2:
        raise GeometryError("a line needs at least 2 positions", field, key="err.geom.line_short")
    geom = build_shape(gtype, coords, field)
    if geom.has_z:
        geom = shapely.force_2d(geom)
    if gtype == "Polygon":
        geom = shapely.MultiPolygon([geom])
    if extent is not None:
        check_extent(geom, extent, field)
    return geom


# --- drafts -----------------------------------------------------------------------------------

def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationError("is required: a name of 1 to 200 characters", "name", key="err.plan.name")
    return name.strip()


def create_plan(conn: psycopg.Connection, user: dict, *, name: str, kind: str, copy_at: datetime | None = None,
                description: str = "", empty: bool = False, origin: str | None = None,
                parent_plan_id: int | None = None, objective: dict | None = None) -> dict:
    """Create a named draft; unless ``empty``, copy the published layout in force at ``copy_at``.

    Returns the plan row (as JSON-ready dict) with ``area_count``.
    """
    name = check_name(name)
    if kind not in KINDS:
        raise ValidationError(f"must be one of {', '.join(KINDS)}", "kind",
                              key="err.one_of", params={"options": Text.codes("pl.kind.", KINDS)})
    if not isinstance(description, str) or len(description) > 4000:
        raise ValidationError("must be a string of at most 4000 characters", "description",
                              key="err.too_long", params={"limit": 4000})
    at = copy_at or conn.execute("SELECT now() AS t").fetchone()["t"]
    origin = origin or ("empty" if empty else "copy")
    row = conn.execute(
        "INSERT INTO plan (name, kind, author, description, origin, parent_plan_id, based_on_at, objective) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        [name, kind, user["username"], description, origin, parent_plan_id, at,
         json.dumps(objective or {}, ensure_ascii=False)],
    ).fetchone()
    n = 0 if empty else copy_published(conn, row["id"], kind, at)
    audit(conn, user, "create", "plan", row["id"],
          {"name": name, "kind": kind, "origin": origin, "copied_at": at.isoformat(), "areas": n})
    out = plan_json(row)
    out["area_count"] = n
    return out


def copy_published(conn: psycopg.Connection, plan_id: int, kind: str, at: datetime) -> int:
    """Copy the versions of ``kind`` in force at ``at`` into the plan's areas; return the count."""
    if kind == "joint_zone":
        cur = conn.execute(
            """INSERT INTO plan_area (plan_id, zone_code, name, name_en, centre_org_id, member_ids, geom,
                                      source_version_id)
               SELECT %(p)s, z.code, z.name, z.name_en, z.centre_org_id,
                      ARRAY(SELECT m.organisation_id FROM joint_zone_member m WHERE m.joint_zone_id = z.id
                            ORDER BY m.organisation_id),
                      z.geom, z.id
               FROM joint_zone z
               WHERE z.valid_from <= %(at)s AND (z.valid_to IS NULL OR z.valid_to > %(at)s)""",
            {"p": plan_id, "at": at})
    else:
        cur = conn.execute(
            """INSERT INTO plan_area (plan_id, organisation_id, name, geom, source_version_id)
               SELECT %(p)s, j.organisation_id, j.name, j.geom, j.id FROM jurisdiction j
               WHERE j.kind = %(k)s AND j.valid_from <= %(at)s AND (j.valid_to IS NULL OR j.valid_to > %(at)s)""",
            {"p": plan_id, "k": kind, "at": at})
    return cur.rowcount


def copy_plan(conn: psycopg.Connection, user: dict, plan_id: int, name: str | None = None,
              origin: str = "copy") -> dict:
    """Copy any plan (a published one for a rollback) into a new draft with the same areas."""
    src = get_plan_row(conn, plan_id)
    row = conn.execute(
        "INSERT INTO plan (name, kind, author, description, origin, parent_plan_id, based_on_at, objective) "
        "VALUES (%s, %s, %s, %s, %s, %s, now(), %s) RETURNING *",
        [check_name(name or f"{src['name']} (copy)"), src["kind"], user["username"], src["description"],
         origin, plan_id, json.dumps(src["objective"], ensure_ascii=False)],
    ).fetchone()
    n = conn.execute(
        """INSERT INTO plan_area (plan_id, organisation_id, zone_code, name, name_en, centre_org_id, member_ids,
                                  geom, source_version_id)
           SELECT %s, organisation_id, zone_code, name, name_en, centre_org_id, member_ids, geom, source_version_id
           FROM plan_area WHERE plan_id = %s""", [row["id"], plan_id]).rowcount
    conn.execute(
        """INSERT INTO plan_post (plan_id, zone_code, period, start_hour, end_hour, rank, road_node_id, geom,
                                  covered_incidents)
           SELECT %s, zone_code, period, start_hour, end_hour, rank, road_node_id, geom, covered_incidents
           FROM plan_post WHERE plan_id = %s""", [row["id"], plan_id])
    audit(conn, user, "copy", "plan", row["id"], {"from_plan_id": plan_id, "origin": origin, "areas": n})
    out = plan_json(row)
    out["area_count"] = n
    return out


def archive_plan(conn: psycopg.Connection, user: dict, plan_id: int) -> dict:
    """Set a draft aside (status ``archived``); published plans stay as history."""
    plan = draft_row(conn, plan_id)
    conn.execute("UPDATE plan SET status = 'archived', updated_at = now() WHERE id = %s", [plan_id])
    audit(conn, user, "archive", "plan", plan_id, {"name": plan["name"]})
    return {"id": plan_id, "status": "archived"}


def touch(conn: psycopg.Connection, plan_id: int) -> None:
    conn.execute("UPDATE plan SET updated_at = now() WHERE id = %s", [plan_id])


def plan_of_area(conn: psycopg.Connection, area_id: int) -> int:
    """Return the id of the plan an area belongs to, or raise NotFound."""
    row = conn.execute("SELECT plan_id FROM plan_area WHERE id = %s", [area_id]).fetchone()
    if row is None:
        raise NotFound(f"no plan area with id {area_id}", "id",
                       key="err.plan.area_not_found", params={"id": area_id})
    return row["plan_id"]


def area_row(conn: psycopg.Connection, plan_id: int, area_id: int) -> dict:
    row = conn.execute("SELECT * FROM plan_area WHERE id = %s AND plan_id = %s FOR UPDATE",
                       [area_id, plan_id]).fetchone()
    if row is None:
        raise NotFound(f"plan {plan_id} has no area {area_id}", "area_id",
                       key="err.plan.area_not_found", params={"id": area_id})
    return row


def org_row(conn: psycopg.Connection, org_id: Any, field: str, kind: str | None = None) -> dict:
    if isinstance(org_id, bool) or not isinstance(org_id, int):
        raise ValidationError("must be an organisation id (integer)", field, key="err.not_id")
    row = conn.execute("SELECT id, code, name, kind, hq FROM organisation WHERE id = %s", [org_id]).fetchone()
    if row is None:
        raise ValidationError(f"no organisation with id {org_id}", field, status=422,
                              key="err.organisation.not_found", params={"id": org_id})
    allowed = {"station": ("station",), "traffic": ("squadron", "station", "accident_section")}.get(kind or "")
    if allowed and row["kind"] not in allowed:
        raise ValidationError(f"organisation {row['code']} is a {row['kind']}; a {kind} jurisdiction belongs "
                              f"to a {' or '.join(allowed)}", field, status=422,
                              key="err.plan.org_kind", params={"org": row["name"],
                                                               "okind": Text.code("org.", row["kind"]),
                                                               "kind": Text.code("jkind.", kind),
                                                               "allowed": Text.codes("org.", allowed)})
    return row


def member_ids(conn: psycopg.Connection, raw: Any) -> list[int]:
    if not isinstance(raw, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
        raise ValidationError("must be an array of organisation ids", "member_ids",
                              key="err.plan.member_ids")
    for m in raw:
        org_row(conn, m, "member_ids")
    return sorted(set(raw))


def add_area(conn: psycopg.Connection, user: dict, plan_id: int, body: dict, extent) -> dict:
    """Add an area to a draft: ``organisation_id`` (station/traffic plans) or a new joint zone."""
    plan = draft_row(conn, plan_id)
    if not isinstance(body, dict):
        raise ValidationError("must be an object", "body", key="err.not_object")
    geom = parse_draft_geometry(body["geometry"], extent) if body.get("geometry") is not None else None
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 100):
        raise ValidationError("must be a string of at most 100 characters", "name",
                              key="err.too_long", params={"limit": 100})
    if plan["kind"] == "joint_zone":
        code = body.get("zone_code")
        if not isinstance(code, str) or not code or len(code) > 40:
            raise ValidationError("is required for a joint zone (at most 40 characters)", "zone_code",
                                  key="err.plan.zone_code")
        if not name:
            raise ValidationError("is required for a joint zone", "name", key="err.required")
        centre = org_row(conn, body.get("centre_org_id"), "centre_org_id")
        members = member_ids(conn, body.get("member_ids", []))
        if centre["id"] not in members:
            members = sorted({*members, centre["id"]})
        if conn.execute("SELECT 1 FROM plan_area WHERE plan_id = %s AND zone_code = %s", [plan_id, code]).fetchone():
            raise Conflict(f"the draft already has zone {code}", "zone_code",
                           key="err.plan.zone_exists", params={"code": code})
        row = conn.execute(
            "INSERT INTO plan_area (plan_id, zone_code, name, name_en, centre_org_id, member_ids, geom) "
            "VALUES (%s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4326)) RETURNING id",
            [plan_id, code, name, body.get("name_en"), centre["id"], members, to_wkb(geom)]).fetchone()
    else:
        org = org_row(conn, body.get("organisation_id"), "organisation_id", plan["kind"])
        if conn.execute("SELECT 1 FROM plan_area WHERE plan_id = %s AND organisation_id = %s",
                        [plan_id, org["id"]]).fetchone():
            raise Conflict(f"the draft already has an area for {org['code']}", "organisation_id",
                           key="err.plan.area_exists", params={"org": org["name"]})
        row = conn.execute(
            "INSERT INTO plan_area (plan_id, organisation_id, name, geom) "
            "VALUES (%s, %s, %s, ST_GeomFromWKB(%s, 4326)) RETURNING id",
            [plan_id, org["id"], name, to_wkb(geom)]).fetchone()
    touch(conn, plan_id)
    audit(conn, user, "add_area", "plan", plan_id, {"area_id": row["id"], "body": {
        k: v for k, v in body.items() if k != "geometry"}})
    return {"id": row["id"]}


def to_wkb(geom) -> bytes | None:
    return None if geom is None else wkb.dumps(geom)


def update_area(conn: psycopg.Connection, user: dict, plan_id: int, area_id: int, body: dict, extent) -> dict:
    """Change an area's geometry (as drawn), name, or a joint zone's centre and members."""
    draft_row(conn, plan_id)
    area = area_row(conn, plan_id, area_id)
    if not isinstance(body, dict) or not body:
        raise ValidationError("must be an object with geometry, name, centre_org_id or member_ids", "body",
                              key="err.plan.area_body")
    allowed = {"geometry", "name", "name_en", "centre_org_id", "member_ids", "type", "properties"}
    for k in body:
        if k not in allowed:
            raise ValidationError("cannot be changed here", k, key="err.read_only")
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    values = {**props, **{k: v for k, v in body.items() if k not in ("type", "properties", "geometry")}}
    if "geometry" in body:
        geom = parse_draft_geometry(body["geometry"], extent) if body["geometry"] is not None else None
        conn.execute("UPDATE plan_area SET geom = ST_GeomFromWKB(%s, 4326), updated_at = now() WHERE id = %s",
                     [to_wkb(geom), area_id])
    for k in ("name", "name_en"):
        if k in values:
            if values[k] is not None and (not isinstance(values[k], str) or len(values[k]) > 100):
                raise ValidationError("must be a string of at most 100 characters", k,
                                      key="err.too_long", params={"limit": 100})
            conn.execute(sql.SQL("UPDATE plan_area SET {} = %s WHERE id = %s").format(sql.Identifier(k)),
                         [values[k], area_id])
    if "centre_org_id" in values or "member_ids" in values:
        if area["zone_code"] is None:
            raise ValidationError("only a joint zone has a centre and members", "member_ids",
                                  key="err.plan.members_zone_only")
        centre = org_row(conn, values.get("centre_org_id", area["centre_org_id"]), "centre_org_id")["id"]
        members = member_ids(conn, values.get("member_ids", list(area["member_ids"])))
        conn.execute("UPDATE plan_area SET centre_org_id = %s, member_ids = %s WHERE id = %s",
                     [centre, sorted({*members, centre}), area_id])
    touch(conn, plan_id)
    audit(conn, user, "edit_area", "plan", plan_id, {"area_id": area_id, "changed": sorted(values) + (
        ["geometry"] if "geometry" in body else [])})
    return {"id": area_id}


def delete_area(conn: psycopg.Connection, user: dict, plan_id: int, area_id: int) -> dict:
    """Remove an area from a draft (publishing ends that organisation's jurisdiction)."""
    draft_row(conn, plan_id)
    area_row(conn, plan_id, area_id)
    conn.execute("DELETE FROM plan_area WHERE id = %s", [area_id])
    touch(conn, plan_id)
    audit(conn, user, "delete_area", "plan", plan_id, {"area_id": area_id})
    return {"id": area_id, "deleted": True}
