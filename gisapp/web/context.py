"""The request context, written once for every blueprint: settings, pool and transaction, the
calling user and role checks, the JSON body, query parameters and GeoJSON responses."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request

from gisapp.core import db
from gisapp.core.config import Settings
from gisapp.core.errors import Forbidden, PayloadTooLarge, Unauthorized, ValidationError
from gisapp.core.features import parse_id


def settings() -> Settings:
    """Return the current app's settings."""
    return current_app.extensions["gisapp.settings"]


def pool():
    """Return the process-wide connection pool, opened on first use."""
    s = settings()
    return db.get_pool(s.database_url, s.pool_min_size, s.pool_max_size, timeout_s=s.pool_timeout_s,
                       reconnect_timeout_s=s.pool_reconnect_timeout_s, connect_timeout_s=s.db_connect_timeout_s)


def db_tx():
    """One transaction on a pooled connection (commit on success, roll back on error)."""
    return db.transaction(pool())


def start_on_first_request(app: Flask, key: str, make: Callable[[], Any]) -> None:
    """Start the background thread ``make()`` (an object with ``start()``) on the app's first
    request, once per process, and keep it in ``app.extensions[key]``. Creating an app (CLI,
    tests) starts no thread; each gunicorn worker starts its own on its first request."""
    lock = threading.Lock()

    @app.before_request
    def _start_background() -> None:
        if key in app.extensions:
            return
        with lock:
            if key not in app.extensions:
                app.extensions[key] = make().start()


# --- who is calling -------------------------------------------------------------------------------

def current_user() -> dict | None:
    return getattr(g, "user", None)


def require_user() -> dict:
    """Return the logged-in user or raise 401."""
    user = current_user()
    if user is None:
        raise Unauthorized("log in or send a bearer token", "Authorization")
    return user


def require_role(*roles: str) -> dict:
    """Return the user if their role is one of ``roles`` (admin always is), else raise 401/403."""
    user = require_user()
    if user["role"] != "admin" and user["role"] not in roles:
        raise Forbidden(f"role {user['role']!r} may not do this; needs one of {', '.join(roles)}", "role")
    return user


def require_read() -> None:
    """Let a read through when the caller is logged in, or when ``anonymous_read`` allows it."""
    if current_user() is None and not settings().anonymous_read:
        raise Unauthorized("log in or send a bearer token", "Authorization")


def client_label() -> str:
    """A short description of the calling client for logs (address and user agent)."""
    ua = (request.user_agent.string or "")[:80]
    return f"{request.remote_addr} {ua}".strip()


# --- the body -------------------------------------------------------------------------------------

def json_body() -> Any:
    """Return the request's JSON body or raise a 400/413/415 naming the body."""
    limit = settings().max_body_mb * 1024 * 1024
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body larger than the limit of {settings().max_body_mb:g} MB", "body")
    ctype = request.mimetype or ""
    if ctype not in ("application/json", "application/geo+json"):
        raise ValidationError("send Content-Type: application/json", "Content-Type", status=415)
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationError(f"not valid JSON: {e}", "body") from None


def json_object() -> dict:
    """Return the JSON body, which must be an object."""
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", "body")
    return body


# --- query parameters -----------------------------------------------------------------------------

def only_params(*allowed: str) -> None:
    """Refuse any query parameter not in ``allowed``."""
    for key in request.args:
        if key not in allowed:
            raise ValidationError(f"unknown query parameter; use one of {', '.join(allowed)}", key)


def arg_float(name: str, raw: str | None = None, required: bool = True) -> float | None:
    """A finite number from the query (or ``raw``)."""
    raw = request.args.get(name) if raw is None else raw
    if raw is None or raw == "":
        if required:
            raise ValidationError("is required", name)
        return None
    try:
        v = float(raw)
    except ValueError:
        raise ValidationError(f"must be a number, got {raw!r:.40}", name) from None
    if not math.isfinite(v):
        raise ValidationError("must be a finite number", name)
    return v


def arg_int(name: str, default: int, lo: int, hi: int) -> int:
    """An integer from the query between ``lo`` and ``hi``, ``default`` when absent."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"-?[0-9]{1,9}", raw.strip()):
        raise ValidationError(f"must be an integer, got {raw!r:.40}", name)
    v = int(raw)
    if not lo <= v <= hi:
        raise ValidationError(f"must be between {lo} and {hi}", name)
    return v


def arg_id(name: str) -> int | None:
    """An optional id from the query."""
    raw = request.args.get(name)
    return parse_id(raw, name) if raw not in (None, "") else None


def arg_ids(name: str, most: int = 500) -> list[int] | None:
    """A comma-separated list of ids from the query, or None when absent."""
    raw = request.args.get(name)
    if raw is None:
        return None
    vals = [x.strip() for x in raw.split(",") if x.strip()]
    if not vals:
        raise ValidationError("must be a comma-separated list of ids", name)
    if len(vals) > most:
        raise ValidationError(f"at most {most} ids", name)
    return [parse_id(v, name) for v in vals]


def arg_choice(name: str, options: tuple[str, ...], default: str) -> str:
    """One of ``options`` from the query."""
    raw = request.args.get(name, default)
    if raw not in options:
        raise ValidationError(f"must be one of {', '.join(options)}", name)
    return raw


def arg_bool(name: str, default: bool) -> bool:
    """true/false (1/0, yes/no) from the query."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise ValidationError("must be true or false", name)


# --- responses ------------------------------------------------------------------------------------

def geojson(obj: Any, status: int = 200) -> Response:
    """A GeoJSON response (``application/geo+json``)."""
    resp = jsonify(obj)
    resp.status_code = status
    resp.mimetype = "application/geo+json"
    return resp
