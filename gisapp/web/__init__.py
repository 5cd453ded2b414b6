"""The web layer: the Flask app factory, which registers every area's blueprint explicitly.

One module per area (``health``, ``layers_api``, ``routing_api``, ``dispatch_api``,
``planning_api``, ``pages``, ``tiles``), each with ``init_app(app)``; the request context they
share (settings, pool, transaction, auth, body and parameter parsing) is ``context``.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask, g, jsonify, request, session
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.exceptions import ServiceUnavailable as ServiceUnavailablePage

from gisapp.core import callerkey, db
from gisapp.core.accounts import user_for_token
from gisapp.core.catalog import PUBLIC_LAYER_CHOICES
from gisapp.core.config import ROOT, Settings
from gisapp.core.errors import GisappError, Unauthorized
from gisapp.core.i18n import t
from gisapp.core.sessions import TooManyAttempts, session_user
from gisapp.maintenance import Maintenance

from . import (
    auth_api,
    chief_maps_api,
    desk_api,
    dispatch_api,
    health,
    layers_api,
    pages,
    participation_api,
    planning_api,
    replay_api,
    reports_api,
    routing_api,
    security,
    tiles,
)
from .context import check_cross_site, db_tx, request_language, settings, start_on_first_request

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
    wrong = [x for x in settings.public_layers if x not in PUBLIC_LAYER_CHOICES]
    if wrong:
        raise ValueError(f"public_layers: {', '.join(wrong)} may not be public; "
                         f"choose from {', '.join(PUBLIC_LAYER_CHOICES)}")
    if callerkey.current_key(settings) is None:  # a malformed key stops the service here (CallerKeyError)
        log.warning("no caller key (caller_key / caller_key_file): intake keeps only masked caller numbers and "
                    "call-back answers 503; run `gisapp caller-key init`")
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
        SESSION_COOKIE_SECURE=bool(settings.session_cookie_secure),
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["gisapp.settings"] = settings

    @app.before_request
    def _load_user() -> None:
        g.user = None
        if request.path.startswith(app.static_url_path + "/"):
            return  # scripts, styles and fonts are the same for everyone: no session lookup per asset
        auth = request.headers.get("Authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("use 'Authorization: Bearer <token>'", "Authorization")
            with db_tx() as conn:
                user, why = user_for_token(conn, token.strip(), settings.session_touch_interval_s)
            if user is None:
                raise Unauthorized(why or "invalid token", "Authorization")
            g.user = user
            g.auth_kind = "token"
            return
        token = session.get("sid")
        if token:
            with db_tx() as conn:
                user = session_user(conn, settings, token)
            if user is not None:
                g.user = user
                g.auth_kind = "session"
            else:
                session.clear()

    # Cross-site writes and non-JSON bodies are refused before any route runs.
    app.before_request(check_cross_site)

    _register_errors(app)
    security.init_app(app)
    for module in (health, auth_api, layers_api, routing_api, dispatch_api, desk_api, planning_api,
                   participation_api, reports_api, chief_maps_api, replay_api, pages, tiles):
        module.init_app(app)
    if max(settings.maintenance_interval_s, settings.sla_sweep_interval_s) > 0:
        start_on_first_request(app, "gisapp.maintenance", lambda: Maintenance(
            settings.database_url, settings, log=app.logger.info))
    return app


def _is_api() -> bool:
    return request.path.startswith(("/api/", "/healthz", "/tiles/", "/map/data/"))


def _register_errors(app: Flask) -> None:
    @app.errorhandler(GisappError)
    def _gisapp_error(e: GisappError):
        resp = jsonify(e.to_dict(request_language()))
        resp.status_code = e.status
        if isinstance(e, TooManyAttempts):
            resp.headers["Retry-After"] = str(e.extra.get("retry_after_s", 60))
        if not _is_api() and e.status in (403, 429):
            from flask import render_template

            from gisapp.core.i18n import t
            lang = getattr(g, "lang", "zh")
            title = t("error.too_many_logins" if e.status == 429 else
                      "error.cross_site" if e.field == "Origin" else "error.forbidden", lang)
            html = render_template("error.html", title=title, detail=e.reason)
            return html, e.status, {k: v for k, v in resp.headers.items() if k == "Retry-After"}
        return resp

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

    @app.errorhandler(psycopg.OperationalError)  # PoolTimeout is one too
    def _database_away(e: psycopg.OperationalError):
        if not db.is_unavailable(e):
            app.logger.error("database error on %s %s", request.method, request.path, exc_info=e)
            return _http(InternalServerError(original_exception=e))
        retry = max(1, int(settings().db_retry_after_s))
        app.logger.warning("database unavailable on %s %s: %s", request.method, request.path,
                           str(e).splitlines()[0] if str(e) else type(e).__name__)
        if not _is_api():
            return ServiceUnavailablePage(retry_after=retry)
        resp = jsonify(error="ServiceUnavailable", field="database",
                       reason=f"the database is not reachable at the moment; retry in {retry} s",
                       message=t("err.status.503", request_language()))
        resp.status_code = 503
        resp.headers["Retry-After"] = str(retry)
        return resp

    @app.after_request
    def _retry_after(resp):
        # Every 503 (the health check, a stream whose listener is not connected) says when to retry.
        if resp.status_code == 503 and "Retry-After" not in resp.headers:
            resp.headers["Retry-After"] = str(max(1, int(settings().db_retry_after_s)))
        return resp

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        if not _is_api():
            return e
        field = "body" if e.code in (400, 413, 415) else None
        reason = e.description or e.name
        if e.code == 413:
            reason = f"request body larger than the limit of {settings().max_body_mb:g} MB"
        return jsonify(error=e.name, field=field, reason=reason,
                       message=GisappError(reason, field, status=e.code).message(request_language())), e.code


