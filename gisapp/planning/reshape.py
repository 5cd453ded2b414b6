"""Reshape a draft: move a grid or a village, give a drawn polygon to an organisation, split and merge areas."""

from typing import Any

import psycopg
import shapely
from shapely import wkb

from gisapp.core.audit import audit
from gisapp.core.errors import Conflict, GeometryError, ValidationError

from .drafts import GRID_DEG, area_row, draft_row, org_row, parse_draft_geometry, touch

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
                            "geometry", key="err.reshape.invalid_area") from None
    return losers


def _area_for_org(conn: psycopg.Connection, plan: dict, org_id: Any, field: str) -> dict:
    org = org_row(conn, org_id, field, plan["kind"])
    row = conn.execute("SELECT * FROM plan_area WHERE plan_id = %s AND organisation_id = %s FOR UPDATE",
                       [plan["id"], org["id"]]).fetchone()
    if row is None:  # a new organisation gets its first area in this draft
        row = conn.execute("INSERT INTO plan_area (plan_id, organisation_id) VALUES (%s, %s) RETURNING *",
                           [plan["id"], org["id"]]).fetchone()
    return row


def find_grids(conn: psycopg.Connection, q: Any, limit: int = 20) -> list[dict]:
    """Grids whose code or name holds ``q`` (case-insensitive): exact matches first, then by code."""
    if not isinstance(q, str) or not q.strip():
        raise ValidationError("must be a grid code or name (part of it)", "q", key="err.required")
    if len(q) > 100:
        raise ValidationError("at most 100 characters", "q", key="err.grid.query_long")
    q = q.strip()
    like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return conn.execute(
        """SELECT g.id, g.code, g.name, g.organisation_id, o.code AS organisation_code,
                  o.name AS organisation_name, o.name_en AS organisation_name_en
           FROM grid g JOIN organisation o ON o.id = g.organisation_id
           WHERE g.code ILIKE %(like)s OR g.name ILIKE %(like)s
           ORDER BY (lower(g.code) = lower(%(q)s) OR lower(g.name) = lower(%(q)s)) DESC, g.code
           LIMIT %(n)s""", {"like": like, "q": q, "n": max(1, min(int(limit), 100))}).fetchall()


def resolve_grid(conn: psycopg.Connection, value: str, field: str = "grid_id") -> int:
    """The id of the grid named by its code or its (unique) name; 422 naming the field otherwise."""
    v = value.strip()
    rows = conn.execute("SELECT id FROM grid WHERE code = %s", [v]).fetchall() or \
        conn.execute("SELECT id FROM grid WHERE name = %s", [v]).fetchall()
    if len(rows) == 1:
        return rows[0]["id"]
    if not rows:
        raise ValidationError(f"no grid with code or name {v!r}", field, status=422,
                              key="err.grid.no_such", params={"value": v[:100]})
    raise ValidationError(f"{len(rows)} grids are named {v!r}: give the code", field, status=422,
                          key="err.grid.ambiguous", params={"value": v[:100], "n": len(rows)})


def move_grid(conn: psycopg.Connection, user: dict, plan_id: int, grid_id: Any, to_org_id: Any, settings) -> dict:
    """Move a patrol grid to another organisation's area: the two areas are reshaped."""
    plan = draft_row(conn, plan_id)
    if plan["kind"] == "joint_zone":
        raise ValidationError("grids move between station or traffic areas, not joint zones", "grid_id",
                              key="err.reshape.grid_joint_zone")
    if isinstance(grid_id, str) and grid_id.strip():
        grid_id = resolve_grid(conn, grid_id)
    if isinstance(grid_id, bool) or not isinstance(grid_id, int):
        raise ValidationError("must be a grid id (integer), code or name", "grid_id", key="err.not_id")
    grid = conn.execute("SELECT id, code, name, ST_AsBinary(geom) AS g FROM grid WHERE id = %s",
                        [grid_id]).fetchone()
    if grid is None:
        raise ValidationError(f"no grid with id {grid_id}", "grid_id", status=422,
                              key="err.grid.not_found", params={"id": grid_id})
    to_area = _area_for_org(conn, plan, to_org_id, "to_organisation_id")
    losers = _reassign_piece(conn, plan_id, grid["g"], to_area["id"], settings)
    touch(conn, plan_id)
    audit(conn, user, "move_grid", "plan", plan_id, {"grid_id": grid_id, "grid_code": grid["code"],
                                                    "to_area_id": to_area["id"], "from_area_ids": losers})
    return {"grid_id": grid_id, "to_area_id": to_area["id"], "from_area_ids": losers}


def reassign_polygon(conn: psycopg.Connection, user: dict, plan_id: int, geometry: Any, to_org_id: Any,
                     settings) -> dict:
    """Give a drawn polygon to an organisation: it joins that area and leaves every other one."""
    plan = draft_row(conn, plan_id)
    if plan["kind"] == "joint_zone":
        raise ValidationError("draw joint zones by editing their areas", "geometry",
                              key="err.reshape.draw_zone")
    geom = parse_draft_geometry(geometry, settings.service_extent)
    if not geom.is_valid:
        raise GeometryError("the drawn shape crosses itself; draw it again", "geometry",
                            key="err.reshape.self_crossing")
    to_area = _area_for_org(conn, plan, to_org_id, "to_organisation_id")
    losers = _reassign_piece(conn, plan_id, geom.wkb, to_area["id"], settings)
    touch(conn, plan_id)
    audit(conn, user, "reassign", "plan", plan_id, {"to_area_id": to_area["id"], "from_area_ids": losers})
    return {"to_area_id": to_area["id"], "from_area_ids": losers}


def village_cell(conn: psycopg.Connection, plan_id: int, village_id: int, settings) -> tuple[dict, bytes]:
    """Return (the area holding a village, the village's territory in it as WKB).

    The territory is the village's Voronoi cell among the villages of that area (in the
    metric CRS), clipped to the area.
    """
    v = conn.execute("SELECT id, code, name, geom FROM village WHERE id = %s", [village_id]).fetchone()
    if v is None:
        raise ValidationError(f"no village with id {village_id}", "village_id", status=422,
                              key="err.village.not_found", params={"id": village_id})
    area = conn.execute(
        "SELECT * FROM plan_area WHERE plan_id = %s AND geom IS NOT NULL AND ST_Intersects(geom, %s) "
        "ORDER BY id LIMIT 1", [plan_id, v["geom"]]).fetchone()
    if area is None:
        raise Conflict(f"village {v['code']} lies in no area of this draft", "village_id",
                       key="err.reshape.village_no_area", params={"code": v["code"]})
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
        raise Conflict(f"no territory found for village {v['code']}", "village_id",
                       key="err.reshape.village_no_territory", params={"code": v["code"]})
    return area, cell["wkb"]


def move_village(conn: psycopg.Connection, user: dict, plan_id: int, village_id: Any, to_org_id: Any,
                 settings) -> dict:
    """Move a village's territory (its Voronoi cell in its area) to another organisation."""
    plan = draft_row(conn, plan_id)
    if plan["kind"] == "joint_zone":
        raise ValidationError("villages move between station or traffic areas, not joint zones", "village_id",
                              key="err.reshape.village_joint_zone")
    if isinstance(village_id, bool) or not isinstance(village_id, int):
        raise ValidationError("must be a village id (integer)", "village_id", key="err.not_id")
    from_area, cell = village_cell(conn, plan_id, village_id, settings)
    to_area = _area_for_org(conn, plan, to_org_id, "to_organisation_id")
    if to_area["id"] == from_area["id"]:
        raise Conflict("the village already lies in that organisation's area", "to_organisation_id",
                       key="err.reshape.village_already")
    losers = _reassign_piece(conn, plan_id, cell, to_area["id"], settings)
    touch(conn, plan_id)
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
    plan = draft_row(conn, plan_id)
    area = area_row(conn, plan_id, area_id)
    if area["geom"] is None:
        raise Conflict("the area has no geometry to split", "area_id", key="err.reshape.no_geometry")
    line_g = parse_draft_geometry(line, settings.service_extent, "line", expected="LineString")
    keep = body.get("keep_point")
    if keep is not None:
        if not (isinstance(keep, list) and len(keep) == 2 and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in keep)):
            raise ValidationError("must be [longitude, latitude]", "keep_point",
                                  key="err.reshape.keep_point")
    pieces = conn.execute(
        """SELECT (d).path[1] AS n, ST_AsBinary((d).geom) AS wkb, ST_Area(ST_Transform((d).geom, %(srid)s)) AS m2
           FROM (SELECT ST_Dump(ST_Split(plan_clean_area(geom, %(srid)s, %(tol)s), ST_GeomFromWKB(%(l)s, 4326))) AS d
                 FROM plan_area WHERE id = %(a)s) s ORDER BY 1""",
        {"srid": settings.metric_srid, "tol": settings.plan_tolerance_m2, "l": line_g.wkb, "a": area_id}).fetchall()
    pieces = [p for p in pieces if p["m2"] >= settings.plan_tolerance_m2]
    if len(pieces) < 2:
        raise GeometryError("the line does not cut the area into two or more pieces: draw it right across",
                            "line", key="err.reshape.line_no_cut")
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
            raise ValidationError("is required: the joint zone that gets the cut-off pieces", "to_zone_code",
                                  key="err.reshape.to_zone_code")
        target = conn.execute("SELECT * FROM plan_area WHERE plan_id = %s AND zone_code = %s FOR UPDATE",
                              [plan_id, code]).fetchone()
        if target is None:
            name = body.get("name")
            if not isinstance(name, str) or not name:
                raise ValidationError("is required for a new joint zone", "name", key="err.required")
            centre = org_row(conn, body.get("centre_org_id"), "centre_org_id")["id"]
            target = conn.execute(
                "INSERT INTO plan_area (plan_id, zone_code, name, centre_org_id, member_ids) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING *", [plan_id, code, name, centre, [centre]]).fetchone()
    else:
        target = _area_for_org(conn, plan, body.get("to_organisation_id"), "to_organisation_id")
    if target["id"] == area_id:
        raise ValidationError("must name another owner than the area being split", "to_organisation_id",
                              key="err.reshape.same_owner")
    _reassign_piece(conn, plan_id, shapely.MultiPolygon(
        [p for p in getattr(moved, "geoms", [moved]) if p.geom_type == "Polygon"]).wkb, target["id"], settings)
    touch(conn, plan_id)
    audit(conn, user, "split_area", "plan", plan_id, {"area_id": area_id, "to_area_id": target["id"],
                                                     "pieces": len(pieces)})
    return {"area_id": area_id, "to_area_id": target["id"], "pieces": len(pieces)}


def merge_areas(conn: psycopg.Connection, user: dict, plan_id: int, area_id: int, other_area_id: Any,
                settings) -> dict:
    """Merge ``other_area_id`` into ``area_id`` (the other owner loses its area in this draft)."""
    draft_row(conn, plan_id)
    if isinstance(other_area_id, bool) or not isinstance(other_area_id, int):
        raise ValidationError("must be an area id (integer)", "other_area_id", key="err.not_id")
    if other_area_id == area_id:
        raise ValidationError("must be another area than area_id", "other_area_id",
                              key="err.reshape.same_area")
    keep = area_row(conn, plan_id, area_id)
    other = area_row(conn, plan_id, other_area_id)
    try:
        with conn.transaction():
            conn.execute(
                """UPDATE plan_area SET geom = plan_clean_area(ST_Union(coalesce(ST_MakeValid(geom), 'GEOMETRYCOLLECTION EMPTY'::geometry),
                                                 coalesce(ST_MakeValid(%s::geometry), 'GEOMETRYCOLLECTION EMPTY'::geometry), %s), %s, %s),
                                        member_ids = %s, updated_at = now() WHERE id = %s""",
                [other["geom"], GRID_DEG, settings.metric_srid, settings.plan_tolerance_m2,
                 sorted({*keep["member_ids"], *other["member_ids"]}), area_id])
    except psycopg.errors.InternalError as e:
        raise GeometryError(f"cannot merge: {e.diag.message_primary}; fix the invalid area first", "geometry",
                            key="err.reshape.invalid_area") from None
    conn.execute("DELETE FROM plan_area WHERE id = %s", [other_area_id])
    touch(conn, plan_id)
    audit(conn, user, "merge_areas", "plan", plan_id, {"area_id": area_id, "merged_area_id": other_area_id})
    return {"area_id": area_id, "merged_area_id": other_area_id}
