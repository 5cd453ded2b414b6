"""Serve accounts under /api/v1: log-in and log-out, API tokens and users (the audit log: ``audit_page``)."""

from __future__ import annotations

from flask import Blueprint, jsonify, session
from psycopg import sql

from gisapp.core.accounts import ROLES, create_token, create_user, get_user, list_users, revoke_token, verify_password
from gisapp.core.audit import audit
from gisapp.core.errors import Forbidden, NotFound, Unauthorized, ValidationError
from gisapp.core.features import parse_id, parse_time

from .context import client_label, db_tx, json_body, json_object, require_role, require_user

bp = Blueprint("auth_api", __name__, url_prefix="/api/v1")


def init_app(app) -> None:
    app.register_blueprint(bp)


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
        audit(conn, user or {"username": username}, "login" if user else "login_failed",
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
    body = json_object()
    name = body.get("name")
    if not isinstance(name, str) or not name or len(name) > 100:
        raise ValidationError("is required (at most 100 characters)", "name")
    target = user["id"]
    if "user_id" in body:
        target = parse_id(body["user_id"], "user_id")
        if target != user["id"] and user["role"] != "admin":
            raise Forbidden("only an admin makes tokens for other users", "user_id")
    expires = parse_time(body["expires_at"], "expires_at") if body.get("expires_at") else None
    with db_tx() as conn:
        if not conn.execute("SELECT 1 FROM app_user WHERE id = %s", [target]).fetchone():
            raise NotFound(f"no user {target}", "user_id")
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
            raise ValidationError("is required (a string)", k)
    if body["role"] not in ROLES:
        raise ValidationError(f"must be one of {', '.join(ROLES)}", "role")
    station = parse_id(body["station_id"], "station_id") if body.get("station_id") is not None else None
    with db_tx() as conn:
        row = create_user(conn, body["username"], body["password"], body["role"], station,
                          str(body.get("display_name") or "")[:100], body.get("language", "zh"))
        audit(conn, admin, "create", "app_user", row["id"], {"role": row["role"]}, client_label())
    return jsonify(row), 201


@bp.patch("/users/<uid>")
def change_user(uid: str):
    admin = require_role("admin")
    uid_i = parse_id(uid)
    body = json_object()
    allowed = {"active": bool, "role": str, "display_name": str, "language": str}
    with db_tx() as conn:
        if get_user(conn, uid_i, lock=True) is None:
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
        audit(conn, admin, "update", "app_user", uid_i, body, client_label())
        row = get_user(conn, uid_i)
    return jsonify(row)
