"""Draft, edit, validate and publish station and traffic jurisdictions and joint war zones.

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

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import psycopg
import shapely
from psycopg import sql
from shapely import wkb

from .errors import Conflict, GeometryError, NotFound, ValidationError
from .features import audit
from .geometry import _walk_positions, build_shape, check_extent

KINDS = ("station", "traffic", "joint_zone")
STATUSES = ("draft", "published", "archived")
# Issue codes of validation, and whether each one blocks a publish.
ISSUE_CODES = ("invalid", "empty", "overlap", "gap", "sliver", "outside", "grid_cut")
# Reshaping snaps to this grid (degrees, about 0.01 mm) so that a vertex computed on a shared
# edge (a split point, say) never leaves a zero-width spike behind.
GRID_DEG = 1e-10


# --- reading ---------------------------------------------------------------------------------

def get_plan_row(conn: psycopg.Connection, plan_id: int, lock: bool = False) -> dict:
    """Return the plan row or raise NotFound (``lock`` takes a row lock for an edit)."""
    row = conn.execute("SELECT * FROM plan WHERE id = %s" + (" FOR UPDATE" if lock else ""),
                       [plan_id]).fetchone()
    if row is None:
        raise NotFound(f"no plan with id {plan_id}", "id")
    return row


def _draft(conn: psycopg.Connection, plan_id: int) -> dict:
    plan = get_plan_row(conn, plan_id, lock=True)
    if plan["status"] != "draft":
        raise Conflict(f"plan {plan_id} is {plan['status']}; only a draft can be edited "
                       "(copy it into a new draft with POST /api/v1/plans/{id}/copy)", "status")
    return plan


def _plan_json(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        out[k] = v.isoformat() if isinstance(v, datetime) else v
    return out


def list_plans(conn: psycopg.Connection, kind: str | None = None, status: str | None = None) -> list[dict]:
    """Return the plans (newest first) with their area counts."""
    if kind is not None and kind not in KINDS:
        raise ValidationError(f"must be one of {', '.join(KINDS)}", "kind")
    if status is not None and status not in STATUSES:
        raise ValidationError(f"must be one of {', '.join(STATUSES)}", "status")
    rows = conn.execute(
        "SELECT p.*, (SELECT count(*) FROM plan_area a WHERE a.plan_id = p.id) AS area_count "
        "FROM plan p WHERE (%(k)s::text IS NULL OR p.kind = %(k)s) AND (%(s)s::text IS NULL OR p.status = %(s)s) "
        "ORDER BY p.id DESC",
        {"k": kind, "s": status},
    ).fetchall()
    return [_plan_json(r) for r in rows]


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
    plan = _plan_json(get_plan_row(conn, plan_id))
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
        raise ValidationError("must be a GeoJSON geometry object", field)
    gtype = obj.get("type")
    accepted = {"MultiPolygon": ("Polygon", "MultiPolygon"), "LineString": ("LineString",)}[expected]
    if gtype not in accepted:
        raise GeometryError(f"geometry type {gtype!r} is not accepted here; expected {' or '.join(accepted)}",
                            field)
    coords = obj.get("coordinates")
    positions: list = []
    _walk_positions(coords, field, positions)
    if not positions:
        raise GeometryError("geometry has no coordinates", field)
    for pos in positions:
        if not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90):
            raise ValidationError(f"position {pos!r:.60} out of range (RFC 7946 order is [longitude, latitude])",
                                  field)
    if gtype != "LineString":
        polys = [coords] if gtype == "Polygon" else coords
        for poly in polys:
            if not isinstance(poly, list) or not poly:
                raise GeometryError("a polygon needs at least one ring", field)
            for ring in poly:
                if not isinstance(ring, list) or len(ring) < 4:
                    raise GeometryError("a polygon ring needs at least 4 positions", field)
                if list(ring[0][:2]) != list(ring[-1][:2]):
                    raise GeometryError("a polygon ring must end where it starts (closed ring)", field)
    elif not isinstance(coords, list) or len(coords) < 2:
        raise GeometryError("a line needs at least 2 positions", field)
    geom = build_shape(gtype, coords, field)
    if geom.has_z:
        geom = shapely.force_2d(geom)
    if gtype == "Polygon":
        geom = shapely.MultiPolygon([geom])
    if extent is not None:
        check_extent(geom, extent, field)
    return geom


# --- drafts -----------------------------------------------------------------------------------

def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValidationError("is required: a name of 1 to 200 characters", "name")
    return name.strip()


def create_plan(conn: psycopg.Connection, user: dict, *, name: str, kind: str, copy_at: datetime | None = None,
                description: str = "", empty: bool = False, origin: str | None = None,
                parent_plan_id: int | None = None, objective: dict | None = None) -> dict:
    """Create a named draft; unless ``empty``, copy the published layout in force at ``copy_at``.

    Returns the plan row (as JSON-ready dict) with ``area_count``.
    """
    name = _check_name(name)
    if kind not in KINDS:
        raise ValidationError(f"must be one of {', '.join(KINDS)}", "kind")
    if not isinstance(description, str) or len(description) > 4000:
        raise ValidationError("must be a string of at most 4000 characters", "description")
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
    out = _plan_json(row)
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
        [_check_name(name or f"{src['name']} (copy)"), src["kind"], user["username"], src["description"],
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
    out = _plan_json(row)
    out["area_count"] = n
    return out


def archive_plan(conn: psycopg.Connection, user: dict, plan_id: int) -> dict:
    """Set a draft aside (status ``archived``); published plans stay as history."""
    plan = _draft(conn, plan_id)
    conn.execute("UPDATE plan SET status = 'archived', updated_at = now() WHERE id = %s", [plan_id])
    audit(conn, user, "archive", "plan", plan_id, {"name": plan["name"]})
    return {"id": plan_id, "status": "archived"}


def _touch(conn: psycopg.Connection, plan_id: int) -> None:
    conn.execute("UPDATE plan SET updated_at = now() WHERE id = %s", [plan_id])


def plan_of_area(conn: psycopg.Connection, area_id: int) -> int:
    """Return the id of the plan an area belongs to, or raise NotFound."""
    row = conn.execute("SELECT plan_id FROM plan_area WHERE id = %s", [area_id]).fetchone()
    if row is None:
        raise NotFound(f"no plan area with id {area_id}", "id")
    return row["plan_id"]


def _area(conn: psycopg.Connection, plan_id: int, area_id: int) -> dict:
    row = conn.execute("SELECT * FROM plan_area WHERE id = %s AND plan_id = %s FOR UPDATE",
                       [area_id, plan_id]).fetchone()
    if row is None:
        raise NotFound(f"plan {plan_id} has no area {area_id}", "area_id")
    return row


def _org(conn: psycopg.Connection, org_id: Any, field: str, kind: str | None = None) -> dict:
    if isinstance(org_id, bool) or not isinstance(org_id, int):
        raise ValidationError("must be an organisation id (integer)", field)
    row = conn.execute("SELECT id, code, name, kind, hq FROM organisation WHERE id = %s", [org_id]).fetchone()
    if row is None:
        raise ValidationError(f"no organisation with id {org_id}", field, status=422)
    allowed = {"station": ("station",), "traffic": ("squadron", "station", "accident_section")}.get(kind or "")
    if allowed and row["kind"] not in allowed:
        raise ValidationError(f"organisation {row['code']} is a {row['kind']}; a {kind} jurisdiction belongs "
                              f"to a {' or '.join(allowed)}", field, status=422)
    return row


def _member_ids(conn: psycopg.Connection, raw: Any) -> list[int]:
    if not isinstance(raw, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
        raise ValidationError("must be an array of organisation ids", "member_ids")
    for m in raw:
        _org(conn, m, "member_ids")
    return sorted(set(raw))


def add_area(conn: psycopg.Connection, user: dict, plan_id: int, body: dict, extent) -> dict:
    """Add an area to a draft: ``organisation_id`` (station/traffic plans) or a new joint zone."""
    plan = _draft(conn, plan_id)
    if not isinstance(body, dict):
        raise ValidationError("must be an object", "body")
    geom = parse_draft_geometry(body["geometry"], extent) if body.get("geometry") is not None else None
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 100):
        raise ValidationError("must be a string of at most 100 characters", "name")
    if plan["kind"] == "joint_zone":
        code = body.get("zone_code")
        if not isinstance(code, str) or not code or len(code) > 40:
            raise ValidationError("is required for a joint zone (at most 40 characters)", "zone_code")
        if not name:
            raise ValidationError("is required for a joint zone", "name")
        centre = _org(conn, body.get("centre_org_id"), "centre_org_id")
        members = _member_ids(conn, body.get("member_ids", []))
        if centre["id"] not in members:
            members = sorted({*members, centre["id"]})
        if conn.execute("SELECT 1 FROM plan_area WHERE plan_id = %s AND zone_code = %s", [plan_id, code]).fetchone():
            raise Conflict(f"the draft already has zone {code}", "zone_code")
        row = conn.execute(
            "INSERT INTO plan_area (plan_id, zone_code, name, name_en, centre_org_id, member_ids, geom) "
            "VALUES (%s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4326)) RETURNING id",
            [plan_id, code, name, body.get("name_en"), centre["id"], members, _wkb(geom)]).fetchone()
    else:
        org = _org(conn, body.get("organisation_id"), "organisation_id", plan["kind"])
        if conn.execute("SELECT 1 FROM plan_area WHERE plan_id = %s AND organisation_id = %s",
                        [plan_id, org["id"]]).fetchone():
            raise Conflict(f"the draft already has an area for {org['code']}", "organisation_id")
        row = conn.execute(
            "INSERT INTO plan_area (plan_id, organisation_id, name, geom) "
            "VALUES (%s, %s, %s, ST_GeomFromWKB(%s, 4326)) RETURNING id",
            [plan_id, org["id"], name, _wkb(geom)]).fetchone()
    _touch(conn, plan_id)
    audit(conn, user, "add_area", "plan", plan_id, {"area_id": row["id"], "body": {
        k: v for k, v in body.items() if k != "geometry"}})
    return {"id": row["id"]}


def _wkb(geom) -> bytes | None:
    return None if geom is None else wkb.dumps(geom)


def update_area(conn: psycopg.Connection, user: dict, plan_id: int, area_id: int, body: dict, extent) -> dict:
    """Change an area's geometry (as drawn), name, or a joint zone's centre and members."""
    _draft(conn, plan_id)
    area = _area(conn, plan_id, area_id)
    if not isinstance(body, dict) or not body:
        raise ValidationError("must be an object with geometry, name, centre_org_id or member_ids", "body")
    allowed = {"geometry", "name", "name_en", "centre_org_id", "member_ids", "type", "properties"}
    for k in body:
        if k not in allowed:
            raise ValidationError("cannot be changed here", k)
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    values = {**props, **{k: v for k, v in body.items() if k not in ("type", "properties", "geometry")}}
    if "geometry" in body:
        geom = parse_draft_geometry(body["geometry"], extent) if body["geometry"] is not None else None
        conn.execute("UPDATE plan_area SET geom = ST_GeomFromWKB(%s, 4326), updated_at = now() WHERE id = %s",
                     [_wkb(geom), area_id])
    for k in ("name", "name_en"):
        if k in values:
            if values[k] is not None and (not isinstance(values[k], str) or len(values[k]) > 100):
                raise ValidationError("must be a string of at most 100 characters", k)
            conn.execute(sql.SQL("UPDATE plan_area SET {} = %s WHERE id = %s").format(sql.Identifier(k)),
                         [values[k], area_id])
    if "centre_org_id" in values or "member_ids" in values:
        if area["zone_code"] is None:
            raise ValidationError("only a joint zone has a centre and members", "member_ids")
        centre = _org(conn, values.get("centre_org_id", area["centre_org_id"]), "centre_org_id")["id"]
        members = _member_ids(conn, values.get("member_ids", list(area["member_ids"])))
        conn.execute("UPDATE plan_area SET centre_org_id = %s, member_ids = %s WHERE id = %s",
                     [centre, sorted({*members, centre}), area_id])
    _touch(conn, plan_id)
    audit(conn, user, "edit_area", "plan", plan_id, {"area_id": area_id, "changed": sorted(values) + (
        ["geometry"] if "geometry" in body else [])})
    return {"id": area_id}


def delete_area(conn: psycopg.Connection, user: dict, plan_id: int, area_id: int) -> dict:
    """Remove an area from a draft (publishing ends that organisation's jurisdiction)."""
    _draft(conn, plan_id)
    _area(conn, plan_id, area_id)
    conn.execute("DELETE FROM plan_area WHERE id = %s", [area_id])
    _touch(conn, plan_id)
    audit(conn, user, "delete_area", "plan", plan_id, {"area_id": area_id})
    return {"id": area_id, "deleted": True}


# --- reshaping operations ---------------------------------------------------------------------

def _reassign_piece(conn: psycopg.Connection, plan_id: int, piece_wkb: bytes, to_area_id: int,
                    settings) -> list[int]:
    """Give the polygon ``piece`` to one area: add it there, cut it from every other area.

    Returns the ids of the areas that lost some of it.
    """
    params = {"piece": piece_wkb, "p": plan_id, "to": to_area_id, "srid": settings.metric_srid,
              "tol": settings.plan_tolerance_m2, "grid": GRID_DEG}
    try:
        with conn.transaction():
            losers = [r["id"] for r in conn.execute(
                """UPDATE plan_area a SET
                       geom = plan_clean_area(ST_Difference(ST_MakeValid(a.geom), ST_GeomFromWKB(%(piece)s, 4326), %(grid)s),
                                              %(srid)s, %(tol)s),
                       updated_at = now()
                   WHERE a.plan_id = %(p)s AND a.id <> %(to)s AND a.geom IS NOT NULL
                     AND ST_Intersects(a.geom, ST_GeomFromWKB(%(piece)s, 4326))
                     AND ST_Area(ST_Transform(ST_Intersection(ST_MakeValid(a.geom),
                                 ST_GeomFromWKB(%(piece)s, 4326)), %(srid)s)) > 0
                   RETURNING a.id""", params)]
            conn.execute(
                """UPDATE plan_area SET
                       geom = plan_clean_area(CASE WHEN geom IS NULL THEN ST_GeomFromWKB(%(piece)s, 4326)
                                              ELSE ST_Union(ST_MakeValid(geom), ST_GeomFromWKB(%(piece)s, 4326), %(grid)s) END,
                                              %(srid)s, %(tol)s),
                       updated_at = now()
                   WHERE id = %(to)s""", params)
    except psycopg.errors.InternalError as e:  # GEOS topology errors on badly broken drawings
        raise GeometryError(f"cannot reshape: {e.diag.message_primary}; fix the invalid area first",
                            "geometry") from None
    return losers


def _area_for_org(conn: psycopg.Connection, plan: dict, org_id: Any, field: str) -> dict:
    org = _org(conn, org_id, field, plan["kind"])
    row = conn.execute("SELECT * FROM plan_area WHERE plan_id = %s AND organisation_id = %s FOR UPDATE",
                       [plan["id"], org["id"]]).fetchone()
    if row is None:  # a new organisation gets its first area in this draft
        row = conn.execute("INSERT INTO plan_area (plan_id, organisation_id) VALUES (%s, %s) RETURNING *",
                           [plan["id"], org["id"]]).fetchone()
    return row


def move_grid(conn: psycopg.Connection, user: dict, plan_id: int, grid_id: Any, to_org_id: Any, settings) -> dict:
    """Move a patrol grid to another organisation's area: the two areas are reshaped."""
    plan = _draft(conn, plan_id)
    if plan["kind"] == "joint_zone":
        raise ValidationError("grids move between station or traffic areas, not joint zones", "grid_id")
    if isinstance(grid_id, bool) or not isinstance(grid_id, int):
        raise ValidationError("must be a grid id (integer)", "grid_id")
    grid = conn.execute("SELECT id, code, name, ST_AsBinary(geom) AS g FROM grid WHERE id = %s",
                        [grid_id]).fetchone()
    if grid is None:
        raise ValidationError(f"no grid with id {grid_id}", "grid_id", status=422)
    to_area = _area_for_org(conn, plan, to_org_id, "to_organisation_id")
    losers = _reassign_piece(conn, plan_id, grid["g"], to_area["id"], settings)
    _touch(conn, plan_id)
    audit(conn, user, "move_grid", "plan", plan_id, {"grid_id": grid_id, "grid_code": grid["code"],
                                                    "to_area_id": to_area["id"], "from_area_ids": losers})
    return {"grid_id": grid_id, "to_area_id": to_area["id"], "from_area_ids": losers}


def reassign_polygon(conn: psycopg.Connection, user: dict, plan_id: int, geometry: Any, to_org_id: Any,
                     settings) -> dict:
    """Give a drawn polygon to an organisation: it joins that area and leaves every other one."""
    plan = _draft(conn, plan_id)
    if plan["kind"] == "joint_zone":
        raise ValidationError("draw joint zones by editing their areas", "geometry")
    geom = parse_draft_geometry(geometry, settings.service_extent)
    if not geom.is_valid:
        raise GeometryError("the drawn shape crosses itself; draw it again", "geometry")
    to_area = _area_for_org(conn, plan, to_org_id, "to_organisation_id")
    losers = _reassign_piece(conn, plan_id, geom.wkb, to_area["id"], settings)
    _touch(conn, plan_id)
    audit(conn, user, "reassign", "plan", plan_id, {"to_area_id": to_area["id"], "from_area_ids": losers})
    return {"to_area_id": to_area["id"], "from_area_ids": losers}


def village_cell(conn: psycopg.Connection, plan_id: int, village_id: int, settings) -> tuple[dict, bytes]:
    """Return (the area holding a village, the village's territory in it as WKB).

    The territory is the village's Voronoi cell among the villages of that area (in the
    metric CRS), clipped to the area.
    """
    v = conn.execute("SELECT id, code, name, geom FROM village WHERE id = %s", [village_id]).fetchone()
    if v is None:
        raise ValidationError(f"no village with id {village_id}", "village_id", status=422)
    area = conn.execute(
        "SELECT * FROM plan_area WHERE plan_id = %s AND geom IS NOT NULL AND ST_Intersects(geom, %s) "
        "ORDER BY id LIMIT 1", [plan_id, v["geom"]]).fetchone()
    if area is None:
        raise Conflict(f"village {v['code']} lies in no area of this draft", "village_id")
    cell = conn.execute(
        """WITH a AS (SELECT ST_MakeValid(geom) AS g FROM plan_area WHERE id = %(a)s),
                vs AS (SELECT v.id, ST_Transform(v.geom, %(srid)s) AS g FROM village v, a WHERE ST_Intersects(v.geom, a.g)),
                vor AS (SELECT (ST_Dump(ST_VoronoiPolygons(ST_Collect(vs.g), 0,
                                 ST_Expand(ST_Transform(a.g, %(srid)s), 1000)))).geom AS cell FROM vs, a GROUP BY a.g)
           SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(
                      ST_Intersection(a.g, ST_Transform(vor.cell, 4326)), 3))) AS wkb
           FROM vor, a WHERE ST_Intersects(vor.cell, ST_Transform(%(v)s::geometry, %(srid)s))
           LIMIT 1""",
        {"a": area["id"], "srid": settings.metric_srid, "v": v["geom"]}).fetchone()
    if cell is None or cell["wkb"] is None:
        raise Conflict(f"no territory found for village {v['code']}", "village_id")
    return area, cell["wkb"]


def move_village(conn: psycopg.Connection, user: dict, plan_id: int, village_id: Any, to_org_id: Any,
                 settings) -> dict:
    """Move a village's territory (its Voronoi cell in its area) to another organisation."""
    plan = _draft(conn, plan_id)
    if plan["kind"] == "joint_zone":
        raise ValidationError("villages move between station or traffic areas, not joint zones", "village_id")
    if isinstance(village_id, bool) or not isinstance(village_id, int):
        raise ValidationError("must be a village id (integer)", "village_id")
    from_area, cell = village_cell(conn, plan_id, village_id, settings)
    to_area = _area_for_org(conn, plan, to_org_id, "to_organisation_id")
    if to_area["id"] == from_area["id"]:
        raise Conflict("the village already lies in that organisation's area", "to_organisation_id")
    losers = _reassign_piece(conn, plan_id, cell, to_area["id"], settings)
    _touch(conn, plan_id)
    audit(conn, user, "move_village", "plan", plan_id, {"village_id": village_id, "to_area_id": to_area["id"],
                                                       "from_area_ids": losers})
    return {"village_id": village_id, "to_area_id": to_area["id"], "from_area_ids": losers}


def split_area(conn: psycopg.Connection, user: dict, plan_id: int, area_id: int, line: Any, body: dict,
               settings) -> dict:
    """Split an area along a line; the pieces away from the area's seat go to another owner.

    The piece holding ``keep_point`` (or the owner's headquarters, else the largest piece)
    stays; the other pieces go to ``to_organisation_id`` (station/traffic plans) or to the
    joint zone ``to_zone_code`` (created with ``name`` and ``centre_org_id`` when new).
    """
    plan = _draft(conn, plan_id)
    area = _area(conn, plan_id, area_id)
    if area["geom"] is None:
        raise Conflict("the area has no geometry to split", "area_id")
    line_g = parse_draft_geometry(line, settings.service_extent, "line", expected="LineString")
    keep = body.get("keep_point")
    if keep is not None:
        if not (isinstance(keep, list) and len(keep) == 2 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in keep)):
            raise ValidationError("must be [longitude, latitude]", "keep_point")
    pieces = conn.execute(
        """SELECT (d).path[1] AS n, ST_AsBinary((d).geom) AS wkb, ST_Area(ST_Transform((d).geom, %(srid)s)) AS m2
           FROM (SELECT ST_Dump(ST_Split(plan_clean_area(geom, %(srid)s, %(tol)s), ST_GeomFromWKB(%(l)s, 4326))) AS d
                 FROM plan_area WHERE id = %(a)s) s ORDER BY 1""",
        {"srid": settings.metric_srid, "tol": settings.plan_tolerance_m2, "l": line_g.wkb, "a": area_id}).fetchall()
    pieces = [p for p in pieces if p["m2"] >= settings.plan_tolerance_m2]
    if len(pieces) < 2:
        raise GeometryError("the line does not cut the area into two or more pieces: draw it right across",
                            "line")
    shapes = [wkb.loads(p["wkb"]) for p in pieces]
    seat = None
    if keep is not None:
        seat = shapely.Point(keep)
    else:
        owner = area["organisation_id"] or area["centre_org_id"]
        hq = conn.execute("SELECT ST_AsBinary(hq) AS hq FROM organisation WHERE id = %s", [owner]).fetchone()
        if hq and hq["hq"]:
            seat = wkb.loads(hq["hq"])
    keep_idx = next((i for i, s in enumerate(shapes) if seat is not None and s.intersects(seat)), None)
    if keep_idx is None:
        keep_idx = max(range(len(pieces)), key=lambda i: pieces[i]["m2"])
    moved = shapely.union_all([s for i, s in enumerate(shapes) if i != keep_idx])
    if plan["kind"] == "joint_zone":
        code = body.get("to_zone_code")
        if not isinstance(code, str) or not code:
            raise ValidationError("is required: the joint zone that gets the cut-off pieces", "to_zone_code")
        target = conn.execute("SELECT * FROM plan_area WHERE plan_id = %s AND zone_code = %s FOR UPDATE",
                              [plan_id, code]).fetchone()
        if target is None:
            name = body.get("name")
            if not isinstance(name, str) or not name:
                raise ValidationError("is required for a new joint zone", "name")
            centre = _org(conn, body.get("centre_org_id"), "centre_org_id")["id"]
            target = conn.execute(
                "INSERT INTO plan_area (plan_id, zone_code, name, centre_org_id, member_ids) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING *", [plan_id, code, name, centre, [centre]]).fetchone()
    else:
        target = _area_for_org(conn, plan, body.get("to_organisation_id"), "to_organisation_id")
    if target["id"] == area_id:
        raise ValidationError("must name another owner than the area being split", "to_organisation_id")
    _reassign_piece(conn, plan_id, shapely.MultiPolygon(
        [p for p in getattr(moved, "geoms", [moved]) if p.geom_type == "Polygon"]).wkb, target["id"], settings)
    _touch(conn, plan_id)
    audit(conn, user, "split_area", "plan", plan_id, {"area_id": area_id, "to_area_id": target["id"],
                                                     "pieces": len(pieces)})
    return {"area_id": area_id, "to_area_id": target["id"], "pieces": len(pieces)}


def merge_areas(conn: psycopg.Connection, user: dict, plan_id: int, area_id: int, other_area_id: Any,
                settings) -> dict:
    """Merge ``other_area_id`` into ``area_id`` (the other owner loses its area in this draft)."""
    _draft(conn, plan_id)
    if isinstance(other_area_id, bool) or not isinstance(other_area_id, int):
        raise ValidationError("must be an area id (integer)", "other_area_id")
    if other_area_id == area_id:
        raise ValidationError("must be another area than area_id", "other_area_id")
    keep = _area(conn, plan_id, area_id)
    other = _area(conn, plan_id, other_area_id)
    try:
        with conn.transaction():
            conn.execute(
                """UPDATE plan_area SET geom = plan_clean_area(ST_Union(coalesce(ST_MakeValid(geom), 'GEOMETRYCOLLECTION EMPTY'::geometry),
                                                 coalesce(ST_MakeValid(%s::geometry), 'GEOMETRYCOLLECTION EMPTY'::geometry), %s), %s, %s),
                                        member_ids = %s, updated_at = now() WHERE id = %s""",
                [other["geom"], GRID_DEG, settings.metric_srid, settings.plan_tolerance_m2,
                 sorted({*keep["member_ids"], *other["member_ids"]}), area_id])
    except psycopg.errors.InternalError as e:
        raise GeometryError(f"cannot merge: {e.diag.message_primary}; fix the invalid area first", "geometry") from None
    conn.execute("DELETE FROM plan_area WHERE id = %s", [other_area_id])
    _touch(conn, plan_id)
    audit(conn, user, "merge_areas", "plan", plan_id, {"area_id": area_id, "merged_area_id": other_area_id})
    return {"area_id": area_id, "merged_area_id": other_area_id}


# --- validation -------------------------------------------------------------------------------

def _msg(code: str, **kw) -> tuple[str, str]:
    m2 = kw.get("m2")
    size_zh = f"{m2:,.0f} 平方米" if m2 is not None else ""
    size_en = f"{m2:,.0f} m²" if m2 is not None else ""
    a, b = kw.get("a", ""), kw.get("b", "")
    return {
        "invalid": (f"「{a}」的几何图形无效（{kw.get('reason')}），请修改边界",
                    f"{a}: invalid geometry ({kw.get('reason')}); redraw the boundary"),
        "empty": (f"「{a}」没有范围", f"{a} has no area"),
        "overlap": (f"「{a}」与「{b}」重叠 {size_zh}", f"{a} and {b} overlap by {size_en}"),
        "gap": (f"县域内有 {size_zh} 未划入任何辖区（空隙）", f"{size_en} of the county belong to no area (gap)"),
        "sliver_part": (f"「{a}」有一块仅 {size_zh} 的碎片", f"{a} has a sliver part of only {size_en}"),
        "sliver_gap": (f"县域内有 {size_zh} 的细小空隙", f"a sliver gap of {size_en} belongs to no area"),
        "sliver_overlap": (f"「{a}」与「{b}」有 {size_zh} 的细小重叠", f"{a} and {b} overlap in a sliver of {size_en}"),
        "outside": (f"「{a}」有 {size_zh} 超出县界", f"{a} has {size_en} outside the county"),
        "grid_cut": (f"警格「{a}」被辖区边界分割（{b}）", f"grid {a} is cut by a boundary ({b})"),
    }[code]


def _issue(code: str, msg_key: str | None, geometry: Any, **kw) -> dict:
    zh, en = _msg(msg_key or code, **kw)
    out = {"code": code, "severity": "error", "message_zh": zh, "message_en": en, "geometry": geometry}
    for k in ("area_ids", "m2", "grid_id", "detail", "reason"):
        if k in kw and kw[k] is not None:
            out[k] = round(kw[k], 3) if k == "m2" else kw[k]
    return out


def validate_plan(conn: psycopg.Connection, plan_id: int, settings) -> dict:
    """Report what keeps a draft from tiling the county, each issue with its location.

    Checks, in the metric CRS ``settings.metric_srid``: invalid geometry, areas without
    geometry, overlaps, gaps, slivers (parts, gaps and overlaps smaller than
    ``plan_sliver_area_m2``), parts outside the county, and (station plans) grids cut by a
    boundary. Differences below ``plan_tolerance_m2`` are numeric noise and ignored.

    Returns ``{"plan_id", "valid", "counts": {code: n}, "issues": [...]}``; each issue has
    ``code``, ``severity``, ``message_zh``, ``message_en``, ``geometry`` (GeoJSON, WGS84)
    and the ids of the areas it concerns.
    """
    plan = get_plan_row(conn, plan_id)
    p = {"p": plan_id, "srid": settings.metric_srid, "tol": settings.plan_tolerance_m2,
         "sliver": settings.plan_sliver_area_m2, "cut": settings.plan_grid_cut_min_m2,
         "adcode": settings.county_adcode}
    issues: list[dict] = []
    labels = {r["id"]: r["label"] for r in conn.execute(
        "SELECT a.id, coalesce(a.name, o.name, a.zone_code, o.code) AS label FROM plan_area a "
        "LEFT JOIN organisation o ON o.id = a.organisation_id WHERE a.plan_id = %s", [plan_id])}
    for r in conn.execute(
            """SELECT id, ST_IsValidReason(geom) AS reason,
                      ST_AsGeoJSON(coalesce(location(ST_IsValidDetail(geom)), ST_PointOnSurface(geom)), 7)::json AS loc
               FROM plan_area WHERE plan_id = %(p)s AND geom IS NOT NULL AND NOT ST_IsValid(geom)""", p):
        issues.append(_issue("invalid", None, r["loc"], a=labels[r["id"]], reason=r["reason"], area_ids=[r["id"]]))
    for r in conn.execute("SELECT id FROM plan_area WHERE plan_id = %(p)s AND (geom IS NULL OR ST_IsEmpty(geom))", p):
        issues.append(_issue("empty", None, None, a=labels[r["id"]], area_ids=[r["id"]]))
    # The rest works on valid copies in the metric CRS.
    base = """WITH a AS MATERIALIZED (
                  SELECT id, plan_clean_area(plan_metric(geom, %(srid)s), %(srid)s, %(tol)s) AS g
                  FROM plan_area WHERE plan_id = %(p)s AND geom IS NOT NULL AND NOT ST_IsEmpty(geom)),
              c AS MATERIALIZED (SELECT ST_MakeValid(plan_metric(ST_Union(geom), %(srid)s)) AS g FROM county
                                 WHERE adcode = %(adcode)s) """
    out_geo = "ST_AsGeoJSON(ST_Transform({}, 4326), 7)::json"
    for r in conn.execute(base + f"""
            SELECT a1.id AS a, a2.id AS b, ST_Area(d.geom) AS m2, {out_geo.format('d.geom')} AS loc
            FROM a a1 JOIN a a2 ON a1.id < a2.id AND ST_Intersects(a1.g, a2.g),
                 LATERAL ST_Dump(ST_CollectionExtract(ST_Intersection(a1.g, a2.g), 3)) d
            WHERE ST_Area(d.geom) > %(tol)s ORDER BY 1, 2""", p):
        sliver = r["m2"] < settings.plan_sliver_area_m2
        issues.append(_issue("sliver" if sliver else "overlap", "sliver_overlap" if sliver else "overlap", r["loc"],
                             a=labels[r["a"]], b=labels[r["b"]], m2=r["m2"], area_ids=[r["a"], r["b"]],
                             detail="overlap" if sliver else None))
    for r in conn.execute(base + f"""
            SELECT ST_Area(d.geom) AS m2, {out_geo.format('d.geom')} AS loc
            FROM (SELECT ST_Difference(c.g, coalesce((SELECT ST_Union(g) FROM a), 'POLYGON EMPTY'::geometry)) AS g
                  FROM c) u, LATERAL ST_Dump(ST_CollectionExtract(u.g, 3)) d
            WHERE ST_Area(d.geom) > %(tol)s ORDER BY 1 DESC""", p):
        sliver = r["m2"] < settings.plan_sliver_area_m2
        issues.append(_issue("sliver" if sliver else "gap", "sliver_gap" if sliver else "gap", r["loc"],
                             m2=r["m2"], area_ids=[], detail="gap" if sliver else None))
    for r in conn.execute(base + f"""
            SELECT a.id, ST_Area(d.geom) AS m2, {out_geo.format('d.geom')} AS loc
            FROM a, LATERAL ST_Dump(a.g) d WHERE ST_Area(d.geom) < %(sliver)s ORDER BY 1""", p):
        issues.append(_issue("sliver", "sliver_part", r["loc"], a=labels[r["id"]], m2=r["m2"], area_ids=[r["id"]],
                             detail="part"))
    for r in conn.execute(base + f"""
            SELECT a.id, ST_Area(d.geom) AS m2, {out_geo.format('d.geom')} AS loc
            FROM a, c, LATERAL ST_Dump(ST_CollectionExtract(ST_Difference(a.g, c.g), 3)) d
            WHERE ST_Area(d.geom) > %(tol)s ORDER BY 1""", p):
        issues.append(_issue("outside", None, r["loc"], a=labels[r["id"]], m2=r["m2"], area_ids=[r["id"]]))
    if plan["kind"] == "station":
        for r in conn.execute(base + f"""
                , gr AS (SELECT id, code, name, ST_MakeValid(plan_metric(geom, %(srid)s)) AS g FROM grid),
                pieces AS (SELECT gr.id AS grid_id, a.id AS area_id, ST_Area(ST_Intersection(gr.g, a.g)) AS m2
                           FROM gr JOIN a ON ST_Intersects(gr.g, a.g)),
                cut AS (SELECT grid_id, array_agg(area_id ORDER BY m2 DESC) AS areas FROM pieces
                        WHERE m2 > %(cut)s GROUP BY grid_id HAVING count(*) >= 2)
                SELECT gr.id, coalesce(gr.name, gr.code) AS label, cut.areas,
                       {out_geo.format('''ST_CollectionExtract(ST_Intersection(gr.g,
                           (SELECT ST_Union(ST_Boundary(a.g)) FROM a WHERE a.id = ANY(cut.areas))), 2)''')} AS loc
                FROM cut JOIN gr ON gr.id = cut.grid_id ORDER BY gr.id""", p):
            issues.append(_issue("grid_cut", None, r["loc"], a=r["label"],
                                 b=" / ".join(labels[x] for x in r["areas"]), area_ids=list(r["areas"]),
                                 grid_id=r["id"]))
    counts = {c: sum(1 for i in issues if i["code"] == c) for c in ISSUE_CODES}
    return {"plan_id": plan_id, "valid": not any(i["severity"] == "error" for i in issues),
            "counts": counts, "issues": issues}


# --- publish, rollback, time travel -----------------------------------------------------------

def publish_plan(conn: psycopg.Connection, user: dict, plan_id: int, effective_from: datetime | None,
                 reason: str, settings) -> dict:
    """Publish a draft that validates, in force from ``effective_from`` (default now).

    The versions in force at that time end there; each area that differs from its
    version gets a new version starting then; an organisation (or zone) the draft no longer
    has loses its area. A later publish of the kind must start after this one (history is
    never rewritten); a time more than ``plan_backdate_tolerance_s`` in the past is refused.
    """
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise ValidationError("is required: say why this layout is published (at most 500 characters)", "reason")
    plan = _draft(conn, plan_id)
    kind = plan["kind"]
    # One publish of a kind at a time.
    conn.execute("SELECT pg_advisory_xact_lock(7161700, %s)", [KINDS.index(kind)])
    now = conn.execute("SELECT now() AS t").fetchone()["t"]
    at = effective_from or now
    if at < now - timedelta(seconds=settings.plan_backdate_tolerance_s):
        raise ValidationError(f"must not be more than {settings.plan_backdate_tolerance_s} s in the past "
                              "(history is not rewritten)", "effective_from")
    table = "joint_zone" if kind == "joint_zone" else "jurisdiction"
    latest = conn.execute(
        "SELECT max(valid_from) AS t FROM jurisdiction WHERE kind = %s" if table == "jurisdiction"
        else "SELECT max(valid_from) AS t FROM joint_zone", [kind] if table == "jurisdiction" else []).fetchone()["t"]
    if latest is not None and at <= latest:
        raise Conflict(f"a version of this kind already starts at {latest.isoformat()}; "
                       "publish with a later effective time", "effective_from")
    report = validate_plan(conn, plan_id, settings)
    if not report["valid"]:
        raise Conflict(f"the draft does not validate ({sum(report['counts'].values())} issues); fix them first",
                       "plan", issues=report["issues"], counts=report["counts"])
    created, ended, unchanged = [], [], []
    srid = settings.metric_srid
    if kind == "joint_zone":
        rows = conn.execute(
            """SELECT a.*, z.id AS cur_id, z.version AS cur_version,
                      (z.id IS NOT NULL AND ST_Equals(z.geom, a.geom) AND z.name = a.name
                       AND z.centre_org_id = a.centre_org_id
                       AND ARRAY(SELECT m.organisation_id FROM joint_zone_member m WHERE m.joint_zone_id = z.id
                                 ORDER BY 1) = a.member_ids) AS same
               FROM plan_area a LEFT JOIN joint_zone z ON z.code = a.zone_code AND z.valid_from <= %(at)s
                    AND (z.valid_to IS NULL OR z.valid_to > %(at)s)
               WHERE a.plan_id = %(p)s ORDER BY a.zone_code""", {"p": plan_id, "at": at}).fetchall()
        for r in rows:
            if r["same"]:
                unchanged.append(r["cur_id"])
                continue
            if r["cur_id"] is not None:
                conn.execute("UPDATE joint_zone SET valid_to = %s WHERE id = %s", [at, r["cur_id"]])
                ended.append(r["cur_id"])
            ver = conn.execute("SELECT coalesce(max(version), 0) + 1 AS v FROM joint_zone WHERE code = %s",
                               [r["zone_code"]]).fetchone()["v"]
            new_id = conn.execute(
                """INSERT INTO joint_zone (code, name, name_en, centre_org_id, version, geom, valid_from, author,
                                           reason, plan_id)
                   VALUES (%s, %s, %s, %s, %s, ST_Multi(%s::geometry), %s, %s, %s, %s) RETURNING id""",
                [r["zone_code"], r["name"], r["name_en"], r["centre_org_id"], ver, r["geom"], at,
                 user["username"], reason, plan_id]).fetchone()["id"]
            for m in sorted({*r["member_ids"], r["centre_org_id"]}):
                conn.execute("INSERT INTO joint_zone_member (joint_zone_id, organisation_id, role) VALUES (%s, %s, %s)",
                             [new_id, m, "centre" if m == r["centre_org_id"] else "member"])
            created.append(new_id)
        gone = conn.execute(
            """UPDATE joint_zone z SET valid_to = %(at)s
               WHERE z.valid_from <= %(at)s AND (z.valid_to IS NULL OR z.valid_to > %(at)s)
                 AND NOT EXISTS (SELECT 1 FROM plan_area a WHERE a.plan_id = %(p)s AND a.zone_code = z.code)
               RETURNING z.id""", {"p": plan_id, "at": at}).fetchall()
    else:
        rows = conn.execute(
            """SELECT a.*, j.id AS cur_id, (j.id IS NOT NULL AND ST_Equals(j.geom, a.geom)
                                             AND j.name IS NOT DISTINCT FROM a.name) AS same
               FROM plan_area a LEFT JOIN jurisdiction j ON j.organisation_id = a.organisation_id
                    AND j.kind = %(k)s AND j.valid_from <= %(at)s AND (j.valid_to IS NULL OR j.valid_to > %(at)s)
               WHERE a.plan_id = %(p)s ORDER BY a.organisation_id""", {"p": plan_id, "k": kind, "at": at}).fetchall()
        for r in rows:
            if r["same"]:
                unchanged.append(r["cur_id"])
                continue
            if r["cur_id"] is not None:
                conn.execute("UPDATE jurisdiction SET valid_to = %s WHERE id = %s", [at, r["cur_id"]])
                ended.append(r["cur_id"])
            ver = conn.execute("SELECT coalesce(max(version), 0) + 1 AS v FROM jurisdiction "
                               "WHERE organisation_id = %s AND kind = %s", [r["organisation_id"], kind]).fetchone()["v"]
            created.append(conn.execute(
                """INSERT INTO jurisdiction (organisation_id, kind, version, name, geom, valid_from, author, reason,
                                             plan_id)
                   VALUES (%s, %s, %s, %s, ST_Multi(%s::geometry), %s, %s, %s, %s) RETURNING id""",
                [r["organisation_id"], kind, ver, r["name"], r["geom"], at, user["username"], reason,
                 plan_id]).fetchone()["id"])
        gone = conn.execute(
            """UPDATE jurisdiction j SET valid_to = %(at)s
               WHERE j.kind = %(k)s AND j.valid_from <= %(at)s AND (j.valid_to IS NULL OR j.valid_to > %(at)s)
                 AND NOT EXISTS (SELECT 1 FROM plan_area a WHERE a.plan_id = %(p)s
                                 AND a.organisation_id = j.organisation_id)
               RETURNING j.id""", {"p": plan_id, "k": kind, "at": at}).fetchall()
    ended += [r["id"] for r in gone]
    grid_changes = _record_grid_changes(conn, plan_id, srid) if kind == "station" else 0
    conn.execute("UPDATE plan SET superseded_by = %s WHERE kind = %s AND status = 'published' "
                 "AND superseded_by IS NULL AND id <> %s", [plan_id, kind, plan_id])
    conn.execute(
        "UPDATE plan SET status = 'published', effective_from = %s, published_at = %s, published_by = %s, "
        "publish_reason = %s, updated_at = now() WHERE id = %s",
        [at, now, user["username"], reason, plan_id])
    applied = apply_due(conn, user)
    detail = {"effective_from": at.isoformat(), "reason": reason, "created_version_ids": created,
              "ended_version_ids": ended, "unchanged_version_ids": unchanged, "grid_changes": grid_changes,
              "table": table}
    audit(conn, user, "publish", "plan", plan_id, detail)
    return {"plan_id": plan_id, "status": "published", **detail, "grid_changes_applied": applied}


def _record_grid_changes(conn: psycopg.Connection, plan_id: int, srid: int) -> int:
    """Record, for a station plan, the grids whose owner changes (by their largest share)."""
    return conn.execute(
        """INSERT INTO plan_grid_change (plan_id, grid_id, from_org_id, to_org_id)
           SELECT %(p)s, g.id, g.organisation_id, best.organisation_id
           FROM grid g CROSS JOIN LATERAL (
               SELECT a.organisation_id FROM plan_area a
               WHERE a.plan_id = %(p)s AND a.geom IS NOT NULL AND ST_Intersects(a.geom, g.geom)
               ORDER BY ST_Area(plan_metric(ST_Intersection(a.geom, g.geom), %(srid)s)) DESC
               LIMIT 1) best
           WHERE best.organisation_id IS DISTINCT FROM g.organisation_id""",
        {"p": plan_id, "srid": srid}).rowcount


def apply_due(conn: psycopg.Connection, user: dict | None = None) -> int:
    """Apply the grid ownership changes of published station plans now in force; return the count.

    Grids are not versioned: a plan published for a future time changes them when that
    time has come (this runs on every publish, on planning reads and from
    ``gisapp plan apply-due``). Grids also point at their station's version in force.
    """
    rows = conn.execute(
        """UPDATE plan_grid_change c SET applied_at = now()
           FROM plan p WHERE p.id = c.plan_id AND p.status = 'published' AND p.effective_from <= now()
             AND c.applied_at IS NULL
           RETURNING c.grid_id, c.to_org_id, c.plan_id""").fetchall()
    for r in rows:
        conn.execute("UPDATE grid SET organisation_id = %s, updated_at = now() WHERE id = %s",
                     [r["to_org_id"], r["grid_id"]])
    if rows:
        conn.execute(
            """UPDATE grid g SET jurisdiction_id = j.id FROM jurisdiction j
               WHERE j.organisation_id = g.organisation_id AND j.kind = 'station' AND j.valid_from <= now()
                 AND (j.valid_to IS NULL OR j.valid_to > now()) AND g.jurisdiction_id IS DISTINCT FROM j.id""")
        audit(conn, user, "apply_grid_changes", "plan", rows[0]["plan_id"],
              {"grids": [r["grid_id"] for r in rows]})
    return len(rows)


def rollback(conn: psycopg.Connection, user: dict, plan_id: int, effective_from: datetime | None, reason: str,
             settings) -> dict:
    """Publish an earlier published plan's layout again (as a new plan that copies it)."""
    src = get_plan_row(conn, plan_id)
    if src["status"] != "published":
        raise Conflict("only a published plan can be published again", "id")
    copy = copy_plan(conn, user, plan_id, f"{src['name']} (rollback)", origin="rollback")
    out = publish_plan(conn, user, copy["id"], effective_from, reason, settings)
    audit(conn, user, "rollback", "plan", copy["id"], {"to_plan_id": plan_id})
    return {**out, "rolled_back_to_plan_id": plan_id}


def owner_at(conn: psycopg.Connection, lon: float, lat: float, at: datetime | None = None) -> dict:
    """Return the station, traffic owner and joint zone of a point from the versions in force at ``at``."""
    row = conn.execute(
        """SELECT jurisdiction_owner_at('station', p.g, p.t) AS station_org_id,
                  jurisdiction_owner_at('traffic', p.g, p.t) AS traffic_org_id,
                  joint_zone_at(p.g, p.t) AS joint_zone_id, p.t AS at
           FROM (SELECT ST_SetSRID(ST_MakePoint(%s, %s), 4326) AS g, coalesce(%s, now()) AS t) p""",
        [lon, lat, at]).fetchone()
    out = dict(row)
    out["at"] = out["at"].isoformat()
    for k in ("station_org_id", "traffic_org_id"):
        org = conn.execute("SELECT code, name FROM organisation WHERE id = %s", [out[k]]).fetchone() if out[k] else None
        out[k.replace("_org_id", "_code")] = org["code"] if org else None
    return out
