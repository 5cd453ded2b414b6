"""Check passwords and API tokens, and decide which role may do what."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import psycopg
from psycopg import sql
from werkzeug.security import check_password_hash, generate_password_hash

from gisapp.core import devices
from gisapp.core.catalog import ORGANISATION_ROLES, ROLES
from gisapp.core.errors import Conflict, NotFound, Text, ValidationError

MIN_PASSWORD_LEN = 8
# The fields of a user that the service reads and returns (never the password hash).
USER_FIELDS = ("id", "username", "display_name", "role", "station_id", "language", "unit_id", "active")
_USER_COLS = sql.SQL(", ").join(sql.Identifier(f) for f in USER_FIELDS)
_USER_COLS_U = sql.SQL(", ").join(sql.Identifier("u", f) for f in USER_FIELDS)


def get_user(conn: psycopg.Connection, user_id: int, lock: bool = False) -> dict | None:
    """Return the user ``user_id`` (its USER_FIELDS), or None."""
    q = sql.SQL("SELECT {} FROM app_user WHERE id = %s").format(_USER_COLS)
    return conn.execute(q + sql.SQL(" FOR UPDATE") if lock else q, [user_id]).fetchone()


def list_users(conn: psycopg.Connection) -> list[dict]:
    """Every user (USER_FIELDS and created_at), by id."""
    return conn.execute(sql.SQL("SELECT {}, created_at FROM app_user ORDER BY id").format(_USER_COLS)).fetchall()


def hash_token(token: str) -> str:
    """Return the stored form of an API token (sha256 hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(conn: psycopg.Connection, username: str, password: str, role: str,
                station_id: int | None = None, display_name: str = "", language: str = "zh",
                unit_id: int | None = None, unit_ids: list[int] | None = None) -> dict:
    """Create a user with a hashed password; return it without the hash.

    A ``device`` names its unit (``unit_id``, 422 otherwise); a ``gateway`` may be given the
    list of units it reports for (``unit_ids``; gisapp.core.devices)."""
    if role not in ROLES:
        raise ValidationError(f"must be one of {', '.join(ROLES)}", "role",
                              key="err.user.role", params={"options": Text.codes("role.", ROLES)})
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LEN:
        raise ValidationError(f"must have at least {MIN_PASSWORD_LEN} characters", "password",
                              key="err.user.password_short", params={"n": MIN_PASSWORD_LEN})
    if role in ORGANISATION_ROLES and station_id is None:
        raise ValidationError(f"a {role} is bound to one organisation: give station_id", "station_id",
                              key="err.role_needs_organisation", params={"role": role})
    if station_id is not None:
        row = conn.execute("SELECT kind FROM organisation WHERE id = %s", [station_id]).fetchone()
        if row is None:
            raise ValidationError(f"no organisation with id {station_id}", "station_id", status=422,
                                  key="err.organisation.not_found", params={"id": station_id})
    unit_id = devices.check_device_unit(conn, role, unit_id)
    if unit_ids is not None and role != "gateway":
        raise ValidationError("only a gateway reports for a list of units", "unit_ids", status=422,
                              key="err.user.unit_ids_gateway")
    gw_units = devices.check_unit_list(conn, unit_ids) if unit_ids is not None else []
    try:
        with conn.transaction():
            row = conn.execute(sql.SQL(
                "INSERT INTO app_user (username, display_name, password_hash, role, station_id, language, unit_id) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {}").format(_USER_COLS),
                [username, display_name, generate_password_hash(password), role, station_id, language, unit_id],
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"user {username!r} exists", "username",
                       key="err.user.exists", params={"name": username}) from None
    except psycopg.errors.CheckViolation:
        raise ValidationError("2 to 64 letters, digits, '_', '.' or '-'", "username",
                              key="err.user.name_format") from None
    if role == "gateway":
        row["unit_ids"] = devices.set_gateway_units(conn, row["id"], gw_units)
    return row


def set_password(conn: psycopg.Connection, username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise ValidationError(f"must have at least {MIN_PASSWORD_LEN} characters", "password",
                              key="err.user.password_short", params={"n": MIN_PASSWORD_LEN})
    cur = conn.execute("UPDATE app_user SET password_hash = %s WHERE username = %s",
                       [generate_password_hash(password), username])
    if cur.rowcount == 0:
        raise NotFound(f"no user {username!r}", "username",
                       key="err.user.not_found", params={"id": username})


def verify_password(conn: psycopg.Connection, username: str, password: str) -> dict | None:
    """Return the active user whose password matches, else None."""
    row = conn.execute(sql.SQL("SELECT {}, password_hash FROM app_user WHERE username = %s").format(_USER_COLS),
                       [username]).fetchone()
    if row is None or not row["active"] or not check_password_hash(row["password_hash"], password):
        return None
    row.pop("password_hash")
    return row


def create_token(conn: psycopg.Connection, user_id: int, name: str, expires_at=None) -> dict[str, Any]:
    """Create an API token; the token text is returned once and only its hash is stored."""
    token = "gz_" + secrets.token_urlsafe(32)
    row = conn.execute(
        "INSERT INTO api_token (user_id, name, token_hash, expires_at) VALUES (%s, %s, %s, %s) "
        "RETURNING id, name, created_at, expires_at",
        [user_id, name, hash_token(token), expires_at],
    ).fetchone()
    return {**row, "token": token}


def user_for_token(conn: psycopg.Connection, token: str, touch_interval_s: float = 60) -> tuple[dict | None, str | None]:
    """Return (user, None) for a valid token, or (None, reason). Its last use is written at most every
    ``touch_interval_s`` (not a write on every request of a busy client)."""
    row = conn.execute(sql.SQL(
        "SELECT t.id AS token_id, t.revoked_at, t.expires_at, t.expires_at < now() AS expired, "
        "t.last_used_at IS NULL OR t.last_used_at < now() - make_interval(secs => %s) AS stale, {} "
        "FROM api_token t JOIN app_user u ON u.id = t.user_id WHERE t.token_hash = %s").format(_USER_COLS_U),
        [touch_interval_s, hash_token(token)],
    ).fetchone()
    if row is None:
        return None, "unknown token"
    if row["revoked_at"] is not None:
        return None, "token revoked"
    if row["expired"]:
        return None, "token expired"
    if not row["active"]:
        return None, "user deactivated"
    if row["stale"]:
        conn.execute("UPDATE api_token SET last_used_at = now() WHERE id = %s", [row["token_id"]])
    return {k: row[k] for k in USER_FIELDS}, None


def revoke_token(conn: psycopg.Connection, token_id: int, user: dict) -> None:
    row = conn.execute("SELECT user_id FROM api_token WHERE id = %s", [token_id]).fetchone()
    if row is None:
        raise NotFound(f"no token {token_id}", "id", key="err.token.not_found", params={"id": token_id})
    if user["role"] != "admin" and row["user_id"] != user["id"]:
        raise NotFound(f"no token {token_id}", "id", key="err.token.not_found", params={"id": token_id})
    conn.execute("UPDATE api_token SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", [token_id])
