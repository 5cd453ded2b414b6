"""Log-ins and server-side sessions: throttled password checks, sessions kept in PostgreSQL.

A session is a row of ``user_session`` whose id is the sha256 of a random token; the browser's
cookie carries only the token. A session ends on log-out, after ``session_idle_timeout_s``
without a request, after ``session_absolute_timeout_s``, when an admin ends it or when its
user is deactivated. Last-seen is written at most every ``session_touch_interval_s``.

A log-in is refused (429) while the account, or the client address, has failed
``login_max_failures`` (``login_max_failures_per_address``) times within
``login_failure_window_s``, even with the right password; every failure and lockout is audited.
The password is always checked against a hash (a dummy one for an unknown user), so an unknown
user answers in the same time as a known one.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from typing import Any

import psycopg
from psycopg import sql
from werkzeug.security import check_password_hash, generate_password_hash

from gisapp.core.accounts import USER_FIELDS
from gisapp.core.audit import audit
from gisapp.core.config import Settings
from gisapp.core.errors import GisappError, Unauthorized

_USER_COLS_U = sql.SQL(", ").join(sql.Identifier("u", f) for f in USER_FIELDS)
SESSION_FIELDS = ("id", "user_id", "created_at", "last_seen_at", "expires_at", "client_address", "user_agent",
                  "ended_at", "end_reason")


class TooManyAttempts(GisappError):
    status = 429


def session_id(token: str) -> str:
    """Return the stored id of a session token (sha256 hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def dummy_password_hash() -> str:
    """A hash made with the same method and cost as real password hashes (``method$salt$hash``), checked
    for an unknown user so that the answer takes as long as for a known one."""
    return generate_password_hash(secrets.token_hex(16))


# --- log-in --------------------------------------------------------------------------------------

def _failures(conn: psycopg.Connection, where: sql.Composable, value: str, window_s: int) -> tuple[int, float]:
    """Failures since the last success within the window, and seconds until the oldest leaves it."""
    row = conn.execute(sql.SQL(
        "SELECT count(*) AS n, extract(epoch FROM min(at) + make_interval(secs => %s) - now()) AS left_s "
        "FROM login_attempt WHERE {} = %s AND NOT success AND at > now() - make_interval(secs => %s) "
        "AND at > coalesce((SELECT max(at) FROM login_attempt WHERE {} = %s AND success), '-infinity')"
    ).format(where, where), [window_s, value, window_s, value]).fetchone()
    return row["n"], max(1.0, float(row["left_s"] or 1))


def login(conn: psycopg.Connection, settings: Settings, username: str, password: str,
          address: str | None, client: str, via: str) -> dict:
    """Check a log-in and return the user; raise 401 (wrong) or 429 (locked out).

    The attempt is recorded and audited in the caller's transaction, which must be committed
    also when this raises (the web layer does so)."""
    key = username.lower()
    # one attempt per account at a time, so parallel guesses cannot slip past the count
    conn.execute("SELECT pg_advisory_xact_lock(7161682, hashtext(%s))", [key])
    row = conn.execute(sql.SQL("SELECT {}, u.password_hash FROM app_user u WHERE u.username = %s").format(
        _USER_COLS_U), [username]).fetchone()
    ok = check_password_hash(row["password_hash"] if row else dummy_password_hash(), password)
    ok = ok and row is not None and row["active"]
    window = settings.login_failure_window_s
    n_user, left_user = _failures(conn, sql.SQL("lower(username)"), key, window)
    n_addr, left_addr = _failures(conn, sql.SQL("client_address"), address or "", window)
    locked_user = n_user >= settings.login_max_failures
    locked_addr = n_addr >= settings.login_max_failures_per_address
    success = ok and not locked_user and not locked_addr
    conn.execute("INSERT INTO login_attempt (username, client_address, success) VALUES (%s, %s, %s)",
                 [username, address or "", success])
    actor = {"username": username}
    if success:
        user = {k: row[k] for k in USER_FIELDS}
        audit(conn, user, "login", "app_user", user["id"], {"via": via}, client)
        return user
    entity_id = row["id"] if row else None
    audit(conn, actor, "login_failed", "app_user", entity_id, {"via": via, "locked": locked_user or locked_addr},
          client)
    if locked_user or locked_addr:
        # locked out: the same answer whether the password was right or wrong
        retry = int(max(left_user if locked_user else 0, left_addr if locked_addr else 0)) + 1
        raise TooManyAttempts(f"too many failed log-ins; try again in {retry} s", "username",
                              retry_after_s=retry, key="login.locked", params={"seconds": retry})
    if n_user + 1 >= settings.login_max_failures or n_addr + 1 >= settings.login_max_failures_per_address:
        # this failure locks the account or the address
        audit(conn, actor, "login_locked", "app_user", entity_id,
              {"via": via, "account": n_user + 1 >= settings.login_max_failures,
               "address": address if n_addr + 1 >= settings.login_max_failures_per_address else None,
               "window_s": window}, client)
    raise Unauthorized("wrong username or password", "password", key="login.failed")


# --- sessions ------------------------------------------------------------------------------------

def create_session(conn: psycopg.Connection, settings: Settings, user_id: int, address: str | None,
                   agent: str | None) -> str:
    """Start a session for ``user_id``; return its token (for the cookie; only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO user_session (id, user_id, expires_at, client_address, user_agent) "
        "VALUES (%s, %s, now() + make_interval(secs => %s), %s, %s)",
        [session_id(token), user_id, settings.session_absolute_timeout_s, address, (agent or "")[:300]])
    return token


def session_user(conn: psycopg.Connection, settings: Settings, token: str) -> dict | None:
    """Return the active user of the session ``token`` (ending it when it has timed out), else None."""
    sid = session_id(token)
    row = conn.execute(sql.SQL(
        "SELECT {}, s.ended_at, s.expires_at <= now() AS expired, "
        "s.last_seen_at <= now() - make_interval(secs => %s) AS idle, "
        "s.last_seen_at <= now() - make_interval(secs => %s) AS touch "
        "FROM user_session s JOIN app_user u ON u.id = s.user_id WHERE s.id = %s").format(_USER_COLS_U),
        [settings.session_idle_timeout_s, settings.session_touch_interval_s, sid]).fetchone()
    if row is None or row["ended_at"] is not None:
        return None
    if not row["active"]:
        end_session(conn, sid, "deactivated")
        return None
    if row["expired"] or row["idle"]:
        end_session(conn, sid, "expired" if row["expired"] else "idle")
        return None
    if row["touch"]:
        conn.execute("UPDATE user_session SET last_seen_at = now() WHERE id = %s", [sid])
    return {k: row[k] for k in USER_FIELDS}


def end_session(conn: psycopg.Connection, sid: str, reason: str) -> bool:
    """End one session (by id); return whether it was open."""
    cur = conn.execute("UPDATE user_session SET ended_at = now(), end_reason = %s WHERE id = %s "
                       "AND ended_at IS NULL", [reason, sid])
    return cur.rowcount > 0


def end_token_session(conn: psycopg.Connection, token: str, reason: str) -> bool:
    return end_session(conn, session_id(token), reason)


def end_user_sessions(conn: psycopg.Connection, user_id: int, reason: str, only: str | None = None) -> int:
    """End every open session of a user (or only the session ``only``); return how many."""
    q = "UPDATE user_session SET ended_at = now(), end_reason = %s WHERE user_id = %s AND ended_at IS NULL"
    args: list[Any] = [reason, user_id]
    if only:
        q += " AND id = %s"
        args.append(only)
    return conn.execute(q, args).rowcount


def list_sessions(conn: psycopg.Connection, user_id: int, limit: int = 100) -> list[dict]:
    """A user's sessions, newest first (open and ended)."""
    cols = sql.SQL(", ").join(sql.Identifier(f) for f in SESSION_FIELDS)
    return conn.execute(sql.SQL("SELECT {} FROM user_session WHERE user_id = %s ORDER BY created_at DESC, id "
                                "LIMIT %s").format(cols), [user_id, limit]).fetchall()


def csrf_token(secret: str, binding: str) -> str:
    """The CSRF token of a session (or of a pre-login nonce): an HMAC the server can recompute."""
    return hmac.new(secret.encode(), b"csrf:" + binding.encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret: str, binding: str, given: str) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(secret, binding), given)
