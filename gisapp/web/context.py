"""The request context, written once for every blueprint: settings, pool and transaction, the
calling user and role checks, the JSON body, query parameters and GeoJSON responses."""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, jsonify, request, session

from gisapp.core import db
from gisapp.core.config import Settings
from gisapp.core.errors import Forbidden, GisappError, PayloadTooLarge, Text, Unauthorized, ValidationError
from gisapp.core.features import parse_id
from gisapp.core.sessions import create_session, csrf_matches, csrf_token, end_token_session, login


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
        raise Unauthorized("log in or send a bearer token", "Authorization", key="err.login_required")
    return user


def require_role(*roles: str) -> dict:
    """Return the user if their role is one of ``roles`` (admin always is), else raise 401/403."""
    user = require_user()
    if user["role"] != "admin" and user["role"] not in roles:
        raise Forbidden(f"role {user['role']!r} may not do this; needs one of {', '.join(roles)}", "role",
                        key="err.role_forbidden", params={"role": Text.code("role.", user["role"])})
    return user


def require_read(layer: str | None = None) -> None:
    """Let a read through when the caller is logged in, or when ``layer`` is one the deployment
    opened to everyone (``public_layers``); else raise 401."""
    if current_user() is None and (layer is None or layer not in settings().public_layers):
        raise Unauthorized("log in or send a bearer token", "Authorization", key="err.login_required")


# --- cross-site writes ----------------------------------------------------------------------------

_UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
_JSON_TYPES = ("application/json", "application/geo+json")


def page_csrf_token() -> str:
    """The CSRF token of this browser's session (or of a pre-login nonce kept in the cookie), for
    the pages' forms and scripts (``X-CSRF-Token``)."""
    binding = session.get("sid")
    if not binding:
        binding = session.get("nonce")
        if not binding:
            binding = session["nonce"] = secrets.token_urlsafe(16)
    return csrf_token(current_app.secret_key, binding)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_cross_site() -> None:
    """Refuse cross-site writes (before every request).

    An unsafe method that is not bearer-authenticated passes with the session's CSRF token
    (``X-CSRF-Token`` header or ``csrf_token`` form field), or with an ``Origin`` (else
    ``Referer``) that is the request's own host or in ``csrf_trusted_origins``; a request with
    neither header passes only when it carries no cookie (a script without a session). An API
    write with a body type other than JSON is refused (415), whatever its length.
    """
    if request.method not in _UNSAFE:
        return
    if request.path.startswith("/api/") and request.headers.get("Content-Type") \
            and (request.mimetype or "") not in _JSON_TYPES:
        raise ValidationError("send Content-Type: application/json", "Content-Type", status=415,
                              key="err.content_type")
    if getattr(g, "auth_kind", None) == "token":
        return
    binding = session.get("sid") or session.get("nonce")
    given = request.headers.get("X-CSRF-Token") or ""
    if not given and request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = request.form.get("csrf_token") or ""
    if binding and given and csrf_matches(current_app.secret_key, binding, given):
        return
    source = request.headers.get("Origin")
    if source is None and request.headers.get("Referer"):
        source = _origin_of(request.headers["Referer"]) or "null"
    if source is None:
        if not request.cookies and not given:
            return
        raise Forbidden("a write from the browser needs the page's X-CSRF-Token or an Origin header", "Origin",
                        key="err.csrf")
    allowed = {request.host_url.rstrip("/").lower()} | {o.rstrip("/").lower() for o in settings().csrf_trusted_origins}
    if source.lower() not in allowed:
        raise Forbidden("cross-site request refused: the Origin is not this site", "Origin",
                        key="err.cross_site")


def client_address() -> str | None:
    return request.remote_addr


# --- log-in sessions ------------------------------------------------------------------------------

def start_login_session(username: str, password: str, via: str) -> dict:
    """Check a log-in (throttled, audited) and start a server-side session; the cookie then carries
    only the session's token (and the language). Raises 401 or 429; the attempt is kept either way."""
    failure: Exception | None = None
    with db_tx() as conn:
        try:
            user = login(conn, settings(), username, password, client_address(), client_label(), via)
            token = create_session(conn, settings(), user["id"], client_address(), request.user_agent.string)
        except GisappError as e:  # commit the attempt and its audit, then answer
            failure = e
    if failure is not None:
        raise failure
    lang = session.get("lang")
    session.clear()
    session["sid"] = token
    if lang:
        session["lang"] = lang
    session.permanent = False
    g.user = user
    g.auth_kind = "session"
    return user


def end_login_session() -> None:
    """Log out: end the server-side session and clear the cookie (keeping the language)."""
    token = session.get("sid")
    if token:
        with db_tx() as conn:
            end_token_session(conn, token, "logout")
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def request_language() -> str:
    """The language of this request's user-facing texts (error messages included): ?lang=, the
    session's choice, the user's preference, the Accept-Language header, else the default."""
    from gisapp.core.i18n import LANGUAGES, normalise_language

    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    user = getattr(g, "user", None)
    if user and user.get("language") in LANGUAGES:
        return user["language"]
    header = request.headers.get("Accept-Language", "")
    if header:
        return normalise_language(header.split(",")[0], normalise_language(settings().default_language))
    return normalise_language(settings().default_language)


def client_label() -> str:
    """A short description of the calling client for logs (address and user agent)."""
    ua = (request.user_agent.string or "")[:80]
    return f"{request.remote_addr} {ua}".strip()


# --- the body -------------------------------------------------------------------------------------

def json_body() -> Any:
    """Return the request's JSON body or raise a 400/413/415 naming the body."""
    limit = settings().max_body_mb * 1024 * 1024
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body larger than the limit of {settings().max_body_mb:g} MB", "body",
                              key="err.body_too_large", params={"limit": f"{settings().max_body_mb:g}"})
    ctype = request.mimetype or ""
    if ctype not in _JSON_TYPES:
        raise ValidationError("send Content-Type: application/json", "Content-Type", status=415,
                              key="err.content_type")
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        body = json.loads(raw or b"null")
    except RecursionError:
        raise ValidationError(f"not valid JSON: nested deeper than {MAX_JSON_DEPTH} levels", "body",
                              key="err.json_depth", params={"depth": MAX_JSON_DEPTH}) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationError(f"not valid JSON: {e}", "body", key="err.json_invalid") from None
    check_json(body, check_text=_SURROGATE_ESCAPE.search(raw) is not None)
    return body


# Deeper JSON than this is refused (GeoJSON needs 6 levels, the deepest body here about 10):
# code that walks a body recursively never meets a RecursionError.
MAX_JSON_DEPTH = 64
# A JSON escape of a UTF-16 surrogate: only then can a decoded string hold a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _bad_text(s: str) -> bool:
    """True when ``s`` cannot be stored as UTF-8 text (a lone surrogate)."""
    if s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_json(body: Any, check_text: bool = True) -> None:
    """Refuse a decoded JSON value nested deeper than ``MAX_JSON_DEPTH`` or (``check_text``)
    holding a string that is not valid Unicode, naming the nearest property (else ``body``)."""
    stack: list[tuple[Any, int, str]] = [(body, 0, "body")]
    while stack:
        obj, depth, field = stack.pop()
        if type(obj) is dict:
            items = obj.items()
        elif type(obj) is list:
            items = ((field, v) for v in obj)
        else:
            if check_text and type(obj) is str and _bad_text(obj):
                raise ValidationError("holds a lone UTF-16 surrogate (not valid Unicode)", field,
                                      key="err.surrogate")
            continue
        if depth >= MAX_JSON_DEPTH:
            raise ValidationError(f"not valid JSON here: nested deeper than {MAX_JSON_DEPTH} levels", "body",
                                  key="err.json_depth", params={"depth": MAX_JSON_DEPTH})
        for k, v in items:
            if check_text and type(obj) is dict and _bad_text(k):
                raise ValidationError("a property name holds a lone UTF-16 surrogate (not valid Unicode)",
                                      k.encode("utf-8", "backslashreplace").decode("ascii"),
                                      key="err.surrogate")
            t = type(v)
            if t is float or t is int:
                continue
            if t is list:
                # A list of numbers (a GeoJSON position) needs no visit: most of a big body.
                if all(type(x) is float or type(x) is int for x in v):
                    continue
                stack.append((v, depth + 1, k))
            elif t is dict:
                stack.append((v, depth + 1, k))
            elif check_text and t is str and _bad_text(v):
                raise ValidationError("holds a lone UTF-16 surrogate (not valid Unicode)", k,
                                      key="err.surrogate")


def json_object() -> dict:
    """Return the JSON body, which must be an object."""
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", "body", key="err.not_object")
    return body


# --- query parameters -----------------------------------------------------------------------------

def only_params(*allowed: str) -> None:
    """Refuse any query parameter not in ``allowed``."""
    for key in request.args:
        if key not in allowed:
            raise ValidationError(f"unknown query parameter; use one of {', '.join(allowed)}", key,
                                  key="err.unknown_param", params={"options": list(allowed)})


_NUMBER = re.compile(r" *[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)? *")


def arg_float(name: str, raw: str | None = None, required: bool = True) -> float | None:
    """A finite number from the query (or ``raw``)."""
    raw = request.args.get(name) if raw is None else raw
    if raw is None or raw == "":
        if required:
            raise ValidationError("is required", name, key="err.required")
        return None
    try:
        if not _NUMBER.fullmatch(raw):
            raise ValueError(raw)
        v = float(raw)
    except ValueError:
        raise ValidationError(f"must be a number, got {raw!r:.40}", name, key="err.not_number") from None
    if not math.isfinite(v):
        raise ValidationError("must be a finite number", name, key="err.not_finite")
    return v


def arg_int(name: str, default: int, lo: int, hi: int) -> int:
    """An integer from the query between ``lo`` and ``hi``, ``default`` when absent."""
    raw = request.args.get(name)
    if raw is None:
        return default
    m = re.fullmatch(r" *(-?[0-9]{1,9}) *", raw)  # not str.strip(): it takes control characters too
    if m is None:
        raise ValidationError(f"must be an integer, got {raw!r:.40}", name, key="err.not_integer")
    v = int(m.group(1))
    if not lo <= v <= hi:
        raise ValidationError(f"must be between {lo} and {hi}", name,
                              key="err.range", params={"lo": lo, "hi": hi})
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
        raise ValidationError("must be a comma-separated list of ids", name, key="err.id_list")
    if len(vals) > most:
        raise ValidationError(f"at most {most} ids", name, key="err.id_list_max", params={"most": most})
    return [parse_id(v, name) for v in vals]


def arg_choice(name: str, options: tuple[str, ...], default: str) -> str:
    """One of ``options`` from the query."""
    raw = request.args.get(name, default)
    if raw not in options:
        raise ValidationError(f"must be one of {', '.join(options)}", name,
                              key="err.one_of", params={"options": list(options)})
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
    raise ValidationError("must be true or false", name, key="err.not_bool")


# --- responses ------------------------------------------------------------------------------------

def geojson(obj: Any, status: int = 200) -> Response:
    """A GeoJSON response (``application/geo+json``)."""
    resp = jsonify(obj)
    resp.status_code = status
    resp.mimetype = "application/geo+json"
    return resp
