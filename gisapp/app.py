"""Build the Flask application: settings, database pool, authentication, blueprints, errors."""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask, g, jsonify, request, session
from werkzeug.exceptions import HTTPException

from . import db
from .config import ROOT, Settings
from .errors import Forbidden, GisappError, Unauthorized

log = logging.getLogger("gisapp")


def _secret_key(settings: Settings) -> str:
    """Return the session key: a setting, else one generated once and kept in var/."""
    if settings.secret_key:
        return settings.secret_key
    path = ROOT / "var" / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
    except OSError:
        return secrets.token_hex(32)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the service. ``test_config`` overrides settings (see gisapp.config.Settings)."""
    settings = Settings.from_env(test_config)
    app = Flask(
        "gisapp",
        root_path=str(Path(__file__).parent),
        template_folder=str(ROOT / "web" / "templates"),
        static_folder=str(ROOT / "web" / "static"),
        static_url_path="/static",
    )
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        MAX_CONTENT_LENGTH=int(settings.max_body_mb * 1024 * 1024),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["gisapp.settings"] = settings

    @app.before_request
    def _load_user() -> None:
        g.user = None
        auth = request.headers.get("Authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("use 'Authorization: Bearer <token>'", "Authorization")
            from .auth import user_for_token

            with db_tx() as conn:
                user, why = user_for_token(conn, token.strip())
            if user is None:
                raise Unauthorized(why or "invalid token", "Authorization")
            g.user = user
            g.auth_kind = "token"
            return
        uid = session.get("user_id")
        if uid:
            with db_tx() as conn:
                row = conn.execute(
                    "SELECT id, username, display_name, role, station_id, language, unit_id, active "
                    "FROM app_user WHERE id = %s", [uid]
                ).fetchone()
            if row and row["active"]:
                g.user = row
                g.auth_kind = "session"
            else:
                session.clear()

    _register_errors(app)

    from .api import bp as api_bp
    from .health import bp as health_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(api_bp)
    for name in ("routing_api", "dispatch_api", "planning_api", "pages", "tiles"):
        _register_optional(app, name)
    if settings.maintenance_interval_s > 0:
        from .maintenance import Maintenance

        start_on_first_request(app, "gisapp.maintenance", lambda: Maintenance(
            settings.database_url, settings, settings.maintenance_interval_s, log=app.logger.info))
    return app


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


def _register_optional(app: Flask, module: str) -> None:
    """Register a blueprint module of the service when it exists (areas grow issue by issue)."""
    import importlib

    try:
        mod = importlib.import_module(f"gisapp.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"gisapp.{module}":
            return
        raise
    mod.init_app(app) if hasattr(mod, "init_app") else app.register_blueprint(mod.bp)


def settings() -> Settings:
    """Return the current app's settings."""
    from flask import current_app

    return current_app.extensions["gisapp.settings"]


def pool():
    """Return the process-wide connection pool, opened on first use."""
    s = settings()
    return db.get_pool(s.database_url, s.pool_min_size, s.pool_max_size)


def db_tx():
    """One transaction on a pooled connection (commit on success, roll back on error)."""
    return db.transaction(pool())


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


def client_label() -> str:
    """A short description of the calling client for logs (address and user agent)."""
    ua = (request.user_agent.string or "")[:80]
    return f"{request.remote_addr} {ua}".strip()


def _is_api() -> bool:
    return request.path.startswith(("/api/", "/healthz", "/tiles/"))


def _register_errors(app: Flask) -> None:
    @app.errorhandler(GisappError)
    def _gisapp_error(e: GisappError):
        return jsonify(e.to_dict()), e.status

    @app.errorhandler(psycopg.errors.IntegrityError)
    def _integrity(e: psycopg.errors.IntegrityError):
        import re

        detail = e.diag.message_detail or e.diag.message_primary or str(e)
        m = re.search(r"Key \(([^)]+)\)", detail)
        field = m.group(1) if m else e.diag.column_name
        if isinstance(e, psycopg.errors.UniqueViolation):
            return jsonify(error="Conflict", field=field, reason=f"already exists: {detail}"), 409
        if isinstance(e, psycopg.errors.ForeignKeyViolation):
            return jsonify(error="ValidationError", field=field, reason=detail), 422
        return jsonify(error="ValidationError", field=field or e.diag.constraint_name,
                       reason=e.diag.message_primary or str(e)), 422

    @app.errorhandler(psycopg.errors.DataError)
    def _data_error(e: psycopg.errors.DataError):
        return jsonify(error="ValidationError", field=e.diag.column_name,
                       reason=e.diag.message_primary or str(e)), 400

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        if not _is_api():
            return e
        field = "body" if e.code in (400, 413, 415) else None
        reason = e.description or e.name
        if e.code == 413:
            reason = f"request body larger than the limit of {settings().max_body_mb:g} MB"
        return jsonify(error=e.name, field=field, reason=reason), e.code


def json_body() -> Any:
    """Return the request's JSON body or raise a 400/413/415 naming the body."""
    from .errors import PayloadTooLarge, ValidationError

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
