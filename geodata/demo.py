"""Load the Zouping demo world: the real reference data plus the generated layers.

The full generator (stations, jurisdictions, roads, units, a year of incidents) is
described in geodata/README.md; this module is its entry point.
"""

from __future__ import annotations

from typing import Callable

import psycopg

from .reference import load_reference


def is_loaded(conn: psycopg.Connection) -> bool:
    """Return True when the demo (at least the county outline) is in the database."""
    return conn.execute("SELECT count(*) AS n FROM county").fetchone()["n"] > 0


def load_demo(conn: psycopg.Connection, seed: int | None = None, params_path=None, settings=None,
              log: Callable[[str], None] = print) -> dict:
    """Load the demo into ``conn`` (inside the caller's transaction); return counts."""
    summary = load_reference(conn)
    log(f"loaded the real county outline and {summary['towns']} towns")
    return summary
