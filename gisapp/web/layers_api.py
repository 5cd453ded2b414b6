"""Serve every layer under /api/v1 (GeoJSON list, get, create, update, delete), its metadata and the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from gisapp.core import features, scope
from gisapp.core.audit import audit
from gisapp.core.catalog import LAYERS, Layer
from gisapp.core.errors import ValidationError
from gisapp.planning.boundaries import BOUNDARY_LAYERS, write_boundary
from gisapp.web.openapi import build_spec

from .context import (
    arg_int,
    current_user,
    db_tx,
    geojson,
    json_body,
    require_read,
    require_role,
    settings,
)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def init_app(app) -> None:
    app.register_blueprint(bp)

_LIST_PARAMS = {"bbox", "limit", "offset", "at", "history"}


def list_layer(layer_name: str):
    layer: Layer = LAYERS[layer_name]
    require_read(layer_name)
    s = settings()
    filters = {}
    for key, raw in request.args.items():
        if key in _LIST_PARAMS:
            continue
        f = layer.field(key)
        if f is None or not f.filter or f.type in ("json", "text[]", "int[]"):
            allowed = sorted(_LIST_PARAMS | {x.name for x in layer.fields if x.filter
                                             and x.type not in ("json", "text[]", "int[]")})
            raise ValidationError(f"unknown query parameter; use one of {', '.join(allowed)}", key,
                                  key="err.unknown_param", params={"options": list(allowed)})
        filters[key] = features.coerce(f, raw, from_query=True)
    if layer.org_scope == "organisation_id" and "organisation_id" in filters:
        scope.require_organisation(current_user(), filters["organisation_id"])
    for key in ("station_org_id", "traffic_org_id"):
        if layer.org_scope == "incident" and key in filters:
            scope.require_organisation(current_user(), filters[key], key)
    bbox = features.parse_bbox(request.args["bbox"]) if "bbox" in request.args else None
    at = features.parse_time(request.args["at"], "at") if "at" in request.args else None
    history = request.args.get("history", "false").lower() in ("1", "true")
    with db_tx() as conn:
        fc = features.list_features(
            conn, layer, bbox=bbox, filters=filters,
            limit=arg_int("limit", s.default_page_limit, 1, s.max_page_limit),
            offset=arg_int("offset", 0, 0, 10**9), at=at, history=history,
            orgs=scope.visible_organisations(current_user()),
        )
        _audit_personal(conn, layer, fc["features"])
    return geojson(fc)


def _audit_personal(conn, layer: Layer, feats: list[dict]) -> None:
    """Log a read that shows personal data (grid staff names and phones) in the audit log."""
    if layer.name != "grids":
        return
    shown = [f for f in feats if (f.get("properties") or {}).get("staff")]
    if shown:
        audit(conn, current_user() or {"username": "anonymous"}, "view_personal", "grid_staff",
              shown[0]["id"] if len(shown) == 1 else None,
              {"grid_ids": [f["id"] for f in shown], "people": sum(len(f["properties"]["staff"]) for f in shown),
               "request": request.full_path.rstrip("?")[:300]})


def get_one(layer_name: str, fid: str):
    require_read(layer_name)
    fid_i = features.parse_id(fid)
    with db_tx() as conn:
        feat = features.get_feature(conn, LAYERS[layer_name], fid_i, scope.visible_organisations(current_user()))
        _audit_personal(conn, LAYERS[layer_name], [feat])
        return geojson(feat)


def _writer(layer: Layer) -> dict:
    user = require_role(*layer.write_roles)
    return user


def create(layer_name: str):
    layer = LAYERS[layer_name]
    user = _writer(layer)
    body = json_body()
    with db_tx() as conn:
        if layer_name in BOUNDARY_LAYERS:  # checked as a plan is (gisapp.planning.boundaries)
            feat = write_boundary(conn, layer, "create", user, settings(), body=body)
        else:
            feat = features.create_feature(conn, layer, body, user, settings())
    resp = geojson(feat, 201)
    resp.headers["Location"] = f"{request.path}/{feat['id']}"
    return resp


def update(layer_name: str, fid: str):
    layer = LAYERS[layer_name]
    fid_i = features.parse_id(fid)
    user = _writer(layer)
    body = json_body()
    with db_tx() as conn:
        if layer_name in BOUNDARY_LAYERS:
            return geojson(write_boundary(conn, layer, "update", user, settings(), fid=fid_i, body=body))
        return geojson(features.update_feature(conn, layer, fid_i, body, user, settings()))


def delete(layer_name: str, fid: str):
    layer = LAYERS[layer_name]
    fid_i = features.parse_id(fid)
    user = _writer(layer)
    reason = request.args.get("reason")
    with db_tx() as conn:
        if layer_name in BOUNDARY_LAYERS:
            return jsonify(write_boundary(conn, layer, "delete", user, settings(), fid=fid_i, reason=reason))
        return jsonify(features.delete_feature(conn, layer, fid_i, user, reason))


for _name in LAYERS:
    bp.add_url_rule(f"/{_name}", f"{_name}_list", list_layer, methods=["GET"], defaults={"layer_name": _name})
    bp.add_url_rule(f"/{_name}", f"{_name}_create", create, methods=["POST"], defaults={"layer_name": _name})
    bp.add_url_rule(f"/{_name}/<fid>", f"{_name}_get", get_one, methods=["GET"], defaults={"layer_name": _name})
    bp.add_url_rule(f"/{_name}/<fid>", f"{_name}_update", update, methods=["PATCH", "PUT"],
                    defaults={"layer_name": _name})
    bp.add_url_rule(f"/{_name}/<fid>", f"{_name}_delete", delete, methods=["DELETE"],
                    defaults={"layer_name": _name})


@bp.get("/layers")
def layers():
    """The layer catalogue with titles in both languages."""
    require_read()
    return jsonify([
        {"name": lyr.name, "title_zh": lyr.title_zh, "title_en": lyr.title_en, "geometry_type": lyr.geom_type,
         "versioned": lyr.versioned, "write_roles": sorted(lyr.write_roles),
         "href": f"/api/v1/{lyr.name}"}
        for lyr in LAYERS.values()
    ])


@bp.get("/metadata")
def metadata():
    """Provenance of every layer: what is real, what is synthetic."""
    require_read()
    with db_tx() as conn:
        return jsonify(conn.execute("SELECT * FROM dataset_meta ORDER BY layer").fetchall())


@bp.get("/openapi.json")
def openapi():
    return jsonify(build_spec())


