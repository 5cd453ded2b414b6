"""A throwaway PostgreSQL server of its own (initdb in a temporary directory) that a test or a
benchmark may stop and start at will without disturbing the cluster the other tests share.

It listens on a unix socket only (in a directory only its OS user and root can enter), so it
needs no password. As root it runs as the ``postgres`` OS user, as scripts/pgcluster.sh does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

PG_MAJOR = 15


def find_bindir() -> str:
    """The PostgreSQL binaries, found as scripts/pgcluster.sh finds them."""
    env = os.environ.get("GISAPP_PG_BINDIR")
    if env:
        return env
    debian = f"/usr/lib/postgresql/{PG_MAJOR}/bin"
    if os.access(f"{debian}/initdb", os.X_OK):
        return debian
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip()
        if out and os.access(f"{out}/initdb", os.X_OK):
            return out
    raise RuntimeError("PostgreSQL's initdb not found (set GISAPP_PG_BINDIR); run `make setup`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayCluster:
    """initdb + pg_ctl in a directory of its own; ``stop()``/``start()`` simulate a database restart."""

    def __init__(self, base: Path | str | None = None, port: int | None = None):
        self.bindir = find_bindir()
        self.root_user = os.geteuid() == 0
        self.port = port or free_port()
        self.base = self._usable_base(Path(base) if base else None)
        self.data = self.base / "pg"
        self.sock = self.base / "run"
        self.log = self.base / "postgresql.log"
        self.sock.mkdir(mode=0o700, exist_ok=True)
        if self.root_user:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sock, "postgres")
        self._as_owner([f"{self.bindir}/initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
                        "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=reject"])
        with open(self.data / "postgresql.conf", "a") as fh:
            fh.write(f"\nlisten_addresses = ''\nunix_socket_directories = '{self.sock}'\n"
                     "unix_socket_permissions = 0700\nmax_connections = 200\nfsync = off\n"
                     "synchronous_commit = off\nshared_buffers = 64MB\n")

    def _usable_base(self, base: Path | None) -> Path:
        """``base`` when the server's OS user can enter it, else a fresh directory in /tmp."""
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
            if not self.root_user or subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(base)]
                                                    ).returncode == 0:
                return base
        return Path(tempfile.mkdtemp(prefix="gisapp-pg-"))

    def _as_owner(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        if self.root_user:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.sock}&port={self.port}"

    def start(self, wait: bool = True) -> None:
        """Start the server; with ``wait`` return once it accepts connections."""
        self._as_owner([f"{self.bindir}/pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o",
                        f"-p {self.port}", "-W", "start"])
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout_s: float = 60.0, every_s: float = 0.02) -> float:
        """Poll until a connection succeeds; return the monotonic time it first did."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return time.monotonic()
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(every_s)

    def stop(self, mode: str = "fast") -> None:
        self._as_owner([f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"])

    def create_database(self, name: str) -> str:
        """Create database ``name``, apply the project's migrations, return its URL."""
        from gisapp.core import db

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        url = self.url(name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis; CREATE EXTENSION IF NOT EXISTS pgrouting")
        db.upgrade(url, log=lambda m: None)
        return url

    def destroy(self) -> None:
        self._as_owner([f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                       check=False)
        shutil.rmtree(self.base, ignore_errors=True)
