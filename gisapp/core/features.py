"""List, read, create, update and delete the features of any layer, as RFC 7946 GeoJSON.

Web routes parse the request and call these functions with plain arguments; every
function works inside the caller's transaction and never imports Flask.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from gisapp.core import scope
from gisapp.core.audit import audit
from gisapp.core.catalog import Field, Layer
from gisapp.core.errors import Conflict, Forbidden, NotFound, ValidationError
from gisapp.core.geometry import parse_geometry

# Properties that live in side tables, selected as sub-queries.
_VIRTUAL_SELECT = {
    ("joint_zones", "member_ids"): (
        "ARRAY(SELECT m.organisation_id FROM joint_zone_member m "
        "WHERE m.joint_zone_id = t.id ORDER BY m.organisation_id)"
    ),
    ("grids", "staff"): (
        "COALESCE((SELECT json_agg(json_build_object('person_name', s.person_name, 'role', s.role, "
        "'organisation_id', s.organisation_id, 'phone_masked', s.phone_masked) ORDER BY s.id) "
        "FROM grid_staff s WHERE s.grid_id = t.id), '[]'::json)"
    ),
}
_STAFF_ROLES = ("traffic_officer", "station_officer", "grid_worker")


def _virtual(layer: Layer, f: Field) -> str | None:
    return _VIRTUAL_SELECT.get((layer.name, f.name))


def _select_list(layer: Layer) -> sql.Composable:
    parts: list[sql.Composable] = [sql.SQL("t.id")]
    for f in layer.fields:
        v = _virtual(layer, f)
        if v:
            parts.append(sql.SQL(v + " AS {}").format(sql.Identifier(f.name)))  # fixed SQL text
        else:
            parts.append(sql.SQL("t.{}").format(sql.Identifier(f.name)))
    g = sql.Identifier(layer.geom_col)
    parts.append(sql.SQL("ST_AsGeoJSON(t.{g}, 7)::json AS __geometry").format(g=g))
    parts.append(
        sql.SQL(
            "ST_XMin(t.{g}) AS __x0, ST_YMin(t.{g}) AS __y0, ST_XMax(t.{g}) AS __x1, ST_YMax(t.{g}) AS __y1"
        ).format(g=g)
    )
    return sql.SQL(", ").join(parts)


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _feature(layer: Layer, row: dict) -> dict:
    props = {f.name: _jsonable(row[f.name]) for f in layer.fields}
    return {
        "type": "Feature",
        "id": row["id"],
        "geometry": row["__geometry"],
        "properties": {"id": row["id"], **props},
    }


def coerce(f: Field, raw: Any, from_query: bool = False) -> Any:
    """Convert a value from JSON (or a query string) to the field's type, or raise ValidationError."""
    name = f.name
    if raw is None:
        if f.required and not from_query:
            raise ValidationError("is required", name, key="err.required")
        return None
    t = f.type
    try:
        if t == "int":
            if isinstance(raw, bool) or (not from_query and not isinstance(raw, int)):
                raise ValidationError(f"must be an integer, got {raw!r:.40}", name, key="err.not_integer")
            val = int(raw)
            if not -(2**63) <= val < 2**63:
                raise ValidationError("integer out of range", name, key="err.not_integer")
        elif t == "float":
            if isinstance(raw, bool) or (not from_query and not isinstance(raw, (int, float))):
                raise ValidationError(f"must be a number, got {raw!r:.40}", name, key="err.not_number")
            val = float(raw)
            if val != val or val in (float("inf"), float("-inf")):
                raise ValidationError("must be a finite number", name, key="err.not_finite")
        elif t == "bool":
            if from_query:
                low = str(raw).lower()
                if low not in ("true", "false", "1", "0"):
                    raise ValidationError(f"must be true or false, got {raw!r:.40}", name,
                                          key="err.not_bool")
                val = low in ("true", "1")
            else:
                if not isinstance(raw, bool):
                    raise ValidationError(f"must be true or false, got {raw!r:.40}", name,
                                          key="err.not_bool")
                val = raw
        elif t == "text":
            if not isinstance(raw, str):
                raise ValidationError(f"must be a string, got {type(raw).__name__}", name,
                                      key="err.not_string")
            if len(raw) > f.max_len:
                raise ValidationError(f"longer than {f.max_len} characters", name,
                                      key="err.too_long", params={"limit": f.max_len})
            if "\x00" in raw:
                raise ValidationError("contains a NUL character", name, key="err.nul")
            val = raw
        elif t in ("text[]", "int[]"):
            if not isinstance(raw, list):
                raise ValidationError("must be an array", name, key="err.not_array")
            want = str if t == "text[]" else int
            if len(raw) > 1000 or not all(isinstance(x, want) and not isinstance(x, bool) for x in raw):
                raise ValidationError(f"must be an array of {'strings' if want is str else 'integers'}",
                                      name, key="err.not_array")
            val = raw
        elif t == "timestamp":
            val = parse_time(raw, name)
        elif t == "json":
            val = raw
        else:  # pragma: no cover - catalogue error
            raise AssertionError(t)
    except (TypeError, ValueError):
        raise ValidationError(f"cannot be read as {t}: {raw!r:.40}", name, key="err.unreadable") from None
    if f.choices and val not in f.choices:
        raise ValidationError(f"must be one of {', '.join(f.choices)}; got {val!r:.40}", name,
                              key="err.one_of", params={"options": list(f.choices)})
    if f.min is not None and val < f.min:
        raise ValidationError(f"must be at least {f.min}", name, key="err.min", params={"min": f.min})
    if f.max is not None and val > f.max:
        raise ValidationError(f"must be at most {f.max}", name, key="err.max", params={"max": f.max})
    return val


def parse_time(raw: Any, name: str) -> datetime:
    """Parse an ISO 8601 time; a time without zone is taken as UTC."""
    if not isinstance(raw, str):
        raise ValidationError("must be an ISO 8601 date-time string", name, key="err.not_time")
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"not an ISO 8601 date-time: {raw!r:.40}", name, key="err.not_time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def parse_id(raw: Any, name: str = "id") -> int:
    """Return ``raw`` as a positive integer id, or raise ValidationError naming ``name``."""
    if isinstance(raw, bool):
        raise ValidationError("must be an integer id", name, key="err.not_id")
    if isinstance(raw, int):
        val = raw
    elif isinstance(raw, str) and re.fullmatch(r"[0-9]{1,18}", raw):
        val = int(raw)
    else:
        raise ValidationError(f"must be an integer id, got {raw!r:.40}", name, key="err.not_id")
    if val <= 0:
        raise ValidationError("must be a positive integer id", name, key="err.not_id")
    return val


def parse_bbox(raw: str) -> tuple[float, float, float, float]:
    """Parse ``lon_min,lat_min,lon_max,lat_max``."""
    parts = raw.split(",")
    if len(parts) != 4:
        raise ValidationError("must be lon_min,lat_min,lon_max,lat_max", "bbox", key="err.bbox")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise ValidationError("must be four numbers", "bbox", key="err.bbox") from None
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise ValidationError("coordinates out of range", "bbox", key="err.bbox")
    if x0 > x1 or y0 > y1:
        raise ValidationError("minimum greater than maximum", "bbox", key="err.bbox")
    return x0, y0, x1, y1


def list_features(
    conn: psycopg.Connection,
    layer: Layer,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    filters: dict[str, Any] | None = None,
    limit: int = 1000,
    offset: int = 0,
    at: datetime | None = None,
    history: bool = False,
    orgs: frozenset[int] | None = None,
) -> dict:
    """Return one page of a layer as a FeatureCollection with ``bbox`` and paging members.

    ``orgs`` (gisapp.core.scope.visible_organisations) keeps a scoped layer's rows of those
    organisations only (None: all)."""
    where: list[sql.Composable] = []
    params: list[Any] = []
    if layer.org_scope and orgs is not None:
        cond_sql, cond_params = _scope_condition(layer, orgs)
        where.append(cond_sql)
        params.extend(cond_params)
    g = sql.Identifier(layer.geom_col)
    if bbox is not None:
        where.append(sql.SQL("t.{} && ST_MakeEnvelope(%s, %s, %s, %s, 4326)").format(g))
        params.extend(bbox)
    for name, value in (filters or {}).items():
        where.append(sql.SQL("t.{} = %s").format(sql.Identifier(name)))
        params.append(value)
    if layer.versioned and not history:
        # In force at ``at`` (default now): a published plan may schedule a version that
        # starts in the future, so "current" is not simply ``valid_to IS NULL``.
        if at is None:
            where.append(sql.SQL("t.valid_from <= now() AND (t.valid_to IS NULL OR t.valid_to > now())"))
        else:
            where.append(sql.SQL("t.valid_from <= %s AND (t.valid_to IS NULL OR t.valid_to > %s)"))
            params.extend([at, at])
    cond = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    total = conn.execute(
        sql.SQL("SELECT count(*) AS n FROM {} t").format(sql.Identifier(layer.table)) + cond, params
    ).fetchone()["n"]
    q = (
        sql.SQL("SELECT ") + _select_list(layer)
        + sql.SQL(" FROM {} t").format(sql.Identifier(layer.table)) + cond
        + sql.SQL(" ORDER BY " + ", ".join("t." + p for p in layer.order_by.split(", ")))  # catalogue text
        + sql.SQL(" LIMIT %s OFFSET %s")
    )
    rows = conn.execute(q, params + [limit, offset]).fetchall()
    feats = [_feature(layer, r) for r in rows]
    xs0 = [r["__x0"] for r in rows if r["__x0"] is not None]
    out: dict[str, Any] = {"type": "FeatureCollection"}
    if xs0:
        out["bbox"] = [
            min(xs0),
            min(r["__y0"] for r in rows if r["__y0"] is not None),
            max(r["__x1"] for r in rows if r["__x1"] is not None),
            max(r["__y1"] for r in rows if r["__y1"] is not None),
        ]
    out.update(
        {
            "features": feats,
            "numberMatched": total,
            "numberReturned": len(feats),
            "limit": limit,
            "offset": offset,
        }
    )
    return out


def _scope_condition(layer: Layer, orgs: frozenset[int]) -> tuple[sql.Composable, list[Any]]:
    if layer.org_scope == "incident":
        return scope.incident_condition(orgs, "t")
    return scope.column_condition(orgs, "t", layer.org_scope)


def get_feature(conn: psycopg.Connection, layer: Layer, fid: int, orgs: frozenset[int] | None = None) -> dict:
    """Return one feature by id or raise NotFound (also when ``orgs`` does not cover it)."""
    q = sql.SQL("SELECT ") + _select_list(layer) + sql.SQL(" FROM {} t WHERE t.id = %s").format(
        sql.Identifier(layer.table)
    )
    params: list[Any] = [fid]
    if layer.org_scope and orgs is not None:
        cond_sql, cond_params = _scope_condition(layer, orgs)
        q = q + sql.SQL(" AND ") + cond_sql
        params.extend(cond_params)
    row = conn.execute(q, params).fetchone()
    if row is None:
        raise NotFound(f"no {layer.name} feature with id {fid}", "id",
                       key="err.feature.not_found", params={"id": fid})
    return _feature(layer, row)


def _parse_body(layer: Layer, body: Any, settings, partial: bool):
    """Split a GeoJSON Feature (or a bare properties object) into checked values and geometry."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object (a GeoJSON Feature)", "body",
                              key="err.feature.body")
    if body.get("type") == "Feature" or "properties" in body:
        props = body.get("properties") or {}
    else:  # a bare object of properties
        props = {k: v for k, v in body.items() if k not in ("geometry", "type")}
    geom_in = body["geometry"] if "geometry" in body else ...
    if not isinstance(props, dict):
        raise ValidationError("must be an object", "properties", key="err.not_object")
    values: dict[str, Any] = {}
    for key in props:
        if key == "id":
            continue
        f = layer.field(key)
        if f is None:
            raise ValidationError(f"unknown property for layer {layer.name}", key,
                                  key="err.unknown_property")
        if not f.writable:
            raise ValidationError("is read-only", key, key="err.read_only")
    for f in layer.writable_fields:
        if f.name in props:
            values[f.name] = coerce(f, props[f.name])
        elif not partial and f.required:
            raise ValidationError("is required", f.name, key="err.required")
    geom = ...
    if geom_in is ...:
        if not partial and layer.geom_required:
            raise ValidationError("is required", "geometry", key="err.required")
    elif geom_in is None:
        if layer.geom_required:
            raise ValidationError("is required", "geometry", key="err.required")
        geom = None
    else:
        geom = parse_geometry(geom_in, layer.geom_type, settings.service_extent)
    return values, geom


def _check_refs(conn: psycopg.Connection, layer: Layer, values: dict) -> None:
    for f in layer.fields:
        if not f.ref or values.get(f.name) is None:
            continue
        table, _, col = f.ref.partition(".")
        col = col or "id"
        ids = values[f.name] if isinstance(values[f.name], list) else [values[f.name]]
        for v in ids:
            found = conn.execute(
                sql.SQL("SELECT 1 FROM {} WHERE {} = %s").format(sql.Identifier(table), sql.Identifier(col)),
                [v],
            ).fetchone()
            if not found:
                raise ValidationError(f"no {table} with {col} {v!r}", f.name, status=422,
                                      key="err.reference_missing", params={"value": str(v)[:40]})


def check_staff(staff: Any) -> list[dict]:
    if not isinstance(staff, list) or len(staff) > 200:
        raise ValidationError("must be an array of at most 200 staff entries", "staff",
                              key="err.staff.list")
    out = []
    for i, s in enumerate(staff):
        if not isinstance(s, dict) or not isinstance(s.get("person_name"), str) or not s["person_name"]:
            raise ValidationError(f"entry {i} needs a person_name", "staff",
                                  key="err.staff.name", params={"n": i + 1})
        if s.get("role") not in _STAFF_ROLES:
            raise ValidationError(f"entry {i}: role must be one of {', '.join(_STAFF_ROLES)}", "staff",
                                  key="err.staff.role", params={"n": i + 1})
        org = s.get("organisation_id")
        if org is not None and (isinstance(org, bool) or not isinstance(org, int)):
            raise ValidationError(f"entry {i}: organisation_id must be an integer", "staff",
                                  key="err.staff.org", params={"n": i + 1})
        out.append({"person_name": s["person_name"][:100], "role": s["role"], "organisation_id": org,
                    "phone_masked": (s.get("phone_masked") or None)})
    return out


def _geom_sql(layer: Layer) -> sql.Composable:
    if layer.geom_type.startswith("Multi"):
        return sql.SQL("ST_Multi(ST_GeomFromWKB(%s, 4326))")
    return sql.SQL("ST_GeomFromWKB(%s, 4326)")


def _check_chief(layer: Layer, user: dict, values: dict, existing: dict | None) -> None:
    if user["role"] != "chief":
        return
    col = layer.chief_scope_col
    own = user.get("station_id")
    for v in (values.get(col) if col else None, (existing or {}).get(col) if col else None):
        if v is not None and v != own:
            raise Forbidden("a station chief may only change their own station's features", col,
                            key="err.feature.chief_own")


def _side_tables(conn, layer: Layer, fid: int, virtual: dict, centre: int | None = None) -> None:
    if layer.name == "joint_zones":
        members = set(virtual.get("member_ids") or [])
        if centre is not None:
            members.add(centre)
        conn.execute("DELETE FROM joint_zone_member WHERE joint_zone_id = %s", [fid])
        for m in sorted(members):
            conn.execute(
                "INSERT INTO joint_zone_member (joint_zone_id, organisation_id, role) VALUES (%s, %s, %s)",
                [fid, m, "centre" if m == centre else "member"],
            )
    elif layer.name == "grids" and "staff" in virtual:
        conn.execute("DELETE FROM grid_staff WHERE grid_id = %s", [fid])
        for s in virtual["staff"]:
            conn.execute(
                "INSERT INTO grid_staff (grid_id, person_name, role, organisation_id, phone_masked) "
                "VALUES (%s, %s, %s, %s, %s)",
                [fid, s["person_name"], s["role"], s["organisation_id"], s["phone_masked"]],
            )


def _split_virtual(layer: Layer, values: dict) -> dict:
    virtual = {}
    for f in layer.fields:
        if _virtual(layer, f) and f.name in values:
            virtual[f.name] = values.pop(f.name)
    if "staff" in virtual:
        virtual["staff"] = check_staff(virtual["staff"])
    return virtual


def _road_edge_extras(conn, values: dict, geom) -> None:
    """Derive a road edge's nodes (snapped within 0.5 m, else new) and its metric length."""
    from shapely import wkb

    for end, col in ((geom.coords[0], "source"), (geom.coords[-1], "target")):
        row = conn.execute(
            "SELECT id FROM road_node WHERE ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)::geography, 0.5) "
            "ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1",
            [end[0], end[1], end[0], end[1]],
        ).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO road_node (geom) VALUES (ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
                [end[0], end[1]],
            ).fetchone()
        values[col] = row["id"]
    values["length_m"] = conn.execute(
        "SELECT ST_Length(ST_GeomFromWKB(%s, 4326)::geography) AS m", [wkb.dumps(geom)]
    ).fetchone()["m"]


def create_feature(conn: psycopg.Connection, layer: Layer, body: Any, user: dict, settings) -> dict:
    """Validate and insert one feature; return it as GeoJSON."""
    from shapely import wkb

    values, geom = _parse_body(layer, body, settings, partial=False)
    _check_chief(layer, user, values, None)
    _check_refs(conn, layer, values)
    virtual = _split_virtual(layer, values)
    if layer.name == "road_edges":
        _road_edge_extras(conn, values, geom)
    if layer.versioned:
        key_vals = [values[k] for k in layer.version_key]
        cond = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in layer.version_key)
        cur = conn.execute(
            sql.SQL("SELECT id FROM {} WHERE ").format(sql.Identifier(layer.table)) + cond
            + sql.SQL(" AND valid_to IS NULL"),
            key_vals,
        ).fetchone()
        if cur:
            raise Conflict(
                f"a version is already in force (id {cur['id']}); update it to make a new version",
                layer.version_key[0], key="err.feature.version_in_force"
            )
        prev = conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0) AS v FROM {} WHERE ").format(sql.Identifier(layer.table))
            + cond,
            key_vals,
        ).fetchone()["v"]
        values["version"] = prev + 1
        values["author"] = user["username"]
    cols = list(values)
    exprs: list[sql.Composable] = [sql.Placeholder() for _ in cols]
    params: list[Any] = [json.dumps(values[c]) if layer.field(c) and layer.field(c).type == "json"
                         else values[c] for c in cols]
    if geom is not ... and geom is not None:
        cols.append(layer.geom_col)
        exprs.append(_geom_sql(layer))
        params.append(wkb.dumps(geom))
    q = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
        sql.Identifier(layer.table),
        sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        sql.SQL(", ").join(exprs),
    )
    fid = conn.execute(q, params).fetchone()["id"]
    _side_tables(conn, layer, fid, virtual, values.get("centre_org_id"))
    audit(conn, user, "create", layer.name, fid, {"properties": _jsonable_dict(values)})
    return get_feature(conn, layer, fid)


def _jsonable_dict(d: dict) -> dict:
    return {k: _jsonable(v) for k, v in d.items()}


def _lock_row(conn, layer: Layer, fid: int) -> dict:
    row = conn.execute(
        sql.SQL("SELECT * FROM {} WHERE id = %s FOR UPDATE").format(sql.Identifier(layer.table)), [fid]
    ).fetchone()
    if row is None:
        raise NotFound(f"no {layer.name} feature with id {fid}", "id",
                       key="err.feature.not_found", params={"id": fid})
    return row


def update_feature(conn: psycopg.Connection, layer: Layer, fid: int, body: Any, user: dict, settings) -> dict:
    """Change one feature (partial update). A versioned layer gets a new version instead."""
    from shapely import wkb

    existing = _lock_row(conn, layer, fid)
    values, geom = _parse_body(layer, body, settings, partial=True)
    _check_chief(layer, user, values, existing)
    _check_refs(conn, layer, values)
    virtual = _split_virtual(layer, values)
    if layer.name == "road_edges" and geom is not ...:
        _road_edge_extras(conn, values, geom)
    if layer.versioned:
        if existing["valid_to"] is not None:
            raise Conflict(f"version {existing['version']} is no longer in force (or a later version is "
                           f"scheduled); update the current one or plan the change", "id",
                           key="err.feature.not_current")
        _refuse_scheduled(conn, existing)
        if "reason" not in values:
            raise ValidationError("is required: say why this version is made", "reason",
                                  key="err.feature.reason_required")
        for k in layer.version_key:
            if k in values and values[k] != existing[k]:
                raise ValidationError("cannot change on a new version; create a new feature instead", k,
                                      key="err.feature.fixed")
        now = conn.execute("SELECT now() AS t").fetchone()["t"]
        conn.execute(
            sql.SQL("UPDATE {} SET valid_to = %s WHERE id = %s").format(sql.Identifier(layer.table)), [now, fid]
        )
        new = {f.name: existing[f.name] for f in layer.fields
               if f.writable and not _virtual(layer, f) and f.name in existing}
        new.update(values)
        new["version"] = existing["version"] + 1
        new["author"] = user["username"]
        new["valid_from"] = now
        cols = list(new)
        params = [new[c] for c in cols]
        exprs: list[sql.Composable] = [sql.Placeholder() for _ in cols]
        cols.append(layer.geom_col)
        if geom is ...:
            exprs.append(sql.SQL("(SELECT {} FROM {} WHERE id = %s)").format(
                sql.Identifier(layer.geom_col), sql.Identifier(layer.table)))
            params.append(fid)
        elif geom is None:
            exprs.append(sql.SQL("NULL"))
        else:
            exprs.append(_geom_sql(layer))
            params.append(wkb.dumps(geom))
        new_id = conn.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
                sql.Identifier(layer.table),
                sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                sql.SQL(", ").join(exprs),
            ),
            params,
        ).fetchone()["id"]
        if layer.name == "joint_zones":
            if "member_ids" not in virtual:
                virtual["member_ids"] = [r["organisation_id"] for r in conn.execute(
                    "SELECT organisation_id FROM joint_zone_member WHERE joint_zone_id = %s", [fid])]
            _side_tables(conn, layer, new_id, virtual, new.get("centre_org_id"))
        audit(conn, user, "new_version", layer.name, new_id,
              {"previous_id": fid, "properties": _jsonable_dict(values)})
        return get_feature(conn, layer, new_id)
    sets: list[sql.Composable] = []
    params = []
    for c, v in values.items():
        sets.append(sql.SQL("{} = %s").format(sql.Identifier(c)))
        params.append(json.dumps(v) if layer.field(c).type == "json" else v)
    if geom is not ...:
        if geom is None:
            sets.append(sql.SQL("{} = NULL").format(sql.Identifier(layer.geom_col)))
        else:
            sets.append(sql.SQL("{} = ").format(sql.Identifier(layer.geom_col)) + _geom_sql(layer))
            params.append(wkb.dumps(geom))
    if sets:
        conn.execute(
            sql.SQL("UPDATE {} SET ").format(sql.Identifier(layer.table)) + sql.SQL(", ").join(sets)
            + sql.SQL(" WHERE id = %s"),
            params + [fid],
        )
    _side_tables(conn, layer, fid, virtual, values.get("centre_org_id", existing.get("centre_org_id")))
    audit(conn, user, "update", layer.name, fid, {"properties": _jsonable_dict(values),
                                                   "geometry_changed": geom is not ...})
    return get_feature(conn, layer, fid)


def _refuse_scheduled(conn: psycopg.Connection, existing: dict) -> None:
    """Refuse to change a version that a published plan scheduled for the future."""
    now = conn.execute("SELECT now() AS t").fetchone()["t"]
    if existing["valid_from"] > now:
        raise Conflict(f"this version takes effect at {existing['valid_from'].isoformat()}; "
                       "change it through the planning API (/api/v1/plans)", "id",
                       key="err.feature.scheduled")


def delete_feature(conn: psycopg.Connection, layer: Layer, fid: int, user: dict, reason: str | None) -> dict:
    """Delete one feature; a versioned layer's version is retired (valid_to set) instead."""
    existing = _lock_row(conn, layer, fid)
    if layer.not_deletable:
        raise Conflict(layer.not_deletable, "id", key="err.feature.not_deletable")
    _check_chief(layer, user, {}, existing)
    if layer.versioned:
        if existing["valid_to"] is not None:
            raise Conflict("this version is already retired (or a later version is scheduled)", "id",
                           key="err.feature.retired")
        _refuse_scheduled(conn, existing)
        if not reason:
            raise ValidationError("is required to retire a version (?reason=...)", "reason",
                                  key="err.feature.reason_required")
        conn.execute(
            sql.SQL("UPDATE {} SET valid_to = now() WHERE id = %s").format(sql.Identifier(layer.table)), [fid]
        )
        audit(conn, user, "retire", layer.name, fid, {"reason": reason})
        return {"id": fid, "retired": True}
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(layer.table)), [fid])
    except psycopg.errors.ForeignKeyViolation as e:
        raise Conflict(f"still referenced: {e.diag.message_detail or e}", "id",
                       key="err.feature.referenced") from None
    audit(conn, user, "delete", layer.name, fid, {"reason": reason})
    return {"id": fid, "deleted": True}
