"""Open the connection pool, run queries, and apply the numbered SQL migrations."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 7_161_681  # pg advisory lock key for `db upgrade`

_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


def get_pool(url: str, min_size: int = 1, max_size: int = 20, timeout_s: float = 30.0,
             reconnect_timeout_s: float = 300.0, connect_timeout_s: int | None = None) -> ConnectionPool:
    """Return the process-wide pool for ``url``, creating it lazily.

    Every connection is checked before it is handed out (a connection left broken by a database
    restart is replaced, not given to a request); a request waits at most ``timeout_s`` for one
    and then gets :class:`psycopg_pool.PoolTimeout` (the web layer answers 503). A failed
    reconnection is given up after ``reconnect_timeout_s`` (before psycopg_pool's backoff grows:
    its default waited 22-25 s after a 35 s outage); the next request that finds the pool empty
    starts a new one. So while the server is away the pool tries every ``reconnect_timeout_s`` or
    so, and serves again within about that long of its return.
    """
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            kwargs: dict = {"row_factory": dict_row, "autocommit": False}
            if connect_timeout_s:
                kwargs["connect_timeout"] = max(2, int(connect_timeout_s))  # libpq's minimum is 2 s
            pool = ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                kwargs=kwargs,
                check=ConnectionPool.check_connection,
                timeout=timeout_s,
                reconnect_timeout=reconnect_timeout_s,
                open=True,
                name="gisapp",
            )
            _pools[url] = pool
        return pool


# SQLSTATEs of a server that is going away or not there yet: admin_shutdown, crash_shutdown,
# cannot_connect_now ("the database system is starting up / shutting down").
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03"}


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot be reached (an outage worth a 503 and a retry),
    as opposed to an error of the statement itself."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    # No SQLSTATE: the client library failed (connection refused, closed, lost mid-query).
    return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES


def close_pools() -> None:
    """Close every pool of this process (tests, shutdown)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


@contextmanager
def transaction(pool: ConnectionPool) -> Iterator[psycopg.Connection]:
    """Yield a connection inside one transaction: commit on success, roll back on error."""
    with pool.connection() as conn:
        yield conn  # pool.connection() commits on clean exit and rolls back on exception


def connect(url: str, **kw) -> psycopg.Connection:
    """Open a single connection (CLI, migrations)."""
    return psycopg.connect(url, row_factory=dict_row, **kw)


def migration_files() -> list[tuple[int, str, Path]]:
    """List the migrations as (version, name, path), sorted by version."""
    out = []
    for p in sorted(MIGRATIONS_DIR.glob("*.sql")):
        num, _, name = p.stem.partition("_")
        out.append((int(num), name, p))
    versions = [v for v, _, _ in out]
    if len(versions) != len(set(versions)):
        raise RuntimeError("two migrations share a version number")
    return out


def current_version(conn: psycopg.Connection) -> int | None:
    """Return the highest applied migration version, or None on an empty database."""
    exists = conn.execute("SELECT to_regclass('public.schema_migrations') AS t").fetchone()["t"]
    if not exists:
        return None
    row = conn.execute("SELECT max(version) AS v FROM schema_migrations").fetchone()
    return row["v"]


def upgrade(url: str, target: int | None = None, log=print) -> list[int]:
    """Apply pending migrations in order, each in its own transaction; return those applied."""
    applied: list[int] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK_ID,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       checksum text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {
                r["version"]: r["checksum"]
                for r in conn.execute("SELECT version, checksum FROM schema_migrations")
            }
            for version, name, path in migration_files():
                if target is not None and version > target:
                    break
                sql = path.read_text(encoding="utf-8")
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if version in done:
                    if done[version] != checksum:
                        log(f"warning: migration {path.name} changed after it was applied")
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (version, name, checksum),
                    )
                applied.append(version)
                log(f"applied migration {path.name}")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK_ID,))
    return applied
