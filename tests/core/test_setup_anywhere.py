"""Set-up from any directory (issue 12, item 13): scripts/pgcluster.sh in a checkout the
'postgres' OS user cannot enter, while another cluster holds the default port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg

from gisapp.core.config import ROOT

DEFAULT_PORT = 54329


def _hold(port: int) -> socket.socket | None:
    """Listen on 127.0.0.1:port when it is free (so that it is surely taken); None when it is taken."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    s.listen()
    return s


def test_private_cluster_in_a_closed_directory_on_a_taken_port(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o700)  # like /root: only its owner may enter
    checkout = home / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "pgcluster.sh", checkout / "scripts" / "pgcluster.sh")
    env = {k: v for k, v in os.environ.items() if k not in ("GISAPP_PG_PORT", "GISAPP_DATABASE_URL")}
    env["GISAPP_PG_DB"] = "anywhere"
    script = str(checkout / "scripts" / "pgcluster.sh")
    held = _hold(DEFAULT_PORT)
    try:
        r = subprocess.run([script, "ensure"], env=env, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr
        port = int((checkout / "var" / "pg_port").read_text())
        assert port != DEFAULT_PORT
        assert f"port {DEFAULT_PORT} is taken" in r.stderr
        if os.geteuid() == 0:  # the server runs as 'postgres', who cannot enter the checkout
            assert (checkout / "var" / "pg").is_symlink()
            assert "cannot enter" in r.stderr
        url = subprocess.run([script, "url"], env=env, capture_output=True, text=True, check=True).stdout.strip()
        assert f"port={port}" in url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3")
        # a second ensure reuses the remembered port and the running cluster
        again = subprocess.run([script, "ensure"], env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        assert int((checkout / "var" / "pg_port").read_text()) == port
        # a port given explicitly that is taken is explained, naming the setting
        if held is not None:
            clash = subprocess.run([script, "stop"], env=env, capture_output=True, text=True)
            assert clash.returncode == 0
            taken = subprocess.run([script, "start"], env={**env, "GISAPP_PG_PORT": str(DEFAULT_PORT)},
                                   capture_output=True, text=True, timeout=60)
            assert taken.returncode != 0
            assert "GISAPP_PG_PORT" in taken.stderr and f"port {DEFAULT_PORT}" in taken.stderr
    finally:
        if held is not None:
            held.close()
        subprocess.run([script, "stop"], env=env, capture_output=True, text=True)
        pg = checkout / "var" / "pg"
        if pg.is_symlink():
            shutil.rmtree(Path(os.readlink(pg)).parent, ignore_errors=True)
