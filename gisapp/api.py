"""Serve every layer under /api/v1 (GeoJSON list, get, create, update, delete) and accounts."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, session
from psycopg import sql

from . import features
from .app import client_label, current_user, db_tx, json_body, require_role, require_user, settings
from .auth import create_token, create_user, revoke_token, verify_password
from .catalog import LAYERS, ROLES, Layer
from .errors import Forbidden, NotFound, Unauthorized, ValidationError

bp = Blueprint("api", __name__, url_prefix="/api/v1")

_LIST_PARAMS = {"bbox", "limit", "offset", "at", "history"}


def geojson(obj, status: int = 200) -> Response:
    resp = jsonify(obj)
    resp.status_code = status
    resp.mimetype = "application/geo+json"
    return resp


def _read_allowed() -> None:
    if current_user() is None and not settings().anonymous_read:
        raise Unauthorized("log in or send a bearer token", "Authorization")


def _int_param(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        val = int(raw)
    except ValueError:
        raise ValidationError(f"must be an integer, got {raw!r:.40}", name) from None
    if not lo <= val <= hi:
        raise ValidationError(f"must be between {lo} and {hi}", name)
    return val


def list_layer(layer_name: str):
    layer: Layer = LAYERS[layer_name]
    _read_allowed()
    s = settings()
    filters = {}
    for key, raw in request.args.items():
        if key in _LIST_PARAMS:
            continue
        f = layer.field(key)
        if f is None or not f.filter or f.type in ("json", "text[]", "int[]"):
            allowed = sorted(_LIST_PARAMS | {x.name for x in layer.fields if x.filter
                                             and x.type not in ("json", "text[]", "int[]")})
            raise ValidationError(f"unknown query parameter; use one of {', '.join(allowed)}", key)
        filters[key] = features.coerce(f, raw, from_query=True)
    bbox = features.parse_bbox(request.args["bbox"]) if "bbox" in request.args else None
    at = features.parse_time(request.args["at"], "at") if "at" in request.args else None
    history = request.args.get("history", "false").lower() in ("1", "true")
    with db_tx() as conn:
        fc = features.list_features(
            conn, layer, bbox=bbox, filters=filters,
            limit=_int_param("limit", s.default_page_limit, 1, s.max_page_limit),
            offset=_int_param("offset", 0, 0, 10**9), at=at, history=history,
        )
    return geojson(fc)


def get_one(layer_name: str, fid: str):
    _read_allowed()
    fid_i = features.parse_id(fid)
    with db_tx() as conn:
        return geojson(features.get_feature(conn, LAYERS[layer_name], fid_i))


def _writer(layer: Layer) -> dict:
    user = require_role(*layer.write_roles)
    return user


def create(layer_name: str):
    layer = LAYERS[layer_name]
    user = _writer(layer)
    body = json_body()
    with db_tx() as conn:
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
        return geojson(features.update_feature(conn, layer, fid_i, body, user, settings()))


def delete(layer_name: str, fid: str):
    layer = LAYERS[layer_name]
    fid_i = features.parse_id(fid)
    user = _writer(layer)
    reason = request.args.get("reason")
    with db_tx() as conn:
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
    return jsonify([
        {"name": lyr.name, "title_zh": lyr.title_zh, "title_en": lyr.title_en, "geometry_type": lyr.geom_type,
         "versioned": lyr.versioned, "write_roles": sorted(lyr.write_roles),
         "href": f"/api/v1/{lyr.name}"}
        for lyr in LAYERS.values()
    ])


# --- accounts -------------------------------------------------------------------------------

@bp.post("/auth/login")
def login():
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationError("must be an object with username and password", "body")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username:
        raise ValidationError("is required", "username")
    if not isinstance(password, str) or not password:
        raise ValidationError("is required", "password")
    with db_tx() as conn:
        user = verify_password(conn, username, password)
        features.audit(conn, user or {"username": username}, "login" if user else "login_failed",
                       "app_user", user["id"] if user else None, {}, client_label())
    if user is None:
        raise Unauthorized("wrong username or password", "password")
    session.clear()
    session["user_id"] = user["id"]
    session.permanent = False
    return jsonify(user)


@bp.post("/auth/logout")
def logout():
    session.clear()
    return jsonify(ok=True)


@bp.get("/auth/me")
def me():
    return jsonify(require_user())


@bp.post("/auth/tokens")
def new_token():
    user = require_user()
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationError("must be an object", "body")
    name = body.get("name")
    if not isinstance(name, str) or not name or len(name) > 100:
        raise ValidationError("is required (at most 100 characters)", "name")
    target = user["id"]
    if "user_id" in body:
        target = features.parse_id(body["user_id"], "user_id")
        if target != user["id"] and user["role"] != "admin":
            raise Forbidden("only an admin makes tokens for other users", "user_id")
    expires = features.parse_time(body["expires_at"], "expires_at") if body.get("expires_at") else None
    with db_tx() as conn:
        if not conn.execute("SELECT 1 FROM app_user WHERE id = %s", [target]).fetchone():
            raise NotFound(f"no user {target}", "user_id")
        tok = create_token(conn, target, name, expires)
        features.audit(conn, user, "create_token", "api_token", tok["id"], {"user_id": target}, client_label())
    return jsonify(tok), 201


@bp.delete("/auth/tokens/<tid>")
def delete_token(tid: str):
    user = require_user()
    tid_i = features.parse_id(tid)
    with db_tx() as conn:
        revoke_token(conn, tid_i, user)
        features.audit(conn, user, "revoke_token", "api_token", tid_i, {}, client_label())
    return jsonify(id=tid_i, revoked=True)


@bp.get("/users")
def users():
    require_role("admin")
    with db_tx() as conn:
        rows = conn.execute(
            "SELECT id, username, display_name, role, station_id, language, unit_id, active, created_at "
            "FROM app_user ORDER BY id").fetchall()
    return jsonify(rows)


@bp.post("/users")
def add_user():
    admin = require_role("admin")
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationError("must be an object", "body")
    for k in ("username", "password", "role"):
        if not isinstance(body.get(k), str):
            raise ValidationError("is required (a string)", k)
    if body["role"] not in ROLES:
        raise ValidationError(f"must be one of {', '.join(ROLES)}", "role")
    station = features.parse_id(body["station_id"], "station_id") if body.get("station_id") is not None else None
    with db_tx() as conn:
        row = create_user(conn, body["username"], body["password"], body["role"], station,
                          str(body.get("display_name") or "")[:100], body.get("language", "zh"))
        features.audit(conn, admin, "create", "app_user", row["id"], {"role": row["role"]}, client_label())
    return jsonify(row), 201


@bp.patch("/users/<uid>")
def change_user(uid: str):
    admin = require_role("admin")
    uid_i = features.parse_id(uid)
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationError("must be an object", "body")
    allowed = {"active": bool, "role": str, "display_name": str, "language": str}
    with db_tx() as conn:
        if not conn.execute("SELECT 1 FROM app_user WHERE id = %s FOR UPDATE", [uid_i]).fetchone():
            raise NotFound(f"no user {uid_i}", "id")
        for k, v in body.items():
            if k not in allowed:
                raise ValidationError("cannot be changed here", k)
            if not isinstance(v, allowed[k]):
                raise ValidationError(f"must be {allowed[k].__name__}", k)
            if k == "role" and v not in ROLES:
                raise ValidationError(f"must be one of {', '.join(ROLES)}", k)
            if k == "language" and v not in ("zh", "en"):
                raise ValidationError("must be zh or en", k)
        for k, v in body.items():
            conn.execute(sql.SQL("UPDATE app_user SET {} = %s WHERE id = %s").format(sql.Identifier(k)),
                         [v, uid_i])
        features.audit(conn, admin, "update", "app_user", uid_i, body, client_label())
        row = conn.execute("SELECT id, username, display_name, role, station_id, language, active "
                           "FROM app_user WHERE id = %s", [uid_i]).fetchone()
    return jsonify(row)


@bp.get("/audit")
def audit_log():
    require_role("admin")
    limit = _int_param("limit", 100, 1, 10000)
    entity = request.args.get("entity")
    with db_tx() as conn:
        if entity:
            rows = conn.execute("SELECT * FROM audit_log WHERE entity = %s ORDER BY id DESC LIMIT %s",
                                [entity, limit]).fetchall()
        else:
            rows = conn.execute("SELECT * FROM audit_log ORDER BY id DESC LIMIT %s", [limit]).fetchall()
    return jsonify(rows)


@bp.get("/metadata")
def metadata():
    """Provenance of every layer: what is real, what is synthetic."""
    _read_allowed()
    with db_tx() as conn:
        return jsonify(conn.execute("SELECT * FROM dataset_meta ORDER BY layer").fetchall())


@bp.get("/openapi.json")
def openapi():
    from .openapi import build_spec

    return jsonify(build_spec())


