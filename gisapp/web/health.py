"""Report the health of the service: database, PostGIS, pgRouting and schema versions."""

from __future__ import annotations

from flask import Blueprint, jsonify

from gisapp import __version__
from gisapp.core.db import migration_files
from gisapp.web.context import db_tx

bp = Blueprint("health", __name__)


def init_app(app) -> None:
    app.register_blueprint(bp)


@bp.get("/healthz")
def healthz():
    try:
        with db_tx() as conn:
            row = conn.execute(
                "SELECT current_setting('server_version') AS postgresql, postgis_lib_version() AS postgis, "
                "(SELECT extversion FROM pg_extension WHERE extname = 'pgrouting') AS pgrouting, "
                "postgis_geos_version() AS geos, postgis_proj_version() AS proj, "
                "(SELECT max(version) FROM schema_migrations) AS schema_version, "
                "(SELECT count(*) FROM schema_migrations) AS migrations_applied"
            ).fetchone()
    except Exception as e:  # noqa: BLE001 - health reports any database failure
        return jsonify(status="error", app_version=__version__, database=f"unavailable: {e}"), 503
    latest = max(v for v, _, _ in migration_files())
    status = "ok" if row["schema_version"] == latest else "migrations_pending"
    return jsonify(status=status, app_version=__version__, database="ok", schema_latest=latest, **row), (
        200 if status == "ok" else 503
    )
