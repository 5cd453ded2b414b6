"""Open the connection pool, run queries, and apply the numbered SQL migrations."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_LOCK_ID = 7_161_681  # pg advisory lock key for `db upgrade`

_pools: dict[str, ConnectionPool] = {}
_pools_lock = threading.Lock()


def get_pool(url: str, min_size: int = 1, max_size: int = 20) -> ConnectionPool:
    """Return the process-wide pool for ``url``, creating it lazily."""
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            pool = ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                kwargs={"row_factory": dict_row, "autocommit": False},
                open=True,
                name="gisapp",
            )
            _pools[url] = pool
        return pool


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
