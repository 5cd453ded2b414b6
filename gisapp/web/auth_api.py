"""Serve accounts under /api/v1: log-in and log-out, API tokens and users (the audit log: ``audit_page``)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from psycopg import sql

from gisapp.core import devices
from gisapp.core.accounts import ROLES, create_token, create_user, get_user, list_users, revoke_token
from gisapp.core.audit import audit
from gisapp.core.errors import Forbidden, NotFound, Text, ValidationError
from gisapp.core.features import parse_id, parse_time
from gisapp.core.sessions import end_user_sessions, list_sessions

from .context import (
    arg_int,
    client_label,
    db_tx,
    end_login_session,
    json_body,
    json_object,
    only_params,
    page_csrf_token,
    require_role,
    require_user,
    start_login_session,
)
from .openapi import ID_PARAM, document

bp = Blueprint("auth_api", __name__, url_prefix="/api/v1")


def init_app(app) -> None:
    app.register_blueprint(bp)


@bp.post("/auth/login")
def login():
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationError("must be an object with username and password", "body", key="err.login.body")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username:
        raise ValidationError("is required", "username", key="err.required")
    if not isinstance(password, str) or not password:
        raise ValidationError("is required", "password", key="err.required")
    user = start_login_session(username, password, via="api")
    return jsonify({**user, "csrf_token": page_csrf_token()})


@bp.post("/auth/logout")
def logout():
    end_login_session()
    return jsonify(ok=True)


@bp.get("/auth/me")
def me():
    return jsonify(require_user())


@bp.post("/auth/tokens")
def new_token():
    user = require_user()
    body = json_object()
    name = body.get("name")
    if not isinstance(name, str) or not name or len(name) > 100:
        raise ValidationError("is required (at most 100 characters)", "name",
                              key="err.too_long", params={"limit": 100})
    target = user["id"]
    if "user_id" in body:
        target = parse_id(body["user_id"], "user_id")
        if target != user["id"] and user["role"] != "admin":
            raise Forbidden("only an admin makes tokens for other users", "user_id",
                            key="err.token.admin_only")
    expires = parse_time(body["expires_at"], "expires_at") if body.get("expires_at") else None
    with db_tx() as conn:
        if not conn.execute("SELECT 1 FROM app_user WHERE id = %s", [target]).fetchone():
            raise NotFound(f"no user {target}", "user_id", key="err.user.not_found", params={"id": target})
        tok = create_token(conn, target, name, expires)
        audit(conn, user, "create_token", "api_token", tok["id"], {"user_id": target}, client_label())
    return jsonify(tok), 201


@bp.delete("/auth/tokens/<tid>")
def delete_token(tid: str):
    user = require_user()
    tid_i = parse_id(tid)
    with db_tx() as conn:
        revoke_token(conn, tid_i, user)
        audit(conn, user, "revoke_token", "api_token", tid_i, {}, client_label())
    return jsonify(id=tid_i, revoked=True)


@bp.get("/users")
def users():
    require_role("admin")
    with db_tx() as conn:
        return jsonify(list_users(conn))


@bp.post("/users")
def add_user():
    admin = require_role("admin")
    body = json_object()
    for k in ("username", "password", "role"):
        if not isinstance(body.get(k), str):
            raise ValidationError("is required (a string)", k, key="err.required")
    if body["role"] not in ROLES:
        raise ValidationError(f"must be one of {', '.join(ROLES)}", "role",
                              key="err.user.role", params={"options": Text.codes("role.", ROLES)})
    station = parse_id(body["station_id"], "station_id") if body.get("station_id") is not None else None
    with db_tx() as conn:
        row = create_user(conn, body["username"], body["password"], body["role"], station,
                          str(body.get("display_name") or "")[:100], body.get("language", "zh"),
                          unit_id=body.get("unit_id"), unit_ids=body.get("unit_ids"))
        audit(conn, admin, "create", "app_user", row["id"],
              {"role": row["role"], "unit_id": row["unit_id"], "unit_ids": row.get("unit_ids")}, client_label())
    return jsonify(row), 201


@bp.get("/users/<uid>/units")
def user_units(uid: str):
    """The units a gateway reports for."""
    require_role("admin")
    uid_i = parse_id(uid)
    with db_tx() as conn:
        if get_user(conn, uid_i) is None:
            raise NotFound(f"no user {uid_i}", "id", key="err.user.not_found", params={"id": uid_i})
        return jsonify(user_id=uid_i, unit_ids=devices.gateway_units(conn, uid_i))


@bp.put("/users/<uid>/units")
def set_user_units(uid: str):
    """Replace the list of units a gateway reports for: {"unit_ids": [...]}."""
    admin = require_role("admin")
    uid_i = parse_id(uid)
    body = json_object()
    if "unit_ids" not in body:
        raise ValidationError("is required (a list of unit ids)", "unit_ids", key="err.required")
    with db_tx() as conn:
        ids = devices.set_gateway_units(conn, uid_i, body["unit_ids"])
        audit(conn, admin, "set_units", "app_user", uid_i, {"unit_ids": ids}, client_label())
    return jsonify(user_id=uid_i, unit_ids=ids)


_units_doc = {"type": "object", "required": ["unit_ids"], "properties": {
    "unit_ids": {"type": "array", "items": {"type": "integer"}}}}
document("/api/v1/users/{id}/units", "get", "The units a gateway reports for (admin)", tag="auth",
         params=[ID_PARAM])
document("/api/v1/users/{id}/units", "put", "Replace the units a gateway reports for (admin)", tag="auth",
         params=[ID_PARAM], body=_units_doc)


@bp.patch("/users/<uid>")
def change_user(uid: str):
    admin = require_role("admin")
    uid_i = parse_id(uid)
    body = json_object()
    allowed = {"active": bool, "role": str, "display_name": str, "language": str, "unit_id": int}
    with db_tx() as conn:
        if get_user(conn, uid_i, lock=True) is None:
            raise NotFound(f"no user {uid_i}", "id", key="err.user.not_found", params={"id": uid_i})
        for k, v in body.items():
            if k not in allowed:
                raise ValidationError("cannot be changed here", k, key="err.read_only")
            if not isinstance(v, allowed[k]):
                raise ValidationError(f"must be {allowed[k].__name__}", k, key="err.user.field_type")
            if k == "role" and v not in ROLES:
                raise ValidationError(f"must be one of {', '.join(ROLES)}", k,
                                      key="err.user.role", params={"options": Text.codes("role.", ROLES)})
            if k == "language" and v not in ("zh", "en"):
                raise ValidationError("must be zh or en", k,
                                      key="err.one_of", params={"options": ["zh", "en"]})
        for k, v in body.items():
            conn.execute(sql.SQL("UPDATE app_user SET {} = %s WHERE id = %s").format(sql.Identifier(k)),
                         [v, uid_i])
        changed = get_user(conn, uid_i)  # a device stays bound to an existing unit
        if changed["role"] == "device":
            devices.check_device_unit(conn, "device", changed["unit_id"])
        elif "unit_id" in body:
            raise ValidationError("only a device account is bound to one unit", "unit_id", status=422,
                                  key="err.user.unit_device_only")
        if body.get("active") is False:
            body = {**body, "sessions_ended": end_user_sessions(conn, uid_i, "deactivated")}
        audit(conn, admin, "update", "app_user", uid_i, body, client_label())
        row = get_user(conn, uid_i)
    return jsonify(row)


@bp.get("/users/<uid>/sessions")
def user_sessions(uid: str):
    require_role("admin")
    only_params("limit")
    uid_i = parse_id(uid)
    limit = arg_int("limit", 100, 1, 1000)
    with db_tx() as conn:
        if get_user(conn, uid_i) is None:
            raise NotFound(f"no user {uid_i}", "id", key="err.user.not_found", params={"id": uid_i})
        return jsonify(list_sessions(conn, uid_i, limit))


@bp.delete("/users/<uid>/sessions")
def end_sessions(uid: str):
    admin = require_role("admin")
    only_params("session_id")
    uid_i = parse_id(uid)
    only = request.args.get("session_id") or None
    with db_tx() as conn:
        if get_user(conn, uid_i) is None:
            raise NotFound(f"no user {uid_i}", "id", key="err.user.not_found", params={"id": uid_i})
        n = end_user_sessions(conn, uid_i, "ended_by_admin", only)
        audit(conn, admin, "end_sessions", "app_user", uid_i, {"ended": n, "session_id": only}, client_label())
    return jsonify(user_id=uid_i, ended=n)
